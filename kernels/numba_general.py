"""The numba backend's general kernels: shortcut connections and per-pattern or minibatch updates.

The lane kernel (``numba_lanes.py``) trains full-batch layered nets, many nets per SIMD loop.
Nets with shortcut connections and the update schedules of ``schedules.py`` go through here
instead: one net after another in each of numba's threads, which take ranges of nets in turn
(``numba_backend.over_chunks``; as numba's parallel loop over nets it took 22.5 s to compile for
a first job, 9.9 s this way), its math in scalar loops written from the equations
(the output layer sums its layered inputs, then each shortcut block from the input up). A net is
computed by one thread with the same code whatever the thread count or the population around it,
so results are bitwise identical for any number of threads, and its pattern orders are the
counter-based draws of ``numba_streams.py``, equal to the bit to the NumPy oracle's.

Per-net buffers: Z, A, D of shape (n_layers, n_samples, max_width) hold z, a = act(z) and dL/dz
of the patterns in ``rows`` (sample s of a pass is pattern ``rows[s]``); DA of shape
(max(n_layers - 1, 1), n_samples, max_width) holds dL/da of the hidden layers. ``sc`` holds the
start in theta of each shortcut block, from the input up (empty without shortcuts).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .numba_backend import (
    MOMENTUM,
    NET_BLOCK,
    SGD,
    SIGMOID,
    _activate,
    _activate_grad,
    _loss_element,
    _loss_grad_logit,
    jit,
    nogil_jit,
    pjit,
)
from .numba_lanes import _raised
from .numba_streams import permutation
from .training import DECISION_MARGIN, Status

NOT_CONVERGED, CONVERGED, DIVERGED = map(
    int, (Status.NOT_CONVERGED, Status.CONVERGED, Status.DIVERGED)
)
strict_jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy")


@jit
def _below(X, A, rows, source, s, i):
    """Activation i of layer ``source`` (0 = input) for sample s of the pass."""
    return X[rows[s], i] if source == 0 else A[source - 1, s, i]


@jit
def _net_forward(p, X, rows, nb, layers, offsets, sc, act, Z, A):
    n_layers = layers.size - 1
    last = n_layers - 1
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        code = act if layer < last else SIGMOID
        for s in range(nb):
            for j in range(fan_out):
                acc = p[b0 + j]
                for i in range(fan_in):
                    acc += _below(X, A, rows, layer, s, i) * p[w0 + i * fan_out + j]
                if layer == last:
                    for q in range(sc.size):
                        for i in range(layers[q]):
                            acc += _below(X, A, rows, q, s, i) * p[sc[q] + i * fan_out + j]
                Z[layer, s, j] = acc
                A[layer, s, j] = _activate(acc, code)


@jit
def _net_loss(Z, A, Y, rows, nb, n_layers, loss_code, scale):
    last = n_layers - 1
    total = 0.0
    for s in range(nb):
        for j in range(Y.shape[1]):
            total += _loss_element(Z[last, s, j], A[last, s, j], Y[rows[s], j], loss_code)
    return total * scale


@jit
def _net_backward(p, X, Y, rows, nb, layers, offsets, sc, act, loss_code, scale, Z, A, D, DA, g):
    """Fill g with dL/dtheta, D with dL/dz and DA with dL/da; returns |g|²."""
    n_layers = layers.size - 1
    last = n_layers - 1
    n_out = layers[n_layers]
    for s in range(nb):
        for j in range(n_out):
            D[last, s, j] = scale * _loss_grad_logit(A[last, s, j], Y[rows[s], j], loss_code)
    norm2 = 0.0
    for q in range(sc.size):
        for i in range(layers[q]):
            for j in range(n_out):
                acc = 0.0
                for s in range(nb):
                    acc += _below(X, A, rows, q, s, i) * D[last, s, j]
                g[sc[q] + i * n_out + j] = acc
                norm2 += acc * acc
    for layer in range(last, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        for j in range(fan_out):
            acc = 0.0
            for s in range(nb):
                acc += D[layer, s, j]
            g[b0 + j] = acc
            norm2 += acc * acc
        for i in range(fan_in):
            for j in range(fan_out):
                acc = 0.0
                for s in range(nb):
                    acc += _below(X, A, rows, layer, s, i) * D[layer, s, j]
                g[w0 + i * fan_out + j] = acc
                norm2 += acc * acc
        if layer > 0:
            for s in range(nb):
                for i in range(fan_in):
                    acc = 0.0
                    for j in range(fan_out):
                        acc += D[layer, s, j] * p[w0 + i * fan_out + j]
                    if layer < sc.size:  # this hidden layer also feeds the output directly
                        for j in range(n_out):
                            acc += D[last, s, j] * p[sc[layer] + i * n_out + j]
                    DA[layer - 1, s, i] = acc
                    D[layer - 1, s, i] = acc * _activate_grad(
                        Z[layer - 1, s, i], A[layer - 1, s, i], act
                    )
    return norm2


@strict_jit
def _net_step(p, g, m, v, lr, step, opt_code, momentum, beta1, beta2, eps):
    # no FMA contraction, as in the other optimizer steps (see numba_lanes.strict_jit)
    if opt_code == SGD:
        for r in range(p.size):
            p[r] -= lr * g[r]
    elif opt_code == MOMENTUM:
        for r in range(p.size):
            m[r] = momentum * m[r] - lr * g[r]
            p[r] += m[r]
    else:
        # the powers only here: per-pattern training steps often, and pow is dear
        correction1 = 1.0 - beta1**step
        correction2 = 1.0 - beta2**step
        for r in range(p.size):
            m[r] = beta1 * m[r] + (1.0 - beta1) * g[r]
            v[r] = beta2 * v[r] + (1.0 - beta2) * g[r] * g[r]
            p[r] -= lr * (m[r] / correction1) / (math.sqrt(v[r] / correction2) + eps)


# --------------------------------------------------------------------- population kernels (jitted)


@pjit
def forward_kernel(theta, X, layers, offsets, sc, act, Z_out, A_out):
    """numba_backend._forward_kernel's blocks of nets, with shortcuts."""
    n_layers, n_samples, width = Z_out.shape[:3]
    rows = np.arange(n_samples)
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, n_samples, width), dtype=theta.dtype)
        A = np.empty_like(Z)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, rows, n_samples, layers, offsets, sc, act, Z, A)
            Z_out[:, :, :, k] = Z
            A_out[:, :, :, k] = A


