"""One fused pass per epoch for small nets: forward, checks and backward in registers.

The lane kernel (``numba_lanes``) runs an epoch as a sequence of loops over lanes, one per
unit, sample and step of the chain rule, each loading its operands from and storing its
results to lane rows in cache. For a small net such as 2-4-1 those loads and stores, and the
overhead of dozens of short loops, cost more than the arithmetic. Here a whole epoch of one
vector of nets is one straight run of code: the net's shape is known when the kernel is
compiled (a literal key, ``fused_key``), every unit and sample is unrolled, and the only memory
traffic is the parameters coming in and the gradients, output logits and per-net checks going
out.

The arithmetic is the lane kernel's, operation for operation and in the same order (every fused
multiply-add is written out, no other contraction or reassociation is allowed), so a net's
results do not change by a bit when its epochs run here instead (``tests/kernels``).

Written as LLVM IR with explicit vector types for the reason given in ``numba_tiles``: numba's
loop vectoriser gives up on a loop body that reads and writes this many lane rows.
"""

from __future__ import annotations

import contextlib
import copy
import functools

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic

from .numba_tiles import V32, V64, VECTOR_BYTES, unit_rows
from .spec import HIDDEN_ACTIVATIONS, LOSSES

# vscalefpd / vscalefps scale by a power of two in one instruction (AVX-512; AVX-512VL for
# 256-bit vectors)
_FEATURES = llvm.get_host_cpu_features()
SCALEF = bool(_FEATURES.get("avx512f", False) and _FEATURES.get("avx512vl", False))
# Without AVX-512 (16 vector registers), LLVM's machine scheduler, which orders a pass's
# instructions so that fewer values are live at once, lengthened the chains the core waits on:
# with it off, 2-4-1 trained at 1.3x the rate (sigmoid), 1.15x (Adam), 1.05x (tanh) and within
# the noise for relu and float32 (an AVX2 core, one thread, four alternating pairs of
# processes). Measured on no other kind of core (AVX-512, AVX without AVX2, other than x86):
# their passes compile as before.
UNSCHEDULED = bool(_FEATURES.get("avx2", False) and not _FEATURES.get("avx512f", False))

SIGMOID, TANH, RELU, LEAKY_RELU = map(
    HIDDEN_ACTIVATIONS.index, ("sigmoid", "tanh", "relu", "leaky_relu")
)
BCE, MSE = map(LOSSES.index, ("bce", "mse"))

# A net is fused if its unrolled epoch stays a modest piece of code: the multiply-adds of its
# products, times the samples, at most this many (2-4-1 on XOR: 48). Wider nets gain nothing
# (2-16-16-1, 1,216: 0.99x the lane loops, whose register tiles do its products well) and take
# long to compile (7 s).
MAX_FUSED_PRODUCTS = 1024
# Vectors of nets the fused pass interleaves (see _Lanes): two give the core independent work
# while one vector waits on its chains of exponentials; more spill registers. On an AVX2 core
# without AVX-512 (16 registers of 4 float64 lanes) four interleaved vectors of float64 nets
# trained 2-4-1 in 1.05x (sigmoid), 1.07x (tanh, Adam) and 1.25x (relu) the time of two (one
# thread, medians of 3 to 4 alternating processes); on an AVX-512 core (32 registers of 8)
# four against two measured 0.97x the time (sigmoid), 1.12x (tanh), 1.05x (relu), 1.01x (Adam)
# (two threads, medians of 9 repeats in one process, tests/benchmarks/pass_ab.py). Float32
# nets on an AVX-512 core, 16 lanes a vector, interleaved one vector until this version (the
# step was 16 lanes for every dtype); two trained 2-4-1 1.14x and 1.19x as fast (15 and 9
# repeats). Each lane's arithmetic is the same whatever the interleaving: the same bits.
INTERLEAVE = 2


def pass_lanes(itemsize: int) -> int:
    """Lanes of one step of the fused pass on floats of ``itemsize`` bytes: INTERLEAVE vectors.
    A step may run past w, the lanes in use, into the chunk's empty lanes (as the lane loops run
    past the active nets to w), so a chunk's lanes must be a whole number of steps: where they
    are not, numba_backend runs the lane loops."""
    return INTERLEAVE * (V32 if itemsize == 4 else V64)


# Vectors whose activations are emitted side by side (see _Lanes.activate_all): in the fused
# pass a layer's units, INTERLEAVE vectors of nets each, this many vectors at a time; in the
# lane loops' activation (activate_vectors) this many vectors a step. An exponential
# is a chain of about 25 dependent operations, and emitted unit after unit (two vectors of
# nets) the core's window of waiting instructions held too few independent chains to keep its
# multiply-add units busy. 2-4-1 on an AVX2 core, medians of the ratios of 9 to 11 repeats
# interleaved in one process, against one unit at a time: sigmoid 1.08-1.14x, tanh 1.06-1.13x,
# Adam 1.05-1.19x, float32 1.01-1.11x, relu 1.00-1.11x (one thread; two: 1.05-1.11x);
# 4 vectors about as fast as 6, 8 0.94x (registers spilled).
ACTIVATION_VECTORS = 6

# _exp64's constants (numba_lanes), repeated here as the IR's literals
INV_LN2 = 1.4426950408889634
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
SHIFTER = 6755399441055744.0
SHIFTER_BITS = 0x4338000000000000
SHIFTER32 = 12582912.0
SHIFTER32_BITS = 0x4B400000
EXP64_POLY = [1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
              1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
              1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0]  # fmt: skip
EXP32_POLY = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
              1.6666665459e-1, 5.0000001201e-1]  # fmt: skip


