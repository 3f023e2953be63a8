"""Bad input to the measurement scripts the README documents: one line naming the fix and exit
status 2, before any work (from an audit of the README's commands: negative repeats ran until
killed or printed NaN tables, a missing output folder ended minutes of work in a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import usage

ROOT = Path(__file__).resolve().parents[2]


def _refused(capsys, **kwargs):
    with pytest.raises(SystemExit) as exit_:
        usage.hand_arguments("doc", **kwargs)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    return err


def test_hand_read_arguments_are_checked_before_the_work(tmp_path, capsys):
    out = str(tmp_path / "out.json")
    usage.hand_arguments("doc", outputs=1, required=True, flags=("--sanity",),
                         valued=("--only",), argv=[out, "--only", "x", "--sanity"])  # fmt: skip
    usage.hand_arguments("doc", outputs=1, more=True, argv=[out, "case", "other"])
    usage.hand_arguments("doc", outputs=1, argv=[])  # the output is optional here
    assert "unknown option --bogus" in _refused(capsys, argv=["--bogus"])
    assert "OUT.json" in _refused(capsys, outputs=1, required=True, argv=[])
    assert "does not exist" in _refused(capsys, outputs=1, argv=[str(tmp_path / "no" / "o.json")])
    assert "needs a value" in _refused(capsys, outputs=1, valued=("--only",), argv=[out, "--only"])
    assert "unexpected argument 'extra'" in _refused(capsys, outputs=1, argv=[out, "extra"])
    usage.hand_arguments("doc", more=True, valued=("--jobs",), argv=["--jobs=2", "case"])
    usage.hand_arguments("doc", more=True, valued=("--jobs",), argv=["--jobs", "2", "case"])
    assert usage.count_of("--jobs", "3") == 3
    with pytest.raises(SystemExit) as exit_:
        usage.count_of("--jobs", "0")
    assert exit_.value.code == 2 and "--jobs: 0 is not a positive" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5"])
def test_counts_must_be_positive_whole_numbers(text, capsys):
    parser = usage.Parser(prog="script")
    parser.add_argument("--repeats", type=usage.positive_int)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--repeats", text])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--repeats" in err, err
    assert parser.parse_args(["--repeats", "3"]).repeats == 3


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "x"])
def test_scales_must_be_positive_finite_numbers(text):
    with pytest.raises(Exception, match="not a"):
        usage.positive_float(text)
    assert usage.positive_float("0.5") == 0.5


@pytest.mark.parametrize("argv", [["detection_floor", "--bogus"], ["float32_review"],
                                  ["lane_parts", "--samples", "-4"],
                                  ["lane_parts", "--layers", "8-x-1"]])  # fmt: skip
def test_a_documented_script_refuses_bad_input_at_once(argv):
    done = subprocess.run([sys.executable, "-m", f"tests.benchmarks.{argv[0]}", *argv[1:]],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout, done.stdout


def test_a_benchmark_run_that_times_nothing_ends_as_pytest_does():
    """-k matching no benchmark: exit 5, as plain pytest; pytest-benchmark's warning that it
    saves nothing had become an INTERNALERROR under filterwarnings = error."""
    # (a pytest of its own: not this run's xdist worker, whose variables it would inherit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, "-m", "pytest", "--benchmark", "-q", "-p",
                           "no:cacheprovider", "tests/benchmarks/test_kernel_benchmarks.py",
                           "-k", "no_benchmark_is_named_this"],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 5, done.stdout[-2000:] + done.stderr[-2000:]
    assert "INTERNALERROR" not in done.stdout + done.stderr
