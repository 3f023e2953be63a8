"""Sweeps on a Dask cluster: the bytes of a local run, resume across executors, lost workers,
failing shards, and numba compiling once per worker.

One local cluster of two single-threaded worker processes serves the whole module, as a small
real cluster would: workers are separate processes that share no memory with the client.
"""

import functools
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = pytest.mark.slow

distributed = pytest.importorskip(
    "distributed",
    reason="the Dask executor's tests need dask.distributed: pip install -e '.[dask]'",
)

from backprop_bench.bench import cli, dask_executor, shard  # noqa: E402
from backprop_bench.bench.dask_executor import DaskExecutor  # noqa: E402
from backprop_bench.bench.progress import Progress  # noqa: E402
from backprop_bench.bench.sweep import SHARD_DIR, load_results, run_sweep  # noqa: E402
from backprop_bench.bench.sweep_config import make_config  # noqa: E402

from .processes import children_of, left_running  # noqa: E402
from .test_sweep import SMALL, snapshot  # noqa: E402

SMALL_FLAGS = {
    "lr": (0.01, 1.0, 100.0),
    "init": ("tutorial", "xavier_uniform"),
    "hidden": (2, 4),
    "nets_per_cell": 60,
    "epochs": 600,
}


def small_config(**changes):
    return make_config({}, {**SMALL_FLAGS, **changes})


TEST_DEADLINE = 300  # seconds: a cluster test that hangs fails instead of stalling the suite


