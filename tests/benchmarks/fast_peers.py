"""The strongest formulations of the training job found in JAX and PyTorch, for a fair ratio.

``peers.py`` holds the obvious formulations (vmap of a per-net ``jax.grad``; batched autograd
every epoch), kept and labelled naive. Here each framework gets what it does best on this job:

- JAX: nets sharded over both cores (two host devices, which needs
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before jax is imported: see
  ``enable_two_host_devices``), each device's nets cut into chunks run one after another by
  ``lax.map`` so that a chunk's parameters and activations stay in cache for all its epochs, the
  epochs in one ``lax.fori_loop``. The backward pass hand-written or by ``jax.grad`` of the loss
  summed over the chunk's nets (each net's gradient is that of its own loss). Two layouts: nets
  on the last axis, products as broadcast multiplies and sums that XLA fuses into loops over
  nets ("lanes"), or nets first, products as batched matrix products ("batched").
- PyTorch: a hand-written step (forward, backward, update) of several epochs, compiled whole by
  ``torch.compile`` (inductor's C++ loops over nets, two threads), applied chunk by chunk.

Same job as the kernel, for every plain net it trains: full-batch training, sigmoid, tanh, relu
or leaky relu hidden units (relu'(0) = 0, leaky_relu'(0) = its slope, as the kernel takes them)
and sigmoid outputs; cross-entropy from logits or the squared error, summed over outputs and
averaged (or summed) over samples; one learning rate; the step the kernel's gradient descent,
momentum or Adam (``Rule``), in float64 or float32 (arrays and constants of that dtype). Weight
decay, shortcuts, batch norm and dropout train in another kernel, which no peer here covers.
Every trainer takes the project's theta (n_params, n_nets) and returns the final theta, which
the benchmarks compare to the kernel's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from backprop_bench.kernels.activations import LEAKY_SLOPE

TWO_DEVICES = "--xla_force_host_platform_device_count=2"


def enable_two_host_devices() -> bool:
    """Ask XLA for two CPU devices (one per core). Only works before jax is imported; returns
    whether it is (still) possible."""
    if "jax" in sys.modules:
        import jax

        return jax.device_count() >= 2
    flags = os.environ.get("XLA_FLAGS", "")
    if TWO_DEVICES not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {TWO_DEVICES}".strip()
    return True


def loss_scale(spec, n_samples):
    """The loss's factor, as the kernel takes it: 1 / n_samples for the mean over samples (the
    outputs' terms summed), 1 for the sum."""
    return 1.0 / n_samples if spec.reduction == "mean" else 1.0


def _scale(spec, X):
    return loss_scale(spec, X.shape[0])


def check_spec(spec):
    """The peers train plain nets: no shortcuts, batch norm or dropout."""
    if spec.shortcut or spec.batchnorm or spec.dropout:
        raise ValueError(f"the peers train plain nets, not {spec.describe()} with shortcuts, "
                         "batch norm or dropout")  # fmt: skip


