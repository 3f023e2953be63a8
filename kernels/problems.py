"""The boolean problems nets are trained on, defined in one place.

Every problem is the full truth table of a boolean function of ``n_inputs`` bits: inputs are 0/1
as in the tutorial, rows in binary counting order (``00, 01, 10, 11`` for two bits), one output.
XOR is 2-bit parity; ``parityN`` is its generalisation to N bits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

NAMES = ("xor", "and", "or", "parityN (N = 2..16, e.g. parity3)")
MAX_PARITY_BITS = 16


@dataclass(frozen=True)
class Problem:
    """A dataset shared by every net of a population.

    X : float64 array of shape (n_samples, n_inputs)
    Y : float64 array of shape (n_samples, n_outputs), targets 0 or 1
    """

    name: str
    X: np.ndarray
    Y: np.ndarray

    @property
    def n_inputs(self) -> int:
        return self.X.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.Y.shape[1]


def _truth_table(n_bits: int) -> np.ndarray:
    rows = np.arange(2**n_bits)
    bits = (rows[:, None] >> np.arange(n_bits - 1, -1, -1)[None, :]) & 1
    return bits.astype(np.float64)


def get_problem(name: str) -> Problem:
    """The problem called ``name``: xor, and, or, or parityN (N bits)."""
    key = str(name).strip().lower()
    # a few digits at most: int() of thousands of digits is refused by Python itself
    match = re.fullmatch(r"parity-?0*(\d{1,4})", key)
    if key in ("xor", "and", "or"):
        X = _truth_table(2)
        a, b = X[:, 0], X[:, 1]
        y = {"xor": a != b, "and": (a == 1) & (b == 1), "or": (a == 1) | (b == 1)}[key]
    elif match and 2 <= int(match.group(1)) <= MAX_PARITY_BITS:
        X = _truth_table(int(match.group(1)))
        y = X.sum(axis=1) % 2 == 1
        key = f"parity{X.shape[1]}"
    else:
        shown = (
            repr(name)
            if len(repr(name)) <= 60
            else f"{repr(name)[:50]}... ({len(str(name))} characters)"
        )
        raise ValueError(f"unknown problem {shown}; choose one of: {', '.join(NAMES)}")
    X.setflags(write=False)
    Y = y.astype(np.float64)[:, None]
    Y.setflags(write=False)
    return Problem(key, X, Y)
