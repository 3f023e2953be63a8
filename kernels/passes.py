"""What the forward and backward kernels return, the same for both backends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Forward:
    """Every layer's pre-activations and activations for a population.

    z : list of n_layers arrays; ``z[l]`` of shape (n_samples, layers[l + 1], n_nets)
    a : list of n_layers + 1 arrays; ``a[0]`` is the input broadcast to
        (n_samples, layers[0], n_nets), ``a[l + 1] = activation(z[l])``; ``a[-1]`` is the output
    """

    z: list[np.ndarray]
    a: list[np.ndarray]


@dataclass
class Gradients:
    """Gradients of the loss (as reduced over samples) for a population.

    grad : array of shape (n_params, n_nets), laid out like theta
    dz   : with ``per_layer``: list of n_layers arrays, ``dz[l]`` = dL/dz[l], shape as ``z[l]``
    da   : with ``per_layer``: list of n_layers - 1 arrays, ``da[l]`` = dL/da[l + 1] for the
           hidden activations, shape as ``a[l + 1]``
    """

    grad: np.ndarray
    dz: list[np.ndarray] | None = None
    da: list[np.ndarray] | None = None
