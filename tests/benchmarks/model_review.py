"""A second review of the checker written apart from it, after its float32 rules of this version,
by a tester who saw neither them nor their cases: 44 float32 models as practitioners write them
(MLPs with smooth activations, RNN and GRU steps, convolutions with average pooling, layer and
RMS norm, attention, embeddings with mixed-scale groups, mixtures, factorisations; 10 to 17,050
parameters), each with its correct gradient, formula errors, one element 1% off, and errors of
float32 code alone (x 1.001, x 1.01, float16 round trips of the output or an intermediate).

    python -m tests.benchmarks.model_review --out OUT.json [--only NAME_SUBSTR]

Kept as its reviewer wrote it (the README's "Rounding that its scatter misses" quotes its
counts); a measurement, not a test.
"""

# ruff: noqa: E501, E702, E731, E741, F401, F841, I001, B007, B023, B905, E722
# The reviewer's own header:
#   Independent black-box review of backprop_bench.verify.check_gradient.
#
#   Realistic float32 NumPy training code (dtype-generic: float64 params -> float64 compute,
#   data cast to the params' dtype).  For each model: the correct gradient (checked against a
#   float64 5-point central difference before use), formula errors (kind a), one element 1% off
#   (kind b), and errors of float32 code alone (kind c: x1.001 / x1.01 / float16 round trip of
#   the output / float16 round trip of an intermediate, all only when params are float32).
#
#   usage: python -m tests.benchmarks.model_review --out results.json [--only substr] [--verify-only] [--budget S]

import argparse
import json
import math
import sys
import time
import traceback

import numpy as np

from backprop_bench.verify import check_gradient
from . import usage

F32 = np.float32


# ----------------------------------------------------------------------------- helpers
def dtof(p):
    return (next(iter(p.values())) if isinstance(p, dict) else p).dtype


def H(hook, x):
    return x if hook is None else hook(x)


def sigm(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


GC = math.sqrt(2.0 / math.pi)


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(GC * (x + 0.044715 * x ** 3)))


