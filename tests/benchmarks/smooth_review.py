"""A review of the checker written apart from it: 49 smooth float32 functions where rounding is
amplified (cancellation in variances, exp(a) - exp(b), 1 - cos, cosine similarity; softmax and
attention, layer and batch norm, saturated sigmoids, long products, sums of up to 2e5 terms,
mixed magnitudes, float32 constants, losses of 1e-20 and 1e20), each with a correct gradient and
wrong ones (1e-2 in a group, one element 10% off, a missing term, an error of float32 code alone).

    python -m tests.benchmarks.smooth_review [case_name_substring ...] [--jobs N]

Writes /tmp/smooth_review_out/results.json and prints a summary and the full reports of false
alarms and passed wrong claims. Kept as its reviewer wrote it (the README's weak spots quote its
counts); a measurement, not a test.
"""

# ruff: noqa: E501, E702, E741, F841, I001
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from backprop_bench.verify import check_gradient

F32 = np.float32
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def rng(s=0):
    return np.random.default_rng(s)


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ---------------------------------------------------------------- helpers for mutants
def _map(g, f):
    if isinstance(g, dict):
        return {k: f(k, v) for k, v in g.items()}
    return f(None, g)


def mut_rel(grad, group=None, factor=1.01):
    """one group (or the whole array) scaled by factor."""
    def w(p):
        g = grad(p)
        if isinstance(g, dict):
            k = group or next(iter(g))
            return {kk: (v * v.dtype.type(factor) if kk == k else v) for kk, v in g.items()}
        return g * g.dtype.type(factor)
    return w


def mut_elem(grad, factor=1.1):
    """the element with the largest |g| (over all groups) scaled by factor."""
    def w(p):
        g = grad(p)
        if isinstance(g, dict):
            best = max(g, key=lambda k: np.max(np.abs(g[k])))
            out = {k: v.copy() for k, v in g.items()}
            v = out[best]
            i = np.unravel_index(np.argmax(np.abs(v)), v.shape)
            v[i] = v[i] * v.dtype.type(factor)
            return out
        g = g.copy()
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        g[i] = g[i] * g.dtype.type(factor)
        return g
    return w


def mut_f32(grad, factor=1.001):
    """x1.001 only when computing in float32."""
    def w(p):
        g = grad(p)
        def f(k, v):
            return v * v.dtype.type(factor) if v.dtype == np.float32 else v
        return _map(g, f)
    return w


def std_claims(grad, missing=None, group=None):
    c = {
        "correct": (True, grad),
        "rel1e-2": (False, mut_rel(grad, group)),
        "elem10%": (False, mut_elem(grad)),
        "f32x1.001": (False, mut_f32(grad)),
    }
    if missing is not None:
        c["missing"] = (False, missing)
    return c


# ---------------------------------------------------------------- cases
# each returns (params, fun, claims) with claims {name: (is_correct, grad)}

@case
def var_naive():
    x = f32(1000 + 0.01 * rng(1).standard_normal(100))
    def fun(x):
        n = x.shape[0]
        return np.mean(x * x) - np.mean(x) ** 2
    def grad_naive(x):
        n = x.dtype.type(x.shape[0])
        return 2 * x / n - 2 * np.mean(x) / n
    def grad_stable(x):
        n = x.dtype.type(x.shape[0])
        return 2 * (x - np.mean(x)) / n
    def missing(x):
        n = x.dtype.type(x.shape[0])
        return 2 * x / n
    c = std_claims(grad_stable, missing)
    c["correct_naive_formula"] = (True, grad_naive)
    return x, fun, c


@case
def var_naive_moderate():
    x = f32(10 + 0.1 * rng(2).standard_normal(500))
    def fun(x):
        return np.mean(x * x) - np.mean(x) ** 2
    def grad(x):
        n = x.dtype.type(x.shape[0])
        return 2 * (x - np.mean(x)) / n
    def missing(x):
        n = x.dtype.type(x.shape[0])
        return 2 * x / n
    return x, fun, std_claims(grad, missing)


@case
def var_two_pass_big():
    x = f32(5 + rng(3).standard_normal(20000))
    def fun(x):
        m = np.mean(x)
        return np.mean((x - m) ** 2)
    def grad(x):
        n = x.dtype.type(x.shape[0])
        return 2 * (x - np.mean(x)) / n
    def missing(x):
        n = x.dtype.type(x.shape[0])
        return 2 * x / n
    return x, fun, std_claims(grad, missing)


@case
def log1p_naive_tiny():
    x = f32(1e-5 * rng(4).random(50) + 1e-6)
    w = f32(rng(5).standard_normal(50))
    def fun(x):
        return np.sum(w * np.log(1 + x))
    def grad(x):
        return w / (1 + x)
    def missing(x):  # drop the 1/(1+x) factor: relative error ~1e-5
        return w * (1 - x) * (1 - x)
    return x, fun, std_claims(grad, missing)


