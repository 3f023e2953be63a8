"""Statistics of sweep outcomes, with scipy; pure functions of arrays, no I/O.

- Rates (convergence, divergence, plateau) with 95% Wilson score intervals.
- Epochs to converge as a survival curve. A net that has not converged when training stops for
  it (budget spent, diverged, plateau) is right-censored at the budget: all we know is that it
  did not converge within it. The Kaplan-Meier estimate of S(t) = P(not converged by epoch t)
  comes from ``scipy.stats.ecdf`` on ``CensoredData``; the median is the first epoch at which
  S(t) <= 1/2, with the interval read off the pointwise log-log confidence band. The q-th
  percentile of epochs to converge (P10, P25, P75, P90) is read the same way: the first epoch
  at which S(t) <= 1 - q/100, its interval where the band's two edges first reach that level.
- Paired comparisons of two cells whose net k starts from the same weights: the 2x2 table of
  converged / not converged, McNemar's exact test on the discordant pairs, and the median ratio
  of epochs to converge over the nets that converged in both.
"""

from __future__ import annotations

import warnings

import numpy as np

CONFIDENCE = 0.95
EPOCH_PERCENTILES = (10, 25, 50, 75, 90)


def _stats():
    """scipy.stats, imported on first use: it takes most of a second, which every command
    would pay at start-up (``backprop-bench train`` never needs it)."""
    from scipy import stats

    return stats


def wilson(successes: int, n: int) -> tuple[float, float, float]:
    """Proportion and its 95% Wilson score interval; NaNs when n is 0."""
    if n == 0:
        return (np.nan, np.nan, np.nan)
    ci = _stats().binomtest(int(successes), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return (successes / n, float(ci.low), float(ci.high))


def _first_at_or_below(times: np.ndarray, values: np.ndarray, level: float) -> float | None:
    """The first time whose value is at or below ``level``, within the rounding of the values:
    S(t) is a product of one factor per time, and 15 of 20 nets converged by epoch 26 gave
    S(26) = 0.25000000000000006, so the 75th percentile skipped to the next epoch."""
    slack = 4 * np.finfo(float).eps * (len(times) + 1) * max(level, np.finfo(float).tiny)
    hit = np.flatnonzero(values <= level + slack)
    return float(times[hit[0]]) if hit.size else None


def survival(epochs_to_converge: np.ndarray, budget: int, at: np.ndarray) -> dict:
    """Kaplan-Meier estimate of the fraction of nets not yet converged.

    epochs_to_converge : int array of shape (n_nets,), -1 for nets that never converged
    budget             : epoch budget, where nets that did not converge are censored
    at                 : epochs at which to evaluate S(t)
    Returns ``sf`` (S at ``at``), ``median`` and ``median_ci``, and ``quantiles`` /
    ``quantiles_ci``: the same for each percentile of EPOCH_PERCENTILES, keyed by its number as
    text (None where not reached).
    """
    converged = epochs_to_converge >= 0
    if not converged.any():
        return {"sf": np.ones(len(at)), "median": None, "median_ci": [None, None],
                "quantiles": {str(q): None for q in EPOCH_PERCENTILES},
                "quantiles_ci": {str(q): [None, None] for q in EPOCH_PERCENTILES}}  # fmt: skip
    data = _stats().CensoredData(
        uncensored=epochs_to_converge[converged].astype(float),
        right=np.full(int((~converged).sum()), float(budget)),
    )
    result = _stats().ecdf(data)
    times = result.sf.quantiles
    with warnings.catch_warnings():  # the band is undefined where S reaches 0; it is 0 there
        warnings.simplefilter("ignore", RuntimeWarning)
        band = result.sf.confidence_interval(CONFIDENCE, method="log-log")
        low = np.nan_to_num(band.low.evaluate(times), nan=0.0)
        high = np.nan_to_num(band.high.evaluate(times), nan=0.0)

    def percentile(q):
        level = (100 - q) / 100  # 0.5 for the median, exactly as before
        return (
            _first_at_or_below(times, result.sf.probabilities, level),
            [_first_at_or_below(times, low, level), _first_at_or_below(times, high, level)],
        )

    median, median_ci = percentile(50)
    return {
        "sf": result.sf.evaluate(np.asarray(at, dtype=float)),
        "median": median,
        "median_ci": median_ci,
        "quantiles": {str(q): percentile(q)[0] for q in EPOCH_PERCENTILES},
        "quantiles_ci": {str(q): percentile(q)[1] for q in EPOCH_PERCENTILES},
    }


def paired(converged_a, converged_b, epochs_a, epochs_b) -> dict:
    """Compare cells A and B net by net (net k of both started from the same weights).

    converged_a, converged_b : bool arrays of shape (n_nets,)
    epochs_a, epochs_b       : epochs to converge, shape (n_nets,)
    """
    both = converged_a & converged_b
    only_a = int((converged_a & ~converged_b).sum())
    only_b = int((converged_b & ~converged_a).sum())
    discordant = only_a + only_b
    p_value = _stats().binomtest(only_a, discordant).pvalue if discordant else 1.0
    ratio = epochs_a[both] / np.maximum(epochs_b[both], 1)
    return {
        "both": int(both.sum()),
        "only_a": only_a,
        "only_b": only_b,
        "neither": int((~converged_a & ~converged_b).sum()),
        "mcnemar_p": float(p_value),
        "median_epoch_ratio": float(np.median(ratio)) if both.any() else None,
        "b_faster": float((epochs_b[both] < epochs_a[both]).mean()) if both.any() else None,
    }
