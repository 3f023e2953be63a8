"""One shard of a sweep: train a block of nets of one cell and describe how each one ended.

``run_shard(config, shard_id)`` is pure: the same config and shard id give the same arrays, on any
machine, backend or executor. ``write_shard``/``read_shard`` store them atomically, so a sweep
killed at any moment leaves only whole shards behind.

Statuses, per net, as ``kernels.failure`` defines them (training stops a net once it converges
or diverges, see kernels/training.py): converged, improving, plateau, diverged, and undetermined
(a budget under 4 epochs leaves no last quarter to judge). Each net also keeps its final outputs
and the failure signature of ``kernels.failure``: outputs right, outputs near 0.5, saturated
units (flat on at least half of the patterns), flat units (flat on every pattern: the rule the
report's "saturated unit" column has always used, kept so that reports stay comparable),
parameter norm and its growth over the second half of the budget, and the loss's fall over the
last quarter.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from backprop_bench.kernels import (
    backend,
    failure,
    get_problem,
    init_population,
    streams,
)

from . import atomic
from .sweep_config import SweepConfig

SHARD_META = ("tag", "shard", "seconds")  # stored with a shard's results, not among them

STATUSES = failure.OUTCOMES
CONVERGED, IMPROVING, PLATEAU, DIVERGED, UNDETERMINED = range(len(STATUSES))
PLATEAU_DROP = failure.PLATEAU_DROP
SATURATION = failure.SATURATION
SATURATED_SHARE = failure.SATURATED_SHARE
NEAR_HALF = failure.NEAR_HALF
GROWTH_FLAG = failure.GROWTH_FLAG


def run_shard(config: SweepConfig, shard_id: int, abort=None) -> dict[str, np.ndarray]:
    """Train shard ``shard_id`` of ``config`` and return one entry per net (and a loss curve).

    ``abort`` is ``train_population``'s flag; a shard whose training was aborted is incomplete
    and must not be stored (``interrupt.interruptible`` re-raises the interrupt instead).

    Returns arrays of shape (n,) for the shard's n nets, and ``curve`` of shape (n_points, n):
    the loss at ``config.curve_epochs()``, a net's last value carried forward once it stopped.
    """
    cell_index, cell, first, n = config.shard(shard_id)
    spec = config.spec(cell)
    problem = get_problem(cell.problem)
    theta = init_population(spec, n, config.seed, cell.init, first_net=first)
    result = backend(config.backend).train_population(
        theta,
        spec,
        problem.X,
        problem.Y,
        cell.lr,
        config.epochs,
        optimizer=config.optimizer_of(cell),
        criterion=config.criterion,
        early_stop=True,
        record_every=config.record_every,
        abort=abort,
        batch_size=config.batch_size,
        keys=streams.net_keys(config.seed, first, n),  # pattern orders and dropout masks
    )
    # a diverged net's numbers overflow (norms, float32 curves): inf is the honest value there,
    # not a warning
    with np.errstate(all="ignore"):
        return _outcomes(config, cell_index, first, n, spec, problem, result)


def _outcomes(config, cell_index, first, n, spec, problem, result) -> dict[str, np.ndarray]:
    """Per-net outcomes of a trained shard (see run_shard)."""
    history, analysis = result.history, result.analysis
    curve = history.loss[config.curve_rows()]
    stopped = np.isnan(curve)
    curve[stopped] = np.broadcast_to(result.final_loss, curve.shape)[stopped]
    # final outputs in sample order, padded with NaN to the sweep's largest problem
    outputs = np.full((n, config.n_values), np.nan)
    outputs[:, : problem.Y.size] = analysis.outputs.reshape(problem.Y.size, n).T

    return {
        "cell": np.full(n, cell_index, dtype=np.int64),
        "net": np.arange(first, first + n, dtype=np.int64),
        "status": analysis.outcome,
        "epochs_to_converge": result.epochs_to_converge,
        "first_full_accuracy": result.first_full_accuracy,
        "epochs_trained": result.epochs_trained,
        "final_loss": result.final_loss,
        "final_accuracy": result.final_accuracy,
        "outputs_right": analysis.outputs_right,
        "saturated_units": analysis.saturated_units,
        "flat_units": analysis.flat_units,
        "outputs_near_half": analysis.outputs_near_half,
        "param_norm": analysis.param_norm,
        "weight_growth": analysis.weight_growth,
        "loss_drop": analysis.loss_drop,
        "outputs": outputs,
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
