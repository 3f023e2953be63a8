"""A review of the checker written apart from it: 45 float32 functions hostile to float32
(cancellation, saturated softmax and attention, norms of data with a large mean, long sums,
float16 steps), 1 to 20,000 parameters, each with its correct gradient (checked against float64
differences first), numerically worse valid formulas, formula errors in every dtype, one element
10% off, and errors of float32 code alone (x 1.001, x 1.01, a float16 output or intermediate).

    python -m tests.benchmarks.float32_review OUT.json [case_substring ...]

Writes OUT.json (a row per check) and prints a summary with every false alarm and miss. Kept as
its reviewer wrote it (the README's "Rounding that its scatter misses" quotes its counts); a
measurement, not a test.
"""

# ruff: noqa: E501, E702, E731, E741, F841, I001, B023
# The reviewer's own header:
#   Independent black-box review of backprop_bench.verify.check_gradient on float32-hostile
#   smooth functions.  Usage: python rev2_review.py OUT.json [case-substring ...]
#
#   Claim kinds:
#     correct  - analytically right gradient (float64-checked here before use)
#     alt      - (d) mathematically equal but numerically worse in float32; counts as correct
#     a        - formula error present in every dtype
#     b        - one element 10% off
#     c        - float32-only defect (x1.001, x1.01, float16 output cast, float16 intermediate)

import json
import sys
import time

import numpy as np

from backprop_bench.verify import check_gradient

F32, F16 = np.float32, np.float16
PASS = ("correct", "not differentiable here")


# ----------------------------------------------------------------------------- helpers
def dt(p):
    return p.dtype if isinstance(p, np.ndarray) else next(iter(p.values())).dtype


def C(p, a):
    """data / constant cast to the params' dtype"""
    return np.asarray(a).astype(dt(p))


def tmap(f, p):
    return f(p) if isinstance(p, np.ndarray) else {k: f(v) for k, v in p.items()}


def flat(p):
    if isinstance(p, np.ndarray):
        return p.ravel()
    return np.concatenate([np.asarray(v).ravel() for v in p.values()])


def unflat(v, like):
    if isinstance(like, np.ndarray):
        return v.reshape(like.shape)
    out, i = {}, 0
    for k, a in like.items():
        out[k] = v[i:i + a.size].reshape(a.shape)
        i += a.size
    return out


