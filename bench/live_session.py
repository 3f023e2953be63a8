"""One live page's training session: its setup, its commands, and the events it streams.

A page's setup arrives as text (the URL's query, or the controls' values) and becomes a
:class:`TrainConfig` plus a population size, or a one-line ``ValueError`` that the page shows.
A :class:`Session` owns the displayed net's snapshot generator and the population's training
thread; ``events()`` is the stream the server sends to the page (play, pause, step, reset and a
new setup or displayed net arrive through ``command``). The session ends when the page goes.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import replace

import numpy as np

from .live_train import GRID_RANGE, GRID_SIZE, PopulationRun, train_live
from .train import TrainConfig

FRAME_SECONDS = 1 / 30  # the page redraws at most this often; training runs between frames
MAX_WIDTH = 64  # units per hidden layer the page can draw
MAX_HIDDEN_LAYERS = 6
MAX_EPOCHS = 100_000
MAX_NETS = 10_000
DEFAULT_NETS = 1_000
# a population block: about this many net-epochs of the tutorial's 2-4-1 net on 4 samples (0.07
# s on the two-core development machine), fewer nets for more work a net-epoch (parameters times
# samples), never fewer than MIN_BLOCK (a vector of nets' lanes)
NET_EPOCHS_PER_BLOCK = 1_280_000
BLOCK_WORK = NET_EPOCHS_PER_BLOCK * 17 * 4
MIN_BLOCK, MAX_BLOCK = 8, 512
# numba's parallel loops must not be entered from two threads at once where its threading layer
# is workqueue (it aborts the process): there every numba kernel call of every session takes
# this lock. tbb and omp take parallel loops from several threads, and there is no lock: a
# population block of wide nets held it for seconds to minutes (64 units in 6 layers: 7.5 s a
# net), and every page waited. NumPy needs none.
_NUMBA_LOCK = threading.Lock()
_THREADSAFE = {}


class _Stop(threading.Event):
    """A population's stop: also the abort flag its kernel polls every epoch."""

    def __init__(self):
        super().__init__()
        self.abort = np.zeros(1, dtype=np.int8)

    def set(self):
        self.abort[0] = 1
        super().set()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _threadsafe_layer() -> bool:
    """Whether numba's threading layer (chosen once, when its threads start) takes parallel
    loops from several threads at once: tbb and omp do, workqueue does not."""
    if "numba" not in _THREADSAFE:
        try:
            import numba
            from numba.np.ufunc import parallel

            parallel._launch_threads()
            _THREADSAFE["numba"] = numba.threading_layer() in ("tbb", "omp")
        except Exception:  # noqa: BLE001 - not known: the lock is safe either way
            _THREADSAFE["numba"] = False
    return _THREADSAFE["numba"]


def kernel_lock(backend: str):
    if backend == "numba" and not _threadsafe_layer():
        return _NUMBA_LOCK
    return _NoLock()


