"""The fused kernel's own exponential (kernels/numba_lanes.py) against long-double NumPy.

The training tests hold the whole kernel against the NumPy backend; this pins the piece that
replaced libm. Measured: at most 1.11 ulp (float64) and 1.05 ulp (float32) of relative error for
the sigmoid over the ranges below; SIGMOID_ULPS leaves room for a different libm or CPU while a
wrong polynomial coefficient or reduction constant is off by many thousands.
"""

import numba
import numpy as np
import pytest
from backprop_bench.kernels import NetSpec, get_problem, init_population
from backprop_bench.kernels import numba_lanes as lanes
from backprop_bench.kernels import numba_tiles as tiles
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels.numba_backend import train_population as nb_train
from backprop_bench.kernels.numba_fused import activation_function

from .test_training import TRAINED_RTOL, assert_same_outcomes

XOR = get_problem("xor")

SIGMOID_ULPS = 4
# beyond these the exponential is clamped (no overflow, no NaN): e^709 and e^88 are the largest
# powers each float holds
RANGE = {np.float64: 700.0, np.float32: 80.0}


def lane_sigmoid(z):
    a = np.zeros_like(z)
    one, slope = z.dtype.type(1.0), z.dtype.type(0.01)
    activate = activation_function(z.itemsize)
    lanes._activate_lanes(z, a, lanes.SIGMOID, z.size, one, slope, activate)
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


# tanh in lanes (an exponential minus one, then -t / (t + 2)): measured at most 1.63 ulp
# (float64) and 1.32 ulp (float32) of relative error over these ranges, also near 0
TANH_ULPS = 4