def is32(p):
    return dt(p) == np.float32


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def lse(z, axis=-1):
    m = z.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def sig(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def f16(a):
    return a.astype(F16).astype(a.dtype)


CASES = []


def case(name, params, fun, grad, a=(), d=(), c16mid=None):
    CASES.append(dict(name=name, params=params, fun=fun, grad=grad, a=list(a), d=list(d),
                      c16mid=c16mid))


def R(seed):
    return np.random.default_rng(seed)


def f32(x):
    return np.asarray(x, dtype=np.float64).astype(F32)


# ============================================================================= cases
# 1 variance, large mean, ddof=1
def _():
    n = 800
    x0 = 1e4 + R(1).standard_normal(n)

    def fun(x):
        m = x.mean()
        return ((x - m) ** 2).sum() / (n - 1)

    def grad(x):
        return 2 * (x - x.mean()) / (n - 1)

    case("var_large_mean", f32(x0), fun, grad,
         a=[("ddof0_1/n", lambda x: 2 * (x - x.mean()) / n)],
         d=[("naive_split", lambda x: 2 * x / (n - 1) - 2 * (x.sum() / n) / (n - 1))],
         c16mid=lambda x: 2 * f16(x - x.mean()) / (n - 1))
_()


# 2 variance computed naively in fun (E[x^2]-E[x]^2), ddof 0
def _():
    n = 500
    x0 = 300 + 0.5 * R(2).standard_normal(n)
    case("var_naive_fun", f32(x0),
         lambda x: (x * x).mean() - x.mean() ** 2,
         lambda x: 2 * (x - x.mean()) / n,
         a=[("1/(n-1)", lambda x: 2 * (x - x.mean()) / (n - 1))])
_()


# 3 std + small mean term (probe mode)
def _():
    n = 2000
    x0 = 1000 + 2 * R(3).standard_normal(n)

    def fun(x):
        m = x.mean()
        return np.sqrt(((x - m) ** 2).sum() / n) + 0.01 * m

    def grad(x):
        m = x.mean()
        s = np.sqrt(((x - m) ** 2).sum() / n)
        return (x - m) / (n * s) + 0.01 / n

    def miss(x):
        m = x.mean()
        s = np.sqrt(((x - m) ** 2).sum() / n)
        return (x - m) / (n * s)

    def ddof1(x):
        m = x.mean()
        s = np.sqrt(((x - m) ** 2).sum() / n)
        return (x - m) / ((n - 1) * s) + 0.01 / n

    case("std_plus_mean_2k", f32(x0), fun, grad,
         a=[("missing_mean_term", miss), ("ddof_mismatch", ddof1)])
_()


# 4 skewness, large mean
def _():
    n = 300
    x0 = 50 + R(4).exponential(1.0, n)

    def parts(x):
        d = x - x.mean()
        m2 = (d ** 2).mean()
        m3 = (d ** 3).mean()
        return d, m2, m3

    def fun(x):
        d, m2, m3 = parts(x)
        return m3 / m2 ** 1.5

    def grad(x):
        d, m2, m3 = parts(x)
        dm3 = 3 / n * (d ** 2 - m2)
        dm2 = 2 * d / n
        return dm3 / m2 ** 1.5 - 1.5 * m3 / m2 ** 2.5 * dm2

    def g_nom2(x):
        d, m2, m3 = parts(x)
        return 3 / n * d ** 2 / m2 ** 1.5 - 1.5 * m3 / m2 ** 2.5 * 2 * d / n

    def g_unb(x):
        d, m2, m3 = parts(x)
        return 3 / n * (d ** 2 - m2) / m2 ** 1.5 - 1.5 * m3 / m2 ** 2.5 * 2 * d / (n - 1)

    case("skewness_large_mean", f32(x0), fun, grad,
         a=[("dm3_missing_m2", g_nom2), ("dm2_1/(n-1)", g_unb)])
_()


# 5 logsumexp of large logits
def _():
    z0 = 50 + 4 * R(5).standard_normal(100)   # large logits, top-2 gap ~1

    def unnorm(z):
        return np.exp(z - z.max())

    case("logsumexp_large", f32(z0), lambda z: lse(z), lambda z: softmax(z),
         a=[("unnormalized_exp(z-max)", unnorm)],
         d=[("exp(z-lse_naive)", lambda z: np.exp(z - np.log(np.exp(z - 40).sum()) - 40))])
_()


# 6 softmax CE, label smoothing, saturated logits
def _():
    B, K, eps = 32, 10, 0.01
    r = R(6)
    y = r.integers(0, K, B)
    Y = np.eye(K)[y]
    Z0 = 15 * r.standard_normal((B, K)) + 10 * Y
    T = (1 - eps) * Y + eps / K

    def fun(Z):
        return (lse(Z, 1) - (C(Z, T) * Z).sum(1)).mean()

    def grad(Z):
        return (softmax(Z, 1) - C(Z, T)) / B

    def naive(Z):
        e = np.exp(Z)
        return (e / e.sum(1, keepdims=True) - C(Z, T)) / B

    case("softmax_ce_saturated", f32(Z0), fun, grad,
         a=[("ignores_smoothing", lambda Z: (softmax(Z, 1) - C(Z, Y)) / B),
            ("1/(B-1)", lambda Z: (softmax(Z, 1) - C(Z, T)) / (B - 1))],
         d=[("unshifted_softmax", naive)])
_()


# 7 log-softmax NLL with 1000 classes + z-loss (full Jacobian, exactly 1000)
def _():
    K = 1000
    z0 = 20 * R(7).standard_normal(K)
    y = int(np.argmax(z0))
    oh = np.eye(K)[y]
    lam = 1e-4

    def fun(z):
        return lse(z) - z[y] + 0.5 * lam * (z * z).sum()

    def grad(z):
        return softmax(z) - C(z, oh) + lam * z

    case("log_softmax_1000", f32(z0), fun, grad,
         a=[("missing_zloss", lambda z: softmax(z) - C(z, oh)),
            ("label_off_by_one", lambda z: softmax(z) - C(z, np.roll(oh, 1)) + lam * z)])
_()


# 8 attention with sharp scores, dict {Q,K,V}
def _attn(name, T, d, beta, seed):
    r = R(seed)
    p0 = {"Q": f32(r.standard_normal((T, d))), "K": f32(r.standard_normal((T, d))),
          "V": f32(r.standard_normal((T, d)))}
    G = r.standard_normal((T, d))
    c = beta / np.sqrt(d)

    def fwd(p):
        S = p["Q"] @ p["K"].T * C(p, c)
        P = softmax(S, 1)
        return S, P

    def fun(p):
        S, P = fwd(p)
        return (C(p, G) * (P @ p["V"])).sum()

    def back(p, bug=None):
        S, P = fwd(p)
        Gc = C(p, G)
        dP = Gc @ p["V"].T
        dS = P * (dP - (dP * P).sum(1, keepdims=True))
        cc = C(p, c)
        dQ = dS @ p["K"] * cc
        dK = (dS if bug == "dK" else dS.T) @ p["Q"] * cc
        dV = (P if bug == "dV" else P.T) @ Gc
        return {"Q": dQ, "K": dK, "V": dV}

    case(name, p0, fun, back,
         a=[("dK_untransposed_dS", lambda p: back(p, "dK")),
            ("dV_untransposed_P", lambda p: back(p, "dV"))])


_attn("attention_sharp_384", 8, 16, 12.0, 8)
_attn("attention_sharp_3k", 32, 32, 10.0, 44)


# 9 layer norm, large mean, small spread (probe: 1024)
def _():
    Bn, D, eps = 16, 64, 1e-5
    r = R(9)
    x0 = 10 + 0.03 * r.standard_normal((Bn, D))
    w = r.standard_normal((Bn, D))
    gam = 1 + 0.1 * r.standard_normal(D)

    def stats(x, e=eps):
        mu = x.mean(1, keepdims=True)
        var = ((x - mu) ** 2).mean(1, keepdims=True)
        return mu, np.sqrt(var + C(x, e))

    def fun(x):
        mu, s = stats(x)
        return (C(x, w) * C(x, gam) * (x - mu) / s).sum()

    def grad(x, e=eps, mid=False, naive=False):
        mu, s = stats(x, e)
        if naive:
            s = np.sqrt((x * x).mean(1, keepdims=True) - mu ** 2 + C(x, e))
        xh = (x - mu) / s
        if mid:
            xh = f16(xh)
        dxh = C(x, w) * C(x, gam)
        return (dxh - dxh.mean(1, keepdims=True) - xh * (dxh * xh).mean(1, keepdims=True)) / s

    case("layernorm_large_mean_1k", f32(x0), fun, grad,
         a=[("backward_without_eps", lambda x: grad(x, e=0.0))],
         d=[("naive_var_in_backward", lambda x: grad(x, naive=True))],
         c16mid=lambda x: grad(x, mid=True))
_()


# 10 batch norm over batch axis, large mean
def _():
    N, Cc, eps = 64, 8, 1e-5
    r = R(10)
    x0 = 100 + r.standard_normal((N, Cc)) * np.linspace(0.5, 2, Cc)
    G = r.standard_normal((N, Cc))

    def fun(x):
        mu = x.mean(0)
        s = np.sqrt(((x - mu) ** 2).mean(0) + C(x, eps))
        return (C(x, G) * (x - mu) / s).sum()

    def grad(x, ddof=0):
        mu = x.mean(0)
        s = np.sqrt(((x - mu) ** 2).sum(0) / (N - ddof) + C(x, eps))
        xh = (x - mu) / s
        g = C(x, G)
        return (g - g.mean(0) - xh * (g * xh).mean(0)) / s

    case("batchnorm_large_mean", f32(x0), fun, grad,
         a=[("unbiased_var_in_backward", lambda x: grad(x, 1))])
_()


# 11 RMS norm (probe 1024)
def _():
    Bn, D, eps = 8, 128, 1e-5
    r = R(11)
    x0 = 0.05 + 0.01 * r.standard_normal((Bn, D))
    G = r.standard_normal((Bn, D))
    gam = 1 + 0.1 * r.standard_normal(D)

    def fun(x):
        rr = np.sqrt((x * x).mean(1, keepdims=True) + C(x, eps))
        return (C(x, G) * C(x, gam) * x / rr).sum()

    def grad(x, e=eps):
        rr = np.sqrt((x * x).mean(1, keepdims=True) + C(x, e))
        gg = C(x, G) * C(x, gam)
        return gg / rr - x * (gg * x).sum(1, keepdims=True) / (D * rr ** 3)

    case("rmsnorm_1k", f32(x0), fun, grad,
         a=[("backward_without_eps", lambda x: grad(x, 0.0))])
_()


# 12 cosine distance of nearly parallel vectors
def _cos_parts(a, b):
    na = np.sqrt((a * a).sum(-1, keepdims=True))
    nb = np.sqrt((b * b).sum(-1, keepdims=True))
    cs = (a * b).sum(-1, keepdims=True) / (na * nb)
    return na, nb, cs


def _():
    n = 256
    r = R(12)
    a0 = r.standard_normal(n)
    b = a0 + 1e-2 * r.standard_normal(n)

    def fun(a):
        na, nb, cs = _cos_parts(a, C(a, b))
        return 1 - cs[0]

    def grad(a, approx=False):
        bb = C(a, b)
        na, nb, cs = _cos_parts(a, bb)
        return -(bb / (na * nb) - (1 if approx else cs) * a / na ** 2)

    case("cosine_nearly_parallel", f32(a0), fun, grad,
         a=[("cos_taken_as_1", lambda a: grad(a, True))])
_()


# 13 1 - cos(x), small x
def _():
    r = R(13)
    x0 = r.choice([-1, 1], 50) * 10 ** r.uniform(-3, -0.3, 50)
    case("one_minus_cos", f32(x0), lambda x: (1 - np.cos(x)).sum(), lambda x: np.sin(x),
         a=[("tan_instead_of_sin", lambda x: np.tan(x))])
_()


# 14 difference of close exponentials
def _():
    dd = 3e-3
    x0 = R(14).uniform(3, 6, 100)
    case("exp_difference", f32(x0),
         lambda x: (np.exp(x + C(x, dd)) - np.exp(x)).sum(),
         lambda x: np.exp(x) * np.expm1(C(x, dd)),
         a=[("first_order_exp(x)*d", lambda x: np.exp(x) * C(x, dd))],
         d=[("naive_difference", lambda x: np.exp(x + C(x, dd)) - np.exp(x))])
_()


# 15 difference of close logs
def _():
    x0 = R(15).uniform(500, 2000, 200)
    case("log_difference", f32(x0),
         lambda x: (np.log(x + 1) - np.log(x)).sum(),
         lambda x: -1 / (x * (x + 1)),
         a=[("-1/x^2", lambda x: -1 / (x * x))],
         d=[("naive_1/(x+1)-1/x", lambda x: 1 / (x + 1) - 1 / x)])
_()


# 16 naive log(1+x), small x
def _():
    x0 = 10 ** R(16).uniform(-4, -1, 100)
    case("log1p_naive", f32(x0), lambda x: np.log(1 + x).sum(), lambda x: 1 / (1 + x),
         a=[("1/(1+x)^2", lambda x: 1 / (1 + x) ** 2)])
_()


# 17 linear regression, 1e5 samples, near optimum, with ridge
def _():
    N, P = 100_000, 8
    r = R(17)
    X = r.standard_normal((N, P)) + 3
    wt = r.standard_normal(P)
    yv = X @ wt + 0.1 * r.standard_normal(N)
    lam = 2e-5
    w_opt = np.linalg.solve(X.T @ X / N * 2 + lam * np.eye(P), 2 * X.T @ yv / N)
    w0 = w_opt + 1e-3 * r.standard_normal(P)

    def fun(w):
        res = C(w, X) @ w - C(w, yv)
        return (res * res).mean() + 0.5 * lam * (w * w).sum()

    def grad(w, reg=True):
        res = C(w, X) @ w - C(w, yv)
        return 2 * C(w, X).T @ res / N + (lam * w if reg else 0)

    case("linreg_1e5_near_opt", f32(w0), fun, grad,
         a=[("missing_ridge", lambda w: grad(w, False))])
_()


# 18 softplus sum, 20k params
def _():
    x0 = 10 * R(18).standard_normal(20000)
    lam = 1e-3

    def sp(x):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    case("softplus_20k", f32(x0),
         lambda x: sp(x).sum() + 0.5 * lam * (x * x).sum(),
         lambda x: sig(x) + lam * x,
         a=[("missing_l2", lambda x: sig(x))])
_()


# 19 product of many terms
def _():
    x0 = R(19).standard_normal(200)

    def fun(x):
        return np.prod(1 + C(x, 0.01) * x)

    def grad(x):
        return fun(x) * C(x, 0.01) / (1 + C(x, 0.01) * x)

    case("product_200", f32(x0), fun, grad,
         a=[("missing_denominator", lambda x: fun(x) * C(x, 0.01) * np.ones_like(x))])
_()


# 20 polynomial features, degree 6
def _():
    N = 200
    r = R(20)
    t = r.uniform(0, 3, N)
    V = t[:, None] ** np.arange(7)
    yv = np.sin(t) + 0.05 * r.standard_normal(N)
    w0 = np.linalg.lstsq(V, yv, rcond=None)[0] + 1e-3 * r.standard_normal(7)

    def fun(w):
        res = C(w, V) @ w - C(w, yv)
        return (res * res).mean()

    def grad(w, den=N):
        res = C(w, V) @ w - C(w, yv)
        return 2 * C(w, V).T @ res / den

    case("poly_features_deg6", f32(w0), fun, grad,
         a=[("2/(N-1)", lambda w: grad(w, N - 1))])
_()


# 21 Gaussian NLL with small sigma, large mean, dict
def _():
    n = 300
    r = R(21)
    xd = 100 + 1e-3 * r.standard_normal(n)
    p0 = {"mu": f32(xd + 1e-3 * r.standard_normal(n)),
          "log_sigma": f32(np.log(1e-3) + 0.1 * r.standard_normal(n))}

    def fun(p):
        s = np.exp(p["log_sigma"])
        z = (C(p, xd) - p["mu"]) / s
        return (0.5 * z * z + p["log_sigma"]).sum()

    def grad(p, bug=None, mid=False):
        s = np.exp(p["log_sigma"])
        rr = C(p, xd) - p["mu"]
        if mid:
            rr = f16(rr)
        z = rr / s
        gmu = -rr / s ** 2
        gls = 1 - z * z
        if bug == "sign":
            gmu = -gmu
        if bug == "half":
            gls = 1 - 0.5 * z * z
        return {"mu": gmu, "log_sigma": gls}

    case("gaussian_nll_small_sigma", p0, fun, grad,
         a=[("mu_sign_flipped", lambda p: grad(p, "sign")),
            ("dlogsigma_half_const", lambda p: grad(p, "half"))],
         c16mid=lambda p: grad(p, mid=True))
_()


# 22 logistic regression, large-norm weights
def _():
    N, P = 2000, 50
    r = R(22)
    X = r.standard_normal((N, P))
    w0 = r.standard_normal(P)
    w0 *= 20 / np.linalg.norm(w0)
    yv = np.sign(X @ w0)
    flip = r.random(N) < 0.05
    yv[flip] *= -1
    lam = 1e-3

    def sp(u):
        return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))

    def fun(w):
        m = C(w, yv) * (C(w, X) @ w)
        return sp(-m).mean() + 0.5 * lam * (w * w).sum()

    def grad(w, reg=True, worse=False):
        y = C(w, yv)
        m = y * (C(w, X) @ w)
        s = (1 - sig(m)) if worse else sig(-m)
        return -C(w, X).T @ (y * s) / N + (lam * w if reg else 0)

    case("logreg_large_w", f32(w0), fun, grad,
         a=[("missing_l2", lambda w: grad(w, reg=False))],
         d=[("1-sigmoid(m)", lambda w: grad(w, worse=True))])