def dgelu(x):
    t = np.tanh(GC * (x + 0.044715 * x ** 3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GC * (1.0 + 3 * 0.044715 * x * x)


def dgelu_sig(x):  # derivative of x*sigmoid(1.702x): a similar activation
    s = sigm(1.702 * x)
    return s + 1.702 * x * s * (1.0 - s)


def silu(x):
    return x * sigm(x)


def dsilu(x):
    s = sigm(x)
    return s * (1.0 + x * (1.0 - s))


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def delu(x):
    return np.where(x > 0, np.ones_like(x), np.exp(np.minimum(x, 0)))


def softplus(x):
    return np.logaddexp(0, x)


def dsigm(x):
    s = sigm(x)
    return s * (1.0 - s)


def dtanh(x):
    t = np.tanh(x)
    return 1.0 - t * t


ACT = {'tanh': (np.tanh, dtanh), 'sigmoid': (sigm, dsigm), 'softplus': (softplus, sigm),
       'silu': (silu, dsilu), 'gelu': (gelu, dgelu), 'elu': (elu, delu)}
# derivative of a similar activation / the other activation's formula (realistic slips)
SIMILAR = {
    'tanh': lambda x: np.tanh(x) * (1.0 - np.tanh(x)),        # sigmoid formula on tanh output
    'sigmoid': lambda x: 1.0 - sigm(x) ** 2,                  # tanh formula on sigmoid output
    'softplus': lambda x: sigm(2.0 * x),                      # 0.5(1+tanh x)
    'silu': dgelu_sig,                                        # x*sigmoid(1.702x)
    'gelu': dgelu_sig,                                        # sigmoid-approx GELU
    'elu': lambda x: np.where(x > 0, np.ones_like(x), 1.6732632 * np.exp(np.minimum(x, 0))),  # SELU alpha
}


def lse_rows(z):
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def onehot(y, k, dt):
    o = np.zeros((len(y), k), dt)
    o[np.arange(len(y)), y] = 1
    return o


# losses: (z, Y, **kw) -> (L, dL/dz), mean over the batch
def loss_mse(z, Y):
    r = z - Y
    return np.mean(r * r), 2.0 * r / r.size


def loss_mse_wrongconst(z, Y):
    L, d = loss_mse(z, Y)
    return L, 0.5 * d


def loss_ce(z, y, eps=0.0, T=1.0, no_T=False):
    N, K = z.shape
    q = (1.0 - eps) * onehot(y, K, z.dtype) + eps / K
    zt = z / T
    L = np.mean(lse_rows(zt) - (q * zt).sum(1))
    d = (softmax(zt) - q) / N
    return L, (d if no_T else d / T)


def loss_bce(z, y):
    return np.mean(softplus(z) - y * z), (sigm(z) - y) / z.size


def loss_huber(z, Y, delta=1.0):
    r = z - Y
    a = np.abs(r)
    q = a <= 1.0
    L = np.mean(np.where(q, 0.5 * r * r, 1.0 * (a - 0.5)))
    qd = a <= delta
    return L, np.where(qd, r, delta * np.sign(r)) / r.size


def loss_focal(z, y, g=2.0, no_gamma_term=False):
    s = 2.0 * y - 1.0
    lpt = -softplus(-s * z)
    pt = np.exp(lpt)
    L = -np.mean((1.0 - pt) ** 2 * lpt)
    gt = 0.0 if no_gamma_term else g
    d = s * (1.0 - pt) ** (g) * (gt * pt * lpt - (1.0 - pt)) / z.size
    return L, d


def loss_hnll(z, Y, half=True, no_one=False):
    mu, s = z[:, 0], z[:, 1]
    y = Y[:, 0]
    r = y - mu
    e = np.exp(-s)
    L = np.mean(0.5 * (e * r * r + s))
    N = z.shape[0]
    d = np.empty_like(z)
    d[:, 0] = -e * r / N
    ds = (0.0 if no_one else 1.0) - e * r * r
    d[:, 1] = (0.5 if half else 1.0) * ds / N
    return L, d


# ----------------------------------------------------------------------------- MLP engine
def mlp_init(rng, sizes, wscale=1.0):
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        p[f'W{i}'] = (wscale * rng.standard_normal((a, b)) / math.sqrt(a)).astype(F32)
        p[f'b{i}'] = (0.1 * rng.standard_normal(b)).astype(F32)
    return p


class MLP:
    def __init__(self, X, Y, nl, act, loss, l2=0.0, red='mean'):
        self.X, self.Y, self.nl, self.act, self.loss, self.l2, self.red = X, Y, nl, act, loss, l2, red

    def Yd(self, dt):
        return self.Y.astype(dt) if self.Y.dtype.kind == 'f' else self.Y

    def fwd(self, p):
        dt = dtof(p)
        h = self.X.astype(dt)
        hs, zs = [h], []
        for i in range(self.nl):
            z = h @ p[f'W{i}'] + p[f'b{i}']
            if i < self.nl - 1:
                zs.append(z)
                h = ACT[self.act][0](z)
                hs.append(h)
        return z, hs, zs

    def fun(self, p):
        out, _, _ = self.fwd(p)
        L, _ = self.loss(out, self.Yd(dtof(p)))
        if self.red == 'sum':
            L = L * out.shape[0]
        if self.l2:
            L = L + 0.5 * self.l2 * sum(np.sum(p[f'W{i}'] ** 2) for i in range(self.nl))
        return L

    def grad(self, p, hook=None, dact=None, transpose=None, no_l2=False, lkw=None, avg=False,
             lossg=None):
        out, hs, zs = self.fwd(p)
        _, d = (lossg or self.loss)(out, self.Yd(dtof(p)), **(lkw or {}))
        if self.red == 'sum' and not avg:
            d = d * out.shape[0]
        d = H(hook, d)
        da = dact or ACT[self.act][1]
        g = {}
        for i in reversed(range(self.nl)):
            W = p[f'W{i}']
            g[f'W{i}'] = hs[i].T @ d + (0.0 if (no_l2 or not self.l2) else self.l2 * W)
            g[f'b{i}'] = d.sum(0)
            if i > 0:
                d = (d @ (W if transpose == i else W.T)) * da(zs[i - 1])
        return {k: g[k] for k in p}


def teacher_reg(rng, X, k=1, noise=0.1):
    W = rng.standard_normal((X.shape[1], 8)) / math.sqrt(X.shape[1])
    V = rng.standard_normal((8, k))
    return (np.tanh(X @ W) @ V + noise * rng.standard_normal((X.shape[0], k))).astype(F32)


def teacher_cls(rng, X, k):
    W = rng.standard_normal((X.shape[1], k)) * 2 / math.sqrt(X.shape[1])
    return np.argmax(X @ W + 0.5 * rng.standard_normal((X.shape[0], k)), 1)


def mlp_case(name, seed, sizes, act, task, N=64, l2=0.0, red='mean', wrongs=(), wscale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, sizes[0])).astype(F32)
    k = sizes[-1]
    if task == 'mse':
        Y, loss = teacher_reg(rng, X, k), loss_mse
    elif task == 'huber':
        Y, loss = None, loss_huber
    elif task == 'ce':
        Y, loss = teacher_cls(rng, X, k), loss_ce
    elif task == 'lsce':
        Y, loss = teacher_cls(rng, X, k), (lambda z, y, **kw: loss_ce(z, y, **{'eps': 0.01, 'T': 2.0, **kw}))
    elif task == 'bce':
        Y, loss = (teacher_reg(rng, X, 1) > 0).astype(F32), loss_bce
    elif task == 'focal':
        Y, loss = (teacher_reg(rng, X, 1) > 0).astype(F32), loss_focal
    elif task == 'ae':
        Y, loss = X, loss_mse
    elif task == 'ae_bce':
        X = sigm(X).astype(F32)
        Y, loss = X, loss_bce
    elif task == 'hnll':
        Y, loss = teacher_reg(rng, X, 1, noise=0.3), loss_hnll
    p = mlp_init(rng, sizes, wscale)
    m = MLP(X, Y, len(sizes) - 1, act, loss, l2, red)
    if task == 'huber':  # residuals placed away from |r| = delta (smooth region)
        m.Y = np.zeros((N, k), F32)
        out0, _, _ = m.fwd({kk: v.astype(np.float64) for kk, v in p.items()})
        r = rng.standard_normal((N, k)) * 1.3
        r = np.where(np.abs(np.abs(r) - 1.0) < 0.15, r * 0.6, r)
        m.Y = (out0 - r).astype(F32)
    W = {}
    for w in wrongs:
        if w == 'similar_act':
            W['a_dact_similar'] = dict(dact=SIMILAR[act])
        elif w == 'transpose':
            W['a_transposed_W1'] = dict(transpose=1)
        elif w == 'transpose2':
            W['a_transposed_W2'] = dict(transpose=2)
        elif w == 'no_l2':
            W['a_missing_l2'] = dict(no_l2=True)
        elif w == 'avg':
            W['a_averaged_not_summed'] = dict(avg=True)
        elif w == 'mse_const':
            W['a_mse_missing_2'] = dict(lossg=loss_mse_wrongconst)
        elif w == 'huber_delta':
            W['a_huber_delta_0.9'] = dict(lkw=dict(delta=0.9))
        elif w == 'focal_no_gamma':
            W['a_focal_no_gamma_term'] = dict(lkw=dict(no_gamma_term=True))
        elif w == 'focal_gamma':
            W['a_focal_gamma_2.2'] = dict(lkw=dict(g=2.2))
        elif w == 'ls_no_eps':
            W['a_labelsmooth_missing'] = dict(lkw=dict(eps=0.0))
        elif w == 'no_T':
            W['a_temperature_missing'] = dict(lkw=dict(no_T=True))
        elif w == 'hnll_half':
            W['a_nll_logvar_no_half'] = dict(lkw=dict(half=False))
        elif w == 'hnll_one':
            W['a_nll_missing_one'] = dict(lkw=dict(no_one=True))
        else:
            raise ValueError(w)
    return dict(name=name, fun=m.fun, grad=m.grad, params=p, wrongs=W)


# ----------------------------------------------------------------------------- linear models
def logreg_case(name, seed, F, N, lam, red='mean', feat_scale=False, wrongs=()):
    rng = np.random.default_rng(seed)
    sc = 10 ** rng.uniform(-2, 2, F) if feat_scale else np.ones(F)
    X = (rng.standard_normal((N, F)) * sc).astype(F32)
    wt = rng.standard_normal(F) / sc / math.sqrt(F) * 2
    y = (X @ wt + 0.5 * rng.standard_normal(N) > 0).astype(F32)
    w0 = np.concatenate([0.5 * rng.standard_normal(F) / sc / math.sqrt(F), [0.1]]).astype(F32)

    def fun(w):
        dt = w.dtype
        z = X.astype(dt) @ w[:-1] + w[-1]
        L = softplus(z) - y.astype(dt) * z
        L = L.mean() if red == 'mean' else L.sum()
        return L + 0.5 * lam * np.sum(w[:-1] ** 2)

    def grad(w, hook=None, no_l2=False, l2_bias=False, l2c=1.0, avg=False):
        dt = w.dtype
        Xd = X.astype(dt)
        z = Xd @ w[:-1] + w[-1]
        r = sigm(z) - y.astype(dt)
        if red == 'mean' or avg:
            r = r / N
        r = H(hook, r)
        g = np.empty_like(w)
        g[:-1] = Xd.T @ r + (0.0 if no_l2 else l2c * lam * w[:-1])
        g[-1] = r.sum() + (lam * w[-1] if l2_bias else 0.0)
        return g
    table = {'no_l2': ('a_missing_l2', dict(no_l2=True)), 'l2_bias': ('a_l2_on_bias', dict(l2_bias=True)),
             'l2c': ('a_l2_factor_2', dict(l2c=2.0)), 'avg': ('a_averaged_not_summed', dict(avg=True))}
    return dict(name=name, fun=fun, grad=grad, params=w0, wrongs=dict(table[k] for k in wrongs))


def softmaxreg_case(name, seed, F, K, N, lam, wrongs=()):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, F)).astype(F32)
    y = teacher_cls(rng, X, K)
    p = {'W': (0.3 * rng.standard_normal((F, K)) / math.sqrt(F)).astype(F32),
         'b': (0.1 * rng.standard_normal(K)).astype(F32)}

    def fun(p):
        dt = dtof(p)
        z = X.astype(dt) @ p['W'] + p['b']
        return loss_ce(z, y)[0] + 0.5 * lam * np.sum(p['W'] ** 2)

    def grad(p, hook=None, no_l2=False, l2_bias=False, l2c=1.0):
        dt = dtof(p)
        Xd = X.astype(dt)
        z = Xd @ p['W'] + p['b']
        d = H(hook, loss_ce(z, y)[1])
        return {'W': Xd.T @ d + (0.0 if no_l2 else l2c * lam * p['W']),
                'b': d.sum(0) + (lam * p['b'] if l2_bias else 0.0)}
    table = {'no_l2': ('a_missing_l2', dict(no_l2=True)), 'l2_bias': ('a_l2_on_bias', dict(l2_bias=True)),
             'l2c': ('a_l2_factor_2', dict(l2c=2.0))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


def huber_linreg_case(name, seed, F=100, N=128, lam=0.01):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, F)).astype(F32)
    p = {'w': (rng.standard_normal(F) / math.sqrt(F)).astype(F32), 'b': np.array([0.2], F32)}
    z0 = X.astype(np.float64) @ p['w'].astype(np.float64) + 0.2
    r = rng.standard_normal(N) * 1.3
    r = np.where(np.abs(np.abs(r) - 1.0) < 0.15, r * 0.6, r)
    Y = (z0 - r).astype(F32)

    def fun(p):
        dt = dtof(p)
        z = X.astype(dt) @ p['w'] + p['b'][0]
        return loss_huber(z, Y.astype(dt))[0] + 0.5 * lam * np.sum(p['w'] ** 2)

    def grad(p, hook=None, delta=1.0, no_l2=False):
        dt = dtof(p)
        Xd = X.astype(dt)
        z = Xd @ p['w'] + p['b'][0]
        d = H(hook, loss_huber(z, Y.astype(dt), delta=delta)[1])
        return {'w': Xd.T @ d + (0.0 if no_l2 else lam * p['w']), 'b': d.sum(keepdims=True)}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_huber_delta_0.9': dict(delta=0.9), 'a_missing_l2': dict(no_l2=True)})


