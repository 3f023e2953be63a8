"""Which of numba's functions a training job spends its time in, by Linux ``perf``.

    perf record -o perf.data python -m tests.benchmarks.perf_map [--case 8-32-32-1]
        [--epochs 100] [--repeats 20]
    perf report -i perf.data --no-children --sort symbol

numba's compiled functions carry no symbols that perf can read, so after the first call this
writes /tmp/perf-<pid>.map (perf's map of JIT code: start, size and name of each function, each
function taken to reach to the next one's start), then trains the peer table's case on one
thread. Functions loaded from numba's cache have no LLVM module to name them from, so the run
compiles into a fresh cache directory of its own, removed at exit (a minute or so, in the
profile too: read the shares among numba's functions). Timings of one machine; not a test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="perf_map_")
os.environ["NUMBA_CACHE_DIR"] = _CACHE  # before numba loads
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import gc  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
from numba.core.ccallback import CFunc  # noqa: E402
from numba.core.registry import CPUDispatcher  # noqa: E402

from . import usage  # noqa: E402
from .peer_table import CASES, data_for, ours, theta_for  # noqa: E402


def write_map() -> int:
    """/tmp/perf-<pid>.map for every function of every compiled numba dispatcher and C
    callback; returns how many functions it names."""
    entries, seen = [], set()
    compiled = []  # the libraries of every jitted function and of every C callback (cfunc:
    # the fused pass and the lane loops' activations, called through pointers; unnamed, their
    # samples went to whichever function the map put before them)
    for obj in gc.get_objects():
        if isinstance(obj, CPUDispatcher):
            compiled.extend(result.library for result in obj.overloads.values())
        elif isinstance(obj, CFunc):
            compiled.append(obj._library)
    for top in compiled:
        for library in [top, *getattr(top, "_linking_libraries", [])]:
            module = getattr(library, "_final_module", None)
            for function in module.functions if module is not None else ():
                if function.is_declaration or function.name in seen:
                    continue
                address = library.get_pointer_to_function(function.name)
                if address:
                    seen.add(function.name)
                    entries.append((address, function.name))
    entries.sort()
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as out:
        for (address, name), (following, _) in zip(entries, entries[1:] + [(0, "")], strict=True):
            size = following - address if following else 4096
            out.write(f"{address:x} {min(size, 1 << 20):x} {name}\n")
    return len(entries)


def main() -> None:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(CASES), default="8-32-32-1")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    numba.set_num_threads(1)
    case = CASES[args.case]
    X, Y = data_for(case.spec)
    theta = theta_for(args.case)
    train = ours(case, X, Y)
    train(theta, 1)  # compiles
    print(f"perf map: {write_map()} functions")
    start = time.perf_counter()
    for _ in range(args.repeats):
        train(theta, args.epochs)
    rate = args.repeats * args.epochs * theta.shape[1] / (time.perf_counter() - start)
    print(f"{args.case}, {args.epochs} epochs x {args.repeats}, one thread: {rate:.3g} "
          "net-epochs/s")


if __name__ == "__main__":
    main()
