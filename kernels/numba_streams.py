"""numba twins of ``streams.py``: the same counter-based draws, callable from jitted kernels.

Every operation is on uint64 (numba would turn a uint64 mixed with an int64 into a float64),
so the draws equal the NumPy oracle's to the bit.
"""

from __future__ import annotations

import numba
import numpy as np

from . import numba_cache  # noqa: F401  (numba's cache in step with every kernel source)
from .streams import _M1, _M2, _UNIT, GOLDEN

jit = numba.njit(cache=True, error_model="numpy")

_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@jit
def mix64(z):
    """splitmix64's finaliser of one uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def bits(key, epoch, index):
    """Draw ``index`` of epoch ``epoch`` of the net with ``key`` (uint64 key; integers)."""
    return mix64(mix64(key ^ (np.uint64(epoch) * GOLDEN)) + np.uint64(index) * GOLDEN)


@jit
def uniform(key, epoch, index):
    """The same draw as a float64 uniform on [0, 1)."""
    return np.float64(bits(key, epoch, index) >> _S11) * _UNIT


@jit
def permutation(key, epoch, order):
    """Fill ``order`` (int64, shape (n,)) with the order a net visits n patterns at ``epoch``."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        j = np.int64(bits(key, epoch, i) % np.uint64(i + 1))
        t = order[i]
        order[i] = order[j]
        order[j] = t
