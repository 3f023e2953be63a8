"""Our kernel against the best JAX and PyTorch formulation of each spec: one table, one run.

    python -m tests.benchmarks.peer_table            # every spec, 5 interleaved repeats
    python -m tests.benchmarks.peer_table --repeats 3 --specs 2-4-1
    python -m tests.benchmarks.peer_table --layers 3-8-8-2 --activation leaky_relu --loss mse \
        --optimizer momentum --dtype float32 --epochs 200     # a job of your own

A job of your own is any plain net the kernel trains (every hidden activation, both losses and
reductions, sgd, momentum or adam, float64 or float32, any widths): the data are XOR for two
inputs, else 16 random bit vectors; the first output's target is their parity, output j's the
parity of all inputs but input j - 1 (cyclically).

Every formulation first trains the population once and must end on the kernel's parameters
(within ``tolerance``: net by net, the larger of the case's ``tol`` and a multiple of the
kernel's own sensitivity to a one-ulp change of the initial parameters; all nets but about
twice as many as our NumPy twin leaves beyond that, ``allowance``); one that does not is
reported and left out. Then each repeat times every formulation once, in turn (interleaved, so
that a burst of load on the shared machine hits them all alike), each after a pause of
``SETTLE`` seconds; a figure is the median over repeats and a ratio the median of the per-repeat
ratios. The ceiling column is the kernel's arithmetic bound (``ceiling.py``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import fast_peers

fast_peers.enable_two_host_devices()  # before anything imports jax

from backprop_bench.kernels import (  # noqa: E402
    NetSpec,
    Optimizer,
    backend,
    get_problem,
    init_population,
)

from . import ceiling, peers, usage  # noqa: E402

LR = 0.5  # gradient descent
ADAM_LR = 0.05  # Adam's steps are ~lr each from the first epoch: 0.5 would saturate at once
N_NETS = 4096
# Seconds of idle before each timed call. PyTorch's worker threads keep running for a while after
# a call returns: timed right after a PyTorch formulation, our kernel trained 2-16-16-1 at
# 0.93-0.96x the rate it had 0.5 s after the same formulation (medians of five repeats
# each, one process); JAX's left no such trace. The pause lets every formulation start alike.
SETTLE = 0.5
# The peers and the kernel do the same arithmetic in other orders: rounding differences (1 ulp
# per operation) carried through the epochs. How far they grow depends on the net, so a peer is
# held, net by net, to the larger of the case's tol and SPREAD_FACTOR times the kernel's own
# spread (how far its final parameters move when its non-zero initial parameters move by one
# ulp: ``own_spread``), never beyond TRAJECTORY_TOL. Measured at 1,000 epochs of 4,096 nets:
# - float64 gradient descent: own spread under 5e-12 on every net; the peers within 2.4e-12
#   (sigmoid), 1.4e-12 (tanh), 7e-14 (relu) of the kernel. A 0.1% error in the loss's scale
#   exceeds PARAMS_TOL 4e8 times (tanh).
# - Adam: Adam's step is ~lr whatever the gradient's size, so where a gradient crosses zero
#   rounding grows. The peers within 1.5e-11 on all nets but one, which moves by 5e-4 under the
#   kernel's own one-ulp change; they differ on it by up to 7.7e-4 (naive PyTorch, whose
#   torch.optim.Adam orders the same formula otherwise): 0.15 of the bounds at most. Adam
#   without bias correction, or with eps inside the square root, exceeds them 3e11 and 8e7 times.
# - float32: own spread 2e-6 (median net), 2e-4 at most, above tol / SPREAD_FACTOR on 530 nets;
#   the peers differ by up to 1.8e-3 (naive PyTorch), 0.45 of the bounds at most. Hidden biases
#   never updated, or the loss's scale 0.1% off, exceed them 1e5 and 178 times.
# - relu: the initial biases are 0, so every hidden unit starts with z = 0 exactly on the input
#   (0, 0), at its kink. The peers take relu'(0) = 0 as the kernel does (so do jax.grad and
#   autograd of relu); with relu'(0) = 1 every net ends elsewhere, by up to 10.
# - float32 with kinks (relu, leaky relu): a unit whose z ends an epoch within rounding of 0
#   takes its kink on one side in one formulation and on the other in the next, and the net
#   leaves the trajectory from there, by up to 3e-2 (3-8-8-2 leaky relu, squared error,
#   momentum, 100 epochs): 4 of 4,096 nets, whose one-ulp spread at the start was 1e-6, in our
#   own NumPy twin as in the peers (1 to 5); 4-16-1 relu, float32, 300 epochs: 39 in the twin,
#   55 to 86 in the peers. Such flips are rounding, and chance; an error moves every net. So a
#   formulation may leave CHAOS_FACTOR times as many nets beyond their bounds as the twin does,
#   with room for the scatter of such counts (``allowance``), and none where the twin leaves
#   none.
PARAMS_TOL = 1e-10
CHAOS_FACTOR = 2
MAX_SET_ASIDE = 0.1  # of the nets
TRAJECTORY_TOL = 1e-2  # beyond it a net has left the kernel's trajectory (rounding: only at a kink)
FLOAT32_TOL = 1e-4  # about 100 float32 ulps of the largest parameters (~10)
SPREAD_FACTOR = 20


@dataclass(frozen=True)
class Case:
    spec: NetSpec
    init: str
    n_epochs: int  # a multiple of the compiled PyTorch step's epochs
    optimizer: Optimizer = Optimizer()
    dtype: type = np.float64
    lr: float = LR
    tol: float = PARAMS_TOL  # see own_spread

    @property
    def label(self):
        return f"{self.spec.activation}, {self.optimizer.name}, {np.dtype(self.dtype).name}"


CASES = {
    "2-4-1": Case(NetSpec((2, 4, 1)), "tutorial", 1000),
    "2-4-1 tanh": Case(NetSpec((2, 4, 1), "tanh"), "tutorial", 1000),
    "2-4-1 relu": Case(NetSpec((2, 4, 1), "relu"), "tutorial", 1000),
    "2-4-1 adam": Case(NetSpec((2, 4, 1)), "tutorial", 1000, Optimizer("adam"), lr=ADAM_LR),
    "2-4-1 float32": Case(NetSpec((2, 4, 1)), "tutorial", 1000, dtype=np.float32,
                          tol=FLOAT32_TOL),  # fmt: skip
    "2-16-16-1": Case(NetSpec((2, 16, 16, 1)), "xavier_normal", 100),
    "8-32-32-1": Case(NetSpec((8, 32, 32, 1)), "xavier_normal", 30),
}


def data_for(spec):
    """XOR for two inputs, else 16 random bit vectors; targets their parity, and for output
    j > 0 the parity of all inputs but input (j - 1) % n_inputs."""
    if spec.n_inputs == 2:
        X = get_problem("xor").X
    else:
        rng = np.random.default_rng(0)
        X = (rng.random((16, spec.n_inputs)) < 0.5).astype(float)
    columns = [X.sum(axis=1) % 2]
    for j in range(1, spec.n_outputs):
        columns.append((X.sum(axis=1) - X[:, (j - 1) % spec.n_inputs]) % 2)
    return X, np.stack(columns, axis=1)


def theta_for(name, n_nets=N_NETS, case=None):
    """The population of a named case (or of ``case``): seed 0, the case's init and dtype."""
    case = case or CASES[name]
    return init_population(case.spec, n_nets, seed=0, init=case.init, dtype=case.dtype)


