"""The NumPy backend: readable, batched over a population, and the oracle for the numba backend.

Every array carries the net axis last: theta is (n_params, n_nets), a layer's activations are
(n_samples, width, n_nets). One matrix product per layer is a sum over that layout (an einsum's,
taken in a fixed order: :mod:`.ordered`), so the code reads like the tutorial's with one more
index. The numba backend has the same functions with the same signatures and is tested against
these.
"""

from __future__ import annotations

import numpy as np

from . import activations as F
from . import values
from .checks import check_data, check_step_inputs, check_step_number, check_theta
from .failure import analyse
from .ordered import backward_product, forward_product, total, weight_gradient
from .passes import Forward, Gradients
from .regularised import refuse_in_plain_kernels
from .schedules import batch_bounds, check_batch_size, check_keys, orders
from .spec import NetSpec
from .training import (
    DECISION_MARGIN,
    Criterion,
    Optimizer,
    Status,
    TrainResult,
    check_abort,
    check_training_options,
    start_training,
)

# ---------------------------------------------------------------------------- passes (unchecked)


def _forward(spec: NetSpec, theta: np.ndarray, X: np.ndarray) -> Forward:
    """X: shared by all nets, shape (n_samples, n_inputs), or one set per net (a minibatch in
    each net's own order), shape (n_samples, n_inputs, n_nets)."""
    n_nets = theta.shape[1]
    a = [X if X.ndim == 3 else np.broadcast_to(X[:, :, None], (*X.shape, n_nets))]
    z = []
    views = spec.layer_views(theta)
    for layer, (W, b) in enumerate(views):
        zl = forward_product(a[-1], W) + b
        if layer == len(views) - 1:
            for src, S in zip(spec.shortcut_sources(), spec.shortcut_views(theta), strict=True):
                zl = zl + forward_product(a[src], S)
        activation = spec.output if layer == len(views) - 1 else spec.activation
        z.append(zl)
        a.append(F.ACTIVATIONS[activation][0](zl))
    return Forward(z, a)


def _scale(spec: NetSpec, n_samples: int) -> float:
    return 1.0 / n_samples if spec.reduction == "mean" else 1.0


def _per_net(Y: np.ndarray) -> np.ndarray:
    """Targets shared by all nets (n_samples, n_outputs) or per net (..., n_nets), as 3-d."""
    return Y if Y.ndim == 3 else Y[:, :, None]


def _loss(spec: NetSpec, fwd: Forward, Y: np.ndarray) -> np.ndarray:
    elements = F.loss_elements(spec.loss, fwd.z[-1], fwd.a[-1], _per_net(Y))
    return total(elements, axes=2) * _scale(spec, Y.shape[0])


def _backward(spec: NetSpec, theta, fwd: Forward, Y, per_layer: bool) -> Gradients:
    z, a = fwd.z, fwd.a
    scale = _scale(spec, Y.shape[0])
    grad = np.empty_like(theta)
    dz = F.loss_grad_logits(spec.loss, z[-1], a[-1], _per_net(Y)) * scale
    dz_out = dz
    dzs, das = [dz], []
    weights, grads = spec.layer_views(theta), spec.layer_views(grad)
    shortcuts = dict(zip(spec.shortcut_sources(), spec.shortcut_views(theta), strict=True))
    for src, gS in zip(spec.shortcut_sources(), spec.shortcut_views(grad), strict=True):
        gS[...] = weight_gradient(a[src], dz_out)
    for layer in range(spec.n_layers - 1, -1, -1):
        gW, gb = grads[layer]
        gW[...] = weight_gradient(a[layer], dz)
        gb[...] = total(dz)
        if layer > 0:
            da = backward_product(dz, weights[layer][0])
            if layer in shortcuts:  # a[layer] also feeds the output directly
                da = da + backward_product(dz_out, shortcuts[layer])
            dz = da * F.ACTIVATIONS[spec.activation][1](z[layer - 1], a[layer])
            dzs.insert(0, dz)
            das.insert(0, da)
    if per_layer:
        return Gradients(grad, dzs, das)
    return Gradients(grad)


def _output_checks(fwd: Forward, Y: np.ndarray):
    """Per net: largest |output - target| and fraction of outputs on the right side of 0.5."""
    out, target = fwd.a[-1], Y[:, :, None]
    max_error = np.abs(out - target).max(axis=(0, 1))
    z = fwd.z[-1]
    correct = np.where(target >= 0.5, z > DECISION_MARGIN, z < -DECISION_MARGIN)
    return max_error, correct.mean(axis=(0, 1))


# --------------------------------------------------------------------------------- public kernels


