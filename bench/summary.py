"""From per-net results to per-cell statistics (``summary.json``), and the stored result files.

``summarize`` is pure: the same results give the same summary, floats rounded to SIG_DIGITS
significant digits so that the numbers a report shows do not depend on the backend's last bits.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import platform
import subprocess
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import numpy as np
from backprop_bench.kernels import get_problem

from . import atomic
from . import shard as sh
from .stats import paired, survival, wilson
from .sweep import SweepResults
from .sweep_config import OPTIONAL_AXES, Cell, SweepConfig

SIG_DIGITS = 6
ABS_DIGITS = 9
QUANTILES = (10, 25, 50, 75, 90)
RESULT_COLUMNS = (
    "cell",
    "net",
    "hidden",
    "init",
    "activation",
    "loss",
    "optimizer",
    "lr",
    "status",
    "epochs_to_converge",
    "first_full_accuracy",
    "epochs_trained",
    "final_loss",
    "final_accuracy",
    "outputs_right",
    "saturated_units",
    "param_norm",
    "weight_growth",
    "loss_drop",
    "problem",
    "flat_units",
    "outputs_near_half",
    "outputs",
)


def rounded(value):
    """A JSON-ready number: SIG_DIGITS significant digits; None for NaN or None."""
    if value is None:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return [rounded(v) for v in value]
    value = float(value)
    if not np.isfinite(value):
        return None
    return float(f"{value:.{SIG_DIGITS}g}")


def _cell_summary(config: SweepConfig, cell: Cell, index: int, rows, curve, curve_epochs) -> dict:
    status = rows["status"]
    n = status.size
    counts = {name: int((status == code).sum()) for code, name in enumerate(sh.STATUSES)}
    km = survival(rows["epochs_to_converge"], config.epochs, curve_epochs)
    failed = status != sh.CONVERGED
    full = rows["first_full_accuracy"][rows["first_full_accuracy"] >= 0]
    n_outputs = get_problem(cell.problem).Y.size
    ran_full = failed & np.isfinite(rows["weight_growth"])

    def share(column):
        return rounded((rows[column][failed] > 0).mean()) if failed.any() else None

    return {
        "index": index,
        "problem": cell.problem,
        "hidden": cell.width,
        "hidden_units": cell.hidden,
        "init": cell.init,
        "activation": cell.activation,
        "loss": cell.loss,
        "optimizer": cell.optimizer,
        "lr": cell.lr,
        # the optional axes, only in sweeps that have them (see sweep_config.OPTIONAL_AXES)
        **{axis: getattr(cell, axis) for axis in OPTIONAL_AXES if axis in config.to_dict()},
        "n": n,
        "counts": counts,
        "convergence": rounded(wilson(counts["converged"], n)),
        "divergence": rounded(wilson(counts["diverged"], n)),
        "plateau": rounded(wilson(counts["plateau"], n)),
        "improving": rounded(wilson(counts["improving"], n)),
        "median_epochs": km["median"],
        "median_epochs_ci": km["median_ci"],
        "epoch_percentiles": km["quantiles"],
        "epoch_percentiles_ci": km["quantiles_ci"],
        "median_first_full_accuracy": rounded(np.median(full)) if full.size else None,
        "survival": rounded(km["sf"]),
        "loss_quantiles": {str(q): rounded(np.percentile(curve, q, axis=1)) for q in QUANTILES},
        "failed": {
            "n": int(failed.sum()),
            # (the name is older than its meaning: the failed nets whose weight growth was
            # measured, that is, that ran the whole budget with norms above failure.NORM_FLOOR)
            "n_full_budget": int(ran_full.sum()),
            "outputs_right": np.bincount(
                rows["outputs_right"][failed], minlength=n_outputs + 1
            ).tolist(),
            "with_saturated_units": share("saturated_units"),
            "with_flat_units": share("flat_units"),
            "with_outputs_near_half": share("outputs_near_half"),
            "weights_growing": rounded((rows["weight_growth"][ran_full] > sh.GROWTH_FLAG).mean())
            if ran_full.any()
            else None,
        },
    }


def _pairs(config: SweepConfig, cells: list[Cell]) -> list[tuple[str, int, int]]:
    """Cells that differ only in learning rate (adjacent rates) or optimizer (first vs others)."""
    index = {cell: i for i, cell in enumerate(cells)}
    pairs = []
    for cell in cells:
        if cell.lr == config.lr[0]:
            rates = sorted(config.lr)
            for lo, hi in pairwise(rates):
                a = index[Cell(**{**cell.__dict__, "lr": lo})]
                b = index[Cell(**{**cell.__dict__, "lr": hi})]
                pairs.append(("lr", a, b))
        if cell.optimizer == config.optimizer[0]:
            for other in config.optimizer[1:]:
                pairs.append(
                    ("optimizer", index[cell], index[Cell(**{**cell.__dict__, "optimizer": other})])
                )
        for axis in OPTIONAL_AXES:  # the first value of the axis against each other one
            grid = getattr(config, axis)
            if getattr(cell, axis) != grid[0]:
                continue
            for other in grid[1:]:
                partner = Cell(**{**cell.__dict__, axis: other})
                if partner in index:  # control cells have neither batch norm nor dropout
                    pairs.append((axis, index[cell], index[partner]))
    return pairs


def summarize(results: SweepResults) -> dict:
    """Per-cell statistics and paired comparisons of a finished sweep."""
    # a diverged net's loss may be inf: its quantiles are then inf or NaN (stored as null)
    with np.errstate(all="ignore"):
        return _summarize(results)


def _summarize(results: SweepResults) -> dict:
    config = results.config
    cells = config.cells()
    nets = results.nets
    curve_epochs = results.epochs
    per_cell = config.nets_per_cell
    summaries = []
    for i, cell in enumerate(cells):
        rows = {key: column[i * per_cell : (i + 1) * per_cell] for key, column in nets.items()}
        summaries.append(_cell_summary(config, cell, i, rows, results.curves[i], curve_epochs))
    comparisons = []
    for axis, a, b in _pairs(config, cells):
        rows_a = slice(a * per_cell, (a + 1) * per_cell)
        rows_b = slice(b * per_cell, (b + 1) * per_cell)
        conv = nets["status"] == sh.CONVERGED
        stats = paired(
            conv[rows_a],
            conv[rows_b],
            nets["epochs_to_converge"][rows_a],
            nets["epochs_to_converge"][rows_b],
        )
        comparisons.append({"axis": axis, "a": a, "b": b, **rounded_dict(stats)})
    return {
        "sweep": config.results_dict(),
        "n_cells": len(cells),
        "n_nets": int(nets["status"].size),
        "definitions": {
            "converged": config.criterion.describe(),
            "divergence_factor": config.criterion.divergence_factor,
            "plateau_drop": sh.PLATEAU_DROP,
            "saturation": sh.SATURATION,
            "saturated_share": sh.SATURATED_SHARE,
            "near_half": sh.NEAR_HALF,
            "growth_flag": sh.GROWTH_FLAG,
            "statuses": list(sh.STATUSES),
        },
        "curve_epochs": curve_epochs.tolist(),
        "cells": summaries,
        "paired": comparisons,
    }


def rounded_dict(values: dict) -> dict:
    return {k: (rounded(v) if isinstance(v, float) else v) for k, v in values.items()}


# ------------------------------------------------------------------------------ stored results


def write_json(path: Path, document: dict) -> None:
    atomic.write_text(path, json.dumps(document, indent=1) + "\n")


def net_rows(cells: list[Cell], nets: dict[str, np.ndarray]) -> list[list[str]]:
    """One row of text per net, as in results.csv.gz (``nets`` as returned by a shard)."""
    rows = []
    for row in range(nets["status"].size):
        cell = cells[nets["cell"][row]]
        rows.append([
            str(nets["cell"][row]), str(nets["net"][row]), str(cell.hidden), cell.init,
            cell.activation, cell.loss, cell.optimizer, f"{cell.lr:g}",
            sh.STATUSES[nets["status"][row]], str(nets["epochs_to_converge"][row]),
            str(nets["first_full_accuracy"][row]), str(nets["epochs_trained"][row]),
            _g(nets["final_loss"][row]), _g(nets["final_accuracy"][row]),
            str(nets["outputs_right"][row]), str(nets["saturated_units"][row]),
            _g(nets["param_norm"][row]), _g(nets["weight_growth"][row]), _g(nets["loss_drop"][row]),
            cell.problem, str(nets["flat_units"][row]), str(nets["outputs_near_half"][row]),
            " ".join(_g(v) for v in nets["outputs"][row] if np.isfinite(v)),
        ])  # fmt: skip
    return rows


def results_csv(results: SweepResults) -> bytes:
    """Every net as a row of a gzip-compressed CSV (byte-identical for identical results); the
    optional axes a sweep has come last, one column each."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    cells = results.config.cells()
    axes = [axis for axis in OPTIONAL_AXES if axis in results.config.to_dict()]
    writer.writerow([*RESULT_COLUMNS, *axes])
    for row, cell_index in zip(net_rows(cells, results.nets), results.nets["cell"], strict=True):
        cell = cells[cell_index]
        writer.writerow([*row, *(f"{getattr(cell, axis):g}" for axis in axes)])
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as fh:
        fh.write(text.getvalue().encode())
    return buffer.getvalue()