def custom_case(layers, activation="sigmoid", loss="bce", reduction="mean", optimizer="sgd",
                dtype="float64", n_epochs=100, lr=None, init=None) -> Case:  # fmt: skip
    """A case of the caller's own: layers "3-8-8-2" or a tuple of widths. lr: LR for sgd and
    momentum, ADAM_LR for adam unless given; init: the tutorial's for 2-4-1, else
    xavier_normal unless given. Bad values raise ValueError with the fix."""
    if isinstance(layers, str):
        try:
            layers = tuple(int(w) for w in layers.split("-"))
        except ValueError:
            raise ValueError(f"--layers takes widths joined by '-', such as 2-16-16-1, got "
                             f"{layers!r}") from None  # fmt: skip
    spec = NetSpec(tuple(layers), activation, loss=loss, reduction=reduction)
    rule = Optimizer(optimizer)
    fast_peers.check_optimizer(rule)
    if dtype not in ("float64", "float32"):
        raise ValueError(f"--dtype takes float64 or float32, got {dtype!r}")
    if n_epochs < 10 or n_epochs % 10:
        raise ValueError(f"--epochs takes a multiple of 10 (the compiled PyTorch step's "
                         f"epochs), got {n_epochs}")  # fmt: skip
    lr = (ADAM_LR if optimizer == "adam" else LR) if lr is None else float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr takes a positive learning rate, got {lr}")
    init = init or ("tutorial" if spec.layers == (2, 4, 1) else "xavier_normal")
    init_population(spec, 1, seed=0, init=init)  # an unknown init raises here, naming the fix
    np_dtype = np.float32 if dtype == "float32" else np.float64
    return Case(spec, init, n_epochs, rule, np_dtype, lr,
                FLOAT32_TOL if dtype == "float32" else PARAMS_TOL)  # fmt: skip


