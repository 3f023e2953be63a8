"""The same training job in JAX (vmap + jit over nets) and PyTorch (a batched ensemble with
``loss.backward()``): full-batch gradient descent on XOR, sigmoid hidden layers, sigmoid output,
binary cross-entropy from logits, mean over samples, one learning rate, a fixed number of epochs.

Each ``train_*`` takes the project's theta (n_params, n_nets) and spec so that all
implementations start from the same weights, and returns the final theta for a sanity check.
"""

from __future__ import annotations

import numpy as np


def _layers(theta, spec):
    """Per layer (W of shape (n_nets, fan_in, fan_out), b of shape (n_nets, fan_out))."""
    return [(np.ascontiguousarray(np.moveaxis(W, -1, 0)), np.ascontiguousarray(b.T))
            for W, b in spec.layer_views(theta)]  # fmt: skip


def _stack(layers, spec, n_nets):
    theta = np.empty((spec.n_params, n_nets))
    for (W, b), (Wv, bv) in zip(layers, spec.layer_views(theta), strict=True):
        Wv[...] = np.moveaxis(np.asarray(W), 0, -1)
        bv[...] = np.asarray(b).T
    return theta


def jax_trainer(spec, n_epochs: int, learning_rate: float):
    """A jitted function (params, X, Y) -> params training all nets (vmap over nets)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def loss(params, X, Y):
        a = X
        for i, (W, b) in enumerate(params):
            z = a @ W + b
            a = jax.nn.sigmoid(z) if i < len(params) - 1 else z
        return jnp.mean(jnp.logaddexp(0.0, a) - Y * a)

    grad = jax.grad(loss)

    def train_one(params, X, Y):
        def epoch(_, p):
            g = grad(p, X, Y)
            return jax.tree.map(lambda w, dw: w - learning_rate * dw, p, g)

        return jax.lax.fori_loop(0, n_epochs, epoch, params)

    return jax.jit(jax.vmap(train_one, in_axes=(0, None, None)))


def jax_params(theta, spec):
    import jax.numpy as jnp

    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in _layers(theta, spec)]


def jax_run(trainer, params, X, Y):
    import jax

    out = trainer(params, X, Y)
    jax.block_until_ready(out)
    return out


def torch_train(theta, spec, X, Y, n_epochs: int, learning_rate: float):
    """A batched ensemble in PyTorch with autograd every epoch. Nets sit on the last axis and
    layers are broadcast products, the fastest of the formulations tried here (4.3e6
    net-epochs/s for 2-4-1 on two cores, against 3.9e5 for torch.baddbmm over a net axis)."""
    import torch

    torch.set_num_threads(2)
    t = torch.tensor(theta, dtype=torch.float64)
    params = []
    for W, b in spec.layer_views(t):  # W (fan_in, fan_out, n_nets), b (fan_out, n_nets)
        params += [W.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    Xt = torch.tensor(X, dtype=torch.float64)[:, :, None]
    Yt = torch.tensor(Y, dtype=torch.float64)[:, :, None]
    n_layers = len(params) // 2
    for _ in range(n_epochs):
        a = Xt
        for i in range(n_layers):
            W, b = params[2 * i], params[2 * i + 1]
            z = (a[:, :, None, :] * W[None]).sum(1) + b[None]
            a = torch.sigmoid(z) if i < n_layers - 1 else z
        loss = (torch.nn.functional.softplus(a) - Yt * a).mean(dim=(0, 1)).sum()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= learning_rate * p.grad
                p.grad = None
    out = np.empty_like(theta)
    for (W, b), (Wv, bv) in zip(
        zip(params[::2], params[1::2], strict=True), spec.layer_views(out), strict=True
    ):
        Wv[...] = W.detach().numpy()
        bv[...] = b.detach().numpy()
    return out
