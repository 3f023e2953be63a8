"""The fused numba training kernel for batch norm, dropout and weight decay.

All epochs of all nets in one call, threads taking ranges of nets in turn
(``numba_backend.over_chunks``), each net computed start to finish by one thread in scalar loops:
results are bitwise identical for any thread count (as numba's parallel loop over nets it took
26.0 s to compile for a first job, 15.7 s this way). It follows the contract of
``regularised_training.py`` (the NumPy oracle) step for step; the two agree to rounding (tests:
relative 1e-9 in float64 over tens of epochs), not to the bit. The plain kernel
(``numba_lanes.py``) keeps nets in SIMD lanes; this one does not, and is slower per net-epoch:
it runs only when one of these options is on.

Buffers of one net, of shape (n_layers, n_samples, max_width): Z (a_prev W + b), V (the input
of the activation: batch norm's output, Z without it), H (the activation), A (after dropout;
the output layer's sigmoid in its last layer), M (dropout masks), N (batch norm's zhat), D
(dL/dz), and E, F (Z and A of the evaluation-mode pass). Per hidden unit, shape (n_layers,
max_width): the batch mean, variance and 1/std.

Strict floating point (no fastmath contraction or reassociation): the results must not depend
on how a compile chose to fuse operations.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .numba_backend import _activate, _activate_grad, _loss_element, _loss_grad_logit
from .numba_streams import uniform
from .regularised import BN_EPS, BN_MOMENTUM
from .training import DECISION_MARGIN, OPTIMIZERS

# the training kernel runs a range of nets a call, in threads (numba_backend.over_chunks): as
# numba's parallel loop over nets it took seconds more to compile
nogil_jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy", nogil=True)
jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy")
# one net's passes and step, which allocate nothing and return no array, without numba's
# reference counts: with them each call took an atomic increment and decrement of every array
# it was passed (numba_lanes.uncounted_jit). In one process on the Intel Xeon, the same bits:
# 2-8-8-1 with weight decay 1.10x and 1.19x, with batch norm 1.13x the rate (the same change to
# the shortcut kernel's workers, numba_general, measured 0.95x twice, and to numba_backend's
# per-net passes 1.00x: not made).
uncounted_jit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy", _nrt=False)

SGD, MOMENTUM, ADAM, ADAMW = map(OPTIMIZERS.index, ("sgd", "momentum", "adam", "adamw"))
SIGMOID_CODE = 0  # the output layer's activation code in _activate


@uncounted_jit
def _forward(p, X, layers, offsets, noffs, uoff, act, bn, training, rm, rv, dropout,
             Z, V, H, A, M, N, MEAN, VAR, INV):  # fmt: skip
    """One net's forward pass (training: batch statistics and masks M; else running rm, rv)."""
    n_layers = layers.size - 1
    S = X.shape[0]
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        for s in range(S):
            for j in range(fan_out):
                acc = p[b0 + j]
                for i in range(fan_in):
                    x = X[s, i] if layer == 0 else A[layer - 1, s, i]
                    acc += x * p[w0 + i * fan_out + j]
                Z[layer, s, j] = acc
        if layer == n_layers - 1:
            for s in range(S):
                for j in range(fan_out):
                    A[layer, s, j] = _activate(Z[layer, s, j], SIGMOID_CODE)
            break
        for j in range(fan_out):
            gamma, beta = 1.0, 0.0
            if bn:
                if training:
                    mean = 0.0
                    for s in range(S):
                        mean += Z[layer, s, j]
                    mean /= S
                    var = 0.0
                    for s in range(S):
                        d = Z[layer, s, j] - mean
                        var += d * d
                    var /= S
                else:
                    mean = rm[uoff[layer] + j]
                    var = rv[uoff[layer] + j]
                inv = 1.0 / math.sqrt(var + BN_EPS)
                MEAN[layer, j], VAR[layer, j], INV[layer, j] = mean, var, inv
                gamma, beta = p[noffs[layer, 0] + j], p[noffs[layer, 1] + j]
            for s in range(S):
                v = Z[layer, s, j]
                if bn:
                    N[layer, s, j] = (v - MEAN[layer, j]) * INV[layer, j]
                    v = gamma * N[layer, s, j] + beta
                V[layer, s, j] = v
                h = _activate(v, act)
                H[layer, s, j] = h
                A[layer, s, j] = h * M[layer, s, j] if training and dropout else h


