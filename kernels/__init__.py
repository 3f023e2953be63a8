"""The math of backprop-bench: specs, initialisation, problems, and two backends of kernels.

``numpy_backend`` and ``numba_backend`` expose the same functions with the same signatures:
``forward``, ``loss``, ``backward``, ``sgd_step``, ``momentum_step``, ``adam_step`` and
``train_population``. ``backend(name)`` picks one. This package does no I/O and imports nothing
else of the project's.
"""

from . import numpy_backend, regularised, schedules, streams, values
from .failure import OUTCOMES, Analysis
from .init import SCHEMES, Init, init_population, parse_init
from .passes import Forward, Gradients
from .problems import Problem, get_problem
from .spec import NetSpec
from .training import Criterion, History, Optimizer, Status, TrainResult

BACKENDS = ("numpy", "numba")


def backend(name: str):
    """The kernel module called ``name``: ``numpy`` (the readable oracle) or ``numba`` (fast)."""
    if name == "numpy":
        return numpy_backend
    if name == "numba":
        from . import numba_backend  # imported on demand: compiling or loading takes a moment

        return numba_backend
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "OUTCOMES",
    "Analysis",
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
    "numpy_backend",
    "parse_init",
    "schedules",
    "regularised",
    "streams",
    "values",
]