def population_block(config: TrainConfig) -> int:
    """Nets a population block trains over the whole budget: BLOCK_WORK of work (net-epochs
    times parameters times samples), between MIN_BLOCK and MAX_BLOCK nets."""
    work = max(config.epochs, 1) * config.spec.n_params * config.data.X.shape[0]
    return int(min(MAX_BLOCK, max(MIN_BLOCK, BLOCK_WORK // work)))

# (query key, TrainConfig field, flag of `backprop-bench train`) for everything the page sets
SETUP_KEYS = ("problem", "hidden", "activation", "loss", "optimizer", "lr", "init", "seed",
              "net", "tolerance", "epochs", "batchnorm", "dropout", "weight_decay")  # fmt: skip
# flags of `backprop-bench train` that are left out at their defaults (batchnorm: a switch)
OPTIONAL_FLAGS = {"batchnorm": "--batchnorm", "dropout": "--dropout",
                  "weight_decay": "--weight-decay"}  # fmt: skip
SWITCH = {"on": True, "true": True, "1": True, "yes": True,
          "off": False, "false": False, "0": False, "no": False, "": False}  # fmt: skip


def _number(name: str, text: str, kind):
    try:
        value = kind(str(text).strip())
    except ValueError:
        example = "0.5" if kind is float else "3"
        raise ValueError(f"{name} must be a number such as {example}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {text!r}")
    return value


def _hidden(text: str) -> tuple[int, ...]:
    text = str(text).strip()
    if text.lower() in ("", "none"):
        return ()
    widths = tuple(_number("each hidden width", part, int) for part in text.split(","))
    if len(widths) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"at most {MAX_HIDDEN_LAYERS} hidden layers on this page, got {text!r}")
    for w in widths:
        if not 1 <= w <= MAX_WIDTH:
            raise ValueError(
                f"hidden widths must be between 1 and {MAX_WIDTH} on this page, got {w}; "
                "use backprop-bench train for wider nets"
            )
    return widths


def parse_setup(query: dict, backend: str) -> tuple[TrainConfig, int]:
    """A page's setup: ``query`` maps SETUP_KEYS and ``nets`` to text; missing keys keep the
    defaults of ``backprop-bench train``. Raises ValueError with a one-line message."""
    unknown = set(query) - set(SETUP_KEYS) - {"nets"}
    if unknown:
        known = ", ".join((*SETUP_KEYS, "nets"))
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; known: {known}")
    values = {}
    for key, text in query.items():
        if key == "hidden":
            values[key] = _hidden(text)
        elif key == "tolerance" and str(text).strip().lower() == "none":
            # the page's one rule for converging (train's --loss-below and the others are not on it)
            raise ValueError("tolerance none leaves the page no rule for converging: give a number "
                             "such as 0.4, or run backprop-bench train --tolerance none "
                             "--loss-below X")  # fmt: skip
        elif key in ("lr", "tolerance", "dropout", "weight_decay"):
            name = {"lr": "learning rate", "weight_decay": "weight decay"}.get(key, key)
            values[key] = _number(name, text, float)
        elif key == "batchnorm":
            word = str(text).strip().lower()
            if word not in SWITCH:
                raise ValueError(f"batchnorm must be on or off, got {text!r}")
            values[key] = SWITCH[word]
        elif key in ("seed", "net", "epochs", "nets"):
            values[key] = _number(key, text, int)
        elif key == "init":  # its own spelling rules (xavier-uniform, normal:0.5), and its
            values[key] = str(text).strip()  # message quotes what was given
        else:
            values[key] = str(text).strip().lower().replace("-", "_")
    n_nets = values.pop("nets", DEFAULT_NETS)
    if not 1 <= n_nets <= MAX_NETS:
        raise ValueError(f"nets (the population) must be between 1 and {MAX_NETS:,}, got {n_nets}")
    if not 0 <= values.get("epochs", 0) <= MAX_EPOCHS:
        raise ValueError(f"epochs must be between 0 and {MAX_EPOCHS:,}, got {values['epochs']}")
    for key in ("seed", "net"):
        if values.get(key, 0) < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {values[key]}")
    config = TrainConfig(**values, backend=backend, every=1)
    if config.data.n_inputs > 8:
        raise ValueError(f"the page draws problems of up to 8 inputs, got {config.data.name}")
    return config, n_nets


def _holds(key: str, text: str, backend: str) -> bool:
    """Whether one setting is accepted on its own (beside the defaults)."""
    try:
        parse_setup({key: text}, backend)
    except ValueError:
        return False
    return True


def setup_query(config: TrainConfig, n_nets: int) -> dict:
    """The setup as the URL's query: text per SETUP_KEYS and ``nets``."""
    text = {key: getattr(config, key) for key in SETUP_KEYS}
    text["hidden"] = ",".join(map(str, config.hidden)) or "none"
    text["batchnorm"] = "on" if config.batchnorm else "off"
    text = {key: f"{value:g}" if isinstance(value, float) else str(value)
            for key, value in text.items()}  # fmt: skip
    text["nets"] = str(n_nets)
    return text


def train_command(config: TrainConfig) -> str:
    """The ``backprop-bench train`` command that trains the displayed net, epoch for epoch."""
    q = setup_query(config, 0)
    flags = [f"--{key} {q[key]}" for key in SETUP_KEYS if key not in OPTIONAL_FLAGS]
    if config.batchnorm:
        flags.append("--batchnorm")
    flags += [f"{OPTIONAL_FLAGS[key]} {q[key]}" for key in ("dropout", "weight_decay")
              if getattr(config, key)]  # fmt: skip
    return f"backprop-bench train {' '.join(flags)} --backend {config.backend} --every 1"


def _plain(value):
    """JSON-ready: arrays to lists, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):  # json.dumps refuses NumPy's bool: the stream died on one
        return bool(value)
    return value


def _one_thread(backend: str) -> None:
    """numba's threads for this thread's kernel calls: one. A single displayed net gains nothing
    from the thread pool but pays its start-up every call, and much more on a busy machine;
    the kernels give the same bits for any thread count."""
    if backend == "numba":
        import numba

        numba.set_num_threads(1)


def _rounded(grid):
    # the heatmaps' colours need three decimals; fewer digits keep frames and saved runs small
    if grid is None:
        return None
    return {"output": np.round(grid["output"], 3),
            "hidden": [np.round(h, 3) for h in grid["hidden"]]}  # fmt: skip


class Session:
    """The training behind one page. ``events()`` runs in the thread that streams to the page."""

    def __init__(self, query: dict, backend: str):
        self.backend = backend
        self.lock = kernel_lock(backend)
        self.commands: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.playing = False
        self.chunk, self._overhead = 1, float("inf")
        self.first_error = None
        try:
            config, n_nets = parse_setup(query, backend)
        except ValueError as error:
            # the URL's other settings are kept: those refused on their own go back to their
            # defaults (the whole setup did, for one bad value)
            dropped = [key for key in query if not _holds(key, query[key], backend)]
            try:
                config, n_nets = parse_setup({k: v for k, v in query.items()
                                              if k not in dropped}, backend)  # fmt: skip
            except ValueError:
                config, n_nets, dropped = *parse_setup({}, backend), []
            known = [k for k in dropped if k in (*SETUP_KEYS, "nets")]
            unknown = [k for k in dropped if k not in known]
            defaults = "their defaults" if len(known) > 1 else "its default"
            parts = ([f"{', '.join(known)} at {defaults}"] if known else []) + (
                [f"{', '.join(unknown)} left out"] if unknown else [])
            self.first_error = f"{error} (" + (
                f"the rest of the setup is shown, {'; '.join(parts)})" if dropped
                else "the default setup is shown)")  # fmt: skip
        self._population = None
        self._sent_epoch = -1  # the last epoch whose history row the page has
        self._start(config, n_nets)

    # --- commands, from the server's request threads
    def command(self, action: str, payload: dict) -> None:
        """Queue a command; raises ValueError (shown on the page) for a bad one."""
        if action == "setup":
            self.commands.put(("setup", parse_setup(payload.get("setup", {}), self.backend)))
        elif action == "select":
            net = _number("net", payload.get("net", ""), int)
            if net < 0:
                raise ValueError(f"net must be a non-negative integer, got {net}")
            replace(self.config, net=net)  # refused here, in the reply, not later in the stream
            self.commands.put(("select", net))
        elif action in ("play", "pause", "step", "reset"):
            self.commands.put((action, None))
        else:
            raise ValueError(f"unknown command {action!r}; choose play, pause, step or reset")

    def close(self) -> None:
        self.closed.set()
        if self._population:
            self._population[1].set()

    # --- the stream
    def _start(self, config: TrainConfig, n_nets: int, keep_population: bool = False) -> None:
        self.config, self.n_nets = config, n_nets
        with self.lock:
            self.trainer = train_live(config)
            self.snapshot = next(self.trainer)
        self.playing, self.chunk, self._overhead = False, 1, float("inf")
        if not keep_population:
            if self._population:
                self._population[1].set()
            # blocks sized by their work keep a stopped population (a new setup, a closed page)
            # from training on long, and where there is a lock, every page's turn short
            run, stop = PopulationRun(config, n_nets, block=population_block(config)), _Stop()
            thread = threading.Thread(target=self._train_population, args=(run, stop), daemon=True)
            self._population = (run, stop, thread)
            thread.start()

    def _train_population(self, run: PopulationRun, stop: _Stop) -> None:
        while not (run.done or stop.is_set() or self.closed.is_set()):
            with self.lock:
                run.advance(abort=stop.abort)
            time.sleep(0.002)  # a lock is not fair: let the displayed net have its turn

    def _advance(self, n_epochs: int) -> float:
        """Train n_epochs more; returns the seconds the kernels took (not waiting for the lock)."""
        with self.lock:
            start = time.perf_counter()
            self.snapshot = self.trainer.send(n_epochs)
            return time.perf_counter() - start

    def _handle(self, action, value):
        if action == "setup":
            self._start(*value)
            return [self._setup_event()]
        if action == "select":
            epoch = self.snapshot.epoch
            self._start(replace(self.config, net=value), self.n_nets, keep_population=True)
            head = self.snapshot.history  # epoch 0, never sent on its own
            self._advance(epoch)  # the chosen net joins the population at the epoch on display
            self.snapshot.history = {key: np.concatenate([head[key], rows])
                                     for key, rows in self.snapshot.history.items()}  # fmt: skip
            return [self._setup_event()]
        if action == "reset":
            self._start(self.config, self.n_nets, keep_population=True)
            return [self._setup_event()]
        if action == "step":
            self.playing = False
            self._advance(1)
        else:
            self.playing = action == "play" and not self.snapshot.finished
        return []

    def _setup_event(self):
        c = self.config
        self._sent_epoch = -1  # the page starts its curves afresh
        return ("setup", {
            "query": setup_query(c, self.n_nets), "command": train_command(c),
            "layers": list(c.spec.layers), "n_params": c.spec.n_params, "spec": c.spec.describe(),
            "problem": {"X": c.data.X, "Y": c.data.Y}, "backend": c.backend,
            "grid": {"size": GRID_SIZE, "range": GRID_RANGE},
        })  # fmt: skip

    def _snapshot_event(self, epochs_per_second=None):
        s = self.snapshot
        run = self._population[0]
        # each epoch's row once: a command's snapshot repeated the last advance's rows, and the
        # page drew the curves back over themselves after every Pause or Play
        new = s.history["epoch"] > self._sent_epoch
        history = {key: rows[new] for key, rows in s.history.items()}
        if new.any():
            self._sent_epoch = int(s.history["epoch"][new][-1])
        return ("snapshot", {
            "epoch": s.epoch, "loss": s.loss, "accuracy": s.accuracy, "grad_norm": s.grad_norm,
            "status": s.status, "finished": s.finished, "playing": self.playing,
            "epochs_to_converge": s.epochs_to_converge,
            "first_full_accuracy": s.first_full_accuracy, "net": self.config.net,
            "theta": s.theta, "history": history, "layer_grad_norms": s.layer_grad_norms,
            "grid": _rounded(s.grid), "epochs_per_second": epochs_per_second,
            "population": run.summary(s.epoch),
        })  # fmt: skip

    def events(self):
        """Generator of (event name, JSON-ready payload) until the session is closed."""
        _one_thread(self.backend)
        yield "setup", _plain(self._setup_event()[1])
        if self.first_error:
            yield "error", {"message": self.first_error}
        yield "snapshot", _plain(self._snapshot_event()[1])
        last_frame, last_population, play_start = time.perf_counter(), -1, None
        while not self.closed.is_set():
            try:
                action, value = self.commands.get(timeout=0 if self.playing else FRAME_SECONDS * 6)
            except queue.Empty:
                action = None
            if action:
                play_start = None  # epochs per second: over each stretch of uninterrupted play
                try:
                    for name, payload in self._handle(action, value):
                        yield name, _plain(payload)
                except ValueError as error:
                    yield "error", {"message": str(error)}
                yield "snapshot", _plain(self._snapshot_event()[1])
                continue
            if self.playing:
                if play_start is None:
                    play_start, play_epoch = time.perf_counter(), self.snapshot.epoch
                seconds = self._advance(self.chunk)
                if self.chunk == 1:
                    self._overhead = min(self._overhead, seconds)
                # Frames about FRAME_SECONDS apart: a longer chunk when training is fast, or
                # while a snapshot's own cost (one epoch's time, nearly all of it the snapshot's
                # heatmaps and layer norms: 50 ms for 64 units in 6 layers) outweighs its epochs
                # (that net played 5 epochs a second). Only a resumable run (SGD) gets cheaper
                # with a shorter one.
                frame = max(FRAME_SECONDS, 4 * self._overhead)
                if seconds < frame / 2:
                    self.chunk = min(self.chunk * 2, MAX_EPOCHS)
                elif seconds > 4 * frame and self.config.optimizer == "sgd":
                    self.chunk = max(1, self.chunk // 2)
                self.playing = not self.snapshot.finished
                wait = FRAME_SECONDS - (time.perf_counter() - last_frame)
                if wait > 0:
                    time.sleep(wait)
                last_frame = time.perf_counter()
                speed = (self.snapshot.epoch - play_epoch) / max(last_frame - play_start, 1e-9)
                yield "snapshot", _plain(self._snapshot_event(speed)[1])
            elif self._population[0].n_done != last_population:
                last_population = self._population[0].n_done
                yield "population", _plain(self._population[0].summary(self.snapshot.epoch))
            else:
                yield "ping", None
