"""The fused kernel's own exponential (kernels/numba_lanes.py) against long-double NumPy.

The training tests hold the whole kernel against the NumPy backend; this pins the piece that
replaced libm. Measured: at most 1.11 ulp (float64) and 1.05 ulp (float32) of relative error for
the sigmoid over the ranges below; SIGMOID_ULPS leaves room for a different libm or CPU while a
wrong polynomial coefficient or reduction constant is off by many thousands.
"""

import numpy as np
import pytest
from backprop_bench.kernels import numba_lanes as lanes

SIGMOID_ULPS = 4
# beyond these the exponential is clamped (no overflow, no NaN): e^709 and e^88 are the largest
# powers each float holds
RANGE = {np.float64: 700.0, np.float32: 80.0}


def lane_sigmoid(z):
    a = np.zeros_like(z)
    one, slope = z.dtype.type(1.0), z.dtype.type(0.01)
    lanes._activate_lanes(z, a, lanes.SIGMOID, z.size, one, slope)
    return a


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_in_lanes_is_within_a_few_ulps(dtype):
    limit = RANGE[dtype]
    z = np.concatenate([np.linspace(-limit, limit, 200_000), np.linspace(-1, 1, 20_000),
                        [0.0, 1e-30, -1e-30]]).astype(dtype)  # fmt: skip
    z = z[: z.size // 16 * 16]
    exact = 1.0 / (1.0 + np.exp(-z.astype(np.longdouble)))
    error = np.abs(lane_sigmoid(z) - exact) / exact
    assert error.max() <= SIGMOID_ULPS * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_in_lanes_saturates_without_overflow(dtype):
    huge = np.finfo(dtype).max
    z = np.array([-huge, -800, -RANGE[dtype], 0, RANGE[dtype], 800, huge] * 16, dtype=dtype)
    a = lane_sigmoid(z)
    assert np.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()
    assert (np.diff(a[:7]) >= 0).all() and a[3] == 0.5 and a[6] == 1.0
    nan = lane_sigmoid(np.full(16, np.nan, dtype=dtype))
    assert np.isnan(nan).all()  # NaN goes through, for divergence detection
