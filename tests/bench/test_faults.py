"""Fault injection: a sweep killed or starved of disk at any point ends, once rerun, with the
results of an uninterrupted run, and no file is ever visible half-written under its final name.

Three faults: every write of a sweep failing in turn (a patched writer: the disk fills while the
temporary file is half written, or a Ctrl-C arrives there), ``kill -9`` at random moments (seeded)
of a real process, and a real full disk (a small tmpfs in a private mount namespace, where the
machine allows one).
"""

import gzip
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from backprop_bench.bench import atomic
from backprop_bench.bench.cli import main

# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = pytest.mark.slow

SWEEP = ["sweep", "--lr", "1,100", "--init", "tutorial", "--hidden", "2", "--nets-per-cell", "12",
         "--nets-per-shard", "4", "--epochs", "150", "--backend", "numpy"]  # fmt: skip
RESULTS = ("summary.json", "results.csv.gz")


def whole(path: Path) -> bool:
    """Whether a file under its final name is complete, by its own format's checks."""
    data = path.read_bytes()
    if path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".gz":
        gzip.decompress(data)
    elif path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    elif path.suffix == ".npz":
        with np.load(path) as stored:
            [stored[key] for key in stored.files]
    elif path.suffix == ".md":
        return data.endswith(b"rebuilds this page.\n")
    return True


def check_visible(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert not atomic.is_temporary(path.name), f"temporary file left: {path}"
            assert whole(path), f"partial file under its final name: {path}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and how many files it wrote (each through atomic._commit)."""
    out = tmp_path_factory.mktemp("reference") / "s"
    count = 0
    real = atomic._commit

    def counting(tmp, path):
        nonlocal count
        count += 1
        real(tmp, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atomic, "_commit", counting)
        assert main([*SWEEP, "--out", str(out)]) == 0
    # sweep.json, 12 shards (4 cells x 3 blocks), results, summary, meta, 4 figures, report
    assert count == 21
    return out, count


def same_results(out: Path, reference: Path) -> None:
    for name in RESULTS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    for figure in (reference / "figures").iterdir():
        assert (out / "figures" / figure.name).read_bytes() == figure.read_bytes(), figure.name


def test_a_fault_at_any_write_leaves_whole_files_and_a_rerun_finishes(tmp_path, capsys, reference):
    reference, n_writes = reference
    rng = random.Random(11)
    # the first write (sweep.json), a shard, two drawn at random, the last (report.md); the
    # fault alternates between a full disk and a Ctrl-C
    points = sorted({1, 3, n_writes, *rng.sample(range(4, n_writes), 2)})
    for i, point in enumerate(points):
        fault = ("disk-full", "ctrl-c")[i % 2]
        out = tmp_path / f"at{point}"
        calls = 0
        real = atomic._commit

        def failing(tmp, path, point=point, fault=fault, real=real):
            nonlocal calls
            calls += 1
            if calls == point:  # the temporary file is half written when the fault comes
                data = tmp.read_bytes()
                tmp.write_bytes(data[: len(data) // 2])
                if fault == "disk-full":
                    raise OSError(28, "No space left on device", str(tmp))
                raise KeyboardInterrupt
            real(tmp, path)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(atomic, "_commit", failing)
            code = main([*SWEEP, "--out", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if line]
        assert code == (1 if fault == "disk-full" else 130), (point, err)
        assert len(err) == 1 and "Traceback" not in err[0], err
        check_visible(out)
        assert main([*SWEEP, "--out", str(out)]) == 0, point
        capsys.readouterr()
        check_visible(out)
        same_results(out, reference)


def test_kill_9_at_random_moments(tmp_path, reference):
    reference = reference[0]
    out = tmp_path / "s"
    rng = random.Random(3)
    command = [sys.executable, "-m", "backprop_bench", *SWEEP, "--nets-per-cell", "12",
               "--out", str(out)]  # fmt: skip
    for _ in range(2):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if out.exists():
            for path in out.rglob("*"):
                if path.is_file() and not atomic.is_temporary(path.name):
                    assert whole(path), path
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    check_visible(out)
    same_results(out, reference)


def _private_tmpfs_works() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, check=False)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _private_tmpfs_works(), reason="no private mount namespace here "
                    "(unshare -rm); the patched-writer test covers a full disk")  # fmt: skip
def test_a_real_full_disk(tmp_path, reference):
    reference = reference[0]
    size = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    disk.mkdir()
    kept = tmp_path / "kept"
    python = f"{sys.executable} -m backprop_bench {' '.join(SWEEP)} --out {disk}/s"
    script = f"""
        mount -t tmpfs -o size={size * 6 // 10 // 4096 * 4096} tmpfs {disk} || exit 99
        {python} > /dev/null 2> {tmp_path}/err1; echo $? > {tmp_path}/rc1
        cp -r {disk}/s {kept}
        mount -o remount,size=64m {disk}
        {python} > /dev/null 2> {tmp_path}/err2; echo $? > {tmp_path}/rc2
        cp -r {disk}/s {tmp_path}/final
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err, err
    assert f"{disk}/s/" in err and ".tmp" not in err  # it names the file that could not be written
    check_visible(kept)
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()
    same_results(tmp_path / "final", reference)