_()


# 23 saturated sigmoid MLP, dict (660 params)
def _():
    N, Din, H = 64, 20, 30
    r = R(23)
    X = 3 * r.standard_normal((N, Din))
    yv = r.standard_normal(N)
    p0 = {"W1": f32(r.standard_normal((Din, H)) * 0.8), "b1": f32(r.standard_normal(H)),
          "W2": f32(r.standard_normal(H))}
    wd = 1e-2

    def fwd(p):
        Hh = sig(C(p, X) @ p["W1"] + p["b1"])
        return Hh, Hh @ p["W2"] - C(p, yv)

    def fun(p):
        Hh, res = fwd(p)
        return (res * res).mean() + 0.5 * wd * (p["W1"] ** 2).sum()

    def grad(p, bug=None):
        Hh, res = fwd(p)
        dout = 2 * res / N
        dW2 = Hh.T @ dout
        dH = np.outer(dout, p["W2"])
        if bug == "alt":
            Z = C(p, X) @ p["W1"] + p["b1"]
            dZ = dH * (np.exp(-Z) / (1 + np.exp(-Z)) ** 2)
        else:
            dZ = dH * Hh * (1 - Hh)
        dW1 = C(p, X).T @ dZ + (0 if bug == "nowd" else wd * p["W1"])
        db1 = dZ.sum(0) if bug != "mean" else dZ.mean(0)
        return {"W1": dW1, "b1": db1, "W2": dW2}

    case("sigmoid_mlp_saturated_660", p0, fun, grad,
         a=[("missing_weight_decay", lambda p: grad(p, "nowd")),
            ("db1_mean_not_sum", lambda p: grad(p, "mean"))],
         d=[("sigmoid'_via_exp", lambda p: grad(p, "alt"))])
