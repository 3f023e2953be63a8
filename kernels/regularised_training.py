"""Population training with batch norm, dropout or weight decay, in NumPy: the oracle.

The same loop as ``numpy_backend.train_population`` with three differences, the contract the
numba kernel (``numba_regularised.py``) follows:

1. Each epoch runs forward in training mode (batch statistics; the dropout masks of the net's
   key and the epoch), takes the gradient of that loss, and updates batch norm's running
   statistics from the batch's.
2. The stopping rules, the recorded statistics and the final ones judge the net as it is used:
   in evaluation mode (running statistics, no dropout) after that update. The gradient norm is
   of the training-mode loss alone (no weight decay term). A net also diverges when its
   training-mode loss is not finite.
3. The optimizer step adds weight decay (``Optimizer.weight_decay``): coupled for sgd, momentum
   and adam (``g + weight_decay theta``), decoupled for adamw (``theta -= lr weight_decay
   theta`` before adam's step).
"""

from __future__ import annotations

import numpy as np

from . import regularised as R
from .numpy_backend import _adam, _output_checks
from .ordered import total
from .spec import NetSpec
from .training import Optimizer, Status


def is_needed(spec: NetSpec, optimizer: Optimizer) -> bool:
    """Whether training needs this loop rather than the plain one."""
    return spec.regularised or optimizer.weight_decay > 0 or optimizer.name == "adamw"


def check_combination(criterion, batch_size) -> None:
    """Refuse, in one line, the options this loop does not implement."""
    if batch_size is not None:
        raise ValueError(
            "batch norm, dropout and weight decay train with full-batch updates only; "
            "leave batch_size at None"
        )
    if criterion.rms_below is not None or criterion.tss_below is not None:
        raise ValueError(
            "the RMS and TSS stopping rules are not available with batch norm, dropout or "
            "weight decay; use max_error or loss_below"
        )


def regularised_step(optimizer: Optimizer, theta, grad, state, lr, step) -> None:
    """In place: one optimizer step with weight decay (see the module docstring)."""
    t = theta.dtype.type
    decay = t(optimizer.weight_decay)
    if optimizer.name == "adamw":
        theta -= lr * decay * theta
    elif decay:
        grad = grad + decay * theta
    if optimizer.name == "sgd":
        theta -= lr * grad
    elif optimizer.name == "momentum":
        (velocity,) = state
        velocity *= t(optimizer.momentum)
        velocity -= lr * grad
        theta += velocity
    else:
        m, v = state
        _adam(theta, grad, m, v, step, lr, optimizer.beta1, optimizer.beta2, optimizer.eps)


def train_regularised(result, spec, X, Y, lr, n_epochs, keys, optimizer, criterion, early_stop,
                      abort):  # fmt: skip
    """Train in place into ``result`` (from ``start_training``); arguments already validated.

    keys : uint64 array of shape (n_nets,), the nets' keys for dropout masks
    """
    r, history = result, result.history
    n_nets = r.theta.shape[1]
    active = np.arange(n_nets)
    params = r.theta.copy()
    state = [np.zeros_like(params) for _ in range(optimizer.n_state)]
    running = R.initial_running(spec, n_nets, params.dtype)
    if spec.batchnorm:
        r.running_mean, r.running_var = running[0].copy(), running[1].copy()
    initial_loss = None
    record = 0
    max_error_limit = np.inf if criterion.max_error is None else criterion.max_error
    loss_limit = np.inf if criterion.loss_below is None else criterion.loss_below

    with np.errstate(all="ignore"):
        for epoch in range(n_epochs + 1):
            if abort[0]:
                break
            masks = None
            if spec.dropout:
                masks = R.dropout_masks(spec, keys[active], epoch, X.shape[0], params.dtype)
            trace = R.forward_trace(params, spec, X, training=True, masks=masks)
            train_loss = R.loss_of(spec, trace, Y)
            grad = R.backward_trace(params, spec, trace, Y)
            grad_norm = np.sqrt(total(grad * grad))
            if spec.batchnorm:
                R.update_running(trace, *running)
            evaluated = R.forward_trace(
                params, spec, X, training=False, running_mean=running[0], running_var=running[1]
            )
            current_loss = R.loss_of(spec, evaluated, Y)
            max_error, accuracy = _output_checks(evaluated, Y)
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
            diverged = ~(
                np.isfinite(current_loss) & np.isfinite(train_loss) & np.isfinite(grad_norm)
            ) | (current_loss > criterion.divergence_factor * initial_loss)
            met = (max_error < max_error_limit) & (current_loss < loss_limit) & ~diverged
            newly = met & (r.epochs_to_converge[active] < 0)
            r.epochs_to_converge[active[newly]] = epoch

            stop = diverged | (met & early_stop) if epoch < n_epochs else np.ones_like(met)
            if stop.any():
                done = active[stop]
                r.theta[:, done] = params[:, stop]
                if spec.batchnorm:
                    r.running_mean[:, done] = running[0][:, stop]
                    r.running_var[:, done] = running[1][:, stop]
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
                running = [s[:, keep] for s in running]
                initial_loss = initial_loss[keep]
            regularised_step(optimizer, params, grad, state, lr, epoch + 1)

    if not history.epochs.size:
        result.history = None
    return result


def evaluation_passes(result, spec: NetSpec, X):
    """For ``failure.analyse``: the evaluation-mode forward pass of a block of trained nets
    (running statistics, no dropout), with the inputs of the hidden activations as ``z``."""
    from .passes import Forward
    from .regularised import forward_trace

    def evaluate(block: slice) -> Forward:
        stats = [None if s is None else s[:, block]
                 for s in (result.running_mean, result.running_var)]  # fmt: skip
        theta = result.theta[:, block]
        trace = forward_trace(theta, spec, X.astype(theta.dtype), training=False,
                              running_mean=stats[0], running_var=stats[1])  # fmt: skip
        return Forward([*trace.y, trace.z[-1]], [trace.a[0], *trace.h, trace.a[-1]])

    return evaluate


def train_with_options(train, result, spec, X, Y, lr, n_epochs, keys, optimizer, criterion,
                       early_stop, abort, batch_size):  # fmt: skip
    """Either backend's path for batch norm, dropout and weight decay: refuse what the loop does
    not implement, train with the backend's ``train`` (this module's ``train_regularised`` or
    numba's), then analyse the nets in evaluation mode."""
    from .failure import analyse

    check_combination(criterion, batch_size)
    train(result, spec, X, Y, lr, n_epochs, keys, optimizer, criterion, early_stop, abort)
    if not abort[0]:
        evaluate = evaluation_passes(result, spec, X)
        result.analysis = analyse(result, spec, X, Y, n_epochs, None, evaluate)
    return result
