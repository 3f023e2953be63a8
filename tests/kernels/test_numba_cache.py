"""numba's cache kept in step with every kernel source (kernels/numba_cache.py).

numba would keep a function's cached machine code when only a file it calls into changed; the
package removes its cache entries whenever the digest of its sources differs from the stamp
beside them. Oracles: the files left in a cache folder, and numba's own choice of folder.
"""

import subprocess
import sys

from backprop_bench.kernels import numba_cache, numba_lanes


def cache_folder(tmp_path):
    sources = tmp_path / "src"
    sources.mkdir()
    for name in ("numba_lanes", "numba_tiles"):
        (sources / f"{name}.py").write_text(f"# {name}\n")
    folder = tmp_path / "__pycache__"
    folder.mkdir()
    entries = ["numba_lanes.train_kernel-726.py311.nbi", "numba_lanes.train_kernel-726.py311.1.nbc",
               "numba_tiles._tiles-153.py311.nbi"]  # fmt: skip
    others = ["numba_lanes.cpython-311.pyc", "elsewhere.f-1.py311.nbi"]  # not the package's own
    for name in entries + others:
        (folder / name).write_bytes(b"x")
    return numba_cache.sources(sources), folder, entries, others


def test_a_changed_source_removes_the_packages_cache_entries_once(tmp_path):
    files, folder, entries, others = cache_folder(tmp_path)
    assert numba_cache.refresh(folder, files)  # no stamp yet: as after an update
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(others + [numba_cache.STAMP])
    assert (folder / numba_cache.STAMP).read_text() == numba_cache.digest(files)
    for name in entries:  # compiled afresh and saved again: now kept
        (folder / name).write_bytes(b"y")
    assert not numba_cache.refresh(folder, files)
    assert all((folder / name).exists() for name in entries)
    files[1].write_text("# numba_tiles, changed\n")  # a file the cached functions call into
    assert numba_cache.refresh(folder, files)
    assert not any((folder / name).exists() for name in entries)


def test_hidden_files_and_files_gone_since_they_were_listed_do_not_break_the_import(tmp_path):
    files, folder, entries, _ = cache_folder(tmp_path)
    lock = files[0].parent / ".#numba_lanes.py"  # an editor's lock file: a link to nowhere
    lock.symlink_to("user@host.1234:5678")
    assert numba_cache.sources(files[0].parent) == files
    files[1].unlink()  # gone between the listing and the digest
    assert not numba_cache.refresh(folder, files)
    assert all((folder / name).exists() for name in entries)


def test_a_folder_that_is_not_there_or_not_writable_is_left_alone(tmp_path, monkeypatch):
    files, folder, entries, _ = cache_folder(tmp_path)
    assert not numba_cache.refresh(None, files)
    assert not numba_cache.refresh(tmp_path / "missing", files)

    def refused(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(numba_cache.tempfile, "mkstemp", refused)
    numba_cache.refresh(folder, files)  # the stamp cannot be written: no error, no stamp
    assert not (folder / numba_cache.STAMP).exists()
    assert not any(p.name.startswith(".") for p in folder.iterdir())


def test_the_stamp_sits_where_numba_keeps_the_kernels_cache():
    where = numba_cache.cache_dir()
    assert where is not None
    assert str(where) == numba_lanes._zeros._cache._cache_path
    assert (where / numba_cache.STAMP).read_text() == numba_cache.digest(numba_cache.sources())


_PASS_HITS = """
from backprop_bench.kernels import numba_fused
key = numba_fused.fused_key((2, 3, 1), 4, 0, 0, True)
print(numba_fused.pass_function(key, 8).cache_hits)
"""


def test_a_fused_pass_compiled_by_one_process_is_loaded_from_the_cache_by_the_next():
    # Each shape's pass is a closure whose variables numba's cache keys on, pickled. With a
    # numba function among them (pickled with an id of its process), every process missed the
    # cache, compiled the pass anew (0.8-1.1 s for 2-4-1's) and added an entry to the cache.
    hits = [subprocess.run([sys.executable, "-c", _PASS_HITS], capture_output=True, text=True,
                           check=True).stdout.split()[-1] for _ in range(2)]  # fmt: skip
    assert hits[1] == "1", hits
