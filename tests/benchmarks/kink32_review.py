"""A review of the checker written apart from it, at points exactly on kinks in code whose
arithmetic is not exact: 311 checks of 20 functions in float64 and float32, dtype-generic and
casting inside. Kept as its reviewer wrote it (the README's "Points exactly on many kinks at
once" quotes its counts); a measurement, not a test. Run from the repository root:

    python -m tests.benchmarks.kink32_review OUT.json

The reviewer's own header:

kink32_review: the gradient checker's verdicts at points exactly on kinks, for code whose
arithmetic is not exact (float32 code, and float64 code with non-dyadic values and smooth parts).

Written from the outside: only ``backprop_bench.check_gradient`` and its public contract (README,
"Check your own backward pass") are used.  Run:

    python kink32_review.py OUT.json

What it covers
--------------
Families (each a loss with a constant offset and smooth parts, so its value carries rounding):

* ``relu_mlp1``   one-hidden-layer ReLU MLP, squared error + L2 + offset; a zero input row with
                  units of zero bias, and a sample x* and its negation -x* on which some units
                  are exactly 0 (their weights pair with x* = [2^e, u, 0, ...] so the products
                  cancel exactly, or have zeros on x*'s support).
* ``leaky_mlp1``  the same with leaky ReLU (alpha = 0.1) and a logistic loss.
* ``relu_mlp2``   two ReLU layers: the zero row puts units of both layers exactly at 0, one layer
                  at 0 feeding another at 0 (the gradient is multilinear in the kinks' slopes).
* ``relu_sum``    offset + sum_k c_k relu(a_k . p) + quadratic + softplus terms, coefficients of
                  both signs, several kinks (including a and -a) meeting in the same parameters.
                  ``relu_sum``: p is 0 on a block of coordinates and the kinked a_k live on it
                  (exact in any arithmetic); ``relu_sum_closed``: a_k of full support, each
                  closed by its own coordinate (coefficient +-2^m) searched ulp by ulp until
                  A @ p is exactly 0.0 in the working dtype (exact in that dtype only).
* ``abs_l1``      logistic loss + L1 penalty at coordinates exactly 0 + least-absolute-deviation
                  residuals exactly 0 (rows on the zero block, exact; or targets t = fl(R @ p)
                  computed in the working dtype, exact in that dtype only).
* ``max_affine``  offset + sum of weighted max-of-affine groups at ties + quadratic + softplus;
                  tied rows differ only on coordinates where p is 0 (exact), or the tie is closed
                  by searching the intercept ulp by ulp in the working dtype (``_closed``).
* ``hinge``       L1 + L2 regularised linear SVM: weights exactly 0 (L1 kinks) and samples on
                  the zero coordinates with y = 1, b = 1 (margin exactly 1, exact), or b closed
                  so that one full-support sample has margin exactly 1 in the working dtype.
* controls: three of the same functions (relu_mlp1 178, relu_sum 20, hinge 201) at smooth
  points nearby (every kink argument at least 5e-3 from 0), with the correct gradient and with
  its largest element scaled by 1.1.

Sizes 3 to 515 parameters.  Each function is built twice: once with float64 non-dyadic values
(run as float64 dtype-generic code) and once with float32-representable values, run as float32
params through dtype-generic code (``generic``) and through code that casts inside
(``p.astype(np.float32)``: ``cast``), and for a few also float64 params through the casting code.
Every variant checks that the designed kink arguments are exactly 0.0, and that no other kink
argument is, in the precision that variant computes in; a variant where that fails is dropped
and listed.  ``exact`` in the records says whether the kinks are at 0 in exact arithmetic
(``math``) or only in the working precision (``dtype``: the float64 run that the checker does of
generic float32 code then sees them 1e-9..1e-7 away).

How validity is established (independently of the checker)
-----------------------------------------------------------
Each model has a hand-written backward pass taking, at every kink argument that is exactly 0, a
slope to use there (ReLU: 0..1, leaky: alpha..1, abs: -1..1, max: weights on the tied pieces).

* valid (``valid``): a limit of gradients.  For a direction d, the kink arguments are evaluated
  in float64 at x + t d for t = 1e-4, 1e-5, 1e-6 (larger where the kinks are only 0 in float32:
  100x their float64 offset); if every kinked argument has the same nonzero side at all three
  (|z| > 1e-3 t and > 10x its offset at x) and no other argument changes side, that side
  pattern is fixed and the gradient at x with it is the claim.  Confirmed twice: against the
  natural backward pass at x + t d and x + 2t d extrapolated to t = 0 (relative difference
  < 1e-4), and, independently of the backward pass, against central differences of fun
  (float64) at x + T d and x + 2T d extrapolated to T = 0 (< 1e-3; all were below 3e-6).
  Directions: two random Gaussian ones,
  and for the conventions (relu'(0)=0 / =1 everywhere, leaky alpha / 1, abs -1 / +1, max:
  first / last tied piece) a direction found by a linear program over the kinks' tangents
  (maximise the smallest signed tangent); a convention whose LP is infeasible is dropped and
  listed.
* valid (``valid_hull``): the midpoint of two confirmed limits (a Clarke subgradient; e.g.
  np.sign(0) = 0 in L1 as the midpoint of the all -1 and all +1 limits, the uniform weight on
  tied max pieces as the mean of the per-piece limits).
* invalid (``invalid``): the claim (evaluated at x by the claim function, in its precision) is
  outside the image of the box of all slope choices at all kinks (for the max, the simplex):
  a linear program minimises the max-norm distance between the claim and g0 + M s (the
  gradient is affine in the slopes for every family except ``relu_mlp2``; M is built from the
  backward pass in float64 and checked affine); ``relu_mlp2`` uses interval arithmetic through
  its backward pass (an outer bound of every sign pattern).  Distance above 1e-6 (float64) or
  1e-4 (float32) of the claim's largest element: ``invalid``; otherwise ``unconfirmed``.
  Mutants: every kinked slope set to 2 (``bad_hi``; abs: 2, max: weight 1 on every tied piece)
  or to -1 (``bad_lo``; abs: -2, max: no weight on the tied pieces), one kink-touched element
  scaled by 1.1 (``scale1.1``), another element by 1.5 (``scale1.5``), one element with a term
  of the gradient dropped (``drop``: the L2 term, the softplus part, the L1 term, the hinge's
  bias gradient, ...).
* Self-checks per function: the backward pass against central differences at a generic point
  nearby (float64), the casting code's gradient against float64 there, the affine model M, the
  LP distance of every valid claim (should be ~0), the designed zeros per variant.

Claims run per variant (to keep the run near 300 checks): dtype-generic code: dirA, one
convention (conv_lo / conv_hi alternating; dirB where neither is a limit), the hull claim where
there is one, one bad slope (alternating), scale1.1, and drop / scale1.5 (alternating); code
that casts inside: dirA, one bad slope, scale1.1.  KINK32_SELECT=all runs every claim.

Output: JSON with one record per check (case, family, dtype, code, n_params, claim, validity,
verdict, passed, seconds, report, ...) and the self-checks; a summary on stdout.
"""
# ruff: noqa

import json
import os
import sys
import time
from collections import Counter, defaultdict

import numpy as np
from scipy.optimize import linprog

from backprop_bench import check_gradient

F32, F64 = np.float32, np.float64
KIND_LOHI = {"relu": (0.0, 1.0), "abs": (-1.0, 1.0)}
BAD = {"relu": (2.0, -1.0), "leaky": (2.0, -1.0), "abs": (2.0, -2.0)}


def softplus(x):
    return np.logaddexp(0, x)


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def r32(a):
    return np.asarray(a, F64).astype(F32).astype(F64)


