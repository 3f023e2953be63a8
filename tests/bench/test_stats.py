"""Sweep statistics against values worked out by hand."""

import math

import numpy as np
import pytest
from backprop_bench.bench.stats import paired, survival, wilson


def test_wilson_interval_matches_the_formula():
    k, n, z = 7, 10, 1.959963984540054
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson(k, n) == pytest.approx((0.7, centre - half, centre + half), rel=1e-9)
    assert wilson(0, 50)[1] == 0.0 and wilson(0, 50)[2] > 0.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_survival_without_censoring_is_one_minus_the_ecdf():
    epochs = np.array([10, 20, 20, 40])
    result = survival(epochs, budget=100, at=np.array([0, 10, 15, 20, 39, 40, 100]))
    np.testing.assert_allclose(result["sf"], [1, 0.75, 0.75, 0.25, 0.25, 0, 0])
    assert result["median"] == 20


def test_survival_censors_nets_that_did_not_converge_at_the_budget():
    # 2 of 5 converge (epochs 10 and 30); 3 never do, so S stays at 3/5 after epoch 30
    epochs = np.array([10, -1, 30, -1, -1])
    result = survival(epochs, budget=100, at=np.array([5, 10, 30, 99]))
    np.testing.assert_allclose(result["sf"], [1, 0.8, 0.6, 0.6])
    assert result["median"] is None  # fewer than half converged
    assert survival(np.array([-1, -1]), 100, np.array([0, 50]))["median"] is None


def test_median_interval_brackets_the_median():
    rng = np.random.default_rng(0)
    epochs = rng.integers(100, 1000, size=400)
    epochs[:50] = -1
    result = survival(epochs, budget=2000, at=np.array([0]))
    lo, hi = result["median_ci"]
    assert lo <= result["median"] <= hi
    assert hi - lo < 200  # 400 nets pin a median down well


def test_paired_counts_and_mcnemar():
    a = np.array([True, True, True, False, False, True])
    b = np.array([True, False, False, False, True, True])
    epochs_a = np.array([100, 5, 5, -1, -1, 300])
    epochs_b = np.array([50, -1, -1, -1, 7, 100])
    result = paired(a, b, epochs_a, epochs_b)
    assert (result["both"], result["only_a"], result["only_b"], result["neither"]) == (2, 2, 1, 1)
    assert result["mcnemar_p"] == pytest.approx(1.0)  # 2 vs 1 discordant: no evidence
    assert result["median_epoch_ratio"] == pytest.approx(2.5)  # ratios 2 and 3
    assert result["b_faster"] == 1.0


def test_epoch_percentiles_and_their_intervals_by_hand():
    # 9 nets: 7 converge at 5, 8, 8, 12, 15, 20, 30; 2 never do (censored at the budget, 100).
    # Kaplan-Meier by hand: S = 8/9, then x 6/8, 5/6, 4/5, 3/4, 2/3 at 5, 8, 12, 15, 20, 30.
    epochs = np.array([5, 8, 8, 12, 15, 20, 30, -1, -1])
    times = [5, 8, 12, 15, 20, 30]
    at_risk = [9, 8, 6, 5, 4, 3]
    events = [1, 2, 1, 1, 1, 1]
    sf, greenwood, s, v = [], [], 1.0, 0.0
    for n, d in zip(at_risk, events, strict=True):
        s *= (n - d) / n
        v += d / (n * (n - d))
        sf.append(s)
        greenwood.append(v)
    np.testing.assert_allclose(sf, [8 / 9, 2 / 3, 5 / 9, 4 / 9, 1 / 3, 2 / 9])
    # the log-log band: S ** exp(+-z sqrt(V) / log S), z the two-sided 95% normal quantile
    z = 1.959963984540054
    pairs = list(zip(sf, greenwood, strict=True))
    low = [s ** math.exp(-z * math.sqrt(v) / math.log(s)) for s, v in pairs]
    high = [s ** math.exp(z * math.sqrt(v) / math.log(s)) for s, v in pairs]

    def first(values, level):
        hit = [t for t, value in zip(times, values, strict=True) if value <= level]
        return hit[0] if hit else None

    result = survival(epochs, budget=100, at=np.array([0]))
    expected = {"10": 5, "25": 8, "50": 15, "75": 30, "90": None}
    assert result["quantiles"] == expected
    assert result["median"] == 15
    for q in expected:
        level = (100 - int(q)) / 100
        assert result["quantiles_ci"][q] == [first(low, level), first(high, level)], q
    assert result["quantiles_ci"]["25"][0] <= 8 <= result["quantiles_ci"]["25"][1]


def test_a_percentile_reached_exactly_is_its_epoch_despite_rounding():
    # 15 of 20 nets converged by epoch 26: S(26) = 1/4 exactly, but the product of its factors
    # rounds to 0.25000000000000006, and the 75th percentile read 42 (the next epoch)
    epochs = np.array([9, 10, 11, 13, 13, 15, 16, 17, 17, 19, 19, 23, 25, 25, 26, 42, -1, -1, -1,
                       -1])  # fmt: skip
    result = survival(epochs, budget=1000, at=np.array([26]))
    assert result["quantiles"]["75"] == 26
    assert result["quantiles"]["25"] == 13 and result["median"] == 19  # S(19) = 9/20 < 1/2
    # a level missed by one net is not reached by the slack: 14 of 20 by epoch 25, S = 0.3
    later = np.where(epochs == 26, 42, epochs)
    assert survival(later, budget=1000, at=np.array([0]))["quantiles"]["75"] == 42
