"""Shards on the workers of a Dask cluster (``dask.distributed``), results back to the client.

The client submits one task per pending shard and yields each result as it arrives; it alone
writes files, so a cluster's workers need no shared filesystem and the stored bytes are those of
a local run. Each result is released on the cluster as soon as the client has it, so a worker that
dies loses only the shard it was running, which the scheduler runs again elsewhere (up to
``distributed.scheduler.allowed-failures`` times). A shard that raises is not retried (a shard is
a pure function: it would raise again); it is reported once, with its id and error, after every
other shard has been run and stored.

Numba on workers. Every worker process gets its own numba cache directory: processes that write
one cache at once are a known source of crashes. The directory is a slot under
``$BACKPROP_BENCH_WORKER_CACHE`` (default ``~/.cache/backprop-bench/numba-workers``) held with a
file lock for the process's life, so a restarted worker reuses a free slot's compiled kernels
instead of compiling again. It is seeded with the client's own cache files for the kernels (the
object code is checked by numba against source and CPU before use), and each worker warms up once
per sweep on a one-net copy of the grid before its first shard, so no shard compiles anything.
Each shard runs on one core (``NUMBA_NUM_THREADS=1``), and a worker process runs one numba shard
at a time (numba's default threading layer aborts on concurrent parallel launches): start workers
with one thread each and as many processes as cores (``dask worker --nworkers N --nthreads 1``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from .executors import ExecutorUnavailable, ShardFailed, describe_shard
from .shard import run_shard
from .sweep_config import SweepConfig

CACHE_ENV = "BACKPROP_BENCH_WORKER_CACHE"
NUMBA_MODULES = (
    "backprop_bench.kernels.numba_backend",
    "backprop_bench.kernels.numba_lanes",
    "backprop_bench.kernels.numba_tiles",
    "backprop_bench.kernels.numba_rows",
)
PLUGIN_NAME = "backprop-bench-worker"
CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before the address is called unreachable
# ... and in all, with its handshake: a server that accepts the connection and waits for
# something else (an HTTP server) keeps Dask's client waiting with no time limit
HANDSHAKE_TIMEOUT = CONNECT_TIMEOUT + 5


def _connect(address: str) -> Client:
    """A client of the scheduler at ``address``, or an error within HANDSHAKE_TIMEOUT."""
    outcome = {}

    def connect():
        try:
            outcome["client"] = Client(address, timeout=CONNECT_TIMEOUT)
        except BaseException as error:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = error

    attempt = threading.Thread(target=connect, name="dask connect", daemon=True)
    attempt.start()
    attempt.join(HANDSHAKE_TIMEOUT)
    if "error" in outcome:
        raise outcome["error"]
    if "client" not in outcome:  # the thread is left waiting; a daemon, it ends with us
        raise TimeoutError(
            f"connected, but no Dask handshake within {HANDSHAKE_TIMEOUT} s: another kind of "
            "server on that port?"
        )
    return outcome["client"]
INTERRUPTED_CLOSE_SECONDS = 0.3  # how long an interrupted sweep waits for its client to close

# Per worker process: its cache slot and lock, and the sweeps it has warmed up for.
_WORKER: dict = {"warm_ups": {}}
_WARM_LOCK = threading.Lock()
# numba's default threading layer (workqueue) aborts when two threads launch parallel kernels at
# once: a worker given several threads runs its numba shards one at a time
_NUMBA_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- the worker side


def _dispatchers(module) -> list:
    from numba.core.dispatcher import Dispatcher

    return [obj for obj in vars(module).values() if isinstance(obj, Dispatcher)]


def compiled_overloads() -> int:
    """Machine-code versions (compiled or loaded from a cache) of the kernels in this process."""
    return sum(
        len(d.overloads)
        for name in NUMBA_MODULES
        if name in sys.modules
        for d in _dispatchers(sys.modules[name])
    )


def _claim_cache_slot(base: Path) -> Path:
    """The first cache folder under ``base`` that no other live process holds."""
    import fcntl

    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    slot = 0
    while True:
        lock = open(base / f"{host}-{slot}.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            slot += 1
            continue
        _WORKER["lock"] = lock
        return base / f"{host}-{slot}"


def _module_cache_dir(name: str) -> Path:
    import importlib

    return Path(_dispatchers(importlib.import_module(name))[0]._cache.cache_path)


def client_cache_files() -> dict[str, dict[str, bytes]]:
    """This process's numba cache files of the kernels: module -> file name -> bytes. A file
    removed meanwhile (another process clearing a cache made stale: kernels/numba_cache.py) is
    left out."""
    files = {}
    for name in NUMBA_MODULES:
        folder, prefix = _module_cache_dir(name), name.rsplit(".", 1)[1] + "."
        if folder.is_dir():
            files[name] = {}
            for p in folder.iterdir():
                if p.name.startswith(prefix) and p.suffix in (".nbi", ".nbc"):
                    with contextlib.suppress(FileNotFoundError):
                        files[name][p.name] = p.read_bytes()
    return files


def sources_digest() -> str:
    """The digest of this process's kernel sources (kernels/numba_cache.py): a worker takes the
    client's cache entries only if its own sources have the same."""
    from backprop_bench.kernels import numba_cache

    return numba_cache.digest(numba_cache.sources())


