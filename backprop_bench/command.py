"""The ``backprop-bench`` entry point, kept apart so that loading the numerical libraries (a
second or more) is itself interruptible: a Ctrl-C or SIGTERM then ends in one line and status
130, as one during the work does."""

import atexit
import os
import signal
import sys

INTERRUPTED = 130
# set by every Ctrl-C or SIGTERM the command receives: a KeyboardInterrupt raised where a
# library catches and drops it (numba reports an exception raised in its cache callbacks and
# goes on) would otherwise be lost, and the command ran to the end with status 0;
# ``bench.interrupt.raise_if_pending`` raises it again at the work's next step
pending = []


def _interrupt(signum, frame):
    pending.append(signum)
    raise KeyboardInterrupt


def _ignore_interrupts() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def main() -> int:
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        from .bench.cli import main as run
        code = run()
        # The command is over: a Ctrl-C or SIGTERM from here on finds nothing to stop and is
        # ignored, so the status is the command's (one in the interpreter's teardown, 0.3 to
        # 0.6 s after a sweep had written everything, ended the process by the signal: status
        # 143 and no line on stderr)
        _ignore_interrupts()
    except KeyboardInterrupt:
        _ignore_interrupts()
        print("backprop-bench: interrupted", file=sys.stderr)
        code = INTERRUPTED
    # Everything an interrupted command must undo (temporary files, a second process, a
    # cluster) was undone in its finally blocks, and the exit handlers (multiprocessing's among
    # them) run here. What is skipped is the interpreter's own teardown of JIT-compiled code and
    # OpenMP threads, which took 2.5 s after a gradcheck: no command waits for it.
    atexit._run_exitfuncs()
    stdout_failed = False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            stdout_failed |= stream is sys.stdout
    # (120 is the status Python itself gives a standard output it could not flush at exit)
    os._exit(120 if stdout_failed and code == 0 else code)