_()


# 24/25 tanh MLPs around the 1000-param boundary
def _tanh_mlp(name, N, Din, H, Dout, seed, scale):
    r = R(seed)
    X = scale * r.standard_normal((N, Din))
    Y = r.standard_normal((N, Dout))
    p0 = {"W1": f32(r.standard_normal((Din, H)) / np.sqrt(Din)), "b1": f32(0.5 * r.standard_normal(H)),
          "W2": f32(r.standard_normal((H, Dout)) / np.sqrt(H)), "b2": f32(0.1 * r.standard_normal(Dout))}
    wd = 1e-2

    def fwd(p):
        Hh = np.tanh(C(p, X) @ p["W1"] + p["b1"])
        return Hh, Hh @ p["W2"] + p["b2"] - C(p, Y)

    def fun(p):
        Hh, res = fwd(p)
        return 0.5 * (res * res).sum() / N + 0.5 * wd * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())

    def grad(p, bug=None):
        Hh, res = fwd(p)
        d = res / N
        dW2 = Hh.T @ d + wd * p["W2"]
        db2 = d.sum(0)
        dH = d @ p["W2"].T
        dZ = dH * (1 - Hh * Hh)
        dW1 = C(p, X).T @ dZ + (0 if bug == "nowd1" else wd * p["W1"])
        db1 = dZ.sum(0)
        if bug == "b2off":
            db2 = np.roll(db2, 1)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    case(name, p0, fun, grad,
         a=[("missing_wd_on_W1", lambda p: grad(p, "nowd1")),
            ("db2_off_by_one", lambda p: grad(p, "b2off"))])