@pjit
def loss_kernel(theta, X, Y, layers, offsets, sc, act, loss_code, scale, out):
    n_layers = layers.size - 1
    width = layers[1:].max()
    n_samples = X.shape[0]
    rows = np.arange(n_samples)
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, n_samples, width), dtype=theta.dtype)
        A = np.empty_like(Z)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, rows, n_samples, layers, offsets, sc, act, Z, A)
            out[k] = _net_loss(Z, A, Y, rows, n_samples, n_layers, loss_code, scale)


@pjit
def backward_kernel(theta, X, Y, layers, offsets, sc, act, loss_code, scale, G, D_out, DA_out):
    n_layers = layers.size - 1
    width = layers[1:].max()
    n_samples = X.shape[0]
    rows = np.arange(n_samples)
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, n_samples, width), dtype=theta.dtype)
        A = np.empty_like(Z)
        D = np.empty_like(Z)
        DA = np.zeros((max(n_layers - 1, 1), n_samples, width), dtype=theta.dtype)  # as there
        g = np.empty_like(p)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, rows, n_samples, layers, offsets, sc, act, Z, A)
            _net_backward(p, X, Y, rows, n_samples, layers, offsets, sc, act, loss_code, scale,
                          Z, A, D, DA, g)  # fmt: skip
            G[:, k] = g
            if D_out.shape[3] > 0:
                D_out[:, :, :, k] = D
                DA_out[:, :, :, k] = DA


