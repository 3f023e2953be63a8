"""A catalogue of gradient cases written the way users write NumPy backprop, to measure checkers.

Each :class:`Case` builds a fresh :class:`Problem` (``fun``, ``grad``, ``params``, the keyword
``options`` a checker must be given) and names the verdict a trustworthy checker must reach:
correct controls, wrong backward passes (mutants), exact kinks, hidden state, noise, badly scaled
parameters, float32 end to end and large nets. The functions are written apart from the
project's kernels (dicts ``W1, b1, W2, b2``, the chain rule spelt out, ``np.zeros_like``
buffers), and nothing here imports the checker, so the catalogue can judge it.

Randomness comes from fixed seeds, except in the cases that are non-deterministic on purpose
(group "noisy"). Stochastic functions take a keyword ``rng`` (a NumPy Generator); the convention
is that ``options={"rng_seed": S}`` asks the checker to call ``fun(params, rng=np.random.
default_rng(S))`` and ``grad`` likewise, with a fresh generator on every call
(:func:`frozen_callables` applies it for code that does not know the convention).

``Problem.info`` carries facts for the catalogue's own tests, never for a checker: ``fun64``,
the same loss in float64 where ``fun`` forces float32; ``step``, a finite-difference step fitted
to badly scaled parameters; ``preactivations``, the values whose sign decides a kink; and
``mutated``, the element an element mutant changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

VERDICTS = ("correct", "wrong", "not differentiable here", "not deterministic", "cannot tell")
GROUPS = (
    "float64 basics",
    "float32 end to end",
    "large nets",
    "badly scaled",
    "kinks",
    "stateful",
    "noisy",
    "stochastic (frozen seed)",
    "batch norm and dropout",
)
PASSING = ("correct", "not differentiable here")  # verdicts a valid claim may get
# An element mutant changes one element chosen at random among those at least this share of
# the largest |gradient| (so it is neither always the largest nor a negligible one).
NON_NEGLIGIBLE = 0.1
SMALL_ERROR = 1e-3  # the relative error of the "x(1+1e-3)" mutants


@dataclass
class Problem:
    fun: Callable  # params -> scalar loss (the params' dtype for float32 cases)
    grad: Callable  # params -> gradient, same structure, shape and dtype as params
    params: object  # ndarray or dict of ndarrays
    options: dict = field(default_factory=dict)  # keyword options for check_gradient
    info: dict = field(default_factory=dict)  # for the catalogue's own tests (module docstring)


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    dtype: str  # "float64" or "float32": of params, forward and backward
    expect: str  # the verdict a trustworthy checker must give
    make: Callable[[], Problem]  # a fresh problem (fresh state) on every call
    description: str = ""
    control: str = ""  # for a mutant of a correct case: that case's name

    def __post_init__(self):
        if self.group not in GROUPS or self.expect not in VERDICTS:
            raise ValueError(f"case {self.name!r}: unknown group or verdict")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"case {self.name!r}: dtype must be float64 or float32")


def frozen_callables(problem: Problem) -> tuple[Callable, Callable]:
    """``fun`` and ``grad`` of one argument, with the ``rng_seed`` convention applied."""
    seed = problem.options.get("rng_seed")
    if seed is None:
        return problem.fun, problem.grad
    return (
        lambda p: problem.fun(p, rng=np.random.default_rng(seed)),
        lambda p: problem.grad(p, rng=np.random.default_rng(seed)),
    )


def flatten(value) -> np.ndarray:
    """An array or a dict of arrays as one float64 vector (dict in insertion order)."""
    parts = value.values() if isinstance(value, dict) else [value]
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in parts])


# ------------------------------------------------------------------------ user-style MLPs


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


ACTIVATIONS = {  # forward, derivative from (z, a)
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "sigmoid": (_sigmoid, lambda z, a: a * (1 - a)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


def _loss(kind, z, Y):
    if kind == "bce":
        return np.mean(np.logaddexp(0, z) - Y * z)
    if kind == "mse":
        return np.mean((z - Y) ** 2)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return np.mean(lse - (Y * z).sum(axis=1))


def _output_error(kind, z, Y):
    """dLoss/dz times the number of samples."""
    if kind == "bce":
        return _sigmoid(z) - Y
    if kind == "mse":
        return 2 * (z - Y) / Y.shape[1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True) - Y


@dataclass(frozen=True)
class Net:
    """A user's MLP: widths, hidden activation, loss on the output logits, batch and seed."""

    sizes: tuple
    act: str
    loss: str
    n_samples: int
    seed: int = 0

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    def label(self):
        shape = "-".join(str(s) for s in self.sizes)
        n = sum(a * b + b for a, b in zip(self.sizes, self.sizes[1:], strict=False))
        return f"{self.act} {shape} {self.loss}, batch {self.n_samples} ({n:,} params)"

    def data(self, dtype):
        rng = np.random.default_rng(self.seed)
        params = {}
        pairs = zip(self.sizes, self.sizes[1:], strict=False)
        for k, (fan_in, fan_out) in enumerate(pairs, 1):
            gain = 2.0 if self.act == "relu" else 1.0
            params[f"W{k}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
            params[f"b{k}"] = 0.1 * rng.standard_normal(fan_out)
        X = rng.standard_normal((self.n_samples, self.sizes[0]))
        n_out = self.sizes[-1]
        if self.loss == "bce":
            Y = (rng.random((self.n_samples, n_out)) < 0.5).astype(float)
        elif self.loss == "mse":
            Y = rng.standard_normal((self.n_samples, n_out))
        else:
            Y = np.eye(n_out)[rng.integers(0, n_out, self.n_samples)]
        cast = {k: v.astype(dtype) for k, v in params.items()}
        return cast, X.astype(dtype), Y.astype(dtype)


def _forward(p, X, act):
    f = ACTIVATIONS[act][0]
    n_layers = len(p) // 2
    a, z = [X], [None]
    for k in range(1, n_layers + 1):
        z.append(a[-1] @ p[f"W{k}"] + p[f"b{k}"])
        a.append(f(z[-1]) if k < n_layers else z[-1])
    return a, z


def _backward(p, X, Y, net: Net, a, z, fault, forced):
    """The chain rule, layer by layer, into zeroed buffers; ``fault`` switches one line."""
    deriv = ACTIVATIONS[net.act][1]
    n_layers = net.n_layers
    if forced:
        g = {k: np.zeros(v.shape, np.float32) for k, v in p.items()}
    else:
        g = {k: np.zeros_like(v) for k, v in p.items()}
    err = _output_error(net.loss, z[-1], Y)
    if fault == "sign flip":
        err = -err  # the error taken as y - p
    dz = err if fault == "missing 1/N" else err / X.shape[0]
    for k in range(n_layers, 0, -1):
        below = a[k - 2] if fault == "wrong layer index" and k == n_layers else a[k - 1]
        g[f"W{k}"][...] = below.T @ dz
        if not (fault == "bias gradient dropped" and k == 1):
            g[f"b{k}"][...] = dz.sum(axis=0)
        if k > 1:
            W = p[f"W{k}"]
            square = W.shape[0] == W.shape[1]
            da = dz @ (W if fault == "transposed weight" and square else W.T)
            if fault == "missing activation derivative" and k == n_layers:
                dz = da
            else:
                dz = da * deriv(z[k - 1], a[k - 1])
    return g


def mlp_problem(net: Net, dtype: str, forced: bool = False, fault: str | None = None) -> Problem:
    """A user's MLP loss and backward pass.

    forced=False: dtype-generic code (data cast to the params' dtype, float64 in, float64 out);
    forced=True: code that computes in float32 whatever it is given (``p.astype(np.float32)``,
    float32 buffers).
    """
    params, X, Y = net.data(np.dtype(dtype))
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)  # exact: the same data in float64

    def generic_fun(p):
        Xp, Yp = X64.astype(p["W1"].dtype), Y64.astype(p["W1"].dtype)
        a, z = _forward(p, Xp, net.act)
        return _loss(net.loss, z[-1], Yp)

    def fun(p):
        if not forced:
            return generic_fun(p)
        p = {k: np.asarray(v).astype(np.float32) for k, v in p.items()}
        a, z = _forward(p, X.astype(np.float32), net.act)
        return _loss(net.loss, z[-1], Y.astype(np.float32))

    def grad(p):
        if forced:
            p = {k: np.asarray(v).astype(np.float32) for k, v in p.items()}
        dt = p["W1"].dtype
        Xp, Yp = X64.astype(dt), Y64.astype(dt)
        a, z = _forward(p, Xp, net.act)
        return _backward(p, Xp, Yp, net, a, z, fault, forced)

    def preactivations(p):
        a, z = _forward(p, X64, net.act)
        return np.concatenate([zl.ravel() for zl in z[1:-1]]) if net.n_layers > 1 else np.zeros(1)

    return Problem(fun, grad, params, info={"fun64": generic_fun, "preactivations": preactivations})