_tanh_mlp("tanh_mlp_995", 64, 16, 45, 5, 24, 4.0)     # 16*45+45+45*5+5 = 995 (full Jacobian)
_tanh_mlp("tanh_mlp_1012", 64, 16, 48, 4, 25, 4.0)


# 26 GELU (tanh approx) MLP with CE, ~2.8k params
def _():
    N, Din, H, K = 128, 32, 64, 10
    r = R(26)
    X = 2 * r.standard_normal((N, Din))
    y = r.integers(0, K, N)
    Y = np.eye(K)[y]
    p0 = {"W1": f32(r.standard_normal((Din, H)) / np.sqrt(Din) * 2), "b1": f32(0.1 * r.standard_normal(H)),
          "W2": f32(r.standard_normal((H, K)) / np.sqrt(H) * 3), "b2": f32(np.zeros(K))}
    k = np.sqrt(2 / np.pi)

    def gelu(z, three=3.0):
        kk = C(z, k)
        u = kk * (z + C(z, 0.044715) * z ** 3)
        t = np.tanh(u)
        return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * kk * (1 + C(z, three * 0.044715) * z * z)

    def fun(p):
        Z = C(p, X) @ p["W1"] + p["b1"]
        Hh, _ = gelu(Z)
        L = Hh @ p["W2"] + p["b2"]
        return (lse(L, 1) - (L * C(p, Y)).sum(1)).mean()

    def grad(p, three=3.0):
        Z = C(p, X) @ p["W1"] + p["b1"]
        Hh, dg = gelu(Z, three)
        L = Hh @ p["W2"] + p["b2"]
        dL = (softmax(L, 1) - C(p, Y)) / N
        dH = dL @ p["W2"].T
        dZ = dH * dg
        return {"W1": C(p, X).T @ dZ, "b1": dZ.sum(0), "W2": Hh.T @ dL, "b2": dL.sum(0)}

    case("gelu_mlp_ce_2.8k", p0, fun, grad,
         a=[("gelu'_missing_3", lambda p: grad(p, 1.0))])
_()


# 27 saturated tanh MLP with CE, ~4.6k params, weight decay
def _():
    N, Din, H, K = 256, 40, 100, 5
    r = R(27)
    X = r.standard_normal((N, Din))
    y = r.integers(0, K, N)
    Y = np.eye(K)[y]
    p0 = {"W1": f32(r.standard_normal((Din, H)) * 1.0), "b1": f32(r.standard_normal(H)),
          "W2": f32(r.standard_normal((H, K)) * 2.0), "b2": f32(np.zeros(K))}
    wd = 1e-3

    def fun(p):
        Hh = np.tanh(C(p, X) @ p["W1"] + p["b1"])
        L = Hh @ p["W2"] + p["b2"]
        return (lse(L, 1) - (L * C(p, Y)).sum(1)).mean() + 0.5 * wd * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())

    def grad(p, bug=None):
        Hh = np.tanh(C(p, X) @ p["W1"] + p["b1"])
        L = Hh @ p["W2"] + p["b2"]
        dL = (softmax(L, 1) - C(p, Y)) / N
        dH = dL @ p["W2"].T
        dZ = dH * (1 - Hh * Hh)
        wdd = 0 if bug == "nowd" else wd
        return {"W1": C(p, X).T @ dZ + wdd * p["W1"], "b1": dZ.sum(0),
                "W2": Hh.T @ dL + wdd * p["W2"], "b2": dL.sum(0)}

    case("tanh_mlp_ce_4.6k", p0, fun, grad,
         a=[("missing_weight_decay", lambda p: grad(p, "nowd"))])
_()


# 28 log-cosh loss
def _():
    r = R(28)
    yv = r.standard_normal(400) * 5
    x0 = yv + 10 * r.standard_normal(400)
    case("logcosh_400", f32(x0),
         lambda x: np.log(np.cosh(x - C(x, yv))).sum(),
         lambda x: np.tanh(x - C(x, yv)),
         a=[("tanh(x)_not_tanh(r)", lambda x: np.tanh(x))])
_()


# 29 KL between nearly identical softmaxes
def _():
    n = 200
    r = R(29)
    u = 3 * r.standard_normal(n)
    z0 = u + 1e-3 * r.standard_normal(n)

    def parts(z):
        lp = z - lse(z)
        lq = C(z, u) - lse(C(z, u))
        p = np.exp(lp)
        l = lp - lq
        return p, l, (p * l).sum()

    def fun(z):
        return parts(z)[2]

    def grad(z):
        p, l, kl = parts(z)
        return p * (l - kl)

    case("kl_nearly_identical", f32(z0), fun, grad,
         a=[("missing_KL_term", lambda z: parts(z)[0] * parts(z)[1])])
_()


