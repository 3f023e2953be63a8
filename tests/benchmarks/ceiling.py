"""An arithmetic ceiling for the fused kernel: what it could reach if nothing but its arithmetic
took time. Two measured rates of this CPU and two counts per net-epoch:

- the multiply-add peak: a loop of fused multiply-adds on 12 independent vector accumulators
  (enough to hide the latency of two FMA units), nothing loaded or stored (``fma_peak``);
- the sigmoid in lanes: the kernel's own ``_activate_lanes`` on an array in L1 (exponential,
  division and all), per element (``sigmoid_rate``);
- per net-epoch, the sigmoids (one per hidden and output unit and sample) and every other
  floating-point operation of the kernel's loops, in lanes (``counts``): each multiply, add,
  FMA, compare or select one operation, as the kernel runs them at float64 and SGD.

ceiling = cores / (sigmoids / sigmoid_rate + other / fma_peak): loads and stores, loop
overhead and the non-lane work (decisions per net) are counted as free, so it is an upper
bound. Rates are measured on one thread and scaled by the core count (a busy machine measures
lower rates, hence a lower ceiling and a higher share of it).
"""

from __future__ import annotations

import functools
import os
import time

import numba
import numpy as np
from backprop_bench.kernels import NetSpec
from backprop_bench.kernels import numba_lanes as lanes
from backprop_bench.kernels.numba_tiles import V64
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

CHAINS = 12


@intrinsic
def _fma_loop(typingctx, n, x):
    """n iterations of CHAINS independent vector FMAs acc = acc * x + x; returns a lane sum."""

    def codegen(context, builder, sig, args):
        count, scalar = args
        vector = ir.VectorType(ir.DoubleType(), V64)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{V64}f64"
        )
        splat = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar,
                                       ir.Constant(ir.IntType(32), 0))  # fmt: skip
        splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(ir.IntType(32),
                                                                               V64), [0] * V64))
        slots = []
        for _ in range(CHAINS):
            slot = cgutils.alloca_once(builder, vector)
            builder.store(splat, slot)
            slots.append(slot)
        with cgutils.for_range(builder, count):
            for slot in slots:
                builder.store(builder.call(fma, [builder.load(slot), splat, splat]), slot)
        total = builder.load(slots[0])
        for slot in slots[1:]:
            total = builder.fadd(total, builder.load(slot))
        return builder.extract_element(total, ir.Constant(ir.IntType(32), 0))

    return types.float64(n, x), codegen


@numba.njit
def _fma_run(n, x):
    return _fma_loop(n, x)


def _best_seconds(fn, repeats=7):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def fma_peak() -> float:
    """Lane multiply-adds per second, one thread (best of several runs)."""
    n = 2_000_000
    _fma_run(10, 0.5)
    return n * CHAINS * V64 / _best_seconds(lambda: _fma_run(n, 0.999999))


@functools.cache
def sigmoid_rate() -> float:
    """Sigmoids per second through the kernel's lane loop, one thread, data in L1."""
    z = np.linspace(-8.0, 8.0, 1024)
    a = np.empty_like(z)
    reps = 2000

    @numba.njit
    def run(z, a, reps):
        for _ in range(reps):
            lanes._activate_lanes(z, a, lanes.SIGMOID, z.size, 1.0, 0.01)

    run(z, a, 1)
    return reps * z.size / _best_seconds(lambda: run(z, a, reps))


def counts(spec: NetSpec, n_samples: int) -> tuple[int, int]:
    """(sigmoids, other floating-point operations) per net-epoch of the kernel's loops (SGD)."""
    S = n_samples
    sigmoids = S * sum(spec.layers[1:])
    other = 0
    pairs = list(zip(spec.layers[:-1], spec.layers[1:], strict=True))
    for index, (fan_in, fan_out) in enumerate(pairs):
        other += S * fan_in * fan_out  # forward products
        other += S * fan_out  # bias gradient sums
        other += S * fan_in * fan_out  # weight gradient sums
        if index > 0:
            other += S * fan_in * fan_out  # dL/da of the layer below
            other += 3 * S * fan_in  # times a (1 - a)
    other += 2 * S * spec.n_outputs  # dL/dz at the output
    other += 8 * S * spec.n_outputs  # the checks: error, accuracy, loss bound
    other += 2 * spec.n_params  # |g|^2 and the SGD step
    return sigmoids, other


def ceiling(spec: NetSpec, n_samples: int, cores: int | None = None) -> float:
    """Net-epochs per second if only the arithmetic took time (see the module's docstring)."""
    cores = cores or len(os.sched_getaffinity(0))
    sigmoids, other = counts(spec, n_samples)
    return cores / (sigmoids / sigmoid_rate() + other / fma_peak())
