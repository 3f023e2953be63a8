"""The arithmetic ceiling's counts and how it combines the measured rates (ceiling.py)."""

from __future__ import annotations

import math
import os

import pytest
from backprop_bench.kernels import NetSpec

from . import ceiling


def test_adams_square_roots_are_counted_apart_from_its_divisions():
    spec = NetSpec((2, 4, 1))
    sgd = ceiling.counts(spec, 4, 8, "sgd")
    adam = ceiling.counts(spec, 4, 8, "adam")
    assert sgd[2] == 0
    # the pass without its SGD step (one multiply-add a parameter, and -lr), then Adam's 10
    # operations, 3 divisions and a square root a parameter
    assert adam == (sgd[0] - spec.n_params - 1 + 10 * spec.n_params,
                    sgd[1] + 3 * spec.n_params, spec.n_params)  # fmt: skip
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
    """division_cost's loop takes at least as long as its multiply-adds alone and as its
    divisions alone (so neither was optimised away), and the cost is a time."""
    seconds = ceiling._iterations(ceiling.MIXED, 8)
    multiply_adds = ceiling.CHAINS * ceiling.MIXED_FMAS / ceiling.vector_rate()
    divisions = ceiling.MIXED_DIVISIONS / ceiling.division_rate(8)
    assert seconds > 0.8 * max(multiply_adds, divisions)  # 0.8: timing noise
    cost = ceiling.division_cost(8)
    assert math.isfinite(cost) and cost >= 0.0


def test_rates_with_several_threads_are_each_threads_while_all_run_at_once():
    """A thread's rate while another runs the loop too: not above its rate alone (the cores
    share nothing that could speed it up; 1.25: timing noise), and the two threads did run at
    once (together they did more than one thread alone: were they run one after the other,
    each thread's rate would be half of one alone)."""
    alone, together = ceiling._rate(ceiling.FMA, 8, 1), ceiling._rate(ceiling.FMA, 8, 2)
    assert together < 1.25 * alone
    if len(os.sched_getaffinity(0)) >= 2:
        assert 2 * together > 1.1 * alone
