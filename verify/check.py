"""Check any claimed gradient or vector-Jacobian product against reference derivatives.

``check_gradient(fun, grad, params)`` for a scalar function and its gradient, ``check_vjp(fun,
vjp, params)`` for an array-valued one and its VJP (optionally with its JVP for the adjoint test).
``params`` is a float array or a dict of named float arrays (parameter groups); the functions take
the same structure. The result carries one verdict (see :mod:`.verdict`) and the evidence.

How it decides (derived, nothing guessed):

- **Determinism first.** ``fun`` and ``grad`` are each called twice at the same point, once at
  a copy of it (other arrays, same values: a cache keyed by ``id(params)``), ``grad`` again
  after ``fun`` ran at other params (a backward pass that reads what the forward pass saved),
  and both once more at the end; any difference is the verdict *not deterministic* (hidden
  state, unseeded randomness), never a wrong gradient or a kink. Functions with deliberate
  randomness (dropout) take a keyword ``rng``: with ``rng_seed=S`` every call gets a fresh
  ``np.random.default_rng(S)``, so every call draws the same masks.
- **Float32 end to end.** If ``fun`` is dtype-generic (float64 params give a float64 value), the
  reference is taken in float64 at the float32 point; if ``grad`` is generic too, the same code
  is also run in float64 and held to its own rounding scatter plus ELEMENT_ULPS float32 ulps
  of each element (float32 constants in its code, see _claims), which resolves errors far
  below the float32 claim's rounding; the float32 claim is not judged where the derivatives
  jump within its own rounding of the point (kinks that float32 code sees on other sides:
  :class:`_Reach`), and where the float64 run holds it is undecided within rounding its
  scatter misses (BIAS_ULPS); a passing verdict needs it to see an error of RESOLVE in each
  whole group, as an error of float32 code alone would be. Otherwise the reference comes from the
  function in its own dtype, with steps fitted to its measured rounding, and the result says
  how small an error it could have seen.
- **Tolerances.** A claimed value passes if it is within SAFETY times the reference's error
  bound plus its own rounding. The rounding is measured: the claim is evaluated again at points a
  few ulps away, where a correct implementation's rounding scatters and a wrong formula does not
  (it moves smoothly with the point, so its error cancels in the differences);
  ELEMENT_ULPS ulps of the element and FLOOR_ULPS ulps of the group's largest value cover
  rounding that does not scatter.
- **Cost, the same on every machine.** What the check does depends on the problem, not on how
  fast this machine runs it: the whole Jacobian is compared column by column for up to
  FULL_PARAMS parameters, otherwise PROBES random directional probes (Rademacher directions:
  every element weighs fully in every probe); refinement spends at most SUSPECT_EVALS and
  REFINE_EVALS function evaluations per parameter. Time enters only as a guard for slow
  functions: one call is timed, and a full Jacobian that would take more than ``budget``
  seconds, or refinement that runs past it (suspects past twice it), is cut short with a note
  saying that this machine's speed decided it.
- **Suspects are re-examined** with Ridders extrapolation from several steps, then one-sided
  differences: a kink (ReLU at exactly 0) is reported with its one-sided derivatives, and the
  claim passes there if it is a subgradient; a point within a step of a kink is resolved with
  smaller steps. A probe along which the function has kinks is split down to smooth parts and
  single elements, each held as the full Jacobian holds it; where several kinks meet in one
  element, the derivatives at points nearby (their mixtures) decide (:func:`_at_kink`).
  A function that rises steeply within less than every step (a jump at those steps) is looked
  at by decades down to its ulps: refined from the largest step at which it is smooth, or,
  smooth at none, not judged there (``steep`` in _full, _smooth_scale).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import itertools
import sys
import time
import warnings
from collections.abc import Mapping

import numpy as np

from . import references as R
from .verdict import (
    CANNOT_TELL,
    CORRECT,
    KINK,
    NOT_DETERMINISTIC,
    WRONG,
    GradCheckResult,
    GroupReport,
    KinkReport,
    Nondeterminism,
    ProbeReport,
)

SAFETY = 8.0  # multiples of the reference's error bound
SPREAD_SAFETY = 4.0  # multiples of the claim's measured rounding scatter
# pairs of nearby points at which the claim's rounding scatter is measured: with 2, correct
# float32 code whose rounding is amplified by cancellation (a variance as E[x^2] - E[x]^2, exp(a)
# - exp(b) with a ~ b, cosine similarity, a sharp softmax) was `wrong` for 8 of 52 correct
# claims on 49 smooth functions of an independent review, its rounding at the point larger by
# chance than 4x the largest of two second differences; with 6, for 4 (the function's noise is
# measured at 6 points too, NOISE_POINTS)
SPREAD_PAIRS = 6
SPREAD_ULPS = 32.0  # how far those points are, in ulps of each parameter
# A claim whose values at the pairs' midpoints, (c(x + d) + c(x - d)) / 2, range over at least
# this share of its largest second difference scatters as rounding does, wherever it is taken:
# no jump at x. A jump (a special case at an exact point, a gradient cached by id(params) and
# stale) moves the value at x alone, and the midpoints agree. The float32 backward pass of
# least squares at its optimum, X^T (X w - y) with terms of 1 and a gradient of 1e-6, scatters
# by 3e-6 a few dozen ulps away, its midpoints over 17% to 80% of that; taken for a jump, its
# scatter was capped at 4e-9 and the exact formula was `wrong` (an outside audit). Only in
# code that computes in float32 and has no float64 run beside it (dtype-generic code has one,
# which sees the code's errors without float32's rounding): kinks at x that the nudges flip
# (ReLU units at exactly 0, moved by nudges of every element) scatter as rounding does, and 13
# valid claims of the kink review (8 in float64, 5 in float32 code with a float64 run) went
# from `not differentiable here` to `cannot tell`. Rounding's midpoints ranged over 0.09 of it
# and more (300 elements of least squares at its optimum: at 1/8, two were taken for jumps and
# the exact gradient was `wrong`); a stale cache's agree to rounding, far below 0.02
SCATTERED_SHARE = 0.02
# ... and whose scatter, closer in, keeps at least SCATTERED_KEPT of its size: rounding's does
# not shrink, a smooth claim's curvature shrinks with the square. Closer in: SCATTERED_ULPS ulps
# of the precision the code computes in (float32's where it casts inside), or SCATTERED_CLOSER
# times closer where that is further. (Springs between points at 1e5, cast to float32 inside,
# are nudged by 3 to 6 where their length is 1: their scatter was the claim's curvature, over
# the midpoints too and still a third of it four times closer in, and a negated gradient,
# given it as allowance, passed; at 4 to 8 float32 ulps it is 0.01 to 0.11 of it.) Taken over
# the claim, the median of its elements' shares: rounding's, largest of 6 pairs 8 times closer
# in, kept 0.2 of it in 1 element of 1,000, at least 0.4 in 99%, 0.87 in the median (the float32
# least squares above, 300 draws); a quadratic's keeps 1/64.
SCATTERED_CLOSER = 4.0
SCATTERED_ULPS = 4.0
SCATTERED_KEPT = 0.2
ELEMENT_ULPS = 16.0  # rounding allowance relative to the element itself
FLOOR_ULPS = 2.0  # rounding allowance relative to the group's largest value
PROBES = 8
LARGEST_PARAM = 1e150  # parameters beyond this are refused (checks ran to 1e156, not 1e160)
MAX_PROBES = 10_000  # each a few evaluations of fun and the claim (10**9 ran for days)
# The plan of a check is counted, not timed, so that its verdict is the same on a busy or a
# fast machine (timed shares of a 1 s budget moved float32 mutants between wrong and cannot
# tell with the machine's load, and nets of 1,000-4,000 parameters between the full Jacobian
# and probes)
FULL_PARAMS = 1000  # the full Jacobian for up to this many parameters, directional probes above
PROBE_EVALS = 8  # evaluations of fun along a smooth probe, about (7.4 measured over 14 probes)
# re-examining suspects may spend this many function evaluations per parameter after the first
# pass (about 4 per parameter), and refining unresolved elements this many: a net of 1,000
# float32 parameters refines a few hundred of its elements with least-squares fits ...
SUSPECT_EVALS = 48
REFINE_EVALS = 24
EVALS_MIN_PARAMS = 200  # ... counted as at least this many parameters (small problems refine all)
# seconds of function evaluations: a guard for slow functions only. A full Jacobian that would
# take longer is replaced by probes, and refinement stops once it has run this long (suspects at
# twice it); either is said in a note, since there the machine decided
BUDGET = 20.0
# a complex step that differs from central differences by less than this share of its column's
# largest value is taken for the derivative (the disagreement as its error): rounding in an
# intermediate of the column's size, seen through steps of 1e-5 to 1e-8 of the params
ROUNDED_AWAY = 1e-8
# a float32 claim (or a coarser one) is not held finer than UNDERFLOW times float32's smallest
# normal: an intermediate below it underflows, and the factors after it scale the loss (SiLU's
# derivative s (1 + z (1 - s)) at z = -90 is -7e-38, 0 in float32 code whose sigmoid s is 0
# there, and the float64 twin's exact value; it was held to 6e-44)
EPS32 = float(np.finfo(np.float32).eps)
UNDERFLOW32 = 1024 * float(np.finfo(np.float32).tiny)
ALTERNATIVE = 8.0  # a one-sided estimate this much less accurate than the best still counts
JUMP = 1e3  # a claim's scatter this many times its rounding allowance: a discontinuity
SMALL = 1e-3  # elements below this fraction of their group's largest are "small"
RESOLVE = 1e-3  # an element whose tolerance exceeds this fraction of it is refined if affordable
# a passing check that could not have seen an error of this share of the largest derivative
# cannot tell: a 1e-3 error in one element of a float32 net is what users need caught
CANNOT_TELL_FLOOR = 1e-3
# ... and so does one that could not have seen an error of RESOLVE in an element at least this
# share of its group's largest (the 1e-3 error asked of float32 checks, in any sizable element)
NOTABLE = 0.1
# a group whose every derivative is known to lie within this many float64 ulps of the largest
# derivative of all groups (by a complex step, or by differences that resolve that far) is
# zero there, its floor taken against that largest (the bias before a batch norm: 1e-17 beside
# 0.1); above it, a group whose values its differences do not resolve has a size of its own
ZERO_ULPS = 4096.0
# ... unless its complex steps at other step sizes (SELF_STEPS times the first) say it is not:
# the complex step of a derivative, however small, is linear in the step to its own rounding
# (tanh saturated at -20: 7e-17 beside 2.3, the same to 1e-15 of itself at every step), while
# one of a sum that cancels to 0 holds rounding that changes with the step's digits (a bias
# before a batch norm: 1e-17 at one step, 0 or -3e-17 at another). Their spread is the complex
# step's error, and a group that it resolves is judged at its own size; a claim off it within
# the rounding of the largest derivative of all groups (a sign flip of 7e-17 beside 2.3)
# cannot be told there
SELF_STEPS = (0.6180339887498949, 1.4142135623730951)
# ... and its scatter over this many pairs of nearby points: the rounding of the function's real
# intermediates, which its complex step holds too (a near fit's residuals)
SELF_PAIRS = 2
# ... and only a group whose derivatives are at most this share of the largest of all groups,
# too small for its differences to resolve: one that its differences miss for a staircase (a
# forward that rounds 1 - p at p = 1 - 1e-15, a near fit's residuals) holds that rounding in
# its complex step too, which the steps and the points nearby do not show (review C: 9 exact
# claims `wrong` against such complex steps, and a mutant that mirrors the rounding `correct`)
SELF_SHARE = 1e-8
WIDE_REACH = 1.0  # such a group's steps reach this times its parameters' size (1 below 1)
# in low precision, refinement stops once most sizable elements among the first this many
# refined are resolved worse than RESOLVE of their size: the verdict cannot become correct
HOPELESS_SAMPLE = 24
CONFIRM = 2  # elements confirmed wrong after which the others are not re-examined
PROGRESS_AFTER = 2.0  # seconds before a progress line is printed
FULL_MAX_ENTRIES = 4_000_000  # Jacobian entries held in memory at most
STRADDLED = 10.0  # a refined error bound this many times the first: a kink within the steps
# where no complex step is taken, an element (or a probe) confirmed off its reference is looked
# at along steps out to STAIR_REACH times its parameters' size (or the typical one's, if larger:
# naive softplus in float32 at z = -16 is flat for 5 to 10 times the weights' size), for up to
# STAIR_OUTPUTS of its outputs that are off: a jump of at most STAIR_ULPS of the code's rounding
# (float32's where it casts inside) at the function's scale (one, or its largest value) is a
# staircase (references.stairs): Mish in float32 at z = -16 jumps by z 2^-23 times its weight
STAIR_REACH = 64.0
STAIR_OUTPUTS = 4
STAIR_ULPS = 1024.0
# ... or STAIR_SHARE of that scale, where that is more: float64 code that rounds an intermediate
# far larger than its value (a residual base + X w - y with base 5e6, a term added and taken
# away again) steps by that intermediate's ulps, millions of its own (a larger jump counted as
# a stair only widens the reference's bound)
STAIR_SHARE = 2.0**-22
LINEARITY_SEED = 0  # the random cotangent at which a VJP's linearity is checked
GROUP_PROBES = 2  # probes of their own for groups far smaller than the largest
JOINT_DIRECTIONS = 4  # directions over several kinked elements along which the claim is held
JOINT_SEED = 0
# ... and one more where at most SMOOTH_RESIDUAL_MAX elements are kinked: the part of the claim
# that no difference of the gradients at points nearby explains (:func:`_smooth_residual`)
SMOOTH_RESIDUAL_MAX = 48
KINK_EVALS = 4 * 40  # at most, references.one_sided along one element (its levels, 2 sides)
# at an element's kink, a claim beyond both one-sided derivatives is held to the derivatives at
# random points nearby (references.nearby, with this seed): one of those farther than KINK_MIX
# of their gap (and its error) from both one-sided ones shows several kinks meeting there,
# whose valid subgradients mix their slopes
NEARBY_SEED = 0
KINK_MIX = 1e-3
STRADDLE = 0.25
MIXTURES = 2  # mixtures seen nearby before their range counts: one could be a fast oscillation
HULL_WEIGHT = 1e3  # the weight of the row that holds _nearest_in_hull's weights to a sum of 1
HULL_ROUNDS = 6  # directions from the hull of gradients seen nearby to a claim outside it
CLAIMED_MIN, CLAIMED_MAX = 1 << 10, 1 << 16  # evaluations a search for a claim's pieces spends
HULL_SEED = 5
DOMINANT_SMALL_HULL = 0.05  # the other coordinates' share at the piece along a direction
HULL_SPREADS = (0.05, 0.5, 1.0)  # ... and about it, where the function is not convex
HULL_ERROR = 1e-2  # of the largest gradient element: a point known no better is left out
HULL_SHRINK = 0.1  # the least share of the usual step at a point of the hull (_gradient_at)
HULL_CHECKS = 3  # random directions, one of which a point's gradient must agree with
# a claim at a kink decided wrong on the points nearby is looked at again at CONFIRM_POINTS
# (and as many spread over orders; a seed of their own) first, where that many evaluations fit in
# the budget: a piece that none of 32 points had entered (relu(a . p), relu(-a . p) and relu(b . p)
# in two parameters, a sector of about 31 degrees) held a valid claim that was called wrong
CONFIRM_POINTS = 64
CONFIRM_SEED = 2
CONFIRM_EVALS = 2 * CONFIRM_POINTS * 3 * 4  # points, three distances, central differences of 4
PART_POINTS = 8  # points nearby for a probe or part of several elements (references.nearby: 16)
# complex step used only where one call costs at most this many real ones: far above what NumPy
# code costs (0.4 to 3.8 real calls over the catalogue), so that the timed ratio does not switch
# the reference with the machine's load (at 4, nets on batches of 1,024 sat at 3.1 to 3.8)
COMPLEX_COST = 16.0
# A claim computed in float32 (or lower) is the derivative at the point its own rounding
# moved it to: where the derivatives jump within that reach by more than the claim's
# tolerance (ReLUs within float32 rounding of 0, beside units exactly at 0; the jumps seen
# count SPREAD_SAFETY times, as the claim's own scatter does), the claim cannot be judged at
# the point (see _Reach). Its reach is REACH_ULPS of its ulps of each element, as far as its
# scatter is measured, looked at along REACH_DIRECTIONS random directions (seed REACH_SEED);
# where the reference's central differences are used, at steps of REACH_STEP of it (their
# rounding over smaller steps hid jumps of 1e-3 in a loss of about 1; a kink within a step
# only blurs a value between its sides). Params whose epsilon is above LOW_PRECISION are low
# precision.
REACH_ULPS = SPREAD_ULPS
REACH_DIRECTIONS = 8
REACH_STEP = 0.25
REACH_SEED = 0
# A rise far narrower than the reach falls between the points where the derivatives are looked
# at (arctan(1e13 (w - c)), c rounded to the params' dtype inside the code, at w = c in
# float32: the float32 derivative 1e13, the float64 one at the float32 point 1e3, and at every
# point looked at at most 1e8; a right float32 claim was `wrong`). Along one element, where the
# code runs in float64, the reach is halved toward where fun changes most, down to its ulps
# (REACH_HALVINGS at most), and the float64 claim taken there: a value off its value at the
# point by SPIKE times that value, its change to the reach's ends and the jumps seen is such a
# rise (a smooth derivative changes across the reach about as much as to its ends: x = 1000 +-
# 0.01 in a variance, whose reach of 2e-3 moves it by as much as itself, is no rise).
REACH_HALVINGS = 64
SPIKE = 16.0
LOW_PRECISION = 1e-10
# Rounding that is the same at every nearby point escapes the scatter: a sharp softmax's 1 -
# 1e-8 is 1 in float32 wherever the claim is evaluated, and one rounded mean scatters only
# where a nudge carries it across a rounding boundary. Where the same code run in float64
# holds (within its tolerance, not jumping) and the low-precision claim alone is off by no more
# than BIAS_ULPS of its ulps of its group's largest value beyond its tolerance (or by its
# scatter as measured, beyond the cap for jumps and what the float64 run explains, where no
# kink within its reach moves the derivatives), it is undecided there, not wrong: 5 to 7 ulps in an
# independent review's correct float32 code, and as much as a float32-only step in float16
# moves the small elements (so it cannot pass either); a float32-only error of 1e-3 in any
# element above 1% of its group's largest is beyond the bound, still wrong.
# And wherever a float32 claim is checked beside the float64 run, a passing verdict needs the
# float32 claim to see an error of RESOLVE in each whole group (an error of float32 code alone,
# which the float64 run cannot see: a branch on the dtype, a step in lower precision)
BIAS_ULPS = 64.0
# The low-precision claim's scatter counts as rounding only as far as the same code's scatter
# in float64 explains it: the code's own amplification of rounding, scaled by the precisions'
# ratio, times EXPLAINED; beyond that, it is undecided as within the bias bound (see
# _undecided). A step in float16 done in float32 alone scatters 8,192 times float32's rounding
# and passed as rounding (a float16 softmax output, in probes); float32 data are exact in
# float64 products, so the float64 run's scatter can also fall short for correct code (a
# naive variance): neither is called wrong or correct on that scatter alone
EXPLAINED = 64.0
# the adjoint test holds up to this many outputs one by one (a random sample of them beyond)
ADJOINT_OUTPUTS = 4096


# ----------------------------------------------------------------------------- parameter groups


def _as_float_array(name: str, value) -> np.ndarray:
    if value is None:
        raise TypeError(f"parameter {name!r} is None; give a float array")
    if isinstance(value, tuple | list) and any(np.ndim(v) > 0 for v in value):
        raise TypeError(
            f"parameter {name!r} is a {type(value).__name__} of arrays; pass a dict of named "
            "arrays ({'W': W, 'b': b}), and have the gradient return one too"
        )
    if isinstance(value, dict):
        raise TypeError(
            f"parameter {name!r} is a dict inside params; give one flat dict of arrays "
            "({'layer1.W': W, ...})"
        )
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        raise TypeError(f"parameter {name!r} is not an array; give a float array") from None
    if np.iscomplexobj(array):
        raise TypeError(
            f"parameter {name!r} is complex; the check takes real parameters: pass the real "
            "and imaginary parts as two real arrays (a dict) to a function of both"
        )
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"parameter {name!r} is a masked array; the check takes plain arrays: pass "
            f"np.asarray({name}) and apply the mask inside fun and the gradient"
        )
    if isinstance(value, np.matrix):
        raise TypeError(
            f"parameter {name!r} is a numpy.matrix, whose * is a matrix product; pass "
            f"np.asarray({name}) and write the function with @"
        )
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"parameter {name!r} must be a float array, got {type(value).__name__} of dtype "
            f"{array.dtype}; pass it as np.asarray({name}, dtype=np.float64)"
        )
    if not np.issubdtype(array.dtype, np.floating):
        if isinstance(value, np.ndarray):
            cast = f"{name}.astype(np.float64)"
        else:  # a Python int has no astype
            cast = f"float({name})" if array.ndim == 0 else f"np.asarray({name}, dtype=float)"
        raise TypeError(
            f"parameter {name!r} has dtype {array.dtype}; gradients need floating point: "
            f"pass it as {cast}"
        )
    if array.size == 0:
        raise ValueError(f"parameter {name!r} is empty; give at least one value")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"parameter {name!r} holds NaN or inf at {where}; check the gradient at finite params"
        )
    return array


CACHE_LINE = 64  # bytes: the alignment of a copy's first element within one is the caller's
LAYOUT_SPAN = 64 * 2**20  # bytes: a view spanning more is copied in its memory order alone
KEEP_ALIVE = 256 * 2**20  # bytes of the check's own params kept alive to its end (_Groups)
ARRAY_OVERHEAD = 128  # bytes of an ndarray's object beside its data, about


def _empty_laid_out_as(array: np.ndarray, dtype=None) -> np.ndarray:
    """An empty array of ``array``'s shape (and dtype, or ``dtype``) laid out in memory as
    ``array`` is: its strides in elements (a view's gaps, reversed axes), its first element at
    the same place within a cache line. NumPy and BLAS take other paths for other layouts, so a
    pure function gives other bits for a copy of its params laid out otherwise: ``W @ x`` of a
    view ``buf[:, ::2]`` and of its contiguous copy differ by an ulp, and a correct claim was
    `not deterministic`. A layout whose elements overlap (a broadcast view) cannot be copied:
    the caller's memory order, as ``np.empty_like``, then."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    size = array.itemsize
    if array.ndim == 0 or array.size <= 1 or any(s % size for s in array.strides):
        return np.empty_like(array, dtype=dtype)
    steps = [s // size for s in array.strides]
    reach = 0  # axes by growing step: each step must pass what the smaller ones reach
    for step, n in sorted((abs(s), n) for s, n in zip(steps, array.shape, strict=True) if n > 1):
        if step <= reach:
            return np.empty_like(array, dtype=dtype)
        reach += step * (n - 1)
    low = sum(s * (n - 1) for s, n in zip(steps, array.shape, strict=True) if s < 0)
    high = sum(s * (n - 1) for s, n in zip(steps, array.shape, strict=True) if s > 0)
    item = dtype.itemsize
    if (high - low + 1) * item > LAYOUT_SPAN:  # a column of a large table: each element its
        return np.empty_like(array, dtype=dtype)  # own page, 31 ms a copy; the memory order
    buffer = np.empty(high - low + 1 + CACHE_LINE // item, dtype)
    # the lowest element's place within a cache line, in elements, as the caller's
    want = ((array.ctypes.data + low * size) % CACHE_LINE) // size * item % CACHE_LINE
    start = ((want - buffer.ctypes.data % CACHE_LINE) % CACHE_LINE) // item
    return np.ndarray(array.shape, dtype, buffer=buffer, offset=(start - low) * item,
                      strides=[s * item for s in steps])  # fmt: skip


def _copy_laid_out_as(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` laid out in memory as it is (:func:`_empty_laid_out_as`)."""
    out = _empty_laid_out_as(array)
    np.copyto(out, array)
    return out


def _overlap(a, b) -> bool:
    """Whether two of the caller's values are one array or views of one buffer."""
    if a is b:
        return True
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        return True


class _Groups:
    """Flattens an array or a dict of arrays into one float64 vector and back."""

    def __init__(self, params):
        if isinstance(params, Mapping) and not isinstance(params, dict):
            raise TypeError(
                f"params is a {type(params).__name__}; pass a dict of named arrays: dict(params)"
            )
        if isinstance(params, dict):
            if not params:
                raise ValueError("params is an empty dict; give at least one array")
            self.names = list(params)
            arrays = [_as_float_array(str(k), params[k]) for k in self.names]
            self.is_dict = True
        else:
            self.names = ["params"]
            arrays = [_as_float_array("params", params)]
            self.is_dict = False
        self._arrays = arrays
        self._named = set(self.names)
        # tied weights, one array under two names: each name is moved alone below (fun gets
        # copies), so each claim is fun's derivative by that name alone; said in a note
        self.tied = []
        if self.is_dict:
            mine = [params[k] for k in self.names]
            for i, j in itertools.combinations(range(len(mine)), 2):
                if _overlap(mine[i], mine[j]):
                    self.tied.append((self.names[i], self.names[j]))
        self._originals = [_copy_laid_out_as(a) for a in arrays]
        # every structure build hands to fun and the claim, alive to the end of the check (up
        # to KEEP_ALIVE bytes): Python gives a freed array's id to the next one, and a cache
        # keyed by id(params), which a training loop clears at each step, handed the references
        # values of other points (a correct claim 'cannot tell', its derivatives 'as large as
        # 3.5e+03' where they are below 2); distinct points now come in distinct arrays, as
        # fresh arrays do in a training loop
        self._alive, self._alive_bytes = [], 0
        self.shapes = [a.shape for a in arrays]
        self.dtypes = [a.dtype for a in arrays]
        self.offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(int)
        self.x = np.concatenate([a.astype(np.float64).ravel() for a in arrays])
        # (float64 of either byte order is float64: '>f8' params got a second, float64 line)
        self.low_precision = any(d.newbyteorder("=") != np.float64 for d in self.dtypes)
        top = float(np.abs(self.x).max(initial=0.0))
        if top > LARGEST_PARAM:  # an OverflowError from the references' squares, 1e160 on
            raise ValueError(
                f"params holds values as large as {top:.3g}; the references square steps of "
                f"that size past float64's range: check the function of params scaled to at "
                f"most {LARGEST_PARAM:g} instead"
            )

    def private(self):
        """A copy of the params the check started from, arrays of their own dtypes and shapes."""
        # laid out as the caller's: a sum over a Fortran-ordered array and over its C-ordered
        # copy round differently, and a correct claim was `not deterministic` (40-60% of seeds)
        arrays = [_copy_laid_out_as(a) for a in self._originals]
        return dict(zip(self.names, arrays, strict=True)) if self.is_dict else arrays[0]

    def as_arrays(self, params):
        """params as fun and the claim get them: the caller's own arrays (a cache keyed by
        id(params) is seen), a list or a number as an array of its own."""
        if self.is_dict:
            if all(isinstance(params[k], np.ndarray) for k in self.names):
                return params
            return {k: params[k] if isinstance(params[k], np.ndarray)
                    else _copy_laid_out_as(original)
                    for k, original in zip(self.names, self._originals, strict=True)}  # fmt: skip
        return params if isinstance(params, np.ndarray) else _copy_laid_out_as(self._originals[0])

    def restore(self, params) -> None:
        """The values the check started from, back in the caller's arrays (and dict) where fun
        or the claim wrote into them in place: the check leaves params as it found them."""
        if self.is_dict:  # keys fun or the claim added to the caller's dict (a cache) go
            for extra in [k for k in params if k not in self._named]:
                del params[extra]
        for i, name in enumerate(self.names):
            if self.is_dict and params.get(name) is not self._arrays[i]:
                params[name] = self._arrays[i]  # an entry replaced: the caller's own array back
            array = params[name] if self.is_dict else params
            if isinstance(array, np.ndarray) and array.flags.writeable and not np.array_equal(
                array, self._originals[i], equal_nan=True
            ):
                np.copyto(array, self._originals[i], casting="unsafe")

    def build(self, flat, dtype=None):
        """The parameter structure from a flat vector: own dtypes (None), a dtype, or as is
        (False, for complex points)."""
        parts = []
        for i, (shape, own) in enumerate(zip(self.shapes, self.dtypes, strict=True)):
            part = flat[self.offsets[i] : self.offsets[i + 1]].reshape(shape)
            kind = part.dtype if dtype is False else own if dtype is None else dtype
            # laid out as the caller's array (see private); a contiguous one as empty_like
            # lays it out, at a thirtieth of the cost (build runs for every evaluation)
            original = self._originals[i]
            contiguous = original.flags.c_contiguous or original.flags.f_contiguous
            out = (np.empty_like(original, dtype=kind) if contiguous
                   else _empty_laid_out_as(original, kind))  # fmt: skip
            np.copyto(out, part, casting="unsafe")
            parts.append(out)
        built = dict(zip(self.names, parts, strict=True)) if self.is_dict else parts[0]
        size = sum(part.nbytes + ARRAY_OVERHEAD for part in parts)  # (tiny arrays count too)
        if self._alive_bytes + size <= KEEP_ALIVE:
            self._alive.append(built)
            self._alive_bytes += size
        return built

    def cast(self, flat):
        """The flat point rounded to the parameters' own dtypes."""
        out = flat.copy()
        for i, own in enumerate(self.dtypes):
            piece = slice(self.offsets[i], self.offsets[i + 1])
            out[piece] = flat[piece].astype(own).astype(np.float64)
        return out

    def flatten_like(self, value, what: str) -> tuple[np.ndarray, float]:
        """A claimed gradient (same structure as params) as a flat float64 vector, and the
        epsilon of the dtype it came in."""
        if value is None:
            raise TypeError(
                f"{what} returned None; it must return an array shaped like params (a missing "
                "return statement?)"
            )
        if isinstance(value, tuple) and self.is_dict and len(value) == len(self.names):
            raise TypeError(
                f"{what} returned a tuple of {len(value)} for params of {len(self.names)} "
                f"names; return a dict with params' names ({', '.join(map(repr, self.names))})"
            )
        if isinstance(value, tuple):
            raise TypeError(
                f"{what} returned a tuple of {len(value)}; return only the gradient, shaped "
                "like params (a (gradient, loss) pair? take its first item)"
            )
        if self.is_dict:
            if not isinstance(value, dict) or set(value) != set(self.names):
                got = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise ValueError(f"{what} must return a dict with keys {self.names}, got {got}")
            values = [value[k] for k in self.names]
        else:
            if isinstance(value, dict):
                raise TypeError(f"{what} returned a dict; params is an array, return an array")
            values = [value]
        flat, eps = [], 0.0
        for name, shape, raw in zip(self.names, self.shapes, values, strict=True):
            v = raw
            if v is None:
                raise TypeError(f"{what} returned None for parameter {name!r}; return an array")
            v = np.asarray(v)
            if v.dtype == object or not np.issubdtype(v.dtype, np.number):
                kind = (f"{type(raw).__name__} of dtype {v.dtype}" if isinstance(raw, np.ndarray)
                        else type(raw).__name__)  # fmt: skip
                raise TypeError(
                    f"{what} returned {kind} for parameter {name!r}; return a float array "
                    "shaped like it"
                )
            if v.shape != shape:
                raise ValueError(
                    f"{what} returned shape {v.shape} for parameter {name!r} of shape {shape}; "
                    "it must have the parameter's shape"
                )
            if np.iscomplexobj(v):
                raise TypeError(f"{what} returned complex values for parameter {name!r}")
            floating = np.issubdtype(v.dtype, np.floating)
            eps = max(eps, float(np.finfo(v.dtype if floating else np.float64).eps))
            flat.append(v.astype(np.float64).ravel())
        return np.concatenate(flat), eps

    def locate(self, flat_index: int) -> tuple[str, tuple]:
        group = int(np.searchsorted(self.offsets, flat_index, side="right") - 1)
        local = flat_index - self.offsets[group]
        return self.names[group], tuple(int(i) for i in np.unravel_index(local, self.shapes[group]))


def _output(value, what="fun") -> np.ndarray:
    if value is None:
        raise TypeError(f"{what} returned None; it must return a float (a missing return?)")
    try:
        # a copy: code may return one buffer that its next call overwrites (an array-valued
        # function writing into a preallocated output), which kept as it is changed under the
        # check ("fun gave different values for the same input", from an outside audit)
        out = np.array(value)
    except ValueError:  # parts of different shapes: NumPy's "inhomogeneous shape" named no fix
        if isinstance(value, tuple):
            raise TypeError(f"{what} returned a tuple of {len(value)} parts of different "
                            "shapes; return only the value (a (loss, gradient) pair? take its "
                            "first item)") from None  # fmt: skip
        raise TypeError(f"{what} must return floats, got a {type(value).__name__} of parts of "
                        "different shapes") from None  # fmt: skip
    if out.size == 0:
        raise ValueError(f"{what} returned an empty array; it must return at least one value")
    if out.dtype == object or not np.issubdtype(out.dtype, np.number):
        raise TypeError(f"{what} must return floats, got {type(value).__name__}")
    if np.iscomplexobj(out):
        raise TypeError(f"{what} returned complex values at real params; return real floats")
    if not np.issubdtype(out.dtype, np.floating):
        raise TypeError(
            f"{what} returned {out.dtype}; a derivative needs a float result (compute the loss "
            "in floating point)"
        )
    if not np.isfinite(out).all():
        raise ValueError(
            f"{what} returned NaN or inf at params; check it there before its gradient"
        )
    return out


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """(max abs, max rel) difference of two results of the same call, None if bitwise equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape == b.shape and np.array_equal(a, b):
        return None
    if a.shape != b.shape:
        return float("inf"), float("inf")
    diff = float(np.abs(a - b).max())
    return diff, diff / max(float(np.abs(a).max()), 1e-300)


# what checks called with progress=None do: None, lines after PROGRESS_AFTER s; False, none
_PROGRESS_DEFAULT = contextvars.ContextVar("progress_default", default=None)


@contextlib.contextmanager
def progress_lines(enabled: bool | None):
    """Within it, checks called with ``progress=None`` print progress lines as ``enabled`` says:
    a caller that shows its own progress (``backprop-bench gradcheck``) turns theirs off."""
    token = _PROGRESS_DEFAULT.set(enabled)
    try:
        yield
    finally:
        _PROGRESS_DEFAULT.reset(token)


class _Progress:
    """A line on stderr every PROGRESS_AFTER seconds once a check has run that long."""

    def __init__(self, enabled, start=None):
        self.start = time.perf_counter() if start is None else start
        self.enabled = _PROGRESS_DEFAULT.get() if enabled is None else enabled
        self.last = self.start

    def __call__(self, what: str, done: int, total: int):
        now = time.perf_counter()
        if self.enabled is False or now - self.last < PROGRESS_AFTER:
            return
        self.last = now
        print(
            f"gradient check: {what} {done}/{total} ({now - self.start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    def calls(self, n: int):
        """Between the steps above, the calls of fun so far: a slow function's one column or
        probe may take many calls (a first line came after 61 s at a second a call)."""
        now = time.perf_counter()
        if self.enabled is False or now - self.last < PROGRESS_AFTER:
            return
        self.last = now
        print(f"gradient check: evaluations so far: {n} ({now - self.start:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip


# ------------------------------------------------------------------------------------ claims


class _Claim:
    """One claimed VJP: the user's, as called, or the same code run on float64 params.

    value(u) gives (flat claim, epsilon of its dtype); spread(u, base) the largest change of the
    claim at pairs of points a few dozen ulps away (its rounding scatter), elementwise.
    """

    def __init__(self, label, vjp, groups, params, x, rel_step, rng, inner_eps=0.0):
        self.label, self.vjp, self.groups, self.params = label, vjp, groups, params
        self.nearby = []
        # each element moved by a few of its own ulps (zeros by a few ulps of their group)
        scale = np.abs(x).copy()
        for g in range(len(groups.names)):
            piece = scale[groups.offsets[g] : groups.offsets[g + 1]]
            nonzero = piece[piece > 0]
            piece[piece == 0] = R.typical_size(nonzero)
        for _ in range(SPREAD_PAIRS):
            nudge = rng.choice([-1.0, 1.0], size=x.size) * rng.uniform(1, 2, size=x.size)
            step = nudge * SPREAD_ULPS * rel_step * scale
            self.nearby.append((x + step, x - step))
        # the nudges' share taken closer in (SCATTERED_ULPS)
        self.x = x
        self.closer = min(1 / SCATTERED_CLOSER,
                          SCATTERED_ULPS * inner_eps / (SPREAD_ULPS * rel_step))
        self.input_eps = rel_step  # a claim is no more precise than the params it was given
        self.code_eps = 0.0  # ... nor than the constants its code holds (see _claims)
        # a claim on low-precision params: how far its rounding reaches, per element (a few
        # dozen of its ulps, as the nudges above; None in float64)
        low = groups.low_precision and rel_step > LOW_PRECISION
        self.dtype = max(groups.dtypes, key=lambda d: np.finfo(d).eps).name if low else ""
        self.reach = REACH_ULPS * rel_step * scale if low else None
        self._cache = {}

    def value(self, u, params=None):
        out = self.vjp(self.params if params is None else params, u)
        return self.groups.flatten_like(out, self.label.split()[0])

    def with_spread(self, u, build):
        """(claim, epsilon, scatter) for cotangent u; cached, since a scalar function's probes
        all use the same one.

        The scatter is the largest |c(x + d) + c(x - d) - 2 c(x)| over SPREAD_PAIRS nudges d of
        SPREAD_ULPS ulps: the smooth change of a claim, right or wrong, cancels to second order,
        while its rounding does not (the intermediate values round differently a few dozen
        ulps away; one ulp away they often round the same, and the scatter would be zero).
        """
        key = np.asarray(u, dtype=np.float64).tobytes()
        if key not in self._cache:
            base, eps = self.value(u)
            eps = max(eps, self.input_eps, self.code_eps)
            worst = self._seconds(u, build, base, self.nearby)[0]
            self._cache = {key: (base, eps, worst)}
        return self._cache[key]

    def _seconds(self, u, build, base, pairs):
        """The largest |c(x + d) + c(x - d) - 2 c(x)| over the pairs, and the midpoints."""
        worst, middles = np.zeros_like(base), []
        for pair in pairs:
            try:
                with np.errstate(all="ignore"):
                    plus, _ = self.value(u, build(pair[0]))
                    minus, _ = self.value(u, build(pair[1]))
            except (ValueError, FloatingPointError):  # cannot be evaluated nearby
                continue
            second = plus + minus - 2 * base
            if np.isfinite(second).all():
                worst = np.maximum(worst, np.abs(second))
                middles.append((plus.astype(np.float64) + minus) / 2)
        return worst, middles

    def scattered(self, u, build):
        """The elements whose scatter for cotangent u is rounding's rather than a jump at x
        (see SCATTERED_SHARE)."""
        base, _ = self.value(u)
        worst, middles = self._seconds(u, build, base, self.nearby)
        spanned = np.ptp(middles, axis=0) if len(middles) > 1 else np.zeros_like(worst)
        scattered = (worst > 0) & (spanned >= SCATTERED_SHARE * worst)
        if scattered.any():
            moves = [(plus - self.x) * self.closer for plus, _ in self.nearby]
            closer, _ = self._seconds(u, build, base, [(self.x + d, self.x - d) for d in moves])
            # (the claim's, over its elements: one element's largest of 6 pairs is noisy)
            kept = float(np.median(closer[worst > 0] / worst[worst > 0]))
            scattered &= kept >= SCATTERED_KEPT
        return scattered


def _claims(vjp, groups, params, generic_grad, rel_steps, rng, name="grad", inner_eps=0.0):
    """The claims to check: as called; and in float64 where the params are of lower precision
    and the code is dtype-generic. inner_eps: the rounding of the precision the code computes
    in (see SCATTERED_ULPS)."""
    out = [(_Claim(name, vjp, groups, params, groups.x, rel_steps[0], rng, inner_eps),
            groups.build)]  # fmt: skip
    if generic_grad:
        p64 = groups.build(groups.x, dtype=np.float64)
        c = _Claim(f"{name} in float64", vjp, groups, p64, groups.x, rel_steps[1], rng,
                   inner_eps)  # fmt: skip
        # float32 code may hold float32 constants and buffers (np.float32(0.1), activations
        # kept in float32): run on float64 params they are off by a few float32 ulps, which
        # its float32 users never see. The float64 run is held to its own scatter and to
        # ELEMENT_ULPS float32 ulps of each element and FLOOR_ULPS of its group's largest:
        # still 1e-3 of any element above about 1e-4 of the largest, beyond the float32 claim
        c.code_eps = max(float(np.finfo(d).eps) for d in groups.dtypes)
        out.append((c, lambda flat: groups.build(flat, dtype=np.float64)))
    return out


# --------------------------------------------------------------------------------- the checks


def check_vjp(
    fun,
    vjp,
    params,
    *,
    jvp=None,
    seed: int = 0,
    budget: float = BUDGET,
    mode: str | None = None,
    probes: int = PROBES,
    rng_seed: int | None = None,
    use_scipy: bool = False,
    progress: bool | None = None,
    _claim: str = "vjp",
    _first=None,
) -> GradCheckResult:
    """Check ``vjp(params, u)`` (= J^T u, shaped like params) against references of ``fun``.

    fun      : params -> float array of any shape (the outputs)
    vjp      : (params, u) -> structure like params, for u shaped like fun's output
    jvp      : optional (params, v) -> array shaped like fun's output, for the adjoint test
    budget   : seconds (math.inf: none), a guard for slow functions: a full Jacobian that would
               take longer is replaced by probes where they take less time (above some 30
               parameters), and refinement stops after it (each with a note); checks of fast
               functions never reach it, so their verdicts do not depend on the machine. It
               does not bound the probes themselves: a check of a slow function takes what its
               probes take
    mode     : "full" or "probes" to force one; None: full up to FULL_PARAMS parameters
    probes   : random directions (each element +-1) of a check by probes; 1 + log2(n) more
               are always added (all ones, and the bit patterns of the elements' indices: a
               swap of two elements cancels in half the random ones), and a few for each
               group far smaller than the largest
    rng_seed : if given, fun and vjp are called with rng=np.random.default_rng(rng_seed)
    progress : print a progress line to stderr on long checks (None: after PROGRESS_AFTER s)
    """
    started = time.perf_counter()
    if mode not in (None, "full", "probes"):
        raise ValueError(f"mode must be 'full', 'probes' or None, got {mode!r}")
    _check_seeds(seed, rng_seed)
    if not (isinstance(budget, int | float) and not isinstance(budget, bool) and budget > 0):
        # (NaN fails > 0; inf: no guard, the check's plan by the problem alone on every machine)
        raise ValueError(f"budget must be a positive number of seconds (or math.inf for no "
                         f"limit), got {budget!r}")  # fmt: skip
    if not (isinstance(probes, int) and 1 <= probes <= MAX_PROBES):
        raise ValueError(f"probes must be an integer from 1 to {MAX_PROBES:,}, got {probes!r}")
    for name, value in (("use_scipy", use_scipy), ("progress", progress)):
        if not (isinstance(value, bool) or value is None and name == "progress"):
            # a string "no" was taken for True
            raise TypeError(f"{name} must be True or False" + (" or None" if name == "progress"
                            else "") + f", got {value!r}")  # fmt: skip
    if not callable(fun) or not callable(vjp):
        raise TypeError("fun and the claimed derivative must be callables")
    if jvp is not None and not callable(jvp):  # found before the check runs, not after it
        raise TypeError(f"jvp must be a callable (params, v) -> J v, or None; got "
                        f"{type(jvp).__name__}")  # (an array's whole repr, many lines)
    if rng_seed is not None:
        fun, vjp = _frozen(fun, rng_seed), _frozen(vjp, rng_seed)
        jvp = None if jvp is None else _frozen(jvp, rng_seed)
    groups = _Groups(params)
    params = groups.as_arrays(params)
    try:
        # the references' own arithmetic meets overflow and NaN where fun has no value: no
        # RuntimeWarning of it reaches the caller (under -W error one stopped the check)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return _check_vjp(fun, vjp, jvp, params, groups, seed, budget, mode, probes,
                              use_scipy, progress, _claim, started, _first)  # fmt: skip
    finally:
        groups.restore(params)


def _check_seeds(seed, rng_seed) -> None:
    for name, value, optional in (("seed", seed, False), ("rng_seed", rng_seed, True)):
        if not (optional and value is None) and not (
            isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0
        ):
            raise ValueError(
                f"{name} must be a non-negative integer{' or None' if optional else ''}, got "
                f"{value!r}"
            )


def _check_vjp(fun, vjp, jvp, params, groups, seed, budget, mode, probes, use_scipy, progress,
               _claim, started, first=None) -> GradCheckResult:  # fmt: skip
    """check_vjp's work on its validated arguments: fun and vjp are called with the caller's
    own arrays (a cache keyed by id(params) is seen), whose values check_vjp puts back after.
    first: fun's value at a copy of params from a call before (check_gradient's, which looks
    at its shape), held to the same values as the calls here."""
    rng = np.random.default_rng(seed)

    # ---- determinism, and the cost of one call
    t0 = time.perf_counter()
    out0 = _output(fun(params))
    t_fun = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = _output(fun(params))
    t_fun = min(t_fun, time.perf_counter() - t0)
    if _written(groups, params):
        return _nondeterministic("fun", (np.inf, np.inf), "two calls in a row", started,
                                 "wrote into params in place")  # fmt: skip
    if (d := _difference(out0, again)) is not None:
        return _nondeterministic("fun", d, "two calls in a row", started)
    if first is not None and (d := _difference(np.reshape(first, -1), out0.reshape(-1))):
        # (a first call that warms up a cache, a lazy setup that returns something else once)
        return _nondeterministic("fun", d, "its first call and the next", started)
    out_shape, m = out0.shape, out0.size
    u_check = (rng.standard_normal(m) if m > 1 else np.ones(1)).reshape(out_shape)
    u_kept = u_check.copy()
    # the claim is called at other params first: a result cached by shape, by whichever call
    # came first, is that call's here (the checker's own first call filled it, and passed it);
    # it is called there again at the end, where a first call unlike the others shows
    # (one array for both calls, alive throughout: a cache keyed by id(params) must not meet
    # its id again in another array, as Python gives a freed array's id to the next one)
    away = groups.build(_elsewhere(groups.x))
    elsewhere_errors = []

    def at_elsewhere():
        try:
            with np.errstate(all="ignore"):
                return groups.flatten_like(vjp(away, u_check.copy()), _claim)[0]
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - not defined there: said in a note
            elsewhere_errors.append(error)
            return None

    g_elsewhere = at_elsewhere()
    first = vjp(params, u_check)
    for what, changed in (("params", _written(groups, params)),
                          ("the cotangent u", not np.array_equal(u_check, u_kept))):  # fmt: skip
        if changed:
            return _nondeterministic(_claim, (np.inf, np.inf), "its first call", started,
                                     f"wrote into {what} in place")  # fmt: skip
    g_first, _ = groups.flatten_like(first, _claim)
    if not np.isfinite(g_first).all():  # a claim of NaN or inf is a wrong claim, said where
        k = int(np.flatnonzero(~np.isfinite(g_first))[0])
        name, index = groups.locate(k)
        report = GroupReport(name, groups.shapes[groups.names.index(name)], _claim, index,
                             float("inf"), float("inf"), 0.0, 0.0, False, 0.0)  # fmt: skip
        return GradCheckResult(
            WRONG, "finite values", "none needed", [report],
            notes=[f"{_claim} returned {g_first[k]} at {name}{index}"],
            seconds=time.perf_counter() - started,
        )  # fmt: skip
    g_again, _ = groups.flatten_like(vjp(params, u_check), _claim)
    if (d := _difference(g_first, g_again)) is not None:
        return _nondeterministic(_claim, d, "two calls in a row", started)
    if (found := _state_beyond_values(groups, fun, vjp, params, out0, g_first, u_check,
                                      _claim)) is not None:  # fmt: skip
        return _nondeterministic(*found[:3], started, *found[3:])

    # ---- which dtype the reference is taken in
    out_eps = float(np.finfo(out0.dtype).eps)
    generic_fun = generic_grad = not groups.low_precision and out0.dtype == np.float64
    if groups.low_precision:
        p64 = groups.build(groups.x, dtype=np.float64)
        generic_fun = _returns_float64(lambda: _output(fun(p64)))
        generic_grad = _returns_float64(lambda: vjp(p64, u_check.astype(np.float64)), dict_ok=True)
    if generic_fun:
        f = R.Evaluator(
            lambda flat: groups.build(flat, dtype=np.float64), fun, lambda x: x, m,
            build_complex=lambda z: groups.build(z, dtype=False),
        )  # fmt: skip
        out_eps = R.EPS
    else:
        f = R.Evaluator(groups.build, fun, groups.cast, m)
    show = _Progress(progress, started)
    f.on_call = show.calls
    x = groups.cast(groups.x) if not generic_fun else groups.x
    f.float32_values = generic_fun
    f0, _ = f.at(x)
    t0 = time.perf_counter()
    rounds_inputs = []
    noise = R.noise_level(f, x, f0, out_eps, rng, rounds_inputs)
    if rounds_inputs and generic_fun:
        f.rounds_to = np.float32
        if f.float32_values and np.any(f0 != 0):
            # float() of a float32 result: its values are float32 numbers, rounded as float32's
            # (log sum w^2 cast inside, at w of 1e-15: flat over the steps that move it by less
            # than its ulp, whose differences of 0 were taken for exact with the error of
            # float64's rounding, so that a claim of 0 was `correct` against 5e13)
            out_eps = EPS32
            noise = np.maximum(noise, out_eps * np.abs(f0))
    f.float32_values = None
    f.out_eps = out_eps
    f.inner_eps = max(out_eps, EPS32) if rounds_inputs else out_eps
    t_eval = max(t_fun, (time.perf_counter() - t0) / f.calls)  # with the evaluator overhead
    # complex step: one call timed; complex arithmetic can cost hundreds of real calls
    # (the fastest of three calls: a busy machine must not change which reference is used)
    complex_ok = False
    if generic_fun:
        e0, t_complex = np.eye(1, x.size).ravel(), np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            complex_ok = R.complex_step(f, x, e0) is not None
            t_complex = min(t_complex, time.perf_counter() - t0)
            if not complex_ok:
                break
        complex_ok &= t_complex <= COMPLEX_COST * t_eval
    rel_noise = float(np.max(noise / np.maximum(np.abs(f0), 1e-300)))
    own_eps = max(float(np.finfo(d).eps) for d in groups.dtypes)
    # the claim's rounding is measured a few dozen ulps of its params away; code that rounds
    # its inputs to float32 inside does not move at float64 ulps (fun did not: rounds_inputs),
    # and is nudged at the scale of its measured rounding instead. Anything else is nudged at
    # its own ulps: a float64 function noisier than that (sin(1e6 x), a margin 1e-8 from a
    # hinge) would otherwise be nudged across its own oscillations and kinks
    noise_cap = min(rel_noise, 1e-6) if rounds_inputs else 0.0
    rel_steps = (max(own_eps, noise_cap), max(R.EPS, noise_cap))
    claims = _claims(vjp, groups, params, generic_grad and groups.low_precision, rel_steps, rng,
                     _claim, max(f.inner_eps, own_eps))  # fmt: skip

    n = x.size
    full_cost = n * (5 if complex_ok else 4) * t_eval
    # the probes' evaluations, about: PROBE_EVALS along each direction (without the small
    # groups' own); fewer than the full Jacobian's only above some 30 elements
    probe_cost = _plain_directions(n, probes) * PROBE_EVALS * t_eval
    guarded = False
    if mode is None:
        # by the problem's size alone; the time of one call only guards against slow functions,
        # and only where probes take less time (20 elements at 0.02 s a call: the full
        # Jacobian 2 s, its 14 probes 2.6 s)
        mode = "full" if n <= FULL_PARAMS and n * m <= FULL_MAX_ENTRIES else "probes"
        guarded = mode == "full" and full_cost > budget and probe_cost < full_cost
        mode = "probes" if guarded else mode
    if mode == "full":
        result = _full(groups, f, claims, x, f0, noise, m, out_shape, generic_fun, complex_ok,
                       use_scipy, show, budget)  # fmt: skip
    else:
        result = _probes(groups, f, claims, x, f0, noise, m, out_shape,
                         generic_fun and not rounds_inputs, complex_ok,
                         rng, probes, show, budget)  # fmt: skip
    if guarded:
        result.notes.append(
            f"one call takes {t_eval:.2g} s, so the full Jacobian would take about "
            f"{full_cost:.2g} s, over budget={budget:g}: probes were used instead, a choice this "
            "machine's speed made (mode='full' or a larger budget makes it on every machine)"
        )
    for first, second in groups.tied:
        result.notes.append(
            f"params {first!r} and {second!r} are one array (tied weights?): each name was "
            "checked as a parameter of its own, moved alone, so its claim is fun's derivative "
            "by that name alone, not their sum (for the sum, pass the array once and let fun "
            "use it twice)"
        )
    if f.raised:
        result.notes.append(
            f"fun raised {_error_text(f.first_error)} at {f.raised} of the {f.calls} points "
            "the check chose near params: taken as points outside its domain, where it has no "
            "value (as np.log's NaN says)"
        )
    if not generic_fun:
        result.notes.append(
            f"fun computes in {out0.dtype} even for float64 params: the reference is taken in "
            f"its own precision (measured rounding {rel_noise:.1g} of its value); written to "
            "compute in the params' dtype (no astype(np.float32) inside), it would be checked "
            "in float64"
        )
    elif groups.low_precision and not generic_grad:
        result.notes.append(
            "grad does not run on float64 params (or returns a lower precision there): only its "
            "own-precision values were checked"
        )
    if jvp is not None and result.verdict != NOT_DETERMINISTIC:
        result.adjoint = _adjoint(groups, claims[0][0], jvp, params, n, m, out_shape, rng)
        if result.adjoint.passed and len(claims) > 1 and _returns_float64(
            lambda: jvp(claims[1][0].params, groups.build(np.ones(n), dtype=np.float64))
        ):
            # dtype-generic float32 code: the same test in float64, where a float32 JVP's
            # rounding (a bound of 512 float32 ulps of the norms) no longer hides a 1e-2 error
            result.adjoint = _adjoint(groups, claims[1][0], jvp, claims[1][0].params, n, m,
                                      out_shape, rng, float64=True)  # fmt: skip
        if not result.adjoint.passed:
            result.verdict = WRONG

    # ---- determinism once more: state that drifts with the number of calls
    if (d := _difference(out0, _output(fun(params)))) is not None:
        return _nondeterministic("fun", d, "after the check", started)
    later, _ = groups.flatten_like(vjp(params, u_check), _claim)
    if (d := _difference(g_first, later)) is not None:
        return _nondeterministic(_claim, d, "after the check", started)
    if g_elsewhere is not None and (d := _difference(g_elsewhere, at_elsewhere())) is not None:
        return _nondeterministic(_claim, d, "its first call (at other params) and a later one "
                                 "there", started)  # fmt: skip
    if elsewhere_errors:
        result.notes.append(
            f"{_claim} raised {_error_text(elsewhere_errors[0])} at other params (each "
            "element moved by 1e-3 of itself), where it is called first: a result kept from "
            "its first call (a cache keyed by shape) was not looked for"
        )
    result.evaluations = f.calls
    result.seconds = time.perf_counter() - started
    return result


def _frozen(fn, rng_seed):
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin: nothing to say in advance
        signature = None
    if signature is not None and "rng" not in signature.parameters and not any(
        p.kind == p.VAR_KEYWORD for p in signature.parameters.values()
    ):
        name = getattr(fn, "__name__", "a callable")
        raise TypeError(
            f"rng_seed is given but {name} takes no keyword rng: give it one (rng=None) and "
            "draw its randomness from it, or leave rng_seed out"
        )

    def call(*args):
        return fn(*args, rng=np.random.default_rng(rng_seed))

    return call


def _returns_float64(call, dict_ok=False) -> bool:
    try:
        value = call()
    except Exception:  # noqa: BLE001 - code that cannot run in float64 is not generic
        return False
    values = list(value.values()) if dict_ok and isinstance(value, dict) else [value]
    try:
        return all(np.asarray(v).dtype == np.float64 for v in values)
    except Exception:  # noqa: BLE001
        return False


def _relative(error: float, reference: float) -> float:
    """error / |reference|; an error against a zero reference is infinitely relative."""
    if reference != 0:
        return error / abs(reference)
    return 0.0 if error == 0 else float("inf")


def _written(groups, params) -> bool:
    """Whether params no longer hold the values the check started from (an in-place write)."""
    arrays = [params[k] for k in groups.names] if groups.is_dict else [params]
    now = np.concatenate([np.asarray(a).astype(np.float64).ravel() for a in arrays])
    return not np.array_equal(now, groups.x)


def _error_text(error: Exception) -> str:
    """An exception in a note: its type, and its message's first 80 characters if it has one."""
    return f"{type(error).__name__}: {str(error)[:80]}" if str(error) else type(error).__name__


def _elsewhere(x):
    """Other params: every element moved by 1e-3 of itself (zeros by 1e-3), signs alternating."""
    return x + 1e-3 * np.where(x != 0, np.abs(x), 1.0) * (-1.0) ** np.arange(x.size)


def _state_beyond_values(groups, fun, vjp, params, out0, g_first, u, claim_name):
    """(which, difference, when, cause, fix) where fun or the claim is not a function of the
    params' values, found by two more calls each; None otherwise.

    - A copy of params, same values, other arrays: a result cached by id(params) gives the
      old values after an optimiser's in-place step (a stale claim, called correct in float32
      before, where the fresh values a few ulps away made its scatter as large as its error).
    - The claim again after fun ran at other params: a backward pass that reads what the last
      forward pass saved (a layer object) follows fun around."""
    copy = groups.build(groups.x)
    cause = "gave other values for a copy of params holding the same values"
    fix = ("key a cache by the values, not by id(params) (an in-place update leaves the id "
           "as it was)")  # fmt: skip
    if (d := _difference(out0, _output(fun(copy)))) is not None:
        return "fun", d, "a copy of params", cause, fix
    if (d := _difference(g_first, groups.flatten_like(vjp(copy, u), claim_name)[0])) is not None:
        return claim_name, d, "a copy of params", cause, fix
    elsewhere = groups.build(_elsewhere(groups.x))  # one array for both calls there
    try:
        with np.errstate(all="ignore"):
            fun(elsewhere)
    except Exception:  # noqa: BLE001 - not defined there: nothing to learn from it
        return None
    # fun again at params: a value that carries some of the last call's (a running average, a
    # term of the previous loss) came back the same in two calls in a row at params
    if (d := _difference(out0, _output(fun(params)))) is not None:
        return ("fun", d, "after it ran at other params", "changed with its last call",
                "compute the value from params alone, not from state kept between calls")
    with np.errstate(all="ignore"):
        fun(elsewhere)
    later = groups.flatten_like(vjp(params, u), claim_name)[0]
    if (d := _difference(g_first, later)) is not None:
        return (claim_name, d, "after fun ran at other params",
                "changed with the last call of fun", "compute what it needs from params "
                "inside it, not from state saved by the forward pass")  # fmt: skip
    return None



def _nondeterministic(which, difference, when, started, cause="",
                      fix="return new arrays instead") -> GradCheckResult:  # fmt: skip
    abs_diff, rel_diff = difference
    return GradCheckResult(
        NOT_DETERMINISTIC,
        "determinism",
        "none (the function is not a function of params alone)",
        nondeterminism=Nondeterminism(which, abs_diff, rel_diff, when, cause, fix),
        floor=float("inf"),
        seconds=time.perf_counter() - started,
    )


def check_gradient(
    fun,
    grad,
    params,
    *,
    seed: int = 0,
    budget: float = BUDGET,
    mode: str | None = None,
    probes: int = PROBES,
    rng_seed: int | None = None,
    use_scipy: bool = False,
    progress: bool | None = None,
) -> GradCheckResult:
    """Check ``grad(params)`` (shaped like params) against references of scalar ``fun(params)``.

    Options as :func:`check_vjp`; with ``rng_seed`` both are called with ``rng=`` a fresh
    ``np.random.default_rng(rng_seed)`` (dropout masks held fixed).
    """
    if not callable(fun) or not callable(grad):
        raise TypeError("fun and grad must be callables: check_gradient(fun, grad, params)")
    _check_seeds(seed, rng_seed)
    groups = _Groups(params)  # bad params are named before fun sees them
    probe = fun if rng_seed is None else _frozen(fun, rng_seed)
    if rng_seed is not None:
        _frozen(grad, rng_seed)  # a grad without the keyword is named before anything runs
    out = _output(probe(groups.private()))
    if out.size != 1:
        raise ValueError(
            f"fun returned shape {out.shape}, not a scalar; for array-valued "
            "functions use check_vjp(fun, vjp, params)"
        )

    def as_vjp(p, u, **kw):
        g = grad(p, **kw)
        scale = float(np.asarray(u).reshape(-1)[0])
        if isinstance(g, dict):
            return {k: _scaled(v, scale) for k, v in g.items()}
        return _scaled(g, scale)

    def as_fun(p, **kw):
        return np.asarray(fun(p, **kw)).reshape(1)

    return check_vjp(
        as_fun,
        as_vjp,
        params,
        seed=seed,
        budget=budget,
        mode=mode,
        probes=probes,
        rng_seed=rng_seed,
        use_scipy=use_scipy,
        progress=progress,
        _claim="grad",
        _first=out,
    )


def _scaled(g, scale):
    """g times a cotangent's scale, in g's own dtype; 1.0 leaves g's values untouched."""
    if scale == 1.0 or g is None or isinstance(g, tuple):
        return g  # as returned: the validation names what it is
    try:
        array = np.asarray(g)
    except ValueError:  # ragged
        return g
    if not np.issubdtype(array.dtype, np.number):
        return g  # as returned: the validation names what it is
    return array * np.asarray(scale, dtype=array.dtype)


def assert_gradients_close(fun, grad, params, **options) -> GradCheckResult:
    """pytest helper: raise AssertionError with the full report unless the check passes (the
    failure shown at the caller's line: pytest hides this frame)."""
    __tracebackhide__ = True
    result = check_gradient(fun, grad, params, **options)
    if not result.passed:
        raise AssertionError(result.report())
    return result


def _adjoint(groups, claim, jvp, params, n, m, out_shape, rng, float64=False) -> ProbeReport:
    """The dot-product test <u, J v> = <J^T u, v> between the JVP and the VJP; float64=True:
    float32 code run on float64 params, allowed ELEMENT_ULPS float32 ulps of each product's
    terms for its float32 constants.

    Held for a random u, and output by output (u a unit vector, for up to ADJOINT_OUTPUTS
    outputs, a random sample of them beyond): a bound over all outputs' terms let a JVP 1e-3
    off on one output of 800 pass, where each output's own terms do not."""
    v = rng.standard_normal(n)
    u = rng.standard_normal(m)
    raw = jvp(params, groups.build(v, dtype=np.float64 if float64 else None))
    # fun's own shape (a flat or transposed J v of the right size was reshaped and judged)
    shaped = np.shape(raw) == tuple(out_shape) or m == 1 and np.size(raw) == 1
    if raw is None or not shaped or not np.issubdtype(np.asarray(raw).dtype, np.number):
        got = "None" if raw is None else f"{type(raw).__name__} of shape {np.shape(raw)}"
        raise ValueError(
            f"jvp returned {got}; it must return J v, an array shaped like fun's output "
            f"{out_shape}"
        )
    raw = np.asarray(raw)
    forward = raw.astype(np.float64).reshape(-1)
    g, eps_claim = claim.value(u.reshape(out_shape))
    # both products are only as precise as the lowest precision in play: the params', the
    # JVP's and the VJP's (a float32 tanh's two sides agree to 4e-8, not to float64's 1e-13)
    floating = np.issubdtype(raw.dtype, np.floating)
    eps = max([eps_claim, claim.input_eps, float(np.finfo(raw.dtype).eps) if floating else 0.0]
              + ([] if float64 else [float(np.finfo(d).eps) for d in groups.dtypes]))  # fmt: skip

    def held(u, g, label):
        lhs, rhs = float(np.dot(u, forward)), float(np.dot(g, v))
        norms = np.linalg.norm(u) * np.linalg.norm(forward) + np.linalg.norm(g) * np.linalg.norm(v)
        bound = float(64 * 8 * eps * norms)
        if float64:
            terms = float(np.abs(u) @ np.abs(forward) + np.abs(g) @ np.abs(v))
            bound += ELEMENT_ULPS * claim.code_eps * terms
        return ProbeReport(lhs, rhs, 0.0, bound, abs(lhs - rhs) <= bound, claim=label)

    report = held(u, g, claim.label)
    if m == 1:
        return report
    outputs = np.arange(m) if m <= ADJOINT_OUTPUTS else np.sort(
        rng.choice(m, ADJOINT_OUTPUTS, replace=False))  # fmt: skip
    for i in outputs:  # the first output that fails names where; else the whole test's report
        e = np.zeros(m)
        e[i] = 1.0
        g_i, _ = claim.value(e.reshape(out_shape))
        where = tuple(int(k) for k in np.unravel_index(i, out_shape))
        one = held(e, g_i, f"{claim.label}, output {where}")
        if not one.passed:
            return one
    return report


# ----------------------------------------------------------------------- the full Jacobian


def _rounding(claim_values, spread, eps, scale):
    return (
        SPREAD_SAFETY * spread
        + ELEMENT_ULPS * eps * np.abs(claim_values)
        + FLOOR_ULPS * eps * scale
        + (UNDERFLOW32 if eps >= EPS32 else 1e-300)
    )


# The float64 run of float32 code is allowed FLOOR_ULPS float32 ulps of its group's largest
# value (float32 constants and buffers in its code, see _claims). Where the group's elements,
# all but a few, agree with the reference to within FLOAT64_SHARE of a float32 ulp (two
# independent computations: float32 rounding in the code would show by a few ulps), the code
# computes them in float64 throughout, and that allowance is float64's: one
# derivative of 1e6 among derivatives of 0.5 to 2 (log w at w = 1e-6) allowed each of them 0.24,
# and a claim 1% off at one of 2 was `correct` in float32 and in float64. Judged on at least
# FLOAT64_ELEMENTS elements, by their median.
FLOAT64_SHARE = 1 / 64
FLOAT64_ELEMENTS = 3


def _float64_throughout(J, ref, err, eps) -> bool:
    """Whether the float64 run J of float32 code (eps: float32's) shows no float32 rounding
    against the reference (ref, err) in this group (see FLOAT64_SHARE)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sharp = np.isfinite(ref) & (ref != 0) & np.isfinite(err)
        if int(sharp.sum()) < FLOAT64_ELEMENTS:
            return False
        off = np.abs(J[sharp] - ref[sharp]) / (eps * np.abs(ref[sharp]))
    return bool(np.median(off) <= FLOAT64_SHARE)


def _low_claim(claims, generic) -> int | None:
    """The index of the claim on low-precision params whose rounding reach is looked at (see
    REACH_ULPS), where the reference is taken in float64; None otherwise."""
    return 0 if generic and claims[0][0].reach is not None else None


def _jumps(d, at, rounding=0.0, at_error=0.0):
    """Per element, the jump of derivatives d (shape (4, elements): at x + r, x + r/2, x - r,
    x - r/2) from their values ``at`` the point, the smooth change taken out to third order;
    less SAFETY times the differences' error (each d's ``rounding``, ``at``'s error).

    Each side's second difference (d(x + r) - 2 d(x + r/2) + d(x), and its mirror) holds the
    function's curvature as well as a kink's jump on that side; their difference, and the
    central second difference less twice their sum, hold the jumps alone: a kink on one side
    shows in both, two kinks either side of a hinge in one or the other. (The sides' second
    differences themselves took a log-variance's curvature over 32 float32 ulps of data at 1000
    +- 1 for kinks.)"""
    plus, half, minus, back = (d[k] - at for k in range(4))
    one_side, other = plus - 2 * half, minus - 2 * back
    return np.maximum(np.abs(one_side - other) - SAFETY * 6 * rounding,
                      np.abs(plus + minus - 2 * (one_side + other))
                      - SAFETY * (10 * rounding + 6 * at_error))  # fmt: skip


class _Reach:
    """How far kinks within a low-precision claim's rounding reach (see REACH_ULPS) move the
    derivatives: looked at along REACH_DIRECTIONS random directions r (each element half to
    all of its reach, random signs), at x + r, x + r/2, x - r and x - r/2.

    With the smooth change of a derivative d taken out to third order, combinations of the
    five values show a kink's jump on either side (:func:`_jumps`). Where the code runs in
    float64 (the second claim, held to its own tolerance at the point), it gives the
    derivatives of every element at once, and along a direction the elements' jumps add up
    (each kink may turn either way in the claim's own rounding). Elsewhere the reference's
    central differences along the direction stand in, along half as many directions, with
    steps of REACH_STEP of the reach, less their error bounds. Nothing is drawn or evaluated
    until a claim needs it."""

    def __init__(self, claims, low, x, seed):
        self.claim = claims[low][0]
        self.float64 = claims[1] if len(claims) > 1 else None
        self.x, self.seed = x, seed
        self._cache, self._spikes = {}, {}

    def _points(self):
        """Per direction, the four points x + r, x + r/2, x - r, x - r/2 (drawn as needed, the
        same for every call)."""
        rng = np.random.default_rng(self.seed)
        n = self.x.size
        for _ in range(REACH_DIRECTIONS if self.float64 is not None else REACH_DIRECTIONS // 2):
            r = rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.5, 1.0, size=n) * self.claim.reach
            yield (self.x + r, self.x + r / 2, self.x - r, self.x - r / 2)

    def jump(self, f, w, noise, u, output, ref, ref_err) -> float:
        """How far the derivative along w jumps within reach, for f's ``output`` (f scalarised
        by the cotangent u: output 0); ref +- ref_err: the reference at the point, where the
        code does not run in float64. Along one element, at least a narrow rise's (SPIKE)."""
        seen = self._jump(f, w, noise, u, output, ref, ref_err)
        if self.float64 is None or np.count_nonzero(w) != 1:
            return seen
        return max(seen, self._spike(f, w, u, output, seen))

    def _spike(self, f, w, u, output, seen) -> float:
        """How far the float64 claim, at the place within reach along w where fun changes
        most (found by halving the reach, REACH_HALVINGS), is off its value at the point; 0
        unless SPIKE times beyond that value, its change to the reach's ends and the jumps
        ``seen``."""
        j = int(np.flatnonzero(w)[0])
        key = (id(f), j, output, np.asarray(u, dtype=np.float64).tobytes())
        if key not in self._spikes:
            t = float(self.claim.reach[j] / abs(w[j]))
            lo, hi = -t, t
            f_lo, x_lo = f.at(self.x + lo * w)
            f_hi, x_hi = f.at(self.x + hi * w)
            with np.errstate(all="ignore"):
                for _ in range(REACH_HALVINGS):
                    mid = (lo + hi) / 2
                    f_mid, x_mid = f.at(self.x + mid * w)
                    if np.array_equal(x_mid, x_lo) or np.array_equal(x_mid, x_hi):
                        break
                    if abs(f_mid[output] - f_lo[output]) >= abs(f_hi[output] - f_mid[output]):
                        hi, f_hi, x_hi = mid, f_mid, x_mid
                    else:
                        lo, f_lo, x_lo = mid, f_mid, x_mid
                claim, build = self.float64
                at = float(claim.value(u)[0][j])
                there = float(claim.value(u, build(self.x + (lo + hi) / 2 * w))[0][j])
                # ... beyond its smooth change, as at the reach's ends
                ends = max(abs(float(claim.value(u, build(self.x + side * t * w))[0][j]) - at)
                           for side in (-1.0, 1.0))  # fmt: skip
                off = abs(there - at)
            self._spikes[key] = (off, abs(at) + ends)
        off, beside = self._spikes[key]
        return off if np.isfinite(off) and off > SPIKE * (beside + seen) else 0.0

    def _jump(self, f, w, noise, u, output, ref, ref_err) -> float:
        if self.float64 is not None:
            key = np.asarray(u, dtype=np.float64).tobytes()
            if key not in self._cache:
                claim, build = self.float64
                with np.errstate(all="ignore"):
                    at = claim.value(u)[0]
                    jumps = np.zeros_like(at)
                    for points in self._points():
                        d = [claim.value(u, build(p))[0] for p in points]
                        jumps = np.fmax(jumps, _jumps(d, at))
                self._cache = {key: np.where(np.isfinite(jumps), jumps, 0.0)}
            return float(self._cache[key] @ np.abs(w))
        support = w != 0
        h = REACH_STEP * float(np.min(self.claim.reach[support] / np.abs(w[support])))
        key = (id(f), w.tobytes())
        if key not in self._cache:
            self._cache = {key: np.array([[(f.at(p + h * w)[0] - f.at(p - h * w)[0]) / (2 * h)
                                           for p in points] for points in self._points()])}
        # each central difference's rounding: two values' noise over twice the step along w
        rounding = 2 * float(noise[output]) / (2 * h * float(np.abs(w).max()))
        jumps = [_jumps(d[:, output], ref, rounding, ref_err) for d in self._cache[key]]
        jumps = np.array(jumps)[np.isfinite(jumps)]
        return float(jumps.max()) if jumps.size else 0.0


def _full(groups, f, claims, x, f0, noise, m, out_shape, generic, complex_ok, use_scipy, show,
          budget):  # fmt: skip
    n = x.size
    J_ref = np.empty((m, n))
    J_err = np.empty((m, n))
    notes = []
    begun, calls_begun = time.perf_counter(), f.calls

    def dense_affordable(evals=CONFIRM_EVALS):
        """Whether ``evals`` more evaluations fit in the budget at this function's pace."""
        pace = (time.perf_counter() - begun) / max(1, f.calls - calls_begun)
        return pace * evals <= budget

    cs_ok = complex_ok
    used_cs = np.zeros(n, dtype=bool)
    # per output: a complex step that a central difference confirmed (where some outputs of a
    # column disagree, used_cs is not set, and the others keep it: see refine and one_sided)
    trusted = np.zeros((m, n), dtype=bool)
    # per output: the error below which an output the first step did not move resolves nothing
    frozen = np.zeros((m, n))
    flat_at = np.zeros((m, n), dtype=bool)  # ... where no complex step takes over
    cs_values = {}
    steps = np.empty(n)
    kinked = np.zeros(n, dtype=bool)  # second differences say: a kink at x along this element
    widened = np.zeros(n, dtype=bool)  # the complex step agrees only within the steps' scatter
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        steps[j] = _step(f, x, e, f0, noise)
        d = R.central(f, x, e, noise, steps[j], f0=f0)
        if 0 < abs(x[j]) < 1 and not np.all(SAFETY * d.error <= RESOLVE * np.abs(d.value)):
            # not finite a step away, or not resolved there: a parameter near the edge of the
            # function's domain (the log of a probability of 1e-13, steps of 1e-5) or far below
            # 1 (p ** 2 at 1e-30, whose values at the steps round off 1e-26): steps of its own
            # size, where those give the smaller error (no output's larger: a VJP's rows at a
            # ReLU's kink, exact at either step, had errors 1e4 times larger at the small one
            # where another row gained). The usual step's error is at least its disagreement
            # with them: tanh(w / 1e-30) saturates at every step of 1e-5, whose two quotients
            # agreed on 1e5 +- 2e4 where its own steps give the derivative, 4e29 +- 1e20
            own = R.central(f, x, e, noise, steps[j] * abs(x[j]), f0=f0)
            # (and only where they resolve an output that the usual step did not: both steps
            # can straddle a ReLU's kink 1e-7 away, and the smaller one's refinement was worse)
            with np.errstate(invalid="ignore"):
                held = np.maximum(d.error, np.abs(own.value - d.value))
                resolves = SAFETY * own.error <= RESOLVE * np.abs(own.value)
                resolves &= ~(SAFETY * d.error <= RESOLVE * np.abs(d.value))
            better = np.all(own.error <= held) and np.any(resolves)
            if np.all(np.isfinite(own.value)) and (better or not np.all(np.isfinite(d.value))):
                steps[j], d = steps[j] * abs(x[j]), own
        kinked[j] = bool(generic and d.kink is not None and d.kink.any())
        J_ref[:, j], J_err[:, j] = d.value, d.error
        if cs_ok:
            cs = R.complex_step(f, x, e)
            if cs is None or isinstance(cs, str):
                cs_ok = False
                if isinstance(cs, str):
                    notes.append(f"complex step not used: {cs}")
            else:
                cs_values[j] = cs
                if not np.all(np.abs(cs.value - d.value) <= SAFETY * d.error):
                    # rounding at the steps' scale that the noise missed, or code that is not
                    # complex-safe: the central differences' scatter at steps around h says.
                    # An output that moves at none of them where the complex step says it
                    # does rounds its change away there (log(1 + e^z) at -40): its differences
                    # resolve nothing finer than the complex step's own value. And where the
                    # two differ by less than ROUNDED_AWAY of the column's largest
                    # derivative, an output's rounding in a far larger intermediate can bend
                    # the function as computed (exact GELU at -8: 1 + erf, frozen at 1.2e-15
                    # over steps of 0.01, makes the output linear in W with a slope of -9e-16;
                    # the complex step's 6e-14 is the derivative): the complex step is taken,
                    # held to the disagreement as its error
                    scatter, flat = R.step_scatter(f, x, e, steps[j])
                    gap = np.abs(cs.value - d.value)
                    rounded = flat | (gap <= ROUNDED_AWAY * float(np.abs(cs.value).max()))
                    d.error = np.where(rounded, np.maximum(d.error + scatter, gap),
                                       d.error + scatter)  # fmt: skip
                    J_err[:, j] = d.error
                    # (re-examined all the same: the scatter of steps that straddle a kink 1e-7
                    # away also lets the complex step in, with an error that smaller steps cut)
                    widened[j] = True
                agree = np.abs(cs.value - d.value) <= SAFETY * d.error
                trusted[:, j] = agree
                J_ref[:, j] = np.where(agree, cs.value, d.value)
                J_err[:, j] = np.where(agree, _confirmed(cs, d), d.error)
                used_cs[j] = bool(agree.all())
        if j not in cs_values and d.flat is not None:
            flat_at[:, j] = d.flat
        show("columns", j + 1, n)

    # an output that the first step does not move, where no complex step takes over (the
    # function's own float32, code that is not complex-safe), may round its change away in an
    # intermediate far larger than itself: log(1 + e^z) cast to float32 is exactly 0 at z = -20
    # at every step, where its derivative is 2e-9 (an exact VJP was wrong against 0 +- 1e-300);
    # at -14 it moves at twice the step, and a fit over smaller ones said 0 +- 2e-11. It is held
    # no finer than one rounding of its group's largest derivative (not its column's: a column
    # whose outputs are all far in the tail is small; nor the errors of the column's outputs
    # that move, which can straddle a kink)
    for g in range(len(groups.names)):
        cols = slice(groups.offsets[g], groups.offsets[g + 1])
        rounding = f.out_eps * float(np.abs(J_ref[:, cols]).max(initial=0.0))
        for j in range(cols.start, cols.stop):
            if flat_at[:, j].any():
                frozen[:, j] = np.where(flat_at[:, j], rounding, 0.0)
                J_err[:, j] = np.maximum(J_err[:, j], frozen[:, j])

    # ---- the claims, row by row, and their measured rounding
    evaluated = []
    scattered_rows = {}  # (claim, output) -> the elements that scatter as rounding does

    def scattered(k, i):
        """Claim k's elements whose scatter in output i is rounding's (SCATTERED_SHARE)."""
        if (k, i) not in scattered_rows:
            claim, build = claims[k]
            u = np.zeros(m)
            u[i] = 1.0
            scattered_rows[k, i] = claim.scattered(u.reshape(out_shape), build)
        return scattered_rows[k, i]
    for claim, build in claims:
        J = np.empty((m, n))
        S = np.empty((m, n))
        eps = 0.0
        for i in range(m):
            u = np.zeros(m)
            u[i] = 1.0
            u = u.reshape(out_shape)
            J[i], eps_i, S[i] = claim.with_spread(u, build)
            eps = max(eps, eps_i)
        evaluated.append((claim.label, J, S, eps))

    # the low-precision claim's elements within its rounding reach of kinks (see REACH_ULPS):
    # not judged in that claim; and the claims' scatter as measured, before any cap (see
    # tolerance): the low-precision claim's is taken as far as the float64 run explains it
    low = _low_claim(claims, generic)
    held = np.zeros((m, n), dtype=bool)
    raw = [S.copy() for _, _, S, _ in evaluated]
    if low is not None and len(evaluated) > 1:
        evaluated[low][2][:] = _explained(evaluated[low][2], evaluated[1][2], evaluated[low][3])

    def jump_level(J, eps, cols):
        """The scatter beyond which a claim jumps (JUMP times its rounding allowance)."""
        size = np.maximum(np.abs(J_ref[:, cols]), np.abs(J[:, cols]))
        largest = size.max(axis=1, keepdims=True)  # in each output's row (tolerance)
        return JUMP * (ELEMENT_ULPS * eps * size + FLOOR_ULPS * eps * largest)

    sized_groups = set()  # groups below their differences that their complex steps size

    def tolerance(J, S, eps, cols, k=None):
        # the group's largest value in each output's row: a VJP's outputs may differ by orders
        # (a loss beside a weight decay of 1e-7), and a row 1e-6 of another's was allowed its
        # rounding, so that a float32 VJP that left out or flipped the small output passed
        # (elements without a reference, NaN, left out: one made the whole row's tolerance NaN,
        # and every element of it failed)
        scale = np.fmax.reduce(np.fmax(np.abs(J_ref[:, cols]), np.abs(J[:, cols])), axis=1,
                               keepdims=True)  # fmt: skip
        # a group known to be 0 (ZERO_ULPS) holds the rounding of the sums that cancel to it,
        # whose terms are of the other groups' size: a bias before a batch norm, a shift of
        # every logit, whose float32 claims hold 1e-8 of it, `wrong` against 2 of their own ulps
        # (a group that its complex steps size is not: see SELF_STEPS)
        g = int(np.searchsorted(groups.offsets, cols.start, side="right") - 1)
        known = ZERO_ULPS * R.EPS * float(np.abs(J_ref).max())
        if g not in sized_groups and _known_zero(
            J_ref[:, cols], J_err[:, cols], trusted[:, cols], known
        ):
            scale = np.fmax.reduce(np.fmax(np.abs(J_ref), np.abs(J)), axis=1, keepdims=True)
        tol = SAFETY * J_err[:, cols] + _rounding(J[:, cols], S[:, cols], eps, scale)
        tol = np.where(np.isfinite(J_ref[:, cols]), tol, np.nan)  # no reference: not judged
        if k == 1 and eps > R.EPS and _float64_throughout(J[:, cols], J_ref[:, cols],
                                                          J_err[:, cols], eps):  # fmt: skip
            # the float64 run of code that shows no float32 rounding in this group: its
            # allowance at the group's largest value is float64's (below)
            tol += FLOOR_ULPS * (R.EPS - eps) * scale
        if k is None or k != low or len(evaluated) < 2:
            return tol
        # the low-precision claim, where it alone is off and the same code in float64 holds
        # (steady, within its tolerance): its rounding bias bound (see BIAS_ULPS)
        _, J64, S64, eps64 = evaluated[1]
        holds = (np.abs(J64[:, cols] - J_ref[:, cols]) <= tolerance(J64, S64, eps64, cols)) & (
            raw[1][:, cols] <= jump_level(J64, eps64, cols))
        wide = holds & (np.abs(J[:, cols] - J_ref[:, cols]) > tol)
        # and its scatter beyond the cap for jumps, where no kink within its reach moves the
        # derivatives (there it jumps as float32 code takes other sides of kinks); a value
        # within the bound alone is undecided (see _undecided)
        extra = np.where(wide, np.maximum(raw[k][:, cols] - S[:, cols], 0), 0)
        for i, c in zip(*np.nonzero((extra > 0) & (calm[:, cols] < 0)), strict=True):
            calm_at(int(i), cols.start + int(c), float(tol[i, c]))
        extra = np.where(calm[:, cols] == 0, 0, extra)
        return np.where(wide, tol + BIAS_ULPS * eps * scale + SPREAD_SAFETY * extra, tol)

    calm = np.full((m, n), -1, dtype=np.int8)  # 1 calm, 0 not, -1 not looked at

    def calm_at(i, j, tol):
        """Whether no kink within the low-precision claim's reach moves its derivative (output
        i, element j) by more than ``tol`` (as within_rounding asks); looked at once."""
        e = np.zeros(n)
        e[j] = 1.0
        u = np.zeros(m)
        u[i] = 1.0
        jump = reach.jump(f, e, noise, u.reshape(out_shape), i, J_ref[i, j], J_err[i, j])
        calm[i, j] = SPREAD_SAFETY * jump <= tol

    def suspects():
        bad = np.zeros(n, dtype=bool)
        unresolved = np.zeros(n, dtype=bool)
        jumps = np.zeros(n, dtype=bool)
        ratio = np.zeros(n)
        for k, (_, J, S, eps) in enumerate(evaluated):
            for g in range(len(groups.names)):
                cols = slice(groups.offsets[g], groups.offsets[g + 1])
                tol = tolerance(J, S, eps, cols, k)
                err = np.abs(J[:, cols] - J_ref[:, cols])
                bad[cols] |= (err > tol).any(axis=0)
                ratio[cols] = np.maximum(ratio[cols], (err / tol).max(axis=0))
                size = np.maximum(np.abs(J_ref[:, cols]), np.abs(J[:, cols]))
                # elements far below the group's largest need only see an error as large as
                # themselves (x2); the others, one of RESOLVE of their size
                scale_g = float(size.max())
                wanted = np.where(size >= SMALL * scale_g, RESOLVE, 0.5) * size
                unresolved[cols] |= (SAFETY * J_err[:, cols] > wanted).any(axis=0)
                # a claim that jumps between points a few ulps apart far beyond rounding sits
                # on a kink of its own (relu'(0)): look at the function's one-sided derivatives
                jumps[cols] |= (S[:, cols] > jump_level(J, eps, cols)).any(axis=0)
        return bad, unresolved | jumps, jumps, ratio

    def hopeless(sample):
        """Most sizable elements among ``sample`` (refined) resolved worse than RESOLVE."""
        worse = []
        for k in sample:
            g = int(np.searchsorted(groups.offsets, k, side="right") - 1)
            scale = float(np.abs(J_ref[:, groups.offsets[g] : groups.offsets[g + 1]]).max())
            size = float(np.abs(J_ref[:, k]).max())
            if size >= NOTABLE * scale and size > 0:
                worse.append(SAFETY * float(J_err[:, k].max()) > RESOLVE * size)
        return len(worse) >= HOPELESS_SAMPLE // 3 and np.mean(worse) > 0.5

    def column_unresolved(j):
        g = int(np.searchsorted(groups.offsets, j, side="right") - 1)
        cols = slice(groups.offsets[g], groups.offsets[g + 1])
        size = np.abs(J_ref[:, cols])
        scale_g = float(size.max())
        wanted = np.where(size[:, j - cols.start] >= SMALL * scale_g, RESOLVE, 0.5)
        return bool(np.any(SAFETY * J_err[:, j] > wanted * size[:, j - cols.start]))

    # ---- suspects: a better reference (Ridders), then one-sided differences (kinks)
    # an element whose complex step agrees with its central difference has a reference
    # confirmed two independent ways, at a point where the function is analytic: no kink there
    refined = np.zeros(n, dtype=bool)
    kinks = []
    not_complex_safe = []
    nearby_rng = np.random.default_rng(NEARBY_SEED)
    kink_mask = np.zeros((m, n), dtype=bool)
    convex = np.zeros((m, n), dtype=bool)  # at a kink: the slope rises through it
    reach = _Reach(claims, low, x, REACH_SEED) if low is not None else None

    def masked(k):
        return kink_mask | held if k == low else kink_mask

    def column_off(j):
        """Per claim, where its column j is off the reference beyond its tolerance."""
        g = int(np.searchsorted(groups.offsets, j, side="right") - 1)
        cols = slice(groups.offsets[g], groups.offsets[g + 1])
        out = []
        for k, (_, J, S, eps) in enumerate(evaluated):
            tol = tolerance(J, S, eps, cols, k)[:, j - cols.start]
            out.append((np.where(masked(k)[:, j], 0.0, np.abs(J[:, j] - J_ref[:, j])) > tol, tol))
        return out

    def column_bad(j):
        return any(off.any() for off, _ in column_off(j))

    def within_rounding(j):
        """Outputs where the low-precision claim alone is off at element j and the derivatives
        jump within its rounding reach by more than its tolerance: held there, undecided."""
        offs = column_off(j)
        alone = offs[low][0].copy()
        for k, (off, _) in enumerate(offs):
            if k != low:
                alone &= ~off
        if not alone.any():
            return
        e = np.zeros(n)
        e[j] = 1.0
        name, index = groups.locate(j)
        for i in np.flatnonzero(alone):
            u = np.zeros(m)
            u[i] = 1.0
            jump = reach.jump(f, e, noise, u.reshape(out_shape), int(i), J_ref[i, j],
                              J_err[i, j])  # fmt: skip
            if SPREAD_SAFETY * jump > offs[low][1][i]:
                held[i, j] = True
                kinks.append(KinkReport(name, index, int(i), J_ref[i, j] - jump, J_ref[i, j] + jump,
                                        float(evaluated[low][1][i, j]), False, None, False,
                                        reach.claim.dtype))  # fmt: skip

    smooth_steps = {}  # element -> the widest step its refined central differences agree at

    def refine(j, step=None, level=None):
        e = np.zeros(n)
        e[j] = 1.0
        d = R.refine(f, x, e, noise if level is None else level,
                     steps[j] if step is None else step, fit=not generic)  # fmt: skip
        refined[j] = True
        if d.smooth_step is not None:
            smooth_steps[j] = min(smooth_steps.get(j, np.inf), d.smooth_step)
        if j in cs_values:
            cs = cs_values[j]
            if np.all(np.abs(cs.value - d.value) <= SAFETY * d.error):
                confirmed = _confirmed(cs, d)
                J_err[:, j] = np.minimum(J_err[:, j], confirmed) if used_cs[j] else confirmed
                J_ref[:, j] = cs.value
                used_cs[j] = True
                trusted[:, j] = True
                return
            if used_cs[j]:
                return
            if np.all(d.error < 1e-3 * np.maximum(np.abs(d.value), 1e-300)):
                not_complex_safe.append(groups.locate(j))  # one note for all, at the end
            # outputs whose complex step either estimate confirms keep it: an output that
            # rounds its change away (exact GELU at -17 in float64, exactly 0 at every step)
            # has a Ridders estimate of 0 +- 1e-294, where the derivative is 4e-66
            agree = np.abs(cs.value - d.value) <= SAFETY * d.error
            fresh = agree & ~trusted[:, j]
            J_ref[:, j] = np.where(trusted[:, j], J_ref[:, j], np.where(agree, cs.value, d.value))
            J_err[:, j] = np.where(trusted[:, j], J_err[:, j],
                                   np.where(fresh, _confirmed(cs, d), d.error))  # fmt: skip
            trusted[:, j] |= agree
            return
        # the first estimate's two steps can agree by accident (both straddling a kink, so
        # its error bound is too small): the refined one, held to smaller steps, replaces it
        J_ref[:, j], J_err[:, j] = d.value, np.maximum(d.error, frozen[:, j])

    def beyond_unresolved(j):
        """Whether some claim lies beyond a reference of column j that cannot be told from 0."""
        with np.errstate(invalid="ignore"):
            vague = np.abs(J_ref[:, j]) <= SAFETY * J_err[:, j]
            return any(bool(np.any(vague & (np.abs(J[:, j]) > np.abs(J_ref[:, j])
                                            + SAFETY * J_err[:, j])))
                       for _, J, _, _ in evaluated)  # fmt: skip

    def steep(j):
        """An element whose claim is off a reference that fun's own values refute: fun rises
        across x by more than the reference's slope explains over the distance (a jump as
        _say_jumps looks for it). tanh(1e13 (w - 0.3)) at 0.3: central differences at steps of
        1e-9 and wider see only its two plateaus, 10 +- 35 where the derivative is 1e13, and a
        right claim was `wrong`. Refined from the largest step at which fun is smooth there
        (references.smooth_step); where it is smooth at none, down to its ulps, it jumps at x
        and has no derivative there: no reference (the claim is not judged, and the note of
        _say_jumps says why). True where either was found (no kink to look for at wider steps)."""
        e = np.zeros(n)
        e[j] = 1.0
        found = _smooth_scale(f, x, e, noise, float(np.nanmax(np.abs(J_ref[:, j]), initial=0.0)))
        if found is None and beyond_unresolved(j):
            # a rise too wide for a jump at references.jump's steps, but narrower than the
            # first step (tanh(1e5 (w - 0.3)) in float32, its reference 0 +- 28): looked at
            # from that step down, where the claim lies beyond a reference that resolves nothing
            step = R.smooth_step(f, x, e, steps[j])
            if step is not None and step < steps[j]:
                found = step, _level_at(f, x, e, noise, step)
        if found is None:
            return False
        step, level = found
        if step is None:
            J_err[:, j] = np.inf
            trusted[:, j] = False
            return True
        refine(j, step, level)
        return True

    def widen(j):
        """An element of a group whose every derivative lies below its reference's accuracy:
        differences at steps up to WIDE_REACH times its size, where a change that rounds away
        at the usual steps rises above rounding (tanh saturated at -15: its derivative of 5e-12
        moves the loss by less than an ulp at steps of 1e-3, and by 5e-13 at 0.1). Taken only
        within the reference's error it already has (wide steps can cross kinks), and a complex
        step that it confirms keeps its own accuracy."""
        e = np.zeros(n)
        e[j] = 1.0
        top = WIDE_REACH * max(1.0, abs(float(x[j])))
        d = R.refine(f, x, e, noise, top / 10.0**R.DECADES_UP, fit=not generic)
        # steps that wide straddle kinks (a hinge at x: its central differences agree on the
        # mean of both slopes at every step, and a valid claim of one side was `wrong`): taken
        # only where the one-sided derivatives from steps as wide agree
        left, right = R.one_sided(f, x, e, f0, noise, top / 2)
        with np.errstate(invalid="ignore"):
            better = np.isfinite(d.value) & (d.error < J_err[:, j]) & smooth_sides(left, right)
            better &= np.abs(d.value - J_ref[:, j]) <= SAFETY * (J_err[:, j] + d.error)
        # an output that moved at none of the steps is a tread as long as the steps (log(1 +
        # e^-m) at margins of 37 to 60 is exactly 0 in float64 however far w moves there, its
        # derivative 1e-19), or a parameter the function does not use (a hinge that is
        # inactive, a unit dead for every sample, a bias before a batch norm): taken as 0
        # only where every claim is 0 too, within ZERO_ULPS of its own ulps of the largest
        # derivative, and the function computes in float64, whose treads hold slopes of its
        # own ulps (tanh at -19); in float32 a tread holds far more (1 - tanh(z) ** 2 is 0 in
        # float32 at z = -15, where the derivative is 4e-13)
        claimed_zero = all(np.all(np.abs(J[:, j]) <= ZERO_ULPS * eps * overall)
                           for _, J, _, eps in evaluated)  # fmt: skip
        better &= (d.value != 0) | (claimed_zero and f.inner_eps <= R.EPS)
        if j in cs_values:
            # a complex step that the wide steps confirm keeps its own accuracy; one that they
            # do not is not replaced by them (either can be the one that is off)
            cs = cs_values[j]
            agree = better & (np.abs(cs.value - d.value) <= SAFETY * d.error)
            J_ref[:, j] = np.where(agree, cs.value, J_ref[:, j])
            J_err[:, j] = np.where(agree, np.minimum(J_err[:, j], _confirmed(cs, d)), J_err[:, j])
            better &= ~agree & ~trusted[:, j]
            trusted[:, j] |= agree
        J_ref[:, j] = np.where(better, d.value, J_ref[:, j])
        J_err[:, j] = np.where(better, np.maximum(d.error, frozen[:, j]), J_err[:, j])

    largest_jump = _largest_stair(f, f0)
    stairs_seen = []  # (element, output, jump, distance, bound)

    def staircase(j):
        """Where no complex step says what the derivative is, an output off the claim may sit on
        a tread of a staircase (references.stairs), whose slope every step shorter than the
        tread finds: the reference is held no finer than the jump over its distance."""
        off = np.zeros(m, dtype=bool)
        for o, _ in column_off(j):
            off |= o
        if not off.any():
            return
        worst = np.abs(J_ref[:, j] - evaluated[0][1][:, j])
        outputs = sorted(np.flatnonzero(off), key=lambda i: -worst[i])[:STAIR_OUTPUTS]
        e = np.zeros(n)
        e[j] = 1.0
        found = R.stairs(f, x, e, f0, noise, steps[j], outputs, J_ref[:, j], _stair_reach(x, e),
                         largest_jump, R.smallest_refined_step(f, x, e, steps[j]))  # fmt: skip
        for i, (jump, distance, bound) in found.items():
            J_err[i, j] = max(J_err[i, j], bound)
            frozen[i, j] = max(frozen[i, j], bound)  # (no finer at wider steps either: widen)
            stairs_seen.append((j, i, jump, distance, bound))

    sides_at = {}  # element -> its one-sided derivatives (references.one_sided), once
    searched = [0]  # evaluations the pieces one element leads took (leading)

    def sides(k):
        if k not in sides_at:
            e = np.zeros(n)
            e[k] = 1.0
            # from within the scale over which the refined central differences agree (the
            # first level's farther point, 4 h from x, at that tableau's widest step): a
            # function that turns over a scale far below the first step (log-sum-exp at 1e9 +-
            # 3 in float64, steps of 1e4 where it turns over 10) rises on one side and lies on
            # a plateau on the other, whose slopes from steps that wide were taken for sharp
            # one-sided derivatives (0 +- 2.6e-9 where the derivative is 3e-6). A kink at x
            # keeps the first step: its central differences agree on the mean slope at every
            # scale. In code that computes in float32 the first step stays (there it moved 27
            # verdicts of claims cast inside far from 0 either way, and mended no false alarm)
            h = steps[k]
            if f.inner_eps <= R.EPS:
                h = min(h, smooth_steps.get(k, np.inf) / 4)
            sides_at[k] = R.one_sided(f, x, e, f0, noise, h)
            for side in sides_at[k]:  # (no finer than a frozen output resolves)
                side.error = np.maximum(side.error, frozen[:, k])
        return sides_at[k]

    def smooth_sides(left, right):
        """Per output, whether one-sided derivatives agree within their errors."""
        return np.abs(right.value - left.value) <= SAFETY * (left.error + right.error)

    def kink_at(k):
        """Whether element k has a kink at x: its one-sided derivatives differ (as one_sided
        finds them; second differences at the first step also flag kinks a little off x)."""
        if kink_mask[:, k].any():
            return True
        left, right = sides(k)
        finite = np.isfinite(left.value) & np.isfinite(right.value)
        return bool(np.any(finite & ~smooth_sides(left, right)))

    def one_sided(j):
        e = np.zeros(n)
        e[j] = 1.0
        left, right = sides(j)
        if not (np.all(np.isfinite(left.value)) and np.all(np.isfinite(right.value))):
            return
        gap = np.abs(right.value - left.value)
        smooth = smooth_sides(left, right)
        if jumps[j]:
            # the claim jumps a few ulps away where the function is smooth: no kink explains
            # it, and neither does rounding (a gradient cached by id(params), stale after an
            # in-place update); its scatter is no allowance, beyond the level that flagged it
            g = int(np.searchsorted(groups.offsets, j, side="right") - 1)
            cols = slice(groups.offsets[g], groups.offsets[g + 1])
            # (nor where it scatters as rounding does: SCATTERED_SHARE)
            for k, (_, J, S, eps) in enumerate(evaluated):
                cap = jump_level(J, eps, cols)[:, j - cols.start]
                for i in np.flatnonzero(smooth & (S[:, j] > cap)):
                    if not (eps > R.EPS and len(evaluated) == 1 and scattered(k, int(i))[j]):
                        S[i, j] = cap[i]
        # differentiable after all (a kink within a step of x): the two sides agree
        mean = (left.value + right.value) / 2
        mean_err = (left.error + right.error) / 2 + gap / 2
        # ... and where both, down to smaller steps, disagree with the first reference, that was
        # fooled: steps across several kinks 1e-9 away can agree with each other by chance
        # (0.000171 +- 2.3e-7 for a slope of 0.00375), and it is held to the sides' mean as
        # one_sided holds a step to the smaller ones (not a complex step: exact on its branch)
        fooled = np.zeros(m, dtype=bool)
        if not used_cs[j]:
            off = np.abs(J_ref[:, j] - mean)
            fooled = smooth & ~trusted[:, j] & (off > SAFETY * (J_err[:, j] + mean_err))
            J_err[:, j] = np.where(fooled, J_err[:, j] + off, J_err[:, j])
        # where the sides agree, each estimate is a valid reference under its own assumptions
        # (no kink within the step; none on this side): with a noisy function and a kink
        # nearby, the estimate that the claim agrees with is taken, so a claim is only called
        # wrong when it disagrees with all of them (the claim in float64 where there is one:
        # a float32 claim whose exp underflowed to 0 agrees with sides of an output frozen at
        # 0, and the float64 claim, 4e-66 as the derivative, was then held to 0 +- 1e-294)
        _, J_claim, _, _ = evaluated[1 if low == 0 and len(evaluated) > 1 else 0]
        candidates = [(J_ref[:, j].copy(), J_err[:, j].copy()), (mean, mean_err),
                      (left.value, left.error), (right.value, right.error)]  # fmt: skip
        # ... among estimates nearly as accurate as the best (a vague one agrees with anything)
        # A complex step that a central difference confirmed stays among them, however much
        # sharper the sides are, where they contradict its own value: steps a few ulps wide
        # can see a staircase where the function rounds a far larger intermediate (exact GELU
        # at -6: 1 + erf is 2e-9, held in steps of 1e-16 that no step below 1e-8 crosses),
        # and both sides agreed, to 6e-14, on the slope of a frozen 1 + erf, 3.8e-10, where
        # the derivative is -1.4e-8 (at -17, exactly 0 at every step, where it is 4e-66).
        # Where they agree with it, they are the sharper estimate of the same slope: a relu
        # unit 2^-30 from its kink, straddled by the confirming central difference, had a
        # complex step confirmed to +-3% that passed a claim 8% off
        best = np.min(np.array([e for _, e in candidates]), axis=0)
        if j in cs_values:
            cs = cs_values[j]
            kept = trusted[:, j] & (np.abs(cs.value - mean) > SAFETY * (cs.error + mean_err))
        else:
            kept = np.zeros(m, dtype=bool)
        ratios = [
            np.where((e <= ALTERNATIVE * best) | (kept if c == 0 else False),
                     np.abs(J_claim[:, j] - v) / (SAFETY * e + 1e-300), np.inf)
            for c, (v, e) in enumerate(candidates)
        ]  # fmt: skip
        pick = np.argmin(np.array(ratios), axis=0)
        # ... unless it agrees with none of those but with a vaguer one: then it is not shown
        # wrong, and that estimate's error is the reference's (a float32 ReLU net, a kink
        # 3e-5 away: every window above it sees the mean of both slopes, accurately; only
        # the one-sided estimate on the point's own side, 30 times vaguer, holds there)
        plain = np.array([np.abs(J_claim[:, j] - v) / (SAFETY * e + 1e-300) for v, e in candidates])
        # (only in low precision: in float64 the accurate estimates decide. In code that
        # rounds its float64 inputs to float32 inside, only where a kink is in sight, as in the
        # probes (_probes.examine): the first steps saw one, the sides lie apart beyond their
        # errors, or the reference was fooled. There steps far beyond the function's own scale
        # see a kink, and their one-sided estimates agree on its slopes: log-sum-exp of 20
        # values cast inside at 3e4 +- 3, steps of 150, the left side 0.00066 +- 0.002 where
        # the derivative is 0.031, and the exact gradient was `wrong`. Along a smooth line a
        # vague side passed claims 5% off that a sharp reference refuted)
        vaguer = (np.min(np.array(ratios), axis=0) > 1) & (plain.min(axis=0) <= 1)
        if generic:
            apart = np.abs(right.value - left.value) > left.error + right.error
            in_sight = apart | fooled | bool(kinked[j]) | bool(kink_mask.any())
            vaguer &= in_sight & (f.inner_eps > R.EPS)
        pick = np.where(vaguer, np.argmin(plain, axis=0), pick)
        for i in np.flatnonzero(smooth):
            J_ref[i, j], J_err[i, j] = candidates[pick[i]][0][i], candidates[pick[i]][1][i]
        seen, dense, led = None, [], []
        name, index = groups.locate(j)

        def leading(e=e, j=j, led=led):
            """The element's derivatives at points one element with a kink at x leads
            (references.dominant), once; None where none moves it or they are not affordable."""
            if not led:
                before = f.calls
                candidates = np.flatnonzero(kinked | kink_mask.any(axis=0))
                cost = R.dominant_evaluations(candidates.size) + KINK_EVALS * candidates.size
                leaders = [k for k in candidates if kink_at(k)] if dense_affordable(cost) else []
                led.append(R.dominant(f, x, e, noise, steps[j], leaders) if leaders else None)
                # not out of refinement's allowance of evaluations (the budget's time holds it)
                searched[0] += f.calls - before
            return led[0]

        # smooth along the element both ways is not differentiable at x where kinks stack (a
        # relu of relus at 0, the loss at 0 too): the function can be flat along an element on
        # both sides while pieces that meet at x slope along it. A claim off that one slope is
        # held, where the points that one element leads show such pieces, to those, as at
        # a kink whose sides agree: it passes within their mixtures; beyond them the smooth
        # judgement stands (they can only pass it)
        # (where a claim in float64 is off: one in a lower precision alone, within its rounding
        # of kinks near x, is held there, within_rounding, which points nearby would cross)
        off = np.zeros(m, dtype=bool)
        for k, (claim_off, _) in enumerate(column_off(j)):
            off |= claim_off & (k != low) & generic
        for i in np.flatnonzero(smooth & off):
            value, slack = float(J_ref[i, j]), SAFETY * float(J_err[i, j])
            claimed = [(float(J[i, j]), eps) for _, J, _S, eps in evaluated]
            led_seen = leading()
            if led_seen is None:
                break
            passed, _, nearby = _at_kink(claimed, value, value, slack, led_seen, i)
            if passed:
                kinks.append(KinkReport(name, index, int(i), value, value,
                                        float(evaluated[0][1][i, j]), True, nearby))  # fmt: skip
                kink_mask[i, j] = True

        def more(e=e, j=j, dense=dense):  # the element's points for _confirmed_at_kink, once
            if not dense:
                dense.append(R.nearby(f, x, e, noise, steps[j],
                                      np.random.default_rng(CONFIRM_SEED),
                                      points=CONFIRM_POINTS))  # fmt: skip
            return dense[0]

        for i in np.flatnonzero(~smooth):
            lo, hi = sorted((float(left.value[i]), float(right.value[i])))
            slack = SAFETY * max(float(left.error[i]), float(right.error[i]))
            # a claim may jump at its kink: no scatter allowance here
            claimed = [(float(J[i, j]), eps) for _, J, _S, eps in evaluated]
            ok, decided, nearby = _at_kink(claimed, lo, hi, slack)
            if not ok:
                if seen is None:
                    seen = R.nearby(f, x, e, noise, steps[j], nearby_rng)
                ok, decided, nearby = _confirmed_at_kink(
                    claimed, lo, hi, slack, seen, i, more if dense_affordable() else None)
            if not ok and decided and leading() is not None:
                # and at the pieces one element leads, which can only pass it
                passed, _, led_range = _at_kink(claimed, lo, hi, slack, leading(), i)
                if passed:
                    ok, nearby = True, led_range
            kinks.append(
                KinkReport(
                    name, index, int(i), float(left.value[i]), float(right.value[i]),
                    float(evaluated[0][1][i, j]), ok, nearby, decided,
                )
            )  # fmt: skip
            kink_mask[i, j] = True
            convex[i, j] = right.value[i] > left.value[i]

    def jointly():
        """Kinks in several elements of one output, held jointly (:func:`_joint_kinks`): those
        whose slopes rise together, and those whose slopes fall together."""
        by_output = {}
        for i, j in zip(*np.nonzero(kink_mask), strict=True):
            by_output.setdefault(int(i), []).append(int(j))
        directions = np.random.default_rng(JOINT_SEED)
        # the derivatives nearby along each kinked element, for every output at once
        along = {}

        def nearby_along(j):
            if j not in along:
                e = np.zeros(n)
                e[j] = 1.0
                along[j] = R.nearby(f, x, e, noise, _step(f, x, e, f0, noise),
                                    np.random.default_rng(NEARBY_SEED), narrow=False)  # fmt: skip
            return along[j]

        for i, cols in by_output.items():
            u = np.zeros(m)
            u[i] = 1.0

            def nearby_of(j, i=i):
                near = nearby_along(j)
                return near.value[:, i], near.error[:, i], near.linear[:, i]

            claimed = [(J[i], eps) for _, J, _S, eps in evaluated]
            parts = _alike(cols, convex[i, cols])
            before = len(kinks)
            for part, smooth_only in parts:
                kinks.extend(_joint_kinks(_Scalarised(f, u), x, f0[i : i + 1], noise[i : i + 1],
                                          part, claimed, directions, i, smooth_only,
                                          nearby_of, affordable=dense_affordable,
                                          kinked=cols))  # fmt: skip
            if not parts or parts[0][1]:
                # kinks that rise and kinks that fall, or one of a kind: together, where the
                # function is smooth over all of them (clip's two bounds, a relu beside a lasso)
                kinks.extend(_joint_kinks(_Scalarised(f, u), x, f0[i : i + 1], noise[i : i + 1],
                                          cols, claimed, directions, i, True, nearby_of,
                                          residual_only=True,
                                          affordable=dense_affordable, kinked=cols))  # fmt: skip
            # and within the gradients seen near x, over all of them at once
            # (convex through them as far as the directions above saw: none undecided there)
            convex_seen = bool(parts) and not parts[0][1] and all(
                k.decided for k in kinks[before:])
            kinks.extend(_hull(_Scalarised(f, u), x, f0[i : i + 1], noise[i : i + 1], cols,
                               claimed, i, convex_seen, nearby_of, dense_affordable))  # fmt: skip

    bad, unresolved, jumps, ratio = suspects()
    # a kink along an element whose claim matches the central difference (the mean slope of a
    # tie) is examined too: one element each may be fine, not several together (jointly)
    disagree = np.array([j in cs_values and not used_cs[j] for j in range(n)]) | kinked | widened
    # the worst first; once CONFIRM elements are confirmed wrong, the verdict cannot change
    # (an element whose complex step agreed with its central difference is re-examined too:
    # a complex step that silently drops a term, np.abs of a complex number, can agree with a
    # central difference that straddles the same kink)
    first = sorted(np.flatnonzero(bad | disagree | jumps), key=lambda j: -ratio[j])
    later = [j for j in np.flatnonzero(unresolved) if not (bad[j] or disagree[j] or jumps[j])]
    confirmed_wrong = unexamined = 0
    # what refinement may spend: counted evaluations, and the guard's seconds for slow functions
    calls_from, started = f.calls, time.perf_counter()
    for count, j in enumerate(first + later):
        if confirmed_wrong >= CONFIRM:
            left_over = len(first) + len(later) - count
            notes.append(
                f"stopped after {CONFIRM} elements confirmed wrong; {left_over} more "
                f"{'suspect' if left_over == 1 else 'suspects'} not re-examined"
            )
            break
        suspect = count < len(first)
        allowance = SUSPECT_EVALS if suspect else REFINE_EVALS
        counted = f.calls - calls_from - searched[0]
        counted_out = counted / max(n, EVALS_MIN_PARAMS) >= allowance
        if counted_out or time.perf_counter() - started > (2 if suspect else 1) * budget:
            left_over = (len(first) if suspect else len(first) + len(later)) - count
            unexamined = left_over if suspect else 0
            what = "suspect elements not re-examined" if suspect else "elements not refined"
            why = (
                (f"{allowance} evaluations per parameter: " + (
                    "they disagree with the first reference only" if suspect else
                    "their reference is as accurate as the first step allowed"))
                if counted_out else
                f"budget={budget:g} s: one call is slow enough that this machine's speed "
                "decided where refinement stopped (a larger budget makes it the same on every "
                "machine)"
            )  # fmt: skip
            notes.append(f"{left_over} {what} within {why}")
            break
        if not generic and count - len(first) == HOPELESS_SAMPLE and hopeless(
            later[:HOPELESS_SAMPLE]
        ):
            # in its own low precision the function cannot resolve its sizable elements to
            # RESOLVE, so the verdict cannot become correct; errors large enough to be seen
            # were suspects, re-examined first
            notes.append(
                f"{len(later) - HOPELESS_SAMPLE} elements not refined: most of the first "
                f"{HOPELESS_SAMPLE} could not be resolved to {RESOLVE:g} of their size in the "
                "function's own precision"
            )
            break
        first_error = J_err[:, j].copy()
        refine(j)
        resteeped = (column_bad(j) or jumps[j]) and steep(j)
        # a smooth point within a step of a kink (a margin 1e-9 away): the decades of steps
        # that straddle it disagree with the smaller ones, so refining raised the error bound,
        # and only one-sided differences resolve it (in float64 precision; in float32 they
        # are hopeless)
        straddled = generic and np.any(J_err[:, j] > STRADDLED * first_error)
        if not resteeped and (jumps[j] or kinked[j] or column_bad(j)
                              or (straddled and column_unresolved(j))):  # fmt: skip
            one_sided(j)
        if low is not None and column_bad(j):
            within_rounding(j)
        if not used_cs[j] and column_bad(j):  # (a complex step not taken says nothing)
            staircase(j)
        # an element confirmed wrong: off its reference, or outside its own kink's one-sided
        # derivatives (a kink's error is masked in column_bad; a decided failure is as sure)
        where = groups.locate(j)
        confirmed_wrong += column_bad(j) or any(
            k.decided and not k.passed for k in kinks if (k.group, k.index) == where
        )
        show("re-examined elements", count + 1, len(first) + len(later))

    jointly()
    overall = float(np.abs(J_ref).max())
    if overall == 0:
        overall = max(float(np.abs(J[np.isfinite(J)]).max(initial=0.0)) for _, J, _, _ in evaluated)
    zero_below = ZERO_ULPS * R.EPS * overall

    def self_confirmed(cols):
        """Whether a group that its differences leave unresolved (every derivative below their
        accuracy, or its floor or a sizable element's resolution too coarse for a verdict: a
        saturated attention's queries, 1e-10 beside 4.8, some of them resolved), at most
        SELF_SHARE of the largest, has a complex step at every element whose spread over
        SELF_STEPS and SELF_PAIRS (_self_spread) resolves some; where so, those are its
        reference, their spread (or their own error, if larger) its error where smaller."""
        columns = range(cols.start, cols.stop)
        if (kink_mask[:, cols].any() or not trusted[:, cols].all()
                or any(j not in cs_values for j in columns)):  # fmt: skip
            return False
        size, err = np.abs(J_ref[:, cols]), SAFETY * J_err[:, cols]
        largest = float(size.max())
        if (size > err).any() and err.max() <= CANNOT_TELL_FLOOR * largest and not (
                err > RESOLVE * size)[size >= NOTABLE * largest].any():  # fmt: skip
            return False
        values = np.stack([cs_values[j].value for j in columns], axis=1)
        if not np.abs(values).max() <= SELF_SHARE * overall:
            return False
        errors = np.stack([cs_values[j].error for j in columns], axis=1)
        # (and at points a few dozen ulps away: a complex step holds the rounding of the
        # function's real intermediates, a residual of 1e-7 that cancels from values of 1 in
        # a near fit, 1e-9 of the derivative, and is linear in the step all the same)
        nearby = claims[-1][0].nearby[:SELF_PAIRS]
        for j in columns:
            e = np.zeros(n)
            e[j] = 1.0
            spread = _self_spread(f, x, e, cs_values[j].value, nearby)
            if spread is None:
                return False
            errors[:, j - cols.start] = np.maximum(errors[:, j - cols.start], spread)
        if not (np.abs(values) > SAFETY * errors).any():
            return False
        J_ref[:, cols] = values
        J_err[:, cols] = np.minimum(J_err[:, cols], errors)
        return True

    def resolved_below(cols):
        """Whether a group whose every derivative lies below zero_below, which would be taken
        for zero (its claims allowed the rounding of the largest derivative of all groups), is
        resolved by its own reference all the same: some derivative above its error, a floor
        below CANNOT_TELL_FLOOR and every notable element to RESOLVE, no kink. Then it is
        sized by that reference, as a group its complex steps size: w of 1 beside an eps of
        1e-30 under a log (derivatives of 1e30) was held to 4.4e14, its reference good to 4e-8,
        and a cos written as sin was `cannot tell`, the correct claim too (an outside audit)."""
        if kink_mask[:, cols].any():
            return False
        size, err = np.abs(J_ref[:, cols]), SAFETY * J_err[:, cols]
        largest = float(size.max())
        return bool(
            (size > err).any() and err.max() <= CANNOT_TELL_FLOOR * largest
            and not (err > RESOLVE * size)[size >= NOTABLE * largest].any()
            and _known_zero(J_ref[:, cols], J_err[:, cols], trusted[:, cols], zero_below)
        )  # fmt: skip

    resolved_groups = set()  # of sized_groups: those sized by their differences
    for g in range(len(groups.names)):
        if self_confirmed(slice(groups.offsets[g], groups.offsets[g + 1])):
            sized_groups.add(g)
        elif resolved_below(slice(groups.offsets[g], groups.offsets[g + 1])):
            sized_groups.add(g)
            resolved_groups.add(g)
    started = time.perf_counter()
    for g in range(len(groups.names)):
        cols = slice(groups.offsets[g], groups.offsets[g + 1])
        if _unresolved_group(J_ref[:, cols], J_err[:, cols], trusted[:, cols],
                             kink_mask[:, cols], zero_below):  # fmt: skip
            for count, j in enumerate(range(cols.start, cols.stop)):
                if time.perf_counter() - started > budget:
                    notes.append(
                        f"{groups.names[g]}: {cols.stop - j} elements not taken at wider steps "
                        f"within budget={budget:g} s"
                    )
                    break
                widen(j)
                if column_bad(j):  # sharper now, and off: a kink at x, as in refinement
                    one_sided(j)
                    if low is not None and column_bad(j):
                        within_rounding(j)
                show(f"{groups.names[g]} at wider steps", count + 1, cols.stop - cols.start)
    if stairs_seen:
        j, i, *stair = max(stairs_seen, key=lambda s: s[-1])
        notes.append(_staircase_note(f"{groups.locate(j)} (output {i})", *stair,
                                     len(stairs_seen) - 1))  # fmt: skip
    if not_complex_safe:
        more = len(not_complex_safe) - 3
        notes.append(
            "complex step disagrees with central differences along "
            + ", ".join(str(where) for where in not_complex_safe[:3])
            + (f" and {more} more elements" if more > 0 else "")
            + ": the function is not complex-safe there (abs, maximum, conjugation?); not used"
        )
    scipy_agrees = None
    if use_scipy:
        scipy_agrees = True
        for j in range(n):
            s = R.scipy_partial(f, x, j)
            if np.any(np.abs(s.value - J_ref[:, j]) > SAFETY * (s.error + J_err[:, j]) + 1e-12):
                scipy_agrees = False
                notes.append(
                    f"scipy.differentiate differs along {groups.locate(j)}: "
                    f"{s.value} (its error estimate {s.error})"
                )

    reports, smooth_ok, floors, resolutions = [], True, [], []
    biased = 0  # the low-precision claim's values within its rounding bias bound alone
    unseen = []  # its groups in which an error of RESOLVE as a whole would not be seen
    # a group whose every derivative is zero within the reference's accuracy has no size of its
    # own to be resolved against (an exact 0, or rounding of one: 1.8e-11 +- 2.6e-9 where a
    # hinge is inactive), so its floor is taken against the largest derivative of all groups;
    # where every reference is exactly 0, against the largest claimed (1e300 * sum(w ** 2) at w
    # of 1e-300: w ** 2 underflows, the reference is 0 +- 1e272, and claims of 2 to 6e3 all
    # passed under a floor of 0)
    for k, (label, J, S, eps) in enumerate(evaluated):
        claim_floor = claim_resolution = 0.0
        mask = masked(k)
        for g, name in enumerate(groups.names):
            cols = slice(groups.offsets[g], groups.offsets[g + 1])
            tol = tolerance(J, S, eps, cols, k)
            err = np.where(mask[:, cols], 0.0, np.abs(J[:, cols] - J_ref[:, cols]))
            own = tol
            # a group that its complex steps size (SELF_STEPS), whose claim is off it only
            # within the rounding of the largest derivative of all groups: an error of its
            # size cannot be told there from rounding in intermediates of that size (1 -
            # tanh(z) ** 2 is 0 where tanh(z) rounds to -1, a derivative of 7e-17 beside 2.3)
            # ... and so is a low-precision claim's group that it alone is off, the same code
            # in float64 holding (naive GELU in float32 at -5.5, 0.5 x (1 + erf): W2's
            # derivatives of 4e-4 are off by 3e-8, float32's rounding of the 1 in 1 + erf)
            alone = k == low and len(evaluated) > 1 and bool((err > tol).any())
            if alone:
                _, J64, S64, eps64 = evaluated[1]
                err64 = np.where(masked(1)[:, cols], 0.0, np.abs(J64[:, cols] - J_ref[:, cols]))
                alone = bool((err64 <= tolerance(J64, S64, eps64, cols, 1)).all())
            below = (g in sized_groups or alone) and bool((err > tol).any())
            if below:
                # (FLOOR_ULPS of the largest in its row, beyond its own allowance, in the
                # precision the claim computes in: the float64 run of float32 code is held to
                # float32 ulps for its constants, not for this)
                largest = np.maximum(np.abs(J_ref), np.abs(J)).max(axis=1, keepdims=True)
                if alone and g not in sized_groups:
                    # ... a low-precision claim alone off: of the largest of all groups over
                    # every output (one output's, for a scalar function), beyond which its floor
                    # sees nothing (a float32 RNN's BPTT, correct, is off by 4.7e-8 in an output
                    # whose largest derivative is 1.3e-3: 300 float32 ulps of that, rounding of
                    # its intermediates, 2 of the largest of all, and it was `wrong`)
                    largest = np.maximum(np.abs(J_ref), np.abs(J)).max()
                # (a group sized by its own differences, in the claim's precision whatever the
                # run: taken for 0 before, it was allowed that, and float32 code that sums
                # intermediates of that size, exact in real arithmetic, was `wrong`)
                own_eps = k == low or g in resolved_groups
                wide = tol + FLOOR_ULPS * (eps if own_eps else min(eps, R.EPS)) * largest
                below = bool((err <= wide).all())
                tol = wide if below else tol
            if k == low:
                biased += int(((err > tolerance(J, S, eps, cols)) & (err <= own)).sum())
                # would an error of RESOLVE in the whole group be seen (in one element)?
                sized = ~mask[:, cols] & (np.abs(J_ref[:, cols]) > SAFETY * J_err[:, cols])
                if sized.any() and not (RESOLVE * np.abs(J_ref[:, cols]) > tol)[sized].any():
                    unseen.append(name)
            # where no reference could be taken (the function not finite at any step tried), a
            # finite claim is not judged: the check cannot tell (its floor, below, is infinite)
            unknown = ~np.isfinite(J_ref[:, cols]) & np.isfinite(J[:, cols]) & ~mask[:, cols]
            ratio = np.where(unknown, 0.0, err / tol)
            if unknown.any() and label == evaluated[0][0]:
                notes.append(
                    f"{name}: no reference at {int(unknown.any(axis=0).sum())} elements: the "
                    "function is not finite at any step tried around them (a parameter at the "
                    "edge of its domain, the log or sqrt of a value near 0?)"
                    + (", or, rounding its inputs inside, saw no step centred on them (a "
                       "parameter far below its float32 neighbours' steps)"
                       if f.rounds_to is not None else "")
                    + "; not judged"
                )
            # the worst of the elements held to a tolerance: one at a kink, judged by its
            # one-sided derivatives instead, was shown with its straddling reference's tolerance
            # (a relu at 0: "tolerance 4 -> ok")
            at_kinks = kink_mask[:, cols].any(axis=0)
            worst = np.unravel_index(int(np.argmax(np.where(mask[:, cols], -1.0, ratio))),
                                     ratio.shape)  # fmt: skip
            passed = bool((ratio <= 1).all())
            smooth_ok &= passed
            j = cols.start + worst[1]
            size = np.abs(J_ref[:, cols])
            zero = not (size > SAFETY * J_err[:, cols]).any()
            # ... where it is known to be zero (ZERO_ULPS); else its size is what it may be, and
            # an error of that size is not seen: tanh layers saturated at -12 to -18, whose W1
            # derivatives (up to 7e-12) lay below their differences' accuracy (8e-12), were held
            # against the largest of all groups (0.18), and a sign flip of W1 passed `correct`
            possible = _unresolved_group(J_ref[:, cols], J_err[:, cols], trusted[:, cols],
                                         mask[:, cols], zero_below)  # fmt: skip
            # (and never larger than the largest derivative of all groups: a reference of
            # 0 +- 1e272 against claims of 2 to 6e3)
            scale = (overall if zero and not possible
                     else max(float(size.max()), min(possible, overall)))  # fmt: skip
            if possible and label == evaluated[0][0]:
                notes.append(
                    f"{name}: its derivatives could not be told from 0 (they may be as large as "
                    f"{possible:.2g}, where the largest of all groups is {overall:.2g}"
                    + ("" if generic else "; computed in the function's own precision")
                    + "): an error of that size would not have been seen"
                )
            elif below and alone and g not in sized_groups:
                notes.append(
                    f"{name} ({label}): off its derivatives (at most {float(size.max()):.2g}) "
                    f"by up to {float(err.max()):.2g} in this precision alone, within its "
                    f"rounding of the largest derivative of all groups ({overall:.2g}), where "
                    "the same code in float64 holds: taken for rounding of intermediates of "
                    "that size (its floor says what it resolves)"
                )
            elif below:
                notes.append(
                    f"{name}" + (f" ({label})" if len(evaluated) > 1 else "")
                    + f": off its derivatives (at most {float(size.max()):.2g}, "
                    + ("resolved by its reference" if g in resolved_groups
                       else f"by complex steps at {len(SELF_STEPS) + 1} step sizes")
                    + f") by up to {float(err.max()):.2g}, within the rounding of the largest "
                    f"derivative of all groups ({overall:.2g}): not told from rounding here, "
                    f"where {name}'s derivatives lie below it"
                    + (f"; {name}'s claim checked alone (a function of {name}, the other "
                       "groups held fixed) checks it" if g in resolved_groups
                       else " (a saturated layer?); a point where they do not checks it")
                )
            elif zero and overall > 0 and label == evaluated[0][0] and size.max() > 0:
                notes.append(
                    f"{name}: every derivative is zero within the reference's accuracy "
                    f"(|d| <= {float(size.max() + SAFETY * J_err[:, cols].max()):.2g}); its floor "
                    "is taken against the largest derivative of all groups"
                )
            smooth_tol = np.where(mask[:, cols], 0.0, np.where(unknown, np.inf, tol))
            # (every derivative and every claim of every group exactly 0: against the size of a
            # derivative of the function's value, or of 1 where it is 0, over the parameters'
            # size; a relu 1e-9 past its kink, 0 +- 1.18, was `correct` with a floor of 0, and a
            # claim of 1e-3 there `cannot tell`)
            if scale == 0:
                scale = (float(np.abs(f0).max()) or 1.0) / R.typical_size(x)
            floor = float(smooth_tol.max()) / scale if scale > 0 else 0.0
            floor = np.inf if unknown.any() else floor
            claim_floor = max(claim_floor, floor)
            notable = (size >= NOTABLE * scale) & ~mask[:, cols] & (size > 0) & (not zero)
            if notable.any():
                claim_resolution = max(claim_resolution,
                                       float((smooth_tol[notable] / size[notable]).max()))
            reports.append(
                GroupReport(
                    name, groups.shapes[g], label,
                    groups.locate(j)[1] + ((int(worst[0]),) if m > 1 else ()),
                    float(err[worst]),
                    _relative(float(err[worst]), float(J_ref[worst[0], j])),
                    float(J_err[worst[0], j]), float(tol[worst]), passed, floor, scale,
                    int(at_kinks.sum()), bool(mask[:, cols].all()),
                )
            )  # fmt: skip
        floors.append(claim_floor)
        resolutions.append(claim_resolution)
    _say_jumps(f, x, groups, J_ref, J_err, kink_mask, notes)
    method = (
        "complex step (verified against central differences)"
        if used_cs.all()
        else "central differences"
        + (" and complex step" if used_cs.any() else "")
        + (", refined by " + ("Ridders extrapolation" if generic else "least-squares fits")
           if refined.any() else "")
    )
    if not generic:
        method += ", in the function's own precision"
    if m > 1:
        smooth_ok &= _linear_in_cotangent(claims[0][0], evaluated[0], out_shape, notes)
    floor = min(floors)
    verdict = _verdict(smooth_ok, kinks, floor, resolutions[int(np.argmin(floors))])
    if low is not None and len(evaluated) > 1:
        verdict = _low_resolution(verdict, evaluated[low][0], ", ".join(unseen), notes)
        if biased:
            verdict = _undecided(verdict, evaluated[low][0], f"{biased} values", notes)
    # only unconfirmed suspects: no error is established (a kink's claim outside its one-sided
    # derivatives, decided, is: those are measured apart from the suspects' references)
    if verdict == WRONG and unexamined and not confirmed_wrong and not any(
        k.decided and not k.passed for k in kinks
    ):
        verdict = CANNOT_TELL
    return GradCheckResult(
        verdict, "full Jacobian", method, reports, kinks=kinks, notes=notes,
        scipy_agrees=scipy_agrees, floor=floor,
    )  # fmt: skip


JUMP_LOOKS = 8  # unresolved elements (the worst resolved first) looked at for a jump of fun
JUMP_EXPLAINED = 0.5  # a rise the largest slope the reference allows makes over the steps


def _say_jumps(f, x, groups, J_ref, J_err, kink_mask, notes) -> None:
    """A note where fun jumps at x along elements its references did not resolve (round at a
    half, a comparison of params): an unresolved derivative was all that was said ("could not
    be told from 0, may be as large as 4.5"), where there is none."""
    overall = float(np.abs(J_ref[np.isfinite(J_ref)]).max(initial=0.0))
    # unresolved, against the largest and against itself (a steep tanh(1e12 (w - 0.3)), its
    # derivative known to 2%, is no jump)
    with np.errstate(invalid="ignore"):
        coarse = ((SAFETY * J_err > CANNOT_TELL_FLOOR * overall)
                  & ~(np.abs(J_ref) > SAFETY * J_err)).any(axis=0)  # fmt: skip
    coarse &= ~kink_mask.any(axis=0)
    order = np.argsort(-np.nanmax(np.where(np.isfinite(J_err), J_err, np.inf), axis=0))
    looked = [int(j) for j in order if coarse[j]][:JUMP_LOOKS]
    found = []
    for j in looked:
        v = np.zeros(x.size)
        v[j] = 1.0
        seen = R.jump(f, x, v)
        # ... nor a rise that the reference's slope explains over the nearest points' distance
        slope = float(np.nanmax(np.abs(J_ref[:, j]) + SAFETY * J_err[:, j], initial=0.0))
        if seen is not None and slope * seen[1] < JUMP_EXPLAINED * seen[0]:
            found.append((j, *seen))
    if not found:
        return
    j, size, nearest, farthest = found[0]
    name, index = groups.locate(j)
    more = (f"; and along {len(found) - 1} more of the {len(looked)} elements looked at"
            if len(found) > 1 else "")  # fmt: skip
    notes.append(
        f"fun seems to jump at x along {name}{index}: by {size:.2g} between points "
        f"{nearest:.2g} apart, as between points {farthest:.2g} apart{more} (or it rises that "
        "steeply within the nearest): then it is not differentiable there, and there is no "
        "derivative to check (round, floor or a comparison of params?)"
    )


def _smooth_scale(f, x, v, noise, slope):
    """Where fun rises across x along v by more than ``slope`` (the reference's value along v)
    explains over the distance, as a jump (references.jump) at every step down to 1e-9 of x:
    (the largest step at which it is smooth there, the rounding at that step), or (None, None)
    where it is smooth at none down to its ulps (it jumps at x); None where no such rise is
    seen. The rounding: the noise measured at x is no measure of it, as fun's steep rise moves
    the points a few hundred ulps apart off any parabola (0.1 for a tanh of about 1): see
    _level_at."""
    seen = R.jump(f, x, v)
    if seen is None:
        return None
    size, nearest, _ = seen
    # (the reference's value, not its error bound: 4e7 +- 1.6e8 from steps that only see
    # the plateaus bounds nothing)
    if slope * nearest >= JUMP_EXPLAINED * size:
        return None
    step = R.smooth_step(f, x, v, nearest / 20 / float(np.abs(v).max()))
    if step is None:
        return None, None
    return step, _level_at(f, x, v, noise, step)


def _smooth_scale_within(f, x, v, noise, claimed):
    """_smooth_scale for a direction v along which fun's steep rises can cancel (two elements
    each across a tanh(1e13 (w - 0.3)), moved in opposite directions: the difference across x
    is 0 at every step that only sees the plateaus, while the derivative along v is 2e12):
    looked for along the JUMP_LOOKS elements that weigh most in the claim along v (``claimed``,
    the claim's gradient); the smallest of their smooth steps along v, or (None, None) where
    one of them jumps, None where none rises so."""
    weight = np.abs(claimed * v)
    steps = []
    for j in np.argsort(-weight)[:JUMP_LOOKS]:
        if not weight[j] > 0:
            break
        e = np.zeros(x.size)
        e[j] = 1.0
        found = _smooth_scale(f, x, e, noise, 0.0)
        if found is not None and found[0] is None:
            return None, None
        if found is not None:
            steps.append(found[0] / abs(float(v[j])))
    if not steps:
        return None
    step = min(steps)
    return step, _level_at(f, x, v, noise, step)


def _level_at(f, x, v, noise, step):
    """The rounding of differences along v at ``step`` where fun rises steeply (_smooth_scale):
    the differences' own scatter at smaller steps (off a curve in the step: their shape too,
    less at the smaller), at most the noise measured at x, at least one rounding of the values
    there."""
    level = noise
    for smaller in (step / 10, step / 100):
        scatter, _ = R.step_scatter(f, x, v, smaller)
        level = np.minimum(level, np.where(np.isfinite(scatter), scatter * smaller, np.inf))
    return np.maximum(level, R.rounding(f, x, v, step))


def _self_spread(f, x, v, cs, pairs) -> np.ndarray | None:
    """How far the complex steps along v at SELF_STEPS times the first step differ from its
    value ``cs``, and how far its second differences over ``pairs`` of nearby points (a few
    dozen ulps away, see _Claim) scatter (per output); None where one is not available."""
    spread = np.zeros_like(cs)
    for factor in SELF_STEPS:
        other = R.complex_step(f, x, v, factor)
        if not isinstance(other, R.Derivative):
            return None
        spread = np.maximum(spread, np.abs(other.value - cs))
    for a, b in pairs:
        plus, minus = R.complex_step(f, a, v), R.complex_step(f, b, v)
        if not (isinstance(plus, R.Derivative) and isinstance(minus, R.Derivative)):
            return None
        spread = np.maximum(spread, np.abs(plus.value + minus.value - 2 * cs))
    return spread


def _at_most(ref, err, trusted) -> np.ndarray:
    """How large each derivative may be: a confirmed complex step's value, or the reference
    plus its error."""
    return np.where(trusted, np.abs(ref), np.abs(ref) + SAFETY * err)


def _unresolved_group(ref, err, trusted, mask, zero_below) -> float:
    """How large the derivatives of a group whose every one lies below its reference's
    accuracy may be, where they are not known to be zero: 0 for a group that its reference
    resolves, or whose every derivative is known to lie below ``zero_below``; else the
    largest of them (:func:`_at_most`)."""
    if (np.abs(ref) > SAFETY * err)[~mask].any():
        return 0.0
    largest = float(_at_most(ref, err, trusted)[~mask].max(initial=0.0))
    return largest if largest > zero_below else 0.0


def _known_zero(ref, err, trusted, zero_below) -> bool:
    """Whether every derivative of a group is known to lie below ``zero_below``."""
    return bool(np.all(_at_most(ref, err, trusted) <= zero_below))


def _stair_reach(x, v) -> float:
    """How far along v (in multiples of v) a stair is looked for: STAIR_REACH times the largest
    size of the parameters v moves, or the typical one's if larger."""
    size = max(float(np.abs(x[v != 0]).max(initial=0.0)), R.typical_size(x))
    return STAIR_REACH * size / max(float(np.abs(v).max()), 1e-300)


def _largest_stair(f, f0) -> float:
    """A jump of at most this is a stair: STAIR_ULPS of the code's rounding at its scale, or
    STAIR_SHARE of that scale."""
    share = max(STAIR_ULPS * f.inner_eps, STAIR_SHARE)
    return share * max(1.0, float(np.abs(f0).max(initial=0.0)))


def _staircase_note(where, jump, distance, bound, more) -> str:
    return (
        f"fun is a staircase along {where}: it jumps by {jump:.2g} {distance:.2g} away, far "
        f"above its rounding at x, so every shorter step sees a tread's slope, not the "
        f"derivative; held no finer than {bound:.2g} there"
        + (f" ({more} more outputs, elements or probes alike)" if more > 0 else "")
        + ": an intermediate far larger than the output is rounded (1 + e^z in float32?)"
    )


def _step(f, x, v, f0, noise) -> float:
    """references.base_step along v for the evaluator f (its floor lower in code that computes
    in float32 inside: references.STEP_FLOOR_SIZES)."""
    return R.base_step(x, v, f0, noise, f.inner_eps > R.EPS)


def _at_kink(claimed, lo, hi, slack, seen=None, output=0):
    """Whether claims at an element's kink are valid subgradients: (passed, decided, the range
    of the derivatives seen nearby or None).

    claimed: (value, eps) per claim; lo, hi: the one-sided derivatives (equal: a smooth
    reference the claim disagrees with), slack their error; seen: the derivatives at points
    nearby (references.nearby; their ``output``), looked at only for a claim beyond both
    one-sided ones. Where MIXTURES of those are mixtures (off both one-sided
    derivatives), several kinks meet: a claim within their range is a valid subgradient, and
    beyond it undecided, since a valid mixture may reach further than the few seen. Where none
    is, and both one-sided derivatives are seen (one kink) or they are one (no kink), the claim
    is wrong; with less evidence, undecided."""
    scale = max(abs(lo), abs(hi))

    def within(a, b, extra=0.0):
        return all(
            a - slack - extra - _rounding(c, 0.0, eps, scale)
            <= c
            <= b + slack + extra + _rounding(c, 0.0, eps, scale)
            for c, eps in claimed
        )

    if within(lo, hi):
        return True, True, None
    if seen is None:
        return False, True, None
    values, errors = seen.value[:, output], seen.error[:, output]
    moved, linear = seen.moved[:, output], seen.linear[:, output]
    # values off a line in the distance are void: no evidence of mixtures, so where none is
    # usable the one-sided (or smooth) judgement stands
    usable = np.isfinite(values) & np.isfinite(errors) & linear.astype(bool)
    margin = SAFETY * np.where(usable, errors, 0.0)  # each value's own
    near = margin + KINK_MIX * (hi - lo)
    # where the sides differ beyond their error, a value whose margin spans half the gap cannot
    # tell one from the other: it shows neither (float32 code, whose values nearby carry its
    # rounding), so that a claim beyond both is not taken for wrong on no evidence that one
    # kink alone is there
    telling = usable & ((margin < 0.5 * (hi - lo)) | (hi - lo <= slack))
    at_lo, at_hi = telling & (np.abs(values - lo) <= near), telling & (np.abs(values - hi) <= near)
    # a value off both one-sided derivatives is a mixture of several kinks' slopes, unless it
    # moved over the three distances by more than STRADDLE of the gap or of its own distance
    # from them: a drift that large is no mixture (a straddled kink, a fast oscillation)
    beyond = np.maximum(np.maximum(lo - values, values - hi), 0.0)
    mixture = telling & ~at_lo & ~at_hi & (moved <= STRADDLE * np.maximum(hi - lo, beyond))
    kept = mixture | at_lo | at_hi
    seen_range = (float(values[kept].min()), float(values[kept].max())) if kept.any() else None
    if mixture.sum() >= MIXTURES:
        # the range reaches past a one-sided derivative only by the mixtures seen past it (each
        # by its margin): a mixture between the sides, its margin wide in float32 code, showed
        # nothing past them, and a claim 1.1 times the upper side passed on it
        below, above = mixture & (values < lo), mixture & (values > hi)
        low = float(np.min((values - margin)[below])) if below.any() else lo
        high = float(np.max((values + margin)[above])) if above.any() else hi
        if within(min(lo, low), max(hi, high)):
            return True, True, seen_range
        return False, False, seen_range  # several kinks meet: their mixtures may reach further
    # one kink (or kinks that always turn together) gives two values nearby, the one-sided
    # derivatives, and both are seen; a smooth function, one. One mixture, or one side only,
    # is too little evidence either way
    # and where the sides differ beyond their error, a telling value nearby that the claim lies
    # within the margin of may be the claim's own mixture, whatever side it is near: a valid one
    # 0.0012 past a side, seen at 0.102934 for 0.102924 claimed, counted as that side and the
    # claim was wrong (where they agree, along a direction smooth through the kinks, the claim
    # is held to their one slope)
    agrees = (hi - lo > slack) & telling & np.any(
        [np.abs(values - c) <= margin + slack for c, _ in claimed], axis=0
    )
    decided = not mixture.any() and not agrees.any() and (lo == hi or (at_lo.any() and at_hi.any()))
    if lo == hi:
        # one smooth slope (mixed(): a claim off it along several elements): the values nearby
        # show that no kinks cancel along the direction only where they could have shown the
        # claim's own mixture, at the slope within a margin below half the claim's distance
        # from it (float32 code's values nearby carry its rounding: 1,600 max-pool inputs at
        # 400 exact ties, cast inside, valid claims 4.4 off the slope along a part of 100
        # elements, on values nearby whose margins spanned that, were `wrong`)
        off = max(abs(c - lo) for c, _ in claimed)
        decided = decided and int(np.sum(at_lo & (margin < 0.5 * off))) >= MIXTURES
    return False, bool(decided), seen_range


def _apart(left, right) -> bool:
    """Whether one-sided derivatives (of one output, references.one_sided) differ beyond their
    errors, both finite: a kink."""
    lv, rv = float(left.value[0]), float(right.value[0])
    return bool(np.isfinite(lv) and np.isfinite(rv)
                and abs(rv - lv) > SAFETY * float(left.error[0] + right.error[0]))


def _confirmed_at_kink(claimed, lo, hi, slack, seen, output, more):
    """_at_kink, and where that decides the claim wrong, _at_kink again on more(): the
    derivatives at CONFIRM_POINTS points nearby (None where they are not affordable). Those
    can only pass the claim, where their mixtures reach it: a claim beyond every derivative
    seen at them too stays wrong, on more evidence than before (mixtures that the first points
    missed, and the claim beyond them all, made an invalid claim 1.7 off undecided)."""
    ok, decided, nearby = _at_kink(claimed, lo, hi, slack, seen, output)
    if ok or not decided or more is None:
        return ok, decided, nearby
    passed, _, dense_range = _at_kink(claimed, lo, hi, slack, more(), output)
    return (True, True, dense_range) if passed else (ok, decided, nearby)


def _alike(cols, rising) -> list[tuple[list[int], bool]]:
    """The kinked elements ``cols`` held jointly (:func:`_joint_kinks`), each set with whether
    only the directions along which the function is smooth hold it: all of them where their
    slopes all rise (or all fall); else those that rise and those that fall apart, each where
    there are two or more, along smooth directions only. Kinks that enter with both signs
    (max-pool ties feeding weights of both signs) were held only each to its own, and the claim
    of 1 for every element of a tie passed: along its tie it rises at 2 where the function
    rises at 1, smooth. Along a direction with a kink of its own, kinks of both signs that
    meet (ReLU layers at exactly 0) leave valid mixtures of their slopes beyond both one-sided
    derivatives; along a smooth one the claim is held to the derivative where the slopes at
    points nearby are all that derivative too (:func:`_joint_kinks`)."""
    rising = np.asarray(rising, dtype=bool)
    if rising.all() or not rising.any():
        return [(list(cols), False)] if len(cols) >= 2 else []
    parts = ([c for c, r in zip(cols, rising, strict=True) if r == kind] for kind in (True, False))
    return [(part, True) for part in parts if len(part) >= 2]


def _joint_kinks(s, x, s0, s_noise, cols, claimed, directions, output,
                 smooth_only=False, nearby_of=None, residual_only=False,
                 affordable=None, kinked=None) -> list[KinkReport]:  # fmt: skip
    """Kinks in several elements (``cols``) of one scalar function ``s``: each claimed element
    between its own one-sided derivatives is not enough (max at a tie, 1 claimed for every tied
    element: along the tied direction the claim rises at 2 where the function rises at 1), so
    the claim must lie between the one-sided derivatives along directions over all of them.

    That is the subgradient condition where the function is convex (or concave) through its
    kinks, as every kinked element says it is when all their slopes rise (or all fall); the
    caller holds those that rise apart from those that fall, and only along directions where
    the function is smooth (``smooth_only``, :func:`_alike`): ReLUs at exactly 0 with weights
    of both signs, a valid choice of one-sided derivative per ReLU can lie outside both
    directional ones. ``claimed``: (the claim's derivatives of ``s``, its eps) per claim;
    ``nearby_of``: as :func:`_smooth_residual`'s; ``residual_only``: only its directions (over
    the kinks that rise and those that fall together, where the function is smooth);
    ``affordable``: None, or () -> whether CONFIRM_POINTS points nearby fit in the budget, for a
    claim decided wrong on the usual ones (_confirmed_at_kink)."""
    reports = []
    if nearby_of is None:
        nearby_of = _nearby_along(s, x, s0, s_noise)
    residuals = _smooth_residual(s, x, s0, s_noise, cols, claimed, nearby_of)
    n_residual = len(residuals)
    if not smooth_only and not residual_only:
        residuals = residuals + _separating(cols, claimed, nearby_of)
    # where derivatives nearby along some direction lie beyond its one-sided ones, the function
    # is not convex through these kinks, and the convex function's bound decides nothing
    non_convex, all_up = False, None
    pieces = []  # the claim's own pieces (references.claimed), sought once, where affordable
    search = list(cols if kinked is None else kinked)  # over every kink of the output

    def at_pieces(d, h, claims_d, lo, hi, slack):
        """Whether the claim passes along d within the derivatives at its own pieces, and
        their range; those beyond both one-sided derivatives show the function not convex."""
        if not pieces:
            most = _affordable_evals(affordable, len(search))
            found = (R.claimed(s, x, s_noise, h, search, claimed[0][0][search], most)
                     if most else [])  # fmt: skip
            pieces.append(found)
        if not pieces[0]:
            return False, None, False
        seen = R.at_points(s, x, d, s_noise, h, pieces[0], "derivatives at the claim's pieces")
        passed, _, seen_range = _at_kink(claims_d, lo, hi, slack, seen)
        return passed, seen_range, _beyond_sides(seen, lo, hi, slack)

    for trial in range(JOINT_DIRECTIONS + 2 if residual_only else 0,
                       JOINT_DIRECTIONS + 2 + len(residuals)):  # fmt: skip
        d = np.zeros(x.size)
        # all kinked elements up together, all down (ties of three or more at a max: each
        # element may claim up to 1, the tie together rises at 1), then random, then where
        # the function is smooth to first order by the gradients seen nearby
        if trial < JOINT_DIRECTIONS + 2:
            d[cols] = ((1.0, -1.0)[trial] if trial < 2
                       else directions.choice([-1.0, 1.0], size=len(cols)))  # fmt: skip
        else:
            d[cols], spread = residuals[trial - JOINT_DIRECTIONS - 2]
        h = _step(s, x, d, s0, s_noise)
        left, right = R.one_sided(s, x, d, s0, s_noise, h)
        lo, hi = sorted((float(left.value[0]), float(right.value[0])))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        slack = SAFETY * max(float(left.error[0]), float(right.error[0]))
        if smooth_only and hi - lo > slack:
            continue
        if trial < 2 and all_up is None:
            all_up = (d, lo, hi, slack)
        if trial >= JOINT_DIRECTIONS + 2:
            slack += spread  # the direction is no better than the gradients it was made from
        ok = True
        for g, eps in claimed:
            c = float(g @ d)
            size = float(np.abs(g[cols]).sum())
            allowance = slack + _rounding(size, 0.0, eps, max(abs(lo), abs(hi)))
            ok &= bool(lo - allowance <= c <= hi + allowance)
        nearby = None

        def more(d=d):
            return R.nearby(s, x, d, s_noise, _step(s, x, d, s0, s_noise),
                            np.random.default_rng(CONFIRM_SEED), points=CONFIRM_POINTS)  # fmt: skip

        dense = more if affordable is not None and affordable() else None
        if not ok and smooth_only:
            # smooth along d through x is not smooth along d near x: the pieces that meet at x
            # may rise along d at other slopes, and each of their gradients is a valid claim
            # (one ReLU of three on, two off). The claim is held to the slope only where the
            # derivatives along d at points nearby are all that slope (a max's tie, whatever
            # the side); where they show other slopes it passes as before
            seen = R.nearby(s, x, d, s_noise, _step(s, x, d, s0, s_noise),
                            np.random.default_rng(NEARBY_SEED))  # fmt: skip
            claims_d = [(float(g @ d), eps) for g, eps in claimed]
            passed, decided, nearby = _confirmed_at_kink(claims_d, lo, hi, slack, seen, 0, dense)
            ok = passed or not decided
            if not ok:
                # ... nor, where kinks stack, at the claim's own pieces (a relu of relus at 0,
                # every relu on: a thin cone of points random ones rarely enter)
                passed, piece_range, _ = at_pieces(d, h, claims_d, lo, hi, slack)
                if passed:
                    ok, nearby = True, piece_range
        if not ok and not smooth_only:
            # kinks that all rise along their elements are held as a convex function's: every
            # gradient near x rises along d between the one-sided derivatives, and so must the
            # claim. A derivative along d nearby beyond both shows the function is not convex
            # through them (six relus of coefficients of both signs meeting in four parameters:
            # a valid limit of gradients 0.77 beyond a one-sided derivative along such a
            # direction was called wrong); there the claim passes within the
            # mixtures seen, as where several kinks meet (_at_kink), and beyond them all it
            # stays wrong
            seen = R.nearby(s, x, d, s_noise, _step(s, x, d, s0, s_noise),
                            np.random.default_rng(NEARBY_SEED))  # fmt: skip
            if not _beyond_sides(seen, lo, hi, slack) and dense is not None:
                seen = dense()
            claims_d = [(float(g @ d), eps) for g, eps in claimed]
            if _beyond_sides(seen, lo, hi, slack):
                non_convex = True
                passed, _, seen_range = _at_kink(claims_d, lo, hi, slack, seen)
                if passed:
                    ok, nearby = True, seen_range
            if not ok:  # and at the claim's own pieces, where they lie beyond the sides too
                passed, piece_range, beyond = at_pieces(d, h, claims_d, lo, hi, slack)
                non_convex |= beyond
                if passed and beyond:
                    ok, nearby = True, piece_range
        group = ("direction over the kinked elements " if trial < JOINT_DIRECTIONS + 2
                 else "direction that no gradient nearby tells apart "
                 if trial < JOINT_DIRECTIONS + 2 + n_residual
                 else "direction from the gradients nearby to the claim ")  # fmt: skip
        reports.append(KinkReport(group, (trial,), output, lo,
                                  hi, float(claimed[0][0] @ d), ok, nearby))  # fmt: skip
    failed = [k for k in reports if not k.passed]
    if failed and not smooth_only and not non_convex and all_up is not None:
        # a claim failed only by the convex bound: is the function convex through these kinks
        # along all of them at once? Where it is not, that bound decides nothing, and the claim
        # is undecided. (The six relus above: of the gradients of the 30 pieces that meet at
        # the point, every one valid, the convex bound called 28 wrong; passed within the
        # mixtures seen along the failing direction, 8 still were, each along a direction
        # nearby which nothing lay beyond its one-sided derivatives; with this, none)
        d, lo, hi, slack = all_up
        seen = R.nearby(s, x, d, s_noise, _step(s, x, d, s0, s_noise),
                        np.random.default_rng(NEARBY_SEED))  # fmt: skip
        non_convex = _beyond_sides(seen, lo, hi, slack)
        if not non_convex and affordable is not None and affordable():
            seen = R.nearby(s, x, d, s_noise, _step(s, x, d, s0, s_noise),
                            np.random.default_rng(CONFIRM_SEED), points=CONFIRM_POINTS)  # fmt: skip
            non_convex = _beyond_sides(seen, lo, hi, slack)
    if non_convex and not smooth_only:
        for k in failed:
            k.decided = False
    return reports


def _beyond_sides(seen, lo, hi, slack, output=0) -> bool:
    """Whether a derivative nearby (references.nearby's ``seen``) lies beyond both one-sided
    derivatives lo and hi by more than its error and theirs (``slack``): a mixture of slopes
    that a function convex (or concave) through its kinks would not show. Values off a line, or
    that moved over their three distances by more than STRADDLE of the gap (a straddled kink),
    or whose error spans half the gap between the sides, show nothing (as in _at_kink)."""
    values, errors = seen.value[:, output], seen.error[:, output]
    usable = np.isfinite(values) & np.isfinite(errors) & seen.linear[:, output].astype(bool)
    margin = SAFETY * np.where(usable, errors, 0.0)
    past = np.maximum(lo - values, values - hi)
    telling = usable & ((margin < 0.5 * (hi - lo)) | (hi - lo <= slack))
    still = seen.moved[:, output] <= STRADDLE * np.maximum(hi - lo, np.maximum(past, 0.0))
    return bool(np.any(telling & still & (past > margin + slack + KINK_MIX * (hi - lo))))


def _smooth_residual(s, x, s0, s_noise, cols, claimed, nearby_of=None) -> list[tuple]:
    """Directions over the kinked elements ``cols`` along which the function is smooth to
    first order while the claim's slope may not be: per claim, the part of its difference from
    a gradient seen nearby that no difference between gradients seen nearby explains.

    Every valid claim is a limit of gradients near x, and all of them have one slope along a
    direction orthogonal to the differences between them (the kinks' normals), the function's
    slope there. A claim valid element by element can still be none of them (an SVM at margins
    of exactly 1 with its bias gradient left out; a lasso's residuals at 0 with one element
    scaled): random directions over eleven kinked elements missed the few along which the
    function is smooth. The gradients over ``cols`` at the points of references.nearby (the
    same points for every element, the smooth drift extrapolated out; its points of sizes
    spread over orders too, which enter thin pieces, at steps of the usual size: a straddled
    kink there gives a mixture of the gradients that meet, within their span, where steps as
    small as those points' smallest coordinates give errors up to a thousand times larger, which
    hid a clip's thin piece) span those differences;
    points whose values are void in any element are left out. A direction found so is held as
    any other (:func:`_joint_kinks`): a claim off the function's slope along it is wrong only
    where the one-sided derivatives there agree (an unseen limit of gradients, whose difference
    from those seen would reach along it, leaves it kinked, and the claim passes it) and, where
    kinks of both signs meet, where the slopes nearby along it agree too. Each direction comes
    with what the gradients seen leave open along it (their differences below the noise, left
    out of the span), added to the tolerance there. None where more than SMOOTH_RESIDUAL_MAX
    elements are kinked (an element's gradient nearby costs 2 x 3 evaluations a point) or
    fewer than two points are usable. ``nearby_of``: element -> (values, errors, linear) of
    references.nearby along it, for this function (shared among a function's outputs by the
    caller); by default taken along ``s``."""
    if len(cols) > SMOOTH_RESIDUAL_MAX or len(cols) < 2:
        return []
    values, errors, usable = _gradients_nearby(
        cols, nearby_of if nearby_of is not None else _nearby_along(s, x, s0, s_noise))
    directions = []
    # the points of one order of size alone, then with those spread over orders: a thin
    # piece's gradient widens the span by its difference, a poorly extrapolated one by its
    # error too, which can hide what the others show
    half = len(values) // 2
    for rows in (np.arange(len(values)) < half, np.ones(len(values), dtype=bool)):
        G, E = values[rows & usable], errors[rows & usable]
        if len(G) < 2:
            continue
        # the differences' span, down to what the errors of most points could make of nothing
        # (a point with a larger error, a straddled kink, widens the span: fewer directions
        # are held)
        D = G[1:] - G[0]
        _, sv, Vt = np.linalg.svd(D, full_matrices=False)
        noise = SAFETY * float(np.median(np.sqrt((E**2).sum(axis=1))))
        basis = Vt[sv > noise]
        for g, _eps in claimed:
            r = np.asarray(g, dtype=np.float64)[cols] - G[0]
            r = r - basis.T @ (basis @ r)
            size = float(np.abs(r).max())
            if size > 0 and np.isfinite(size):
                r /= size
                # what the gradients seen nearby leave open along it: differences between
                # them below the noise, left out of the span, may reach along it that far
                directions.append((r, noise * float(np.linalg.norm(r))))
    return directions


def _nearby_along(s, x, s0, s_noise):
    """element -> (values, errors, linear) of references.nearby along it for the one-output
    ``s`` (the same points for every element), each taken once."""
    taken = {}

    def nearby_of(j):
        if j not in taken:
            e = np.zeros(x.size)
            e[j] = 1.0
            near = R.nearby(s, x, e, s_noise, _step(s, x, e, s0, s_noise),
                            np.random.default_rng(NEARBY_SEED), narrow=False)  # fmt: skip
            taken[j] = near.value[:, 0], near.error[:, 0], near.linear[:, 0]
        return taken[j]

    return nearby_of


def _gradients_nearby(cols, nearby_of):
    """The gradients over ``cols`` at the points of references.nearby, one row a point: values,
    errors, and which points are usable (finite and linear in every element)."""
    values, errors, usable = [], [], None
    for j in cols:
        v, err, linear = nearby_of(j)
        ok = np.isfinite(v) & np.isfinite(err) & linear.astype(bool)
        usable = ok if usable is None else usable & ok
        values.append(v)
        errors.append(err)
    return np.array(values).T, np.array(errors).T, usable


def _nearest_in_hull(G, c) -> np.ndarray:
    """The point of the convex hull of the rows of G nearest to c (least squares over weights
    that are non-negative and sum to 1, the sum held by a heavy row)."""
    from scipy.optimize import nnls

    scale = max(float(np.abs(G).max()), float(np.abs(c).max()), 1e-300)
    heavy = HULL_WEIGHT * scale
    A = np.vstack([G.T, np.full((1, len(G)), heavy)])
    weights, _ = nnls(A, np.concatenate([c, [heavy]]), maxiter=50 * len(G))
    return G.T @ (weights / max(float(weights.sum()), 1e-300))


def _separating(cols, claimed, nearby_of) -> list[tuple]:
    """Directions over the kinked elements ``cols``, one per claim, from the nearest of the
    gradients seen nearby (their convex hull) to the claim: where the function is convex
    through these kinks, its one-sided derivative along d is the largest slope of any gradient
    near x along d, so that a claim outside the subdifferential rises faster along the
    direction that parts it from them. Random directions over the kinked elements rarely find
    it: of relus of relus at 0 in 3 to 6 parameters, one element of a valid claim moved off,
    each element within its own one-sided derivatives, 35 of 180 passed. (r, 0.0) each, as
    :func:`_smooth_residual`'s; none where the claim lies within the hull, to the points'
    errors, or fewer than two points are usable."""
    if len(cols) > SMOOTH_RESIDUAL_MAX or len(cols) < 2:
        return []
    values, errors, usable = _gradients_nearby(cols, nearby_of)
    G, E = values[usable], errors[usable]
    if len(G) < 2:
        return []
    noise = SAFETY * float(np.median(np.abs(E).max(axis=1)))
    directions = []
    for g, _eps in claimed:
        c = np.asarray(g, dtype=np.float64)[cols]
        r = c - _nearest_in_hull(G, c)
        size = float(np.abs(r).max())
        if np.isfinite(size) and size > noise:
            directions.append((r / size, 0.0))
    return directions


def _gradient_at(s, x, s0, s_noise, cols, r):
    """The gradient over ``cols`` at x + r (its drift taken out, as references.nearby's): values,
    errors, and whether every element's is usable (finite, and linear over three distances).
    The steps shrink with the point's smallest coordinate, as nearby's, down to HULL_SHRINK: a
    coordinate 1e-3 of the others gave steps whose rounding was 1% of the gradient, and the
    point was left out (a straddled kink that remains shows at a random direction, _agrees)."""
    unit = np.abs(r[cols]) / max(float(np.abs(r[cols]).max()), 1e-300)
    shrink = min(1.0, max(2.0 * float(unit.min()), HULL_SHRINK))
    values, errors, usable = [], [], True
    for j in cols:
        e = np.zeros(x.size)
        e[j] = 1.0
        value, error, _moved, linear = R._at_point(s, x, e, s_noise,
                                                   _step(s, x, e, s0, s_noise), r, shrink)
        values.append(float(value[0]))
        errors.append(float(error[0]))
        usable &= bool(linear[0]) and bool(np.isfinite(value[0]) and np.isfinite(error[0]))
    return np.array(values), np.array(errors), usable


def _affordable_evals(affordable, n_coords) -> int:
    """The most evaluations (a power of two from CLAIMED_MIN to CLAIMED_MAX) that
    references.claimed over n_coords coordinates may spend within ``affordable``; 0 where even
    the least does not fit, or ``affordable`` is None (no budget to hold it to)."""
    if affordable is None:
        return 0
    most = CLAIMED_MAX
    while most >= CLAIMED_MIN and not affordable(R.claimed_evaluations(n_coords, most)):
        most //= 2
    return most if most >= CLAIMED_MIN else 0


def _agrees(combined, combined_error, value, error, linear, scale, largest) -> np.ndarray:
    """Per point: a gradient's slope along a direction (``combined``, its error) is the
    derivative along it at the same point (value, error, linear, references.nearby's), each of
    the gradient's elements (``largest``: their largest error) known to HULL_ERROR of ``scale``
    (the largest gradient element seen): a straddled step's value carries a wide error, which
    would let it agree with anything."""
    usable = linear.astype(bool) & np.isfinite(value) & np.isfinite(error)
    with np.errstate(invalid="ignore"):
        usable &= SAFETY * largest <= HULL_ERROR * scale
        # held to the gradient's own error, not the derivative's: a straddled step along the
        # direction carries a wide error whatever its value, and agreement within it shows
        # nothing (where it agrees within the gradient's, it was no straddle that mattered)
        tolerance = SAFETY * combined_error + KINK_MIX * scale
        return usable & (np.abs(combined - value) <= tolerance)


def _hull(s, x, s0, s_noise, cols, claimed, output, convex, nearby_of=None,
          affordable=None) -> list[KinkReport]:
    """A claim at several kinks (``cols``, of one output) passes only within the convex hull of
    gradients seen near x, Clarke's subdifferential as far as they show it: every direction
    over the kinks can hold a valid claim (each within its one-sided derivatives, or the
    mixtures nearby) while the claim is none of the pieces' gradients nor a mixture of them. Of
    relus of relus at 0 in 3 to 6 parameters, one element of a valid claim moved off, each
    element within its own one-sided derivatives, 35 of 180 passed along the random directions.

    The hull starts from the gradients at references.nearby's points and at the claim's own
    pieces (references.claimed); while the claim lies outside it, the direction d from its
    nearest point to the claim is held: beyond the one-sided derivatives along d, the claim is
    wrong where the function is convex through these kinks (``convex``: every kink rising, or
    every one falling, and the points nearby along d show nothing beyond them; there the
    one-sided derivative is the largest slope of any gradient near x), else undecided; within
    them, the gradient of the piece x + t d enters (where convex, the piece whose slope along d
    is the largest) and the claim is held again, up to HULL_ROUNDS times. Still outside: where
    convex, the claim passes (it held along every direction tried; a lasso's zeros, a box of
    separable kinks, have more vertices than the rounds reach), else it is undecided, `cannot
    tell`. One report (the last direction held), or none where the claim lies within the hull
    or passes; none where the points are not affordable; an undecided one where fewer than two
    of them resolve a gradient."""
    if len(cols) > SMOOTH_RESIDUAL_MAX or len(cols) < 2:
        return []
    if nearby_of is None:
        nearby_of = _nearby_along(s, x, s0, s_noise)
    n_cols = len(cols)
    rounds_cost = HULL_ROUNDS * (KINK_EVALS + (n_cols + HULL_CHECKS) * 3 * 4)
    rounds_cost += 2 * R.NEARBY_POINTS * 12  # the points' check along a random direction
    if affordable is not None and not affordable(rounds_cost):
        return []
    most = _affordable_evals(affordable, n_cols)
    values, errors, usable = _gradients_nearby(cols, nearby_of)
    rng = np.random.default_rng([HULL_SEED, x.size])
    # a point whose step straddled a kink along one element gives a mixture of two pieces'
    # slopes there beside one piece's elsewhere, a vector neither piece has, which widens the
    # hull: each point's gradient is held to its derivative along a random direction over the
    # elements at the same point (the points of references.nearby, its seed)
    w = np.zeros(x.size)
    w[cols] = rng.choice([-1.0, 1.0], size=n_cols) * rng.uniform(0.5, 1.0, size=n_cols)
    along = R.nearby(s, x, w, s_noise, _step(s, x, w, s0, s_noise),
                     np.random.default_rng(NEARBY_SEED), narrow=False)  # fmt: skip
    scale = float(np.nanmax(np.abs(np.where(usable[:, None], values, 0.0)), initial=0.0))
    usable &= _agrees(values @ w[cols], np.abs(errors) @ np.abs(w[cols]), along.value[:, 0],
                      along.error[:, 0], along.linear[:, 0], scale,
                      np.abs(errors).max(axis=1))  # fmt: skip
    G, E = list(values[usable]), list(errors[usable])
    if len(G) < 2:
        # no gradient resolved near x (float32 code that casts inside: steps within its
        # rounding): whether the claim is a mixture of the pieces' gradients is not seen, and
        # each element within its own one-sided derivatives is not enough (a Huber and pinball
        # regression at 4 zero residuals, cast inside: claims 1% and 10% off, outside the
        # subdifferential, passed as `not differentiable here`); undecided, `cannot tell`
        return [KinkReport("direction from the gradients nearby to the claim ", (0,), output,
                           np.nan, np.nan, np.nan, False, None, False)]  # fmt: skip
    size = np.maximum(np.abs(x), 1.0)
    pieces_sought = False

    def enter(offset):
        """The gradient at x + offset enters the hull where it agrees with the derivative along
        a random direction over the elements there, one of HULL_CHECKS (a step along one can
        straddle a tie of two small coordinates, while a gradient with a straddled element
        disagrees along every direction that moves that element)."""
        v, e, ok = _gradient_at(s, x, s0, s_noise, cols, offset)
        if not ok:
            return False
        unit = np.abs(offset[cols]) / max(float(np.abs(offset[cols]).max()), 1e-300)
        shrink = min(1.0, max(2.0 * float(unit.min()), HULL_SHRINK))
        scale = max(float(np.abs(np.array(G)).max()), float(np.abs(v).max()))
        for _ in range(HULL_CHECKS):
            w = np.zeros(x.size)
            w[cols] = rng.choice([-1.0, 1.0], size=n_cols) * rng.uniform(0.5, 1.0, size=n_cols)
            value, error, _moved, linear = R._at_point(
                s, x, w, s_noise, _step(s, x, w, s0, s_noise), offset, shrink)
            if _agrees(np.array([v @ w[cols]]), np.array([np.abs(e) @ np.abs(w[cols])]), value,
                       error, linear, scale, np.array([np.abs(e).max()]))[0]:  # fmt: skip
                G.append(v)
                E.append(e)
                return True
        return False

    def outside():
        """The worst claim's (residual over cols, its largest share of the tolerance)."""
        H, He = np.array(G), np.array(E)
        worst, share = None, 0.0
        for g, eps in claimed:
            c = np.asarray(g, dtype=np.float64)[cols]
            r = c - _nearest_in_hull(H, c)
            scale = max(float(np.abs(H).max()), float(np.abs(c).max()))
            tol = (SAFETY * np.median(He, axis=0) + KINK_MIX * scale
                   + np.array([_rounding(ci, 0.0, eps, scale) for ci in c]))  # fmt: skip
            ratio = float(np.max(np.abs(r) / tol)) if np.all(np.isfinite(r)) else np.inf
            if ratio > max(share, 1.0):
                worst, share = r, ratio
        return worst, share

    report = None
    for _ in range(HULL_ROUNDS):
        r, _share = outside()
        if r is None:
            return []  # within the gradients seen: positive evidence
        if not pieces_sought:
            pieces_sought = True
            h = _step(s, x, np.where(np.isin(np.arange(x.size), cols), 1.0, 0.0), s0, s_noise)
            target = np.asarray(claimed[0][0], dtype=np.float64)[cols]
            relative = h / max(1.0, float(np.abs(x[cols]).max()))
            for offset in R.claimed(s, x, s_noise, h, cols, target, most) if most else []:
                enter(relative * offset * size)
            continue
        d = np.zeros(x.size)
        d[cols] = r / float(np.abs(r).max())
        h = _step(s, x, d, s0, s_noise)
        left, right = R.one_sided(s, x, d, s0, s_noise, h)
        lo, hi = sorted((float(left.value[0]), float(right.value[0])))
        seen_d = np.array(G) @ d[cols]
        claim_d = float(np.asarray(claimed[0][0]) @ d)
        nearby = (float(seen_d.min()), float(seen_d.max()))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            # not finite along d near x: nothing more to learn, the claim still outside
            report = KinkReport("direction from the gradients nearby to the claim ", (0,),
                                output, lo, hi, claim_d, False, nearby, False)  # fmt: skip
            break
        slack = SAFETY * max(float(left.error[0]), float(right.error[0]))
        beyond = False
        for g, eps in claimed:
            c = float(np.asarray(g) @ d)
            allowance = slack + _rounding(float(np.abs(np.asarray(g)[cols]).sum()), 0.0, eps,
                                          max(abs(lo), abs(hi)))  # fmt: skip
            beyond |= not lo - allowance <= c <= hi + allowance
        if beyond and convex:
            # (a gradient seen nearby beyond the sides along d: not convex through these kinks)
            margin = slack + KINK_MIX * (hi - lo)
            seen_beyond = bool(np.any((seen_d > hi + margin) | (seen_d < lo - margin)))
            decided = not seen_beyond and not _beyond_sides(
                R.nearby(s, x, d, s_noise, h, np.random.default_rng(NEARBY_SEED)), lo, hi, slack)
            if decided and affordable is not None and affordable():
                decided = not _beyond_sides(R.nearby(s, x, d, s_noise, h,
                                                     np.random.default_rng(CONFIRM_SEED),
                                                     points=CONFIRM_POINTS), lo, hi, slack)
            return [KinkReport("direction from the gradients nearby to the claim ", (0,), output,
                               lo, hi, claim_d, False, nearby, decided)]  # fmt: skip
        # (not convex: a claim beyond the sides along d may still be a limit of gradients)
        report = KinkReport("direction from the gradients nearby to the claim ", (0,), output,
                            lo, hi, claim_d, False, nearby, False)  # fmt: skip
        # the piece along d (a little off it, to stay off every kink), and where the function
        # is not convex, pieces about it (the slopes along d are largest off it there): their
        # gradients enter
        relative = h / max(1.0, float(np.abs(x[cols]).max()))
        entered = False
        for spread in (DOMINANT_SMALL_HULL,) if convex else HULL_SPREADS:
            step = spread * rng.choice([-1.0, 1.0], size=x.size) * rng.uniform(
                0.5, 1.0, size=x.size)
            entered |= enter(relative * (d + step) * size)
        if not entered:
            break
    if outside()[0] is None or convex:
        return []
    if report is None:  # (no direction held: the rounds ended at the claim's own pieces)
        report = KinkReport("direction from the gradients nearby to the claim ", (0,), output,
                            np.nan, np.nan, np.nan, False, None, False)  # fmt: skip
    return [report]


def _linear_in_cotangent(claim, evaluated, out_shape, notes) -> bool:
    """A VJP is linear in its cotangent: at a random one it must equal the same combination of
    its rows at unit cotangents, which are all the full Jacobian compares (a VJP that clamps
    or normalises u agrees with J^T at every unit vector and nowhere else)."""
    _, J, S, eps_rows = evaluated
    # magnitudes from 1e-2 to 1e2, both signs, one above 1 and one below: neither a clamp, an
    # abs nor a normalisation leaves it alone
    rng = np.random.default_rng(LINEARITY_SEED)
    m = J.shape[0]
    size = 10.0 ** rng.uniform(-2, 2, m)
    size[0], size[-1] = 10**1.5, 10**-1.5
    sign = rng.choice([-1.0, 1.0], m)
    sign[0], sign[-1] = 1.0, -1.0
    u = size * sign
    claimed, eps_u = claim.value(u.reshape(out_shape))
    combined = J.T @ u
    eps = max(eps_rows, eps_u)
    # (each row holds the rounding of its largest value, as the rows are judged: a group of
    # 1e-9 beside one of 1 in a saturated attention was off by 9e-14 at a random u, its rows
    # each within their own allowance, held to 6e-14)
    tol = (
        SAFETY * ELEMENT_ULPS * eps * (np.abs(J.T) @ np.abs(u))
        + SAFETY * SPREAD_SAFETY * (S.T @ np.abs(u))
        + FLOOR_ULPS * eps * float(np.abs(combined).max())
        + FLOOR_ULPS * eps * float(np.abs(u) @ np.abs(J).max(axis=1))
        + 1e-300
    )
    off = np.abs(claimed - combined)
    if np.all(off <= tol):
        return True
    k = int(np.argmax(off / tol))
    notes.append(
        f"not linear in the cotangent: at a random u the claim is {claimed[k]:.6g} at element "
        f"{k}, its rows at unit cotangents combine to {combined[k]:.6g} (tolerance "
        f"{tol[k]:.3g}); a VJP that clamps, takes abs of or normalises u?"
    )
    return False


def _confirmed(cs: R.Derivative, d: R.Derivative) -> np.ndarray:
    """A complex step is trusted only as far as a central difference confirms it: a function
    that loses the imaginary part where it saturates (a clipped exponential) gives a complex
    step of 0 there that agrees with central differences within their error, and no better."""
    return np.maximum(cs.error, np.abs(cs.value - d.value) + d.error)


def _undecided(verdict, label, what, notes) -> str:
    """A passing verdict becomes cannot tell where the low-precision claim was off beyond its
    measured rounding but within its rounding bias bound (BIAS_ULPS), the same code in float64
    holding: float32 rounding that its scatter misses (a sharp softmax, a rounded mean, a
    variance of data at 1000 +- 0.01) and an error of float32 code alone (a step in float16,
    off by as much in the small elements) cannot be told apart."""
    if verdict not in (CORRECT, KINK):
        return verdict
    notes.append(
        f"{label}: {what} off the reference beyond its measured rounding, within its rounding "
        f"bias bound ({BIAS_ULPS:g} of its ulps of their group's largest, its scatter uncapped; "
        f"along probes at least {FLOOR_ULPS:g} of the largest of all groups) "
        "where the same code in float64 holds: float32 rounding that its scatter misses and an "
        "error of the float32 code alone cannot be told apart there"
    )
    return CANNOT_TELL


def _low_resolution(verdict, label, unseen, notes) -> str:
    """A passing verdict, or cannot tell where the low-precision claim, held to its own
    rounding, would not see ``unseen`` (its groups, or all of it, named) off by RESOLVE as a
    whole: an error of the low-precision code alone (a branch on the dtype, a step in lower
    precision) moves whole arrays, and the same code run in float64 does not see it."""
    if verdict not in (CORRECT, KINK) or not unseen:
        return verdict
    notes.append(
        f"{label}: its own rounding would not see {unseen} off by {RESOLVE:g} as a whole; the "
        "same code in float64 holds, but an error of the low-precision code alone that small "
        "would not be seen"
    )
    return CANNOT_TELL


def _verdict(smooth_ok: bool, kinks, floor: float, resolution: float) -> str:
    if not smooth_ok or any(k.decided and not k.passed for k in kinks):
        return WRONG
    if not all(k.passed for k in kinks):
        return CANNOT_TELL  # a claim beyond what was seen where kinks of both signs meet
    # a check that could not have seen a sizable error cannot tell, kinks or none: a kink that
    # passed made it `not differentiable here` before (float32 code, a fit across another kink
    # as an element's reference, errors below 0.53 of the largest derivative unseen)
    if floor > CANNOT_TELL_FLOOR or resolution > RESOLVE:
        return CANNOT_TELL
    if kinks:
        return KINK
    return CORRECT


# ------------------------------------------------------------------------------------ probes


def _explained(spread, spread64, eps):
    """The low-precision claim's scatter (its epsilon eps) as far as the same code's scatter in
    float64 explains it (see EXPLAINED)."""
    return np.minimum(spread, EXPLAINED * (eps / R.EPS) * spread64)


def _largest(groups, g):
    """Per element, the largest |g| of its group."""
    size = np.abs(g)
    return np.repeat(np.maximum.reduceat(size, groups.offsets[:-1]), np.diff(groups.offsets))


def _jump_cap(groups, g, eps):
    """Per element, the largest scatter still taken for rounding: JUMP times the rounding
    allowance of the element and of its group's largest (as the full Jacobian's jumps)."""
    return JUMP * (ELEMENT_ULPS * eps * np.abs(g) + FLOOR_ULPS * eps * _largest(groups, g))


def _directions(groups, sizes, rng, n_probes):
    """The probes' directions, each with the group it is restricted to (None: all elements).

    - ``n_probes`` Rademacher directions: every element weighs fully in each, so an error in
      one element moves every probe by itself;
    - the bit patterns of the elements' indices, and all ones: two elements differ in some bit
      and agree in the all-ones probe, so an error in two elements that cancels in half the
      random probes (a swap) moves at least one of these by twice itself;
    - GROUP_PROBES random directions over each group whose claimed derivatives are all below
      NOTABLE of the largest (a bias scaled by 1e-5): in the others its errors are drowned.
    """
    n = groups.x.size
    for _ in range(n_probes):
        yield rng.choice([-1.0, 1.0], size=n), None
    index = np.arange(n)
    yield np.ones(n), None
    for bit in range(max(int(np.ceil(np.log2(n))), 1)):
        yield np.where((index >> bit) & 1, -1.0, 1.0), None
    if len(groups.names) > 1:
        largest = float(sizes.max())
        for g in range(len(groups.names)):
            part = slice(groups.offsets[g], groups.offsets[g + 1])
            if float(sizes[part].max()) >= NOTABLE * largest:
                continue
            for _ in range(GROUP_PROBES):
                v = np.zeros(n)
                v[part] = rng.choice([-1.0, 1.0], size=part.stop - part.start)
                yield v, g


def _plain_directions(n, n_probes) -> int:
    """The directions of :func:`_directions` over all n elements: the random ones, all ones
    and the index bit patterns."""
    return n_probes + 1 + max(int(np.ceil(np.log2(n))), 1)


def _count_directions(groups, sizes, n_probes) -> int:
    """How many directions :func:`_directions` gives (the progress line's total)."""
    count = _plain_directions(groups.x.size, n_probes)
    if len(groups.names) > 1:
        largest = float(sizes.max())
        tops = [float(sizes[groups.offsets[g] : groups.offsets[g + 1]].max())
                for g in range(len(groups.names))]  # fmt: skip
        small = sum(top < NOTABLE * largest for top in tops)
        count += GROUP_PROBES * small
    return count


class _Scalarised:
    """u . f(x) for a fixed cotangent u: a one-output function for a directional probe."""

    def __init__(self, f: R.Evaluator, u: np.ndarray):
        self.f, self.u = f, u
        self.m = 1

    def at(self, x):
        value, point = self.f.at(x)
        return np.array([float(np.dot(self.u, value))]), point

    def complex(self, z):
        return np.array([np.dot(self.u, np.asarray(self.f.complex(z)).reshape(-1))])

    @property
    def calls(self):
        return self.f.calls

    @property
    def out_eps(self):
        return self.f.out_eps

    @property
    def inner_eps(self):
        return self.f.inner_eps

    @property
    def rounds_to(self):
        return self.f.rounds_to


def _probes(groups, f, claims, x, f0, noise, m, out_shape, generic, complex_ok, rng, n_probes,
            show, budget=BUDGET) -> GradCheckResult:  # fmt: skip
    """Directional probes; a probe along which the function has a kink is split (:func:`split`).

    Along a direction that crosses kinks (ReLUs at exactly 0) the claim can only be held
    between the one-sided derivatives, and those of many kinks together leave room for an
    invalid subgradient or an error in a smooth element; where kinks enter with both signs, a
    valid claim can even lie outside them. So such a probe is split, halves of its support at a
    time, until every part is smooth (judged as any probe) or one element with a kink of its
    own, held between its own one-sided derivatives, as the full Jacobian holds it (and jointly
    with the others where the function is convex or concave through them). Later probes leave
    the elements with kinks out, so they are smooth and judged strictly.
    """
    n = x.size
    reports, kinks_found, notes = [], [], []
    floors = {label: [] for label in (c.label for c, _ in claims)}
    group_floors = {label: {} for label in floors}
    state = {"cs_ok": complex_ok, "used_cs": False, "fitted": False, "unexamined": 0,
             "below_along": set(), "below_seen": 0, "no_reference": 0,
             "smooth_ok": True, "kinks_ok": True, "biased": False}
    kinked = np.zeros(n, dtype=bool)  # elements with a kink of their own, found by splitting
    # which groups are far smaller than the largest: from the claim at a cotangent of ones
    claim0, build0 = claims[0]
    sizes = np.abs(claim0.with_spread(np.ones(m).reshape(out_shape), build0)[0])
    # what splitting may spend, as refinement in the full Jacobian: counted evaluations, and
    # the guard's seconds for slow functions
    allowance = SUSPECT_EVALS * max(n, EVALS_MIN_PARAMS)
    calls_from, started = f.calls, time.perf_counter()
    joint_directions = np.random.default_rng(JOINT_SEED)
    nearby_rng = np.random.default_rng(NEARBY_SEED)
    low = _low_claim(claims, generic)
    reach = _Reach(claims, low, x, REACH_SEED) if low is not None else None
    # the claims held within their rounding of kinks somewhere: undecided, so they are not
    # judged again (refining what only they fail spent the evaluations that an error in the
    # code, seen by the float64 run, needed: 31,801 elements were left unsplit)
    held = set()
    stairs_seen = []  # (jump, distance, bound) along probes or their parts

    def judged(evaluated):
        return [e for e in evaluated if e[0] not in held]

    def within_rounding(s, s_noise, evaluated, w, ref, ref_err, verdicts, where):
        """The verdicts without the low-precision claim's where it alone is off along w and the
        derivatives jump within its rounding reach by more than its tolerance (held there,
        undecided: a KinkReport); otherwise the verdicts as they are."""
        mine = [k for k, v in enumerate(verdicts) if low is not None and v[0] == reach.claim.label]
        if not mine or verdicts[mine[0]][3] or not all(
            v[3] for k, v in enumerate(verdicts) if k != mine[0]
        ):
            return verdicts
        label, claimed, tol = verdicts[mine[0]][:3]
        jump = reach.jump(s, w, s_noise, s.u.reshape(out_shape), 0, ref, ref_err)
        if SPREAD_SAFETY * jump <= tol:
            return verdicts
        kinks_found.append(KinkReport(*where, 0, ref - jump, ref + jump, claimed, False, None,
                                      False, reach.claim.dtype))  # fmt: skip
        held.add(label)
        return [v for k, v in enumerate(verdicts) if k != mine[0]]

    def examine(s, s0, s_noise, evaluated, v):
        """Judge each claim along v: (reference, its error, verdicts, kink_pair or None)."""
        correction = evaluated[0][1]
        h = _step(s, x, v, s0, s_noise)
        d = R.central(s, x, v, s_noise, h, correction)
        ref, ref_err = float(d.value[0]), float(d.error[0])
        cs = R.complex_step(s, x, v) if state["cs_ok"] else None
        if isinstance(cs, str):
            notes.append(f"complex step not used: {cs}")
            state["cs_ok"], cs = False, None
        exact = cs is not None and abs(float(cs.value[0]) - ref) <= SAFETY * ref_err
        if exact:
            ref, ref_err, state["used_cs"] = float(cs.value[0]), float(_confirmed(cs, d)[0]), True
        largest = max(float(np.abs(g).max()) for _, g, _, _ in evaluated)
        below = ZERO_ULPS * R.EPS * largest * float(np.linalg.norm(v))
        # a complex step along v below ``below``, or below its differences' accuracy, that its
        # complex steps at other step sizes resolve: the derivative along v, its error their
        # spread (SELF_STEPS)
        sized = None
        tiny = abs(ref) <= SELF_SHARE * largest * float(np.linalg.norm(v))
        unresolved = abs(ref) <= below or SAFETY * ref_err > RESOLVE * abs(ref)
        if exact and ref != 0 and tiny and unresolved:
            spread = _self_spread(s, x, v, cs.value, claims[-1][0].nearby[:SELF_PAIRS])
            error = max(float(cs.error[0]), float(spread[0])) if spread is not None else np.inf
            if abs(ref) > SAFETY * error:
                sized = error
                ref_err = min(ref_err, sized)
        state["below_along"] = set()

        def scatter(spread):
            # the claim's rounding in a dot product: its scatter along v, and at least the
            # scatter's norm (the elements' scatters adding up as a random walk)
            return max(float(np.abs(np.dot(spread, v))), float(np.linalg.norm(spread)))

        def judge(ref, ref_err):
            out, steady, wide = [], [], None
            # a reference known to be 0 along v (ZERO_ULPS of the claims' largest, v's size
            # counted): a claim there holds the rounding of the sums that cancel to it, whose
            # terms are the other elements' size (a bias before a batch norm, probed on its
            # own: float32 claims of 1e-8 were `wrong`, as in the full Jacobian)
            # (one that its complex steps size is not: see SELF_STEPS)
            confirmed = exact and cs is not None and ref == float(cs.value[0])
            zero = (abs(ref) if confirmed else abs(ref) + SAFETY * ref_err) <= below
            zero &= not (confirmed and sized is not None)
            state["zero_along"] = largest if zero else 0.0  # the scale of its floor, below
            for label, g, eps, spread in evaluated:
                # a claim that jumps a few ulps away by far more than rounding (a special case
                # at an exact zero, sin(w t) / w taken as t at w = 0) gets no allowance for the
                # jump: if it is wrong there, the one-sided differences below say so (the full
                # Jacobian's SCATTERED_SHARE is not taken here: along a probe, kinks at x that
                # its nudges flip scatter as rounding does, ReLU units at exactly 0)
                capped = np.minimum(spread, _jump_cap(groups, g, eps))
                steady.append(bool(np.all((capped == spread) | (v == 0))))
                if low is not None and label == reach.claim.label and len(evaluated) > 1:
                    # ... and as far as the float64 run explains it (see EXPLAINED)
                    capped = np.minimum(capped, _explained(spread, evaluated[1][3], eps))
                g_all, g = g, g * (v != 0)  # the elements this probe moves
                tol = (
                    SAFETY * ref_err
                    + SPREAD_SAFETY * scatter(capped * (v != 0))
                    + ELEMENT_ULPS * eps * float(np.linalg.norm(g))
                    + FLOOR_ULPS * eps * float(np.abs(g).max())
                    + (FLOOR_ULPS * eps * largest * float(np.linalg.norm(v)) if zero else 0.0)
                    + 1e-300
                )
                claimed = float(np.dot(g, v))
                if confirmed and sized is not None and abs(claimed - ref) > tol:
                    # off a sized reference within the rounding of the largest derivative
                    # (as a known zero is allowed): cannot be told here (SELF_STEPS)
                    mine = low is not None and label == reach.claim.label
                    rounding = FLOOR_ULPS * (eps if mine else min(eps, R.EPS)) * largest * float(
                        np.linalg.norm(v))
                    if abs(claimed - ref) <= tol + rounding:
                        tol += rounding
                        state["below_along"].add(label)
                out.append((label, claimed, tol, abs(claimed - ref) <= tol, g))
                if low is not None and label == reach.claim.label and len(evaluated) > 1:
                    # where it alone is off: its rounding bias bound (BIAS_ULPS of its ulps of
                    # each element's group's largest, adding up as a random walk; its scatter
                    # uncapped), used below if the same code in float64 holds along v
                    bias = BIAS_ULPS * eps * float(np.linalg.norm(_largest(groups, g_all) * v))
                    # ... and at least FLOOR_ULPS of the largest derivative of all, as in the
                    # full Jacobian (naive GELU in float32 at -5.5: W2's float32 rounding of
                    # the 1 in 1 + erf, 3e-8 in derivatives of 4e-4, was `wrong` along probes)
                    bias = max(bias, FLOOR_ULPS * eps * largest * float(np.linalg.norm(v)))
                    extra = scatter(spread * (v != 0)) - scatter(capped * (v != 0))
                    if extra > 0 and abs(claimed - ref) > tol + bias:
                        # ... not where kinks within its reach move the derivative along v
                        jump = reach.jump(s, v, s_noise, s.u.reshape(out_shape), 0, ref, ref_err)
                        bias += SPREAD_SAFETY * extra if SPREAD_SAFETY * jump <= tol else 0.0
                    wide = (label, claimed, tol + bias, abs(claimed - ref) <= tol + bias, g)
            mine = [k for k, o in enumerate(out) if low is not None and o[0] == reach.claim.label]
            if mine and wide is not None and not out[mine[0]][3] and wide[3] and all(
                o[3] and steady[k] for k, o in enumerate(out) if k != mine[0]
            ):
                out[mine[0]] = wide
                state["biased"] = True
            return out

        verdicts = judge(ref, ref_err)
        kink_pair = None
        resolved = SAFETY * ref_err <= RESOLVE * max(abs(c) for _, c, *_ in verdicts)
        if not all(ok for *_, ok, _ in verdicts) or not resolved:
            d = R.refine(s, x, v, s_noise, h, correction, fit=not generic)
            state["fitted"] |= not generic
            exact = cs is not None and abs(float(cs.value[0]) - float(d.value[0])) <= (
                SAFETY * float(d.error[0])
            )
            if exact:
                ref, ref_err = float(cs.value[0]), float(_confirmed(cs, d)[0])
                ref_err = min(ref_err, sized) if sized is not None else ref_err
            elif float(d.error[0]) < ref_err + max(
                    0.0, abs(float(d.value[0]) - ref) - float(d.error[0])) or cs is not None:
                # the first estimate held to the refined one, as each step is held to the
                # smaller ones in refine (a float32 log sum w^2 at w of 1e-15: a step past w's
                # scale gave 4.6e10 +- 1.5e10 where smaller ones agreed on 1.16e12 +- 2e10)
                ref, ref_err = float(d.value[0]), float(d.error[0])
            verdicts = judge(ref, ref_err)
            # fun rising steeply along v, below every step taken (as the full Jacobian's steep)
            found = None if all(ok for *_, ok, _ in verdicts) else _smooth_scale(
                s, x, v, s_noise, abs(ref))
            if found is None and not all(ok for *_, ok, _ in verdicts) and np.count_nonzero(v) > 1:
                found = _smooth_scale_within(s, x, v, s_noise, evaluated[0][1])
            if found is not None:
                step, level = found
                ref_err = np.inf
                if step is not None:
                    d = R.refine(s, x, v, level, step, correction, fit=not generic)
                    ref, ref_err = float(d.value[0]), float(d.error[0])
                    if cs is not None and abs(float(cs.value[0]) - ref) <= SAFETY * ref_err:
                        ref, ref_err = float(cs.value[0]), float(_confirmed(cs, d)[0])
                verdicts = judge(ref, ref_err)
            elif not all(ok for *_, ok, _ in verdicts):
                left, right = R.one_sided(s, x, v, s0, s_noise, h)
                lv, rv = float(left.value[0]), float(right.value[0])
                slack = SAFETY * max(float(left.error[0]), float(right.error[0]))
                if np.isfinite(lv) and np.isfinite(rv):
                    if abs(rv - lv) <= SAFETY * float(left.error[0] + right.error[0]):
                        # smooth after all: the mean of both sides, and each side, is a
                        # reference too under its own assumptions (a kink within the step
                        # fooled the others; a kink 1e-9 away blurs one side only), as in the
                        # full Jacobian, but only where it is nearly as accurate as the best:
                        # a vague one agrees with anything. In code that computes in float32,
                        # whose one-sided differences are seldom sharp, a vague one counts too
                        # where the reference was fooled (below) or a kink is in sight: both
                        # sides apart by more than their own errors (max-pool ties cast inside:
                        # 0.098 +- 0.013 and 0.279 +- 0.013, a claim of the right one), or kinks
                        # seen already. Not along a line where nothing shows one: a float32 log
                        # sum w^2 at w of 1e-15 (-3.44e12 +- 6.6e12 and -3.85e12 +- 6.7e12)
                        # passed a claim of 0 where the reference was -3.61e12 +- 1e10
                        lerr, rerr = float(left.error[0]), float(right.error[0])
                        mean_err = (lerr + rerr) / 2 + abs(rv - lv) / 2
                        candidates = [((lv + rv) / 2, mean_err), (lv, lerr), (rv, rerr)]
                        # a reference both sides contradict was fooled (as in the full
                        # Jacobian's one_sided): held to their mean (not a complex step)
                        off = abs(ref - (lv + rv) / 2)
                        fooled = not exact and off > SAFETY * (ref_err + mean_err)
                        best = min([ref_err + off if fooled else ref_err]
                                   + [err for _, err in candidates])  # fmt: skip
                        vague = not generic and (fooled or abs(rv - lv) > lerr + rerr
                                                 or bool(kinks_found) or bool(kinked.any()))
                        for value, err in candidates:
                            if err <= ALTERNATIVE * best or vague:
                                again = zip(judge(value, err), verdicts, strict=True)
                                verdicts = [a if a[3] else b for a, b in again]
                    else:
                        kink_pair = (lv, rv)
                        lo, hi = sorted(kink_pair)
                        verdicts = [
                            (label, c, tol + slack, lo - tol - slack <= c <= hi + tol + slack, g)
                            for label, c, tol, _, g in verdicts
                        ]
        if kink_pair is None and not exact and not all(ok for *_, ok, _ in verdicts):
            # a tread of a staircase, as the full Jacobian's staircase() looks for one
            found = R.stairs(s, x, v, s0, s_noise, h, [0], np.array([ref]), _stair_reach(x, v),
                             _largest_stair(s, s0))  # fmt: skip
            if found:
                stairs_seen.append(found[0])
                ref_err = max(ref_err, found[0][2])
                verdicts = judge(ref, ref_err)
        return ref, ref_err, verdicts, kink_pair

    def element_kink(s, s0, s_noise, evaluated, w, h, found):
        """One element along w: None where the function is smooth along it; at a kink of its
        own, held as the full Jacobian holds it (between its one-sided derivatives along +e_j,
        or among the derivatives nearby where several kinks meet, :func:`_at_kink`): False
        where a claim is wrong, True where all are valid or undecided (reported either way)."""
        j = int(np.flatnonzero(w)[0])
        left, right = R.one_sided(s, x, w, s0, s_noise, h)
        if not _apart(left, right):
            return None
        lv, rv = float(left.value[0]), float(right.value[0])
        lerr, rerr = float(left.error[0]), float(right.error[0])
        left_e, right_e = (lv, rv) if w[j] > 0 else (rv, lv)
        left_e, right_e = left_e / w[j], right_e / w[j]
        lo, hi = sorted((left_e, right_e))
        slack = SAFETY * max(lerr, rerr) / abs(w[j])
        # a claim may jump at its kink: no scatter allowance here
        claimed = [(float(g[j]), eps) for _, g, eps, _ in evaluated]
        ok, decided, seen = _at_kink(claimed, lo, hi, slack)
        if not ok and generic:
            e = np.zeros(n)
            e[j] = 1.0
            near = R.nearby(s, x, e, s_noise, _step(s, x, e, s0, s_noise), nearby_rng)
            ok, decided, seen = _at_kink(claimed, lo, hi, slack, near)
        for label, g, eps, _ in evaluated:
            c = float(g[j])
            tol = slack + _rounding(c, 0.0, eps, max(abs(lo), abs(hi)))
            reports.append(
                ProbeReport((lo + hi) / 2, c, (hi - lo) / 2, tol, ok, (left_e, right_e), label)
            )
        name, index = groups.locate(j)
        kinks_found.append(KinkReport(name, index, 0, left_e, right_e, float(evaluated[0][1][j]),
                                      ok, seen, decided))  # fmt: skip
        kinked[j] = True
        found.append((j, right_e > left_e))
        return ok or not decided

    def mixed(s, s0, s_noise, evaluated, w, ref, ref_err):
        """A claim that disagrees with a smooth reference along a part of several elements:
        kinks may cancel along it (their one-sided slopes agree) while the claim mixes them
        validly. True where the derivatives nearby show mixtures (split further, down to single
        elements, judged on their own); False where they all equal the reference (no kinks
        nearby: the claim is wrong). A single element smooth along its own line is judged
        strictly: nearby points a step away would take a kink 1e-9 from the point for one at
        it, and pass the other side's slope there."""
        near = R.nearby(s, x, w, s_noise, _step(s, x, w, s0, s_noise), nearby_rng,
                        points=PART_POINTS)  # fmt: skip
        claimed = [(float(np.dot(g * (w != 0), w)), eps) for _, g, eps, _ in evaluated]
        ok, decided, _ = _at_kink(claimed, ref, ref, SAFETY * ref_err, near)
        return not (decided and not ok)

    def kinked_along(s, s0, s_noise, evaluated, v):
        """Whether kinks were seen near x already (by earlier probes), or one of the JUMP_LOOKS
        elements that weigh most in the claim along v has a kink of its own (one-sided
        derivatives apart beyond their error): in code that computes in float32, the evidence
        that a probe whose one-sided slopes agree may cross kinks that cancel (a smooth
        function's probes are judged as they are: splitting those lost 1% errors of MLPs)."""
        if kinks_found or kinked.any():
            return True
        weight = np.abs(evaluated[0][1] * v)
        for j in np.argsort(-weight)[:JUMP_LOOKS]:
            if not weight[j] > 0:
                break
            e = np.zeros(n)
            e[j] = 1.0
            if _apart(*R.one_sided(s, x, e, s0, s_noise, _step(s, x, e, s0, s_noise))):
                return True
        return False

    def split(s, s0, s_noise, evaluated, v):
        """Split a probe along which the function has a kink into smooth parts and single
        elements with kinks of their own: (its floor per claim, whether every part passed)."""
        scale = {label: float(np.abs(g * (v != 0)).max()) for label, g, _, _ in evaluated}
        floor = dict.fromkeys(scale, 0.0)
        found = []  # (element, rising): elements with a kink of their own
        pending = [np.flatnonzero(v)]
        while pending:
            if (f.calls - calls_from) >= allowance or time.perf_counter() - started > 2 * budget:
                state["unexamined"] += sum(len(part) for part in pending)
                break
            support = pending.pop()
            for part in np.array_split(support, 2) if support.size > 1 else [support]:
                evaluated = judged(evaluated)
                if not evaluated:  # the only claim was held: nothing is left to judge
                    return floor, True
                w = np.zeros(n)
                w[part] = v[part]
                h = _step(s, x, w, s0, s_noise)
                if part.size > 1:
                    # second differences that grow like the step: a kink within this part,
                    # split further without judging it (in float64; in float32 the judging
                    # below finds the kinks its one-sided differences resolve)
                    d = R.central(s, x, w, s_noise, h, evaluated[0][1], f0=s0)
                    if generic and d.kink is not None and d.kink.any():
                        pending.append(part)
                        continue
                else:
                    held = element_kink(s, s0, s_noise, evaluated, w, h, found)
                    if held is False:
                        state["kinks_ok"] = False
                        return floor, False
                    if held:
                        continue
                ref, ref_err, verdicts, kink_pair = examine(s, s0, s_noise, evaluated, w)
                ok = all(ok for *_, ok, _ in verdicts)
                if kink_pair is None and not ok and part.size > 1:
                    # wrong along a smooth part, or kinks that cancel along it (the probe
                    # crosses kinks: it is being split): split further, in code that computes in
                    # float32 too, where the values nearby seldom tell (_at_kink): along a part of
                    # 100 of 1,600 max-pool inputs at exact ties, cast inside, the ties' kinks
                    # cancelled and a valid claim 4.4 off the one slope was `wrong` unsplit
                    if mixed(s, s0, s_noise, evaluated, w, ref, ref_err):
                        pending.append(part)
                        continue
                elif kink_pair is not None and part.size > 1:
                    pending.append(part)
                    continue
                if kink_pair is None and not ok:
                    name, index = groups.locate(int(part[0]))
                    if part.size > 1:
                        name = f"{part.size} elements along a probe, from {name}"
                    verdicts = within_rounding(s, s_noise, evaluated, w, ref, ref_err, verdicts,
                                               (name, index))  # fmt: skip
                    ok = all(ok for *_, ok, _ in verdicts)
                for label, claimed, tol, passed, _ in verdicts:
                    reports.append(ProbeReport(ref, claimed, ref_err, tol, passed, kink_pair,
                                               label))  # fmt: skip
                if not ok:
                    # wrong in a smooth part, or a claim outside a kink that only the judging's
                    # one-sided differences resolved
                    state["smooth_ok" if kink_pair is None else "kinks_ok"] = False
                    return floor, False
                for label, _, tol, _ok, _ in verdicts:
                    floor[label] = max(floor[label], tol / scale[label] if scale[label] else 0)
        cols = [j for j, _ in found]
        rising = np.array([r for _, r in found], dtype=bool)
        for part, smooth_only in _alike(cols, rising):
            joint = _joint_kinks(s, x, s0, s_noise, part,
                                 [(g, eps) for _, g, eps, _ in evaluated], joint_directions, 0,
                                 smooth_only)  # fmt: skip
            kinks_found.extend(joint)
            if not all(k.passed for k in joint):
                state["kinks_ok"] = False
                return floor, False
        return floor, True

    n_done = 0
    n_directions = _count_directions(groups, sizes, n_probes)
    for p, (v, only) in enumerate(_directions(groups, sizes, rng, n_probes)):
        n_done = p + 1
        u = rng.standard_normal(m) if m > 1 else np.ones(1)
        v = np.where(kinked, 0.0, v)  # elements with kinks of their own were held on their own
        if not v.any():
            continue
        s = _Scalarised(f, u)
        s0 = np.array([float(np.dot(u, f0))])
        s_noise = np.array([float(np.dot(np.abs(u), noise))])
        evaluated = []
        for claim, build in claims:
            if claim.label not in held:
                g, eps, spread = claim.with_spread(u.reshape(out_shape), build)
                evaluated.append((claim.label, g, eps, spread))
        if not evaluated:  # the only claim was held: nothing is left to judge
            break
        ref, ref_err, verdicts, kink_pair = examine(s, s0, s_noise, evaluated, v)
        if kink_pair is None and not np.isfinite(ref):
            # the function not finite at any step tried along it (a probe moving a parameter at
            # the edge of its domain, 1e-30 under a log, across 0): no reference, not judged,
            # as an element without one is in the full Jacobian (a correct claim was `wrong`
            # against a NaN); it resolves nothing
            state["no_reference"] += 1
            for label, claimed, _, _, _ in verdicts:
                if only is None:
                    floors[label].append(np.inf)
                else:
                    group_floors[label].setdefault(only, []).append(np.inf)
                reports.append(ProbeReport(ref, claimed, ref_err, np.nan, True, None, label))
            continue
        if (
            kink_pair is None
            and not all(ok for *_, ok, _ in verdicts)
            and (mixed(s, s0, s_noise, evaluated, v, ref, ref_err) if generic
                 else kinked_along(s, s0, s_noise, evaluated, v))
        ):
            # the derivatives nearby differ (or, in float32 code, whose values nearby seldom
            # tell, kinks were seen already or an element the claim weighs most in has one):
            # kinks that may cancel along v, split as any kink
            kink_pair = (ref, ref)
        if kink_pair is None and not all(ok for *_, ok, _ in verdicts):
            verdicts = within_rounding(s, s_noise, evaluated, v, ref, ref_err, verdicts,
                                       ("probe ", (p,)))  # fmt: skip
        if kink_pair is None:
            passed = True
            for label, claimed, tol, ok, g in verdicts:
                scale = state["zero_along"] or float(np.abs(g).max())
                probe_floor = tol / scale if scale > 0 else 0.0
                # (infinite where the claim was off a sized reference within the rounding of
                # the largest derivative: nothing of its own size is seen there)
                probe_floor = np.inf if label in state["below_along"] else probe_floor
                state["below_seen"] += label in state["below_along"]
                if only is None:
                    floors[label].append(probe_floor)
                else:
                    group_floors[label].setdefault(only, []).append(probe_floor)
                passed &= ok
                reports.append(ProbeReport(ref, claimed, ref_err, tol, ok, None, label))
            state["smooth_ok"] &= passed
        else:
            part_floors, passed = split(s, s0, s_noise, evaluated, v)
            for label, probe_floor in part_floors.items():
                if only is None:
                    floors[label].append(probe_floor)
                else:
                    group_floors[label].setdefault(only, []).append(probe_floor)
        if not passed:
            break  # confirmed wrong by a refined reference and one-sided differences
        show("probes", p + 1, n_directions)
        if p + 1 == n_probes and not generic and all(
            values and float(np.median(values)) > RESOLVE * NOTABLE for values in floors.values()
        ):
            # in its own low precision the function cannot resolve the probes enough for a
            # correct verdict: the structured probes would not change it
            notes.append("the probes of index bit patterns and of small groups were skipped: "
                         "the random ones could not resolve the function in its own precision")
            break

    # every element weighs fully in every probe, so an error in one element is seen by each
    # probe whose tolerance it exceeds: the floor is the median probe's (seen by half of them),
    # and one probe along which kinks blur the reference does not set it
    # (a claim held within its rounding of kinks on every probe resolved nothing)
    floors = {label: float(np.median(values)) if values else np.inf if label in held else 0.0
              for label, values in floors.items()}  # fmt: skip
    # a group far smaller than the largest was probed on its own: its floor, relative to its own
    # largest derivative, counts as much
    for label, per_group in group_floors.items():
        for values in per_group.values():
            floors[label] = max(floors[label], float(np.median(values)))
    group_reports = []
    for label in floors:
        mine = [r for r in reports if r.claim == label]
        if not mine:  # every probe held within the claim's rounding of kinks
            continue
        with_ref = [r for r in mine if r.tolerance == r.tolerance] or mine  # (not: no reference)
        worst = max(with_ref, key=lambda r: abs(r.claimed - r.reference) / r.tolerance)
        group_reports.append(
            GroupReport(
                "all parameters" if groups.is_dict else "params",
                (n,) if groups.is_dict else groups.shapes[0], label, None,
                abs(worst.claimed - worst.reference),
                _relative(abs(worst.claimed - worst.reference), worst.reference),
                worst.reference_error, worst.tolerance,
                all(r.passed for r in mine), floors[label],
                max(abs(r.reference) for r in mine),
            )
        )  # fmt: skip
    floor = min(floors.values())
    if stairs_seen:
        stair = max(stairs_seen, key=lambda s: s[-1])
        notes.append(_staircase_note("a probe", *stair, len(stairs_seen) - 1))
    if state["below_seen"]:
        notes.append(
            f"{state['below_seen']} probes off their references (below the rounding of the "
            "largest derivative, by complex steps at "
            f"{len(SELF_STEPS) + 1} step sizes) only within that rounding: not told "
            "from rounding there (a saturated layer?); a point where they are larger checks it"
        )
    if state["no_reference"]:
        notes.append(
            f"{state['no_reference']} probes without a reference: the function is not finite at "
            "any step tried along them (a parameter at the edge of its domain, the log or sqrt "
            "of a value near 0?); not judged"
        )
    if state["unexamined"]:
        notes.append(
            f"{state['unexamined']} elements of probes along which the function has kinks were "
            f"not split down to single elements within {SUSPECT_EVALS} evaluations per parameter "
            f"or budget={budget:g} s"
        )
    if not state["smooth_ok"] or not state["kinks_ok"]:
        verdict = WRONG
    elif state["unexamined"] or not all(k.passed for k in kinks_found):
        # the kinks of the elements not split may hide an error; or a claim lies beyond what was
        # seen where kinks of both signs meet
        verdict = CANNOT_TELL
    elif floor > CANNOT_TELL_FLOOR or floor > RESOLVE * NOTABLE:
        # an error of RESOLVE in one element of NOTABLE of the largest moves every probe by
        # RESOLVE * NOTABLE of the largest derivative; a kink that passed does not make up for
        # it (float32 code with a fit across a kink as another element's reference)
        verdict = CANNOT_TELL
    elif kinks_found:
        verdict = KINK
    else:
        verdict = CORRECT
    if low is not None and len(claims) > 1:
        # would an error of RESOLVE in the whole claim be seen (along one probe)?
        mine = [r for r in reports if r.claim == reach.claim.label and r.kink is None]
        if mine and not any(RESOLVE * abs(r.claimed) > r.tolerance for r in mine):
            verdict = _low_resolution(verdict, reach.claim.label, "its values", notes)
        if state["biased"]:
            verdict = _undecided(verdict, reach.claim.label, "values along probes", notes)
    method = "complex step (verified against central differences)" if state["used_cs"] else (
        "central differences" + (", refined by least-squares fits" if state["fitted"] else ""))
    if not generic:
        method += ", in the function's own precision"
    mode = f"{n_done} directional probe" + ("" if n_done == 1 else "s")
    return GradCheckResult(
        verdict, mode, method, group_reports, probes=reports, kinks=kinks_found, notes=notes,
        floor=floor,
    )  # fmt: skip
