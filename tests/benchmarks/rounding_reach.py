"""The checker on float32 code within float32 rounding of kinks: verdicts on correct claims,
valid ones (the other side of a kink) and wrong ones, where units, margins and ties are put at 0
the way users put them there (in the code's own float32 rounding).

    python -m tests.benchmarks.rounding_reach [--cast]

--cast: grad computes in float32 whatever it is given (no float64 run of the same code). Prints
each case's verdicts and a tally; to compare with an earlier checker, run it at that commit. The
README's "Kinks within float32 rounding" figures are this command's (and with --cast).
Measurement, not a test (tests/verify/test_rounding_reach.py holds the checker to them).
"""

from __future__ import annotations

import sys

import numpy as np
from backprop_bench.verify import check_gradient

from . import usage

VALID = (None, "mask >= 0")  # a correct claim, and the other side's slope at the kinks
MUTANTS = ("a group 1e-2 off", "one element 10% off", "a group negated")


def deep_relu_net(rng, dtype, sizes=(4, 8, 8), batch=8):
    """Two hidden ReLU layers, MSE; sample 0's first-layer units at 0 in float32, so that the
    second layer's units of sample 0 sit at (or within rounding of) 0 too."""
    n_in, h1, h2 = sizes
    X = rng.normal(size=(batch, n_in)).astype(dtype)
    Y = rng.normal(size=(batch, 1))
    p = {"W1": rng.normal(size=(n_in, h1)) / np.sqrt(n_in), "b1": np.zeros(h1),
         "W2": rng.normal(size=(h1, h2)) / np.sqrt(h1), "b2": np.zeros(h2),
         "W3": rng.normal(size=(h2, 1)) / np.sqrt(h2), "b3": np.zeros(1)}  # fmt: skip
    p = {k: v.astype(dtype) for k, v in p.items()}
    p["b1"] = -(X[0] @ p["W1"])

    def fwd(q):
        Xq, Yq = X.astype(q["W1"].dtype), Y.astype(q["W1"].dtype)
        z1 = Xq @ q["W1"] + q["b1"]
        a1 = np.maximum(z1, 0)
        z2 = a1 @ q["W2"] + q["b2"]
        a2 = np.maximum(z2, 0)
        return Xq, Yq, z1, a1, z2, a2, a2 @ q["W3"] + q["b3"]

    def fun(q):
        out = fwd(q)
        return np.mean((out[6] - out[1]) ** 2)

    def grad(q, fault=None):
        Xq, Yq, z1, a1, z2, a2, out = fwd(q)
        d3 = 2 * (out - Yq) / len(Xq)
        d2 = (d3 @ q["W3"].T) * (z2 > 0)
        d1 = (d2 @ q["W2"].T) * ((z1 >= 0) if fault == "mask >= 0" else (z1 > 0))
        g = {"W1": Xq.T @ d1, "b1": d1.sum(0), "W2": a1.T @ d2, "b2": d2.sum(0),
             "W3": a2.T @ d3, "b3": d3.sum(0)}  # fmt: skip
        return mutate(g, fault, ("W2", "b1", "W3"))

    return fun, grad, p


def mutate(g, fault, keys):
    """A correct gradient g (dict) made wrong: the first of keys' group 1e-2 off, the largest
    element of the second 10% off, or the third negated."""
    g = {k: v.copy() for k, v in g.items()}
    first, second, third = keys
    if fault == MUTANTS[0]:
        g[first] = g[first] * (1 + 1e-2)
    elif fault == MUTANTS[1]:
        g[second].flat[np.argmax(np.abs(g[second]))] *= 1.1
    elif fault == MUTANTS[2]:
        g[third] = -g[third]
    return g


def relu_net(rng, dtype, act="relu", n_in=6, h=12, batch=6):
    """One hidden (leaky) ReLU layer, MSE; one sample's units at 0 in float32."""
    X = rng.normal(size=(batch, n_in)).astype(dtype)
    Y = rng.normal(size=(batch, 1)).astype(dtype)
    p = {"W1": (rng.normal(size=(n_in, h)) / np.sqrt(n_in)).astype(dtype),
         "W2": (rng.normal(size=(h, 1)) / np.sqrt(h)).astype(dtype),
         "b2": np.zeros(1, dtype)}  # fmt: skip
    p["b1"] = -(X[rng.integers(0, batch)] @ p["W1"])
    slope = 0.01 if act == "leaky" else 0.0

    def fwd(q):
        Xq, Yq = X.astype(q["W1"].dtype), Y.astype(q["W1"].dtype)
        z = Xq @ q["W1"] + q["b1"]
        a = np.where(z > 0, z, slope * z)
        return Xq, Yq, z, a, a @ q["W2"] + q["b2"]

    def fun(q):
        Xq, Yq, z, a, out = fwd(q)
        return np.mean((out - Yq) ** 2)

    def grad(q, fault=None):
        Xq, Yq, z, a, out = fwd(q)
        d = 2 * (out - Yq) / len(Xq)
        on = z >= 0 if fault == "mask >= 0" else z > 0
        dz = (d @ q["W2"].T) * np.where(on, 1, slope).astype(z.dtype)
        g = {"W1": Xq.T @ dz, "b1": dz.sum(0), "W2": a.T @ d, "b2": d.sum(0)}
        return mutate(g, fault, ("W1", "b1", "W2"))

    return fun, grad, p


