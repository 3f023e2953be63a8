"""One shard of a sweep: train a block of nets of one cell and describe how each one ended.

``run_shard(config, shard_id)`` is pure: the same config and shard id give the same arrays, on any
machine, backend or executor. ``write_shard``/``read_shard`` store them atomically, so a sweep
killed at any moment leaves only whole shards behind.

Statuses, per net (training stops a net once it converges or diverges, see kernels/training.py):

- converged  : every output within the tolerance of its target within the epoch budget
- diverged   : loss or gradient not finite, or loss above 10 times its initial value
- improving  : not converged, but its loss still fell by more than PLATEAU_DROP over the last
               quarter of the budget: a bigger budget may well see it converge
- plateau    : not converged and its loss fell by less than PLATEAU_DROP over the last quarter

and the signature of a net that did not converge: how many outputs are on the right side of 0.5,
how many hidden units are saturated (derivative below SATURATION of its maximum on every sample;
for ReLU that is a dead unit), and how much its parameter norm grew over the second half of the
budget (``weight_growth``). Above GROWTH_FLAG the weights are still growing: with cross-entropy a
net that pushes outputs toward 0/1 grows its weights like log t, without bound (log 10,000 /
log 5,000 = 1.08), while a net that has settled keeps a ratio near 1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from backprop_bench.kernels import (
    Criterion,
    Status,
    backend,
    get_problem,
    init_population,
    numpy_backend,
    regularised,
)
from backprop_bench.kernels.activations import ACTIVATIONS
from backprop_bench.kernels.streams import net_keys

from . import atomic
from .sweep_config import SweepConfig

SHARD_META = ("tag", "shard", "seconds")  # stored with a shard's results, not among them

STATUSES = ("converged", "improving", "plateau", "diverged")
CONVERGED, IMPROVING, PLATEAU, DIVERGED = range(4)
PLATEAU_DROP = 0.01  # relative loss decrease over the last quarter of the budget
SATURATION = 0.01  # fraction of the activation's largest derivative
NORM_FLOOR = 1e-6  # parameter norms below this are treated as collapsed to zero
GROWTH_FLAG = 1.05  # parameter norm at the budget / at half the budget: still growing
MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0}


def _saturated_units(spec, theta, X, result=None) -> np.ndarray:
    """Hidden units per net whose derivative is below SATURATION of its max on every sample
    (with batch norm or dropout: in evaluation mode, at the activation's input)."""
    if spec.regularised:
        trace = regularised.forward(theta, spec, X, training=False,
                                    running_mean=result.running_mean,
                                    running_var=result.running_var)  # fmt: skip
        pairs = list(zip(trace.y, trace.h, strict=True))
    else:
        fwd = numpy_backend.forward(theta, spec, X)
        pairs = list(zip(fwd.z[:-1], fwd.a[1:-1], strict=True))
    derivative = ACTIVATIONS[spec.activation][1]
    limit = SATURATION * MAX_DERIVATIVE[spec.activation]
    count = np.zeros(theta.shape[1], dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        for z, a in pairs:
            flat = (derivative(z, a) < limit).all(axis=0)  # (width, n_nets)
            count += flat.sum(axis=0)
    return count


def _row_at(history, epoch: int) -> int:
    """History row of the first record at or after ``epoch``."""
    return int(np.searchsorted(history.epochs, epoch))


def run_shard(config: SweepConfig, shard_id: int, abort=None) -> dict[str, np.ndarray]:
    """Train shard ``shard_id`` of ``config`` and return one entry per net (and a loss curve).

    ``abort`` is ``train_population``'s flag; a shard whose training was aborted is incomplete
    and must not be stored (``interrupt.interruptible`` re-raises the interrupt instead).

    Returns arrays of shape (n,) for the shard's n nets, and ``curve`` of shape (n_points, n):
    the loss at ``config.curve_epochs()``, a net's last value carried forward once it stopped.
    """
    cell_index, cell, first, n = config.shard(shard_id)
    spec = config.spec(cell)
    problem = get_problem(config.problem)
    theta = init_population(spec, n, config.seed, cell.init, first_net=first)
    result = backend(config.backend).train_population(
        theta,
        spec,
        problem.X,
        problem.Y,
        cell.lr,
        config.epochs,
        optimizer=config.optimizer_of(cell),
        criterion=Criterion(max_error=config.tolerance),
        early_stop=True,
        record_every=config.record_every,
        abort=abort,
        keys=net_keys(config.seed, first, n),  # dropout masks follow the net, like its weights
    )
    # a diverged net's numbers overflow (norms, float32 curves): inf is the honest value there,
    # not a warning
    with np.errstate(all="ignore"):
        return _outcomes(config, cell_index, first, n, spec, problem, result)


def _outcomes(config, cell_index, first, n, spec, problem, result) -> dict[str, np.ndarray]:
    """Per-net outcomes of a trained shard (see run_shard)."""
    history = result.history
    budget = config.epochs
    loss_quarter = history.loss[_row_at(history, budget - budget // 4)]
    with np.errstate(invalid="ignore", divide="ignore"):
        loss_drop = (loss_quarter - result.final_loss) / loss_quarter
        half = history.param_norm[_row_at(history, budget // 2)]
        weight_growth = history.param_norm[-1] / half
    # a net whose parameters collapsed to the origin (a control net at its optimum w = b = 0)
    # has norms made of rounding noise: their ratio is not a number to report
    collapsed = np.minimum(half, history.param_norm[-1]) < NORM_FLOOR
    status = np.where(loss_drop > PLATEAU_DROP, IMPROVING, PLATEAU)
    status = np.where(result.status == Status.CONVERGED, CONVERGED, status)
    status = np.where(result.status == Status.DIVERGED, DIVERGED, status)
    ran_full = result.epochs_trained == budget
    n_outputs = problem.Y.size

    curve = history.loss[config.curve_rows()]
    stopped = np.isnan(curve)
    curve[stopped] = np.broadcast_to(result.final_loss, curve.shape)[stopped]

    return {
        "cell": np.full(n, cell_index, dtype=np.int64),
        "net": np.arange(first, first + n, dtype=np.int64),
        "status": status.astype(np.int8),
        "epochs_to_converge": result.epochs_to_converge,
        "first_full_accuracy": result.first_full_accuracy,
        "epochs_trained": result.epochs_trained,
        "final_loss": result.final_loss,
        "final_accuracy": result.final_accuracy,
        "outputs_right": np.rint(result.final_accuracy * n_outputs).astype(np.int64),
        "saturated_units": _saturated_units(spec, result.theta, problem.X, result),
        "param_norm": np.linalg.norm(result.theta, axis=0),
        "weight_growth": np.where(ran_full & ~collapsed, weight_growth, np.nan),
        "loss_drop": np.where(ran_full, loss_drop, np.nan),
        "curve": curve.astype(np.float32),
    }


def shard_path(directory: Path, shard_id: int) -> Path:
    return Path(directory) / f"{shard_id:06d}.npz"


def write_shard(
    directory: Path, shard_id: int, data: dict[str, np.ndarray], tag: str, seconds: float = 0.0
) -> Path:
    """Write a shard atomically (see atomic.py), with the seconds its training took.

    The seconds are stored beside the results, not among them: a sweep's training time is the
    sum over its shards, whichever runs trained them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(shard_path(directory, shard_id)) as tmp, tmp.open("wb") as fh:
        np.savez(fh, tag=np.array(tag), shard=np.array(shard_id), seconds=np.array(seconds),
                 **data)  # fmt: skip
    return shard_path(directory, shard_id)


def _open_shard(directory: Path, shard_id: int, tag: str):
    path = shard_path(directory, shard_id)
    with path.open("rb") as fh, np.load(fh) as stored:
        if str(stored["tag"]) != tag or int(stored["shard"]) != shard_id:
            return None
        return {key: stored[key] for key in stored.files}


def read_shard(directory: Path, shard_id: int, tag: str) -> dict[str, np.ndarray] | None:
    """A stored shard, or None if it is missing, unreadable or from another sweep."""
    try:
        stored = _open_shard(directory, shard_id, tag)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if stored is None:
        return None
    return {key: value for key, value in stored.items() if key not in SHARD_META}


def shard_seconds(directory: Path, shard_id: int) -> float:
    """Training seconds stored with a shard (0 for a shard stored without them)."""
    try:
        with shard_path(directory, shard_id).open("rb") as fh, np.load(fh) as stored:
            return float(stored["seconds"]) if "seconds" in stored.files else 0.0
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0.0
