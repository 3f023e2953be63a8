"""Shortcut nets and per-pattern/minibatch updates in ``train``, ``sweep`` and sweep TOML files:
one place checks them, results do not depend on backend or shard size, and sweeps at the
defaults keep the identity of the committed reference sweep."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.shard import run_shard
from backprop_bench.bench.sweep_config import SweepConfig, config_from_dict, make_config

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "default"


def test_the_default_sweep_keeps_the_reference_sweeps_identity():
    config = SweepConfig()
    meta = json.loads((REFERENCE / "meta.json").read_text())
    assert config.fingerprint() == meta["fingerprint"]
    stored = (REFERENCE / "sweep.json").read_text()
    assert json.dumps(config.to_dict(), indent=2) + "\n" == stored
    assert config_from_dict(json.loads(stored)) == config  # stored without the newer keys


def test_toml_keys_and_flags(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('shortcut = true\nbatch_size = 1\nhidden = [1]\n')
    from backprop_bench.bench.sweep_config import load_toml

    config = make_config(load_toml(path), {})
    assert config.shortcut and config.batch_size == 1
    assert config.spec(config.cells()[-1]).shortcut  # hidden cells get shortcuts
    assert not config.spec(config.cells()[0]).shortcut  # the control has no hidden layer
    assert make_config({"batch_size": "full"}, {}).batch_size is None
    assert make_config({"batch_size": 3}, {"batch_size": "full"}).batch_size is None
    assert make_config({"shortcut": True}, {"shortcut": False}).shortcut is False
    assert "batch_size" in replace(config, batch_size=4).identity()


@pytest.mark.parametrize(
    "toml, message",
    [
        ("batch_size = 0", "batch-size must be full or a positive number of patterns per step"),
        ('batch_size = "half"', "got 'half'"),
        ("batch_size = true", "got True"),
        ('batch_size = "1"', "got '1'"),  # text, converted before as no other number was
        ('shortcut = "yes"', "shortcut must be true or false, got 'yes'"),
    ],
)
def test_bad_toml_values_are_one_line_errors(tmp_path, capsys, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    code = main(["sweep", "--config", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# cold numba compiles (10-25 s on a clean checkout): an integration test, run by
# `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_shards_are_the_same_on_either_backend_and_any_shard_size():
    base = SweepConfig(lr=(0.5, 2.0), init=("uniform:1",), hidden=(1, 2), nets_per_cell=24,
                       epochs=300, shortcut=True, batch_size=1, backend="numba",
                       nets_per_shard=24)  # fmt: skip
    small = replace(base, nets_per_shard=10, backend="numpy")
    statuses = set()
    for cell in range(len(base.cells())):
        whole = run_shard(base, cell)
        statuses |= set(whole["status"].tolist())
        parts = [run_shard(small, cell * small.blocks_per_cell + b)
                 for b in range(small.blocks_per_cell)]  # fmt: skip
        for key in ("status", "epochs_to_converge", "epochs_trained", "outputs_right"):
            joined = np.concatenate([p[key] for p in parts])
            np.testing.assert_array_equal(joined, whole[key], err_msg=key)
        joined = np.concatenate([p["final_loss"] for p in parts])
        np.testing.assert_allclose(joined, whole["final_loss"], rtol=1e-10, atol=1e-14)
    assert len(statuses) >= 2  # nets that converged and nets that did not


def test_a_sweep_reports_its_schedule_and_shortcuts(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "--lr", "1", "--init", "uniform:1", "--hidden", "1",
                 "--nets-per-cell", "8", "--epochs", "50", "--shortcut", "--batch-size", "2",
                 "--backend", "numpy", "--out", str(out)])  # fmt: skip
    capsys.readouterr()
    report = (out / "report.md").read_text()
    assert code == 0
    assert "minibatch gradient descent (2 patterns per step" in report
    assert "shortcut connections from the input to the output" in report
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["shortcut"] is True and stored["batch_size"] == 2


def test_train_with_shortcut_and_per_pattern_updates(capsys):
    code = main(["train", "--layers", "2,1,1", "--shortcut", "--batch-size", "1", "--epochs",
                 "20", "--every", "10", "--backend", "numpy", "--json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["spec"].startswith("2-1-1 with shortcuts")
    assert doc["n_params"] == 7 and doc["config"]["batch_size"] == 1


@pytest.mark.parametrize(
    "name", ["rhw-xor-2-1-1-shortcut.toml", "tesauro-janssens-parity.toml"]
)
def test_example_configs_load_and_train(name):
    from backprop_bench.bench.sweep_config import load_toml

    path = REFERENCE.parents[1] / "configs" / name
    text = path.read_text()
    assert text.startswith("#") and "not known" in text.lower()  # cites and says what is unknown
    config = make_config(load_toml(path), {})
    small = replace(config, nets_per_cell=3, epochs=5, nets_per_shard=3, backend="numpy")
    shard = run_shard(small, 0)
    assert shard["epochs_trained"].shape == (3,)