# ----------------------------------------------------------------------------------------------
class Case:
    array_param = False
    convex = False
    drop_what = ""
    alpha = 0.1

    def __init__(self, name, family, build, exact, off):
        self.name, self.family, self.build, self.exact, self.off = name, family, build, exact, off
        self._dcache = {}

    # data arrays (float64 holding the build's values), cast per dtype
    def data(self, dt):
        if dt not in self._dcache:
            self._dcache[dt] = {k: (v.astype(dt) if isinstance(v, np.ndarray) else v)
                                for k, v in self.D64.items()}
        return self._dcache[dt]

    def rnd(self, a):
        return r32(a) if self.build == "f32" else np.asarray(a, F64)

    def prep(self, P, mode):
        if mode == "cast":
            P = {k: np.asarray(v).astype(F32) for k, v in P.items()}
            dt = F32
        else:
            dt = np.asarray(next(iter(P.values()))).dtype.type
        return P, self.data(dt), dt

    def parts(self, P, mode, lin=None):
        P, D, dt = self.prep(P, mode)
        val, zs, _ = self.fwd(P, D, dt, lin)
        return val, zs

    def kink_lohi(self, site):
        kind = self.sites[site]
        if kind == "leaky":
            return (self.alpha, 1.0)
        return KIND_LOHI[kind]

    def resolve(self, zs, ovr, force, norm, dt):
        sl = {}
        for s, kind in self.sites.items():
            z = zs[s]
            o = None if ovr is None else ovr.get(s)
            if kind == "max":
                nat = np.zeros(z.shape, dt)
                nat[np.arange(z.shape[0]), np.argmax(z, axis=1)] = 1
                if o is None:
                    sl[s] = nat
                    continue
                m = ~np.isnan(o)
                if not force:
                    tied = (z == 0) & ((z == 0).sum(1) >= 2)[:, None]
                    m &= tied
                rows = m.any(1)
                lam = nat.copy()
                L = np.where(m, np.nan_to_num(o), 0.0)[rows].astype(dt)
                if norm:
                    su = L.sum(1)
                    good = su > 0
                    L[good] = L[good] / su[good][:, None]
                    L[~good] = nat[rows][~good]
                lam[rows] = L
                sl[s] = lam
                continue
            if kind == "relu":
                nat = (z > 0).astype(dt)
            elif kind == "leaky":
                nat = np.where(z > 0, dt(1), dt(self.alpha))
            else:
                nat = np.sign(z).astype(dt)
            if o is None:
                sl[s] = nat
                continue
            m = ~np.isnan(o)
            if not force:
                m &= (z == 0)
            sl[s] = np.where(m, o.astype(dt), nat)
        return sl

    def backward(self, P, mode, ovr=None, force=False, norm=True, drop=False):
        P, D, dt = self.prep(P, mode)
        val, zs, cache = self.fwd(P, D, dt, None)
        sl = self.resolve(zs, ovr, force, norm, dt)
        return self.bwd(P, D, dt, cache, sl, drop)

    # zero positions (kink arguments exactly 0) as computed in a given precision
    def zeros(self, P, mode):
        _, zs = self.parts(P, mode)
        out = {}
        for s, kind in self.sites.items():
            z = zs[s]
            if kind == "max":
                out[s] = (z == 0) & ((z == 0).sum(1) >= 2)[:, None]
            else:
                out[s] = (z == 0)
        return out

    def nparams(self):
        return sum(v.size for v in self.P64.values())


def affine_act(kind, z, alpha):
    if kind == "relu":
        return np.maximum(z, 0)
    return np.where(z > 0, z, alpha * z)


# ----------------------------------------------------------------------------------------------
class MLP1(Case):
    """offset + loss(W2 act(X W1^T + b1) + b2) + lam/2 (|W1|^2 + |W2|^2)."""
    drop_what = "L2 term of W1"

    def __init__(self, name, build, seed, n, d, h, o, nk, npair, act="relu", loss="mse", off=10.0,
                 lam=0.013):
        super().__init__(name, "relu_mlp1" if act == "relu" else "leaky_mlp1", build, "math", off)
        self.act, self.loss, self.lam = act, loss, lam
        self.sites = {"Z": act}
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, d))
        X[0] = 0.0
        xs = np.zeros(d)
        xs[0] = 0.5
        xs[1] = rng.normal()
        xs = self.rnd(xs)
        X[1], X[2] = xs, -xs
        W1 = rng.normal(size=(h, d)) / np.sqrt(d)
        b1 = rng.normal(size=h) * 0.5
        b1[:nk] = 0.0
        for j in range(npair):  # zero on x*, -x*
            if j % 2 == 0:
                m = 2.0 ** rng.integers(-1, 2) * rng.choice([-1, 1])
                W1[j, 0], W1[j, 1] = m * xs[1], -m * xs[0]
            else:
                W1[j, :2] = 0.0
        design = np.zeros((n, h), bool)
        design[0, :nk] = True
        design[1:3, :npair] = True
        X = self.rnd(X)
        W1 = self.rnd(W1)
        b1 = self.rnd(b1)
        for _ in range(500):  # margins of every other argument
            Z = X @ W1.T + b1
            bad = (np.abs(Z) < 0.02) & ~design
            if not bad.any():
                break
            for i, j in zip(*np.nonzero(bad)):
                if j >= nk:
                    b1[j] = self.rnd(rng.normal() * 0.5)
                elif i >= 3:
                    X[i] = self.rnd(rng.normal(size=d))
                else:
                    W1[j, :2] = self.rnd(rng.normal(size=2))
        else:
            raise RuntimeError("margins")
        self.design = {"Z": design}
        W2 = self.rnd(rng.normal(size=(o, h)) / np.sqrt(h))
        b2 = self.rnd(rng.normal(size=o) * 0.3)
        if loss == "mse":
            Y = self.rnd(rng.normal(size=(n, o)))
        else:
            Y = np.where(rng.random((n, o)) < 0.5, -1.0, 1.0)
        self.D64 = {"X": X, "Y": Y}
        self.P64 = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}

    def fwd(self, P, D, dt, lin):
        X, Y, n = D["X"], D["Y"], D["X"].shape[0]
        Z = X @ P["W1"].T + P["b1"]
        H = affine_act(self.act, Z, self.alpha)
        O = H @ P["W2"].T + P["b2"]
        reg = 0.5 * self.lam * (np.sum(P["W1"] * P["W1"]) + np.sum(P["W2"] * P["W2"]))
        if self.loss == "mse":
            R = O - Y
            val = self.off + 0.5 * np.sum(R * R) / n + reg
            G = R / n
        else:
            val = self.off + np.sum(softplus(-Y * O)) / n + reg
            G = -Y * sigmoid(-Y * O) / n
        return val, {"Z": Z}, (H, G)

    def bwd(self, P, D, dt, cache, sl, drop):
        H, G = cache
        X = D["X"]
        gW2 = G.T @ H + self.lam * P["W2"]
        gb2 = G.sum(0)
        dZ = (G @ P["W2"]) * sl["Z"]
        gW1 = dZ.T @ X + (0 if drop else self.lam * P["W1"])
        gb1 = dZ.sum(0)
        return {"W1": gW1, "b1": gb1, "W2": gW2, "b2": gb2}