def poisson_case(name, seed, F, N, lam, red='mean', wrongs=()):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((N, F)) / math.sqrt(F)).astype(F32)
    wt = rng.standard_normal(F) * 0.8
    y = rng.poisson(np.exp(X @ wt + 0.5)).astype(F32)
    p = {'w': (0.3 * rng.standard_normal(F)).astype(F32), 'b': np.array([0.3], F32)}

    def fun(p):
        dt = dtof(p)
        z = X.astype(dt) @ p['w'] + p['b'][0]
        L = np.exp(z) - y.astype(dt) * z
        L = L.mean() if red == 'mean' else L.sum()
        return L + 0.5 * lam * np.sum(p['w'] ** 2)

    def grad(p, hook=None, no_l2=False, dlam=False, avg=False, l2_bias=False):
        dt = dtof(p)
        Xd = X.astype(dt)
        z = Xd @ p['w'] + p['b'][0]
        lamv = np.exp(z)
        d = (1.0 - y.astype(dt) / lamv) if dlam else (lamv - y.astype(dt))
        if red == 'mean' or avg:
            d = d / N
        d = H(hook, d)
        return {'w': Xd.T @ d + (0.0 if no_l2 else lam * p['w']),
                'b': d.sum(keepdims=True) + (lam * p['b'] if l2_bias else 0.0)}
    table = {'no_l2': ('a_missing_l2', dict(no_l2=True)), 'dlam': ('a_poisson_dL_dlambda_not_dz', dict(dlam=True)),
             'avg': ('a_averaged_not_summed', dict(avg=True)), 'l2_bias': ('a_l2_on_bias', dict(l2_bias=True))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


# ----------------------------------------------------------------------------- conv 1-D + avg pool
def conv_fwd(X, K, b):
    k = K.shape[2]
    T2 = X.shape[2] - k + 1
    Z = sum(np.einsum('nct,oc->not', X[:, :, j:j + T2], K[:, :, j]) for j in range(k))
    return Z + b[None, :, None]


def conv_bwd(X, K, dZ, need_dx=True):
    k = K.shape[2]
    T2 = dZ.shape[2]
    dK = np.stack([np.einsum('not,nct->oc', dZ, X[:, :, j:j + T2]) for j in range(k)], axis=2)
    db = dZ.sum((0, 2))
    dX = None
    if need_dx:
        dX = np.zeros_like(X)
        for j in range(k):
            dX[:, :, j:j + T2] += np.einsum('not,oc->nct', dZ, K[:, :, j])
    return dK, db, dX


def pool_fwd(Hh, w):
    N, O, T = Hh.shape
    T3 = T // w
    return Hh[:, :, :T3 * w].reshape(N, O, T3, w).mean(3)


def pool_bwd(dA, w, T, nodiv=False):
    N, O, T3 = dA.shape
    dH = np.zeros((N, O, T), dA.dtype)
    dH[:, :, :T3 * w] = np.repeat(dA, w, axis=2) / (1.0 if nodiv else w)
    return dH


def conv_small_case(name, seed):
    rng = np.random.default_rng(seed)
    N, C, T, O, k, pw, K = 32, 2, 40, 8, 5, 4, 3
    t = np.arange(T)
    y = rng.integers(0, K, N)
    X = (np.sin(0.2 * (y[:, None, None] + 1) * t[None, None, :] + rng.uniform(0, 6, (N, C, 1)))
         + 0.3 * rng.standard_normal((N, C, T))).astype(F32)
    nf = O * ((T - k + 1) // pw)
    p = {'K1': (rng.standard_normal((O, C, k)) / math.sqrt(C * k)).astype(F32), 'c1': (0.1 * rng.standard_normal(O)).astype(F32),
         'Wo': (rng.standard_normal((nf, K)) / math.sqrt(nf)).astype(F32), 'bo': np.zeros(K, F32)}

    def fwd(p):
        Xd = X.astype(dtof(p))
        Z = conv_fwd(Xd, p['K1'], p['c1'])
        Hh = np.tanh(Z)
        A = pool_fwd(Hh, pw)
        f = A.reshape(N, -1)
        return Xd, Z, Hh, A, f, f @ p['Wo'] + p['bo']

    def fun(p):
        return loss_ce(fwd(p)[-1], y)[0]

    def grad(p, hook=None, flip=False, nodiv=False):
        Xd, Z, Hh, A, f, z = fwd(p)
        d = H(hook, loss_ce(z, y)[1])
        g = {'Wo': f.T @ d, 'bo': d.sum(0)}
        dA = (d @ p['Wo'].T).reshape(A.shape)
        dZ = pool_bwd(dA, pw, Z.shape[2], nodiv) * (1.0 - Hh * Hh)
        dK, db, _ = conv_bwd(Xd, p['K1'], dZ, False)
        g['K1'] = dK[:, :, ::-1].copy() if flip else dK
        g['c1'] = db
        return {kk: g[kk] for kk in p}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_conv_kernel_flipped': dict(flip=True), 'a_avgpool_missing_div': dict(nodiv=True)})


def conv_big_case(name, seed):
    rng = np.random.default_rng(seed)
    N, C, T, O1, k1, O2, k2, pw, K = 24, 4, 64, 16, 7, 16, 5, 6, 5
    t = np.arange(T)
    y = rng.integers(0, K, N)
    X = (np.sin(0.15 * (y[:, None, None] + 1) * t[None, None, :] + rng.uniform(0, 6, (N, C, 1)))
         + 0.3 * rng.standard_normal((N, C, T))).astype(F32)
    T2 = T - k1 + 1 - k2 + 1
    nf = O2 * (T2 // pw)
    p = {'K1': (rng.standard_normal((O1, C, k1)) / math.sqrt(C * k1)).astype(F32), 'c1': (0.1 * rng.standard_normal(O1)).astype(F32),
         'K2': (rng.standard_normal((O2, O1, k2)) / math.sqrt(O1 * k2)).astype(F32), 'c2': (0.1 * rng.standard_normal(O2)).astype(F32),
         'Wo': (rng.standard_normal((nf, K)) / math.sqrt(nf)).astype(F32), 'bo': np.zeros(K, F32)}

    def fwd(p):
        Xd = X.astype(dtof(p))
        Z1 = conv_fwd(Xd, p['K1'], p['c1'])
        H1 = gelu(Z1)
        Z2 = conv_fwd(H1, p['K2'], p['c2'])
        H2 = np.tanh(Z2)
        A = pool_fwd(H2, pw)
        f = A.reshape(N, -1)
        return Xd, Z1, H1, Z2, H2, A, f, f @ p['Wo'] + p['bo']

    def fun(p):
        return loss_ce(fwd(p)[-1], y)[0]

    def grad(p, hook=None, flip=False, nodiv=False):
        Xd, Z1, H1, Z2, H2, A, f, z = fwd(p)
        d = loss_ce(z, y)[1]
        g = {'Wo': f.T @ d, 'bo': d.sum(0)}
        dA = (d @ p['Wo'].T).reshape(A.shape)
        dZ2 = pool_bwd(dA, pw, Z2.shape[2], nodiv) * (1.0 - H2 * H2)
        dZ2 = H(hook, dZ2)
        dK2, db2, dH1 = conv_bwd(H1, p['K2'], dZ2)
        g['K2'] = dK2[:, :, ::-1].copy() if flip else dK2
        g['c2'] = db2
        dZ1 = dH1 * dgelu(Z1)
        g['K1'], g['c1'], _ = conv_bwd(Xd, p['K1'], dZ1, False)
        return {kk: g[kk] for kk in p}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_conv2_kernel_flipped': dict(flip=True), 'a_avgpool_missing_div': dict(nodiv=True)})


# ----------------------------------------------------------------------------- RNNs
def rnn_case(name, seed, I, Hd, T, N, K, per_step, char=False, wrongs=()):
    rng = np.random.default_rng(seed)
    p = {}
    if char:
        V = K
        toks = np.zeros((N, T + 1), int)
        toks[:, 0] = rng.integers(0, V, N)
        for t in range(T):  # a noisy Markov chain
            toks[:, t + 1] = np.where(rng.random(N) < 0.7, (toks[:, t] * 3 + 1) % V, rng.integers(0, V, N))
        p['E'] = (0.5 * rng.standard_normal((V, I))).astype(F32)
        X = None
        y = toks[:, 1:]
    else:
        X = rng.standard_normal((N, T, I)).astype(F32)
        if per_step:
            y = np.argmax(np.cumsum(X[:, :, :K], axis=1) + 0.3 * rng.standard_normal((N, T, K)), -1)
        else:
            y = teacher_reg(rng, X.sum(1) / math.sqrt(T), 1)
    p['Wx'] = (rng.standard_normal((I, Hd)) / math.sqrt(I)).astype(F32)
    p['Wh'] = (0.9 * np.linalg.qr(rng.standard_normal((Hd, Hd)))[0] + 0.15 * rng.standard_normal((Hd, Hd)) / math.sqrt(Hd)).astype(F32)
    p['b'] = (0.1 * rng.standard_normal(Hd)).astype(F32)
    p['Wo'] = (rng.standard_normal((Hd, K)) / math.sqrt(Hd)).astype(F32)
    p['bo'] = np.zeros(K, F32)

    def inputs(p):
        if char:
            return p['E'][toks[:, :-1]]
        return X.astype(dtof(p))

    def fwd(p):
        Xd = inputs(p)
        h = np.zeros((N, Hd), dtof(p))
        hs = [h]
        for t in range(T):
            h = np.tanh(Xd[:, t] @ p['Wx'] + h @ p['Wh'] + p['b'])
            hs.append(h)
        return Xd, hs

    def fun(p):
        Xd, hs = fwd(p)
        if per_step:
            z = np.stack(hs[1:], 1) @ p['Wo'] + p['bo']
            return loss_ce(z.reshape(N * T, K), y.reshape(-1))[0]
        return loss_mse(hs[-1] @ p['Wo'] + p['bo'], y.astype(dtof(p)))[0]

    def grad(p, hook=None, transpose=False, trunc=None, db_overwrite=False, emb_overwrite=False):
        Xd, hs = fwd(p)
        g = {k: np.zeros_like(v) for k, v in p.items()}
        if per_step:
            Hs = np.stack(hs[1:], 1)
            z = Hs @ p['Wo'] + p['bo']
            d = H(hook, loss_ce(z.reshape(N * T, K), y.reshape(-1))[1]).reshape(N, T, K)
            g['Wo'] = np.einsum('nth,ntk->hk', Hs, d)
            g['bo'] = d.sum((0, 1))
            dhs = d @ p['Wo'].T
        else:
            d = H(hook, loss_mse(hs[-1] @ p['Wo'] + p['bo'], y.astype(dtof(p)))[1])
            g['Wo'] = hs[-1].T @ d
            g['bo'] = d.sum(0)
            dhs = np.zeros((N, T, Hd), dtof(p))
            dhs[:, -1] = d @ p['Wo'].T
        dX = np.zeros_like(Xd)
        dnext = np.zeros((N, Hd), dtof(p))
        for t in reversed(range(T)):
            if trunc is not None and t < T - trunc:
                break
            dh = dhs[:, t] + dnext
            da = dh * (1.0 - hs[t + 1] ** 2)
            g['Wx'] += Xd[:, t].T @ da
            g['Wh'] += hs[t].T @ da
            if db_overwrite:
                g['b'] = da.sum(0)
            else:
                g['b'] += da.sum(0)
            dX[:, t] = da @ p['Wx'].T
            dnext = da @ (p['Wh'] if transpose else p['Wh'].T)
        if char:
            if emb_overwrite:
                g['E'][toks[:, :-1]] = dX
            else:
                np.add.at(g['E'], toks[:, :-1], dX)
        return g
    table = {'transpose': ('a_transposed_Wh', dict(transpose=True)),
             'trunc': (f'a_truncated_bptt_{T - 1}of{T}', dict(trunc=T - 1)),
             'db_overwrite': ('a_bias_grad_overwritten_not_accumulated', dict(db_overwrite=True)),
             'emb_overwrite': ('a_embedding_grad_assigned_not_added', dict(emb_overwrite=True))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


def gru_case(name, seed, I, Hd, T, N, K, wrongs=()):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, I)).astype(F32)
    y = np.argmax(X[:, :, :K].sum(1) + 0.5 * rng.standard_normal((N, K)), -1)
    p = {}
    for gname in 'zrn':
        p['W' + gname] = (rng.standard_normal((I, Hd)) / math.sqrt(I)).astype(F32)
        p['U' + gname] = (rng.standard_normal((Hd, Hd)) / math.sqrt(Hd)).astype(F32)
        p['b' + gname] = (0.1 * rng.standard_normal(Hd)).astype(F32)
    p['Wo'] = (rng.standard_normal((Hd, K)) / math.sqrt(Hd)).astype(F32)
    p['bo'] = np.zeros(K, F32)

    def fwd(p):
        Xd = X.astype(dtof(p))
        h = np.zeros((N, Hd), dtof(p))
        cache = []
        for t in range(T):
            x = Xd[:, t]
            z = sigm(x @ p['Wz'] + h @ p['Uz'] + p['bz'])
            r = sigm(x @ p['Wr'] + h @ p['Ur'] + p['br'])
            n = np.tanh(x @ p['Wn'] + (r * h) @ p['Un'] + p['bn'])
            hn = (1.0 - z) * n + z * h
            cache.append((x, h, z, r, n))
            h = hn
        return h, cache

    def fun(p):
        h, _ = fwd(p)
        return loss_ce(h @ p['Wo'] + p['bo'], y)[0]

    def grad(p, hook=None, no_reset_path=False, transpose=None):
        h, cache = fwd(p)
        d = H(hook, loss_ce(h @ p['Wo'] + p['bo'], y)[1])
        g = {k: np.zeros_like(v) for k, v in p.items()}
        g['Wo'] = h.T @ d
        g['bo'] = d.sum(0)
        dh = d @ p['Wo'].T

        def UT(k):
            return p[k] if transpose == k else p[k].T
        for (x, hp, z, r, n) in reversed(cache):
            dn = dh * (1.0 - z)
            dz = dh * (hp - n)
            dhp = dh * z
            dan = dn * (1.0 - n * n)
            g['Wn'] += x.T @ dan
            g['Un'] += (r * hp).T @ dan
            g['bn'] += dan.sum(0)
            drh = dan @ UT('Un')
            dr = drh * hp
            if not no_reset_path:
                dhp = dhp + drh * r
            daz = dz * z * (1.0 - z)
            dar = dr * r * (1.0 - r)
            for gname, da in (('z', daz), ('r', dar)):
                g['W' + gname] += x.T @ da
                g['U' + gname] += hp.T @ da
                g['b' + gname] += da.sum(0)
                dhp = dhp + da @ UT('U' + gname)
            dh = dhp
        return g
    table = {'no_reset_path': ('a_gru_missing_h_through_reset', dict(no_reset_path=True)),
             'tUn': ('a_transposed_Un', dict(transpose='Un')), 'tUz': ('a_transposed_Uz', dict(transpose='Uz'))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


# ----------------------------------------------------------------------------- normalisation inside a net
def layernorm_case(name, seed, F=20, Hd=64, N=64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, F)).astype(F32)
    Y = teacher_reg(rng, X, 1)
    p = {'W1': (rng.standard_normal((F, Hd)) / math.sqrt(F)).astype(F32), 'b1': (0.1 * rng.standard_normal(Hd)).astype(F32),
         'g': (1.0 + 0.1 * rng.standard_normal(Hd)).astype(F32), 'beta': (0.1 * rng.standard_normal(Hd)).astype(F32),
         'W2': (rng.standard_normal((Hd, 1)) / math.sqrt(Hd)).astype(F32), 'b2': np.zeros(1, F32)}
    eps = 1e-5

    def fwd(p):
        Xd = X.astype(dtof(p))
        z = Xd @ p['W1'] + p['b1']
        mu = z.mean(1, keepdims=True)
        s = np.sqrt(((z - mu) ** 2).mean(1, keepdims=True) + eps)
        xh = (z - mu) / s
        yv = p['g'] * xh + p['beta']
        h = gelu(yv)
        return Xd, s, xh, yv, h, h @ p['W2'] + p['b2']

    def fun(p):
        return loss_mse(fwd(p)[-1], Y.astype(dtof(p)))[0]

    def grad(p, hook=None, drop_var=False, drop_mean=False):
        Xd, s, xh, yv, h, out = fwd(p)
        d = loss_mse(out, Y.astype(dtof(p)))[1]
        g = {'W2': h.T @ d, 'b2': d.sum(0)}
        dy = (d @ p['W2'].T) * dgelu(yv)
        dy = H(hook, dy)
        g['g'] = (dy * xh).sum(0)
        g['beta'] = dy.sum(0)
        dxh = dy * p['g']
        dz = dxh
        if not drop_mean:
            dz = dz - dxh.mean(1, keepdims=True)
        if not drop_var:
            dz = dz - xh * (dxh * xh).mean(1, keepdims=True)
        dz = dz / s
        g['W1'] = Xd.T @ dz
        g['b1'] = dz.sum(0)
        return {k: g[k] for k in p}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_layernorm_missing_variance_term': dict(drop_var=True),
                        'a_layernorm_missing_mean_term': dict(drop_mean=True)})