def _ops(library, spec):
    """What a hand-written epoch of ``spec`` needs from ``library`` ("jax" or "torch"): the
    outputs' sigmoid, the hidden activation and its derivative from (z, a), dL/dz at the outputs
    from (a, y, scale), the loss of a chunk's output logits for jax.grad (summed over nets), and
    sqrt (Adam)."""
    check_spec(spec)
    if library == "jax":
        import jax
        import jax.numpy as jnp

        sigmoid, tanh, relu, sqrt = jax.nn.sigmoid, jnp.tanh, jax.nn.relu, jnp.sqrt
        where, ones, full = jnp.where, jnp.ones_like, jnp.full_like
        softplus = lambda z: jnp.logaddexp(0.0, z)  # noqa: E731
    else:
        import torch

        sigmoid, tanh, relu, sqrt = torch.sigmoid, torch.tanh, torch.relu, torch.sqrt
        where, ones, full = torch.where, torch.ones_like, torch.full_like
        softplus = torch.nn.functional.softplus
    slope = LEAKY_SLOPE  # a Python float: the arrays' dtype rounds it, as the kernel's K does
    hidden = {
        "sigmoid": (sigmoid, lambda z, a: a * (1.0 - a)),
        "tanh": (tanh, lambda z, a: 1.0 - a * a),
        # relu'(0) = 0 (the kernel's convention, and jax.grad's and autograd's of relu)
        "relu": (relu, lambda z, a: z > 0),
        # the kernel's slope z for z <= 0 (so leaky_relu'(0) = slope, also under jax.grad of
        # this where), and the derivative in the arrays' dtype
        "leaky_relu": (lambda z: where(z > 0, z, slope * z),
                       lambda z, a: where(z > 0, ones(z), full(z, slope))),
    }
    act, derivative = hidden[spec.activation]
    if spec.loss == "bce":  # from the logits z
        delta = lambda a, y, scale: (a - y) * scale  # noqa: E731
        loss = lambda z, y: softplus(z) - y * z  # noqa: E731
    else:  # 1/2 (a - y)^2: dL/dz = ((scale (a - y)) (1 - a)) a, in the kernel's order
        delta = lambda a, y, scale: scale * (a - y) * (1.0 - a) * a  # noqa: E731
        loss = lambda z, y: 0.5 * (sigmoid(z) - y) ** 2  # noqa: E731
    return SimpleNamespace(sigmoid=sigmoid, act=act, derivative=derivative, sqrt=sqrt,
                           delta=delta, loss=loss)  # fmt: skip


OPTIMIZERS = ("sgd", "momentum", "adam")


def check_optimizer(optimizer):
    """The peers run the kernel's sgd, momentum or adam (None: sgd), without weight decay."""
    if optimizer is not None and (optimizer.name not in OPTIMIZERS or optimizer.weight_decay):
        raise ValueError(f"the peers run sgd, momentum or adam without weight decay, not "
                         f"{optimizer.describe()} (weight decay and adamw train in another "
                         "kernel)")  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """The kernel's optimizer step, sgd, momentum or adam (``kernels/numba_lanes.py``), on flat
    tuples of arrays: (params) for sgd, (params, velocity) for momentum, (params, m, v) for adam.
    Constants are rounded to the arrays' dtype as the kernel rounds them (as Python floats they
    keep float32 arithmetic float32)."""

    name: str
    lr: float
    b1: float = 0.0
    b2: float = 0.0
    eps: float = 0.0
    one_minus_b1: float = 0.0
    one_minus_b2: float = 0.0
    momentum: float = 0.0

    @classmethod
    def of(cls, optimizer, lr, dtype):
        """optimizer: None (sgd) or the project's ``Optimizer``."""
        r = np.dtype(dtype).type
        check_optimizer(optimizer)
        if optimizer is None or optimizer.name == "sgd":
            return cls("sgd", float(r(lr)))
        if optimizer.name == "momentum":
            return cls("momentum", float(r(lr)), momentum=float(r(optimizer.momentum)))
        b1, b2 = r(optimizer.beta1), r(optimizer.beta2)
        return cls("adam", float(r(lr)), float(b1), float(b2), float(r(optimizer.eps)),
                   float(r(1) - b1), float(r(1) - b2))  # fmt: skip

    @property
    def n_state(self):
        """Arrays kept per parameter array: itself, and momentum's velocity or Adam's m and v."""
        return {"sgd": 1, "momentum": 2, "adam": 3}[self.name]

    def corrections(self, first, count, dtype):
        """Adam's bias corrections 1 - b^t for t = first .. first + count - 1, shape (count, 2),
        computed as the kernel does: in float64 from the dtype's betas, then rounded."""
        rows = [(1.0 - self.b1**t, 1.0 - self.b2**t) for t in range(first, first + count)]
        return np.array(rows, dtype=np.float64).reshape(count, 2).astype(dtype)

    def update(self, state, grads, c1, c2, sqrt):
        """state: flat tuple (params [, velocity | m, v]); grads: flat, like params. Returns
        the new state."""
        n = len(grads)
        params = state[:n]
        if self.name == "sgd":
            return tuple(p - self.lr * g for p, g in zip(params, grads, strict=True))
        if self.name == "momentum":  # v = momentum v - lr g; p += v
            v = [self.momentum * v - self.lr * g for v, g in zip(state[n:], grads, strict=True)]
            return tuple([p + v for p, v in zip(params, v, strict=True)] + v)
        m = [self.b1 * m + self.one_minus_b1 * g for m, g in zip(state[n : 2 * n], grads,
                                                                 strict=True)]  # fmt: skip
        v = [self.b2 * v + self.one_minus_b2 * g * g for v, g in zip(state[2 * n :], grads,
                                                                     strict=True)]  # fmt: skip
        params = [p - self.lr * (m / c1) / (sqrt(v / c2) + self.eps)
                  for p, m, v in zip(params, m, v, strict=True)]  # fmt: skip
        return tuple(params + m + v)


