"""numba's on-disk cache of the kernels, kept in step with all of their sources.

numba keys a cached function on the source of its own file only (its documentation: changes to
functions in other files are not seen). The training kernel of numba_lanes inlines the register
tiles of numba_tiles and the row sums of numba_rows, and the fused pass reads numba_lanes'
layout: after an update that changed numba_tiles and not numba_lanes, the cached training kernel
would go on running the old tiles, and two machines would train the same config to different
numbers. So when the first numba module of this package is imported, ``refresh`` compares a
digest of every source file of the package with the one stamped beside numba's cache, and where
they differ it removes the package's cache entries (they compile afresh, once) and stamps the
new digest. Unchanged sources cost a hash of the package's files, about a millisecond.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numba

PACKAGE = Path(__file__).resolve().parent
STAMP = "backprop-bench-kernels.sha256"


def sources(package: Path = PACKAGE) -> list[Path]:
    """The package's source files: not hidden ones (an editor's lock file, ``.#numba_lanes.py``,
    is a link to nowhere), and only regular files."""
    return sorted(p for p in package.glob("*.py") if not p.name.startswith(".") and p.is_file())


def digest(files: list[Path]) -> str:
    """sha256 of the files' names and contents, in order."""
    sha = hashlib.sha256()
    for path in files:
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


@numba.njit(cache=True)
def _probe():  # its cache directory is the package's (numba locates it by the source's folder)
    return 0


def cache_dir() -> Path | None:
    """Where numba keeps this package's cached functions (its own choice: the __pycache__
    beside the sources, a user-wide folder where that is not writable, or NUMBA_CACHE_DIR's);
    None if this numba does not say."""
    path = getattr(getattr(_probe, "_cache", None), "_cache_path", None)
    return Path(path) if path else None


def refresh(directory: Path | None, files: list[Path]) -> bool:
    """Remove the cache entries (``.nbi``, ``.nbc``) of the modules in ``files`` from
    ``directory`` unless the stamp there holds the files' digest, then stamp it. Returns whether
    entries were removed. Never fails the import: a folder that cannot be read or written is
    left as numba left it."""
    if directory is None or not directory.is_dir():
        return False
    stamp = directory / STAMP
    try:
        want = digest(files)  # a file gone since it was listed (a checkout under way): next time
    except OSError:
        return False
    try:
        stamped = stamp.read_text()
    except OSError:
        stamped = None  # no stamp yet, or unreadable: taken as stale
    if stamped == want:
        return False
    modules = {path.stem for path in files}
    removed = False
    try:
        for entry in directory.iterdir():
            if entry.suffix in (".nbi", ".nbc") and entry.name.split(".", 1)[0] in modules:
                entry.unlink(missing_ok=True)
                removed = True
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{STAMP}.")
        with os.fdopen(handle, "w") as out:
            out.write(want)
        os.replace(temporary, stamp)  # never seen half-written
    except OSError:
        return removed
    return removed


refresh(cache_dir(), sources())
