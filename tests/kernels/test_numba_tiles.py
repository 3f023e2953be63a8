"""The register-tiled products of kernels/numba_tiles.py against NumPy and against plain loops.

Oracles: NumPy's einsum, to within the rounding bound of a sum of n products (Higham, Accuracy
and Stability of Numerical Algorithms, 3.1: |error| <= gamma_n sum |a_t b_t| with
gamma_n = n u / (1 - n u), u the unit roundoff; two computations, so twice that); and the plain
lane loops the tiles replaced, bit for bit, since the tiles keep their order of fused
multiply-adds. The tiles that finish the backward pass's work as they end (the derivative of
the activation, the optimizer's step) are held bit for bit to the products they extend followed
by the lane loops' own pass for that work (numba_lanes' _derivative_lanes, add_squares and
_step_lanes).
"""

import numba
import numpy as np
import pytest
from backprop_bench.kernels import numba_lanes as lanes
from backprop_bench.kernels.numba_fused import activation_function
from backprop_bench.kernels.numba_rows import add_squares
from backprop_bench.kernels.numba_tiles import (
    COLUMN_VECTORS,
    STEP_MOMENTUM,
    STEP_SGD,
    TILE_ROWS,
    VECTOR_BYTES,
    multiply_add,
    multiply_add_shared,
    multiply_into,
    multiply_into_derivative,
    multiply_into_shared,
    multiply_onto,
    multiply_onto_shared,
    step_into,
    step_into_shared,
)
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS

LANES = 32  # lane counts passed to multiply_add are multiples of this (as in the kernels)


def gamma(n, dtype):
    u = np.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


@numba.njit(fastmath={"nsz", "contract"})
def plain_loops(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w):
    for q in range(nq):
        for r in range(nr):
            for t in range(n):
                for k in range(w):
                    out[o + q * oq + r * orow + k] += (
                        a[ao + q * aq + t * at + k] * b[bo + r * br + t * bt + k]
                    )


def problem(dtype, nq, nr, n, chunk, seed=0):
    """out (nq, nr, chunk), a (nq, n, chunk), b (nr, n, chunk), each inside a larger array, so
    offsets are not zero; flat views and the offsets and strides that address them."""
    rng = np.random.default_rng(seed)
    pad = 3 * chunk
    out = rng.normal(size=pad + nq * nr * chunk).astype(dtype)
    a = rng.normal(size=pad + nq * n * chunk).astype(dtype)
    b = rng.normal(size=pad + nr * n * chunk).astype(dtype)
    geometry = (out, pad, nr * chunk, chunk, a, pad, n * chunk, chunk, b, pad, n * chunk, chunk)
    return geometry


def views(geometry, nq, nr, n, chunk):
    out, o, _, _, a, ao, _, _, b, bo, _, _ = geometry
    return (out[o:].reshape(nq, nr, chunk), a[ao:].reshape(nq, n, chunk),
            b[bo:].reshape(nr, n, chunk))  # fmt: skip


# every kind of tile and edge, at 4 x 4 and at 3 x 2 (numba_tiles.TILE_ROWS): 7 columns are
# 4 + 2 + 1 or 2 + 2 + 2 + 1, 8 are 4 + 4 or 2 + 2 + 2 + 2 (and 5 rows 4 + 1 or 3 + 1 + 1)
SHAPES = [(4, 4, 16), (16, 32, 32), (5, 7, 3), (5, 8, 4), (1, 1, 1), (3, 9, 6), (4, 1, 4),
          (1, 4, 2)]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", SHAPES)
def test_multiply_add_matches_numpy(dtype, nq, nr, n):
    chunk = 2 * LANES
    geometry = problem(dtype, nq, nr, n, chunk)
    out, a, b = views(geometry, nq, nr, n, chunk)
    expected = out.astype(np.float64) + np.einsum("qtk,rtk->qrk", a.astype(np.float64),
                                                  b.astype(np.float64))  # fmt: skip
    scale = np.abs(out) + np.einsum("qtk,rtk->qrk", np.abs(a), np.abs(b))
    multiply_add(*geometry, n, nq, nr, chunk)
    error = np.abs(out - expected)
    assert (error <= 2 * gamma(n + 1, dtype) * scale).all(), error.max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", SHAPES)
