"""Reference derivatives, each with its own error estimate.

All references work on a flat float64 vector ``x`` and a function ``fun(x) -> float64 array``
(scalars as shape (1,)), and differentiate along a direction ``v`` (a unit coordinate vector gives
a partial derivative). Three references:

- central differences with a step derived from float64's epsilon (h = eps^(1/3) times the scale
  of x along v), the error estimated from the difference between steps h and 2h (Richardson:
  the O(h^2) error of step h is a third of that difference) plus the rounding error of the
  function's output dtype divided by h;
- complex step, f'(x) v = Im f(x + i t v) / t with t = 1e-30, exact to rounding where the
  function is complex-safe; it is only trusted where it agrees with central differences within
  their error estimate, so functions that silently break it (abs, maximum, conjugation) are
  caught instead of trusted;
- ``scipy.differentiate.derivative`` with its own error estimate, per coordinate.

One-sided differences at shrinking steps tell a kink (ReLU at 0) from a smooth point: a smooth
function's one-sided derivatives converge to each other as h shrinks, a kink's do not.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

EPS = np.finfo(np.float64).eps
STEP = EPS ** (1 / 3)  # minimises truncation (h^2) + rounding (eps/h) error of central differences
COMPLEX_STEP = 1e-30
# One-sided derivatives at steps h and h/KINK_SHRINK: at a smooth point their gap shrinks by
# KINK_SHRINK; at a kink it stays. A gap that keeps more than half of itself is a kink.
KINK_SHRINK = 8.0
KINK_KEEP = 0.5
# A one-sided jump below this fraction of the derivatives' size is curvature, not a kink.
KINK_MIN = 1e-6


@dataclass
class Derivative:
    """A reference directional derivative: shape (m,) for a function with m outputs."""

    value: np.ndarray
    error: np.ndarray
    method: str


@dataclass
class Kink:
    """One-sided derivatives (shape (m,)) where the function is not differentiable nearby."""

    left: np.ndarray
    right: np.ndarray


def _step(x: np.ndarray, v: np.ndarray) -> float:
    scale = float(np.abs(x[v != 0]).max(initial=0.0)) if np.any(v) else 0.0
    return STEP * max(1.0, scale) / max(float(np.abs(v).max()), 1e-300)


def _eval(fun, x) -> np.ndarray:
    out = np.asarray(fun(x))
    return out.reshape(-1)


def output_epsilon(fun, x) -> float:
    """Machine epsilon of what ``fun`` returns (float32 functions are far noisier)."""
    out = np.asarray(fun(x))
    return float(np.finfo(out.dtype).eps) if np.issubdtype(out.dtype, np.floating) else EPS


def central(fun, x: np.ndarray, v: np.ndarray, out_eps: float = EPS) -> Derivative:
    """Central difference of ``fun`` at ``x`` along ``v`` with an error estimate."""
    h = _step(x, v)
    plus, minus = _eval(fun, x + h * v), _eval(fun, x - h * v)
    plus2, minus2 = _eval(fun, x + 2 * h * v), _eval(fun, x - 2 * h * v)
    d1 = (plus - minus) / (2 * h)
    d2 = (plus2 - minus2) / (4 * h)
    truncation = np.abs(d1 - d2) / 3
    rounding = out_eps * (np.abs(plus) + np.abs(minus) + np.abs(plus2) + np.abs(minus2)) / h
    return Derivative(d1, truncation + rounding, "central")


def kink(fun, x: np.ndarray, v: np.ndarray, scale: float, out_eps: float = EPS) -> Kink | None:
    """One-sided derivatives if ``fun`` has a kink at or within a step of ``x`` along ``v``.

    scale : the size of the derivatives in question; a jump below KINK_MIN of it is smooth.
    """
    h = 2 * _step(x, v)  # as far as the central difference's wider step reaches
    f0 = _eval(fun, x)

    def one_sided(step):
        right = (_eval(fun, x + step * v) - f0) / step
        left = (f0 - _eval(fun, x - step * v)) / step
        noise = 8 * out_eps * (np.abs(f0) + 1e-300) / step
        return left, right, np.abs(right - left), noise

    left_h, right_h, gap_h, noise_h = one_sided(h)
    left_s, right_s, gap_s, _ = one_sided(h / KINK_SHRINK)
    # a smooth point's gap is ~ step * curvature: it shrinks KINK_SHRINK-fold with the step
    significant = gap_h > np.maximum(20 * noise_h, KINK_MIN * scale)
    inside = significant & (gap_s > KINK_KEEP * gap_h)  # the kink is within h / KINK_SHRINK
    beyond = significant & (gap_h > 4 * KINK_SHRINK * gap_s)  # between h / KINK_SHRINK and h
    if np.any(inside):
        return Kink(left_s, right_s)
    if np.any(beyond):
        return Kink(left_h, right_h)
    return None


def complex_step(fun, x: np.ndarray, v: np.ndarray) -> Derivative | str | None:
    """Complex-step derivative; None where ``fun`` does not take complex input at all, and a
    reason (a string) where it takes it but returns real values, losing the derivative."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = np.asarray(fun(x + 1j * COMPLEX_STEP * v))
    except Exception:  # noqa: BLE001 - any failure on complex input means: not available
        return None
    if not np.iscomplexobj(out):
        return "it returned real values for complex input (abs? a cast to float?)"
    value = (out.imag / COMPLEX_STEP).reshape(-1)
    error = 4 * EPS * np.abs(value) + 1e-300
    return Derivative(value, error, "complex step")


def scipy_partial(fun, x: np.ndarray, j: int) -> Derivative:
    """Partial derivatives of every output along coordinate ``j``, by
    ``scipy.differentiate.derivative`` (which differentiates elementwise functions)."""
    from scipy.differentiate import derivative

    m = _eval(fun, x).size

    def along(t):  # t[i, ...]: points at which output i is wanted
        out = np.empty_like(t)
        for index in np.ndindex(t.shape):
            point = x.copy()
            point[j] = t[index]
            out[index] = _eval(fun, point)[index[0]]
        return out

    result = derivative(along, np.full(m, x[j]))
    return Derivative(np.asarray(result.df), np.asarray(result.error), "scipy.differentiate")
