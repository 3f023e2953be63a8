"""The checker catalogue, held against an independent reference with no checker involved.

The reference is a pair of one-sided second-order differences per coordinate, in float64 on a
float64 copy of the params (with ``fun64`` where ``fun`` forces float32): a claim is valid where
it lies between them, which is the derivative at a smooth point and the subgradient interval at
a kink. Each difference is estimated twice (steps h and 2h), and their gap bounds its error.
"""

import numpy as np
import pytest
from backprop_bench.verify.catalogue import (
    CASES,
    GROUPS,
    PASSING,
    VERDICTS,
    flatten,
    frozen_callables,
    score,
)

BY_NAME = {case.name: case for case in CASES}
DEFAULT_STEP = 1e-6  # times max(1, |x|): truncation ~1e-12, round-off ~1e-10 of |f|
# Tolerances on a claim: ERR_MULT times the reference's own error estimate, plus REL of the
# derivative (float64 claims: a few hundred ulps of summation; float32 claims: a float32
# backward pass of at most 1,024 terms), plus, for float32 claims, ABS_SHARE of the largest
# derivative (a float32 backward pass rounds relative to the largest terms it sums, not to the
# element it produces). Measured: every control within 0.06 of its tolerance.
ERR_MULT = 4.0
REL = {"float64": 1e-8, "float32": 1e-4}
ABS_SHARE = {"float64": 0.0, "float32": 1e-5}
FULL = 400  # up to this many parameters every coordinate is checked; above, a sample
N_SAMPLE = 6


def _unflatten(template, flat):
    if not isinstance(template, dict):
        return flat.reshape(np.shape(template))
    out, start = {}, 0
    for k, v in template.items():
        out[k] = flat[start : start + np.size(v)].reshape(np.shape(v))
        start += np.size(v)
    return out


class Reference:
    """One-sided derivatives of a problem's loss in float64, coordinate by coordinate."""

    def __init__(self, problem):
        fun = problem.info.get("fun64") or frozen_callables(problem)[0]
        self.template = problem.params
        self.x = flatten(problem.params)
        self.fun = lambda flat: float(fun(_unflatten(self.template, flat)))
        self.f0 = self.fun(self.x)
        step = problem.info.get("step")
        if step is None:
            self.h = DEFAULT_STEP * np.maximum(1.0, np.abs(self.x))
        else:
            self.h = np.broadcast_to(flatten(step), self.x.shape)

    def _at(self, i, offsets):
        values = []
        for d in offsets:
            x = self.x.copy()
            x[i] += d * self.h[i]
            values.append(self.fun(x))
        return values

    def along(self, direction):
        """The same reference for the function along ``direction`` (its coordinate 0)."""
        line = Reference.__new__(Reference)
        x, fun = self.x, self.fun
        line.x, line.f0, line.h = np.zeros(1), self.f0, self.h[:1] / np.abs(direction).max()
        line.fun = lambda t: fun(x + t[0] * direction)
        return line

    def interval(self, i):
        """(left, right, error bound) of coordinate i."""
        p1, p2, p4, m1, m2, m4 = self._at(i, (1, 2, 4, -1, -2, -4))
        h, f0 = self.h[i], self.f0
        right = (-3 * f0 + 4 * p1 - p2) / (2 * h)
        right2 = (-3 * f0 + 4 * p2 - p4) / (4 * h)
        left = (3 * f0 - 4 * m1 + m2) / (2 * h)
        left2 = (3 * f0 - 4 * m2 + m4) / (4 * h)
        round_off = 8 * np.finfo(float).eps * max(abs(f0), 1e-300) / h
        return left, right, abs(right - right2) + abs(left - left2) + round_off


def _claim(problem):
    return flatten(frozen_callables(problem)[1](problem.params))


def _tolerance(case, left, right, err, scale):
    return (
        ERR_MULT * err
        + REL[case.dtype] * max(abs(left), abs(right))
        + (ABS_SHARE[case.dtype] * scale)
    )


