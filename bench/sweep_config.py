"""What a convergence sweep is: a grid of cells, N seeded nets per cell, cut into shards.

A cell is one setting of (problem, hidden width, init, activation, loss, optimizer, learning
rate), and, where a sweep asks for them, of batch norm, dropout rate and weight decay; the
control cells have no hidden layer (so neither batch norm nor dropout). A hidden width is a
number of units or a multiple of the problem's inputs (``2n``: an n-2n-1 net for n-bit parity),
so one sweep covers a series of problems. Net ``k`` of every cell that shares a net shape and
init starts from the same weights (net ``k`` of the sweep's seed; batch norm adds parameters
after them and leaves them as they are) and draws the same dropout masks and pattern orders, so
cells that differ only in learning rate, optimizer, activation, loss, batch norm, dropout rate
or weight decay are paired comparisons (common random numbers).

A shard is (cell, block of ``nets_per_shard`` nets). Its result is a pure function of the config
and the shard id, which is what lets a sweep resume after a kill and lets any executor run shards.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES, REDUCTIONS
from backprop_bench.kernels.training import OPTIMIZERS, record_epochs

from . import schedule_options, stopping
from .schedule_options import LATER_DEFAULTS

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
# Fields added after sweeps were first stored, with the value every earlier sweep had. A config
# leaves them out of its stored form while they hold that value, so the folders, fingerprints and
# summaries of earlier sweeps stay valid and the same.
LATER_FIELDS = {"reduction": "mean", "loss_below": None, "rms_below": None, "tss_below": None,
                **LATER_DEFAULTS, **OPTIONAL_AXES}
STOPPING_RULES = ("tolerance", "loss_below", "rms_below", "tss_below")
WIDTH_RULE = re.compile(r"(\d*)n")


def _sweep_name(name) -> str:
    if not isinstance(name, str) or not name.strip() or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a non-empty name without '/', got {name!r}")
    return name


def _init_name(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"init must be a scheme name such as tutorial or uniform:1, got {text!r}")
    return str(parse_init(text))


def _hidden_width(width) -> int | str:
    """A hidden width: a number of units, or ``Kn`` (K times the problem's inputs, ``n`` = 1n)."""
    if isinstance(width, str):
        match = WIDTH_RULE.fullmatch(width.strip().lower())
        if match is None or match.group(1).startswith("0"):
            raise ValueError(
                f"hidden sizes must be numbers of units such as 4, or multiples of the problem's "
                f"inputs such as n or 2n, got {width!r}"
            )
        return f"{match.group(1)}n" if match.group(1) not in ("", "1") else "n"
    try:
        return values.integer("hidden sizes", width, 1, values.MAX_WIDTH)
    except ValueError as error:
        raise ValueError(
            f"{error} (the no-hidden-layer control is added by --control, or control = true in "
            "a config file)"
        ) from None


def hidden_units(width: int | str, n_inputs: int) -> int:
    """The units a hidden width stands for on a problem with ``n_inputs`` inputs."""
    if isinstance(width, str):
        factor = int(width[:-1] or 1) * n_inputs
        return values.integer(f"hidden size {width} ({n_inputs} inputs)", factor, 1,
                              values.MAX_WIDTH)  # fmt: skip
    return width


def _problem_names(problem) -> tuple[str, ...]:
    check = lambda v: get_problem(values.name("problem", v)).name  # noqa: E731
    if isinstance(problem, list | tuple):
        return values.grid("problem", problem, check, "list")
    return (check(problem),)


def _threshold(name: str, value):
    """A stopping threshold, or None (also written "none") for a rule not used."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if name == "tolerance":
        return values.tolerance(name, value)
    return values.real(name, value)


@dataclass(frozen=True)
class Cell:
    """One grid cell; ``hidden == 0`` is the no-hidden-layer control. ``hidden`` is the number
    of units, ``width`` the grid's value it comes from (the same number, or a rule like 2n)."""

    hidden: int
    init: str
    activation: str
    loss: str
    optimizer: str
    lr: float
    problem: str = "xor"
    width: int | str = 0
    batchnorm: bool = False
    dropout: float = 0.0
    weight_decay: float = 0.0

    def label(self) -> str:
        net = "no hidden layer" if self.hidden == 0 else f"hidden {self.hidden}"
        return (
            f"{self.problem}, {net}, {self.init}, {self.activation}, {self.loss}, "
            f"{self.optimizer}, lr {self.lr:g}"
            + (", batch norm" if self.batchnorm else "")
            + (f", dropout {self.dropout:g}" if self.dropout else "")
            + (f", weight decay {self.weight_decay:g}" if self.weight_decay else "")
        )


@dataclass(frozen=True)
class SweepConfig:
    """A sweep. Tuples are grid axes; every combination is a cell."""

    name: str = "default"
    problem: str | tuple[str, ...] = "xor"
    lr: tuple[float, ...] = DEFAULT_LRS
    init: tuple[str, ...] = DEFAULT_INITS
    hidden: tuple[int | str, ...] = (2, 3, 4, 8)
    activation: tuple[str, ...] = ("sigmoid",)
    loss: tuple[str, ...] = ("bce",)
    optimizer: tuple[str, ...] = ("sgd",)
    momentum: float = 0.9
    nets_per_cell: int = 1000
    epochs: int = 10_000
    seed: int = 0
    tolerance: float | None = 0.4
    control: bool = True
    nets_per_shard: int = 1000
    backend: str = "numba"
    reduction: str = "mean"
    loss_below: float | None = None
    rms_below: float | None = None
    tss_below: float | None = None
    # nets with hidden layers get shortcut connections (the control cells have none to add);
    # batch_size None is full batch, 1 per pattern, k minibatches of k (kernels/schedules.py)
    shortcut: bool = False
    batch_size: int | None = None
    batchnorm: tuple[bool, ...] = (False,)
    dropout: tuple[float, ...] = (0.0,)
    weight_decay: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        # Every value is checked by type and range, and names normalised, before any is used:
        # two spellings of one init are one value, and the duplicate check sees them as such.
        def setting(field, value):
            object.__setattr__(self, field, value)

        setting("name", _sweep_name(self.name))
        problems = _problem_names(self.problem)
        setting("problem", problems[0] if len(problems) == 1 else problems)
        setting("lr", values.grid("lr", self.lr, lambda v: values.real("lr", v), "grid"))
        setting("init", values.grid("init", self.init, _init_name, "grid"))
        setting("hidden", values.grid("hidden", self.hidden, _hidden_width, "grid"))
        for axis, allowed in (("activation", HIDDEN_ACTIVATIONS), ("loss", LOSSES),
                              ("optimizer", OPTIMIZERS)):  # fmt: skip
            check = lambda v, axis=axis, allowed=allowed: values.name(axis, v, allowed)  # noqa: E731
            setting(axis, values.grid(axis, getattr(self, axis), check, "grid"))
        setting("momentum", values.real("momentum", self.momentum, 0.0, 1.0, low_open=False,
                                        high_open=True))  # fmt: skip
        for rule in STOPPING_RULES:
            setting(rule, _threshold(rule, getattr(self, rule)))
        for field in ("nets_per_cell", "nets_per_shard"):
            setting(field, values.integer(field.replace("_", "-"), getattr(self, field), 1))
        setting("epochs", values.integer("epochs", self.epochs, 0))
        setting("reduction", values.name("reduction", self.reduction, REDUCTIONS))
        setting("seed", values.integer("seed", self.seed))
        setting("control", values.flag("control", self.control))
        setting("backend", values.name("backend", self.backend, BACKENDS))
        setting("shortcut", schedule_options.shortcut(self.shortcut))
        setting("batch_size", schedule_options.batch_size(self.batch_size))
        self.criterion  # noqa: B018
        for problem in problems:  # every width fits every problem, each width once
            n_inputs = get_problem(problem).n_inputs
            seen = {}
            for width in self.hidden:
                units = hidden_units(width, n_inputs)
                if units in seen:
                    raise ValueError(
                        f"the hidden grid repeats a value on {problem}: {seen[units]} and {width} "
                        f"are both {units} units ({n_inputs} inputs); give each once"
                    )
                seen[units] = width
        axes = {
            "batchnorm": lambda v: values.flag("batchnorm", v),
            "dropout": lambda v: values.real("dropout", v, 0.0, 1.0, low_open=False,
                                             high_open=True),  # fmt: skip
            "weight_decay": lambda v: values.real("weight_decay", v, 0.0, low_open=False),
        }
        for axis, check in axes.items():
            setting(axis, values.grid(axis, getattr(self, axis), check, "grid"))
        regularised = any(self.batchnorm) or any(self.dropout) or any(self.weight_decay)
        if self.shortcut and (any(self.batchnorm) or any(self.dropout)):
            raise ValueError("shortcut connections with batch norm or dropout are not supported; "
                             "use one or the other")  # fmt: skip
        if regularised and self.batch_size is not None:
            raise ValueError("batch norm, dropout and weight decay train with full-batch updates "
                             "only; leave batch_size at full")  # fmt: skip
        if regularised and (self.rms_below is not None or self.tss_below is not None):
            raise ValueError("the RMS and TSS stopping rules are not available with batch norm, "
                             "dropout or weight decay; use tolerance or loss_below")  # fmt: skip
        for name in self.optimizer:
            Optimizer(name, momentum=self.momentum)

    # ------------------------------------------------------------------------------- the grid

    @property
    def problems(self) -> tuple[str, ...]:
        return self.problem if isinstance(self.problem, tuple) else (self.problem,)

    @property
    def criterion(self) -> Criterion:
        """When a net has converged: every stopping rule the sweep sets."""
        return stopping.criterion(self.tolerance, self.loss_below, self.rms_below,
                                  self.tss_below)  # fmt: skip

    def cells(self) -> list[Cell]:
        """Per problem: control cells first (no hidden layer, first init, so neither batch norm
        nor dropout), then the grid, lr varying fastest."""
        cells = []
        for problem in self.problems:
            n_inputs = get_problem(problem).n_inputs
            if self.control:
                cells += [
                    Cell(0, self.init[0], activation, loss, optimizer, lr, problem, 0,
                         weight_decay=decay)  # fmt: skip
                    for activation in self.activation
                    for loss in self.loss
                    for optimizer in self.optimizer
                    for decay in self.weight_decay
                    for lr in self.lr
                ]
            cells += [
                Cell(hidden_units(width, n_inputs), init, activation, loss, optimizer, lr,
                     problem, width, batchnorm, dropout, decay)  # fmt: skip
                for width in self.hidden
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
        problem = get_problem(cell.problem)
        hidden = () if cell.hidden == 0 else (cell.hidden,)
        return NetSpec((problem.n_inputs, *hidden, problem.n_outputs), cell.activation,
                       loss=cell.loss, reduction=self.reduction,
                       shortcut=self.shortcut and cell.hidden > 0,
                       batchnorm=cell.batchnorm, dropout=cell.dropout)  # fmt: skip

    @property
    def n_values(self) -> int:
        """Outputs per net of the largest problem (samples times outputs)."""
        return max(get_problem(problem).Y.size for problem in self.problems)

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
        if self.epochs == 0:
            return np.zeros(1, dtype=np.int64)
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
            if not (key in LATER_FIELDS and v == LATER_FIELDS[key])
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
    config = SweepConfig(**values)
    # a file's value that a flag replaces is checked too: the file is wrong all the same (a TOML
    # `lr = true` beside --lr 1 ran, and failed on the next run without the flag)
    for key in sorted(k for k in file_values or {} if flag_values.get(k) is not None):
        try:
            SweepConfig(**{**values, key: file_values[key]})
        except ValueError as error:
            raise ValueError(f"{error} (the config file's {key}, which a flag replaces here)") \
                from None
    return config


def config_from_dict(data) -> SweepConfig:
    """The config stored in a sweep's folder: every field must be there (nothing defaulted)."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a {type(data).__name__}, not a sweep config")
    missing = [name for name in FIELD_NAMES if name not in data and name not in LATER_FIELDS]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    return make_config(data, {})


def default_out(config: SweepConfig) -> Path:
    return Path("reports") / config.name
