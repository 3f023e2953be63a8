"""Mutation testing of the gradient checker: deliberately wrong backward passes it must catch.

``backprop(theta, spec, X, Y, fault)`` is a plain NumPy backward pass for a population (nets on
the last axis), written here apart from the kernels, with one line switched by ``fault``. Each
mutant is checked against the loss of the NumPy backend with :func:`.check.check_gradient`;
a mutant is caught when the check fails. The same check must pass for ``fault=None`` and for both
backends' real ``backward``: zero false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from backprop_bench.kernels import NetSpec, backend, init_population
from backprop_bench.kernels import activations as F

from . import regularised_mutants
from .check import check_gradient

MUTANTS = {
    "sign flip": "every gradient negated",
    "missing 1/m": "output error not divided by the number of samples",
    "transposed weight": "error sent back through W instead of its transpose",
    "sigmoid' of z": "sigmoid derivative taken as z(1 - z) instead of a(1 - a)",
    "dropped bias gradient": "bias gradients left at zero",
    "one element x1.01": "the largest gradient element scaled by 1.01",
    "one element zeroed (large array)": "one element of a 22,400-parameter gradient set to 0",
    "wrong layer's activation": "dW of a layer built from its own output, not its input",
    "off-by-one layer": "activation derivative taken from the layer above",
    "missing activation derivative": "dz = da: the chain rule skips the activation",
    "MSE error with BCE loss": "output error (a - y) a (1 - a) for a cross-entropy loss",
    "dW without the input": "weight gradient summed over dz alone, input not multiplied",
    "bias gradient / m twice": "bias gradient divided by m a second time",
    "nets mixed up": "each net gets the next net's gradient",
    "wrong leaky slope": "leaky ReLU derivative 0.1 for z <= 0 instead of 0.01",
    **regularised_mutants.MUTANTS,
}
SQUARE = NetSpec((3, 3, 3, 1))  # square layers, so that shape bugs still run
LEAKY = NetSpec((3, 3, 3, 1), "leaky_relu")
N_SAMPLES = 8
SMALL_POPULATION = 3
LARGE_POPULATION = 800  # 22,400 parameters: checked by directional probes


def backprop(theta, spec: NetSpec, X, Y, fault: str | None = None) -> np.ndarray:
    """Gradient of the loss for a population, the tutorial's chain rule layer by layer."""
    if spec.regularised:
        return regularised_mutants.backprop(theta, spec, X, Y, fault)
    dtype = theta.dtype
    X, Y = X.astype(dtype), Y.astype(dtype)
    views = spec.layer_views(theta)
    m = X.shape[0]
    a = [np.broadcast_to(X[:, :, None], (*X.shape, theta.shape[1]))]
    z = []
    for layer, (W, b) in enumerate(views):
        z.append(np.einsum("sik,ijk->sjk", a[-1], W) + b)
        act = spec.output if layer == spec.n_layers - 1 else spec.activation
        a.append(F.ACTIVATIONS[act][0](z[-1]))
    y = Y[:, :, None]
    out = a[-1]
    if fault == "MSE error with BCE loss":
        dz = (out - y) * out * (1 - out)
    else:
        dz = F.loss_grad_logits(spec.loss, z[-1], out, y)
    if fault != "missing 1/m" and spec.reduction == "mean":
        dz = dz / dtype.type(m)
    grad = np.zeros_like(theta)
    grads = spec.layer_views(grad)
    for layer in range(spec.n_layers - 1, -1, -1):
        W = views[layer][0]
        gW, gb = grads[layer]
        source = a[layer + 1] if fault == "wrong layer's activation" and layer == 1 else a[layer]
        if fault == "dW without the input":
            gW[...] = dz.sum(axis=0)[None, :, :]
        else:
            gW[...] = np.einsum("sik,sjk->ijk", source, dz)
        if fault != "dropped bias gradient":
            gb[...] = dz.sum(axis=0) / (dtype.type(m) if fault == "bias gradient / m twice" else 1)
        if layer == 0:
            break
        back = W.transpose(1, 0, 2) if fault == "transposed weight" and layer == 1 else W
        da = np.einsum("sjk,ijk->sik", dz, back)
        below = layer + 1 if fault == "off-by-one layer" and layer == 1 else layer
        if fault == "missing activation derivative":
            dz = da
        elif fault == "sigmoid' of z" and spec.activation == "sigmoid":
            dz = da * z[below - 1] * (1 - z[below - 1])
        elif fault == "wrong leaky slope" and spec.activation == "leaky_relu":
            dz = da * np.where(z[layer - 1] > 0, 1.0, 0.1).astype(dtype)
        else:
            dz = da * F.ACTIVATIONS[spec.activation][1](z[below - 1], a[below])
    if fault == "sign flip":
        grad = -grad
    elif fault in ("one element x1.01", "one element zeroed (large array)"):
        flat = grad.reshape(-1)
        k = int(np.argmax(np.abs(flat)))
        flat[k] = flat[k] * dtype.type(1.01) if fault == "one element x1.01" else 0
    elif fault == "nets mixed up":
        grad = np.roll(grad, 1, axis=1)
    return grad


