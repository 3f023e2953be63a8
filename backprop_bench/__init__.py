"""backprop-bench: understand, verify and benchmark backpropagation written from scratch.

The repository keeps its three parts in top-level folders (``kernels/``, ``verify/``,
``bench/``); they install and import as ``backprop_bench.kernels``, ``backprop_bench.verify``
and ``backprop_bench.bench``, so that the project never owns a generic top-level name. The
public API is re-exported here::

    from backprop_bench import NetSpec, init_population, backend, check_gradient
"""

import importlib

# Loaded on first use, so that ``import backprop_bench`` (and the command's start) does not wait
# for NumPy, SciPy and numba before it can even handle a Ctrl-C.
_HOMES = {
    **dict.fromkeys(
        (
            "BACKENDS",
            "SCHEMES",
            "Criterion",
            "Forward",
            "Gradients",
            "History",
            "Init",
            "NetSpec",
            "Optimizer",
            "Problem",
            "Status",
            "TrainResult",
            "backend",
            "get_problem",
            "init_population",
            "parse_init",
        ),
        ".kernels",
    ),  # fmt: skip
    **dict.fromkeys(
        ("GradCheckResult", "assert_gradients_close", "check_gradient", "check_vjp"), ".verify"
    ),
}


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_HOMES})


__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "SCHEMES",
    "Criterion",
    "Forward",
    "GradCheckResult",
    "Gradients",
    "History",
    "Init",
    "NetSpec",
    "Optimizer",
    "Problem",
    "Status",
    "TrainResult",
    "assert_gradients_close",
    "backend",
    "check_gradient",
    "check_vjp",
    "get_problem",
    "init_population",
    "parse_init",
]
