"""Catalogue cases for batch normalisation and dropout, written the way users write them.

A tanh 3-8-8-1 net with batch norm on both hidden layers (no bias before it: batch norm's shift
takes its place), BCE on the output logit, params in a dict ``W1, gamma1, beta1, W2, gamma2,
beta2, W3, b3``. Its training-mode backward comes in the two forms of cs231n's assignment, the
staged chain rule and the compact ("alt") one; the classic wrong versions switch one line.
Evaluation mode has its own cases: with running statistics held fixed the loss is a plain
function of the params, and the claims are the gradients users write for it (to fine-tune,
to attribute); a dropout scale applied there is wrong, running statistics updated there make
the claim depend on how often it was called. Dtype-generic code, float64 and float32.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-5
P_DROP = 0.3
SIZES = (3, 8, 8, 1)
N_SAMPLES = 16
GROUP = "batch norm and dropout"
TRAINING_FAULTS = {
    "sum over the batch missing": "compact backward: dzhat.sum() without axis=0",
    "N-1 variance": "the backward's std from np.var(ddof=1)",
    "mean's gradient dropped": "staged backward without the path through the mean",
    "variance's gradient dropped": "staged backward without the path through the variance",
}


def _data(dtype):
    rng = np.random.default_rng(21)
    params = {}
    for k, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:], strict=False), 1):
        params[f"W{k}"] = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        if k < len(SIZES) - 1:
            params[f"gamma{k}"] = 1 + 0.3 * rng.standard_normal(fan_out)
            params[f"beta{k}"] = 0.2 * rng.standard_normal(fan_out)
        else:
            params[f"b{k}"] = 0.1 * rng.standard_normal(fan_out)
    X = rng.standard_normal((N_SAMPLES, SIZES[0]))
    Y = (rng.random((N_SAMPLES, 1)) < 0.5).astype(float)
    # running statistics as a trained net would have them: near the batch's, not equal
    running = {k: (0.1 * rng.standard_normal(w), 1 + 0.2 * rng.random(w))
               for k, w in enumerate(SIZES[1:-1], 1)}  # fmt: skip
    return {k: v.astype(dtype) for k, v in params.items()}, X, Y, running


def _bce(z, Y):
    return np.mean(np.logaddexp(0, z) - Y * z)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _forward(p, X, stats=None, scale=1.0):
    """Training mode (``stats`` None: batch statistics) or evaluation mode (``stats[k]`` the
    running mean and variance of layer k); hidden activations multiplied by ``scale``."""
    a, cache = X, []
    for k in (1, 2):
        z = a @ p[f"W{k}"]
        if stats is None:
            mean, var = z.mean(axis=0), z.var(axis=0)
        else:
            mean, var = (np.asarray(s, dtype=z.dtype) for s in stats[k])
        std = np.sqrt(var + z.dtype.type(EPS))
        zhat = (z - mean) / std
        h = np.tanh(p[f"gamma{k}"] * zhat + p[f"beta{k}"])
        cache.append((a, z, zhat, std, h))
        a = h * z.dtype.type(scale)
    return a @ p["W3"] + p["b3"], a, cache


def _batchnorm_backward(dy, z, zhat, std, gamma, form, fault):
    n = z.shape[0]
    dgamma, dbeta = (dy * zhat).sum(axis=0), dy.sum(axis=0)
    dzhat = dy * gamma
    if fault == "N-1 variance":
        std = np.sqrt(z.var(axis=0, ddof=1) + z.dtype.type(EPS))
        zhat = (z - z.mean(axis=0)) / std
    if form == "compact":
        total = dzhat.sum() if fault == "sum over the batch missing" else dzhat.sum(axis=0)
        dz = (n * dzhat - total - zhat * (dzhat * zhat).sum(axis=0)) / (n * std)
        return dz, dgamma, dbeta
    centred = z - z.mean(axis=0)
    dvar = (dzhat * centred).sum(axis=0) * -0.5 * std**-3
    dcentred = dzhat / std
    if fault != "variance's gradient dropped":
        dcentred = dcentred + 2 * centred * dvar / n
    if fault == "mean's gradient dropped":
        return dcentred, dgamma, dbeta
    return dcentred - dcentred.sum(axis=0) / n, dgamma, dbeta


def _backward(p, X, Y, stats=None, scale=1.0, form="staged", fault=None):
    out, a2, cache = _forward(p, X, stats, scale)
    dz = (_sigmoid(out) - Y) / X.shape[0]
    g = {"W3": a2.T @ dz, "b3": dz.sum(axis=0)}
    da = dz @ p["W3"].T
    for k in (2, 1):
        a_in, z, zhat, std, h = cache[k - 1]
        dy = da * z.dtype.type(scale) * (1 - h * h)
        if stats is None:
            dz, g[f"gamma{k}"], g[f"beta{k}"] = _batchnorm_backward(
                dy, z, zhat, std, p[f"gamma{k}"], form, fault
            )
        else:  # running statistics are constants: batch norm is affine
            g[f"gamma{k}"], g[f"beta{k}"] = (dy * zhat).sum(axis=0), dy.sum(axis=0)
            dz = dy * p[f"gamma{k}"] / std
        g[f"W{k}"] = a_in.T @ dz
        da = dz @ p[f"W{k}"].T
    return {k: g[k].astype(p[k].dtype) for k in p}


def training_problem(dtype: str, form: str = "staged", fault: str | None = None):
    """The training-mode loss (batch statistics) and a user's backward of it."""
    from .catalogue import Problem

    params, X64, Y64, _ = _data(np.dtype(dtype))

    def fun(p):
        dt = p["W1"].dtype
        return _bce(_forward(p, X64.astype(dt))[0], Y64.astype(dt))

    def grad(p):
        dt = p["W1"].dtype
        return _backward(p, X64.astype(dt), Y64.astype(dt), form=form, fault=fault)

    return Problem(fun, grad, params, info={"fun64": fun})


