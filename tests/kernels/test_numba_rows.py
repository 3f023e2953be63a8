"""The row sums of kernels/numba_rows.py against the plain lane loops they replaced, bit for bit.

The training kernel's results must not change by a bit, so the oracle is the loop itself,
compiled with the training kernel's fast-math flags: the same additions and fused multiply-adds
in the same order. The rows hold signed zeros, values whose squares overflow and NaN, where a
different operation (an unfused square, a sum started from -0 or from the first term) would show.
"""

import numba
import numpy as np
import pytest
from backprop_bench.kernels import numba_lanes as lanes
from backprop_bench.kernels.numba_lanes import FASTMATH
from backprop_bench.kernels.numba_rows import add_squares, sums_and_squares, sums_step
from backprop_bench.kernels.numba_tiles import STEP_MOMENTUM, STEP_SGD

LANES = 16  # lane counts are multiples of this (as in the kernels)


@numba.njit(fastmath=FASTMATH)
def plain_squares(total, g, go, gr, n, w):
    for r in range(n):
        for k in range(w):
            total[k] += g[go + r * gr + k] * g[go + r * gr + k]


@numba.njit(fastmath=FASTMATH)
def plain_sums(out, o, oj, d, do, ds, dj, n, nj, total, w):
    for j in range(nj):
        for k in range(w):
            out[o + j * oj + k] = 0.0
        for s in range(n):
            for k in range(w):
                out[o + j * oj + k] += d[do + s * ds + j * dj + k]
        for k in range(w):
            total[k] += out[o + j * oj + k] * out[o + j * oj + k]


def rows(dtype, n_rows, chunk, seed):
    """n_rows rows of chunk lanes, after 3 rows of padding: normals of several magnitudes,
    some lanes of signed zeros only, some of huge values, a NaN."""
    rng = np.random.default_rng(seed)
    big = np.finfo(dtype).max ** 0.5 * 4  # its square overflows
    x = rng.normal(size=(3 + n_rows, chunk)) * 10.0 ** rng.integers(-3, 4, size=(1, chunk))
    x[3:, 0] = -0.0
    x[3:, 1] = rng.choice([0.0, -0.0], size=n_rows)
    x[3:, 2] = big
    x[3 + n_rows // 2, 3] = -big
    x[-1, 4] = np.nan
    return x.astype(dtype).reshape(-1)


def start(dtype, chunk):
    total = np.random.default_rng(9).normal(size=chunk).astype(dtype)
    total[0], total[5] = -0.0, 0.0
    return total


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows, w, chunk", [(37, 48, 48), (5, 16, 48), (1, 32, 64), (2, 16, 16)])
def test_add_squares_is_the_plain_loop(dtype, n_rows, w, chunk):
    g = rows(dtype, n_rows, chunk, seed=n_rows)
    total, plain = start(dtype, chunk), start(dtype, chunk)
    add_squares(total, g, 3 * chunk, chunk, n_rows, w)
    plain_squares(plain, g, 3 * chunk, chunk, n_rows, w)
    bits = f"u{total.itemsize}"
    np.testing.assert_array_equal(total.view(bits), plain.view(bits))
    np.testing.assert_array_equal(total[w:], start(dtype, chunk)[w:])  # lanes past w: untouched


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, nj, w, chunk", [(16, 9, 48, 48), (4, 4, 16, 48), (3, 1, 64, 64)])
def test_sums_and_squares_is_the_plain_loop(dtype, n, nj, w, chunk):
    """d laid out as D[layer]: samples of ``width`` rows (more than nj), as the backward pass
    reads the bias gradients; out as G's bias rows."""
    width = nj + 2
    d = rows(dtype, n * width, chunk, seed=n + nj)
    out, plain_out = np.full((nj + 2) * chunk, 7.0, dtype), np.full((nj + 2) * chunk, 7.0, dtype)
    total, plain = start(dtype, chunk), start(dtype, chunk)
    geometry = (chunk, chunk, d, 3 * chunk + chunk, width * chunk, chunk, n, nj)
    sums_and_squares(out, *geometry, total, w)
    plain_sums(plain_out, *geometry, plain, w)
    bits = f"u{total.itemsize}"
    np.testing.assert_array_equal(out.view(bits), plain_out.view(bits))
    np.testing.assert_array_equal(total.view(bits), plain.view(bits))
    rows_out = out.reshape(nj + 2, chunk)
    assert (rows_out[0] == 7.0).all() and (rows_out[nj + 1] == 7.0).all()  # outside: untouched
    assert (rows_out[1 : nj + 1, w:] == 7.0).all()  # lanes past w: untouched
    np.testing.assert_array_equal(total[w:], start(dtype, chunk)[w:])
    if n > 0:  # lane 0 sums only -0: the sum starts from +0
        assert not np.signbit(rows_out[1 : nj + 1, 0]).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, nj, w, chunk", [(16, 9, 48, 48), (4, 4, 16, 48), (3, 1, 64, 64)])
@pytest.mark.parametrize("opt", [STEP_SGD, STEP_MOMENTUM], ids=["sgd", "momentum"])
def test_sums_step_is_sums_and_squares_then_the_step(dtype, n, nj, w, chunk, opt):
    """The bias gradients never stored: out = the step from p (the lane loops' _step_lanes on
    the gradients sums_and_squares gives), the momenta and the squared norm to the bit; p and
    the lanes past w are left alone."""
    width = nj + 2
    d = rows(dtype, n * width, chunk, seed=n + nj)
    d[np.isnan(d)] = 1.0  # a NaN gradient is the NaN step: shown by the sums' test above
    rng = np.random.default_rng(nj)
    p = rng.normal(size=(nj + 2, chunk)).astype(dtype)
    m = (rng.normal(size=p.shape) * 0.1).astype(dtype)
    lr = (10.0 ** rng.uniform(-3, 1, size=chunk)).astype(dtype)
    momentum = dtype(0.9)
    out = np.full_like(p, 7.0)
    m_step, total, p_before = m.copy(), start(dtype, chunk), p.copy()
    geometry = (chunk, chunk, d, 3 * chunk + chunk, width * chunk, chunk, n, nj)
    sums_step(out.reshape(-1), p.reshape(-1), m_step.reshape(-1), *geometry, total, w, lr,
              momentum, opt)  # fmt: skip
    g = np.zeros_like(p)
    plain = start(dtype, chunk)
    sums_and_squares(g.reshape(-1), *geometry, plain, w)
    stepped, m_plain = p.copy(), m.copy()
    K = np.array([1.0, 0.01, 1.0, momentum, 0.9, 0.999, 1e-8] + [0.0] * 5, dtype)
    body = slice(1, nj + 1)
    lanes._step_lanes(stepped[body], g[body], m_plain[body], m_plain[body], lr, 1,
                      lanes.SGD if opt == STEP_SGD else lanes.MOMENTUM, K, w, lr[:0])  # fmt: skip
    bits = f"u{total.itemsize}"
    np.testing.assert_array_equal(out[1 : nj + 1, :w].view(bits),
                                  stepped[1 : nj + 1, :w].view(bits))  # fmt: skip
    np.testing.assert_array_equal(total.view(bits), plain.view(bits))
    if opt == STEP_MOMENTUM:
        np.testing.assert_array_equal(m_step.view(bits), m_plain.view(bits))
    else:
        np.testing.assert_array_equal(m_step, m)
    assert (out[0] == 7.0).all() and (out[nj + 1] == 7.0).all() and (out[:, w:] == 7.0).all()
    np.testing.assert_array_equal(p, p_before)
