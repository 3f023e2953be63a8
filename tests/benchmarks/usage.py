"""``-h`` / ``--help`` for the measurement scripts that read their few arguments by hand: the
module's docstring (how to run it, what it prints) and exit 0, where the script would otherwise
have started a run of minutes."""

from __future__ import annotations

import sys


def help_requested(doc: str | None, argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        try:
            print((doc or "").strip(), flush=True)
        except BrokenPipeError:  # | head: the reader has what it wanted
            sys.stdout = None
        raise SystemExit(0)
