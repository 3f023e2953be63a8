"""Batch normalisation and dropout for a population, in NumPy: training and evaluation mode.

The readable oracle of the numba kernel in ``numba_regularised.py``. Arrays carry the net axis
last, as in ``numpy_backend``. A hidden layer ``l`` computes, in training mode::

    z    = a_prev W + b                       pre-activation, (n_samples, width, n_nets)
    mu   = mean_s z;  var = mean_s (z - mu)²  batch statistics per net (biased variance)
    zhat = (z - mu) / sqrt(var + BN_EPS);  y = gamma zhat + beta          with batch norm
    h    = act(y)                              (y = z without batch norm)
    a    = h * mask                            with dropout: mask is 0 or 1 / (1 - p)

In evaluation mode batch norm uses the running statistics instead of the batch's and dropout
is the identity (inverted dropout scales in training, never at evaluation). Running statistics
start at mean 0, variance 1 and after every training forward become ``(1 - BN_MOMENTUM)
running + BN_MOMENTUM batch`` (PyTorch's momentum, but with the biased batch variance, the
one the batch was normalised with, where PyTorch's running variance takes the unbiased one).

Dropout masks are counter-based draws (``streams.py``) of the net's key, so net ``k`` gets the
same masks whatever the population, chunking, threads or backend. Element ``(s, j)`` of hidden
layer ``l`` at epoch ``e`` keeps its unit when ``uniform(dropout_key(key), e, i) >= p`` with
``i = n_samples * (units of the hidden layers before l) + s * width_l + j``: the (layer,
sample, unit) index flattened. ``dropout_key`` mixes the key with a constant, so these draws
never coincide with the draws of other uses of the key (the order of patterns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations as F
from . import streams
from .checks import check_data, check_theta
from .ordered import backward_product, forward_product, total, weight_gradient
from .schedules import check_keys
from .spec import NetSpec

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
# the fractional bits of sqrt(2) (SHA-512's first word): a constant chosen for nothing
DROPOUT_SALT = np.uint64(0x6A09E667F3BCC908)


def dropout_key(keys: np.ndarray) -> np.ndarray:
    """The key of a net's dropout stream from its key: uint64, the shape of ``keys``."""
    return streams.mix64(np.asarray(keys, dtype=np.uint64) ^ DROPOUT_SALT)


def dropout_masks(spec: NetSpec, keys, epoch: int, n_samples: int, dtype) -> list[np.ndarray]:
    """Masks of every hidden layer at ``epoch``: 0 or 1/(1-p), each (n_samples, width, n_nets).

    keys : uint64 array of shape (n_nets,)
    """
    dtype = np.dtype(dtype)
    key = dropout_key(keys)[None, None, :]
    keep_scale = dtype.type(1.0 / (1.0 - spec.dropout))
    masks, start = [], 0
    for width in spec.layers[1:-1]:
        index = start + np.arange(n_samples * width, dtype=np.uint64).reshape(n_samples, width)
        u = streams.uniform(key, epoch, index[:, :, None])
        masks.append(np.where(u >= spec.dropout, keep_scale, dtype.type(0)))
        start += n_samples * width
    return masks


# ------------------------------------------------------------------------------ batch norm


def batchnorm_forward(z, gamma, beta, mean=None, var=None):
    """Normalise ``z`` over its samples (or with the given statistics), then scale and shift.

    z           : (n_samples, width, n_nets); gamma, beta : (width, n_nets)
    mean, var   : None (training: the batch's) or (width, n_nets) (evaluation: running)
    Returns ``(y, zhat, mean, var, inv_std)``; mean and var are those used.
    """
    if mean is None:
        mean = total(z) / z.shape[0]
        var = total((z - mean) ** 2) / z.shape[0]
    inv_std = 1 / np.sqrt(var + z.dtype.type(BN_EPS))
    zhat = (z - mean) * inv_std
    return gamma * zhat + beta, zhat, mean, var, inv_std


