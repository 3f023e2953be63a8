"""Classic wrong backward passes through batch norm and dropout, for the mutation catalogue.

``backprop`` is a NumPy backward pass of a population with batch norm and dropout (nets on the
last axis), written apart from the kernels in the staged form of cs231n's assignment, with the
dropout masks of (``keys``, ``EPOCH``) held fixed; ``fault`` switches one line. The reference it
is checked against is the kernels' training-mode loss (``kernels.regularised.loss``).
"""

from __future__ import annotations

import numpy as np
from backprop_bench.kernels import NetSpec, init_population, streams
from backprop_bench.kernels import activations as F
from backprop_bench.kernels import regularised as R

MUTANTS = {
    "batch norm: sum over the batch missing": "dzhat.sum() without axis=0: summed over units "
    "and nets too",
    "batch norm: N-1 variance": "the backward's variance divided by N - 1 (np.var(ddof=1))",
    "batch norm: mean's gradient dropped": "dz = dcentred: the path through the mean left out",
    "batch norm: variance's gradient dropped": "the path through the variance left out",
    "dropout: mask not applied in backward": "dL/dh = dL/da / (1 - p) for every unit",
    "dropout: scale not applied in backward": "dL/dh = dL/da * mask, the 1/(1 - p) forgotten",
}
SPEC = NetSpec((3, 4, 4, 1), "tanh", batchnorm=True, dropout=0.25)
EPOCH = 3


def case(dtype: str, n_nets: int = 3, seed: int = 0):
    """(spec, X, Y, theta): scale and shift drawn away from 1 and 0 so that their
    gradients are generic."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, SPEC.n_inputs))
    Y = (rng.random((8, SPEC.n_outputs)) < 0.5).astype(float)
    theta = init_population(SPEC, n_nets, seed, init="normal:0.8")
    for gamma, beta in SPEC.norm_views(theta):
        gamma += 0.3 * rng.normal(size=gamma.shape)
        beta += 0.2 * rng.normal(size=beta.shape)
    return SPEC, X, Y, theta.astype(dtype)


def keys_of(theta) -> np.ndarray:
    """The nets' keys: those of seed 0 (the masks are part of the function checked)."""
    return streams.net_keys(0, 0, theta.shape[1])


def loss(spec, X, Y):
    """The population's summed training-mode loss (masks of EPOCH): the reference function."""
    return lambda t: float(np.sum(
        R.loss(t, spec, X, Y, training=True, keys=keys_of(t), epoch=EPOCH), dtype=np.float64
    ))  # fmt: skip


def kernel_backward(theta, spec, X, Y) -> np.ndarray:
    """The kernels' own training-mode gradient, the same masks."""
    return R.backward(theta, spec, X, Y, keys=keys_of(theta), epoch=EPOCH)


def _batchnorm_backward(dy, z, gamma, fault):
    n = z.shape[0]
    mean = z.mean(axis=0)
    centred = z - mean
    ddof = 1 if fault == "batch norm: N-1 variance" else 0
    var = (centred**2).sum(axis=0) / (n - ddof)
    std = np.sqrt(var + z.dtype.type(R.BN_EPS))
    zhat = centred / std
    dzhat = dy * gamma
    dgamma, dbeta = (dy * zhat).sum(axis=0), dy.sum(axis=0)
    if fault == "batch norm: sum over the batch missing":
        # the compact form, with the classic missing axis
        dz = (n * dzhat - dzhat.sum() - zhat * (dzhat * zhat).sum(axis=0)) / (n * std)
        return dz, dgamma, dbeta
    dvar = (dzhat * centred).sum(axis=0) * -0.5 * std**-3
    dcentred = dzhat / std
    if fault != "batch norm: variance's gradient dropped":
        dcentred = dcentred + 2 * centred * dvar / (n - ddof)
    if fault == "batch norm: mean's gradient dropped":
        return dcentred, dgamma, dbeta
    return dcentred - dcentred.mean(axis=0), dgamma, dbeta


def backprop(theta, spec: NetSpec, X, Y, fault: str | None = None) -> np.ndarray:
    """Gradient of the training-mode loss for a population, with ``fault`` (None: correct)."""
    dtype = theta.dtype
    keys = keys_of(theta)
    X, Y = X.astype(dtype), Y.astype(dtype)
    p = dtype.type(spec.dropout)
    masks = R.dropout_masks(spec, keys, EPOCH, X.shape[0], dtype)
    views, norms = spec.layer_views(theta), spec.norm_views(theta)
    a, zs, ys, hs = [np.broadcast_to(X[:, :, None], (*X.shape, theta.shape[1]))], [], [], []
    for layer, (W, b) in enumerate(views):
        z = np.einsum("sik,ijk->sjk", a[-1], W) + b
        zs.append(z)
        if layer == spec.n_layers - 1:
            a.append(F.sigmoid(z))
            break
        gamma, beta = norms[layer]
        centred = z - z.mean(axis=0)
        y = gamma * centred / np.sqrt((centred**2).mean(axis=0) + dtype.type(R.BN_EPS)) + beta
        ys.append(y)
        hs.append(np.tanh(y))
        a.append(hs[-1] * masks[layer])
    grad = np.zeros_like(theta)
    grads, norm_grads = spec.layer_views(grad), spec.norm_views(grad)
    dz = (a[-1] - Y[:, :, None]) / dtype.type(X.shape[0])
    for layer in range(spec.n_layers - 1, -1, -1):
        grads[layer][0][...] = np.einsum("sik,sjk->ijk", a[layer], dz)
        if layer == spec.n_layers - 1:
            grads[layer][1][...] = dz.sum(axis=0)  # before batch norm a bias's derivative is 0
        if layer == 0:
            break
        h = layer - 1
        da = np.einsum("sjk,ijk->sik", dz, views[layer][0])
        if fault == "dropout: mask not applied in backward":
            dh = da / (1 - p)
        elif fault == "dropout: scale not applied in backward":
            dh = da * (masks[h] > 0)
        else:
            dh = da * masks[h]
        dy = dh * (1 - hs[h] ** 2)
        dz, dgamma, dbeta = _batchnorm_backward(dy, zs[h], norms[h][0], fault)
        norm_grads[h][0][...] = dgamma
        norm_grads[h][1][...] = dbeta
    return grad
