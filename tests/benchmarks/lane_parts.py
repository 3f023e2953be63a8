"""Where a wide net's epoch goes in the lane loops: each part of numba_lanes on one chunk.

    python -m tests.benchmarks.lane_parts [--layers 8-32-32-1] [--samples 16] [--dtype float64]

Times the forward pass (and, apart, its activations), the backward pass, the checks and the SGD
step of one chunk of ``chunk_size`` nets on one thread, each repeated on the same arrays (laid
out as the training kernel lays them out: cache-line aligned rows), and prints microseconds per
net-epoch beside the products' multiply-adds at the measured peak rate (ceiling.vector_rate).
Timings of one machine; not a test.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from backprop_bench.kernels import NetSpec
from backprop_bench.kernels import numba_lanes as L
from backprop_bench.kernels.numba_backend import _codes
from backprop_bench.kernels.numba_fused import activation_function
from backprop_bench.kernels.numba_tiles import VECTOR_BYTES, unit_rows

from .ceiling import vector_rate

REPEATS = 2000


@numba.njit
def _forward(n, P, X, layers, offsets, act, Z, A, w, K, activate):
    for _ in range(n):
        L._forward_lanes(P, X, layers, offsets, act, Z, A, w, K, activate)


@numba.njit
def _backward(n, P, X, Y, layers, offsets, act, Z, A, D, G, norm2, w, K):
    for _ in range(n):
        L._backward_lanes(P, X, Y, layers, offsets, act, 0, Z, A, D, G, norm2, w, K)


@numba.njit
def _checks(n, Z, A, Y, last, max_error, correct, lower, w):
    for _ in range(n):
        L._checks_lanes(Z, A, Y, last, 0, max_error, correct, lower, w)


@numba.njit
def _step(n, P, G, lr, K, w):
    for epoch in range(n):
        L._step_lanes(P, G, G, G, lr, epoch + 1, L.SGD, K, w)


@numba.njit
def _activations(n, Z, A, layers, act, w, K, activate):
    last = layers.size - 2
    for _ in range(n):
        for layer in range(last + 1):
            code = act if layer < last else L.SIGMOID
            for s in range(Z.shape[1]):
                if w == Z.shape[3]:  # as _forward_lanes: a sample's rows in one call
                    z, a = Z[layer, s].reshape(-1), A[layer, s].reshape(-1)
                    L._activate_lanes(z, a, code, layers[layer + 1] * w, K[0], K[1], activate)
                else:  # padded lanes: row by row
                    for j in range(layers[layer + 1]):
                        L._activate_lanes(Z[layer, s, j], A[layer, s, j], code, w, K[0], K[1],
                                          activate)  # fmt: skip


@numba.njit
def _aligned(shape, like):
    return L._zeros(shape, like)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="8-32-32-1")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    spec = NetSpec(tuple(int(n) for n in args.layers.split("-")))
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    X = (rng.random((args.samples, spec.n_inputs)) < 0.5).astype(dtype)
    Y = (X.sum(axis=1, keepdims=True) % 2).astype(dtype)
    layers, offsets, act = _codes(spec)
    width = max(spec.layers[1:])
    chunk = L.chunk_size(spec.n_layers, args.samples, width, spec.n_params, dtype.itemsize)
    like = np.zeros(1, dtype)
    # the training kernel's layout: rows of lanes, weights and samples padded as it pads them
    extent = L._lane_extent(chunk, dtype.itemsize)
    layout, rows_of = L._chunk_layout(layers, offsets, extent, dtype.itemsize, True)
    P = _aligned((layout[-1, 1] + spec.layers[-1], extent), like)
    P[rows_of, :chunk] = rng.normal(scale=0.3, size=(spec.n_params, chunk))
    G = _aligned(P.shape, like)
    rows = unit_rows(width, extent, dtype.itemsize)
    Z = _aligned((spec.n_layers, args.samples, rows, extent), like)
    A, D = _aligned(Z.shape, like), _aligned(Z.shape, like)
    K = np.zeros(9, dtype)
    K[0], K[1], K[2] = 1.0, 0.01, 1.0 / args.samples
    lanes = np.zeros(extent, dtype)
    f64 = np.zeros(extent)
    lr = np.full(extent, 0.01, dtype)
    activate = activation_function(dtype.itemsize)
    parts = {
        "forward": (_forward, (P, X, layers, layout, act, Z, A, chunk, K, activate)),
        "  of which activations": (_activations, (Z, A, layers, act, chunk, K, activate)),
        "backward": (_backward, (P, X, Y, layers, layout, act, Z, A, D, G, lanes, chunk, K)),
        "checks": (_checks, (Z, A, Y, spec.n_layers - 1, f64, f64.copy(), f64.copy(), chunk)),
        "SGD step": (_step, (P, G, lr, K, chunk)),
    }
    print(f"{args.layers}, {args.samples} samples, {args.dtype}, one thread, chunk of {chunk}:")
    total = 0.0
    for name, (fn, fn_args) in parts.items():
        fn(2, *fn_args)  # compile
        start = time.perf_counter()
        fn(REPEATS, *fn_args)
        seconds = (time.perf_counter() - start) / REPEATS / chunk
        total += 0.0 if name.startswith(" ") else seconds
        print(f"  {name:24s} {seconds * 1e6:8.3f} us per net-epoch")
    products = sum(a * b for a, b in zip(spec.layers[:-1], spec.layers[1:], strict=True))
    fmas = args.samples * (3 * products - spec.layers[0] * spec.layers[1])
    lanes_per_vector = VECTOR_BYTES // dtype.itemsize
    peak = fmas / (vector_rate() * lanes_per_vector)
    print(f"  {'total':24s} {total * 1e6:8.3f} us per net-epoch")
    print(f"  the products' {fmas:,} multiply-adds at the measured peak: {peak * 1e6:.3f} us")


if __name__ == "__main__":
    main()
