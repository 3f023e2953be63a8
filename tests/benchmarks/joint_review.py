"""The checker at points where several kinks meet, on three families of functions whose limit
gradients are known by construction: valid claims (the gradient of a piece, or a mixture of two
or three) and invalid ones (a piece's gradient with one element moved, outside the convex hull
of every sampled limit gradient by a linear program), each element of which often lies within
its own one-sided derivatives.

    python -m tests.benchmarks.joint_review OUT.json [--family stack mix fresh] [--seeds N]

- stack: a . relu(c + W relu(b)) + s . relu(b) + smooth at c = b = 0 (3 to 6 parameters; the
  family the checker's hull of gradients, verify/check.py `_hull`, was developed on);
- mix: max of affine pieces at ties, 2-layer ReLU nets with units at 0 for a sample (MSE),
  max(relu, relu) - relu + |.| (written during that work; two of its cases changed the code);
- fresh: L1 + L-inf of affine maps at zeros, top-2 sums at ties, leaky-ReLU layers with units
  at 0, hinge losses at margins of exactly 1 (written after the code, not used to change it).

Prints the tally of (truth, verdict) per family and writes every check to OUT.json. To compare
with another checker, run it at that commit. Measurement, not a test (tests/verify holds the
checker to cases of each kind). The README's "Claims outside every mixture of the pieces"
figures are this command's.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import numpy as np
from scipy.optimize import linprog

from backprop_bench import check_gradient

from . import usage


# STACK
def _stack_family(seed):
    rng = np.random.default_rng(seed)
    m, k = rng.integers(1, 3), rng.integers(2, 5)
    W = rng.normal(size=(m, k)) * rng.choice([1, -1], size=(m, k))
    a = rng.uniform(0.5, 1.5, size=m) * rng.choice([1, -1], size=m)
    s = rng.uniform(0, 1, size=k)  # extra direct relu(b) terms (some)
    s *= rng.random(k) < 0.5
    q = rng.uniform(0.2, 1.0, size=m + k)

    def fun(p):
        c, b = p[:m], p[m:]
        inner = np.maximum(b, 0.0)
        outer = np.maximum(c + W @ inner, 0.0)
        return a @ outer + s @ inner + 0.5 * q @ (p - 0.2) ** 2

    def grad_at(p):
        c, b = p[:m], p[m:]
        on_b = (b > 0).astype(float)
        on_o = ((c + W @ np.maximum(b, 0)) > 0).astype(float)
        gc = a * on_o
        gb = (W.T @ (a * on_o)) * on_b + s * on_b
        return np.concatenate([gc, gb]) + q * (p - 0.2)

    return m + k, fun, grad_at, rng, q


def _stack_limits(n, grad_at, rng, q, count=4000):
    """Limit gradients at 0: pieces at points 1e-9 r, the smooth part's slope there taken out."""
    G = []
    for i in range(count):
        r = rng.choice([-1, 1], size=n) * 10.0 ** rng.uniform(-3, 0, size=n)
        if i % 2:
            r[rng.integers(n)] = rng.choice([-1, 1]) * 1.0
            r[np.arange(n) != np.argmax(np.abs(r))] *= 0.05
        G.append(grad_at(1e-9 * r) - q * 1e-9 * r)
    G = np.unique(np.round(np.array(G), 12), axis=0)
    return G