def hinge(rng, dtype, n=8, d=10):
    """A linear SVM's hinge loss with an L2 term; two samples' margins at 1 in float32."""
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.choice([-1.0, 1.0], size=n).astype(dtype)
    w = rng.normal(size=d).astype(dtype)
    for k in (0, 3):
        X[k] = X[k] / (y[k] * (X[k] @ w))
    p = {"w": w, "b": np.zeros(1, dtype)}

    def margins(q):
        Xq, yq = X.astype(q["w"].dtype), y.astype(q["w"].dtype)
        return Xq, yq, yq * (Xq @ q["w"] + q["b"][0])

    def fun(q):
        _, _, m = margins(q)
        return np.mean(np.maximum(0, 1 - m)) + 0.01 * np.sum(q["w"] ** 2)

    def grad(q, fault=None):
        Xq, yq, m = margins(q)
        active = (m <= 1 if fault == "mask >= 0" else m < 1).astype(m.dtype)
        g = {"w": -(active * yq) @ Xq / len(m) + 0.02 * q["w"],
             "b": np.array([-(active * yq).sum() / len(m)], dtype=m.dtype)}  # fmt: skip
        return mutate(g, fault, ("w", "b", "w"))

    return fun, grad, p


def maxpool(rng, dtype, n=16):
    """tanh of products pooled in pairs by max, each pair tied in float32."""
    u, v = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    p = {"u": u, "v": v, "c": rng.normal(size=n // 2).astype(dtype)}
    p["v"][1::2] = (u[0::2] * v[0::2]) / u[1::2]

    def fun(q):
        t = q["u"] * q["v"]
        return np.sum(np.tanh(np.maximum(t[0::2], t[1::2])) * q["c"])

    def grad(q, fault=None):
        t = q["u"] * q["v"]
        first = t[0::2] > t[1::2] if fault == "mask >= 0" else t[0::2] >= t[1::2]
        pooled = np.where(first, t[0::2], t[1::2])
        dt = np.zeros_like(t)
        dt[0::2] = (1 - np.tanh(pooled) ** 2) * q["c"] * first
        dt[1::2] = (1 - np.tanh(pooled) ** 2) * q["c"] * ~first
        g = {"u": dt * q["v"], "v": dt * q["u"], "c": np.tanh(pooled)}
        return mutate(g, fault, ("u", "c", "v"))

    return fun, grad, p


def l1(rng, dtype, n=12):
    """Least squares in w = a * 3 / 3 - b with an L1 term, b = a * 3 / 3 in float32: w at 0."""
    a = rng.normal(size=n).astype(dtype)
    p = {"a": a, "b": (a * dtype(3.0)) / dtype(3.0)}
    t = rng.normal(size=n)

    def fun(q):
        w = q["a"] * 3 / 3 - q["b"]
        return 0.5 * np.sum((w - t.astype(w.dtype)) ** 2) + 0.1 * np.sum(np.abs(w))

    def grad(q, fault=None):
        w = q["a"] * 3 / 3 - q["b"]
        sign = np.where(w >= 0, 1, -1).astype(w.dtype) if fault == "mask >= 0" else np.sign(w)
        gw = (w - t.astype(w.dtype)) + 0.1 * sign
        return mutate({"a": gw, "b": -gw}, fault, ("a", "b", "b"))

    return fun, grad, p


CASES = {
    "relu": relu_net,
    "leaky relu": lambda rng, dtype: relu_net(rng, dtype, "leaky"),
    "relu 30-40": lambda rng, dtype: relu_net(rng, dtype, n_in=30, h=40, batch=8),
    "hinge": hinge,
    "max pool": maxpool,
    "l1": l1,
    "relu 4-8-8-1": deep_relu_net,
    "relu 10-16-16-1": lambda rng, dtype: deep_relu_net(rng, dtype, (10, 16, 16)),
    "relu 20-32-16-1": lambda rng, dtype: deep_relu_net(rng, dtype, (20, 32, 16)),
    "relu 30-40-20-1": lambda rng, dtype: deep_relu_net(rng, dtype, (30, 40, 20)),
}
SEEDS = (0, 1, 2)


def main(argv=None) -> int:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--cast", action="store_true", help="grad casts to float32 inside")
    args = parser.parse_args(argv)
    tally = {"valid": [0, 0], "mutants": [0, 0], "mutants passed": [0, 0]}
    for name, make in CASES.items():
        for seed in SEEDS:
            row = []
            for fault in VALID + MUTANTS:
                fun, grad, p = make(np.random.default_rng(seed), np.float32)

                def claim(q, grad=grad, fault=fault):
                    if args.cast:
                        q = {k: np.asarray(v, dtype=np.float32) for k, v in q.items()}
                    return grad(q, fault)

                verdict = check_gradient(fun, claim, p, progress=False).verdict
                row.append(f"{fault or 'correct'}: {verdict}")
                kind = "valid" if fault in VALID else "mutants"
                tally[kind][0] += verdict == "wrong"
                tally[kind][1] += 1
                if kind == "mutants":
                    tally["mutants passed"][0] += verdict in ("correct", "not differentiable here")
                    tally["mutants passed"][1] += 1
            print(f"{name:16s} seed {seed}: " + " | ".join(row), flush=True)
    print(f"valid claims wrong: {tally['valid'][0]} of {tally['valid'][1]}; mutants wrong: "
          f"{tally['mutants'][0]} of {tally['mutants'][1]}, passed: "
          f"{tally['mutants passed'][0]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