class MLP2(Case):
    """offset + mse(W3 relu(W2 relu(X W1^T + b1) + b2) + b3) + lam/2 sum |W|^2."""
    drop_what = "L2 term of W1"
    multilinear = True

    def __init__(self, name, build, seed, n, d, h1, h2, o, nk1, npair, nk2, off=1000.0, lam=0.021):
        super().__init__(name, "relu_mlp2", build, "math", off)
        self.lam = lam
        self.sites = {"Z1": "relu", "Z2": "relu"}
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, d))
        X[0] = 0.0
        xs = np.zeros(d)
        xs[0] = 0.5
        xs[1] = rng.normal()
        xs = self.rnd(xs)
        X[1], X[2] = xs, -xs
        W1 = rng.normal(size=(h1, d)) / np.sqrt(d)
        b1 = -np.abs(rng.normal(size=h1)) * 0.3 - 0.05
        b1[:nk1] = 0.0
        for j in range(npair):
            if j % 2 == 0:
                m = 2.0 ** rng.integers(-1, 2) * rng.choice([-1, 1])
                W1[j, 0], W1[j, 1] = m * xs[1], -m * xs[0]
            else:
                W1[j, :2] = 0.0
        W2 = rng.normal(size=(h2, h1)) / np.sqrt(h1)
        b2 = rng.normal(size=h2) * 0.5
        b2[:nk2] = 0.0
        X, W1, b1, W2, b2 = map(self.rnd, (X, W1, b1, W2, b2))
        d1 = np.zeros((n, h1), bool)
        d1[0, :nk1] = True
        d1[1:3, :npair] = True
        d2 = np.zeros((n, h2), bool)
        d2[0, :nk2] = True
        for _ in range(1000):
            Z1 = X @ W1.T + b1
            bad1 = (np.abs(Z1) < 0.02) & ~d1
            H1 = np.maximum(Z1, 0)
            Z2 = H1 @ W2.T + b2
            bad2 = (np.abs(Z2) < 0.02) & ~d2
            if not bad1.any() and not bad2.any():
                break
            for i, j in zip(*np.nonzero(bad1)):
                if j >= nk1:
                    b1[j] = self.rnd(-abs(rng.normal()) * 0.3 - 0.05)
                elif i >= 3:
                    X[i] = self.rnd(rng.normal(size=d))
                else:
                    W1[j, :2] = self.rnd(rng.normal(size=2))
            for i, k in zip(*np.nonzero(bad2)):
                if k >= nk2:
                    b2[k] = self.rnd(rng.normal() * 0.5)
                else:
                    W2[k] = self.rnd(rng.normal(size=h1) / np.sqrt(h1))
        else:
            raise RuntimeError("margins")
        self.design = {"Z1": d1, "Z2": d2}
        W3 = self.rnd(rng.normal(size=(o, h2)) / np.sqrt(h2))
        b3 = self.rnd(rng.normal(size=o) * 0.3)
        Y = self.rnd(rng.normal(size=(n, o)))
        self.D64 = {"X": X, "Y": Y}
        self.P64 = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}

    def fwd(self, P, D, dt, lin):
        X, Y, n = D["X"], D["Y"], D["X"].shape[0]
        Z1 = X @ P["W1"].T + P["b1"]
        H1 = np.maximum(Z1, 0)
        if lin is not None and "Z1" in lin:
            o1 = lin["Z1"]
            H1 = np.where(np.isnan(o1), H1, np.nan_to_num(o1) * Z1)
        Z2 = H1 @ P["W2"].T + P["b2"]
        H2 = np.maximum(Z2, 0)
        O = H2 @ P["W3"].T + P["b3"]
        R = O - Y
        reg = 0.5 * self.lam * (np.sum(P["W1"] ** 2) + np.sum(P["W2"] ** 2) + np.sum(P["W3"] ** 2))
        val = self.off + 0.5 * np.sum(R * R) / n + reg
        return val, {"Z1": Z1, "Z2": Z2}, (H1, H2, R / n)

    def bwd(self, P, D, dt, cache, sl, drop):
        H1, H2, G = cache
        X = D["X"]
        gW3 = G.T @ H2 + self.lam * P["W3"]
        gb3 = G.sum(0)
        d2 = (G @ P["W3"]) * sl["Z2"]
        gW2 = d2.T @ H1 + self.lam * P["W2"]
        gb2 = d2.sum(0)
        d1 = (d2 @ P["W2"]) * sl["Z1"]
        gW1 = d1.T @ X + (0 if drop else self.lam * P["W1"])
        gb1 = d1.sum(0)
        return {"W1": gW1, "b1": gb1, "W2": gW2, "b2": gb2, "W3": gW3, "b3": gb3}

    def interval(self, x64, K):
        """Elementwise outer bounds of the gradient over every slope in [0, 1] at the kinks."""
        P, D, dt = self.prep(x64, "generic")
        val, zs, (H1, H2, G) = self.fwd(P, D, dt, None)
        X = D["X"]

        def sl_iv(s):
            nat = (zs[s] > 0).astype(F64)
            lo, hi = nat.copy(), nat.copy()
            lo[K[s]] = 0.0
            hi[K[s]] = 1.0
            return lo, hi

        def mul_iv(a, b):  # interval * interval
            c = np.stack([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
            return c.min(0), c.max(0)

        def mat_left(A, C):  # interval A (lo, hi) @ constant C
            Cp, Cm = np.maximum(C, 0), np.minimum(C, 0)
            return A[0] @ Cp + A[1] @ Cm, A[1] @ Cp + A[0] @ Cm

        s2, s1 = sl_iv("Z2"), sl_iv("Z1")
        g3 = G @ P["W3"]
        d2 = mul_iv(s2, (g3, g3))
        gW2 = mat_left((d2[0].T, d2[1].T), H1)
        gW2 = (gW2[0] + self.lam * P["W2"], gW2[1] + self.lam * P["W2"])
        gb2 = (d2[0].sum(0), d2[1].sum(0))
        dh1 = mat_left(d2, P["W2"])
        d1 = mul_iv(s1, dh1)
        gW1 = mat_left((d1[0].T, d1[1].T), X)
        gW1 = (gW1[0] + self.lam * P["W1"], gW1[1] + self.lam * P["W1"])
        gb1 = (d1[0].sum(0), d1[1].sum(0))
        gW3 = G.T @ H2 + self.lam * P["W3"]
        gb3 = G.sum(0)
        lo = {"W1": gW1[0], "b1": gb1[0], "W2": gW2[0], "b2": gb2[0], "W3": gW3, "b3": gb3}
        hi = {"W1": gW1[1], "b1": gb1[1], "W2": gW2[1], "b2": gb2[1], "W3": gW3, "b3": gb3}
        return lo, hi


class ReluSum(Case):
    """offset + c . relu(A p) + sum softplus(B p) + 1/2 sum q (p - mu)^2."""
    array_param = True
    drop_what = "softplus part"

    def __init__(self, name, build, seed, n, nz, nk, nneg, nl, nsp, off, closed=False):
        super().__init__(name, "relu_sum_closed" if closed else "relu_sum", build,
                         "dtype" if closed else "math", off)
        self.sites = {"z": "relu"}
        rng = np.random.default_rng(seed)
        dt = F32 if build == "f32" else F64
        p = rng.normal(size=n)
        rows = []
        if not closed:
            Zc = np.arange(nz)
            p[Zc] = 0.0
            for k in range(nk):
                if k < 2 * nneg and k % 2 == 1:
                    rows.append(-rows[-1])
                else:
                    a = np.zeros(n)
                    a[Zc] = rng.normal(size=nz)
                    rows.append(a)
        else:
            C = np.arange(n - nk, n)  # closing (bias) coordinates
            for k in range(nk):
                a = rng.normal(size=n)
                a[C] = 0.0
                rows.append(a)
        Ak = np.array(rows)
        c = rng.normal(size=nk)
        c = np.sign(c) * (np.abs(c) + 0.3)
        c[:2] = [1.3, -0.8][: min(2, nk)]
        p = self.rnd(p)
        Ak = self.rnd(Ak)
        # non-kinked rows with margin
        L = []
        while len(L) < nl:
            a = self.rnd(rng.normal(size=n) / np.sqrt(n) * 2)
            if abs(a @ p) > 0.05:
                L.append(a)
        A = np.vstack([Ak] + ([np.array(L)] if nl else []))
        E = np.zeros_like(A)
        if closed:
            # kinked row k has a bias p[C_k] (A[:nk, C] = 0): p[C_k] = -fl(A_k p), A @ p computed
            # in the working dtype the way fwd computes it; z = fl(A p) + E p is then exactly 0
            for k in range(nk):
                E[k, C[k]] = 1.0
            p[C] = 0.0
            p[C] = -(A.astype(dt) @ p.astype(dt)).astype(F64)[:nk]
            for i in range(nk, A.shape[0]):
                while abs((A[i] + E[i]) @ p) < 0.05:
                    A[i] = self.rnd(rng.normal(size=n) / np.sqrt(n) * 2)
        cc = np.concatenate([c, rng.normal(size=nl)])
        self.design = {"z": np.arange(A.shape[0]) < nk}
        B = self.rnd(rng.normal(size=(nsp, n)) / np.sqrt(n))
        q = self.rnd(rng.uniform(0.5, 2.0, n))
        mu = self.rnd(rng.normal(size=n))
        self.D64 = {"A": A, "E": E, "c": self.rnd(cc), "B": B, "q": q, "mu": mu}
        self.P64 = {"p": p}

    def fwd(self, P, D, dt, lin):
        p = P["p"]
        z = D["A"] @ p + D["E"] @ p
        u = D["B"] @ p
        e = p - D["mu"]
        val = self.off + D["c"] @ np.maximum(z, 0) + np.sum(softplus(u)) + 0.5 * np.sum(D["q"] * e * e)
        return val, {"z": z}, (u, e)

    def bwd(self, P, D, dt, cache, sl, drop):
        u, e = cache
        cs = D["c"] * sl["z"]
        g = D["A"].T @ cs + D["E"].T @ cs + D["q"] * e
        if not drop:
            g = g + D["B"].T @ sigmoid(u)
        return {"p": g}


class AbsL1(Case):
    """offset + mean softplus(-y X p) + lam1 |p|_1 + lam2 |R p - t|_1."""
    array_param = True
    convex = True
    drop_what = "L1 term"

    def __init__(self, name, build, seed, n, nz, m, r1, r2, off, lam1=0.07, lam2=0.3):
        super().__init__(name, "abs_l1", build, "dtype" if r2 else "math", off)
        self.sites = {"p": "abs", "r": "abs"}
        self.lam1, self.lam2 = lam1, lam2
        rng = np.random.default_rng(seed)
        dt = F32 if build == "f32" else F64
        p = rng.normal(size=n)
        Zc = rng.choice(n, nz, replace=False)
        p = np.sign(p) * (np.abs(p) + 0.05)  # nonzero coordinates away from the L1 kink
        p[Zc] = 0.0
        p = self.rnd(p)
        X = self.rnd(rng.normal(size=(m, n)) / np.sqrt(n))
        y = np.where(rng.random(m) < 0.5, -1.0, 1.0)
        R = []
        for i in range(r1):
            a = np.zeros(n)
            a[Zc] = rng.normal(size=nz)
            R.append(a)
        for i in range(r2):
            R.append(rng.normal(size=n) / np.sqrt(n))
        nr = 3
        for i in range(nr):  # residuals away from 0
            R.append(rng.normal(size=n) / np.sqrt(n))
        R = self.rnd(np.array(R))
        t = np.zeros(len(R))
        t[r1 + r2:] = self.rnd(R[r1 + r2:] @ p + np.sign(rng.normal(size=nr)) * rng.uniform(0.2, 1, nr))
        # targets = the fitted values, computed the way fwd computes R @ p, in the working dtype
        t[r1:r1 + r2] = (R.astype(dt) @ p.astype(dt)).astype(F64)[r1:r1 + r2]
        self.design = {"p": p == 0, "r": np.arange(len(R)) < r1 + r2}
        self.D64 = {"X": X, "y": y, "R": R, "t": t}
        self.P64 = {"p": p}

    def fwd(self, P, D, dt, lin):
        p = P["p"]
        u = D["X"] @ p
        r = D["R"] @ p - D["t"]
        m = u.shape[0]
        val = (self.off + np.sum(softplus(-D["y"] * u)) / m + self.lam1 * np.sum(np.abs(p))
               + self.lam2 * np.sum(np.abs(r)))
        return val, {"p": p, "r": r}, (u,)

    def bwd(self, P, D, dt, cache, sl, drop):
        (u,) = cache
        m = u.shape[0]
        g = D["X"].T @ (-D["y"] * sigmoid(-D["y"] * u)) / m + self.lam2 * (D["R"].T @ sl["r"])
        if not drop:
            g = g + self.lam1 * sl["p"]
        return {"p": g}


class MaxAffine(Case):
    """offset + sum_g w_g max_k (A_gk . p + beta_gk) + 1/2 sum q (p - mu)^2 + sum softplus(B p)."""
    array_param = True
    convex = True
    drop_what = "quadratic term"

    def __init__(self, name, build, seed, n, nz, G, k, ntie, ntied_groups, off, nsp=2, closed=False):
        super().__init__(name, "max_affine", build, "dtype" if closed else "math", off)
        self.sites = {"v": "max"}
        rng = np.random.default_rng(seed)
        dt = F32 if build == "f32" else F64
        p = rng.normal(size=n)
        Zc = np.arange(nz)
        if not closed:
            p[Zc] = 0.0
        p = self.rnd(p)
        A = rng.normal(size=(G, k, n)) / np.sqrt(n)
        beta = rng.normal(size=(G, k)) * 0.3
        design = np.zeros((G, k), bool)
        for g in range(ntied_groups):
            design[g, :ntie] = True
            if not closed:
                for j in range(1, ntie):
                    A[g, j] = A[g, 0]
                    A[g, j, Zc] = rng.normal(size=nz) / np.sqrt(n) * 3
                beta[g, 1:ntie] = beta[g, 0]
        A = self.rnd(A)
        beta = self.rnd(beta)
        Af = lambda: A.reshape(G * k, n)
        v = (Af() @ p).reshape(G, k) + beta
        for g in range(G):  # non-tied pieces below the top by a margin
            top = v[g, 0] if g < ntied_groups else v[g].max()
            for j in range(k):
                if g < ntied_groups and j < ntie:
                    continue
                if g >= ntied_groups and v[g, j] == top:
                    continue
                if v[g, j] > top - 0.05:
                    beta[g, j] = self.rnd(beta[g, j] - (v[g, j] - top) - rng.uniform(0.1, 0.5))
            if g >= ntied_groups:
                vv = (A[g] @ p) + beta[g]
                srt = np.sort(vv)
                if srt[-1] - srt[-2] < 0.05:
                    j = np.argmax(vv)
                    beta[g, j] = self.rnd(beta[g, j] + 0.2)
        if closed:
            # the tied group's top near 6 (binade [4, 8)) so that the intercepts that close the
            # tie lie in the same binade as the value and an ulp step of one reaches every value
            for g in range(ntied_groups):
                beta[g, 0] = self.rnd(6.0 + 0.3 * rng.normal() - A[g, 0] @ p)
                for j in range(ntie, k):
                    beta[g, j] = self.rnd(6.0 - 0.5 - rng.uniform(0, 0.5) - A[g, j] @ p)
                for j in range(1, ntie):
                    target = (A[g, 0].astype(dt) @ p.astype(dt)) + dt(beta[g, 0])
                    Aj = A[g, j].astype(dt) @ p.astype(dt)
                    v0 = dt(target - Aj)
                    up, dn, found = v0, v0, False
                    cands = [v0]
                    for _ in range(200):
                        up = np.nextafter(up, dt(np.inf))
                        dn = np.nextafter(dn, dt(-np.inf))
                        cands += [up, dn]
                    for cv in cands:
                        beta[g, j] = float(cv)
                        vv = (A.reshape(G * k, n).astype(dt) @ p.astype(dt)).reshape(G, k) + beta.astype(dt)
                        if vv[g, j] == vv[g, 0]:
                            found = True
                            break
                    if not found:
                        raise RuntimeError("could not close tie")
        self.design = {"v": design}
        self.G, self.k = G, k
        self.D64 = {"A": A.reshape(G * k, n), "beta": beta, "w": self.rnd(rng.uniform(0.5, 2.0, G)),
                    "q": self.rnd(rng.uniform(0.3, 1.5, n)), "mu": self.rnd(rng.normal(size=n)),
                    "B": self.rnd(rng.normal(size=(nsp, n)) / np.sqrt(n))}
        self.P64 = {"p": p}

    def fwd(self, P, D, dt, lin):
        p = P["p"]
        v = (D["A"] @ p).reshape(self.G, self.k) + D["beta"]
        mx = v.max(1)
        e = p - D["mu"]
        u = D["B"] @ p
        val = self.off + D["w"] @ mx + 0.5 * np.sum(D["q"] * e * e) + np.sum(softplus(u))
        return val, {"v": v - mx[:, None]}, (e, u)

    def bwd(self, P, D, dt, cache, sl, drop):
        e, u = cache
        lam = sl["v"] * D["w"][:, None]
        g = D["A"].T @ lam.reshape(-1) + D["B"].T @ sigmoid(u)
        if not drop:
            g = g + D["q"] * e
        return {"p": g}


class Hinge(Case):
    """offset + mean relu(1 - y (X w + b)) + lam1 |w|_1 + lam2/2 |w|^2."""
    convex = True
    drop_what = "hinge part of the bias gradient"

    def __init__(self, name, build, seed, d, nz, nmarg, nother, off, closed=False, lam1=0.05, lam2=0.11):
        super().__init__(name, "hinge", build, "dtype" if closed else "math", off)
        self.sites = {"h": "relu", "w": "abs"}
        self.lam1, self.lam2 = lam1, lam2
        rng = np.random.default_rng(seed)
        dt = F32 if build == "f32" else F64
        w = rng.normal(size=d)
        w = np.sign(w) * (np.abs(w) + 0.05)  # nonzero weights away from the L1 kink
        Zc = np.arange(nz)
        w[Zc] = 0.0
        w = self.rnd(w)
        Xm = np.zeros((nmarg, d))
        Xm[:, Zc] = rng.normal(size=(nmarg, nz))
        Xo = rng.normal(size=(nother, d)) / np.sqrt(d) * 2
        X = self.rnd(np.vstack([Xm, Xo]))
        y = np.concatenate([np.ones(nmarg), np.where(rng.random(nother) < 0.5, -1.0, 1.0)])
        b = np.array([1.0]) if not closed else np.array([0.0])
        if closed:  # close the margin of the first "other" sample (full support)
            i0 = nmarg
            target = 1.0 / y[i0] - X[i0] @ w
            v0 = dt(target)
            cands = [v0]
            up, dn = v0, v0
            for _ in range(200):
                up = np.nextafter(up, dt(np.inf))
                dn = np.nextafter(dn, dt(-np.inf))
                cands += [up, dn]
            found = False
            Xd, wd, yd = X.astype(dt), w.astype(dt), y.astype(dt)
            for cv in cands:
                hh = 1 - yd * (Xd @ wd + np.array([cv], dt))
                if hh[i0] == 0:
                    b = np.array([float(cv)])
                    found = True
                    break
            if not found:
                raise RuntimeError("could not close margin")
        design_h = np.zeros(len(y), bool)
        design_h[:nmarg] = True
        if closed:
            design_h[nmarg] = True
        for _ in range(200):
            hh = 1 - y * (X @ w + b)
            bad = (np.abs(hh) < 0.03) & ~design_h
            if not bad.any():
                break
            for i in np.nonzero(bad)[0]:
                X[i] = self.rnd(rng.normal(size=d) / np.sqrt(d) * 2)
        else:
            raise RuntimeError("margins")
        self.design = {"h": design_h, "w": w == 0}
        self.D64 = {"X": X, "y": y}
        self.P64 = {"w": w, "b": self.rnd(b)}

    def fwd(self, P, D, dt, lin):
        w, b = P["w"], P["b"]
        h = 1 - D["y"] * (D["X"] @ w + b)
        n = h.shape[0]
        val = (self.off + np.sum(np.maximum(h, 0)) / n + self.lam1 * np.sum(np.abs(w))
               + 0.5 * self.lam2 * np.sum(w * w))
        return val, {"h": h, "w": w}, (n,)

    def bwd(self, P, D, dt, cache, sl, drop):
        (n,) = cache
        coef = -D["y"] * sl["h"] / n
        gw = D["X"].T @ coef + self.lam1 * sl["w"] + self.lam2 * P["w"]
        gb = np.zeros(1, dt) if drop else np.sum(coef, keepdims=True)
        return {"w": gw, "b": gb.reshape(1)}


# ----------------------------------------------------------------------------------------------
def to_dt(P, dt):
    return {k: np.asarray(v, F64).astype(dt) for k, v in P.items()}


def flat(g, keys):
    return np.concatenate([np.asarray(g[k], F64).ravel() for k in keys])


def unflat(v, P):
    out, i = {}, 0
    for k in P:
        n = P[k].size
        out[k] = v[i:i + n].reshape(P[k].shape)
        i += n
    return out


class Ctx:
    """A case at one point: kink positions, slope vector layout, LP model."""

    def __init__(self, case, x64, K):
        self.case, self.x64, self.K = case, x64, K
        self.keys = list(x64)
        self.sites = list(case.sites)
        self.nK = sum(int(K[s].sum()) for s in self.sites)

    def ovr_from(self, vals):
        """vals: site -> values at K positions (np array) -> ovr dict (NaN elsewhere)."""
        ovr = {}
        for s in self.sites:
            shape = self.case.design[s].shape
            o = np.full(shape, np.nan)
            o[self.K[s]] = vals[s]
            ovr[s] = o
        return ovr

    def const_vals(self, which):
        """lo / hi sides at every kink (max: first / last tied piece)."""
        vals = {}
        for s in self.sites:
            kind = self.case.sites[s]
            if kind == "max":
                Km = self.K[s]
                lam = np.zeros(Km.shape)
                for g in np.nonzero(Km.any(1))[0]:
                    idx = np.nonzero(Km[g])[0]
                    lam[g, idx[0] if which == "lo" else idx[-1]] = 1.0
                vals[s] = lam[Km]
            else:
                lo, hi = self.case.kink_lohi(s)
                vals[s] = np.full(int(self.K[s].sum()), lo if which == "lo" else hi)
        return vals

    def model_grad(self, ovr, drop=False):
        g = self.case.backward(self.x64, "generic", ovr, force=True, norm=False, drop=drop)
        return flat(g, self.keys)

    def build_M(self):
        base, cols, self.uvec_layout = {}, [], []
        lohi = {}
        for s in self.sites:
            kind = self.case.sites[s]
            nk = int(self.K[s].sum())
            lo, hi = (0.0, 1.0) if kind == "max" else self.case.kink_lohi(s)
            lohi[s] = (lo, hi)
            base[s] = np.full(nk, lo)
        self.lohi = lohi
        self.g0 = self.model_grad(self.ovr_from(base))
        for s in self.sites:
            for j in range(int(self.K[s].sum())):
                v = {t: base[t].copy() for t in self.sites}
                lo, hi = lohi[s]
                v[s][j] = hi
                cols.append(self.model_grad(self.ovr_from(v)) - self.g0)  # per unit of u in [0, 1]
                self.uvec_layout.append((s, j))
        self.M = np.array(cols).T if cols else np.zeros((self.g0.size, 0))
        # groups (max): sum of weights on the tied pieces of each group = 1
        self.eq = []
        off = 0
        for s in self.sites:
            nk = int(self.K[s].sum())
            if self.case.sites[s] == "max":
                Km = self.K[s]
                gidx = np.nonzero(Km)[0]
                for g in np.unique(gidx):
                    row = np.zeros(self.M.shape[1])
                    row[off + np.nonzero(gidx == g)[0]] = 1.0
                    self.eq.append(row)
            off += nk

    def u_of(self, vals):
        u = []
        for s in self.sites:
            lo, hi = self.lohi[s]
            u.append((np.asarray(vals[s], F64) - lo) / (hi - lo))
        return np.concatenate(u) if u else np.zeros(0)

    def affine_selfcheck(self, rng):
        if getattr(self.case, "multilinear", False) or self.M.shape[1] == 0:
            return 0.0
        u = rng.random(self.M.shape[1])
        vals, i = {}, 0
        for s in self.sites:
            nk = int(self.K[s].sum())
            lo, hi = self.lohi[s]
            vals[s] = lo + u[i:i + nk] * (hi - lo)
            i += nk
        g = self.model_grad(self.ovr_from(vals))
        return float(np.max(np.abs(g - (self.g0 + self.M @ u))) / max(1e-300, np.max(np.abs(g))))

    def elementwise_excess(self, c):
        """How far (relative to |c|max) the claim's worst element lies outside that element's
        own range over every slope choice at the kinks that touch it (0: every element within)."""
        S = max(np.max(np.abs(c)), 1e-300)
        if getattr(self.case, "multilinear", False):
            lo, hi = self.case.interval(self.x64, self.K)
            lo, hi = flat(lo, self.keys), flat(hi, self.keys)
        else:
            lo, hi = self.g0.copy(), self.g0.copy()
            ingroup = np.zeros(self.M.shape[1], bool)
            for row in self.eq:
                cols = np.nonzero(row)[0]
                ingroup[cols] = True
                lo += self.M[:, cols].min(1)
                hi += self.M[:, cols].max(1)
            Mb = self.M[:, ~ingroup]
            lo += np.minimum(Mb, 0).sum(1)
            hi += np.maximum(Mb, 0).sum(1)
        return float(np.maximum(np.maximum(lo - c, c - hi), 0).max() / S)

    def distance(self, c):
        """Max-norm distance of claim c from every slope choice (relative to |c|max)."""
        S = max(np.max(np.abs(c)), 1e-300)
        if getattr(self.case, "multilinear", False):
            lo, hi = self.case.interval(self.x64, self.K)
            lo, hi = flat(lo, self.keys), flat(hi, self.keys)
            dist = np.maximum(np.maximum(lo - c, c - hi), 0).max()
            return float(dist / S)
        nK = self.M.shape[1]
        if nK == 0:
            return float(np.max(np.abs(c - self.g0)) / S)
        n = c.size
        Mn, r = self.M / S, (c - self.g0) / S
        A_ub = np.vstack([np.hstack([Mn, -np.ones((n, 1))]), np.hstack([-Mn, -np.ones((n, 1))])])
        b_ub = np.concatenate([r, -r])
        A_eq = np.hstack([np.array(self.eq), np.zeros((len(self.eq), 1))]) if self.eq else None
        b_eq = np.ones(len(self.eq)) if self.eq else None
        cost = np.zeros(nK + 1)
        cost[-1] = 1.0
        res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                      bounds=[(0, 1)] * nK + [(0, None)], method="highs")
        if res.status != 0:
            return float("nan")
        return float(res.x[-1])

    # ---- directions ------------------------------------------------------------------------
    def steps(self):
        """t for the side patterns: 1e-4..1e-6, or larger where the kinks are only 0 in float32
        (float64 sees them up to ~5e-7 from 0 at the float32 point)."""
        _, z0 = self.case.parts(self.x64, "generic")
        off = max([np.max(np.abs(z0[s][self.K[s]])) if self.K[s].any() else 0.0 for s in self.sites])
        base = max(1e-6, 100 * off)
        return (100 * base, 10 * base, base)

    def side_pattern(self, d, ts=None):
        """Side of every kink at x + t d (same at all t), or None."""
        case = self.case
        ts = ts or self.steps()
        _, z0 = case.parts(self.x64, "generic")
        pats = []
        for t in ts:
            P = {k: self.x64[k] + t * d[k] for k in self.keys}
            _, zs = case.parts(P, "generic")
            vals = {}
            for s in self.sites:
                kind = case.sites[s]
                z, Km = zs[s], self.K[s]
                if kind == "max":
                    # tied groups: the argmax among the tied pieces, which must beat the others
                    lam = np.zeros(Km.shape)
                    for g in range(Km.shape[0]):
                        if Km[g].any():
                            idx = np.nonzero(Km[g])[0]
                            zz = z[g, idx]
                            srt = np.sort(zz)
                            if srt[-1] - srt[-2] < 1e-3 * t:
                                return None
                            if z[g, ~Km[g]].size and z[g, ~Km[g]].max() >= srt[-1]:
                                return None
                            lam[g, idx[np.argmax(zz)]] = 1.0
                        else:
                            if np.argmax(z[g]) != np.argmax(z0[s][g]):
                                return None
                    vals[s] = lam[Km]
                else:
                    zk = z[Km]
                    if zk.size and (np.min(np.abs(zk)) < 1e-3 * t
                                    or np.min(np.abs(zk)) < 10 * np.max(np.abs(z0[s][Km]))):
                        return None
                    if np.any(np.sign(z[~Km]) != np.sign(z0[s][~Km])):
                        return None
                    lo, hi = case.kink_lohi(s)
                    vals[s] = np.where(zk > 0, hi, lo)
            pats.append(vals)
        for v in pats[1:]:
            for s in self.sites:
                if not np.array_equal(v[s], pats[0][s]):
                    return None
        return pats[0]

    def limit_check(self, d, vals):
        """Natural gradient at x + t d and x + 2t d (float64), extrapolated to t = 0, against
        the gradient at x with the side pattern fixed."""
        t = self.steps()[-1]
        gs = []
        for tt in (t, 2 * t):
            P = {k: self.x64[k] + tt * d[k] for k in self.keys}
            gs.append(flat(self.case.backward(P, "generic"), self.keys))
        gn = 2 * gs[0] - gs[1]
        gm = self.model_grad(self.ovr_from(vals))
        return float(np.max(np.abs(gn - gm)) / max(1.0, np.max(np.abs(gm))))

    def fd_limit(self, d, vals):
        """Independent of the backward pass: central differences of fun (float64) at x + T d and
        x + 2T d, extrapolated to T = 0, against the claim with the side pattern fixed."""
        T = max(1e-4, 10 * self.steps()[-1])
        v2 = self.side_pattern(d, ts=(2 * T, T))
        if v2 is None or not vals_equal(v2, vals, self.sites):
            return float("inf")
        xf, df = flat(self.x64, self.keys), flat(d, self.keys)
        gs = []
        for tt in (T, 2 * T):
            b = xf + tt * df
            g = np.empty(b.size)
            for j in range(b.size):
                h = 1e-7 * max(1.0, abs(b[j]))
                vp, vm = b.copy(), b.copy()
                vp[j] += h
                vm[j] -= h
                g[j] = (float(self.case.parts(unflat(vp, self.x64), "generic")[0])
                        - float(self.case.parts(unflat(vm, self.x64), "generic")[0])) / (2 * h)
            gs.append(g)
        gn = 2 * gs[0] - gs[1]
        gm = self.model_grad(self.ovr_from(vals))
        return float(np.max(np.abs(gn - gm)) / max(1.0, np.max(np.abs(gm))))

    def confirm(self, d, target, selfc, tag):
        """The side pattern along d, confirmed as a limit of gradients, or None."""
        if d is None:
            return None
        vals = self.side_pattern(d)
        if vals is None or (target is not None and not vals_equal(vals, target, self.sites)):
            return None
        lc = self.limit_check(d, vals)
        fl = self.fd_limit(d, vals)
        selfc.setdefault("limit_err", {})[tag] = lc
        selfc.setdefault("fd_limit_err", {})[tag] = fl
        return vals if (lc < 1e-4 and fl < 1e-3) else None

    def tangents(self, lin_vals, h=1e-6):
        """Rows: d z_K / d params (central differences; upstream kinks linearised)."""
        lin = self.ovr_from(lin_vals) if lin_vals is not None else None
        xf = flat(self.x64, self.keys)
        rows = []
        for j in range(xf.size):
            zz = []
            for sg in (1, -1):
                v = xf.copy()
                v[j] += sg * h
                _, zs = self.case.parts(unflat(v, self.x64), "generic", lin=lin)
                zz.append(np.concatenate([zs[s][self.K[s]] for s in self.sites]))
            rows.append((zz[0] - zz[1]) / (2 * h))
        return np.array(rows).T  # (nK, n)

    def lp_direction(self, vals):
        """A direction along which every kink takes the side in vals (LP), or None."""
        case = self.case
        lin = vals if getattr(case, "multilinear", False) else None
        J = self.tangents(lin)
        rows, off = [], 0
        for s in self.sites:
            nk = int(self.K[s].sum())
            Js = J[off:off + nk]
            kind = case.sites[s]
            if kind == "max":
                Km = self.K[s]
                gidx = np.nonzero(Km)[0]
                v = vals[s]
                for g in np.unique(gidx):
                    loc = np.nonzero(gidx == g)[0]
                    win = loc[np.argmax(v[loc])]
                    for o in loc:
                        if o != win:
                            rows.append(Js[win] - Js[o])
            else:
                lo, hi = case.kink_lohi(s)
                sig = np.where(np.asarray(vals[s]) == hi, 1.0, -1.0)
                rows += list(sig[:, None] * Js)
            off += nk
        R = np.array(rows)
        n = R.shape[1]
        sc = max(1.0, np.max(np.abs(R)))
        res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.hstack([-R / sc, np.ones((len(R), 1))]),
                      b_ub=np.zeros(len(R)), bounds=[(-1, 1)] * n + [(None, 1)], method="highs")
        if res.status != 0 or res.x[-1] <= 1e-7:
            return None
        return unflat(res.x[:-1], self.x64)