def batchnorm_backward(dy, zhat, gamma, inv_std):
    """dL/dz, dL/dgamma, dL/dbeta of training-mode batch norm, the compact form.

    With dzhat = dy gamma and N samples: dz = inv_std / N (N dzhat - sum dzhat - zhat
    sum(dzhat zhat)), the staged chain rule (``batchnorm_backward_staged``) summed by hand.
    """
    n = dy.shape[0]
    dzhat = dy * gamma
    dz = (inv_std / n) * (
        n * dzhat - total(dzhat) - zhat * total(dzhat * zhat)
    )
    return dz, total(dy * zhat), total(dy)


def batchnorm_backward_staged(dy, z, gamma):
    """The same gradients through the forward's stages one at a time (cs231n's computation graph).

    z : the pre-activations the forward normalised, (n_samples, width, n_nets)
    """
    n = z.shape[0]
    mean = z.mean(axis=0)
    centred = z - mean
    var = (centred**2).mean(axis=0)
    std = np.sqrt(var + z.dtype.type(BN_EPS))
    inv_std = 1 / std
    zhat = centred * inv_std
    dgamma, dbeta = (dy * zhat).sum(axis=0), dy.sum(axis=0)
    dzhat = dy * gamma
    dinv_std = (dzhat * centred).sum(axis=0)
    dcentred = dzhat * inv_std
    dstd = -dinv_std / std**2
    dvar = dstd / (2 * std)
    dcentred = dcentred + 2 * centred * dvar / n
    dmean = -dcentred.sum(axis=0)
    return dcentred + dmean / n, dgamma, dbeta


# ------------------------------------------------------------------------------ whole nets


@dataclass
class Trace:
    """A forward pass of a population with batch norm and/or dropout; lists per layer.

    z     : pre-activations ``a_prev W + b``, n_layers arrays (n_samples, width, n_nets)
    y     : inputs of the hidden activations (normalised, scaled, shifted; ``z`` without batch
            norm), n_layers - 1 arrays
    h     : hidden activations before dropout, n_layers - 1 arrays
    a     : ``a[0]`` the input, ``a[l + 1]`` the layer's output after dropout; ``a[-1]`` the
            net's output
    masks : dropout masks (None without dropout); zhat, mean, var, inv_std : batch norm's
            (None without), per hidden layer
    """

    z: list
    y: list
    h: list
    a: list
    masks: list | None
    zhat: list | None
    mean: list | None
    var: list | None
    inv_std: list | None


def _running_views(spec, running):
    if running is None:
        return None
    views, start = [], 0
    for width in spec.layers[1:-1]:
        views.append(running[start : start + width])
        start += width
    return views


def forward_trace(theta, spec: NetSpec, X, *, training: bool, masks=None,
                  running_mean=None, running_var=None) -> Trace:  # fmt: skip
    """The forward pass in training mode (batch statistics, ``masks`` applied) or evaluation
    mode (``running_mean``/``running_var`` of shape (n_hidden_units, n_nets), no dropout).

    theta : (n_params, n_nets); X : (n_samples, n_inputs), already of theta's dtype
    masks : with dropout in training mode, from :func:`dropout_masks`
    """
    n_nets = theta.shape[1]
    a = [np.broadcast_to(X[:, :, None], (*X.shape, n_nets))]
    t = Trace([], [], [], a, [] if spec.dropout and training else None,
              *([[] for _ in range(4)] if spec.batchnorm else [None] * 4))  # fmt: skip
    norms = spec.norm_views(theta)
    rm, rv = _running_views(spec, running_mean), _running_views(spec, running_var)
    views = spec.layer_views(theta)
    for layer, (W, b) in enumerate(views):
        z = forward_product(a[-1], W) + b
        t.z.append(z)
        if layer == len(views) - 1:
            a.append(F.ACTIVATIONS[spec.output][0](z))
            break
        y = z
        if spec.batchnorm:
            gamma, beta = norms[layer]
            stats = (None, None) if training else (rm[layer], rv[layer])
            y, zhat, mean, var, inv_std = batchnorm_forward(z, gamma, beta, *stats)
            for store, value in zip((t.zhat, t.mean, t.var, t.inv_std),
                                    (zhat, mean, var, inv_std), strict=True):  # fmt: skip
                store.append(value)
        h = F.ACTIVATIONS[spec.activation][0](y)
        t.y.append(y)
        t.h.append(h)
        if t.masks is not None:
            t.masks.append(masks[layer])
            h = h * masks[layer]
        a.append(h)
    return t


