"""A review of the checker written apart from it, at points exactly on many kinks at once: 404
checks of 31 functions. Kept as its reviewer wrote it (the README's "Points exactly on many
kinks at once" quotes its counts); a measurement, not a test. The reviewer's own header:

Black-box review of ``check_gradient`` / ``check_vjp`` at points EXACTLY on many kinks at once.

A standalone script (not a pytest test), written from the checker's public documentation only
(README "## Check your own backward pass" and the docstrings), without reading its code or tests.

    python -m tests.benchmarks.kink_review OUT.json [case_substring ...]

(from the repository root, with the project's venv active). It writes a JSON list with one row
per check (case, family, api, dtype, n_params, claim, validity, how it was confirmed, verdict,
passed = bool(result), seconds) and prints a summary: verdict counts for valid and for invalid
claims, per family, and every valid claim judged `wrong` and every invalid claim that passed.

Points: dyadic data and weights (multiples of 1/4, 1/8), so that every kink argument that should
be 0 is exactly 0 in float64 AND float32 (asserted: the float32 kink arguments equal the float64
ones bit for bit). Families: ReLU / leaky-ReLU MLPs (1-3 hidden layers, 21-2,946 parameters;
zero rows, a sample and its negation, repeated samples, consecutive layers both at 0, output
weights of both signs, losses exactly 0 at the point, a large constant added), max pools /
maxout / differences of maxes with 2-4-way ties, abs (lasso, least absolute deviations, total
variation), hinge losses with margins exactly at 1 (binary, multiclass), clip at its bounds,
piecewise-linear functions whose kinks all meet at the point, and VJPs of vector-valued layers.

How validity is established (independently of the checker):
- every model is written once as forward + backward whose slope at each kink (relu'(0), the
  weights over a max's tied elements, clip'(bound), sign(0)) is supplied by an "ops" object;
  the backward is checked against central differences at generic points nearby (self-check);
- a "limit" claim: direction d (normal, or normal with log-spread magnitudes 1e-3..1); the
  pattern of sides at x + t d for t = 1e-5, 1e-6, 1e-7 (identical at the three, every kink
  argument clear of 0 by 1e-5 t); the gradient AT x with that pattern held fixed. It is the
  limit of gradients along d, hence valid (also checked: one-sided difference along d);
- an "autodiff" claim (relu'(0) = 0 or 1 everywhere, first argmax, ...) is valid only when a
  direction is found whose limit of gradients equals it (a linear program over the kinks'
  affine arguments builds one where the kinks form a single layer; otherwise a search over
  structured and random directions); a non-vertex claim (split among ties, sign(0) = 0) is a
  "mixture" (a convex combination of limits in a separable case) or "unconfirmed";
- an "invalid" claim must lie outside an OUTER bound of all limits of gradients: where the
  gradient is affine in the kink slopes (one layer of kinks), the convex hull of the gradients
  over every slope vertex (each relu slope in {lo, hi}, one-hot weights per tie, no coupling),
  by a linear program (L-inf distance > 1e-6 of the scale; "elementwise" when one element is
  out of its own range, else "joint"); with stacked kinks, interval arithmetic through the
  backward pass with each kink's slope an interval (elementwise only). Otherwise "unconfirmed".
Rows whose validity is "unconfirmed" are recorded but left out of the counts.
"""
# ruff: noqa

from __future__ import annotations

import json
import sys
import time
import zlib
from collections import Counter, defaultdict

import numpy as np
from scipy.optimize import linprog

from backprop_bench import check_gradient, check_vjp

# ----------------------------------------------------------------------------------------------
# interval arithmetic (outer bounds of the backward pass over kink slopes)