def vals_equal(a, b, sites):
    return all(np.array_equal(np.asarray(a[s]), np.asarray(b[s])) for s in sites)


# ----------------------------------------------------------------------------------------------
def fd_selfcheck(case, rng):
    """Backward pass vs central differences at a generic point nearby (float64), and the
    casting code's gradient vs float64 there."""
    x = {k: v + 1e-3 * rng.normal(size=v.shape) for k, v in case.P64.items()}
    keys = list(x)
    g = flat(case.backward(x, "generic"), keys)
    xf = flat(x, keys)
    idx = rng.choice(xf.size, min(60, xf.size), replace=False)
    err = 0.0
    for j in idx:
        h = 1e-6 * max(1.0, abs(xf[j]))
        vp, vm = xf.copy(), xf.copy()
        vp[j] += h
        vm[j] -= h
        fp = float(case.parts(unflat(vp, x), "generic")[0])
        fm = float(case.parts(unflat(vm, x), "generic")[0])
        err = max(err, abs((fp - fm) / (2 * h) - g[j]))
    err /= max(1.0, np.max(np.abs(g)))
    gc = flat(case.backward(x, "cast"), keys)
    cerr = float(np.max(np.abs(gc - g)) / max(1.0, np.max(np.abs(g))))
    return float(err), cerr


