"""Every file the project writes appears whole, or not at all.

A file is written to a temporary file in its own folder (``.NAME.PID.RANDOM.tmp``), flushed to
disk and renamed over its final name; a rename within a folder is atomic, so a reader sees the
old file or the new one, never half of one, whatever kills the writer (Ctrl-C, SIGTERM, a full
disk, ``kill -9``, a power cut). A writer that fails removes its temporary file; one killed
outright leaves it behind, and ``clean_stale`` removes such files at the next start, but only
those of processes that are gone, so two runs sharing a folder never remove each other's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# OS errors that say the path given is wrong (bad input: status 2), as opposed to the machine
# failing during the work (a full disk, an I/O error: status 1)
PATH_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
               errno.EROFS, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}  # fmt: skip
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _durable(tmp: Path) -> None:
    """Flush ``tmp`` to disk with an output's permissions (mkstemp makes files private)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())


def _commit(tmp: Path, path: Path) -> None:
    """Make ``tmp`` durable and move it over ``path`` (where a final name appears)."""
    _durable(tmp)
    os.replace(tmp, path)


def _temporary(path: Path) -> Path:
    """A new empty temporary file beside ``path``; a failure names ``path`` (a read-only
    folder's error named the temporary file)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)  # fmt: skip
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from error
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed into place on success.

    >>> with replacing("out/figure.png") as tmp:
    ...     fig.savefig(tmp, format="png")
    """
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        _commit(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        # name the file the user asked for, not the temporary one (a failed write names none)
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Within the block, a Ctrl-C or SIGTERM is held, and raised as KeyboardInterrupt once the
    block is done (in the main thread; elsewhere signals never arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        raise KeyboardInterrupt


@contextlib.contextmanager
def replacing_together(paths: list[Path], stale: tuple[Path, ...] = ()) -> Iterator[dict]:
    """Temporary paths for several files (``{path: tmp}``), renamed into place together once
    every one is made, and ``stale`` files of an earlier set removed with them: a set that fails
    on its way leaves the earlier set as it was, and an interrupt while they are renamed waits
    for the last (raised after it), so a folder never holds half of one set and half of another.
    """
    made = {}
    try:
        for path in map(Path, paths):
            made[path] = _temporary(path)
        try:
            yield made
        except OSError as error:
            if error.filename is not None:
                raise
            # a failed write names no file (a full disk: 'standard output', said the CLI, from
            # an outside audit): the file being written is the one last touched
            raise OSError(error.errno, error.strerror, str(_last_touched(made))) from error
        for path, tmp in made.items():  # durable first; the renames below are quick
            try:
                _durable(tmp)
            except OSError as error:
                raise OSError(error.errno, error.strerror, str(path)) from error
        with deferred_interrupts():
            for path, tmp in list(made.items()):
                os.replace(tmp, path)
                del made[path]
            for path in stale:
                Path(path).unlink(missing_ok=True)
    finally:
        for tmp in made.values():
            tmp.unlink(missing_ok=True)


def _last_touched(made: dict) -> Path:
    """The path whose temporary file was modified last (the first of a tie), or their folder
    if none is there."""
    times = {}
    for path, tmp in made.items():
        try:
            times[path] = tmp.stat().st_mtime_ns
        except OSError:
            continue
    if not times:
        return next(iter(made)).parent
    return max(times, key=lambda path: (times[path], -list(made).index(path)))


def write_bytes(path: str | Path, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def clean_stale(folder: str | Path) -> int:
    """Remove the temporary files that dead writers left in ``folder``; returns how many."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and not _running(int(match.group(1))) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files (of a live writer or not)."""
    return bool(_TEMPORARY.match(name))