class IV:
    __array_ufunc__ = None  # make numpy defer to the reflected operators

    def __init__(self, lo, hi=None):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = self.lo if hi is None else np.asarray(hi, dtype=np.float64)

    @staticmethod
    def of(x):
        return x if isinstance(x, IV) else IV(np.asarray(x, dtype=np.float64))

    shape = property(lambda self: self.lo.shape)
    T = property(lambda self: IV(self.lo.T, self.hi.T))

    def __add__(self, o):
        o = IV.of(o)
        return IV(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __neg__(self):
        return IV(-self.hi, -self.lo)

    def __sub__(self, o):
        return self + (-IV.of(o))

    def __rsub__(self, o):
        return IV.of(o) + (-self)

    def __mul__(self, o):
        o = IV.of(o)
        c = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        return IV(np.minimum.reduce(c), np.maximum.reduce(c))

    __rmul__ = __mul__

    def __matmul__(self, A):  # IV @ point
        A = np.asarray(A, dtype=np.float64)
        Ap, An = np.maximum(A, 0), np.minimum(A, 0)
        return IV(self.lo @ Ap + self.hi @ An, self.hi @ Ap + self.lo @ An)

    def __rmatmul__(self, A):  # point @ IV
        A = np.asarray(A, dtype=np.float64)
        Ap, An = np.maximum(A, 0), np.minimum(A, 0)
        return IV(Ap @ self.lo + An @ self.hi, Ap @ self.hi + An @ self.lo)

    def sum(self, axis=None, keepdims=False):
        return IV(self.lo.sum(axis=axis, keepdims=keepdims), self.hi.sum(axis=axis, keepdims=keepdims))

    def __getitem__(self, i):
        return IV(self.lo[i], self.hi[i])

    def reshape(self, *s):
        return IV(self.lo.reshape(*s), self.hi.reshape(*s))

    def transpose(self, *a):
        return IV(self.lo.transpose(*a), self.hi.transpose(*a))

    def ravel(self):
        return IV(self.lo.ravel(), self.hi.ravel())


# ----------------------------------------------------------------------------------------------
# ops: kinks, with the slope at an exact kink chosen by the subclass


class Ops:
    """Natural slopes away from kinks; records every kink argument (for patterns)."""

    def __init__(self):
        self.rec = {}

    def pl(self, name, z, lo=0.0, hi=1.0):
        """Piecewise linear at 0: slope hi for z > 0, lo for z < 0 (relu, leaky relu, abs)."""
        dt = z.dtype.type
        pos = z > 0
        val = np.where(pos, z * dt(hi), z * dt(lo))
        s = np.where(pos, dt(hi), dt(lo)).astype(z.dtype)
        self.rec[name] = ("pl", z, lo, hi)
        zero = z == 0
        if zero.any():
            s = self.at_pl(name, s, zero, lo, hi)
        return val, s

    def clip(self, name, z, a, b):
        dt = z.dtype.type
        val = np.clip(z, dt(a), dt(b))
        k = np.minimum(z - dt(a), dt(b) - z)
        s = (k > 0).astype(z.dtype)
        self.rec[name] = ("pl", k, 0.0, 1.0)
        zero = k == 0
        if zero.any():
            s = self.at_pl(name, s, zero, 0.0, 1.0)
        return val, s

    def max(self, name, V):
        """Max over the last axis; weights one-hot at the (first) argmax."""
        m = V.max(axis=-1)
        tied = V == m[..., None]
        w = (tied & (np.cumsum(tied, axis=-1) == 1)).astype(V.dtype)
        self.rec[name] = ("max", V)
        multi = tied.sum(axis=-1) > 1
        if multi.any():
            w = self.at_max(name, w, tied, multi)
        return m, w

    def at_pl(self, name, s, zero, lo, hi):
        return s

    def at_max(self, name, w, tied, multi):
        return w


class Natural(Ops):
    """User code with one rule at every exact kink: c_pl a number or 'lo'/'hi' (the left /
    right slope); c_max 'first', 'split', 'all' (each tied element the full gradient), 'none'."""

    def __init__(self, c_pl="lo", c_max="first"):
        super().__init__()
        self.c_pl, self.c_max = c_pl, c_max

    def at_pl(self, name, s, zero, lo, hi):
        c = {"lo": lo, "hi": hi}.get(self.c_pl, self.c_pl) if isinstance(self.c_pl, str) else self.c_pl
        s = s.copy()
        s[zero] = c
        return s

    def at_max(self, name, w, tied, multi):
        mt, dt = multi[..., None], w.dtype
        if self.c_max == "split":
            w = np.where(mt, tied / tied.sum(axis=-1, keepdims=True), w)
        elif self.c_max == "all":
            w = np.where(mt, tied, w)
        elif self.c_max == "none":
            w = np.where(mt, 0, w)
        return w.astype(dt)


class Pattern(Ops):
    """Slopes at the kinks of x fixed by a pattern (where the argument is exactly 0 at p);
    elsewhere natural slopes."""

    def __init__(self, pat):
        super().__init__()
        self.pat = pat

    def at_pl(self, name, s, zero, lo, hi):
        if name in self.pat:
            mask, vals = self.pat[name]
            sel = zero & mask
            s = s.copy()
            s[sel] = vals[sel]
        return s

    def at_max(self, name, w, tied, multi):
        if name in self.pat:
            mask, W = self.pat[name]
            ok = multi & mask & np.all((W == 0) | tied, axis=-1)
            w = np.where(ok[..., None], W, w).astype(w.dtype)
        return w


class Interval(Ops):
    """Every exact kink's slope an interval: [min(lo,hi), max(lo,hi)], tied weights [0, 1]."""

    def at_pl(self, name, s, zero, lo, hi):
        a, b = s.astype(np.float64), s.astype(np.float64)
        a[zero], b[zero] = min(lo, hi), max(lo, hi)
        return IV(a, b)

    def at_max(self, name, w, tied, multi):
        a, b = w.astype(np.float64), w.astype(np.float64)
        t = tied & multi[..., None]
        a[t], b[t] = 0.0, 1.0
        return IV(a, b)


# ----------------------------------------------------------------------------------------------
# helpers


def dyad(rng, shape, den=8, lim=2):
    return rng.integers(-lim * den, lim * den + 1, size=shape) / den


def dyad_nz(rng, shape, den=8, lim=2):
    v = dyad(rng, shape, den, lim)
    v[v == 0] = 1.0 / den
    return v


def softplus(m):
    return np.logaddexp(0, m)


def sigmoid(m):
    return 1 / (1 + np.exp(-m))


class Case:
    """A function, a point on its kinks, and how its claims are built.

    model(P, ops, grad=True[, u]) -> (value, grads dict or None); P a dict of arrays.
    """

    def __init__(self, name, family, desc, params, model, *, linear, kind, vec=False,
                 array_key=None, mutants=(), loss_sq=False, separable=False, n_limits=3, skip=()):
        self.name, self.family, self.desc = name, family, desc
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.model, self.linear, self.kind, self.vec = model, linear, kind, vec
        self.array_key, self.mutants, self.loss_sq = array_key, list(mutants), loss_sq
        self.separable, self.n_limits, self.skip = separable, n_limits, set(skip)
        self.keys = list(self.params)
        self.sizes = [self.params[k].size for k in self.keys]
        self.n = sum(self.sizes)

    # -- params as the checker sees them
    def to_user(self, P):
        return P[self.array_key] if self.array_key else P

    def from_user(self, p):
        return {self.array_key: p} if self.array_key else p

    def flat(self, g):
        if any(isinstance(v, IV) for v in g.values()):
            gs = [IV.of(g[k]) for k in self.keys]
            return tuple(np.concatenate([np.broadcast_to(getattr(v, a), self.params[k].shape).ravel()
                                         for k, v in zip(self.keys, gs)]) for a in ("lo", "hi"))
        return np.concatenate([np.ravel(np.asarray(g[k], dtype=np.float64)) for k in self.keys])

    def unflat(self, v):
        out, i = {}, 0
        for k, s in zip(self.keys, self.sizes):
            out[k] = v[i:i + s].reshape(self.params[k].shape)
            i += s
        return out

    def locate(self, j):
        i = 0
        for k, s in zip(self.keys, self.sizes):
            if j < i + s:
                return k, np.unravel_index(j - i, self.params[k].shape)
            i += s
        raise IndexError(j)

    def at(self, v):
        return self.unflat(v)

    def x64(self):
        return self.flat(self.params)

    # -- evaluations (float64)
    def record(self, v):
        ops = Ops()
        self.model(self.at(v), ops, grad=False)
        return ops.rec

    def value(self, v, u=None):
        if self.vec:
            return float(np.dot(np.asarray(self.model(self.at(v), Ops(), grad=False)[0]).ravel(), u))
        return float(self.model(self.at(v), Ops(), grad=False)[0])

    def G(self, v, ops, u=None):
        if self.vec:
            return self.flat(self.model(self.at(v), ops, grad=True, u=u)[1])
        return self.flat(self.model(self.at(v), ops, grad=True)[1])


def kinks_of(rec):
    out = []
    for name, r in rec.items():
        if r[0] == "pl":
            for idx in np.argwhere(r[1] == 0):
                out.append(("pl", name, tuple(int(i) for i in idx), (r[2], r[3])))
        else:
            V = r[1]
            m = V.max(axis=-1)
            tied = V == m[..., None]
            for idx in np.argwhere(tied.sum(axis=-1) > 1):
                idx = tuple(int(i) for i in idx)
                out.append(("max", name, idx, tuple(int(t) for t in np.flatnonzero(tied[idx]))))
    return out


def make_pat(kinks, choices, rec):
    pat = {}
    for (kind, name, idx, info), c in zip(kinks, choices):
        if name not in pat:
            shape = rec[name][1].shape
            pat[name] = [np.zeros(shape if kind == "pl" else shape[:-1], bool), np.zeros(shape)]
        mask, vals = pat[name]
        mask[idx] = True
        if kind == "pl":
            vals[idx] = c
        else:
            for t, wt in zip(info, c):
                vals[idx + (t,)] = wt
    return pat


def rule_choices(kinks, c_pl, c_max):
    ch = []
    for kind, name, idx, info in kinks:
        if kind == "pl":
            lo, hi = info
            ch.append({"lo": lo, "hi": hi}.get(c_pl, c_pl) if isinstance(c_pl, str) else float(c_pl))
        else:
            m = len(info)
            ch.append({"first": tuple([1.0] + [0.0] * (m - 1)), "split": tuple([1.0 / m] * m),
                       "all": tuple([1.0] * m), "none": tuple([0.0] * m)}[c_max])
    return ch


def is_vertex(kinks, ch):
    for (kind, name, idx, info), c in zip(kinks, ch):
        if kind == "pl" and c not in info:
            return False
        if kind == "max" and sorted(c) != [0.0] * (len(c) - 1) + [1.0]:
            return False
    return True


# ----------------------------------------------------------------------------------------------
# analysis of one case (float64, at the point)


class Analysis:
    def __init__(self, case):
        self.case = c = case
        self.x = c.x64()
        self.rec = c.record(self.x)
        self.kinks = kinks_of(self.rec)
        self.rng = np.random.default_rng(zlib.crc32(c.name.encode()) & 0xFFFF)
        if c.vec:
            out = np.asarray(c.model(c.at(self.x), Ops(), grad=False)[0]).ravel()
            r = np.random.default_rng(7)
            self.U = [r.integers(-8, 9, size=out.size) / 4.0, np.ones(out.size)]
        else:
            self.U = [None]
        self._lin = None
        self._J = None

    # -- patterns along directions
    def choices_at(self, rec, t):
        ch = []
        for kind, name, idx, info in self.kinks:
            if kind == "pl":
                a = rec[name][1][idx]
                if abs(a) <= 1e-5 * t:
                    return None
                ch.append(info[1] if a > 0 else info[0])
            else:
                vals = rec[name][1][idx][list(info)]
                o = np.argsort(vals)
                if vals[o[-1]] - vals[o[-2]] <= 1e-5 * t:
                    return None
                ch.append(tuple(1.0 if i == o[-1] else 0.0 for i in range(len(info))))
        return ch

    def pattern_along(self, d):
        res = None
        for t in (1e-5, 1e-6, 1e-7):
            ch = self.choices_at(self.case.record(self.x + t * d), t)
            if ch is None or (res is not None and ch != res):
                return None
            res = ch
        return res

    def G_of(self, ch, u=None):
        return self.case.G(self.x, Pattern(make_pat(self.kinks, ch, self.rec)), u)

    def direction(self, kind):
        n = self.case.n
        if kind == "randn":
            return self.rng.normal(size=n)
        if kind == "logspread":
            return self.rng.normal(size=n) * 10.0 ** self.rng.uniform(-3, 0, size=n)
        raise ValueError(kind)

    def limit(self, kind, tries=40):
        for _ in range(tries):
            d = self.direction(kind)
            ch = self.pattern_along(d)
            if ch is not None:
                return d, ch
        raise RuntimeError(f"{self.case.name}: no stable direction of kind {kind}")

    # -- self-checks of the model code (against the function's own values)
    def selfcheck(self):
        c = self.case
        u = self.U[0]
        for trial in range(3):
            d = self.rng.normal(size=c.n)
            y = self.x + 1e-2 * d / np.abs(d).max()
            g = c.G(y, Ops(), u)
            e = self.rng.normal(size=c.n)
            h = 1e-5
            for _ in range(6):
                pats = [self.signature(c.record(y + s * h * e)) for s in (-1, 0, 1)]
                if pats[0] == pats[1] == pats[2]:
                    break
                h /= 10
            else:
                continue
            fd = (c.value(y + h * e, u) - c.value(y - h * e, u)) / (2 * h)
            an = float(g @ e)
            tol = 1e-6 * (abs(an) + np.abs(g).sum()) + 4e-16 * (abs(c.value(y, u)) + 1) / h
            if abs(fd - an) > tol:
                raise AssertionError(f"{c.name}: backward vs central differences {an} vs {fd}")
        # one-sided difference along a limit direction equals the limit claim's slope
        d, ch = self.limit("randn")
        g = self.G_of(ch, u)
        h = 1e-7
        fd = (c.value(self.x + h * d, u) - c.value(self.x, u)) / h
        an = float(g @ d)
        tol = 1e-4 * (1 + np.abs(g).sum() * np.abs(d).max()) + 1e-15 * abs(c.value(self.x, u)) / h
        if abs(fd - an) > tol:
            raise AssertionError(f"{c.name}: one-sided difference along d {fd} vs limit claim {an}")

    def signature(self, rec):
        sig = []
        for name, r in rec.items():
            if r[0] == "pl":
                sig.append(np.sign(r[1]).tobytes())
            else:
                V = r[1]
                sig.append((V == V.max(axis=-1, keepdims=True)).tobytes())
        return tuple(sig)

    # -- the outer set of limits of gradients
    def linear_model(self, u=None):
        """G(s) = G0 + C s over slope variables (one per pl kink, one per tied element)."""
        key = None if u is None else u.tobytes()
        if self._lin is None:
            self._lin = {}
        if key in self._lin:
            return self._lin[key]
        zero = []
        for kind, name, idx, info in self.kinks:
            zero.append(0.0 if kind == "pl" else tuple([0.0] * len(info)))
        G0 = self.G_of(zero, u)
        cols, var_bounds, groups = [], [], []
        for j, (kind, name, idx, info) in enumerate(self.kinks):
            if kind == "pl":
                ch = list(zero)
                ch[j] = 1.0
                cols.append(self.G_of(ch, u) - G0)
                var_bounds.append((min(info), max(info)))
                groups.append([len(cols) - 1])
            else:
                grp = []
                for i in range(len(info)):
                    ch = list(zero)
                    ch[j] = tuple(1.0 if k == i else 0.0 for k in range(len(info)))
                    cols.append(self.G_of(ch, u) - G0)
                    var_bounds.append((0.0, 1.0))
                    grp.append(len(cols) - 1)
                groups.append(grp)
        C = np.array(cols).T if cols else np.zeros((self.case.n, 0))
        # linearity check at random slopes
        ch, s = [], np.zeros(C.shape[1])
        for (kind, name, idx, info), grp in zip(self.kinks, groups):
            if kind == "pl":
                v = self.rng.uniform(min(info), max(info))
                ch.append(v)
                s[grp[0]] = v
            else:
                w = self.rng.dirichlet(np.ones(len(info)))
                ch.append(tuple(w))
                s[grp] = w
        if not np.allclose(self.G_of(ch, u), G0 + C @ s, rtol=1e-9, atol=1e-9 * (1 + np.abs(G0).max())):
            raise AssertionError(f"{self.case.name}: gradient is not affine in the kink slopes")
        lo, hi = G0.copy(), G0.copy()
        for (kind, *_), grp in zip(self.kinks, groups):
            if kind == "pl":
                a, b = var_bounds[grp[0]]
                lo += np.minimum(a * C[:, grp[0]], b * C[:, grp[0]])
                hi += np.maximum(a * C[:, grp[0]], b * C[:, grp[0]])
            else:
                lo += C[:, grp].min(axis=1)
                hi += C[:, grp].max(axis=1)
        res = dict(G0=G0, C=C, bounds=var_bounds, groups=groups, lo=lo, hi=hi)
        self._lin[key] = res
        return res

    def interval_bounds(self, u=None):
        g = self.case.model(self.case.at(self.x), Interval(), grad=True, **({"u": u} if self.case.vec else {}))[1]
        return self.case.flat({k: IV.of(v) for k, v in g.items()})

    def elem_bounds(self, u=None):
        if self.case.linear:
            L = self.linear_model(u)
            return L["lo"], L["hi"]
        return self.interval_bounds(u)

    def lp_distance(self, claim, u=None):
        L = self.linear_model(u)
        G0, C = L["G0"], L["C"]
        n, V = C.shape
        scale = max(1.0, np.abs(G0).max(), np.abs(C).max() if V else 0.0)
        r = (claim - G0) / scale
        Cs = C / scale
        A_ub = np.block([[Cs, -np.ones((n, 1))], [-Cs, -np.ones((n, 1))]])
        b_ub = np.concatenate([r, -r])
        eq = [grp for (kind, *_), grp in zip(self.kinks, L["groups"]) if kind == "max"]
        A_eq = None
        b_eq = None
        if eq:
            A_eq = np.zeros((len(eq), V + 1))
            for i, grp in enumerate(eq):
                A_eq[i, grp] = 1.0
            b_eq = np.ones(len(eq))
        cost = np.zeros(V + 1)
        cost[-1] = 1.0
        res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                      bounds=list(L["bounds"]) + [(0, None)], method="highs")
        if res.status != 0:
            raise RuntimeError(f"{self.case.name}: LP failed: {res.message}")
        return float(res.fun)

    # -- arguments of the kinks (affine in the params where the kinks form one layer)
    def arg_jacobian(self):
        if self._J is not None:
            return self._J
        def args(v):
            rec = self.case.record(v)
            out = []
            for kind, name, idx, info in self.kinks:
                if kind == "pl":
                    out.append(rec[name][1][idx])
                else:
                    out.extend(rec[name][1][idx][list(info)])
            return np.array(out)
        a0 = args(self.x)
        h = 2.0 ** -8
        J = np.empty((a0.size, self.case.n))
        for k in range(self.case.n):
            e = self.x.copy()
            e[k] += h
            J[:, k] = (args(e) - a0) / h
        d = self.rng.normal(size=self.case.n)
        if not np.allclose(args(self.x + h * d) - a0, h * J @ d, atol=1e-12, rtol=1e-9):
            J = None
        self._J = (J,)
        return self._J

    def realise(self, target, relevant=None):
        """A direction along which the kinks take the target sides (LP over affine args)."""
        (J,) = self.arg_jacobian()
        if J is None:
            return None
        rows, pos = [], 0
        for j, ((kind, name, idx, info), c) in enumerate(zip(self.kinks, target)):
            width = 1 if kind == "pl" else len(info)
            if relevant is None or relevant[j]:
                if kind == "pl":
                    lo, hi = info
                    if lo != hi:
                        rows.append(J[pos] if c == hi else -J[pos])
                else:
                    i_star = int(np.argmax(c))
                    for i in range(width):
                        if i != i_star:
                            rows.append(J[pos + i_star] - J[pos + i])
            pos += width
        if not rows:
            return self.rng.normal(size=self.case.n)
        M = np.array(rows)
        n = self.case.n
        cost = np.zeros(n + 1)
        cost[-1] = -1.0  # maximise the smallest margin tau
        A_ub = np.hstack([-M, np.ones((len(rows), 1))])
        res = linprog(cost, A_ub=A_ub, b_ub=np.zeros(len(rows)),
                      bounds=[(-1, 1)] * n + [(0, 1)], method="highs")
        if res.status != 0 or res.x[-1] <= 1e-9:
            return None
        tau = res.x[-1]
        noise = self.rng.normal(size=n) * tau / (10 * np.abs(M).sum(axis=1).max() * 4)
        return res.x[:-1] + noise  # unconstrained kinks off 0, constrained ones keep > 0.9 tau

    def structured_directions(self, n_random=80):
        c = self.case
        bias = [k for k in c.keys if k.startswith("b")]
        rank = {k: (int(k[1:]) if k[1:].isdigit() else 9) for k in bias}
        for signs in np.ndindex(*([2] * len(bias))):
            d = {k: 1e-4 * self.rng.normal(size=c.params[k].shape) for k in c.keys}
            for k, s in zip(bias, signs):
                d[k] = (1 if s else -1) * 10.0 ** min(rank[k], 5) * np.ones(c.params[k].shape)
            yield c.flat(d)
        for i in range(n_random):
            yield self.direction("randn" if i % 2 else "logspread")

    def confirm_limit(self, target, claim_vec):
        """Find a direction whose limit of gradients equals the claim (valid), else None."""
        c = self.case
        tol = 1e-9 * max(1.0, np.abs(claim_vec).max())

        def same(ch):
            if c.vec:
                return ch == target
            return np.abs(self.G_of(ch) - claim_vec).max() <= tol

        if c.linear:
            relevant = None
            if not c.vec:
                C = self.linear_model()["C"]
                relevant = [np.abs(C[:, grp]).max() > 0 for grp in self.linear_model()["groups"]]
            for rel in (None, relevant):
                d = self.realise(target, rel)
                if d is not None:
                    ch = self.pattern_along(d)
                    if ch is not None and same(ch):
                        return "LP-built direction", d
        for d in self.structured_directions():
            ch = self.pattern_along(d)
            if ch is not None and same(ch):
                return "direction search", d
        return None, None

    def verify_direction(self, d, claim_fn):
        """Independent of the pattern machinery: the plain gradients at x + 1e-8 d and x + 1e-9 d
        (points where the function is differentiable), extrapolated to s = 0 (the smooth drift
        along d taken out), equal the claim."""
        for u in self.U:
            v = claim_fn(u)
            g1 = self.case.G(self.x + 1e-8 * d, Ops(), u)
            g2 = self.case.G(self.x + 1e-9 * d, Ops(), u)
            err = np.abs(g2 - (g1 - g2) / 9 - v).max()
            if err > 1e-6 * (1 + np.abs(v).max()):
                raise AssertionError(f"{self.case.name}: claim differs from the gradients at x + s d "
                                     f"by {err:.3g}")

    def smooth_direction_witness(self, claim, base, u=None):
        """Where the kinks' arguments are affine: a direction v that keeps every kink argument at
        0 (and tied values tied), so that f is smooth along it and every limit of gradients g has
        g.v = f'(x; v) (= base.v, checked against central differences of f). Returns the claim's
        relative discrepancy claim.v - f'(x; v), or None."""
        (J,) = self.arg_jacobian()
        if J is None:
            return None
        rows, pos = [], 0
        for kind, name, idx, info in self.kinks:
            if kind == "pl":
                rows.append(J[pos])
                pos += 1
            else:
                for i in range(1, len(info)):
                    rows.append(J[pos + i] - J[pos])
                pos += len(info)
        r = claim - base
        if rows:
            M = np.array(rows)
            _, sv, Vt = np.linalg.svd(M, full_matrices=True)
            rank = int((sv > 1e-10 * sv.max()).sum())
            N = Vt[rank:]
            v = N.T @ (N @ r)
        else:
            v = r
        if np.abs(v).max() < 1e-9:
            return None
        v = v / np.abs(v).max()
        h = 1e-6
        fd = (self.case.value(self.x + h * v, u) - self.case.value(self.x - h * v, u)) / (2 * h)
        if abs(fd - base @ v) > 1e-5 * (1 + np.abs(base).sum()):
            raise AssertionError(f"{self.case.name}: not smooth along the kink-preserving direction")
        return float(abs((claim - base) @ v) / max(1.0, np.abs(base).sum()))

    def invalid_witness(self, claim_fn, base_fn):
        """Return (how, margin) if the claim is outside the outer set for some cotangent."""
        best = None
        for u in self.U:
            claim = claim_fn(u)
            lo, hi = self.elem_bounds(u)
            scale = max(1.0, np.abs(lo).max(), np.abs(hi).max())
            out = np.maximum(lo - claim, claim - hi).max() / scale
            if out > 1e-6:
                return "elementwise", float(out)
            if self.case.linear:
                dist = self.lp_distance(claim, u)
                if dist > 1e-6:
                    how = "joint (LP)"
                    sm = self.smooth_direction_witness(claim, base_fn(u), u)
                    if sm is not None and sm > 1e-9:
                        how += f"; off by {sm:.2g} along a direction keeping every kink at 0"
                    best = (how, dist)
        return best


