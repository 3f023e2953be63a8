"""Counter-based random numbers for randomness during training (pattern order, dropout masks).

Initial weights come from NumPy generators outside the kernels (``init.py``). Randomness drawn
while training must be the same for net ``k`` whatever the population, chunking, thread count
or backend, and must be drawn inside jitted code. A counter-based generator does both: draw
``j`` of a net at epoch ``e`` is a pure function ``hash(key, e, j)`` of integers, computed with
the same wrapping uint64 arithmetic in NumPy and in numba, so the two backends agree to the bit
and no generator state is carried between epochs or threads.

A net's ``key`` comes from its identity, ``(seed, net index)``, the identity that also decides
its initial weights: :func:`net_keys`. The hash is splitmix64's finaliser (Steele, Lea & Flood,
"Fast splittable pseudorandom number generators", OOPSLA 2014), applied once per input word.
Changing the constants or the order of mixing changes every stream: both are part of the contract.

The NumPy functions here are the oracle; the numba twins live in ``numba_streams.py``.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
# the mantissa of a float64 in [0, 1): the top 53 bits of a draw
_UNIT = 2.0**-53


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of every element of a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrapping is the arithmetic, not an accident
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def net_keys(seed: int, first_net: int, n_nets: int) -> np.ndarray:
    """Keys of nets ``first_net .. first_net + n_nets - 1`` of ``seed``: uint64, shape (n_nets,)."""
    for name, value in (("seed", seed), ("first_net", first_net), ("n_nets", n_nets)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if int(value) >= 2**64 or name == "n_nets" and int(first_net) + int(value) > 2**64:
            # (NumPy's "Python int too large to convert to C long" before)
            raise ValueError(f"{name} must be below 2**64, the keys' range, got {value!r}")
    index = np.arange(first_net, first_net + n_nets, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix64(mix64(np.uint64(seed) + GOLDEN) ^ (index * GOLDEN))


def bits(key, epoch, index) -> np.ndarray:
    """Draw ``index`` of epoch ``epoch`` of the net with ``key``: uniform uint64 (broadcasts)."""
    key = np.asarray(key, dtype=np.uint64)
    epoch = np.asarray(epoch, dtype=np.uint64)
    index = np.asarray(index, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix64(mix64(key ^ (epoch * GOLDEN)) + index * GOLDEN)


def uniform(key, epoch, index) -> np.ndarray:
    """The same draws as floats uniform on [0, 1) (53 bits; float64)."""
    return (bits(key, epoch, index) >> _S11).astype(np.float64) * _UNIT


def permutation(key, epoch, n: int) -> np.ndarray:
    """The order in which a net visits ``n`` patterns at ``epoch``: int64, shape (n,).

    Fisher-Yates from the last position down, position ``i`` swapped with ``bits(key, epoch, i)
    % (i + 1)``; the modulo's bias is below ``n / 2**64``, far below anything measurable.
    """
    order = np.arange(n, dtype=np.int64)
    draws = bits(key, epoch, np.arange(n, dtype=np.uint64))
    for i in range(n - 1, 0, -1):
        j = int(draws[i] % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return order
