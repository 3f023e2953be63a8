"""Seeded initial weights for populations of nets.

Net ``k`` of seed ``s`` gets the same initial weights whatever else is created with it: population
size, the first net asked for, chunking, thread count, backend and dtype (float32 weights are the
float64 ones rounded). That identity is what makes paired comparisons across learning rates and
optimizers possible.

How: nets are grouped into fixed blocks of ``BLOCK_NETS`` consecutive indices. Block ``j`` draws
its numbers from its own generator, ``default_rng(SeedSequence(seed, spawn_key=(j,)))``, as one
array of shape (n_params, BLOCK_NETS); net ``k`` is column ``k % BLOCK_NETS`` of block
``k // BLOCK_NETS``. A generator per block (not per net) keeps a million nets well under a second.
Changing ``BLOCK_NETS`` or the order of draws changes every net: both are part of the contract.

Schemes (``fan_in``, ``fan_out`` of the layer a weight belongs to):

| scheme          | weights                                   | biases        |
|-----------------|-------------------------------------------|---------------|
| tutorial        | normal, std sqrt(2 / fan_in)              | 0             |
| xavier_normal   | normal, std sqrt(2 / (fan_in + fan_out))  | 0             |
| xavier_uniform  | uniform(±sqrt(6 / (fan_in + fan_out)))    | 0             |
| he_normal       | normal, std sqrt(2 / fan_in)              | 0             |
| he_uniform      | uniform(±sqrt(6 / fan_in))                | 0             |
| lecun_normal    | normal, std sqrt(1 / fan_in)              | 0             |
| uniform         | uniform(±scale), default scale 1          | uniform(±scale) |
| normal          | normal(0, scale), default scale 1         | normal(0, scale) |
| zeros           | 0                                         | 0             |

The tutorial calls its scheme Xavier; with variance 2 / fan_in it is He's. The two names give the
same numbers. ``uniform`` and ``normal`` draw biases too, as the classic backprop experiments did.

With shortcut connections the output layer is one layer with ``spec.output_fan_in`` inputs (its
layered inputs and the shortcut ones): all its weights, shortcut weights included, take their
scale from that fan-in. Its hidden layers draw the very numbers of the same widths without
shortcuts (the shortcut rows come last in theta, and draws fill theta row by row); nets without
shortcuts are not affected at all.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .checks import check_spec
from .spec import NetSpec

BLOCK_NETS = 1024
_THREADED_BLOCKS = 16

# scheme -> (family, std or half-width as a function of (fan_in, fan_out), biases drawn)
_SCHEMES = {
    "tutorial": ("normal", lambda fi, fo: np.sqrt(2.0 / fi), False),
    "xavier_normal": ("normal", lambda fi, fo: np.sqrt(2.0 / (fi + fo)), False),
    "xavier_uniform": ("uniform", lambda fi, fo: np.sqrt(6.0 / (fi + fo)), False),
    "he_normal": ("normal", lambda fi, fo: np.sqrt(2.0 / fi), False),
    "he_uniform": ("uniform", lambda fi, fo: np.sqrt(6.0 / fi), False),
    "lecun_normal": ("normal", lambda fi, fo: np.sqrt(1.0 / fi), False),
    "uniform": ("uniform", None, True),
    "normal": ("normal", None, True),
    "zeros": ("zeros", None, False),
}
SCHEMES = tuple(_SCHEMES)


@dataclass(frozen=True)
class Init:
    """An initialisation scheme and, for ``uniform`` and ``normal``, its scale.

    Parse one from text with :func:`parse_init` (``"he_normal"``, ``"uniform:0.5"``).
    """

    scheme: str = "tutorial"
    scale: float | None = None

    def __post_init__(self):
        if self.scheme not in _SCHEMES:
            raise ValueError(f"unknown init {self.scheme!r}; choose one of: {', '.join(SCHEMES)}")
        if self.scale is not None:
            if self.scheme not in ("uniform", "normal"):
                raise ValueError(
                    f"init {self.scheme!r} takes no scale; only uniform:A and normal:SIGMA do"
                )
            scale = float(self.scale)
            if not (np.isfinite(scale) and scale > 0):
                raise ValueError(f"init scale must be a positive finite number, got {self.scale!r}")
            object.__setattr__(self, "scale", scale)

    def __str__(self) -> str:
        return self.scheme if self.scale is None else f"{self.scheme}:{self.scale:g}"


def parse_init(text: str) -> Init:
    """``"he_normal"`` -> Init("he_normal"); ``"uniform:0.5"`` -> Init("uniform", 0.5);
    ``"uniform"`` -> Init("uniform", 1.0), the default scale written out, so that the two
    spellings of one init are one value (a sweep's grid refuses them as a repeat)."""
    name, _, scale = str(text).strip().lower().partition(":")
    name = name.replace("-", "_")
    if name not in _SCHEMES:  # named as given (-1 was echoed as '_1')
        raise ValueError(f"unknown init {str(text).strip()!r}; choose one of: {', '.join(SCHEMES)}")
    if not scale and ":" in str(text):  # 'uniform:' was taken for uniform
        raise ValueError(f"init scale missing after ':' in {str(text).strip()!r}; give one, as "
                         "in uniform:0.5, or leave out the ':'")  # fmt: skip
    if not scale:
        return Init(name, 1.0) if name in ("uniform", "normal") else Init(name)
    try:
        value = float(scale)
    except ValueError:
        raise ValueError(f"init scale must be a number, as in uniform:0.5, got {text!r}") from None
    return Init(name, value)


def _row_scales(spec: NetSpec, init: Init) -> np.ndarray:
    """Multiplier of each row of theta: the std or half-width of that parameter, 0 if not drawn."""
    family, width_of, draw_biases = _SCHEMES[init.scheme]
    scales = np.zeros(spec.n_params)
    if family == "zeros":
        return scales
    for layer, ((w_start, b_start), fi, fo) in enumerate(
        zip(spec.offsets(), spec.layers[:-1], spec.layers[1:], strict=True)
    ):
        if spec.shortcut and layer == spec.n_layers - 1:
            fi = spec.output_fan_in
        if width_of is not None:
            width = width_of(fi, fo)
        else:
            width = 1.0 if init.scale is None else init.scale
        scales[w_start:b_start] = width
        if draw_biases:
            scales[b_start : b_start + fo] = width
    if spec.shortcut:  # the output layer's width, computed last in the loop above
        scales[spec.shortcut_offsets()[0] :] = width
    return scales


def layer_variances(spec: NetSpec, init: Init | str) -> list[tuple[float, float]]:
    """The variance of each layer's weights and of its biases as ``init`` draws them, layer by
    layer (the input's first): std squared for normal draws, half-width squared over 3 for
    uniform ones, 0 for what is not drawn. (A shortcut net's extra weights are left out.)"""
    init = parse_init(init) if isinstance(init, str) else init
    family = _SCHEMES[init.scheme][0]
    factor = {"normal": 1.0, "uniform": 1.0 / 3.0, "zeros": 0.0}[family]
    scales = _row_scales(spec, init)
    return [(float(scales[w_start] ** 2 * factor), float(scales[b_start] ** 2 * factor))
            for w_start, b_start in spec.offsets()]  # fmt: skip


def init_population(
    spec: NetSpec,
    n_nets: int,
    seed: int,
    init: Init | str = "tutorial",
    *,
    first_net: int = 0,
    dtype=np.float64,
) -> np.ndarray:
    """Initial parameters of nets ``first_net .. first_net + n_nets - 1`` of ``seed``.

    Returns theta, a C-contiguous array of shape (spec.n_params, n_nets), nets on the last axis.
    """
    check_spec(spec)
    init = parse_init(init) if isinstance(init, str) else init
    if not isinstance(init, Init):
        raise TypeError(f"init must be an Init or a scheme name such as 'tutorial', got {init!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(n_nets, int | np.integer) or isinstance(n_nets, bool) or n_nets < 1:
        raise ValueError(f"n_nets must be a positive integer, got {n_nets!r}")
    if n_nets > 2**62:  # NumPy said "Maximum allowed dimension exceeded"
        raise ValueError(f"n_nets must be at most 2**62, got {n_nets!r}")
    if not isinstance(first_net, int | np.integer) or isinstance(first_net, bool) or first_net < 0:
        raise ValueError(f"first_net must be a non-negative integer, got {first_net!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")

    family = _SCHEMES[init.scheme][0]
    try:
        theta = np.zeros((spec.n_params, n_nets), dtype=dtype)
    except MemoryError:
        size = spec.n_params * int(n_nets) * dtype.itemsize
        raise ValueError(f"n_nets={n_nets:,} of {spec.n_params} parameters needs "
                         f"{size / 2**30:,.1f} GiB for theta alone, more than can be allocated; "
                         "draw fewer nets at a time (first_net picks where to start)") from None
    for gamma, _ in spec.norm_views(theta):
        gamma[...] = 1  # batch norm starts as the identity (scale 1, shift 0), drawn from nothing
    if family == "zeros":
        return theta
    scales = _row_scales(spec, init)[:, None]
    stop = first_net + n_nets

    def fill(block: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
        drawn = spec.n_weights + spec.n_shortcut_params
        shape = (drawn, BLOCK_NETS)
        draws = rng.standard_normal(shape) if family == "normal" else rng.uniform(-1, 1, shape)
        lo = max(first_net, block * BLOCK_NETS)
        hi = min(stop, (block + 1) * BLOCK_NETS)
        cols = slice(lo - block * BLOCK_NETS, hi - block * BLOCK_NETS)
        # rows past the weights (batch norm's) are not drawn; the weights' draws come first in
        # the generator's stream, so a net has the same weights with and without batch norm
        # (and the same layered weights with and without shortcuts, whose rows come next)
        weights = slice(0, drawn)
        with np.errstate(over="ignore"):  # a scale near the largest float: inf weights, as asked
            theta[weights, lo - first_net : hi - first_net] = draws[weights, cols] * scales[weights]

    blocks = range(first_net // BLOCK_NETS, (stop - 1) // BLOCK_NETS + 1)
    if len(blocks) < _THREADED_BLOCKS:
        for block in blocks:
            fill(block)
    else:
        # Blocks are independent and NumPy's generators release the GIL while they fill, so
        # threads give the same numbers, sooner.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(fill, blocks))
    return theta
