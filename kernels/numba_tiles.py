"""Register-tiled multiply-adds over lanes of nets: the matrix products of wide layers.

With nets in SIMD lanes, a layer's product is a small matrix product per lane (every net has its
own weights). Written as plain loops over lanes, each multiply-add loads its accumulator and both
operands from cache and stores the accumulator back, and a 32-wide layer runs at a fraction of
the core's multiply-add rate (measured: 4.7 GFMA/s on one core). Here a tile of 4 x 4 lane
vectors stays in registers while a loop runs over the summed index, so each step loads 8 vectors
and does 16 vector multiply-adds (measured on a 32 x 32 layer, 16 samples, 32 lanes: 18 GFMA/s;
3 x 2 tiles of two-register vectors where the core has 16 vector registers, ``TILE_ROWS``).

LLVM does not keep such a tile in registers when it is written in numba (the loop vectoriser
works on innermost loops only, and the superword vectoriser numba turns off for its bugs), so the
tile is one small piece of LLVM IR with explicit vector types (``_fma_tile``). Every sum is
still accumulated by fused multiply-adds in the order t = 0, 1, ..., n - 1, the order of the plain
loops, so a net's results do not change by a bit.

Arrays are passed flat with element offsets and strides, so one routine serves the forward pass
(samples x units, summed over inputs, the sums starting from the biases), the weight gradient
(inputs x units, summed over samples) and the backward pass (samples x inputs, summed over
units).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic, overload

from . import numba_cache  # noqa: F401  (numba's cache in step with every kernel source)
from .activations import LEAKY_SLOPE
from .spec import HIDDEN_ACTIVATIONS

# Vector width: a zmm register where the core has AVX-512, a ymm register otherwise (a 4 x 4
# tile of zmm is 16 of its 32 registers; of ymm, 16 of 16 would spill).
VECTOR_BYTES = 64 if llvm.get_host_cpu_features().get("avx512f", False) else 32
V64 = VECTOR_BYTES // 8  # float64 lanes per vector
V32 = VECTOR_BYTES // 4  # float32 lanes per vector
TILE = 4  # layers of fewer than TILE x TILE weights run their products as plain loops
DERIVATIVE = 3  # _fma_tile's fresh for out = the sum times the derivative of activation fresh - 3
_SIGMOID, _TANH, _RELU, _LEAKY_RELU = map(
    HIDDEN_ACTIVATIONS.index, ("sigmoid", "tanh", "relu", "leaky_relu")
)
_SIGMOID_DERIVATIVE, _TANH_DERIVATIVE, _RELU_DERIVATIVE, _LEAKY_RELU_DERIVATIVE = (
    DERIVATIVE + code for code in (_SIGMOID, _TANH, _RELU, _LEAKY_RELU)
)
# A register tile of TILE_ROWS x TILE_COLS lane vectors. With 32 vector registers (AVX-512), 4 x 4:
# 16 accumulators and 8 operands, each vector a cache line of lanes. With 16 (AVX2 and below), a
# 4 x 4 tile's accumulators alone fill every register, and LLVM moved them to and from the stack
# on every step of the sum; 4 x 3 keeps its 12 in registers (8-32-32-1, 16 samples, one thread on
# an AVX2 core: the forward pass 4.9-5.6 us a net-epoch with 4 x 4 tiles, 3.9-4.1 with 4 x 3).
# There a tile's "vector" is two registers side by side (COLUMN_VECTORS), 8 float64 or 16 float32
# lanes, so that each load takes a whole cache line of a row (one register's half line left the
# other half to a second pass over the rows, from L2), in tiles of 3 x 2: 12 registers of
# accumulators again. The 32 x 32 layer's three products, one chunk of 16 nets in the kernel's
# layout, against 4 x 3 tiles of one register: forward 1.07-1.25x, weight gradients 1.14-1.25x,
# backward product 1.38-1.46x the rate (4 interleaved runs; 2 x 3 measured 0.85-1.03x, 2 x 2
# 1.03-1.30x, 4 x 1 1.06-1.38x).
TILE_ROWS, TILE_COLS = (4, 4) if VECTOR_BYTES == 64 else (3, 2)
COLUMN_VECTORS = 1 if VECTOR_BYTES == 64 else 2

# no reference counts (_nrt): the tiles and row sums work on the lane loops' arrays, allocate
# nothing and return no array (see numba_lanes.uncounted_jit)
JIT_OPTIONS = {"fastmath": {"nsz", "contract"}, "error_model": "numpy", "_nrt": False}
jit = numba.njit(cache=True, **JIT_OPTIONS)
ALIGN = 64  # bytes: a cache line, and the widest vector register


@jit
def crowded(span):
    """Whether rows ``span`` bytes apart start in at most 8 of the L1 cache's 64 sets: a span
    of a multiple of 8 cache lines. The lane loops and register tiles walk down columns of rows
    (a layer's weights, a sample's units, the samples); with such a span a tile's columns, more
    rows than the cache has ways in those sets, evicted each other."""
    return span // ALIGN % 8 == 0


@jit
def unit_rows(width, lanes, itemsize):
    """Rows per sample in a chunk's Z, A and D: width, or one more where the samples would be
    crowded (``crowded``): the weight gradients' register tiles sum over the samples (8-32-32-1,
    16 float64 nets a chunk, 4 KiB a sample: a 32 x 32 layer's weight-gradient tiles 2.1-3.1
    us a net-epoch with 32 rows, 1.2-1.7 with 33, one thread on an AVX2 core; an epoch 9.6 ->
    8.8 us). The extra row is never read or written."""
    return width + 1 if crowded(width * lanes * itemsize) else width


def lanes_of(array_type) -> int:
    """The lanes of a vector register for a numba array type's dtype (at typing time)."""
    return V32 if array_type.dtype.bitwidth == 32 else V64