@nogil_jit
def train_kernel(
    theta, X, Y, layers, offsets, sc, act, loss_code, mean, keys, batch_size,
    lr, n_epochs, opt_code, momentum, beta1, beta2, eps,
    max_error_limit, loss_limit, squared_limit, divergence_factor, early_stop, record_every,
    n_records, status, epochs_to_converge, first_full_accuracy, epochs_trained,
    final_loss, final_accuracy, final_grad_norm, hist_loss, hist_accuracy, hist_grad_norm,
    hist_param_norm, abort, start, stop,
):  # fmt: skip
    """All epochs of the nets start <= net < stop, one after another (threads take ranges of
    nets: numba_backend.over_chunks). batch_size 0 is full batch; mean: the loss is a mean over
    the patterns of a pass (else a sum); squared_limit bounds the sum of squared output errors
    (the RMS and TSS stopping rules; inf when neither is set)."""
    n_params, n_nets = theta.shape
    n_layers = layers.size - 1
    last = n_layers - 1
    width = layers[1:].max()
    n_samples = X.shape[0]
    n_out = Y.size
    step_size = n_samples if batch_size == 0 else min(batch_size, n_samples)
    n_batches = (n_samples + step_size - 1) // step_size
    full_scale = 1.0 / n_samples if mean else 1.0
    for net in range(start, stop):
        p = theta[:, net].copy()
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        g = np.zeros_like(p)
        Z = np.zeros((n_layers, n_samples, width), dtype=theta.dtype)
        A = np.zeros_like(Z)
        D = np.zeros_like(Z)
        DA = np.zeros((max(n_layers - 1, 1), n_samples, width), dtype=theta.dtype)
        all_rows = np.arange(n_samples)
        order = np.arange(n_samples)
        loss0 = 0.0
        record = 0
        for epoch in range(n_epochs + 1):
            if _raised(abort):
                break
            _net_forward(p, X, all_rows, n_samples, layers, offsets, sc, act, Z, A)
            loss = _net_loss(Z, A, Y, all_rows, n_samples, n_layers, loss_code, full_scale)
            norm2 = _net_backward(p, X, Y, all_rows, n_samples, layers, offsets, sc, act,
                                  loss_code, full_scale, Z, A, D, DA, g)  # fmt: skip
            grad_norm = math.sqrt(norm2)
            max_error = 0.0
            correct = 0.0
            squared = 0.0
            for s in range(n_samples):
                for j in range(Y.shape[1]):
                    y = Y[s, j]
                    err = abs(A[last, s, j] - y)
                    squared += err * err
                    max_error = err if (err > max_error or err != err) else max_error
                    sign = 1.0 if y >= 0.5 else -1.0
                    correct += 1.0 if sign * Z[last, s, j] > DECISION_MARGIN else 0.0
            accuracy = correct / n_out
            if epoch == 0:
                loss0 = loss
            if record < n_records and (epoch % record_every == 0 or epoch == n_epochs):
                hist_loss[record, net] = loss
                hist_accuracy[record, net] = accuracy
                hist_grad_norm[record, net] = grad_norm
                total = 0.0
                for r in range(n_params):
                    total += p[r] * p[r]
                hist_param_norm[record, net] = math.sqrt(total)
                record += 1
            if accuracy == 1.0 and first_full_accuracy[net] < 0:
                first_full_accuracy[net] = epoch
            diverged = (
                not (math.isfinite(loss) and math.isfinite(grad_norm))
                or loss > divergence_factor * loss0
            )
            met = max_error < max_error_limit and loss < loss_limit and not diverged
            met = met and squared < squared_limit
            if met and epochs_to_converge[net] < 0:
                epochs_to_converge[net] = epoch
            if diverged or (met and early_stop) or epoch == n_epochs:
                epochs_trained[net] = epoch
                final_loss[net] = loss
                final_accuracy[net] = accuracy
                final_grad_norm[net] = grad_norm
                if diverged:
                    status[net] = DIVERGED
                elif epochs_to_converge[net] >= 0:
                    status[net] = CONVERGED
                else:
                    status[net] = NOT_CONVERGED
                break
            if batch_size == 0:
                _net_step(p, g, m, v, lr[net], epoch + 1, opt_code, momentum, beta1, beta2, eps)
                continue
            permutation(keys[net], epoch, order)
            for b in range(n_batches):
                start = b * step_size
                nb = min(step_size, n_samples - start)
                rows = order[start : start + nb]
                scale = 1.0 / nb if mean else 1.0
                _net_forward(p, X, rows, nb, layers, offsets, sc, act, Z, A)
                _net_backward(p, X, Y, rows, nb, layers, offsets, sc, act, loss_code, scale,
                              Z, A, D, DA, g)  # fmt: skip
                _net_step(p, g, m, v, lr[net], epoch * n_batches + b + 1, opt_code, momentum,
                          beta1, beta2, eps)  # fmt: skip
        for r in range(n_params):
            theta[r, net] = p[r]