# ----------------------------------------------------------------------------------------------
# the models


def mlp_model(X64, Y64, L, alpha, loss, const):
    def model(P, ops, grad=True):
        dt = P["W1"].dtype
        X, Y = X64.astype(dt), Y64.astype(dt)
        h, cache = X, []
        for l in range(1, L + 1):
            z = h @ P[f"W{l}"] + P[f"b{l}"]
            hn, s = ops.pl(f"h{l}", z, alpha, 1.0)
            cache.append((h, s))
            h = hn
        out = h @ P["Wo"] + P["bo"]
        if loss == "sq":
            r = out - Y
            val = np.sum(r * r)
            dout = 2 * r
        elif loss == "softplus":
            m = -Y * out
            val = np.sum(softplus(m))
            dout = -Y * sigmoid(m)
        elif loss == "relu":
            v, so = ops.pl("out", out)
            val = np.sum(v)
            dout = so
        elif loss == "hinge":
            v, so = ops.pl("hinge", 1 - Y * out)
            val = np.sum(v)
            dout = -Y * so
        val = val + dt.type(const)
        if not grad:
            return val, None
        g = {"Wo": h.T @ dout, "bo": dout.sum(axis=0)}
        dh = dout @ P["Wo"].T
        for l in range(L, 0, -1):
            hp, s = cache[l - 1]
            dz = dh * s
            g[f"W{l}"] = hp.T @ dz
            g[f"b{l}"] = dz.sum(axis=0)
            if l > 1:
                dh = dz @ P[f"W{l}"].T
        return val, g

    return model