# MIX
def _mix_family(seed):
    rng = np.random.default_rng(1000 + seed)
    kind = seed % 3
    if kind == 0:  # max of affine pieces, several tied at x=0, plus smooth
        n = int(rng.integers(3, 6))
        k = int(rng.integers(3, 6))
        A = rng.normal(size=(k, n))
        tied = rng.random(k) < 0.7
        tied[:2] = True
        c = np.where(tied, 0.0, -rng.uniform(0.5, 1.0, size=k))
        q = rng.uniform(0.2, 1, size=n)

        def fun(p):
            return np.max(A @ p + c) + 0.5 * q @ (p - 0.3) ** 2

        def grad(p, at):
            return A[int(np.argmax(A @ at + c))] + q * (p - 0.3)

        x = np.zeros(n)
    elif (
        kind == 1
    ):  # 2-layer relu net, 2 samples, hidden units at 0 for sample 0; params W1 (h x 2), b1, w2
        h = int(rng.integers(2, 4))
        X = rng.normal(size=(2, 2))
        y = rng.normal(size=2)
        W1 = rng.normal(size=(h, 2))
        b1 = -(W1 @ X[0])
        w2 = rng.normal(size=h)
        n = 3 * h + h  # W1 (2h), b1 (h), w2 (h)

        def unpack(p):
            return p[: 2 * h].reshape(h, 2), p[2 * h : 3 * h], p[3 * h :]

        def fun(p):
            W, b, w = unpack(p)
            out = np.maximum(X @ W.T + b, 0) @ w
            return 0.5 * np.sum((out - y) ** 2)

        def grad(p, at):
            W, b, w = unpack(p)
            Wa, ba, _ = unpack(at)
            on = (X @ Wa.T + ba) > 0
            z = X @ W.T + b
            a = np.where(on, z, 0.0)
            out = a @ w
            r = out - y
            gw = a.T @ r
            da = np.outer(r, w) * on
            return np.concatenate([(da.T @ X).ravel(), da.sum(0), gw])

        x = np.concatenate([W1.ravel(), b1, w2])
    else:  # max(relu(a.p), relu(b.p)) - relu(c.p) + abs(d.p) + smooth
        n = int(rng.integers(3, 6))
        a, b, c, d = (rng.normal(size=n) for _ in range(4))
        q = rng.uniform(0.2, 1, size=n)

        def fun(p):
            return (
                max(max(a @ p, 0), max(b @ p, 0))
                - max(c @ p, 0)
                + abs(d @ p)
                + 0.5 * q @ (p - 0.3) ** 2
            )

        def grad(p, at):
            g = q * (p - 0.3)
            ra, rb = max(a @ at, 0), max(b @ at, 0)
            if ra >= rb and a @ at > 0:
                g = g + a
            elif rb > ra and b @ at > 0:
                g = g + b
            if c @ at > 0:
                g = g - c
            g = g + np.sign(d @ at) * d
            return g

        x = np.zeros(n)
    return n, fun, grad, x, rng


def _limits(n, grad, x, rng, count=6000, scaled=False):
    """Limit gradients at x: pieces at points x + 1e-9 r (r times max(|x|, 1) where
    ``scaled``), r of random signs and sizes over three decades, or one coordinate leading."""
    G = []
    for i in range(count):
        r = rng.choice([-1, 1], size=n) * 10.0 ** rng.uniform(-3, 0, size=n)
        if i % 2:
            r[rng.integers(n)] = rng.choice([-1, 1])
            r[np.arange(n) != np.argmax(np.abs(r))] *= 0.05
        G.append(grad(x, x + 1e-9 * r * (np.maximum(np.abs(x), 1.0) if scaled else 1.0)))
    G = np.array(G)
    _, first = np.unique(np.round(G, 7), axis=0, return_index=True)
    return G[np.sort(first)]


def _in_hull(g, G, slack=None):
    """Whether g is a mixture of the rows of G (a linear program): exactly, or within ``slack``
    in every element."""
    n = len(G)
    if slack is None:
        bounds = dict(A_eq=np.vstack([G.T, np.ones(n)]), b_eq=np.concatenate([g, [1]]))
    else:
        bounds = dict(A_ub=np.vstack([G.T, -G.T]), b_ub=np.concatenate([g + slack, -g + slack]),
                      A_eq=np.ones((1, n)), b_eq=[1])  # fmt: skip
    res = linprog(np.zeros(n), bounds=[(0, None)] * n, method="highs", **bounds)
    return res.status == 0


# FRESH
def _fresh_family(seed):
    rng = np.random.default_rng(5000 + seed)
    kind = seed % 4
    if kind == 0:
        n = int(rng.integers(3, 6))
        A = rng.normal(size=(4, n))
        b = np.where(rng.random(4) < 0.6, 0.0, rng.normal(size=4))
        C = rng.normal(size=(3, n))
        q = rng.uniform(0.2, 1, n)

        def fun(p):
            return np.abs(A @ p + b).sum() + np.abs(C @ p).max() + 0.5 * q @ (p - 0.3) ** 2

        def grad(p, at):
            i = int(np.argmax(np.abs(C @ at)))
            return A.T @ np.sign(A @ at + b) + C[i] * np.sign(C[i] @ at) + q * (p - 0.3)

        x = np.zeros(n)
    elif kind == 1:
        n = int(rng.integers(3, 6))
        M = rng.normal(size=(5, n))
        q = rng.uniform(0.2, 1, n)
        k = 2

        def fun(p):
            return np.sort(M @ p)[-k:].sum() + 0.5 * q @ (p - 0.3) ** 2

        def grad(p, at):
            top = np.argsort(M @ at)[-k:]
            return M[top].sum(0) + q * (p - 0.3)

        x = np.zeros(n)
    elif kind == 2:
        h = int(rng.integers(2, 4))
        X = rng.normal(size=(3, 2))
        v = rng.normal(size=h)
        W0 = rng.normal(size=(h, 2))
        c0 = -(W0 @ X[0])

        def unpack(p):
            return p[: 2 * h].reshape(h, 2), p[2 * h :]

        def fun(p):
            W, c = unpack(p)
            z = X @ W.T + c
            return np.sum(np.where(z > 0, z, 0.1 * z) @ v) + 0.05 * np.sum(p**2)

        def grad(p, at):
            W, c = unpack(p)
            Wa, ca = unpack(at)
            slope = np.where(X @ Wa.T + ca > 0, 1.0, 0.1)
            dz = slope * v
            return np.concatenate([(dz.T @ X).ravel(), dz.sum(0)]) + 0.1 * p

        x = np.concatenate([W0.ravel(), c0])
    else:
        n = int(rng.integers(3, 6))
        Xs = rng.normal(size=(6, n))
        y = rng.choice([-1.0, 1.0], 6)
        w0 = rng.normal(size=n)
        # put samples 0 and 1 exactly at margin 1 by scaling their features
        m = y * (Xs @ w0)
        for s in (0, 1):
            if abs(m[s]) > 1e-3:
                Xs[s] /= m[s]
        q = rng.uniform(0.2, 1, n)

        def fun(p):
            return np.maximum(0.0, 1 - y * (Xs @ p)).sum() + 0.5 * q @ (p - 0.3) ** 2

        def grad(p, at):
            act = (1 - y * (Xs @ at)) > 0
            return -(Xs[act] * y[act, None]).sum(0) + q * (p - 0.3)

        x = w0
    return len(x), fun, grad, x, rng