def vectors(context, builder, sig, args, dtype, n_v):
    """The vector type of n_v elements of dtype, its fused multiply-add, a function that points
    at the vector starting at an element offset of an array's data, and one that gives the data
    pointer of the array argument at a position."""
    vector = ir.VectorType(context.get_value_type(dtype), n_v)
    fmuladd = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(vector, [vector] * 3),
        f"llvm.fmuladd.v{n_v}f{dtype.bitwidth}",
    )

    def at_offset(base, offset):
        return builder.bitcast(builder.gep(base, [offset]), vector.as_pointer())

    def data(position):
        return context.make_array(sig.args[position])(context, builder, args[position]).data

    return vector, fmuladd, at_offset, data


@intrinsic
def _fma_tile(typingctx, out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr,
              width, shared, fresh):  # fmt: skip
    """For q < nq, r < nr (literals): the lane vector of ``width`` elements (a literal) at
    out[o + q oq + r orow] += sum over t < n of a[ao + q aq + t at] * b[bo + r br + t bt],
    by fused multiply-adds in the order of t. out, b, c: flat contiguous arrays of one dtype.
    shared (a literal): if 1, a's terms are single numbers shared by all lanes (inputs), in
    a's own dtype and converted to out's. fresh (a literal): if 1, out = the sum (out's old
    values are not read: the sums start from +0, as from a zeroed out); if 2, out =
    c[co + r cr] + the sum (the sums start from c's rows, as from out set to them); if
    DERIVATIVE + an activation's code, out = the sum (as 1) times that activation's derivative
    at c's element at out's place (c: the activations a, or for relu and leaky relu the z):
    ``derivative_of``."""
    for literal in (nq, nr, width, shared, fresh):
        if not isinstance(literal, types.IntegerLiteral):
            raise errors.RequireLiteralValue(literal)
    n_q, n_r, n_v = nq.literal_value, nr.literal_value, width.literal_value
    is_shared = bool(shared.literal_value)
    dtype = out.dtype
    align = dtype.bitwidth // 8
    fresh_value = fresh.literal_value
    signature = types.void(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr,
                           width, shared, fresh)  # fmt: skip

    def codegen(context, builder, sig, args):
        _, o_, oq_, or_, _, ao_, aq_, at_, _, bo_, br_, bt_, _, co_, cr_, n_ = args[:16]
        vector, fmuladd, at_offset, data = vectors(context, builder, sig, args, dtype, n_v)

        def plus(base, stride, times):
            return builder.add(base, builder.mul(stride, ir.Constant(o_.type, times)))

        def splat(number):
            number = context.cast(builder, number, sig.args[4].dtype, dtype)
            one = builder.insert_element(ir.Constant(vector, ir.Undefined), number, k32(0))
            return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), n_v),
                                                                [0] * n_v))  # fmt: skip

        def k32(value):
            return ir.Constant(ir.IntType(32), value)

        p_out, p_a, p_b, p_c = data(0), data(4), data(8), data(12)
        tile = {}
        for q in range(n_q):
            for r in range(n_r):
                offset = plus(plus(o_, oq_, q), or_, r)
                slot = cgutils.alloca_once(builder, vector)  # promoted to a register by LLVM
                if fresh_value == 1 or fresh_value >= DERIVATIVE:
                    start = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * n_v)
                elif fresh_value == 2:
                    start = builder.load(at_offset(p_c, plus(co_, cr_, r)), align=align)
                else:
                    start = builder.load(at_offset(p_out, offset), align=align)
                builder.store(start, slot)
                tile[q, r] = slot, offset
        with cgutils.for_range(builder, n_) as loop:
            a_t = builder.add(ao_, builder.mul(loop.index, at_))
            b_t = builder.add(bo_, builder.mul(loop.index, bt_))
            if is_shared:
                xs = [
                    splat(builder.load(builder.gep(p_a, [plus(a_t, aq_, q)]))) for q in range(n_q)
                ]
            else:
                xs = [builder.load(at_offset(p_a, plus(a_t, aq_, q)), align=align)
                      for q in range(n_q)]  # fmt: skip
            ys = [builder.load(at_offset(p_b, plus(b_t, br_, r)), align=align) for r in range(n_r)]
            for (q, r), (slot, _) in tile.items():
                builder.store(builder.call(fmuladd, [xs[q], ys[r], builder.load(slot)]), slot)
        for slot, offset in tile.values():
            value = builder.load(slot)
            if fresh_value >= DERIVATIVE:
                at = builder.load(at_offset(p_c, offset), align=align)
                value = derivative_of(builder, vector, fresh_value - DERIVATIVE, value, at)
            builder.store(value, at_offset(p_out, offset), align=align)
        return context.get_dummy_value()

    return signature, codegen


