"""Hostile but realistic input: every case gives a result, or one line and the right status.

Statuses: 0 done, 1 failed during the work (disk full, a permission), 2 bad input (nothing
written), 130 interrupted. The cases are those a user found by hand; each class is closed by a
shared mechanism (kernels/values.py, bench/atomic.py, bench/limits.py, bench/interrupt.py), so
one representative or two per class are enough here and the fuzzing tests cover the rest.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from backprop_bench.bench import atomic
from backprop_bench.bench.cli import main
from backprop_bench.bench.sweep import SHARD_DIR

from backprop_bench import NetSpec, backend, get_problem, init_population

TINY = ["--lr", "1", "--init", "tutorial", "--hidden", "2", "--nets-per-cell", "20",
        "--epochs", "200", "--backend", "numpy"]  # fmt: skip


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [["--problem", "and", "--lr", "0.3,100"], ["--lr", "100,1e308"]],
    ids=["control-converges-some-diverge", "all-diverge"],
)
def test_a_report_is_written_for_any_outcome(tmp_path, capsys, extra):
    code, out, err = run(capsys, "sweep", *TINY, *extra, "--out", tmp_path / "s")
    assert code == 0, err
    report = (tmp_path / "s" / "report.md").read_text()
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    control = [c for c in summary["cells"] if c["hidden"] == 0]
    converged = sum(c["counts"]["converged"] for c in control)
    if converged:  # the findings say what happened, not what XOR would have done
        assert "needs a hidden layer" not in report
        assert f"{converged:,} of {sum(c['n'] for c in control):,}" in report
    assert run(capsys, "report", tmp_path / "s")[0] == 0


def test_names_are_normalised_before_duplicates_and_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "s"
    for init in ("tutorial,TUTORIAL", "uniform:1,uniform:1.0"):
        code, _, err = run(capsys, "sweep", *TINY, "--init", init, "--out", out)
        assert code == 2 and "repeats a value" in one_line(err)
    toml = tmp_path / "sweep.toml"
    toml.write_text('lr = [0.5, "0.5"]\n')
    code, _, err = run(capsys, "sweep", "--config", toml, "--out", out)
    assert code == 2 and "lr must be a number, got '0.5'" in one_line(err)
    assert not out.exists()
    assert run(capsys, "sweep", *TINY, "--out", out)[0] == 0  # the folder is still usable


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("lr = true", "lr must be a number, got True"),
        ('momentum = "0.9"', "momentum must be a number, got '0.9'"),
        ('lr = ["abc"]', "lr must be a number, got 'abc'"),
        ("tolerance = 2", "tolerance must be below 0.5"),
        ("hidden = [4.7]", "hidden sizes must be a positive integer, got 4.7"),
        ("nets_per_cell = 10000000000", "needs about"),
        ("epochs = 100000000000000000000", "epochs must be at most"),
    ],
)
def test_toml_values_are_checked_by_type_and_range(tmp_path, capsys, body, message):
    toml = tmp_path / "sweep.toml"
    toml.write_text(body + "\n")
    code, _, err = run(capsys, "sweep", "--config", toml, "--out", tmp_path / "s")
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "s").exists()


def test_a_stored_config_that_is_not_one_is_refused(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text("[]")
    code, _, err = run(capsys, "sweep", *TINY, "--out", tmp_path / "s")
    assert code == 2 and "unreadable sweep.json" in one_line(err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--tolerance", "2"], "--tolerance must be below 0.5"),
        (["train", "--tolerance", "0"], "--tolerance must be in (0, 0.5)"),
        (["train", "--hidden", "1000000,1000000"], "needs about"),
        (["train", "--epochs", str(10**20)], "--epochs must be at most"),
        (["train", "--epochs", str(10**18)], "needs about"),
        (["train", "--lr", "1e308", "--dtype", "float32"], "beyond float32's range"),
        (["vanishing", "--nets", "10000000000"], "needs about"),
        (["vanishing", "--depths", "1,1"], "the depths list repeats a value: 1"),
        (
            ["vanishing", "--activations", "sigmoid,SIGMOID"],
            "activations list repeats a value: sigmoid",
        ),
        (["sweep", "--nets-per-cell", "10000000000"], "needs about"),
        (["sweep", "--config", "."], "is a folder; give a TOML file"),
        (["sweep", "--out", "/proc/no/such"], "cannot write to --out /proc/no/such"),
        (["vanishing", "--out", "/proc/no/such"], "cannot write to --out /proc/no/such"),
        # an empty value (an unset shell variable) is refused, not read as a default
        (["sweep", "--out", ""], "argument --out: is empty; give a path"),
        (["sweep", "--config", " "], "argument --config: is empty; give a path"),
        (["vanishing", "--out", ""], "argument --out: is empty; give a path"),
        (["train", "--hidden", ""], "or none for no hidden layer"),
    ],
)
def test_bad_input_ends_in_one_line_and_status_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_a_folder_is_expected(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "sweep", *TINY, "--out", tmp_path / "file" / "sub")
    assert code == 2 and "Not a directory" in one_line(err)


@pytest.mark.parametrize("document", ["{}", '{"sweep": {}}', "[]", "nul"])
def test_report_on_a_damaged_summary(tmp_path, capsys, document):
    (tmp_path / "summary.json").write_text(document)
    (tmp_path / "meta.json").write_text("{}")
    code, _, err = run(capsys, "report", tmp_path)
    assert code == 2 and "summary.json" in one_line(err)
    assert not (tmp_path / "report.md").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_to_a_full_device_or_a_closed_pipe(tmp_path):
    command = [sys.executable, "-m", "backprop_bench", "train", "--backend", "numpy",
               "--epochs", "3000", "--every", "1"]  # fmt: skip
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 1
    assert (
        one_line(done.stderr) == "backprop-bench: error: standard output: No space left on device"
    )
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader.stdout.readline()
    reader.stdout.close()  # as `| head -1` does
    assert reader.wait(timeout=120) == 1 and reader.stderr.read() == ""
    reader.stderr.close()


def test_a_rerun_keeps_the_training_time_and_counts_shards(tmp_path, capsys):
    out = tmp_path / "s"
    assert run(capsys, "sweep", *TINY, "--nets-per-shard", "5", "--out", out)[0] == 0
    first = json.loads((out / "meta.json").read_text())
    assert first["shards"] == {"total": 8, "trained_by_last_run": 8}
    (out / SHARD_DIR / "000001.npz").unlink()
    assert run(capsys, "sweep", *TINY, "--nets-per-shard", "5", "--out", out)[0] == 0
    again = json.loads((out / "meta.json").read_text())
    assert again["shards"] == {"total": 8, "trained_by_last_run": 1}
    assert 0 < again["training_seconds"]
    assert abs(again["training_seconds"] - first["training_seconds"]) < first["training_seconds"]
    assert run(capsys, "sweep", *TINY, "--nets-per-shard", "5", "--out", out)[0] == 0
    assert (
        json.loads((out / "meta.json").read_text())["training_seconds"] == again["training_seconds"]
    )


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".results.csv.gz.999999999.abcdefgh.tmp"  # no such process
    live = tmp_path / f".summary.json.{__import__('os').getpid()}.abcdefgh.tmp"
    other = tmp_path / ".hidden.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    assert atomic.clean_stale(tmp_path) == 1
    assert not dead.exists() and live.exists() and other.exists()


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError), atomic.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [path.name]


# ---------------------------------------------------------------------------------- the API

XOR = get_problem("xor")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: NetSpec("241"), ValueError, "sequence of integer widths"),
        (lambda: NetSpec((2, 4.7, 1)), ValueError, "got 4.7"),
        (lambda: init_population(NetSpec(), 4, 0, None), TypeError, "init must be"),
        (
            lambda: backend("numpy").train_population(
                init_population(NetSpec(), 2, 0), NetSpec(), XOR.X, XOR.Y, 0.5, 3, optimizer="adam"
            ),
            TypeError,
            "optimizer must be an Optimizer",
        ),  # fmt: skip
        (
            lambda: backend("numpy").train_population(
                init_population(NetSpec(), 2, 0), NetSpec(), XOR.X, np.full((4, 1), 5.0), 0.5, 3
            ),
            ValueError,
            "targets in [0, 1]",
        ),  # fmt: skip
        (
            lambda: backend("numpy").train_population(
                init_population(NetSpec(), 2, 0, dtype=np.float32),
                NetSpec(),
                XOR.X,
                XOR.Y,
                1e308,
                3,
            ),
            ValueError,
            "float32's range",
        ),  # fmt: skip
    ],
)
def test_api_arguments_fail_with_an_error_naming_them(call, error, message):
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_mse_accepts_any_finite_target():
    spec = NetSpec((2, 2, 1), loss="mse")
    theta = init_population(spec, 2, 0)
    targets = np.full((4, 1), 5.0)
    result = backend("numpy").train_population(theta, spec, XOR.X, targets, 0.1, 3)
    assert np.isfinite(result.final_loss).all()


@pytest.mark.parametrize(("problem", "sentence"), [
    ("and", "converged on AND, at learning rate 1."),
    ("xor", "nets without one converged, at learning rate 1."),
])  # fmt: skip
def test_a_sweep_of_one_learning_rate_names_it_not_a_range(tmp_path, capsys, problem, sentence):
    code, _, _ = run(capsys, "sweep", *TINY, "--problem", problem, "--out", tmp_path / "s")
    report = (tmp_path / "s" / "report.md").read_text()
    assert code == 0 and sentence in report and "1 to 1" not in report


def test_a_folder_that_refuses_new_files_is_named_not_the_temporary_file(tmp_path,
                                                                         monkeypatch):
    # a read-only folder's error named `.report.md.23379.blfpb3zu.tmp` (an outside audit)
    import errno
    import tempfile

    from backprop_bench.bench import atomic

    def refused(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OSError) as error:
        atomic.write_text(tmp_path / "report.md", "x")
    assert error.value.filename == str(tmp_path / "report.md")
    with pytest.raises(OSError) as error, atomic.replacing_together([tmp_path / "a.json"]):
        pass
    assert error.value.filename == str(tmp_path / "a.json")


def test_a_failed_write_of_a_set_names_the_file_being_written(tmp_path):
    # a full disk while vanishing wrote its figures and texts together said 'standard output:
    # No space left on device' (the write names no file; an outside audit)
    import errno
    import time

    from backprop_bench.bench import atomic

    paths = [tmp_path / "a.png", tmp_path / "b.json", tmp_path / "c.md"]
    (tmp_path / "b.json").write_text("earlier")
    with pytest.raises(OSError) as error, atomic.replacing_together(paths) as temporary:
        temporary[paths[0]].write_bytes(b"whole")
        time.sleep(0.01)
        temporary[paths[1]].write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert error.value.filename == str(paths[1]) and error.value.errno == errno.ENOSPC
    assert (tmp_path / "b.json").read_text() == "earlier"  # the earlier set is as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]  # no temporary left


@pytest.mark.parametrize("command", ["train", "sweep", "report", "gradcheck", "vanishing", "live"])
def test_an_unknown_flag_points_to_its_commands_help(capsys, command):
    """As a bad value of a known flag does: 'gradcheck --bogus' pointed at the top-level help,
    'gradcheck --json=1' at gradcheck's (from an audit)."""
    code, _, err = run(capsys, command, "--bogus", "1")
    assert code == 2
    line = one_line(err)  # (report takes the 1 as its folder)
    assert "unrecognized arguments: --bogus" in line
    assert line.endswith(f"(see backprop-bench {command} --help)")
    code, _, err = run(capsys, "--bogus")
    assert code == 2 and one_line(err).endswith("(see backprop-bench --help)")
