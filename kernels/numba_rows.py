"""Sums over rows of lane vectors with the sums in registers: the backward pass's bias
gradients and squared gradient norm.

Written as loops over rows with a loop over lanes inside (``for r: for k: norm2[k] += g[r, k]
** 2``), each row pays a loop's overhead and loads and stores its accumulator, so consecutive
rows wait on a store-to-load round trip through memory: on an 8-32-32-1 net (16 samples,
float64, one core), the norm's rows and the bias gradients measured 0.76 us a net-epoch that
way, 0.30 us here (2-16-16-1 on XOR: 0.12 and 0.05). LLVM keeps
such an accumulator in a register only if it may reorder the sum, which would change the
results, so the loops here are LLVM IR with explicit vector types, as in numba_tiles: a few
lane vectors of accumulators stay in registers over all the rows, and each is still summed in
the order of the rows, by the same operations as the plain loops (additions from +0 for the
bias gradients, fused multiply-adds for the squares), so a net's results do not change by a
bit.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic, overload

from .numba_tiles import (
    JIT_OPTIONS,
    STEP_SGD,
    jit,
    lanes_of,
    splat_of,
    step_value,
    vectors,
    zeroed_slots,
)

ROWS = 4  # rows of a bias tile: independent sums that hide the latency of an addition


def _literals(*values):
    for literal in values:
        if not isinstance(literal, types.IntegerLiteral):
            raise errors.RequireLiteralValue(literal)
    return [literal.literal_value for literal in values]


def _plus(builder, base, stride, times):
    return builder.add(base, builder.mul(stride, ir.Constant(base.type, times)))


@intrinsic
def _squares_tile(typingctx, total, to, g, go, gr, n, columns, width):
    """For c < columns (a literal): the lane vector of ``width`` elements (a literal) at
    total[to + c width] += sum over r < n of g[go + r gr + c width] ** 2, by fused multiply-adds
    in the order of r. total, g: flat contiguous arrays of one dtype."""
    n_c, n_v = _literals(columns, width)
    dtype = total.dtype
    align = dtype.bitwidth // 8
    signature = types.void(total, to, g, go, gr, n, columns, width)

    def codegen(context, builder, sig, args):
        _, to_, _, go_, gr_, n_ = args[:6]
        vector, fmuladd, at_offset, data = vectors(context, builder, sig, args, dtype, n_v)
        p_total, p_g = data(0), data(2)
        width_ = ir.Constant(to_.type, n_v)
        sums = []
        for c in range(n_c):
            slot = cgutils.alloca_once(builder, vector)  # promoted to a register by LLVM
            pointer = at_offset(p_total, _plus(builder, to_, width_, c))
            builder.store(builder.load(pointer, align=align), slot)
            sums.append((slot, pointer))
        with cgutils.for_range(builder, n_) as loop:
            row = builder.add(go_, builder.mul(loop.index, gr_))
            for c, (slot, _) in enumerate(sums):
                x = builder.load(at_offset(p_g, _plus(builder, row, width_, c)), align=align)
                builder.store(builder.call(fmuladd, [x, x, builder.load(slot)]), slot)
        for slot, pointer in sums:
            builder.store(builder.load(slot), pointer, align=align)
        return context.get_dummy_value()

    return signature, codegen


def _sums_code(context, builder, sig, args, dtype, n_j, n_c, n_v, positions, step):
    """The code of _sums_tile and _sums_step_tile. positions: the argument positions of out, o,
    oj, d, do, ds, dj, n, total, to; step: None, or (the optimizer, the positions of p, m, lr,
    momentum) for _sums_step_tile."""
    o_, oj_, do_, ds_, dj_, n_, to_ = (args[positions[i]] for i in (1, 2, 4, 5, 6, 7, 9))
    vector, fmuladd, at_offset, data = vectors(context, builder, sig, args, dtype, n_v)
    p_out, p_d, p_total = data(positions[0]), data(positions[3]), data(positions[8])
    align = dtype.bitwidth // 8
    width_ = ir.Constant(o_.type, n_v)
    tile = zeroed_slots(builder, vector, n_j, n_c)
    with cgutils.for_range(builder, n_) as loop:
        sample = builder.add(do_, builder.mul(loop.index, ds_))
        for (j, c), slot in tile.items():
            offset = _plus(builder, _plus(builder, sample, dj_, j), width_, c)
            x = builder.load(at_offset(p_d, offset), align=align)
            builder.store(builder.fadd(builder.load(slot), x), slot)
    for c in range(n_c):
        pointer = at_offset(p_total, _plus(builder, to_, width_, c))
        norm2 = builder.load(pointer, align=align)
        if step is not None:
            opt, (at_p, at_m, at_lr, at_momentum) = step
            lane = _plus(builder, to_, width_, c)
            lr = builder.load(at_offset(data(at_lr), lane), align=align)
            momentum = splat_of(builder, vector, args[at_momentum])
        for j in range(n_j):
            x = builder.load(tile[j, c])
            offset = _plus(builder, _plus(builder, o_, oj_, j), width_, c)
            if step is not None:
                old = builder.load(at_offset(data(at_p), offset), align=align)
                x_out = step_value(builder, fmuladd, vector, opt, x, old,
                                   at_offset(data(at_m), offset), lr, momentum, align)  # fmt: skip
            else:
                x_out = x
            builder.store(x_out, at_offset(p_out, offset), align=align)
            norm2 = builder.call(fmuladd, [x, x, norm2])
        builder.store(norm2, pointer, align=align)


@intrinsic
def _sums_tile(typingctx, out, o, oj, d, do, ds, dj, n, total, to, rows, columns, width):
    """For j < rows, c < columns (literals): the lane vector of ``width`` elements (a literal)
    out[o + j oj + c width] = sum over s < n of d[do + s ds + j dj + c width], added in the order
    of s to +0; then total[to + c width] += out[o + j oj + c width] ** 2 by fused multiply-adds
    in the order of j. out, d, total: flat contiguous arrays of one dtype."""
    n_j, n_c, n_v = _literals(rows, columns, width)
    signature = types.void(out, o, oj, d, do, ds, dj, n, total, to, rows, columns, width)

    def codegen(context, builder, sig, args):
        _sums_code(context, builder, sig, args, out.dtype, n_j, n_c, n_v, range(10), None)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _sums_step_tile(typingctx, out, p, m, o, oj, d, do, ds, dj, n, total, to, lr, momentum, rows,
                    width, opt):  # fmt: skip
    """_sums_tile of one column (to: its first lane) whose sums (g) are not stored: out[o + j
    oj] = the optimizer's step (opt, a literal: numba_tiles.step_value) of p at the same place,
    with learning rates lr[to:] and momenta m (p's layout); total gets the squares of g."""
    n_j, n_v, opt_value = _literals(rows, width, opt)
    signature = types.void(out, p, m, o, oj, d, do, ds, dj, n, total, to, lr, momentum, rows,
                           width, opt)  # fmt: skip

    def codegen(context, builder, sig, args):
        _sums_code(context, builder, sig, args, out.dtype, n_j, 1, n_v,
                   (0, 3, 4, 5, 6, 7, 8, 9, 10, 11), (opt_value, (1, 2, 12, 13)))  # fmt: skip
        return context.get_dummy_value()

    return signature, codegen


def _squares_columns(total, g, go, gr, n, w):
    """_squares_tile over the lanes up to w, in vectors of as many lanes as a register holds
    of total's dtype, two columns at once where there are two (independent sums, so that the
    multiply-adds overlap). Jitted code only."""
    raise TypeError("_squares_columns is compiled into jitted code only: call add_squares")


@overload(_squares_columns, jit_options=JIT_OPTIONS)
def _squares_columns_of(total, g, go, gr, n, w):
    width = lanes_of(total)  # chosen at typing time: only this width's code is compiled

    def squares_columns(total, g, go, gr, n, w):
        c = 0
        while c < w:
            if w - c >= 2 * width:
                _squares_tile(total, c, g, go + c, gr, n, 2, width)
                c += 2 * width
            else:
                _squares_tile(total, c, g, go + c, gr, n, 1, width)
                c += width

    return squares_columns


@jit
def add_squares(total, g, go, gr, n, w):
    """total[k] += sum over r < n of g[go + r gr + k] ** 2 for lanes k < w (a multiple of
    the vector width), each by fused multiply-adds in the order r = 0, 1, ..., n - 1.

    total : flat array of at least w elements; g : flat C-contiguous array of total's dtype
    """
    _squares_columns(total, g, go, gr, n, w)


def _sums_rows(out, o, oj, d, do, ds, dj, n, nj, total, w):
    """For each column of as many lanes as a register holds of out's dtype: rows of sums ROWS
    at a time (independent sums, so that the additions overlap), then one at a time. Jitted
    code only."""
    raise TypeError("_sums_rows is compiled into jitted code only: call sums_and_squares")


@overload(_sums_rows, jit_options=JIT_OPTIONS)
def _sums_rows_of(out, o, oj, d, do, ds, dj, n, nj, total, w):
    width = lanes_of(out)  # chosen at typing time: only this width's code is compiled

    def sums_rows(out, o, oj, d, do, ds, dj, n, nj, total, w):
        for c in range(0, w, width):
            j = 0
            while j < nj:
                oo, dd = o + j * oj + c, do + j * dj + c
                if nj - j >= ROWS:
                    _sums_tile(out, oo, oj, d, dd, ds, dj, n, total, c, ROWS, 1, width)
                    j += ROWS
                else:
                    _sums_tile(out, oo, oj, d, dd, ds, dj, n, total, c, 1, 1, width)
                    j += 1

    return sums_rows


@jit
def sums_and_squares(out, o, oj, d, do, ds, dj, n, nj, total, w):
    """out[o + j oj + k] = sum over s < n of d[do + s ds + j dj + k], added in the order
    s = 0, 1, ..., n - 1 to +0, for j < nj and lanes k < w (a multiple of the vector width);
    then total[k] += out[o + j oj + k] ** 2 by fused multiply-adds in the order of j.

    out, d : flat C-contiguous arrays of one dtype; total : flat, of at least w elements
    """
    _sums_rows(out, o, oj, d, do, ds, dj, n, nj, total, w)


def _sums_step_rows(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, opt):
    """As _sums_rows, stepping (_sums_step_tile). Jitted code only."""
    raise TypeError("_sums_step_rows is compiled into jitted code only: call sums_step")


@overload(_sums_step_rows, jit_options=JIT_OPTIONS)
def _sums_step_rows_of(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, opt):
    width = lanes_of(out)

    def sums_step_rows(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, opt):
        for c in range(0, w, width):
            j = 0
            while j < nj:
                oo, dd = o + j * oj + c, do + j * dj + c
                if nj - j >= ROWS:
                    _sums_step_tile(out, p, m, oo, oj, d, dd, ds, dj, n, total, c, lr, momentum,
                                    ROWS, width, opt)  # fmt: skip
                    j += ROWS
                else:
                    _sums_step_tile(out, p, m, oo, oj, d, dd, ds, dj, n, total, c, lr, momentum,
                                    1, width, opt)  # fmt: skip
                    j += 1

    return sums_step_rows


@jit
def sums_step(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, opt):
    """sums_and_squares whose sums g (the bias gradients) are not stored: out[o + j oj + k] = the
    optimizer's step from p at the same place, with learning rates lr[k] (opt: numba_tiles'
    STEP_SGD or STEP_MOMENTUM, with the momenta m in p's layout); total[k] gets g ** 2 as there."""
    if opt == STEP_SGD:
        _sums_step_rows(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, 0)
    else:
        _sums_step_rows(out, p, m, o, oj, d, do, ds, dj, n, nj, total, w, lr, momentum, 1)