# ------------------------------------------------------------------------ element mutants

ELEMENT_FAULTS = {
    "one element zeroed": lambda v: 0 * v,
    "one element x(1+1e-3)": lambda v: v * (1 + SMALL_ERROR),
    "one element sign-flipped": lambda v: -v,
    "one element x2": lambda v: 2 * v,
}


def pick_element(g, seed: int, share: float = NON_NEGLIGIBLE, key=None):
    """A random element (key, index) with |g| >= share * max |g|, within ``key`` if given."""
    groups = g if isinstance(g, dict) else {None: g}
    if key is not None:
        groups = {key: groups[key]}
    top = max(float(np.max(np.abs(v))) for v in groups.values())
    found = [(k, i) for k, v in groups.items() for i in np.argwhere(np.abs(v) >= share * top)]
    k, i = found[np.random.default_rng(seed).integers(len(found))]
    return k, tuple(int(j) for j in i)


def element_mutant(make: Callable[[], Problem], fault: str, seed: int = 1, key=None, share=None):
    """Wraps a correct problem's grad so that one chosen element is wrong by ``fault``."""
    change = ELEMENT_FAULTS[fault]

    def build():
        problem = make()
        g0 = problem.grad(problem.params, **_frozen_kwargs(problem))
        where = pick_element(g0, seed, NON_NEGLIGIBLE if share is None else share, key)
        correct = problem.grad

        def grad(p, **kw):
            g = correct(p, **kw)
            arr = g[where[0]] if isinstance(g, dict) else g
            arr[where[1]] = change(arr[where[1]])
            return g

        problem.grad = grad
        problem.info["mutated"] = where
        return problem

    return build


def _frozen_kwargs(problem):
    seed = problem.options.get("rng_seed")
    return {} if seed is None else {"rng": np.random.default_rng(seed)}


# ------------------------------------------------------------------ small functions by hand


def sum_squares_problem(forced: bool, scale: float, zero_grad: bool = False) -> Problem:
    """sum(x**2) + 1 in 10 dimensions, in float32 (generic or forced); the mutant claims 0."""
    x0 = (scale * np.random.default_rng(3).standard_normal(10)).astype(np.float32)

    def fun(x):
        if forced:
            x = np.asarray(x).astype(np.float32)
            return np.sum(x * x) + np.float32(1)
        return np.sum(x**2) + 1

    def grad(x):
        if forced:
            x = np.asarray(x).astype(np.float32)
        return np.zeros_like(x) if zero_grad else 2 * x

    return Problem(fun, grad, x0, info={"fun64": lambda x: np.sum(np.float64(x) ** 2) + 1})