def build_mlp(name, seed, din, hidden, nout, rows, *, mode="zero_b", b2="zero", alpha=0.0,
              loss="sq", const=0.0, wo="both", bo=None, yx=None, mutants=(), desc=""):
    rng = np.random.default_rng(seed)
    x0 = dyad_nz(rng, din, den=4, lim=2)
    x0[-1] = 1.0
    X = np.array([np.zeros(din) if r == "zero" else x0 if r == "x" else -x0 if r == "-x"
                  else dyad(rng, din, den=4, lim=2) for r in rows])
    sizes = [din] + list(hidden)
    P = {}
    h = X.copy()
    hx0 = x0[None, :]
    for l in range(1, len(sizes)):
        W = dyad(rng, (sizes[l - 1], sizes[l]), den=8, lim=1)
        if l == 1 and mode == "zero_b":
            for j in range(0, sizes[l], 2):  # half the units: W x0 = 0
                W[-1, j] = -(x0[:-1] @ W[:-1, j])
            b = np.zeros(sizes[l])
        elif l == 1 and mode == "x0":
            b = -(x0 @ W)
        elif b2 == "zero":
            b = np.zeros(sizes[l])
        else:  # b2 == "x": this layer at 0 for the x0 rows
            b = -(hx0 @ W)[0]
        P[f"W{l}"], P[f"b{l}"] = W, b
        zl = h @ W + b
        h = np.where(zl > 0, zl, alpha * zl)
        zx = hx0 @ W + b
        hx0 = np.where(zx > 0, zx, alpha * zx)
    Wo = dyad_nz(rng, (sizes[-1], nout), den=8, lim=1)
    if wo == "neg":
        Wo = -np.abs(Wo)
    P["Wo"] = Wo
    P["bo"] = dyad(rng, nout, den=8, lim=1) if bo is None else np.full(nout, float(bo))
    n = len(rows)
    if loss == "sq":
        Y = dyad(rng, (n, nout), den=4, lim=1)
    else:
        Y = np.where(rng.random((n, nout)) < 0.5, -1.0, 1.0)
        if yx is not None:
            for i, r in enumerate(rows):
                if r == "x":
                    Y[i] = yx
    model = mlp_model(X, Y, len(hidden), alpha, loss, const)
    act = "leaky relu (alpha %g)" % alpha if alpha else "relu"
    d = (f"{act} MLP {din}-{'-'.join(map(str, hidden))}-{nout}, rows {','.join(rows)}, "
         f"first-layer biases {'0 (half the units W x0 = 0)' if mode == 'zero_b' else '-W x0'}, "
         f"deeper biases {'0' if b2 == 'zero' else '-W h(x0)'}, loss {loss}"
         + (f" + {const:g}" if const else "") + (", output weights < 0" if wo == "neg" else "")
         + (f", bo = {bo}" if bo is not None else "") + (f"; {desc}" if desc else ""))
    return Case(name, "leaky" if alpha else "relu", d, P, model, linear=len(hidden) == 1 and loss in ("sq", "softplus"),
                kind="pl", mutants=mutants, loss_sq=loss == "sq")


def tie_rows(rng, nwin, win, ties_choices=(1, 2, 3, 4)):
    V = np.empty((nwin, win))
    for i in range(nwin):
        top = dyad(rng, (), den=4, lim=2)
        m = int(rng.choice(ties_choices))
        idx = rng.permutation(win)
        V[i] = top - rng.integers(1, 9, size=win) / 4.0
        V[i, idx[:m]] = top
    return V