def _within(case, ref, i, g, scale):
    left, right, err = ref.interval(i)
    tol = _tolerance(case, left, right, err, scale)
    return bool(min(left, right) - tol <= g <= max(left, right) + tol), (left, right, tol)


def _coordinates(g, rng, n=N_SAMPLE):
    if g.size <= FULL:
        return np.arange(g.size)
    top = np.argsort(-np.abs(g))[:n]
    return np.unique(np.concatenate([top, rng.choice(g.size, n, replace=False)]))


CONTROLS = [c for c in CASES if c.expect in PASSING]
MUTANTS = [c for c in CASES if c.expect == "wrong"]
NOT_DETERMINISTIC = [c for c in CASES if c.expect == "not deterministic"]


def test_the_catalogue_is_well_formed():
    assert 60 <= len(CASES) <= 150
    assert len(BY_NAME) == len(CASES), "case names must be unique"
    assert {c.group for c in CASES} == set(GROUPS)
    assert {c.expect for c in CASES} <= set(VERDICTS)
    for group in GROUPS:
        expects = {c.expect for c in CASES if c.group == group}
        assert "correct" in expects, group
        assert expects & {"wrong", "not deterministic"}, group
    for dtype in ("float64", "float32"):
        assert any(c.dtype == dtype and c.expect == "wrong" for c in CASES)
    for case in MUTANTS:
        control = BY_NAME[case.control]
        assert control.expect in PASSING and control.group == case.group
        assert control.dtype == case.dtype


@pytest.mark.parametrize("case", CONTROLS, ids=lambda c: c.name)
def test_controls_agree_with_the_reference(case):
    problem = case.make()
    g = _claim(problem)
    assert g.dtype == np.float64 and np.isfinite(g).all()
    claimed = frozen_callables(problem)[1](problem.params)
    dtypes = {np.asarray(v).dtype for v in (claimed.values() if isinstance(claimed, dict)
                                             else [claimed])}  # fmt: skip
    assert dtypes == {np.dtype(case.dtype)}
    ref = Reference(problem)
    scale = float(np.max(np.abs(g)))
    kinks = 0
    # where a large net's kinks sit in a few known elements, those are checked too
    kink_coordinates = np.asarray(problem.info.get("kink_coordinates", []), dtype=int)
    for i in np.union1d(_coordinates(g, np.random.default_rng(0)), kink_coordinates):
        ok, (left, right, tol) = _within(case, ref, i, g[i], scale)
        assert ok, f"coordinate {i}: claim {g[i]!r} not in [{left!r}, {right!r}] +- {tol:.3g}"
        kinks += abs(right - left) > tol
    if case.expect == "correct":
        assert kinks == 0, "a control expected differentiable has a kink"
    else:
        assert kinks > 0, "no coordinate of a kink case has one-sided derivatives apart"


@pytest.mark.parametrize("case", MUTANTS, ids=lambda c: c.name)
def test_mutants_differ_from_their_control_where_intended(case):
    problem, control = case.make(), BY_NAME[case.control].make()
    g, g0 = _claim(problem), _claim(control)
    np.testing.assert_array_equal(flatten(problem.params), flatten(control.params))
    diff = np.where(np.isfinite(g), np.abs(g - g0), np.inf)
    changed = np.flatnonzero(diff > 0)
    assert changed.size, "the mutant's gradient equals its control's"
    if "mutated" in problem.info:  # an element mutant changes that element only
        key, index = problem.info["mutated"]
        arrays = problem.params if isinstance(problem.params, dict) else {None: problem.params}
        offset = 0
        for k, v in arrays.items():
            if k == key:
                break
            offset += np.size(v)
        assert changed.tolist() == [offset + np.ravel_multi_index(index, np.shape(arrays[key]))]
    ref = Reference(control)
    scale = float(np.max(np.abs(g0)))
    if "direction" in problem.info:  # wrong jointly, along a direction, not element by element
        d = flatten(problem.info["direction"])
        assert _within(case, ref.along(d), 0, float(g0 @ d), scale)[0]
        assert not _within(case, ref.along(d), 0, float(g @ d), scale)[0]
        return
    caught = False
    for i in changed[np.argsort(-diff[changed])][:N_SAMPLE]:
        assert _within(case, ref, i, g0[i], scale)[0], f"the control is off at {i}"
        caught |= not _within(case, ref, i, g[i], scale)[0]
    assert caught, "the mutant's changes stay within the reference's tolerance"


