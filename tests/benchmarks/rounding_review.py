"""A review of the checker written apart from it: float32 functions near kinks within float32
rounding (35 functions: ReLU nets of 2 and 3 layers up to 1,994 parameters, hardtanh, SVM and
multiclass hinge, 1-D and 2-D max pool, conv + ReLU + pool, least absolute deviations, total
variation, clip, max of linear functions; 8 of them far from kinks as controls).

    python -m tests.benchmarks.rounding_review OUT.json [--only NAME_SUBSTR] [--selftest]

Every case: float32 params, a loss written the way NumPy backprop code is written (dtype-generic:
computes in the dtype of the params it gets, unless the case name ends in '_cast32', where grad
casts the params to float32 inside). Claims: 'ok:*' (the correct gradient, and a valid
alternative subgradient) and 'mut:*' (wrong gradients). --selftest holds each correct gradient
to float64 central differences at a point off the kinks instead. Kept as its reviewer wrote it
(the README's "Kinks within float32 rounding" quotes its counts); a measurement, not a test.
"""

# ruff: noqa: E501, E741

import json
import sys
import time

import numpy as np

F32 = np.float32


# ----------------------------------------------------------------------------- helpers
def dtype_of(p):
    if isinstance(p, dict):
        return next(iter(p.values())).dtype
    return np.asarray(p).dtype


def cast(p, dt):
    if isinstance(p, dict):
        return {k: np.asarray(v).astype(dt) for k, v in p.items()}
    return np.asarray(p).astype(dt)


def copy_g(g):
    if isinstance(g, dict):
        return {k: np.array(v, copy=True) for k, v in g.items()}
    return np.array(g, copy=True)


def m_factor(grad, key, f=1.01):
    def g2(p):
        g = copy_g(grad(p))
        if key is None:
            g = g * np.asarray(f, dtype=g.dtype)
        else:
            g[key] = g[key] * np.asarray(f, dtype=g[key].dtype)
        return g

    return g2


def m_element(grad, key, p0, f=1.10):
    """one element 10% off: the element of `key` with the largest |correct grad| at p0."""
    g0 = grad(p0)
    arr = g0[key] if key is not None else g0
    idx = np.unravel_index(np.argmax(np.abs(arr)), arr.shape)

    def g2(p):
        g = copy_g(grad(p))
        a = g[key] if key is not None else g
        a[idx] = a[idx] * f
        return g

    return g2


def m_f32bug(grad, f=1.001):
    """multiplies by 1.001 only when the params it is given are float32."""

    def g2(p):
        g = copy_g(grad(p))
        if dtype_of(p) == np.float32:
            if isinstance(g, dict):
                g = {k: v * np.asarray(f, dtype=v.dtype) for k, v in g.items()}
            else:
                g = g * np.asarray(f, dtype=g.dtype)
        return g

    return g2


def cast32_grad(grad):
    def g2(p):
        return grad(cast(p, np.float32))

    return g2


def rng_for(name):
    return np.random.default_rng(abs(hash(name)) % (2**32) if False else sum(map(ord, name)) * 7919)


# ----------------------------------------------------------------------------- MLPs
def relu(z):
    return np.maximum(z, 0)


def make_mlp(sizes, X, Y, act="relu", loss="mse", lam=0.0, alpha=0.1):
    """Return fun(p), grad_builder(deriv_at_zero=..., wd_mode=..., leaky_sign=...)."""
    L = len(sizes) - 1

    def act_f(z):
        if act == "relu":
            return np.maximum(z, 0)
        if act == "leaky":
            return np.where(z > 0, z, z * np.asarray(alpha, z.dtype))
        if act == "hardtanh":
            return np.clip(z, -1, 1)
        if act == "tanh":
            return np.tanh(z)
        raise ValueError(act)

    def act_d(z, a, at0, leaky_sign):
        one = np.asarray(1, z.dtype)
        if act == "relu":
            return (z >= 0).astype(z.dtype) if at0 == 1 else (z > 0).astype(z.dtype)
        if act == "leaky":
            s = np.asarray(leaky_sign * alpha, z.dtype)
            return np.where(z >= 0, one, s) if at0 == 1 else np.where(z > 0, one, s)
        if act == "hardtanh":
            if at0 == 1:
                return ((z >= -1) & (z <= 1)).astype(z.dtype)
            return ((z > -1) & (z < 1)).astype(z.dtype)
        if act == "tanh":
            return one - a * a

    def forward(p):
        dt = p["W1"].dtype
        a = X.astype(dt)
        zs, As = [], [a]
        for l in range(1, L + 1):
            z = a @ p[f"W{l}"] + p[f"b{l}"]
            zs.append(z)
            if l < L:
                a = act_f(z)
                As.append(a)
        return zs, As

    def fun(p):
        dt = p["W1"].dtype
        zs, _ = forward(p)
        out = zs[-1]
        n = X.shape[0]
        if loss == "mse":
            val = 0.5 * np.sum((out - Y.astype(dt)) ** 2) / n
        else:
            m = out.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(out - m).sum(axis=1))
            val = np.mean(lse - out[np.arange(n), Y])
        if lam:
            val = val + np.asarray(0.5 * lam, dt) * sum(
                np.sum(p[f"W{l}"] ** 2) for l in range(1, L + 1)
            )
        return val

    def grad_builder(at0=0, wd_mode="ok", leaky_sign=1.0, drop_b1=False):
        def grad(p):
            dt = p["W1"].dtype
            zs, As = forward(p)
            out = zs[-1]
            n = X.shape[0]
            if loss == "mse":
                dz = (out - Y.astype(dt)) / np.asarray(n, dt)
            else:
                e = np.exp(out - out.max(axis=1, keepdims=True))
                s = e / e.sum(axis=1, keepdims=True)
                s[np.arange(n), Y] -= 1
                dz = s / np.asarray(n, dt)
            g = {}
            for l in range(L, 0, -1):
                g[f"W{l}"] = As[l - 1].T @ dz
                g[f"b{l}"] = dz.sum(axis=0)
                if lam:
                    lamd = np.asarray(lam, dt)
                    if wd_mode == "ok":
                        g[f"W{l}"] = g[f"W{l}"] + lamd * p[f"W{l}"]
                    elif wd_mode == "sign":
                        g[f"W{l}"] = g[f"W{l}"] - lamd * p[f"W{l}"]
                    elif wd_mode == "missing_W1":
                        if l != 1:
                            g[f"W{l}"] = g[f"W{l}"] + lamd * p[f"W{l}"]
                if l > 1:
                    da = dz @ p[f"W{l}"].T
                    dz = da * act_d(zs[l - 2], As[l - 1], at0, leaky_sign)
            if drop_b1:
                g["b1"] = np.zeros_like(g["b1"])
            return {k: g[k] for k in p}

        return grad

    def preacts64(p):
        zs, _ = forward(cast(p, np.float64))
        return zs[:-1]

    return fun, grad_builder, preacts64