def rmsnorm_case(name, seed, F=16, Hd=48, K=4, N=64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, F)).astype(F32)
    y = teacher_cls(rng, X, K)
    p = {'W1': (rng.standard_normal((F, Hd)) / math.sqrt(F)).astype(F32), 'b1': (0.1 * rng.standard_normal(Hd)).astype(F32),
         'g': (1.0 + 0.1 * rng.standard_normal(Hd)).astype(F32),
         'W2': (rng.standard_normal((Hd, K)) / math.sqrt(Hd)).astype(F32), 'b2': np.zeros(K, F32)}
    eps = 1e-6

    def fwd(p):
        Xd = X.astype(dtof(p))
        z = Xd @ p['W1'] + p['b1']
        r = np.sqrt((z * z).mean(1, keepdims=True) + eps)
        xh = z / r
        yv = p['g'] * xh
        h = silu(yv)
        return Xd, r, xh, yv, h, h @ p['W2'] + p['b2']

    def fun(p):
        return loss_ce(fwd(p)[-1], y)[0]

    def grad(p, hook=None, drop=False, similar=False):
        Xd, r, xh, yv, h, out = fwd(p)
        d = H(hook, loss_ce(out, y)[1])
        g = {'W2': h.T @ d, 'b2': d.sum(0)}
        dy = (d @ p['W2'].T) * (dgelu_sig(yv) if similar else dsilu(yv))
        g['g'] = (dy * xh).sum(0)
        dxh = dy * p['g']
        dz = dxh if drop else dxh - xh * (dxh * xh).mean(1, keepdims=True)
        dz = dz / r
        g['W1'] = Xd.T @ dz
        g['b1'] = dz.sum(0)
        return {k: g[k] for k in p}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_rmsnorm_missing_projection_term': dict(drop=True), 'a_dact_similar': dict(similar=True)})


