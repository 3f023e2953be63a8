"""Network specs: the shape of a fully connected net and where its parameters live in ``theta``.

A population is many nets of one spec. Its parameters are one array ``theta`` of shape
``(n_params, n_nets)``: one column per net, nets on the last (contiguous) axis. Layer ``l`` maps
``layers[l]`` inputs to ``layers[l + 1]`` outputs; its weights ``W`` (row-major, ``fan_in`` by
``fan_out``) come first, then its biases ``b``. Every backend reads theta through this layout.

A net with ``shortcut=True`` also feeds every layer below the last hidden one (the input and the
hidden layers but the last) straight into the output layer, as Rumelhart, Hinton & Williams'
2-1-1 XOR net does. Those shortcut weights come after the layered parameters, one block per
source layer from the input up, each ``layers[l]`` by ``n_outputs`` (row-major): the layered
part of theta keeps the layout of the same widths without shortcuts.
With batch normalisation, the scale ``gamma`` and shift ``beta`` of every hidden layer follow
all of that (hidden layer by hidden layer, ``gamma`` then ``beta``), so the weights of a net sit
where they sit without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import values

HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = ("sigmoid",)
LOSSES = ("bce", "mse")
REDUCTIONS = ("mean", "sum")


def _one_of(kind: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class NetSpec:
    """A fully connected net: layer widths, activations and loss.

    layers     : widths from input to output, e.g. ``(2, 4, 1)`` (the tutorial's net) or
                 ``(2, 1)`` (no hidden layer)
    activation : activation of every hidden layer: sigmoid, tanh, relu or leaky_relu
    output     : activation of the output layer (sigmoid)
    loss       : ``bce`` (binary cross-entropy, computed from logits) or ``mse``
                 (½(a − y)² per output, the convention of the backprop literature)
    reduction  : ``mean`` over samples (the tutorial) or ``sum`` (the 1980s papers)
    shortcut   : the input and every hidden layer but the last also feed the output layer
                 directly (needs a hidden layer): ``NetSpec((2, 1, 1), shortcut=True)``
    batchnorm  : normalise every hidden layer's pre-activations over the samples of the batch,
                 then scale and shift them (Ioffe & Szegedy 2015); see ``regularised.py``
    dropout    : rate p of inverted dropout on every hidden layer's activations, 0 for none
    """

    layers: tuple[int, ...] = (2, 4, 1)
    activation: str = "sigmoid"
    output: str = "sigmoid"
    loss: str = "bce"
    reduction: str = "mean"
    shortcut: bool = False
    batchnorm: bool = False
    dropout: float = 0.0

    def __post_init__(self):
        # a string is a sequence of characters ("241" is not (2, 4, 1)) and 4.7 is no width
        if isinstance(self.layers, str | bytes) or not hasattr(self.layers, "__iter__"):
            raise ValueError(
                "layers must be a sequence of integer widths such as (2, 4, 1), "
                f"got {self.layers!r}"
            )
        layers = tuple(self.layers)
        for w in layers:
            if isinstance(w, bool) or not isinstance(w, int | np.integer):
                raise ValueError(
                    f"layer widths must be integers such as (2, 4, 1), got {w!r} in {layers!r}"
                )
        layers = tuple(int(w) for w in layers)
        if len(layers) < 2:
            raise ValueError(
                f"layers needs at least an input and an output width, e.g. (2, 1), got {layers!r}"
            )
        if any(w < 1 for w in layers):
            raise ValueError(f"every layer width must be at least 1, got {layers!r}")
        object.__setattr__(self, "layers", layers)
        _one_of("activation", self.activation, HIDDEN_ACTIVATIONS)
        _one_of("output activation", self.output, OUTPUT_ACTIVATIONS)
        _one_of("loss", self.loss, LOSSES)
        _one_of("reduction", self.reduction, REDUCTIONS)
        if not isinstance(self.shortcut, bool | np.bool_):
            raise ValueError(f"shortcut must be True or False, got {self.shortcut!r}")
        object.__setattr__(self, "shortcut", bool(self.shortcut))
        if self.shortcut and len(layers) < 3:
            raise ValueError(
                f"shortcut connections need a hidden layer, e.g. (2, 1, 1); {layers!r} has none"
            )
        if not isinstance(self.batchnorm, bool | np.bool_):
            raise ValueError(f"batchnorm must be True or False, got {self.batchnorm!r}")
        object.__setattr__(self, "batchnorm", bool(self.batchnorm))
        dropout = values.number("dropout", self.dropout)
        if not (0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be a rate in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "dropout", dropout)
        if (self.batchnorm or dropout) and len(layers) < 3:
            raise ValueError(
                f"batch norm and dropout act on hidden layers; layers {layers!r} has none"
            )
        if self.shortcut and (self.batchnorm or dropout):
            raise ValueError(
                "shortcut connections with batch norm or dropout are not supported; "
                "use one or the other"
            )

    @property
    def n_layers(self) -> int:
        """Number of weight layers (hidden layers + 1)."""
        return len(self.layers) - 1

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    @property
    def n_weights(self) -> int:
        """Weights and biases of every layer: the rows of theta before the shortcut weights or
        the normalisation's."""
        return sum(fi * fo + fo for fi, fo in zip(self.layers[:-1], self.layers[1:], strict=True))

    @property
    def n_shortcut_params(self) -> int:
        """Shortcut weights (after the layered parameters); 0 without shortcuts."""
        return sum(self.layers[src] * self.n_outputs for src in self.shortcut_sources())

    def shortcut_sources(self) -> tuple[int, ...]:
        """Indices of the layers (0 = input) that feed the output through shortcut weights."""
        return tuple(range(len(self.layers) - 2)) if self.shortcut else ()

    @property
    def output_fan_in(self) -> int:
        """Inputs of the output layer, shortcut ones included."""
        return self.layers[-2] + sum(self.layers[src] for src in self.shortcut_sources())

    def shortcut_offsets(self) -> np.ndarray:
        """Start of each shortcut block in theta, source layers from the input up.

        Returns an int64 array of shape (len(shortcut_sources()),).
        """
        start = int(self.offsets()[-1, 1]) + self.n_outputs
        starts = []
        for src in self.shortcut_sources():
            starts.append(start)
            start += self.layers[src] * self.n_outputs
        return np.array(starts, dtype=np.int64)

    def shortcut_views(self, theta: np.ndarray) -> list[np.ndarray]:
        """Views of the shortcut weights into theta, one per source layer: each of shape
        (layers[l], n_outputs, n_nets); empty without shortcuts."""
        n_nets, n_out = theta.shape[1], self.n_outputs
        return [
            theta[start : start + self.layers[src] * n_out].reshape(self.layers[src], n_out, n_nets)
            for start, src in zip(self.shortcut_offsets(), self.shortcut_sources(), strict=True)
        ]

    @property
    def n_hidden_units(self) -> int:
        return sum(self.layers[1:-1])

    @property
    def n_params(self) -> int:
        """Rows of theta: the layered weights and biases, then the shortcut weights or the
        normalisation's scales and shifts (a net has at most one of the two)."""
        norm = 2 * self.n_hidden_units if self.batchnorm else 0
        return self.n_weights + self.n_shortcut_params + norm

    @property
    def regularised(self) -> bool:
        """Whether batch norm or dropout is on (training and evaluation then differ)."""
        return self.batchnorm or self.dropout > 0

    def norm_offsets(self) -> np.ndarray:
        """Start of each hidden layer's ``gamma``, then of its ``beta``, in theta.

        Returns an int64 array of shape (n_layers - 1, 2); empty without batch norm.
        """
        rows, start = [], self.n_weights
        for width in self.layers[1:-1] if self.batchnorm else ():
            rows.append((start, start + width))
            start += 2 * width
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def norm_views(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views ``(gamma, beta)`` of every hidden layer, each of shape (width, n_nets)."""
        return [
            (theta[g : g + w], theta[b : b + w])
            for (g, b), w in zip(self.norm_offsets(), self.layers[1:-1], strict=False)
        ]

    def offsets(self) -> np.ndarray:
        """Start of each layer's weights, then of its biases, in theta.

        Returns an int64 array of shape (n_layers, 2): ``[w_start, b_start]`` per layer.
        """
        rows, start = [], 0
        for fi, fo in zip(self.layers[:-1], self.layers[1:], strict=True):
            rows.append((start, start + fi * fo))
            start += fi * fo + fo
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def layer_views(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views ``(W, b)`` of every layer into theta (no copies: writing them writes theta).

        theta : array of shape (n_params, n_nets), nets on the last axis
        Returns per layer ``W`` of shape (fan_in, fan_out, n_nets) and ``b`` of shape
        (fan_out, n_nets).
        """
        n_nets = theta.shape[1]
        views = []
        for (w_start, b_start), fi, fo in zip(
            self.offsets(), self.layers[:-1], self.layers[1:], strict=True
        ):
            W = theta[w_start:b_start].reshape(fi, fo, n_nets)
            b = theta[b_start : b_start + fo]
            views.append((W, b))
        return views

    def describe(self) -> str:
        """A one-line human description, e.g. ``2-4-1 sigmoid/sigmoid, bce (mean)``."""
        widths = "-".join(str(w) for w in self.layers)
        text = f"{widths} {self.activation}/{self.output}, {self.loss} ({self.reduction})"
        if self.shortcut:
            text = text.replace(f"{widths} ", f"{widths} with shortcuts ", 1)
        if self.batchnorm:
            text += ", batch norm"
        if self.dropout:
            text += f", dropout {self.dropout:g}"
        return text