@pytest.fixture(autouse=True)
def deadline():
    def expire(signum, frame):
        raise TimeoutError(f"a Dask executor test ran past {TEST_DEADLINE} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_DEADLINE)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv(dask_executor.CACHE_ENV, str(tmp_path_factory.mktemp("worker-numba-caches")))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local_cluster,
        distributed.Client(local_cluster) as client,
    ):
        yield local_cluster.scheduler_address, client
    patch.undo()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The small sweep run by the local executor, through the command line."""
    out = tmp_path_factory.mktemp("local") / "run"
    argv = ["sweep", *SMALL, "--nets-per-shard", "20", "--out", str(out)]
    assert cli.main(argv) == 0
    return out


def same_results(folder: Path, reference: Path) -> None:
    """The files of the report, byte for byte."""
    got, want = snapshot(folder), snapshot(reference)
    for name in want:
        if name in ("summary.json", "results.csv.gz") or name.startswith("figures/"):
            assert got[name] == want[name], name


def same_nets(folder: Path, reference: Path, nets_per_shard: int) -> None:
    """Every stored per-net number and curve, exactly (shard sizes may differ)."""
    got = load_results(small_config(nets_per_shard=nets_per_shard), folder)
    want = load_results(small_config(nets_per_shard=20), reference)
    for column, values in want.nets.items():
        np.testing.assert_array_equal(got.nets[column], values, err_msg=column)
    np.testing.assert_array_equal(got.curves, want.curves)


def test_dask_gives_the_bytes_of_a_local_run(cluster, local_run, tmp_path, capsys):
    scheduler, _ = cluster
    out = tmp_path / "dask"
    argv = ["sweep", *SMALL, "--nets-per-shard", "20", "--out", str(out)]
    assert cli.main([*argv, "--executor", "dask", "--scheduler", scheduler]) == 0
    assert "wrote" in capsys.readouterr().out
    same_results(out, local_run)
    same_nets(out, local_run, 20)


def _start(out: Path, *executor) -> subprocess.Popen:
    argv = ["sweep", *SMALL, "--nets-per-shard", "6", "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "backprop_bench", *argv, *executor],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("first", ["dask", "local"], ids=["dask-then-local", "local-then-dask"])
def test_a_sweep_killed_on_one_executor_finishes_on_the_other(cluster, local_run, tmp_path, first):
    scheduler, _ = cluster
    dask = ["--executor", "dask", "--scheduler", scheduler]
    out = tmp_path / "resumed"
    process = _start(out, *(dask if first == "dask" else []))
    deadline = time.monotonic() + 120
    while len(list((out / SHARD_DIR).glob("*.npz"))) < 5:
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no shards appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    stored = len(list((out / SHARD_DIR).glob("*.npz")))
    assert 5 <= stored < small_config(nets_per_shard=6).n_shards
    config = small_config(nets_per_shard=6)
    if first == "local":
        with DaskExecutor(scheduler) as executor:
            run_sweep(config, out, executor=executor)
    else:
        run_sweep(config, out)
    same_nets(out, local_run, 6)


def _dies_once(calls: Path, victim: int, config, shard_id):
    """The shard, but the first worker to run ``victim`` is killed while running it."""
    (calls / f"{shard_id}-{os.getpid()}-{uuid.uuid4().hex}").touch()
    data = shard.run_shard(config, shard_id)
    if shard_id == victim and not (calls / "killed").exists():
        (calls / "killed").touch()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    return data


def test_a_worker_that_dies_loses_only_its_running_shard(cluster, local_run, tmp_path):
    scheduler, client = cluster
    calls, victim = tmp_path / "calls", 7
    calls.mkdir()
    config = small_config(nets_per_shard=20)
    executor = DaskExecutor(scheduler, shard_function=functools.partial(_dies_once, calls, victim))
    with executor:
        run_sweep(config, tmp_path / "out", executor=executor)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker for later tests
    runs = [name.split("-") for name in os.listdir(calls) if name != "killed"]
    assert (calls / "killed").exists()
    for shard_id in range(config.n_shards):
        pids = {pid for s, pid, _ in runs if int(s) == shard_id}
        assert len(pids) == (2 if shard_id == victim else 1), (shard_id, pids)
    assert sorted(info["shard"] for info in executor.shard_log) == list(range(config.n_shards))
    same_nets(tmp_path / "out", local_run, 20)


def _fails(calls: Path, bad: int, config, shard_id):
    (calls / f"{shard_id}-{uuid.uuid4().hex}").touch()
    if shard_id == bad:
        raise ZeroDivisionError("the shard's own error")
    return shard.run_shard(config, shard_id)


def test_a_failing_shard_is_reported_once_with_its_id(
    cluster, local_run, tmp_path, capsys, monkeypatch
):
    scheduler, _ = cluster
    calls = tmp_path / "calls"
    calls.mkdir()
    failing = DaskExecutor(scheduler, shard_function=functools.partial(_fails, calls, 3))
    monkeypatch.setattr(cli, "make_executor", lambda *args: failing)
    out = tmp_path / "out"
    argv = ["sweep", *SMALL, "--nets-per-shard", "20", "--out", str(out)]
    assert cli.main([*argv, "--executor", "dask", "--scheduler", scheduler]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("shard 3 failed") == 1
    assert "1 shard(s) failed" in err and "ZeroDivisionError: the shard's own error" in err
    assert "nets 0-19" in err  # which nets of which cell
    assert len([n for n in os.listdir(calls) if n.startswith("3-")]) == 1  # not retried
    stored = sorted(p.name for p in (out / SHARD_DIR).glob("*.npz"))
    assert len(stored) == small_config(nets_per_shard=20).n_shards - 1
    assert "000003.npz" not in stored
    run_sweep(small_config(nets_per_shard=20), out)  # the next run computes the missing shard
    same_nets(out, local_run, 20)


def test_numba_compiles_once_per_worker_and_progress_counts_every_worker(
    cluster, local_run, tmp_path
):
    scheduler, client = cluster
    config = small_config(nets_per_shard=20)  # 45 shards; the client's cache seeds the workers'
    stream = io.StringIO()
    executor = DaskExecutor(scheduler)
    with executor:
        run_sweep(config, tmp_path / "dask", Progress(stream, enabled=True), executor)
    assert f"100% {config.n_nets():,}/{config.n_nets():,} nets" in stream.getvalue()
    log = executor.shard_log
    assert all(info["new_overloads"] == 0 for info in log), log
    states = client.run(dask_executor.worker_state)
    assert len(states) == 2
    assert len({state["cache_dir"] for state in states.values()}) == 2  # one cache per process
    for state in states.values():
        warm_up = state[config.fingerprint()]
        assert warm_up["new_overloads"] > 0  # the kernels were built (or loaded) once, here
        assert sum(info["pid"] == state["pid"] for info in log) >= 2, (state, log)
    same_nets(tmp_path / "dask", local_run, 20)


def test_a_worker_takes_the_clients_cache_only_with_the_same_kernel_sources(monkeypatch):
    """numba checks a cache entry against its own function's file only: a worker whose register
    tiles differed from the client's would run the client's. The plugin seeds only where the
    digests of the kernel sources agree."""
    seeded = []
    monkeypatch.setattr(dask_executor, "_seed_cache", seeded.append)
    monkeypatch.setitem(dask_executor._WORKER, "cache_dir", Path("unused"))
    files = {"backprop_bench.kernels.numba_lanes": {"numba_lanes.f-1.py311.nbi": b"x"}}
    dask_executor.WorkerSetup(files, "another version's digest").setup(None)
    assert seeded == []
    dask_executor.WorkerSetup(files, dask_executor.sources_digest()).setup(None)
    assert seeded == [files]


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 1)
    argv = ["sweep", *SMALL, "--out", str(tmp_path / "out")]
    code = cli.main([*argv, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:9" in err


def test_sigterm_stops_a_sweep_on_its_own_local_cluster_within_a_second(local_run, tmp_path):
    """--workers N: the command's own cluster; its workers go with it, and the sweep resumes."""
    out = tmp_path / "own"
    process = _start(out, "--executor", "dask", "--workers", "2")
    deadline = time.monotonic() + 120
    while len(list((out / SHARD_DIR).glob("*.npz"))) < 2:
        assert process.poll() is None, "the sweep ended before it could be stopped"
        assert time.monotonic() < deadline, "no shards appeared"
        time.sleep(0.02)
    children = children_of(process.pid)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert time.perf_counter() - sent < 1.0
    assert children  # the workers' processes
    assert not left_running(children)
    run_sweep(small_config(nets_per_shard=6), out)
    same_nets(out, local_run, 6)