# ----------------------------------------------------------------------------- attention
def attention_case(name, seed, D, T, B, K, sharp=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, T, D)).astype(F32)
    y = np.argmax(X[:, :, :K].mean(1) * 3 + 0.3 * rng.standard_normal((B, K)), -1)
    p = {'Wq': (sharp * rng.standard_normal((D, D)) / math.sqrt(D)).astype(F32),
         'Wk': (sharp * rng.standard_normal((D, D)) / math.sqrt(D)).astype(F32),
         'Wv': (rng.standard_normal((D, D)) / math.sqrt(D)).astype(F32),
         'Wo': (rng.standard_normal((D, K)) / math.sqrt(D)).astype(F32), 'bo': np.zeros(K, F32)}
    c = 1.0 / math.sqrt(D)

    def fwd(p):
        Xd = X.astype(dtof(p))
        Q, Kk, V = Xd @ p['Wq'], Xd @ p['Wk'], Xd @ p['Wv']
        S = c * (Q @ Kk.transpose(0, 2, 1))
        A = softmax(S)
        O = A @ V
        P = O.mean(1)
        return Xd, Q, Kk, V, S, A, O, P, P @ p['Wo'] + p['bo']

    def fun(p):
        return loss_ce(fwd(p)[-1], y)[0]

    def grad(p, hook=None, no_scale=False, no_center=False, tWv=False):
        Xd, Q, Kk, V, S, A, O, P, z = fwd(p)
        d = loss_ce(z, y)[1]
        g = {'Wo': P.T @ d, 'bo': d.sum(0)}
        dP = d @ p['Wo'].T
        dO = np.repeat(dP[:, None, :], T, axis=1) / T
        dA = dO @ V.transpose(0, 2, 1)
        dV = A.transpose(0, 2, 1) @ dO
        dS = A * dA if no_center else A * (dA - (dA * A).sum(-1, keepdims=True))
        dS = H(hook, dS)
        cc = 1.0 if no_scale else c
        dQ = cc * (dS @ Kk)
        dK = cc * (dS.transpose(0, 2, 1) @ Q)
        g['Wq'] = np.einsum('btd,bte->de', Xd, dQ)
        g['Wk'] = np.einsum('btd,bte->de', Xd, dK)
        gv = np.einsum('btd,bte->de', Xd, dV)
        g['Wv'] = gv.T.copy() if tWv else gv
        return {k: g[k] for k in p}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_attention_missing_1/sqrt(d)': dict(no_scale=True),
                        'a_softmax_jacobian_missing_centering': dict(no_center=True),
                        'a_dWv_transposed': dict(tWv=True)})


# ----------------------------------------------------------------------------- embeddings, mixed scales
def embedding_case(name, seed, V, Dm, bag, N, K, lam, wrongs=()):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, V, (N, bag))
    tv = rng.standard_normal((V, K))
    y = np.argmax(tv[toks].mean(1) + 0.3 * rng.standard_normal((N, K)), -1) if K > 1 else \
        (tv[toks, 0].mean(1) > 0).astype(F32)
    p = {'E': rng.standard_normal((V, Dm)).astype(F32),                       # weights of 1
         'c': (1e-4 * rng.standard_normal(Dm)).astype(F32),                   # a bias of 1e-4
         'Wo': (rng.standard_normal((Dm, K)) / math.sqrt(Dm)).astype(F32),
         'bo': (1e-4 * rng.standard_normal(K)).astype(F32)}                   # a bias of 1e-4

    def fwd(p):
        pre = p['E'][toks].mean(1) + p['c']
        h = np.tanh(pre)
        return h, h @ p['Wo'] + p['bo']

    def lossf(z):
        return loss_ce(z, y) if K > 1 else loss_bce(z[:, 0], y.astype(z.dtype))

    def fun(p):
        return lossf(fwd(p)[1])[0] + 0.5 * lam * np.sum(p['E'] ** 2)

    def grad(p, hook=None, overwrite=False, nodiv=False, no_l2=False):
        h, z = fwd(p)
        d = lossf(z)[1]
        d = H(hook, d if K > 1 else d[:, None])
        g = {'Wo': h.T @ d, 'bo': d.sum(0)}
        dpre = (d @ p['Wo'].T) * (1.0 - h * h)
        g['c'] = dpre.sum(0)
        contrib = np.repeat(dpre[:, None, :], bag, axis=1) / (1.0 if nodiv else bag)
        gE = np.zeros_like(p['E'])
        if overwrite:
            gE[toks] = contrib
        else:
            np.add.at(gE, toks, contrib)
        g['E'] = gE + (0.0 if no_l2 else lam * p['E'])
        return {k: g[k] for k in p}
    table = {'overwrite': ('a_embedding_grad_assigned_not_added', dict(overwrite=True)),
             'nodiv': ('a_meanpool_missing_div', dict(nodiv=True)), 'no_l2': ('a_missing_l2', dict(no_l2=True))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


# ----------------------------------------------------------------------------- mixture of Gaussians
def mog_case(name, seed, K, D, N, wrongs=()):
    rng = np.random.default_rng(seed)
    cent = rng.standard_normal((3, D)) * 3
    x = (cent[rng.integers(0, 3, N)] + rng.standard_normal((N, D)) * 0.8).astype(F32)
    p = {'logit': (0.3 * rng.standard_normal(K)).astype(F32),
         'mu': (x[rng.choice(N, K, replace=False)] + 0.2 * rng.standard_normal((K, D))).astype(F32),
         'logsig': (0.2 * rng.standard_normal((K, D))).astype(F32)}
    c0 = 0.5 * math.log(2 * math.pi) * D

    def logp(p):
        xd = x.astype(dtof(p))
        u = (xd[:, None, :] - p['mu'][None]) / np.exp(p['logsig'])[None]   # (N,K,D)
        lpi = p['logit'] - lse_rows(p['logit'][None])[0]
        return xd, u, lpi[None] - 0.5 * (u * u).sum(2) - p['logsig'].sum(1)[None] - c0

    def fun(p):
        return -np.mean(lse_rows(logp(p)[2]))

    def grad(p, hook=None, no_prior_norm=False, logvar_half=False, sig_not_sq=False, no_logdet=False):
        xd, u, lp = logp(p)
        gam = H(hook, softmax(lp) / N)                        # (N,K) responsibilities / N
        pi = softmax(p['logit'][None])[0]
        g = {'logit': -gam.sum(0) + (0.0 if no_prior_norm else pi)}
        inv = np.exp(-p['logsig'])
        g['mu'] = -(gam[:, :, None] * u * (1.0 if sig_not_sq else inv[None])).sum(0)
        q = (0.5 if logvar_half else 1.0) * u * u - (0.0 if no_logdet else 1.0)
        g['logsig'] = -(gam[:, :, None] * q).sum(0)
        return g
    table = {'no_prior_norm': ('a_mog_missing_prior_normaliser', dict(no_prior_norm=True)),
             'logvar_half': ('a_mog_logsigma_treated_as_logvar', dict(logvar_half=True)),
             'sig_not_sq': ('a_mog_dmu_sigma_not_squared', dict(sig_not_sq=True)),
             'no_logdet': ('a_mog_missing_logdet_term', dict(no_logdet=True))}
    return dict(name=name, fun=fun, grad=grad, params=p, wrongs=dict(table[k] for k in wrongs))


# ----------------------------------------------------------------------------- matrix factorisation
def mf_case(name, seed, nu, ni, r, dens, lam):
    rng = np.random.default_rng(seed)
    R = (rng.standard_normal((nu, r)) @ rng.standard_normal((r, ni)) / math.sqrt(r) + 0.1 * rng.standard_normal((nu, ni))).astype(F32)
    M = (rng.random((nu, ni)) < dens).astype(F32)
    p = {'U': (0.5 * rng.standard_normal((nu, r))).astype(F32), 'V': (0.5 * rng.standard_normal((ni, r))).astype(F32)}

    def fun(p):
        dt = dtof(p)
        E = (p['U'] @ p['V'].T - R.astype(dt)) * M.astype(dt)
        return 0.5 * np.sum(E * E) + 0.5 * lam * (np.sum(p['U'] ** 2) + np.sum(p['V'] ** 2))

    def grad(p, hook=None, no_l2=False, avg=False):
        dt = dtof(p)
        E = (p['U'] @ p['V'].T - R.astype(dt)) * M.astype(dt)
        if avg:
            E = E / M.sum()
        E = H(hook, E)
        l = 0.0 if no_l2 else lam
        return {'U': E @ p['V'] + l * p['U'], 'V': E.T @ p['U'] + l * p['V']}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_missing_l2': dict(no_l2=True), 'a_averaged_not_summed': dict(avg=True)})


def mf_bias_case(name, seed, nu, ni, r, dens, lam, lamb):
    rng = np.random.default_rng(seed)
    R = (3.0 + rng.standard_normal((nu, 1)) * 0.5 + rng.standard_normal((1, ni)) * 0.5
         + rng.standard_normal((nu, r)) @ rng.standard_normal((r, ni)) / math.sqrt(r) * 0.5).astype(F32)
    M = rng.random((nu, ni)) < dens
    iu, ii = np.nonzero(M)
    rv = R[iu, ii]
    nobs = len(rv)
    p = {'U': (0.3 * rng.standard_normal((nu, r))).astype(F32), 'V': (0.3 * rng.standard_normal((ni, r))).astype(F32),
         'bu': (0.1 * rng.standard_normal(nu)).astype(F32), 'bi': (0.1 * rng.standard_normal(ni)).astype(F32),
         'mu': np.array([2.9], F32)}

    def err(p):
        pred = (p['U'][iu] * p['V'][ii]).sum(1) + p['bu'][iu] + p['bi'][ii] + p['mu'][0]
        return pred - rv.astype(dtof(p))

    def fun(p):
        e = err(p)
        return (0.5 * np.mean(e * e) + 0.5 * lam * (np.sum(p['U'] ** 2) + np.sum(p['V'] ** 2))
                + 0.5 * lamb * (np.sum(p['bu'] ** 2) + np.sum(p['bi'] ** 2)))

    def grad(p, hook=None, no_bias_reg=False, bias_count=False):
        e = H(hook, err(p) / nobs)
        g = {k: np.zeros_like(v) for k, v in p.items()}
        np.add.at(g['U'], iu, e[:, None] * p['V'][ii])
        np.add.at(g['V'], ii, e[:, None] * p['U'][iu])
        np.add.at(g['bu'], iu, e)
        np.add.at(g['bi'], ii, e)
        if bias_count:  # bug: per-user bias gradient averaged over that user's ratings
            cnt = np.maximum(np.bincount(iu, minlength=nu), 1).astype(g['bu'].dtype)
            g['bu'] = g['bu'] / cnt * cnt.mean()
        g['mu'][0] = e.sum()
        g['U'] += lam * p['U']
        g['V'] += lam * p['V']
        if not no_bias_reg:
            g['bu'] += lamb * p['bu']
            g['bi'] += lamb * p['bi']
        return g
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_missing_bias_regulariser': dict(no_bias_reg=True),
                        'a_user_bias_grad_rescaled_by_count': dict(bias_count=True)})