def _g(value) -> str:
    """A per-net float for the CSV. The backends agree to ~1e-13 on these O(1) quantities, so
    values below ABS_DIGITS decimals are rounding noise (a control net at its optimum w = b = 0
    has a parameter norm of ~1e-12): rounding them away makes the file the same for any backend.
    """
    if not np.isfinite(value):
        return ""
    return f"{round(float(value), ABS_DIGITS) + 0.0:.{SIG_DIGITS}g}"  # + 0.0 turns -0.0 into 0


def read_results_csv(path: Path) -> list[list[str]]:
    """The rows of a results.csv.gz, header first."""
    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.reader(fh))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def meta(
    config: SweepConfig, wall_seconds: float, argv: list[str], shards_trained: int | None = None
) -> dict:
    """Where, when and with what a sweep's results were made.

    wall_seconds   : training time of every stored shard, summed over the runs that made them
    shards_trained : shards the latest run trained (the rest were stored by earlier runs)
    """
    import numba

    versions = {"python": platform.python_version()}
    for package in ("backprop-bench", "numpy", "numba", "scipy", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "config": config.to_dict(),
        "fingerprint": config.fingerprint(),
        "command": " ".join(["backprop-bench", *argv]),
        "versions": versions,
        "commit": _git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
        },
        "backend": config.backend,
        "training_seconds": round(wall_seconds, 2),
        "shards": {
            "total": config.n_shards,
            "trained_by_last_run": config.n_shards if shards_trained is None else shards_trained,
        },
    }
