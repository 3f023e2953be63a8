"""Check any claimed gradient or vector-Jacobian product against reference derivatives.

``check_gradient(fun, grad, params)`` for a scalar function and its gradient, ``check_vjp(fun,
vjp, params)`` for an array-valued one and its VJP (optionally with its JVP for the adjoint test).
``params`` is an array or a dict of named arrays (parameter groups); the functions take the same
structure. The result carries a verdict and, per group, the worst element's index, its absolute
and relative error, the reference's own error estimate and the tolerance used.

How it decides (derived, nothing guessed):
- small problems (inputs x outputs <= FULL_LIMIT): the full Jacobian, column by column, from
  central differences in float64 (complex step instead where it is verified to agree);
- large problems: PROBES directional probes with signed-Gaussian directions v and cotangents u,
  comparing the reference derivative of u.f along v with vjp(u).v; the tolerance is the
  reference's error plus the claimed values' rounding, never a multiple of the array's size;
- the tolerance of a value is SAFETY times the reference's error estimate plus ULPS units of
  the claimed dtype's epsilon of the group's largest derivative (rounding in a float32 backward
  pass is relative to the largest terms it sums, not to the element it produced);
- a point where the function has a kink (ReLU at 0) is reported with its one-sided derivatives;
  the claimed value passes if it lies between them (a subgradient), within tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import references as R

FULL_LIMIT = 4096  # inputs x outputs up to which the whole Jacobian is compared
PROBES = 6
SAFETY = 8.0  # multiples of the reference's error estimate
ULPS = 64.0  # rounding allowance of the claimed values, in ulps of the group's largest value
# A probe dots the claimed vector with a random direction v: its rounding errors, a few ulps of
# each element (PROBE_ULPS), add up like a random walk, bounded by PROBE_SIGMAS deviations of it.
PROBE_ULPS = 4.0
PROBE_SIGMAS = 8.0


# ----------------------------------------------------------------------------- parameter groups


class _Groups:
    """Flattens an array or a dict of arrays into one float64 vector and back."""

    def __init__(self, params):
        if isinstance(params, dict):
            if not params:
                raise ValueError("params is an empty dict; give at least one array")
            self.names = list(params)
            arrays = [np.asarray(params[k]) for k in self.names]
            self.is_dict = True
        else:
            self.names = ["params"]
            arrays = [np.asarray(params)]
            self.is_dict = False
        for name, a in zip(self.names, arrays, strict=True):
            if not np.issubdtype(a.dtype, np.floating) or a.size == 0:
                raise ValueError(
                    f"parameter {name!r} must be a non-empty float array, got {a.dtype} of "
                    f"shape {a.shape}"
                )
        self.shapes = [a.shape for a in arrays]
        self.dtypes = [a.dtype for a in arrays]
        sizes = [a.size for a in arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.x = np.concatenate([a.astype(np.float64).ravel() for a in arrays])

    def build(self, flat, dtype=None):
        parts = []
        for i, (shape, own) in enumerate(zip(self.shapes, self.dtypes, strict=True)):
            part = flat[self.offsets[i] : self.offsets[i + 1]].reshape(shape)
            parts.append(part.astype(dtype or own, copy=False) if dtype is not False else part)
        return dict(zip(self.names, parts, strict=True)) if self.is_dict else parts[0]

    def flatten_like(self, value, what: str) -> np.ndarray:
        """A claimed gradient (same structure as params) as a flat float64 vector."""
        if self.is_dict:
            if not isinstance(value, dict) or set(value) != set(self.names):
                got = sorted(value) if isinstance(value, dict) else type(value).__name__
                raise ValueError(f"{what} must return a dict with keys {self.names}, got {got}")
            values = [value[k] for k in self.names]
        else:
            values = [value]
        flat = []
        for name, shape, v in zip(self.names, self.shapes, values, strict=True):
            v = np.asarray(v)
            if v.shape != shape:
                raise ValueError(
                    f"{what} returned shape {v.shape} for parameter {name!r} of shape {shape}; "
                    "it must have the parameter's shape"
                )
            if not np.isfinite(v).all():
                raise ValueError(f"{what} returned NaN or inf for parameter {name!r}")
            flat.append(v.astype(np.float64).ravel())
        return np.concatenate(flat)

    def claimed_eps(self, value) -> float:
        values = list(value.values()) if self.is_dict else [value]
        return max(float(np.finfo(np.asarray(v).dtype).eps) for v in values)

    def locate(self, flat_index: int) -> tuple[str, tuple]:
        group = int(np.searchsorted(self.offsets, flat_index, side="right") - 1)
        local = flat_index - self.offsets[group]
        return self.names[group], tuple(int(i) for i in np.unravel_index(local, self.shapes[group]))


# ----------------------------------------------------------------------------------- results


@dataclass
class KinkReport:
    group: str
    index: tuple
    output: int
    left: float
    right: float
    claimed: float
    passed: bool


@dataclass
class GroupReport:
    """The worst element of one parameter group."""

    name: str
    shape: tuple
    worst_index: tuple | None
    abs_error: float
    rel_error: float
    reference_error: float
    tolerance: float
    passed: bool


@dataclass
class ProbeReport:
    reference: float
    claimed: float
    reference_error: float
    tolerance: float
    passed: bool
    kink: tuple[float, float] | None = None


@dataclass
class GradCheckResult:
    """A verdict and the evidence for it."""

    passed: bool
    mode: str
    reference: str
    groups: list[GroupReport]
    probes: list[ProbeReport] = field(default_factory=list)
    kinks: list[KinkReport] = field(default_factory=list)
    adjoint: ProbeReport | None = None
    notes: list[str] = field(default_factory=list)
    scipy_agrees: bool | None = None  # None where scipy.differentiate was not asked

    def __bool__(self) -> bool:
        return self.passed

    @property
    def worst_rel_error(self) -> float:
        return max((g.rel_error for g in self.groups), default=0.0)

    def report(self) -> str:
        lines = [
            f"gradient check {'PASSED' if self.passed else 'FAILED'} ({self.mode}, "
            f"reference: {self.reference})"
        ]
        for g in self.groups:
            where = "" if g.worst_index is None else f" worst at {g.worst_index}"
            lines.append(
                f"  {g.name} {g.shape}:{where} abs error {g.abs_error:.3g}, rel error "
                f"{g.rel_error:.3g}, reference error {g.reference_error:.3g}, tolerance "
                f"{g.tolerance:.3g} -> {'ok' if g.passed else 'FAIL'}"
            )
        for i, p in enumerate(self.probes):
            kink = "" if p.kink is None else f" (crosses a kink: one-sided {p.kink})"
            lines.append(
                f"  probe {i}: reference {p.reference:.6g}, claimed {p.claimed:.6g}, reference "
                f"error {p.reference_error:.3g}, tolerance {p.tolerance:.3g}{kink} -> "
                f"{'ok' if p.passed else 'FAIL'}"
            )
        for k in self.kinks:
            lines.append(
                f"  kink at {k.group}{k.index} (output {k.output}): not differentiable, one-sided "
                f"derivatives {k.left:.6g} and {k.right:.6g}, claimed {k.claimed:.6g} -> "
                f"{'a subgradient, ok' if k.passed else 'FAIL: not between them'}"
            )
        if self.adjoint is not None:
            a = self.adjoint
            lines.append(
                f"  adjoint <u, Jv> = {a.reference:.6g} vs <J^T u, v> = {a.claimed:.6g}"
                f" -> {'ok' if a.passed else 'FAIL'}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------- the checks


def _reference_fun(groups: _Groups, fun):
    """fun on a flat float64 (or complex) vector, returning a flat array; validated once."""

    def flat_fun(x):
        dtype = np.complex128 if np.iscomplexobj(x) else np.float64
        return np.asarray(fun(groups.build(x.astype(dtype), dtype=False))).reshape(-1)

    return flat_fun


def _validate_output(value, what="fun") -> np.ndarray:
    out = np.asarray(value)
    if not np.issubdtype(out.dtype, np.floating):
        raise ValueError(f"{what} must return floats, got {out.dtype}")
    if not np.isfinite(out).all():
        raise ValueError(
            f"{what} returned NaN or inf at params; check it there before its gradient"
        )
    return out


def check_vjp(
    fun,
    vjp,
    params,
    *,
    jvp=None,
    seed: int = 0,
    full_limit: int = FULL_LIMIT,
    probes: int = PROBES,
    use_scipy: bool = False,
    _claim: str = "vjp",
) -> GradCheckResult:
    """Check ``vjp(params, u)`` (= J^T u, shaped like params) against references of ``fun``.

    fun  : params -> float array of any shape (the outputs)
    vjp  : (params, u) -> structure like params, for u shaped like fun's output
    jvp  : optional (params, v) -> array shaped like fun's output, for the adjoint test
    """
    groups = _Groups(params)
    out0 = _validate_output(fun(params))
    out_shape = out0.shape
    flat_fun = _reference_fun(groups, fun)
    x = groups.x
    n, m = x.size, out0.size
    out_eps = R.output_epsilon(flat_fun, x)
    rng = np.random.default_rng(seed)

    def claimed_vjp(u):
        value = vjp(params, u.reshape(out_shape))
        return groups.flatten_like(value, _claim), groups.claimed_eps(value)

    if n * m <= full_limit:
        result = _full(groups, flat_fun, claimed_vjp, x, m, out_eps, use_scipy)
    else:
        result = _probes(groups, flat_fun, claimed_vjp, x, m, out_eps, rng, probes)
    if jvp is not None:
        result.adjoint = _adjoint(groups, claimed_vjp, jvp, params, x.size, m, rng)
        result.passed = result.passed and result.adjoint.passed
    return result


def _adjoint(groups, claimed_vjp, jvp, params, n, m, rng) -> ProbeReport:
    """The dot-product test <u, J v> = <J^T u, v> between the JVP and the VJP."""
    v = rng.standard_normal(n)
    u = rng.standard_normal(m)
    forward = np.asarray(jvp(params, groups.build(v)), dtype=np.float64).reshape(-1)
    g, eps_claim = claimed_vjp(u)
    lhs, rhs = float(np.dot(u, forward)), float(np.dot(g, v))
    norms = np.linalg.norm(u) * np.linalg.norm(forward) + np.linalg.norm(g) * np.linalg.norm(v)
    bound = float(ULPS * eps_claim * PROBE_SIGMAS * norms)
    return ProbeReport(lhs, rhs, 0.0, bound, abs(lhs - rhs) <= bound)


def check_gradient(fun, grad, params, **options) -> GradCheckResult:
    """Check ``grad(params)`` (shaped like params) against references of scalar ``fun(params)``."""
    out = _validate_output(fun(params))
    if out.size != 1:
        raise ValueError(
            f"fun returned shape {out.shape}, not a scalar; for array-valued "
            "functions use check_vjp(fun, vjp, params)"
        )

    def vjp(p, u):
        g = grad(p)
        scale = float(np.asarray(u).reshape(-1)[0])
        if isinstance(g, dict):
            return {
                k: np.asarray(v) * np.asarray(scale, dtype=np.asarray(v).dtype)
                for k, v in g.items()
            }
        g = np.asarray(g)
        return g * np.asarray(scale, dtype=g.dtype)

    return check_vjp(lambda p: np.asarray(fun(p)).reshape(1), vjp, params, _claim="grad", **options)


def assert_gradients_close(fun, grad, params, **options) -> GradCheckResult:
    """pytest helper: raise AssertionError with the full report unless the check passes."""
    result = check_gradient(fun, grad, params, **options)
    if not result.passed:
        raise AssertionError(result.report())
    return result


def _full(groups, flat_fun, claimed_vjp, x, m, out_eps, use_scipy) -> GradCheckResult:
    n = x.size
    J_ref = np.empty((m, n))
    J_err = np.empty((m, n))
    notes, kinks = [], []
    method = "central differences"
    cs_ok = True
    columns_cs = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        d = R.central(flat_fun, x, e, out_eps)
        J_ref[:, j], J_err[:, j] = d.value, d.error
        if cs_ok:
            cs = R.complex_step(flat_fun, x, e)
            if cs is None:
                cs_ok = False
            elif isinstance(cs, str):
                cs_ok = False
                notes.append(f"complex step not used: {cs}")
            elif np.any(np.abs(cs.value - d.value) > SAFETY * d.error + 1e-300):
                cs_ok = False
                notes.append(
                    f"complex step disagrees with central differences along {groups.locate(j)}: "
                    "the function is not complex-safe (abs, maximum, conjugation?); not used"
                )
            else:
                columns_cs.append(cs)
    if cs_ok and len(columns_cs) == n and out_eps <= R.EPS:
        method = "complex step (verified against central differences)"
        for j, cs in enumerate(columns_cs):
            J_ref[:, j], J_err[:, j] = cs.value, np.maximum(cs.error, 0.0)
    J_claim = np.empty((m, n))
    eps_claim = 0.0
    for i in range(m):
        u = np.zeros(m)
        u[i] = 1.0
        J_claim[i], eps_i = claimed_vjp(u)
        eps_claim = max(eps_claim, eps_i)
    scipy_agrees = None
    if use_scipy:
        scipy_agrees = True
        for j in range(n):
            s = R.scipy_partial(flat_fun, x, j)
            if np.any(np.abs(s.value - J_ref[:, j]) > SAFETY * (s.error + J_err[:, j]) + 1e-12):
                scipy_agrees = False
                notes.append(
                    f"scipy.differentiate differs along {groups.locate(j)}: "
                    f"{s.value} (its error estimate {s.error})"
                )

    reports, ok = [], True
    kink_mask = np.zeros((m, n), dtype=bool)
    for g, name in enumerate(groups.names):
        cols = slice(groups.offsets[g], groups.offsets[g + 1])
        scale = max(float(np.abs(J_ref[:, cols]).max()), float(np.abs(J_claim[:, cols]).max()))
        tol = SAFETY * J_err[:, cols] + ULPS * eps_claim * scale + 1e-300
        err = np.abs(J_claim[:, cols] - J_ref[:, cols])
        suspect = err > tol
        for i, jj in zip(*np.nonzero(suspect), strict=True):  # is it a kink rather than a bug?
            j = cols.start + jj
            e = np.zeros(n)
            e[j] = 1.0
            k = R.kink(flat_fun, x, e, scale, out_eps)
            if k is None:
                continue
            lo, hi = sorted((k.left[i], k.right[i]))
            inside = lo - tol[i, jj] <= J_claim[i, j] <= hi + tol[i, jj]
            kinks.append(
                KinkReport(
                    name,
                    groups.locate(j)[1],
                    int(i),
                    float(k.left[i]),
                    float(k.right[i]),
                    float(J_claim[i, j]),
                    bool(inside),
                )
            )
            kink_mask[i, j] = True
            ok &= bool(inside)
        smooth_err = np.where(kink_mask[:, cols], 0.0, err)
        ratio = smooth_err / tol
        worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        passed = bool((ratio <= 1).all())
        ok &= passed
        j = cols.start + worst[1]
        reports.append(
            GroupReport(
                name,
                groups.shapes[g],
                groups.locate(j)[1] + ((worst[0],) if m > 1 else ()),
                float(smooth_err[worst]),
                float(smooth_err[worst] / max(abs(J_ref[worst[0], j]), 1e-300)),
                float(J_err[worst[0], j]),
                float(tol[worst]),
                passed,
            )
        )
    return GradCheckResult(
        bool(ok),
        "full Jacobian",
        method,
        reports,
        kinks=kinks,
        notes=notes,
        scipy_agrees=scipy_agrees,
    )


def _probes(groups, flat_fun, claimed_vjp, x, m, out_eps, rng, n_probes) -> GradCheckResult:
    reports, ok = [], True
    for _ in range(n_probes):
        v = rng.standard_normal(x.size)
        u = rng.standard_normal(m)
        s = lambda z, u=u: np.array([np.dot(u, flat_fun(z))])  # noqa: E731
        d = R.central(s, x, v, out_eps)
        g, eps_claim = claimed_vjp(u)
        claimed = float(np.dot(g, v))
        scale = float(np.abs(g).max())
        spread = float(np.linalg.norm(g * v)) + scale * eps_claim * float(np.linalg.norm(v))
        rounding = PROBE_SIGMAS * PROBE_ULPS * eps_claim * spread
        tol = SAFETY * float(d.error[0]) + rounding + 1e-300
        passed = abs(claimed - float(d.value[0])) <= tol
        kink_pair = None
        if not passed:
            k = R.kink(s, x, v, abs(claimed) + scale, out_eps)
            if k is not None:
                kink_pair = (float(k.left[0]), float(k.right[0]))
                lo, hi = sorted(kink_pair)
                passed = lo - tol <= claimed <= hi + tol
        ok &= passed
        reports.append(
            ProbeReport(float(d.value[0]), claimed, float(d.error[0]), tol, passed, kink_pair)
        )
    worst = max(reports, key=lambda p: abs(p.claimed - p.reference) / p.tolerance)
    group = GroupReport(
        "all parameters" if groups.is_dict else "params",
        (x.size,),
        None,
        abs(worst.claimed - worst.reference),
        abs(worst.claimed - worst.reference) / max(abs(worst.reference), 1e-300),
        worst.reference_error,
        worst.tolerance,
        all(p.passed for p in reports),
    )
    return GradCheckResult(
        bool(ok),
        f"{n_probes} directional probes",
        "central differences",
        [group],
        probes=reports,
    )