# ----------------------------------------------------------------------------- contrastive
def infonce_case(name, seed, F, Dm, N):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, F))
    X1 = (base + 0.3 * rng.standard_normal((N, F))).astype(F32)
    X2 = (base + 0.3 * rng.standard_normal((N, F))).astype(F32)
    p = {'W': (rng.standard_normal((F, Dm)) / math.sqrt(F)).astype(F32), 't': np.array([math.log(2.0)], F32)}

    def fwd(p):
        dt = dtof(p)
        z1, z2 = np.tanh(X1.astype(dt) @ p['W']), np.tanh(X2.astype(dt) @ p['W'])
        S = np.exp(p['t'][0]) * (z1 @ z2.T)
        return z1, z2, S

    def fun(p):
        return loss_ce(fwd(p)[2], np.arange(N))[0]

    def grad(p, hook=None, one_branch=False, no_temp=False):
        dt = dtof(p)
        z1, z2, S = fwd(p)
        dS = H(hook, loss_ce(S, np.arange(N))[1])
        et = 1.0 if no_temp else np.exp(p['t'][0])
        dz1 = et * (dS @ z2)
        dz2 = et * (dS.T @ z1)
        gW = X1.astype(dt).T @ (dz1 * (1.0 - z1 * z1))
        if not one_branch:
            gW = gW + X2.astype(dt).T @ (dz2 * (1.0 - z2 * z2))
        return {'W': gW, 't': np.sum(dS * S, keepdims=True).reshape(1)}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_infonce_second_view_branch_missing': dict(one_branch=True),
                        'a_infonce_missing_temperature': dict(no_temp=True)})


def clip_case(name, seed, F, Dm, N):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, F))
    X1 = (base + 0.4 * rng.standard_normal((N, F))).astype(F32)
    X2 = (base + 0.4 * rng.standard_normal((N, F))).astype(F32)
    p = {'W': (rng.standard_normal((F, Dm)) / math.sqrt(F)).astype(F32), 't': np.array([math.log(10.0)], F32)}

    def enc(X, W):
        z = np.tanh(X @ W)
        n = np.sqrt((z * z).sum(1, keepdims=True))
        return z, n, z / n

    def fwd(p):
        dt = dtof(p)
        z1, n1, u1 = enc(X1.astype(dt), p['W'])
        z2, n2, u2 = enc(X2.astype(dt), p['W'])
        S = np.exp(p['t'][0]) * (u1 @ u2.T)
        return (z1, n1, u1), (z2, n2, u2), S

    def fun(p):
        S = fwd(p)[2]
        return 0.5 * (loss_ce(S, np.arange(N))[0] + loss_ce(S.T, np.arange(N))[0])

    def grad(p, hook=None, no_proj=False, rows_only=False):
        dt = dtof(p)
        (z1, n1, u1), (z2, n2, u2), S = fwd(p)
        dS = 0.5 * loss_ce(S, np.arange(N))[1]
        if not rows_only:
            dS = dS + 0.5 * loss_ce(S.T, np.arange(N))[1].T
        dS = H(hook, dS)
        et = np.exp(p['t'][0])
        gW = np.zeros_like(p['W'])
        for X, z, n, u, du in ((X1, z1, n1, u1, et * (dS @ u2)), (X2, z2, n2, u2, et * (dS.T @ u1))):
            dz = du / n if no_proj else (du - u * (u * du).sum(1, keepdims=True)) / n
            gW = gW + X.astype(dt).T @ (dz * (1.0 - z * z))
        return {'W': gW, 't': np.sum(dS * S, keepdims=True).reshape(1)}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_l2normalize_missing_projection': dict(no_proj=True),
                        'a_clip_missing_column_loss': dict(rows_only=True)})


def sgns_case(name, seed, V, Dm, N, Kneg):
    rng = np.random.default_rng(seed)
    cen = rng.integers(0, V, N)
    ctx = (cen + rng.integers(1, 4, N)) % V
    neg = rng.integers(0, V, (N, Kneg))
    p = {'Win': (0.5 * rng.standard_normal((V, Dm))).astype(F32), 'Wout': (0.5 * rng.standard_normal((V, Dm))).astype(F32)}

    def fun(p):
        v = p['Win'][cen]
        sp = (p['Wout'][ctx] * v).sum(1)
        sn = (p['Wout'][neg] * v[:, None, :]).sum(2)
        return -np.mean(-softplus(-sp) + (-softplus(sn)).sum(1))

    def grad(p, hook=None, overwrite=False, pos_only=False):
        v = p['Win'][cen]
        uo, un = p['Wout'][ctx], p['Wout'][neg]
        sp = (uo * v).sum(1)
        sn = (un * v[:, None, :]).sum(2)
        dsp = H(hook, (sigm(sp) - 1.0) / N)
        dsn = H(hook, sigm(sn) / N)
        dv = dsp[:, None] * uo + (0.0 if pos_only else (dsn[:, :, None] * un).sum(1))
        gin, gout = np.zeros_like(p['Win']), np.zeros_like(p['Wout'])
        np.add.at(gin, cen, dv)
        if overwrite:
            gout[ctx] = dsp[:, None] * v
            gout[neg] = dsn[:, :, None] * v[:, None, :]
        else:
            np.add.at(gout, ctx, dsp[:, None] * v)
            np.add.at(gout, neg, dsn[:, :, None] * v[:, None, :])
        return {'Win': gin, 'Wout': gout}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_output_emb_grad_assigned_not_added': dict(overwrite=True),
                        'a_center_grad_missing_negatives': dict(pos_only=True)})


