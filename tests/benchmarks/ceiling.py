"""An arithmetic ceiling for the training kernel: the rate it could reach if nothing but its
arithmetic took time.

Measured rates of this CPU, one thread, vectors of the width the kernel uses:

- vector instructions per second: fused multiply-adds on 12 independent vector accumulators
  (enough to hide the latency of the two FMA units), nothing loaded or stored
  (``vector_rate``); the kernel's adds, multiplies, compares and selects issue on the same two
  ports, so this is their rate too;
- vector divisions and square roots per second, on 12 independent chains (``division_rate``,
  ``square_root_rate``, per dtype): they run on the divider, slower;
- what a division costs the multiply-adds around it (``division_cost``): the time 3 chains of
  divisions add to 12 chains of 4 multiply-adds each, per division. The divider is a unit of
  its own, but on some cores a division also takes issue slots from the multiply-adds: on the
  AMD EPYC without AVX-512 this was measured for, a division added about 0.27 ns (the time of
  about 1.7 multiply-adds) to a stream of them; beside 4 chains of square roots, 48
  multiply-adds took no time beyond the square roots' own (so square roots are charged to the
  divider alone).

And the kernel's own count of operations per net-epoch (``counts``):

- nets whose epochs run in the fused pass: the instructions the pass emits for one vector of
  nets (``numba_fused.pass_counts``), optimizer steps outside it added as their loops do them;
- other nets: the lane loops' operations, each activation counted as the fused pass's code for
  one activation (``numba_fused.activation_counts``).

time per net-epoch >= max(operations / instruction rate + divisions x division cost,
divisions / division rate + square roots / square-root rate), per lane; ceiling = cores / that.
Loads and stores, loop overhead and the decisions per net count as free, so it is an upper
bound. The ceiling of a run on several cores takes each rate as measured with that many threads
running the loop at once, the rate a core keeps while the others work too (the division cost
scaled from one thread's as the multiply-add rate falls): on the 2-vCPU machine this was
written for, a thread's best multiply-add rate with both at work was 4.6-8.2% below one
thread's alone in five of six measurements and 20% below in the sixth, so one thread's rates
times the core count would overstate the machine. A busy machine measures lower rates, hence a
lower ceiling and a higher share of it.
"""

from __future__ import annotations

import functools
import os
import threading
import time

import numba
from backprop_bench.kernels import NetSpec
from backprop_bench.kernels import numba_fused as fused
from backprop_bench.kernels.numba_tiles import V32, V64
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

CHAINS = 12
SIGMOID = HIDDEN_ACTIVATIONS.index("sigmoid")
# per parameter and lane, as _step_lanes and _adam_lanes do them: (operations, divisions,
# square roots). Adam's: the formula's 10 operations, its bias corrections' two quotients by
# multiply-adds (numba_lanes._quotient, 5 each) and their range checks (11: the instructions of
# its loop on the Intel Xeon, 31 a vector), one division and a square root
STEP_COUNTS = {"sgd": (1, 0, 0), "momentum": (3, 0, 0), "adam": (31, 1, 1)}
# division_cost's loop: CHAINS chains of MIXED_FMAS multiply-adds beside MIXED_DIVISIONS chains
# of one division each, per iteration (15 accumulators and the operand: no register spills on
# a core with 16 vector registers)
MIXED_FMAS, MIXED_DIVISIONS = 4, 3
FMA, DIVIDE, SQUARE_ROOT, MIXED = range(4)