@case
def log1p_stable_tiny():
    x = f32(1e-5 * rng(4).random(50) + 1e-6)
    w = f32(rng(5).standard_normal(50))
    def fun(x):
        return np.sum(w * np.log1p(x))
    def grad(x):
        return w / (1 + x)
    return x, fun, std_claims(grad)


@case
def one_minus_cos_small():
    x = f32(1e-3 * rng(6).standard_normal(40))
    def fun(x):
        return np.sum(1 - np.cos(x))
    def grad(x):
        return np.sin(x)
    def missing(x):  # sin(x) ~ x, drop cubic term (rel err ~1e-7) -- effectively correct in f32
        return x - x ** 3 / 2
    return x, fun, std_claims(grad, missing)


@case
def exp_diff_close():
    r = rng(7)
    a = f32(3 + r.standard_normal(30))
    b = f32(a + 1e-3 * r.standard_normal(30))
    def fun(p):
        d = np.exp(p["a"]) - np.exp(p["b"])
        return np.sum(d * d)
    def grad(p):
        d = np.exp(p["a"]) - np.exp(p["b"])
        return {"a": 2 * d * np.exp(p["a"]), "b": -2 * d * np.exp(p["b"])}
    def missing(p):
        d = np.exp(p["a"]) - np.exp(p["b"])
        return {"a": 2 * d * np.exp(p["a"]), "b": -2 * d * np.exp(p["a"])}
    return {"a": a, "b": b}, fun, std_claims(grad, missing, group="b")


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@case
def ce_naive_moderate():
    r = rng(8)
    B, C = 16, 10
    z = f32(8 * r.standard_normal((B, C)))
    y = r.integers(0, C, B)
    def fun(z):
        lse = np.log(np.sum(np.exp(z), axis=1))
        return np.mean(lse - z[np.arange(B), y])
    def grad(z):
        e = np.exp(z)
        s = e / e.sum(axis=1, keepdims=True)
        s[np.arange(B), y] -= 1
        return s / z.dtype.type(B)
    def missing(z):
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True) / z.dtype.type(B)
    return z, fun, std_claims(grad, missing)


@case
def ce_stable_large_logits():
    r = rng(9)
    B, C = 32, 20
    z = f32(60 * r.standard_normal((B, C)))
    y = r.integers(0, C, B)
    def fun(z):
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(z - m), axis=1))
        return np.mean(lse - z[np.arange(B), y])
    def grad(z):
        s = _softmax(z)
        s[np.arange(B), y] -= 1
        return s / z.dtype.type(B)
    def missing(z):
        return _softmax(z) / z.dtype.type(B)
    return z, fun, std_claims(grad, missing)


@case
def ce_stable_offset_logits():
    # logits with a large common offset (1e3) and O(1) spread: lse cancels against z[y]
    r = rng(10)
    B, C = 8, 6
    z = f32(1000 + r.standard_normal((B, C)))
    y = r.integers(0, C, B)
    def fun(z):
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(z - m), axis=1))
        return np.mean(lse - z[np.arange(B), y])
    def grad(z):
        s = _softmax(z)
        s[np.arange(B), y] -= 1
        return s / z.dtype.type(B)
    def missing(z):
        return _softmax(z) / z.dtype.type(B)
    return z, fun, std_claims(grad, missing)


@case
def layernorm_tiny_var():
    r = rng(11)
    B, D = 4, 32
    x = f32(1 + 1e-3 * r.standard_normal((B, D)))
    c = f32(r.standard_normal((B, D)))
    eps = 1e-5
    def fun(x):
        m = x.mean(axis=1, keepdims=True)
        v = ((x - m) ** 2).mean(axis=1, keepdims=True)
        return np.sum(c * (x - m) / np.sqrt(v + x.dtype.type(eps)))
    def grad(x):
        D_ = x.dtype.type(x.shape[1])
        m = x.mean(axis=1, keepdims=True)
        xc = x - m
        v = (xc ** 2).mean(axis=1, keepdims=True)
        inv = 1 / np.sqrt(v + x.dtype.type(eps))
        xh = xc * inv
        return inv * (c - c.mean(axis=1, keepdims=True) - xh * (c * xh).mean(axis=1, keepdims=True))
    def missing(x):  # forgets the variance path
        m = x.mean(axis=1, keepdims=True)
        xc = x - m
        v = (xc ** 2).mean(axis=1, keepdims=True)
        inv = 1 / np.sqrt(v + x.dtype.type(eps))
        return inv * (c - c.mean(axis=1, keepdims=True))
    return x, fun, std_claims(grad, missing)


