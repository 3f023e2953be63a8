"""``backprop-bench sweep`` and ``report``: config, identity, reproducibility, resume, bad input."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.shard import CONVERGED, DIVERGED, PLATEAU, run_shard, write_shard
from backprop_bench.bench.sweep import SHARD_DIR, load_results
from backprop_bench.bench.sweep_config import SweepConfig, make_config
from backprop_bench.kernels import Criterion, NetSpec, backend, get_problem, init_population

SMALL = [
    "--lr",
    "0.01,1,100",
    "--init",
    "tutorial,xavier_uniform",
    "--hidden",
    "2,4",
    "--nets-per-cell",
    "60",
    "--epochs",
    "600",
]


def sweep(capsys, out, *extra):
    code = main(["sweep", *SMALL, "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_default_sweep_meets_its_brief():
    config = SweepConfig()
    assert len(config.lr) >= 6 and max(config.lr) / min(config.lr) >= 1000
    assert len(config.init) >= 5 and "tutorial" in config.init
    assert set(config.hidden) == {2, 3, 4, 8}
    assert config.nets_per_cell >= 1000 and config.epochs == 10_000 and config.control
    assert [c.hidden for c in config.cells()].count(0) == len(config.lr)


def test_toml_and_flags_combine_flags_winning(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('name = "mine"\nlr = [0.1, 0.5]\nhidden = [3]\nepochs = 700\n')
    from backprop_bench.bench.sweep_config import load_toml

    config = make_config(load_toml(path), {"lr": (2.0,), "seed": 5})
    assert (config.name, config.lr, config.hidden, config.epochs, config.seed) == (
        "mine",
        (2.0,),
        (3,),
        700,
        5,
    )


def test_a_shard_is_net_k_of_the_seed_trained_alone():
    # Pairing (common random numbers): net k of every cell starts from net k of the seed.
    config = SweepConfig(
        lr=(0.3, 3.0),
        init=("xavier_normal",),
        hidden=(3,),
        nets_per_cell=40,
        epochs=400,
        nets_per_shard=16,
        control=False,
        seed=4,
    )
    xor, spec = get_problem("xor"), NetSpec((2, 3, 1))
    for shard_id in (1, 4):  # lr 0.3 nets 16-31, lr 3 nets 16-31
        cell_index, cell, first, n = config.shard(shard_id)
        data = run_shard(config, shard_id)
        theta = init_population(spec, n, seed=4, init="xavier_normal", first_net=first)
        alone = backend("numpy").train_population(
            theta, spec, xor.X, xor.Y, cell.lr, 400, criterion=Criterion()
        )
        np.testing.assert_array_equal(data["net"], np.arange(first, first + n))
        np.testing.assert_array_equal(data["epochs_to_converge"], alone.epochs_to_converge)
        np.testing.assert_allclose(data["final_loss"], alone.final_loss, rtol=1e-10)


def test_statuses_and_signatures(tmp_path, capsys):
    code, out, _ = sweep(capsys, tmp_path / "s")
    assert code == 0
    # the name quoted: "sweep default: 25 cells" read as if it were the default sweep's
    assert out.startswith("sweep 'default': 15 cells x 60 nets")
    results = load_results(
        make_config(
            {},
            {
                "lr": (0.01, 1.0, 100.0),
                "init": ("tutorial", "xavier_uniform"),
                "hidden": (2, 4),
                "nets_per_cell": 60,
                "epochs": 600,
            },
        ),
        tmp_path / "s",
    )
    cells = results.config.cells()
    status = results.nets["status"].reshape(len(cells), -1)
    for i, cell in enumerate(cells):
        if cell.lr == 100.0:
            assert (status[i] == DIVERGED).all(), cell
        if cell.hidden == 0:
            assert (status[i] != CONVERGED).all(), cell  # XOR without a hidden layer
        if cell.hidden == 0 and cell.lr == 1.0:
            assert (status[i] == PLATEAU).all(), cell
        if cell.hidden == 4 and cell.lr == 1.0:
            assert (status[i] == CONVERGED).mean() > 0.9
        if cell.hidden == 4 and cell.lr == 0.01:
            assert (status[i] != CONVERGED).all()  # far too slow for 600 epochs
            assert (status[i] == PLATEAU).mean() > 0.5  # loss fell < 1% in the last 150
    outputs = results.nets["outputs_right"].reshape(len(cells), -1)
    assert (outputs[[c.hidden == 0 for c in cells]] <= 3).all()
    rows = gzip.decompress((tmp_path / "s" / "results.csv.gz").read_bytes()).decode().splitlines()
    assert len(rows) == 1 + results.nets["status"].size
    assert rows[0].startswith("cell,net,hidden,init,activation,loss,optimizer,lr,status,")


# cold numba compiles of its own kernels (20-45 s on a clean checkout): an integration test,
# run by `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_same_config_same_numbers_whatever_backend_threads_or_shard_size(tmp_path, capsys):
    assert sweep(capsys, tmp_path / "a")[0] == 0
    reference = snapshot(tmp_path / "a")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert sweep(capsys, tmp_path / "b", "--nets-per-shard", "25")[0] == 0
    finally:
        numba.set_num_threads(before)
    assert sweep(capsys, tmp_path / "c", "--backend", "numpy", "--nets-per-shard", "7")[0] == 0
    for other in ("b", "c"):
        got = snapshot(tmp_path / other)
        assert got["summary.json"] == reference["summary.json"], other
        assert got["results.csv.gz"] == reference["results.csv.gz"], other
        for name in reference:
            if name.startswith("figures/"):
                assert got[name] == reference[name], (other, name)


def _run_in_background(out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backprop_bench",
            "sweep",
            *SMALL,
            "--nets-per-shard",
            "6",
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_shards(out: Path, count: int, process) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shards = out / SHARD_DIR
        if shards.exists() and len(list(shards.glob("*.npz"))) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before it could be interrupted: {process.communicate()}")
        time.sleep(0.02)
    pytest.fail("no shards appeared")


@pytest.mark.parametrize(
    "how",
    # kill -9 at seeded moments is also the fault-injection tests' (tests/bench/test_faults.py)
    [pytest.param(signal.SIGKILL, marks=pytest.mark.slow), signal.SIGINT],
    ids=["kill-9", "ctrl-c"],
)
def test_a_killed_sweep_resumes_to_exactly_the_uninterrupted_result(tmp_path, capsys, how):
    assert sweep(capsys, tmp_path / "whole", "--nets-per-shard", "6")[0] == 0
    out = tmp_path / "killed"
    process = _run_in_background(out)
    _wait_for_shards(out, 5, process)
    process.send_signal(how)
    code = process.wait(timeout=60)
    stderr = process.stderr.read()
    process.stderr.close()
    stored = len(list((out / SHARD_DIR).glob("*.npz")))
    assert (
        5
        <= stored
        < SweepConfig(
            hidden=(2, 4),
            init=("tutorial", "xavier_uniform"),
            lr=(0.01, 1, 100),
            nets_per_cell=60,
            nets_per_shard=6,
        ).n_shards
    )
    if how == signal.SIGINT:
        assert code == 130 and "run the same command again to resume" in stderr, stderr
    # a half-written temporary file, as a kill during a write leaves, must be ignored
    (out / SHARD_DIR / ".000003.abc.tmp").write_bytes(b"partial")
    code, text, _ = sweep(capsys, out, "--nets-per-shard", "6")
    assert code == 0
    whole, resumed = snapshot(tmp_path / "whole"), snapshot(out)
    assert resumed["summary.json"] == whole["summary.json"]
    assert resumed["results.csv.gz"] == whole["results.csv.gz"]


def test_a_corrupt_shard_is_recomputed(tmp_path, capsys):
    assert sweep(capsys, tmp_path / "a")[0] == 0
    summary = (tmp_path / "a" / "summary.json").read_bytes()
    shard = tmp_path / "a" / SHARD_DIR / "000002.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    assert sweep(capsys, tmp_path / "a")[0] == 0
    assert (tmp_path / "a" / "summary.json").read_bytes() == summary


def test_report_rebuilds_from_stored_results_without_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "a"
    assert sweep(capsys, out)[0] == 0
    report = (out / "report.md").read_text()
    heatmap = (out / "figures" / "heatmap_sigmoid_bce_sgd.png").read_bytes()
    (out / "report.md").unlink()
    for figure in (out / "figures").iterdir():
        figure.unlink()
    import backprop_bench.bench.shard as shard_module

    monkeypatch.setattr(shard_module, "run_shard", lambda *a: pytest.fail("report trained a net"))
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == report
    assert (out / "figures" / "heatmap_sigmoid_bce_sgd.png").read_bytes() == heatmap
    for name in ("survival.png", "learning_curves.png", "failure_modes.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    for section in (
        "## Findings",
        "needs a hidden layer",
        "diverges",
        "crawls",
        "## Paired comparisons",
        "![survival curves](figures/survival.png)",
    ):
        assert section in report
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta) >= {"config", "versions", "commit", "machine", "training_seconds"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "0.1,-1"], "lr must be a positive finite number, got -1.0"),
        # a list that starts with a minus sign: argparse said "expected one argument"
        (["--lr", "-1,1"], "lr must be a positive finite number, got -1.0"),
        (["--lr", "-.5"], "lr must be a positive finite number, got -0.5"),
        (["--lr", ","], "the lr grid is empty; give at least one value"),
        (["--init", "tutorial,glorot"], "unknown init 'glorot'; choose one of"),
        (["--activation", "swish"], "unknown activation 'swish'"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--hidden", "0,4"], "hidden sizes must be a positive integer, got 0"),
        (["--nets-per-cell", "0"], "nets-per-cell must be a positive integer, got 0"),
        (["--epochs", "-5"], "epochs must be a non-negative integer, got -5"),
        (["--problem", "nand"], "unknown problem 'nand'"),
        (["--lr", "1,1"], "the lr grid repeats a value"),
        # two spellings of one cell ran as two cells of the same nets
        (["--init", "uniform,uniform:1"], "the init grid repeats a value: uniform:1"),
        (["--hidden", "n,2"], "the hidden grid repeats a value on xor: n and 2 are both 2 units"),
        (["--problem", "parity3,xor", "--hidden", "2n,4"], "on xor: 2n and 4 are both 4 units"),
        (["--lr", "0.5,"], "expected a comma-separated list such as 0.1,0.3,1, got '0.5,'"),
        (["--lr", "1_0"], "expected a comma-separated list such as 0.1,0.3,1, got '1_0'"),
        (["--batchnorm", "yes"], "expected a comma-separated list such as off,on, got 'yes'"),
        (["--hidden", "0"], "added by --control, or control = true in a config file"),
        (["--tolerance", "none"], "a run needs a rule for converging: --tolerance, or one of"),
        # no number of nets fits: the widths are what to change
        (["--hidden", "100000000"], "needs about 667.6 GiB of memory, more than the"),
        (["--hidden", "100000000"], "; use smaller --hidden widths"),
        (["--config", "missing.toml"], "config file 'missing.toml' does not exist"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["sweep", "--out", str(tmp_path / "never"), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "never").exists()


def test_a_toml_typo_names_the_known_keys(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text("lrs = [0.1]\n")
    code = main(["sweep", "--config", str(path), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key 'lrs' in sweep.toml; known keys: name, problem, lr," in err


def test_a_bad_toml_value_is_refused_also_where_a_flag_replaces_it(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text("lr = true\n")
    code = main(["sweep", "--config", str(path), "--lr", "1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "lr must be a number, got True (the config file's lr, which a flag replaces" in err
    assert not (tmp_path / "x").exists()


def test_out_holding_another_sweep_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "a"
    assert sweep(capsys, out)[0] == 0
    before = snapshot(out)
    code, _, err = sweep(capsys, out, "--seed", "1")
    assert code == 2 and "holds the results of a different sweep (it differs in: seed)" in err
    assert snapshot(out) == before
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, err = sweep(capsys, foreign)
    assert code == 2 and "already holds files that are not a sweep's (thesis.tex)" in err
    assert (foreign / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize(
    "flag, value, stored",
    [("--backend", "numpy", "numba"), ("--name", "other", "default")],
)
def test_a_sweep_resumed_with_another_backend_or_name_is_refused(tmp_path, capsys, flag, value,
                                                                 stored):  # fmt: skip
    # the grid is the same, but the backends round differently: a resume with the other one
    # mixed both in one result, and meta.json named the last run's alone (an outside audit)
    out = tmp_path / "a"
    assert sweep(capsys, out)[0] == 0
    before = snapshot(out)
    code, _, err = sweep(capsys, out, flag, value)
    assert code == 2 and err.count("\n") == 1
    assert f"holds a sweep with {flag} {stored}; give {flag} {stored} to resume" in err
    assert snapshot(out) == before


def test_report_on_a_folder_without_a_sweep(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no finished sweep (summary.json is missing)" in capsys.readouterr().err


def test_report_refuses_a_damaged_record_or_a_file_in_the_way(tmp_path, capsys):
    # a meta.json of another shape once rebuilt a report of "nan s on ? CPUs", and a file named
    # figures ended the command with status 1 and "File exists"
    out = tmp_path / "a"
    assert sweep(capsys, out)[0] == 0
    report = (out / "report.md").read_bytes()
    meta = (out / "meta.json").read_bytes()
    (out / "meta.json").write_text('{"x": 1}')
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "meta.json lacks config, fingerprint, command" in err
    (out / "meta.json").write_bytes(meta)
    shutil.move(out / "figures", tmp_path / "figures")
    (out / "figures").write_text("not a folder")
    assert main(["report", str(out)]) == 2
    assert "figures is a file where the report's figures go" in capsys.readouterr().err
    assert main(["report", str(out / "report.md")]) == 2
    assert "report.md is a file, not a sweep's folder" in capsys.readouterr().err
    assert (out / "report.md").read_bytes() == report  # nothing was rewritten


def test_progress_line():
    import io

    from backprop_bench.bench.progress import Progress

    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    progress.start(1000, already_done=200)
    progress.advance(300)
    progress.close()
    text = stream.getvalue()
    assert "resuming: 200 of 1,000 nets already done" in text
    assert "50% 500/1,000 nets" in text and "nets/s" in text and "left" in text
    quiet = io.StringIO()
    Progress(quiet).start(10)  # StringIO is not a terminal: nothing is printed
    assert quiet.getvalue() == ""


def test_write_shard_is_atomic(tmp_path):
    config = SweepConfig(
        lr=(1.0,), init=("tutorial",), hidden=(2,), nets_per_cell=5, epochs=5, control=False
    )
    data = run_shard(config, 0)
    path = write_shard(tmp_path, 0, data, config.fingerprint())
    assert path.name == "000000.npz" and [p.name for p in tmp_path.iterdir()] == ["000000.npz"]
    assert os.path.getsize(path) > 0


def test_findings_headings_say_what_the_sweep_shows(tmp_path, capsys):
    """On AND every net converges: no width or init "matters", and a width of one unit is "1
    hidden unit" (headings once claimed all three whatever the data); classifying the initial
    weights (0 epochs), the findings say what chance gets right and nothing of training (they
    once said that XOR needs a hidden layer, and that width and init did not matter)."""
    out = tmp_path / "and"
    argv = ["sweep", "--problem", "and", "--lr", "0.3,1", "--hidden", "1,2", "--init",
            "tutorial,xavier_uniform", "--nets-per-cell", "40", "--epochs", "3000"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "**Width did not matter here.**" in report and "Width matters" not in report
    assert "**The init did not matter here.** With 1 hidden unit at lr 0.3" in report
    assert "1 hidden units" not in report and "### 1 hidden unit\n" in report
    assert "**Too low a learning rate crawls.**" in report  # 3.3 times the epochs at lr 0.3
    still = tmp_path / "still"
    argv = ["sweep", "--lr", "0.3,1", "--hidden", "4", "--nets-per-cell", "40", "--epochs", "0"]
    assert main([*argv, "--out", str(still)]) == 0
    report = (still / "report.md").read_text()
    findings = report.split("## Findings")[1].split("\n## ")[0]
    assert "**Nets with a hidden layer, as they start (0 epochs: nothing trained).**" in findings
    assert "**Nets without one, as they start" in findings
    assert "get 2 of 4 outputs right" in findings
    for trained in ("needs a hidden layer", "learning rate", "Width", "The init", "How nets fail"):
        assert trained not in findings
    capsys.readouterr()


def test_a_rerun_of_a_finished_sweep_says_it_trained_nothing(tmp_path, capsys):
    # it said "training took 8 s" of the run before
    code, out, _ = sweep(capsys, tmp_path / "a")
    assert code == 0 and "(training took " in out
    code, out, _ = sweep(capsys, tmp_path / "a")
    assert code == 0 and "(nothing left to train; its training took " in out