@intrinsic
def _chain_loop(typingctx, n, x, kind, lanes):
    """n iterations of CHAINS independent vector operations acc = fma(acc, x, x) (kind FMA),
    acc = acc / x (DIVIDE) or acc = sqrt(acc) (SQUARE_ROOT), or MIXED: CHAINS chains of
    MIXED_FMAS multiply-adds and MIXED_DIVISIONS chains of one division; in x's type, ``lanes``
    wide (literals); returns a lane."""
    if not (isinstance(kind, types.IntegerLiteral) and isinstance(lanes, types.IntegerLiteral)):
        return None
    kind_value, width = kind.literal_value, lanes.literal_value

    def codegen(context, builder, sig, args):
        count, scalar = args[0], args[1]
        element = context.get_value_type(sig.args[1])
        vector = ir.VectorType(element, width)
        bits = 32 if isinstance(element, ir.FloatType) else 64
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{width}f{bits}"
        )
        sqrt = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector]), f"llvm.sqrt.v{width}f{bits}"
        )
        splat = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar,
                                       ir.Constant(ir.IntType(32), 0))  # fmt: skip
        splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(ir.IntType(32),
                                                                               width), [0] * width))
        slots = []
        for _ in range(CHAINS + (MIXED_DIVISIONS if kind_value == MIXED else 0)):
            slot = cgutils.alloca_once(builder, vector)
            builder.store(splat, slot)
            slots.append(slot)
        with cgutils.for_range(builder, count):
            for index, slot in enumerate(slots):
                value = builder.load(slot)
                if kind_value == FMA:
                    value = builder.call(fma, [value, splat, splat])
                elif kind_value == DIVIDE or (kind_value == MIXED and index >= CHAINS):
                    value = builder.fdiv(value, splat)
                elif kind_value == SQUARE_ROOT:
                    value = builder.call(sqrt, [value])
                else:
                    for _ in range(MIXED_FMAS):
                        value = builder.call(fma, [value, splat, splat])
                builder.store(value, slot)
        total = builder.load(slots[0])
        for slot in slots[1:]:
            total = builder.fadd(total, builder.load(slot))
        return builder.extract_element(total, ir.Constant(ir.IntType(32), 0))

    return x(n, x, kind, lanes), codegen


@functools.cache
def _runner(kind: int, lanes: int):
    """The loop of _chain_loop as a compiled function of (n, x), without the GIL (threads run it
    at once); kind and lanes are constants of it (a call that dispatched on literal arguments
    would time the dispatch too)."""

    @numba.njit(nogil=True)
    def run(n, x):
        return _chain_loop(n, x, kind, lanes)

    return run


def _best_seconds(fn, repeats=7):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _together(fn, threads: int):
    """fn run by ``threads`` threads released at once: seconds until the last one is done."""
    if threads == 1:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    gate = threading.Barrier(threads + 1)
    ends = []

    def work():
        gate.wait()
        fn()
        ends.append(time.perf_counter())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    gate.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return max(ends) - start


def _iterations(kind: int, itemsize: int, threads: int = 1) -> float:
    """Seconds per iteration of _chain_loop's loop on each of ``threads`` threads running it at
    once (best of several runs)."""
    x = (numba.float32 if itemsize == 4 else numba.float64)(0.999999)
    lanes = V32 if itemsize == 4 else V64
    n = 2_000_000 if kind == FMA else 200_000
    if threads > 1:
        n *= 5  # a run of some 20 ms or more, against the threads' start
    run = _runner(kind, lanes)
    run(10, x)
    return _best_seconds(lambda: _together(lambda: run(n, x), threads)) / n


def _rate(kind: int, itemsize: int, threads: int) -> float:
    """Vector instructions per second of each of ``threads`` threads running at once."""
    return CHAINS / _iterations(kind, itemsize, threads)


@functools.cache
def vector_rate(threads: int = 1) -> float:
    """Vector multiply-adds (and other arithmetic instructions) per second of a thread, with
    ``threads`` threads at work."""
    return _rate(FMA, 8, threads)


@functools.cache
def division_rate(itemsize: int = 8, threads: int = 1) -> float:
    """Vector divisions per second of a thread, with ``threads`` at work, for float64 (8) or
    float32 (4) lanes."""
    return _rate(DIVIDE, itemsize, threads)


@functools.cache
def square_root_rate(itemsize: int = 8, threads: int = 1) -> float:
    """Vector square roots per second of a thread, with ``threads`` at work, for float64 (8) or
    float32 (4) lanes."""
    return _rate(SQUARE_ROOT, itemsize, threads)


@functools.cache
def division_cost(itemsize: int = 8, threads: int = 1) -> float:
    """Seconds a vector division adds to a stream of multiply-adds that keeps the FMA units
    busy (0 where the divider runs entirely beside them): on one thread, the mixed loop's time
    less its multiply-adds' time at vector_rate, per division; with ``threads`` at work, that
    time scaled as the multiply-add rate falls. (Measured with the threads at work, the
    difference of two timings swung from 0.46 to 3.2 ns between runs of the same machine.)"""
    seconds = _iterations(MIXED, itemsize)
    multiply_adds = CHAINS * MIXED_FMAS / vector_rate()
    alone = max(0.0, seconds - multiply_adds) / MIXED_DIVISIONS
    return alone * vector_rate() / vector_rate(threads)