def _seed_cache(files: dict[str, dict[str, bytes]]) -> None:
    """Copy the client's cache entries for functions this worker's cache does not index yet."""
    for name, entries in files.items():
        folder = _module_cache_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        for index in (n for n in entries if n.endswith(".nbi")):
            if (folder / index).exists():
                continue  # this worker's own entries win; its data files match its own index
            stem = index[: -len(".nbi")]
            group = [n for n in entries if n.startswith(stem + ".") and n.endswith(".nbc")]
            for file_name in [*group, index]:  # the index last: it names the data files
                tmp = folder / f".{file_name}.{os.getpid()}.tmp"
                tmp.write_bytes(entries[file_name])
                os.replace(tmp, folder / file_name)


class WorkerSetup(WorkerPlugin):
    """Gives each worker process its own numba cache, before it imports numba, seeded with the
    client's entries where the worker's kernel sources are the client's (``digest``): numba
    checks an entry against its own function's file only, so a worker whose register tiles
    differed from the client's would otherwise run the client's."""

    def __init__(self, cache_files: dict[str, dict[str, bytes]], digest: str | None = None):
        self.cache_files = cache_files
        self.digest = digest

    def setup(self, worker) -> None:
        if "cache_dir" not in _WORKER:
            base = Path(
                os.environ.get(CACHE_ENV)
                or Path.home() / ".cache" / "backprop-bench" / "numba-workers"
            )
            cache_dir = _claim_cache_slot(base)
            os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)
            if "numba" not in sys.modules:
                os.environ["NUMBA_NUM_THREADS"] = "1"
            else:  # numba read its settings at import; read them again
                import numba.core.config

                numba.core.config.reload_config()
            _WORKER["cache_dir"] = cache_dir
        if self.cache_files and self.digest == sources_digest():
            _seed_cache(self.cache_files)


def warm_up(config: SweepConfig) -> None:
    """Compile (or load) every kernel the sweep needs, once per process, on one-net shards."""
    fingerprint = config.fingerprint()
    with _WARM_LOCK, _NUMBA_LOCK:
        if fingerprint in _WORKER["warm_ups"]:
            return
        start, before = time.perf_counter(), compiled_overloads()
        if config.backend == "numba":
            small = dataclasses.replace(
                config,
                lr=config.lr[:1],
                init=config.init[:1],
                nets_per_cell=1,
                nets_per_shard=1,
                epochs=min(config.epochs, 10),
            )
            for shard_id in range(small.n_shards):
                run_shard(small, shard_id)
        _WORKER["warm_ups"][fingerprint] = {
            "pid": os.getpid(),
            "cache_dir": str(_WORKER.get("cache_dir")),
            "new_overloads": compiled_overloads() - before,
            "seconds": time.perf_counter() - start,
        }


def worker_state() -> dict:
    """What a worker did before its shards (for tests and diagnostics): pid, warm-ups."""
    return {"pid": os.getpid(), "cache_dir": str(_WORKER.get("cache_dir")), **_WORKER["warm_ups"]}