def case_name(case) -> str:
    """A custom case's row name: its widths, activation, loss, optimizer and dtype."""
    spec = case.spec
    widths = "-".join(map(str, spec.layers))
    loss = spec.loss if spec.reduction == "mean" else f"{spec.loss} (sum)"
    return (f"{widths} {spec.activation}, {loss}, {case.optimizer.name}, "
            f"{np.dtype(case.dtype).name}")


def ours(case, X, Y):
    kernels = backend("numba")

    def train(theta, n_epochs):
        result = kernels.train_population(theta, case.spec, X, Y, case.lr, n_epochs,
                                          early_stop=False, optimizer=case.optimizer)  # fmt: skip
        return result.theta

    return train


def own_spread(train, theta, n_epochs, reference):
    """Per net, the largest change of the kernel's final parameters when every non-zero initial
    parameter moves by one ulp (up, then down): shape (n_nets,). reference: train(theta,
    n_epochs)."""
    spread = np.zeros(theta.shape[1])
    for direction in (np.inf, -np.inf):
        # exact zeros (the initial biases) stay: one ulp of 0 is a subnormal, which would put a
        # relu unit fed zeros on the other side of its kink, a change no rounding makes
        nudged = np.where(theta != 0, np.nextafter(theta, theta.dtype.type(direction)), theta)
        moved = train(nudged, n_epochs)
        spread = np.maximum(spread, np.abs(moved.astype(np.float64) - reference).max(axis=0))
    return spread


def tolerance(case, train, theta, n_epochs):
    """The kernel's final parameters (float64) and the bound per net that a peer's must be
    within: (reference (n_params, n_nets), bound (n_nets,)); nets whose bound exceeds the
    case's tol are the ill-conditioned ones."""
    reference = train(theta, n_epochs).astype(np.float64)
    spread = own_spread(train, theta, n_epochs, reference)
    return reference, np.minimum(np.maximum(case.tol, SPREAD_FACTOR * spread), TRAJECTORY_TOL)


def allowance(case, X, Y, theta, n_epochs, reference, bound):
    """How many nets a formulation may leave beyond their bound: ``set_aside`` of the nets our
    NumPy twin leaves beyond (``twin_beyond``)."""
    return set_aside(twin_beyond(case, X, Y, theta, n_epochs, reference, bound))


def twin_beyond(case, X, Y, theta, n_epochs, reference, bound):
    """Nets that our NumPy twin, a correct implementation of the job that differs from the
    kernel in its rounding alone, ends beyond their bounds. On more than MAX_SET_ASIDE of the
    nets that is no rounding but a disagreement between the kernel and its twin: raises."""
    twin = backend("numpy").train_population(
        theta, case.spec, X, Y, case.lr, n_epochs, early_stop=False, optimizer=case.optimizer
    )
    n = beyond(twin.theta, reference, bound)
    if n > MAX_SET_ASIDE * theta.shape[1]:
        raise RuntimeError(f"our NumPy twin ends {n} of {theta.shape[1]} nets beyond their "
                           "bounds from the kernel: the two disagree on this job")  # fmt: skip
    return n


def set_aside(n):
    """Nets a formulation may leave beyond their bounds where our twin leaves n: CHAOS_FACTOR n,
    plus three times the square root of that for the scatter of such counts (which nets flip at
    a kink is chance: a Poisson count); none where the twin leaves none."""
    return CHAOS_FACTOR * n + math.ceil(3 * math.sqrt(CHAOS_FACTOR * n))


def beyond(got, reference, bound):
    """Nets of got beyond their bound."""
    error = np.abs(got.astype(np.float64) - reference).max(axis=0)
    return int(np.sum(~(error <= bound)))


