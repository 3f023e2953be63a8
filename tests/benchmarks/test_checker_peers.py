"""Peers' gradient checkers and ours on the checker catalogue: one run, one table.

Plain ``pytest`` runs it once, skipping full-Jacobian peers on cases estimated to take over
QUICK_SECONDS; ``pytest --benchmark`` runs everything up to FULL_SECONDS per (case, peer) and
saves the rows and the table to ``reports/benchmarks/checker_peers.json``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pytest

# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = pytest.mark.slow

pytest.importorskip("torch", reason="the peers extra is not installed: pip install -e '.[peers]'")
pytest.importorskip("jax", reason="the peers extra is not installed: pip install -e '.[peers]'")

from backprop_bench.verify.catalogue import CASES  # noqa: E402

from .checker_peers import PEERS, peer_table, rows_as_json, run_peers  # noqa: E402

QUICK_SECONDS = 3.0  # a plain run stays within minutes, and small cases finish under load
FULL_SECONDS = 60.0  # a full-Jacobian peer on the ~83,000-parameter net would take minutes
REPORT = Path(__file__).resolve().parents[2] / "reports" / "benchmarks" / "checker_peers.json"


def _write_atomically(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def test_peers_on_the_catalogue(benchmark, request, capsys):
    full = request.config.getoption("--benchmark")
    limit = FULL_SECONDS if full else QUICK_SECONDS
    rows = benchmark.pedantic(
        run_peers, args=(CASES,), kwargs={"max_seconds": limit, "ours": True}, rounds=1
    )
    table = peer_table(rows)
    with capsys.disabled():
        print(f"\ngradient checkers on the catalogue ({len(CASES)} cases, limit {limit:g} s)")
        print(table)
    benchmark.extra_info["table"] = table
    if full:
        import jax
        import scipy
        import torch

        versions = {"numpy": np.__version__, "scipy": scipy.__version__}
        versions |= {"torch": torch.__version__, "jax": jax.__version__}
        report = {
            "machine": platform.platform(),
            "versions": versions,
            "max_seconds": limit,
            "table": table,
            "rows": rows_as_json(rows),
        }
        _write_atomically(REPORT, json.dumps(report, indent=1, default=str))

    assert len(rows) == len(CASES) * (len(PEERS) + 1)
    by = {(r["case"].name, r["peer"]): r for r in rows}
    # the wiring works: on small float64 MLPs torch's slow gradcheck and JAX's reverse check
    # run without crashing, accept the correct gradient and reject the sign flip
    for peer in ("torch gradcheck", "jax check_grads rev"):
        name = "float64 tanh 2-16-1 bce, batch 64 (65 params)"
        assert by[f"{name}: correct", peer]["outcome"] == "pass", by[f"{name}: correct", peer]
        assert by[f"{name}: sign flip", peer]["outcome"] == "fail"
