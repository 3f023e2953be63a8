"""The sweep options of the classic experiments: problem axis, widths tied to the problem,
reduction, stopping rules, 0 epochs, per-net outputs; identical across backends, threads and
shard sizes, and earlier sweeps' identity unchanged."""

import json
from pathlib import Path

import numba
import numpy as np
import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.summary import RESULT_COLUMNS, read_results_csv
from backprop_bench.bench.sweep_config import SweepConfig, config_from_dict, make_config
from backprop_bench.kernels import NetSpec, get_problem, init_population
from backprop_bench.kernels import numpy_backend as npb

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "default"
CLASSIC = ["--problem", "xor,parity3", "--hidden", "2n,3", "--reduction", "sum", "--loss", "mse",
           "--tolerance", "none", "--rms-below", "0.4", "--lr", "0.5,1", "--init", "uniform:1",
           "--nets-per-cell", "30", "--epochs", "300", "--no-control"]  # fmt: skip


def run(capsys, out, *argv):
    code = main(["sweep", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return out


# cold numba compiles of its own kernels (20-45 s on a clean checkout): an integration test,
# run by `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_new_options_give_the_same_bytes_whatever_backend_threads_or_shard_size(tmp_path, capsys):
    reference = run(capsys, tmp_path / "a", *CLASSIC)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        other = [run(capsys, tmp_path / "b", *CLASSIC, "--nets-per-shard", "15")]
    finally:
        numba.set_num_threads(before)
    other.append(run(capsys, tmp_path / "c", *CLASSIC, "--backend", "numpy",
                     "--nets-per-shard", "7"))  # fmt: skip
    for folder in other:
        for name in ("summary.json", "results.csv.gz"):
            assert (folder / name).read_bytes() == (reference / name).read_bytes(), (folder, name)
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["definitions"]["converged"] == "RMS error below 0.4"
    assert {c["problem"] for c in summary["cells"]} == {"xor", "parity3"}
    converged = [c["counts"]["converged"] for c in summary["cells"]]
    assert 0 < sum(converged) < 30 * len(converged)  # the rule is met by some nets, not all
    report = (reference / "report.md").read_text()
    assert "seed 0, loss summed over the patterns. Converged means: RMS error below 0.4." in report
    assert "## By problem" in report and "### parity3" in report


def test_widths_follow_the_problem():
    config = SweepConfig(problem=["parity2", "parity3", "parity4"], hidden=["2n", "n", 5],
                         lr=[1.0], init=["tutorial"], control=False)  # fmt: skip
    shapes = [config.spec(cell).layers for cell in config.cells()]
    assert shapes == [(2, 4, 1), (2, 2, 1), (2, 5, 1), (3, 6, 1), (3, 3, 1), (3, 5, 1),
                      (4, 8, 1), (4, 4, 1), (4, 5, 1)]  # fmt: skip
    assert [c.width for c in config.cells()][:3] == ["2n", "n", 5]


def test_zero_epochs_store_the_outputs_of_the_initial_weights(tmp_path, capsys):
    out = run(capsys, tmp_path / "z", "--epochs", "0", "--lr", "1", "--init", "tutorial",
              "--hidden", "3", "--nets-per-cell", "10", "--backend", "numpy")  # fmt: skip
    rows = read_results_csv(out / "results.csv.gz")
    column = {name: i for i, name in enumerate(rows[0])}
    grid = [r for r in rows[1:] if r[column["hidden"]] == "3"]
    theta = init_population(NetSpec((2, 3, 1)), 10, seed=0, init="tutorial")
    expected = npb.forward(theta, NetSpec((2, 3, 1)), get_problem("xor").X).a[-1][:, 0, :]
    stored = np.array([[float(v) for v in r[column["outputs"]].split()] for r in grid])
    np.testing.assert_allclose(stored, expected.T, rtol=1e-5)  # 6 significant digits stored
    assert {r[column["status"]] for r in rows[1:]} <= {"undetermined", "converged"}
    assert all(r[column["epochs_trained"]] == "0" for r in rows[1:])


def test_earlier_sweeps_keep_their_identity_and_folders():
    meta = json.loads((REFERENCE / "meta.json").read_text())
    assert SweepConfig().fingerprint() == meta["fingerprint"]
    stored = json.loads((REFERENCE / "sweep.json").read_text())
    assert config_from_dict(stored) == SweepConfig()
    assert "reduction" not in SweepConfig().to_dict()
    assert SweepConfig(reduction="sum").to_dict()["reduction"] == "sum"
    assert SweepConfig(reduction="sum").fingerprint() != SweepConfig().fingerprint()
    assert RESULT_COLUMNS[-4:] == ("problem", "flat_units", "outputs_near_half", "outputs")


def test_toml_takes_the_new_keys(tmp_path):
    path = tmp_path / "classic.toml"
    path.write_text('problem = ["parity2", "parity3"]\nhidden = ["2n"]\nreduction = "sum"\n'
                    'tolerance = "none"\ntss_below = 0.04\nepochs = 0\n')  # fmt: skip
    from backprop_bench.bench.sweep_config import load_toml

    config = make_config(load_toml(path), {})
    assert config.problems == ("parity2", "parity3") and config.epochs == 0
    assert config.criterion.describe() == "total sum of squares below 0.04"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--hidden", "0n"], "multiples of the problem's inputs such as n or 2n, got '0n'"),
        (["--tolerance", "none"], "a run needs a rule for converging: --tolerance, or one of"),
        # the flags named, not Criterion's fields ("rms_below", "alone or with max_error")
        (["--rms-below", "0.1", "--tss-below", "0.1"],
         "--rms-below and --tss-below both bound the total error over the patterns; give one of "
         "them (alone or with --tolerance)"),
        (["--rms-below", "-1"], "rms_below must be a positive finite number"),
        (["--reduction", "avg"], "unknown reduction 'avg'; choose one of: mean, sum"),
        (["--problem", "xor,xor"], "the problem list repeats a value"),
        (["--problem", "parity16", "--hidden", "200000000n"], "hidden size 200000000n (16 in"),
    ],
)
def test_bad_classic_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["sweep", "--out", str(tmp_path / "never"), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "never").exists()
