"""Sweep axes for batch norm, dropout and weight decay: config, cells, pairing, report."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.report import render
from backprop_bench.bench.shard import run_shard
from backprop_bench.bench.sweep_config import SweepConfig, config_from_dict, load_toml

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "default"
SMALL = ["--hidden", "4", "--init", "tutorial", "--lr", "0.1,3", "--nets-per-cell", "30",
         "--epochs", "400", "--backend", "numpy", "--no-control"]  # fmt: skip


def test_a_sweep_without_the_axes_keeps_its_identity():
    config = SweepConfig()
    assert not {"batchnorm", "dropout", "weight_decay"} & set(config.to_dict())
    stored = json.loads((REFERENCE / "sweep.json").read_text())
    assert config_from_dict(stored) == config
    with_axes = SweepConfig(batchnorm=(False, True), dropout=(0.0, 0.25))
    assert with_axes.to_dict()["batchnorm"] == [False, True]
    assert with_axes.fingerprint() != config.fingerprint()
    assert config_from_dict(with_axes.to_dict()) == with_axes


def test_the_default_report_renders_unchanged_from_its_summary():
    summary = json.loads((REFERENCE / "summary.json").read_text())
    meta = json.loads((REFERENCE / "meta.json").read_text())
    names = sorted(p.name for p in (REFERENCE / "figures").iterdir())
    text = render(summary, meta, names)
    assert text == (REFERENCE / "report.md").read_text()
    assert "Batch norm, dropout" not in text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dropout": (0.0, 1.0)}, "dropout must be in"),
        ({"weight_decay": -0.1}, "weight_decay must be"),
        ({"batchnorm": "yes"}, "batchnorm must be true or false"),
        ({"dropout": (0.1, 0.1)}, "repeats a value"),
    ],
)
def test_bad_axes_are_refused_in_one_place(values, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig(**values)


def test_toml_axes_and_cells(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("batchnorm = [false, true]\ndropout = [0.0, 0.3]\nweight_decay = [0.0]\n"
                    "hidden = [4]\ninit = ['tutorial']\nlr = [1.0]\n")  # fmt: skip
    config = SweepConfig(**load_toml(path))
    cells = config.cells()
    control = [c for c in cells if c.hidden == 0]
    assert len(control) == 1 and not control[0].batchnorm and control[0].dropout == 0
    assert len(cells) == 1 + 4
    assert config.spec(cells[-1]).describe().endswith("batch norm, dropout 0.3")


def test_net_k_has_the_same_weights_and_masks_in_every_cell():
    config = SweepConfig(hidden=(4,), init=("tutorial",), lr=(1.0,), dropout=(0.0, 0.2),
                         nets_per_cell=12, nets_per_shard=4, epochs=50, control=False,
                         backend="numpy")  # fmt: skip
    whole = SweepConfig(**{**config.__dict__, "nets_per_shard": 12})
    # shard 1 of cell 1 (dropout 0.2) holds nets 4..7: the same as those nets in one big shard
    part, full = run_shard(config, 4), run_shard(whole, 1)
    for key in ("epochs_to_converge", "final_loss", "param_norm"):
        np.testing.assert_array_equal(part[key], full[key][4:8])


def test_sweep_with_the_axes_reports_paired_findings(tmp_path, capsys):
    out = tmp_path / "reg"
    code = main(["sweep", *SMALL, "--batchnorm", "off,on", "--dropout", "0,0.2", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    report = (out / "report.md").read_text()
    assert "## Batch norm, dropout and weight decay" in report
    assert "the range of learning rates that converge" in report
    assert "**What dropout does to 4 hidden units.**" in report
    assert "### Dropout, paired" in report and "| 4 | 3 | 0 → 0.2 |" in report
    summary = json.loads((out / "summary.json").read_text())
    assert {p["axis"] for p in summary["paired"]} == {"lr", "batchnorm", "dropout"}
    # the axes' figure: drawn, linked from the section, from the full summary (the other
    # figures show the first value of each axis only)
    assert "![convergence and epochs by batch norm, dropout](figures/regularised.png)" in report
    assert (out / "figures" / "regularised.png").stat().st_size > 10_000
    header = gzip.decompress((out / "results.csv.gz").read_bytes()).decode().splitlines()[0]
    assert header.endswith(",batchnorm,dropout")


def test_the_axes_figure_of_a_sweep_where_no_cell_reaches_a_median(tmp_path, capsys):
    # a log axis of nothing but NaN: the report failed, saying summary.json was malformed
    out = tmp_path / "short"
    argv = ["sweep", *SMALL, "--dropout", "0,0.5", "--epochs", "5", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "figures" / "regularised.png").stat().st_size > 10_000


def test_a_sweep_of_two_problems_keeps_them_apart_in_the_axes_section(tmp_path, capsys):
    # both problems' cells were drawn as one zigzagging line, and the findings listed
    # "dropout 0.5" twice without saying which problem each was
    from backprop_bench.bench import report_regularised

    out = tmp_path / "two"
    argv = ["sweep", *SMALL, "--problem", "xor,parity3", "--dropout", "0,0.5", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    _, by_value = report_regularised._shown(summary, "dropout")
    assert {c["problem"] for cells in by_value.values() for c in cells} == {"xor"}
    assert all(len(cells) == 2 for cells in by_value.values())  # lr 0.1 and 3, once each
    report = (out / "report.md").read_text()
    assert "**What dropout does to 4 hidden units on XOR.**" in report
    assert report.count("dropout 0.5: ") == 1
    assert "| problem | hidden | lr | dropout A → B |" in report
