"""What population training takes and returns, shared by both backends.

Training is gradient descent on a shared dataset, all nets at once. Each epoch a net
(1) runs forward, (2) is checked against the stopping rules, (3) runs backward and (4) steps its
optimizer: once on the whole set (full batch, the default), or once per run of ``batch_size``
patterns in the net's own order (``schedules.py``); (1)-(3) always see the whole set. So
"converged at epoch e" means the criterion held after e epochs of updates (e full-batch steps),
and the final statistics of a net describe the parameters it ends with.

Stopping rules, per net:
- diverged: its loss or gradient is not finite, or its loss exceeds ``divergence_factor`` times
  its loss at epoch 0. Training stops for that net at once, so one exploding net never spends
  time or produces warnings, and never touches another net's numbers.
- converged: every output is within ``max_error`` of its target (the 40-20-40 rule of the classic
  backprop benchmarks with the default 0.4) and, if ``loss_below`` is set, the loss is below it.

Accuracy counts outputs whose logit is on the target's side of 0 by more than DECISION_MARGIN.
  With ``early_stop`` the net stops there; otherwise it trains on and keeps the first such epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from . import values
from .checks import check_data, check_epochs, check_learning_rate, check_theta
from .spec import NetSpec

if TYPE_CHECKING:  # failure.py builds on this module
    from .failure import Analysis

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
TOTAL_ERROR_RULES = ("loss_below", "rms_below", "tss_below")
# An output is right when its logit is on the target's side of 0 by more than this. Within it the
# output is 0.5 up to rounding (a net at the symmetric optimum w = b = 0): undecided, not right,
# so that accuracy never depends on the last bits of a backend's arithmetic.
DECISION_MARGIN = 1e-9


class Status(IntEnum):
    NOT_CONVERGED = 0
    CONVERGED = 1
    DIVERGED = 2


def _positive_finite(name: str, value) -> float:
    value = values.number(name, value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class Optimizer:
    """An optimizer and its hyperparameters (the learning rate is per net and passed apart).

    sgd      : theta -= lr g
    momentum : v = momentum v - lr g;  theta += v            (Rumelhart, Hinton & Williams 1986)
    adam     : m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
               theta -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (Kingma & Ba 2015)
    adamw    : theta -= lr weight_decay theta, then adam's step with the loss's gradient alone
               (decoupled weight decay, Loshchilov & Hutter 2019)

    weight_decay : L2 penalty ½ weight_decay |theta|² of every parameter (biases and batch norm's
                   too). For sgd, momentum and adam it is coupled: ``g = dL/dtheta +
                   weight_decay theta`` before the step; for adamw it is decoupled (above). The
                   gradient norms a training run reports are of the loss alone.
    """

    name: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.name!r}; choose one of: {', '.join(OPTIMIZERS)}"
            )
        for name in ("momentum", "beta1", "beta2"):
            value = values.number(name, getattr(self, name))
            if not (0.0 <= value < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "eps", _positive_finite("eps", self.eps))
        decay = values.number("weight_decay", self.weight_decay)
        if not (np.isfinite(decay) and decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative finite number, got {decay!r}")
        object.__setattr__(self, "weight_decay", decay)

    @property
    def code(self) -> int:
        return OPTIMIZERS.index(self.name)

    @property
    def n_state(self) -> int:
        """Arrays of theta's shape the optimizer keeps between steps."""
        return {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}[self.name]

    def describe(self) -> str:
        decay = f", weight decay {self.weight_decay:g}" if self.weight_decay else ""
        if self.name == "momentum":
            return f"momentum {self.momentum:g}" + decay
        if self.name in ("adam", "adamw"):
            return f"{self.name} (b1 {self.beta1:g}, b2 {self.beta2:g}, eps {self.eps:g})" + decay
        return "sgd" + decay


@dataclass(frozen=True)
class Criterion:
    """When a net counts as converged or diverged (see the module docstring)."""

    max_error: float | None = 0.4
    loss_below: float | None = None
    divergence_factor: float = 10.0
    rms_below: float | None = None
    tss_below: float | None = None

    def __post_init__(self):
        totals = [name for name in TOTAL_ERROR_RULES if getattr(self, name) is not None]
        if self.max_error is None and not totals:
            raise ValueError(
                "a criterion needs max_error, or one of loss_below, rms_below, tss_below, or both"
            )
        if len(totals) > 1:
            raise ValueError(
                f"{' and '.join(totals)} both bound the total error over the patterns; give one "
                "of them (alone or with max_error)"
            )
        for name in ("max_error", *TOTAL_ERROR_RULES):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _positive_finite(name, getattr(self, name)))
        factor = _positive_finite("divergence_factor", self.divergence_factor)
        if factor <= 1:
            raise ValueError(f"divergence_factor must be greater than 1, got {factor!r}")
        object.__setattr__(self, "divergence_factor", factor)

    def describe(self) -> str:
        parts = []
        if self.max_error is not None:
            parts.append(f"every output within {self.max_error:g} of its target")
        if self.loss_below is not None:
            parts.append(f"loss below {self.loss_below:g}")
        if self.rms_below is not None:
            parts.append(f"RMS error below {self.rms_below:g}")
        if self.tss_below is not None:
            parts.append(f"total sum of squares below {self.tss_below:g}")
        return " and ".join(parts)

    def squared_error_limit(self, n_values: int) -> float:
        """The bound on E = sum (a - y)^2 that ``rms_below`` or ``tss_below`` sets (inf if
        neither); ``n_values`` = n_samples n_outputs."""
        if self.tss_below is not None:
            return self.tss_below
        if self.rms_below is not None:
            return self.rms_below * self.rms_below * n_values
        return math.inf