def _flat(pairs):
    return tuple(t for pair in pairs for t in pair)


def _pairs(flat):
    return list(zip(flat[::2], flat[1::2], strict=True))


def _chunked(theta, spec, chunk, nets_first):
    """Per layer (W, b) with a leading chunk axis: lanes (n_chunks, fan_in, fan_out, chunk),
    (n_chunks, fan_out, chunk); nets first (n_chunks, chunk, fan_in, fan_out),
    (n_chunks, chunk, fan_out)."""
    n_nets = theta.shape[1]
    n_chunks = n_nets // chunk
    out = []
    for W, b in spec.layer_views(theta):
        Wc = np.moveaxis(W.reshape(*W.shape[:2], n_chunks, chunk), 2, 0)
        bc = np.moveaxis(b.reshape(b.shape[0], n_chunks, chunk), 1, 0)
        if nets_first:
            Wc, bc = np.moveaxis(Wc, 3, 1), np.moveaxis(bc, 2, 1)
        out.append((np.ascontiguousarray(Wc), np.ascontiguousarray(bc)))
    return out


def _unchunked(layers, spec, n_nets, nets_first, dtype):
    theta = np.empty((spec.n_params, n_nets), dtype=dtype)
    for (W, b), (Wv, bv) in zip(layers, spec.layer_views(theta), strict=True):
        W, b = np.asarray(W), np.asarray(b)
        if nets_first:
            W, b = np.moveaxis(W, 1, 3), np.moveaxis(b, 1, 2)
        Wv[...] = np.moveaxis(W, 0, 2).reshape(Wv.shape)
        bv[...] = np.moveaxis(b, 0, 1).reshape(bv.shape)
    return theta


def _product(a, W, unroll):
    """z[s, j, n] = sum_i a[s, i, n] W[i, j, n] (a[s, i] shared by all nets if a is 2-D)."""
    if a.ndim == 2:
        a = a[:, :, None]
    if not unroll:
        return (a[:, :, None, :] * W[None]).sum(1)
    z = a[:, 0:1, :] * W[0][None]
    for i in range(1, W.shape[0]):
        z = z + a[:, i : i + 1, :] * W[i][None]
    return z


def _product_t(d, W, unroll):
    """d_below[s, i, n] = sum_j d[s, j, n] W[i, j, n]."""
    if not unroll:
        return (d[:, None, :, :] * W[None]).sum(2)
    out = d[:, 0:1, :] * W[:, 0, :][None]
    for j in range(1, W.shape[1]):
        out = out + d[:, j : j + 1, :] * W[:, j, :][None]
    return out


def lanes_gradients(params, X, Y, scale, ops, unroll):
    """Hand-written gradients of one epoch, nets on the last axis, in any array library whose
    arrays broadcast and sum like NumPy's. params: [(W (fan_in, fan_out, C), b (fan_out, C))];
    X (S, n_in); Y (S, n_out, 1); ops from ``_ops``. Returns [(dL/dW, dL/db)] like params."""
    zs, acts = [], []
    a = X
    for i, (W, b) in enumerate(params):
        z = _product(a, W, unroll) + b[None]
        a = ops.sigmoid(z) if i == len(params) - 1 else ops.act(z)
        zs.append(z)
        acts.append(a)
    d = ops.delta(acts[-1], Y, scale)
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        W = params[i][0]
        below = X[:, :, None, None] if i == 0 else acts[i - 1][:, :, None, :]
        grads[i] = ((below * d[:, None]).sum(0), d.sum(0))
        if i > 0:
            d = _product_t(d, W, unroll) * ops.derivative(zs[i - 1], acts[i - 1])
    return grads