def test_multiply_add_is_bitwise_the_plain_loops(dtype, nq, nr, n):
    chunk = 2 * LANES
    tiled, plain = problem(dtype, nq, nr, n, chunk), problem(dtype, nq, nr, n, chunk)
    multiply_add(*tiled, n, nq, nr, chunk)
    plain_loops(*plain, n, nq, nr, chunk)
    np.testing.assert_array_equal(tiled[0], plain[0])


def test_lanes_past_w_and_memory_outside_the_tile_are_untouched():
    nq, nr, n, chunk = 5, 6, 7, 3 * LANES
    geometry = problem(np.float64, nq, nr, n, chunk)
    before = [geometry[i].copy() for i in (0, 4, 8)]
    multiply_add(*geometry, n, nq, nr, LANES)  # only the first 32 lanes are active
    out, _, _ = views(geometry, nq, nr, n, chunk)
    old_out, _, _ = views((before[0],) + geometry[1:], nq, nr, n, chunk)
    np.testing.assert_array_equal(out[:, :, LANES:], old_out[:, :, LANES:])
    np.testing.assert_array_equal(geometry[0][: geometry[1]], before[0][: geometry[1]])
    assert not np.array_equal(out[:, :, :LANES], old_out[:, :, :LANES])
    np.testing.assert_array_equal(geometry[4], before[1])  # the operands are only read
    np.testing.assert_array_equal(geometry[8], before[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", SHAPES)
def test_shared_inputs_match_numpy_and_the_plain_loops(dtype, nq, nr, n):
    # x[q, t] is one number for every lane, as the inputs X[s, i] are at the first layer
    chunk = 2 * LANES
    geometry = problem(dtype, nq, nr, n, chunk)
    out, _, b = views(geometry, nq, nr, n, chunk)
    x = np.random.default_rng(1).normal(size=(nq, n)).astype(dtype)
    expected = out.astype(np.float64) + np.einsum("qt,rtk->qrk", x.astype(np.float64),
                                                  b.astype(np.float64))  # fmt: skip
    scale = np.abs(out) + np.einsum("qt,rtk->qrk", np.abs(x), np.abs(b))
    plain = out.copy()
    for q in range(nq):
        for r in range(nr):
            for t in range(n):  # x * b rounded, then added: an upper bound on the fused sum's error
                plain[q, r] += x[q, t] * b[r, t]
    shared = (geometry[0], geometry[1], geometry[2], geometry[3], x.reshape(-1), 0, n, 1,
              *geometry[8:])  # fmt: skip
    multiply_add_shared(*shared, n, nq, nr, chunk)
    error = np.abs(out - expected)
    assert (error <= 2 * gamma(n + 1, dtype) * scale).all(), error.max()
    np.testing.assert_allclose(out, plain, rtol=0, atol=float(2 * gamma(2 * n + 2, dtype)
                                                              * scale.max()))  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", SHAPES)
@pytest.mark.parametrize("shared", [False, True], ids=["lanes", "shared"])
def test_multiply_into_is_multiply_add_into_zeros_and_reads_no_old_value(dtype, nq, nr, n,
                                                                         shared):  # fmt: skip
    """The gradients' products: out = the sum, bit for bit what multiply_add gives into a zeroed
    out; out starts as NaN here, so reading it anywhere would show."""
    chunk = 2 * LANES
    into, add = problem(dtype, nq, nr, n, chunk), problem(dtype, nq, nr, n, chunk)
    o = into[1]
    into[0][o:], add[0][o:] = np.nan, 0.0
    if shared:
        x = np.random.default_rng(1).normal(size=(nq, n)).astype(dtype).reshape(-1)
        into = (*into[:4], x, 0, n, 1, *into[8:])
        add = (*add[:4], x, 0, n, 1, *add[8:])
        multiply_into_shared(*into, n, nq, nr, chunk)
        multiply_add_shared(*add, n, nq, nr, chunk)
    else:
        multiply_into(*into, n, nq, nr, chunk)
        multiply_add(*add, n, nq, nr, chunk)
    np.testing.assert_array_equal(into[0], add[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", [(5, 7, 3), (5, 8, 3), (16, 32, 32)])  # every kind of tile
@pytest.mark.parametrize("shared", [False, True], ids=["lanes", "shared"])
@pytest.mark.parametrize("w", [LANES, 2 * LANES])
def test_multiply_onto_is_multiply_add_onto_c_and_reads_no_old_value(dtype, nq, nr, n, shared,
                                                                      w):  # fmt: skip
    """The forward pass's products: out = c's rows (the biases) + the sum, bit for bit what
    multiply_add gives into out set to c's rows; out starts as NaN here, so reading it anywhere
    would show, and lanes from w on stay NaN. c holds signed zeros and huge values."""
    chunk = 2 * LANES
    onto, add = problem(dtype, nq, nr, n, chunk), problem(dtype, nq, nr, n, chunk)
    c = np.random.default_rng(2).normal(size=(2 + nr) * chunk).astype(dtype)
    c[2 * chunk :: 3] = -0.0
    c[2 * chunk + 1 :: 5] = np.finfo(dtype).max / 2
    o = onto[1]
    onto[0][o:] = np.nan
    out_onto, _, _ = views(onto, nq, nr, n, chunk)
    out_add, _, _ = views(add, nq, nr, n, chunk)
    out_add[:] = c[2 * chunk :].reshape(nr, chunk)
    if shared:
        x = np.random.default_rng(1).normal(size=(nq, n)).astype(dtype).reshape(-1)
        onto = (*onto[:4], x, 0, n, 1, *onto[8:])
        add = (*add[:4], x, 0, n, 1, *add[8:])
        multiply_onto_shared(*onto, c, 2 * chunk, chunk, n, nq, nr, w)
        multiply_add_shared(*add, n, nq, nr, w)
    else:
        multiply_onto(*onto, c, 2 * chunk, chunk, n, nq, nr, w)
        multiply_add(*add, n, nq, nr, w)
    bits = f"u{np.dtype(dtype).itemsize}"
    np.testing.assert_array_equal(out_onto[..., :w].view(bits), out_add[..., :w].view(bits))
    assert np.isnan(out_onto[..., w:]).all()


def _bits(array):
    return array.view(f"u{array.itemsize}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("w", [LANES, 2 * LANES])
def test_multiply_into_derivative_is_multiply_into_then_the_derivative_pass(dtype, act, w):
    """dL/dz below = (sum_j d_j W_j) f'(z below) in the tiles' epilogue: the bits of
    multiply_into followed by the lane loops' derivative pass (whose operations LLVM orders
    under its fast-math flags; the epilogue writes that order out); lanes past w untouched.
    z holds exact zeros and both signs (the kinks), a and z come from the same units."""
    code = HIDDEN_ACTIVATIONS.index(act)
    chunk = 2 * LANES
    for nq, nr, n in [(4, 16, 16), (5, 7, 3), (16, 32, 32), (1, 2, 4)]:
        into, plain = problem(dtype, nq, nr, n, chunk), problem(dtype, nq, nr, n, chunk)
        o = into[1]
        rng = np.random.default_rng(nq + nr)
        z = rng.normal(size=into[0].size).astype(dtype)
        z[o::7] = 0.0
        z[o + 1 :: 11] = -0.0
        a = z.copy()
        one, slope = dtype(1.0), dtype(0.01)
        activate = activation_function(np.dtype(dtype).itemsize)
        lanes._activate_lanes(z, a, code, z.size, one, slope, activate)
        at = a if act in ("sigmoid", "tanh") else z
        into[0][o:], plain[0][o:] = np.nan, np.nan
        multiply_into_derivative(*into, n, nq, nr, w, at, code)
        multiply_into(*plain, n, nq, nr, w)
        out = plain[0][o:].reshape(nq * nr, chunk)
        for row in range(nq * nr):
            lanes._derivative_lanes(plain[0], z, a, o + row * chunk, w, code, one, slope)
        got = into[0][o:].reshape(nq * nr, chunk)
        np.testing.assert_array_equal(_bits(got[:, :w]), _bits(out[:, :w]))
        assert np.isnan(got[:, w:]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nq, nr, n", [(5, 7, 3), (3, 9, 6), (16, 32, 32), (4, 16, 4), (2, 1, 4),
                                       (2, 17, 16), (4, 8, 5), (7, 1, 2), (8, 4, 3),
                                       (6, 2, 4)])  # fmt: skip
@pytest.mark.parametrize("shared", [False, True], ids=["lanes", "shared"])
@pytest.mark.parametrize("opt", [STEP_SGD, STEP_MOMENTUM], ids=["sgd", "momentum"])
@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "one_input"])
def test_step_into_is_the_gradient_its_squares_and_the_step(dtype, nq, nr, n, shared, opt,
                                                            grouped):  # fmt: skip
    """The weight gradients never stored: out = the step from p, the momenta and the squared
    norm as multiply_into, add_squares over the rows in theta's order (q, then r) and
    _step_lanes give them, to the bit; the gradients' operands, p and the lanes past w are
    left alone. Rows of p a row apart from q to q (oq = nr + 1 rows: the padded layout).
    grouped: a scratch of TILE_ROWS - 1 rows of nr vectors, so that tiles take TILE_ROWS inputs
    at a time (rows whose units take more than one tile leave the other inputs' squares to the
    scratch); else none, one input at a time."""
    chunk, w = 2 * LANES, LANES if nq % 2 else 2 * LANES
    rng = np.random.default_rng(nq * nr + n)
    geometry = problem(dtype, nq, nr, n, chunk, seed=n)
    _, _, _, _, a, ao, aq, at, b, bo, br, bt = geometry
    if shared:
        a, ao, aq, at = rng.normal(size=nq * n).astype(dtype), 0, n, 1
    stride = nr + 1
    p = rng.normal(size=(nq * stride, chunk)).astype(dtype)
    m = rng.normal(size=p.shape).astype(dtype) * dtype(0.1)
    lr = (10.0 ** rng.uniform(-3, 1, size=chunk)).astype(dtype)
    momentum = dtype(0.9)
    norm2 = rng.uniform(size=chunk).astype(dtype)
    out = np.full_like(p, np.nan)
    m_tiles, norm_tiles, p_before = m.copy(), norm2.copy(), p.copy()
    step = step_into_shared if shared else step_into
    width = VECTOR_BYTES // np.dtype(dtype).itemsize * COLUMN_VECTORS
    scratch = np.full((TILE_ROWS - 1) * nr * width if grouped else 0, np.nan, dtype)
    step(out.reshape(-1), p.reshape(-1), m_tiles.reshape(-1), 0, stride * chunk, chunk,
         a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr, norm_tiles, momentum, opt,
         scratch)  # fmt: skip
    # the oracle: the gradients stored, their squares added row by row, the lane loops' step
    g = np.zeros((nq * nr, chunk), dtype)
    into = (g.reshape(-1), 0, nr * chunk, chunk, a, ao, aq, at, b, bo, br, bt)
    (multiply_into_shared if shared else multiply_into)(*into, n, nq, nr, w)
    norm_plain = norm2.copy()
    add_squares(norm_plain, g.reshape(-1), 0, chunk, nq * nr, w)
    rows = (np.arange(nq)[:, None] * stride + np.arange(nr)[None, :]).reshape(-1)
    stepped, m_plain = p[rows].copy(), m[rows].copy()
    K = np.array([1.0, 0.01, 1.0, momentum, 0.9, 0.999, 1e-8] + [0.0] * 5, dtype)
    lanes._step_lanes(stepped, g, m_plain, m_plain, lr, 1,
                      lanes.SGD if opt == STEP_SGD else lanes.MOMENTUM, K, w, lr[:0])  # fmt: skip
    np.testing.assert_array_equal(_bits(out[rows, :w]), _bits(stepped[:, :w]))
    np.testing.assert_array_equal(_bits(norm_tiles), _bits(norm_plain))
    if opt == STEP_MOMENTUM:
        np.testing.assert_array_equal(_bits(m_tiles[rows]), _bits(m_plain))
    else:
        np.testing.assert_array_equal(m_tiles, m)  # SGD keeps no momenta
    empty = np.setdiff1d(np.arange(nq * stride), rows)
    assert np.isnan(out[:, w:]).all() and np.isnan(out[empty]).all()
    np.testing.assert_array_equal(p, p_before)
