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

Same job as the kernel: full-batch gradient descent, sigmoid hidden units and output,
cross-entropy from logits averaged over samples, one learning rate; every trainer takes the
project's theta (n_params, n_nets) and returns the final theta, which the benchmarks compare to
the kernel's.
"""

from __future__ import annotations

import os
import sys

import numpy as np

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


def _scale(spec, X):
    return 1.0 / (X.shape[0] * spec.n_outputs)


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


def _unchunked(layers, spec, n_nets, nets_first):
    theta = np.empty((spec.n_params, n_nets))
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


def lanes_epoch(params, X, Y, lr, scale, sigmoid, unroll):
    """One epoch of hand-written gradient descent, nets on the last axis, in any array library
    whose arrays broadcast and sum like NumPy's. params: [(W (fan_in, fan_out, C), b (fan_out,
    C))]; X (S, n_in); Y (S, n_out, 1)."""
    acts = []
    a = X
    for W, b in params:
        a = sigmoid(_product(a, W, unroll) + b[None])
        acts.append(a)
    d = (acts[-1] - Y) * scale
    new = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        W, b = params[i]
        below = X[:, :, None, None] if i == 0 else acts[i - 1][:, :, None, :]
        new[i] = (W - lr * (below * d[:, None]).sum(0), b - lr * d.sum(0))
        if i > 0:
            a_below = acts[i - 1]
            d = _product_t(d, W, unroll) * a_below * (1.0 - a_below)
    return new


# --------------------------------------------------------------------------------------- JAX


def _jax_epoch(spec, X, Y, lr, scale, grad, nets_first, unroll):
    """One epoch of one chunk: params -> params."""
    import jax
    import jax.numpy as jnp

    if not nets_first and grad == "manual":
        Y3 = Y[:, :, None]
        return lambda _, params: lanes_epoch(params, X, Y3, lr, scale, jax.nn.sigmoid, unroll)
    n_layers = spec.n_layers

    def forward(params):
        acts = []
        a = X
        for i, (W, b) in enumerate(params):
            if nets_first:  # a (S, fan_in) at layer 0, else (C, S, fan_in); W (C, fan_in, fan_out)
                z = (jnp.einsum("si,cij->csj", a, W) if i == 0 else a @ W) + b[:, None, :]
            else:
                z = _product(a, W, unroll) + b[None]
            a = jax.nn.sigmoid(z)
            acts.append((z, a))
        return acts

    Yb = Y[None] if nets_first else Y[:, :, None]

    def loss(params):
        z = forward(params)[-1][0]
        return jnp.sum(jnp.logaddexp(0.0, z) - Yb * z) * scale

    def manual(params):  # nets first
        acts = [a for _, a in forward(params)]
        d = (acts[-1] - Yb) * scale
        grads = [None] * n_layers
        for i in range(n_layers - 1, -1, -1):
            W = params[i][0]
            below = X if i == 0 else acts[i - 1]
            gW = jnp.einsum("si,csj->cij", below, d) if i == 0 else jnp.swapaxes(below, 1, 2) @ d
            grads[i] = (gW, d.sum(1))
            if i > 0:
                d = (d @ jnp.swapaxes(W, 1, 2)) * below * (1.0 - below)
        return grads

    gradient = jax.grad(loss) if grad == "jax.grad" else manual

    def epoch(_, params):
        g = gradient(params)
        return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, g, strict=True)]

    return epoch


def jax_fast_trainer(spec, X, Y, lr, *, grad="manual", nets_first=False, unroll=False,
                     chunk=256, n_devices=2):  # fmt: skip
    """A function (theta, n_epochs) -> theta (NumPy in and out), compiled on its first call,
    that trains chunks of ``chunk`` nets on ``n_devices`` host devices (n_nets a multiple of
    chunk * n_devices). ``train.timed`` is the same without the NumPy reshapes around it."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.config.update("jax_enable_x64", True)
    if jax.device_count() < n_devices:
        raise RuntimeError(f"JAX sees {jax.device_count()} device(s): set XLA_FLAGS={TWO_DEVICES}"
                           " before jax is imported")  # fmt: skip
    Xj, Yj = jnp.asarray(X, dtype=jnp.float64), jnp.asarray(Y, dtype=jnp.float64)
    epoch = _jax_epoch(spec, Xj, Yj, lr, _scale(spec, X), grad, nets_first, unroll)

    def train_local(params, n_epochs):
        return jax.lax.map(lambda p: jax.lax.fori_loop(0, n_epochs[0], epoch, p), params)

    mesh = Mesh(np.array(jax.devices()[:n_devices]), ("d",))
    sharded = jax.jit(jax.shard_map(train_local, mesh=mesh, in_specs=(P("d"), P()),
                                    out_specs=P("d")))  # fmt: skip
    sharding = NamedSharding(mesh, P("d"))

    def run(theta, n_epochs):
        layers = _chunked(theta, spec, chunk, nets_first)
        params = jax.device_put([(jnp.asarray(W), jnp.asarray(b)) for W, b in layers], sharding)
        out = sharded(params, jnp.array([n_epochs], dtype=jnp.int32))
        jax.block_until_ready(out)
        return out

    def train(theta, n_epochs):
        return _unchunked(run(theta, n_epochs), spec, theta.shape[1], nets_first)

    train.timed = run
    return train


# ----------------------------------------------------------------------------------- PyTorch


def torch_fast_trainer(spec, X, Y, lr, *, compiled=True, unroll=True, epochs_per_call=10,
                       chunk=1024):  # fmt: skip
    """A function (theta, n_epochs) -> theta: a hand-written step of ``epochs_per_call`` epochs
    (nets on the last axis), compiled by torch.compile unless ``compiled`` is False, applied to
    chunks of ``chunk`` nets in turn, on two threads."""
    import torch

    torch.set_num_threads(2)
    Xt = torch.tensor(X, dtype=torch.float64)
    Yt = torch.tensor(Y, dtype=torch.float64)[:, :, None]
    scale = _scale(spec, X)

    def steps(*flat):
        params = list(zip(flat[::2], flat[1::2], strict=True))
        for _ in range(epochs_per_call):
            params = lanes_epoch(params, Xt, Yt, lr, scale, torch.sigmoid, unroll)
        return tuple(t for pair in params for t in pair)

    step = torch.compile(steps, dynamic=False) if compiled else steps

    def train(theta, n_epochs):
        if n_epochs % epochs_per_call:
            raise ValueError(f"n_epochs must be a multiple of {epochs_per_call}")
        out = np.empty_like(theta)
        for first in range(0, theta.shape[1], chunk):
            part = np.ascontiguousarray(theta[:, first : first + chunk])
            flat = [torch.tensor(v) for pair in spec.layer_views(part) for v in pair]
            with torch.no_grad():
                for _ in range(n_epochs // epochs_per_call):
                    flat = step(*flat)
            done = out[:, first : first + chunk]
            for view, t in zip((v for pair in spec.layer_views(done) for v in pair), flat,
                               strict=True):  # fmt: skip
                view[...] = t.numpy()
        return out

    train.timed = train
    return train
