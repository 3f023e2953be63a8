"""The ``backprop-bench`` command: one entry point, one subcommand per job.

Each subcommand turns its flags into a frozen config (which validates itself), calls a pure
function for the result, and only then prints or writes. Any bad input ends in one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

from backprop_bench.kernels import BACKENDS, SCHEMES
from backprop_bench.kernels.init import Init
from backprop_bench.kernels.problems import NAMES as PROBLEMS
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES, REDUCTIONS
from backprop_bench.kernels.training import OPTIMIZERS

from backprop_bench import command

from . import atomic, limits, schedule_options
from .executors import ExecutorUnavailable, ShardFailed, add_executor_flags, make_executor
from .interrupt import interruptible, sigterm_as_interrupt
from .live import add_parser as _add_live
from .progress import Progress
from .report import write_report
from .stopping import add_stopping_flags
from .summary import meta, results_csv, summarize, write_json
from .sweep import load_results, prepare_out, run_sweep, training_seconds
from .sweep_config import FIELD_NAMES, default_out, load_toml, make_config
from .train import DTYPES, TrainConfig, TrainRun, run_train

PROG = "backprop-bench"

CATALOGUE_SHARDS = 2
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the whole usage; one line is enough
        raise UsageError(f"{message} (see {self.prog} --help)")


def _int_list(text: str) -> tuple[int, ...]:
    if text.strip().lower() == "none":
        return ()
    if not text.strip():  # an unset shell variable, most likely: no silent default
        raise argparse.ArgumentTypeError(
            "is empty; give widths such as 4 or 8,8, or none for no hidden layer"
        )
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 4 or 8,8, got {text!r}"
        ) from None


def _path(text: str) -> str:
    if not text.strip():  # '' would be the current folder: never a silent default
        raise argparse.ArgumentTypeError("is empty; give a path")
    return text


def _threshold(text: str):
    # "none" stays a word: a None flag would mean "not given" and let the default rule stand
    if text.strip().lower() == "none":
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number such as 0.4, or none; got {text!r}") \
            from None


def _problems(text: str):
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    return names[0] if len(names) == 1 else names


def _width(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _name(text: str) -> str:
    return text.strip().lower().replace("-", "_")


_EXAMPLES = {float: "0.1,0.3,1", int: "2,4,8"}


def _list(kind):
    """A comma-separated list of ``kind``: blank for none (the grid then says it is empty), but
    no blank value among others (a stray comma), and numbers as written, not Python's own
    literals (1_0 is not 10)."""

    def parse(text: str) -> tuple:
        parts = text.split(",")
        if not any(part.strip() for part in parts):
            return ()
        example = _EXAMPLES.get(kind)
        bad = [p for p in parts if not p.strip() or (kind in (float, int) and "_" in p)]
        if bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list such as "
                                             f"{example or 'a,b'}, got {text!r}")  # fmt: skip
        try:
            return tuple(kind(part) for part in parts)
        except ValueError as error:
            reason = f"such as {example}" if example else f"({error})"
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list {reason}, got {text!r}"
            ) from None

    return parse


def _on_off(text: str) -> bool:
    words = {"off": False, "on": True, "false": False, "true": True}
    if text.strip().lower() not in words:
        raise ValueError(f"expected off or on, got {text!r}")
    return words[text.strip().lower()]


_EXAMPLES[_on_off] = "off,on"


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one net and watch it learn (the tutorial's live trainer)",
        description="Train one seeded net, printing epoch, loss, accuracy and gradient norm every "
        "N epochs, then its predictions. The defaults are the tutorial's: a 2-4-1 sigmoid net, "
        "binary cross-entropy, plain gradient descent at lr 0.5 for 10,000 epochs on XOR.",
    )
    d = TrainConfig()
    p.add_argument("--problem", default=d.problem, help=f"{', '.join(PROBLEMS)} (default xor)")
    net = p.add_mutually_exclusive_group()
    net.add_argument(
        "--hidden",
        type=_int_list,
        default=d.hidden,
        metavar="W[,W...]",
        help="hidden layer widths, e.g. 4 or 8,8; 'none' for no hidden layer (default 4)",
    )
    net.add_argument(
        "--layers",
        type=_int_list,
        default=None,
        metavar="W,W[,W...]",
        help="all layer widths from input to output, e.g. 2,4,1 or 2,1",
    )
    p.add_argument(
        "--activation",
        type=_name,
        default=d.activation,
        help=f"hidden activation: {', '.join(HIDDEN_ACTIVATIONS)} (default sigmoid)",
    )
    p.add_argument(
        "--loss", type=_name, default=d.loss, help=f"{', '.join(LOSSES)} (default bce, from logits)"
    )
    p.add_argument(
        "--reduction",
        type=_name,
        default=d.reduction,
        help=f"{', '.join(REDUCTIONS)} over samples (default mean, as the tutorial)",
    )
    p.add_argument(
        "--optimizer",
        type=_name,
        default=d.optimizer,
        help=f"{', '.join(OPTIMIZERS)} (default sgd)",
    )
    p.add_argument(
        "--momentum",
        type=float,
        default=d.momentum,
        help="momentum coefficient for --optimizer momentum (default 0.9)",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (default 0.5)")
    p.add_argument(
        "--init",
        default=d.init,
        metavar="SCHEME[:SCALE]",
        help=f"{', '.join(SCHEMES)}; uniform:A and normal:SIGMA take a scale (default {Init()})",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="epoch budget (default 10000)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default 0)")
    p.add_argument(
        "--net",
        type=int,
        default=d.net,
        help="which net of the seed to train, as numbered in a population (default 0)",
    )
    p.add_argument("--backend", default=d.backend, help=f"{', '.join(BACKENDS)} (default numba)")
    p.add_argument("--dtype", default=d.dtype, help=f"{', '.join(DTYPES)} (default float64)")
    p.add_argument(
        "--every",
        type=int,
        default=d.every,
        metavar="N",
        help="show statistics every N epochs (default 1000)",
    )
    p.add_argument(
        "--tolerance",
        type=_threshold,
        default=d.tolerance,
        help="converged when every output is within this of its target (default 0.4, the "
        "40-20-40 rule); 'none' to leave this rule out",
    )
    add_stopping_flags(p, default=None)
    p.add_argument(
        "--early-stop",
        action="store_true",
        help="stop as soon as the net has converged (default: train every epoch)",
    )
    _add_schedule_flags(p)
    p.add_argument("--batchnorm", action="store_true",
                   help="batch-normalise every hidden layer (statistics shown in evaluation mode)")
    p.add_argument("--dropout", type=float, default=d.dropout, metavar="P",
                   help="inverted dropout of rate P on hidden activations (default 0)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, metavar="L",
                   help="L2 weight decay; coupled, decoupled with --optimizer adamw (default 0)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (config, per-epoch stats, predictions) instead",
    )
    p.set_defaults(command=_train)


def _add_schedule_flags(p, sweep: bool = False) -> None:
    p.add_argument(
        "--shortcut",
        # a sweep's flag may also turn off a config file's shortcut = true
        action=argparse.BooleanOptionalAction if sweep else "store_true",
        default=None if sweep else False,
        help="the input (and every hidden layer but the last) also feeds the output directly",
    )
    p.add_argument(
        "--batch-size",
        type=schedule_options.batch_size_flag,
        metavar="full|K",
        help="patterns per update: full (default), 1 (per pattern, online) or K (minibatches)",
    )


def _train(args) -> int:
    try:
        config = _train_config(args)
        limits.check_train(config)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.json:
        c = config
        print(
            f"training {c.spec.describe()} on {c.data.name}: {c.optimizer_config.describe()} "
            f"lr {c.lr:g}, init {c.init}, seed {c.seed} net {c.net}, "
            f"{c.epochs} epoch{'' if c.epochs == 1 else 's'}, "
            f"{c.backend} {c.dtype}"
            + ("" if c.batch_size is None else f", {schedule_options.describe(c.batch_size)}"),
            flush=True,
        )
    run = interruptible(run_train, config)
    print(json.dumps(_as_json(run), indent=2) if args.json else render_train(run))
    return 0


def _train_config(args) -> TrainConfig:
    # every train flag is named after the config field it sets
    return TrainConfig(**{field.name: getattr(args, field.name) for field in fields(TrainConfig)})


def _as_json(run: TrainRun) -> dict:
    return {
        "config": run.config,
        "spec": run.spec,
        "n_params": run.n_params,
        "history": run.history,
        "predictions": run.predictions,
        "outcome": run.outcome,
    }


def _loss_cell(loss: float) -> str:
    """A loss in the table's 10 columns: six decimals, or 4 digits and an exponent where those
    would not fit (a diverging net's loss of 1e306 took 300 columns)."""
    return f"{loss:>10.6f}" if abs(loss) < 1e3 or loss != loss else f"{loss:>10.4g}"


def render_train(run: TrainRun) -> str:
    """The trainer's screen: statistics table, outcome line, predictions."""
    lines = [f"{'epoch':>8}  {'loss':>10}  {'accuracy':>8}  {'grad norm':>10}"]
    for row in run.history:
        lines.append(
            f"{row['epoch']:>8}  {_loss_cell(row['loss'])}  {row['accuracy']:>8.0%}  "
            f"{row['grad_norm']:>10.3e}"
        )
    o = run.outcome
    if o["status"] == "diverged":
        lines.append(f"diverged at epoch {o['epochs_trained']} (loss {o['final_loss']:.4g})")
    elif o["epochs_to_converge"] >= 0:
        lines.append(f"converged at epoch {o['epochs_to_converge']} ({o['criterion']})")
    else:
        lines.append(f"not converged in {o['epochs_trained']} epochs ({o['criterion']})")
    if o["first_full_accuracy"] >= 0:
        lines.append(f"100% accuracy first at epoch {o['first_full_accuracy']}")
    lines.append("predictions:")
    lines.append(f"  {'input':<12} {'target':>6}  {'output':>8}  class")
    for p in run.predictions:
        for target, output, predicted in zip(p["target"], p["output"], p["class"], strict=True):
            if predicted is None:
                shown, mark = "?", "undecided (output 0.5)"
            else:
                shown, mark = str(predicted), "ok" if predicted == int(target >= 0.5) else "WRONG"
            inputs = " ".join(f"{x:g}" for x in p["input"])
            lines.append(f"  {inputs:<12} {target:>6g}  {output:>8.4f}  {shown} {mark}")
    return "\n".join(lines)


def _add_sweep(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train thousands of seeded nets over a grid and report how they converge",
        description="Train N seeded nets in every cell of a grid over learning rate, init, hidden "
        "size, activation, loss and optimizer, then write a report (report.md, figures, "
        "summary.json, results.csv.gz, meta.json) to --out. Flags override --config; with "
        "neither, the default sweep runs. Stopped runs resume where they stopped.",
    )
    p.add_argument(
        "--config",
        type=_path,
        metavar="FILE.toml",
        help="sweep settings (keys as the flags but --out and the executor's, with _ for -); "
        "flags win over the file",
    )
    p.add_argument(
        "--name", help="name of the sweep (default: default); --out defaults to reports/NAME"
    )
    p.add_argument("--problem", type=_problems, metavar="NAME[,NAME...]",
                   help=f"{', '.join(PROBLEMS)}; several make a grid axis "
                   "(default xor)")  # fmt: skip
    p.add_argument("--lr", type=_list(float), metavar="LR,LR,...", help="learning rates")
    p.add_argument("--init", type=_list(str), metavar="SCHEME,...", help="init schemes")
    p.add_argument("--hidden", type=_list(_width), metavar="W,W,...",
                   help="hidden layer widths: units (4) or multiples of the problem's inputs "
                   "(n, 2n)")  # fmt: skip
    p.add_argument("--activation", type=_list(_name), metavar="NAME,...", help="hidden activations")
    p.add_argument("--loss", type=_list(_name), metavar="NAME,...", help="bce, mse")
    p.add_argument("--optimizer", type=_list(_name), metavar="NAME,...", help=", ".join(OPTIMIZERS))
    p.add_argument("--momentum", type=float, help="momentum coefficient (default 0.9)")
    p.add_argument("--batchnorm", type=_list(_on_off), metavar="off,on",
                   help="batch norm of the hidden layers: off, on or both (default off)")
    p.add_argument("--dropout", type=_list(float), metavar="P,P,...",
                   help="dropout rates of the hidden activations (default 0)")
    p.add_argument("--weight-decay", type=_list(float), metavar="L,L,...",
                   help="L2 weight decay; decoupled for adamw (default 0)")
    p.add_argument("--nets-per-cell", type=int, help="seeded nets per grid cell (default 1000)")
    p.add_argument("--epochs", type=int, help="epoch budget per net (default 10000)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--tolerance",
        type=_threshold,
        help="convergence: every output within this of its target (default 0.4, the 40-20-40 "
        "rule); 'none' to leave this rule out",
    )
    add_stopping_flags(p, default=None)
    p.add_argument("--reduction", type=_name, help="mean or sum of the loss over the patterns "
                   "(default mean; sum is the 1980s papers' convention)")  # fmt: skip
    p.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the no-hidden-layer control cells (default: yes)",
    )
    p.add_argument(
        "--nets-per-shard",
        type=int,
        help="nets trained and stored together (default 1000; results do not depend on it)",
    )
    _add_schedule_flags(p, sweep=True)
    p.add_argument("--backend", help="numba or numpy (default numba; the same results to ~1e-13 "
                   "an epoch, which Adam or tanh at high learning rates can grow)")
    p.add_argument("--out", type=_path, help="output folder (default reports/NAME)")
    add_executor_flags(p)
    p.set_defaults(command=_sweep)


