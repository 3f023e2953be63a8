"""Catalogue cases after ones a reviewer wrote apart from the project, each once judged wrongly.

- Parameters entering as sin(1e6 x) at x of order 1 (not 1e-6): the loss's rounding is far above
  its float64 ulps, and nudging the claim at that scale crossed its own oscillations.
- A max with a tie and 1 claimed for every tied element: each element lies between its own
  one-sided derivatives, together they are no subgradient.
- A ReLU pre-activation 2^-30 from 0, with the right mask and with a "safe" z > 1e-6 mask.
- A gradient cached by id(params), stale once an optimiser updates the params in place.
- A float32 ReLU net that casts to float32 inside, its kinks a few thousandths away.
"""

from __future__ import annotations

import numpy as np

SINE_POINTS = (0.3, 0.71, 0.1234567, 0.9)


def _problem():
    from .catalogue import Problem

    return Problem


def sine_at_one_problem(error: float = 0.0):
    """sum(sin(1e6 x)) + |x|^2 / 2 at x of order 1; ``error`` scales element 1's claim."""
    x0 = np.array(SINE_POINTS)
    off = np.ones(x0.size)
    off[1] += error

    def grad(x):
        return (1e6 * np.cos(1e6 * x) + x) * off

    def fun(x):
        return np.sum(np.sin(1e6 * x)) + 0.5 * x @ x

    info = {"step": 1e-10}
    if error:
        info["mutated"] = (None, (1,))
    return _problem()(fun, grad, x0, info=info)


def tied_max_problem(route: str = "first tied"):
    """max(x) + |x|^2 / 2 with x[1] and x[3] tied exactly."""
    x0 = np.array([0.5, 1.25, -0.3, 1.25])

    def grad(x):
        if route == "first tied":
            chosen = np.arange(x.size) == np.argmax(x)
        else:  # "every tied": a mask x == max(x), as written for max-pooling
            chosen = x == x.max()
        return chosen.astype(float) + x

    # along the tied direction the function rises at 1 + x.d on both sides: the claim there
    # must be that, and 1 for every tied element makes it 2 + x.d
    info = {"preactivations": lambda x: np.array([x[3] - x[1]]), "step": 1e-6,
            "direction": np.array([0.0, 1.0, 0.0, 1.0])}  # fmt: skip
    return _problem()(lambda x: np.max(x) + 0.5 * x @ x, grad, x0, info=info)


def relu_near_kink_problem(threshold: float = 0.0):
    """relu 3-4-2 MSE, batch 6: sample 0's unit 1 pre-activation is 2^-30 (dyadic, exact)."""
    rng = np.random.default_rng(140)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    X[0] = [1.0, 0.5, 0.25]
    rng = np.random.default_rng(141)
    params = {"W1": rng.normal(size=(3, 4)) / np.sqrt(3), "b1": rng.normal(size=4) * 0.1,
              "W2": rng.normal(size=(4, 2)) / 2, "b2": rng.normal(size=2) * 0.1}  # fmt: skip
    params["W1"][:, 1] = [0.5, -1.0, 4 * 2.0**-30]
    params["b1"][1] = 0.0

    def fun(q):
        return 0.5 * np.sum((np.maximum(X @ q["W1"] + q["b1"], 0) @ q["W2"] + q["b2"] - Y) ** 2) / 6

    def grad(q):
        z = X @ q["W1"] + q["b1"]
        h = np.maximum(z, 0)
        out = (h @ q["W2"] + q["b2"] - Y) / 6
        dz = (out @ q["W2"].T) * (z > threshold)
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ out, "b2": out.sum(0)}

    info = {"preactivations": lambda q: X @ q["W1"] + q["b1"], "step": 2.0**-36}
    return _problem()(fun, grad, params, info=info)


