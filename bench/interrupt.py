"""Ctrl-C and SIGTERM stop any command within a second, the same way.

SIGTERM is turned into the KeyboardInterrupt a Ctrl-C raises, so one ``except`` handles both,
and ``finally`` blocks (which remove temporary files) run for either. Python handles signals in
the main thread between bytecodes, which a long numba kernel never reaches: ``interruptible``
runs such a call in a worker thread (the kernel releases the GIL) while the main thread waits;
on an interrupt it raises the call's abort flag, which the kernel polls every epoch, waits a
moment for it to return and re-raises. The flag changes nothing while it is down, so a run that
is not interrupted gives the same bits as before.

The worker is not a daemon thread, and the main thread never joins it with a timeout (below).
An interpreter that finalized while a kernel thread still ran aborted an interrupted sweep
("terminate called without an active exception", status -6 instead of 130); a program that
calls the command's ``main`` and then exits now waits at its exit for the kernel, which sees
its flag within an epoch. The ``backprop-bench`` command does not wait: on an interrupt it
leaves by ``os._exit`` (``backprop_bench.command``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from backprop_bench import command

POLL_SECONDS = 0.05
# how long an interrupted command waits for its kernel to stop before it ends without it
GRACE_SECONDS = 0.5


def _raise_interrupt(signum, frame):
    command.pending.append(signum)
    raise KeyboardInterrupt


def raise_if_pending() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C or SIGTERM that the command received and that
    was swallowed where it landed (see ``backprop_bench.command.pending``): called between the
    steps of long work (``Progress.advance``), it stops there. A no-op otherwise, and where the
    command's handlers are not installed (``main`` called from Python)."""
    if command.pending:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (as Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait(done: threading.Event, seconds: float = float("inf")) -> None:
    """Wait in POLL_SECONDS steps until ``done`` is set or ``seconds`` have passed.

    Not ``Thread.join`` with a timeout: a Ctrl-C that interrupts the join marks a thread that
    still runs as stopped (CPython issue 90882), and the interpreter would then finalize under
    the kernel instead of waiting for it.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done.wait(POLL_SECONDS):
            return


def _wait_briefly(done: threading.Event) -> None:
    """Give an aborted call up to GRACE_SECONDS to notice its flag, then stop waiting.

    The kernel sees the flag within an epoch, but an epoch of a huge net, or a kernel still
    compiling in the worker, can take longer; the command must end within a second all the
    same: the command then leaves without it (see the module's note). A second Ctrl-C stops the
    wait at once.
    """
    with contextlib.suppress(KeyboardInterrupt):
        _wait(done, GRACE_SECONDS)


def interruptible(call: Callable, /, *args, **kwargs):
    """``call(*args, abort=flag, **kwargs)`` in a worker thread; Ctrl-C or SIGTERM set ``flag``.

    ``flag`` is an int8 array of shape (1,) that the call polls (``train_population``'s
    ``abort``). Off the main thread the call simply runs here: only the main thread gets signals.
    """
    abort = np.zeros(1, dtype=np.int8)
    if threading.current_thread() is not threading.main_thread():
        return call(*args, abort=abort, **kwargs)
    outcome = {}
    done = threading.Event()

    def work():
        try:
            outcome["value"] = call(*args, abort=abort, **kwargs)
        except BaseException as error:  # handed to the main thread, which re-raises it
            outcome["error"] = error
        finally:
            done.set()

    worker = threading.Thread(target=work, name="backprop-bench-kernel", daemon=False)
    try:
        worker.start()
        _wait(done)
    except BaseException:  # an interrupt, or anything else that ends the wait: stop the kernel
        abort[0] = 1
        _wait_briefly(done)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
