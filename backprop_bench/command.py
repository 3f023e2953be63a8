"""The ``backprop-bench`` entry point, kept apart so that loading the numerical libraries (a
second or more) is itself interruptible: a Ctrl-C or SIGTERM then ends in one line and status
130, as one during the work does."""

import atexit
import contextlib
import os
import signal
import sys

INTERRUPTED = 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        from .bench.cli import main as run
        code = run()
    except KeyboardInterrupt:
        print("backprop-bench: interrupted", file=sys.stderr)
        code = INTERRUPTED
    if code == INTERRUPTED:
        # Everything an interrupted command must undo (temporary files, a second process, a
        # cluster) was undone in its finally blocks, and the exit handlers (multiprocessing's
        # among them) run here. What is skipped is the interpreter's own teardown of JIT-compiled
        # code and OpenMP threads, which took 2.5 s after a gradcheck: an interrupt does not
        # wait for it.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(INTERRUPTED)
    return code
