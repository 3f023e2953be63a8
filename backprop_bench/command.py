"""The ``backprop-bench`` entry point, kept apart so that loading the numerical libraries (a
second or more) is itself interruptible: a Ctrl-C or SIGTERM then ends in one line and status
130, as one during the work does."""

import signal
import sys


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        from .bench.cli import main as run
    except KeyboardInterrupt:
        print("backprop-bench: interrupted", file=sys.stderr)
        return 130
    return run()