@dataclass
class MutantResult:
    name: str
    description: str
    dtype: str
    caught: bool
    mode: str


def _case(fault, dtype, seed=0):
    if fault in regularised_mutants.MUTANTS:
        return regularised_mutants.case(dtype, SMALL_POPULATION, seed)
    spec = LEAKY if fault == "wrong leaky slope" else SQUARE
    n_nets = LARGE_POPULATION if fault == "one element zeroed (large array)" else SMALL_POPULATION
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, spec.n_inputs))
    Y = (rng.random((N_SAMPLES, spec.n_outputs)) < 0.5).astype(float)
    theta = init_population(spec, n_nets, seed, init="normal:0.8").astype(dtype)
    return spec, X, Y, theta


def _loss(spec, X, Y):
    if spec.regularised:
        return regularised_mutants.loss(spec, X, Y)
    numpy_kernels = backend("numpy")
    return lambda t: float(np.sum(numpy_kernels.loss(t, spec, X, Y), dtype=np.float64))


def run_mutants(dtypes=("float64", "float32")) -> list[MutantResult]:
    results = []
    for dtype in dtypes:
        for name, description in MUTANTS.items():
            spec, X, Y, theta = _case(name, dtype)
            check = check_gradient(
                _loss(spec, X, Y),
                lambda t, s=spec, f=name, X=X, Y=Y: backprop(t, s, X, Y, f),
                theta,
            )
            results.append(MutantResult(name, description, dtype, not check.passed, check.mode))
    return results


def false_alarms(dtypes=("float64", "float32")) -> list[str]:
    """The checks that must pass (the unmutated backprop and both backends): failures, if any."""
    failures = []
    for dtype in dtypes:
        for label, spec_name in (
            ("square", None),
            ("leaky", "wrong leaky slope"),
            ("large", "one element zeroed (large array)"),
            ("batch norm and dropout", next(iter(regularised_mutants.MUTANTS))),
        ):
            spec, X, Y, theta = _case(spec_name, dtype)
            claims = {"unmutated backprop": lambda t, s=spec, X=X, Y=Y: backprop(t, s, X, Y, None)}
            if spec.regularised:  # only the NumPy kernels have a separate backward pass
                claims["numpy training-mode backward"] = lambda t, s=spec, X=X, Y=Y: (
                    regularised_mutants.kernel_backward(t, s, X, Y)
                )
            for name in ("numpy", "numba") if not spec.regularised else ():
                kernels = backend(name)
                claims[f"{name} backward"] = lambda t, k=kernels, s=spec, X=X, Y=Y: (
                    k.backward(t, s, X, Y).grad
                )
            for claim, grad in claims.items():
                if not check_gradient(_loss(spec, X, Y), grad, theta).passed:
                    failures.append(f"{claim} on the {label} case, {dtype}")
    return failures
