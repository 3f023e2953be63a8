"""What a convergence sweep is: a grid of cells, N seeded nets per cell, cut into shards.

A cell is one setting of (hidden width, init, activation, loss, optimizer, learning rate), and,
where a sweep asks for them, of batch norm, dropout rate and weight decay; the control cells
have no hidden layer (so neither batch norm nor dropout). Net ``k`` of every cell that shares a
net shape and init starts from the same weights (net ``k`` of the sweep's seed; batch norm adds
parameters after them and leaves them as they are) and draws the same dropout masks, so cells
that differ only in learning rate, optimizer, activation, loss, batch norm, dropout rate or
weight decay are paired comparisons (common random numbers).

A shard is (cell, block of ``nets_per_shard`` nets). Its result is a pure function of the config
and the shard id, which is what lets a sweep resume after a kill and lets any executor run shards.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from backprop_bench.kernels import (
    BACKENDS,
    Criterion,
    NetSpec,
    Optimizer,
    get_problem,
    parse_init,
    values,
)
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES
from backprop_bench.kernels.training import OPTIMIZERS, record_epochs

DEFAULT_LRS = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_INITS = (
    "tutorial",
    "xavier_normal",
    "xavier_uniform",
    "he_uniform",
    "lecun_normal",
    "uniform:1",
)
# Training history is recorded every epochs // HISTORY_POINTS epochs; learning and survival
# curves keep about CURVE_POINTS of those epochs, spaced evenly on a log scale.
HISTORY_POINTS = 1000
CURVE_POINTS = 60
# Fields that change no number of the results. backend and name are left out of the sweep's
# identity; nets_per_shard stays in it (it decides which nets a stored shard holds) but is left
# out of the summary, which is the same for any shard size.
NOT_IDENTITY = ("backend", "name")
NOT_RESULTS = ("backend", "nets_per_shard")
# Grid axes a sweep may leave out: at their defaults they are left out of the stored config too,
# so a sweep without them has the identity, summary and report it had before they existed.
OPTIONAL_AXES = {"batchnorm": (False,), "dropout": (0.0,), "weight_decay": (0.0,)}


def _sweep_name(name) -> str:
    if not isinstance(name, str) or not name.strip() or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a non-empty name without '/', got {name!r}")
    return name


def _init_name(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"init must be a scheme name such as tutorial or uniform:1, got {text!r}")
    return str(parse_init(text))


def _hidden_width(width) -> int:
    try:
        return values.integer("hidden sizes", width, 1, values.MAX_WIDTH)
    except ValueError as error:
        raise ValueError(
            f"{error} (the no-hidden-layer control is added by control = true)"
        ) from None


@dataclass(frozen=True)
class Cell:
    """One grid cell; ``hidden == 0`` is the no-hidden-layer control."""

    hidden: int
    init: str
    activation: str
    loss: str
    optimizer: str
    lr: float
    batchnorm: bool = False
    dropout: float = 0.0
    weight_decay: float = 0.0

    def label(self) -> str:
        net = "no hidden layer" if self.hidden == 0 else f"hidden {self.hidden}"
        return (
            f"{net}, {self.init}, {self.activation}, {self.loss}, {self.optimizer}, lr {self.lr:g}"
            + (", batch norm" if self.batchnorm else "")
            + (f", dropout {self.dropout:g}" if self.dropout else "")
            + (f", weight decay {self.weight_decay:g}" if self.weight_decay else "")
        )


@dataclass(frozen=True)
class SweepConfig:
    """A sweep. Tuples are grid axes; every combination is a cell."""

    name: str = "default"
    problem: str = "xor"
    lr: tuple[float, ...] = DEFAULT_LRS
    init: tuple[str, ...] = DEFAULT_INITS
    hidden: tuple[int, ...] = (2, 3, 4, 8)
    activation: tuple[str, ...] = ("sigmoid",)
    loss: tuple[str, ...] = ("bce",)
    optimizer: tuple[str, ...] = ("sgd",)
    momentum: float = 0.9
    nets_per_cell: int = 1000
    epochs: int = 10_000
    seed: int = 0
    tolerance: float = 0.4
    control: bool = True
    nets_per_shard: int = 1000
    backend: str = "numba"
    batchnorm: tuple[bool, ...] = (False,)
    dropout: tuple[float, ...] = (0.0,)
    weight_decay: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        # Every value is checked by type and range, and names normalised, before any is used:
        # two spellings of one init are one value, and the duplicate check sees them as such.
        def setting(field, value):
            object.__setattr__(self, field, value)

        setting("name", _sweep_name(self.name))
        problem = get_problem(values.name("problem", self.problem))
        setting("problem", problem.name)
        setting("lr", values.grid("lr", self.lr, lambda v: values.real("lr", v), "grid"))
        setting("init", values.grid("init", self.init, _init_name, "grid"))
        setting("hidden", values.grid("hidden", self.hidden, _hidden_width, "grid"))
        for axis, allowed in (("activation", HIDDEN_ACTIVATIONS), ("loss", LOSSES),
                              ("optimizer", OPTIMIZERS)):  # fmt: skip
            check = lambda v, axis=axis, allowed=allowed: values.name(axis, v, allowed)  # noqa: E731
            setting(axis, values.grid(axis, getattr(self, axis), check, "grid"))
        setting("momentum", values.real("momentum", self.momentum, 0.0, 1.0, low_open=False,
                                        high_open=True))  # fmt: skip
        setting("tolerance", values.tolerance("tolerance", self.tolerance))
        for field in ("nets_per_cell", "epochs", "nets_per_shard"):
            setting(field, values.integer(field.replace("_", "-"), getattr(self, field), 1))
        setting("seed", values.integer("seed", self.seed))
        setting("control", values.flag("control", self.control))
        setting("backend", values.name("backend", self.backend, BACKENDS))
        axes = {
            "batchnorm": lambda v: values.flag("batchnorm", v),
            "dropout": lambda v: values.real("dropout", v, 0.0, 1.0, low_open=False,
                                             high_open=True),  # fmt: skip
            "weight_decay": lambda v: values.real("weight_decay", v, 0.0, low_open=False),
        }
        for axis, check in axes.items():
            setting(axis, values.grid(axis, getattr(self, axis), check, "grid"))
        Criterion(max_error=self.tolerance)
        for name in self.optimizer:
            Optimizer(name, momentum=self.momentum)

    # ------------------------------------------------------------------------------- the grid

    def cells(self) -> list[Cell]:
        """Control cells first (no hidden layer, first init), then the grid, lr varying fastest."""
        cells = []
        if self.control:  # no hidden layer: nothing to normalise or drop out
            cells += [
                Cell(0, self.init[0], activation, loss, optimizer, lr, weight_decay=decay)
                for activation in self.activation
                for loss in self.loss
                for optimizer in self.optimizer
                for decay in self.weight_decay
                for lr in self.lr
            ]
        cells += [
            Cell(hidden, init, activation, loss, optimizer, lr, batchnorm, dropout, decay)
            for hidden in self.hidden
            for init in self.init
            for activation in self.activation
            for loss in self.loss
            for optimizer in self.optimizer
            for batchnorm in self.batchnorm
            for dropout in self.dropout
            for decay in self.weight_decay
            for lr in self.lr
        ]
        return cells

    def spec(self, cell: Cell) -> NetSpec:
        problem = get_problem(self.problem)
        hidden = () if cell.hidden == 0 else (cell.hidden,)
        return NetSpec(
            (problem.n_inputs, *hidden, problem.n_outputs), cell.activation, loss=cell.loss,
            batchnorm=cell.batchnorm, dropout=cell.dropout,
        )  # fmt: skip

    def optimizer_of(self, cell: Cell) -> Optimizer:
        return Optimizer(cell.optimizer, momentum=self.momentum, weight_decay=cell.weight_decay)

    @property
    def blocks_per_cell(self) -> int:
        return -(-self.nets_per_cell // self.nets_per_shard)

    @property
    def n_shards(self) -> int:
        return len(self.cells()) * self.blocks_per_cell

    def shard(self, shard_id: int) -> tuple[int, Cell, int, int]:
        """(cell index, cell, first net, number of nets) of a shard."""
        if not 0 <= shard_id < self.n_shards:
            raise ValueError(f"shard id must be in [0, {self.n_shards}), got {shard_id}")
        cell_index, block = divmod(shard_id, self.blocks_per_cell)
        first = block * self.nets_per_shard
        return (
            cell_index,
            self.cells()[cell_index],
            first,
            min(self.nets_per_shard, self.nets_per_cell - first),
        )

    @property
    def record_every(self) -> int:
        return max(1, self.epochs // HISTORY_POINTS)

    def curve_rows(self) -> np.ndarray:
        """Rows of the training history kept for curves: about CURVE_POINTS, log-spaced."""
        epochs = record_epochs(self.epochs, self.record_every)
        wanted = np.geomspace(1, self.epochs, CURVE_POINTS)
        rows = np.searchsorted(epochs, wanted)
        return np.unique(np.concatenate([[0], rows, [epochs.size - 1]]))

    def curve_epochs(self) -> np.ndarray:
        return record_epochs(self.epochs, self.record_every)[self.curve_rows()]

    # --------------------------------------------------------------------------- identity, I/O

    def to_dict(self) -> dict:
        return {
            key: list(v) if isinstance(v, tuple) else v
            for key, v in asdict(self).items()
            if OPTIONAL_AXES.get(key) != v
        }

    def identity(self) -> dict:
        """The fields that determine the results (everything but backend and name)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    def results_dict(self) -> dict:
        """The fields a sweep's numbers depend on (and its name), as stored in summaries."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_RESULTS}

    def fingerprint(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def n_nets(self) -> int:
        return len(self.cells()) * self.nets_per_cell


FIELD_NAMES = tuple(f.name for f in fields(SweepConfig))


def load_toml(path: str | Path) -> dict:
    """The keys of a sweep TOML file, checked against the config's field names."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"config file {str(path)!r} is a folder; give a TOML file") from None
    except OSError as error:
        raise ValueError(f"cannot read config file {str(path)!r}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} in {path.name}; known keys: {', '.join(FIELD_NAMES)}"
        )
    return data


def make_config(file_values: dict | None, flag_values: dict) -> SweepConfig:
    """A config from a TOML file's values and command-line flags, flags winning."""
    values = dict(file_values or {})
    values.update({k: v for k, v in flag_values.items() if v is not None})
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"unknown sweep setting {unknown[0]!r}; known: {', '.join(FIELD_NAMES)}")
    return SweepConfig(**values)


def config_from_dict(data) -> SweepConfig:
    """The config stored in a sweep's folder: every field must be there (nothing defaulted)."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a {type(data).__name__}, not a sweep config")
    missing = [name for name in FIELD_NAMES if name not in data and name not in OPTIONAL_AXES]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    return make_config(data, {})


def default_out(config: SweepConfig) -> Path:
    return Path("reports") / config.name
