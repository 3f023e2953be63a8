"""pass_ab compares two checkouts' fused passes only where they train to the same bits."""

from __future__ import annotations

import pathlib

import pytest

from . import pass_ab

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_this_checkout_against_itself_times_both(capsys):
    assert pass_ab.main([str(ROOT), "2-4-1 relu", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["2-4-1 relu  other", "2-4-1 relu  this"]


@pytest.mark.slow
def test_passes_that_train_to_other_bits_are_not_timed(monkeypatch, capsys):
    calls = []

    def ours(case, X, Y):
        def train(theta, n_epochs):
            calls.append(n_epochs)
            return theta + (len(calls) - 1) * 1e-12  # the second pass's result a little off

        return train

    monkeypatch.setattr(pass_ab, "ours", ours)
    assert pass_ab.main([str(ROOT), "2-4-1 relu", "--repeats", "3"]) == 1
    assert "different parameters" in capsys.readouterr().out


def test_a_folder_without_the_pass_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no kernels/numba_fused.py"):
        pass_ab.main([str(tmp_path), "2-4-1"])


@pytest.mark.slow
def test_a_whole_kernels_package_against_this_one_times_both(capsys):
    assert pass_ab.main([str(ROOT), "2-4-1 relu", "--repeats", "1", "--whole"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["2-4-1 relu  other", "2-4-1 relu  this"]


def test_a_folder_without_the_kernels_package_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no kernels/__init__.py"):
        pass_ab.main([str(tmp_path), "2-4-1", "--whole"])


def test_a_spec_and_an_optimizer_are_rebuilt_field_for_field():
    from backprop_bench.kernels import NetSpec, Optimizer

    spec = NetSpec((3, 5, 2), "tanh", loss="mse")
    assert pass_ab._rebuilt(spec, NetSpec) == spec
    assert pass_ab._rebuilt(Optimizer("adam", beta1=0.8), Optimizer) == Optimizer("adam", beta1=0.8)


def test_a_field_the_other_version_lacks_is_dropped_at_its_default_and_refused_otherwise():
    import dataclasses

    from backprop_bench.kernels import Optimizer

    @dataclasses.dataclass(frozen=True)
    class Older:  # an Optimizer from before weight decay
        name: str
        momentum: float = 0.9
        beta1: float = 0.9
        beta2: float = 0.999
        eps: float = 1e-8

    assert pass_ab._rebuilt(Optimizer("adam"), Older) == Older("adam")
    with pytest.raises(SystemExit, match="no 'weight_decay'"):
        pass_ab._rebuilt(Optimizer("adam", weight_decay=0.01), Older)


@pytest.mark.slow
def test_a_job_of_ones_own_against_this_checkout_times_both(capsys):
    assert pass_ab.main([str(ROOT), "--whole", "--repeats", "1", "--layers", "3-5-2",
                         "--activation", "leaky_relu", "--dtype", "float32", "--epochs", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    name = "3-5-2 leaky_relu, bce, sgd, float32"
    assert [line.split(":")[0] for line in lines] == [f"{name}  other", f"{name}  this"]


@pytest.mark.parametrize("argv, message", [
    ([], "give a case of the peer table or --layers"),
    (["2-4-1", "--layers", "2-4-1"], "not both"),
    (["--layers", "2-x-1"], "--layers takes widths joined by '-'"),
    (["--layers", "2-4-1", "--activation", "softsign"], "softsign"),
    (["2-4-1", "--activation", "tanh"], "--activation describes a job of your own"),
])  # fmt: skip
def test_a_job_of_ones_own_with_bad_values_exits_2_naming_the_fix(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        pass_ab.main([str(ROOT), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