@case
def batchnorm_dict():
    r = rng(12)
    B, D = 64, 16
    x = f32(3 + 0.01 * r.standard_normal((B, D)))
    gamma = f32(1 + 0.1 * r.standard_normal(D))
    beta = f32(0.1 * r.standard_normal(D))
    t = f32(r.standard_normal((B, D)))
    eps = 1e-5
    def fun(p):
        x, g, b = p["x"], p["gamma"], p["beta"]
        m = x.mean(0)
        v = x.var(0)
        y = g * (x - m) / np.sqrt(v + x.dtype.type(eps)) + b
        return 0.5 * np.mean((y - t) ** 2)
    def grad(p):
        x, g, b = p["x"], p["gamma"], p["beta"]
        n = x.dtype.type(x.shape[0])
        m = x.mean(0)
        v = x.var(0)
        inv = 1 / np.sqrt(v + x.dtype.type(eps))
        xh = (x - m) * inv
        y = g * xh + b
        dy = (y - t) / x.dtype.type(y.size)
        dxh = dy * g
        dx = inv * (dxh - dxh.mean(0) - xh * (dxh * xh).mean(0))
        return {"x": dx, "gamma": (dy * xh).sum(0), "beta": dy.sum(0)}
    def missing(p):
        out = grad(p)
        x = p["x"]
        inv = 1 / np.sqrt(x.var(0) + x.dtype.type(eps))
        g = p["gamma"]
        y = g * (x - x.mean(0)) * inv + p["beta"]
        dy = (y - t) / x.dtype.type(y.size)
        dxh = dy * g
        out["x"] = inv * (dxh - dxh.mean(0))
        return out
    params = {"x": x, "gamma": gamma, "beta": beta}
    return params, fun, std_claims(grad, missing, group="gamma")


@case
def bce_naive_log_sigmoid():
    r = rng(13)
    z = f32(np.linspace(-12, 12, 60))
    y = f32(r.integers(0, 2, 60))
    def fun(z):
        s = 1 / (1 + np.exp(-z))
        return -np.sum(y * np.log(s) + (1 - y) * np.log(1 - s))
    def grad(z):
        s = 1 / (1 + np.exp(-z))
        return s - y
    def missing(z):
        return 1 / (1 + np.exp(-z))
    return z, fun, std_claims(grad, missing)


@case
def bce_stable_saturated():
    r = rng(14)
    z = f32(40 * r.standard_normal(200))
    y = f32(r.integers(0, 2, 200))
    def fun(z):
        return np.sum(np.logaddexp(0, z) - y * z)
    def grad(z):
        s = 0.5 * (1 + np.tanh(0.5 * z))
        return (s - y).astype(z.dtype)
    def missing(z):
        return (0.5 * (1 + np.tanh(0.5 * z))).astype(z.dtype)
    return z, fun, std_claims(grad, missing)


@case
def softplus_naive():
    z = f32(np.linspace(-20, 20, 81) + 0.013)
    w = f32(rng(15).standard_normal(81))
    def fun(z):
        return np.sum(w * np.log(1 + np.exp(z)))
    def grad(z):
        return w / (1 + np.exp(-z))
    return z, fun, std_claims(grad)


@case
def tanh_net_large_weights():
    r = rng(16)
    X = f32(r.standard_normal((32, 10)))
    y = f32(r.standard_normal(32))
    p = {"W1": f32(3 * r.standard_normal((10, 20))), "b1": f32(r.standard_normal(20)),
         "w2": f32(r.standard_normal(20))}
    def fun(p):
        h = np.tanh(X @ p["W1"] + p["b1"])
        return 0.5 * np.mean((h @ p["w2"] - y) ** 2)
    def grad(p):
        h = np.tanh(X @ p["W1"] + p["b1"])
        e = (h @ p["w2"] - y) / p["w2"].dtype.type(len(y))
        dh = np.outer(e, p["w2"]) * (1 - h * h)
        return {"W1": X.T.astype(dh.dtype) @ dh, "b1": dh.sum(0), "w2": h.T @ e}
    def missing(p):
        g = grad(p)
        h = np.tanh(X @ p["W1"] + p["b1"])
        e = (h @ p["w2"] - y) / p["w2"].dtype.type(len(y))
        dh = np.outer(e, p["w2"])
        g["W1"] = X.T.astype(dh.dtype) @ dh
        return g
    return p, fun, std_claims(grad, missing, group="W1")


@case
def sigmoid_net_cast32():
    # grad casts to float32 inside
    r = rng(17)
    X = f32(r.standard_normal((64, 8)))
    y = f32(r.integers(0, 2, 64))
    p = {"W": f32(4 * r.standard_normal((8, 16))), "v": f32(2 * r.standard_normal(16))}
    def fun(p):
        h = 1 / (1 + np.exp(-(X @ p["W"])))
        z = h @ p["v"]
        return np.mean(np.logaddexp(0, z) - y * z)
    def grad(p):
        W = p["W"].astype(np.float32); v = p["v"].astype(np.float32)
        h = 1 / (1 + np.exp(-(X @ W)))
        z = h @ v
        dz = (1 / (1 + np.exp(-z)) - y) / np.float32(len(y))
        dh = np.outer(dz, v) * h * (1 - h)
        return {"W": X.T @ dh, "v": h.T @ dz}
    def missing(p):
        g = grad(p)
        W = p["W"].astype(np.float32); v = p["v"].astype(np.float32)
        h = 1 / (1 + np.exp(-(X @ W)))
        z = h @ v
        dz = (1 / (1 + np.exp(-z)) - y) / np.float32(len(y))
        g["W"] = X.T @ (np.outer(dz, v) * h)
        return g
    return p, fun, std_claims(grad, missing, group="W")