def compute_shard(shard_function, config: SweepConfig, shard_id: int):
    """Run one shard on a worker: its data, and where it ran and what it compiled."""
    warm_up(config)
    with _NUMBA_LOCK if config.backend == "numba" else contextlib.nullcontext():
        before, cpu, wall = compiled_overloads(), time.process_time(), time.perf_counter()
        data = shard_function(config, shard_id)
        new_overloads = compiled_overloads() - before
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return data, {
        "shard": shard_id,
        "worker": get_worker().address,
        "pid": os.getpid(),
        "new_overloads": new_overloads,
        "cpu_seconds": cpu,  # the whole process's: one shard at a time runs in it
        "seconds": wall,
    }


# ----------------------------------------------------------------------------- the client side


class DaskExecutor:
    """Shards on an existing cluster (``scheduler``) or on a local one of ``workers`` processes.

    After ``run``, ``shard_log`` holds one dict per shard received: shard, worker, pid, the
    kernels compiled while it ran (``new_overloads``, 0 once the worker is warm), and its CPU and
    wall seconds on the worker.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        shard_function=run_shard,
    ):
        self.scheduler, self.workers = scheduler, workers
        self.shard_function = shard_function
        self.cluster = self.client = None
        self.shard_log: list[dict] = []

    def __enter__(self) -> DaskExecutor:
        if self.scheduler is not None:
            try:
                self.client = _connect(self.scheduler)
            except (OSError, TimeoutError) as error:
                raise ExecutorUnavailable(
                    f"cannot reach a Dask scheduler at {self.scheduler} ({error}); "
                    "check the address and that the scheduler is running"
                ) from None
            except Exception as error:  # noqa: BLE001 - something else answered there
                # (seen: a reply that decoded as a 3 EiB array, a MemoryError)
                raise ExecutorUnavailable(
                    f"what answers at {self.scheduler} is not a Dask scheduler "
                    f"({type(error).__name__}); check the address and port"
                ) from None
        else:
            self.cluster = LocalCluster(
                n_workers=self.workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never a clash with another cluster
                silence_logs=logging.CRITICAL,  # a failed shard is reported once, by the client
            )
            self.client = Client(self.cluster)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is KeyboardInterrupt:
            self._stop_now()
            return
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _stop_now(self) -> None:
        """After Ctrl-C or SIGTERM the command has a second to end, and a graceful close of a
        local cluster takes several: its worker processes are killed (the client has written
        every finished shard; the workers hold nothing to keep) and the cluster is not closed
        again at exit. A remote cluster's workers are left running; only the client goes."""
        if self.cluster is not None:
            for worker in list(self.cluster.workers.values()):
                pid = getattr(worker, "pid", None)
                if pid:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            self.cluster.shutdown_on_close = False
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=INTERRUPTED_CLOSE_SECONDS)

    def run(
        self, config: SweepConfig, shard_ids: Iterable[int]
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        shard_ids = list(shard_ids)
        if not shard_ids:
            return
        cache_files = client_cache_files() if config.backend == "numba" else {}
        self.client.register_plugin(WorkerSetup(cache_files, sources_digest()), name=PLUGIN_NAME)
        run_token = uuid.uuid4().hex[:12]  # keys of this run only: nothing cached is reused
        # results are fetched one at a time in this thread: as_completed(with_results=True)
        # can wait forever for a result lost with a worker (dask/distributed#7331)
        pending, shard_of = as_completed(), {}
        for shard_id in shard_ids:
            future = self.client.submit(
                compute_shard,
                self.shard_function,
                config,
                shard_id,
                key=f"shard-{shard_id}-{run_token}",
                retries=0,
            )
            shard_of[future.key] = shard_id
            pending.add(future)
        failures = []
        for future in pending:
            shard_id = shard_of.pop(future.key)
            try:
                data, info = future.result()
            except Exception as error:  # the shard's own error, or KilledWorker
                text = f"{type(error).__name__}: {error}" if str(error) else repr(error)
                failures.append((shard_id, f"{describe_shard(config, shard_id)}: {text}"))
                continue
            finally:
                future.release()  # the client has it: the cluster need not keep (or recompute) it
            self.shard_log.append(info)
            yield shard_id, data
        if failures:
            raise ShardFailed(failures)