def _sweep(args) -> int:
    try:
        file_values = load_toml(args.config) if args.config else {}
        flags = {name: getattr(args, name) for name in FIELD_NAMES}
        config = make_config(file_values, flags)
        out = Path(args.out) if args.out else default_out(config)
        limits.check_sweep(config)
        executor = make_executor(args.executor, args.scheduler, args.workers)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        # the executor first: an unreachable scheduler is refused before anything is written
        with executor:
            try:
                prepare_out(config, out)
            except ValueError as error:
                raise UsageError(str(error)) from None
            print(
                f"sweep {config.name!r}: {len(config.cells())} cells x {config.nets_per_cell:,} "
                f"nets = {config.n_nets():,} nets, up to {config.epochs:,} epochs each -> {out}",
                flush=True,
            )
            trained = run_sweep(config, out, Progress(), executor)
        results = load_results(config, out)
        seconds = training_seconds(config, out)
        atomic.write_bytes(out / "results.csv.gz", results_csv(results))
        write_json(out / "summary.json", summarize(results))
        write_json(out / "meta.json", meta(config, seconds, args.argv, trained))
        report = write_report(out)
    except ExecutorUnavailable as error:
        raise UsageError(str(error)) from None
    except ShardFailed as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        end_bar = "\n" if sys.stderr.isatty() else ""  # the progress bar's line, on a terminal
        print(
            f"{end_bar}{PROG}: interrupted; every finished shard is stored in {out}: run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 130
    # a rerun over a finished sweep trains nothing: the time is that of the runs that trained
    when = ("training took" if trained == config.n_shards else
            "nothing left to train; its training took" if trained == 0 else
            f"{trained} of {config.n_shards} shards trained now; the training took")  # fmt: skip
    print(f"wrote {report} ({when} {seconds:.0f} s)")
    return 0


def _add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="rebuild a sweep's report from its stored results, without training",
        description="Redraw the figures and rewrite report.md of a finished sweep from its "
        "summary.json and meta.json.",
    )
    p.add_argument("folder", type=_path, metavar="DIR",
                   help="a sweep's output folder, e.g. reports/default")  # fmt: skip
    p.set_defaults(command=_report)