@case
def deep_linear_20():
    r = rng(18)
    L, d = 20, 8
    p = {f"W{i}": f32(np.eye(d) + 0.3 * r.standard_normal((d, d)) / np.sqrt(d)) for i in range(L)}
    x0 = f32(r.standard_normal(d))
    def fun(p):
        h = x0.astype(p["W0"].dtype)
        for i in range(L):
            h = p[f"W{i}"] @ h
        return 0.5 * np.sum(h * h)
    def grad(p):
        hs = [x0.astype(p["W0"].dtype)]
        for i in range(L):
            hs.append(p[f"W{i}"] @ hs[-1])
        g = hs[-1]
        out = {}
        for i in reversed(range(L)):
            out[f"W{i}"] = np.outer(g, hs[i])
            g = p[f"W{i}"].T @ g
        return out
    def missing(p):
        g = grad(p)
        g["W0"] = np.zeros_like(g["W0"])
        return g
    return p, fun, std_claims(grad, missing, group="W10")


@case
def scalar_long_product():
    x = f32(1 + 0.05 * rng(19).standard_normal(300))
    def fun(x):
        return np.prod(x)
    def grad(x):
        return np.prod(x) / x
    def grad_prefix(x):
        pre = np.concatenate([[1], np.cumprod(x)[:-1]]).astype(x.dtype)
        suf = np.concatenate([np.cumprod(x[::-1])[::-1][1:], [1]]).astype(x.dtype)
        return pre * suf
    c = std_claims(grad)
    c["correct_prefix_suffix"] = (True, grad_prefix)
    return x, fun, c


@case
def sumsq_1e5():
    x = f32(rng(20).standard_normal(100_000))
    def fun(x):
        return 0.5 * np.sum(x * x)
    def grad(x):
        return x.copy()
    return x, fun, std_claims(grad)


@case
def mean_log_cosh_2e5():
    x = f32(3 * rng(21).standard_normal(200_000))
    def fun(x):
        return np.mean(np.log(np.cosh(x)))
    def grad(x):
        return np.tanh(x) / x.dtype.type(x.size)
    return x, fun, std_claims(grad)


@case
def linreg_large_batch():
    r = rng(22)
    N, D = 20000, 50
    X = f32(r.standard_normal((N, D)))
    wt = f32(r.standard_normal(D))
    y = f32(X @ wt + 0.1 * r.standard_normal(N))
    w = f32(wt + 0.01 * r.standard_normal(D))
    def fun(w):
        e = X.astype(w.dtype) @ w - y
        return np.mean(e * e)
    def grad(w):
        Xd = X.astype(w.dtype)
        e = Xd @ w - y
        return 2 * Xd.T @ e / w.dtype.type(N)
    def missing(w):  # forgets factor 2
        Xd = X.astype(w.dtype)
        return Xd.T @ (Xd @ w - y) / w.dtype.type(N)
    return w, fun, std_claims(grad, missing)


@case
def logreg_l2_large_batch():
    r = rng(23)
    N, D = 10000, 20
    X = f32(r.standard_normal((N, D)))
    y = f32(r.integers(0, 2, N))
    w = f32(0.5 * r.standard_normal(D))
    lam = np.float32(1e-3)
    def fun(w):
        z = X.astype(w.dtype) @ w
        return np.mean(np.logaddexp(0, z) - y * z) + lam * np.sum(w * w)
    def grad(w):
        Xd = X.astype(w.dtype)
        s = 1 / (1 + np.exp(-(Xd @ w)))
        return Xd.T @ (s - y) / w.dtype.type(N) + 2 * lam * w
    def missing(w):
        Xd = X.astype(w.dtype)
        s = 1 / (1 + np.exp(-(Xd @ w)))
        return Xd.T @ (s - y) / w.dtype.type(N)
    return w, fun, std_claims(grad, missing)


@case
def mixed_magnitudes():
    r = rng(24)
    p = {"a": f32(1e-4 * r.standard_normal(10)), "b": f32(1e4 * (1 + 0.1 * r.standard_normal(10)))}
    def fun(p):
        a, b = p["a"], p["b"]
        return np.sum(np.tanh(a * 1e4)) + 1e-8 * np.sum(b * b) + np.sum(a * b) * 1e-4
    def grad(p):
        a, b = p["a"], p["b"]
        t = np.tanh(a * 1e4)
        return {"a": 1e4 * (1 - t * t) + b * 1e-4, "b": 2e-8 * b + a * 1e-4}
    def missing(p):
        g = grad(p)
        g["b"] = 2e-8 * p["b"]
        return g
    return p, fun, std_claims(grad, missing, group="b")


