"""The live page in a real browser: headless Chromium from the system's packages, driven by
Playwright (the ``live-test`` extra). Skipped where either is missing; CI installs both.

The server runs in this process on the NumPy backend (no compile wait); the numbers on the page
are held against ``run_train`` of the same setup, formatted as ``backprop-bench train`` prints
them.
"""

import shutil
import threading
import time
from pathlib import Path

import pytest
from backprop_bench.bench.live import LiveServer
from backprop_bench.bench.live_train import PopulationRun
from backprop_bench.bench.train import TrainConfig, run_train
from backprop_bench.kernels import init_population

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright: pip install -e '.[live-test]'"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# an integration test: `pytest -m "not slow"` leaves it out (see pyproject.toml)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Chromium on PATH (apt-get install chromium; CI installs it)"
    ),
]
WAIT_MS = 30_000  # the longest wait for a page to reach a state (a few seconds when all is well)


@pytest.fixture(scope="module")
def server():
    live = LiveServer(("127.0.0.1", 0), "numpy")
    thread = threading.Thread(target=live.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield live, f"http://127.0.0.1:{live.server_address[1]}/"
    live.shutdown()
    live.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(server, browser):
    """Opens the page with a query; records console errors and every requested URL."""
    pages = []

    def open_(query="", width=1280, scale=1):
        page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=scale)
        page.problems, page.requests = [], []
        page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.on("request", lambda r: page.requests.append(r.url))
        page.set_default_timeout(WAIT_MS)
        page.goto(server[1] + query)
        wait_for_epoch(page, 0)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        assert page.problems == []
        page.close()


def stat(page, name):
    return page.text_content(f'[data-stat="{name}"]')


def wait_for_epoch(page, epoch):
    page.wait_for_function(
        f"document.querySelector('[data-stat=epoch]').textContent === '{epoch}'", timeout=WAIT_MS
    )


def printed(row):
    """A history row as ``backprop-bench train`` prints it."""
    return [str(row["epoch"]), f"{row['loss']:.6f}", f"{row['accuracy']:.0%}",
            f"{row['grad_norm']:.3e}"]  # fmt: skip


def shown(page):
    return [stat(page, name) for name in ("epoch", "loss", "accuracy", "grad-norm")]


def test_page_loads_from_its_own_server_only_with_no_console_error(open_page, server):
    page = open_page("?nets=1")
    assert all(url.startswith(server[1]) for url in page.requests), page.requests
    for name in ("Play", "Pause", "Step", "Reset"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1
    assert shown(page) == printed(run_train(TrainConfig(backend="numpy", epochs=0)).history[0])
    assert "backprop-bench train --problem xor --hidden 4" in page.text_content("#command")
    assert page.locator("#network line").count() == 2 * 4 + 4 * 1  # every weight drawn
    page.hover("#network line >> nth=1")  # W1[1,2], theta's second entry (the first is level)
    readout = page.text_content("#weight-readout")
    theta = init_population(TrainConfig().spec, 1, 0, "tutorial")
    assert readout.startswith("W1[1,2]") and float(readout.split("= ")[1]) == pytest.approx(
        theta[1, 0], rel=1e-5  # shown to 6 significant digits
    )


def test_play_trains_the_default_xor_net_to_full_accuracy(open_page):
    page = open_page("?nets=1&epochs=100000")  # a budget that Play does not reach here
    page.get_by_role("button", name="Play").click()
    # the status and the epoch of the first frame that shows the net converged, read together
    seen = page.wait_for_function(
        "(() => { const q = (s) => document.querySelector(s).textContent;"
        " return q('#status').startsWith('converged') && q('[data-stat=accuracy]') === '100%'"
        " && [q('#status'), q('[data-stat=epoch]')]; })()"
    ).json_value()
    # Play trains on to the budget, and the status says so (it read "converged" alone)
    assert seen[1] != "100000" and seen[0] == "converged, playing on"
    page.get_by_role("button", name="Pause").click()
    time.sleep(0.3)
    assert page.text_content("#status") == "converged"
    epoch = int(stat(page, "epoch"))
    run = run_train(TrainConfig(backend="numpy", every=1, epochs=epoch))
    assert run.outcome["status"] == "converged"
    assert shown(page) == printed(run.history[epoch])


def test_step_advances_one_epoch_with_the_numbers_of_train(open_page):
    page = open_page("?nets=1&seed=7")
    history = run_train(TrainConfig(backend="numpy", seed=7, epochs=3, every=1)).history
    for epoch in (1, 2, 3):
        page.get_by_role("button", name="Step").click()
        wait_for_epoch(page, epoch)
        assert shown(page) == printed(history[epoch])
    page.get_by_role("button", name="Reset").click()
    wait_for_epoch(page, 0)


def test_changing_the_learning_rate_on_the_page_changes_the_run(open_page):
    page = open_page("?nets=1&epochs=300")
    page.fill("#lr", "2")
    page.press("#lr", "Enter")
    page.wait_for_function("document.querySelector('#command').textContent.includes('--lr 2 ')")
    assert "lr=2" in page.url  # the setup lives in the URL
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 300)
    fast = run_train(TrainConfig(backend="numpy", lr=2.0, epochs=300, every=300)).history[-1]
    slow = run_train(TrainConfig(backend="numpy", epochs=300, every=300)).history[-1]
    assert shown(page) == printed(fast) != printed(slow)


