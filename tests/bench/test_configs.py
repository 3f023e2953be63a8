"""Every example config in configs/ parses and runs, with its nets and epochs cut down, to the
text of its report, so that none of them can rot; one runs through the command, figures too."""

from pathlib import Path

import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.figures import figure_names
from backprop_bench.bench.report import render
from backprop_bench.bench.summary import summarize
from backprop_bench.bench.sweep import load_results, run_sweep
from backprop_bench.bench.sweep_config import load_toml, make_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_config_says_where_it_comes_from(path):
    text = path.read_text()
    config = make_config(load_toml(path), {})
    assert config.name == path.stem  # the report lands in reports/<file name>
    assert text.startswith("#") and "not" in text.lower()  # cites, and says what is unknown
    assert config.n_nets() * max(config.epochs, 1) <= 2e8  # minutes, not hours, with numba


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_a_config_runs_with_tiny_sizes(path, tmp_path):
    values = load_toml(path)
    tiny = {"nets_per_cell": 3, "nets_per_shard": 3, "backend": "numpy",
            "epochs": min(values.get("epochs", 10_000), 8)}  # fmt: skip
    config = make_config(values, tiny)
    run_sweep(config, tmp_path)
    summary = summarize(load_results(config, tmp_path))
    text = render(summary, {}, figure_names(summary))
    assert text.startswith(f"# Convergence sweep `{path.stem}`")
    assert f"Converged means: {config.criterion.describe()}." in text


def test_the_zero_epoch_config_runs_through_the_command(tmp_path, capsys):
    path = next(p for p in CONFIGS if p.stem == "xor-initial-weights")
    code = main(["sweep", "--config", str(path), "--nets-per-cell", "5", "--backend", "numpy",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "at most 0 epochs" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "figures" / "survival.png").stat().st_size > 0


def test_a_sweep_of_several_problems_says_which_problem_each_pair_is(tmp_path):
    # the paired table listed every problem's pairs under the same columns, none named
    path = next(p for p in CONFIGS if p.stem == "tesauro-janssens-parity")
    values = load_toml(path)
    config = make_config(values, {"nets_per_cell": 3, "nets_per_shard": 3, "backend": "numpy",
                                  "epochs": 8})  # fmt: skip
    assert len(config.problem) > 1 and len(config.lr) > 1
    run_sweep(config, tmp_path)
    summary = summarize(load_results(config, tmp_path))
    text = render(summary, {}, figure_names(summary))
    table = text.split("## Paired comparisons of learning rates")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| problem | hidden | lr A → lr B |")
    named = {row.split(" | ")[0].removeprefix("| ") for row in rows[1:]}
    assert named == set(config.problem)
    assert all(row.count("|") == rows[0].count("|") for row in rows)
