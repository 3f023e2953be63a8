"""Where a wide net's epoch goes in the lane loops: each part of numba_lanes on one chunk.

    python -m tests.benchmarks.lane_parts [--layers 8-32-32-1] [--samples 16] [--dtype float64]
    python -m tests.benchmarks.lane_parts --layers 2-16-16-1 --samples 4 --chunks 8 16 32 128
    python -m tests.benchmarks.lane_parts --layers 2-16-16-1 --samples 4 --backward [--chunk 8]

Times the forward pass (and, apart, its activations), the backward pass with the SGD step made
as the gradients are summed (as the training kernel makes it where every layer steps in its
tiles), the checks, and apart the backward pass storing the gradients and a step from them, of
one chunk of ``chunk_size`` nets on one thread, each repeated on the same arrays (laid out as
the training kernel lays them out: cache-line aligned rows), and prints microseconds per
net-epoch beside the products' multiply-adds at the measured peak rate (ceiling.vector_rate).

With ``--chunks``, whole epochs instead (forward, backward, SGD step, as the training kernel
runs them) of one population, as many nets as the largest size, cut into chunks of each size:
every epoch runs each chunk's in turn, as the kernel would if it took a chunk's epoch a column
of lanes at a time, so that a smaller chunk's rows may stay in L1 from one pass to the next.
The sizes are timed in interleaved repeats (medians).

With ``--backward``, the backward pass's calls one by one, layer by layer, as _backward_lanes
makes them with the SGD step in its tiles (nets whose layers are all tiled: _steps_in_backward):
the bias sums and their step, the weight gradients and their step, the product into the layer
below with the derivative, and beside them the same weight gradients stored by multiply_into's
tiles. Each the best of 5 runs, beside its multiply-adds at the measured peak. Timings of one
machine; not a test.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from backprop_bench.kernels import NetSpec
from backprop_bench.kernels import numba_lanes as L
from backprop_bench.kernels.numba_backend import _codes
from backprop_bench.kernels.numba_fused import activation_function
from backprop_bench.kernels.numba_rows import sums_step
from backprop_bench.kernels.numba_tiles import (
    COLUMN_VECTORS,
    STEP_SGD,
    TILE_ROWS,
    VECTOR_BYTES,
    multiply_into,
    multiply_into_derivative,
    multiply_into_shared,
    step_into,
    step_into_shared,
    unit_rows,
)

from . import usage
from .ceiling import vector_rate

REPEATS = 2000


@numba.njit
def _forward(n, P, X, layers, offsets, act, Z, A, w, K, activate):
    for _ in range(n):
        L._forward_lanes(P, X, layers, offsets, act, Z, A, w, K, activate)


@numba.njit
def _backward(n, P, X, Y, layers, offsets, act, Z, A, D, G, norm2, w, K, P2, lr, step):
    """n backward passes; with step >= 0 (STEP_SGD), each makes the SGD step into P2."""
    for _ in range(n):
        L._backward_lanes(P, X, Y, layers, offsets, act, 0, Z, A, D, G, norm2, w, K, P2, G, lr,
                          step)  # fmt: skip


@numba.njit
def _checks(n, Z, A, Y, last, max_error, correct, lower, w):
    for _ in range(n):
        L._checks_lanes(Z, A, Y, last, 0, max_error, correct, lower, w)


@numba.njit
def _step(n, P, G, lr, K, w):
    for epoch in range(n):
        L._step_lanes(P, G, G, G, lr, epoch + 1, L.SGD, K, w, lr[:0])


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
def _epochs(n, P, X, Y, layers, layout, act, Z, A, D, G, norm2, w, K, activate, lr, scratch):
    """n epochs of every chunk c (P[c], Z[c], ...: one chunk's arrays each), chunk by chunk
    within an epoch, as the training kernel runs them: where it steps in the backward pass
    (_steps_in_backward), into G's rows, which then swap with P's (n even: P ends with the
    parameters), with the tiles' scratch (TILE_ROWS - 1 rows of lanes per unit of the widest
    layer); else from G after it."""
    step = STEP_SGD if L._steps_in_backward(layers) else -1
    for epoch in range(n):
        for c in range(P.shape[0]):
            old, new = (P[c], G[c]) if epoch % 2 == 0 or step < 0 else (G[c], P[c])
            L._forward_lanes(old, X, layers, layout, act, Z[c], A[c], w, K, activate)
            L._backward_lanes(old, X, Y, layers, layout, act, 0, Z[c], A[c], D[c],
                              new if step < 0 else scratch, norm2, w, K, new, new, lr,
                              step)  # fmt: skip
            if step < 0:
                L._step_lanes(P[c], G[c], G[c], G[c], lr, epoch + 1, L.SGD, K, w, lr[:0])


# the calls of _backward_lanes that --backward times, and beside them the weight gradients stored
BIAS_STEP, WEIGHTS_STEP, BELOW, WEIGHTS = range(4)
PART_NAMES = ("bias sums and step", "weight gradients and step", "product below, derivative",
              "weight gradients stored")  # fmt: skip


@numba.njit
def _backward_part(n, part, layer, P, X, layers, layout, act, A, D, norm2, w, K, P2, lr, S):
    """n times one call of the backward pass (part: one of BIAS_STEP ... WEIGHTS) at one layer,
    with _backward_lanes' arguments (P2: the stepped parameters, or the stored gradients; S: the
    step tiles' scratch, given as _backward_lanes gives it)."""
    n_samples, chunk = D.shape[1], D.shape[3]
    row = D.shape[2] * chunk
    fan_in, fan_out = layers[layer], layers[layer + 1]
    w0, b0, stride = layout[layer, 0], layout[layer, 1], layout[layer, 2]
    flat_P, flat_A, flat_D = P.reshape(-1), A.reshape(-1), D.reshape(-1)
    flat_X, flat_P2 = X.reshape(-1), P2.reshape(-1)
    scratch = S[:0] if L._one_input_tiles(n_samples, fan_out) else S
    below = (layer - 1) * n_samples * row
    for _ in range(n):
        if part == BIAS_STEP:
            sums_step(flat_P2, flat_P, flat_P2, b0 * chunk, chunk, flat_D,
                      layer * n_samples * row, row, chunk, n_samples, fan_out, norm2, w, lr,
                      K[3], STEP_SGD)  # fmt: skip
        elif part == WEIGHTS_STEP and layer == 0:
            step_into_shared(flat_P2, flat_P, flat_P2, w0 * chunk, stride * chunk, chunk,
                             flat_X, 0, 1, fan_in, flat_D, 0, chunk, row,
                             n_samples, fan_in, fan_out, w, lr, norm2, K[3], STEP_SGD,
                             scratch)  # fmt: skip
        elif part == WEIGHTS_STEP:
            step_into(flat_P2, flat_P, flat_P2, w0 * chunk, stride * chunk, chunk,
                      flat_A, below, chunk, row, flat_D, layer * n_samples * row, chunk, row,
                      n_samples, fan_in, fan_out, w, lr, norm2, K[3], STEP_SGD,
                      scratch)  # fmt: skip
        elif part == BELOW:
            multiply_into_derivative(flat_D, below, row, chunk,
                                     flat_D, layer * n_samples * row, row, chunk,
                                     flat_P, w0 * chunk, stride * chunk, chunk,
                                     fan_out, n_samples, fan_in, w, flat_A, act)  # fmt: skip
        elif layer == 0:
            multiply_into_shared(flat_P2, w0 * chunk, stride * chunk, chunk,
                                 flat_X, 0, 1, fan_in, flat_D, 0, chunk, row,
                                 n_samples, fan_in, fan_out, w)  # fmt: skip
        else:
            multiply_into(flat_P2, w0 * chunk, stride * chunk, chunk,
                          flat_A, below, chunk, row, flat_D, layer * n_samples * row, chunk, row,
                          n_samples, fan_in, fan_out, w)  # fmt: skip