def derivative_of(builder, vector, code, d, at):
    """d times the derivative of the activation of ``code`` (HIDDEN_ACTIVATIONS' index) at a
    point whose value (sigmoid, tanh) or input z (relu, leaky relu) is ``at``, by the operations
    of numba_lanes' _derivative_lanes as LLVM compiles them under its fast-math flags: (d a)
    (1 - a), the order its reassociation gives d (a (1 - a)); d (1 - a a), the latter in one
    fused multiply-add; d 1 or d 0 (relu), d 1 or d slope (leaky relu) by whether z > 0."""
    element = vector.element
    splat = ir.Constant(vector, [ir.Constant(element, 1.0)] * vector.count)
    if code == _SIGMOID:
        return builder.fmul(builder.fmul(d, at), builder.fsub(splat, at))
    if code == _TANH:
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3),
            f"llvm.fmuladd.v{vector.count}f{64 if element == ir.DoubleType() else 32}",
        )  # fmt: skip
        return builder.fmul(d, builder.call(fmuladd, [builder.fneg(at), at, splat]))
    zero = ir.Constant(vector, [ir.Constant(element, 0.0)] * vector.count)
    if code == _RELU:
        below = zero
    else:
        slope = LEAKY_SLOPE if element == ir.DoubleType() else float(np.float32(LEAKY_SLOPE))
        below = ir.Constant(vector, [ir.Constant(element, slope)] * vector.count)
    return builder.fmul(d, builder.select(builder.fcmp_ordered(">", at, zero), splat, below))


@jit
def _tiles(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, v, width, shared,
           fresh):  # fmt: skip
    """One column of lane vectors (``width`` lanes from lane v): TILE_ROWS x TILE_COLS tiles,
    then the edges (tiles of one row, of two columns where two or more are left, and of one)."""
    q = 0
    while q < nq:
        rows = TILE_ROWS if nq - q >= TILE_ROWS else 1
        r = 0
        while r < nr:
            cols = TILE_COLS if nr - r >= TILE_COLS else (2 if nr - r >= 2 else 1)
            oo, aa, bb = o + q * oq + r * orow + v, ao + q * aq, bo + r * br + v
            cc = co + r * cr + v
            if not shared:
                aa += v
            if rows == TILE_ROWS:
                if cols == TILE_COLS:
                    _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n,
                              TILE_ROWS, TILE_COLS, width, shared, fresh)  # fmt: skip
                elif cols == 2:
                    _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n,
                              TILE_ROWS, 2, width, shared, fresh)  # fmt: skip
                else:
                    _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n,
                              TILE_ROWS, 1, width, shared, fresh)  # fmt: skip
            elif cols == TILE_COLS:
                _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n, 1,
                          TILE_COLS, width, shared, fresh)  # fmt: skip
            elif cols == 2:
                _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n, 1, 2,
                          width, shared, fresh)  # fmt: skip
            else:
                _fma_tile(out, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, c, cc, cr, n, 1, 1,
                          width, shared, fresh)  # fmt: skip
            r += cols
        q += rows