def build_pool1d(name, seed, n, win=4, const=0.0):
    rng = np.random.default_rng(seed)
    a = tie_rows(rng, n // win, win).ravel()
    c = dyad_nz(rng, n // win, den=4, lim=1)
    q = 0.25

    def model(P, ops, grad=True):
        A = P["a"]
        dt = A.dtype
        m, w = ops.max("pool", A.reshape(-1, win))
        cc = c.astype(dt)
        val = np.sum(cc * m + dt.type(q) * m * m) + dt.type(const)
        if not grad:
            return val, None
        dm = cc + dt.type(2 * q) * m
        return val, {"a": (w * dm[:, None]).reshape(A.shape)}

    return Case(name, "max", f"max-pool 1-D of {n} params (windows of {win}, 2-4-way ties), "
                f"loss sum(c m + m^2/4), c of both signs", {"a": a}, model, linear=True, kind="max",
                array_key="a", mutants=("mut_all_tied", "mut_none_tied", "mut_scale1.1"), separable=True)


def build_pool2d(name, seed, H=8):
    rng = np.random.default_rng(seed)
    V = tie_rows(rng, (H // 2) ** 2, 4)
    img = V.reshape(H // 2, H // 2, 2, 2).transpose(0, 2, 1, 3).reshape(H, H)
    c = dyad_nz(rng, (H // 2, H // 2), den=4, lim=1)

    def model(P, ops, grad=True):
        A = P["img"]
        dt = A.dtype
        Vv = A.reshape(H // 2, 2, H // 2, 2).transpose(0, 2, 1, 3).reshape(H // 2, H // 2, 4)
        m, w = ops.max("pool", Vv)
        cm = c.astype(dt) * m
        val = np.sum(softplus(cm))
        if not grad:
            return val, None
        dm = c.astype(dt) * sigmoid(cm)
        dV = w * dm[..., None]
        return val, {"img": dV.reshape(H // 2, H // 2, 2, 2).transpose(0, 2, 1, 3).reshape(H, H)}

    return Case(name, "max", f"2x2 max-pool of an {H}x{H} image (2-4-way ties), loss sum softplus(c m)",
                {"img": img}, model, linear=True, kind="max", array_key="img",
                mutants=("mut_all_tied", "mut_scale1.1", "mut_flip"), separable=True)


def build_maxout(name, seed, din=4, U=6, Pc=3):
    rng = np.random.default_rng(seed)
    x0 = dyad_nz(rng, din, den=4, lim=2)
    x0[-1] = 1.0
    X = np.array([np.zeros(din), x0, -x0, x0, dyad(rng, din, 4, 2), dyad(rng, din, 4, 2)])
    W = dyad(rng, (din, U, Pc), den=8, lim=1)
    b = np.zeros((U, Pc))
    for u in range(U):
        r = dyad(rng, (), den=8, lim=1)
        beta = dyad(rng, (), den=8, lim=1)
        m = 2 + (u % (Pc - 1))  # 2 or 3 tied pieces of 3
        for p_ in range(Pc):
            W[-1, u, p_] = r - x0[:-1] @ W[:-1, u, p_]
            b[u, p_] = beta if p_ < m else beta - 0.5
    v = dyad_nz(rng, U, den=8, lim=1)
    c0 = np.array([0.25])
    Y = dyad(rng, len(X), den=4, lim=1)

    def model(P, ops, grad=True):
        dt = P["W"].dtype
        Xd = X.astype(dt)
        Z = (Xd @ P["W"].reshape(din, U * Pc)).reshape(len(X), U, Pc) + P["b"]
        m, w = ops.max("maxout", Z)
        out = m @ P["v"] + P["c"]
        r = out - Y.astype(dt)
        val = np.sum(r * r)
        if not grad:
            return val, None
        dout = 2 * r
        dm = dout[:, None] * P["v"][None, :]
        dZ = w * dm[..., None]
        gW = (Xd.T @ dZ.reshape(len(X), U * Pc)).reshape(din, U, Pc)
        return val, {"W": gW, "b": dZ.sum(axis=0), "v": m.T @ dout, "c": dout.sum(axis=0, keepdims=True)}

    return Case(name, "max", f"maxout layer {din} inputs, {U} units of {Pc} pieces (2-3 tied at the "
                "zero row, x0, -x0, x0), output weights both signs, sum of squares",
                {"W": W, "b": b, "v": v, "c": c0}, model, linear=True, kind="max",
                mutants=("mut_all_tied", "mut_none_tied", "mut_scale1.1"))


def build_diffmax(name, seed, n=32):
    rng = np.random.default_rng(seed)
    a = tie_rows(rng, n // 4, 4).ravel()
    bb = tie_rows(rng, n // 4, 4).ravel()
    c1 = np.abs(dyad_nz(rng, n // 4, 4, 1))
    c2 = np.abs(dyad_nz(rng, n // 4, 4, 1))

    def model(P, ops, grad=True):
        A, B = P["a"], P["b"]
        dt = A.dtype
        ma, wa = ops.max("A", A.reshape(-1, 4))
        mb, wb = ops.max("B", B.reshape(-1, 4))
        k1, k2 = c1.astype(dt), c2.astype(dt)
        val = np.sum(k1 * ma) - np.sum(k2 * mb) + dt.type(0.125) * (np.sum(A * A) + np.sum(B * B))
        if not grad:
            return val, None
        return val, {"a": (wa * k1[:, None]).reshape(-1) + dt.type(0.25) * A,
                     "b": -((wb * k2[:, None]).reshape(-1)) + dt.type(0.25) * B}

    return Case(name, "max", f"difference of maxes sum c1 max4(a) - sum c2 max4(b) + |.|^2/8, "
                f"{2 * n} params, 2-4-way ties in both", {"a": a, "b": bb}, model, linear=True,
                kind="max", mutants=("mut_all_tied", "mut_none_tied", "mut_flip"), separable=True)


def build_lasso(name, seed, n=24, m=16):
    rng = np.random.default_rng(seed)
    X = dyad(rng, (m, n), den=4, lim=1)
    w = dyad(rng, n, den=8, lim=1)
    w[rng.permutation(n)[: n // 2]] = 0.0
    y = dyad(rng, m, den=4, lim=2)
    lam = 0.5

    def model(P, ops, grad=True):
        W = P["w"]
        dt = W.dtype
        r = X.astype(dt) @ W - y.astype(dt)
        av, s = ops.pl("abs", W, -1.0, 1.0)
        val = np.sum(r * r) + dt.type(lam) * np.sum(av)
        if not grad:
            return val, None
        return val, {"w": X.astype(dt).T @ (2 * r) + dt.type(lam) * s}

    return Case(name, "abs", f"lasso: sum (X w - y)^2 + 0.5 sum|w|, {n} weights, {n // 2} exactly 0",
                {"w": w}, model, linear=True, kind="abs", array_key="w",
                mutants=("mut_sign1.5", "mut_scale1.1", "mut_flip"), separable=True)


def build_lad(name, seed, n=12, m=10, nzero=7):
    rng = np.random.default_rng(seed)
    A = dyad(rng, (m, n), den=4, lim=1)
    w = dyad(rng, n, den=8, lim=1)
    cvec = A @ w
    cvec[nzero:] += dyad_nz(rng, m - nzero, den=4, lim=1)

    def model(P, ops, grad=True):
        W = P["w"]
        dt = W.dtype
        r = A.astype(dt) @ W - cvec.astype(dt)
        av, s = ops.pl("abs", r, -1.0, 1.0)
        val = np.sum(av) + dt.type(0.0625) * np.sum(W * W)
        if not grad:
            return val, None
        return val, {"w": A.astype(dt).T @ s + dt.type(0.125) * W}

    return Case(name, "abs", f"least absolute deviations sum|A w - c| + |w|^2/16, {n} params, "
                f"{nzero} of {m} residuals exactly 0 (each kink in all elements)", {"w": w}, model,
                linear=True, kind="abs", array_key="w", mutants=("mut_sign1.5", "mut_scale1.1", "mut_flip"))


def build_tv(name, seed, n=32):
    rng = np.random.default_rng(seed)
    w = np.repeat(dyad(rng, n // 4, den=4, lim=1), 4)[:n]
    w[rng.permutation(n)[:4]] += 0.25
    y = dyad(rng, n, den=4, lim=1)
    D = np.eye(n)[1:] - np.eye(n)[:-1]

    def model(P, ops, grad=True):
        W = P["w"]
        dt = W.dtype
        av, s = ops.pl("tv", W[1:] - W[:-1], -1.0, 1.0)
        r = W - y.astype(dt)
        val = dt.type(0.5) * np.sum(r * r) + dt.type(0.5) * np.sum(av)
        if not grad:
            return val, None
        return val, {"w": r + dt.type(0.5) * (D.T.astype(dt) @ s)}

    return Case(name, "abs", f"total variation |w|^2/2-fit + 0.5 sum|w[i+1]-w[i]| over {n} params "
                "with runs of equal values (two kinks per element)", {"w": w}, model, linear=True,
                kind="abs", array_key="w", mutants=("mut_sign1.5", "mut_scale1.1", "mut_flip"))


def build_svm(name, seed, d=10, n_margin=6, n_in=7, n_out=7, lam=0.125, const=0.0, desc=""):
    rng = np.random.default_rng(seed)
    w = dyad_nz(rng, d, den=8, lim=1)
    w[-1] = 0.5
    b = np.array([0.25])
    rows, ys = [], []
    for kind_, cnt in (("margin", n_margin), ("in", n_in), ("out", n_out)):
        for _ in range(cnt):
            y = 1.0 if rng.random() < 0.5 else -1.0
            x = dyad(rng, d, den=4, lim=1)
            target = {"margin": 1.0, "in": 1.0 + rng.integers(1, 8) / 4.0,
                      "out": 1.0 - rng.integers(1, 8) / 4.0}[kind_]
            # y (w x + b) = target  <=>  w x + b = y target
            x[-1] = (y * target - b[0] - x[:-1] @ w[:-1]) / w[-1]
            rows.append(x)
            ys.append(y)
    X, Y = np.array(rows), np.array(ys)

    def model(P, ops, grad=True):
        W, B = P["w"], P["b"]
        dt = W.dtype
        f = X.astype(dt) @ W + B
        hv, s = ops.pl("hinge", 1 - Y.astype(dt) * f)
        val = np.sum(hv) + dt.type(lam) * np.sum(W * W) + dt.type(const)
        if not grad:
            return val, None
        df = -Y.astype(dt) * s
        return val, {"w": X.astype(dt).T @ df + dt.type(2 * lam) * W, "b": df.sum(axis=0, keepdims=True)}

    zero = " (loss exactly 0 at the point)" if n_out == 0 and lam == 0 and const == 0 else ""
    return Case(name, "hinge", f"SVM hinge sum max(0, 1 - y(Xw+b)) + {lam} |w|^2"
                + (f" + {const:g}" if const else "") + f", {d}+1 params, {n_margin} margins exactly 1, "
                f"{n_in} satisfied, {n_out} violated{zero}{desc}", {"w": w, "b": b}, model, linear=True,
                kind="pl", mutants=("mut_slope2", "mut_scale1.1", "mut_nobias"))


def build_multiclass(name, seed, d=6, k=4):
    rng = np.random.default_rng(seed)
    x0 = dyad_nz(rng, d, den=4, lim=1)
    x0[-1] = 1.0
    W = dyad(rng, (d, k), den=8, lim=1)
    r = dyad(rng, (), den=8, lim=1)
    for j in range(k):
        W[-1, j] = r - x0[:-1] @ W[:-1, j]
    b = np.array([1.0, 0.0, 0.0, 0.0])
    X = np.array([np.zeros(d), x0, -x0, x0, dyad(rng, d, 4, 1), dyad(rng, d, 4, 1), np.zeros(d)])
    y = np.array([0, 0, 0, 1, 2, 3, 2])
    Delta = 1.0 - np.eye(k)[y]
    onehot = np.eye(k)[y]

    def model(P, ops, grad=True):
        Wp, B = P["W"], P["b"]
        dt = Wp.dtype
        S = X.astype(dt) @ Wp + B
        m, wt = ops.max("mc", S + Delta.astype(dt))
        val = np.sum(m) - np.sum(S * onehot.astype(dt))
        if not grad:
            return val, None
        dS = wt - onehot.astype(dt)
        return val, {"W": X.astype(dt).T @ dS, "b": dS.sum(axis=0)}

    return Case(name, "hinge", f"multiclass (Crammer-Singer) hinge, W {d}x{k} + b, 4-way ties at "
                "margins exactly 1 (zero row, x0, -x0 with label 0)", {"W": W, "b": b}, model,
                linear=True, kind="max", mutants=("mut_all_tied", "mut_scale1.1", "mut_flip"))


def build_clip(name, seed, d=8, n=12):
    rng = np.random.default_rng(seed)
    w = dyad_nz(rng, d, den=8, lim=1) * 0.5
    w[-1] = 0.5  # at the clip bound of w
    w[0] = -0.5
    b = np.array([0.125])
    rows = []
    for i in range(n):
        x = dyad(rng, d, den=4, lim=1)
        target = [1.0, -1.0, 1.0, -1.0, 1.0][i] if i < 5 else dyad(rng, (), 4, 2)
        x[-1] = (target - b[0] - x[:-1] @ w[:-1]) / w[-1]
        rows.append(x)
    X = np.array(rows)
    c = dyad_nz(rng, n, den=4, lim=1)
    e = dyad_nz(rng, d, den=4, lim=1)

    def model(P, ops, grad=True):
        W, B = P["w"], P["b"]
        dt = W.dtype
        z = X.astype(dt) @ W + B
        cz, s1 = ops.clip("cz", z, -1.0, 1.0)
        cw, s2 = ops.clip("cw", W, -0.5, 0.5)
        val = np.sum(c.astype(dt) * cz) + np.sum(e.astype(dt) * cw) + dt.type(0.0625) * np.sum(W * W)
        if not grad:
            return val, None
        dz = c.astype(dt) * s1
        return val, {"w": X.astype(dt).T @ dz + e.astype(dt) * s2 + dt.type(0.125) * W,
                     "b": dz.sum(axis=0, keepdims=True)}

    return Case(name, "clip", f"sum c clip(Xw+b, -1, 1) + sum e clip(w, -0.5, 0.5) + |w|^2/16, "
                f"{d}+1 params, 5 rows exactly at +-1, w[0], w[-1] at the bounds", {"w": w, "b": b},
                model, linear=True, kind="pl", mutants=("mut_slope2", "mut_slope-1", "mut_scale1.1"))


def build_pwl(name, seed, d=6):
    rng = np.random.default_rng(seed)
    w0 = dyad(rng, d, den=8, lim=1)
    A = dyad_nz(rng, (12, d), den=4, lim=1)
    Gm = dyad_nz(rng, (4, d), den=4, lim=1)
    Hm = dyad_nz(rng, (3, d), den=4, lim=1)
    c = dyad_nz(rng, 12, den=4, lim=1)
    e = dyad_nz(rng, 4, den=4, lim=1)
    w1 = dyad(rng, d, den=4, lim=1)

    def model(P, ops, grad=True):
        W = P["w"]
        dt = W.dtype
        u = W - w0.astype(dt)
        rv, s1 = ops.pl("relu", A.astype(dt) @ u)
        gv, s2 = ops.pl("abs", Gm.astype(dt) @ u, -1.0, 1.0)
        m, wt = ops.max("max", (Hm.astype(dt) @ u)[None, :])
        r = W - w1.astype(dt)
        val = (np.sum(c.astype(dt) * rv) + np.sum(e.astype(dt) * gv) + dt.type(0.75) * m[0]
               + dt.type(0.0625) * np.sum(r * r))
        if not grad:
            return val, None
        g = (A.astype(dt).T @ (c.astype(dt) * s1) + Gm.astype(dt).T @ (e.astype(dt) * s2)
             + dt.type(0.75) * (Hm.astype(dt).T @ wt[0]) + dt.type(0.125) * r)
        return val, {"w": g}

    return Case(name, "pwl", f"piecewise linear in {d} params: 12 relus (coefficients both signs), "
                "4 abs and a 3-way max, all kinks through the point, + |w-w1|^2/16", {"w": w0}, model,
                linear=True, kind="pl", array_key="w", mutants=("mut_slope2", "mut_slope-1", "mut_scale1.1"))


# -- vector-valued (check_vjp)


def build_vjp_relu(name, seed, din=4, H=8, two=False):
    rng = np.random.default_rng(seed)
    x0 = dyad_nz(rng, din, den=4, lim=2)
    x0[-1] = 1.0
    X = np.array([np.zeros(din), x0, -x0, x0, dyad(rng, din, 4, 2), dyad(rng, din, 4, 2)])
    W = dyad(rng, (din, H), den=8, lim=1)
    for j in range(0, H, 2):
        W[-1, j] = -(x0[:-1] @ W[:-1, j])
    P = {"W1": W, "b1": np.zeros(H)}
    if two:
        P["W2"] = dyad(rng, (H, H // 2), den=8, lim=1)
        P["b2"] = np.zeros(H // 2)

    def model(Pp, ops, grad=True, u=None):
        dt = Pp["W1"].dtype
        Xd = X.astype(dt)
        z1 = Xd @ Pp["W1"] + Pp["b1"]
        h1, s1 = ops.pl("h1", z1)
        out = h1
        if two:
            z2 = h1 @ Pp["W2"] + Pp["b2"]
            out, s2 = ops.pl("h2", z2)
        if not grad:
            return out.ravel(), None
        U = np.asarray(u).reshape(out.shape)
        g = {}
        if two:
            dz2 = U * s2
            g["W2"], g["b2"] = h1.T @ dz2, dz2.sum(axis=0)
            dh1 = dz2 @ Pp["W2"].T
        else:
            dh1 = U
        dz1 = dh1 * s1
        g["W1"], g["b1"] = Xd.T @ dz1, dz1.sum(axis=0)
        return out.ravel(), {k: g[k] for k in Pp}

    return Case(name, "vjp", f"VJP of relu({'relu(' if two else ''}X W1 + b1{') W2 + b2' if two else ''})"
                f" flattened, {din} inputs, {H} units, rows zero, x0, -x0, x0 (b = 0, half the units "
                "W x0 = 0)", P, model, linear=not two, kind="pl", vec=True,
                mutants=("mut_slope2", "mut_slope-1"))


def build_vjp_pool(name, seed, n=32):
    rng = np.random.default_rng(seed)
    a = tie_rows(rng, n // 4, 4).ravel()

    def model(P, ops, grad=True, u=None):
        A = P["a"]
        m, w = ops.max("pool", A.reshape(-1, 4))
        if not grad:
            return m, None
        return m, {"a": (w * np.asarray(u)[:, None]).reshape(A.shape)}

    return Case(name, "vjp", f"VJP of a 1-D max pool of {n} params (windows 4, 2-4-way ties)",
                {"a": a}, model, linear=True, kind="max", vec=True, array_key="a",
                mutants=("mut_all_tied", "mut_none_tied"))


def build_vjp_clip(name, seed, d=6, n=10):
    rng = np.random.default_rng(seed)
    w = dyad_nz(rng, d, den=8, lim=1)
    w[-1] = 0.5
    A = dyad(rng, (n, d), den=4, lim=1)
    for i in range(5):
        A[i, -1] = ([1.0, -1.0, 1.0, -1.0, 1.0][i] - A[i, :-1] @ w[:-1]) / w[-1]

    def model(P, ops, grad=True, u=None):
        W = P["w"]
        dt = W.dtype
        z = A.astype(dt) @ W
        cz, s = ops.clip("cz", z, -1.0, 1.0)
        if not grad:
            return cz, None
        return cz, {"w": A.astype(dt).T @ (np.asarray(u) * s)}

    return Case(name, "vjp", f"VJP of clip(A w, -1, 1), {d} params, {n} outputs, 5 exactly at +-1",
                {"w": w}, model, linear=True, kind="pl", vec=True, array_key="w",
                mutants=("mut_slope2", "mut_slope-1"))


def tune(case, mutants=None, n_limits=None, skip=(), dtypes=("float64", "float32")):
    case.dtypes = dtypes
    if mutants is not None:
        case.mutants = list(mutants)
    if n_limits is not None:
        case.n_limits = n_limits
    case.skip = set(skip)
    return case


def all_cases():
    rows4 = ["zero", "x", "-x", "x", "g", "g"]
    C = [
        tune(build_mlp("relu1_21", 1, 3, [4], 1, rows4), ("mut_slope2", "mut_nobias")),
        tune(build_mlp("relu1_x0_41", 2, 3, [8], 1, ["x", "x", "x", "-x", "zero", "g", "g"], mode="x0",
                       loss="softplus"), ("mut_slope-1", "mut_flip")),
        tune(build_mlp("relu1_const_37", 3, 4, [6], 1, ["zero", "x", "-x", "g", "g"], const=1000.0),
             ("mut_scale1.1", "mut_half")),
        tune(build_mlp("relu2_369", 4, 4, [16, 16], 1, ["zero", "x", "-x", "x", "g", "g", "g"]),
             ("mut_slope2", "mut_scale1.1"), n_limits=2),
        tune(build_mlp("relu2_both0_172", 5, 3, [10, 10], 2, ["x", "x", "-x", "g", "g"], mode="x0"),
             ("mut_half", "mut_flip"), n_limits=2),
        tune(build_mlp("relu2_hinge_out_113", 6, 3, [8, 8], 1, ["x", "x", "-x", "g", "g", "g"],
                       mode="x0", loss="hinge", bo=1.0, yx=1.0,
                       desc="x0 rows: both layers at 0 and margin exactly 1"), ("mut_slope2", "mut_scale1.1")),
        tune(build_mlp("relu1_zero_loss_61", 7, 4, [10], 1, ["zero", "x", "-x", "g", "g"], loss="relu",
                       wo="neg", bo=0.0, desc="loss exactly 0 at the point (sum relu(out), out <= 0)"),
             ("mut_slope2", "mut_slope-1")),
        tune(build_mlp("relu1_zero_loss_c_61", 7, 4, [10], 1, ["zero", "x", "-x", "g", "g"], loss="relu",
                       wo="neg", bo=0.0, const=1000.0, desc="loss 1000 + sum relu(out), out <= 0"),
             ("mut_slope2", "mut_slope-1")),
        tune(build_mlp("relu3_1394", 8, 5, [24, 24, 24], 2, ["zero", "x", "-x", "x", "g", "g", "g", "g"],
                       loss="softplus"), ("mut_slope2", "mut_scale1.1"), n_limits=1),
        tune(build_mlp("relu1_2946", 9, 20, [128], 2, ["zero", "x", "-x", "x", "g", "g", "g", "g"]),
             ("mut_scale1.1", "mut_nobias"), n_limits=1),
        tune(build_mlp("leaky1_73", 10, 4, [12], 1, ["zero", "x", "-x", "g", "g"], alpha=0.125),
             ("mut_slope-1", "mut_half")),
        tune(build_mlp("leaky2_both0_113", 11, 3, [8, 8], 1, ["x", "x", "-x", "g", "g"], mode="x0",
                       alpha=0.25, loss="softplus"), ("mut_slope2", "mut_flip"), n_limits=2),
        tune(build_mlp("leaky2_1313", 12, 6, [32, 32], 1, ["zero", "x", "-x", "x", "g", "g", "g"],
                       alpha=0.125), ("mut_slope-1", "mut_nobias"), n_limits=1),
        tune(build_pool1d("pool1d_64", 20, 64), ("mut_all_tied", "mut_scale1.1")),
        tune(build_pool2d("pool2d_64", 21), ("mut_all_tied", "mut_flip")),
        tune(build_maxout("maxout_97", 22), ("mut_all_tied", "mut_none_tied"), n_limits=2),
        tune(build_diffmax("diffmax_64", 23), ("mut_all_tied", "mut_none_tied")),
        tune(build_pool1d("pool1d_1024", 24, 1024), ("mut_all_tied", "mut_scale1.1"), n_limits=1,
             skip=("ad_split",), dtypes=("float64",)),
        tune(build_lasso("lasso_24", 30), ("mut_sign1.5", "mut_flip")),
        tune(build_lad("lad_12", 31), ("mut_sign1.5", "mut_scale1.1")),
        tune(build_tv("tv_32", 32), ("mut_sign1.5", "mut_flip")),
        tune(build_svm("svm_11", 40), ("mut_slope2", "mut_nobias")),
        tune(build_svm("svm_zero_loss_11", 41, n_margin=8, n_in=8, n_out=0, lam=0.0),
             ("mut_scale1.1", "mut_nobias")),
        tune(build_svm("svm_zero_loss_c_11", 41, n_margin=8, n_in=8, n_out=0, lam=0.0, const=1000.0),
             ("mut_slope2", "mut_nobias")),
        tune(build_multiclass("multiclass_28", 42), ("mut_all_tied", "mut_scale1.1")),
        tune(build_clip("clip_9", 50), ("mut_slope2", "mut_scale1.1")),
        tune(build_pwl("pwl_6", 51), ("mut_slope2", "mut_slope-1")),
        tune(build_vjp_relu("vjp_relu_40", 60), ("mut_slope2", "mut_slope-1")),
        tune(build_vjp_relu("vjp_relu2_76", 61, two=True), ("mut_slope2", "mut_slope-1")),
        tune(build_vjp_pool("vjp_pool_32", 62), ("mut_all_tied", "mut_none_tied")),
        tune(build_vjp_clip("vjp_clip_6", 63), ("mut_slope2", "mut_slope-1")),
    ]
    return C


# ----------------------------------------------------------------------------------------------
# claims


def claim_list(an):
    """[(claim name, ops factory, post-transform or None, validity, how, margin)]"""
    c = an.case
    kinds = {k[0] for k in an.kinks}
    has_pl = "pl" in kinds
    out = []

    def vec_of(factory, post=None):
        def f(u):
            ops = factory()
            if c.vec:
                g = c.model(c.at(an.x), ops, grad=True, u=u)[1]
            else:
                g = c.model(c.at(an.x), ops, grad=True)[1]
            if post is not None:
                g = post(g)
            return c.flat(g)
        return f

    # limits along directions
    lim = []
    for kind, cname in (("randn", "limit_randn"), ("logspread", "limit_logspread"),
                        ("logspread", "limit_logspread2"))[: c.n_limits]:
        d, ch = an.limit(kind)
        pat = make_pat(an.kinks, ch, an.rec)
        fac = (lambda pat=pat: Pattern(pat))
        for u in an.U:  # sanity: inside the outer set
            v = vec_of(fac)(u)
            lo, hi = an.elem_bounds(u)
            sc = max(1.0, np.abs(lo).max(), np.abs(hi).max())
            if np.maximum(lo - v, v - hi).max() > 1e-9 * sc:
                raise AssertionError(f"{c.name}: limit claim outside the outer bound")
            if c.linear and an.lp_distance(v, u) > 1e-9:
                raise AssertionError(f"{c.name}: limit claim outside the outer hull (LP)")
        an.verify_direction(d, vec_of(fac))
        out.append((cname, fac, None, "valid", f"limit of gradients along a {kind} direction", None))
        lim.append((ch, fac))
    # autodiff-style rules
    if c.kind == "max":
        rules = [("ad_first", "lo", "first"), ("ad_split", "lo", "split")]
    elif c.kind == "abs":
        rules = [("ad_sign0", 0.0, "first"), ("ad_plus1", "hi", "first")]
    else:
        rules = [("ad_lo", "lo", "first"), ("ad_hi", "hi", "first")]
    for nm, cp, cm in rules:
        if nm in c.skip:
            continue
        fac = (lambda cp=cp, cm=cm: Natural(cp, cm))
        target = rule_choices(an.kinks, cp, cm)
        v = vec_of(fac)(an.U[0])
        if is_vertex(an.kinks, target):
            how = None
            for ch, _ in lim:
                if ch == target or (not c.vec and np.abs(an.G_of(ch) - v).max() <= 1e-9 * max(1, np.abs(v).max())):
                    how = "equals a limit claim"
            if how is None:
                how, d = an.confirm_limit(target, v)
                if how:
                    an.verify_direction(d, vec_of(fac))
            out.append((nm, fac, None, "valid" if how else "unconfirmed",
                        how or "no direction found realising it", None))
        else:
            ok = c.separable and c.linear and not c.vec and an.lp_distance(v) <= 1e-9
            if ok:
                L = an.linear_model()
                sup = [set(np.flatnonzero(np.abs(L["C"][:, g]).max(axis=1) > 0)) for g in L["groups"]]
                ok = all(not (sup[i] & sup[j]) for i in range(len(sup)) for j in range(i))
            out.append((nm, fac, None, "mixture" if ok else "unconfirmed",
                        "average of limits, one kink group per element (separable)" if ok
                        else "a mixture of limits, not shown to be a limit", None))
    # mutants
    base_fac = lim[0][1]
    base = vec_of(base_fac)(an.U[0])
    lo, hi = an.elem_bounds(an.U[0])
    big = np.abs(base) >= 0.05 * max(np.abs(base).max(), 1e-300)

    def pick(factor):
        outside = np.where(big, np.maximum(lo - factor * base, factor * base - hi), -np.inf)
        j = int(np.argmax(outside))
        if outside[j] <= 0:
            j = int(np.argmax(np.abs(base)))
        return j

    for mut in c.mutants:
        post, fac = None, base_fac
        if mut in ("mut_slope2", "mut_slope-1", "mut_sign1.5"):
            val = {"mut_slope2": 2.0, "mut_slope-1": -1.0, "mut_sign1.5": 1.5}[mut]
            fac = (lambda val=val: Natural(val, "first"))
        elif mut in ("mut_all_tied", "mut_none_tied"):
            mode = mut.split("_")[1]
            fac = (lambda mode=mode: Natural("lo", mode))
        elif mut in ("mut_scale1.1", "mut_flip"):
            factor = 1.1 if mut == "mut_scale1.1" else -1.0
            key, idx = c.locate(pick(factor))

            def post(g, key=key, idx=idx, factor=factor):
                g = dict(g)
                a = np.array(g[key], copy=True)
                a[idx] = a[idx] * a.dtype.type(factor)
                g[key] = a
                return g
            mut = f"{mut}@{key}{list(map(int, idx))}"
        elif mut == "mut_half":
            def post(g):
                return {k: v * v.dtype.type(0.5) for k, v in g.items()}
        elif mut == "mut_nobias":
            def post(g):
                return {k: (np.zeros_like(v) if k.startswith("b") else v) for k, v in g.items()}
        if not has_pl and mut in ("mut_slope2", "mut_slope-1"):
            continue
        w = an.invalid_witness(vec_of(fac, post), vec_of(base_fac))
        if w is None:
            out.append((mut, fac, post, "unconfirmed", "inside the outer bound", None))
        else:
            out.append((mut, fac, post, "invalid", w[0], w[1]))
    return out


def make_user_fns(case, fac, post, dtype):
    """fun and grad / vjp as a user writes them, in the params' dtype."""
    def fun(p):
        return case.model(case.from_user(p), Ops(), grad=False)[0]

    if case.vec:
        def vjp(p, u):
            P = case.from_user(p)
            dt = next(iter(P.values())).dtype
            g = case.model(P, fac(), grad=True, u=np.asarray(u, dtype=dt))[1]
            if post is not None:
                g = post(g)
            g = {k: np.asarray(v, dtype=dt) for k, v in g.items()}
            return case.to_user(g)
        return fun, vjp

    def grad(p):
        P = case.from_user(p)
        dt = next(iter(P.values())).dtype
        g = case.model(P, fac(), grad=True)[1]
        g = {k: np.asarray(v, dtype=dt) for k, v in g.items()}
        if post is not None:
            g = post(g)
        return case.to_user(g)
    return fun, grad


def check_exactness(case):
    """The float32 kink arguments equal the float64 ones bit for bit (the zeros are exact)."""
    P32 = {k: v.astype(np.float32) for k, v in case.params.items()}
    assert all(np.array_equal(P32[k].astype(np.float64), case.params[k]) for k in case.keys)
    r64, r32 = Ops(), Ops()
    case.model(case.params, r64, grad=False)
    case.model(P32, r32, grad=False)
    for name in r64.rec:
        a, b = r64.rec[name][1], r32.rec[name][1]
        if not np.array_equal(a, b.astype(np.float64)):
            raise AssertionError(f"{case.name}: kink arguments of {name} differ in float32")
    return P32


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    out_path, subs = argv[0], argv[1:]
    t_all = time.perf_counter()
    rows = []
    for case in all_cases():
        if subs and not any(s in case.name for s in subs):
            continue
        t0 = time.perf_counter()
        P32 = check_exactness(case)
        an = Analysis(case)
        an.selfcheck()
        claims = claim_list(an)
        t_an = time.perf_counter() - t0
        nk = len(an.kinks)
        print(f"{case.name}: {case.n} params, {nk} kinks, {len(claims)} claims (analysis {t_an:.1f} s)",
              flush=True)
        for dtype, P in (("float64", {k: v.copy() for k, v in case.params.items()}), ("float32", P32)):
            if dtype not in case.dtypes:
                continue
            for cname, fac, post, validity, how, margin in claims:
                fun, g = make_user_fns(case, fac, post, dtype)
                params = case.to_user({k: v.copy() for k, v in P.items()})
                t1 = time.perf_counter()
                try:
                    if case.vec:
                        res = check_vjp(fun, g, params)
                    else:
                        res = check_gradient(fun, g, params)
                    verdict, passed = res.verdict, bool(res)
                except Exception as e:  # a crash is a finding too
                    verdict, passed = f"crash: {type(e).__name__}: {e}", False
                dt = time.perf_counter() - t1
                rows.append(dict(case=case.name, family=case.family, api="check_vjp" if case.vec else "check_gradient",
                                 dtype=dtype, n_params=case.n, n_kinks=nk, claim=cname, validity=validity,
                                 how=how, margin=margin, verdict=verdict, passed=passed, seconds=round(dt, 3),
                                 desc=case.desc))
                print(f"  {dtype:7s} {cname:28s} {validity:11s} -> {verdict} ({dt:.2f} s)", flush=True)
    with open(out_path, "w") as f:
        json.dump(rows, f, indent=1)
    summarize(rows, time.perf_counter() - t_all)
    return 0


def summarize(rows, total):
    print(f"\n{len(rows)} checks in {total:.0f} s (checker time {sum(r['seconds'] for r in rows):.0f} s)")
    for validity in ("valid", "mixture", "invalid", "unconfirmed"):
        sel = [r for r in rows if r["validity"] == validity]
        if not sel:
            continue
        cnt = Counter(r["verdict"] for r in sel)
        npass = sum(r["passed"] for r in sel)
        print(f"{validity:11s} {len(sel):4d}: " + ", ".join(f"{k} {v}" for k, v in cnt.most_common())
              + f"  (bool True: {npass})")
        fam = defaultdict(Counter)
        for r in sel:
            fam[(r["family"], r["dtype"])][r["verdict"]] += 1
        for (f, dt), cn in sorted(fam.items()):
            print(f"    {f:6s} {dt}: " + ", ".join(f"{k} {v}" for k, v in cn.most_common()))
    bad = [r for r in rows if r["validity"] in ("valid", "mixture") and r["verdict"] == "wrong"]
    print(f"\nvalid (or mixture) claims judged wrong: {len(bad)}")
    for r in bad:
        print(f"  {r['case']} {r['dtype']} {r['claim']} [{r['validity']}]: {r['desc']}")
    bad = [r for r in rows if r["validity"] == "invalid" and r["passed"]]
    print(f"invalid claims that passed: {len(bad)}")
    for r in bad:
        print(f"  {r['case']} {r['dtype']} {r['claim']} ({r['how']}, margin {r['margin']:.3g}) -> "
              f"{r['verdict']}: {r['desc']}")
    crashes = [r for r in rows if r["verdict"].startswith("crash")]
    if crashes:
        print(f"crashes: {len(crashes)}")
        for r in crashes:
            print(f"  {r['case']} {r['dtype']} {r['claim']}: {r['verdict']}")


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__, outputs=1, required=True, more=True)
    sys.exit(main(sys.argv[1:]))