def _backward_parts(spec, X, P, A, D, layers, layout, act, K, chunk, lanes_per_vector):
    """Prints the backward pass's calls, layer by layer (see the module's docstring)."""
    rng = np.random.default_rng(1)
    D[...] = rng.normal(scale=0.1, size=D.shape)  # dL/dz of every layer, as if from above
    norm2, lr, P2 = np.zeros(P.shape[1], P.dtype), np.full(P.shape[1], 0.01, P.dtype), P.copy()
    S = np.zeros(((TILE_ROWS - 1) * max(spec.layers[1:]), P.shape[1]), P.dtype).reshape(-1)
    peak = vector_rate() * lanes_per_vector
    n = X.shape[0]
    for layer in range(spec.n_layers - 1, -1, -1):
        fan_in, fan_out = spec.layers[layer], spec.layers[layer + 1]
        # a stepping sum's square and step: two more a parameter; a bias sum's additions
        # counted as multiply-adds
        weights = fan_in * fan_out
        fmas = ((n + 2) * fan_out, (n + 2) * weights, n * weights, n * weights)
        tiles = "one input" if L._one_input_tiles(n, fan_out) else f"{TILE_ROWS} inputs"
        print(f"  layer {layer} ({fan_in} x {fan_out}; step tiles of {tiles}):")
        for part, name in enumerate(PART_NAMES):
            if layer == 0 and part == BELOW:
                continue
            run = (part, layer, P, X, layers, layout, act, A, D, norm2, chunk, K, P2, lr, S)
            _backward_part(2, *run)  # compile
            best = np.inf
            for _ in range(5):
                start = time.perf_counter()
                _backward_part(REPEATS, *run)
                best = min(best, (time.perf_counter() - start) / REPEATS / chunk)
            at_peak = fmas[part] / peak * 1e6
            print(f"    {name:28s} {best * 1e6:8.4f} us per net-epoch "
                  f"({fmas[part]:,} multiply-adds at the peak: {at_peak:.4f})")  # fmt: skip


