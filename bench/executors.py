"""Where a sweep's shards run: in this process, or on the workers of a Dask cluster.

An executor takes a config and the ids of the shards still to do, and yields ``(shard_id, data)``
as shards finish, in any order; the caller (``run_sweep``) alone writes them to disk. Because a
shard is a pure function of (config, shard id), the stored results are the same bytes whatever
the executor, and a sweep started on one executor can be finished on another: the executor is not
part of the sweep's identity.

The Dask executor lives in ``dask_executor.py`` and is imported only when asked for, so the
default install needs no Dask (``pip install -e ".[dask]"`` adds it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from . import shard
from .sweep_config import SweepConfig

EXECUTORS = ("local", "dask")
DASK_MISSING = (
    "the dask executor needs dask.distributed, which is not installed; "
    'install it with pip install -e ".[dask]" (or use --executor local)'
)


class ShardFailed(RuntimeError):
    """Shards that raised instead of returning; every other shard was run and stored.

    failures : list of (shard_id, description) pairs, one per failed shard, in shard order
    """

    def __init__(self, failures: list[tuple[int, str]]):
        self.failures = sorted(failures)
        lines = [f"shard {shard_id} failed: {error}" for shard_id, error in self.failures]
        super().__init__(
            f"{len(self.failures)} shard(s) failed (every other shard is stored; run the same "
            "command again to retry them): " + "; ".join(lines)
        )


def describe_shard(config: SweepConfig, shard_id: int) -> str:
    _, cell, first, n = config.shard(shard_id)
    return f"{cell.label()}, nets {first}-{first + n - 1}"


class ExecutorUnavailable(ValueError):
    """The cluster asked for cannot be reached or started (a bad --scheduler, most often)."""


class LocalExecutor:
    """Shards one after another in this process (numba spreads each one over the cores)."""

    def __init__(self, shard_function=None):
        self.shard_function = shard_function

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(
        self, config: SweepConfig, shard_ids: Iterable[int]
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        from .interrupt import interruptible

        compute = self.shard_function or shard.run_shard  # looked up late: tests replace it
        for shard_id in shard_ids:
            yield shard_id, interruptible(compute, config, shard_id)  # Ctrl-C stops the kernel


def add_executor_flags(parser) -> None:
    """The ``sweep`` flags that choose where shards run (they do not change any result)."""
    parser.add_argument(
        "--executor",
        default="local",
        help="local (this process, default) or dask (the workers of a Dask cluster); "
        "results do not depend on it",
    )
    parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="with --executor dask: the address of a running Dask scheduler",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --executor dask: start a local Dask cluster of N worker processes "
        "(default: one per core)",
    )


def make_executor(name: str = "local", scheduler: str | None = None, workers: int | None = None):
    """The executor the ``sweep`` flags ask for; bad combinations raise ValueError.

    scheduler : address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``
    workers   : start a local Dask cluster of this many single-threaded worker processes
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    if name == "local":
        if scheduler is not None or workers is not None:
            raise ValueError(
                "--scheduler and --workers are for the dask executor; add --executor dask"
            )
        return LocalExecutor()
    if scheduler is not None and workers is not None:
        raise ValueError(
            "give either --scheduler (an existing cluster) or --workers (a local one), not both"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    if scheduler is not None and "://" not in scheduler:
        raise ValueError(
            f"--scheduler must be a Dask scheduler address such as tcp://HOST:8786, "
            f"got {scheduler!r}"
        )
    try:
        from .dask_executor import DaskExecutor
    except ImportError:
        raise ValueError(DASK_MISSING) from None
    return DaskExecutor(scheduler=scheduler, workers=workers)