def init_mlp(rng, sizes, scale=1.0):
    p = {}
    for l in range(1, len(sizes)):
        p[f"W{l}"] = (
            rng.standard_normal((sizes[l - 1], sizes[l])) * scale / np.sqrt(sizes[l - 1])
        ).astype(F32)
        p[f"b{l}"] = (rng.standard_normal(sizes[l]) * 0.1).astype(F32)
    return p


def mlp_case(
    name,
    sizes,
    n,
    setup,
    act="relu",
    loss="mse",
    lam=0.0,
    alpha=0.1,
    cast32=False,
    extra_muts=("missing", "sign"),
    far=False,
):
    rng = rng_for(name)
    X = rng.standard_normal((n, sizes[0])).astype(F32)
    if loss == "mse":
        Y = rng.standard_normal((n, sizes[-1])).astype(F32)
    else:
        Y = rng.integers(0, sizes[-1], n)
    p = init_mlp(rng, sizes)
    setup(p, X, rng)
    fun, gb, pre64 = make_mlp(sizes, X, Y, act=act, loss=loss, lam=lam, alpha=alpha)
    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb(0))
    claims = [("ok:correct", correct)]
    if act in ("relu", "leaky", "hardtanh") and not far:
        claims.append(("ok:alt_subgrad(d(0)=1)", wrap(gb(1))))
    L = len(sizes) - 1
    claims += [
        (f"mut:factor1.01_W{L}", m_factor(correct, f"W{L}")),
        ("mut:element10%_W1", m_element(correct, "W1", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
    ]
    if "missing" in extra_muts:
        if lam:
            claims.append(("mut:missing_wd_W1", wrap(gb(0, wd_mode="missing_W1"))))
        else:
            claims.append(("mut:missing_b1_grad", wrap(gb(0, drop_b1=True))))
    if "sign" in extra_muts:
        if act == "leaky":
            claims.append(("mut:sign_leaky_slope", wrap(gb(0, leaky_sign=-1.0))))
        elif lam:
            claims.append(("mut:sign_wd", wrap(gb(0, wd_mode="sign"))))
        else:
            claims.append(("mut:sign_b2", m_factor(correct, "b2", -1.0)))

    def dist():
        zs = pre64(p)
        if act == "hardtanh":
            d = np.concatenate([np.minimum(np.abs(z - 1), np.abs(z + 1)).ravel() for z in zs])
        else:
            d = np.concatenate([np.abs(z).ravel() for z in zs])
        return d

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=far)


# setups: ways of landing within float32 rounding of the kink
def setup_bias_cancel_all_sample(i):
    def s(p, X, rng):
        p["b1"][:] = -(X @ p["W1"])[i]  # float32: units of sample i exactly 0 in float32

    return s


def setup_bias_cancel_half_single(i):
    def s(p, X, rng):
        z = X[i] @ p["W1"]  # single-row product (may differ by an ulp from batch)
        k = p["b1"].size // 2
        p["b1"][:k] = -z[:k]

    return s


def setup_bias_cancel_two_layers(i, j):
    def s(p, X, rng):
        p["b1"][:] = -(X @ p["W1"])[i]
        a1 = np.maximum(X @ p["W1"] + p["b1"], 0)
        p["b2"][:] = -(a1 @ p["W2"])[j]

    return s


def setup_weight_cancel(i, cols):
    def s(p, X, rng):
        p["b1"][:] = 0
        for c in cols:
            part = X[i, :-1] @ p["W1"][:-1, c]
            p["W1"][-1, c] = F32(-part / X[i, -1])

    return s


def setup_hardtanh_margin(i):
    def s(p, X, rng):
        z = (X @ p["W1"])[i]
        k = p["b1"].size // 2
        p["b1"][:k] = F32(1) - z[:k]  # units at +1
        p["b1"][k:] = F32(-1) - z[k:]  # units at -1

    return s


def setup_far(p, X, rng):
    # random biases; keep every hidden unit away from 0 for all samples
    for _ in range(200):
        z = X @ p["W1"] + p["b1"]
        bad = np.abs(z) < 0.05
        if not bad.any():
            break
        cols = np.where(bad.any(axis=0))[0]
        p["b1"][cols] += F32(0.07)


# ----------------------------------------------------------------------------- hinge
def svm_case(name, d=40, n=60, n_on=10, far=False, cast32=False):
    rng = rng_for(name)
    X = rng.standard_normal((n, d)).astype(F32)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(F32)
    p = {"w": (rng.standard_normal(d) * 0.3).astype(F32), "b": np.array([0.1], F32)}
    lam = 1e-2
    if far:
        for _ in range(100):
            m = y * (X @ p["w"] + p["b"][0])
            bad = np.abs(m - 1) < 0.05
            if not bad.any():
                break
            X[bad] *= F32(1.1)
    else:
        for i in range(n_on):  # scale rows so the margin is 1 (computed in float32)
            s = (y[i] - p["b"][0]) / (X[i] @ p["w"])
            X[i] = (X[i] * F32(s)).astype(F32)

    def fun(q):
        dt = q["w"].dtype
        m = y.astype(dt) * (X.astype(dt) @ q["w"] + q["b"][0])
        return np.mean(np.maximum(0, 1 - m)) + np.asarray(0.5 * lam, dt) * np.sum(q["w"] ** 2)

    def gb(at1=False, miss_reg=False, sign_b=False):
        def grad(q):
            dt = q["w"].dtype
            Xd, yd = X.astype(dt), y.astype(dt)
            m = yd * (Xd @ q["w"] + q["b"][0])
            act = (m <= 1) if at1 else (m < 1)
            coef = -(yd * act.astype(dt)) / np.asarray(n, dt)
            gw = Xd.T @ coef + (0 if miss_reg else np.asarray(lam, dt) * q["w"])
            gbias = np.array([coef.sum()], dt) * (-1 if sign_b else 1)
            return {"w": gw.astype(dt), "b": gbias}

        return grad

    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb())
    claims = [("ok:correct", correct)]
    if not far:
        claims.append(("ok:alt_subgrad(active at m=1)", wrap(gb(at1=True))))
    claims += [
        ("mut:factor1.01_w", m_factor(correct, "w")),
        ("mut:element10%_w", m_element(correct, "w", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_reg", wrap(gb(miss_reg=True))),
        ("mut:sign_b", wrap(gb(sign_b=True))),
    ]

    def dist():
        q = cast(p, np.float64)
        return np.abs(y * (X.astype(np.float64) @ q["w"] + q["b"][0]) - 1)

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=far)


def multiclass_hinge_case(name, d=20, K=6, n=12):
    rng = rng_for(name)
    X = rng.standard_normal((n, d)).astype(F32)
    Y = rng.integers(0, K, n)
    p = {"W": (rng.standard_normal((d, K)) * 0.3).astype(F32), "b": np.zeros(K, F32)}
    # sample 0: make 1 + s_j - s_y = 0 for all j != y0 via the biases (float32 arithmetic)
    s0 = X[0] @ p["W"]
    y0 = Y[0]
    for j in range(K):
        if j != y0:
            p["b"][j] = F32(s0[y0] - s0[j] - F32(1))

    def margins(q):
        dt = q["W"].dtype
        S = X.astype(dt) @ q["W"] + q["b"]
        return 1 + S - S[np.arange(n), Y][:, None], S

    def fun(q):
        M, _ = margins(q)
        M[np.arange(n), Y] = 0
        return np.sum(np.maximum(M, 0)) / n

    def gb(at0=0, flip=False):
        def grad(q):
            dt = q["W"].dtype
            M, _ = margins(q)
            A = ((M >= 0) if at0 else (M > 0)).astype(dt)
            A[np.arange(n), Y] = 0
            A[np.arange(n), Y] = -A.sum(axis=1) * (-1 if flip else 1)
            A /= np.asarray(n, dt)
            return {"W": X.astype(dt).T @ A, "b": A.sum(axis=0)}

        return grad

    def gb_missing(q):
        # forgets the -count term on the true class for W (only the b part keeps it)
        dt = q["W"].dtype
        M, _ = margins(q)
        A = (M > 0).astype(dt)
        A[np.arange(n), Y] = 0
        Afull = A.copy()
        Afull[np.arange(n), Y] = -A.sum(axis=1)
        return {
            "W": X.astype(dt).T @ (A / np.asarray(n, dt)),
            "b": Afull.sum(axis=0) / np.asarray(n, dt),
        }

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(active at 0)", gb(1)),
        ("mut:factor1.01_W", m_factor(correct, "W")),
        ("mut:element10%_W", m_element(correct, "W", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_trueclass_W", gb_missing),
        ("mut:sign_trueclass", gb(0, flip=True)),
    ]

    def dist():
        M, _ = margins(cast(p, np.float64))
        M[np.arange(n), Y] = 9
        return np.abs(M).ravel()

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=False)


# ----------------------------------------------------------------------------- max-pooling
def pool_product_case(name, n=128, frac=0.5, far=False, cast32=False):
    """params x (n,), fixed s; z = x*s; max-pool pairs; loss = sum(c * pooled)^2-ish."""
    rng = rng_for(name)
    s = (rng.random(n) * 2 + 0.5).astype(F32)
    x = rng.standard_normal(n).astype(F32)
    c = rng.standard_normal(n // 2).astype(F32)
    npair = int(frac * n // 2)
    if far:
        for i in range(n // 2):
            a, b = x[2 * i] * s[2 * i], x[2 * i + 1] * s[2 * i + 1]
            if abs(a - b) < 0.05:
                x[2 * i + 1] += F32(0.2)
    else:
        for i in range(npair):  # tie made by products: x[2i+1]*s[2i+1] == x[2i]*s[2i] in float32
            x[2 * i + 1] = F32(x[2 * i] * s[2 * i] / s[2 * i + 1])

    def pooled(x_):
        dt = x_.dtype
        z = (x_ * s.astype(dt)).reshape(-1, 2)
        return z, z.max(axis=1)

    def fun(x_):
        dt = x_.dtype
        _, m = pooled(x_)
        return np.sum(c.astype(dt) * m) + np.asarray(0.5, dt) * np.sum(m**2) / 10

    def gb(route="first", sign=False, miss=False):
        def grad(x_):
            dt = x_.dtype
            z, m = pooled(x_)
            up = c.astype(dt) + (0 if miss else m / np.asarray(10, dt))
            if sign:
                up = c.astype(dt) - m / np.asarray(10, dt)
            idx = np.argmax(z, axis=1) if route == "first" else 1 - np.argmax(z[:, ::-1], axis=1)
            g = np.zeros_like(z)
            g[np.arange(z.shape[0]), idx] = up
            return (g.reshape(-1) * s.astype(dt)).astype(dt)

        return grad

    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb())
    claims = [("ok:correct", correct)]
    if not far:
        claims.append(("ok:alt_subgrad(last on ties)", wrap(gb("last"))))
    claims += [
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, x)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_quadratic_term", wrap(gb(miss=True))),
        ("mut:sign_quadratic_term", wrap(gb(sign=True))),
    ]

    def dist():
        z = (x.astype(np.float64) * s.astype(np.float64)).reshape(-1, 2)
        return np.abs(z[:, 0] - z[:, 1])

    return dict(name=name, params=x, fun=fun, claims=claims, dist=dist, far=far)


def pool2d_product_case(name, H=16):
    """params {u, v} (H x H); z = u*v; 2x2 max-pool; loss sum(c*pool).  Ties: v set so products tie."""
    rng = rng_for(name)
    u = (rng.random((H, H)) + 0.5).astype(F32)
    v = rng.standard_normal((H, H)).astype(F32)
    c = rng.standard_normal((H // 2, H // 2)).astype(F32)
    for bi in range(0, H, 2):
        for bj in range(0, H, 2):
            if (bi + bj) % 4 == 0:  # about half the windows: make (bi,bj) and (bi+1,bj+1) tie
                v[bi + 1, bj + 1] = F32(u[bi, bj] * v[bi, bj] / u[bi + 1, bj + 1])
                v[bi, bj] = abs(v[bi, bj]) + F32(2.0)  # make them the max of their window
                v[bi + 1, bj + 1] = F32(u[bi, bj] * v[bi, bj] / u[bi + 1, bj + 1])
    p = {"u": u, "v": v}

    def windows(q):
        z = q["u"] * q["v"]
        return z.reshape(H // 2, 2, H // 2, 2).transpose(0, 2, 1, 3).reshape(H // 2, H // 2, 4)

    def fun(q):
        dt = q["u"].dtype
        w = windows(q)
        m = w.max(axis=2)
        return np.sum(c.astype(dt) * m) + np.sum(m**2) / np.asarray(20, dt)

    def gb(last=False, miss_v=False, uneg=False):
        def grad(q):
            dt = q["u"].dtype
            w = windows(q)
            m = w.max(axis=2)
            up = c.astype(dt) + m / np.asarray(10, dt)
            idx = np.argmax(w, axis=2) if not last else 3 - np.argmax(w[:, :, ::-1], axis=2)
            G = np.zeros_like(w)
            I, J = np.meshgrid(np.arange(H // 2), np.arange(H // 2), indexing="ij")
            G[I, J, idx] = up
            Gz = G.reshape(H // 2, H // 2, 2, 2).transpose(0, 2, 1, 3).reshape(H, H)
            gu = Gz * q["v"]
            gv = Gz * q["u"]
            if miss_v:
                gv = Gz
            if uneg:
                gu = -gu
            return {"u": gu, "v": gv}

        return grad

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(last on ties)", gb(last=True)),
        ("mut:factor1.01_u", m_factor(correct, "u")),
        ("mut:element10%_v", m_element(correct, "v", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_u_factor_in_gv", gb(miss_v=True)),
        ("mut:sign_gu", gb(uneg=True)),
    ]

    def dist():
        w = windows(cast(p, np.float64))
        srt = np.sort(w, axis=2)
        return np.abs(srt[:, :, -1] - srt[:, :, -2]).ravel()

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=False)


def conv1d_relu_pool_case(name, Cin=2, Cout=4, K=5, T=64, far=False, big=False, cast32=False):
    """params: conv kernel k (Cout,Cin,K), bias b (Cout), readout R (Cout, P) when big.
    conv (valid) -> relu -> maxpool(2) -> readout -> 0.5*(out - t)^2."""
    rng = rng_for(name)
    x = rng.standard_normal((Cin, T)).astype(F32)
    p = {
        "k": (rng.standard_normal((Cout, Cin, K)) / np.sqrt(Cin * K)).astype(F32),
        "b": (rng.standard_normal(Cout) * 0.1).astype(F32),
    }
    To = T - K + 1
    P = To // 2
    R = (rng.standard_normal((Cout, P)) / np.sqrt(P)).astype(F32)
    if big:
        p["R"] = R
    tgt = F32(0.3)

    def conv(q):
        dt = q["k"].dtype
        xd = x.astype(dt)
        cols = np.stack([xd[:, t : t + K] for t in range(To)], axis=0)  # (To, Cin, K)
        return np.einsum("tck,ock->ot", cols, q["k"]) + q["b"][:, None], cols

    if far:
        for _ in range(200):
            z, _ = conv(p)
            zz = z[:, : 2 * P].reshape(Cout, P, 2)
            bad = (np.abs(z) < 0.03).any(axis=1) | (np.abs(zz[..., 0] - zz[..., 1]) < 0.03).any(
                axis=1
            )
            if not bad.any():
                break
            p["b"][bad] += F32(0.05)
            p["k"][bad] *= F32(1.03)
            x_perturb = rng.standard_normal(x.shape).astype(F32) * F32(0.01)
            x[:] = x + x_perturb
    else:
        z, _ = conv(p)
        # relu kink: channel 0 at position 10 sits at 0 (bias cancellation, float32)
        p["b"][0] = F32(-(z[0, 10] - p["b"][0]))
        # channel 1: bias cancel at position 21 as well
        p["b"][1] = F32(-(z[1, 21] - p["b"][1]))

    def fwd(q):
        dt = q["k"].dtype
        z, cols = conv(q)
        a = np.maximum(z, 0)[:, : 2 * P].reshape(Cout, P, 2)
        m = a.max(axis=2)
        Rd = q["R"] if "R" in q else R.astype(dt)
        out = np.sum(Rd * m)
        return z, cols, a, m, Rd, out

    def fun(q):
        *_, out = fwd(q)
        return 0.5 * (out - tgt) ** 2

    def gb(at0=0, last=False, missR=False, signb=False):
        def grad(q):
            dt = q["k"].dtype
            z, cols, a, m, Rd, out = fwd(q)
            e = out - np.asarray(tgt, dt)
            gm = e * Rd
            if last:
                idx = 1 - np.argmax(a[..., ::-1], axis=2)
            else:
                idx = np.argmax(a, axis=2)
            ga = np.zeros_like(a)
            O, Pp = np.meshgrid(np.arange(Cout), np.arange(P), indexing="ij")
            ga[O, Pp, idx] = gm
            gz = np.zeros_like(z)
            gz[:, : 2 * P] = ga.reshape(Cout, 2 * P)
            d = (z >= 0) if at0 else (z > 0)
            gz = gz * d.astype(dt)
            g = {
                "k": np.einsum("ot,tck->ock", gz, cols),
                "b": gz.sum(axis=1) * (-1 if signb else 1),
            }
            if "R" in q:
                g["R"] = e * m if not missR else m * 0
            if "R" not in q and missR:
                g["b"] = np.zeros_like(g["b"])
            return g

        return grad

    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb())
    claims = [("ok:correct", correct)]
    if not far:
        claims.append(("ok:alt_subgrad(relu'(0)=1,last on ties)", wrap(gb(at0=1, last=True))))
    claims += [
        ("mut:factor1.01_k", m_factor(correct, "k")),
        ("mut:element10%_k", m_element(correct, "k", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_" + ("R_grad" if big else "b_grad"), wrap(gb(missR=True))),
        ("mut:sign_b", wrap(gb(signb=True))),
    ]

    def dist():
        z, _ = conv(cast(p, np.float64))
        a = np.maximum(z, 0)[:, : 2 * P].reshape(Cout, P, 2)
        return np.concatenate(
            [np.abs(z).ravel(), np.abs(a[..., 0] - a[..., 1]).ravel()[(a.max(-1) > 0).ravel()]]
        )

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=far)


def conv2d_relu_pool_case(name, H=10, C=3):
    """1->C channels 3x3 conv on HxH image, relu, 2x2 maxpool, readout (param), mse to target."""
    rng = rng_for(name)
    img = rng.standard_normal((H, H)).astype(F32)
    Ho = H - 2
    P = Ho // 2
    p = {
        "k": (rng.standard_normal((C, 3, 3)) / 3).astype(F32),
        "b": np.zeros(C, F32),
        "R": (rng.standard_normal((C, P, P)) / P).astype(F32),
    }
    tgt = F32(0.5)

    def conv(q):
        dt = q["k"].dtype
        im = img.astype(dt)
        patches = np.stack(
            [im[i : i + 3, j : j + 3] for i in range(Ho) for j in range(Ho)]
        ).reshape(Ho, Ho, 3, 3)
        z = np.einsum("ijab,cab->cij", patches, q["k"]) + q["b"][:, None, None]
        return z, patches

    z, _ = conv(p)
    for c in range(C):  # bias cancel: unit (c, 2c+1, 3) sits at 0 in float32
        p["b"][c] = F32(-z[c, 2 * c + 1, 3])

    def fwd(q):
        z, patches = conv(q)
        a = np.maximum(z, 0)
        w = a.reshape(C, P, 2, P, 2).transpose(0, 1, 3, 2, 4).reshape(C, P, P, 4)
        m = w.max(axis=3)
        out = np.sum(q["R"] * m)
        return z, patches, w, m, out

    def fun(q):
        *_, out = fwd(q)
        return 0.5 * (out - tgt) ** 2

    def gb(at0=0, last=False, missR=False, signk=False):
        def grad(q):
            dt = q["k"].dtype
            z, patches, w, m, out = fwd(q)
            e = out - np.asarray(tgt, dt)
            gm = e * q["R"]
            idx = np.argmax(w, axis=3) if not last else 3 - np.argmax(w[..., ::-1], axis=3)
            gw = np.zeros_like(w)
            Ci, I, J = np.meshgrid(np.arange(C), np.arange(P), np.arange(P), indexing="ij")
            gw[Ci, I, J, idx] = gm
            ga = gw.reshape(C, P, P, 2, 2).transpose(0, 1, 3, 2, 4).reshape(C, Ho, Ho)
            gz = ga * ((z >= 0) if at0 else (z > 0)).astype(dt)
            gk = np.einsum("cij,ijab->cab", gz, patches)
            return {
                "k": -gk if signk else gk,
                "b": gz.sum(axis=(1, 2)),
                "R": (e * m) if not missR else np.zeros_like(m),
            }

        return grad

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(relu'(0)=1,last on ties)", gb(1, True)),
        ("mut:factor1.01_R", m_factor(correct, "R")),
        ("mut:element10%_k", m_element(correct, "k", p)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_R_grad", gb(missR=True)),
        ("mut:sign_k", gb(signk=True)),
    ]

    def dist():
        z, _ = conv(cast(p, np.float64))
        return np.abs(z).ravel()

    return dict(name=name, params=p, fun=fun, claims=claims, dist=dist, far=False)


# ----------------------------------------------------------------------------- abs / L1
def lad_case(name, d=50, n=80, n_zero=12, far=False, cast32=False):
    """least absolute deviations + ridge: sum|Xw - y|/n + lam/2 |w|^2; y_i = fl32(X_i w) for some i."""
    rng = rng_for(name)
    X = rng.standard_normal((n, d)).astype(F32)
    w = (rng.standard_normal(d) * 0.5).astype(F32)
    y = (X @ w + rng.standard_normal(n).astype(F32)).astype(F32)
    if far:
        r = X @ w - y
        y[np.abs(r) < 0.05] += F32(0.2)
    else:
        y[:n_zero] = (X @ w)[:n_zero]  # residuals exactly 0 in float32 (same matmul)
    lam = 1e-2

    def fun(w_):
        dt = w_.dtype
        r = X.astype(dt) @ w_ - y.astype(dt)
        return np.sum(np.abs(r)) / n + np.asarray(0.5 * lam, dt) * np.sum(w_**2)

    def gb(sgn0=0.0, miss=False, sign=False):
        def grad(w_):
            dt = w_.dtype
            r = X.astype(dt) @ w_ - y.astype(dt)
            s = np.sign(r)
            s[r == 0] = sgn0
            g = X.astype(dt).T @ s / np.asarray(n, dt)
            if not miss:
                g = g + (-1 if sign else 1) * np.asarray(lam, dt) * w_
            return g.astype(dt)

        return grad

    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb())
    claims = [("ok:correct", correct)]
    if not far:
        claims.append(("ok:alt_subgrad(sign(0)=+1)", wrap(gb(1.0))))
    claims += [
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, w)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_ridge", wrap(gb(miss=True))),
        ("mut:sign_ridge", wrap(gb(sign=True))),
    ]

    def dist():
        return np.abs(X.astype(np.float64) @ w.astype(np.float64) - y)

    return dict(name=name, params=w, fun=fun, claims=claims, dist=dist, far=far)


def tv_product_case(name, n=100):
    """total variation of s*x: sum |s[i+1]x[i+1] - s[i]x[i]| + 0.5|x - x0|^2; ties by products."""
    rng = rng_for(name)
    s = (rng.random(n) + 0.5).astype(F32)
    x = rng.standard_normal(n).astype(F32)
    for i in range(0, n - 1, 3):
        x[i + 1] = F32(x[i] * s[i] / s[i + 1])
    x0 = rng.standard_normal(n).astype(F32)

    def fun(x_):
        dt = x_.dtype
        u = x_ * s.astype(dt)
        return np.sum(np.abs(np.diff(u))) + np.asarray(0.5, dt) * np.sum((x_ - x0.astype(dt)) ** 2)

    def gb(sgn0=0.0, miss=False, flip=False):
        def grad(x_):
            dt = x_.dtype
            u = x_ * s.astype(dt)
            dd = np.diff(u)
            sg = np.sign(dd)
            sg[dd == 0] = sgn0
            gu = np.zeros_like(u)
            gu[1:] += sg
            gu[:-1] -= sg
            if flip:
                gu = -gu
            return gu * s.astype(dt) + (0 if miss else (x_ - x0.astype(dt)))

        return grad

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(sign(0)=+1)", gb(1.0)),
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, x)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_quadratic", gb(miss=True)),
        ("mut:sign_tv", gb(flip=True)),
    ]

    def dist():
        return np.abs(np.diff(x.astype(np.float64) * s.astype(np.float64)))

    return dict(name=name, params=x, fun=fun, claims=claims, dist=dist, far=False)


def l1_mapped_case(name, d=30, m=20):
    """elastic-net on mapped weights w = M @ p (float32), L1 of w; last entry of p cancels w_0..w_2."""
    rng = rng_for(name)
    M = rng.standard_normal((m, d)).astype(F32)
    A = rng.standard_normal((40, m)).astype(F32)
    t = rng.standard_normal(40).astype(F32)
    q = rng.standard_normal(d).astype(F32)
    # make w_0 = M[0] @ q cancel: adjust q[-1] (float32)
    q[-1] = F32(-(M[0, :-1] @ q[:-1]) / M[0, -1])
    lam = F32(0.3)

    def fun(q_):
        dt = q_.dtype
        w_ = M.astype(dt) @ q_
        r = A.astype(dt) @ w_ - t.astype(dt)
        return np.asarray(0.5, dt) * np.sum(r**2) / 40 + lam.astype(dt) * np.sum(np.abs(w_))

    def gb(sgn0=0.0, miss=False, flip=False):
        def grad(q_):
            dt = q_.dtype
            w_ = M.astype(dt) @ q_
            r = A.astype(dt) @ w_ - t.astype(dt)
            sg = np.sign(w_)
            sg[w_ == 0] = sgn0
            gw = A.astype(dt).T @ r / np.asarray(40, dt)
            if flip:
                gw = -gw
            if not miss:
                gw = gw + lam.astype(dt) * sg
            return M.astype(dt).T @ gw

        return grad

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(sign(0)=-1)", gb(-1.0)),
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, q)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_l1", gb(miss=True)),
        ("mut:sign_datafit", gb(flip=True)),
    ]

    def dist():
        return np.abs(M.astype(np.float64) @ q.astype(np.float64))

    return dict(name=name, params=q, fun=fun, claims=claims, dist=dist, far=False)


# ----------------------------------------------------------------------------- clip / max
def clip_case(name, d=25, n=40, far=False, cast32=False):
    """sum((clip(Xw, lo, hi) - t)^2)/2n with hi = fl32(X_0 w), lo = fl32(X_1 w) (bounds from the point)."""
    rng = rng_for(name)
    X = rng.standard_normal((n, d)).astype(F32)
    w = (rng.standard_normal(d) * 0.4).astype(F32)
    t = rng.standard_normal(n).astype(F32)
    z = X @ w
    if far:
        hi, lo = F32(np.max(z) + 0.5), F32(np.min(z) - 0.5)
        zs = np.sort(z)
        hi, lo = F32(zs[-5] + (zs[-4] - zs[-5]) / 2), F32(zs[4] + (zs[5] - zs[4]) / 2)
    else:
        zs = np.sort(z)
        hi, lo = F32(zs[-4]), F32(zs[3])  # bounds computed in float32 from the point itself

    def fun(w_):
        dt = w_.dtype
        c = np.clip(X.astype(dt) @ w_, np.asarray(lo, dt), np.asarray(hi, dt))
        return np.sum((c - t.astype(dt)) ** 2) / np.asarray(2 * n, dt)

    def gb(incl=False, miss_mask=False, sign=False):
        def grad(w_):
            dt = w_.dtype
            zz = X.astype(dt) @ w_
            c = np.clip(zz, np.asarray(lo, dt), np.asarray(hi, dt))
            if miss_mask:
                msk = np.ones_like(zz)
            elif incl:
                msk = ((zz >= lo) & (zz <= hi)).astype(dt)
            else:
                msk = ((zz > lo) & (zz < hi)).astype(dt)
            r = (c - t.astype(dt)) * (-1 if sign else 1)
            return X.astype(dt).T @ (r * msk) / np.asarray(n, dt)

        return grad

    wrap = cast32_grad if cast32 else (lambda g: g)
    correct = wrap(gb())
    claims = [("ok:correct", correct)]
    if not far:
        claims.append(("ok:alt_subgrad(inclusive bounds)", wrap(gb(incl=True))))
    claims += [
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, w)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_clip_mask", wrap(gb(miss_mask=True))),
        ("mut:sign_residual", wrap(gb(sign=True))),
    ]

    def dist():
        zz = X.astype(np.float64) @ w.astype(np.float64)
        return np.minimum(np.abs(zz - lo), np.abs(zz - hi))

    return dict(name=name, params=w, fun=fun, claims=claims, dist=dist, far=far)


def max_linear_case(name, d=15, n=30):
    """sum_i max(X1_i w, X2_i w + c_i) + 0.5|w|^2 with c_i = fl32(X1_i w - X2_i w) for half the rows."""
    rng = rng_for(name)
    X1 = rng.standard_normal((n, d)).astype(F32)
    X2 = rng.standard_normal((n, d)).astype(F32)
    w = rng.standard_normal(d).astype(F32)
    c = rng.standard_normal(n).astype(F32)
    c[: n // 2] = (X1 @ w - X2 @ w)[: n // 2]

    def fun(w_):
        dt = w_.dtype
        a, b = X1.astype(dt) @ w_, X2.astype(dt) @ w_ + c.astype(dt)
        return np.sum(np.maximum(a, b)) + np.asarray(0.5, dt) * np.sum(w_**2)

    def gb(second=False, miss=False, sign=False):
        def grad(w_):
            dt = w_.dtype
            a, b = X1.astype(dt) @ w_, X2.astype(dt) @ w_ + c.astype(dt)
            pick1 = (a >= b) if not second else (a > b)
            G = np.where(pick1[:, None], X1.astype(dt), X2.astype(dt)).sum(axis=0)
            if sign:
                G = -G
            return G + (0 if miss else w_)

        return grad

    correct = gb()
    claims = [
        ("ok:correct", correct),
        ("ok:alt_subgrad(second on ties)", gb(second=True)),
        ("mut:factor1.01_all", m_factor(correct, None)),
        ("mut:element10%", m_element(correct, None, w)),
        ("mut:f32only_x1.001", m_f32bug(correct)),
        ("mut:missing_quadratic", gb(miss=True)),
        ("mut:sign_max_term", gb(sign=True)),
    ]

    def dist():
        w64 = w.astype(np.float64)
        return np.abs(X1 @ w64 - X2 @ w64 - c)

    return dict(name=name, params=w, fun=fun, claims=claims, dist=dist, far=False)


# ----------------------------------------------------------------------------- the catalogue
def cases():
    C = []
    # ReLU / leaky / hardtanh nets (kink within float32 rounding)
    C.append(
        lambda: mlp_case(
            "relu2_bias_cancel_all_1sample", [8, 16, 3], 1, setup_bias_cancel_all_sample(0)
        )
    )
    C.append(
        lambda: mlp_case(
            "relu2_bias_cancel_half_rowproduct", [10, 24, 4], 6, setup_bias_cancel_half_single(0)
        )
    )
    C.append(
        lambda: mlp_case(
            "relu2_bias_cancel_half_rowproduct_cast32",
            [10, 24, 4],
            6,
            setup_bias_cancel_half_single(0),
            cast32=True,
        )
    )
    C.append(
        lambda: mlp_case(
            "relu3_one_sample_allzero_two_layers",
            [12, 32, 32, 5],
            8,
            setup_bias_cancel_two_layers(3, 5),
        )
    )
    C.append(
        lambda: mlp_case(
            "relu2_large_1994p_sample0_allzero", [20, 64, 10], 16, setup_bias_cancel_all_sample(0)
        )
    )
    C.append(
        lambda: mlp_case(
            "relu2_large_1994p_sample0_allzero_cast32",
            [20, 64, 10],
            16,
            setup_bias_cancel_all_sample(0),
            cast32=True,
        )
    )
    C.append(
        lambda: mlp_case("relu2_weight_cancel", [9, 12, 2], 5, setup_weight_cancel(2, [0, 3, 5, 7]))
    )
    C.append(
        lambda: mlp_case(
            "relu2_wd_bias_cancel", [10, 20, 3], 8, setup_bias_cancel_all_sample(1), lam=1e-3
        )
    )
    C.append(
        lambda: mlp_case(
            "relu3_wd_xent_bias_cancel",
            [16, 24, 24, 4],
            10,
            setup_bias_cancel_two_layers(0, 2),
            loss="xent",
            lam=1e-3,
        )
    )
    C.append(
        lambda: mlp_case(
            "leaky2_bias_cancel", [10, 20, 3], 6, setup_bias_cancel_all_sample(2), act="leaky"
        )
    )
    C.append(
        lambda: mlp_case(
            "leaky2_bias_cancel_cast32",
            [10, 20, 3],
            6,
            setup_bias_cancel_all_sample(2),
            act="leaky",
            cast32=True,
        )
    )
    C.append(
        lambda: mlp_case(
            "hardtanh2_margin_at_pm1", [8, 14, 2], 4, setup_hardtanh_margin(1), act="hardtanh"
        )
    )
    # hinge
    C.append(lambda: svm_case("svm_hinge_margins_scaled_to_1"))
    C.append(lambda: svm_case("svm_hinge_margins_scaled_to_1_cast32", cast32=True))
    C.append(lambda: multiclass_hinge_case("multiclass_hinge_bias_at_margin"))
    # max-pooling
    C.append(lambda: pool_product_case("maxpool1d_product_ties"))
    C.append(lambda: pool_product_case("maxpool1d_product_ties_cast32", cast32=True))
    C.append(lambda: pool2d_product_case("maxpool2d_product_ties_uv"))
    C.append(lambda: conv1d_relu_pool_case("conv1d_relu_pool_bias_cancel"))
    C.append(
        lambda: conv1d_relu_pool_case(
            "conv1d_relu_pool_bias_cancel_big", Cin=4, Cout=8, K=7, T=70, big=True
        )
    )
    C.append(lambda: conv2d_relu_pool_case("conv2d_relu_pool_bias_cancel"))
    # abs / L1
    C.append(lambda: lad_case("lad_residuals_zero_f32"))
    C.append(lambda: lad_case("lad_residuals_zero_f32_cast32", cast32=True))
    C.append(lambda: tv_product_case("tv_product_ties"))
    C.append(lambda: l1_mapped_case("l1_mapped_weight_cancel"))
    # clip / max
    C.append(lambda: clip_case("clip_bounds_from_point_f32"))
    C.append(lambda: max_linear_case("max_of_linear_bias_ties"))
    # controls, far from kinks
    C.append(lambda: mlp_case("CTRL_relu2_far", [10, 24, 4], 6, setup_far, far=True))
    C.append(lambda: mlp_case("CTRL_relu3_far_large", [20, 40, 20, 10], 4, setup_far, far=True))
    C.append(
        lambda: mlp_case("CTRL_tanh2_smooth", [10, 24, 4], 6, lambda *a: None, act="tanh", far=True)
    )
    C.append(lambda: svm_case("CTRL_svm_far", far=True))
    C.append(lambda: pool_product_case("CTRL_maxpool1d_no_ties", far=True))
    C.append(lambda: lad_case("CTRL_lad_far", far=True))
    C.append(lambda: clip_case("CTRL_clip_far", far=True))
    C.append(lambda: conv1d_relu_pool_case("CTRL_conv1d_far", far=True))
    return C


def param_count(p):
    return (
        sum(np.asarray(v).size for v in p.values()) if isinstance(p, dict) else np.asarray(p).size
    )


def selftest(case):
    """independent of the checker: correct grad vs float64 central differences at a nearby
    random point (off the kinks), directional."""
    p = cast(case["params"], np.float64)
    rng = np.random.default_rng(1)
    if isinstance(p, dict):
        p = {k: v + rng.standard_normal(v.shape) * 1e-3 for k, v in p.items()}
    else:
        p = p + rng.standard_normal(p.shape) * 1e-3
    g = case["claims"][0][1](p)
    errs = []
    for _ in range(3):
        if isinstance(p, dict):
            v = {k: rng.standard_normal(x.shape) for k, x in p.items()}
            h = 1e-6
            fp = case["fun"]({k: p[k] + h * v[k] for k in p})
            fm = case["fun"]({k: p[k] - h * v[k] for k in p})
            dd = sum(np.sum(np.asarray(g[k], np.float64) * v[k]) for k in p)
        else:
            v = rng.standard_normal(p.shape)
            h = 1e-6
            fp, fm = case["fun"](p + h * v), case["fun"](p - h * v)
            dd = np.sum(np.asarray(g, np.float64) * v)
        fd = (fp - fm) / (2 * h)
        errs.append(abs(fd - dd) / max(1e-12, abs(fd), abs(dd)))
    return max(errs)


def main():
    out = sys.argv[1]
    only = None
    if "--only" in sys.argv:
        only = sys.argv[sys.argv.index("--only") + 1]
    do_self = "--selftest" in sys.argv
    if not do_self:
        import backprop_bench.verify.check as chk
        from backprop_bench.verify import check_gradient

        print("checker:", chk.__file__, flush=True)
    rows = []
    t_all = time.time()
    for mk in cases():
        case = mk()
        if only and only not in case["name"]:
            continue
        d = case["dist"]()
        nz = d[d > 0]
        info = dict(
            case=case["name"],
            n_params=int(param_count(case["params"])),
            min_dist64=float(d.min()),
            n_exact0=int((d == 0).sum()),
            min_pos_dist64=float(nz.min()) if nz.size else None,
            far=case["far"],
        )
        if do_self:
            info["selftest_rel_err"] = selftest(case)
            print(json.dumps(info), flush=True)
            continue
        for label, g in case["claims"]:
            t0 = time.time()
            try:
                r = check_gradient(case["fun"], g, case["params"])
                verdict, rep = r.verdict, r.report()
            except Exception as e:  # noqa: BLE001
                verdict, rep = "EXCEPTION", repr(e)
            row = dict(
                info, claim=label, verdict=verdict, seconds=round(time.time() - t0, 2), report=rep
            )
            rows.append(row)
            print(
                f"{case['name']:45s} {label:42s} {verdict:25s} {row['seconds']:6.2f}s", flush=True
            )
    print("total seconds", round(time.time() - t_all, 1))
    if not do_self:
        with open(out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__, outputs=1, required=True, flags=("--selftest",), valued=("--only",))
    main()
