"""The arithmetic ceiling's counts and how it combines the measured rates (ceiling.py)."""

from __future__ import annotations

import math
import re
import time

import numba
import pytest
from backprop_bench.kernels import NetSpec

from . import ceiling


def test_adams_square_roots_are_counted_apart_from_its_divisions():
    spec = NetSpec((2, 4, 1))
    sgd = ceiling.counts(spec, 4, 8, "sgd")
    adam = ceiling.counts(spec, 4, 8, "adam")
    assert sgd[2] == 0
    # the pass without its SGD step (one multiply-add a parameter, and -lr), then Adam's 31
    # operations (its bias corrections' quotients by multiply-adds), a division and a square
    # root a parameter
    assert adam == (sgd[0] - spec.n_params - 1 + 31 * spec.n_params,
                    sgd[1] + spec.n_params, spec.n_params)  # fmt: skip
    wide = NetSpec((8, 32, 32, 1))
    assert ceiling.counts(wide, 16, 8, "adam")[2] == wide.n_params


@pytest.mark.parametrize("cost, divider_bound", [(0.0, False), (1e-9, False), (0.0, True)])
def test_the_bound_is_the_longer_of_the_fma_units_and_the_divider(monkeypatch, cost,
                                                                  divider_bound):  # fmt: skip
    monkeypatch.setattr(ceiling, "vector_rate", lambda threads=1: 1e9)
    monkeypatch.setattr(ceiling, "division_rate", lambda itemsize=8, threads=1: 1e8)
    monkeypatch.setattr(ceiling, "square_root_rate", lambda itemsize=8, threads=1: 5e7)
    monkeypatch.setattr(ceiling, "division_cost", lambda itemsize=8, threads=1: cost)
    operations, divisions, roots = (100, 2, 1) if not divider_bound else (100, 20, 10)
    arithmetic = operations / 1e9 + divisions * cost
    divider = divisions / 1e8 + roots / 5e7
    assert ceiling.seconds_per_vector(operations, divisions, roots) == max(arithmetic, divider)
    assert (divider > arithmetic) == divider_bound


def test_the_mixed_loop_does_its_multiply_adds_and_its_divisions():
    """division_cost's loop keeps all its multiply-adds and divisions (none optimised away), and
    the cost is a time. Read from the machine code, not timed: its time beside the loops of
    multiply-adds or divisions alone depends on the machine's load from one run to the next
    (under a load that came and went it measured 0.45 of the multiply-adds' time alone)."""
    run = ceiling._runner(ceiling.MIXED, ceiling.V64)
    assert math.isfinite(run(10, numba.float64(0.999999)))
    code = next(iter(run.inspect_asm().values()))
    assert len(re.findall(r"\bvfmadd\w*", code)) >= ceiling.CHAINS * ceiling.MIXED_FMAS
    assert len(re.findall(r"\bvdivp[sd]\b", code)) >= ceiling.MIXED_DIVISIONS
    cost = ceiling.division_cost(8)
    assert math.isfinite(cost) and cost >= 0.0


def test_the_threads_of_a_rate_run_at_once_and_the_loop_lets_them():
    """The rates with several threads at work time them running together: _together releases
    them at once and waits for the last (two sleeps of 50 ms overlap, where one after the other
    would take 100), and the timed loop is compiled without the GIL, so its threads can run
    side by side. (The rates themselves depend on the machine's load: not asserted.)"""
    spans = []

    def nap():
        start = time.perf_counter()
        time.sleep(0.05)
        spans.append((start, time.perf_counter()))

    seconds = ceiling._together(nap, 2)
    assert len(spans) == 2 and 0.05 <= seconds < 0.095
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1  # the two overlapped
    assert ceiling._runner(ceiling.FMA, ceiling.V64).targetoptions["nogil"]