def test_batch_norm_dropout_and_weight_decay_are_set_on_the_page(open_page):
    # a link may carry adamw: the menu shows it and other settings still change
    page = open_page("?nets=1&epochs=40&optimizer=adamw&lr=0.05&hidden=6")
    assert page.input_value("#optimizer") == "adamw"
    def command_has(text):
        page.wait_for_function(f"document.querySelector('#command').textContent.includes('{text}')")

    page.select_option("#batchnorm", "on")
    command_has("--batchnorm")
    page.fill("#dropout", "0.1")
    page.press("#dropout", "Enter")
    command_has("--dropout 0.1")
    page.fill("#weight_decay", "0.01")
    page.press("#weight_decay", "Enter")
    command_has("--weight-decay 0.01")
    assert "batchnorm=on" in page.url and "dropout=0.1" in page.url
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 40)
    config = TrainConfig(backend="numpy", epochs=40, every=40, optimizer="adamw", lr=0.05,
                         hidden=(6,), batchnorm=True, dropout=0.1, weight_decay=0.01)  # fmt: skip
    assert shown(page) == printed(run_train(config).history[-1])


def test_the_command_shown_trains_the_same_net(open_page, capsys):
    import json
    import shlex

    from backprop_bench.bench.cli import main

    page = open_page("?problem=parity3&hidden=5,3&optimizer=adam&lr=0.05&seed=2&net=4&epochs=60"
                     "&activation=tanh&nets=1")  # fmt: skip
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 60)
    argv = shlex.split(page.text_content("#command"))[1:]
    assert main([*argv, "--json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert shown(page) == printed(history[-1]) and len(history) == 61


def test_the_population_fills_and_a_stalled_net_can_be_displayed(open_page):
    page = open_page("?nets=64&epochs=1000")
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 1000)
    page.wait_for_function("!document.querySelector('#pop-count').textContent.includes('so far')")
    expected = PopulationRun(TrainConfig(backend="numpy", epochs=1000), 64, block=64)
    expected.advance()
    summary = expected.summary(1000)
    text = page.text_content("#pop-count")
    assert f"{100 * summary['converged_now']:.1f}% converged" in text
    assert f"{summary['n_stalled']} stalled" in text
    buttons = page.locator("#stalled button")
    assert buttons.count() == len(summary["stalled"]) > 0
    net = summary["stalled"][0]["net"]
    buttons.first.click()
    page.wait_for_function(
        f"document.querySelector('#command').textContent.includes('--net {net} ')"
    )
    wait_for_epoch(page, 1000)  # the chosen net is shown at the epoch on display
    run = run_train(TrainConfig(backend="numpy", epochs=1000, net=net, every=1000))
    assert shown(page) == printed(run.history[-1])


def test_charts_are_drawn_at_the_screens_pixel_density(open_page):
    # at one canvas pixel a CSS pixel, a screen of 2 or 3 device pixels to one blurred them
    page = open_page("?nets=64&epochs=200", scale=2)
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 200)
    page.wait_for_function("!document.querySelector('#pop-count').textContent.includes('so far')")
    for chart in ("boundary", "curves", "layer-norms", "pop-converged", "pop-histogram"):
        pixels, shown_as = page.evaluate(
            f"(() => {{ const c = document.getElementById('{chart}');"
            " const r = c.getBoundingClientRect();"
            " return [[c.width, c.height], [r.width, r.height]]; })()"
        )
        assert pixels == [2 * round(shown_as[0]), 2 * round(shown_as[1])], chart
    # and drawn over the whole of it, not in its top left quarter
    right_half = page.evaluate(
        "(() => { const c = document.getElementById('curves');"
        " const d = c.getContext('2d').getImageData(c.width / 2, 0, c.width / 2, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()"
    )
    assert right_half > 0


