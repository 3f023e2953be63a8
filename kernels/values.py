"""Checks of single configuration values by type and range: the one place every config uses.

``TrainConfig``, ``SweepConfig`` and ``VanishingConfig`` take values from flags, TOML files and
Python callers alike. Each value goes through one of these functions, which refuse what is not of
the right type (a TOML ``true`` or ``"0.9"`` is not a number, ``4.7`` is not a width) or out of
range, with one line that names the value and the fix. Lists of names are normalised (case,
``-`` for ``_``, ``uniform:1.0`` for ``uniform:1``) before their duplicates are looked for, so two
spellings of one value never make two grid cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

# Integer sizes (epochs, nets, seeds) end where numba's int64 does, with room for epoch + 1
# and a few products of sizes: beyond that the kernels cannot count.
MAX_INT = 2**62
# A layer wider than this could not hold even one net's weights in memory.
MAX_WIDTH = 2**31 - 1
# Converged means every output within the tolerance of its 0/1 target: at 0.5 or more an output
# on the wrong side of 0.5 would count, and a net at 50% accuracy would have "converged".
MAX_TOLERANCE = 0.5


def integer(name: str, value, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """An integer in [minimum, maximum]; bools, floats and text are refused."""
    kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {value:,}")
    return int(value)


def number(name: str, value) -> float:
    """A number as a float, range unchecked: bools and text are refused, not converted (True is
    not 1.0, "0.9" is not 0.9)."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def real(
    name: str,
    value,
    low: float = 0.0,
    high: float = math.inf,
    *,
    low_open: bool = True,
    high_open: bool = False,
) -> float:
    """A finite number in the interval given (open at ``low`` by default: positive numbers)."""
    x = number(name, value)
    below = x <= low if low_open else x < low
    above = x >= high if high_open else x > high
    if not math.isfinite(x) or below or above:
        if low == 0 and low_open and high == math.inf:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if high == math.inf:
            bound = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return x


def tolerance(kind: str, value) -> float:
    """A convergence tolerance in (0, MAX_TOLERANCE): every output that close to its target."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if math.isfinite(value) and value >= MAX_TOLERANCE:
            raise ValueError(
                f"{kind} must be below {MAX_TOLERANCE:g}, so that an output within it of its "
                f"0/1 target is on the right side of 0.5; got {value!r}"
            )
    return real(kind, value, 0.0, MAX_TOLERANCE, high_open=True)


def name(kind: str, value, allowed: Iterable[str] | None = None) -> str:
    """A name, normalised (lower case, ``-`` as ``_``), optionally one of ``allowed``."""
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be a name (text), got {value!r}")
    text = value.strip().lower().replace("-", "_")
    if allowed is not None and text not in tuple(allowed):
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")
    return text


def flag(kind: str, value) -> bool:
    """True or False; anything else is refused (the text "no" would be true)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{kind} must be true or false, got {value!r}")
    return bool(value)


def grid(kind: str, values, check: Callable, noun: str = "list") -> tuple:
    """A non-empty list of values, each checked (and normalised) by ``check(value)``, no repeats.

    A single value stands for a list of one; text is not a list of its characters.
    """
    if isinstance(values, str | int | float) or not isinstance(values, Iterable):
        values = (values,)
    values = tuple(check(v) for v in values)
    if not values:
        raise ValueError(f"the {kind} {noun} is empty; give at least one value")
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(
            f"the {kind} {noun} repeats a value: {', '.join(repeated)} (names and numbers "
            f"normalised: {[str(v) for v in values]}); give each once"
        )
    return values