@case
def mixed_magnitudes_scaled_loss():
    r = rng(25)
    p = {"small": f32(1e-4 * r.standard_normal(20)), "big": f32(1e4 * r.standard_normal(20))}
    def fun(p):
        s, b = p["small"], p["big"]
        return np.sum((s * 1e4) ** 2) + np.sum((b * 1e-4) ** 2) + np.sum(s * 1e4 * np.sin(b * 1e-4))
    def grad(p):
        s, b = p["small"], p["big"]
        return {"small": 2e8 * s + 1e4 * np.sin(b * 1e-4),
                "big": 2e-8 * b + s * 1e4 * np.cos(b * 1e-4) * 1e-4}
    def missing(p):
        g = grad(p)
        g["big"] = 2e-8 * p["big"]
        return g
    return p, fun, std_claims(grad, missing, group="big")


@case
def f32_const_in_fun_only():
    # fun uses np.float32(0.1); grad uses python 0.1 (both fine in float32)
    x = f32(rng(26).standard_normal(50))
    def fun(x):
        return np.sum(np.float32(0.1) * x * x + np.sin(x))
    def grad(x):
        return 2 * 0.1 * x + np.cos(x)
    return x, fun, std_claims(grad)


@case
def f32_const_in_grad_only():
    x = f32(rng(27).standard_normal(50))
    def fun(x):
        return np.sum(0.1 * x * x + np.sin(x))
    def grad(x):
        return 2 * np.float32(0.1) * x + np.cos(x)
    return x, fun, std_claims(grad)


@case
def f32_const_lr_like():
    # a float32 constant in both, large scale amplification: f = sum(exp(c*x)), c=np.float32(0.3)
    x = f32(30 * rng(28).random(100))
    c = np.float32(0.3)
    def fun(x):
        return np.sum(np.exp(c * x))
    def grad(x):
        return c * np.exp(c * x)
    def grad_pyconst(x):
        return 0.3 * np.exp(0.3 * x)  # float32: 0.3 python * f32 array stays f32
    cl = std_claims(grad)
    cl["correct_pyconst_grad"] = (True, grad_pyconst)
    return x, fun, cl


@case
def attention_softmax():
    r = rng(29)
    T, d = 8, 4
    p = {"Q": f32(2 * r.standard_normal((T, d))), "K": f32(2 * r.standard_normal((T, d))),
         "V": f32(r.standard_normal((T, d)))}
    C = f32(r.standard_normal((T, d)))
    def fun(p):
        S = p["Q"] @ p["K"].T / np.sqrt(p["Q"].dtype.type(d))
        A = _softmax(S)
        return np.sum(C * (A @ p["V"]))
    def grad(p):
        sc = 1 / np.sqrt(p["Q"].dtype.type(d))
        S = p["Q"] @ p["K"].T * sc
        A = _softmax(S)
        dO = C.astype(A.dtype)
        dV = A.T @ dO
        dA = dO @ p["V"].T
        dS = A * (dA - (dA * A).sum(1, keepdims=True)) * sc
        return {"Q": dS @ p["K"], "K": dS.T @ p["Q"], "V": dV}
    def missing(p):
        g = grad(p)
        sc = 1 / np.sqrt(p["Q"].dtype.type(d))
        A = _softmax(p["Q"] @ p["K"].T * sc)
        dA = C.astype(A.dtype) @ p["V"].T
        dS = A * dA * sc
        g["Q"] = dS @ p["K"]
        g["K"] = dS.T @ p["Q"]
        return g
    return p, fun, std_claims(grad, missing, group="K")


@case
def attention_sharp():
    r = rng(30)
    T, d = 16, 8
    p = {"Q": f32(4 * r.standard_normal((T, d))), "K": f32(4 * r.standard_normal((T, d))),
         "V": f32(r.standard_normal((T, d)))}
    C = f32(r.standard_normal((T, d)))
    def fun(p):
        S = p["Q"] @ p["K"].T / np.sqrt(p["Q"].dtype.type(d))
        return np.sum(C * (_softmax(S) @ p["V"]))
    def grad(p):
        sc = 1 / np.sqrt(p["Q"].dtype.type(d))
        A = _softmax(p["Q"] @ p["K"].T * sc)
        dO = C.astype(A.dtype)
        dA = dO @ p["V"].T
        dS = A * (dA - (dA * A).sum(1, keepdims=True)) * sc
        return {"Q": dS @ p["K"], "K": dS.T @ p["Q"], "V": A.T @ dO}
    return p, fun, std_claims(grad, group="Q")


@case
def poly_features_deg8():
    r = rng(31)
    xs = f32(np.linspace(0, 3, 40))
    ys = f32(np.sin(xs))
    c = f32(0.01 * r.standard_normal(9))
    def fun(c):
        P = np.stack([xs.astype(c.dtype) ** k for k in range(9)], 1)
        e = P @ c - ys
        return 0.5 * np.sum(e * e)
    def grad(c):
        P = np.stack([xs.astype(c.dtype) ** k for k in range(9)], 1)
        return P.T @ (P @ c - ys)
    def missing(c):
        P = np.stack([xs.astype(c.dtype) ** k for k in range(9)], 1)
        g = P.T @ (P @ c - ys)
        g[0] = 0
        return g
    return c, fun, std_claims(grad, missing)


