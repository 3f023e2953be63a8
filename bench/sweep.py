"""Running a sweep: shards one after another, each stored the moment it is done; resume; merge.

The output folder holds ``sweep.json`` (the config whose results it holds) and ``shards/``. A
sweep started again with the same config skips the shards already stored, so a run killed at any
moment (Ctrl-C, ``kill -9``) ends, once restarted, with exactly the numbers of an uninterrupted
run. A folder that holds another sweep (another grid, backend or name), or files that are not a
sweep's, is refused before anything is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import atomic
from .executors import LocalExecutor
from .progress import Progress
from .shard import read_shard, shard_seconds, write_shard
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
        except OSError as error:
            raise ValueError(f"cannot read {stored}: {error.strerror}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(
                f"--out {out} holds an unreadable {SWEEP_FILE} ({error}); choose another --out"
            ) from None
        if other.fingerprint() != config.fingerprint():
            changed = [k for k, v in config.identity().items() if other.identity().get(k) != v]
            raise ValueError(
                f"--out {out} holds the results of a different sweep (it differs in: "
                f"{', '.join(changed)}); choose another --out, or delete that folder to start over"
            )
        # the same grid, but trained or named otherwise: the backends round differently (a
        # resume with the other one mixed both in one result, recorded as the last one's), and
        # the name titles every file of the folder
        for key, flag in (("backend", "--backend"), ("name", "--name")):
            if getattr(other, key) != getattr(config, key):
                raise ValueError(
                    f"--out {out} holds a sweep with {flag} {getattr(other, key)}; give "
                    f"{flag} {getattr(other, key)} to resume or redo its report, or another --out"
                )
        atomic.clean_stale(out)
        atomic.clean_stale(out / SHARD_DIR)
        return
    if out.exists() and any(not atomic.is_temporary(p.name) for p in out.iterdir()):
        names = sorted(p.name for p in out.iterdir())
        raise ValueError(
            f"--out {out} already holds files that are not a sweep's ({', '.join(names[:3])}); "
            "choose an empty or new folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic.clean_stale(out)
        atomic.write_text(stored, json.dumps(config.to_dict(), indent=2) + "\n")
    except OSError as error:
        if error.errno not in atomic.PATH_ERRORS:
            raise  # the machine failed (a full disk), not the path given
        raise ValueError(f"cannot write to --out {out}: {error.strerror}; choose a folder you "
                         "can write to") from None  # fmt: skip


def pending_shards(config: SweepConfig, out: Path) -> list[int]:
    shards = Path(out) / SHARD_DIR
    tag = config.fingerprint()
    return [s for s in range(config.n_shards) if read_shard(shards, s, tag) is None]


def run_sweep(
    config: SweepConfig, out: Path, progress: Progress | None = None, executor=None
) -> int:
    """Run every shard not yet stored in ``out``; returns how many this run trained.

    executor : where shards run (``executors.LocalExecutor`` by default, or a ``DaskExecutor``
               already entered); results come back here and only this process writes them.
    Each shard is stored with the seconds since the previous result arrived, so that
    ``training_seconds`` sums to the wall time spent training, over every run of the sweep.
    """
    prepare_out(config, out)
    todo = pending_shards(config, out)
    shards, tag = Path(out) / SHARD_DIR, config.fingerprint()
    if progress is not None:
        done = config.n_nets() - sum(config.shard(s)[3] for s in todo)
        progress.start(config.n_nets(), done)
    last = time.perf_counter()
    for shard_id, data in (executor or LocalExecutor()).run(config, todo):
        write_shard(shards, shard_id, data, tag, time.perf_counter() - last)
        last = time.perf_counter()
        if progress is not None:
            progress.advance(config.shard(shard_id)[3])
    if progress is not None:
        progress.close()
    return len(todo)


def training_seconds(config: SweepConfig, out: Path) -> float:
    """Seconds spent training the stored shards, over every run that trained them."""
    shards = Path(out) / SHARD_DIR
    return sum(shard_seconds(shards, s) for s in range(config.n_shards))


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
