"""The ``backprop-bench`` command as a user runs it."""

import json
import re
import subprocess
import sys

import pytest
from backprop_bench.bench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_default_train_is_the_tutorial_and_learns_xor(capsys):
    code, out, err = run(capsys, "train")
    assert code == 0 and err == ""
    assert out.startswith(
        "training 2-4-1 sigmoid/sigmoid, bce (mean) on xor: sgd lr 0.5, init "
        "tutorial, seed 0 net 0, 10000 epochs, numba float64"
    )
    epochs = [int(line.split()[0]) for line in out.splitlines() if line[:8].strip().isdigit()]
    assert epochs == list(range(0, 10_001, 1000))
    assert "converged at epoch" in out
    predictions = out.split("predictions:")[1].splitlines()[2:]
    assert len(predictions) == 4 and all(line.endswith(" ok") for line in predictions)


def test_json_holds_config_history_predictions_and_is_deterministic(capsys):
    argv = ["train", "--json", "--epochs", "3000", "--every", "500", "--seed", "3"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    doc = json.loads(out)
    assert doc["config"]["layers"] == [2, 4, 1] and doc["config"]["lr"] == 0.5
    assert [row["epoch"] for row in doc["history"]] == [0, 500, 1000, 1500, 2000, 2500, 3000]
    assert set(doc["history"][0]) == {"epoch", "loss", "accuracy", "grad_norm"}
    assert [p["target"] for p in doc["predictions"]] == [[0.0], [1.0], [1.0], [0.0]]
    assert doc["outcome"]["status"] == "converged"
    assert run(capsys, *argv)[1] == out  # same config, same numbers


def test_backends_agree_through_the_cli(capsys):
    argv = [
        "train",
        "--json",
        "--epochs",
        "2000",
        "--activation",
        "tanh",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--hidden",
        "3",
    ]
    numba_doc = json.loads(run(capsys, *argv, "--backend", "numba")[1])
    numpy_doc = json.loads(run(capsys, *argv, "--backend", "numpy")[1])
    assert numba_doc["outcome"]["epochs_to_converge"] == numpy_doc["outcome"]["epochs_to_converge"]
    for a, b in zip(numba_doc["history"], numpy_doc["history"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-10)


def test_no_hidden_layer_cannot_learn_xor(capsys):
    code, out, _ = run(capsys, "train", "--layers", "2,1", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["outcome"]["status"] == "not_converged"
    assert doc["outcome"]["final_accuracy"] <= 0.75


def test_learning_rate_100_is_reported_diverged(capsys):
    code, out, err = run(capsys, "train", "--lr", "100")
    assert code == 0 and err == ""
    assert "diverged at epoch" in out


def test_a_loss_too_large_for_six_decimals_keeps_the_table_s_columns(capsys):
    # a loss of 8e306 was printed with six decimals, 300 columns wide
    code, out, _ = run(capsys, "train", "--lr", "1e308", "--epochs", "2", "--every", "1")
    assert code == 0
    rows = out.splitlines()[1:4]
    assert rows[0] == "   epoch        loss  accuracy   grad norm"
    assert len({len(row) for row in rows}) == 1 and "8.432e+306" in rows[2]


def test_other_problems_losses_optimizers_and_float32(capsys):
    code, out, _ = run(
        capsys,
        "train",
        "--problem",
        "parity3",
        "--hidden",
        "6",
        "--activation",
        "leaky-relu",
        "--loss",
        "mse",
        "--optimizer",
        "momentum",
        "--init",
        "he-uniform",
        "--dtype",
        "float32",
        "--backend",
        "numpy",
        "--json",
        "--early-stop",
    )
    doc = json.loads(out)
    assert code == 0 and doc["config"]["layers"] == [3, 6, 1] and len(doc["predictions"]) == 8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--lr", "0"], "--lr must be a positive finite number, got 0.0"),
        (["train", "--lr", "nan"], "--lr must be a positive finite number, got nan"),
        (["train", "--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
        (["train", "--epochs", "-3"], "--epochs must be a non-negative integer, got -3"),
        (["train", "--every", "0"], "--every must be a positive integer"),
        (["train", "--problem", "nand"], "unknown problem 'nand'; choose one of: xor, and, or"),
        (["train", "--activation", "swish"], "unknown activation 'swish'; choose one of"),
        (["train", "--loss", "hinge"], "unknown loss 'hinge'; choose one of: bce, mse"),
        (["train", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["train", "--init", "glorot"], "unknown init 'glorot'; choose one of: tutorial"),
        (["train", "--backend", "jax"], "unknown backend 'jax'; choose one of: numpy, numba"),
        (["train", "--dtype", "float16"], "unknown dtype 'float16'; choose one of"),
        (["train", "--hidden", "0"], "every layer width must be at least 1"),
        (["train", "--hidden", "4,x"], "expected comma-separated integers"),
        (["train", "--layers", "3,4,1"], "take 3 inputs but problem xor has 2; start --layers"),
        (["train", "--layers", "2,4,2"], "give 2 outputs but problem xor has 1; end --layers"),
        (["train", "--layers", "2,1", "--hidden", "4"], "not allowed with argument"),
        (["train", "--tolerance", "-1"], r"--tolerance must be in \(0, 0.5\), got -1.0"),
        (["train", "--momentum", "1.5"], r"momentum must be in \[0, 1\)"),
        (["train", "--seed", "-1"], "--seed must be a non-negative integer"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "choose a command: train, sweep, report, gradcheck, vanishing or live"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("backprop-bench: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err


def test_console_entry_point_exits_2_without_traceback():
    bad = subprocess.run(
        [sys.executable, "-m", "backprop_bench", "train", "--lr", "-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (
        bad.stderr.strip()
        == "backprop-bench: error: --lr must be a positive finite number, got -1.0"
    )
    good = subprocess.run(
        [sys.executable, "-m", "backprop_bench", "train", "--epochs", "10", "--backend", "numpy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0 and "predictions:" in good.stdout


@pytest.mark.slow  # every kernel of both backends in both dtypes: minutes of cold compiles
def test_gradcheck_without_the_catalogue_passes_with_a_full_mutation_score(capsys):
    code, out, err = run(capsys, "gradcheck", "--no-catalogue")
    assert code == 0 and "mutation score: 42/42 wrong backward passes caught" in out
    assert "false alarms on correct backward passes: 0" in out
    assert "catalogue of user-style functions" not in out
    assert out.rstrip().endswith("gradcheck passed")


@pytest.mark.slow  # the whole command, with the catalogue in its second process
def test_gradcheck_passes_with_a_full_mutation_score(capsys):
    code, out, err = run(capsys, "gradcheck")
    # the command's own progress, a line as each of its three parts starts and one at the end
    # (the checks' own progress lines, which a loaded machine brought, are off within it)
    assert code == 0
    lines = err.splitlines()
    assert [line.split(" (")[-1].split(",")[0] for line in lines[:3]] == ["1/3", "2/3", "3/3"]
    assert all(line.startswith("backprop-bench gradcheck: ") for line in lines), err
    assert re.fullmatch(r"backprop-bench gradcheck: done \(\d+ s\)", lines[-1]) and len(lines) == 4
    assert "mutation score: 42/42 wrong backward passes caught" in out
    assert "false alarms on correct backward passes: 0" in out
    assert "catalogue of user-style functions" in out and "NOT CAUGHT" not in out
    assert "FALSE ALARM" not in out and out.rstrip().endswith("gradcheck passed")


def _quick_gradcheck(monkeypatch, rows):
    """gradcheck with the kernel checks replaced and the mutants limited to one kind (the full
    command runs once, above)."""
    import backprop_bench.verify.kernel_checks as kc
    import backprop_bench.verify.mutants as mutants

    monkeypatch.setattr(kc, "all_rows", lambda: rows)
    monkeypatch.setattr(mutants, "MUTANTS", {"sign flip": mutants.MUTANTS["sign flip"]})
    monkeypatch.setattr(mutants, "false_alarms", lambda: [])


def test_gradcheck_json(capsys, monkeypatch):
    import backprop_bench.verify.kernel_checks as kc

    _quick_gradcheck(monkeypatch, [kc.Row("a kernel", "numpy", "float64", 1e-12, 1e-12, True, "")])
    code, out, _ = run(capsys, "gradcheck", "--json", "--no-catalogue")
    doc = json.loads(out)
    assert code == 0 and doc["passed"] and doc["mutation_score"] == {"caught": 2, "total": 2}
    assert doc["catalogue"] == []
    assert {"kernel", "backend", "dtype", "worst_rel_error", "reference_error", "passed"} <= set(
        doc["kernels"][0]
    )


def test_gradcheck_exits_1_when_a_kernel_fails(capsys, monkeypatch):
    import backprop_bench.verify.kernel_checks as kc

    failing = kc.Row("a broken kernel", "numpy", "float64", 0.5, 1e-12, False, "FAILED here")
    _quick_gradcheck(monkeypatch, [failing])
    code, out, _ = run(capsys, "gradcheck", "--no-catalogue")
    assert code == 1 and "FAIL" in out and out.rstrip().endswith("gradcheck FAILED")


@pytest.mark.parametrize(
    "argv, last",
    [
        # a net stopped by --early-stop, or by diverging, between two records: the table ended
        # at epoch 0, without the epoch or the loss the net ended at
        (["--early-stop", "--lr", "1", "--every", "500"], "283    0.286662      100%   5.121e-02"),
        (["--lr", "100", "--every", "500"], "1    8.719946       50%   7.971e-01"),
    ],
)
def test_a_net_that_stops_between_records_shows_the_epoch_it_stopped_at(argv, last, capsys):
    code, out, _ = run(capsys, "train", "--backend", "numpy", *argv)
    rows = out.split("grad norm\n")[1].split("\n")
    assert code == 0 and rows[1].strip() == last
    code, out, _ = run(capsys, "train", "--backend", "numpy", "--json", *argv)
    doc = json.loads(out)
    assert doc["history"][-1]["epoch"] == doc["outcome"]["epochs_trained"]
    assert doc["history"][-1]["loss"] == doc["outcome"]["final_loss"]