def _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, w, shared,
             fresh):  # fmt: skip
    """Every column of lane vectors up to lane w (a multiple of COLUMN_VECTORS vectors), at the
    vector width of out's dtype (jitted code only)."""
    raise TypeError("_columns is compiled into jitted code only: call multiply_add and its kin")


@overload(_columns, jit_options=JIT_OPTIONS)
def _columns_of(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, w, shared,
                fresh):  # fmt: skip
    # the width chosen here, when out's dtype is known, compiles only its own tiles (a branch
    # on out.itemsize in the jitted code compiled the other width's too: ~4 s for nothing)
    width = lanes_of(out) * COLUMN_VECTORS

    def columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, w, shared,
                fresh):  # fmt: skip
        for v in range(0, w, width):
            _tiles(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, v, width,
                   shared, fresh)  # fmt: skip

    return columns


@jit
def multiply_add(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w):
    """out[o + q oq + r orow + k] += sum_t a[ao + q aq + t at + k] * b[bo + r br + t bt + k]
    for q < nq, r < nr and lanes k < w (w a multiple of COLUMN_VECTORS vectors), each sum by fused
    multiply-adds in the order t = 0, 1, ..., n - 1.

    out, a, b : flat C-contiguous arrays of one dtype (views of the lane arrays)
    """
    _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, out, 0, 0, n, nq, nr, w, 0, 0)


@jit
def multiply_into(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w):
    """As multiply_add, with out = the sum: out's old values are not read (the sums start from
    +0, so the results are those of multiply_add into a zeroed out, which the gradients would
    otherwise need a pass over their rows for)."""
    _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, out, 0, 0, n, nq, nr, w, 0, 1)


@jit
def multiply_into_derivative(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, e,
                             act):  # fmt: skip
    """As multiply_into, each sum then times the derivative of the hidden activation ``act``
    (HIDDEN_ACTIVATIONS' index) at e's element at its place (e: out's layout; the activations a
    for sigmoid and tanh, the z for relu and leaky relu): the backward pass's
    dL/dz_below = (sum_j dL/dz_j W_j) f'(z_below) without a pass of its own over the rows."""
    if act == _SIGMOID:
        _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, e, 0, 0, n, nq, nr, w, 0,
                 _SIGMOID_DERIVATIVE)  # fmt: skip
    elif act == _TANH:
        _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, e, 0, 0, n, nq, nr, w, 0,
                 _TANH_DERIVATIVE)  # fmt: skip
    elif act == _RELU:
        _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, e, 0, 0, n, nq, nr, w, 0,
                 _RELU_DERIVATIVE)  # fmt: skip
    else:
        _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, e, 0, 0, n, nq, nr, w, 0,
                 _LEAKY_RELU_DERIVATIVE)  # fmt: skip


@jit
def multiply_add_shared(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, n, nq, nr, w):
    """As multiply_add, with x[xo + q xq + t xt] one number shared by all lanes (the inputs)
    in place of a's lane vectors. x must have out's dtype for the sums to be exact in it."""
    _columns(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, out, 0, 0, n, nq, nr, w, 1, 0)


@jit
def multiply_into_shared(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, n, nq, nr, w):
    """multiply_add_shared with out = the sum, as multiply_into."""
    _columns(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, out, 0, 0, n, nq, nr, w, 1, 1)


@jit
def multiply_onto(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, w):
    """As multiply_add, with out = c[co + r cr + k] + the sum: out's old values are not read
    (the results are those of multiply_add into out set to c's rows, as the forward pass sets
    z to the biases, which would otherwise take a pass over z's rows)."""
    _columns(out, o, oq, orow, a, ao, aq, at, b, bo, br, bt, c, co, cr, n, nq, nr, w, 0, 2)