# 30 entropy of sharp softmax
def _():
    z0 = 10 * R(30).standard_normal(300)

    def parts(z):
        lp = z - lse(z)
        p = np.exp(lp)
        return p, lp, -(p * lp).sum()

    def grad(z):
        p, lp, H = parts(z)
        return -p * (lp + H)

    def bug(z):
        p, lp, H = parts(z)
        return -p * (lp + 1)

    case("entropy_sharp", f32(z0), lambda z: parts(z)[2], grad,
         a=[("+1_instead_of_+H", bug)])
_()


# 31 quadratic form near solution, ill-conditioned, slightly asymmetric A
def _():
    n = 300
    r = R(31)
    Q, _ = np.linalg.qr(r.standard_normal((n, n)))
    S = Q @ np.diag(np.logspace(0, 3, n)) @ Q.T
    A = S + 0.3 * r.standard_normal((n, n))
    b = r.standard_normal(n) * 10
    As = 0.5 * (A + A.T)
    x0 = np.linalg.solve(As, b) + 1e-3 * r.standard_normal(n)

    def fun(x):
        return 0.5 * x @ (C(x, A) @ x) - C(x, b) @ x

    case("quadform_near_solution", f32(x0), fun,
         lambda x: 0.5 * (C(x, A) + C(x, A).T) @ x - C(x, b),
         a=[("Ax-b_ignores_asymmetry", lambda x: C(x, A) @ x - C(x, b))])
_()


# 32 log det(X^T X + I)
def _():
    X0 = 3 * R(32).standard_normal((10, 10))

    def fun(X):
        return np.linalg.slogdet(X.T @ X + np.eye(10, dtype=X.dtype))[1]

    case("logdet_gram_100", f32(X0), fun,
         lambda X: 2 * X @ np.linalg.inv(X.T @ X + np.eye(10, dtype=X.dtype)),
         a=[("inverse_without_I", lambda X: 2 * X @ np.linalg.inv(X.T @ X))])
_()


# 33 RBF kernel sum on points with large offset
def _():
    P0 = 1000 + R(33).standard_normal((40, 3))

    def fun(P):
        D = P[:, None, :] - P[None, :, :]
        return np.exp(-0.5 * (D * D).sum(-1)).sum()

    def grad(P, fac=2.0):
        D = P[:, None, :] - P[None, :, :]
        Kk = np.exp(-0.5 * (D * D).sum(-1))
        return -C(P, fac) * (Kk[:, :, None] * D).sum(1)

    case("rbf_sum_offset_1000", f32(P0), fun, grad,
         a=[("factor_1_not_2", lambda P: grad(P, 1.0))])
_()


# 34 InfoNCE with low temperature
def _():
    Bn, d, tau = 16, 32, 0.05
    r = R(34)
    T = r.standard_normal((Bn, d))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    Z0 = T + 0.3 * r.standard_normal((Bn, d)) / np.sqrt(d)
    I = np.eye(Bn)

    def fun(Z):
        L = Z @ C(Z, T).T / C(Z, tau)
        return (lse(L, 1) - np.diagonal(L)).mean()

    def grad(Z, tr=False):
        L = Z @ C(Z, T).T / C(Z, tau)
        M = softmax(L, 1) - C(Z, I)
        if tr:
            M = M.T
        return M @ C(Z, T) / C(Z, tau) / Bn

    case("infonce_tau0.05", f32(Z0), fun, grad,
         a=[("transposed_P", lambda Z: grad(Z, True))])
_()


# 35 sum of squares with offset, 20k
def _():
    n = 20000
    x0 = 1000 + R(35).standard_normal(n)
    case("sumsq_offset_20k", f32(x0),
         lambda x: 0.5 * ((x - C(x, 1000.0)) ** 2).sum() + 0.005 * x.sum(),
         lambda x: x - C(x, 1000.0) + C(x, 0.005),
         a=[("missing_linear_term", lambda x: x - C(x, 1000.0))])
_()


# 36 log variance, large mean
def _():
    n = 1000
    x0 = 1000 + R(36).standard_normal(n)

    def fun(x):
        m = x.mean()
        return np.log(((x - m) ** 2).mean())

    def grad(x, den=n):
        d = x - x.mean()
        return 2 * d / (den * (d * d).mean())

    case("log_var_large_mean_1000", f32(x0), fun, grad,
         a=[("2d/((n-1)var)", lambda x: grad(x, n - 1))])
_()


# 37 label-smoothed CE, 3000 logits (probe)
def _():
    B, K, eps = 300, 10, 0.1
    r = R(37)
    y = r.integers(0, K, B)
    Y = np.eye(K)[y]
    Z0 = 20 * r.standard_normal((B, K))
    T = (1 - eps) * Y + eps / K
    T2 = (1 - eps) * Y + eps / (K - 1) * (1 - Y)

    case("label_smooth_ce_3k", f32(Z0),
         lambda Z: (lse(Z, 1) - (C(Z, T) * Z).sum(1)).mean(),
         lambda Z: (softmax(Z, 1) - C(Z, T)) / B,
         a=[("smoothing_eps/(K-1)_convention", lambda Z: (softmax(Z, 1) - C(Z, T2)) / B)])
_()


# 38 batch of cosine distances, 20k params
def _():
    r = R(38)
    A0 = r.standard_normal((100, 200))
    Bm = A0 + 1e-2 * r.standard_normal((100, 200))

    def fun(A):
        _, _, cs = _cos_parts(A, C(A, Bm))
        return (1 - cs).sum()

    def grad(A, approx=False):
        bb = C(A, Bm)
        na, nb, cs = _cos_parts(A, bb)
        return -(bb / (na * nb) - (1 if approx else cs) * A / na ** 2)

    case("cosine_batch_20k", f32(A0), fun, grad,
         a=[("cos_taken_as_1", lambda A: grad(A, True))])