def sine_problem(chain_factor: bool = True) -> Problem:
    """sum(sin(1e6 * x)) at x of order 1e-6: the scale enters inside the function."""
    x0 = np.random.default_rng(4).uniform(-3, 3, 8) * 1e-6

    def grad(x):
        return (1e6 if chain_factor else 1.0) * np.cos(1e6 * x)

    return Problem(lambda x: np.sum(np.sin(1e6 * x)), grad, x0, info={"step": 1e-10})


def decay_fit_problem() -> Problem:
    """Least squares fit of amplitude * exp(-rate * t), amplitude ~1e6 and rate ~1e-6."""
    t = np.linspace(0.0, 2e6, 50)
    noise = np.random.default_rng(5).standard_normal(50)
    target = 1.8e6 * np.exp(-2.5e-6 * t) + 1e4 * noise
    params = {"amplitude": np.array([2.0e6]), "rate": np.array([3.0e-6])}

    def fun(p):
        r = p["amplitude"] * np.exp(-p["rate"] * t) - target
        return np.mean(r**2) / 1e12

    def grad(p):
        e = np.exp(-p["rate"] * t)
        r = p["amplitude"] * e - target
        return {
            "amplitude": np.array([np.mean(2 * r * e) / 1e12]),
            "rate": np.array([np.mean(2 * r * p["amplitude"] * -t * e) / 1e12]),
        }

    step = {"amplitude": np.array([10.0]), "rate": np.array([1e-11])}
    return Problem(fun, grad, params, info={"step": step})


def spread_problem() -> Problem:
    """sum(c * log(1 + x**2)) with weights c over 8 decades: small derivatives of their own."""
    c = np.logspace(0, -8, 9)
    x0 = np.random.default_rng(6).uniform(0.5, 1.5, 9)
    return Problem(lambda x: np.sum(c * np.log1p(x**2)), lambda x: c * 2 * x / (1 + x**2), x0)


def poisson_problem(exposure: bool = True) -> Problem:
    """Poisson negative log-likelihood of rates around 1e-6 over exposures around 1e6."""
    rng = np.random.default_rng(7)
    T = rng.uniform(0.5e6, 2e6, 6)
    counts = rng.poisson(2.0, 6).astype(float) + 1
    rates = rng.uniform(0.5e-6, 3e-6, 6)

    def fun(x):
        return np.sum(x * T - counts * np.log(x))

    def grad(x):
        return (T if exposure else 0) - counts / x

    return Problem(fun, grad, rates, info={"step": 1e-12})


def big_feature_problem() -> Problem:
    """tanh 3-16-1 BCE, batch 32, input feature 0 of size 1e6 and its weights of size 1e-6."""
    net = Net((3, 16, 1), "tanh", "bce", 32, seed=8)
    params, X, Y = net.data(np.float64)
    X[:, 0] *= 1e6
    params["W1"][0] *= 1e-6

    def fun(p):
        a, z = _forward(p, X, "tanh")
        return _loss("bce", z[-1], Y)

    def grad(p):
        a, z = _forward(p, X, "tanh")
        return _backward(p, X, Y, net, a, z, None, False)

    step = {k: np.full(v.shape, 1e-6) for k, v in params.items()}
    step["W1"][0] = 1e-12
    return Problem(fun, grad, params, info={"step": step})


# -------------------------------------------------------------------------------- kinks

RELU_MASKS = {  # relu'(z) as users write it
    "relu'(0) = 0": lambda z: (z > 0).astype(z.dtype),
    "relu'(0) = 1": lambda z: (z >= 0).astype(z.dtype),
    "relu'(0) = 2": lambda z: (z >= 0).astype(z.dtype) + (z > 0),  # two masks summed
    "mask z > 1e-6": lambda z: (z > 1e-6).astype(z.dtype),  # a tolerance in the mask
}


