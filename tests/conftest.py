"""Project-wide pytest set-up: the ``--benchmark`` switch.

pytest-benchmark times every benchmark test by default. Here plain ``pytest`` runs the benchmark
tests once, untimed (so they are checked, but cost almost nothing), and ``pytest --benchmark``
runs only them, timed, saving the JSON under ``reports/benchmarks/``.
"""

from pathlib import Path

import pytest
from pytest_benchmark.utils import get_tag

BENCHMARK_STORAGE = Path(__file__).resolve().parent.parent / "reports" / "benchmarks"


def pytest_addoption(parser):
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="time the benchmark tests with pytest-benchmark and save them under "
        "reports/benchmarks/ (without it they run once, untimed)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("--benchmark"):
        config.option.benchmark_only = True
        config.option.benchmark_autosave = get_tag()  # commit id and time, as --benchmark-autosave
        config.option.benchmark_storage = f"file://{BENCHMARK_STORAGE}"
    else:
        config.option.benchmark_disable = True
