"""The committed reference report of the default sweep matches a fresh run, number for number.

Re-running all 200,000 nets takes minutes; three shards of the default sweep are re-trained here
(a control cell, a slow low-rate cell and a fast one) and their rows compared, as text, with the
committed ``reports/default/results.csv.gz``, along with their cells' counts in summary.json.
"""

import json
from pathlib import Path

import pytest
from backprop_bench.bench.shard import run_shard
from backprop_bench.bench.summary import RESULT_COLUMNS, net_rows, read_results_csv
from backprop_bench.bench.sweep_config import SweepConfig

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "default"


@pytest.fixture(scope="module")
def reference():
    rows = read_results_csv(REFERENCE / "results.csv.gz")
    summary = json.loads((REFERENCE / "summary.json").read_text())
    return rows, summary


def test_reference_is_the_default_sweep(reference):
    rows, summary = reference
    config = SweepConfig()
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert len(rows) - 1 == config.n_nets() == summary["n_nets"]
    assert summary["sweep"] == config.results_dict()


@pytest.mark.parametrize("label", ["control lr 0.01", "4 hidden lr 0.01", "8 hidden lr 1"])
def test_a_fresh_run_matches_the_reference(reference, label):
    rows, summary = reference
    config = SweepConfig()
    cells = config.cells()
    wanted = {
        "control lr 0.01": (0, 0.01),
        "4 hidden lr 0.01": (4, 0.01),
        "8 hidden lr 1": (8, 1.0),
    }[label]
    index = next(i for i, c in enumerate(cells) if (c.hidden, c.lr) == wanted
                 and c.init == config.init[0])  # fmt: skip
    fresh = net_rows(cells, run_shard(config, index))  # one shard per cell by default
    stored = [row for row in rows[1:] if row[0] == str(index)]
    assert fresh == stored
    statuses = [row[RESULT_COLUMNS.index("status")] for row in fresh]
    counts = summary["cells"][index]["counts"]
    assert {name: statuses.count(name) for name in counts} == counts