def make_funcs(case, mode, ovr, norm, mut):
    keys = list(case.P64)

    def wrap_in(params):
        return {"p": params} if case.array_param else params

    def wrap_out(g):
        return g["p"] if case.array_param else g

    def fun(params):
        return case.parts(wrap_in(params), mode)[0]

    def grad(params):
        P = wrap_in(params)
        g = case.backward(P, mode, ovr, force=False, norm=norm)
        if mut is not None:
            kind, key, idx, fac = mut
            g = {k: np.array(v, copy=True) for k, v in g.items()}
            if kind == "scale":
                g[key][idx] = g[key][idx] * fac
            else:
                gd = case.backward(P, mode, ovr, force=False, norm=norm, drop=True)
                g[key][idx] = gd[key][idx]
        return wrap_out(g)

    return fun, grad, keys


def claim_value(case, grad, P, keys):
    if case.array_param:
        return np.asarray(grad(P["p"].copy()), F64).ravel()
    return flat(grad({k: v.copy() for k, v in P.items()}), keys)


SELECT = os.environ.get("KINK32_SELECT")  # "all": every claim in every variant


def select_claims(claims, vi, label, code):
    """Per variant: dirA, one convention (alternating), the hull claim; one bad slope
    (alternating), scale1.1, and drop / scale1.5 (alternating).  Code that casts inside:
    dirA, one bad slope, scale1.1."""
    if label == "control" or SELECT == "all":
        return claims
    names = [c[0] for c in claims]
    if code == "cast":  # dirA, one bad slope (alternating), scale1.1
        want = {"dirA", ("bad_hi", "bad_lo")[vi % 2], "scale1.1"}
        return [c for c in claims if c[0] in want]
    want = {"dirA", "hull_sign0", "hull_uniform", "scale1.1"}
    conv = [n for n in ("conv_lo", "conv_hi") if n in names]
    if conv:
        want.add(conv[vi % len(conv)])
    elif "dirB" in names:
        want.add("dirB")
    want.add(("bad_hi", "bad_lo")[vi % 2])
    want.add(("drop", "scale1.5")[vi % 2])
    return [c for c in claims if c[0] in want]