def _moved(G, n, rng, tries, share, slack):
    """Up to three invalid claims: a limit gradient with one element moved by ``share`` (a range)
    of the largest (at least 1), kept where outside the hull of G (within ``slack(g)``)."""
    claims = []
    while len(claims) < 3 and tries > 0:
        tries -= 1
        g = G[rng.integers(len(G))].copy()
        j = rng.integers(n)
        g[j] += rng.choice([-1, 1]) * rng.uniform(*share) * max(1.0, abs(g).max())
        if not _in_hull(g, G, slack(g)):
            claims.append(("invalid", g))
    return claims


def _stack_claims(seed):
    n, fun, grad_at, rng, q = _stack_family(seed)
    G = _stack_limits(n, grad_at, rng, q)
    claims = [("valid piece", G[rng.integers(len(G))]) for _ in range(3)]
    claims += _moved(G, n, rng, 50, (0.2, 1.0), lambda g: None)
    # the claims with the smooth part's slope at p, as a user's gradient has it
    return fun, np.zeros(n), [(label, lambda p, g=g: g + q * p) for label, g in claims]


def _hull_claims(family, limits):
    def claims_of(seed):
        n, fun, grad, x, rng = family(seed)
        G = limits(n, grad, x, rng)
        claims = [("valid piece", G[rng.integers(len(G))]) for _ in range(2)]
        for _ in range(2):
            idx = rng.choice(len(G), size=min(3, len(G)), replace=False)
            w = rng.dirichlet(np.ones(len(idx)))
            claims.append(("valid mixture", w @ G[idx]))
        claims += _moved(G, n, rng, 60, (0.1, 0.6), lambda g: 0.02 * max(1.0, abs(g).max()))
        return fun, x, [(label, lambda p, g=g: g.copy()) for label, g in claims]

    return claims_of


FAMILIES = {
    "stack": (_stack_claims, 60),
    "mix": (_hull_claims(_mix_family, _limits), 45),
    "fresh": (_hull_claims(_fresh_family, lambda *a: _limits(*a, scaled=True)), 60),
}


def main(argv=None) -> int:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where to write every check (JSON)")
    parser.add_argument("--family", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--seeds", type=usage.positive_int, default=None,
                        help="seeds per family (default: all)")  # fmt: skip
    args = parser.parse_args(argv)
    usage.writable(args.out)
    records = []
    for name in args.family:
        claims_of, seeds = FAMILIES[name]
        tally = Counter()
        for seed in range(args.seeds or seeds):
            fun, x, claims = claims_of(seed)
            for label, grad in claims:
                started = time.perf_counter()
                verdict = check_gradient(fun, grad, x.copy()).verdict
                seconds = time.perf_counter() - started
                truth = label.split()[0]
                tally[(truth, verdict)] += 1
                records.append(dict(family=name, seed=seed, label=label, truth=truth,
                                    verdict=verdict, seconds=round(seconds, 4)))  # fmt: skip
        print(f"{name}: " + ", ".join(f"{t} {v} {c}" for (t, v), c in sorted(tally.items())))
        print(f"  {sum(r['seconds'] for r in records if r['family'] == name):.1f} s of checks")
    with open(args.out, "w") as f:
        json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
