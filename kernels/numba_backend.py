"""The numba backend: the same functions and signatures as ``numpy_backend``, jit-compiled.

Three layers, as in stumpy: public wrappers that validate (shared with the NumPy backend), jitted
kernels that run ``prange`` over nets, and per-net workers (``_net_*``) that do one net's math in
scalar loops. Each net is computed by exactly one thread with the same code whatever the number
of threads, so results are bitwise identical for any thread count. The workers are written from
the math, not from the NumPy code, and are tested against it. Fused training is in
``numba_lanes.py``, with nets in SIMD lanes; nets with shortcut connections and per-pattern or
minibatch updates go through ``numba_general.py``.

All jitted code shares the settings below: fastmath without ``nnan``/``ninf``, because diverging
nets are detected by looking for NaN and inf.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import numpy_backend, values
from .activations import LEAKY_SLOPE
from .checks import check_data, check_step_inputs, check_step_number, check_theta
from .failure import MAX_DERIVATIVE, SATURATED_SHARE, SATURATION, analyse
from .numba_fused import (
    activation_function,
    fused_key,
    pass_function,
    pass_lanes,
    steps_in_pass,
)
from .numba_lanes import chunk_size, summary_kernel, train_kernel
from .passes import Forward, Gradients
from .regularised import refuse_in_plain_kernels
from .schedules import check_batch_size, check_keys
from .spec import HIDDEN_ACTIVATIONS, LOSSES, NetSpec
from .training import (
    OPTIMIZERS,
    Criterion,
    Optimizer,
    TrainResult,
    check_abort,
    check_training_options,
    start_training,
)

# no nnan/ninf: we look for NaN. No reassoc: with it, these kernels' results differed by an ulp
# between a fresh compile and numba's cache (the per-net loss of 14 of 50 2-8-1 nets, and
# 5,486 of 7,000 parameters of a shortcut population after 300 epochs): LLVM reordered sums
# differently in the two (tests/kernels/test_compile_cache.py)
FASTMATH = {"nsz", "arcp", "contract", "afn"}
jit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy")
pjit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
# training kernels over a range of nets or chunks a call, run in threads by over_chunks: as
# numba's parallel loops they took seconds more to compile (numba_lanes.nogil_jit)
nogil_jit = numba.njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
# optimizer steps: no FMA contraction, whose choice of product differed between a fresh compile
# and the cached object code (see numba_lanes.strict_jit)
strict_pjit = numba.njit(cache=True, fastmath={"nsz"}, error_model="numpy", parallel=True)

# Integer codes the jitted code branches on, tied to the names the public API uses.
SIGMOID, TANH, RELU, LEAKY_RELU = map(
    HIDDEN_ACTIVATIONS.index, ("sigmoid", "tanh", "relu", "leaky_relu")
)
BCE, MSE = map(LOSSES.index, ("bce", "mse"))
SGD, MOMENTUM, ADAM = map(OPTIMIZERS.index, ("sgd", "momentum", "adam"))
# net-epochs from which a population trains in the fused pass: a shape's pass compiles in about
# 1.4 s the first time (then numba's cache has it), the lane loops' speed for ~2e7 net-epochs
FUSED_MIN_WORK = 1_000_000
# multiply-adds of one forward pass of the whole population (nets x samples x weights) from which
# the failure analysis runs the training kernel's forward pass (numba_lanes.summary_kernel)
# rather than NumPy's: below, NumPy's takes under about 30 ms (4,096 2-16-16-1 nets on XOR,
# 5.0e6, took 25-37 ms of a 0.19 s job of 100 epochs; 4,096 8-32-32-1 nets on 16 samples,
# 8.6e7, 0.23 s), and the kernel's first compile, 10 s or more per dtype before numba's cache
# has it, would not pay
ANALYSIS_MIN_WORK = 4_000_000


# ------------------------------------------------------------------------ scalar math, per element


@jit
def _activate(z, code):
    if code == SIGMOID:
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    if code == TANH:
        return math.tanh(z)
    if code == RELU:
        return 0.0 if z <= 0 else z
    return LEAKY_SLOPE * z if z <= 0 else z


@jit
def _activate_grad(z, a, code):
    if code == SIGMOID:
        return a * (1.0 - a)
    if code == TANH:
        return 1.0 - a * a
    if code == RELU:
        return 1.0 if z > 0 else 0.0
    return 1.0 if z > 0 else LEAKY_SLOPE


@jit
def _loss_element(z, a, y, loss_code):
    if loss_code == BCE:
        # softplus(z) - y z, with softplus(z) = max(z, 0) + log1p(exp(-|z|))
        return max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
    d = a - y
    return 0.5 * d * d


@jit
def _loss_grad_logit(a, y, loss_code):
    if loss_code == BCE:
        return a - y
    return (a - y) * a * (1.0 - a)


# ------------------------------------------------------------------------- per-net workers
# Buffers of one net: Z, A, D of shape (n_layers, n_samples, max_width) hold z, a = act(z) and
# dL/dz of every layer; DA of shape (max(n_layers - 1, 1), n_samples, max_width) holds dL/da of
# the hidden layers; p and g of shape (n_params,) hold the parameters and their gradient.


@jit
def _net_forward(p, X, layers, offsets, act, Z, A):
    n_layers = layers.size - 1
    for layer in range(n_layers):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        code = act if layer < n_layers - 1 else SIGMOID
        for s in range(X.shape[0]):
            for j in range(fan_out):
                acc = p[b0 + j]
                for i in range(fan_in):
                    x = X[s, i] if layer == 0 else A[layer - 1, s, i]
                    acc += x * p[w0 + i * fan_out + j]
                Z[layer, s, j] = acc
                A[layer, s, j] = _activate(acc, code)


@jit
def _net_loss(Z, A, Y, n_layers, loss_code, scale):
    total = 0.0
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            total += _loss_element(Z[n_layers - 1, s, j], A[n_layers - 1, s, j], Y[s, j], loss_code)
    return total * scale


@jit
def _net_backward(p, X, Y, layers, offsets, act, loss_code, scale, Z, A, D, DA, g):
    """Fill g with dL/dtheta, D with dL/dz and DA with dL/da; returns |g|²."""
    n_layers = layers.size - 1
    last = n_layers - 1
    for s in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            D[last, s, j] = scale * _loss_grad_logit(A[last, s, j], Y[s, j], loss_code)
    norm2 = 0.0
    for layer in range(last, -1, -1):
        fan_in, fan_out = layers[layer], layers[layer + 1]
        w0, b0 = offsets[layer, 0], offsets[layer, 1]
        for j in range(fan_out):
            acc = 0.0
            for s in range(X.shape[0]):
                acc += D[layer, s, j]
            g[b0 + j] = acc
            norm2 += acc * acc
        for i in range(fan_in):
            for j in range(fan_out):
                acc = 0.0
                for s in range(X.shape[0]):
                    x = X[s, i] if layer == 0 else A[layer - 1, s, i]
                    acc += x * D[layer, s, j]
                g[w0 + i * fan_out + j] = acc
                norm2 += acc * acc
        if layer > 0:
            for s in range(X.shape[0]):
                for i in range(fan_in):
                    acc = 0.0
                    for j in range(fan_out):
                        acc += D[layer, s, j] * p[w0 + i * fan_out + j]
                    DA[layer - 1, s, i] = acc
                    D[layer - 1, s, i] = acc * _activate_grad(
                        Z[layer - 1, s, i], A[layer - 1, s, i], act
                    )
    return norm2


def _buffers_shape(spec: NetSpec, n_samples: int):
    return (spec.n_layers, n_samples, max(spec.layers[1:]))


# --------------------------------------------------------------------- population kernels (jitted)


# Nets a block: each parallel iteration takes a block of nets and gives them one set of buffers,
# where one per net cost an allocation each (numba's small arrays come from the heap): 4,096
# 2-4-1 nets, forward 1.09x, backward 1.28x with blocks (the rest is mostly math.exp, scalar).
NET_BLOCK = 64


@pjit
def _forward_kernel(theta, X, layers, offsets, act, Z_out, A_out):
    n_layers, n_samples, width = Z_out.shape[:3]
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, n_samples, width), dtype=theta.dtype)
        A = np.empty_like(Z)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, layers, offsets, act, Z, A)
            Z_out[:, :, :, k] = Z
            A_out[:, :, :, k] = A


@pjit
def _loss_kernel(theta, X, Y, layers, offsets, act, loss_code, scale, out):
    n_layers = layers.size - 1
    width = layers[1:].max()
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, X.shape[0], width), dtype=theta.dtype)
        A = np.empty_like(Z)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, layers, offsets, act, Z, A)
            out[k] = _net_loss(Z, A, Y, n_layers, loss_code, scale)


@pjit
def _backward_kernel(theta, X, Y, layers, offsets, act, loss_code, scale, G, D_out, DA_out):
    n_layers = layers.size - 1
    width = layers[1:].max()
    n_nets = theta.shape[1]
    for block in numba.prange((n_nets + NET_BLOCK - 1) // NET_BLOCK):
        p = np.empty(theta.shape[0], dtype=theta.dtype)
        Z = np.empty((n_layers, X.shape[0], width), dtype=theta.dtype)
        A = np.empty_like(Z)
        D = np.empty_like(Z)
        # the entries no net writes (past a narrower layer's units, or every entry with no
        # hidden layer) stay 0, as in a zeroed buffer per net
        DA = np.zeros((max(n_layers - 1, 1), X.shape[0], width), dtype=theta.dtype)
        g = np.empty_like(p)
        for k in range(block * NET_BLOCK, min(n_nets, (block + 1) * NET_BLOCK)):
            p[:] = theta[:, k]
            _net_forward(p, X, layers, offsets, act, Z, A)
            _net_backward(p, X, Y, layers, offsets, act, loss_code, scale, Z, A, D, DA, g)
            G[:, k] = g
            if D_out.shape[3] > 0:
                D_out[:, :, :, k] = D
                DA_out[:, :, :, k] = DA


@strict_pjit
def _step_kernel(theta, grad, m, v, lr, step, opt_code, momentum, beta1, beta2, eps):
    # Elementwise: rows of theta are independent, so any split over threads gives the same bits.
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in numba.prange(theta.shape[0]):
        for k in range(theta.shape[1]):
            if opt_code == SGD:
                theta[i, k] -= lr[k] * grad[i, k]
            elif opt_code == MOMENTUM:
                m[i, k] = momentum * m[i, k] - lr[k] * grad[i, k]
                theta[i, k] += m[i, k]
            else:
                m[i, k] = beta1 * m[i, k] + (1.0 - beta1) * grad[i, k]
                v[i, k] = beta2 * v[i, k] + (1.0 - beta2) * grad[i, k] * grad[i, k]
                m_hat = m[i, k] / correction1
                v_hat = v[i, k] / correction2
                theta[i, k] -= lr[k] * m_hat / (math.sqrt(v_hat) + eps)


# --------------------------------------------------------------------------------- public kernels


def _codes(spec: NetSpec):
    layers = np.array(spec.layers, dtype=np.int64)
    return layers, spec.offsets(), HIDDEN_ACTIVATIONS.index(spec.activation)


def _scale(spec: NetSpec, n_samples: int) -> float:
    return 1.0 / n_samples if spec.reduction == "mean" else 1.0


def forward(theta, spec: NetSpec, X) -> Forward:
    """Pre-activations and activations of every layer for a population of nets.

    theta : float64 or float32 array of shape (n_params, n_nets), nets on the last axis
    X     : array of shape (n_samples, n_inputs), shared by all nets
    Returns a :class:`Forward`; ``a[-1]`` of shape (n_samples, n_outputs, n_nets) is the output.
    """
    theta = check_theta(theta, spec)
    refuse_in_plain_kernels(spec)
    X, _ = check_data(X, None, spec, theta.dtype)
    layers, offsets, act = _codes(spec)
    n_nets = theta.shape[1]
    Z = np.empty((*_buffers_shape(spec, X.shape[0]), n_nets), dtype=theta.dtype)
    A = np.empty_like(Z)
    if spec.shortcut:
        from .numba_general import forward_kernel

        forward_kernel(theta, X, layers, offsets, spec.shortcut_offsets(), act, Z, A)
    else:
        _forward_kernel(theta, X, layers, offsets, act, Z, A)
    widths = spec.layers[1:]
    z = [Z[layer, :, :w, :] for layer, w in enumerate(widths)]
    a = [np.broadcast_to(X[:, :, None], (*X.shape, n_nets))]
    a += [A[layer, :, :w, :] for layer, w in enumerate(widths)]
    return Forward(z, a)


def loss(theta, spec: NetSpec, X, Y) -> np.ndarray:
    """Loss of every net, summed over outputs and reduced over samples: array of shape (n_nets,)."""
    theta = check_theta(theta, spec)
    refuse_in_plain_kernels(spec)
    X, Y = check_data(X, Y, spec, theta.dtype)
    layers, offsets, act = _codes(spec)
    out = np.empty(theta.shape[1], dtype=theta.dtype)
    codes = (LOSSES.index(spec.loss), _scale(spec, X.shape[0]), out)
    if spec.shortcut:
        from .numba_general import loss_kernel

        loss_kernel(theta, X, Y, layers, offsets, spec.shortcut_offsets(), act, *codes)
    else:
        _loss_kernel(theta, X, Y, layers, offsets, act, *codes)
    return out


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
    layers, offsets, act = _codes(spec)
    n_nets = theta.shape[1]
    n_layers, n_samples, width = _buffers_shape(spec, X.shape[0])
    G = np.empty_like(theta)
    kept = n_nets if per_layer else 0
    D = np.empty((n_layers, n_samples, width, kept), dtype=theta.dtype)
    DA = np.empty((max(n_layers - 1, 1), n_samples, width, kept), dtype=theta.dtype)
    codes = (LOSSES.index(spec.loss), _scale(spec, n_samples), G, D, DA)
    if spec.shortcut:
        from .numba_general import backward_kernel

        backward_kernel(theta, X, Y, layers, offsets, spec.shortcut_offsets(), act, *codes)
    else:
        _backward_kernel(theta, X, Y, layers, offsets, act, *codes)
    if not per_layer:
        return Gradients(G)
    widths = spec.layers[1:]
    dz = [D[layer, :, :w, :] for layer, w in enumerate(widths)]
    da = [DA[layer, :, :w, :] for layer, w in enumerate(widths[:-1])]
    return Gradients(G, dz, da)


def sgd_step(theta, grad, learning_rate) -> None:
    """In place: theta -= learning_rate * grad.

    theta, grad   : arrays of shape (n_params, n_nets)
    learning_rate : scalar or array of shape (n_nets,)
    """
    lr = check_step_inputs(theta, grad, learning_rate)
    _step_kernel(theta, grad, grad, grad, lr, 1, SGD, 0.0, 0.0, 0.0, 1.0)


def momentum_step(theta, grad, velocity, learning_rate, momentum: float) -> None:
    """In place: velocity = momentum * velocity - learning_rate * grad; theta += velocity."""
    lr = check_step_inputs(theta, grad, learning_rate, ("velocity", velocity))
    opt = Optimizer("momentum", momentum=momentum)
    _step_kernel(theta, grad, velocity, velocity, lr, 1, MOMENTUM, opt.momentum, 0.0, 0.0, 1.0)


def adam_step(theta, grad, m, v, step: int, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
    """In place, Adam (Kingma & Ba 2015, Algorithm 1) at step ``step`` (1 for the first).

    m, v : first and second moment estimates, arrays of theta's shape, zeros before step 1
    """
    lr = check_step_inputs(theta, grad, learning_rate, ("m", m), ("v", v))
    opt = Optimizer("adam", beta1=beta1, beta2=beta2, eps=eps)
    step = check_step_number(step)
    _step_kernel(theta, grad, m, v, lr, step, ADAM, 0.0, opt.beta1, opt.beta2, opt.eps)


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
    from .regularised_training import is_needed, train_with_options

    if is_needed(spec, optimizer):
        # batch norm, dropout and weight decay have their own fused kernel (no SIMD lanes)
        from .numba_regularised import train_regularised

        return train_with_options(train_regularised, result, spec, X, Y, lr, n_epochs, keys,
                                  optimizer, criterion, early_stop, abort, batch_size)  # fmt: skip
    if spec.shortcut or batch_size is not None:
        return _train_general(result, spec, X, Y, lr, n_epochs, optimizer, criterion,
                              early_stop, record_every, abort, batch_size, keys)  # fmt: skip
    r, history = result, result.history
    layers, offsets, act = _codes(spec)
    max_error_limit = np.inf if criterion.max_error is None else criterion.max_error
    loss_limit = np.inf if criterion.loss_below is None else criterion.loss_below
    # small nets run each epoch in one fused pass (numba_fused), which makes the SGD step too;
    # not for small jobs, which would not win back its first compile (bitwise the same results)
    fused = ""
    if r.theta.shape[1] * n_epochs >= FUSED_MIN_WORK:
        fused = fused_key(spec.layers, X.shape[0], act, LOSSES.index(spec.loss),
                          optimizer.code == SGD)  # fmt: skip
    chunk = chunk_size(spec.n_layers, X.shape[0], max(spec.layers[1:]), spec.n_params,
                       r.theta.itemsize)  # fmt: skip
    if chunk % pass_lanes(r.theta.itemsize):
        fused = ""  # the pass's last step would run past the chunk's lanes
    summarise = _summarise(spec, X, r.theta.shape[1])
    # where the lane loops run, the kernel keeps the analysis' values of each net's last epoch
    summary = summarise is not None and not fused
    kept = r.theta.shape[1] if summary else 0
    outputs = np.zeros((X.shape[0], Y.shape[1], kept), dtype=r.theta.dtype)
    saturated, flat = np.zeros(kept, dtype=np.int64), np.zeros(kept, dtype=np.int64)
    args = (
        r.theta, X, Y, layers, offsets, act, LOSSES.index(spec.loss), _scale(spec, X.shape[0]),
        lr, n_epochs, optimizer.code, optimizer.momentum, optimizer.beta1, optimizer.beta2,
        optimizer.eps, max_error_limit, loss_limit, criterion.squared_error_limit(Y.size),
        criterion.divergence_factor, bool(early_stop),
        max(record_every, 1), history.epochs.size,
        r.status, r.epochs_to_converge, r.first_full_accuracy, r.epochs_trained,
        r.final_loss, r.final_accuracy, r.final_grad_norm,
        history.loss, history.accuracy, history.grad_norm, history.param_norm, chunk, abort,
        pass_function(fused, r.theta.itemsize), steps_in_pass(fused), not fused,
        activation_function(r.theta.itemsize), summary, outputs, saturated, flat,
        _saturation_limit(spec, X), SATURATED_SHARE,
    )  # fmt: skip
    over_chunks(-(-r.theta.shape[1] // chunk), lambda start, stop: train_kernel(*args, start, stop),
                abort)  # fmt: skip
    if not history.epochs.size:
        result.history = None
    if not abort[0]:
        result.analysis = analyse(result, spec, X, Y, n_epochs, numpy_backend.forward,
                                  summarise=summarise,
                                  summary=(outputs, saturated, flat) if summary else None)
    return result


def _saturation_limit(spec: NetSpec, X):
    """failure.analyse's bound on a saturated unit's derivative, in the nets' dtype (X's)."""
    return X.dtype.type(SATURATION * MAX_DERIVATIVE[spec.activation])


def _summarise(spec: NetSpec, X, n_nets: int):
    """failure.analyse's outputs and saturated and flat units by the training kernel's lane
    loops, for populations of nets without shortcut connections from ANALYSIS_MIN_WORK; None
    otherwise (the NumPy forward pass, whose outputs equal these to rounding). X: in the nets'
    dtype."""
    weights = sum(a * b for a, b in zip(spec.layers[:-1], spec.layers[1:], strict=True))
    if spec.shortcut or n_nets * X.shape[0] * weights < ANALYSIS_MIN_WORK:
        return None
    layers, offsets, act = _codes(spec)
    n_samples = X.shape[0]
    chunk = chunk_size(spec.n_layers, n_samples, max(spec.layers[1:]), spec.n_params,
                       X.itemsize)  # fmt: skip
    limit = _saturation_limit(spec, X)
    activate = activation_function(X.itemsize)

    def summarise(theta):
        n_nets = theta.shape[1]
        theta = np.ascontiguousarray(theta)
        outputs = np.empty((n_samples, spec.n_outputs, n_nets), dtype=theta.dtype)
        saturated = np.zeros(n_nets, dtype=np.int64)
        flat = np.zeros(n_nets, dtype=np.int64)

        def part(start, stop):  # chunks start <= c < stop; each net's values are its own
            summary_kernel(theta, X, layers, offsets, act, limit, SATURATED_SHARE, outputs,
                           saturated, flat, chunk, activate, start, stop)  # fmt: skip

        over_chunks(-(-n_nets // chunk), part)
        return outputs, saturated, flat

    return summarise


# a thread takes about 1 / BLOCKS of its share of the chunks at a time (over_chunks)
BLOCKS = 4


def over_chunks(n_chunks: int, run, abort=None) -> None:
    """run(start, stop) for the chunks start <= c < stop, over all chunks 0 <= c < n_chunks, in
    numba.get_num_threads() threads (run calls a kernel that releases the GIL). Each thread
    takes the next block of chunks when done with its last, so a thread whose nets stop early
    takes more blocks; every chunk's results are its own, so the schedule changes no bit. No
    block starts once abort (None, or an int8 array of shape (1,)) is set. If waiting is
    interrupted (Ctrl-C) or a part fails, abort is set, so that kernels still running stop at
    their next epoch, and the exception is raised once every thread is done."""
    threads = min(numba.get_num_threads(), n_chunks)
    if threads <= 1:
        run(0, n_chunks)
        return
    block = max(1, n_chunks // (BLOCKS * threads))
    starts = iter(range(0, n_chunks, block))
    lock = threading.Lock()
    failed = threading.Event()

    def take():
        while not failed.is_set() and not (abort is not None and abort[0]):
            with lock:
                start = next(starts, None)
            if start is None:
                return
            try:
                run(start, min(start + block, n_chunks))
            except BaseException:
                failed.set()
                raise

    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(take) for _ in range(threads)]
        try:
            for job in jobs:
                job.result()
        except BaseException:
            failed.set()
            if abort is not None:
                abort[0] = 1
            raise


def _train_general(result, spec, X, Y, lr, n_epochs, optimizer, criterion, early_stop,
                   record_every, abort, batch_size, keys) -> TrainResult:  # fmt: skip
    """train_population for shortcut nets and per-pattern or minibatch updates (numba_general)."""
    from .numba_general import train_kernel

    r, history = result, result.history
    layers, offsets, act = _codes(spec)
    args = (
        r.theta, X, Y, layers, offsets, spec.shortcut_offsets(), act, LOSSES.index(spec.loss),
        spec.reduction == "mean", keys, 0 if batch_size is None else batch_size,
        lr, n_epochs, optimizer.code, optimizer.momentum, optimizer.beta1, optimizer.beta2,
        optimizer.eps,
        np.inf if criterion.max_error is None else criterion.max_error,
        np.inf if criterion.loss_below is None else criterion.loss_below,
        criterion.squared_error_limit(Y.size),
        criterion.divergence_factor, bool(early_stop), max(record_every, 1), history.epochs.size,
        r.status, r.epochs_to_converge, r.first_full_accuracy, r.epochs_trained,
        r.final_loss, r.final_accuracy, r.final_grad_norm,
        history.loss, history.accuracy, history.grad_norm, history.param_norm, abort,
    )  # fmt: skip
    # the nets start <= k < stop a call
    over_chunks(r.theta.shape[1], lambda start, stop: train_kernel(*args, start, stop), abort)
    if not history.epochs.size:
        result.history = None
    if not abort[0]:
        result.analysis = analyse(result, spec, X, Y, n_epochs, numpy_backend.forward,
                                  summarise=_summarise(spec, X, r.theta.shape[1]))
    return result