def elem_index(P, flat_i):
    i = 0
    for k in P:
        n = P[k].size
        if flat_i < i + n:
            return k, np.unravel_index(flat_i - i, P[k].shape)
        i += n
    raise IndexError


# ----------------------------------------------------------------------------------------------
def variants_of(case):
    if case.build == "f64":
        return [("f64", "generic")]
    v = [("f32", "generic"), ("f32", "cast")]
    if getattr(case, "f64cast", False):
        v.append(("f64", "cast"))
    return v


def prepare_claims(case, x64, K, rng, notes, selfc, want):
    """Validity-established claims at one point (x64, kink positions K)."""
    ctx = Ctx(case, x64, K)
    ctx.build_M()
    selfc["affine_err"] = ctx.affine_selfcheck(rng)
    claims = []  # (name, validity, ovr, norm, mut)
    if ctx.nK == 0:  # smooth control
        claims.append(("correct", "valid", None, True, None))
        g = ctx.g0
        j = int(np.argmax(np.abs(g)))
        claims.append(("scale1.1", "invalid?", None, True, ("scale",) + elem_index(x64, j) + (1.1,)))
        return ctx, claims
    confirmed = {}
    for nm in ("dirA", "dirB"):
        for _ in range(30):
            d = {k: rng.normal(size=v.shape) for k, v in x64.items()}
            vals = ctx.confirm(d, None, selfc, nm)
            if vals is not None:
                confirmed[nm] = vals
                break
        else:
            notes.append(f"{case.name}: no random direction gave a confirmed side pattern ({nm})")
    for nm, which in (("conv_lo", "lo"), ("conv_hi", "hi")):
        target = ctx.const_vals(which)
        d = ctx.lp_direction(target)
        if d is None:
            notes.append(f"{case.name}: {nm} is not a limit of gradients (LP infeasible): dropped")
            continue
        vals = ctx.confirm(d, target, selfc, nm)
        if vals is None:
            notes.append(f"{case.name}: {nm}: LP direction not confirmed numerically: dropped")
            continue
        confirmed[nm] = vals
    for nm in ("dirA", "dirB", "conv_lo", "conv_hi"):
        if nm in confirmed:
            claims.append((nm, "valid", ctx.ovr_from(confirmed[nm]), True, None))
    # hull claims
    if case.convex and "hull" in want:
        kinds = set(case.sites.values())
        if "max" in kinds:
            # uniform weights on the tied pieces = mean of the per-piece limits
            Km = K["v"]
            T = Km.sum(1)
            T = T[T > 0]
            if len(set(T)) == 1:
                pats, ok = [], True
                for i in range(T[0]):
                    lam = np.zeros(Km.shape)
                    for g in np.nonzero(Km.any(1))[0]:
                        lam[g, np.nonzero(Km[g])[0][i]] = 1.0
                    tgt = {"v": lam[Km]}
                    if ctx.confirm(ctx.lp_direction(tgt), tgt, selfc, f"piece{i}") is None:
                        ok = False
                        break
                    pats.append(tgt)
                if ok:
                    uni = {"v": np.mean([p["v"] for p in pats], axis=0)}
                    claims.append(("hull_uniform", "valid_hull", ctx.ovr_from(uni), False, None))
                else:
                    notes.append(f"{case.name}: uniform tie weights: a piece is not a confirmed limit: dropped")
        else:
            # np.sign(0) = 0 for abs sites, relu sites at their lo side: midpoint of two limits
            t1 = ctx.const_vals("lo")
            t2 = {s: (ctx.const_vals("hi")[s] if case.sites[s] == "abs" else t1[s]) for s in ctx.sites}
            ok = True
            for i, tgt in enumerate((t1, t2)):
                if ctx.confirm(ctx.lp_direction(tgt), tgt, selfc, f"hull_end{i}") is None:
                    ok = False
            if ok:
                mid = {s: 0.5 * (t1[s] + t2[s]) for s in ctx.sites}
                claims.append(("hull_sign0", "valid_hull", ctx.ovr_from(mid), True, None))
            else:
                notes.append(f"{case.name}: sign(0)=0 midpoint: its two ends not confirmed: dropped")
    base = confirmed.get("dirA") or next(iter(confirmed.values()), None)
    if base is None:
        return ctx, claims
    bovr = ctx.ovr_from(base)
    for nm, which in (("bad_hi", 0), ("bad_lo", 1)):
        vals = {}
        for s in ctx.sites:
            kind = case.sites[s]
            if kind == "max":
                vals[s] = np.full(int(K[s].sum()), 1.0 if which == 0 else 0.0)
            else:
                vals[s] = np.full(int(K[s].sum()), BAD[kind][which])
        claims.append((nm, "invalid?", ctx.ovr_from(vals), False, None))
    claims.append(("scale1.1", "invalid?", bovr, True, ("scale-touched", 1.1)))
    claims.append(("scale1.5", "invalid?", bovr, True, ("scale-other", 1.5)))
    claims.append(("drop", "invalid?", bovr, True, ("drop",)))
    return ctx, claims