@jit
def multiply_onto_shared(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, c, co, cr, n, nq, nr,
                         w):  # fmt: skip
    """multiply_add_shared with out = c's rows + the sum, as multiply_onto."""
    _columns(out, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, c, co, cr, n, nq, nr, w, 1, 2)


# Tiles of the weight gradients that make the optimizer's step as they end (``step_into``): one
# input's row of STEP_COLS units at a time, so that the squares of the gradient norm are added in
# the order of theta's rows (with 32 vector registers, 8 accumulators, 8 operands and the input);
# or, given a scratch, TILE_ROWS inputs by TILE_COLS units, the first input's squares added as its
# tiles end and the others' gradients kept in the scratch until the first input's row is done.
STEP_COLS = 8 if VECTOR_BYTES == 64 else 2
STEP_SGD, STEP_MOMENTUM = 0, 1  # the optimizers a tile's end can step (Adam steps on its own)


def step_value(builder, fmuladd, vector, opt, g, p_old, m_pointer, lr, momentum, align):
    """The new parameter of a gradient g, by the operations of numba_lanes' _step_lanes:
    SGD p - lr g in one rounding (one fused multiply-add of -lr); momentum
    m = momentum m - (lr g rounded), in one fused multiply-add, stored at m_pointer, and p + m."""
    if opt == STEP_SGD:
        return builder.call(fmuladd, [builder.fneg(lr), g, p_old])
    m = builder.call(fmuladd, [momentum, builder.load(m_pointer, align=align),
                               builder.fneg(builder.fmul(lr, g))])  # fmt: skip
    builder.store(m, m_pointer, align=align)
    return builder.fadd(p_old, m)


def splat_of(builder, vector, number):
    """A vector with every element ``number`` (of the vector's element type)."""
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), number,
                                 ir.Constant(ir.IntType(32), 0))  # fmt: skip
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vector.count), [0] * vector.count)
    return builder.shuffle_vector(one, one, mask)


def zeroed_slots(builder, vector, n_a, n_b):
    """{(i, j): a stack slot of ``vector`` holding +0} for i < n_a, j < n_b: a tile's
    accumulators, which LLVM promotes to registers."""
    zero = ir.Constant(vector, [ir.Constant(vector.element, 0.0)] * vector.count)
    slots = {}
    for i in range(n_a):
        for j in range(n_b):
            slots[i, j] = cgutils.alloca_once(builder, vector)
            builder.store(zero, slots[i, j])
    return slots