def triplet_case(name, seed, F, Dm, N, m=0.5):
    rng = np.random.default_rng(seed)
    cls = rng.standard_normal((6, F))
    ca, cn = rng.integers(0, 6, N), rng.integers(0, 6, N)
    cn = np.where(cn == ca, (cn + 1) % 6, cn)
    Xa = (cls[ca] + 0.7 * rng.standard_normal((N, F))).astype(F32)
    Xp = (cls[ca] + 0.7 * rng.standard_normal((N, F))).astype(F32)
    Xn = (cls[cn] + 0.7 * rng.standard_normal((N, F))).astype(F32)
    p = {'W': (rng.standard_normal((F, Dm)) / math.sqrt(F)).astype(F32), 'b': (0.1 * rng.standard_normal(Dm)).astype(F32)}

    def fwd(p):
        dt = dtof(p)
        fs = [np.tanh(X.astype(dt) @ p['W'] + p['b']) for X in (Xa, Xp, Xn)]
        a, pp, n = fs
        arg = ((a - pp) ** 2).sum(1) - ((a - n) ** 2).sum(1) + m
        return fs, arg

    def fun(p):
        return np.mean(softplus(fwd(p)[1]))

    def grad(p, hook=None, no2=False, anchor_pos_only=False):
        dt = dtof(p)
        (a, pp, n), arg = fwd(p)
        s = H(hook, sigm(arg) / N)[:, None]
        c = 1.0 if no2 else 2.0
        da = c * s * ((a - pp) if anchor_pos_only else (n - pp))
        dp = -c * s * (a - pp)
        dn = c * s * (a - n)
        gW, gb = 0.0, 0.0
        for X, f, df in ((Xa, a, da), (Xp, pp, dp), (Xn, n, dn)):
            dpre = df * (1.0 - f * f)
            gW = gW + X.astype(dt).T @ dpre
            gb = gb + dpre.sum(0)
        return {'W': gW, 'b': gb}
    return dict(name=name, fun=fun, grad=grad, params=p,
                wrongs={'a_triplet_missing_factor_2': dict(no2=True),
                        'a_triplet_anchor_missing_negative_term': dict(anchor_pos_only=True)})


# ----------------------------------------------------------------------------- the case list
def build_cases():
    C = []
    C.append(logreg_case('logreg_l2_tiny', 1, 9, 200, 0.01, wrongs=('no_l2', 'l2_bias')))
    C.append(logreg_case('logreg_l2_sum_big', 2, 2000, 300, 1.0, red='sum', wrongs=('avg', 'l2c')))
    C.append(logreg_case('logreg_l2_unscaled_features', 3, 20, 300, 1e-3, feat_scale=True, wrongs=('no_l2', 'l2c')))
    C.append(softmaxreg_case('softmaxreg_l2', 4, 50, 10, 200, 1e-2, wrongs=('no_l2', 'l2_bias')))
    C.append(softmaxreg_case('softmaxreg_l2_big', 5, 500, 20, 256, 1e-3, wrongs=('no_l2', 'l2c')))
    C.append(mlp_case('mlp_tanh_mse_tiny', 6, [3, 2, 1], 'tanh', 'mse', N=32, wrongs=('similar_act', 'mse_const')))
    C.append(mlp_case('mlp_sigmoid_bce_l2', 7, [8, 16, 1], 'sigmoid', 'bce', l2=1e-3, wrongs=('similar_act', 'no_l2')))
    C.append(mlp_case('mlp_gelu_ce_l2', 8, [32, 64, 10], 'gelu', 'ce', l2=1e-4, wrongs=('similar_act', 'no_l2')))
    C.append(mlp_case('mlp_softplus_mse_2hidden', 9, [20, 40, 40, 1], 'softplus', 'mse', wrongs=('transpose', 'similar_act')))
    C.append(mlp_case('mlp_silu_ce', 10, [64, 64, 10], 'silu', 'ce', N=128, l2=5e-4, wrongs=('similar_act', 'no_l2')))
    C.append(mlp_case('mlp_elu_huber', 11, [10, 32, 32, 2], 'elu', 'huber', wrongs=('huber_delta', 'similar_act', 'transpose')))
    C.append(mlp_case('mlp_tanh_focal', 12, [16, 32, 1], 'tanh', 'focal', N=96, wrongs=('focal_no_gamma', 'focal_gamma')))
    C.append(mlp_case('mlp_deep_tanh_mse_sum', 13, [40, 80, 80, 80, 10], 'tanh', 'mse', N=64, red='sum', l2=0.02,
                      wrongs=('transpose2', 'no_l2', 'avg')))
    C.append(mlp_case('mlp_gelu_mse_sum_big', 14, [30, 128, 64, 1], 'gelu', 'mse', N=64, red='sum', wrongs=('avg', 'similar_act')))
    C.append(mlp_case('mlp_sigmoid_labelsmooth_T2', 15, [20, 50, 5], 'sigmoid', 'lsce', N=96, wrongs=('ls_no_eps', 'no_T')))
    C.append(mlp_case('autoencoder_tanh', 16, [20, 8, 20], 'tanh', 'ae', N=64, wrongs=('similar_act', 'mse_const')))
    C.append(mlp_case('autoencoder_sigmoid_bce_big', 17, [64, 32, 64], 'sigmoid', 'ae_bce', N=64, l2=1e-4, wrongs=('similar_act', 'no_l2')))
    C.append(huber_linreg_case('huber_linreg_l2', 18))
    C.append(conv_small_case('conv1d_avgpool_small', 19))
    C.append(conv_big_case('conv1d_2layer_avgpool', 20))
    C.append(rnn_case('rnn_tanh_5steps', 21, 3, 8, 5, 32, 1, per_step=False, wrongs=('transpose', 'trunc')))
    C.append(rnn_case('rnn_tanh_20steps_seqlabel', 22, 10, 32, 20, 16, 4, per_step=True, wrongs=('transpose', 'db_overwrite')))
    C.append(rnn_case('char_rnn_12steps', 23, 8, 24, 12, 8, 12, per_step=True, char=True, wrongs=('emb_overwrite', 'transpose')))
    C.append(gru_case('gru_10steps', 24, 4, 16, 10, 32, 3, wrongs=('no_reset_path', 'tUn')))
    C.append(gru_case('gru_12steps_big', 25, 16, 40, 12, 24, 5, wrongs=('no_reset_path', 'tUz')))
    C.append(layernorm_case('layernorm_mlp', 26))
    C.append(rmsnorm_case('rmsnorm_mlp', 27))
    C.append(attention_case('attention_moderate', 28, 16, 8, 12, 3, sharp=1.0))
    C.append(attention_case('attention_sharp', 29, 16, 8, 12, 3, sharp=3.0))
    C.append(attention_case('attention_big', 30, 48, 10, 16, 4, sharp=1.0))
    C.append(embedding_case('embedding_bag_mixed_scale_bce', 31, 100, 16, 6, 64, 1, 1e-4, wrongs=('overwrite', 'nodiv')))
    C.append(embedding_case('embedding_bag_mixed_scale_ce_big', 32, 500, 8, 5, 128, 5, 1e-3, wrongs=('overwrite', 'no_l2')))
    C.append(mog_case('mog_nll_1d', 33, 5, 1, 300, wrongs=('no_prior_norm', 'logvar_half')))
    C.append(mog_case('mog_nll_diag3d', 34, 8, 3, 400, wrongs=('sig_not_sq', 'no_logdet')))
    C.append(poisson_case('poisson_reg_l2', 35, 30, 200, 1e-2, wrongs=('no_l2', 'dlam')))
    C.append(poisson_case('poisson_reg_sum_big', 36, 2000, 400, 1e-2, red='sum', wrongs=('avg', 'dlam')))
    C.append(mf_case('matfact_l2', 37, 20, 30, 5, 0.4, 0.05))
    C.append(mf_bias_case('matfact_biases_big', 38, 200, 300, 16, 0.05, 1e-3, 1e-3))
    C.append(infonce_case('infonce_tanh_encoder', 39, 32, 16, 32))
    C.append(clip_case('clip_symmetric_normalized_big', 40, 64, 64, 48))
    C.append(sgns_case('skipgram_negsampling', 41, 200, 10, 128, 5))
    C.append(mlp_case('hetero_gaussian_nll_mlp', 42, [8, 32, 2], 'tanh', 'hnll', N=96, wrongs=('hnll_half', 'hnll_one')))
    C.append(triplet_case('triplet_softplus_margin', 43, 48, 20, 48))
    C.append(mlp_case('mlp_sigmoid_mse_sum_big', 44, [100, 100, 1], 'sigmoid', 'mse', N=64, red='sum', wrongs=('avg', 'similar_act')))
    return C