def agreement(got, reference, bound, allowed=0):
    """(largest parameter difference, largest share of a net's bound once the ``allowed``
    farthest nets are set aside: see ``allowance``); NaN if got has NaN."""
    error = np.abs(got.astype(np.float64) - reference).max(axis=0)
    if np.isnan(got).any():
        return float("nan"), float("nan")
    shares = np.sort(error / bound)
    return float(error.max()), float(shares[max(0, shares.size - 1 - allowed)])


def _jax_naive(case, X, Y):
    compiled = {}

    def train(theta, n_epochs):
        if n_epochs not in compiled:
            compiled[n_epochs] = peers.jax_trainer(case.spec, n_epochs, case.lr, case.optimizer)
        out = peers.jax_run(compiled[n_epochs], peers.jax_params(theta, case.spec), X, Y)
        return peers._stack(out, case.spec, theta.shape[1], theta.dtype)

    return train


def _torch_naive(case, X, Y):
    return lambda theta, n_epochs: peers.torch_train(theta, case.spec, X, Y, n_epochs, case.lr,
                                                     case.optimizer)  # fmt: skip


def _jax_fast(**options):
    return lambda c, X, Y: fast_peers.jax_fast_trainer(
        c.spec, X, Y, c.lr, optimizer=c.optimizer, dtype=c.dtype, **options
    )


def _torch_fast(**options):
    return lambda c, X, Y: fast_peers.torch_fast_trainer(
        c.spec, X, Y, c.lr, optimizer=c.optimizer, dtype=c.dtype, **options
    )


def formulations(case, small=False, n_nets=N_NETS) -> dict[str, tuple[str, str, Callable]]:
    """key -> (label, library, factory(case, X, Y) -> train(theta, n_epochs) -> theta). Chunks
    of nets: 64 (a chunk's arrays in L1 and L2) and 256 (so the JAX ones need n_nets a multiple
    of 512, on two devices); ``small``: a shorter compiled PyTorch step, for a quick check."""
    wide = max(case.spec.layers) > 4
    per_call = 2 if small else 10
    torch_chunk = 256 if small else 1024
    out = {}
    for chunk in (64, 256):
        out[f"jax-lanes-{chunk}"] = (f"JAX lanes, hand-written, {chunk} nets/chunk", "jax",
                                     _jax_fast(chunk=chunk, unroll=not wide))  # fmt: skip
    out["jax-lanes-grad-64"] = ("JAX lanes, jax.grad, 64 nets/chunk", "jax",
                                _jax_fast(grad="jax.grad", chunk=64, unroll=not wide))  # fmt: skip
    out["jax-batched-256"] = ("JAX nets-first batched matmul, hand-written, 256 nets/chunk",
                              "jax", _jax_fast(nets_first=True, chunk=256))  # fmt: skip
    out["jax-naive"] = ("JAX vmap + jit of jax.grad (naive)", "jax", _jax_naive)
    out["torch-compile"] = (f"PyTorch torch.compile, hand-written, {per_call} epochs/call",
                            "torch", _torch_fast(unroll=not wide, epochs_per_call=per_call,
                                                 chunk=torch_chunk))  # fmt: skip
    out["torch-eager"] = ("PyTorch eager, hand-written", "torch",
                          _torch_fast(compiled=False, unroll=False, epochs_per_call=1,
                                      chunk=n_nets))  # fmt: skip
    out["torch-naive"] = ("PyTorch batched autograd (naive)", "torch", _torch_naive)
    return out


def installed(library):
    try:
        __import__(library)
    except ImportError:
        return False
    return True


def _timed(train, theta, n_epochs):
    time.sleep(SETTLE)
    start = time.perf_counter()
    train(theta, n_epochs)
    return time.perf_counter() - start