def loss_of(spec: NetSpec, trace: Trace, Y) -> np.ndarray:
    """Loss of every net from a trace: shape (n_nets,)."""
    scale = 1.0 / Y.shape[0] if spec.reduction == "mean" else 1.0
    elements = F.loss_elements(spec.loss, trace.z[-1], trace.a[-1], Y[:, :, None])
    return total(elements, axes=2) * scale


def backward_trace(theta, spec: NetSpec, trace: Trace, Y, per_layer: bool = False):
    """dL/dtheta of a training-mode trace (batch statistics, masks held fixed): theta's shape.

    per_layer : also return dL/dz of every layer (z before batch norm) and dL/da of every hidden
                layer, as lists shaped like ``trace.z`` and ``trace.a[1:-1]``
    """
    z, a = trace.z, trace.a
    scale = 1.0 / Y.shape[0] if spec.reduction == "mean" else 1.0
    grad = np.zeros_like(theta)
    dz = F.loss_grad_logits(spec.loss, z[-1], a[-1], Y[:, :, None]) * scale
    weights, grads = spec.layer_views(theta), spec.layer_views(grad)
    norms, norm_grads = spec.norm_views(theta), spec.norm_views(grad)
    dzs, das = [dz], []
    for layer in range(spec.n_layers - 1, -1, -1):
        gW, gb = grads[layer]
        gW[...] = weight_gradient(a[layer], dz)
        # batch norm subtracts the batch mean, so a bias before it has derivative exactly 0;
        # the sum of dz rounds to noise that adam would blow up to full-size steps
        gb[...] = 0 if spec.batchnorm and layer < spec.n_layers - 1 else total(dz)
        if layer == 0:
            break
        hidden = layer - 1
        da = backward_product(dz, weights[layer][0])
        dh = da * trace.masks[hidden] if trace.masks is not None else da
        dy = dh * F.ACTIVATIONS[spec.activation][1](trace.y[hidden], trace.h[hidden])
        if spec.batchnorm:
            dz, dgamma, dbeta = batchnorm_backward(
                dy, trace.zhat[hidden], norms[hidden][0], trace.inv_std[hidden]
            )
            norm_grads[hidden][0][...] = dgamma
            norm_grads[hidden][1][...] = dbeta
        else:
            dz = dy
        dzs.insert(0, dz)
        das.insert(0, da)
    return (grad, dzs, das) if per_layer else grad


def update_running(trace: Trace, running_mean, running_var) -> None:
    """In place: running statistics after a training forward (see the module docstring)."""
    m = running_mean.dtype.type(BN_MOMENTUM)
    keep = running_mean.dtype.type(1 - BN_MOMENTUM)
    mean = np.concatenate(trace.mean)
    var = np.concatenate(trace.var)
    running_mean *= keep
    running_mean += m * mean
    running_var *= keep
    running_var += m * var


def initial_running(spec: NetSpec, n_nets: int, dtype):
    """Running mean 0 and variance 1: arrays of shape (n_hidden_units, n_nets)."""
    shape = (spec.n_hidden_units, n_nets)
    return np.zeros(shape, dtype=dtype), np.ones(shape, dtype=dtype)


# ------------------------------------------------------------------------------ public kernels