# ----------------------------------------------------------------------------- claims
def tmap(g, f):
    return {k: f(v) for k, v in g.items()} if isinstance(g, dict) else f(g)


def is32(p):
    return dtof(p) == np.float32


def f16(a):
    return a.astype(np.float16).astype(a.dtype)


def h16(x):
    return f16(x) if x.dtype == np.float32 else x


def nparams(p):
    return sum(v.size for v in p.values()) if isinstance(p, dict) else p.size


def groups(g):
    return dict(g) if isinstance(g, dict) else {'_': g}


def pick_b_element(g):
    """one element of the largest group whose magnitude is 10-30% (else >=10%) of that group's largest"""
    gg = groups(g)
    key = max(gg, key=lambda k: gg[k].size)
    a = np.abs(np.asarray(gg[key], np.float64)).ravel()
    mx = a.max()
    cand = np.nonzero((a >= 0.1 * mx) & (a <= 0.3 * mx))[0]
    if len(cand) == 0:
        cand = np.nonzero(a >= 0.1 * mx)[0]
    i = int(cand[len(cand) // 2])
    return key, i, a[i] / mx


def bump(g, key, i, fac):
    g = tmap(g, lambda v: np.array(v, copy=True))
    if isinstance(g, dict):
        g[key].reshape(-1)[i] *= fac
    else:
        g.reshape(-1)[i] *= fac
    return g


def make_claims(case, idx):
    G = case['grad']
    p32 = case['params']
    out = [('correct', 'correct', lambda p: G(p))]
    for nm, kw in case['wrongs'].items():
        out.append((nm, 'a', lambda p, kw=kw: G(p, **kw)))
    key, i, frac = pick_b_element(G({k: v.astype(np.float64) for k, v in p32.items()} if isinstance(p32, dict) else p32.astype(np.float64)))
    out.append((f'b_one_elem_1pct[{key}#{i},{frac:.2f}ofmax]', 'b', lambda p: bump(G(p), key, i, 1.01)))
    out.append(('c_x1.001_f32only', 'c', lambda p: tmap(G(p), lambda v: v * 1.001) if is32(p) else G(p)))
    out.append(('c_x1.01_f32only', 'c', lambda p: tmap(G(p), lambda v: v * 1.01) if is32(p) else G(p)))
    out.append(('c_f16_output_f32only', 'c', lambda p: tmap(G(p), f16) if is32(p) else G(p)))
    out.append(('c_f16_intermediate_f32only', 'c', lambda p: G(p, hook=h16)))
    return out


def to64(p):
    return {k: v.astype(np.float64) for k, v in p.items()} if isinstance(p, dict) else p.astype(np.float64)


def rel_diff(a, b):
    """max over groups of max|a-b| / max|b| (b = reference)"""
    A, B = groups(a), groups(b)
    r = 0.0
    for k in B:
        den = np.abs(np.asarray(B[k], np.float64)).max()
        num = np.abs(np.asarray(A[k], np.float64) - np.asarray(B[k], np.float64)).max()
        r = max(r, num / den if den > 0 else (np.inf if num > 0 else 0.0))
    return float(r)


def verify_correct(case, max_coords=600, ndir=4, seed=0):
    """float64 5-point central difference vs the analytic gradient; max error relative to the group's largest"""
    rng = np.random.default_rng(seed)
    fun, G = case['fun'], case['grad']
    p = to64(case['params'])
    g = G(p)
    gg, pp = groups(g), groups(p)
    isd = isinstance(p, dict)

    def f_at(k, flat):
        q = dict(pp)
        q[k] = flat.reshape(pp[k].shape)
        return float(fun(q if isd else q['_']))
    worst = 0.0
    tot = sum(v.size for v in pp.values())
    for k in pp:
        n = pp[k].size
        take = n if tot <= 1200 else max(3, int(round(max_coords * n / tot)))
        idx = np.arange(n) if take >= n else rng.choice(n, take, replace=False)
        x0 = pp[k].ravel().copy()
        den = max(np.abs(gg[k]).max(), 1e-300)
        for i in idx:
            best = np.inf
            for h0 in (1e-3, 1e-4, 1e-5):  # best of three steps (kinks of 2nd derivative, feature scales)
                h = h0 * max(1.0, abs(x0[i]))
                vals = []
                for s in (2, 1, -1, -2):
                    x = x0.copy()
                    x[i] += s * h
                    vals.append(f_at(k, x))
                fd = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
                best = min(best, abs(fd - gg[k].ravel()[i]) / den)
            worst = max(worst, best)
    # random directions (all groups at once)
    for _ in range(ndir):
        dirs = {k: rng.standard_normal(v.shape) for k, v in pp.items()}
        gd = sum(float((gg[k] * dirs[k]).sum()) for k in pp)
        nrm = math.sqrt(sum(float((gg[k] ** 2).sum()) for k in pp)) * math.sqrt(tot)
        best = np.inf
        for h in (1e-4, 1e-5, 1e-6):
            vals = []
            for s in (2, 1, -1, -2):
                q = {k: pp[k] + s * h * dirs[k] for k in pp}
                vals.append(float(fun(q if isd else q['_'])))
            fd = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
            best = min(best, abs(fd - gd) / max(abs(gd), 1e-3 * nrm))
        worst = max(worst, best)
    return worst


def dtype_ok(case):
    p32 = case['params']
    f32 = case['fun'](p32)
    g32 = case['grad'](p32)
    f64 = case['fun'](to64(p32))
    g64 = case['grad'](to64(p32))
    ok = (np.asarray(f32).dtype == np.float32 and np.asarray(f64).dtype == np.float64 and np.ndim(f32) == 0
          and all(v.dtype == np.float32 for v in groups(g32).values())
          and all(v.dtype == np.float64 for v in groups(g64).values())
          and all(groups(g32)[k].shape == groups(p32)[k].shape for k in groups(p32)))
    return ok, f32, f64


# ----------------------------------------------------------------------------- main
def main():
    ap = usage.Parser()
    ap.add_argument('--out', default=None)
    ap.add_argument('--only', default=None)
    ap.add_argument('--verify-only', action='store_true')
    ap.add_argument('--budget', type=usage.positive_float, default=None)
    args = ap.parse_args()
    if args.out is not None:
        usage.writable(args.out, "--out")
    cases = build_cases()
    if args.only:
        cases = [c for c in cases if any(s in c['name'] for s in args.only.split(','))]
    rows = []
    for ci, case in enumerate(cases):
        name, p32 = case['name'], case['params']
        n = nparams(p32)
        ok, f32, f64 = dtype_ok(case)
        t0 = time.time()
        err = verify_correct(case)
        tv = time.time() - t0
        print(f'## {name}: nparams={n} dtype_ok={ok} loss32={float(f32):.5g} fd64_rel_err={err:.2e} ({tv:.1f}s)', flush=True)
        g64 = case['grad'](to64(p32))
        g32 = case['grad'](p32)
        claims = make_claims(case, ci)
        if args.verify_only:
            for nm, kind, fn in claims[1:]:
                ref, got = (g32, fn(p32)) if kind == 'c' else (g64, fn(to64(p32)))
                print(f'     {kind} {nm}: rel_diff={rel_diff(got, ref):.2e}')
            continue
        if not ok or err > 1e-6:
            print(f'   SKIPPED (dtype_ok={ok}, fd64 rel err {err:.2e})', flush=True)
            continue
        for nm, kind, fn in claims:
            ref, got = (g32, fn(p32)) if kind == 'c' else (g64, fn(to64(p32)))
            rd = 0.0 if kind == 'correct' else rel_diff(got, ref)
            kw = {} if args.budget is None else {'budget': args.budget}
            t0 = time.time()
            try:
                r = check_gradient(case['fun'], fn, p32, **kw)
                verdict, rep = r.verdict, r.report()
            except Exception as e:  # noqa: BLE001
                verdict, rep = 'ERROR', ''.join(traceback.format_exception(e))[-2000:]
            dt = time.time() - t0
            passing = verdict in ('correct', 'not differentiable here')
            tag = ''
            if kind == 'correct' and verdict == 'wrong':
                tag = 'FALSE ALARM'
            elif kind != 'correct' and passing:
                tag = 'MISS'
            print(f'   {kind:7s} {nm:55s} {verdict:24s} {dt:6.1f}s rel_diff={rd:.1e} {tag}', flush=True)
            rows.append(dict(case=name, claim=nm, kind=kind, verdict=verdict, nparams=int(n), seconds=round(dt, 3),
                             report=rep, rel_diff=rd, fd64_rel_err=err))
        if args.out:
            with open(args.out, 'w') as fh:
                json.dump(rows, fh, indent=1)
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(rows, fh, indent=1)


if __name__ == '__main__':
    main()