def choose_element(ctx, c, kind, rng, P, case, mode, ovr, norm):
    """Pick the element for a mutant so that the mutant is confirmed invalid, if possible."""
    S = np.max(np.abs(c))
    touched = np.zeros(c.size, bool)
    if getattr(case, "multilinear", False):
        lo, hi = case.interval(ctx.x64, ctx.K)
        touched = (flat(hi, ctx.keys) - flat(lo, ctx.keys)) > 1e-12
    elif ctx.M.shape[1]:
        touched = np.any(np.abs(ctx.M) > 1e-12, axis=1)
    big = np.abs(c) >= 0.05 * S
    if kind == "scale-touched":
        cand = np.nonzero(touched & big)[0]
        cand = cand[np.argsort(-np.abs(c[cand]))][:6]
    elif kind == "scale-other":
        cand = np.nonzero(~touched & big)[0]
        if cand.size == 0:
            cand = np.nonzero(big)[0]
        cand = rng.permutation(cand)[:6]
    else:
        gd = flat(case.backward(P, mode, ovr, force=False, norm=norm, drop=True), ctx.keys)
        diff = np.abs(gd - c)
        cand = np.nonzero(diff > 1e-3 * S)[0]
        pref = cand[touched[cand]]
        cand = np.concatenate([pref[np.argsort(-diff[pref])][:4], cand[np.argsort(-diff[cand])][:4]])
    return [int(j) for j in cand]


def run(out_path):
    t_start = time.time()
    cases = []
    add = cases.append
    for build in ("f64", "f32"):
        s = 0 if build == "f64" else 100
        add(MLP1(f"relu_mlp1_21_{build}", build, s + 1, n=6, d=3, h=4, o=1, nk=3, npair=2, off=10.0))
        add(MLP1(f"relu_mlp1_178_{build}", build, s + 2, n=12, d=8, h=16, o=2, nk=6, npair=4, off=1000.0))
        add(MLP1(f"relu_mlp1_515_{build}", build, s + 3, n=24, d=12, h=32, o=3, nk=8, npair=4, off=10.0))
        add(MLP1(f"leaky_mlp1_97_{build}", build, s + 4, n=10, d=6, h=12, o=1, nk=5, npair=4,
                 act="leaky", loss="logistic", off=10.0))
        add(MLP2(f"relu_mlp2_71_{build}", build, s + 5, n=8, d=4, h1=6, h2=5, o=1, nk1=3, npair=2, nk2=2))
        add(MLP2(f"relu_mlp2_374_{build}", build, s + 6, n=16, d=8, h1=16, h2=12, o=2, nk1=5, npair=4, nk2=4))
        add(ReluSum(f"relu_sum_3_{build}", build, s + 7, n=3, nz=2, nk=3, nneg=1, nl=1, nsp=1, off=10.0))
        add(ReluSum(f"relu_sum_20_{build}", build, s + 8, n=20, nz=4, nk=6, nneg=1, nl=6, nsp=4, off=1000.0))
        add(ReluSum(f"relu_sum_300_{build}", build, s + 9, n=300, nz=12, nk=10, nneg=0, nl=20, nsp=10, off=10.0))
        add(ReluSum(f"relu_sum_closed_6_{build}", build, s + 10, n=6, nz=0, nk=2, nneg=0, nl=2, nsp=2,
                    off=10.0, closed=True))
        add(ReluSum(f"relu_sum_closed_60_{build}", build, s + 11, n=60, nz=0, nk=5, nneg=0, nl=8, nsp=4,
                    off=1000.0, closed=True))
        add(AbsL1(f"abs_l1_5_{build}", build, s + 12, n=5, nz=2, m=8, r1=1, r2=0, off=10.0))
        add(AbsL1(f"abs_l1_50_{build}", build, s + 13, n=50, nz=8, m=30, r1=2, r2=3, off=1000.0))
        add(AbsL1(f"abs_l1_400_{build}", build, s + 14, n=400, nz=30, m=60, r1=3, r2=3, off=10.0))
        add(MaxAffine(f"max_affine_3_{build}", build, s + 15, n=3, nz=2, G=1, k=3, ntie=3,
                      ntied_groups=1, off=10.0, nsp=1))
        add(MaxAffine(f"max_affine_40_{build}", build, s + 16, n=40, nz=6, G=4, k=5, ntie=2,
                      ntied_groups=3, off=1000.0))
        add(MaxAffine(f"max_affine_closed_30_{build}", build, s + 17, n=30, nz=0, G=3, k=4, ntie=2,
                      ntied_groups=2, off=10.0, closed=True))
        add(Hinge(f"hinge_5_{build}", build, s + 18, d=4, nz=2, nmarg=2, nother=6, off=10.0))
        add(Hinge(f"hinge_201_{build}", build, s + 19, d=200, nz=20, nmarg=5, nother=40, off=0.0))
        add(Hinge(f"hinge_closed_31_{build}", build, s + 20, d=30, nz=4, nmarg=0, nother=20, off=10.0,
                  closed=True))
    for c in cases:
        c.f64cast = c.name.split("_")[-2] in ("21", "3", "5") if c.build == "f32" else False
    controls = {"relu_mlp1_178", "relu_sum_20", "hinge_201"}

    rng = np.random.default_rng(2024)
    records, notes, selfchecks = [], [], {}
    plan = []  # (case, label, x64, K, variant, claims, ctx)
    for case in cases:
        sc = selfchecks.setdefault(case.name, {})
        sc["fd_err"], sc["cast_err"] = fd_selfcheck(case, rng)
        x64 = {k: v.copy() for k, v in case.P64.items()}
        Kd = case.design
        var_ok = []
        for dtn, mode in variants_of(case):
            P = to_dt(x64, F32 if dtn == "f32" else F64)
            Z = case.zeros(P, mode)
            ok = all(np.array_equal(Z[s], Kd[s]) for s in case.sites)
            sc.setdefault("zeros_exact", {})[f"{dtn}/{mode}"] = ok
            if not ok:
                notes.append(f"{case.name} {dtn}/{mode}: kink arguments not exactly the designed zeros: dropped")
            else:
                var_ok.append((dtn, mode))
        # exact-math check: also 0 in float64 at the same point (generic float64 code)
        Z64 = case.zeros(to_dt(x64, F64), "generic")
        _, z64 = case.parts(to_dt(x64, F64), "generic")
        sc["zero_in_float64_at_point"] = all(np.array_equal(Z64[s], Kd[s]) for s in case.sites)
        sc["max_abs_z64_at_kinks"] = float(max([np.max(np.abs(z64[s][Kd[s]])) if Kd[s].any() else 0.0
                                                for s in case.sites]))
        if case.exact == "math" and not sc["zero_in_float64_at_point"]:
            notes.append(f"{case.name}: designed exact-math kinks not 0 in float64: relabelled dtype")
            case.exact = "dtype"
        if not var_ok:
            continue
        want = {"hull"}
        ctx, claims = prepare_claims(case, x64, Kd, rng, notes, sc, want)
        plan.append((case, "kink", x64, Kd, var_ok, claims, ctx))
        base_name = case.name.rsplit("_", 1)[0]
        if base_name in controls:
            for _ in range(100):
                xs = {k: case.rnd(v + 0.05 * rng.normal(size=v.shape)) for k, v in x64.items()}
                _, zs = case.parts(xs, "generic")
                mg = min(np.min(np.abs(zs[s][zs[s] != 0])) if case.sites[s] != "max"
                         else np.min(-zs[s][zs[s] < 0]) for s in case.sites)
                Zs = case.zeros(to_dt(xs, F64), "generic")
                if mg > 5e-3 and not any(Zs[s].any() for s in case.sites):
                    break
            Kn = {s: np.zeros_like(Kd[s]) for s in case.sites}
            good = []
            for dtn, mode in var_ok:
                Z = case.zeros(to_dt(xs, F32 if dtn == "f32" else F64), mode)
                if not any(Z[s].any() for s in case.sites):
                    good.append((dtn, mode))
            cctx, cclaims = prepare_claims(case, xs, Kn, rng, notes, {}, set())
            plan.append((case, "control", xs, Kn, good, cclaims, cctx))

    prep_s = time.time() - t_start
    print(f"# prepared {len(plan)} points in {prep_s:.1f}s", flush=True)
    if os.environ.get("KINK32_PREP_ONLY"):
        for case, label, x64, K, var_ok, claims, ctx in plan:
            print(case.name, label, case.exact, ctx.nK, var_ok, [c[0] for c in claims])
        print(json.dumps(selfchecks, indent=0, default=float))
        print("\n".join(notes))
        return
    n_checks = 0
    for pi, (case, label, x64, K, var_ok, claims, ctx) in enumerate(plan):
        for vi, (dtn, mode) in enumerate(var_ok):
            dt = F32 if dtn == "f32" else F64
            P = to_dt(x64, dt)
            tol = 1e-4 if (dt == F32 or mode == "cast") else 1e-6
            for (nm, validity, ovr, norm, mut) in select_claims(claims, vi + pi, label, mode):
                mutspec = None
                c = flat(case.backward(P, mode, ovr, force=False, norm=norm), ctx.keys)
                if mut is not None:
                    if mut[0] == "scale":
                        mutspec = mut
                    else:
                        cands = choose_element(ctx, c, mut[0], rng, P, case, mode, ovr, norm)
                        mutspec = None
                        for j in cands:
                            key, idx = elem_index(x64, j)
                            ms = ("scale", key, idx, mut[1]) if mut[0] != "drop" else ("drop", key, idx, None)
                            _, g_ms, _ = make_funcs(case, mode, ovr, norm, ms)
                            if ctx.distance(claim_value(case, g_ms, P, ctx.keys)) > tol:
                                mutspec = ms
                                break
                        if mutspec is None and cands:
                            key, idx = elem_index(x64, cands[0])
                            mutspec = ("scale", key, idx, mut[1]) if mut[0] != "drop" else ("drop", key, idx, None)
                        if mutspec is None:
                            notes.append(f"{case.name} {dtn}/{mode} {nm}: no element to mutate: skipped")
                            continue
                fun, grad, _ = make_funcs(case, mode, ovr, norm, mutspec)
                params = P["p"].copy() if case.array_param else {k: v.copy() for k, v in P.items()}
                cval = claim_value(case, grad, P, ctx.keys)
                dist = ctx.distance(cval)
                elem = ctx.elementwise_excess(cval)
                if validity == "invalid?":
                    validity_f = "invalid" if dist > tol else "unconfirmed"
                else:
                    validity_f = validity
                    if not dist <= tol:
                        notes.append(f"{case.name} {dtn}/{mode} {nm}: valid claim at LP distance {dist:.2g} "
                                     "(construction inconsistent?)")
                t0 = time.time()
                try:
                    r = check_gradient(fun, grad, params)
                    verdict, passed, rep = r.verdict, bool(r), r.report()
                except Exception as e:  # noqa: BLE001
                    verdict, passed, rep = "error", False, f"{type(e).__name__}: {e}"
                sec = time.time() - t0
                n_checks += 1
                mdesc = None
                if mutspec is not None:
                    mdesc = f"{mutspec[0]} {mutspec[1]}{list(map(int, mutspec[2]))}" + (
                        f" x{mutspec[3]}" if mutspec[0] == "scale" else "")
                records.append(dict(
                    case=case.name, family=case.family if label == "kink" else "control:" + case.family,
                    point=label, exact=case.exact if label == "kink" else "smooth",
                    dtype="float32" if dtn == "f32" else "float64", code=mode,
                    n_params=case.nparams(), n_kinks=ctx.nK, claim=nm, mutation=mdesc,
                    validity=validity_f, lp_distance_rel=dist, elementwise_excess_rel=elem,
                    outside_elementwise=bool(elem > tol), verdict=verdict, passed=passed,
                    seconds=round(sec, 3), report=rep))
                print(f"{case.name:28s} {label:7s} {dtn}/{mode:7s} {nm:12s} {validity_f:11s} "
                      f"{verdict:24s} {sec:6.2f}s", flush=True)
    total = time.time() - t_start
    out = dict(records=records, notes=notes, selfchecks=selfchecks, seconds_total=total,
               seconds_prepare=prep_s, seconds_checks=sum(r["seconds"] for r in records))
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, default=float)
    summarize(records, notes, selfchecks, total)