# Records each listener the page adds to a MediaQueryList, so that a test can deliver the
# 'change' event that a browser sends when the screen's density changes: headless Chromium
# changes devicePixelRatio under DevTools' device metrics override but sends no such event.
LISTENERS_SCRIPT = """
window.media_listeners = [];
const matchMedia = window.matchMedia.bind(window);
window.matchMedia = (query) => {
  const list = matchMedia(query);
  const add = list.addEventListener.bind(list);
  list.addEventListener = (type, listener, options) => {
    window.media_listeners.push([query, type, listener]);
    add(type, listener, options);
  };
  return list;
};
"""


def test_charts_follow_a_change_of_pixel_density_while_paused(server, browser):
    # the window moved to a screen of another density (or the page zoomed) while no frame comes:
    # the charts were left at the old density until the next frame
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.add_init_script(LISTENERS_SCRIPT)
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server[1] + "?nets=64&epochs=50")
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 50)
    page.wait_for_function("!document.querySelector('#pop-count').textContent.includes('so far')")
    charts = ("boundary", "curves", "layer-norms", "pop-converged", "pop-histogram")
    sizes = (f"[{', '.join(f'document.getElementById({c!r})' for c in charts)}]"
             ".map((c) => [c.width, c.height, Number(c.dataset.width), Number(c.dataset.height)])")
    # every frame from the server counted, and a second without any before the change
    page.evaluate("window.frames_seen = 0; window.last_frame = performance.now();"
                  "for (const name of ['onSnapshot', 'onPopulation']) { const f = window[name];"
                  " window[name] = (x) => { window.frames_seen++;"
                  " window.last_frame = performance.now(); f(x); }; }")  # fmt: skip
    page.wait_for_function("performance.now() - window.last_frame > 1000")
    assert all(w == cw and h == ch for w, h, cw, ch in page.evaluate(sizes))
    frames = page.evaluate("window.frames_seen")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": 1280, "height": 900, "deviceScaleFactor": 3, "mobile": False})
    assert page.evaluate("window.devicePixelRatio") == 3
    page.evaluate("window.media_listeners.filter(([query, type]) =>"
                  " query.startsWith('(resolution') && type === 'change')"
                  ".forEach(([, , listener]) => listener({ matches: false }))")  # fmt: skip
    page.wait_for_function(f"{sizes}.every(([w, h, cw, ch]) => w === 3 * cw && h === 3 * ch)")
    assert page.evaluate("window.frames_seen") == frames  # the page redrew itself
    # and watches for the next change, at the new density
    queries = page.evaluate("window.media_listeners.map(([query]) => query)")
    assert queries[-1] == "(resolution: 3dppx)", queries
    assert problems == []
    page.close()


def test_the_unit_heatmaps_of_several_hidden_layers_are_grouped_by_layer(open_page):
    page = open_page("?nets=1&hidden=3,5")
    children = page.evaluate(
        "[...document.getElementById('units').children].map((e) => e.tagName === 'CANVAS'"
        " ? e.title : e.textContent)"
    )
    assert children == (["hidden layer 1 (3 units)"]
                        + [f"hidden layer 1, unit {j}" for j in range(1, 4)]
                        + ["hidden layer 2 (5 units)"]
                        + [f"hidden layer 2, unit {j}" for j in range(1, 6)])  # fmt: skip
    one = open_page("?nets=1&hidden=2")  # one hidden layer: its units alone, as before
    assert one.evaluate("[...document.getElementById('units').children].map((e) => e.title)") == [
        "hidden unit 1", "hidden unit 2"]  # fmt: skip


def test_a_bad_value_shows_a_message_and_training_goes_on(open_page):
    page = open_page("?nets=1&epochs=100")
    message = page.locator("#message")
    for field, value, text in [
        ("#lr", "abc", "learning rate must be a number such as 0.5, got 'abc'"),
        ("#hidden", "1000000", "hidden widths must be between 1 and 64"),
        ("#seed", "-1", "seed must be a non-negative integer"),
    ]:
        page.fill(field, value)
        page.press(field, "Enter")
        page.wait_for_function(
            f"document.querySelector('#message').textContent.includes({text!r})"
        )
        assert message.is_visible()
    assert page.input_value("#lr") == "0.5"  # the controls show the setup that still trains
    page.get_by_role("button", name="Step").click()
    wait_for_epoch(page, 1)
    run = run_train(TrainConfig(backend="numpy", every=1, epochs=100))
    assert shown(page) == printed(run.history[1])