@case
def rbf_small_lengthscale():
    r = rng(32)
    n = 25
    X = f32(0.2 * r.random((n, 2)))
    Cm = f32(r.standard_normal((n, n)))
    ell = 0.05
    def fun(X):
        D = X[:, None, :] - X[None, :, :]
        K = np.exp(-np.sum(D * D, -1) / X.dtype.type(2 * ell * ell))
        return np.sum(Cm * K)
    def grad(X):
        D = X[:, None, :] - X[None, :, :]
        K = np.exp(-np.sum(D * D, -1) / X.dtype.type(2 * ell * ell))
        W = (Cm + Cm.T) * K
        return -(W[:, :, None] * D).sum(1) / X.dtype.type(ell * ell)
    def missing(X):  # forgets symmetry (Cm only)
        D = X[:, None, :] - X[None, :, :]
        K = np.exp(-np.sum(D * D, -1) / X.dtype.type(2 * ell * ell))
        W = Cm * K
        return -2 * (W[:, :, None] * D).sum(1) / X.dtype.type(ell * ell)
    return X, fun, std_claims(grad, missing)


@case
def normalize_by_norm():
    r = rng(33)
    x = f32(r.standard_normal(1000) + 5)
    c = f32(r.standard_normal(1000))
    def fun(x):
        return np.sum(c * x / np.linalg.norm(x))
    def grad(x):
        nrm = np.linalg.norm(x)
        u = x / nrm
        return (c - u * np.dot(c, u)) / nrm
    def missing(x):
        return c / np.linalg.norm(x)
    return x, fun, std_claims(grad, missing)


@case
def cosine_similarity_dict():
    r = rng(34)
    a = f32(r.standard_normal(64))
    b = f32(a + 1e-3 * r.standard_normal(64))  # nearly parallel: cos ~ 1
    def fun(p):
        a, b = p["a"], p["b"]
        return np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    def grad(p):
        a, b = p["a"], p["b"]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cs = np.dot(a, b) / (na * nb)
        return {"a": b / (na * nb) - cs * a / na ** 2, "b": a / (na * nb) - cs * b / nb ** 2}
    return {"a": a, "b": b}, fun, std_claims(grad)


@case
def gram_matrix_fit():
    r = rng(35)
    X = f32(r.standard_normal((30, 10)))
    T = f32(X @ X.T + 0.1 * r.standard_normal((30, 30)))
    def fun(X):
        R = X @ X.T - T
        return 0.5 * np.sum(R * R)
    def grad(X):
        R = X @ X.T - T
        return (R + R.T) @ X
    def missing(X):
        R = X @ X.T - T
        return 2 * R @ X
    return X, fun, std_claims(grad, missing)


@case
def tiny_loss_1e20():
    x = f32(rng(36).standard_normal(100))
    def fun(x):
        return 1e-20 * np.sum(np.sin(x) * x)
    def grad(x):
        return 1e-20 * (np.cos(x) * x + np.sin(x))
    def missing(x):
        return 1e-20 * np.sin(x)
    return x, fun, std_claims(grad, missing)


@case
def huge_loss_1e20():
    x = f32(rng(37).standard_normal(100))
    def fun(x):
        return 1e20 * np.sum(np.sin(x) * x)
    def grad(x):
        return 1e20 * (np.cos(x) * x + np.sin(x))
    def missing(x):
        return 1e20 * np.sin(x)
    return x, fun, std_claims(grad, missing)


@case
def tiny_params_1e_12():
    x = f32(1e-12 * rng(38).standard_normal(50))
    w = f32(rng(39).standard_normal(50))
    def fun(x):
        return np.sum(w * x * x) + np.sum(x)
    def grad(x):
        return 2 * w * x + 1
    def missing(x):
        return np.ones_like(x)
    return x, fun, std_claims(grad, missing)


@case
def tiny_params_quadratic_only():
    # f ~ 1e-24 * n: values near float32's smallest normals are far away, but f is tiny
    x = f32(1e-12 * rng(40).standard_normal(50))
    w = f32(1 + rng(41).random(50))
    def fun(x):
        return np.sum(w * x * x)
    def grad(x):
        return 2 * w * x
    def missing(x):
        return w * x
    return x, fun, std_claims(grad, missing)


@case
def gaussian_nll_small_sigma():
    r = rng(42)
    data = f32(2 + 1e-3 * r.standard_normal(500))
    p = {"mu": f32([2.0001]), "log_sigma": f32([np.log(1.2e-3)])}
    def fun(p):
        mu, ls = p["mu"][0], p["log_sigma"][0]
        s2 = np.exp(2 * ls)
        return np.mean((data - mu) ** 2 / (2 * s2) + ls)
    def grad(p):
        mu, ls = p["mu"][0], p["log_sigma"][0]
        s2 = np.exp(2 * ls)
        d = data - mu
        g_mu = -np.mean(d) / s2
        g_ls = 1 - np.mean(d * d) / s2
        return {"mu": np.array([g_mu], dtype=p["mu"].dtype), "log_sigma": np.array([g_ls], dtype=p["mu"].dtype)}
    def missing(p):
        g = grad(p)
        g["log_sigma"] = g["log_sigma"] - 1
        return g
    return p, fun, std_claims(grad, missing, group="mu")


