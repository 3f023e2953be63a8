"""The ``sweep`` flags that choose an executor: checked at the boundary, Dask never required."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from backprop_bench.bench.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--executor", "spark"], "unknown executor 'spark'; choose one of: local, dask"),
        (["--scheduler", "tcp://127.0.0.1:8786"], "are for the dask executor; add --executor dask"),
        (["--workers", "2"], "are for the dask executor; add --executor dask"),
        (
            ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
            "give either --scheduler (an existing cluster) or --workers (a local one), not both",
        ),
        (["--executor", "dask", "--workers", "0"], "--workers must be a positive integer, got 0"),
        (
            ["--executor", "dask", "--scheduler", "127.0.0.1:8786"],
            "--scheduler must be a Dask scheduler address such as tcp://HOST:8786",
        ),
    ],
)
def test_bad_executor_flags_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["sweep", "--out", str(tmp_path / "never"), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "never").exists()


def test_without_dask_the_dask_executor_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    monkeypatch.delitem(sys.modules, "backprop_bench.bench.dask_executor", raising=False)
    code = main(["sweep", "--executor", "dask", "--workers", "1", "--out", str(tmp_path / "n")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "dask.distributed, which is not installed" in err
    assert 'install it with pip install -e ".[dask]"' in err
    assert not (tmp_path / "n").exists()


def test_dask_is_an_optional_extra_and_the_default_path_never_imports_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "dask" in d or "distributed" in d]
    assert any(d.startswith("distributed") for d in project["optional-dependencies"]["dask"])
    check = (
        "import sys; from backprop_bench.bench.cli import main; "
        "from backprop_bench.bench.sweep import run_sweep; "
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_something_that_is_not_a_scheduler_at_the_address_is_one_line(tmp_path, capsys):
    # a server that answers with bytes a Dask client decodes into nonsense (one such reply here
    # decoded as a 3 EiB array): status 2 and the address named, not "out of memory"
    import socket
    import threading

    pytest.importorskip("distributed", reason="the dask extra is not installed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def answer_garbage():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.sendall(b"\xff" * 64 + b"not a dask scheduler\n" * 64)
            connection.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        address = f"tcp://127.0.0.1:{port}"
        flags = ["--executor", "dask", "--scheduler", address, "--nets-per-cell", "10"]
        code = main(["sweep", "--out", str(tmp_path / "s"), *flags, "--epochs", "10"])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert address in err and "out of memory" not in err
    assert not (tmp_path / "s").exists()  # refused before anything is written


def test_a_server_that_never_answers_the_handshake_is_refused_in_time(tmp_path, capsys,
                                                                       monkeypatch):  # fmt: skip
    # an HTTP server accepts the connection and waits for a request: Dask's client would wait
    # for its handshake with no time limit
    import socket
    import time

    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from backprop_bench.bench import dask_executor

    monkeypatch.setattr(dask_executor, "HANDSHAKE_TIMEOUT", 2.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    started = time.perf_counter()
    try:
        flags = ["--executor", "dask", "--scheduler", address, "--nets-per-cell", "10"]
        code = main(["sweep", "--out", str(tmp_path / "s"), *flags, "--epochs", "10"])
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "no Dask handshake within 2" in err and address in err
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "s").exists()