def measure(name, repeats, scale=1.0, log=print, case=None, n_nets=N_NETS):
    """Time the kernel and every installed peer formulation on one spec (the named case, or
    ``case``). Returns a dict with the rates (net-epochs/s, medians), per-repeat ratios and the
    formulations left out."""
    case = case or CASES[name]
    n_epochs = max(10, round(case.n_epochs * scale / 10) * 10)
    X, Y = data_for(case.spec)
    theta = theta_for(name, n_nets, case)
    trains = {"ours": ours(case, X, Y)}
    reference, bound = tolerance(case, trains["ours"], theta, n_epochs)
    n_twin = twin_beyond(case, X, Y, theta, n_epochs, reference, bound)
    allowed = set_aside(n_twin)
    ill = int(np.sum(bound > case.tol))
    log(f"  {name}, {n_epochs} epochs: {ill} of {bound.size} nets move by more than "
        f"{case.tol:g} / {SPREAD_FACTOR} under a one-ulp change of their initial parameters: "
        f"held to up to {float(bound.max()):.1e}; our NumPy twin leaves {n_twin} beyond "
        f"their bounds, so a formulation may leave {allowed}")  # fmt: skip
    excluded, differences = {}, {}
    for label, library, factory in formulations(case, n_nets=n_nets).values():
        if not installed(library):
            excluded[label] = f"{library} not installed"
            continue
        start = time.perf_counter()
        try:
            train = factory(case, X, Y)
            got = train(theta, n_epochs)
        except Exception as error:  # a formulation this machine cannot run: say so, go on
            excluded[label] = f"failed: {type(error).__name__}: {str(error)[:120]}"
            log(f"  {name}: {label}: {excluded[label]}")
            continue
        diff, share = agreement(got, reference, bound, allowed)
        differences[label] = diff
        first = time.perf_counter() - start
        log(f"  {name}, {n_epochs} epochs: {label}: first call {first:.1f} s, largest parameter "
            f"difference {diff:.1e}, {beyond(got, reference, bound)} nets beyond their bounds "
            f"({share:.2g} of the tolerance with {allowed} set aside)")  # fmt: skip
        if not share <= 1.0:
            excluded[label] = f"parameters differ by {diff:.1e}, {share:.2g}x the tolerance"
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
    return {"rates": rates, "ratios": ratios, "excluded": excluded, "n_epochs": n_epochs,
            "differences": differences, "ill_conditioned": ill, "case": case}  # fmt: skip


def table(results) -> str:
    lines = ["| spec (epochs) | ours (net-epochs/s) | best peer | its net-epochs/s | ours / best | "
             "ceiling (net-epochs/s) | ours, % of ceiling |", "|---" * 7 + "|"]  # fmt: skip
    for name, result in results.items():
        rates, ratios = result["rates"], result["ratios"]
        peers_only = [label for label in rates if label != "ours"]
        case = result.get("case") or CASES[name]
        spec = case.spec
        ceil = ceiling.ceiling(spec, data_for(spec)[0].shape[0],
                               itemsize=np.dtype(case.dtype).itemsize,
                               optimizer=case.optimizer.name)  # fmt: skip
        if peers_only:
            # the peer nearest to us in the interleaved repeats (the median of the per-repeat
            # ratios), which is not always the one of the highest median rate
            best = min(peers_only, key=ratios.get)
            peer, rate, ratio = best, f"{rates[best]:.3g}", f"{ratios[best]:.2f}x"
        else:
            peer, rate, ratio = "none installed", "-", "-"
        lines.append(f"| {name} ({result['n_epochs']}) | {rates['ours']:.3g} | {peer} | {rate} "
                     f"| {ratio} | {ceil:.3g} | {rates['ours'] / ceil:.0%} |")  # fmt: skip
    return "\n".join(lines)


def details(results) -> str:
    lines = ["| spec | formulation | net-epochs/s | ours / it | largest parameter difference |",
             "|---" * 5 + "|"]  # fmt: skip
    for name, result in results.items():
        diffs = result["differences"]
        for label, rate in sorted(result["rates"].items(), key=lambda kv: -kv[1]):
            diff = f"{diffs[label]:.1e}" if label in diffs else "-"
            lines.append(f"| {name} | {label} | {rate:.3g} | {result['ratios'][label]:.2f}x "
                         f"| {diff} |")  # fmt: skip
        for label, why in result["excluded"].items():
            lines.append(f"| {name} | {label} | left out: {why} | | |")
    return "\n".join(lines)