# --------------------------------------------------------------------------------------- JAX


def _jax_gradient(spec, X, Y, scale, ops, grad, nets_first, unroll):
    """The gradient of one chunk: [(W, b)] -> [(dL/dW, dL/db)]."""
    import jax
    import jax.numpy as jnp

    if not nets_first and grad == "manual":
        Y3 = Y[:, :, None]
        return lambda params: lanes_gradients(params, X, Y3, scale, ops, unroll)
    n_layers = spec.n_layers

    def forward(params):
        acts = []
        a = X
        for i, (W, b) in enumerate(params):
            if nets_first:  # a (S, fan_in) at layer 0, else (C, S, fan_in); W (C, fan_in, fan_out)
                z = (jnp.einsum("si,cij->csj", a, W) if i == 0 else a @ W) + b[:, None, :]
            else:
                z = _product(a, W, unroll) + b[None]
            a = ops.sigmoid(z) if i == n_layers - 1 else ops.act(z)
            acts.append((z, a))
        return acts

    Yb = Y[None] if nets_first else Y[:, :, None]

    def loss(params):
        z = forward(params)[-1][0]
        return jnp.sum(ops.loss(z, Yb)) * scale

    def manual(params):  # nets first
        acts = forward(params)
        d = ops.delta(acts[-1][1], Yb, scale)
        grads = [None] * n_layers
        for i in range(n_layers - 1, -1, -1):
            W = params[i][0]
            below = X if i == 0 else acts[i - 1][1]
            gW = jnp.einsum("si,csj->cij", below, d) if i == 0 else jnp.swapaxes(below, 1, 2) @ d
            grads[i] = (gW, d.sum(1))
            if i > 0:
                d = (d @ jnp.swapaxes(W, 1, 2)) * ops.derivative(*acts[i - 1])
        return grads

    return jax.grad(loss) if grad == "jax.grad" else manual