def test_a_diverging_net_is_shown_diverged(open_page):
    page = open_page("?nets=1&lr=40")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("document.querySelector('#status').textContent === 'diverged'")
    run = run_train(TrainConfig(backend="numpy", lr=40.0, epochs=100))
    assert run.outcome["status"] == "diverged"
    page.get_by_role("button", name="Reset").click()
    wait_for_epoch(page, 0)


def test_two_tabs_are_independent_and_closing_one_ends_its_session(open_page, server):
    live = server[0]
    before = set(live.sessions)
    first, second = open_page("?nets=1&epochs=100"), open_page("?nets=1&epochs=100&seed=3")
    first.get_by_role("button", name="Step").click()
    wait_for_epoch(first, 1)
    time.sleep(0.3)
    assert stat(second, "epoch") == "0"
    assert len(set(live.sessions) - before) == 2
    first.close()
    deadline = time.monotonic() + 5
    while len(set(live.sessions) - before) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(set(live.sessions) - before) == 1


def test_a_saved_run_replays_offline(open_page, browser, tmp_path):
    page = open_page("?nets=4&epochs=200")
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 200)
    final = shown(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Save run").click()
    saved = tmp_path / "run.html"
    download.value.save_as(saved)
    replay = browser.new_page()
    requests, problems = [], []
    replay.on("request", lambda r: requests.append(r.url))
    replay.on("pageerror", lambda e: problems.append(str(e)))
    replay.goto(Path(saved).as_uri())
    wait_for_epoch(replay, 0)
    replay.get_by_role("button", name="Play").click()
    wait_for_epoch(replay, 200)
    assert shown(replay) == final and problems == []
    assert all(url.startswith("file://") or url.startswith("data:") for url in requests)
    replay.close()


def _serve(port=0):
    live = LiveServer(("127.0.0.1", port), "numpy")
    thread = threading.Thread(target=live.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return live, thread


def _stop(live, thread):
    """As the process's end would: no listening socket, and every page's stream ends."""
    live.shutdown()
    live.server_close()
    thread.join()
    with live.sessions_lock:
        sessions = list(live.sessions.values())
    for session in sessions:
        session.close()


def test_a_restarted_server_is_said_and_its_stale_error_cleared(browser):
    # after a restart the page reconnected to a new session at epoch 0 without a word, and the
    # "did not answer" banner of a command sent while the server was down stayed up
    live, thread = _serve()
    port = live.server_address[1]
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"http://127.0.0.1:{port}/?nets=1")
        wait_for_epoch(page, 0)
        page.get_by_role("button", name="Step").click()
        wait_for_epoch(page, 1)
        _stop(live, thread)
        page.wait_for_function("document.querySelector('#connection').textContent !== "
                               "'connected'")  # fmt: skip
        page.get_by_role("button", name="Step").click()
        page.wait_for_function("document.querySelector('#message').textContent"
                               ".includes('did not answer')")  # fmt: skip
        live, thread = _serve(port)
        wait_for_epoch(page, 0)
        page.wait_for_function("document.querySelector('#message').textContent"
                               ".includes('new session at epoch 0')")  # fmt: skip
        assert "did not answer" not in page.text_content("#message")
        assert page.text_content("#connection") == "connected"
        assert problems == []
    finally:
        page.close()
        _stop(live, thread)


def test_a_late_setup_leaves_the_field_being_edited_as_typed(open_page):
    # a setup arriving while a field was being typed into put the old value back mid-edit
    page = open_page("?nets=1&seed=3")
    page.click("#lr")
    page.fill("#lr", "0.7")  # typed, not yet committed (no change event: the field has focus)
    # a setup arrives, late, from an earlier change of the seed
    page.evaluate("const doc = JSON.parse(JSON.stringify(state.setup)); doc.query.seed = '5'; "
                  "onSetup(doc)")  # fmt: skip
    assert page.input_value("#lr") == "0.7"
    assert page.input_value("#seed") == "5"  # the fields not being edited show the setup's


def test_accuracy_is_rounded_as_train_prints_it(open_page):
    # 5 of 8 patterns right read 63% on the page (Math.round) and 62% in train (f"{x:.0%}")
    page = open_page("?nets=1")
    shares = sorted({k / n for n in range(1, 17) for k in range(n + 1)})
    shown = page.evaluate("(xs) => xs.map((x) => fmt.accuracy(x))", shares)
    assert shown == [f"{x:.0%}" for x in shares]


def test_buttons_that_change_nothing_do_not_restart_the_run(open_page):
    # "- unit" at width 1 and "- layer" with no hidden layer reset the run to epoch 0
    page = open_page("?nets=1&hidden=1")
    page.get_by_role("button", name="Step").click()
    wait_for_epoch(page, 1)
    page.click("#remove-unit")
    time.sleep(0.5)
    assert stat(page, "epoch") == "1" and page.input_value("#hidden") == "1"
    page.click("#remove-layer")
    wait_for_epoch(page, 0)  # a real change restarts
    assert page.input_value("#hidden") == "none"
    page.get_by_role("button", name="Step").click()
    wait_for_epoch(page, 1)
    page.click("#remove-layer")
    time.sleep(0.5)
    assert stat(page, "epoch") == "1"


def test_a_refused_setting_leaves_the_field_being_typed_into(open_page):
    # a refusal put every field back, the one being typed into too
    page = open_page("?nets=1")
    page.fill("#lr", "-3")
    page.click("#seed")  # the lr's change is sent as the seed field takes the focus
    page.keyboard.type("77")
    page.wait_for_function("document.querySelector('#message').textContent.includes('lr')")
    assert page.input_value("#lr") == "0.5"  # the refused field shows the setup that trains
    assert page.input_value("#seed").endswith("77")


def test_a_reconnection_keeps_the_setup_on_display(browser):
    # the stream reconnected to the URL the page was opened with, and a restarted server
    # started that setup, not the one on display
    live, thread = _serve()
    port = live.server_address[1]
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"http://127.0.0.1:{port}/?nets=1&lr=0.5")
        wait_for_epoch(page, 0)
        page.fill("#lr", "2")
        page.press("#lr", "Enter")
        page.wait_for_function("location.search.includes('lr=2')")
        _stop(live, thread)
        live, thread = _serve(port)
        page.wait_for_function("document.querySelector('#message').textContent"
                               ".includes('new session at epoch 0')")  # fmt: skip
        assert page.input_value("#lr") == "2" and "--lr 2 " in page.text_content("#command")
    finally:
        page.close()
        _stop(live, thread)