def _report(args) -> int:
    try:
        path = write_report(Path(args.folder))
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {path}")
    return 0


def _add_gradcheck(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck",
        help="check the gradients of every kernel of both backends, and the checker itself",
        description="Check every kernel (activations, losses, networks of depth 1 to 6, "
        "per-layer gradients, optimizer steps) of both backends in float64 and float32 against "
        "reference derivatives, then run the mutation catalogue: deliberately wrong backward "
        "passes that the checker must catch. Exit status 1 if anything fails.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.add_argument(
        "--no-catalogue",
        action="store_true",
        help="skip the catalogue of user-style functions (float32 end to end, kinks, hidden "
        "state, noise, badly scaled, large nets) that the checker is scored on",
    )
    p.set_defaults(command=_gradcheck)


def _gradcheck(args) -> int:
    from backprop_bench.verify.check import progress_lines
    from backprop_bench.verify.kernel_checks import all_rows
    from backprop_bench.verify.mutants import MUTANTS, false_alarms, run_mutants
    from backprop_bench.verify.scoring import render_table, score_table
    from backprop_bench.verify.verdict import KINK

    # the catalogue (plain NumPy) runs in CATALOGUE_SHARDS more processes, every other case
    # each, while this one checks the kernels: three about equal parts share the cores
    shards = [] if args.no_catalogue else [
        _catalogue_process(k, CATALOGUE_SHARDS) for k in range(CATALOGUE_SHARDS)
    ]  # fmt: skip
    started = time.perf_counter()
    parts = 3 if shards else 2

    def stage(k, what):
        print(f"{PROG} gradcheck: {what} ({k}/{parts}, {time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip

    try:
        _one_thread()
        with progress_lines(False):  # the stages below are this command's progress
            stage(1, "every kernel of both backends, float64 and float32")
            rows = all_rows()
            stage(2, f"{len(MUTANTS)} wrong backward passes of our kernels in both dtypes, "
                     "and the right ones")  # fmt: skip
            mutants = run_mutants()
            alarms = false_alarms()
            if shards:
                stage(3, "the catalogue of user-style functions (started beside the kernels)")
            catalogue = _catalogue_outcome(shards)
        print(f"{PROG} gradcheck: done ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip
    finally:
        for shard in shards:
            if shard.poll() is None:
                shard.kill()
                shard.wait()
    caught = sum(m.caught for m in mutants)
    catalogue_ok = not any(r.false_alarm or r.verdict in ("correct", KINK) and r.kind == "mutant"
                           for r in catalogue)  # fmt: skip
    passed = all(r.passed for r in rows) and caught == len(mutants) and not alarms and catalogue_ok
    if args.json:
        print(json.dumps({
            "passed": passed,
            "kernels": [r.as_dict() for r in rows],
            "mutants": [m.__dict__ for m in mutants],
            "mutation_score": {"caught": caught, "total": len(mutants)},
            "false_alarms": alarms,
            "catalogue": [{**r.__dict__, "kind": r.kind} for r in catalogue],
            "catalogue_score": score_table(catalogue),
        }, indent=2))  # fmt: skip
        return 0 if passed else 1
    print(
        "worst err: the worst element's error relative to the largest derivative (of the "
        "step, for the optimizers); err/tol: that error over its tolerance (at most 1 passes)\n"
    )
    print(
        f"{'kernel':<54} {'backend':<7} {'dtype':<7} {'worst err':>9} {'err/tol':>7} "
        f"{'ref err est':>11}  verdict"
    )
    for r in rows:
        print(
            f"{r.kernel:<54} {r.backend:<7} {r.dtype:<7} {r.worst_rel_error:>9.2e} "
            f"{r.worst_to_tolerance:>7.2f} {r.reference_error:>11.1e}  "
            f"{'ok' if r.passed else 'FAIL'}"
            + (f"  ({r.detail})" if r.detail and r.passed else "")
        )
    for r in rows:
        if not r.passed:
            print(f"\n{r.kernel} ({r.backend}, {r.dtype}):\n{r.detail}")
    print(
        f"\nmutation score: {caught}/{len(mutants)} wrong backward passes caught "
        f"({len(MUTANTS)} mutants x float64, float32)"
    )
    for m in mutants:
        if not m.caught:
            print(f"  NOT CAUGHT: {m.name} ({m.dtype}): {m.description}")
    print(f"false alarms on correct backward passes: {len(alarms)}")
    for alarm in alarms:
        print(f"  FALSE ALARM: {alarm}")
    if catalogue:
        print(
            f"\ncatalogue of user-style functions ({len(catalogue)} cases, the checker's defaults):"
        )
        print(render_table(score_table(catalogue)))
        for r in catalogue:
            if r.false_alarm or (r.kind == "mutant" and r.verdict in ("correct", KINK)):
                what = "FALSE ALARM" if r.false_alarm else "NOT CAUGHT"
                print(f"  {what}: {r.name} ({r.dtype}): {r.verdict}, expected {r.expect}")
    print("gradcheck " + ("passed" if passed else "FAILED"))
    return 0 if passed else 1


def _one_thread() -> None:
    """The kernel checks evaluate one net at a time: a parallel region per call only waits for
    threads (2.3 ms a call with the catalogue's process on the other core, 99.9% of the time)."""
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(1)


def catalogue_worker(shard: int = 0, shards: int = 1) -> None:
    """A catalogue process of ``gradcheck``: the results of every ``shards``-th case from
    ``shard`` on, pickled, on stdout."""
    from backprop_bench.verify.catalogue import CASES
    from backprop_bench.verify.scoring import run_catalogue

    results = run_catalogue(CASES[shard::shards])
    sys.stdout.buffer.write(pickle.dumps(results))


def _catalogue_process(shard: int, shards: int) -> subprocess.Popen:
    """Part of the catalogue in a fresh interpreter (no numba threads inherited), in its own
    session: a Ctrl-C reaches this process alone, which then stops it, so the child never
    prints."""
    code = (
        "from backprop_bench.bench.cli import catalogue_worker; "
        f"catalogue_worker({shard}, {shards})"
    )
    # one BLAS thread: two processes that each spin a thread per core on two cores slowed the
    # large nets' matrix products 30-fold (34 s against 1.2 s for the same cases)
    env = {**os.environ, **{k: "1" for k in BLAS_THREAD_VARIABLES}}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _catalogue_outcome(shards: list) -> list:
    """The catalogue's results in the catalogue's order (shard k holds cases k, k + S, ...)."""
    parts = []
    for shard in shards:
        out, err = shard.communicate()
        if shard.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(
                f"the catalogue's process failed (status {shard.returncode}): {last[0]}"
            )
        parts.append(pickle.loads(out))
    merged = [None] * sum(len(p) for p in parts)
    for k, part in enumerate(parts):
        merged[k :: len(parts)] = part
    return merged


def _add_vanishing(subparsers) -> None:
    from backprop_bench.verify.vanishing import VanishingConfig

    d = VanishingConfig()
    p = subparsers.add_parser(
        "vanishing",
        help="measure how gradients shrink with depth, for many seeded nets at initialisation",
        description="Per-layer gradient norms (dL/dz, dL/dh, dL/dW) of seeded nets at "
        "initialisation for several depths, activations and inits; checks sigmoid' <= 1/4 and "
        "the product bound for sigmoid nets on every net; writes report.md, vanishing.json and "
        "figures to --out.",
    )
    p.add_argument(
        "--depths",
        type=_list(int),
        default=d.depths,
        metavar="D,D,...",
        help=f"numbers of hidden layers (default {','.join(map(str, d.depths))})",
    )
    p.add_argument(
        "--activations",
        type=_list(_name),
        default=d.activations,
        metavar="NAME,...",
        help=f"hidden activations (default {','.join(d.activations)})",
    )
    p.add_argument(
        "--inits",
        type=_list(str),
        default=d.inits,
        metavar="SCHEME,...",
        help=f"init schemes (default {','.join(d.inits)})",
    )
    p.add_argument("--width", type=int, default=d.width, help=f"units per hidden layer ({d.width})")
    p.add_argument("--nets", type=int, default=d.n_nets, help=f"seeded nets per case ({d.n_nets})")
    p.add_argument("--problem", default=d.problem, help="data the pass runs on (xor)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (0)")
    p.add_argument("--backend", default=d.backend, help="numba or numpy (numba)")
    p.add_argument("--batchnorm", type=_list(_on_off), default=d.batchnorm, metavar="off,on",
                   help="also run every case with batch norm: off,on (default off)")
    p.add_argument("--out", type=_path, default="reports/vanishing", help="output folder")
    p.set_defaults(command=_vanishing)


def _vanishing(args) -> int:
    import time

    from backprop_bench.verify.vanishing import VanishingConfig, study

    from .summary import _git_commit
    from .vanishing_report import check_out, has_bound, write

    try:
        config = VanishingConfig(
            depths=args.depths, activations=args.activations, inits=args.inits,
            width=args.width, n_nets=args.nets, problem=args.problem, seed=args.seed,
            backend=args.backend, batchnorm=args.batchnorm,
        )  # fmt: skip
        out = Path(args.out)
        limits.check_vanishing(config)
        check_out(out, config.to_dict())
    except ValueError as error:
        raise UsageError(str(error)) from None
    progress = Progress()
    progress.start(len(config.depths) * len(config.activations) * len(config.inits)
                   * len(config.batchnorm))  # fmt: skip
    start = time.perf_counter()
    results = study(config, progress=lambda n, total: progress.advance(1))
    progress.close()
    seconds = time.perf_counter() - start
    versions = {}
    for package in ("numpy", "numba", "scipy", "matplotlib"):
        from importlib import metadata

        versions[package] = metadata.version(package)
    meta_doc = {"command": " ".join(["backprop-bench", *args.argv]), "seconds": round(seconds, 1),
                "versions": versions, "commit": _git_commit()}  # fmt: skip
    path = write(out, results, meta_doc)
    claims = results["claims"]
    if claims:
        unchecked = claims.get("bound_unchecked", 0)
        bound = (f"bound violations: {claims['bound_violations']} of {claims['bound_checks']:,} "
                 "checks" + (f" ({unchecked:,} not made: a norm not finite)" if unchecked else "")
                 if has_bound(results) else "the bound needs 2 or more hidden layers: not checked"
                 if max(config.depths) < 2 else "the bound is a plain chain's: not checked with "
                 "batch norm")  # fmt: skip
        print(f"sigmoid'(z) <= 1/4: max {claims['max_sigmoid_derivative']:.6g} over "
              f"{claims['units_seen']:,} units; {bound}")  # fmt: skip
    print(f"wrote {path} ({seconds:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Understand, verify and benchmark backpropagation.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _add_train(subparsers)
    _add_sweep(subparsers)
    _add_report(subparsers)
    _add_gradcheck(subparsers)
    _add_vanishing(subparsers)
    _add_live(subparsers)
    for sub in subparsers.choices.values():
        sub.set_defaults(help_of=sub.prog)  # "backprop-bench train": where its help is
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status: 0 done, 1 failed during the work (a full disk,
    a permission, a check that failed), 2 bad input, 130 interrupted (Ctrl-C or SIGTERM)."""
    parser = build_parser()
    # an interrupt noted by an earlier command of this process was that command's (which
    # ended by it): this one starts with none pending (see interrupt.raise_if_pending)
    command.pending.clear()
    with sigterm_as_interrupt():
        try:
            argv = sys.argv[1:] if argv is None else list(argv)
            args, extras = parser.parse_known_args(
                _join_negative_values(argv, _valued_options(parser))
            )
            if extras:  # named by the command's own help, as its other errors are
                where = getattr(args, "help_of", PROG)
                raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see {where} --help)")
            args.argv = argv
            if not hasattr(args, "command"):
                commands = "train, sweep, report, gradcheck, vanishing or live"
                raise UsageError(f"choose a command: {commands} (see {PROG} --help)")
            code = args.command(args)
            sys.stdout.flush()  # a failing write to stdout belongs to the command
            if command.pending and code == 0:
                # a signal whose KeyboardInterrupt a library swallowed after the work's last
                # step (train's, gradcheck's: no Progress between) is still an interrupt
                print(f"{PROG}: interrupted (after its work was done: what it wrote is "
                      "complete)", file=sys.stderr)  # fmt: skip
                return 130
            return code
        except UsageError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (| head): nothing left to say
            _drop_stdout()
            return 1
        except OSError as error:
            where = error.filename
            if where is None:  # a write to stdout (> /dev/full); the exit must not retry it
                where = "standard output"
                _drop_stdout()
            print(f"{PROG}: error: {where}: {error.strerror or error}", file=sys.stderr)
            return 1
        except MemoryError:
            print(f"{PROG}: error: out of memory; ask for fewer nets, epochs or layers",
                  file=sys.stderr)  # fmt: skip
            return 1
        finally:
            # the interrupts this command noted were its own: none is left for later work of
            # the process (Progress used directly raised at once after an interrupted main)
            command.pending.clear()


# a value that starts with a minus sign: a negative number or a list of them (-1,1 or -.5)
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _valued_options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options of the parser and its commands that take a value."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _valued_options(sub)
        elif action.nargs != 0:
            found.update(o for o in action.option_strings if o.startswith("--"))
    return found


def _join_negative_values(argv: list[str], valued: set[str]) -> list[str]:
    """``--lr -1,1`` as ``--lr=-1,1``: argparse takes a value that starts with a minus sign
    for an option unless it is a single number, and said "expected one argument" where the
    option's own check names what is wrong with the value."""
    joined = []
    for token in argv:
        if joined and joined[-1] in valued and _NEGATIVE_VALUE.match(token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # the command itself, with its exit on an interrupt
    from backprop_bench.command import main as command

    sys.exit(command())
