"""The same training job in JAX (vmap + jit over nets) and PyTorch (a batched ensemble with
``loss.backward()``): full-batch training, the spec's hidden activation (sigmoid, tanh, relu or
leaky relu) and loss (cross-entropy from logits or the squared error of the sigmoid outputs;
mean or sum over samples), one learning rate, a fixed number of epochs; gradient descent,
momentum or Adam (the project's ``Optimizer``: hand-written in JAX, ``torch.optim.SGD`` and
``torch.optim.Adam`` in PyTorch, the same formulas in another order); float64 or float32 (the
dtype of theta).

Each ``train_*`` takes the project's theta (n_params, n_nets) and spec so that all
implementations start from the same weights, and returns the final theta for a sanity check.
"""

from __future__ import annotations

import numpy as np

from .fast_peers import _ops, check_optimizer, loss_scale


def _layers(theta, spec):
    """Per layer (W of shape (n_nets, fan_in, fan_out), b of shape (n_nets, fan_out))."""
    return [(np.ascontiguousarray(np.moveaxis(W, -1, 0)), np.ascontiguousarray(b.T))
            for W, b in spec.layer_views(theta)]  # fmt: skip


def _stack(layers, spec, n_nets, dtype=np.float64):
    theta = np.empty((spec.n_params, n_nets), dtype=dtype)
    for (W, b), (Wv, bv) in zip(layers, spec.layer_views(theta), strict=True):
        Wv[...] = np.moveaxis(np.asarray(W), 0, -1)
        bv[...] = np.asarray(b).T
    return theta


def jax_trainer(spec, n_epochs: int, learning_rate: float, optimizer=None):
    """A jitted function (params, X, Y) -> params training all nets (vmap over nets), in the
    dtype of params; optimizer: None (sgd) or the project's Optimizer (sgd, momentum or adam)."""
    import jax
    import jax.numpy as jnp

    check_optimizer(optimizer)
    jax.config.update("jax_enable_x64", True)
    # the hidden activation and the loss of the output logits, as the fast peers write them
    # (leaky_relu'(0) is the slope under jax.grad, as the kernel takes it)
    ops = _ops("jax", spec)
    name = "sgd" if optimizer is None else optimizer.name

    def loss(params, X, Y):
        a = X
        for i, (W, b) in enumerate(params):
            z = a @ W + b
            a = ops.act(z) if i < len(params) - 1 else z
        return jnp.sum(ops.loss(a, Y)) * loss_scale(spec, X.shape[0])

    grad = jax.grad(loss)

    def sgd(_, p, X, Y):
        g = grad(p, X, Y)
        return jax.tree.map(lambda w, dw: w - learning_rate * dw, p, g)

    def momentum_step(_, state, X, Y):
        p, v = state
        g = grad(p, X, Y)
        v = jax.tree.map(lambda v, g: optimizer.momentum * v - learning_rate * g, v, g)
        return jax.tree.map(lambda w, v: w + v, p, v), v

    def adam_step(t, state, X, Y):
        p, m, v = state
        g = grad(p, X, Y)
        b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.eps
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1 = (1 - b1 ** (t + 1.0)).astype(m[0][0].dtype)
        c2 = (1 - b2 ** (t + 1.0)).astype(m[0][0].dtype)
        p = jax.tree.map(lambda w, m, v: w - learning_rate * (m / c1) / (jnp.sqrt(v / c2) + eps),
                         p, m, v)  # fmt: skip
        return p, m, v

    def train_one(params, X, Y):
        X, Y = X.astype(params[0][0].dtype), Y.astype(params[0][0].dtype)
        if name == "sgd":
            return jax.lax.fori_loop(0, n_epochs, lambda t, p: sgd(t, p, X, Y), params)
        zeros = jax.tree.map(jnp.zeros_like, params)
        step, state = (momentum_step, (params, zeros)) if name == "momentum" else (
            adam_step, (params, zeros, zeros))
        return jax.lax.fori_loop(0, n_epochs, lambda t, s: step(t, s, X, Y), state)[0]

    return jax.jit(jax.vmap(train_one, in_axes=(0, None, None)))


def jax_params(theta, spec):
    import jax.numpy as jnp

    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in _layers(theta, spec)]


def jax_run(trainer, params, X, Y):
    import jax

    out = trainer(params, X, Y)
    jax.block_until_ready(out)
    return out


def torch_train(theta, spec, X, Y, n_epochs: int, learning_rate: float, optimizer=None):
    """A batched ensemble in PyTorch with autograd every epoch, in the dtype of theta;
    optimizer: None (sgd) or the project's Optimizer (sgd, momentum by ``torch.optim.SGD``, whose
    velocity is ours over -lr, or adam by ``torch.optim.Adam``).
    Nets sit on the last axis and layers are broadcast products, the fastest of the
    formulations tried here (4.3e6 net-epochs/s for 2-4-1 on two cores, against 3.9e5 for
    torch.baddbmm over a net axis)."""
    import torch

    check_optimizer(optimizer)
    torch.set_num_threads(2)
    dtype = torch.float32 if theta.dtype == np.float32 else torch.float64
    ops = _ops("torch", spec)  # as jax_trainer's
    t = torch.tensor(theta, dtype=dtype)
    params = []
    for W, b in spec.layer_views(t):  # W (fan_in, fan_out, n_nets), b (fan_out, n_nets)
        params += [W.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    step = None
    if optimizer is not None and optimizer.name == "adam":
        step = torch.optim.Adam(params, lr=learning_rate, betas=(optimizer.beta1,
                                optimizer.beta2), eps=optimizer.eps)  # fmt: skip
    elif optimizer is not None and optimizer.name == "momentum":
        step = torch.optim.SGD(params, lr=learning_rate, momentum=optimizer.momentum)
    scale = loss_scale(spec, X.shape[0])
    Xt = torch.tensor(X, dtype=dtype)[:, :, None]
    Yt = torch.tensor(Y, dtype=dtype)[:, :, None]
    n_layers = len(params) // 2
    for _ in range(n_epochs):
        a = Xt
        for i in range(n_layers):
            W, b = params[2 * i], params[2 * i + 1]
            z = (a[:, :, None, :] * W[None]).sum(1) + b[None]
            a = ops.act(z) if i < n_layers - 1 else z
        loss = ops.loss(a, Yt).sum() * scale  # each net's loss, summed over nets
        loss.backward()
        if step is not None:
            step.step()
            step.zero_grad()
            continue
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
