"""Project-wide pytest set-up: the ``--benchmark`` switch, and Ctrl-C as in a terminal.

pytest-benchmark times every benchmark test by default. Here plain ``pytest`` runs the benchmark
tests once, untimed (so they are checked, but cost almost nothing), and ``pytest --benchmark``
runs only them, timed, saving the JSON under ``reports/benchmarks/``.

Plain ``pytest`` (no paths, no ``-m``, no ``-n``: the whole quick suite) spreads its tests over
one process per core, up to four (pytest-xdist): most of its time is numba compiling kernels,
one function at a time in a process, so a second core nearly halves it. ``-n 0`` runs it in
one process; any other selection runs in one process unless ``-n`` asks otherwise.
"""

import os
import signal
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from pytest_benchmark.utils import get_tag

# Fuzzing (tests/bench/test_fuzz.py): the same examples on every run, so that plain pytest is a
# check that passes or fails for the code alone and stays within its time; no deadline (the
# machine is shared). HYPOTHESIS_PROFILE=explore searches anew, with more examples, each time.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False,
                          max_examples=1000)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A test run started in the background (``cmd &`` in a script, nohup) inherits an ignored SIGINT,
# which Python then leaves ignored, and so would every process it starts: the tests that press
# Ctrl-C (in this process or in a command they run) would wait for a command that never hears
# it. They stand for a user at a terminal, where Ctrl-C is not ignored: give this process
# Python's own handler (its children start with the default action again).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

BENCHMARK_STORAGE = Path(__file__).resolve().parent.parent / "reports" / "benchmarks"


def pytest_addoption(parser):
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="time the benchmark tests with pytest-benchmark and save them under "
        "reports/benchmarks/ (without it they run once, untimed)",
    )


MAX_WORKERS = 4  # beyond a few, the workers mostly compile the same kernels side by side


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Runs before xdist's own hook, which turns ``numprocesses`` into its workers."""
    workers = quick_suite_workers(config, len(os.sched_getaffinity(0)) if hasattr(
        os, "sched_getaffinity") else (os.cpu_count() or 1))  # fmt: skip
    if workers:
        config.option.numprocesses = workers


def quick_suite_workers(config, cores):
    """The workers for this run: one per core up to MAX_WORKERS for plain ``pytest`` (xdist
    installed, no -n, no paths, no -m, not --benchmark, --collect-only, --pdb, nor a worker
    itself), else None (one process)."""
    plain = (
        getattr(config.option, "numprocesses", False) is None
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and config.option.markexpr == "not slow"
        and not config.getoption("--benchmark")
        and not config.option.collectonly
        and not config.option.usepdb
        and "PYTEST_XDIST_WORKER" not in os.environ
    )
    return min(cores, MAX_WORKERS) if plain and cores > 1 else None


def _save_atomically(self, output_json, save):
    """pytest-benchmark's FileStorage.save, through the project's atomic writer: a killed
    benchmark run leaves no half-written JSON under reports/benchmarks/."""
    from backprop_bench.bench import atomic
    from pytest_benchmark.utils import safe_dumps

    output_file = self.get(f"{self._next_num}_{save}.json")
    atomic.write_text(output_file, safe_dumps(output_json, ensure_ascii=True, indent=4))
    self.logger.info(f"Saved benchmark data in: {output_file}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("--benchmark"):
        from pytest_benchmark.storage.file import FileStorage

        FileStorage.save = _save_atomically
        config.option.benchmark_only = True
        # plain pytest leaves the integration tests out (pyproject's addopts); the timed run
        # needs the benchmarks among them (float32, wide nets, a million nets, memory, start-up)
        if config.option.markexpr == "not slow":
            config.option.markexpr = ""
        config.option.benchmark_autosave = get_tag()  # commit id and time, as --benchmark-autosave
        config.option.benchmark_storage = f"file://{BENCHMARK_STORAGE}"
    else:
        config.option.benchmark_disable = True


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    """A ``--benchmark`` run that times nothing (-k matching no benchmark, --collect-only) saves
    nothing and says so by a warning, which filterwarnings = error made an INTERNALERROR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Not saving anything, no benchmarks have been run")
        yield


@pytest.fixture(scope="session", autouse=True)
def _lane_kernel_compiled_once_per_dtype(tmp_path_factory):
    """In plain pytest's workers, the lane kernel compiles once per dtype, not once per worker.

    It takes about half a minute to compile per dtype, and every worker needs float64 early:
    each compiled it side by side. Here worker i compiles the dtypes in turn from the i-th (a
    lock on a file per dtype, shared by the workers) and loads the others from numba's cache,
    written by then by the worker that held the lock. A single process compiles what its tests
    need, as before."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        yield
        return
    import fcntl

    import numpy as np
    from backprop_bench.kernels import NetSpec, get_problem, init_population
    from backprop_bench.kernels.numba_backend import train_population

    xor, spec = get_problem("xor"), NetSpec((2, 4, 1))
    dtypes = [np.float64, np.float32]
    shift = int(worker[2:]) % len(dtypes)
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of the run
    for dtype in dtypes[shift:] + dtypes[:shift]:
        with open(shared / f"lane-kernel-{np.dtype(dtype).name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            theta = init_population(spec, 3, seed=0, dtype=dtype)
            train_population(theta, spec, xor.X.astype(dtype), xor.Y.astype(dtype), 0.5, 1)
    yield