def own_job_arguments(parser, instead):
    """The options of a job of your own (custom_case's), in a group of their own."""
    own = parser.add_argument_group(f"a job of your own ({instead})")
    own.add_argument("--layers", help="widths from input to output, such as 3-8-8-2")
    own.add_argument("--activation", default="sigmoid", help="sigmoid, tanh, relu or leaky_relu")
    own.add_argument("--loss", default="bce", help="bce or mse")
    own.add_argument("--reduction", default="mean", help="mean or sum over samples")
    own.add_argument("--optimizer", default="sgd", help="sgd, momentum or adam")
    own.add_argument("--dtype", default="float64", help="float64 or float32")
    own.add_argument("--epochs", type=int, default=100, help="a multiple of 10 (default 100)")
    own.add_argument("--lr", type=float, help=f"learning rate (default {LR}; Adam {ADAM_LR})")
    own.add_argument("--init", help="initial weights (default: the tutorial's for 2-4-1, else "
                                    "xavier_normal)")  # fmt: skip
    return own


def own_options_given(own, args) -> list[str]:
    """The options of own_job_arguments' group ``own`` given a value other than their default."""
    return [action.option_strings[0] for action in own._group_actions
            if getattr(args, action.dest) != action.default]  # fmt: skip


def own_job(args) -> Case:
    """custom_case of the options of own_job_arguments (ValueError with the fix if bad)."""
    return custom_case(args.layers, args.activation, args.loss, args.reduction, args.optimizer,
                       args.dtype, args.epochs, args.lr, args.init)  # fmt: skip


def main(argv=None):
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=usage.positive_int, default=5)
    parser.add_argument("--specs", nargs="+", choices=list(CASES),
                        help="the cases to run (default: all seven)")  # fmt: skip
    parser.add_argument("--scale", type=usage.positive_float, default=1.0,
                        help="epochs per timing, as a share of the default (1,000 / 100 / 30)")
    own = own_job_arguments(parser, "instead of --specs")
    own.add_argument("--nets", type=int, default=N_NETS,
                     help=f"a multiple of 512 (default {N_NETS})")  # fmt: skip
    args = parser.parse_args(argv)
    # a job's options without --layers, or --specs beside it, were ignored without a word (an
    # outside audit: --specs 2-4-1 --layers 3-8-8-2 ran the 3-8-8-2 job alone)
    if args.layers is not None and args.specs is not None:
        parser.error("--specs and --layers exclude each other: --specs picks among the seven "
                     "cases, --layers times a job of your own in their place")  # fmt: skip
    if args.layers is None:
        if given := own_options_given(own, args):
            parser.error(f"{given[0]} describes a job of your own: give its --layers too "
                         "(such as --layers 3-8-8-2), or leave it out to run --specs")  # fmt: skip
    cases = {name: CASES[name] for name in args.specs or CASES}
    n_nets = N_NETS
    if args.layers is not None:
        try:
            case = own_job(args)
            if args.nets < 512 or args.nets % 512:
                raise ValueError(f"--nets takes a multiple of 512 (chunks of 256 nets on two "
                                 f"devices), got {args.nets}")  # fmt: skip
        except ValueError as error:
            parser.error(str(error))
        cases, n_nets = {case_name(case): case}, args.nets
    started = time.perf_counter()
    results = {name: measure(name, args.repeats, args.scale, case=case, n_nets=n_nets)
               for name, case in cases.items()}  # fmt: skip
    print()
    print(table(results))
    print()
    print(details(results))
    cores = len(os.sched_getaffinity(0))
    print(f"\nceiling, per thread with {cores} at work (one alone): "
          f"{ceiling.vector_rate(cores):.3g} ({ceiling.vector_rate():.3g}) vector "
          f"multiply-adds/s, {ceiling.division_rate(8, cores):.3g} float64 and "
          f"{ceiling.division_rate(4, cores):.3g} float32 vector divisions/s, "
          f"{ceiling.square_root_rate(8, cores):.3g} float64 vector square roots/s; a float64 "
          f"division takes {ceiling.division_cost(8, cores) * 1e9:.2f} ns from the "
          f"multiply-adds around it, a float32 one {ceiling.division_cost(4, cores) * 1e9:.2f} "
          "ns (measured); per net-epoch, what the kernel does:")  # fmt: skip
    for name, case in cases.items():
        operations, divisions, roots = ceiling.counts(case.spec, data_for(case.spec)[0].shape[0],
                                                      np.dtype(case.dtype).itemsize,
                                                      case.optimizer.name)  # fmt: skip
        print(f"  {name}: {operations:,} operations, {divisions:,} divisions and {roots:,} "
              "square roots per lane")
    print(f"\n{args.repeats} interleaved repeats; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
