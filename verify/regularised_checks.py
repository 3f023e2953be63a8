"""Gradient checks of batch norm and dropout, as rows of the kernel table.

Batch norm's training-mode forward is checked as a function of its input and its scale and
shift, with both forms of its backward (the staged chain rule and the compact one) as the
claimed vector-Jacobian product; the two forms are also held against each other. Dropout is
checked with its masks held fixed (a net's key and an epoch), alone and inside whole nets in
training mode. float64 and float32, data and parameters from fixed seeds.
"""

from __future__ import annotations

import numpy as np
from backprop_bench.kernels import NetSpec, init_population, streams
from backprop_bench.kernels import regularised as R

from .check import check_gradient, check_vjp

DTYPES = ("float64", "float32")
NETWORKS = [
    NetSpec((3, 5, 1), "tanh", batchnorm=True),
    NetSpec((2, 6, 4, 1), "sigmoid", dropout=0.3),
    NetSpec((4, 5, 5, 2), "relu", "sigmoid", "mse", "sum", batchnorm=True, dropout=0.2),
]
N_SAMPLES = 9
N_NETS = 2
EPOCH = 4
# the two forms of batch norm's backward differ by rounding: a few sums of N terms each, of
# size about |dy| |gamma|; measured 2.3e-16 (float64) and 1.1e-7 (float32) of the largest
AGREE = {"float64": 1e-12, "float32": 1e-4}


def _row(kernel, dtype, result):
    from .kernel_checks import _row

    return _row(kernel, "numpy", dtype, result)


def _batchnorm_input(dtype):
    rng = np.random.default_rng(7)
    z = rng.normal(size=(N_SAMPLES, 4, N_NETS)) * 2 + 0.5
    gamma = 1 + 0.3 * rng.normal(size=(4, N_NETS))
    beta = 0.2 * rng.normal(size=(4, N_NETS))
    return {k: v.astype(dtype) for k, v in {"z": z, "gamma": gamma, "beta": beta}.items()}


def _batchnorm_vjp(form):
    def vjp(p, u):
        u = np.asarray(u, dtype=p["z"].dtype)
        if form == "staged":
            dz, dgamma, dbeta = R.batchnorm_backward_staged(u, p["z"], p["gamma"])
        else:
            _, zhat, _, _, inv_std = R.batchnorm_forward(p["z"], p["gamma"], p["beta"])
            dz, dgamma, dbeta = R.batchnorm_backward(u, zhat, p["gamma"], inv_std)
        return {"z": dz, "gamma": dgamma, "beta": dbeta}

    return vjp


def batchnorm_rows():
    rows = []
    for dtype in DTYPES:
        params = _batchnorm_input(dtype)

        def fun(p):
            return R.batchnorm_forward(p["z"], p["gamma"], p["beta"])[0]

        for form in ("staged", "compact"):
            result = check_vjp(fun, _batchnorm_vjp(form), params)
            rows.append(_row(f"batch norm (training), {form} backward", dtype, result))
        rows.append(_agreement_row(params, dtype))
    return rows


def _agreement_row(params, dtype):
    from .kernel_checks import Row

    u = np.random.default_rng(8).normal(size=params["z"].shape).astype(dtype)
    staged = _batchnorm_vjp("staged")(params, u)
    compact = _batchnorm_vjp("compact")(params, u)
    worst = max(
        float(np.abs(staged[k] - compact[k]).max() / np.abs(staged[k]).max()) for k in staged
    )
    ok = worst <= AGREE[dtype]
    detail = "" if ok else f"relative difference {worst:.3g} > {AGREE[dtype]:g}"
    return Row("batch norm: staged and compact backward agree", "numpy", dtype, worst, 0.0, ok,
               detail, worst / AGREE[dtype])  # fmt: skip


def dropout_rows():
    rows = []
    spec = NetSpec((2, 6, 1), dropout=0.3)
    keys = streams.net_keys(5, 0, N_NETS)
    for dtype in DTYPES:
        (mask,) = R.dropout_masks(spec, keys, EPOCH, N_SAMPLES, dtype)
        h = np.random.default_rng(9).normal(size=mask.shape).astype(dtype)
        result = check_vjp(lambda a, m=mask: a * m, lambda a, u, m=mask: (u * m).astype(a.dtype), h)
        rows.append(_row("dropout, masks held fixed", dtype, result))
    return rows


def network_rows():
    rows = []
    keys = streams.net_keys(3, 0, N_NETS)
    for spec in NETWORKS:
        rng = np.random.default_rng(3)
        X = rng.normal(size=(N_SAMPLES, spec.n_inputs))
        Y = (rng.random((N_SAMPLES, spec.n_outputs)) < 0.5).astype(float)
        for dtype in DTYPES:
            theta = init_population(spec, N_NETS, 3, init="normal:0.7")
            for gamma, beta in spec.norm_views(theta):
                gamma += 0.3 * rng.normal(size=gamma.shape)
                beta += 0.2 * rng.normal(size=beta.shape)
            theta = theta.astype(dtype)
            result = check_gradient(
                lambda t, s=spec, X=X, Y=Y: np.sum(
                    R.loss(t, s, X, Y, training=True, keys=keys, epoch=EPOCH), dtype=np.float64
                ),
                lambda t, s=spec, X=X, Y=Y: R.backward(t, s, X, Y, keys=keys, epoch=EPOCH),
                theta,
            )
            options = ("batch norm " if spec.batchnorm else "") + (
                f"dropout {spec.dropout:g}" if spec.dropout else ""
            )
            name = f"network {'-'.join(map(str, spec.layers))} {spec.activation}, {options}"
            rows.append(_row(name.strip() + " (training)", dtype, result))
    return rows


def all_rows():
    return batchnorm_rows() + dropout_rows() + network_rows()