def forward(theta, spec: NetSpec, X) -> Forward:
    """Pre-activations and activations of every layer for a population of nets.

    theta : float64 or float32 array of shape (n_params, n_nets), nets on the last axis
    X     : array of shape (n_samples, n_inputs), shared by all nets
    Returns a :class:`Forward`; ``a[-1]`` of shape (n_samples, n_outputs, n_nets) is the output.
    """
    theta = check_theta(theta, spec)
    refuse_in_plain_kernels(spec)
    X, _ = check_data(X, None, spec, theta.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return _forward(spec, theta, X)


def loss(theta, spec: NetSpec, X, Y) -> np.ndarray:
    """Loss of every net, summed over outputs and reduced over samples: array of shape (n_nets,)."""
    theta = check_theta(theta, spec)
    refuse_in_plain_kernels(spec)
    X, Y = check_data(X, Y, spec, theta.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return _loss(spec, _forward(spec, theta, X), Y)


def backward(theta, spec: NetSpec, X, Y, *, per_layer: bool = False) -> Gradients:
    """Gradient of every net's loss with respect to its parameters.

    theta : array of shape (n_params, n_nets), nets on the last axis
    X, Y  : arrays of shape (n_samples, n_inputs) and (n_samples, n_outputs)
    per_layer : also return dL/dz of every layer and dL/da of every hidden layer
    Returns a :class:`Gradients` whose ``grad`` has theta's shape.
    """
    theta = check_theta(theta, spec)
    refuse_in_plain_kernels(spec)
    X, Y = check_data(X, Y, spec, theta.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return _backward(spec, theta, _forward(spec, theta, X), Y, per_layer)


def sgd_step(theta, grad, learning_rate) -> None:
    """In place: theta -= learning_rate * grad.

    theta, grad   : arrays of shape (n_params, n_nets)
    learning_rate : scalar or array of shape (n_nets,)
    """
    lr = check_step_inputs(theta, grad, learning_rate)
    theta -= lr * grad


def momentum_step(theta, grad, velocity, learning_rate, momentum: float) -> None:
    """In place: velocity = momentum * velocity - learning_rate * grad; theta += velocity."""
    lr = check_step_inputs(theta, grad, learning_rate, ("velocity", velocity))
    Optimizer("momentum", momentum=momentum)
    velocity *= theta.dtype.type(momentum)
    velocity -= lr * grad
    theta += velocity


def adam_step(theta, grad, m, v, step: int, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
    """In place, Adam (Kingma & Ba 2015, Algorithm 1) at step ``step`` (1 for the first).

    m, v : first and second moment estimates, arrays of theta's shape, zeros before step 1
    """
    lr = check_step_inputs(theta, grad, learning_rate, ("m", m), ("v", v))
    Optimizer("adam", beta1=beta1, beta2=beta2, eps=eps)
    _adam(theta, grad, m, v, check_step_number(step), lr, beta1, beta2, eps)


def _adam(theta, grad, m, v, step, lr, beta1, beta2, eps):
    t = theta.dtype.type
    m *= t(beta1)
    m += t(1 - beta1) * grad
    v *= t(beta2)
    v += t(1 - beta2) * grad * grad
    m_hat = m / t(1 - beta1**step)
    v_hat = v / t(1 - beta2**step)
    theta -= lr * m_hat / (np.sqrt(v_hat) + t(eps))


def _step(optimizer: Optimizer, theta, grad, state, lr, step):
    if optimizer.name == "sgd":
        theta -= lr * grad
    elif optimizer.name == "momentum":
        (velocity,) = state
        velocity *= theta.dtype.type(optimizer.momentum)
        velocity -= lr * grad
        theta += velocity
    else:
        m, v = state
        _adam(theta, grad, m, v, step, lr, optimizer.beta1, optimizer.beta2, optimizer.eps)


def _minibatch_epoch(spec, optimizer, params, state, lr, X, Y, keys, epoch, batch_size):
    """One epoch of steps on runs of ``batch_size`` patterns, each net in its own order."""
    bounds = batch_bounds(X.shape[0], batch_size)
    order = orders(keys, epoch, X.shape[0])  # (n_nets, n_samples)
    for b, (start, stop) in enumerate(bounds):
        rows = order[:, start:stop].T  # (batch, n_nets)
        Xb = X[rows].transpose(0, 2, 1)  # (batch, n_inputs, n_nets)
        Yb = Y[rows].transpose(0, 2, 1)
        grad = _backward(spec, params, _forward(spec, params, Xb), Yb, per_layer=False).grad
        _step(optimizer, params, grad, state, lr, epoch * len(bounds) + b + 1)


# ------------------------------------------------------------------------------ fused training


def train_population(
    theta,
    spec: NetSpec,
    X,
    Y,
    learning_rate,
    n_epochs: int,
    *,
    optimizer: Optimizer = Optimizer(),
    criterion: Criterion = Criterion(),
    early_stop: bool = True,
    record_every: int = 0,
    abort: np.ndarray | None = None,
    batch_size: int | None = None,
    keys: np.ndarray | None = None,
) -> TrainResult:
    """Train every net of a population by gradient descent (see ``training.py``).

    theta         : initial parameters, shape (n_params, n_nets); not modified
    X, Y          : arrays of shape (n_samples, n_inputs) and (n_samples, n_outputs)
    learning_rate : scalar or array of shape (n_nets,)
    n_epochs      : budget of optimizer steps per net
    record_every  : if positive, keep loss, accuracy and gradient norm every that many epochs
    abort         : None, or an int8 array of shape (1,) polled every epoch: another thread sets
                    it to 1 to stop training early (an interrupted result is incomplete)
    batch_size    : None (full batch), 1 (per pattern) or k (minibatches of k): see schedules.py
    keys          : uint64 array of shape (n_nets,), the nets' stream keys, which draw their
                    pattern orders and dropout masks (``streams.net_keys(seed, first_net,
                    n_nets)``); None means ``streams.net_keys(0, 0, n_nets)``
    Returns a :class:`TrainResult` with per-net outcomes.
    """
    check_training_options(optimizer, criterion)
    early_stop = values.flag("early_stop", early_stop)
    abort = check_abort(abort)
    batch_size = check_batch_size(batch_size)
    result, X, Y, lr, n_epochs = start_training(
        theta, spec, X, Y, learning_rate, n_epochs, record_every
    )
    keys = check_keys(keys, result.theta.shape[1])
    from .regularised_training import is_needed, train_regularised, train_with_options

    if is_needed(spec, optimizer):
        return train_with_options(train_regularised, result, spec, X, Y, lr, n_epochs, keys,
                                  optimizer, criterion, early_stop, abort, batch_size)  # fmt: skip
    r, history = result, result.history

    # Working copies of the nets still training; shrunk whenever some stop.
    active = np.arange(r.theta.shape[1])
    params = r.theta.copy()
    state = [np.zeros_like(params) for _ in range(optimizer.n_state)]
    initial_loss = None
    record = 0
    max_error_limit = np.inf if criterion.max_error is None else criterion.max_error
    loss_limit = np.inf if criterion.loss_below is None else criterion.loss_below
    squared_limit = criterion.squared_error_limit(Y.size)

    with np.errstate(all="ignore"):
        for epoch in range(n_epochs + 1):
            if abort[0]:
                break
            fwd = _forward(spec, params, X)
            current_loss = _loss(spec, fwd, Y)
            grad = _backward(spec, params, fwd, Y, per_layer=False).grad
            grad_norm = np.sqrt(total(grad * grad))
            max_error, accuracy = _output_checks(fwd, Y)
            if initial_loss is None:
                initial_loss = current_loss.copy()

            if record < history.epochs.size and history.epochs[record] == epoch:
                history.loss[record, active] = current_loss
                history.accuracy[record, active] = accuracy
                history.grad_norm[record, active] = grad_norm
                history.param_norm[record, active] = np.sqrt(total(params * params))
                record += 1

            full = (accuracy == 1.0) & (r.first_full_accuracy[active] < 0)
            r.first_full_accuracy[active[full]] = epoch
            diverged = ~(np.isfinite(current_loss) & np.isfinite(grad_norm)) | (
                current_loss > criterion.divergence_factor * initial_loss
            )
            met = (max_error < max_error_limit) & (current_loss < loss_limit) & ~diverged
            if squared_limit < np.inf:
                met &= total((fwd.a[-1] - Y[:, :, None]) ** 2, axes=2) < squared_limit
            newly = met & (r.epochs_to_converge[active] < 0)
            r.epochs_to_converge[active[newly]] = epoch

            stop = diverged | (met & early_stop) if epoch < n_epochs else np.ones_like(met)
            if stop.any():
                done = active[stop]
                r.theta[:, done] = params[:, stop]
                r.epochs_trained[done] = epoch
                r.final_loss[done] = current_loss[stop]
                r.final_accuracy[done] = accuracy[stop]
                r.final_grad_norm[done] = grad_norm[stop]
                converged = np.where(r.epochs_to_converge[done] >= 0, Status.CONVERGED, 0)
                r.status[done] = np.where(diverged[stop], Status.DIVERGED, converged)
                keep = ~stop
                active = active[keep]
                if active.size == 0:
                    break
                params, grad, lr = params[:, keep], grad[:, keep], lr[keep]
                state = [s[:, keep] for s in state]
                initial_loss = initial_loss[keep]
            if batch_size is None:
                _step(optimizer, params, grad, state, lr, epoch + 1)
            else:
                _minibatch_epoch(spec, optimizer, params, state, lr, X, Y, keys[active], epoch,
                                 batch_size)  # fmt: skip

    if not history.epochs.size:
        result.history = None
    if not abort[0]:
        result.analysis = analyse(result, spec, X, Y, n_epochs, forward)
    return result
