"""The live server: its page, its streams and commands, and how the command starts and ends."""

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from backprop_bench.bench.cli import main
from backprop_bench.bench.live import LiveServer, page
from backprop_bench.bench.live_session import Session
from backprop_bench.bench.train import TrainConfig, run_train

STOP_SECONDS = 1.0  # Ctrl-C must end the server within this


@pytest.fixture
def server():
    live = LiveServer(("127.0.0.1", 0), "numpy")
    thread = threading.Thread(target=live.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield live, f"http://127.0.0.1:{live.server_address[1]}"
    deadline = time.monotonic() + 5  # let the streams of closed pages notice and end
    while live.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    live.shutdown()
    live.server_close()
    thread.join()


def open_stream(base, query="nets=8&epochs=200"):
    """An event stream read on a raw socket, so that the test can drop it like a closed tab."""
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /events?{query} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    return sock, sock.makefile("rb")


def next_event(reader, name):
    event = None
    for line in reader:
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])


def command(base, doc):
    request = urllib.request.Request(
        f"{base}/command", data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_the_page_is_one_file_that_asks_no_other_host():
    html = page()
    assert "/*LIVE_CSS*/" not in html and "//LIVE_JS" not in html
    # every URL in the page is relative (its own server) or the SVG namespace, never fetched
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "@import" not in html and "@font-face" not in html
    for stat in ("epoch", "loss", "accuracy", "grad-norm"):
        assert f'data-stat="{stat}"' in html


def test_commands_drive_a_session_and_bad_ones_get_a_message(server):
    live, base = server
    sock, reader = open_stream(base)
    setup = next_event(reader, "setup")
    assert setup["query"]["nets"] == "8" and "--epochs 200" in setup["command"]
    session = setup["session"]
    assert next_event(reader, "snapshot")["epoch"] == 0
    assert command(base, {"session": session, "action": "step"}) == (200, {"ok": True})
    assert next_event(reader, "snapshot")["epoch"] == 1
    status, reply = command(base, {"session": session, "action": "setup",
                                   "setup": {"lr": "abc"}})  # fmt: skip
    assert status == 200 and "learning rate must be a number" in reply["error"]
    status, reply = command(base, {"session": "nobody", "action": "play"})
    assert status == 200 and "reload the page" in reply["error"] and not reply["ok"]
    request = urllib.request.Request(f"{base}/command", data=b"{not json")
    with urllib.request.urlopen(request) as reply:
        assert not json.load(reply)["ok"]
    # the server still trains after all that
    command(base, {"session": session, "action": "setup", "setup": {"lr": "2", "epochs": "50"}})
    assert next_event(reader, "setup")["query"]["lr"] == "2"
    command(base, {"session": session, "action": "play"})
    snap = next_event(reader, "snapshot")
    while not snap["finished"]:
        snap = next_event(reader, "snapshot")
    assert snap["epoch"] == 50
    reader.close()
    sock.close()


def test_two_pages_are_independent_and_a_closed_page_ends_its_session(server):
    live, base = server
    (sock_a, reader_a), (sock_b, reader_b) = open_stream(base), open_stream(base)
    a, b = next_event(reader_a, "setup")["session"], next_event(reader_b, "setup")["session"]
    assert a != b and set(live.sessions) == {a, b}
    command(base, {"session": a, "action": "step"})
    command(base, {"session": a, "action": "step"})
    assert [next_event(reader_a, "snapshot")["epoch"] for _ in range(3)] == [0, 1, 2]
    assert next_event(reader_b, "snapshot")["epoch"] == 0
    session_a = live.sessions[a]
    reader_a.close()
    sock_a.close()
    deadline = time.monotonic() + 5
    while a in live.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a not in live.sessions and session_a.closed.is_set() and b in live.sessions
    reader_b.close()
    sock_b.close()


def start(*argv):
    return subprocess.Popen(
        [sys.executable, "-m", "backprop_bench", "live", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_url_first_then_ctrl_c_ends_with_status_130_within_a_second():
    proc = start("--backend", "numpy")
    url = proc.stdout.readline().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    sock, reader = open_stream(url.rstrip("/"), "nets=2000&epochs=20000")
    session = next_event(reader, "setup")["session"]
    command(url.rstrip("/"), {"session": session, "action": "play"})
    next_event(reader, "snapshot")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    assert code == 130 and time.monotonic() - sent < STOP_SECONDS
    out, err = proc.communicate()
    assert "Traceback" not in err and err.endswith("interrupted\n")
    reader.close()
    sock.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_host_is_served_with_its_url_in_brackets():
    # --host ::1 said "Address family for hostname not supported" (an IPv4 socket)
    proc = start("--backend", "numpy", "--host", "::1")
    try:
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://\[::1\]:\d+/", url), url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"backprop-bench live" in response.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)  # (and its pipes closed)


@pytest.mark.parametrize("argv, message", [
    (["--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid:0"),
    (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:0"),  # an address of no machine here
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--backend", "jax"], "invalid choice: 'jax'"),
    (["--host", ""], "--host is empty"),  # every interface, where a shell variable was unset
    (["--host", " "], "--host is empty"),
])  # fmt: skip
def test_a_bad_host_or_port_is_one_line_and_status_2(capsys, argv, message):
    assert main(["live", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err


def test_a_port_in_use_is_one_line_and_status_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["live", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_a_chosen_net_joins_at_the_epoch_on_display_with_its_whole_curve():
    session = Session({"nets": "4", "epochs": "50"}, "numpy")
    events = session.events()
    assert [next(events)[0], next(events)[0]] == ["setup", "snapshot"]
    for epoch in range(1, 6):
        session.command("step", {})
        assert next(events)[1]["epoch"] == epoch
    session.command("select", {"net": "3"})
    name, setup = next(events)
    name, snap = next(events)
    assert setup["query"]["net"] == "3" and snap["epoch"] == 5
    assert snap["history"]["epoch"] == [0, 1, 2, 3, 4, 5]
    run = run_train(TrainConfig(backend="numpy", net=3, epochs=5, every=1))
    assert snap["history"]["loss"] == [row["loss"] for row in run.history]
    session.close()


def test_each_epochs_curve_row_reaches_the_page_once():
    # a command's snapshot repeated the last advance's rows: after every Pause or Play the page
    # drew its curves back over themselves (an outside audit: 3,962 points for 3,001 epochs)
    session = Session({"nets": "8", "epochs": "300"}, "numpy")
    events = session.events()
    epochs = []

    def take(name):
        while True:
            kind, doc = next(events)
            if kind == "snapshot":
                epochs.extend(doc["history"]["epoch"])
            if kind == name:
                return doc

    take("snapshot")
    for action in ("step", "step", "pause", "play", "pause", "pause", "step", "play"):
        session.command(action, {})
        snap = take("snapshot")
    while not snap["finished"]:
        snap = take("snapshot")
    session.command("play", {})  # when finished: nothing new
    take("snapshot")
    session.close()
    assert epochs == list(range(301))


def test_a_wide_population_neither_blocks_the_displayed_net_nor_outlives_its_page():
    # a population block of wide nets held one lock for all numba calls for minutes (64 units
    # in 6 layers: 7.5 s a net, 128 nets a block), and every page, new ones too, waited
    from backprop_bench.bench.live_session import _threadsafe_layer

    if not _threadsafe_layer():
        pytest.skip("numba's threading layer here is workqueue, which takes parallel loops "
                    "from one thread at a time: the live server keeps its lock there")
    session = Session({"hidden": "64,64,64,64,64,64", "nets": "16", "epochs": "10000"}, "numba")
    run, stop, thread = session._population
    time.sleep(0.5)  # inside its first block of 8 nets (about a minute of work)
    started = time.perf_counter()
    session._advance(3)
    assert time.perf_counter() - started < 5.0 and session.snapshot.epoch == 3
    session.close()
    thread.join(5.0)
    assert not thread.is_alive() and run.n_done == 0  # the block was aborted, and kept nothing


def test_a_net_whose_snapshots_cost_more_than_its_epochs_plays_many_epochs_a_frame():
    # 64 units in 6 layers: an advance of 1 epoch took 50 ms (the snapshot's heatmaps and layer
    # norms), of 16 epochs 51 ms; the chunk grew only below 17 ms, and it played 5 epochs a
    # second (an outside review)
    session = Session({"nets": "8", "epochs": "100000"}, "numpy")
    real = session._advance

    def costly(n_epochs):  # each advance costs a 50 ms snapshot plus 0.1 ms an epoch
        real(n_epochs)
        return 0.05 + 1e-4 * n_epochs

    session._advance = costly
    events = session.events()
    session.command("play", {})
    snapshots = 0
    while snapshots < 12:
        kind, _ = next(events)
        snapshots += kind == "snapshot"
    session.close()
    assert session.chunk >= 256  # trained until an advance costs about twice its snapshot


@pytest.mark.parametrize("init", ["normal:1e308", "uniform:1e200"])
def test_a_net_not_finite_from_the_start_streams(init):
    # its snapshot held a NumPy bool, json.dumps refused it, and the page's stream died: the
    # browser reconnected every 3 s for ever, each time a new session, and never showed the net
    session = Session({"init": init, "nets": "5"}, "numpy")
    try:
        events = session.events()
        for _ in range(3):
            name, payload = next(events)
            json.dumps(payload, allow_nan=False)
    finally:
        session.close()