def jax_fast_trainer(spec, X, Y, lr, *, optimizer=None, dtype=np.float64, grad="manual",
                     nets_first=False, unroll=False, chunk=256, n_devices=2):  # fmt: skip
    """A function (theta, n_epochs) -> theta (NumPy in and out), compiled on its first call,
    that trains chunks of ``chunk`` nets on ``n_devices`` host devices (n_nets a multiple of
    chunk * n_devices) with ``optimizer`` (None: sgd; or the project's Optimizer, sgd or adam)
    in ``dtype``. ``train.timed`` is the same without the NumPy reshapes around it."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    # float64 needs x64, which is process-wide; in float32 every array is cast to float32 and
    # every constant is a Python float, so the arithmetic stays float32
    jax.config.update("jax_enable_x64", True)
    if jax.device_count() < n_devices:
        raise RuntimeError(f"JAX sees {jax.device_count()} device(s): set XLA_FLAGS={TWO_DEVICES}"
                           " before jax is imported")  # fmt: skip
    rule = Rule.of(optimizer, lr, dtype)
    Xj, Yj = jnp.asarray(X, dtype=dtype), jnp.asarray(Y, dtype=dtype)
    ops = _ops("jax", spec)
    gradient = _jax_gradient(spec, Xj, Yj, float(np.dtype(dtype).type(_scale(spec, X))), ops,
                             grad, nets_first, unroll)  # fmt: skip

    def epoch(i, state):
        grads = _flat(gradient(_pairs(state[: 2 * spec.n_layers])))
        c1 = c2 = None
        if rule.name == "adam":  # the kernel's: float64 from the dtype's betas, then rounded
            t = (i + 1).astype(jnp.float64)
            c1 = (1.0 - jnp.float64(rule.b1) ** t).astype(dtype)
            c2 = (1.0 - jnp.float64(rule.b2) ** t).astype(dtype)
        return rule.update(state, grads, c1, c2, ops.sqrt)

    def train_chunk(params, n_epochs):
        flat = _flat(params)
        state = flat + tuple(jnp.zeros_like(p) for p in flat) * (rule.n_state - 1)
        state = jax.lax.fori_loop(0, n_epochs, epoch, state)
        return _pairs(state[: len(flat)])

    def train_local(params, n_epochs):
        return jax.lax.map(lambda p: train_chunk(p, n_epochs[0]), params)

    mesh = Mesh(np.array(jax.devices()[:n_devices]), ("d",))
    sharded = jax.jit(jax.shard_map(train_local, mesh=mesh, in_specs=(P("d"), P()),
                                    out_specs=P("d")))  # fmt: skip
    sharding = NamedSharding(mesh, P("d"))

    def run(theta, n_epochs):
        layers = _chunked(theta, spec, chunk, nets_first)
        params = jax.device_put([(jnp.asarray(W, dtype=dtype), jnp.asarray(b, dtype=dtype))
                                 for W, b in layers], sharding)  # fmt: skip
        out = sharded(params, jnp.array([n_epochs], dtype=jnp.int32))
        jax.block_until_ready(out)
        return out

    def train(theta, n_epochs):
        return _unchunked(run(theta, n_epochs), spec, theta.shape[1], nets_first, dtype)

    train.timed = run
    return train


# ----------------------------------------------------------------------------------- PyTorch


def torch_fast_trainer(spec, X, Y, lr, *, optimizer=None, dtype=np.float64, compiled=True,
                       unroll=True, epochs_per_call=10, chunk=1024):  # fmt: skip
    """A function (theta, n_epochs) -> theta: a hand-written step of ``epochs_per_call`` epochs
    (nets on the last axis) with ``optimizer`` (as ``jax_fast_trainer``) in ``dtype``, compiled
    by torch.compile unless ``compiled`` is False, applied to chunks of ``chunk`` nets in turn,
    on two threads."""
    import torch

    torch.set_num_threads(2)
    tdtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[
        np.dtype(dtype)
    ]
    rule = Rule.of(optimizer, lr, dtype)
    Xt = torch.tensor(X, dtype=tdtype)
    Yt = torch.tensor(Y, dtype=tdtype)[:, :, None]
    scale = float(np.dtype(dtype).type(_scale(spec, X)))
    ops = _ops("torch", spec)
    n_arrays = 2 * spec.n_layers

    # the bias corrections come in as a tensor (one row per epoch of the call): Python floats
    # would be baked into the compiled graph, one compilation per epoch
    def steps(corrections, *state):
        for e in range(epochs_per_call):
            grads = _flat(lanes_gradients(_pairs(state[:n_arrays]), Xt, Yt, scale, ops, unroll))
            state = rule.update(state, grads, corrections[e, 0], corrections[e, 1], ops.sqrt)
        return state

    step = torch.compile(steps, dynamic=False) if compiled else steps

    def train(theta, n_epochs):
        if n_epochs % epochs_per_call:
            raise ValueError(f"n_epochs must be a multiple of {epochs_per_call}")
        corrections = torch.tensor(rule.corrections(1, n_epochs, dtype))
        out = np.empty_like(theta, dtype=dtype)
        for first in range(0, theta.shape[1], chunk):
            part = np.ascontiguousarray(theta[:, first : first + chunk], dtype=dtype)
            flat = tuple(torch.tensor(v) for pair in spec.layer_views(part) for v in pair)
            state = flat + tuple(torch.zeros_like(p) for p in flat) * (rule.n_state - 1)
            with torch.no_grad():
                for call in range(n_epochs // epochs_per_call):
                    e0 = call * epochs_per_call
                    state = step(corrections[e0 : e0 + epochs_per_call], *state)
            done = out[:, first : first + chunk]
            for view, t in zip((v for pair in spec.layer_views(done) for v in pair),
                               state[:n_arrays], strict=True):  # fmt: skip
                view[...] = t.numpy()
        return out

    train.timed = train
    return train
