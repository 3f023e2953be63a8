"""Gradient checks of every kernel of both backends, as rows of a table.

Each check returns a ``Row``: kernel, backend, dtype, the worst error relative to the largest
derivative (the size every tolerance and floor is relative to; an element's own derivative may
be 0 where the claim rounds to 1e-30), that error as a share of its tolerance, the reference's
error estimate there, and the verdict of :func:`.check.check_vjp`. Data and parameters come
from fixed seeds, so the table is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from backprop_bench.kernels import NetSpec, backend, init_population
from backprop_bench.kernels import activations as F
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES

from .check import GradCheckResult, check_gradient, check_vjp

DTYPES = ("float64", "float32")
BACKENDS = ("numpy", "numba")
# Networks: depth 1 to 6 weight layers, several widths, batch sizes 1 to 64.
NETWORKS = [
    ((2, 1), "sigmoid", "bce", "mean", 4),
    ((2, 4, 1), "sigmoid", "bce", "mean", 4),
    ((3, 5, 2), "tanh", "mse", "sum", 1),
    ((4, 8, 8, 3), "relu", "bce", "mean", 16),
    ((2, 6, 5, 4, 1), "leaky_relu", "mse", "mean", 64),
    ((3, 4, 4, 4, 4, 2), "sigmoid", "bce", "sum", 7),
    ((5, 3, 6, 3, 6, 3, 1), "tanh", "bce", "mean", 33),
]
# Nets whose input and hidden layers (but the last) also feed the output directly.
SHORTCUT_NETWORKS = [
    ((2, 1, 1), "sigmoid", "bce", "sum", 4),  # Rumelhart, Hinton & Williams' XOR net
    ((3, 4, 3, 2), "tanh", "mse", "mean", 5),
]
N_NETS = 2
SCIPY_LIMIT = 100  # parameters up to which scipy.differentiate also checks the reference


@dataclass
class Row:
    kernel: str
    backend: str
    dtype: str
    worst_rel_error: float  # relative to the largest derivative (or value, for the formulas)
    reference_error: float
    passed: bool
    detail: str = ""
    worst_to_tolerance: float = 0.0  # the worst element's error over its tolerance (<= 1 passes)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _row(kernel, backend_name, dtype, result: GradCheckResult) -> Row:
    worst = max(result.groups, key=_share_of_tolerance)
    kinks = len(result.kinks)
    detail = f"{kinks} kink(s), subgradients ok" if kinks and result.passed else ""
    if result.scipy_agrees is not None:
        detail = "scipy.differentiate agrees" if result.scipy_agrees else "; ".join(result.notes)
    if not result.passed:
        detail = result.report()
    largest = max(g.largest for g in result.groups)
    return Row(
        kernel, backend_name, dtype, worst.abs_error / largest if largest > 0 else worst.rel_error,
        worst.reference_error, result.passed, detail, _share_of_tolerance(worst),
    )


def _share_of_tolerance(group) -> float:
    if group.tolerance > 0:
        return group.abs_error / group.tolerance
    return 0.0 if group.abs_error == 0 else float("inf")


def _scalar_numba(function):
    """Elementwise NumPy view of one of the numba backend's scalar jitted functions."""
    return np.vectorize(function, otypes=[np.float64])


def activation_rows() -> list[Row]:
    from backprop_bench.kernels import numba_backend as nb

    rows = []
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(scale=3, size=20), [0.0, -0.0, 1e-12, 40.0, -40.0]])
    for name in HIDDEN_ACTIVATIONS:
        forward, derivative = F.ACTIVATIONS[name]
        code = HIDDEN_ACTIVATIONS.index(name)
        pairs = {
            "numpy": (forward, lambda x, d=derivative, f=forward: d(x, f(x))),
            "numba": (
                lambda x, c=code: _scalar_numba(nb._activate)(x, c),
                lambda x, c=code: _scalar_numba(nb._activate_grad)(
                    x, _scalar_numba(nb._activate)(x, c), c
                ),
            ),
        }
        for backend_name, (fun, grad) in pairs.items():
            for dtype in DTYPES:
                point = z.astype(dtype)

                def vjp(p, u, grad=grad, dtype=dtype):
                    return (u * grad(np.asarray(p, dtype=np.float64))).astype(dtype)

                result = check_vjp(lambda p, fun=fun: np.asarray(fun(p), dtype=p.dtype), vjp, point)
                rows.append(_row(f"activation {name}", backend_name, dtype, result))
    return rows