@dataclass
class History:
    """Statistics every ``record_every`` epochs; NaN where a net had already stopped.

    epochs    : int64 array of shape (n_records,)
    loss, accuracy, grad_norm, param_norm : arrays of shape (n_records, n_nets); param_norm is
    the Euclidean norm of the net's parameters (weights growing without bound show up there)
    """

    epochs: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    grad_norm: np.ndarray
    param_norm: np.ndarray


@dataclass
class TrainResult:
    """Per-net outcomes of population training; every array has shape (n_nets,).

    theta               : final parameters, shape (n_params, n_nets)
    status              : int8, a :class:`Status` per net
    epochs_to_converge  : first epoch at which the criterion held, -1 if never
    first_full_accuracy : first epoch with 100% thresholded accuracy, -1 if never
    epochs_trained      : optimizer steps taken (the epoch at which the net stopped)
    final_loss, final_accuracy, final_grad_norm : at the final parameters
    analysis            : how each net ended (final outputs, failure signature), a
                          ``failure.Analysis``; None for a run stopped by ``abort``
    """

    theta: np.ndarray
    status: np.ndarray
    epochs_to_converge: np.ndarray
    first_full_accuracy: np.ndarray
    epochs_trained: np.ndarray
    final_loss: np.ndarray
    final_accuracy: np.ndarray
    final_grad_norm: np.ndarray
    history: History | None = field(default=None)
    analysis: Analysis | None = field(default=None)
    # with batch norm: the running mean and variance of every hidden unit (units of all hidden
    # layers in order), shape (n_hidden_units, n_nets), for evaluation mode; None without
    running_mean: np.ndarray | None = field(default=None)
    running_var: np.ndarray | None = field(default=None)


HISTORY_BYTES = 2**40  # a history beyond a TiB is refused before NumPy tries to allocate it


def record_epochs(n_epochs: int, record_every: int) -> np.ndarray:
    """Epochs at which history is recorded: 0, every ``record_every``, and the last epoch."""
    if record_every <= 0:
        return np.zeros(0, dtype=np.int64)
    epochs = np.arange(0, n_epochs + 1, record_every, dtype=np.int64)
    if epochs[-1] != n_epochs:
        epochs = np.append(epochs, n_epochs)
    return epochs


def check_record_every(record_every) -> int:
    if isinstance(record_every, bool) or not isinstance(record_every, int | np.integer):
        raise ValueError(f"record_every must be a non-negative integer, got {record_every!r}")
    if record_every < 0:
        raise ValueError(f"record_every must be a non-negative integer, got {record_every!r}")
    return int(record_every)


def check_training_options(optimizer, criterion) -> None:
    """The optimizer and criterion of ``train_population``: objects, not names."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an Optimizer, e.g. Optimizer('adam'), got {optimizer!r}"
        )
    if not isinstance(criterion, Criterion):
        raise TypeError(
            f"criterion must be a Criterion, e.g. Criterion(max_error=0.4), got {criterion!r}"
        )


def check_abort(abort):
    """``abort``: None, or a writable int8 array of shape (1,) that another thread may set to 1
    to stop training early (the nets keep the state they reached; the caller discards it)."""
    if abort is None:
        return np.zeros(1, dtype=np.int8)
    if not (isinstance(abort, np.ndarray) and abort.shape == (1,) and abort.dtype == np.int8):
        raise TypeError(f"abort must be None or an int8 array of shape (1,), got {abort!r}")
    return abort


def start_training(theta, spec: NetSpec, X, Y, learning_rate, n_epochs, record_every):
    """Validate the arguments of ``train_population`` and allocate its result.

    Returns ``(result, X, Y, learning_rate, n_epochs)``. ``result.theta`` is a copy of the initial
    parameters for the backend to train in place; outcomes hold their "not yet known" values
    (-1 epochs, NaN statistics); the history has one NaN row per record epoch (possibly none).
    """
    theta = check_theta(theta, spec).copy()
    X, Y = check_data(X, Y, spec, theta.dtype)
    n_nets = theta.shape[1]
    learning_rate = check_learning_rate(learning_rate, n_nets, theta.dtype)
    n_epochs = check_epochs(n_epochs)
    record_every = check_record_every(record_every)
    records = 0 if record_every <= 0 else n_epochs // record_every + 2
    needed = 4 * records * n_nets * theta.itemsize
    if needed > HISTORY_BYTES:  # NumPy's "Unable to allocate 7.28 TiB" named no fix
        raise MemoryError(
            f"a history of {records:,} records for {n_nets:,} nets needs "
            f"{needed / 2**30:,.1f} GiB; record less often (record_every) or train fewer nets"
        )
    epochs = record_epochs(n_epochs, record_every)

    def nan(*shape):
        return np.full(shape, np.nan, dtype=theta.dtype)

    result = TrainResult(
        theta=theta,
        status=np.full(n_nets, Status.NOT_CONVERGED, dtype=np.int8),
        epochs_to_converge=np.full(n_nets, -1, dtype=np.int64),
        first_full_accuracy=np.full(n_nets, -1, dtype=np.int64),
        epochs_trained=np.zeros(n_nets, dtype=np.int64),
        final_loss=nan(n_nets),
        final_accuracy=nan(n_nets),
        final_grad_norm=nan(n_nets),
        history=History(epochs, *(nan(epochs.size, n_nets) for _ in range(4))),
    )
    return result, X, Y, learning_rate, n_epochs