def _inputs(theta, spec, X, Y, keys, epoch, training, running_mean, running_var):
    theta = check_theta(theta, spec)
    X, Y = check_data(X, Y, spec, theta.dtype)
    n_nets = theta.shape[1]
    if not isinstance(training, bool):
        raise ValueError(f"training must be True (batch statistics, dropout) or False, "
                         f"got {training!r}")  # fmt: skip
    masks = None
    if training and spec.dropout:
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if epoch >= 2**64:  # the streams' counters are 64 bits (OverflowError from NumPy before)
            raise ValueError(f"epoch must be below 2**64, the dropout streams' range, got {epoch}")
        masks = dropout_masks(spec, check_keys(keys, n_nets), int(epoch), X.shape[0], theta.dtype)
    if not training and spec.batchnorm:
        shape = (spec.n_hidden_units, n_nets)
        if running_mean is None or running_var is None:
            raise ValueError("evaluation with batch norm needs running_mean and running_var, "
                             "e.g. those of a TrainResult")  # fmt: skip
        running_mean = np.asarray(running_mean, dtype=theta.dtype)
        running_var = np.asarray(running_var, dtype=theta.dtype)
        if running_mean.shape != shape or running_var.shape != shape:
            raise ValueError(f"running_mean and running_var must have shape {shape}, got "
                             f"{running_mean.shape} and {running_var.shape}")  # fmt: skip
        if not np.isfinite(running_mean).all():
            raise ValueError("running_mean holds NaN or inf; give the running means training "
                             "kept (update_running)")  # fmt: skip
        if not (np.isfinite(running_var).all() and (running_var >= 0).all()):
            raise ValueError("running_var must be finite and >= 0 (a variance); give the running "
                             "variances training kept (update_running)")  # fmt: skip
    return theta, X, Y, masks, running_mean, running_var


def forward(theta, spec: NetSpec, X, *, training: bool, keys=None, epoch: int = 0,
            running_mean=None, running_var=None) -> Trace:  # fmt: skip
    """Forward pass of nets with batch norm and/or dropout, in training or evaluation mode.

    theta    : (n_params, n_nets); X : (n_samples, n_inputs)
    training : True: batch statistics, dropout masks of (``keys``, ``epoch``);
               False: ``running_mean``/``running_var`` (n_hidden_units, n_nets), no dropout
    keys     : uint64 (n_nets,), None for ``net_keys(0, 0, n_nets)``
    Returns a :class:`Trace`; ``a[-1]`` of shape (n_samples, n_outputs, n_nets) is the output.
    """
    theta, X, _, masks, rm, rv = _inputs(theta, spec, X, None, keys, epoch, training,
                                         running_mean, running_var)  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):
        return forward_trace(theta, spec, X, training=training, masks=masks,
                             running_mean=rm, running_var=rv)  # fmt: skip


def loss(theta, spec: NetSpec, X, Y, *, training: bool, keys=None, epoch: int = 0,
         running_mean=None, running_var=None) -> np.ndarray:  # fmt: skip
    """Loss of every net in training or evaluation mode (as :func:`forward`): (n_nets,)."""
    theta, X, Y, masks, rm, rv = _inputs(theta, spec, X, Y, keys, epoch, training,
                                         running_mean, running_var)  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):
        trace = forward_trace(theta, spec, X, training=training, masks=masks,
                              running_mean=rm, running_var=rv)  # fmt: skip
        return loss_of(spec, trace, Y)


def backward(theta, spec: NetSpec, X, Y, *, keys=None, epoch: int = 0) -> np.ndarray:
    """Gradient of every net's training-mode loss (batch statistics; the masks of ``keys`` and
    ``epoch`` held fixed): an array of theta's shape."""
    theta, X, Y, masks, _, _ = _inputs(theta, spec, X, Y, keys, epoch, True, None, None)
    with np.errstate(over="ignore", invalid="ignore"):
        trace = forward_trace(theta, spec, X, training=True, masks=masks)
        return backward_trace(theta, spec, trace, Y)


def refuse_in_plain_kernels(spec: NetSpec) -> None:
    """The backends' forward, loss and backward know no training or evaluation mode."""
    if spec.regularised:
        raise ValueError(
            "a net with batch norm or dropout runs differently in training and evaluation: "
            "use kernels.regularised.forward/loss/backward with training=True or False"
        )
