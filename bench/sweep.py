"""Running a sweep: shards one after another, each stored the moment it is done; resume; merge.

The output folder holds ``sweep.json`` (the config whose results it holds) and ``shards/``. A
sweep started again with the same config skips the shards already stored, so a run killed at any
moment (Ctrl-C, ``kill -9``) ends, once restarted, with exactly the numbers of an uninterrupted
run. A folder that holds another sweep, or files that are not a sweep's, is refused before
anything is written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .executors import LocalExecutor
from .progress import Progress
from .shard import read_shard, write_shard
from .sweep_config import SweepConfig, config_from_dict

SWEEP_FILE = "sweep.json"
SHARD_DIR = "shards"


@dataclass
class SweepResults:
    """Every net of a sweep.

    nets   : column name -> array of shape (n_nets,), rows ordered by (cell, net)
    curves : array of shape (n_cells, n_points, nets_per_cell), the loss at ``epochs``
    epochs : the curve epochs, shape (n_points,)
    """

    config: SweepConfig
    nets: dict[str, np.ndarray]
    curves: np.ndarray
    epochs: np.ndarray


def prepare_out(config: SweepConfig, out: Path) -> None:
    """Make ``out`` ready for ``config``, or refuse it without touching anything in it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the sweep's results")
    stored = out / SWEEP_FILE
    if stored.exists():
        try:
            other = config_from_dict(json.loads(stored.read_text()))
        except (ValueError, json.JSONDecodeError) as error:
            raise ValueError(
                f"--out {out} holds an unreadable {SWEEP_FILE} ({error}); choose another --out"
            ) from None
        if other.fingerprint() != config.fingerprint():
            changed = [k for k, v in config.identity().items() if other.identity().get(k) != v]
            raise ValueError(
                f"--out {out} holds the results of a different sweep (it differs in: "
                f"{', '.join(changed)}); choose another --out, or delete that folder to start over"
            )
        return
    if out.exists() and any(out.iterdir()):
        names = sorted(p.name for p in out.iterdir())
        raise ValueError(
            f"--out {out} already holds files that are not a sweep's ({', '.join(names[:3])}); "
            "choose an empty or new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{SWEEP_FILE}.tmp"
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    os.replace(tmp, stored)


def pending_shards(config: SweepConfig, out: Path) -> list[int]:
    shards = Path(out) / SHARD_DIR
    tag = config.fingerprint()
    return [s for s in range(config.n_shards) if read_shard(shards, s, tag) is None]


def run_sweep(
    config: SweepConfig, out: Path, progress: Progress | None = None, executor=None
) -> float:
    """Run every shard not yet stored in ``out``; returns the seconds spent training.

    executor : where shards run (``executors.LocalExecutor`` by default, or a ``DaskExecutor``
               already entered); results come back here and only this process writes them.
    """
    prepare_out(config, out)
    todo = pending_shards(config, out)
    shards, tag = Path(out) / SHARD_DIR, config.fingerprint()
    if progress is not None:
        done = config.n_nets() - sum(config.shard(s)[3] for s in todo)
        progress.start(config.n_nets(), done)
    start = time.perf_counter()
    for shard_id, data in (executor or LocalExecutor()).run(config, todo):
        write_shard(shards, shard_id, data, tag)
        if progress is not None:
            progress.advance(config.shard(shard_id)[3])
    if progress is not None:
        progress.close()
    return time.perf_counter() - start


def load_results(config: SweepConfig, out: Path) -> SweepResults:
    """Merge the stored shards of ``config`` (all of them must be there)."""
    shards, tag = Path(out) / SHARD_DIR, config.fingerprint()
    parts = []
    for shard_id in range(config.n_shards):
        data = read_shard(shards, shard_id, tag)
        if data is None:
            raise ValueError(
                f"shard {shard_id} of the sweep in {out} is missing; run the sweep "
                "again with the same config to finish it"
            )
        parts.append(data)
    nets = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key != "curve"}
    n_cells = len(config.cells())
    curves = np.concatenate([p["curve"] for p in parts], axis=1)
    curves = curves.reshape(curves.shape[0], n_cells, config.nets_per_cell).transpose(1, 0, 2)
    return SweepResults(config, nets, np.ascontiguousarray(curves), config.curve_epochs())