def _same(a, b):
    return np.array_equal(flatten(a), flatten(b))


@pytest.mark.parametrize("case", NOT_DETERMINISTIC, ids=lambda c: c.name)
def test_stateful_and_noisy_cases_are_not_deterministic(case):
    problem = case.make()
    fun, grad = frozen_callables(problem)
    losses = [float(fun(problem.params)) for _ in range(5)]
    first = grad(problem.params)
    first_copy = {k: v.copy() for k, v in first.items()} if isinstance(first, dict) else np.array(
        first)  # fmt: skip
    second = grad(problem.params)
    # ... or gives other values for a copy of params holding the same values (a cache keyed
    # by id(params), stale after an in-place step)
    params = problem.params
    copy = {k: np.array(v) for k, v in params.items()} if isinstance(params, dict) else np.array(
        params)  # fmt: skip
    of_copy = grad(copy)
    varies = len(set(losses)) > 1 or not _same(first_copy, second) or not _same(first, first_copy)
    assert varies or not _same(first_copy, of_copy)
    if "id(params)" in case.name:  # stale at params, right for the copy
        ref = Reference(problem)
        g_stale, g_fresh = flatten(first_copy), flatten(of_copy)
        i = int(np.argmax(np.abs(g_fresh - g_stale)))
        assert _within(case, ref, i, g_fresh[i], abs(g_fresh).max())[0]
        assert not _within(case, ref, i, g_stale[i], abs(g_fresh).max())[0]
    if "buffer" in case.name:  # the first call is right, the later ones are not
        ref = Reference(problem)
        g1, g2 = flatten(first_copy), flatten(second)
        i = int(np.argmax(np.abs(g1)))
        assert _within(case, ref, i, g1[i], abs(g1[i]))[0]
        assert not _within(case, ref, i, g2[i], abs(g1[i]))[0]


@pytest.mark.parametrize("case", CONTROLS + MUTANTS, ids=lambda c: c.name)
def test_other_cases_are_deterministic(case):
    problem = case.make()
    fun, grad = frozen_callables(problem)
    assert np.array_equal(fun(problem.params), fun(problem.params))
    assert np.array_equal(flatten(grad(problem.params)), flatten(grad(problem.params)),
                          equal_nan=True)  # fmt: skip


def test_kink_cases_sit_exactly_on_a_kink_and_near_ones_do_not():
    with_kinks = [c for c in CASES if c.group == "kinks"]
    for case in with_kinks:
        problem = case.make()
        pre = np.asarray(problem.info["preactivations"](problem.params))
        at_kink = case.expect if case.expect != "wrong" else BY_NAME[case.control].expect
        if at_kink == "not differentiable here":
            assert (pre == 0.0).any(), case.name
        else:
            assert not (pre == 0.0).any() and np.min(np.abs(pre)) <= 2e-6, case.name


def test_score_counts_mutants_caught_and_false_alarms():
    perfect = [{"case": c, "passed": c.expect in PASSING, "verdict": c.expect} for c in CASES]
    for tally in score(perfect).values():
        assert tally["caught"] == tally["mutants"] and tally["false_alarms"] == 0
        assert tally["right_verdicts"] == tally["cases"]
    gullible = [{"case": c, "passed": True} for c in CASES]
    table = score(gullible)
    assert sum(t["caught"] for t in table.values()) == 0
    assert sum(t["mutants"] for t in table.values()) == len(MUTANTS)
    alarmist = score([{"case": c, "passed": False} for c in CASES])
    assert sum(t["false_alarms"] for t in alarmist.values()) == len(CONTROLS)