def relu_kink_problem(offset=0.0, mask="relu'(0) = 0", dtype="float64", fault=None) -> Problem:
    """relu 2-8-1 MSE, batch 16; sample 0's first pre-activation is 0.5*1 - 0.25*2 + offset.

    With offset 0 it is exactly 0.0 (dyadic numbers, no rounding), a kink along W1[0, 0],
    W1[1, 0] and b1[0]; otherwise a differentiable point at distance |offset| from it.
    """
    params, X, Y = Net((2, 8, 1), "relu", "mse", 16, seed=9).data(np.float64)
    X[0] = [1.0, 2.0]
    params["W1"][:, 0] = [0.5, -0.25]
    params["b1"][0] = offset
    params = {k: v.astype(dtype) for k, v in params.items()}
    X64, Y64 = X, Y

    def forward(p):
        X, Y = X64.astype(p["W1"].dtype), Y64.astype(p["W1"].dtype)
        z1 = X @ p["W1"] + p["b1"]
        a1 = np.maximum(z1, 0)
        z2 = a1 @ p["W2"] + p["b2"]
        return X, Y, z1, a1, z2

    def fun(p):
        X, Y, z1, a1, z2 = forward(p)
        return np.mean((z2 - Y) ** 2)

    def grad(p):
        X, Y, z1, a1, z2 = forward(p)
        dz2 = 2 * (z2 - Y) if fault == "missing 1/N" else 2 * (z2 - Y) / len(X)
        dz1 = (dz2 @ p["W2"].T) * RELU_MASKS[mask](z1)
        return {"W1": X.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

    info = {"preactivations": lambda p: forward(p)[2], "step": abs(offset) / 16 or 1e-6}
    return Problem(fun, grad, params, info=info)


def wide_relu_kink_problem(mask="relu'(0) = 0", fault=None, positive=False) -> Problem:
    """relu 20-64-1 MSE, batch 8 (1,409 params: over the full Jacobian's limit, so probes):
    sample 0 is all zeros and the biases start at 0, so all 64 hidden units of sample 0 sit at
    exactly 0, each a kink along its own bias only; the output weights have both signs (with
    ``positive``, their absolute values: every kink's slope then turns the same way).

    fault "a bias zeroed": the gradient of the first bias whose one-sided derivatives both lie
    on one side of 0 (by a tenth of their size) is set to 0, an error a direction over every
    kink hides between the sum of their one-sided slopes.
    """
    params, X, Y = Net((20, 64, 1), "relu", "mse", 8, seed=21).data(np.float64)
    X[0] = 0.0
    params["b1"][:] = 0.0
    if positive:
        params["W2"] = np.abs(params["W2"])

    def forward(p):
        z1 = X @ p["W1"] + p["b1"]
        a1 = np.maximum(z1, 0)
        return z1, a1, a1 @ p["W2"] + p["b2"]

    def fun(p):
        return np.mean((forward(p)[2] - Y) ** 2)

    def correct(p):
        z1, a1, z2 = forward(p)
        dz2 = 2 * (z2 - Y) / len(X)
        dz1 = (dz2 @ p["W2"].T) * RELU_MASKS[mask](z1)
        return {"W1": X.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

    info = {"preactivations": lambda p: forward(p)[0],
            "kink_coordinates": 20 * 64 + np.arange(64)}  # b1, flattened  # fmt: skip
    if fault != "a bias zeroed":
        return Problem(fun, correct, params, info=info)
    # the one-sided derivatives along b1[k]: the other samples' part, and sample 0's unit k on
    z1, a1, z2 = forward(params)
    dz2 = 2 * (z2 - Y) / len(X)
    rest = ((dz2 @ params["W2"].T) * (z1 > 0))[1:].sum(0)
    on = rest + dz2[0, 0] * params["W2"][:, 0]
    margin = 0.1 * np.abs(rest)
    k = int(np.flatnonzero((np.minimum(rest, on) > margin) | (np.maximum(rest, on) < -margin))[0])

    def grad(p):
        g = correct(p)
        g["b1"] = g["b1"].copy()
        g["b1"][k] = 0.0
        return g

    return Problem(fun, grad, params, info={**info, "mutated": ("b1", (k,))})


def hinge_problem(offset=0.0, active="margin < 1") -> Problem:
    """A linear SVM (hinge loss + L2), sample 0 at margin exactly 1 (dyadic) plus offset."""
    rng = np.random.default_rng(10)
    X = rng.standard_normal((20, 3))
    y = np.where(rng.random(20) < 0.5, -1.0, 1.0)
    X[0], y[0] = [1.0, 2.0, 1.0], 1.0
    params = {"w": np.array([0.5, -0.25, 0.75]), "b": np.array([0.25 + offset])}
    lam = 0.01

    def margins(p):
        return y * (X @ p["w"] + p["b"][0])

    def fun(p):
        return np.mean(np.maximum(0, 1 - margins(p))) + 0.5 * lam * np.sum(p["w"] ** 2)

    def grad(p):
        m = margins(p)
        on = (m < 1) if active == "margin < 1" else (m <= 1)
        return {
            "w": -np.mean((on * y)[:, None] * X, axis=0) + lam * p["w"],
            "b": np.array([-np.mean(on * y)]),
        }

    info = {"preactivations": lambda p: 1 - margins(p), "step": abs(offset) / 16 or 1e-6}
    return Problem(fun, grad, params, info=info)


def maxpool_problem(gap=0.0, route="first on ties") -> Problem:
    """Max-pooling of 8 values in pairs, weighted; pair 1 tied exactly (or apart by gap)."""
    rng = np.random.default_rng(11)
    x0 = rng.uniform(-1, 1, 8)
    x0[2], x0[3] = 0.75, 0.75 + gap
    w = rng.uniform(0.5, 1.5, 4)

    def fun(x):
        return np.sum(w * np.maximum(x[0::2], x[1::2]))

    def grad(x):
        if route == "first on ties":
            second = x[1::2] > x[0::2]
        else:  # "to the smaller": the comparison the wrong way round
            second = x[1::2] < x[0::2]
        g = np.zeros_like(x)
        g[0::2] = w * ~second
        g[1::2] = w * second
        return g

    info = {"preactivations": lambda x: x[1::2] - x[0::2], "step": gap / 16 or 1e-6}
    return Problem(fun, grad, x0, info=info)


def lasso_problem(w2=0.0, sign="np.sign") -> Problem:
    """Least squares + 0.1 * L1 on 5 weights, weight 2 at exactly 0 (or at w2)."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((20, 5))
    y = rng.standard_normal(20)
    w0 = rng.standard_normal(5)
    w0[2] = w2
    lam = 0.1

    def fun(w):
        return np.mean((X @ w - y) ** 2) + lam * np.sum(np.abs(w))

    def grad(w):
        with np.errstate(invalid="ignore"):  # the user's w / |w| is NaN at 0, silently
            s = np.sign(w) if sign == "np.sign" else w / np.abs(w)
        return 2 * X.T @ (X @ w - y) / len(y) + lam * s

    return Problem(fun, grad, w0, info={"preactivations": lambda w: w, "step": w2 / 16 or 1e-6})


# ------------------------------------------------------------------- hidden state and noise

STATE_NET = Net((2, 16, 1), "tanh", "bce", 32, seed=13)


def stateful_problem(kind: str, dtype: str = "float64") -> Problem:
    """A correct MLP loss and gradient around which users keep state, rightly or not."""
    base = mlp_problem(STATE_NET, dtype, forced=dtype == "float32")
    fun, correct = base.fun, base.grad
    if kind == "buffer never reset":
        buffers = {k: np.zeros_like(v) for k, v in base.params.items()}

        def grad(p):
            for k, v in correct(p).items():
                buffers[k] += v  # accumulated like .grad, never zeroed
            return {k: v.copy() for k, v in buffers.items()}

    elif kind == "returns its own buffer":
        buffers = {k: np.zeros_like(v) for k, v in base.params.items()}

        def grad(p):
            for k, v in correct(p).items():
                buffers[k] += v
            return buffers  # the caller's earlier results change too

    elif kind == "loss drifts with a call counter":
        calls = [0]

        def fun(p):
            lam = 1e-4 * (1 + 1e-3 * calls[0])  # an L2 weight annealed per call
            calls[0] += 1
            return base.fun(p) + lam * np.sum(p["W1"] ** 2)

        def grad(p):  # the L2 weight of the first call
            g = correct(p)
            g["W1"] = g["W1"] + 2e-4 * p["W1"]
            return g

    elif kind == "memoised by the params' bytes":
        memo = {}

        def grad(p):
            key = b"".join(np.ascontiguousarray(p[k]).tobytes() for k in sorted(p))
            if key not in memo:
                memo[key] = correct(p)
            return {k: v.copy() for k, v in memo[key].items()}

    else:  # "input statistics cached on first call"
        params, X, Y = STATE_NET.data(np.float64)
        stats = {}

        def standardised():
            if not stats:
                stats["mean"], stats["std"] = X.mean(0), X.std(0)
            return (X - stats["mean"]) / stats["std"]

        net = STATE_NET

        def fun(p):
            a, z = _forward(p, standardised(), net.act)
            return _loss(net.loss, z[-1], Y)

        def grad(p):
            Xs = standardised()
            a, z = _forward(p, Xs, net.act)
            return _backward(p, Xs, Y, net, a, z, None, False)

    info = {"fun64": base.info["fun64"]} if kind != "input statistics cached on first call" else {}
    return Problem(fun, grad, base.params, info=info)


def noisy_problem(kind: str) -> Problem:
    """A correct MLP loss and gradient with tiny run-to-run noise (deliberately unseeded)."""
    base = mlp_problem(STATE_NET, "float64")
    fun, grad = base.fun, base.grad
    if kind == "loss x(1 + 1e-14 N(0,1)), global np.random":

        def fun(p):
            return base.fun(p) * (1 + 1e-14 * np.random.standard_normal())  # noqa: NPY002

    elif kind == "loss x(1 + 1e-14 N(0,1)), fresh default_rng(0) per call":

        def fun(p):  # the same perturbation on every call: deterministic
            return base.fun(p) * (1 + 1e-14 * np.random.default_rng(0).standard_normal())

    elif kind == "loss x(1 + 1e-14 u), u from the clock":

        def fun(p):
            return base.fun(p) * (1 + 1e-14 * (time.perf_counter_ns() % 1009) / 1009)

    else:  # "gradient x(1 + 1e-12 N(0,1)), global np.random"

        def grad(p):
            noise = np.random.standard_normal  # noqa: NPY002
            return {k: v * (1 + 1e-12 * noise(v.shape)) for k, v in base.grad(p).items()}

    return Problem(fun, grad, base.params)


# ------------------------------------------------------------------- stochastic, frozen seed

P_DROP = 0.3
DROPOUT_NET = Net((4, 16, 16, 1), "tanh", "bce", 32, seed=14)


def dropout_problem(dtype: str = "float64", fault: str | None = None) -> Problem:
    """A tanh MLP with inverted dropout after each hidden layer, masks from ``rng``."""
    params, X, Y = DROPOUT_NET.data(np.dtype(dtype))
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)

    def forward(p, rng):
        X = X64.astype(p["W1"].dtype)
        h, masks = [X], []
        z1 = X @ p["W1"] + p["b1"]
        t1 = np.tanh(z1)
        masks.append(rng.random(t1.shape) >= P_DROP)
        h.append(t1 * masks[0] / (1 - P_DROP))
        z2 = h[1] @ p["W2"] + p["b2"]
        t2 = np.tanh(z2)
        masks.append(rng.random(t2.shape) >= P_DROP)
        h.append(t2 * masks[1] / (1 - P_DROP))
        z3 = h[2] @ p["W3"] + p["b3"]
        return h, (t1, t2), masks, z3

    def fun(p, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        z3 = forward(p, rng)[3]
        return np.mean(np.logaddexp(0, z3) - Y64.astype(z3.dtype) * z3)

    def through_dropout(da, mask):
        if fault == "mask not applied in backward":
            return da / (1 - P_DROP)
        if fault == "1/(1-p) not applied in backward":
            return da * mask
        return da * mask / (1 - P_DROP)

    def grad(p, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        h, t, masks, z3 = forward(p, rng)
        if fault == "masks drawn again in backward":
            masks = [rng.random(m.shape) >= P_DROP for m in masks]
        dz3 = (_sigmoid(z3) - Y64.astype(z3.dtype)) / len(z3)
        g = {"W3": h[2].T @ dz3, "b3": dz3.sum(0)}
        dz2 = through_dropout(dz3 @ p["W3"].T, masks[1]) * (1 - t[1] ** 2)
        g.update({"W2": h[1].T @ dz2, "b2": dz2.sum(0)})
        dz1 = through_dropout(dz2 @ p["W2"].T, masks[0]) * (1 - t[0] ** 2)
        g.update({"W1": h[0].T @ dz1, "b1": dz1.sum(0)})
        return {k: g[k] for k in p}

    return Problem(fun, grad, params, options={"rng_seed": 0})


# ------------------------------------------------------------------------------ the cases

FAULTS = {
    "sign flip": "output error taken as y - p: every gradient negated",
    "missing 1/N": "output error not divided by the batch size",
    "bias gradient dropped": "db1 left in its zeroed buffer",
    "transposed weight": "error sent back through W instead of W.T (square layer)",
    "missing activation derivative": "dz = da below the output layer",
    "wrong layer index": "dW of the output layer built from the activation two layers down",
}
ELEMENT_TEXT = {
    "one element zeroed": "one element of non-negligible size (>= 0.1 of the largest) set to 0",
    "one element x(1+1e-3)": "one element (>= 0.3 of the largest) 1e-3 too large",
    "one element sign-flipped": "one element of non-negligible size negated",
    "one element x2": "one element doubled",
}
# The x(1+1e-3) element is at least this share of the largest, so that its error is at least
# 3e-4 of the largest derivative: a 1e-3 error of that element, not of a negligible one.
SMALL_ERROR_SHARE = 0.3


def _mlp_cases(group, net, dtype, forced, faults=(), elements=(), seed=0):
    label = f"{dtype} " + ("forced-float32 " if forced else "") + net.label()

    def control():
        return mlp_problem(net, dtype, forced)

    control_name = f"{label}: correct"
    code = "forces float32 inside" if forced else "dtype-generic"
    cases = [Case(control_name, group, dtype, "correct", control, f"{code}, correct")]
    for fault in faults:
        cases.append(
            Case(
                f"{label}: {fault}",
                group,
                dtype,
                "wrong",
                lambda fault=fault: mlp_problem(net, dtype, forced, fault),
                f"{code}, {FAULTS[fault]}",
                control_name,
            )  # fmt: skip
        )
    for i, fault in enumerate(elements):
        share = SMALL_ERROR_SHARE if fault == "one element x(1+1e-3)" else None
        make = element_mutant(control, fault, seed=seed + i, share=share)
        cases.append(
            Case(
                f"{label}: {fault}",
                group,
                dtype,
                "wrong",
                make,
                f"{code}, {ELEMENT_TEXT[fault]}",
                control_name,
            )  # fmt: skip
        )
    return cases


def _basics():
    g = "float64 basics"
    zero, small, flip = ("one element zeroed", "one element x(1+1e-3)", "one element sign-flipped")
    return [
        *_mlp_cases(g, Net((2, 16, 1), "tanh", "bce", 64, seed=1), "float64", False,
                    ("sign flip", "missing 1/N", "bias gradient dropped"), (zero, small)),
        *_mlp_cases(g, Net((3, 16, 16, 1), "sigmoid", "mse", 32, seed=2), "float64", False,
                    ("transposed weight", "missing activation derivative", "wrong layer index"),
                    (zero, flip)),
        *_mlp_cases(g, Net((4, 32, 32, 3), "relu", "softmax", 64, seed=3), "float64", False,
                    ("missing activation derivative", "bias gradient dropped",
                     "transposed weight"), (small,)),
        *_mlp_cases(g, Net((8, 64, 64, 4), "tanh", "softmax", 64, seed=4), "float64", False,
                    ("wrong layer index",), (zero, small)),
        *_mlp_cases(g, Net((2, 8, 1), "relu", "mse", 16, seed=5), "float64", False,
                    ("sign flip", "missing activation derivative")),
    ]  # fmt: skip


def _float32():
    g = "float32 end to end"
    zero, small, flip = ("one element zeroed", "one element x(1+1e-3)", "one element sign-flipped")
    cases = [
        *_mlp_cases(g, Net((2, 16, 1), "tanh", "bce", 64, seed=1), "float32", False,
                    (), (flip, zero, small)),
        *_mlp_cases(g, Net((3, 16, 16, 1), "sigmoid", "mse", 32, seed=2), "float32", True,
                    ("missing 1/N", "missing activation derivative"), (flip, zero, small)),
        *_mlp_cases(g, Net((4, 32, 32, 3), "relu", "softmax", 64, seed=3), "float32", True,
                    ("bias gradient dropped",), (small, zero)),
    ]  # fmt: skip
    for forced in (True, False):
        for scale in (1.0, 0.01):
            code = "forces float32 inside" if forced else "dtype-generic"
            label = f"sum(x**2) + 1, 10 dims, |x| ~ {scale:g}, {code}"
            cases += [
                Case(f"{label}: correct", g, "float32", "correct",
                     lambda f=forced, s=scale: sum_squares_problem(f, s), "2 x"),
                Case(f"{label}: all-zero gradient", g, "float32", "wrong",
                     lambda f=forced, s=scale: sum_squares_problem(f, s, zero_grad=True),
                     "claims 0 everywhere", f"{label}: correct"),
            ]  # fmt: skip
    return cases


def _large():
    g = "large nets"
    elements = ("one element zeroed", "one element x(1+1e-3)", "one element sign-flipped")
    wide = Net((32, 128, 64, 1), "tanh", "bce", 32, seed=20)
    return [
        *_mlp_cases(g, wide, "float64", False, (), elements),
        *_mlp_cases(g, wide, "float32", False, (), elements),
        *_mlp_cases(g, Net((64, 256, 256, 1), "tanh", "bce", 16, seed=21), "float32", True,
                    (), elements),
        *_mlp_cases(g, Net((20, 96, 20, 1), "tanh", "bce", 1024, seed=22), "float64", False,
                    (), elements),
    ]  # fmt: skip


def _badly_scaled():
    g, f64 = "badly scaled", "float64"
    sine, decay = "sum(sin(1e6 x)), x ~ 1e-6", "exponential decay fit, amplitude 1e6, rate 1e-6"
    spread = "sum(c log(1 + x**2)), c from 1 to 1e-8"
    poisson = "Poisson NLL, rates ~1e-6, exposures ~1e6"
    big = "tanh 3-16-1 BCE, input feature of size 1e6"
    return [
        Case(f"{sine}: correct", g, f64, "correct", sine_problem),
        Case(f"{sine}: chain factor 1e6 dropped", g, f64, "wrong",
             lambda: sine_problem(chain_factor=False), "cos(1e6 x) alone", f"{sine}: correct"),
        Case(f"{sine}: one element x2", g, f64, "wrong",
             element_mutant(sine_problem, "one element x2"), "", f"{sine}: correct"),
        Case(f"{decay}: correct", g, f64, "correct", decay_fit_problem),
        Case(f"{decay}: amplitude gradient x2", g, f64, "wrong",
             element_mutant(decay_fit_problem, "one element x2", key="amplitude",
                            share=0.0),
             "the amplitude's derivative, ~1e-11 of the rate's, doubled", f"{decay}: correct"),
        Case(f"{spread}: correct", g, f64, "correct", spread_problem),
        Case(f"{spread}: x2 on the 1e-8 element", g, f64, "wrong", _spread_mutant,
             "the derivative of weight 1e-8 doubled", f"{spread}: correct"),
        Case(f"{poisson}: correct", g, f64, "correct", poisson_problem),
        Case(f"{poisson}: exposure term dropped", g, f64, "wrong",
             lambda: poisson_problem(exposure=False), "-counts / x alone", f"{poisson}: correct"),
        Case(f"{big}: correct", g, f64, "correct", big_feature_problem),
        Case(f"{big}: one element zeroed in the big feature's row", g, f64, "wrong",
             _big_row_mutant, "W1[0, j] set to 0", f"{big}: correct"),
        Case(f"{big}: one bias element x2", g, f64, "wrong",
             element_mutant(big_feature_problem, "one element x2", key="b1"),
             "db1[j] doubled, ~1e-6 of the largest derivative", f"{big}: correct"),
    ]  # fmt: skip


def _spread_mutant():
    problem = spread_problem()
    correct = problem.grad

    def grad(x):
        g = correct(x)
        g[-1] *= 2
        return g

    problem.grad, problem.info["mutated"] = grad, (None, (8,))
    return problem


def _big_row_mutant():
    problem = big_feature_problem()
    j = int(np.argmax(np.abs(problem.grad(problem.params)["W1"][0])))
    correct = problem.grad

    def grad(p):
        g = correct(p)
        g["W1"][0, j] = 0.0
        return g

    problem.grad, problem.info["mutated"] = grad, ("W1", (0, j))
    return problem


def _kinks():
    g, f64, ndh = "kinks", "float64", "not differentiable here"
    relu = "relu 2-8-1 MSE, a pre-activation exactly 0"
    wide = "relu 20-64-1 MSE, 64 pre-activations exactly 0 (1,409 params)"
    near = "relu 2-8-1 MSE, a pre-activation at"
    hinge, pool, lasso = (
        "linear SVM hinge loss, a margin exactly 1",
        "max-pool of pairs, a tie",
        "lasso, a weight exactly 0",
    )
    cases = [
        Case(f"{relu}: relu'(0) = 0", g, f64, ndh, relu_kink_problem, "a valid subgradient"),
        Case(f"{relu}: relu'(0) = 1", g, f64, ndh,
             lambda: relu_kink_problem(mask="relu'(0) = 1"), "a valid subgradient"),
        Case(f"{relu}: relu'(0) = 2", g, f64, "wrong",
             lambda: relu_kink_problem(mask="relu'(0) = 2"),
             "mask (z >= 0) + (z > 0): outside the one-sided derivatives", f"{relu}: relu'(0) = 0"),
        Case(f"{relu}: relu'(0) = 0 and missing 1/N", g, f64, "wrong",
             lambda: relu_kink_problem(fault="missing 1/N"), "wrong away from the kink too",
             f"{relu}: relu'(0) = 0"),
        Case(f"{relu}, float32: relu'(0) = 0", g, "float32", ndh,
             lambda: relu_kink_problem(dtype="float32"), "a valid subgradient, in float32"),
        Case(f"{wide}: relu'(0) = 0", g, f64, ndh, wide_relu_kink_problem,
             "a valid subgradient; kinks of both signs along every probe"),
        Case(f"{wide}: relu'(0) = 1", g, f64, ndh,
             lambda: wide_relu_kink_problem(mask="relu'(0) = 1"), "a valid subgradient"),
        Case(f"{wide}: relu'(0) = 2", g, f64, "wrong",
             lambda: wide_relu_kink_problem(mask="relu'(0) = 2"),
             "outside each bias's one-sided derivatives", f"{wide}: relu'(0) = 0"),
        Case(f"{wide}: a bias zeroed", g, f64, "wrong",
             lambda: wide_relu_kink_problem(fault="a bias zeroed"),
             "one bias at a kink set to 0, outside its one-sided derivatives",
             f"{wide}: relu'(0) = 0"),
        Case(f"{wide}, output weights > 0: relu'(0) = 0", g, f64, ndh,
             lambda: wide_relu_kink_problem(positive=True), "a valid subgradient"),
        Case(f"{wide}, output weights > 0: a bias zeroed", g, f64, "wrong",
             lambda: wide_relu_kink_problem(fault="a bias zeroed", positive=True),
             "one bias at a kink set to 0, outside its one-sided derivatives",
             f"{wide}, output weights > 0: relu'(0) = 0"),
    ]  # fmt: skip
    for offset in (1e-9, 1e-7, -1e-6):
        cases.append(
            Case(
                f"{near} {offset:g}: correct",
                g,
                f64,
                "correct",
                lambda o=offset: relu_kink_problem(offset=o),
                "differentiable, within a finite-difference step of a kink",
            )  # fmt: skip
        )
    cases += [
        Case(f"{near} 1e-07: mask z > 1e-6", g, f64, "wrong",
             lambda: relu_kink_problem(offset=1e-7, mask="mask z > 1e-6"),
             "relu' taken as 0 at z = 1e-7", f"{near} 1e-07: correct"),
        Case(f"{hinge}: margin < 1 active", g, f64, ndh, hinge_problem, "a valid subgradient"),
        Case(f"{hinge}: margin <= 1 active", g, f64, ndh,
             lambda: hinge_problem(active="margin <= 1"), "a valid subgradient"),
        Case("linear SVM hinge loss, a margin at 1 + 1e-8: correct", g, f64, "correct",
             lambda: hinge_problem(offset=1e-8), "differentiable, near a kink"),
        Case(f"{pool}: ties to the first", g, f64, ndh, maxpool_problem, "a valid subgradient"),
        Case("max-pool of pairs, a gap of 1e-8: correct", g, f64, "correct",
             lambda: maxpool_problem(gap=1e-8), "differentiable, near a kink"),
        Case(f"{pool}: routed to the smaller", g, f64, "wrong",
             lambda: maxpool_problem(route="to the smaller"), "comparison the wrong way round",
             f"{pool}: ties to the first"),
        Case(f"{lasso}: np.sign", g, f64, ndh, lasso_problem, "sign(0) = 0, a subgradient"),
        Case(f"{lasso}: w / |w|", g, f64, "wrong", lambda: lasso_problem(sign="w / |w|"),
             "NaN at the kink", f"{lasso}: np.sign"),
        Case("lasso, a weight at 1e-8: correct", g, f64, "correct",
             lambda: lasso_problem(w2=1e-8), "differentiable, near a kink"),
    ]  # fmt: skip
    return cases


def _stateful():
    g = "stateful"
    label = "tanh 2-16-1 BCE, batch 32: "
    kinds = [
        ("buffer never reset", "float64", "not deterministic"),
        ("returns its own buffer", "float64", "not deterministic"),
        ("loss drifts with a call counter", "float64", "not deterministic"),
        ("memoised by the params' bytes", "float64", "correct"),
        ("input statistics cached on first call", "float64", "correct"),
        ("buffer never reset", "float32", "not deterministic"),
    ]
    return [
        Case(label + kind + (", forced float32" if dtype == "float32" else ""), g, dtype,
             expect, lambda k=kind, d=dtype: stateful_problem(k, d))
        for kind, dtype, expect in kinds
    ]  # fmt: skip


def _noisy():
    kinds = (
        "loss x(1 + 1e-14 N(0,1)), global np.random",
        "loss x(1 + 1e-14 u), u from the clock",
        "gradient x(1 + 1e-12 N(0,1)), global np.random",
    )
    seeded = "loss x(1 + 1e-14 N(0,1)), fresh default_rng(0) per call"
    return [
        Case(f"tanh 2-16-1 BCE, batch 32: {seeded}", "noisy", "float64", "correct",
             lambda: noisy_problem(seeded), "a fixed perturbation: deterministic"),
        *(Case(f"tanh 2-16-1 BCE, batch 32: {kind}", "noisy", "float64", "not deterministic",
               lambda k=kind: noisy_problem(k)) for kind in kinds),
    ]  # fmt: skip


def _stochastic():
    g = "stochastic (frozen seed)"
    label = "dropout 0.3 tanh 4-16-16-1 BCE, batch 32"
    faults = (
        "mask not applied in backward",
        "1/(1-p) not applied in backward",
        "masks drawn again in backward",
    )
    cases = [Case(f"{label}: correct", g, "float64", "correct", dropout_problem)]
    cases += [
        Case(f"{label}: {fault}", g, "float64", "wrong",
             lambda f=fault: dropout_problem(fault=f), "", f"{label}: correct")
        for fault in faults
    ]  # fmt: skip
    cases += [
        Case(f"{label}, float32: correct", g, "float32", "correct",
             lambda: dropout_problem("float32")),
        Case(f"{label}, float32: mask not applied in backward", g, "float32", "wrong",
             lambda: dropout_problem("float32", faults[0]), "", f"{label}, float32: correct"),
    ]  # fmt: skip
    return cases


def _regularised_cases():
    from .catalogue_regularised import cases

    return cases()


def _outside_cases():
    from .catalogue_outside import cases

    return cases()


CASES: tuple[Case, ...] = (
    *_basics(),
    *_float32(),
    *_large(),
    *_badly_scaled(),
    *_kinks(),
    *_stateful(),
    *_noisy(),
    *_stochastic(),
    *_regularised_cases(),
    *_outside_cases(),
)


# ------------------------------------------------------------------------------ scoring


def score(rows) -> dict:
    """Tallies per (group, dtype) of checker outcomes on the catalogue.

    rows : iterable of dicts with "case" (a Case), "passed" (bool: did the checker accept the
        claim) and optionally "verdict" (one of VERDICTS)
    Returns {(group, dtype): {"mutants", "caught", "controls", "false_alarms", "cases",
    "right_verdicts", "nondeterministic", "seconds"}}: a mutant is caught when not passed, a
    false alarm is a control (expect "correct" or "not differentiable here") not passed.
    """
    table = {}
    for row in rows:
        case = row["case"]
        t = table.setdefault((case.group, case.dtype), dict.fromkeys(
            ("mutants", "caught", "controls", "false_alarms", "cases", "right_verdicts",
             "nondeterministic", "seconds"), 0))  # fmt: skip
        t["cases"] += 1
        t["seconds"] += row.get("seconds", 0.0)
        t["right_verdicts"] += row.get("verdict") == case.expect
        if case.expect == "wrong":
            t["mutants"] += 1
            t["caught"] += not row["passed"]
        elif case.expect in PASSING:
            t["controls"] += 1
            t["false_alarms"] += not row["passed"]
        else:
            t["nondeterministic"] += 1
    return table
