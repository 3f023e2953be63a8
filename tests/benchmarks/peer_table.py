"""Our kernel against the best JAX and PyTorch formulation of each spec: one table, one run.

    python -m tests.benchmarks.peer_table            # every spec, 5 interleaved repeats
    python -m tests.benchmarks.peer_table --repeats 3 --specs 2-4-1

Every formulation first trains the population once and must end on the kernel's parameters
(float64, ``PARAMS_TOL``); one that does not is reported and left out. Then each repeat times
every formulation once, in turn (interleaved, so that a burst of load on the shared machine
hits them all alike); a figure is the median over repeats and a ratio the median of the
per-repeat ratios. The ceiling column is the kernel's arithmetic bound (``ceiling.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import fast_peers

fast_peers.enable_two_host_devices()  # before anything imports jax

from backprop_bench.kernels import NetSpec, backend, get_problem, init_population  # noqa: E402

from . import ceiling, peers  # noqa: E402

LR = 0.5
N_NETS = 4096
# the peers and the kernel do the same float64 arithmetic in other orders: rounding differences
# (~1e-16 per operation) carried through the epochs. Measured: at most 1e-12 after 1,000 epochs
# of 2-4-1 (a wrong term moves parameters by far more than this within a few epochs).
PARAMS_TOL = 1e-10


@dataclass(frozen=True)
class Case:
    spec: NetSpec
    init: str
    n_epochs: int  # a multiple of the compiled PyTorch step's epochs


CASES = {
    "2-4-1": Case(NetSpec((2, 4, 1)), "tutorial", 1000),
    "2-16-16-1": Case(NetSpec((2, 16, 16, 1)), "xavier_normal", 100),
    "8-32-32-1": Case(NetSpec((8, 32, 32, 1)), "xavier_normal", 30),
}


def data_for(spec):
    """XOR for two inputs, else 16 random bit vectors and their parity."""
    if spec.n_inputs == 2:
        xor = get_problem("xor")
        return xor.X, xor.Y
    rng = np.random.default_rng(0)
    X = (rng.random((16, spec.n_inputs)) < 0.5).astype(float)
    return X, X.sum(axis=1, keepdims=True) % 2


def theta_for(name, n_nets=N_NETS):
    case = CASES[name]
    return init_population(case.spec, n_nets, seed=0, init=case.init)


def ours(spec, X, Y):
    kernels = backend("numba")

    def train(theta, n_epochs):
        return kernels.train_population(theta, spec, X, Y, LR, n_epochs, early_stop=False).theta

    return train


def _jax_naive(spec, X, Y):
    compiled = {}

    def train(theta, n_epochs):
        if n_epochs not in compiled:
            compiled[n_epochs] = peers.jax_trainer(spec, n_epochs, LR)
        out = peers.jax_run(compiled[n_epochs], peers.jax_params(theta, spec), X, Y)
        return peers._stack(out, spec, theta.shape[1])

    return train


def _torch_naive(spec, X, Y):
    return lambda theta, n_epochs: peers.torch_train(theta, spec, X, Y, n_epochs, LR)


def formulations(spec, small=False) -> dict[str, tuple[str, str, Callable]]:
    """key -> (label, library, factory(spec, X, Y) -> train(theta, n_epochs) -> theta). Chunks
    of nets: 64 (a chunk's arrays in L1 and L2) and 256; ``small``: a shorter compiled PyTorch
    step, for a quick check."""
    wide = max(spec.layers) > 4
    per_call = 2 if small else 10
    torch_chunk = 256 if small else 1024
    out = {}
    for chunk in (64, 256):
        out[f"jax-lanes-{chunk}"] = (
            f"JAX lanes, hand-written, {chunk} nets/chunk", "jax",
            lambda s, X, Y, c=chunk: fast_peers.jax_fast_trainer(s, X, Y, LR, chunk=c,
                                                                 unroll=not wide))  # fmt: skip
    out["jax-lanes-grad-64"] = (
        "JAX lanes, jax.grad, 64 nets/chunk", "jax",
        lambda s, X, Y: fast_peers.jax_fast_trainer(s, X, Y, LR, grad="jax.grad", chunk=64,
                                                    unroll=not wide))  # fmt: skip
    out["jax-batched-256"] = (
        "JAX nets-first batched matmul, hand-written, 256 nets/chunk", "jax",
        lambda s, X, Y: fast_peers.jax_fast_trainer(s, X, Y, LR, nets_first=True, chunk=256))
    out["jax-naive"] = ("JAX vmap + jit of jax.grad (naive)", "jax", _jax_naive)
    out["torch-compile"] = (
        f"PyTorch torch.compile, hand-written, {per_call} epochs/call", "torch",
        lambda s, X, Y: fast_peers.torch_fast_trainer(s, X, Y, LR, unroll=not wide,
                                                      epochs_per_call=per_call,
                                                      chunk=torch_chunk))  # fmt: skip
    out["torch-eager"] = (
        "PyTorch eager, hand-written", "torch",
        lambda s, X, Y: fast_peers.torch_fast_trainer(s, X, Y, LR, compiled=False, unroll=False,
                                                      epochs_per_call=1, chunk=N_NETS))  # fmt: skip
    out["torch-naive"] = ("PyTorch batched autograd (naive)", "torch", _torch_naive)
    return out


def installed(library):
    try:
        __import__(library)
    except ImportError:
        return False
    return True


def _timed(train, theta, n_epochs):
    start = time.perf_counter()
    train(theta, n_epochs)
    return time.perf_counter() - start


def measure(name, repeats, scale=1.0, log=print):
    """Time the kernel and every installed peer formulation on one spec. Returns a dict with
    the rates (net-epochs/s, medians), per-repeat ratios and the formulations left out."""
    case = CASES[name]
    n_epochs = max(10, round(case.n_epochs * scale / 10) * 10)
    X, Y = data_for(case.spec)
    theta = theta_for(name)
    trains = {"ours": ours(case.spec, X, Y)}
    reference = trains["ours"](theta, n_epochs)
    excluded = {}
    for label, library, factory in formulations(case.spec).values():
        if not installed(library):
            excluded[label] = f"{library} not installed"
            continue
        start = time.perf_counter()
        try:
            train = factory(case.spec, X, Y)
            got = train(theta, n_epochs)
        except Exception as error:  # a formulation this machine cannot run: say so, go on
            excluded[label] = f"failed: {type(error).__name__}: {str(error)[:120]}"
            log(f"  {name}: {label}: {excluded[label]}")
            continue
        diff = float(np.max(np.abs(got - reference)))
        first = time.perf_counter() - start
        log(f"  {name}, {n_epochs} epochs: {label}: first call {first:.1f} s, "
            f"largest parameter difference {diff:.1e}")  # fmt: skip
        if not diff <= PARAMS_TOL:
            excluded[label] = f"parameters differ by {diff:.1e}"
            continue
        trains[label] = train
    seconds = {label: [] for label in trains}
    labels = list(trains)
    for repeat in range(repeats):
        # rotate the order so that no formulation always runs right after the same one
        shift = repeat % len(labels)
        for label in labels[shift:] + labels[:shift]:
            seconds[label].append(_timed(trains[label], theta, n_epochs))
    work = theta.shape[1] * n_epochs
    rates = {label: work / float(np.median(s)) for label, s in seconds.items()}
    ratios = {label: float(np.median(np.array(s) / np.array(seconds["ours"])))
              for label, s in seconds.items()}  # fmt: skip
    return {"rates": rates, "ratios": ratios, "excluded": excluded, "n_epochs": n_epochs}


def table(results) -> str:
    lines = ["| spec (epochs) | ours (net-epochs/s) | best peer | its net-epochs/s | ours / best | "
             "ceiling (net-epochs/s) | ours, % of ceiling |", "|---" * 7 + "|"]  # fmt: skip
    for name, result in results.items():
        rates, ratios = result["rates"], result["ratios"]
        peers_only = [label for label in rates if label != "ours"]
        spec = CASES[name].spec
        ceil = ceiling.ceiling(spec, data_for(spec)[0].shape[0])
        if peers_only:
            best = max(peers_only, key=rates.get)
            peer, rate, ratio = best, f"{rates[best]:.3g}", f"{ratios[best]:.2f}x"
        else:
            peer, rate, ratio = "none installed", "-", "-"
        lines.append(f"| {name} ({result['n_epochs']}) | {rates['ours']:.3g} | {peer} | {rate} "
                     f"| {ratio} | {ceil:.3g} | {rates['ours'] / ceil:.0%} |")  # fmt: skip
    return "\n".join(lines)


def details(results) -> str:
    lines = ["| spec | formulation | net-epochs/s | ours / it |", "|---" * 4 + "|"]
    for name, result in results.items():
        for label, rate in sorted(result["rates"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {label} | {rate:.3g} | {result['ratios'][label]:.2f}x |")
        for label, why in result["excluded"].items():
            lines.append(f"| {name} | {label} | left out: {why} | |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--specs", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--scale", type=float, default=1.0,
                        help="epochs per timing, as a share of the default (1,000 / 100 / 30)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {name: measure(name, args.repeats, args.scale) for name in args.specs}
    print()
    print(table(results))
    print()
    print(details(results))
    print(f"\nceiling: lane multiply-adds {ceiling.fma_peak():.3g}/s and sigmoids "
          f"{ceiling.sigmoid_rate():.3g}/s per thread, measured; per net-epoch:")
    for name in args.specs:
        spec = CASES[name].spec
        sigmoids, other = ceiling.counts(spec, data_for(spec)[0].shape[0])
        print(f"  {name}: {sigmoids} sigmoids, {other} other floating-point operations")
    print(f"\n{args.repeats} interleaved repeats; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