@uncounted_jit
def _backward(p, X, Y, layers, offsets, noffs, act, bn, dropout, loss_code, scale,
              Z, V, H, A, M, N, INV, D, g):  # fmt: skip
    """Fill g with dL/dtheta of the training-mode pass; returns |g|²."""
    n_layers = layers.size - 1
    last = n_layers - 1
    S = X.shape[0]
    for s in range(S):
        for j in range(Y.shape[1]):
            D[last, s, j] = scale * _loss_grad_logit(A[last, s, j], Y[s, j], loss_code)
    norm2 = 0.0
    for layer in range(last, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        for j in range(fan_out):
            acc = 0.0
            if not bn or layer == last:  # before batch norm a bias's derivative is exactly 0
                for s in range(S):
                    acc += D[layer, s, j]
            g[b0 + j] = acc
            norm2 += acc * acc
        for i in range(fan_in):
            for j in range(fan_out):
                acc = 0.0
                for s in range(S):
                    x = X[s, i] if layer == 0 else A[layer - 1, s, i]
                    acc += x * D[layer, s, j]
                g[w0 + i * fan_out + j] = acc
                norm2 += acc * acc
        if layer == 0:
            break
        h = layer - 1
        for s in range(S):
            for i in range(fan_in):
                acc = 0.0
                for j in range(fan_out):
                    acc += D[layer, s, j] * p[w0 + i * fan_out + j]
                if dropout:
                    acc *= M[h, s, i]
                D[h, s, i] = acc * _activate_grad(V[h, s, i], H[h, s, i], act)
        if bn:
            for i in range(fan_in):
                gamma = p[noffs[h, 0] + i]
                dgamma, dbeta = 0.0, 0.0
                for s in range(S):
                    dgamma += D[h, s, i] * N[h, s, i]
                    dbeta += D[h, s, i]
                g[noffs[h, 0] + i] = dgamma
                g[noffs[h, 1] + i] = dbeta
                norm2 += dgamma * dgamma + dbeta * dbeta
                # dzhat = dy gamma: its sums are gamma dbeta and gamma dgamma
                for s in range(S):
                    D[h, s, i] = (INV[h, i] / S) * (
                        S * gamma * D[h, s, i] - gamma * dbeta - N[h, s, i] * gamma * dgamma
                    )
    return norm2


@uncounted_jit
def _step(p, g, m, v, lr, step, opt_code, momentum, beta1, beta2, eps, decay):
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in range(p.shape[0]):
        grad = g[i]
        if opt_code == ADAMW:
            p[i] -= lr * decay * p[i]
        elif decay != 0.0:
            grad = grad + decay * p[i]
        if opt_code == SGD:
            p[i] -= lr * grad
        elif opt_code == MOMENTUM:
            m[i] = momentum * m[i] - lr * grad
            p[i] += m[i]
        else:
            m[i] = beta1 * m[i] + (1.0 - beta1) * grad
            v[i] = beta2 * v[i] + (1.0 - beta2) * grad * grad
            p[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)


@nogil_jit
def train_kernel(theta, X, Y, layers, offsets, noffs, uoff, act, loss_code, scale, bn, dropout,
                 keep_scale, dkeys, lr, n_epochs, opt_code, momentum, beta1, beta2, eps, decay,
                 max_error_limit, loss_limit, divergence_factor, early_stop, record_epochs,
                 status, epochs_to_converge, first_full_accuracy, epochs_trained, final_loss,
                 final_accuracy, final_grad_norm, h_loss, h_accuracy, h_grad_norm, h_param_norm,
                 running_mean, running_var, abort, start, stop):  # fmt: skip
    """Train the nets start <= k < stop (columns of theta, in place) and fill their outcomes;
    see the module."""
    n_layers = layers.size - 1
    S, n_out = Y.shape
    width = layers[1:].max()
    n_records = record_epochs.size
    for k in range(start, stop):
        p = theta[:, k].copy()
        g = np.zeros_like(p)
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        rm = running_mean[:, k].copy()
        rv = running_var[:, k].copy()
        Z = np.zeros((n_layers, S, width), dtype=theta.dtype)
        V, H, A, M = np.zeros_like(Z), np.zeros_like(Z), np.zeros_like(Z), np.zeros_like(Z)
        N, D, E, F = np.zeros_like(Z), np.zeros_like(Z), np.zeros_like(Z), np.zeros_like(Z)
        MEAN = np.zeros((n_layers, width), dtype=theta.dtype)
        VAR, INV = np.zeros_like(MEAN), np.zeros_like(MEAN)
        initial_loss = 0.0
        record = 0
        for epoch in range(n_epochs + 1):
            if abort[0]:
                break
            if dropout:
                start = 0
                for h in range(n_layers - 1):
                    w = layers[h + 1]
                    for s in range(S):
                        for j in range(w):
                            u = uniform(dkeys[k], epoch, start + s * w + j)
                            M[h, s, j] = keep_scale if u >= dropout else 0.0
                    start += S * w
            _forward(p, X, layers, offsets, noffs, uoff, act, bn, True, rm, rv, dropout,
                     Z, V, H, A, M, N, MEAN, VAR, INV)  # fmt: skip
            # the training-mode loss is finite exactly when every output logit is (softplus and
            # the sigmoid are finite for finite z): that, not its value, is what training needs
            train_finite = True
            for s in range(S):
                for j in range(n_out):
                    train_finite = train_finite and np.isfinite(Z[n_layers - 1, s, j])
            norm2 = _backward(p, X, Y, layers, offsets, noffs, act, bn, dropout, loss_code,
                              scale, Z, V, H, A, M, N, INV, D, g)  # fmt: skip
            grad_norm = math.sqrt(norm2)
            if bn:
                for h in range(n_layers - 1):
                    for j in range(layers[h + 1]):
                        u = uoff[h] + j
                        rm[u] = (1.0 - BN_MOMENTUM) * rm[u] + BN_MOMENTUM * MEAN[h, j]
                        rv[u] = (1.0 - BN_MOMENTUM) * rv[u] + BN_MOMENTUM * VAR[h, j]
            # evaluation mode: running statistics, no dropout (V, H, N are scratch here);
            # with neither, the training pass was the evaluation pass
            EZ, EA = Z, A
            if bn or dropout:
                _forward(p, X, layers, offsets, noffs, uoff, act, bn, False, rm, rv, dropout,
                         E, V, H, F, M, N, MEAN, VAR, INV)  # fmt: skip
                EZ, EA = E, F
            loss = 0.0
            max_error = 0.0
            correct = 0
            for s in range(S):
                for j in range(n_out):
                    z, a, y = EZ[n_layers - 1, s, j], EA[n_layers - 1, s, j], Y[s, j]
                    loss += _loss_element(z, a, y, loss_code)
                    max_error = max(max_error, abs(a - y))
                    if y >= 0.5:
                        correct += z > DECISION_MARGIN
                    else:
                        correct += z < -DECISION_MARGIN
            loss *= scale
            accuracy = correct / (S * n_out)
            if epoch == 0:
                initial_loss = loss
            if record < n_records and record_epochs[record] == epoch:
                h_loss[record, k] = loss
                h_accuracy[record, k] = accuracy
                h_grad_norm[record, k] = grad_norm
                pn = 0.0
                for i in range(p.shape[0]):
                    pn += p[i] * p[i]
                h_param_norm[record, k] = math.sqrt(pn)
                record += 1
            if accuracy == 1.0 and first_full_accuracy[k] < 0:
                first_full_accuracy[k] = epoch
            finite = np.isfinite(loss) and train_finite and np.isfinite(grad_norm)
            diverged = not finite or loss > divergence_factor * initial_loss
            met = max_error < max_error_limit and loss < loss_limit and not diverged
            if met and epochs_to_converge[k] < 0:
                epochs_to_converge[k] = epoch
            stop = diverged or (met and early_stop) if epoch < n_epochs else True
            if stop:
                theta[:, k] = p
                running_mean[:, k] = rm
                running_var[:, k] = rv
                epochs_trained[k] = epoch
                final_loss[k] = loss
                final_accuracy[k] = accuracy
                final_grad_norm[k] = grad_norm
                if diverged:
                    status[k] = 2
                elif epochs_to_converge[k] >= 0:
                    status[k] = 1
                break
            _step(p, g, m, v, lr[k], epoch + 1, opt_code, momentum, beta1, beta2, eps, decay)


def train_regularised(result, spec, X, Y, lr, n_epochs, keys, optimizer, criterion, early_stop,
                      abort):  # fmt: skip
    """Train in place into ``result`` (from ``start_training``); arguments already validated."""
    from .numba_backend import _codes, _scale, over_chunks
    from .regularised import dropout_key, initial_running
    from .spec import LOSSES

    r, history = result, result.history
    layers, offsets, act = _codes(spec)
    n_nets = r.theta.shape[1]
    noffs = spec.norm_offsets() if spec.batchnorm else np.zeros((1, 2), dtype=np.int64)
    uoff = np.concatenate([[0], np.cumsum(spec.layers[1:-1])]).astype(np.int64)
    running_mean, running_var = initial_running(spec, n_nets, r.theta.dtype)
    if not spec.batchnorm:  # the kernel writes them all the same: give it room
        running_mean = np.zeros((1, n_nets), dtype=r.theta.dtype)
        running_var = np.zeros((1, n_nets), dtype=r.theta.dtype)
    keep_scale = float(r.theta.dtype.type(1.0 / (1.0 - spec.dropout)))
    max_error_limit = np.inf if criterion.max_error is None else criterion.max_error
    loss_limit = np.inf if criterion.loss_below is None else criterion.loss_below
    args = (
        r.theta, X, Y, layers, offsets, noffs, uoff, act, LOSSES.index(spec.loss),
        _scale(spec, X.shape[0]), spec.batchnorm, spec.dropout, keep_scale, dropout_key(keys),
        lr, n_epochs, optimizer.code, optimizer.momentum, optimizer.beta1, optimizer.beta2,
        optimizer.eps, optimizer.weight_decay, max_error_limit, loss_limit,
        criterion.divergence_factor, bool(early_stop), history.epochs,
        r.status, r.epochs_to_converge, r.first_full_accuracy, r.epochs_trained,
        r.final_loss, r.final_accuracy, r.final_grad_norm,
        history.loss, history.accuracy, history.grad_norm, history.param_norm,
        running_mean, running_var, abort,
    )  # fmt: skip
    # the nets start <= k < stop a call
    over_chunks(n_nets, lambda start, stop: train_kernel(*args, start, stop), abort)
    if spec.batchnorm:
        r.running_mean, r.running_var = running_mean, running_var
    if not history.epochs.size:
        result.history = None
    return result