@intrinsic
def _step_tile(typingctx, out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, lr, norm2, v,
               momentum, sc, so, ss, nq, nr, width, shared, opt, defer):  # fmt: skip
    """For q < nq, r < nr (literals): g_qr, the lane vector of ``width`` elements (a literal) of
    sum over t < n of a[ao + q aq + t at] * b[bo + r br + t bt], by fused multiply-adds from +0
    in the order of t (as _fma_tile with fresh 1); then out[o + q oq + r orow] = the step (opt, a
    literal: step_value) of p at the same place with learning rates lr[v:] (m: the momenta,
    p's layout), and norm2[v:] += g_qr ** 2 (a fused multiply-add) in the order of q, then r:
    for q = 0 here; for q > 0 here too if defer (a literal) is 0, else g_qr is stored at
    sc[so + (q - 1) ss + r width] and its square left to the caller (``_square_onto``), who
    adds the rows q > 0 once row 0's other tiles have added theirs. shared (a literal): as
    _fma_tile. out, p, m, b, lr, norm2, sc: flat contiguous arrays of one dtype; momentum: a
    number of it."""
    for literal in (nq, nr, width, shared, opt, defer):
        if not isinstance(literal, types.IntegerLiteral):
            raise errors.RequireLiteralValue(literal)
    n_q, n_r, n_v = nq.literal_value, nr.literal_value, width.literal_value
    is_shared, opt_value = bool(shared.literal_value), opt.literal_value
    deferred = bool(defer.literal_value)
    dtype = out.dtype
    align = dtype.bitwidth // 8
    signature = types.void(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, lr, norm2, v,
                           momentum, sc, so, ss, nq, nr, width, shared, opt, defer)  # fmt: skip

    def codegen(context, builder, sig, args):
        o_, oq_, or_, _, ao_, aq_, at_, _, bo_, br_, bt_, n_, _, _, v_, momentum_ = args[3:19]
        so_, ss_ = args[20], args[21]
        vector, fmuladd, at_offset, data = vectors(context, builder, sig, args, dtype, n_v)
        p_out, p_p, p_m, p_a, p_b = data(0), data(1), data(2), data(6), data(10)
        p_lr, p_norm2, p_sc = data(15), data(16), data(19)

        def plus(base, stride, times):
            return builder.add(base, builder.mul(stride, ir.Constant(base.type, times)))

        sums = zeroed_slots(builder, vector, n_q, n_r)
        with cgutils.for_range(builder, n_) as loop:
            a_t = builder.add(ao_, builder.mul(loop.index, at_))
            b_t = builder.add(bo_, builder.mul(loop.index, bt_))
            xs = []
            for q in range(n_q):
                if is_shared:
                    element = builder.load(builder.gep(p_a, [plus(a_t, aq_, q)]))
                    number = context.cast(builder, element, sig.args[6].dtype, dtype)
                    xs.append(splat_of(builder, vector, number))
                else:
                    xs.append(builder.load(at_offset(p_a, plus(a_t, aq_, q)), align=align))
            for r in range(n_r):
                y = builder.load(at_offset(p_b, plus(b_t, br_, r)), align=align)
                for q in range(n_q):
                    slot = sums[q, r]
                    builder.store(builder.call(fmuladd, [xs[q], y, builder.load(slot)]), slot)
        lr_ = builder.load(at_offset(p_lr, v_), align=align)
        momentum_vector = splat_of(builder, vector, momentum_)
        total = builder.load(at_offset(p_norm2, v_), align=align)
        width_ = ir.Constant(so_.type, n_v)
        for (q, r), slot in sums.items():
            g = builder.load(slot)
            if q == 0 or not deferred:
                total = builder.call(fmuladd, [g, g, total])
            else:
                place = plus(plus(so_, ss_, q - 1), width_, r)
                builder.store(g, at_offset(p_sc, place), align=align)
            offset = plus(plus(o_, oq_, q), or_, r)
            old = builder.load(at_offset(p_p, offset), align=align)
            new = step_value(builder, fmuladd, vector, opt_value, g, old, at_offset(p_m, offset),
                             lr_, momentum_vector, align)  # fmt: skip
            builder.store(new, at_offset(p_out, offset), align=align)
        builder.store(total, at_offset(p_norm2, v_), align=align)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _square_onto(typingctx, norm2, v, sc, count, width):
    """norm2[v:] += sc[t width:]'s vector of ``width`` elements (a literal) squared, for t <
    count in that order, each a fused multiply-add (the deferred squares of _step_tile)."""
    if not isinstance(width, types.IntegerLiteral):
        raise errors.RequireLiteralValue(width)
    n_v = width.literal_value
    dtype = norm2.dtype
    align = dtype.bitwidth // 8
    signature = types.void(norm2, v, sc, count, width)

    def codegen(context, builder, sig, args):
        _, v_, _, count_, _ = args
        vector, fmuladd, at_offset, data = vectors(context, builder, sig, args, dtype, n_v)
        p_norm2, p_sc = data(0), data(2)
        place = at_offset(p_norm2, v_)
        total = cgutils.alloca_once(builder, vector)
        builder.store(builder.load(place, align=align), total)
        with cgutils.for_range(builder, count_) as loop:
            offset = builder.mul(loop.index, ir.Constant(loop.index.type, n_v))
            g = builder.load(at_offset(p_sc, offset), align=align)
            builder.store(builder.call(fmuladd, [g, g, builder.load(total)]), total)
        builder.store(builder.load(total), place, align=align)
        return context.get_dummy_value()

    return signature, codegen


def _step_columns(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr, norm2,
                  momentum, sc, shared, opt):  # fmt: skip
    """Every column of lane vectors up to lane w: TILE_ROWS rows q at a time in tiles of TILE_COLS
    units, then of one, where sc holds TILE_ROWS - 1 rows of nr vectors; the rows left (all
    where sc does not) one at a time in tiles of STEP_COLS units, then of one (jitted code
    only)."""
    raise TypeError("_step_columns is compiled into jitted code only: call step_into")


