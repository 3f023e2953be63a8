"""The fused pass of another checkout against this one's, in one process.

    git worktree add /tmp/base <revision>
    python -m tests.benchmarks.pass_ab /tmp/base "2-4-1 relu" [--repeats 15]

On a shared machine whole runs of the same code differ by a fifth or more, so two versions of
the fused pass (numba_fused) are compared in one process: both are compiled (without numba's
cache), checked to train the peer table's case to the same bits, then the case is trained with
each in turn, ``repeats`` times, alternating which goes first; printed are each one's median
rate and the median of the per-repeat ratios. Only the pass is swapped: the training kernel
around it is this checkout's (numba_backend calls the pass through a pointer). Timings of one
machine; not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import pathlib
import sys
import time

import numba
import numpy as np
from backprop_bench.kernels import numba_backend
from backprop_bench.kernels import numba_fused as this

from .peer_table import CASES, data_for, ours, theta_for


@contextlib.contextmanager
def _fresh():
    """numba.cfunc without its cache meanwhile: both versions' passes compiled afresh (the
    other's module has a name of its own, which numba's cache of its file would not know)."""
    cfunc = numba.cfunc
    numba.cfunc = lambda signature, cache=False, **options: cfunc(signature, **options)
    try:
        yield
    finally:
        numba.cfunc = cfunc


def other_pass_module(checkout: pathlib.Path):
    """numba_fused of another checkout, loaded as a module of this package (its relative
    imports resolve to this checkout's other modules)."""
    path = checkout / "kernels" / "numba_fused.py"
    if not path.is_file():
        raise SystemExit(f"error: no kernels/numba_fused.py in {checkout}: give a checkout")
    name = "backprop_bench.kernels.numba_fused_other"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with _fresh():
        spec.loader.exec_module(module)
    return module


def uncached(module):
    """module.pass_function, compiled afresh and kept per key."""
    made = {}

    def pass_function(key, itemsize):
        if (key, itemsize) not in made:
            with _fresh():
                made[key, itemsize] = module.pass_function.__wrapped__(key, itemsize)
        return made[key, itemsize]

    return pass_function


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=pathlib.Path, help="the other version's checkout")
    parser.add_argument("case", choices=sorted(CASES), help="a case of the peer table")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    case = CASES[args.case]
    X, Y = data_for(case.spec)
    theta = theta_for(args.case)
    train = ours(case, X, Y)
    passes = {"other": uncached(other_pass_module(args.checkout)), "this": uncached(this)}
    results = {}
    for label, pass_function in passes.items():
        numba_backend.pass_function = pass_function
        results[label] = train(theta, case.n_epochs)
    if not np.array_equal(results["other"], results["this"], equal_nan=True):
        print("the two passes train to different parameters")
        return 1
    times = {label: [] for label in passes}
    labels = list(passes)
    for repeat in range(args.repeats):
        for label in labels[repeat % 2 :] + labels[: repeat % 2]:
            numba_backend.pass_function = passes[label]
            start = time.perf_counter()
            train(theta, case.n_epochs)
            times[label].append(time.perf_counter() - start)
    other = np.array(times["other"])
    for label in labels:
        rate = theta.shape[1] * case.n_epochs / np.median(times[label])
        ratio = np.median(other / np.array(times[label]))
        print(f"{args.case}  {label}: {rate:.3g} net-epochs/s, {ratio:.3f}x the other's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
