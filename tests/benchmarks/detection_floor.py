"""The checker's detection floor on sum(tanh(x) * w) / sqrt(n) for 10, 1,000 and 1,000,000
parameters, in three forms: float64; float32 code that computes in the dtype it is given (the
float32 claim and the same code run in float64, each with its own floor); and float32 code that
casts to float32 inside. check_gradient's defaults, seed 0.

    python -m tests.benchmarks.detection_floor

Prints the verdict, each claim's floor (the smallest error relative to the largest derivative
that is surely seen; in probes the median probe's) and the seconds; the README's "Detection
floor" table is its output. A measurement, not a test.
"""

from __future__ import annotations

import time

import numpy as np
from backprop_bench.verify import check_gradient

SIZES = (10, 1_000, 1_000_000)


def forms(n):
    """(name, fun, grad, params) for the three forms at n parameters."""
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=n), rng.normal(size=n)
    w32 = w.astype(np.float32)

    def generic(x):
        return np.sum(np.tanh(x) * w.astype(x.dtype)) / np.sqrt(n)

    def generic_grad(x):
        return (1 - np.tanh(x) ** 2) * w.astype(x.dtype) / np.sqrt(n)

    def cast(x):
        return np.sum(np.tanh(x.astype(np.float32)) * w32) / np.float32(np.sqrt(n))

    def cast_grad(x):
        return (1 - np.tanh(x.astype(np.float32)) ** 2) * w32 / np.float32(np.sqrt(n))

    return [("float64", generic, generic_grad, x.copy()),
            ("float32, dtype-generic", generic, generic_grad, x.astype(np.float32)),
            ("float32, casts inside", cast, cast_grad, x.astype(np.float32))]  # fmt: skip


def main():
    for n in SIZES:
        for name, fun, grad, x in forms(n):
            started = time.perf_counter()
            result = check_gradient(fun, grad, x, progress=False)
            floors = ", ".join(f"{g.claim} {g.floor:.1g}" for g in result.groups)
            seconds = time.perf_counter() - started
            print(f"{n:>9,} {name:24s} {result.verdict:14s} floors: {floors} "
                  f"({result.mode}, {seconds:.1f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    from tests.benchmarks.usage import hand_arguments

    hand_arguments(__doc__)
    main()
