"""Measure the numbers behind the README's cost model for big sweeps on a Dask cluster.

    python tests/benchmarks/cluster_cost_model.py --out reports/cluster/cost_model.json
    python tests/benchmarks/cluster_cost_model.py \
        --predict-only --out reports/cluster/cost_model.json

1. Strong scaling: the README's example grid on a local Dask cluster of 1 and of 2 worker
   processes (and the local executor), ``--repeats`` times, in turn, so that the ratios come from
   runs that shared the machine's load. Cluster start-up and the workers' warm-up are not timed.
2. Throughput per core on a sample of the big grid (8 learning rates x 6 inits x 4 widths x 3
   optimizers, 10,000 epochs, 100,000 nets per cell): its 96 cells of the first init, with
   ``--big-nets`` nets per cell in shards of 1,000 as the big run would have them: net-epochs
   actually trained (nets stop once converged or diverged) per CPU second and per wall second,
   and the fraction of the nominal budget they trained.
3. Per-shard overhead: many one-epoch, one-net shards through the whole path (scheduler, transfer,
   the client's atomic, fsync'd write), as shards per second; and the two serial parts apart:
   tasks per second through the scheduler that each bring back an array of a 1,000-net shard's
   size, and the client's seconds to write one 1,000-net shard.
4. Bytes per stored net and per 1,000-net shard.

Not a test (pytest does not collect it): it takes minutes and its numbers depend on the machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from backprop_bench.bench import atomic
from backprop_bench.bench.executors import LocalExecutor
from backprop_bench.bench.shard import write_shard
from backprop_bench.bench.sweep import SHARD_DIR, load_results, run_sweep
from backprop_bench.bench.sweep_config import SweepConfig

try:
    from . import usage
except ImportError:  # run as a file, as the README runs it: its folder is on the path
    import usage

try:
    from backprop_bench.bench.dask_executor import DaskExecutor
    from distributed import as_completed
except ImportError:  # --predict-only needs neither; main() says what the rest needs
    DaskExecutor = as_completed = None

# the README's example: backprop-bench sweep --lr 0.1,0.3,1 --init tutorial,xavier_uniform
#   --hidden 2,4 --optimizer sgd,momentum --nets-per-cell 2000 --epochs 5000
EXAMPLE = SweepConfig(
    lr=(0.1, 0.3, 1.0),
    init=("tutorial", "xavier_uniform"),
    hidden=(2, 4),
    optimizer=("sgd", "momentum"),
    nets_per_cell=2000,
    epochs=5000,
)
BIG_NETS_PER_CELL = 100_000  # the grid the README predicts for
BIG = SweepConfig(optimizer=("sgd", "momentum", "adam"), control=False)


def timed(config: SweepConfig, executor, folder: Path) -> dict:
    """Seconds of shards only: the executor first runs a one-net copy to load the kernels.

    cpu_seconds: CPU time of the processes that trained (the workers', or this process's with
    its numba threads), which the machine's other load does not inflate as it does wall time.
    """
    warm = dataclasses.replace(config, nets_per_cell=1, nets_per_shard=1, epochs=10)
    run_sweep(warm, folder / "warm", executor=executor)
    log_start, load = len(getattr(executor, "shard_log", [])), os.getloadavg()[0]
    cpu, start = time.process_time(), time.perf_counter()
    run_sweep(config, folder / "run", executor=executor)  # returns the shards it trained
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if hasattr(executor, "shard_log"):
        cpu = sum(info["cpu_seconds"] for info in executor.shard_log[log_start:])
    results = load_results(config, folder / "run")
    shards = list((folder / "run" / SHARD_DIR).glob("*.npz"))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_average_1min": [load, os.getloadavg()[0]],
        "net_epochs": int(results.nets["epochs_trained"].sum()),
        "nets": config.n_nets(),
        "shards": len(shards),
        "shard_bytes": sum(p.stat().st_size for p in shards),
    }


def _shard_sized(nbytes: int, i: int):
    return np.full(nbytes // 8, float(i))


def tiled(shard_file: Path, copies: int) -> dict:
    """A stored shard's results, ``copies`` times over along the nets' axis."""
    with np.load(shard_file) as stored:
        # the results only: the tag, the shard's id and its training seconds are scalars
        one = {k: stored[k] for k in stored.files if k not in ("tag", "shard", "seconds")}
    return {k: np.concatenate([v] * copies, axis=-1) for k, v in one.items()}


def scheduler_and_writes(executor, shard_file: Path, folder: Path, n_tasks: int) -> dict:
    """For shards of 1,000 and 10,000 nets (the stored 1,000-net ``shard_file``, tiled): tasks/s
    through the scheduler that each bring back an array of the shard's size, and the client's
    seconds to write one such shard (atomically, fsync'd)."""
    out = {}
    for nets in (1000, 10_000):
        copies = nets // 1000
        data = tiled(shard_file, copies)
        nbytes = write_shard(folder / f"size-{nets}", 0, data, "tag").stat().st_size
        tasks = max(20, n_tasks // copies)
        start = time.perf_counter()
        futures = executor.client.map(_shard_sized, [nbytes] * tasks, range(tasks))
        for future in as_completed(futures):
            future.result()
        del futures
        tasks_per_second = tasks / (time.perf_counter() - start)
        writes = max(5, 30 // copies)
        start = time.perf_counter()
        for i in range(writes):
            write_shard(folder / f"writes-{nets}", i, data, "tag")
        out[str(nets)] = {
            "shard_bytes": nbytes,
            "tasks_per_second": tasks_per_second,
            "write_seconds": (time.perf_counter() - start) / writes,
        }
    return out


def predict(doc: dict, cores=(100, 1000)) -> dict:
    """Wall time of the big grid (100,000 nets per cell) from the measured rates.

    Training is spread over the cores; receiving and writing the shards is done by the one client,
    in series with the scheduler's handling of each task; the two overlap, so the longer wins.
    """
    sample = doc["big_sample"]
    n_cells = len(BIG.cells())
    nominal = n_cells * BIG_NETS_PER_CELL * BIG.epochs
    fraction = sample["net_epochs"] / (sample["nets"] * BIG.epochs)
    per_core = sample["net_epochs"] / sample["cpu_seconds"]
    out = {
        "nominal_net_epochs": nominal,
        "fraction_trained": fraction,
        "net_epochs": nominal * fraction,
        "net_epochs_per_cpu_second": per_core,
        "one_core_seconds": nominal * fraction / per_core,
    }
    for nets, serial in doc["serial_parts"].items():
        n_shards = n_cells * -(-BIG_NETS_PER_CELL // int(nets))
        client = n_shards * (1 / serial["tasks_per_second"] + serial["write_seconds"])
        row = {
            "shards": n_shards,
            "bytes": n_shards * serial["shard_bytes"],
            "client_seconds": client,
        }
        for p in cores:
            training = nominal * fraction / (per_core * p)
            row[f"on_{p}_cores"] = {
                "training_seconds": training,
                "wall_seconds": max(training, client),
            }
        out[f"nets_per_shard_{nets}"] = row
    return out


def executor_for(mode: str):
    return LocalExecutor() if mode == "local" else DaskExecutor(workers=int(mode.split("-")[1]))


def main() -> None:
    parser = usage.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=usage.positive_int, default=3)
    parser.add_argument("--big-nets", type=usage.positive_int, default=1000)
    parser.add_argument("--overhead-shards", type=usage.positive_int, default=1000)
    parser.add_argument(
        "--predict-only", action="store_true", help="only redo the prediction in --out"
    )
    parser.add_argument(
        "--serial-only", action="store_true", help="only redo the serial parts in --out"
    )
    args = parser.parse_args()
    if (args.predict_only or args.serial_only) and not args.out.is_file():
        parser.error(f"--out {args.out}: no such file; --predict-only and --serial-only redo "
                     "parts of a measurement written there before (run without them first)")
    usage.writable(args.out, "--out")
    if DaskExecutor is None and not args.predict_only:
        parser.exit(2, f"{parser.prog}: error: the timings run a local Dask cluster: "
                       "pip install -e '.[dask]' (--predict-only needs no cluster)\n")  # fmt: skip
    if args.serial_only:
        doc = json.loads(args.out.read_text())
        with tempfile.TemporaryDirectory() as tmp, DaskExecutor(workers=2) as executor:
            tmp = Path(tmp)
            one = dataclasses.replace(BIG, lr=(1.0,), init=BIG.init[:1], hidden=(2,))
            run_sweep(dataclasses.replace(one, optimizer=("sgd",)), tmp / "one")
            shard_file = sorted((tmp / "one" / SHARD_DIR).glob("*.npz"))[0]
            doc["serial_parts"] = scheduler_and_writes(executor, shard_file, tmp, 2000)
        args.predict_only = True
        _write(args.out, doc)
    if args.predict_only:
        doc = json.loads(args.out.read_text())
        doc["prediction"] = predict(doc)
        print(json.dumps(doc["prediction"], indent=2))
        _write(args.out, doc)
        return
    doc = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "scaling": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for repeat in range(args.repeats):
            row = {}
            for mode in ("dask-1", "dask-2", "local"):
                with executor_for(mode) as executor:
                    row[mode] = timed(EXAMPLE, executor, tmp / f"{mode}-{repeat}")
                print(mode, row[mode], flush=True)
            doc["scaling"].append(row)

        big = dataclasses.replace(BIG, init=BIG.init[:1], nets_per_cell=args.big_nets)
        with DaskExecutor(workers=2) as executor:
            doc["big_sample"] = timed(big, executor, tmp / "big")
            doc["big_sample"]["config"] = big.identity()
            print("big sample", doc["big_sample"], flush=True)

            n_cells = len(dataclasses.replace(BIG, lr=(1.0,)).cells())
            tiny = dataclasses.replace(
                BIG, lr=(1.0,), epochs=1, nets_per_shard=1,
                nets_per_cell=max(1, args.overhead_shards // n_cells),
            )  # fmt: skip
            doc["overhead_dask_2"] = timed(tiny, executor, tmp / "tiny-dask")
            shard_file = sorted((tmp / "big" / "run" / SHARD_DIR).glob("*.npz"))[0]
            doc["serial_parts"] = scheduler_and_writes(executor, shard_file, tmp, 2000)
            print("serial parts", doc["serial_parts"], flush=True)
        with LocalExecutor() as executor:
            doc["overhead_local"] = timed(tiny, executor, tmp / "tiny-local")
        print("overhead", doc["overhead_dask_2"], doc["overhead_local"], flush=True)
    doc["prediction"] = predict(doc)
    print("prediction", doc["prediction"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out, doc)


def _write(path: Path, doc: dict) -> None:
    """All at once: a killed run leaves the old file, never half of the new one."""
    atomic.write_text(path, json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