def evaluation_problem(dtype: str, kind: str, fault: str | None = None):
    """The evaluation-mode loss (running statistics fixed, no dropout) and a user's gradient.

    kind  : "dropout" (the claim of a net trained with dropout) or "batch norm"
    fault : "scale applied at evaluation" or "running statistics updated in evaluation"
    """
    from .catalogue import Problem

    params, X64, Y64, running = _data(np.dtype(dtype))
    state = {k: (m.copy(), v.copy()) for k, (m, v) in running.items()}

    def fun(p):
        dt = p["W1"].dtype
        return _bce(_forward(p, X64.astype(dt), running)[0], Y64.astype(dt))

    def grad(p):
        dt = p["W1"].dtype
        X = X64.astype(dt)
        scale = 1 / (1 - P_DROP) if fault == "scale applied at evaluation" else 1.0
        if fault == "running statistics updated in evaluation":
            _, _, cache = _forward(p, X, state)
            for k, (_, z, *_rest) in enumerate(cache, 1):
                m, v = state[k]
                state[k] = (0.9 * m + 0.1 * z.mean(axis=0), 0.9 * v + 0.1 * z.var(axis=0))
        return _backward(p, X, Y64.astype(dt), state, scale)

    return Problem(fun, grad, params, info={"fun64": fun})


def cases():
    from .catalogue import Case

    label = "batch norm tanh 3-8-8-1 BCE, batch 16"
    found = []
    for dtype in ("float64", "float32"):
        suffix = "" if dtype == "float64" else ", float32"
        controls = {}
        for form in ("staged", "compact"):
            name = f"{label}, training, {form} backward{suffix}: correct"
            controls[form] = name
            found.append(Case(name, GROUP, dtype, "correct",
                              lambda d=dtype, f=form: training_problem(d, f)))  # fmt: skip
        for fault, text in TRAINING_FAULTS.items():
            form = "compact" if fault == "sum over the batch missing" else "staged"
            found.append(Case(f"{label}, training{suffix}: {fault}", GROUP, dtype, "wrong",
                              lambda d=dtype, f=form, x=fault: training_problem(d, f, x), text,
                              controls[form]))  # fmt: skip
        for kind, fault, expect in (
            ("dropout", "scale applied at evaluation", "wrong"),
            ("batch norm", "running statistics updated in evaluation", "not deterministic"),
        ):
            control = f"{label}, evaluation ({kind}){suffix}: correct"
            found.append(Case(control, GROUP, dtype, "correct",
                              lambda d=dtype, k=kind: evaluation_problem(d, k)))  # fmt: skip
            found.append(Case(f"{label}, evaluation ({kind}){suffix}: {fault}", GROUP, dtype,
                              expect, lambda d=dtype, k=kind, f=fault: evaluation_problem(d, k, f),
                              "", control if expect == "wrong" else ""))  # fmt: skip
    return found