def loss_rows() -> list[Row]:
    from backprop_bench.kernels import numba_backend as nb

    rows = []
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(scale=4, size=12), [0.0, 30.0, -30.0]])
    y = (rng.random(z.size) < 0.5).astype(float)
    for name in LOSSES:
        code = LOSSES.index(name)
        pairs = {
            "numpy": (
                lambda x, n=name: F.loss_elements(n, x, F.sigmoid(x), y),
                lambda x, n=name: F.loss_grad_logits(n, x, F.sigmoid(x), y),
            ),
            "numba": (
                lambda x, c=code: _scalar_numba(nb._loss_element)(
                    x, _scalar_numba(nb._activate)(x, 0), y, c
                ),
                lambda x, c=code: _scalar_numba(nb._loss_grad_logit)(
                    _scalar_numba(nb._activate)(x, 0), y, c
                ),
            ),
        }
        for backend_name, (fun, grad) in pairs.items():
            for dtype in DTYPES:
                result = check_vjp(
                    lambda p, fun=fun: np.asarray(fun(p), dtype=p.dtype),
                    lambda p, u, grad=grad, dtype=dtype: (u * grad(np.asarray(p, float))).astype(
                        dtype
                    ),
                    z.astype(dtype),
                )
                rows.append(_row(f"loss {name} (d/dlogit)", backend_name, dtype, result))
    return rows


def network_case(layers, activation, loss, reduction, n_samples, dtype, seed=0, shortcut=False):
    spec = NetSpec(layers, activation, loss=loss, reduction=reduction, shortcut=shortcut)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, spec.n_inputs))
    Y = (rng.random((n_samples, spec.n_outputs)) < 0.5).astype(float)
    theta = init_population(spec, N_NETS, seed, init="normal:0.7").astype(dtype)
    return spec, X, Y, theta


def _population_loss(kernels, spec, X, Y):
    # nets are independent: the gradient of the summed loss is every net's gradient
    return lambda theta: np.sum(kernels.loss(theta, spec, X, Y), dtype=np.float64)


def network_rows() -> list[Row]:
    rows = []
    cases = [(*net, False) for net in NETWORKS] + [(*net, True) for net in SHORTCUT_NETWORKS]
    for layers, activation, loss, reduction, n_samples, shortcut in cases:
        for backend_name in BACKENDS:
            kernels = backend(backend_name)
            for dtype in DTYPES:
                spec, X, Y, theta = network_case(
                    layers, activation, loss, reduction, n_samples, dtype, shortcut=shortcut
                )
                result = check_gradient(
                    _population_loss(kernels, spec, X, Y),
                    lambda t, k=kernels, s=spec, X=X, Y=Y: k.backward(t, s, X, Y).grad,
                    theta,
                    # scipy.differentiate as a third reference where it is affordable
                    use_scipy=theta.size <= SCIPY_LIMIT,
                )
                widths = "-".join(map(str, layers)) + (" with shortcuts" if shortcut else "")
                name = f"network {widths} {activation} {loss} {reduction}, batch {n_samples}"
                rows.append(_row(name, backend_name, dtype, result))
    return rows


def _tail_loss(spec, theta, start_layer, value, X, Y, of="z"):
    """Loss of the nets as a function of layer ``start_layer``'s z (or of its activation a),
    computed with NumPy from that layer on: the reference for per-layer gradients."""
    views = spec.layer_views(theta)
    if of == "z":
        act = spec.output if start_layer == spec.n_layers - 1 else spec.activation
        a = F.ACTIVATIONS[act][0](value)
        z = value
    else:
        a = value
    for layer in range(start_layer + 1, spec.n_layers):
        W, b = views[layer]
        z = np.einsum("sik,ijk->sjk", a, W) + b
        act = spec.output if layer == spec.n_layers - 1 else spec.activation
        a = F.ACTIVATIONS[act][0](z)
    scale = 1.0 / X.shape[0] if spec.reduction == "mean" else 1.0
    return float(np.sum(F.loss_elements(spec.loss, z, a, Y[:, :, None])) * scale)


