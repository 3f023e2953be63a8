"""The numba backend's fused training kernel, with nets in SIMD lanes.

The population is cut into chunks of nets, which threads take in turn (``numba_backend``'s
``over_chunks``: the kernels release the GIL and run a range of chunks a call). Inside a chunk
every array keeps the nets on its last, contiguous axis (``P[row, lane]``), so each loop over
lanes is one SIMD loop: the same arithmetic for many nets at once. Three things make it fast:

- the exponential of the sigmoid is computed in lanes (``_exp64``): range reduction by ln 2
  with a two-part constant, a degree-13 polynomial for e^r, and 2^n assembled from its bits.
  It vectorises where ``math.exp`` (a libm call) cannot, and is accurate to a few ulps. The
  sigmoid and tanh run it in explicit vectors, as a function of their own that the kernels
  call through a pointer (``numba_fused.activation_function``); the scalar functions here are
  their transcription, held to them bit for bit in the tests;
- the cross-entropy loss, whose log1p cannot vectorise, is only computed exactly where a
  decision needs it: max(z, 0) - y z <= softplus(z) - y z <= that + log 2 bounds it otherwise;
- converged and diverged nets leave the chunk: the last active lane moves into their slot, so
  the loops shrink with the population still training.

A net's arithmetic does not depend on its lane (loops cover whole multiples of LANES, all in
vector code) nor on the thread that runs its chunk (chunks are fixed by the population, not the
thread count), so results are bitwise the same for any thread count and any population around it.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .activations import LEAKY_SLOPE
from .numba_rows import add_squares, sums_and_squares, sums_step
from .numba_tiles import (
    ALIGN,
    COLUMN_VECTORS,
    STEP_MOMENTUM,
    STEP_SGD,
    TILE,
    TILE_ROWS,
    V32,
    VECTOR_BYTES,
    crowded,
    multiply_into,
    multiply_into_derivative,
    multiply_into_shared,
    multiply_onto,
    multiply_onto_shared,
    step_into,
    step_into_shared,
    unit_rows,
)
from .spec import HIDDEN_ACTIVATIONS, LOSSES
from .training import DECISION_MARGIN, OPTIMIZERS, Status

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: we look for NaN
jit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy")
# nogil: the training and summary kernels run a range of chunks a call in threads of their own
# (numba_backend.over_chunks); as numba's parallel loop over chunks the training kernel took 16-17
# s more to compile, per dtype, than as a plain loop (29.6 s against 46.2 s for a first float64
# job). The main thread waits for a Ctrl-C or SIGTERM meanwhile, which sets the abort flag.
nogil_jit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
# The exponential's range reduction relies on the order of its operations: no reassociation.
exact_jit = numba.njit(cache=True, fastmath={"nsz", "contract"}, error_model="numpy")
# Where a sum has two products (b1 m + (1 - b1) g), which one LLVM fuses into an FMA differed
# between a fresh compile and the cached object code (Adam's results changed by an ulp a step
# depending on the cache): no contraction there, every operation rounded as written.
strict_jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy")
# The lane loops (forward, backward, activations, derivatives, checks, steps, attention) neither
# allocate nor return arrays: they work on the training kernel's chunk arrays through views of
# rows and samples (Z[layer, s], P[r], ...), which live as long as the kernel's call. Compiled
# with numba's reference counts, every such view and array argument took an atomic increment
# and decrement that numba's pruning left inside the loops, each waiting for the stores before
# it: perf put a third of a 4-16-1 job's kernel time in NRT_incref and NRT_decref. Without
# them (_nrt=False; numba then refuses to compile an allocation there), in one process on the
# Intel Xeon, the same bits: 2-16-16-1 1.18x, 4-16-1 relu float32 1.30x, 3-8-8-2 leaky relu
# float32 with momentum 1.11x, 4-16-1 with Adam 1.09x, 8-32-32-1 1.04x the rate.
uncounted_jit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
strict_uncounted_jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy", _nrt=False)

SIGMOID, TANH, RELU, LEAKY_RELU = map(
    HIDDEN_ACTIVATIONS.index, ("sigmoid", "tanh", "relu", "leaky_relu")
)
BCE, MSE = map(LOSSES.index, ("bce", "mse"))
SGD, MOMENTUM, ADAM = map(OPTIMIZERS.index, ("sgd", "momentum", "adam"))
NOT_CONVERGED, CONVERGED, DIVERGED = map(
    int, (Status.NOT_CONVERGED, Status.CONVERGED, Status.DIVERGED)
)

LANES = 16  # lane loops run over whole multiples of this: never a scalar remainder
assert LANES % (V32 * COLUMN_VECTORS) == 0  # the register tiles' columns of lanes
CHUNK_BYTES = 1 << 21  # working set of a chunk
STEP_TILE_BYTES = 1 << 13  # a column of lanes' dL/dz that step tiles of one input keep in L1
MAX_CHUNK = 1024
LOG2 = math.log(2.0)
BOUND_MARGIN = 1e-9  # bounds this close to a threshold leave the decision to the exact loss

# exp: x = n ln2 + r, |r| <= ln2 / 2; e^r by its Taylor series to degree 13 (error < 2e-17)
INV_LN2 = 1.4426950408889634
LN2_HI = 0.6931471803691238  # ln 2 = LN2_HI + LN2_LO, LN2_HI with trailing zero bits
LN2_LO = 1.9082149292705877e-10
SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it puts the integer n in the low mantissa bits
SHIFTER_BITS = int(np.float64(SHIFTER).view(np.int64))
SHIFTER32 = 12582912.0  # 1.5 * 2**23, the same trick for float32
SHIFTER32_BITS = int(np.float32(SHIFTER32).view(np.int32))


def chunk_size(n_layers: int, n_samples: int, width: int, n_params: int, itemsize: int = 8) -> int:
    """Nets per chunk: as many as keep a chunk's working set (activations, dL/dz, parameters,
    gradients and optimizer state) within CHUNK_BYTES, a core's L2 cache here; a power of
    two times LANES, so that round populations split into equal chunks for the threads.

    The fused pass (numba_fused) would fit chunks in L1, and measured 14% faster at 32 nets
    than at 1,024 (2-4-1, full budget); but the few nets that train on after the others have
    stopped then sit one to a chunk, each chunk a whole vector pass per epoch: with 1% of the
    nets to the end of a 10,000-epoch budget, early stopping took 0.22 of the full budget's
    time at 32 nets a chunk, 0.037 at 1,024. Both kernels use this size."""
    per_net = (3 * n_layers * n_samples * width + 4 * n_params) * itemsize
    size = LANES
    while size * 2 <= MAX_CHUNK and size * 2 * per_net <= CHUNK_BYTES:
        size *= 2
    return size


@intrinsic
def _raised(typingctx, flag):
    """Whether flag[0] (an int8 array another thread may set) is non-zero, read from memory on
    every call: an atomic load, which LLVM may not hoist out of the epoch loop as it would a
    plain one (nothing in the loop writes the flag)."""
    if not (isinstance(flag, types.Array) and flag.dtype == types.int8):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        value = builder.load_atomic(array.data, "monotonic", 1)
        return builder.icmp_unsigned("!=", value, value.type(0))

    return types.boolean(flag), codegen


@intrinsic
def _bits(typingctx, x):
    """The bits of a float as the integer of its width, or an integer's bits as that float."""
    swap = {types.float64: types.int64, types.int64: types.float64,
            types.float32: types.int32, types.int32: types.float32}  # fmt: skip
    if x not in swap:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return swap[x](x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a b + c with one rounding (llvm.fma: one instruction, vectorised in lane loops)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        kind = args[0].type
        name = "llvm.fma.f64" if kind == ir.DoubleType() else "llvm.fma.f32"
        function = ir.FunctionType(kind, [kind] * 3)
        return builder.call(cgutils.get_or_insert_function(builder.module, function, name), args)

    return a(a, b, c), codegen


# Adam's bias corrections divide every moment by the epoch's 1 - beta^t: one float64 division of
# a vector of lanes occupies this core's divider for about 16 cycles (1.4e8 a second a thread
# with both threads at work, against 3.8e9 multiply-adds), and the step's three divisions and
# square root a parameter held it: 43 ns a net a step of 2-4-1 float64 (17 parameters), where
# the SGD job's whole epoch takes 28. Divided by a number known for the whole epoch, a quotient
# is five multiply-adds from that number's reciprocal, to the same bits (_quotient).
# _quotient's range (tiny, huge, least) per itemsize: its residuals are exact where the
# exponents of b and of the quotient sum to at least the least normal's plus the precision
# (e_b + e_q >= e_min + p - 1), b >= least, and the quotient, at most |a| / least, is finite.
# Conservative: as b q is about a, e_b + e_q >= e_a - 1 already (an outside search found the
# first misrounded quotients at |a| < 2^-969 in float64, overflow at 2^971 for b = 2^-53)
QUOTIENT64 = (2.0**-916, 2.0**960, 2.0**-53)
QUOTIENT32 = (2.0**-78, 2.0**100, 2.0**-24)


# fastmath given, not left out: left out, a callee takes its caller's (nsz, which took the -0)
@numba.njit(cache=True, fastmath=False, error_model="numpy", _nrt=False)
def _quotient(a, b, y):
    """a / b rounded to nearest, as IEEE division rounds it, for y = 1 / b so rounded: by
    multiply-adds alone. q = a y is within two ulps of a / b; one correction by its exact
    residual (a fused multiply-add) makes it faithful (one of the two floats around a / b); a
    second is correctly rounded by Markstein's theorem (IBM J. Res. Dev. 34, 1990; Muller et
    al., Handbook of Floating-Point Arithmetic, 2018, section 4.8: y within half an ulp of 1 /
    b, q faithful, no underflow or overflow). A residual written -(b q - a) keeps a -0 as the
    division keeps it. Valid where the quotient and residuals stay normal: for QUOTIENT64's
    (QUOTIENT32's) b >= least (and b <= 1, as a bias correction is), a = 0 or tiny <= |a| <=
    huge, which the caller checks (_adam_lanes). tests/kernels/test_numba_lanes.py holds it
    to the division, on quotients near midpoints too (neither they nor random ones tell the
    last correction from none: the theorem, not a test, is what makes it exact)."""
    q = a * y
    q = _fma(-_fma(b, q, -a), y, q)
    return _fma(-_fma(b, q, -a), y, q)


@exact_jit
def _exp64(v):
    """exp(v), vectorisable once inlined in a lane loop (math.exp is a libm call that is not)."""
    v = min(max(v, -708.0), 709.0)
    n = math.floor(v * INV_LN2 + 0.5)  # nearest integer, as a float
    r = (v - n * LN2_HI) - n * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # n + SHIFTER holds the integer n in its low mantissa bits; move them to the exponent field
    return p * _bits((_bits(n + SHIFTER) - SHIFTER_BITS + 1023) << 52)  # p * 2.0**n


@exact_jit
def _exp32(v):
    """float32 twin of _exp64: Cody-Waite reduction and the polynomial of Cephes' expf
    (relative error ~1e-7, an ulp or two of float32)."""
    v = min(max(v, np.float32(-87.0)), np.float32(88.0))
    n = np.floor(v * np.float32(INV_LN2) + np.float32(0.5))
    r = (v - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    bits = np.int32((_bits(n + np.float32(SHIFTER32)) - (SHIFTER32_BITS - 127)) << 23)
    return p * _bits(bits)  # p * 2.0f**n


@exact_jit
def _expm1_64(v):
    """exp(v) - 1 to a few ulps also near 0, where exp(v) - 1 cancels: _exp64's polynomial
    without its leading 1 (q = e^r - 1), then e^v - 1 = q 2^n + (2^n - 1), exact for small n."""
    v = min(max(v, -708.0), 709.0)
    n = math.floor(v * INV_LN2 + 0.5)
    r = (v - n * LN2_HI) - n * LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    q = p * r
    scale = _bits((_bits(n + SHIFTER) - SHIFTER_BITS + 1023) << 52)  # 2.0**n
    return q * scale + (scale - 1.0)


@exact_jit
def _expm1_32(v):
    """float32 twin of _expm1_64, on _exp32's polynomial."""
    v = min(max(v, np.float32(-87.0)), np.float32(88.0))
    n = np.floor(v * np.float32(INV_LN2) + np.float32(0.5))
    r = (v - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    q = p * r * r + r
    scale = _bits(np.int32((_bits(n + np.float32(SHIFTER32)) - (SHIFTER32_BITS - 127)) << 23))
    return q * scale + (scale - np.float32(1.0))


@jit
def _lane_extent(chunk, itemsize):
    """Lanes to allocate per row of a chunk's arrays: chunk, or one cache line's worth more
    where rows would be crowded (2-16-16-1, 128 float64 nets a chunk, one thread on an AVX2
    core: an epoch 1.33 -> 1.17 us a net with 1,088-byte rows instead of 1,024). Not where a
    row spans 2 or 4 lines, where the extra line makes the arrays a quarter to a half larger
    (8-32-32-1, 16 float64 nets: 8.8 -> 11.9 us with 3 lines; 8-24-24-1, 32 nets: 7.4 -> 8.7
    with 5). The extra lanes stay empty: no net is ever put there."""
    line = ALIGN // itemsize
    return chunk + line if crowded(chunk * itemsize) else chunk


@jit
def _zeros(shape, like):
    """np.zeros(shape, like.dtype) whose data starts on an ALIGN-byte boundary. numba's own
    arrays of a chunk's size start 32 bytes past one, so that every vector of 8 float64 (or 16
    float32) the lane loops load from them spans two cache lines: a 32 x 32 layer's register
    tiles measured 9-12 GFMA/s on such arrays, 19-29 on aligned ones (one core)."""
    n = 1
    for extent in shape:
        n *= extent
    pad = ALIGN // like.itemsize
    buffer = np.zeros(n + pad, dtype=like.dtype)
    start = (ALIGN - buffer.ctypes.data % ALIGN) % ALIGN // like.itemsize
    return buffer[start : start + n].reshape(shape)


@jit
def _chunk_layout(layers, offsets, lanes, itemsize, pad):
    """Where a chunk keeps theta's parameters (rows of ``lanes`` lanes): per layer, the row
    of its first weight, of its first bias, and the rows from one input's weights to the
    next's (layout, shape (n_layers, 3)), and the row of each of theta's rows (rows_of).
    theta's own order, but where ``pad`` a layer's weights get one empty row after each
    input's where its inputs' rows would be crowded (``crowded``): the forward pass's tiles walk
    down W[:, j] (8-32-32-1, 16 float64 nets a chunk, 4 KiB between inputs: the 32 x 32
    layer's forward tiles 1.86 -> 1.31 us a net-epoch with 4.6 KiB, one thread on an AVX2
    core). The fused pass keeps theta's order (pad False). The empty rows' gradients are 0,
    so they stay 0, and the sums of squares (|g|^2, |theta|^2) add 0 at them: the same bits."""
    n_layers = layers.size - 1
    layout = np.empty((n_layers, 3), dtype=np.int64)
    rows_of = np.empty(offsets[n_layers - 1, 1] + layers[n_layers], dtype=np.int64)
    row = 0
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        stride = fan_out + 1 if pad and crowded(fan_out * lanes * itemsize) else fan_out
        layout[layer, 0], layout[layer, 2] = row, stride
        for i in range(fan_in):
            for j in range(fan_out):
                rows_of[offsets[layer, 0] + i * fan_out + j] = row + i * stride + j
        row += fan_in * stride
        layout[layer, 1] = row
        for j in range(fan_out):
            rows_of[offsets[layer, 1] + j] = row + j
        row += fan_out
    return layout, rows_of


@jit
def _chunk_of(theta, first, active, lanes, rows_of, n_rows):
    """A chunk's parameters in lanes: theta[:, first:first + active] in the first lanes of
    aligned rows of ``lanes`` lanes, theta's row r in row rows_of[r] of n_rows; zeros
    elsewhere."""
    P = _zeros((n_rows, lanes), theta)
    for r in range(theta.shape[0]):
        row = rows_of[r]
        for k in range(active):
            P[row, k] = theta[r, first + k]
    return P


@exact_jit
def _tanh_lanes(z, a, w, one):
    """tanh in lanes: with t = e^(-2|z|) - 1 (in (-1, 0]), tanh|z| = -t / (t + 2), the sign put
    back; no cancellation anywhere, so a few ulps of relative error also near 0."""
    two = one + one
    if z.itemsize == 4:
        for k in range(w):
            t = _expm1_32(-two * abs(z[k]))
            a[k] = math.copysign(-t / (t + two), z[k])
    else:
        for k in range(w):
            t = _expm1_64(-two * abs(z[k]))
            a[k] = math.copysign(-t / (t + two), z[k])


@uncounted_jit
def _activate_lanes(z, a, code, w, one, slope, activate):
    """a[k] = the activation of code at z[k] for lanes k < w (a multiple of LANES). activate:
    numba_fused.activation_function of the arrays' itemsize, which does sigmoid and tanh (its
    scalar transcription, 1 / (1 + _exp64(-z)) (_exp32 in float32) and _tanh_lanes, gives the
    same bits: tests/kernels/test_numba_lanes.py)."""
    if code == SIGMOID or code == TANH:
        activate(z.ctypes.data, a.ctypes.data, w, code)
    elif code == RELU:
        zero = one - one
        for k in range(w):
            a[k] = zero if z[k] <= 0 else z[k]
    else:
        for k in range(w):
            a[k] = slope * z[k] if z[k] <= 0 else z[k]


@jit
def _tiled(fan_in, fan_out):
    """Whether a layer's products go through register tiles: layers of at least TILE x TILE
    weights, however narrow one side. Below that, the plain loops' long runs over a row's lanes
    beat a tile's start and end at every vector of lanes (4,096 nets on XOR with every layer
    tiled: 2-4-1 0.84x, 2-2-1 float32 0.74x the rate). At or above it the tiles win where one
    side is narrow too, as the 16-wide layer into one output; until this version a layer went
    through them only if both sides were TILE wide (against that rule, in one process on the
    Intel Xeon, the same bits: 4-16-1 relu float32 1.14x, 3-8-8-2 leaky relu float32 1.17x,
    8-32-32-1 1.09x, 2-32-1 1.07x; 2-16-16-1, 2-8-1 tanh and 2-4-4-1 tanh within 2%)."""
    return fan_in * fan_out >= TILE * TILE


@uncounted_jit
def _forward_lanes(P, X, layers, layout, act, Z, A, w, K, activate):
    """Z, A of every layer for the chunk's lanes k < w. layout: _chunk_layout's, where P
    keeps each layer's weights and biases; activate: as _activate_lanes."""
    n_layers = layers.size - 1
    n_samples, width, chunk = Z.shape[1], Z.shape[2], Z.shape[3]
    flat_P, flat_Z, flat_A, flat_X = P.reshape(-1), Z.reshape(-1), A.reshape(-1), X.reshape(-1)
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0, stride = layout[layer, 0], layout[layer, 1], layout[layer, 2]
        tiled = _tiled(fan_in, fan_out)
        for s in range(0 if tiled else n_samples):  # the tiles below start from the biases
            for j in range(fan_out):
                z, bias = Z[layer, s, j], P[b0 + j]
                for k in range(w):
                    z[k] = bias[k]
                if layer == 0:  # inputs, shared by all lanes
                    for i in range(fan_in):
                        x, weight = X[s, i], P[w0 + i * stride + j]
                        for k in range(w):
                            z[k] += x * weight[k]
                else:
                    for i in range(fan_in):
                        below, weight = A[layer - 1, s, i], P[w0 + i * stride + j]
                        for k in range(w):
                            z[k] += below[k] * weight[k]
        # z[s, j] = b[j] + sum_i a[s, i] * W[i, j] (a = x at layer 0), in registers (numba_tiles)
        row = width * chunk
        if tiled and layer == 0:
            multiply_onto_shared(flat_Z, 0, row, chunk, flat_X, 0, fan_in, 1,
                                 flat_P, w0 * chunk, chunk, stride * chunk,
                                 flat_P, b0 * chunk, chunk,
                                 fan_in, n_samples, fan_out, w)  # fmt: skip
        elif tiled:
            multiply_onto(flat_Z, layer * n_samples * row, row, chunk,
                          flat_A, (layer - 1) * n_samples * row, row, chunk,
                          flat_P, w0 * chunk, chunk, stride * chunk,
                          flat_P, b0 * chunk, chunk,
                          fan_in, n_samples, fan_out, w)  # fmt: skip
        code = act if layer < n_layers - 1 else SIGMOID
        for s in range(n_samples):
            if w == chunk:  # rows j < fan_out of Z[layer, s] are contiguous: one call
                z, a = Z[layer, s].reshape(-1), A[layer, s].reshape(-1)
                _activate_lanes(z, a, code, fan_out * w, K[0], K[1], activate)
            else:  # nets have left the chunk: only the w active lanes of each row
                for j in range(fan_out):
                    _activate_lanes(Z[layer, s, j], A[layer, s, j], code, w, K[0], K[1],
                                    activate)  # fmt: skip


@uncounted_jit
def _backward_lanes(P, X, Y, layers, layout, act, loss_code, Z, A, D, G, norm2, w, K, P2, M, lr,
                    step):  # fmt: skip
    """G = dL/dtheta per lane (in P's rows: layout, as _forward_lanes), D = dL/dz;
    norm2[:w] = |G|^2 per lane. K: constants in the arrays' dtype (one, leaky slope, the loss
    scale, the momentum), so float32 stays float32.
    step: -1, or the optimizer's step made as the gradients are summed (numba_tiles' STEP_SGD
    or STEP_MOMENTUM, with learning rates lr and momenta M): P2 = the stepped P, P unchanged
    and the gradients not stored where they come from register tiles (every row of P2 but the
    empty ones is written); G is then the tiles' scratch (step_into: at least TILE_ROWS - 1
    times the widest layer's units times a vector's lanes). The same bits as _step_lanes after
    it."""
    one, slope, scale = K[0], K[1], K[2]
    n_layers = layers.size - 1
    last = n_layers - 1
    n_samples, width, chunk = Z.shape[1], Z.shape[2], Z.shape[3]
    row = width * chunk  # elements between samples in Z, A, D
    flat_P, flat_G, flat_A, flat_D = P.reshape(-1), G.reshape(-1), A.reshape(-1), D.reshape(-1)
    flat_X, flat_Z, flat_P2, flat_M = X.reshape(-1), Z.reshape(-1), P2.reshape(-1), M.reshape(-1)
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            d, a, y = D[last, s, j], A[last, s, j], Y[s, j]
            if loss_code == BCE:
                for k in range(w):
                    d[k] = scale * (a[k] - y)
            else:
                for k in range(w):
                    d[k] = _mse_delta(scale, a[k], y, one)
    for k in range(w):
        norm2[k] = one - one
    for layer in range(last, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0, stride = layout[layer, 0], layout[layer, 1], layout[layer, 2]
        tiled = _tiled(fan_in, fan_out)
        # g[j] = sum_s d[s, j], norm2 += g[j]^2 over j, with the sums in registers (numba_rows)
        if step < 0:
            sums_and_squares(flat_G, b0 * chunk, chunk, flat_D, layer * n_samples * row, row,
                             chunk, n_samples, fan_out, norm2, w)  # fmt: skip
        else:
            sums_step(flat_P2, flat_P, flat_M, b0 * chunk, chunk, flat_D, layer * n_samples * row,
                      row, chunk, n_samples, fan_out, norm2, w, lr, K[3], step)  # fmt: skip
        for i in range(fan_in):
            for j in range(fan_out):
                if tiled:  # the tiles below write g whole
                    continue
                g = G[w0 + i * stride + j]
                for k in range(w):
                    g[k] = 0.0
                if layer == 0:  # inputs, shared by all lanes
                    for s in range(n_samples):
                        x, d = X[s, i], D[layer, s, j]
                        for k in range(w):
                            g[k] += x * d[k]
                else:
                    for s in range(n_samples):
                        below, d = A[layer - 1, s, i], D[layer, s, j]
                        for k in range(w):
                            g[k] += below[k] * d[k]
        # g[i, j] = sum_s a[s, i] * d[s, j] (a = x at layer 0), in registers (numba_tiles)
        stepping = step >= 0 and tiled
        # one input a tile where a column's dL/dz stays in L1 (no scratch), else TILE_ROWS
        scratch = flat_G[:0] if _one_input_tiles(n_samples, fan_out) else flat_G
        if stepping and layer == 0:  # and the step, g never stored
            step_into_shared(flat_P2, flat_P, flat_M, w0 * chunk, stride * chunk, chunk,
                             flat_X, 0, 1, fan_in, flat_D, 0, chunk, row,
                             n_samples, fan_in, fan_out, w, lr, norm2, K[3], step,
                             scratch)  # fmt: skip
        elif stepping:
            step_into(flat_P2, flat_P, flat_M, w0 * chunk, stride * chunk, chunk,
                      flat_A, (layer - 1) * n_samples * row, chunk, row,
                      flat_D, layer * n_samples * row, chunk, row,
                      n_samples, fan_in, fan_out, w, lr, norm2, K[3], step, scratch)  # fmt: skip
        elif tiled and layer == 0:
            multiply_into_shared(flat_G, w0 * chunk, stride * chunk, chunk,
                                 flat_X, 0, 1, fan_in,
                                 flat_D, 0, chunk, row,
                                 n_samples, fan_in, fan_out, w)  # fmt: skip
        elif tiled:
            multiply_into(flat_G, w0 * chunk, stride * chunk, chunk,
                          flat_A, (layer - 1) * n_samples * row, chunk, row,
                          flat_D, layer * n_samples * row, chunk, row,
                          n_samples, fan_in, fan_out, w)  # fmt: skip
        if not stepping:
            add_squares(norm2, flat_G, w0 * chunk, chunk, fan_in * stride, w)  # 0 at empty rows
        if step >= 0 and not stepping:
            _step_rows(P, G, P2, M, lr, w0, fan_in * stride, w, step, K[3])
        if layer > 0:
            if tiled:  # d_below[s, i] = sum_j d[s, j] * W[i, j] * f'(z_below[s, i]), in registers
                at = flat_A if act == SIGMOID or act == TANH else flat_Z  # (numba_tiles)
                multiply_into_derivative(flat_D, (layer - 1) * n_samples * row, row, chunk,
                                         flat_D, layer * n_samples * row, row, chunk,
                                         flat_P, w0 * chunk, stride * chunk, chunk,
                                         fan_out, n_samples, fan_in, w, at, act)  # fmt: skip
                continue
            else:
                for s in range(n_samples):
                    for i in range(fan_in):
                        d_below = D[layer - 1, s, i]
                        for k in range(w):
                            d_below[k] = 0.0
                for s in range(n_samples):
                    for i in range(fan_in):
                        d_below = D[layer - 1, s, i]
                        for j in range(fan_out):
                            d, weight = D[layer, s, j], P[w0 + i * stride + j]
                            for k in range(w):
                                d_below[k] += d[k] * weight[k]
            # d_below *= f'(z_below) over runs of contiguous elements: the whole layer, or a
            # sample's rows i < fan_in, while every lane is active; else each row's w lanes.
            # One call site, so that the activations' loops are compiled once.
            runs, run_step, rows, row_step, length = n_samples, row, 1, 0, fan_in * w
            if w == chunk and fan_in == width:
                runs, length = 1, n_samples * row
            elif w != chunk:
                rows, row_step, length = fan_in, chunk, w
            below = (layer - 1) * n_samples * row
            for r in range(runs):
                for i in range(rows):
                    _derivative_lanes(flat_D, flat_Z, flat_A, below + r * run_step + i * row_step,
                                      length, act, one, slope)  # fmt: skip


@jit
def _one_input_tiles(n_samples, fan_out):
    """Whether a tiled layer's stepping tiles (step_into) take one input at a time, loading a
    column of lanes' dL/dz of every sample and unit once per input: where those fit in a quarter
    of L1 (STEP_TILE_BYTES). Else they take TILE_ROWS inputs at a time, loading them once per
    TILE_ROWS inputs, with a scratch for the other inputs' gradients, whose squares wait for the
    first input's row to be done (8-32-32-1 on 16 samples, the same bits: 1.03x the rate, 1.07x
    with momentum, against storing the gradients and stepping from them)."""
    return n_samples * fan_out * VECTOR_BYTES * COLUMN_VECTORS <= STEP_TILE_BYTES


@jit
def _steps_in_backward(layers):
    """Whether the lane loops make the SGD or momentum step as they sum the gradients (into a
    second copy of the parameters, with which they then swap: _backward_lanes): where every
    layer's products run in tiles (_tiled). A layer of plain loops would store its gradients
    and step from them into the copy, a line read more than the step in place."""
    for layer in range(layers.size - 1):
        if not _tiled(layers[layer], layers[layer + 1]):
            return False
    return True


@uncounted_jit
def _step_rows(P, G, P2, M, lr, first, n_rows, w, step, momentum):
    """P2 = P stepped by G (step: numba_tiles' STEP_SGD or STEP_MOMENTUM, with the momenta M)
    in rows first to first + n_rows, lanes k < w: _step_lanes's operations, into P2."""
    for r in range(first, first + n_rows):
        p, g, out = P[r], G[r], P2[r]
        if step == STEP_SGD:
            for k in range(w):
                out[k] = p[k] - lr[k] * g[k]
        else:
            m = M[r]
            for k in range(w):
                m[k] = momentum * m[k] - lr[k] * g[k]
                out[k] = p[k] + m[k]


@uncounted_jit
def _derivative_lanes(D, Z, A, start, n, act, one, slope):
    """D[k] *= the activation's derivative at Z[k] (A[k] its value), for start <= k < start + n.
    The slices are indexed from 0, so that numba need not wrap negative indices, which would
    keep LLVM from vectorising the loop."""
    d, z, a = D[start : start + n], Z[start : start + n], A[start : start + n]
    if act == SIGMOID:
        for k in range(n):
            d[k] *= a[k] * (one - a[k])
    elif act == TANH:
        for k in range(n):
            d[k] *= one - a[k] * a[k]
    elif act == RELU:
        for k in range(n):
            d[k] *= one if z[k] > 0 else one - one
    else:
        for k in range(n):
            d[k] *= one if z[k] > 0 else slope


# The squared error's terms, rounded as written on every CPU (strict_jit): under the lane
# loops' fast-math flags LLVM chose their order of products, and whether a sum takes one in an
# FMA, by the core's vector features, so a core without AVX-512 rounded them otherwise than the
# fused pass, which writes these operations out (numba_fused._epoch).


@strict_jit
def _mse_delta(scale, a, y, one):
    """dL/dz of a sigmoid output under the squared error: ((scale (a - y)) (1 - a)) a."""
    return scale * (a - y) * (one - a) * a


@strict_jit
def _half_square(a, y):
    """(a - y)^2 / 2 in float64, as (0.5 (a - y)) (a - y), whatever the dtype of a and y."""
    wide = np.float64(a - y)
    return 0.5 * wide * wide


@uncounted_jit
def _checks_lanes(Z, A, Y, last, loss_code, max_error, correct, lower, w):
    """Per lane: largest |a - y|, outputs on the right side of 0.5, and the cheap loss part:
    max(z, 0) - y z summed (cross-entropy) or the whole ½(a - y)² (squared error)."""
    for k in range(w):
        max_error[k] = 0.0
        correct[k] = 0.0
        lower[k] = 0.0
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            z, a, y = Z[last, s, j], A[last, s, j], Y[s, j]
            sign = 1.0 if y >= 0.5 else -1.0  # right: sign * z > DECISION_MARGIN
            for k in range(w):
                err = abs(a[k] - y)
                max_error[k] = err if (err > max_error[k] or err != err) else max_error[k]
                correct[k] += 1.0 if sign * z[k] > DECISION_MARGIN else 0.0
                if loss_code == BCE:
                    lower[k] += max(z[k], 0.0) - y * z[k]
                else:
                    lower[k] += _half_square(a[k], y)


@uncounted_jit
def _squared_error_lanes(A, Y, last, squared, w):
    """Per lane: E = sum over samples and outputs of (a - y)^2, for the RMS and TSS rules."""
    for k in range(w):
        squared[k] = 0.0
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            a, y = A[last, s, j], Y[s, j]
            for k in range(w):
                squared[k] += (a[k] - y) * (a[k] - y)


@jit
def _exact_loss(Z, Y, last, k, loss_code, lower, scale):
    if loss_code != BCE:
        return lower * scale
    total = 0.0
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            z = Z[last, s, j, k]
            total += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - Y[s, j] * z
    return total * scale


@uncounted_jit
def _step_lanes(P, G, M, V, lr, step, opt_code, K, w, S):
    """K: one, slope, scale, momentum, beta1, beta2, eps, then room for Adam's bias corrections
    and _quotient's bounds (12 in all); S: w lanes of scratch for Adam."""
    momentum = K[3]
    if opt_code == SGD:
        for r in range(P.shape[0]):
            p, g = P[r], G[r]
            for k in range(w):
                p[k] -= lr[k] * g[k]
    elif opt_code == MOMENTUM:
        for r in range(P.shape[0]):
            p, g, m = P[r], G[r], M[r]
            for k in range(w):
                m[k] = momentum * m[k] - lr[k] * g[k]
                p[k] += m[k]
    else:
        # bias corrections in float64, then in the arrays' dtype like every other constant
        K[7] = 1.0 - float(K[4]) ** step
        K[8] = 1.0 - float(K[5]) ** step
        K[9], K[10], K[11] = QUOTIENT64 if K.itemsize == 8 else QUOTIENT32
        _adam_lanes(P, G, M, V, lr, K, w, S)


@strict_uncounted_jit
def _adam_lanes(P, G, M, V, lr, K, w, S):
    """p -= lr (m / correction1) / (sqrt(v / correction2) + eps), the corrections' divisions
    made by _quotient (the same bits: 2-4-1's step took 26 ns a net for 43, float32 9.5 for
    13, one thread of the Intel Xeon). A row with a moment outside _quotient's range (a unit
    whose gradient has faded to 1e-280, a NaN) is made again by division from the parameters
    it started from, kept in S (w lanes)."""
    one, beta1, beta2, eps, correction1, correction2 = K[0], K[4], K[5], K[6], K[7], K[8]
    tiny, huge, least, zero = K[9], K[10], K[11], one - one
    y1, y2 = one / correction1, one / correction2
    exact = correction1 >= least and correction2 >= least  # (and <= 1, as 1 - beta^t is)
    for r in range(P.shape[0]):
        p, g, m, v = P[r], G[r], M[r], V[r]
        outside = not exact
        if exact:
            for k in range(w):
                S[k] = p[k]
            for k in range(w):
                mk = beta1 * m[k] + (one - beta1) * g[k]
                vk = beta2 * v[k] + (one - beta2) * g[k] * g[k]
                m[k], v[k] = mk, vk
                size = abs(mk)  # (no branch: & and | of both sides; NaN is outside)
                fits_m = (tiny <= size) & (size <= huge) | (mk == zero)
                fits_v = (tiny <= vk) & (vk <= huge) | (vk == zero)
                outside |= not (fits_m & fits_v)
                m_hat, v_hat = _quotient(mk, correction1, y1), _quotient(vk, correction2, y2)
                p[k] -= lr[k] * m_hat / (np.sqrt(v_hat) + eps)
            if outside:
                for k in range(w):
                    p[k] = S[k]
        else:
            for k in range(w):
                m[k] = beta1 * m[k] + (one - beta1) * g[k]
                v[k] = beta2 * v[k] + (one - beta2) * g[k] * g[k]
        if outside:
            for k in range(w):
                p[k] -= lr[k] * (m[k] / correction1) / (np.sqrt(v[k] / correction2) + eps)


@uncounted_jit
def _attention_lanes(norm2, max_error, correct, lower, squared, loss0, reached, met, attention,
                     w, active, n_out, slack, scale, divergence_factor, max_error_limit,
                     squared_limit, track_squared, early_stop):  # fmt: skip
    """Per lane: whether the per-net decisions of this epoch could do anything (so a lane
    without attention is skipped: nothing to record, no exact loss needed, no first time of
    full accuracy or of meeting the criterion, no stop). A superset of the lanes that need
    them: the divergence bound has twice the decisions' margin. Returns whether any of the
    active lanes does (lanes from active to w hold nets that have left).
    For epochs where every lane's loss is computed (see train_kernel) it is not called."""
    any_lane = False
    for k in range(w):
        high = (lower[k] + slack) * scale
        near = not (high < divergence_factor * loss0[k] * (1.0 - 2.0 * BOUND_MARGIN))  # or NaN
        not_finite = not (norm2[k] < math.inf)  # norm2 >= 0: inf or NaN
        meets = max_error[k] < max_error_limit
        if track_squared:
            meets = meets and squared[k] < squared_limit
        news = (correct[k] == n_out and not reached[k]) or (meets and (early_stop or not met[k]))
        attention[k] = near or not_finite or news
        any_lane = any_lane or (attention[k] and k < active)
    return any_lane


@strict_jit
def _param_norm(P, rows_of, k):
    """|theta| of the net in lane k, its squares added in theta's order as written: the same
    bits whatever the chunk's layout (_chunk_layout), which a reassociated sum would not keep."""
    total = 0.0
    for r in range(rows_of.size):
        value = P[rows_of[r], k]
        total += value * value  # the square in the parameters' dtype, the sum in float64
    return math.sqrt(total)


@jit
def _give_back(theta, P, rows_of, ids, stop, active, gone):
    """theta[:, ids[k]] = the parameters of every lane k < active that stops, written row by row
    of theta: net by net, each of a net's parameters was a cache line of its own, which for a
    chunk of wide nets (theta's rows a power of two apart, so few of the caches' sets) took as
    long as an epoch. gone: room for the lanes' indices."""
    n_gone = 0
    for k in range(active):
        if stop[k]:
            gone[n_gone] = k
            n_gone += 1
    for r in range(rows_of.size):
        row = P[rows_of[r]]
        for i in range(n_gone):
            k = gone[i]
            theta[r, ids[k]] = row[k]


@jit
def _move_lane(arrays2d, src, dst):
    for array in arrays2d:
        for r in range(array.shape[0]):
            array[r, dst] = array[r, src]


@nogil_jit
def summary_kernel(theta, X, layers, offsets, act, limit, share, outputs, saturated, flat, chunk,
                   activate, start, stop):  # fmt: skip
    """What the failure analysis needs of the final nets, by the training kernel's own forward
    pass (``_forward_lanes``) over chunks of ``chunk`` nets, without keeping every layer's z and a
    of every net (in NumPy that took longer than a short training job itself): outputs,
    shape (n_samples, n_outputs, n_nets); per net, the hidden units whose activation's
    derivative is below ``limit`` (in theta's dtype) on at least ``share`` of the patterns
    (saturated) and on every pattern (flat): failure.analyse's rule. X: in theta's dtype;
    activate: as _activate_lanes.
    Only the chunks start <= c < stop, so that threads can take parts (numba_backend.over_chunks:
    as a parallel loop it took 7-8 s more to compile, per dtype, than it saved)"""
    n_nets = theta.shape[1]
    n_layers = layers.size - 1
    n_samples = X.shape[0]
    width = layers[1:].max()
    lanes = _lane_extent(chunk, theta.itemsize)
    layout, rows_of = _chunk_layout(layers, offsets, lanes, theta.itemsize, True)
    for c in range(start, stop):
        first = c * chunk
        active = min(chunk, n_nets - first)
        w = (active + LANES - 1) // LANES * LANES
        P = _chunk_of(theta, first, active, lanes, rows_of, layout[-1, 1] + layers[-1])
        rows = unit_rows(width, lanes, theta.itemsize)
        Z = _zeros((n_layers, n_samples, rows, lanes), theta)
        A = _zeros((n_layers, n_samples, rows, lanes), theta)
        K = np.zeros(2, dtype=theta.dtype)
        K[0], K[1] = 1.0, LEAKY_SLOPE
        _forward_lanes(P, X, layers, layout, act, Z, A, w, K, activate)
        every = np.ones(active, dtype=np.bool_)
        low = np.zeros(lanes, dtype=np.int64)
        _summary_of_lanes(Z, A, layers, act, K, limit, share, every, active, np.arange(first,
                          first + active), low, outputs, saturated, flat)  # fmt: skip


@jit
def _slope(z, a, act, K):
    """The activation's derivative at z (a = its value; K[0] = 1, K[1] = the leaky slope in the
    nets' dtype): failure.analyse's rule."""
    one = K[0]
    if act == SIGMOID:
        return a * (one - a)
    if act == TANH:
        return one - a * a
    if z > 0:
        return one
    return one - one if act == RELU else K[1]


@uncounted_jit
def _summary_of_lanes(Z, A, layers, act, K, limit, share, stop, active, ids, low, outputs,
                      saturated, flat):  # fmt: skip
    """What the failure analysis needs of the net in each lane k < active where stop[k], into
    column ids[k] of outputs, saturated and flat (which start at 0): its outputs and its hidden
    units by failure.analyse's rule (summary_kernel), from Z and A of the forward pass of its
    parameters. The training kernel calls it with its own pass of the epoch in which a net
    stops, whose parameters it keeps, so that the analysis needs no pass of its own: the same
    bits as summary_kernel's pass of the same parameters in the same layout (a net's
    arithmetic does not depend on its lane). low: room for a count per lane. Row by row of Z
    and A: lane by lane, each lane's values a cache line apart, took longer than the pass it
    saves."""
    n_layers = layers.size - 1
    n_samples = Z.shape[1]
    for s in range(n_samples):
        for j in range(layers[n_layers]):
            a = A[n_layers - 1, s, j]
            for k in range(active):
                if stop[k]:
                    outputs[s, j, ids[k]] = a[k]
    for layer in range(n_layers - 1):
        for j in range(layers[layer + 1]):
            low[:active] = 0
            for s in range(n_samples):
                z, a = Z[layer, s, j], A[layer, s, j]
                for k in range(active):
                    low[k] += 1 if _slope(z[k], a[k], act, K) < limit else 0
            for k in range(active):
                if stop[k]:
                    saturated[ids[k]] += 1 if low[k] / n_samples >= share else 0
                    flat[ids[k]] += 1 if low[k] == n_samples else 0


@nogil_jit
def train_kernel(
    theta, X, Y, layers, offsets, act, loss_code, scale,
    lr, n_epochs, opt_code, momentum, beta1, beta2, eps,
    max_error_limit, loss_limit, squared_limit, divergence_factor, early_stop, record_every,
    n_records,
    status, epochs_to_converge, first_full_accuracy, epochs_trained,
    final_loss, final_accuracy, final_grad_norm, hist_loss, hist_accuracy, hist_grad_norm,
    hist_param_norm, chunk, abort, fused, pass_steps, padded, activate, summary, outputs,
    saturated, flat, limit, share, start, stop,
):  # fmt: skip
    """Trains the chunks start <= c < stop of ``chunk`` nets each (a chunk's nets are its own:
    threads take ranges of chunks, numba_backend.over_chunks). fused: numba_fused.pass_function
    of the nets' shape (returns -1 where the lane loops run instead); pass_steps: whether that
    pass makes the SGD step (steps_in_pass); padded: whether the chunk's weights may get empty
    rows (_chunk_layout), not where the pass runs; activate: as _activate_lanes. summary:
    where the lane loops run (padded), whether each net's summary_kernel values (outputs,
    saturated, flat, zeros to begin; limit and share as there) are taken from the forward pass
    of the epoch it stops in (_summary_of_lanes: 4,096 8-32-32-1 nets, 8 ms less of a job of
    no epochs on two threads, 45 ms). X, Y: C-contiguous, in theta's dtype."""
    n_params, n_nets = theta.shape
    n_layers = layers.size - 1
    last = n_layers - 1
    width = layers[1:].max()
    n_samples = X.shape[0]
    n_out = Y.size
    track_loss = loss_limit < math.inf
    track_squared = squared_limit < math.inf
    # the loss lies in [lower, lower + slack] * scale: lower is the cross-entropy's cheap part
    # (the log terms, each in [0, log 2], left out), the squared error's whole loss
    slack = n_out * LOG2 if loss_code == BCE else 0.0
    # every chunk's layout: rows of `lanes` lanes, theta's rows at rows_of (read only below)
    lanes = _lane_extent(chunk, theta.itemsize)
    layout, rows_of = _chunk_layout(layers, offsets, lanes, theta.itemsize, padded)
    n_rows = layout[-1, 1] + layers[-1]
    # the optimizer's step, where the lane loops make it in their tiles (padded: they run)
    step = -1
    if padded and _steps_in_backward(layers):
        step = STEP_SGD if opt_code == SGD else STEP_MOMENTUM if opt_code == MOMENTUM else -1
    for c in range(start, stop):
        first = c * chunk
        active = min(chunk, n_nets - first)
        limits = np.array([DECISION_MARGIN, scale, divergence_factor, max_error_limit,
                           squared_limit, slack, 1.0 - 2.0 * BOUND_MARGIN, n_out])
        P = _chunk_of(theta, first, active, lanes, rows_of, n_rows)
        # optimizer state only where the optimizer keeps one (SGD none, momentum M, Adam both):
        # zeroing it for every chunk of a short job of wide nets was time of its own
        M = _zeros((n_rows if opt_code != SGD else 0, lanes), theta)
        V = _zeros((n_rows if opt_code == ADAM else 0, lanes), theta)
        # the lane loops make SGD's and momentum's step as they sum the gradients, into P2: the
        # decisions below still see the epoch's parameters in P (a net that stops keeps them),
        # and the two swap for the next epoch; the gradients are then never stored, and G is
        # step_into's scratch (TILE_ROWS - 1 rows of units whose squares a tile defers)
        G = _zeros((n_rows if step < 0 else (TILE_ROWS - 1) * width, lanes), theta)
        P2 = _zeros((n_rows if step >= 0 else 0, lanes), theta)
        rows = unit_rows(width, lanes, theta.itemsize)
        Z = _zeros((n_layers, n_samples, rows, lanes), theta)
        A = _zeros((n_layers, n_samples, rows, lanes), theta)
        D = _zeros((n_layers, n_samples, rows, lanes), theta)
        ids = np.arange(first, first + lanes)
        gone = np.empty(lanes, dtype=np.int64)  # lanes stopping in an epoch (_give_back)
        low = np.empty(lanes, dtype=np.int64)  # _summary_of_lanes' counts
        lane_lr = _zeros((lanes,), theta)
        for k in range(active):
            lane_lr[k] = lr[first + k]
        loss0 = _zeros((lanes,), limits)
        norm2 = _zeros((lanes,), theta)
        max_error = _zeros((lanes,), limits)
        correct = _zeros((lanes,), limits)
        lower = _zeros((lanes,), limits)
        squared = _zeros((lanes,), limits)
        K = np.zeros(12, dtype=theta.dtype)
        S = _zeros((lanes if opt_code == ADAM else 0,), theta)  # _adam_lanes' scratch
        K[0], K[1], K[2] = 1.0, LEAKY_SLOPE, scale
        K[3], K[4], K[5], K[6] = momentum, beta1, beta2, eps
        stop = np.zeros(lanes, dtype=np.bool_)
        attention = np.ones(lanes, dtype=np.bool_)
        reached = np.zeros(lanes, dtype=np.bool_)  # full accuracy seen (first_full_accuracy)
        met_once = np.zeros(lanes, dtype=np.bool_)  # criterion met (epochs_to_converge)
        record = 0
        for epoch in range(n_epochs + 1):
            if active == 0 or _raised(abort):
                break
            w = (active + LANES - 1) // LANES * LANES
            recording = record < n_records and (epoch % record_every == 0 or epoch == n_epochs)
            # every lane's loss is needed (exactly) in these epochs; in the others only lanes
            # whose decisions could change something go through the loop below
            every = epoch == 0 or epoch == n_epochs or recording or track_loss
            seen = fused(P.ctypes.data, G.ctypes.data, lane_lr.ctypes.data, X.ctypes.data,
                         Y.ctypes.data, Z.ctypes.data, K.ctypes.data, norm2.ctypes.data,
                         max_error.ctypes.data, correct.ctypes.data, lower.ctypes.data,
                         squared.ctypes.data, loss0.ctypes.data, reached.ctypes.data,
                         met_once.ctypes.data, attention.ctypes.data, limits.ctypes.data, lanes,
                         w, active, 1 if track_squared else 0, 1 if early_stop else 0)  # fmt: skip
            if seen < 0:  # not fused: the lane loops
                _forward_lanes(P, X, layers, layout, act, Z, A, w, K, activate)
                _backward_lanes(P, X, Y, layers, layout, act, loss_code, Z, A, D, G, norm2, w,
                                K, P2, M, lane_lr, step)  # fmt: skip
                _checks_lanes(Z, A, Y, last, loss_code, max_error, correct, lower, w)
                if track_squared:
                    _squared_error_lanes(A, Y, last, squared, w)
                if not every:
                    seen = 1 if _attention_lanes(
                        norm2, max_error, correct, lower, squared, loss0, reached, met_once,
                        attention, w, active, n_out, slack, scale, divergence_factor,
                        max_error_limit, squared_limit, track_squared,
                        early_stop) else 0  # fmt: skip
            if every:
                for k in range(active):
                    attention[k] = True
            elif seen == 0:
                if step >= 0:
                    P, P2 = P2, P
                elif not pass_steps:
                    _step_lanes(P, G, M, V, lane_lr, epoch + 1, opt_code, K, w, S)
                continue
            stopped = False
            for k in range(active):
                if not attention[k]:
                    continue
                net = ids[k]
                grad_norm = math.sqrt(norm2[k])
                accuracy = correct[k] / n_out
                exact = epoch == 0 or recording or track_loss or loss_code != BCE
                if not exact:
                    # the loss lies in [lower, lower + n_out log 2] * scale; it decides only
                    # if that interval reaches the divergence threshold (or is not finite)
                    high = (lower[k] + n_out * LOG2) * scale
                    threshold = divergence_factor * loss0[k]
                    if not (math.isfinite(high) and math.isfinite(grad_norm)):
                        exact = True
                    elif high >= threshold * (1.0 - BOUND_MARGIN):
                        exact = True
                loss = _exact_loss(Z, Y, last, k, loss_code, lower[k], scale) if exact else 0.0
                if epoch == 0:
                    loss0[k] = loss
                if recording:
                    hist_loss[record, net] = loss
                    hist_accuracy[record, net] = accuracy
                    hist_grad_norm[record, net] = grad_norm
                    hist_param_norm[record, net] = _param_norm(P, rows_of, k)
                if accuracy == 1.0 and first_full_accuracy[net] < 0:
                    first_full_accuracy[net] = epoch
                    reached[k] = True
                diverged = exact and (
                    not (math.isfinite(loss) and math.isfinite(grad_norm))
                    or loss > divergence_factor * loss0[k]
                )
                met = max_error[k] < max_error_limit and not diverged
                if track_loss:
                    met = met and loss < loss_limit
                if track_squared:
                    met = met and squared[k] < squared_limit
                if met and epochs_to_converge[net] < 0:
                    epochs_to_converge[net] = epoch
                    met_once[k] = True
                stop[k] = diverged or (met and early_stop) or epoch == n_epochs
                if stop[k]:
                    stopped = True
                    if not exact:
                        loss = _exact_loss(Z, Y, last, k, loss_code, lower[k], scale)
                    epochs_trained[net] = epoch
                    final_loss[net] = loss
                    final_accuracy[net] = accuracy
                    final_grad_norm[net] = grad_norm
                    if diverged:
                        status[net] = DIVERGED
                    elif epochs_to_converge[net] >= 0:
                        status[net] = CONVERGED
                    else:
                        status[net] = NOT_CONVERGED
            if stopped:
                if summary and padded:
                    _summary_of_lanes(Z, A, layers, act, K, limit, share, stop, active, ids,
                                      low, outputs, saturated, flat)  # fmt: skip
                _give_back(theta, P, rows_of, ids, stop, active, gone)
            if recording:
                record += 1
            # stopped nets leave: the last lane still training takes each one's slot (stopped
            # lanes at the end just leave, so no lane moves twice and none moves to leave)
            k = 0
            while stopped and k < active:
                if stop[k]:
                    while active - 1 > k and stop[active - 1]:
                        active -= 1
                        stop[active] = False
                    active -= 1
                    if k != active:
                        _move_lane((P, P2, M, V, G), active, k)
                        ids[k] = ids[active]
                        lane_lr[k] = lane_lr[active]
                        loss0[k] = loss0[active]
                        reached[k] = reached[active]
                        met_once[k] = met_once[active]
                        stop[k] = stop[active]
                    stop[active] = False
                else:
                    k += 1
            if active > 0 and step >= 0:
                P, P2 = P2, P
            elif active > 0 and not pass_steps:
                w = (active + LANES - 1) // LANES * LANES
                _step_lanes(P, G, M, V, lane_lr, epoch + 1, opt_code, K, w, S)  # fmt: skip