@case
def pole_near():
    x = f32(1 + 1e-2 * rng(43).random(30) + 1e-3)
    def fun(x):
        return np.sum(1 / (x - 1))
    def grad(x):
        return -1 / (x - 1) ** 2
    return x, fun, std_claims(grad)


@case
def smooth_abs_tiny_eps():
    x = f32(1e-5 * rng(44).standard_normal(60))
    eps = 1e-12
    def fun(x):
        return np.sum(np.sqrt(x * x + x.dtype.type(eps)))
    def grad(x):
        return x / np.sqrt(x * x + x.dtype.type(eps))
    return x, fun, std_claims(grad)


@case
def rnn_tanh_30steps():
    r = rng(45)
    H, I, T = 8, 3, 30
    p = {"W": f32(1.2 * r.standard_normal((H, H)) / np.sqrt(H)), "U": f32(r.standard_normal((H, I))),
         "b": f32(0.1 * r.standard_normal(H))}
    xs = f32(r.standard_normal((T, I)))
    c = f32(r.standard_normal(H))
    def fun(p):
        h = np.zeros(H, p["W"].dtype)
        for t in range(T):
            h = np.tanh(p["W"] @ h + p["U"] @ xs[t] + p["b"])
        return np.dot(c, h)
    def grad(p):
        dt = p["W"].dtype
        hs = [np.zeros(H, dt)]
        for t in range(T):
            hs.append(np.tanh(p["W"] @ hs[-1] + p["U"] @ xs[t] + p["b"]))
        gW = np.zeros_like(p["W"]); gU = np.zeros_like(p["U"]); gb = np.zeros_like(p["b"])
        dh = c.astype(dt)
        for t in reversed(range(T)):
            da = dh * (1 - hs[t + 1] ** 2)
            gW += np.outer(da, hs[t]); gU += np.outer(da, xs[t]); gb += da
            dh = p["W"].T @ da
        return {"W": gW, "U": gU, "b": gb}
    def missing(p):  # truncated BPTT (only last 5 steps)
        dt = p["W"].dtype
        hs = [np.zeros(H, dt)]
        for t in range(T):
            hs.append(np.tanh(p["W"] @ hs[-1] + p["U"] @ xs[t] + p["b"]))
        gW = np.zeros_like(p["W"]); gU = np.zeros_like(p["U"]); gb = np.zeros_like(p["b"])
        dh = c.astype(dt)
        for t in reversed(range(T - 5, T)):
            da = dh * (1 - hs[t + 1] ** 2)
            gW += np.outer(da, hs[t]); gU += np.outer(da, xs[t]); gb += da
            dh = p["W"].T @ da
        return {"W": gW, "U": gU, "b": gb}
    return p, fun, std_claims(grad, missing, group="U")


@case
def mlp_cast32_mse_big():
    # ~10^5 params, grad casts to float32 inside, fun generic
    r = rng(46)
    N, D, Hh = 256, 64, 512
    X = f32(r.standard_normal((N, D)))
    y = f32(r.standard_normal(N))
    p = {"W1": f32(r.standard_normal((D, Hh)) / 8), "b1": f32(np.zeros(Hh)),
         "W2": f32(r.standard_normal((Hh, 128)) / 22), "w3": f32(r.standard_normal(128) / 11)}
    def fun(p):
        h1 = np.tanh(X @ p["W1"] + p["b1"])
        h2 = np.tanh(h1 @ p["W2"])
        return 0.5 * np.mean((h2 @ p["w3"] - y) ** 2)
    def grad(p):
        W1, b1, W2, w3 = (p[k].astype(np.float32) for k in ("W1", "b1", "W2", "w3"))
        h1 = np.tanh(X @ W1 + b1)
        h2 = np.tanh(h1 @ W2)
        e = (h2 @ w3 - y) / np.float32(N)
        d2 = np.outer(e, w3) * (1 - h2 * h2)
        d1 = (d2 @ W2.T) * (1 - h1 * h1)
        return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h1.T @ d2, "w3": h2.T @ e}
    def missing(p):
        g = grad(p)
        g["b1"] = np.zeros_like(g["b1"])
        return g
    return p, fun, std_claims(grad, missing, group="W2")


@case
def logsumexp_temperature():
    # smooth max with small temperature: f = tau * logsumexp(x / tau), tau=0.01
    x = f32(rng(47).standard_normal(200))
    tau = 0.01
    def fun(x):
        z = x / x.dtype.type(tau)
        m = z.max()
        return x.dtype.type(tau) * (m + np.log(np.sum(np.exp(z - m))))
    def grad(x):
        return _softmax(x / x.dtype.type(tau))
    return x, fun, std_claims(grad)


