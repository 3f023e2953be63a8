"""The fused pass, or the whole kernels package, of another checkout against this one's, in one
process.

    git worktree add /tmp/base <revision>
    python -m tests.benchmarks.pass_ab /tmp/base "2-4-1 relu" [--repeats 15] [--whole]
    python -m tests.benchmarks.pass_ab /tmp/base --whole --layers 4-16-1 --activation relu \
        --dtype float32 --epochs 300

On a shared machine whole runs of the same code differ by a fifth or more, so two versions are
compared in one process: both are compiled, checked to train the peer table's case to the same
bits, then the case (one of the peer table's, or a job of one's own as ``peer_table`` takes it) is
trained with each in turn, ``repeats`` times, alternating which goes
first; printed are each one's median rate and the median of the per-repeat ratios. By default
only the fused pass (numba_fused) is swapped, compiled afresh for both: the training kernel
around it is this checkout's (numba_backend calls the pass through a pointer). With
``--whole`` the other checkout's whole ``kernels`` package is loaded beside this one's, under a
name of its own (the lane loops and register tiles of the wide nets too; numba caches its
functions by their files). Timings of one machine; not a test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import pathlib
import sys
import time

import numba
import numpy as np
from backprop_bench.kernels import numba_backend
from backprop_bench.kernels import numba_fused as this

from . import usage
from .peer_table import (
    CASES,
    case_name,
    data_for,
    ours,
    own_job,
    own_job_arguments,
    own_options_given,
    theta_for,
)


@contextlib.contextmanager
def _fresh():
    """numba.cfunc and numba.njit without their cache meanwhile: what they compile is compiled
    afresh and not saved. The other version's modules have names of their own, and numba's
    cache entries name the module they were compiled in: an entry saved for a file under the
    other name could not be loaded under its own (ModuleNotFoundError), and the other way round
    an entry of this checkout's file would be loaded for the other's module."""
    cfunc, njit = numba.cfunc, numba.njit
    numba.cfunc = lambda signature, cache=False, **options: cfunc(signature, **options)
    numba.njit = lambda *args, cache=False, **options: njit(*args, **options)
    try:
        yield
    finally:
        numba.cfunc, numba.njit = cfunc, njit


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


def other_kernels(checkout: pathlib.Path):
    """Another checkout's ``kernels`` package, loaded whole as a package of its own name (its
    imports are relative, so they resolve within it)."""
    path = checkout / "kernels"
    if not (path / "__init__.py").is_file():
        raise SystemExit(f"error: no kernels/__init__.py in {checkout}: give a checkout")
    name = "backprop_bench_other_kernels"
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def _rebuilt(value, cls):
    """A dataclass value (NetSpec, Optimizer) as the same fields in another package's class. A
    field the other version does not have is left out where it holds its default; otherwise
    the case cannot be run there."""
    theirs = {f.name for f in dataclasses.fields(cls) if f.init}
    fields = {}
    for f in dataclasses.fields(value):
        if not f.init:
            continue
        if f.name in theirs:
            fields[f.name] = getattr(value, f.name)
        elif getattr(value, f.name) != f.default:
            raise SystemExit(f"error: the other version's {cls.__name__} has no {f.name!r}, "
                             "which this case sets: compare a case both versions can run")
    return cls(**fields)


def whole_trainer(package, case, X, Y):
    """ours(case, X, Y) with another kernels package's numba backend."""
    backend = importlib.import_module(package.__name__ + ".numba_backend")
    spec = _rebuilt(case.spec, package.NetSpec)
    optimizer = _rebuilt(case.optimizer, package.Optimizer)

    def train(theta, n_epochs):
        result = backend.train_population(theta, spec, X, Y, case.lr, n_epochs, early_stop=False,
                                          optimizer=optimizer)  # fmt: skip
        return result.theta

    return train


def main(argv=None) -> int:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=pathlib.Path, help="the other version's checkout")
    parser.add_argument("case", nargs="?", choices=sorted(CASES),
                        help="a case of the peer table (or a job of your own: --layers)")
    parser.add_argument("--repeats", type=usage.positive_int, default=15)
    parser.add_argument("--whole", action="store_true",
                        help="the other checkout's whole kernels package, not only its pass")
    own = own_job_arguments(parser, "instead of a case")
    args = parser.parse_args(argv)
    if (args.case is None) == (args.layers is None):
        parser.error("give a case of the peer table or --layers for a job of your own, not both")
    if args.case is not None and (given := own_options_given(own, args)):
        parser.error(f"{given[0]} describes a job of your own, which a case of the peer table "
                     "ignores: give --layers in place of the case")  # fmt: skip
    if args.case is not None:
        case, args.name = CASES[args.case], args.case
    else:
        try:
            case = own_job(args)
        except ValueError as error:
            parser.error(str(error))
        args.name = case_name(case)
    args.run = case
    X, Y = data_for(case.spec)
    theta = theta_for(None, case=case)
    train = ours(case, X, Y)
    if args.whole:
        with _fresh():  # the other package's functions are made (and compiled) meanwhile
            return _compared(args, theta, {
                "other": whole_trainer(other_kernels(args.checkout), case, X, Y), "this": train})
    else:
        passes = {"other": uncached(other_pass_module(args.checkout)), "this": uncached(this)}

        def with_pass(pass_function):
            def run(theta, n_epochs):
                numba_backend.pass_function = pass_function
                return train(theta, n_epochs)

            return run

        return _compared(args, theta, {label: with_pass(passes[label]) for label in passes})


def _compared(args, theta, trains) -> int:
    """Both versions' training of the case, checked for the same bits, then timed."""
    case = args.run
    results = {label: run(theta, case.n_epochs) for label, run in trains.items()}
    if not np.array_equal(results["other"], results["this"], equal_nan=True):
        print("the two versions train to different parameters")
        return 1
    times = {label: [] for label in trains}
    labels = list(trains)
    for repeat in range(args.repeats):
        for label in labels[repeat % 2 :] + labels[: repeat % 2]:
            start = time.perf_counter()
            trains[label](theta, case.n_epochs)
            times[label].append(time.perf_counter() - start)
    other = np.array(times["other"])
    for label in labels:
        rate = theta.shape[1] * case.n_epochs / np.median(times[label])
        ratio = np.median(other / np.array(times[label]))
        print(f"{args.name}  {label}: {rate:.3g} net-epochs/s, {ratio:.3f}x the other's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