def test_a_command_left_unanswered_says_why(open_page):
    # with six tabs of the page open the browser holds no connection for a command: Play did
    # nothing, without a word
    page = open_page("?nets=1")
    page.route("**/command", lambda route: None)  # never answered
    page.get_by_role("button", name="Step").click()
    said = "document.querySelector('#message').textContent.includes('close another tab')"
    page.wait_for_function(said, timeout=20_000)
    page.unroute("**/command")


def test_a_net_too_wide_to_draw_says_what_is_drawn(open_page, browser, tmp_path):
    # its caption still explained the weights' colours and widths, none of them drawn
    page = open_page("?nets=1&hidden=64,64")
    assert page.locator("#network line").count() == 0
    assert "too many to draw" in page.text_content("#weight-readout")
    assert "orange" not in page.text_content("#network-key")
    narrow = open_page("?nets=1")
    assert "orange weights positive" in narrow.text_content("#network-key")


def test_a_saved_runs_stalled_nets_cannot_be_clicked(open_page, browser, tmp_path):
    # its buttons looked live, and a click only stopped the replay
    page = open_page("?nets=60&epochs=2000&hidden=2&lr=0.3")
    page.get_by_role("button", name="Play").click()
    wait_for_epoch(page, 2000)
    page.wait_for_function("document.querySelectorAll('#stalled button').length > 0")
    with page.expect_download() as download:
        page.get_by_role("button", name="Save run").click()
    saved = tmp_path / "run.html"
    download.value.save_as(saved)
    replay = browser.new_page()
    replay.goto(saved.as_uri())
    wait_for_epoch(replay, 0)
    replay.get_by_role("button", name="Play").click()
    wait_for_epoch(replay, 2000)
    buttons = replay.locator("#stalled button")
    assert buttons.count() > 0 and all(buttons.nth(i).is_disabled() for i in range(buttons.count()))
    replay.close()