@case
def kurtosis_like_1e5():
    x = f32(2 + rng(48).standard_normal(100_000))
    def fun(x):
        m = x.mean()
        return np.mean((x - m) ** 4)
    def grad(x):
        n = x.dtype.type(x.size)
        m = x.mean()
        d3 = (x - m) ** 3
        return 4 * (d3 - d3.mean()) / n
    def missing(x):
        n = x.dtype.type(x.size)
        return 4 * (x - x.mean()) ** 3 / n
    return x, fun, std_claims(grad, missing)


@case
def var_best_rounded_mean():
    # the float32 mean correctly rounded (computed in float64, rounded once): the best float32 can do
    x = f32(1 + 0.01 * rng(0).standard_normal(256))
    def fun(x):
        return np.mean(x * x) - np.mean(x) ** 2
    def grad(x):
        m = x.dtype.type(np.mean(x.astype(np.float64)))
        return 2 * (x - m) / x.dtype.type(x.shape[0])
    def missing(x):
        return 2 * x / x.dtype.type(x.shape[0])
    return x, fun, std_claims(grad, missing)


@case
def cosine_similarity_moderate():
    r = rng(200)
    a = f32(r.standard_normal(64))
    b = f32(a + 0.1 * r.standard_normal(64))
    def fun(p):
        a, b = p["a"], p["b"]
        return np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    def grad(p):
        a, b = p["a"], p["b"]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cs = np.dot(a, b) / (na * nb)
        return {"a": b / (na * nb) - cs * a / na ** 2, "b": a / (na * nb) - cs * b / nb ** 2}
    return {"a": a, "b": b}, fun, std_claims(grad)


@case
def sin_formula_error_1e6():
    # a formula error of 1e-6 relative present in every dtype (float64 run included)
    x = f32(rng(5).standard_normal(50))
    def fun(x):
        return np.sum(np.sin(x))
    def grad(x):
        return np.cos(x)
    return x, fun, {"correct": (True, grad),
                    "x(1+1e-6) all dtypes": (False, lambda x: np.cos(x) * (1 + 1e-6))}


# ---------------------------------------------------------------- runner
def run_case(name):
    warnings.simplefilter("ignore")
    params, fun, claims = CASES[name]()
    nparams = sum(v.size for v in params.values()) if isinstance(params, dict) else params.size
    out = []
    for cname, (is_correct, g) in claims.items():
        t0 = time.time()
        try:
            res = check_gradient(fun, g, params)
            verdict, rep = res.verdict, res.report()
        except Exception as e:  # noqa: BLE001
            verdict, rep = "EXCEPTION", repr(e)
        out.append(dict(case=name, claim=cname, is_correct=is_correct, verdict=verdict,
                        report=rep, nparams=int(nparams), seconds=round(time.time() - t0, 2)))
        print(f"{name:32s} {cname:24s} {'C' if is_correct else 'W'} -> {verdict:24s} "
              f"({out[-1]['seconds']}s, n={nparams})", flush=True)
    return out


def main():
    from tests.benchmarks.usage import count_of

    args, jobs, argv = [], 2, sys.argv[1:]
    while argv:  # case filters; --jobs N or --jobs=N (the docstring's form was taken for a filter)
        a = argv.pop(0)
        if a == "--jobs" and argv:
            a = "--jobs=" + argv.pop(0)
        if a.startswith("--jobs="):
            jobs = count_of("--jobs", a.split("=", 1)[1])
        elif not a.startswith("--"):
            args.append(a)
    names = [n for n in CASES if not args or any(a in n for a in args)]
    t0 = time.time()
    results = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            for r in ex.map(run_case, names):
                results.extend(r)
    else:
        for n in names:
            results.extend(run_case(n))
    os.makedirs("/tmp/smooth_review_out", exist_ok=True)
    suffix = "" if not args else "_" + "_".join(args)
    with open(f"/tmp/smooth_review_out/results{suffix}.json", "w") as f:
        json.dump(results, f, indent=1)
    cor = [r for r in results if r["is_correct"]]
    wr = [r for r in results if not r["is_correct"]]
    from collections import Counter
    print("\n=== cases:", len(names), "checks:", len(results), f"time {time.time()-t0:.0f}s")
    print("correct claims:", dict(Counter(r["verdict"] for r in cor)))
    print("wrong claims:  ", dict(Counter(r["verdict"] for r in wr)))
    print("\n=== anomalies (false 'wrong' on correct code, passed wrong claims, exceptions)")
    for r in results:
        bad = (r["is_correct"] and r["verdict"] in ("wrong", "EXCEPTION", "not deterministic")) or \
              (not r["is_correct"] and r["verdict"] in ("correct", "not differentiable here", "EXCEPTION"))
        if bad:
            print(f"\n--- {r['case']} / {r['claim']} (n={r['nparams']}): {r['verdict']}")
            print(r["report"])


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__, more=True, valued=("--jobs",))
    main()