@numba.njit
def _aligned(shape, like):
    return L._zeros(shape, like)


def _chunks(spec, X, dtype, chunk, n_chunks, rng):
    """n_chunks chunks of ``chunk`` nets in the training kernel's layout (rows of lanes,
    weights and samples padded as it pads them): layout, P, G, Z, A, D, each array with the
    chunks on its first axis."""
    layers, offsets, _ = _codes(spec)
    width = max(spec.layers[1:])
    like = np.zeros(1, dtype)
    extent = L._lane_extent(chunk, dtype.itemsize)
    layout, rows_of = L._chunk_layout(layers, offsets, extent, dtype.itemsize, True)
    P = _aligned((n_chunks, layout[-1, 1] + spec.layers[-1], extent), like)
    for c in range(n_chunks):
        P[c][rows_of, :chunk] = rng.normal(scale=0.3, size=(spec.n_params, chunk))
    rows = unit_rows(width, extent, dtype.itemsize)
    Z = _aligned((n_chunks, spec.n_layers, X.shape[0], rows, extent), like)
    return layout, P, _aligned(P.shape, like), Z, _aligned(Z.shape, like), _aligned(Z.shape, like)


def _whole_epochs(spec, X, Y, dtype, sizes, rng, repeats=5, epochs=50):
    """Microseconds per net-epoch of whole epochs by chunk size (see the module's docstring)."""
    layers, _, act = _codes(spec)
    nets = max(sizes)
    K = np.zeros(12, dtype)
    K[0], K[1], K[2] = 1.0, 0.01, 1.0 / X.shape[0]
    activate = activation_function(dtype.itemsize)
    runs = {}
    for size in sizes:
        layout, P, G, Z, A, D = _chunks(spec, X, dtype, size, nets // size, rng)
        extent = P.shape[2]
        runs[size] = (P, X, Y, layers, layout, act, Z, A, D, G, np.zeros(extent, dtype), size,
                      K, activate, np.full(extent, 0.01, dtype),
                      _aligned(((TILE_ROWS - 1) * max(spec.layers[1:]), extent),
                               np.zeros(1, dtype)))  # fmt: skip
        _epochs(2, *runs[size])  # compile, and the arrays into the caches
    seconds = {size: [] for size in sizes}
    for _ in range(repeats):
        for size in sizes:
            start = time.perf_counter()
            _epochs(epochs, *runs[size])
            seconds[size].append((time.perf_counter() - start) / epochs / nets)
    return {size: float(np.median(values)) * 1e6 for size, values in seconds.items()}


def main(argv=None) -> None:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="8-32-32-1")
    parser.add_argument("--samples", type=usage.positive_int, default=16)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--chunks", type=int, nargs="+", metavar="NETS",
                        help="whole epochs of one population in chunks of these sizes")  # fmt: skip
    parser.add_argument("--chunk", type=int, metavar="NETS",
                        help="one chunk of this many nets (else chunk_size's)")  # fmt: skip
    parser.add_argument("--backward", action="store_true",
                        help="the backward pass's calls one by one, layer by layer")  # fmt: skip
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    try:
        spec = NetSpec(tuple(int(n) for n in args.layers.split("-")))
    except ValueError as error:
        parser.error(f"--layers {args.layers}: widths joined by '-', such as 8-32-32-1 ({error})")
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    X = (rng.random((args.samples, spec.n_inputs)) < 0.5).astype(dtype)
    Y = (X.sum(axis=1, keepdims=True) % 2).astype(dtype)
    lanes = VECTOR_BYTES // dtype.itemsize * COLUMN_VECTORS
    if args.chunk is not None and (args.chunk <= 0 or args.chunk % lanes):
        parser.error(f"--chunk: a positive multiple of {lanes} lanes")
    if args.chunks and (args.backward or args.chunk):
        parser.error("--chunks times whole epochs: without --backward and --chunk")
    if args.chunks:
        if any(size % lanes or max(args.chunks) % size for size in args.chunks):
            parser.error(f"--chunks: multiples of {lanes} lanes that divide the largest")
        rates = _whole_epochs(spec, X, Y, dtype, sorted(set(args.chunks)), rng)
        print(f"{args.layers}, {args.samples} samples, {args.dtype}, one thread, whole epochs "
              f"of {max(args.chunks)} nets:")  # fmt: skip
        for size, micro in rates.items():
            print(f"  chunks of {size:5d} nets    {micro:8.3f} us per net-epoch")
        return
    layers, _, act = _codes(spec)
    width = max(spec.layers[1:])
    chunk = args.chunk or L.chunk_size(spec.n_layers, args.samples, width, spec.n_params,
                                       dtype.itemsize)  # fmt: skip
    layout, *arrays = _chunks(spec, X, dtype, chunk, 1, rng)
    P, G, Z, A, D = (array[0] for array in arrays)
    extent = P.shape[1]
    K = np.zeros(12, dtype)
    K[0], K[1], K[2] = 1.0, 0.01, 1.0 / args.samples
    lanes = np.zeros(extent, dtype)
    f64 = np.zeros(extent)
    lr = np.full(extent, 0.01, dtype)
    P2 = P.copy()
    activate = activation_function(dtype.itemsize)
    if args.backward:
        if not L._steps_in_backward(layers):
            parser.error(f"--backward: {args.layers} has layers of plain loops, which store "
                         "their gradients (_steps_in_backward): only tiled layers are taken "
                         "apart")  # fmt: skip
        print(f"{args.layers}, {args.samples} samples, {args.dtype}, one thread, chunk of {chunk}, "
              "the backward pass with the SGD step in its tiles:")  # fmt: skip
        _forward(2, P, X, layers, layout, act, Z, A, chunk, K, activate)
        _backward_parts(spec, X, P, A, D, layers, layout, act, K, chunk,
                        VECTOR_BYTES // dtype.itemsize)  # fmt: skip
        return
    parts = {
        "forward": (_forward, (P, X, layers, layout, act, Z, A, chunk, K, activate)),
        "  of which activations": (_activations, (Z, A, layers, act, chunk, K, activate)),
        "backward and SGD step": (_backward, (P, X, Y, layers, layout, act, Z, A, D, G, lanes,
                                              chunk, K, P2, lr, STEP_SGD)),
        "checks": (_checks, (Z, A, Y, spec.n_layers - 1, f64, f64.copy(), f64.copy(), chunk)),
        "  backward, G stored": (_backward, (P, X, Y, layers, layout, act, Z, A, D, G, lanes,
                                             chunk, K, G, lr, -1)),
        "  SGD step from G": (_step, (P, G, lr, K, chunk)),
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