def lane_activation(z, code):
    a = np.zeros_like(z)
    lanes._activate_lanes(z, a, code, z.size, z.dtype.type(1.0), z.dtype.type(0.01),
                          activation_function(z.itemsize))  # fmt: skip
    return a


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_in_lanes_is_within_a_few_ulps(dtype):
    tiny = np.logspace(-30, 1, 8000)
    z = np.concatenate([np.linspace(-30, 30, 200_000), np.linspace(-1, 1, 20_000), tiny, -tiny,
                        [0.0, 1e-300, 20.0, -20.0]]).astype(dtype)  # fmt: skip
    z = z[: z.size // 16 * 16]
    exact = np.tanh(z.astype(np.longdouble))
    error = np.abs(lane_activation(z, lanes.TANH) - exact) / np.maximum(np.abs(exact), 1e-300)
    assert error.max() <= TANH_ULPS * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_in_lanes_saturates_and_keeps_nan(dtype):
    huge = np.finfo(dtype).max
    z = np.array([-huge, -800, -20, -0.0, 0.0, 20, 800, huge] * 2, dtype=dtype)
    a = lane_activation(z, lanes.TANH)
    np.testing.assert_array_equal(a[:8], [-1, -1, -1, 0, 0, 1, 1, 1])
    assert np.signbit(a[3]) and not np.signbit(a[4])  # odd, as tanh is
    assert np.isnan(lane_activation(np.full(16, np.nan, dtype=dtype), lanes.TANH)).all()


def test_the_hidden_activations_run_in_vector_code():
    """tanh's division and the ReLUs' comparisons compile to packed (SIMD) instructions: the
    lane loops vectorise (a libm call per lane, as math.tanh was, cannot). Fresh compiles:
    numba cannot show the machine code of cached functions."""
    z, a = np.zeros(16), np.zeros(16)
    fresh_tanh = numba.njit(fastmath={"nsz", "contract"}, error_model="numpy")(
        lanes._tanh_lanes.py_func
    )
    fresh_tanh(z, a, 16, 1.0)
    assert "vdivpd" in "".join(fresh_tanh.inspect_asm().values())
    fresh = numba.njit(fastmath=lanes.FASTMATH, error_model="numpy")(lanes._activate_lanes.py_func)
    fresh(z, a, lanes.RELU, 16, 1.0, 0.01, activation_function(8))
    assert "vcmplepd" in "".join(fresh.inspect_asm().values())


@numba.njit(fastmath=lanes.FASTMATH, error_model="numpy")
def scalar_transcription(z, a, code, w, one):
    """The lane loops' sigmoid and tanh as scalar numba code (_exp64/_exp32, _tanh_lanes),
    which the explicit vector code of numba_fused.activate_vectors replaced."""
    if code == lanes.SIGMOID:
        if z.itemsize == 4:
            for k in range(w):
                a[k] = one / (one + lanes._exp32(-z[k]))
        else:
            for k in range(w):
                a[k] = one / (one + lanes._exp64(-z[k]))
    else:
        lanes._tanh_lanes(z, a, w, one)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", [lanes.SIGMOID, lanes.TANH], ids=["sigmoid", "tanh"])
def test_the_vector_activations_are_the_scalar_transcription_to_the_bit(dtype, code):
    """Exact twins: any difference, of an ulp or in the sign of a zero, fails."""
    huge, tiny = np.finfo(dtype).max, np.finfo(dtype).tiny
    special = [np.nan, np.inf, -np.inf, huge, -huge, 0.0, -0.0, tiny, -tiny, 1e-300, -1e-300]
    z = np.concatenate([np.linspace(-800, 800, 40_000), np.linspace(-2, 2, 40_000),
                        np.logspace(-40, 3, 4000), -np.logspace(-40, 3, 4000),
                        special * 16]).astype(dtype)  # fmt: skip
    z = z[: z.size // 16 * 16]
    want, got = np.zeros_like(z), np.zeros_like(z)
    one = z.dtype.type(1.0)
    scalar_transcription(z, want, code, z.size, one)
    lanes._activate_lanes(z, got, code, z.size, one, z.dtype.type(0.01),
                          activation_function(z.itemsize))  # fmt: skip
    np.testing.assert_array_equal(got.view(f"u{z.itemsize}"), want.view(f"u{z.itemsize}"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_count_of_lanes_gets_the_same_bits_and_nothing_past_it(dtype):
    """The vector loop takes ACTIVATION_VECTORS vectors a step, then one at a time: every
    multiple of LANES up to several steps of either dtype, against the scalar transcription;
    lanes from w on are left alone."""
    z = (np.random.default_rng(5).normal(size=4 * 6 * 16) * 10).astype(dtype)
    one, bits = z.dtype.type(1.0), f"u{z.itemsize}"
    for code in (lanes.SIGMOID, lanes.TANH):
        for w in range(lanes.LANES, z.size + 1, lanes.LANES):
            want, got = np.zeros_like(z), np.full_like(z, 7.0)
            scalar_transcription(z, want, code, w, one)
            lanes._activate_lanes(z, got, code, w, one, z.dtype.type(0.01),
                                  activation_function(z.itemsize))  # fmt: skip
            np.testing.assert_array_equal(got[:w].view(bits), want[:w].view(bits))
            assert (got[w:] == 7.0).all()


@numba.njit(fastmath=lanes.FASTMATH, error_model="numpy")
def derivative_rows(D, Z, A, act, w, one, slope):
    """The backward pass's loop over rows that _derivative_lanes replaced: d *= f'(z)."""
    for i in range(D.shape[0]):
        d, z, a = D[i], Z[i], A[i]
        if act == lanes.SIGMOID:
            for k in range(w):
                d[k] *= a[k] * (one - a[k])
        elif act == lanes.TANH:
            for k in range(w):
                d[k] *= one - a[k] * a[k]
        elif act == lanes.RELU:
            for k in range(w):
                d[k] *= one if z[k] > 0 else one - one
        else:
            for k in range(w):
                d[k] *= one if z[k] > 0 else slope


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("w", [16, 32])
def test_the_derivative_over_contiguous_rows_is_the_row_loop_to_the_bit(dtype, act, w):
    """Rows 1 to 4 of 6 rows of 32 lanes: in one loop where every lane is active (w = 32), row
    by row otherwise, as the backward pass calls it; rows and lanes outside stay as they were."""
    code, chunk = lanes.HIDDEN_ACTIVATIONS.index(act), 32
    rng = np.random.default_rng(code)
    huge = np.finfo(dtype).max / 2
    D = rng.normal(size=(6, chunk)) * 10.0 ** rng.integers(-5, 5, size=(6, chunk))
    D[:, ::7], D[:, 1::9] = -0.0, huge
    Z = rng.normal(size=(6, chunk))
    Z[:, ::5] = 0.0
    Z[:, 2::5] = -0.0
    A = rng.random((6, chunk)) * 2 - 1
    A[:, 3::8] = -0.0
    D, Z, A = D.astype(dtype), Z.astype(dtype), A.astype(dtype)
    one, slope = dtype(1.0), dtype(0.01)
    want, got = D.copy(), D.copy()
    derivative_rows(want[1:5], Z[1:5], A[1:5], code, w, one, slope)
    flat = (got.reshape(-1), Z.reshape(-1), A.reshape(-1))
    if w == chunk:
        lanes._derivative_lanes(*flat, chunk, 4 * chunk, code, one, slope)
    else:
        for i in range(1, 5):
            lanes._derivative_lanes(*flat, i * chunk, w, code, one, slope)
    bits = f"u{np.dtype(dtype).itemsize}"
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize(
    "spec", [NetSpec((2, 4, 1), "tanh"), NetSpec((2, 8, 6, 1), "tanh", loss="mse")],
    ids=["2-4-1", "2-8-6-1-mse"],
)
def test_tanh_training_matches_numpy_after_10000_epochs(spec):
    """The lane tanh differs from NumPy's (libm) by an ulp or two per evaluation; over 10,000
    epochs that drift stays within the oracle's tolerance (test_training.TRAINED_RTOL, 1e-10;
    measured: at most 3.2e-14 on the parameters), with the same outcome for every net."""
    theta = np.tile(init_population(spec, 20, seed=7), 3)
    lrs = np.repeat([0.05, 0.5, 2.0], 20)
    args = (theta, spec, XOR.X, XOR.Y, lrs, 10_000)
    reference = npb.train_population(*args, record_every=1000)
    result = nb_train(*args, record_every=1000)
    assert_same_outcomes(result, reference)
    np.testing.assert_allclose(result.history.loss, reference.history.loss, TRAINED_RTOL, 1e-14)


def test_rows_a_multiple_of_8_cache_lines_apart_get_padded():
    # a chunk's rows: 1 KiB (2-16-16-1, 128 float64 nets) and 8 KiB (2-4-1, 1,024) get a line
    assert lanes._lane_extent(128, 8) == 136 and lanes._lane_extent(1024, 8) == 1032
    assert lanes._lane_extent(64, 8) == 72 and lanes._lane_extent(128, 4) == 144
    # 2 or 4 lines (16 or 32 float64 nets, 64 float32): the line would cost more than it saves
    assert lanes._lane_extent(16, 8) == 16 and lanes._lane_extent(32, 8) == 32
    assert lanes._lane_extent(64, 4) == 64 and lanes._lane_extent(16, 4) == 16
    # a sample's rows: 4 KiB (8-32-32-1, 16 float64 nets), 2 KiB (float32), 17 KiB (2-16-16-1
    # in the extent of 136 lanes) get a row; 33,024 bytes (2-4-1, 1,032 lanes: 516 lines) not
    assert tiles.unit_rows(32, 16, 8) == 33 and tiles.unit_rows(32, 16, 4) == 33
    assert tiles.unit_rows(16, 136, 8) == 17
    assert tiles.unit_rows(4, 1032, 8) == 4 and tiles.unit_rows(3, 16, 8) == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_padded_rows_change_no_bit(dtype, act):
    """The forward and backward lane loops on Z, A, D with one row per sample more than the
    widest layer (_unit_rows), and on weights with an empty row after each input's
    (_chunk_layout), give the same bits as on unpadded arrays, and leave the extra rows alone:
    no loop takes the row count for the width, nor the fan-out for the weights' row stride."""
    from backprop_bench.kernels.numba_backend import _codes

    spec = NetSpec((8, 32, 32, 1), act)
    layers, offsets, code = _codes(spec)
    rng = np.random.default_rng(3)
    n_samples, chunk, w = 16, 32, 16  # w < chunk: the row-by-row paths; then w = chunk
    X = (rng.random((n_samples, 8)) < 0.5).astype(dtype)
    Y = (X.sum(axis=1, keepdims=True) % 2).astype(dtype)
    theta = rng.normal(scale=0.3, size=(spec.n_params, chunk)).astype(dtype)
    K = np.array([1.0, 0.01, 1.0 / n_samples], dtype=dtype)
    results = {}
    for rows in (32, 33):
        for pad in (False, True):
            layout, rows_of = lanes._chunk_layout(layers, offsets, chunk, dtype().itemsize, pad)
            n_rows = layout[-1, 1] + layers[-1]
            assert (n_rows > spec.n_params) == pad and np.unique(rows_of).size == spec.n_params
            empty = np.setdiff1d(np.arange(n_rows), rows_of)
            P = np.zeros((n_rows, chunk), dtype)
            P[rows_of] = theta
            for width in (w, chunk):
                Z = np.full((spec.n_layers, n_samples, rows, chunk), 7.0, dtype)
                A, D = Z.copy(), Z.copy()
                G = np.zeros_like(P)
                norm2 = np.zeros(chunk, dtype)
                lanes._forward_lanes(P, X, layers, layout, code, Z, A, width, K,
                                     activation_function(dtype().itemsize))  # fmt: skip
                lanes._backward_lanes(P, X, Y, layers, layout, code, 0, Z, A, D, G, norm2, width,
                                      K, G, G, K, -1)  # fmt: skip
                if rows == 33:
                    assert (Z[:, :, 32] == 7.0).all() and (A[:, :, 32] == 7.0).all()
                    assert (D[:, :, 32] == 7.0).all()
                assert (G[empty] == 0).all() and (P[empty] == 0).all()
                results[rows, pad, width] = [
                    Z[:, :, :32, :width], A[:, :, :32, :width], D[:, :, :32, :width],
                    G[rows_of, :width], norm2[:width]]  # fmt: skip
    bits = f"u{np.dtype(dtype).itemsize}"
    for key, got in results.items():
        want = results[32, False, key[2]]
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(b.view(bits), a.view(bits))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layers, n_samples", [((2, 16, 16, 1), 4), ((3, 8, 8, 2), 16),
                                               ((8, 32, 32, 1), 16), ((2, 4, 1), 4)])  # fmt: skip
@pytest.mark.parametrize("opt", ["sgd", "momentum"])
def test_the_backward_pass_that_steps_is_the_backward_pass_then_the_step(dtype, layers, n_samples,
                                                                          opt):  # fmt: skip
    """With a step (numba_tiles' STEP_SGD or STEP_MOMENTUM) the backward pass leaves P alone and
    writes the stepped parameters into P2: the bits of the backward pass storing G and the lane
    loops' _step_lanes after it, the momenta and |g|^2 too. The first two nets step in tiles of
    one input, the wide one in tiles of TILE_ROWS inputs with a scratch (its 32-unit layers on
    16 samples: _one_input_tiles), all three in their tiles (_steps_in_backward); 2-4-1, whose
    layers are not tiled, stores the gradients and steps from them (_step_rows)."""
    from backprop_bench.kernels.numba_backend import _codes

    spec = NetSpec(layers, "tanh")
    codes, offsets, act = _codes(spec)
    itemsize = np.dtype(dtype).itemsize
    steps_in_tiles = layers != (2, 4, 1)
    assert lanes._steps_in_backward(codes) == steps_in_tiles
    assert lanes._one_input_tiles(n_samples, layers[1]) == (layers[1] < 32)
    rng = np.random.default_rng(sum(layers))
    chunk = 32
    X = (rng.random((n_samples, layers[0])) < 0.5).astype(dtype)
    Y = (rng.random((n_samples, layers[-1])) < 0.5).astype(dtype)
    layout, rows_of = lanes._chunk_layout(codes, offsets, chunk, itemsize, True)
    P = np.zeros((layout[-1, 1] + layers[-1], chunk), dtype)
    P[rows_of] = rng.normal(scale=0.5, size=(spec.n_params, chunk))
    M = np.zeros_like(P)
    M[rows_of] = rng.normal(scale=0.1, size=(spec.n_params, chunk))
    lr = (10.0 ** rng.uniform(-2, 1, size=chunk)).astype(dtype)
    K = np.array([1.0, 0.01, 1.0 / n_samples, 0.9, 0.9, 0.999, 1e-8] + [0.0] * 5, dtype)
    step = tiles.STEP_SGD if opt == "sgd" else tiles.STEP_MOMENTUM
    rows = tiles.unit_rows(max(layers[1:]), chunk, itemsize)
    for w in (16, 32):
        Z = np.zeros((spec.n_layers, n_samples, rows, chunk), dtype)
        A, D = Z.copy(), Z.copy()
        lanes._forward_lanes(P, X, codes, layout, act, Z, A, w, K, activation_function(itemsize))
        G, norm2 = np.zeros_like(P), np.zeros(chunk, dtype)
        lanes._backward_lanes(P, X, Y, codes, layout, act, 0, Z, A, D, G, norm2, w, K, G, G, lr,
                              -1)  # fmt: skip
        stepped, m = P.copy(), M.copy()
        lanes._step_lanes(stepped, G, m, m, lr, 1, lanes.SGD if opt == "sgd" else lanes.MOMENTUM,
                          K, w, lr[:0])  # fmt: skip
        P2, M2, before = np.full_like(P, np.nan), M.copy(), P.copy()
        norm2_2 = np.zeros(chunk, dtype)
        lanes._backward_lanes(P, X, Y, codes, layout, act, 0, Z, A, D, np.zeros_like(P), norm2_2,
                              w, K, P2, M2, lr, step)  # fmt: skip
        bits = f"u{itemsize}"
        np.testing.assert_array_equal(P2[rows_of, :w].view(bits), stepped[rows_of, :w].view(bits))
        np.testing.assert_array_equal(norm2_2[:w].view(bits), norm2[:w].view(bits))
        if opt == "momentum":
            np.testing.assert_array_equal(M2[rows_of, :w].view(bits), m[rows_of, :w].view(bits))
        np.testing.assert_array_equal(P, before)


def test_a_net_padded_alone_and_unpadded_in_the_fused_pass_has_the_same_bits():
    """2-8-1 in 1,024-net chunks: rows of 1,032 lanes, whose 8 weights of an input are crowded
    (_chunk_layout pads them) in the lane loops; a large population trains in the fused pass,
    in theta's order. The net's results and its whole history are the same bits."""
    from backprop_bench.kernels import numba_backend, numba_fused

    spec = NetSpec((2, 8, 1))
    theta = init_population(spec, 3000, seed=5, init="xavier_normal")
    assert 3000 * 400 >= numba_backend.FUSED_MIN_WORK > 400
    assert numba_fused.fused_key(spec.layers, 4, 0, 0, True)
    layers, offsets, _ = numba_backend._codes(spec)
    chunk = lanes.chunk_size(spec.n_layers, 4, 8, spec.n_params)
    layout, _ = lanes._chunk_layout(layers, offsets, lanes._lane_extent(chunk, 8), 8, True)
    assert layout[-1, 1] + 1 > spec.n_params  # alone, the weights are padded
    runs = [
        nb_train(t, spec, XOR.X, XOR.Y, 0.5, 400, record_every=50, early_stop=False)
        for t in (theta, theta[:, :1].copy())
    ]
    for name in ("theta", "final_loss", "final_grad_norm"):
        np.testing.assert_array_equal(getattr(runs[1], name)[..., 0],
                                      getattr(runs[0], name)[..., 0])  # fmt: skip
    for name in ("loss", "grad_norm", "param_norm"):
        np.testing.assert_array_equal(getattr(runs[1].history, name)[:, 0],
                                      getattr(runs[0].history, name)[:, 0])  # fmt: skip



def test_the_lane_loops_run_without_reference_counts():
    """Each view of a row in the lane loops took an atomic increment and decrement of its
    array's reference count, a third of a 4-16-1 job's kernel time (numba_lanes.uncounted_jit):
    every function of an epoch's lane loops (the *_lanes functions but _tanh_lanes, the tests'
    transcription of the vector tanh) and the tiles' and row sums' routines compile without
    them, and so do the regularised kernel's per-net passes and step. The training kernels,
    which allocate the arrays, keep them."""
    from backprop_bench.kernels import numba_rows
    from numba.core.registry import CPUDispatcher

    epoch = [f for name, f in vars(lanes).items()
             if name.endswith("_lanes") and name != "_tanh_lanes"
             and isinstance(f, CPUDispatcher)]  # fmt: skip
    assert len(epoch) >= 9  # activations, forward, backward, derivatives, checks, squared
    # error, step, Adam, attention
    functions = epoch + [
        tiles.multiply_add, tiles.multiply_into, tiles.multiply_add_shared,
        tiles.multiply_into_shared, tiles.multiply_onto, tiles.multiply_onto_shared,
        numba_rows.add_squares, numba_rows.sums_and_squares,
    ]  # fmt: skip
    # the regularised kernel's passes and step of one net, called per net and epoch
    from backprop_bench.kernels import numba_regularised

    functions += [numba_regularised._forward, numba_regularised._backward,
                  numba_regularised._step]  # fmt: skip
    counted = [f"{f.__module__}.{f.py_func.__name__}" for f in functions
               if f.targetoptions.get("_nrt", True)]  # fmt: skip
    assert not counted
    assert lanes.train_kernel.targetoptions.get("_nrt", True)


@numba.njit  # not cached: numba would keep the _quotient it inlined when that file changes
def _quotients(a, b, out):
    y = b.dtype.type(1.0) / b[0]
    for i in range(a.size):
        out[i] = lanes._quotient(a[i], b[0], y)


UINT = {np.float64: np.uint64, np.float32: np.uint32}


def _near_midpoints(p, n, rng):
    """n pairs of p-bit integers (A, B) whose quotient lies within 3 / (B 2^t) of a midpoint M /
    2^t between two p-bit numbers: A 2^t = B M + e for e of 1 or 3 either way (M = -e / B
    modulo 2^t), the hardest quotients to round."""
    pairs = []
    while len(pairs) < n:
        B, e = int(rng.integers(2 ** (p - 1), 2**p)) | 1, int(rng.choice([-3, -1, 1, 3]))
        for t in (p, p + 1):
            M = (-e * pow(B, -1, 2**t)) % 2**t + (2**p if t == p else 0)
            A, rest = divmod(B * M + e, 2**t)
            if 2**p <= M < 2 ** (p + 1) and not rest and 2 ** (p - 1) <= A < 2**p:
                pairs.append((A, B))
    return np.array(pairs, dtype=np.float64).T


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_quotient_by_multiply_adds_is_the_division_to_the_bit(dtype):
    """_quotient against IEEE division (NumPy's), over its whole stated range: numerators of
    every size from tiny to huge and both signs, zeros of both signs, and divisors from least
    to 1 (1 - beta^t for betas of 0.5 to 1 - 1e-7 and t up to 10^5, powers of 2, uniform);
    in float32 also every significand of the numerator for a few divisors; and quotients
    within a few units of 2^-2p of a midpoint between two floats (_near_midpoints), numerators
    and divisors at the range's ends. (Neither these nor random quotients tell the last
    correction from none: the theorem makes it exact. An outside review found no
    counterexample in 43e9 float32 and 29e6 float64 pairs within the range.)"""
    tiny, huge, least = lanes.QUOTIENT64 if dtype == np.float64 else lanes.QUOTIENT32
    rng = np.random.default_rng(7)
    top, bottom = np.log2(huge), np.log2(tiny)
    divisors = [1.0, least, 0.1, 1 - 0.999, 0.75, 0.5]
    divisors += list(rng.uniform(least, 1.0, 6))
    betas, powers = 1 - 10.0 ** -rng.uniform(0.3, 7, 12), rng.integers(1, 100_000, 12)
    divisors += [1 - float(dtype(b)) ** t for b, t in zip(betas, powers, strict=True)]
    divisors += list(2.0 ** -rng.uniform(0, -np.log2(least), 6))
    sizes = 2.0 ** rng.uniform(bottom, top, 200_000)
    a = (sizes * rng.choice([-1.0, 1.0], sizes.size)).astype(dtype)
    a = np.concatenate([a, np.array([0.0, -0.0, tiny, -tiny, huge, -huge, 1.0], dtype)])
    if dtype == np.float32:
        every = (np.arange(2**23, 2**24) * 2.0**-23).astype(dtype)
        a = np.concatenate([a, every, every * dtype(2.0**-60), -every * dtype(2.0**90)])
    out = np.empty_like(a)
    for b in divisors:
        b = np.array([b], dtype)
        if not least <= b[0] <= 1:
            continue
        _quotients(a, b, out)
        np.testing.assert_array_equal(out.view(UINT[dtype]), (a / b[0]).view(UINT[dtype]),
                                      err_msg=f"divisor {b[0]!r}")  # fmt: skip
    p = np.finfo(dtype).nmant + 1
    A, B = _near_midpoints(p, 2_000, rng)
    # A and B lie in [2^(p-1), 2^p): a from 1, tiny and huge / 2 up, b from least or 1/2 up
    ends = ((1.0, 0.5), (tiny, least), (tiny, 0.5), (huge / 2, 0.5), (huge / 2, least))
    for a_from, b_from in ends:
        a_scale, b_scale = a_from * 2.0 ** (1 - p), b_from * 2.0 ** (1 - p)
        a, b = (A * a_scale).astype(dtype), (B * b_scale).astype(dtype)
        for i in range(0, A.size, 97):
            _quotients(a, b[i : i + 1], out[: a.size])
            np.testing.assert_array_equal(out[: a.size].view(UINT[dtype]),
                                          (a / b[i]).view(UINT[dtype]))  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adams_lane_step_is_the_plain_formula_to_the_bit(dtype):
    """_step_lanes' Adam (the corrections by _quotient, rows outside its range by division)
    against p -= lr (m / c1) / (sqrt(v / c2) + eps) in NumPy, step by step: gradients of
    ordinary size, rows whose gradients are 0, rows whose moments fall below _quotient's range
    (gradients of 1e-150 in float64, 1e-12 in float32: v's squares below it, m's not), tiny,
    huge and NaN ones, ones whose squares overflow, and betas whose first corrections lie
    below its least divisor."""
    rng = np.random.default_rng(3)
    rows, w = 9, 64
    tiny = {np.float64: 1e-150, np.float32: 1e-12}[dtype]
    for beta1, beta2 in ((0.9, 0.999), (0.5, 1 - 1e-9), (0.0, 0.0)):
        P = rng.normal(size=(rows, w)).astype(dtype)
        P[0, :3] = [0.0, -0.0, 1e-30]
        M, V = np.zeros_like(P), np.zeros_like(P)
        P_ref, M_ref, V_ref = P.copy(), M.copy(), V.copy()
        lr = rng.uniform(0.001, 0.5, w).astype(dtype)
        K = np.array([1.0, 0.01, 1.0, 0.9, beta1, beta2, 1e-8] + [0.0] * 5, dtype)
        S = np.empty(w, dtype)
        for step in range(1, 40):
            G = rng.normal(size=(rows, w)).astype(dtype)
            G[1] = 0.0
            G[2] *= dtype(tiny)
            G[3, : w // 2] *= dtype(tiny)
            G[4] *= dtype(1e-30 if dtype == np.float64 else 1e-3)
            G[5, 0] = np.nan if step == 20 else G[5, 0]
            G[6] *= dtype(1e100 if dtype == np.float64 else 1e15)
            G[7] = -0.0
            G[8] *= dtype(1e200 if dtype == np.float64 else 1e25)  # v overflows, m does not
            lanes._step_lanes(P, G, M, V, lr, step, lanes.ADAM, K, w, S)
            one = dtype(1.0)
            c1, c2 = K[7], K[8]  # the kernel's corrections (numba's integer power)
            b1, b2, eps = dtype(beta1), dtype(beta2), dtype(1e-8)
            with np.errstate(all="ignore"):
                M_ref = b1 * M_ref + (one - b1) * G
                V_ref = b2 * V_ref + (one - b2) * G * G
                P_ref = P_ref - lr * (M_ref / c1) / (np.sqrt(V_ref / c2) + eps)
            for mine, plain in ((P, P_ref), (M, M_ref), (V, V_ref)):
                np.testing.assert_array_equal(mine.view(UINT[dtype]), plain.view(UINT[dtype]),
                                              err_msg=f"betas {beta1}, {beta2}, step {step}")
