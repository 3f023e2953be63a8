"""Activations and losses in plain NumPy, each rule beside its derivative.

These are the readable reference definitions. The numba backend has its own scalar transcriptions
(in ``numba_backend.py``) that are tested against these. Conventions that a reader must know:

- Derivatives are written in terms of both the pre-activation ``z`` and the activation ``a``,
  because for sigmoid and tanh the derivative is cheapest from ``a``.
- ReLU and leaky ReLU are not differentiable at 0. We use the subgradient whose value at 0 is the
  left derivative: relu'(0) = 0 and leaky_relu'(0) = LEAKY_SLOPE (PyTorch's convention).
- Losses take logits: binary cross-entropy is ``softplus(z) - y z``, never ``log(sigmoid(z))``,
  so it is exact where the sigmoid rounds to 0 or 1.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01


def sigmoid(z):
    # exp of a non-positive number only: no overflow for any z.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(z, a):
    return a * (1.0 - a)


def tanh(z):
    return np.tanh(z)


def tanh_grad(z, a):
    return 1.0 - a * a


def relu(z):
    # written so that a NaN input stays NaN (divergence must stay visible)
    return np.where(z <= 0, 0.0, z)


def relu_grad(z, a):
    return np.where(z > 0, 1.0, 0.0).astype(z.dtype)


def leaky_relu(z):
    return np.where(z <= 0, LEAKY_SLOPE * z, z)


def leaky_relu_grad(z, a):
    return np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype)


ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
}


def softplus(z):
    """log(1 + exp(z)) without overflow."""
    return np.logaddexp(0.0, z)


def bce_from_logits(z, y):
    """Binary cross-entropy of a sigmoid output, per element, from its logit ``z``."""
    return softplus(z) - y * z


def bce_grad_logits(z, a, y):
    """d bce / dz for a sigmoid output: a - y."""
    return a - y


def mse(z, a, y):
    """Half squared error per element: ½(a − y)²."""
    d = a - y
    return 0.5 * d * d


def mse_grad_logits(z, a, y):
    """d ½(a − y)² / dz for a sigmoid output: (a − y) a (1 − a)."""
    return (a - y) * a * (1.0 - a)


def loss_elements(loss: str, z, a, y):
    """Per-element loss of the output layer (before the reduction over samples)."""
    if loss == "bce":
        return bce_from_logits(z, y)
    return mse(z, a, y)


def loss_grad_logits(loss: str, z, a, y):
    """Per-element derivative of the loss with respect to the output logits."""
    if loss == "bce":
        return bce_grad_logits(z, a, y)
    return mse_grad_logits(z, a, y)