def cached_by_id_problem(stale: bool = True):
    """0.5 x'Ax whose gradient is cached by id(params); the params then take a step in place.

    stale=False: the cache is cleared after the step (the control)."""
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
    cache = {}

    def grad(x):
        if id(x) not in cache:
            cache[id(x)] = A @ x
        return cache[id(x)]

    x = np.array([1.0, -1.0, 0.5])
    grad(x)
    x -= 0.1 * (A @ x)  # an optimiser's step, in place: same id, new values
    if not stale:
        cache.clear()
    return _problem()(lambda x: 0.5 * x @ A @ x, grad, x)


def forced_relu_problem():
    """relu 30-30-2 MSE, batch 32, code that casts to float32 inside; kinks ~1e-3 away."""
    rng = np.random.default_rng(301)
    X = rng.normal(size=(32, 30)).astype(np.float32)
    Y = rng.normal(size=(32, 2)).astype(np.float32)
    params = {"W1": (rng.normal(size=(30, 30)) / np.sqrt(30)).astype(np.float32),
              "b1": (rng.normal(size=30) * 0.1).astype(np.float32),
              "W2": (rng.normal(size=(30, 2)) / np.sqrt(30)).astype(np.float32),
              "b2": (rng.normal(size=2) * 0.1).astype(np.float32)}  # fmt: skip

    def loss(q, dtype):
        W1, b1, W2, b2 = (np.asarray(q[k]).astype(dtype) for k in ("W1", "b1", "W2", "b2"))
        Xd, Yd = X.astype(dtype), Y.astype(dtype)
        return 0.5 * np.sum((np.maximum(Xd @ W1 + b1, 0) @ W2 + b2 - Yd) ** 2) / 32

    def grad(q):
        W1, b1, W2, b2 = (np.asarray(q[k]).astype(np.float32) for k in ("W1", "b1", "W2", "b2"))
        z = X @ W1 + b1
        h = np.maximum(z, 0)
        out = (h @ W2 + b2 - Y) / 32
        dz = (out @ W2.T) * (z > 0)
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ out, "b2": out.sum(0)}

    info = {"fun64": lambda q: loss(q, np.float64)}
    return _problem()(lambda q: loss(q, np.float32), grad, params, info=info)


def cases():
    from .catalogue import Case

    sine = "sum(sin(1e6 x)) + |x|^2/2, x ~ 1"
    tie = "max(x) + |x|^2/2, two elements tied"
    near = "relu 3-4-2 MSE, a pre-activation 2^-30 from 0"
    cached = "0.5 x'Ax, gradient cached by id(params), then a step in place"
    forced = "float32 forced-float32 relu 30-30-2 mse, batch 32 (992 params)"
    return [
        Case(f"{sine}: correct", "badly scaled", "float64", "correct", sine_at_one_problem),
        Case(f"{sine}: one element x(1+1e-3)", "badly scaled", "float64", "wrong",
             lambda: sine_at_one_problem(1e-3), "", f"{sine}: correct"),
        Case(f"{tie}: ties to the first", "kinks", "float64", "not differentiable here",
             tied_max_problem, "a valid subgradient"),
        Case(f"{tie}: 1 for every tied element", "kinks", "float64", "wrong",
             lambda: tied_max_problem("every tied"),
             "each element within its one-sided derivatives, not jointly",
             f"{tie}: ties to the first"),
        Case(f"{near}: correct", "kinks", "float64", "correct", relu_near_kink_problem,
             "differentiable, 9.3e-10 from a kink"),
        Case(f"{near}: mask z > 1e-6", "kinks", "float64", "wrong",
             lambda: relu_near_kink_problem(1e-6), "relu' taken as 0 at z = 2^-30",
             f"{near}: correct"),
        Case(f"{cached}: cache cleared", "stateful", "float64", "correct",
             lambda: cached_by_id_problem(stale=False)),
        # written as "wrong"; the stale values come from hidden state, which a copy of params
        # with the same values shows in any dtype (a float32 stale cache was called correct)
        Case(f"{cached}: stale", "stateful", "float64", "not deterministic",
             cached_by_id_problem, "the gradient before the step, returned again"),
        Case(f"{forced}: correct", "float32 end to end", "float32", "correct",
             forced_relu_problem, "forces float32 inside, correct"),
    ]  # fmt: skip