@overload(_step_columns, jit_options=JIT_OPTIONS)
def _step_columns_of(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr,
                     norm2, momentum, sc, shared, opt):  # fmt: skip
    width = lanes_of(out) * COLUMN_VECTORS

    def columns(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr, norm2,
                momentum, sc, shared, opt):  # fmt: skip
        grouped = sc.size >= (TILE_ROWS - 1) * nr * width  # else one input at a time
        whole = nr == TILE_COLS or nr == 1  # one tile takes a row's every unit
        ss = nr * width  # a deferred row's place in the scratch
        for v in range(0, w, width):
            q = 0
            while q < nq:
                aa = ao + q * aq if shared else ao + q * aq + v
                r = 0
                if grouped and nq - q >= TILE_ROWS:
                    while r < nr:
                        oo, bb = o + q * oq + r * orow + v, bo + r * br + v
                        if nr - r >= TILE_COLS:
                            if whole:
                                _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt,
                                           n, lr, norm2, v, momentum, sc, r * width, ss,
                                           TILE_ROWS, TILE_COLS, width, shared, opt, 0)  # fmt: skip
                            else:
                                _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt,
                                           n, lr, norm2, v, momentum, sc, r * width, ss,
                                           TILE_ROWS, TILE_COLS, width, shared, opt, 1)  # fmt: skip
                            r += TILE_COLS
                        else:
                            if whole:
                                _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt,
                                           n, lr, norm2, v, momentum, sc, r * width, ss,
                                           TILE_ROWS, 1, width, shared, opt, 0)  # fmt: skip
                            else:
                                _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt,
                                           n, lr, norm2, v, momentum, sc, r * width, ss,
                                           TILE_ROWS, 1, width, shared, opt, 1)  # fmt: skip
                            r += 1
                    if not whole:
                        _square_onto(norm2, v, sc, (TILE_ROWS - 1) * nr, width)
                    q += TILE_ROWS
                    continue
                while r < nr:
                    oo, bb = o + q * oq + r * orow + v, bo + r * br + v
                    if nr - r >= STEP_COLS:
                        _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, n, lr,
                                   norm2, v, momentum, sc, 0, 0, 1, STEP_COLS, width, shared, opt,
                                   0)  # fmt: skip
                        r += STEP_COLS
                    else:
                        _step_tile(out, p, m, oo, oq, orow, a, aa, aq, at, b, bb, br, bt, n, lr,
                                   norm2, v, momentum, sc, 0, 0, 1, 1, width, shared, opt,
                                   0)  # fmt: skip
                        r += 1
                q += 1

    return columns


@jit
def step_into(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr, norm2,
              momentum, opt, sc):  # fmt: skip
    """The weight gradients g[q, r] (lanes k < w) of multiply_into, never stored: for q < nq,
    r < nr, in that order, norm2[k] += g ** 2 (by fused multiply-adds) and out[o + q oq + r orow
    + k] = the optimizer's step from p at the same place (opt: STEP_SGD, p - lr[k] g; or
    STEP_MOMENTUM with m, as numba_lanes' _step_lanes does them: the same bits). sc: an empty
    array (tiles of one input), or a scratch of at least (TILE_ROWS - 1) nr vectors of out's
    dtype (tiles of TILE_ROWS inputs, which load b's rows once for all of them)."""
    if opt == STEP_SGD:
        _step_columns(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr,
                      norm2, momentum, sc, 0, STEP_SGD)  # fmt: skip
    else:
        _step_columns(out, p, m, o, oq, orow, a, ao, aq, at, b, bo, br, bt, n, nq, nr, w, lr,
                      norm2, momentum, sc, 0, STEP_MOMENTUM)  # fmt: skip


@jit
def step_into_shared(out, p, m, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, n, nq, nr, w, lr,
                     norm2, momentum, opt, sc):  # fmt: skip
    """step_into with x[xo + q xq + t xt] one number shared by all lanes (the inputs), in out's
    dtype, as multiply_add_shared."""
    if opt == STEP_SGD:
        _step_columns(out, p, m, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, n, nq, nr, w, lr,
                      norm2, momentum, sc, 1, STEP_SGD)  # fmt: skip
    else:
        _step_columns(out, p, m, o, oq, orow, x, xo, xq, xt, b, bo, br, bt, n, nq, nr, w, lr,
                      norm2, momentum, sc, 1, STEP_MOMENTUM)  # fmt: skip

