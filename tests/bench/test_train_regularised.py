"""``backprop-bench train`` with batch norm, dropout and weight decay."""

import json

import numpy as np
import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.train import TrainConfig, run_train
from backprop_bench.kernels import NetSpec, Optimizer, get_problem, init_population, streams
from backprop_bench.kernels import numpy_backend as npb


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_shows_the_options_and_learns_xor(capsys):
    code, out, _ = run(
        capsys,
        "train",
        "--batchnorm",
        "--dropout",
        "0.1",
        "--weight-decay",
        "1e-4",
        "--epochs",
        "1500",
        "--every",
        "500",
        "--backend",
        "numpy",
    )
    assert code == 0
    assert "batch norm, dropout 0.1" in out and "sgd, weight decay 0.0001" in out
    assert "converged at epoch" in out and "WRONG" not in out


def test_train_json_matches_the_population_kernel_for_that_net(capsys):
    argv = [
        "train",
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.01",
        "--lr",
        "0.05",
        "--dropout",
        "0.2",
        "--epochs",
        "300",
        "--seed",
        "3",
        "--net",
        "5",
        "--backend",
        "numpy",
        "--json",
    ]
    code, out, _ = run(capsys, *argv)
    doc = json.loads(out)
    assert code == 0 and doc["config"]["dropout"] == 0.2 and doc["config"]["weight_decay"] == 0.01
    # net 5 of seed 3 in a population of 8: the same initial weights and the same masks
    spec, xor = NetSpec((2, 4, 1), dropout=0.2), get_problem("xor")
    result = npb.train_population(
        init_population(spec, 8, 3),
        spec,
        xor.X,
        xor.Y,
        0.05,
        300,
        optimizer=Optimizer("adamw", weight_decay=0.01),
        keys=streams.net_keys(3, 0, 8),
        early_stop=False,
    )
    assert doc["outcome"]["final_loss"] == pytest.approx(float(result.final_loss[5]), rel=1e-12)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dropout", "1"], "--dropout must be in [0, 1)"),
        (["--weight-decay", "-1"], "--weight-decay must be"),
        (["--batchnorm", "--hidden", "none"], "act on hidden layers"),
        # the regularised loop's limits, refused before it runs (it raised through a traceback)
        (["--batchnorm", "--batch-size", "1"], "full-batch updates only; leave --batch-size at"),
        (["--dropout", "0.1", "--batch-size", "2"], "full-batch updates only"),
        (["--optimizer", "adamw", "--batch-size", "1"], "full-batch updates only"),
        (["--weight-decay", "1e-4", "--rms-below", "0.1"], "use --tolerance or --loss-below"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    code, _, err = run(capsys, "train", "--epochs", "5", *argv)
    assert code == 2 and err.count("\n") == 1
    assert message in err and "Traceback" not in err


def test_predictions_are_in_evaluation_mode():
    run_ = run_train(TrainConfig(batchnorm=True, epochs=50, every=50, backend="numpy"))
    assert len(run_.predictions) == 4 and all(np.isfinite(p["output"][0]) for p in run_.predictions)