_()


# 39 geometric mean
def _():
    n = 500
    x0 = R(39).uniform(1, 100, n)

    def fun(x):
        return np.exp(np.log(x).mean())

    case("geometric_mean", f32(x0), fun, lambda x: fun(x) / (n * x),
         a=[("1/(n-1)", lambda x: fun(x) / ((n - 1) * x))])
_()


# 40 SiLU sum, 5000 params
def _():
    x0 = 8 * R(40).standard_normal(5000)
    case("silu_5k", f32(x0), lambda x: (x * sig(x)).sum(),
         lambda x: sig(x) * (1 + x * (1 - sig(x))),
         a=[("missing_(1-s)", lambda x: sig(x) * (1 + x))],
         d=[("sigmoid'_via_exp", lambda x: sig(x) + x * np.exp(-x) / (1 + np.exp(-x)) ** 2)])
_()


# 41 naive log(sigmoid(x)) with saturating x
def _():
    x0 = R(41).uniform(-3, 14, 200)
    case("log_sigmoid_naive", f32(x0),
         lambda x: np.log(1 / (1 + np.exp(-x))).sum(),
         lambda x: 1 / (1 + np.exp(x)),
         a=[("exp(-x)_approx", lambda x: np.exp(-x))],
         d=[("1-sigmoid(x)", lambda x: 1 - 1 / (1 + np.exp(-x)))])
_()


# 42 column variances, 5000 params, large mean
def _():
    N, M = 100, 50
    x0 = 1e3 + R(42).standard_normal((N, M)) * np.linspace(0.5, 3, M)

    def fun(x):
        return (((x - x.mean(0)) ** 2).sum(0) / (N - 1)).sum()

    case("column_var_5k", f32(x0), fun, lambda x: 2 * (x - x.mean(0)) / (N - 1),
         a=[("1/N", lambda x: 2 * (x - x.mean(0)) / N)],
         d=[("naive_split", lambda x: 2 * x / (N - 1) - 2 * x.mean(0) / (N - 1))],
         c16mid=lambda x: 2 * f16(x - x.mean(0)) / (N - 1))
_()


# 43 log of product of many near-1 terms
def _():
    x0 = R(43).uniform(0.9, 1.1, 1000)
    case("log_prod_1000", f32(x0), lambda x: np.log(np.prod(x)), lambda x: 1 / x,
         a=[("taylor_2-x", lambda x: 2 - x)])
_()


# 44 pseudo-Huber with delta 0.5 (probe 3000)
def _():
    dl = 0.5
    r = R(44)
    x0 = r.choice([-1, 1], 3000) * 10 ** r.uniform(-3, 1, 3000)

    def fun(x):
        dd = C(x, dl)
        return (dd * dd * (np.sqrt(1 + (x / dd) ** 2) - 1)).sum()

    case("pseudo_huber_3k", f32(x0), fun,
         lambda x: x / np.sqrt(1 + (x / C(x, dl)) ** 2),
         a=[("forgot_/delta", lambda x: x / np.sqrt(1 + x * x))])
_()


# 45 mean of squared errors over 1e5 terms (long sum) with 1 param
def _():
    N = 100_000
    r = R(45)
    data = 50 + r.standard_normal(N)
    c0 = data.mean() + 1e-3

    def fun(c):
        d = C(c, data) - c[0]
        return (d * d).mean()

    case("mean_sqerr_1param_1e5", f32([c0]), fun,
         lambda c: np.array([-2 * (C(c, data) - c[0]).mean()], dtype=dt(c)),
         a=[("1/(N-1)_and_sign", lambda c: np.array([2 * (C(c, data) - c[0]).mean()], dtype=dt(c)))])
_()


# ============================================================================= claims
def make_claims(cs, bidx):
    g = cs["grad"]
    claims = [("correct", "correct", g)]
    for nm, fn in cs["d"]:
        claims.append(("d:" + nm, "alt", fn))
    for nm, fn in cs["a"]:
        claims.append(("a:" + nm, "a", fn))

    def elem10(p, g=g, i=bidx):
        v = flat(tmap(lambda a: np.array(a, copy=True), g(p))).copy()
        v[i] *= 1.1
        return unflat(v, p)

    claims.append((f"b:elem{bidx}x1.1", "b", elem10))
    for fac in (1.001, 1.01):
        claims.append((f"c:x{fac}_f32only", "c",
                       lambda p, fac=fac: tmap(lambda a: a * a.dtype.type(fac), g(p)) if is32(p) else g(p)))
    claims.append(("c:f16_output_f32only", "c",
                   lambda p: tmap(f16, g(p)) if is32(p) else g(p)))
    if cs["c16mid"] is not None:
        m = cs["c16mid"]
        claims.append(("c:f16_intermediate_f32only", "c", lambda p: m(p) if is32(p) else g(p)))
    return claims


def to64(p):
    return tmap(lambda a: a.astype(np.float64), p)


def fd_dir(fun, p64, v, h):
    def f(t):
        return float(fun(unflat(flat(p64) + t * v, p64)))
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(h / 2) - f(-h / 2)) / h
    return (4 * d2 - d1) / 3