def fused_key(layers, n_samples: int, act: int, loss_code: int, sgd: bool) -> str:
    """The literal that selects the fused pass for this shape, or "" where the lane loops run
    (nets too large to unroll). With sgd, the pass also makes the previous epoch's step."""
    products = sum(a * b for a, b in zip(layers[:-1], layers[1:], strict=True)) * n_samples
    if products > MAX_FUSED_PRODUCTS:
        return ""
    return f"{'-'.join(map(str, layers))}/{n_samples}/{act}/{loss_code}/{int(sgd)}"


def steps_in_pass(key: str) -> bool:
    """Whether the pass of this key makes the SGD step (so the training kernel does not)."""
    return key.endswith("/1")


def _offsets(layers):
    """Start of each layer's weights and of its biases in theta (NetSpec.offsets)."""
    offsets, start = [], 0
    for fan_in, fan_out in zip(layers[:-1], layers[1:], strict=True):
        offsets.append((start, start + fan_in * fan_out))
        start += fan_in * fan_out + fan_out
    return offsets


def _decode(key: str):
    shape, samples, act, loss, sgd = key.split("/")
    layers = tuple(int(n) for n in shape.split("-"))
    return layers, int(samples), int(act), int(loss), sgd == "1"


class _Lanes:
    """Vector arithmetic on lane vectors, every operation as written (no fast-math flags).

    A value is a list of ``streams`` lane vectors (that many vectors of nets at once: their
    operations interleave, so the core has independent work while one chain waits on a
    latency); a plain ir.Value (a constant, a splat) stands for every stream."""

    def __init__(self, builder, dtype: ir.Type, width: int, streams: int):
        self.b = builder
        self.n = width
        self.u = streams
        self.vec = ir.VectorType(dtype, width)
        self.bits = 32 if isinstance(dtype, ir.FloatType) else 64
        self.ivec = ir.VectorType(ir.IntType(self.bits), width)
        self.f64vec = ir.VectorType(ir.DoubleType(), width)
        self._fns = {}

    def _intrinsic(self, name, vec, n_args):
        key = name, str(vec)
        if key not in self._fns:
            bits = 64 if vec.element == ir.DoubleType() else 32
            self._fns[key] = cgutils.get_or_insert_function(
                self.b.module, ir.FunctionType(vec, [vec] * n_args),
                f"llvm.{name}.v{self.n}f{bits}",
            )  # fmt: skip
        return self._fns[key]

    def map(self, fn, *args):
        """fn applied stream by stream; plain values are shared by every stream."""
        columns = [a if isinstance(a, list) else [a] * self.u for a in args]
        return [fn(*xs) for xs in zip(*columns, strict=True)]

    def call(self, name, *args):
        def one(*xs):
            return self.b.call(self._intrinsic(name, xs[0].type, len(xs)), list(xs))

        return self.map(one, *args)

    def const(self, value, vec=None):
        vec = vec or self.vec
        return ir.Constant(vec, [ir.Constant(vec.element, value)] * self.n)

    def splat(self, scalar, vec=None):
        vec = vec or self.vec
        one = self.b.insert_element(ir.Constant(vec, ir.Undefined), scalar,
                                    ir.Constant(ir.IntType(32), 0))  # fmt: skip
        mask = ir.Constant(ir.VectorType(ir.IntType(32), self.n), [0] * self.n)
        return self.b.shuffle_vector(one, one, mask)

    def fma(self, a, b, c):
        return self.call("fma", a, b, c)

    def add(self, a, b):
        return self.map(self.b.fadd, a, b)

    def sub(self, a, b):
        return self.map(self.b.fsub, a, b)

    def mul(self, a, b):
        return self.map(self.b.fmul, a, b)

    def div(self, a, b):
        return self.map(self.b.fdiv, a, b)

    def neg(self, a):
        return self.map(self.b.fneg, a)

    def fabs(self, a):
        return self.call("fabs", a)

    def select(self, condition, a, b):
        return self.map(self.b.select, condition, a, b)

    def cmp(self, op, a, b):
        return self.map(lambda x, y: self.b.fcmp_ordered(op, x, y), a, b)

    def either(self, a, b):
        return self.map(self.b.or_, a, b)

    def is_nan(self, a):
        return self.map(lambda x: self.b.fcmp_unordered("uno", x, x), a)

    def maximum(self, a, b):
        """numba's max(a, b): b if b > a else a."""
        return self.select(self.cmp(">", b, a), b, a)

    def minimum(self, a, b):
        """numba's min(a, b): b if b < a else a."""
        return self.select(self.cmp("<", b, a), b, a)

    def wide(self, a):
        """Lane vectors in float64 (numba's promotion where float32 meets float64)."""
        if self.bits == 64:
            return a
        return self.map(lambda x: self.b.fpext(x, self.f64vec), a)

    # -- the lane kernel's elementary functions (numba_lanes._exp64, _exp32, _expm1_*) ------

    def _reduce(self, v):
        """Clamp; n = the nearest integer of v / ln 2, as a float (numba_lanes converts it to
        an integer and back, which changes nothing in the clamped range); r = v - n ln 2, in
        two parts."""
        if self.bits == 64:
            low, high, hi, lo = -708.0, 709.0, LN2_HI, LN2_LO
        else:
            low, high, hi, lo = -87.0, 88.0, 0.693359375, -2.12194440e-4
        v = self.minimum(self.maximum(v, self.const(low)), self.const(high))
        n = self.call("floor", self.fma(v, self.const(INV_LN2), self.const(0.5)))
        r = self.fma(self.neg(n), self.const(hi), v)
        return self.fma(self.neg(n), self.const(lo), r), n

    def _times_power(self, p, n):
        """p 2^n for an integral n in the clamped range: exact either way, so one AVX-512
        vscalef where the core has it, else 2^n assembled from its bits as numba_lanes does."""
        b = self.b
        if SCALEF and self.n * (self.bits // 8) in (32, 64):
            kind = "pd" if self.bits == 64 else "ps"
            size = self.n * self.bits
            mask_type = ir.IntType(max(8, self.n))
            operands = [self.vec, self.vec, self.vec, mask_type]
            if size == 512:
                operands.append(ir.IntType(32))
            name = f"llvm.x86.avx512.mask.scalef.{kind}.{size}"
            fn = cgutils.get_or_insert_function(b.module, ir.FunctionType(self.vec, operands),
                                                name)  # fmt: skip

            def one(x, y):
                extra = [ir.Constant(ir.IntType(32), 4)] if size == 512 else []  # current rounding
                return b.call(fn, [x, y, ir.Constant(self.vec, ir.Undefined),
                                   ir.Constant(mask_type, -1)] + extra)  # fmt: skip

            return self.map(one, p, n)
        if self.bits == 64:
            shifter, bias, shift = SHIFTER, 1023 - SHIFTER_BITS, 52
        else:
            shifter, bias, shift = SHIFTER32, 127 - SHIFTER32_BITS, 23
        bits = self.map(lambda x: b.bitcast(x, self.ivec), self.add(n, self.const(shifter)))
        bits = self.map(lambda x: b.add(x, ir.Constant(self.ivec, [bias] * self.n)), bits)
        bits = self.map(lambda x: b.shl(x, ir.Constant(self.ivec, [shift] * self.n)), bits)
        return self.mul(p, self.map(lambda x: b.bitcast(x, self.vec), bits))

    def _poly(self, r):
        coefficients = EXP64_POLY if self.bits == 64 else EXP32_POLY
        p = self.const(coefficients[0])
        for c in coefficients[1:]:
            p = self.fma(p, r, self.const(c))
        return p

    def exp(self, v):
        r, n = self._reduce(v)
        p = self._poly(r)
        if self.bits == 64:
            p = self.fma(p, r, self.const(1.0))
        else:
            p = self.add(self.fma(self.mul(p, r), r, r), self.const(1.0))
        return self._times_power(p, n)

    def expm1(self, v):
        r, n = self._reduce(v)
        p = self._poly(r)
        q = self.mul(p, r) if self.bits == 64 else self.fma(self.mul(p, r), r, r)
        scale = self._times_power(self.const(1.0), n)
        return self.fma(q, scale, self.sub(scale, self.const(1.0)))

    def activate_all(self, zs, code, one, slope):
        """activate of every value of zs, ACTIVATION_VECTORS vectors at a time: a group of
        values is activated as one value of all their streams, so each operation is emitted for
        all of them before the next (independent chains for the core to overlap). Each value's
        operations are activate's: the same bits."""
        per_group = max(1, ACTIVATION_VECTORS // self.u)
        out = []
        for start in range(0, len(zs), per_group):
            group = zs[start : start + per_group]
            wide = copy.copy(self)
            wide.u = self.u * len(group)
            streams = wide.activate([v for z in group for v in z], code, one, slope)
            out.extend(streams[t * self.u : (t + 1) * self.u] for t in range(len(group)))
        return out

    def activate(self, z, code, one, slope):
        if code == SIGMOID:
            return self.div(one, self.add(one, self.exp(self.neg(z))))
        if code == TANH:
            two = self.add(one, one)
            t = self.expm1(self.mul(self.neg(two), self.fabs(z)))
            return self.call("copysign", self.div(self.neg(t), self.add(t, two)), z)
        zero = self.sub(one, one)
        low = zero if code == RELU else self.mul(slope, z)
        return self.select(self.cmp("<=", z, zero), low, z)


class _Lazy:
    """Values emitted where first used: ``self[i]`` is ``make(i)``, made once."""

    def __init__(self, make):
        self.make, self.made = make, {}

    def __getitem__(self, i):
        if i not in self.made:
            self.made[i] = self.make(i)
        return self.made[i]


def _epoch(L, p, xs, ys, signs, margin_v, one, slope, scale, layers, n_samples, act, loss_code,
           gradient=None):  # fmt: skip
    """The arithmetic of one epoch of a vector of nets (values are _Lanes values): from the
    parameters p (by row of theta) to the output logits, the checks (largest error, samples
    right, the loss's lower part, squared error), the gradient and its squared norm.
    numba_lanes' _forward_lanes, _checks_lanes, _squared_error_lanes and _backward_lanes, in
    their order of operations. The gradient is returned by row, as (row, value) pairs, or, where
    ``gradient`` is given, told to it row by row as it is made, and none returned.

    The order in which the operations are emitted is about the order the core gets them (the
    pass compiles without the machine scheduler, _scheduling), and a value made long before its
    use is held in a register or spilled meanwhile; so each value is made close to its use: p
    may be a _Lazy that loads a parameter where it is first used, a layer's pre-activations are
    made group by group (activate_all's groups) just before their activations, and each
    gradient row is told to ``gradient`` (stored) as soon as it is made. Against all parameters
    loaded first, all of a layer's pre-activations before its activations and the gradient
    stored after the whole backward pass, 2-4-1 trained 1.03-1.10x faster (sigmoid), 1.04x
    (tanh), 1.11x (relu, Adam), 1.10x (float32): an AVX2 core, two threads, medians of the
    ratios of 15 repeats of both passes interleaved in one process (tests.benchmarks.pass_ab);
    the same bits. The checks come after the backward pass (below): relu 1.08-1.12x, tanh and
    float32 1.04-1.05x, sigmoid and Adam within the noise."""
    n_layers = len(layers) - 1
    last = n_layers - 1
    offsets = _offsets(layers)
    # forward (_forward_lanes): Zs[layer][s][j], As[layer][s][j]
    Zs, As = [], []
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer]
        code = act if layer < last else SIGMOID
        below = xs if layer == 0 else As[-1]
        zs = [[None] * fan_out for _ in range(n_samples)]
        activations = [[None] * fan_out for _ in range(n_samples)]
        units = [(s, j) for s in range(n_samples) for j in range(fan_out)]
        per_group = max(1, ACTIVATION_VECTORS // L.u)  # activate_all's groups
        for start in range(0, len(units), per_group):
            group = units[start : start + per_group]
            for s, j in group:
                z = p[b0 + j]
                for i in range(fan_in):
                    z = L.fma(below[s][i], p[w0 + i * fan_out + j], z)
                zs[s][j] = z
            values = L.activate_all([zs[s][j] for s, j in group], code, one, slope)
            for (s, j), a in zip(group, values, strict=True):
                activations[s][j] = a
        Zs.append(zs)
        As.append(activations)
    # backward (_backward_lanes)
    D = []
    for s in range(n_samples):
        D.append([])
        for j in range(layers[-1]):
            a = As[last][s][j]
            diff = L.sub(a, ys[s][j])
            if loss_code == BCE:
                D[s].append(L.mul(scale, diff))
            else:
                D[s].append(L.mul(L.mul(L.mul(scale, diff), L.sub(one, a)), a))
    zero = L.const(0.0)
    norm = zero
    grads = []
    emit = grads.append if gradient is None else (lambda pair: gradient(*pair))
    for layer in range(last, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer]
        below = xs if layer == 0 else As[layer - 1]
        for j in range(fan_out):
            g = zero
            for s in range(n_samples):
                g = L.add(g, D[s][j])
            emit((b0 + j, g))
            norm = L.fma(g, g, norm)
        for i in range(fan_in):
            for j in range(fan_out):
                g = zero
                for s in range(n_samples):
                    g = L.fma(below[s][i], D[s][j], g)
                emit((w0 + i * fan_out + j, g))
                norm = L.fma(g, g, norm)
        if layer == 0:
            break
        D_below = []
        for s in range(n_samples):
            D_below.append([])
            for i in range(fan_in):
                d = zero
                for j in range(fan_out):
                    d = L.fma(D[s][j], p[w0 + i * fan_out + j], d)
                a = As[layer - 1][s][i]
                if act == SIGMOID:
                    d = L.mul(L.mul(d, a), L.sub(one, a))
                elif act == TANH:
                    d = L.mul(d, L.fma(L.neg(a), a, one))
                else:
                    positive = L.cmp(">", Zs[layer - 1][s][i], L.sub(one, one))
                    off = L.sub(one, one) if act == RELU else slope
                    d = L.mul(d, L.select(positive, one, off))
                D_below[s].append(d)
        D = D_below
    # checks (_checks_lanes, _squared_error_lanes): after the backward pass, which the core
    # then starts as soon as the output layer's activations are there. They are float64 values,
    # as the lane loops' are; with float32 nets the largest error and the count of right
    # samples are kept in float32 and widened once at the end, the same as the lane loops'
    # float64 comparisons of widened float32 values (the margin: _margin32), while the sums of
    # the loss bound and the squared error stay in float64, as theirs.
    zero64, zero = L.const(0.0, L.f64vec), L.const(0.0)
    max_err, n_correct, low, squared = zero, zero, zero64, zero64
    for s in range(n_samples):
        for j in range(layers[-1]):
            z, a, y = Zs[last][s][j], As[last][s][j], ys[s][j]
            diff = L.sub(a, y)
            err = L.fabs(diff)
            max_err = L.select(L.either(L.cmp(">", err, max_err), L.is_nan(err)), err,
                               max_err)  # fmt: skip
            n_correct = L.add(n_correct, L.select(L.cmp(">", L.mul(signs[s][j], z), margin_v),
                                                  L.const(1.0), zero))  # fmt: skip
            if loss_code == BCE and L.bits == 64:
                low = L.add(L.fma(L.neg(y), z, low), L.maximum(z, zero64))
            elif loss_code == BCE:  # max(z, 0) widened is max(wide(z), 0.0), exactly
                low = L.add(low, L.sub(L.wide(L.maximum(z, zero)), L.wide(L.mul(y, z))))
            else:
                wide = L.wide(diff)
                low = L.add(low, L.mul(L.mul(L.const(0.5, L.f64vec), wide), wide))
            if L.bits == 64:
                squared = L.fma(diff, diff, squared)
            else:
                squared = L.add(squared, L.wide(L.mul(diff, diff)))
    return Zs[last], (L.wide(max_err), L.wide(n_correct), low, squared), grads, norm


def _needs(L, limit, low, norm, max_err, n_correct, squared, loss0, reached, met, track,
           early):  # fmt: skip
    """Per lane (i1 vectors): whether its decisions need looking at, as _attention_lanes
    decides it; limit: the run-time limits (float64 scalars, by MARGIN ... OUTS)."""
    b = L.b
    high = L.mul(L.add(low, L.splat(limit[OUTS_LOG2], L.f64vec)),
                 L.splat(limit[LOSS_SCALE], L.f64vec))  # fmt: skip
    threshold = L.mul(loss0, L.splat(limit[DIVERGENCE], L.f64vec))
    threshold = L.mul(threshold, L.splat(limit[BOUND], L.f64vec))
    near = L.map(lambda x, y: b.fcmp_unordered(">=", x, y), high, threshold)  # or NaN
    inf = ir.Constant(L.vec, [float("inf")] * L.n)
    not_finite = L.map(lambda x: b.fcmp_unordered(">=", x, inf), norm)
    meets = L.cmp("<", max_err, L.splat(limit[MAX_ERROR], L.f64vec))
    squared_ok = L.cmp("<", squared, L.splat(limit[SQUARED], L.f64vec))
    meets = L.map(lambda m, q: b.and_(m, b.or_(q, b.not_(track))), meets, squared_ok)
    full = L.cmp("==", n_correct, L.splat(limit[OUTS], L.f64vec))
    news = L.map(lambda f, r, m, mt: b.or_(b.and_(f, b.not_(r)),
                                           b.and_(m, b.or_(early, b.not_(mt)))),
                 full, reached, meets, met)  # fmt: skip
    return L.map(lambda x, y, z: b.or_(b.or_(x, y), z), near, not_finite, news)


def pass_counts(layers, n_samples: int, act: int, loss_code: int, sgd: bool,
                itemsize: int = 8) -> tuple[int, int, int]:
    """(operations, divisions, nets) of the fused pass for one vector of nets: its vector
    instructions, counted in the code it emits (all but loads, stores and reinterpretations:
    bitcasts and splats), the SGD step included; divisions apart, for they go to the divider.
    Each instruction is one operation for each of the vector's nets. For the arithmetic
    ceiling (tests/benchmarks/ceiling.py)."""
    L = _scratch(itemsize)
    width, builder = L.n, L.b
    vector, wide = ir.Constant(L.vec, ir.Undefined), ir.Constant(L.f64vec, ir.Undefined)
    n_params = _offsets(layers)[-1][1] + layers[-1]
    xs = [[vector] * layers[0] for _ in range(n_samples)]
    ys = [[vector] * layers[-1] for _ in range(n_samples)]
    signs = [[vector] * layers[-1] for _ in range(n_samples)]
    _, (max_err, n_correct, low, squared), _, norm = _epoch(
        L, [vector] * n_params, xs, ys, signs, vector, vector, vector, vector, layers, n_samples,
        act, loss_code)  # fmt: skip
    mask = ir.Constant(ir.VectorType(ir.IntType(1), width), ir.Undefined)
    limits = [ir.Constant(ir.DoubleType(), 1.0)] * 8
    _needs(L, limits, low, norm, max_err, n_correct, squared, wide, [mask], [mask], mask, mask)
    operations, divisions = _tally(builder)
    if sgd:
        operations += n_params + 1  # p = fma(-lr, g, p), and -lr
    return operations, divisions, width


def activation_counts(act: int, itemsize: int = 8) -> tuple[int, int]:
    """(operations, divisions) of one activation of a vector of nets, as pass_counts counts."""
    L = _scratch(itemsize)
    vector = ir.Constant(L.vec, ir.Undefined)
    L.activate([vector], act, vector, vector)
    return _tally(L.b)


def _scratch(itemsize):
    """_Lanes emitting into a throwaway function, one vector of nets, to count operations."""
    module = ir.Module()
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "count")
    builder = ir.IRBuilder(function.append_basic_block())
    return _Lanes(builder, ir.FloatType() if itemsize == 4 else ir.DoubleType(),
                  V32 if itemsize == 4 else V64, 1)  # fmt: skip


def _tally(builder):
    """(operations, divisions) emitted so far, in the core's vector registers: an instruction
    on a value wider than one (float32 nets' checks in float64 on a core without AVX-512) is
    one operation per register it spans; loads, stores and reinterpretations are free."""
    register_bits = VECTOR_BYTES * 8
    spans = {}  # registers per value; an i1 mask spans what its comparison's operands span

    def span(value):
        if id(value) in spans:
            return spans[id(value)]
        kind = value.type
        if not isinstance(kind, ir.VectorType):
            return 1
        element = kind.element
        bits = element.width if isinstance(element, ir.IntType) else (
            32 if isinstance(element, ir.FloatType) else 64)
        return max(1, -(-kind.count * bits // register_bits))

    operations = divisions = 0
    for instruction in builder.block.instructions:
        name = instruction.opname
        if name in ("fcmp", "icmp"):
            registers = span(instruction.operands[0])
        else:
            registers = max([span(instruction)] + [span(o) for o in instruction.operands])
        spans[id(instruction)] = registers
        if name == "fdiv":
            divisions += registers
        elif name not in {"bitcast", "insertelement", "shufflevector"}:
            operations += registers
    return operations, divisions


# the float64 limits the pass reads at run time (``limits`` argument), in this order
MARGIN, LOSS_SCALE, DIVERGENCE, MAX_ERROR, SQUARED, OUTS_LOG2, BOUND, OUTS = range(8)
# margin, loss scale, divergence factor, max-error and squared-error limits, n_out log 2,
# 1 - 2 BOUND_MARGIN and n_out, where n_out is the number of targets (samples x outputs)


def _margin32(builder, margin):
    """The largest float32 at or below the float64 ``margin`` (a scalar value): for a float32
    x, x > it exactly when x > margin, as the lane loops compare (x widened), NaN aside."""
    f32, i32 = ir.FloatType(), ir.IntType(32)
    near = builder.fptrunc(margin, f32)  # to nearest, which may lie above
    bits = builder.bitcast(near, i32)
    positive = builder.fcmp_ordered(">", near, ir.Constant(f32, 0.0))
    below = builder.select(positive, builder.sub(bits, ir.Constant(i32, 1)), builder.select(
        builder.icmp_unsigned("==", bits, ir.Constant(i32, 0)), ir.Constant(i32, 0x80000001),
        builder.add(bits, ir.Constant(i32, 1))))  # the next float32 toward -inf  # fmt: skip
    above = builder.fcmp_ordered(">", builder.fpext(near, margin.type), margin)
    return builder.select(above, builder.bitcast(below, f32), near)


@intrinsic
def fused_pass(typingctx, key, P, G, lr, X, Y, Z, K, norm2, max_error, correct, lower, squared,
               loss0, reached, met, attention, limits, w, active, track_squared,
               early_stop):  # fmt: skip
    """For lanes k < w of a chunk (P: n_params x chunk), in steps of pass_lanes (a step past w
    computes empty lanes, whose values nothing reads): one epoch of the net shape in ``key`` (a
    literal from ``fused_key``), exactly as numba_lanes computes it:

    - if the key says so, the previous epoch's SGD step first (P -= lr G, as _step_lanes;
      G starts at zero, so the first epoch's step changes nothing);
    - the forward pass, the checks and the backward pass (_forward_lanes, _checks_lanes,
      _squared_error_lanes, _backward_lanes): writes G, norm2, the output layer's logits
      Z[last, s, j] (for the exact loss), max_error, correct, lower and, if track_squared,
      squared;
    - whether each lane's decisions need looking at (_attention_lanes): writes attention.

    K: one, leaky slope, loss scale (P's dtype); limits: float64, indexed by MARGIN ... BOUND.
    Returns 1 if any lane below ``active`` needs attention, else 0; -1 for the key "" (nothing
    done: the lane loops run instead)."""
    arguments = (key, P, G, lr, X, Y, Z, K, norm2, max_error, correct, lower, squared, loss0,
                 reached, met, attention, limits, w, active, track_squared, early_stop)  # fmt: skip
    if not isinstance(key, types.StringLiteral):
        raise errors.RequireLiteralValue(key)
    if key.literal_value == "":

        def nothing(context, builder, sig, args):
            return ir.Constant(ir.IntType(64), -1)

        return types.int64(*arguments), nothing
    if not (P.dtype == G.dtype == lr.dtype == X.dtype == Y.dtype == Z.dtype == K.dtype
            == norm2.dtype):  # fmt: skip
        raise errors.TypingError("fused_pass: P, G, lr, X, Y, Z, K and norm2 share a dtype")
    layers, n_samples, act, loss_code, sgd = _decode(key.literal_value)
    dtype = P.dtype
    width = V32 if dtype == types.float32 else V64
    streams = INTERLEAVE
    signature = types.int64(*arguments)

    def codegen(context, builder, sig, args):
        (_, P_, G_, lr_, X_, Y_, Z_, K_, norm2_, max_error_, correct_, lower_, squared_, loss0_,
         reached_, met_, attention_, limits_, w_, active_, track_, early_) = args  # fmt: skip
        L = _Lanes(builder, context.get_value_type(dtype), width, streams)
        align = dtype.bitwidth // 8
        intp = context.get_value_type(types.intp)

        def array(position):
            return context.make_array(sig.args[position])(context, builder, args[position])

        Pa, Ga, lra, Xa, Ya, Za, Ka = (array(i) for i in range(1, 8))
        norm2_a, max_error_a, correct_a, lower_a, squared_a, loss0_a = (array(i)
                                                                        for i in range(8, 14))
        reached_a, met_a, attention_a, limits_a = (array(i) for i in range(14, 18))
        chunk = builder.extract_value(Pa.shape, 1)

        def scalar(arr, position, index):
            ptr = cgutils.get_item_pointer2(context, builder, arr.data,
                                            cgutils.unpack_tuple(builder, arr.shape),
                                            cgutils.unpack_tuple(builder, arr.strides),
                                            sig.args[position].layout,
                                            [ir.Constant(intp, i) for i in index])  # fmt: skip
            return builder.load(ptr)

        def lanes_at(base, element, k, vec):
            """Pointers to the streams' lane vectors from element + k of a flat array."""
            return [builder.bitcast(builder.gep(base, [builder.add(element, builder.add(
                k, ir.Constant(intp, t * width)))]), vec.as_pointer())
                for t in range(streams)]  # fmt: skip

        def row(arr, r, k):
            return lanes_at(arr.data, builder.mul(ir.Constant(intp, r), chunk), k, L.vec)

        def lanes(arr, k, vec):
            return lanes_at(arr.data, ir.Constant(intp, 0), k, vec)

        def load(pointers, vec_align):
            return [builder.load(ptr, align=vec_align) for ptr in pointers]

        def store(pointers, values, vec_align):
            for ptr, value in zip(pointers, values, strict=True):
                builder.store(value, ptr, align=vec_align)

        limit = [scalar(limits_a, 17, (i,)) for i in range(8)]
        bool_vec = ir.VectorType(ir.IntType(8), width)
        mask_vec = ir.VectorType(ir.IntType(1), width)
        any_slot = cgutils.alloca_once_value(builder, ir.Constant(mask_vec, [0] * width))
        lane_offsets = ir.Constant(ir.VectorType(intp, width), list(range(width)))
        one, slope, scale = (L.splat(scalar(Ka, 7, (i,))) for i in range(3))
        xs = [[L.splat(scalar(Xa, 4, (s, i))) for i in range(layers[0])]
              for s in range(n_samples)]  # fmt: skip
        ys = [[scalar(Ya, 5, (s, j)) for j in range(layers[-1])] for s in range(n_samples)]
        margin = limit[MARGIN] if L.bits == 64 else _margin32(builder, limit[MARGIN])
        margin_v = L.splat(margin)
        signs = [[L.splat(builder.select(  # sign * z > margin: on the right side of 0.5
            builder.fcmp_ordered(">=", context.cast(builder, y, dtype, types.float64),
                                 ir.Constant(ir.DoubleType(), 0.5)),
            ir.Constant(L.vec.element, 1.0), ir.Constant(L.vec.element, -1.0)))
            for y in row_] for row_ in ys]  # fmt: skip
        ys = [[L.splat(y) for y in row_] for row_ in ys]

        n_params = _offsets(layers)[-1][1] + layers[-1]
        last = len(layers) - 2
        step = ir.Constant(intp, width * streams)
        with cgutils.for_range_slice(builder, ir.Constant(intp, 0), w_, step, intp) as (k, _):
            rate = []

            def parameter(r, k=k, rate=rate):
                """Row r of P, loaded where first used; with sgd the previous epoch's step
                made then and stored (p -= lr g, _step_lanes; G still holds that epoch's)."""
                value = load(row(Pa, r, k), align)
                if sgd:
                    if not rate:
                        rate.append(L.neg(load(lanes(lra, k, L.vec), align)))
                    value = L.fma(rate[0], load(row(Ga, r, k), align), value)
                    store(row(Pa, r, k), value, align)
                return value

            p = _Lazy(parameter)

            def gradient(r, g, k=k, p=p):
                assert r in p.made  # the step has read the previous epoch's row
                store(row(Ga, r, k), g, align)

            logits, checks, _, norm = _epoch(L, p, xs, ys, signs, margin_v, one, slope, scale,
                                             layers, n_samples, act, loss_code,
                                             gradient)  # fmt: skip
            assert len(p.made) == n_params  # every parameter is used, so every step made
            max_err, n_correct, low, squared = checks
            # the output layer's logits, for the exact loss of a lane that needs it
            for s in range(n_samples):
                for j in range(layers[-1]):
                    element = builder.add(
                        builder.mul(ir.Constant(intp, last * n_samples + s), builder.mul(
                            builder.extract_value(Za.shape, 2), chunk)),
                        builder.mul(ir.Constant(intp, j), chunk))  # fmt: skip
                    store(lanes_at(Za.data, element, k, L.vec), logits[s][j], align)
            for arr, value in ((max_error_a, max_err), (correct_a, n_correct), (lower_a, low)):
                store(lanes(arr, k, L.f64vec), value, 8)
            with builder.if_then(track_):
                store(lanes(squared_a, k, L.f64vec), squared, 8)
            store(lanes(norm2_a, k, L.vec), norm, align)
            def flag(arr):
                return L.map(lambda x: builder.icmp_unsigned("!=", x, ir.Constant(bool_vec,
                             [0] * width)), load(lanes(arr, k, bool_vec), 1))  # fmt: skip

            # attention (_attention_lanes): near the divergence bound, not finite, or news
            needs = _needs(L, limit, low, norm, max_err, n_correct, squared,
                           load(lanes(loss0_a, k, L.f64vec), 8), flag(reached_a), flag(met_a),
                           L.splat(track_, mask_vec), L.splat(early_, mask_vec))  # fmt: skip
            store(lanes(attention_a, k, bool_vec),
                  L.map(lambda x: builder.zext(x, bool_vec), needs), 1)  # fmt: skip
            seen = builder.load(any_slot)
            for t, value in enumerate(needs):
                first = builder.add(k, ir.Constant(intp, t * width))
                inside = builder.icmp_signed("<", builder.add(L.splat(first, ir.VectorType(
                    intp, width)), lane_offsets), L.splat(active_, ir.VectorType(intp, width)))
                seen = builder.or_(seen, builder.and_(value, inside))
            builder.store(seen, any_slot)
        seen = builder.bitcast(builder.load(any_slot), ir.IntType(width))
        return builder.zext(builder.icmp_unsigned("!=", seen, ir.Constant(ir.IntType(width), 0)),
                            ir.IntType(64))

    return signature, codegen


@intrinsic
def activate_vectors(typingctx, z, a, n, code, one, slope):
    """a[k] = act(z[k]) for k < n (a multiple of the vector width) by this module's vector
    arithmetic, the lane loops' operation for operation; code (a literal): the activation's.
    z, a: flat C-contiguous arrays of one dtype; one, slope in it. ACTIVATION_VECTORS vectors a
    step, their operations side by side (_Lanes.activate_all), then one vector a step. Explicit
    vectors because numba's loop vectoriser uses half the register width of an AVX-512 core
    (LLVM prefers 256-bit vectors there), which halves the exponential's multiply-add rate."""
    if not isinstance(code, types.IntegerLiteral):
        raise errors.RequireLiteralValue(code)
    act = code.literal_value
    dtype = z.dtype
    width = V32 if dtype == types.float32 else V64
    signature = types.void(z, a, n, code, one, slope)

    def codegen(context, builder, sig, args):
        z_, a_, n_, _, one_, slope_ = args
        align = dtype.bitwidth // 8
        pz = context.make_array(sig.args[0])(context, builder, z_).data
        pa = context.make_array(sig.args[1])(context, builder, a_).data
        whole = ACTIVATION_VECTORS * width
        # the lanes in whole steps: n - n % whole (n >= 0)
        steps_end = builder.sub(n_, builder.srem(n_, ir.Constant(n_.type, whole)))
        for begin, end, streams in ((ir.Constant(n_.type, 0), steps_end, ACTIVATION_VECTORS),
                                    (steps_end, n_, 1)):  # fmt: skip
            L = _Lanes(builder, context.get_value_type(dtype), width, streams)
            one_v, slope_v = L.splat(one_), L.splat(slope_)
            step = ir.Constant(n_.type, streams * width)
            with cgutils.for_range_slice(builder, begin, end, step) as (k, _):

                def at(base, t, k=k, L=L):
                    element = builder.add(k, ir.Constant(n_.type, t * width))
                    return builder.bitcast(builder.gep(base, [element]), L.vec.as_pointer())

                zs = [builder.load(at(pz, t), align=align) for t in range(streams)]
                for t, value in enumerate(L.activate(zs, act, one_v, slope_v)):
                    builder.store(value, at(pa, t), align=align)
        return context.get_dummy_value()

    return signature, codegen


# The lane loops' sigmoid and tanh (activate_vectors) through a function pointer too, so that
# they compile apart from the training kernel, without LLVM's machine scheduler (_scheduling):
# it ordered the side-by-side vectors' chains one after the other, to hold fewer values in
# registers, and the core again ran short of independent work (an AVX2 core, one thread,
# alternating processes: 8,400 sigmoids in 1.15-1.33 ns each against 1.37-1.65 ns with the
# scheduler, or four vectors a step as before either way). Arrays travel as their addresses:
# z, a, n (a multiple of the vector width), code (SIGMOID or TANH).
ACTIVATE_SIGNATURE = types.void(types.uintp, types.uintp, types.int64, types.int64)


@functools.cache
def activation_function(itemsize: int):
    """The C callback of ``activate_vectors`` (sigmoid or tanh by its code) on float arrays of
    ``itemsize`` bytes, cached on disk by numba. Compiled without fast-math flags."""
    real = np.float32 if itemsize == 4 else np.float64

    # real is a constant of the compiled function (numba's cache keys on its value)
    def run(z, a, n, code):
        zs, out = numba.carray(_pointer(z, real), (n,)), numba.carray(_pointer(a, real), (n,))
        one = real(1.0)
        if code == SIGMOID:
            activate_vectors(zs, out, n, SIGMOID, one, one)
        else:
            activate_vectors(zs, out, n, TANH, one, one)

    with _scheduling():
        return numba.cfunc(ACTIVATE_SIGNATURE, cache=True, error_model="numpy")(run)


# The training kernel calls the pass of its net's shape through a function pointer, so that
# it is compiled once for every shape (a cold compile of the parallel kernel takes about half a
# minute; a shape's pass, 1.4 s for 2-4-1). Arrays travel as their addresses.
PASS_SIGNATURE = types.int64(*([types.uintp] * 17), *([types.int64] * 5))


@intrinsic
def _pointer(typingctx, address, dtype):
    """The address (uintp) as a pointer to dtype (a numba type passed as a value)."""
    target = dtype.dtype if isinstance(dtype, types.DType) else dtype.instance_type
    signature = types.CPointer(target)(address, dtype)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return signature, codegen


@functools.cache
def pass_function(key: str, itemsize: int):
    """The C callback of ``fused_pass`` for ``key`` (from fused_key; "" gives one that returns
    -1) on float arrays of ``itemsize`` bytes, cached on disk by numba: it takes the arrays'
    addresses in fused_pass's order, then the chunk's lanes, w, active, track_squared and
    early_stop (0 or 1). Compiled without fast-math flags, apart from the training kernel."""
    if key == "":
        return _no_pass
    layers, n_samples, _, _, _ = _decode(key)
    n_params = sum(a * b + b for a, b in zip(layers[:-1], layers[1:], strict=True))
    n_in, n_out, n_layers, width = layers[0], layers[-1], len(layers) - 1, max(layers[1:])
    real = np.float32 if itemsize == 4 else np.float64
    return _compile_pass(key, real, itemsize, n_params, n_samples, n_in, n_out, n_layers, width)


def _compile_pass(key, real, itemsize, n_params, n_samples, n_in, n_out, n_layers, width):
    # every variable of this closure is a constant of the compiled pass: numba's cache keys on
    # their pickled values, one cached pass per key and dtype. No numba function among them (Z's
    # layout, unit_rows, is a global): a dispatcher pickles with an id of its process, and every
    # process missed the cache and compiled the pass anew (0.8-1.1 s for 2-4-1's)
    def run(P, G, lr, X, Y, Z, K, norm2, max_error, correct, lower, squared, loss0, reached,
            met, attention, limits, chunk, w, active, track_squared, early_stop):  # fmt: skip
        f64, flag = np.float64, np.bool_
        return fused_pass(
            key,
            numba.carray(_pointer(P, real), (n_params, chunk)),
            numba.carray(_pointer(G, real), (n_params, chunk)),
            numba.carray(_pointer(lr, real), (chunk,)),
            numba.carray(_pointer(X, real), (n_samples, n_in)),
            numba.carray(_pointer(Y, real), (n_samples, n_out)),
            numba.carray(_pointer(Z, real), (n_layers, n_samples,
                                             unit_rows(width, chunk, itemsize), chunk)),
            numba.carray(_pointer(K, real), (9,)),
            numba.carray(_pointer(norm2, real), (chunk,)),
            numba.carray(_pointer(max_error, f64), (chunk,)),
            numba.carray(_pointer(correct, f64), (chunk,)),
            numba.carray(_pointer(lower, f64), (chunk,)),
            numba.carray(_pointer(squared, f64), (chunk,)),
            numba.carray(_pointer(loss0, f64), (chunk,)),
            numba.carray(_pointer(reached, flag), (chunk,)),
            numba.carray(_pointer(met, flag), (chunk,)),
            numba.carray(_pointer(attention, flag), (chunk,)),
            numba.carray(_pointer(limits, f64), (8,)),
            w, active, track_squared != 0, early_stop != 0,
        )  # fmt: skip

    with _scheduling():
        return numba.cfunc(PASS_SIGNATURE, cache=True, error_model="numpy")(run)


@contextlib.contextmanager
def _scheduling():
    """LLVM's machine scheduler off while a pass compiles, where it is measured to cost time
    (``UNSCHEDULED``); numba's other code compiles as before. The scheduler orders instructions,
    not arithmetic: the pass's results are the same bits either way."""
    if not UNSCHEDULED:
        yield
        return
    llvm.set_option("", "-enable-misched=false")
    try:
        yield
    finally:
        llvm.set_option("", "-enable-misched=true")


@numba.cfunc(PASS_SIGNATURE, cache=True)
def _no_pass(P, G, lr, X, Y, Z, K, norm2, max_error, correct, lower, squared, loss0, reached,
             met, attention, limits, chunk, w, active, track_squared, early_stop):  # fmt: skip
    """The pass of nets that are not fused: none (-1)."""
    return -1
