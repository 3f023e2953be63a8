"""Plain ``pytest`` spreads the quick suite over the cores; every other run stays in one
process (``tests/conftest.py``)."""

from types import SimpleNamespace

import pytest

from .conftest import MAX_WORKERS, quick_suite_workers


def _config(benchmark=False, **option):
    values = dict(numprocesses=None, markexpr="not slow", collectonly=False, usepdb=False)
    values.update(option)
    source = values.pop("args_source", pytest.Config.ArgsSource.TESTPATHS)
    return SimpleNamespace(option=SimpleNamespace(**values), args_source=source,
                           getoption=lambda name: benchmark if name == "--benchmark" else None)


def test_plain_pytest_takes_a_worker_per_core_up_to_the_cap(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert quick_suite_workers(_config(), 2) == 2
    assert quick_suite_workers(_config(), 64) == MAX_WORKERS
    assert quick_suite_workers(_config(), 1) is None


@pytest.mark.parametrize("change", [
    dict(numprocesses=0),  # -n 0
    dict(numprocesses=3),  # -n 3: xdist's own
    dict(args_source=pytest.Config.ArgsSource.ARGS),  # paths given
    dict(markexpr="slow"),
    dict(benchmark=True),
    dict(collectonly=True),
    dict(usepdb=True),
], ids=["n0", "n3", "paths", "slow", "benchmark", "collect-only", "pdb"])  # fmt: skip
def test_any_other_run_stays_in_one_process(monkeypatch, change):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert quick_suite_workers(_config(**change), 2) is None


def test_without_xdist_or_inside_a_worker_nothing_changes(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    config = _config()
    del config.option.numprocesses  # xdist not installed: no such option
    assert quick_suite_workers(config, 2) is None
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert quick_suite_workers(_config(), 2) is None