def sanity(cs):
    """float64 central-difference check of the correct gradient + size of each claim's error."""
    p32 = cs["params"]
    p64 = to64(p32)
    x = flat(p64)
    g = flat(cs["grad"](p64)).astype(np.float64)
    gn = np.linalg.norm(g)
    rng = np.random.default_rng(0)
    errs = []
    # scale h relative to the parameter magnitude
    h = 1e-4 * max(1.0, np.median(np.abs(x)) * 1e-2)
    dirs = [rng.standard_normal(x.size) for _ in range(3)]
    e = np.zeros(x.size); e[int(np.argmax(np.abs(g)))] = 1; dirs.append(e)
    for v in dirs:
        fd = fd_dir(cs["fun"], p64, v, h)
        errs.append(abs(fd - g @ v) / (gn * np.linalg.norm(v)))
    fd_err = max(errs)
    # float32 rounding of the correct gradient vs float64 at the same point
    g32 = flat(cs["grad"](p32)).astype(np.float64)
    err32 = np.linalg.norm(g32 - g) / gn
    err32_max = np.max(np.abs(g32 - g)) / np.max(np.abs(g))
    f64 = float(cs["fun"](p64)); f32v = float(cs["fun"](p32))
    ferr = abs(f32v - f64) / max(abs(f64), 1e-300)
    return dict(fd_relerr=float(fd_err), g32_relerr_norm=float(err32), g32_relerr_max=float(err32_max),
                f32_fun_relerr=float(ferr)), g


def pick_b(g):
    """the 75th-percentile element by |g| among those at least 1% of the largest (so 10% of it is
    0.1% of the largest derivative or more)"""
    a = np.abs(g)
    cand = np.flatnonzero(a >= 1e-2 * a.max())
    cand = cand[np.argsort(a[cand])]
    return int(cand[int(0.75 * (len(cand) - 1))])


def outcome(kind, verdict):
    good = kind in ("correct", "alt")
    if verdict == "cannot tell":
        return "inconclusive"
    if verdict == "not deterministic":
        return "odd"
    if good:
        return "ok" if verdict in PASS else "FALSE ALARM"
    return "ok" if verdict == "wrong" else "MISS"


def key_lines(rep):
    ls = rep.splitlines()
    keep = [ls[0]] + [l for l in ls[1:] if "FAIL" in l or "floor" in l or "note" in l.lower()
                      or "cannot" in l.lower() or "scatter" in l.lower()]
    return "\n".join(keep[:12])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rev2_results.json"
    filt = [a for a in sys.argv[2:] if a != "--sanity"]
    only_sanity = "--sanity" in sys.argv
    rows = []
    for cs in CASES:
        if filt and not any(f in cs["name"] for f in filt):
            continue
        diag, g64 = sanity(cs)
        if diag["fd_relerr"] > 1e-6:
            print(f"!! {cs['name']}: correct gradient fails float64 FD check ({diag['fd_relerr']:.2e})")
        n = g64.size
        if only_sanity:
            print(f"{cs['name']:28s} n={n:6d} " + " ".join(f"{k}={v:.1e}" for k, v in diag.items()))
            continue
        bidx = pick_b(g64)
        p32 = cs["params"]
        p64 = to64(p32)
        for cname, kind, fn in make_claims(cs, bidx):
            # size of this claim's deviation from the true gradient, in float64 and in float32
            c64 = flat(fn(p64)).astype(np.float64)
            c32 = flat(fn(p32)).astype(np.float64)
            gn, gm = np.linalg.norm(g64), np.max(np.abs(g64))
            dev = dict(dev64_norm=float(np.linalg.norm(c64 - g64) / gn),
                       dev64_max=float(np.max(np.abs(c64 - g64)) / gm),
                       dev32_norm=float(np.linalg.norm(c32 - g64) / gn),
                       dev32_max=float(np.max(np.abs(c32 - g64)) / gm))
            if kind == "a" and dev["dev64_max"] < 1e-6:
                print(f"!! {cs['name']} {cname}: not actually wrong in float64")
            t = time.time()
            try:
                r = check_gradient(cs["fun"], fn, p32)
                verdict, rep = r.verdict, r.report()
            except Exception as ex:  # noqa
                verdict, rep = "ERROR", repr(ex)
            sec = time.time() - t
            oc = outcome(kind, verdict)
            row = dict(case=cs["name"], claim=cname, kind=kind, verdict=verdict, nparams=int(n),
                       seconds=round(sec, 3), outcome=oc, report=rep, **diag, **dev)
            rows.append(row)
            flag = "" if oc == "ok" else f"  <-- {oc}"
            print(f"{cs['name']:28s} {n:6d} {cname:34s} {verdict:24s} {sec:6.2f}s "
                  f"dev32={dev['dev32_norm']:.1e}{flag}", flush=True)
            if sec > 60:
                print(f"!! slow: {sec:.0f}s")
    if only_sanity:
        return
    with open(out, "w") as fh:
        json.dump(rows, fh, indent=1)
    summarize(rows)


def summarize(rows):
    print("\n=== summary ===")
    for kinds, label in ((("correct",), "correct claims"), (("alt",), "alt-correct (d)"),
                         (("a",), "wrong a"), (("b",), "wrong b"), (("c",), "wrong c")):
        sel = [r for r in rows if r["kind"] in kinds]
        cnt = {}
        for r in sel:
            cnt[r["verdict"]] = cnt.get(r["verdict"], 0) + 1
        print(f"{label:18s} n={len(sel):3d}  " + "  ".join(f"{k}={v}" for k, v in sorted(cnt.items())))
    for r in rows:
        if r["outcome"] in ("FALSE ALARM", "MISS", "odd"):
            print(f"\n{r['outcome']}: {r['case']} / {r['claim']} (n={r['nparams']}, dev32={r['dev32_norm']:.2e}, dev32_max={r['dev32_max']:.2e}, "
                  f"g32err={r['g32_relerr_norm']:.2e})\n  " + key_lines(r["report"]).replace("\n", "\n  "))
    print("\ninconclusive:", ", ".join(f"{r['case']}/{r['claim']}" for r in rows if r["outcome"] == "inconclusive"))
    print("total seconds:", round(sum(r["seconds"] for r in rows), 1))


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__, outputs=1, required=True, more=True, flags=("--sanity",))
    main()