def per_layer_rows() -> list[Row]:
    rows = []
    layers, activation, loss, reduction, n_samples = NETWORKS[4]
    for backend_name in BACKENDS:
        kernels = backend(backend_name)
        spec, X, Y, theta = network_case(layers, activation, loss, reduction, 5, "float64")
        fwd = kernels.forward(theta, spec, X)
        grads = kernels.backward(theta, spec, X, Y, per_layer=True)
        for layer in range(spec.n_layers):
            result = check_gradient(
                lambda z, ctx=(spec, theta, layer, X, Y): _tail_loss(*ctx[:3], z, *ctx[3:], "z"),
                lambda z, claimed=grads.dz[layer]: np.asarray(claimed),
                np.array(fwd.z[layer]),
            )
            rows.append(_row(f"dL/dz layer {layer}", backend_name, "float64", result))
        for layer in range(spec.n_layers - 1):
            result = check_gradient(
                lambda a, ctx=(spec, theta, layer, X, Y): _tail_loss(*ctx[:3], a, *ctx[3:], "a"),
                lambda a, claimed=grads.da[layer]: np.asarray(claimed),
                np.array(fwd.a[layer + 1]),
            )
            rows.append(_row(f"dL/da hidden layer {layer + 1}", backend_name, "float64", result))
    return rows


def optimizer_rows() -> list[Row]:
    """Momentum and Adam steps against their published update rules, element by element."""
    rows = []
    rng = np.random.default_rng(3)
    for backend_name in BACKENDS:
        kernels = backend(backend_name)
        for dtype in DTYPES:
            theta0 = rng.normal(size=(6, 3)).astype(dtype)
            grads = [rng.normal(size=(6, 3)).astype(dtype) for _ in range(5)]
            lr = np.array([0.1, 0.01, 1.0])
            # Rumelhart, Hinton & Williams (1986): dw(t) = -lr g(t) + alpha dw(t-1)
            theta, velocity = theta0.copy(), np.zeros_like(theta0)
            expected, delta = theta0.astype(float), np.zeros((6, 3))
            for g in grads:
                kernels.momentum_step(theta, g, velocity, lr, 0.9)
                delta = -lr * g.astype(float) + 0.9 * delta
                expected = expected + delta
            rows.append(
                _formula_row(
                    "momentum step vs Rumelhart et al. 1986",
                    backend_name,
                    dtype,
                    theta,
                    expected,
                    0.0,
                )
            )
            # Kingma & Ba (2015), Algorithm 1
            theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
            expected = theta0.astype(float)
            m_ref, v_ref = np.zeros((6, 3)), np.zeros((6, 3))
            for t, g in enumerate(grads, start=1):
                kernels.adam_step(theta, g, m, v, t, lr)
                g = g.astype(float)
                m_ref = 0.9 * m_ref + 0.1 * g
                v_ref = 0.999 * v_ref + 0.001 * g * g
                expected = expected - lr * (m_ref / (1 - 0.9**t)) / (
                    np.sqrt(v_ref / (1 - 0.999**t)) + 1e-8
                )
            # the bias corrections 1 - beta^t (0.001 at t = 1) amplify a last-bit difference in
            # beta^t by 1 / (1 - beta^t): the updates' rounding carries that condition number
            condition = sum(1 / (1 - 0.999**t) + 1 / (1 - 0.9**t) for t in range(1, 6))
            rows.append(
                _formula_row(
                    "adam step vs Kingma & Ba 2015",
                    backend_name,
                    dtype,
                    theta,
                    expected,
                    condition * float(lr.max()),
                )
            )
    return rows


def _formula_row(kernel, backend_name, dtype, got, expected, conditioned) -> Row:
    eps = float(np.finfo(np.dtype(dtype)).eps)
    scale = float(np.abs(expected).max())
    error = float(np.abs(got.astype(float) - expected).max())
    # five steps of a few operations each, every one rounding to the dtype, plus the update's
    # own conditioning (``conditioned``: update size times its condition number)
    tolerance = 64 * eps * scale + 16 * eps * conditioned
    return Row(
        kernel,
        backend_name,
        dtype,
        error / scale,
        0.0,
        error <= tolerance,
        "" if error <= tolerance else f"error {error:.3g} > {tolerance:.3g}",
        error / tolerance,
    )


def all_rows() -> list[Row]:
    from .regularised_checks import all_rows as regularised_rows

    return (activation_rows() + loss_rows() + network_rows() + per_layer_rows() + optimizer_rows()
            + regularised_rows())  # fmt: skip