def short(rep, n=24):
    lines = rep.splitlines()
    if len(lines) <= n:
        return "\n".join("    " + x for x in lines)
    return "\n".join("    " + x for x in lines[:n]) + f"\n    ... ({len(lines) - n} more lines in the JSON)"


def reason(r):
    """One line of the report: the failing line for a 'wrong', else the line on the mutated
    element, else the detection floor and the first note."""
    lines = r["report"].splitlines()
    if r["verdict"] == "wrong":
        for x in lines:
            if "FAIL" in x and "gradient check" not in x:
                return x.strip()
    found = _element_line(r, lines)
    if found:
        return found
    extra = [x.strip() for x in lines if x.strip().startswith(("detection floor", "note:"))][:2]
    return " | ".join(extra) or lines[0].strip()


def _element_line(r, lines):
    if r.get("mutation"):
        key_idx = r["mutation"].split(" ", 1)[1].split(" x")[0]  # e.g. b1[3] or p[47]
        k, idx = key_idx.split("[", 1)
        idx = "(" + idx.rstrip("]").replace(" ", "") + ("," if "," not in idx else "") + ")"
        for x in lines:
            xs = x.replace(" ", "")
            if (k + idx) in xs or ("params" + idx) in xs:
                return x.strip()
    return None


def summarize(records, notes, selfchecks, total):
    print("\n" + "=" * 100)
    print(f"{len(records)} checks, {total:.1f}s total, checker time "
          f"{sum(r['seconds'] for r in records):.1f}s")
    for vset, label in ((("valid", "valid_hull"), "VALID claims"), (("invalid",), "INVALID claims"),
                        (("unconfirmed",), "UNCONFIRMED claims")):
        sub = [r for r in records if r["validity"] in vset]
        print(f"\n{label}: {len(sub)}   overall: {dict(Counter(r['verdict'] for r in sub))}")
        groups = defaultdict(Counter)
        for r in sub:
            groups[(r["family"], r["dtype"] + "/" + r["code"], r["exact"])][r["verdict"]] += 1
        for k in sorted(groups):
            print(f"  {k[0]:24s} {k[1]:16s} {k[2]:6s} {dict(groups[k])}")
    hull = [r for r in records if r["validity"] == "valid_hull"]
    print(f"\n(of the valid: valid_hull {len(hull)}: {dict(Counter(r['verdict'] for r in hull))})")
    bad1 = [r for r in records if r["validity"] in ("valid", "valid_hull") and r["verdict"] == "wrong"]
    bad2 = [r for r in records if r["validity"] == "invalid" and r["passed"]]
    bad3 = [r for r in records if r["validity"] in ("valid", "valid_hull") and r["verdict"] == "error"]
    print(f"\nVALID claims judged 'wrong': {len(bad1)}")
    for r in bad1:
        print(f"--- {r['case']} {r['dtype']}/{r['code']} {r['claim']} ({r['validity']}, exact={r['exact']}, "
              f"{r['n_params']} params, {r['n_kinks']} kinks)")
        print("    reason: " + reason(r))
        print(short(r["report"]))
    print(f"\nINVALID claims that passed: {len(bad2)}")
    for r in bad2:
        print(f"--- {r['case']} {r['dtype']}/{r['code']} {r['claim']} {r['mutation'] or ''} (exact={r['exact']}, "
              f"LP distance {r['lp_distance_rel']:.3g}, "
              f"{'outside its element range' if r['outside_elementwise'] else 'every element within its own range: outside only jointly'})")
        print("    reason: " + reason(r))
        print(short(r["report"]))
    if bad3:
        print(f"\nerrors: {len(bad3)}")
        for r in bad3:
            print(f"--- {r['case']} {r['dtype']}/{r['code']} {r['claim']}: {r['report']}")
    print("\nNOTES (constructions dropped / not confirmed):")
    for n in notes:
        print("  " + n)
    worst_fd = max(v.get("fd_err", 0) for v in selfchecks.values())
    worst_cast = max(v.get("cast_err", 0) for v in selfchecks.values())
    worst_aff = max(v.get("affine_err", 0) for v in selfchecks.values())
    worst_lim = max([max(v.get("limit_err", {0: 0}).values()) for v in selfchecks.values()])
    worst_fdl = max([max(v.get("fd_limit_err", {0: 0}).values()) for v in selfchecks.values()])
    print(f"\nself-checks: backward vs central differences worst {worst_fd:.2g}; cast vs float64 "
          f"{worst_cast:.2g}; affine model {worst_aff:.2g}; limit checks worst {worst_lim:.2g} (backward at "
          f"x + t d), {worst_fdl:.2g} (central differences of fun at x + t d; every confirmed one < 1e-3)")
    nz = [k for k, v in selfchecks.items() if not all(v.get("zeros_exact", {}).values())]
    print(f"variants whose zeros were not exact: {nz}")


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__, outputs=1)
    run(sys.argv[1] if len(sys.argv) > 1 else "kink32_review.json")
