"""``-h`` / ``--help`` for the measurement scripts that read their few arguments by hand: the
module's docstring (how to run it, what it prints) and exit 0, where the script would otherwise
have started a run of minutes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def help_requested(doc: str | None, argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        try:
            print((doc or "").strip(), flush=True)
        except BrokenPipeError:  # | head: the reader has what it wanted
            sys.stdout = None
        raise SystemExit(0)


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line and exit status 2, as the command's are
    (argparse prints the whole usage above its message)."""

    def __init__(self, *args, **kwargs):
        script = Path(sys.argv[0])
        if "prog" not in kwargs and script.parent.name == "benchmarks":
            # run as python -m tests.benchmarks.NAME, as the README says (not main() called
            # from another program: its own name, argparse's default)
            kwargs["prog"] = f"python -m tests.benchmarks.{script.stem}"
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