def fma_peak() -> float:
    """Lane multiply-adds per second, one thread, float64."""
    return vector_rate() * V64


def counts(spec: NetSpec, n_samples: int, itemsize: int = 8,
           optimizer: str = "sgd") -> tuple[int, int, int]:  # fmt: skip
    """(operations, divisions, square roots) per net-epoch: each lane's share of the kernel's
    vector instructions (see the module's docstring)."""
    act, loss = HIDDEN_ACTIVATIONS.index(spec.activation), LOSSES.index(spec.loss)
    key = fused.fused_key(spec.layers, n_samples, act, loss, optimizer == "sgd")
    step_ops, step_divisions, step_roots = STEP_COUNTS[optimizer]
    square_roots = step_roots * spec.n_params
    if key:
        operations, divisions, _ = fused.pass_counts(spec.layers, n_samples, act, loss,
                                                     optimizer == "sgd", itemsize)  # fmt: skip
        if optimizer != "sgd":
            operations += step_ops * spec.n_params
            divisions += step_divisions * spec.n_params
        return operations, divisions, square_roots
    operations, divisions = _lane_loop_counts(spec, n_samples, act, itemsize, step_ops,
                                              step_divisions)  # fmt: skip
    return operations, divisions, square_roots


def _lane_loop_counts(spec, n_samples, act, itemsize, step_ops, step_divisions):
    """The lane loops' operations per net-epoch (numba_lanes: products, bias and weight
    gradients, dL/da below, activation derivatives, checks, |g|^2 and the step)."""
    S = n_samples
    hidden_ops, hidden_divisions = fused.activation_counts(act, itemsize)
    output_ops, output_divisions = fused.activation_counts(SIGMOID, itemsize)
    hidden_units, outputs = sum(spec.layers[1:-1]), spec.n_outputs
    operations = S * (hidden_units * hidden_ops + outputs * output_ops)
    divisions = S * (hidden_units * hidden_divisions + outputs * output_divisions)
    pairs = list(zip(spec.layers[:-1], spec.layers[1:], strict=True))
    for index, (fan_in, fan_out) in enumerate(pairs):
        operations += S * fan_in * fan_out  # forward products
        operations += S * fan_out  # bias gradient sums
        operations += S * fan_in * fan_out  # weight gradient sums
        if index > 0:
            operations += S * fan_in * fan_out  # dL/da of the layer below
            operations += 3 * S * fan_in  # times a (1 - a)
    operations += 2 * S * outputs  # dL/dz at the output
    operations += 8 * S * outputs  # the checks: error, accuracy, loss bound
    operations += spec.n_params  # |g|^2
    operations += step_ops * spec.n_params
    divisions += step_divisions * spec.n_params
    return operations, divisions


def ceiling(spec: NetSpec, n_samples: int, cores: int | None = None, itemsize: int = 8,
            optimizer: str = "sgd") -> float:  # fmt: skip
    """Net-epochs per second if only the arithmetic took time (see the module's docstring)."""
    cores = cores or len(os.sched_getaffinity(0))
    operations, divisions, square_roots = counts(spec, n_samples, itemsize, optimizer)
    lanes = V32 if itemsize == 4 else V64
    seconds = seconds_per_vector(operations, divisions, square_roots, itemsize, cores)
    return cores / seconds * lanes


def seconds_per_vector(operations: float, divisions: float, square_roots: float,
                       itemsize: int = 8, threads: int = 1) -> float:  # fmt: skip
    """The module's bound for one vector of nets' instructions on a thread, with ``threads``
    at work: the FMA units' time (operations, and what the divisions take from them) or the
    divider's, whichever is longer."""
    arithmetic = operations / vector_rate(threads) + divisions * division_cost(itemsize,
                                                                               threads)
    divider = (divisions / division_rate(itemsize, threads)
               + square_roots / square_root_rate(itemsize, threads))  # fmt: skip
    return max(arithmetic, divider)
