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


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number: give 1 or more")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def writable(path: Path | str, what: str = "the output") -> None:
    """Exit 2 with one line if ``path``'s folder does not exist (before minutes of work whose
    result could not be written)."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        _refuse(f"{what}'s folder {folder} does not exist: create it, or give a path in an "
                "existing folder")  # fmt: skip


def hand_arguments(doc: str | None, *, outputs: int = 0, required: bool = False,
                   more: bool = False, flags: tuple = (), valued: tuple = (),
                   argv: list[str] | None = None) -> None:
    """What a script that reads its arguments by hand may be given, checked before it starts:
    ``-h``/``--help`` (its docstring, exit 0); up to ``outputs`` output paths first (at least
    one if ``required``), whose folders must exist; further words only if ``more`` (case
    filters); the bare ``flags`` and the ``valued`` flags (each followed by its value, or
    NAME=VALUE). Anything else exits 2 with one line."""
    argv = sys.argv[1:] if argv is None else argv
    help_requested(doc, argv)
    words, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word in valued:
            if i + 1 >= len(argv):
                _refuse(f"{word} needs a value")
            i += 2
            continue
        if word.split("=")[0] in valued and "=" in word:
            i += 1
            continue
        if word.startswith("-") and word not in flags:
            known = ", ".join(flags + valued) or "none but -h"
            _refuse(f"unknown option {word} (options: {known})")
        if not word.startswith("-"):
            words.append(word)
        i += 1
    if required and not words:
        _refuse("give the output file (OUT.json) first")
    for path in words[:outputs]:
        writable(path)
    if len(words) > outputs and not more:
        _refuse(f"unexpected argument {words[outputs]!r}")


def count_of(option: str, text: str) -> int:
    """positive_int for a script that reads its arguments by hand: exit 2 with one line."""
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as error:
        _refuse(f"{option}: {error}")


def _refuse(message: str) -> None:
    script = Path(sys.argv[0]).stem
    print(f"python -m tests.benchmarks.{script}: error: {message} (see --help)", file=sys.stderr)
    raise SystemExit(2)
