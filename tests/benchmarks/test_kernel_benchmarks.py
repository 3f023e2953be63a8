"""Kernel timings with pytest-benchmark (``pytest --benchmark``; plain ``pytest`` runs each once).

Every training benchmark records its sizes and its throughput (net-epochs per second) in
``extra_info``; ``conftest.py`` turns them into the table of performance targets printed at the
end of ``pytest --benchmark``. All implementations train the same nets from the same weights.
JIT compilation is warmed up before timing. JAX and PyTorch are optional
(``pip install -e ".[peers]"``); their benchmarks are skipped without them.
"""

import json
import subprocess
import sys

import numba
import numpy as np
import pytest
from backprop_bench.kernels import NetSpec, Optimizer, backend, get_problem, init_population

from tests.kernels import tutorial

from . import peers

XOR = get_problem("xor")
TUTORIAL = NetSpec((2, 4, 1))
N_NETS = 4096
# epochs per implementation: about a tenth of a second to a second each
EPOCHS = {"tutorial": 1000, "numpy": 100, "numba": 1000, "jax": 1000, "torch": 100}
SIZES = (1, 1000, 10_000, 100_000, 1_000_000)
WIDE = {"2-16-16-1": NetSpec((2, 16, 16, 1)), "8-32-32-1": NetSpec((8, 32, 32, 1))}
WIDE_EPOCHS = 100


def record(benchmark, impl, n_nets, n_epochs, **info):
    benchmark.extra_info.update(impl=impl, n_nets=n_nets, n_epochs=n_epochs, **info)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.min > 0:
        benchmark.extra_info["net_epochs_per_second"] = n_nets * n_epochs / stats.stats.min


def numba_train(theta, spec, X, Y, n_epochs, **kw):
    return backend("numba").train_population(theta, spec, X, Y, 0.5, n_epochs, early_stop=False,
                                             **kw)  # fmt: skip


def data_for(spec):
    rng = np.random.default_rng(0)
    if spec.n_inputs == 2:
        return XOR.X, XOR.Y
    X = (rng.random((16, spec.n_inputs)) < 0.5).astype(float)
    return X, (X.sum(axis=1, keepdims=True) % 2)


# ----------------------------------------------------------------- the same job, five ways


@pytest.mark.benchmark(group="train 2-4-1 xor, float64")
def test_tutorial_one_net_loop(benchmark):
    theta = init_population(TUTORIAL, 1, seed=0)[:, 0]
    benchmark(tutorial.train, XOR.X, XOR.Y, theta, 0.5, EPOCHS["tutorial"])
    record(benchmark, "tutorial", 1, EPOCHS["tutorial"])


@pytest.mark.benchmark(group="train 2-4-1 xor, float64")
@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_fused_training(benchmark, name):
    kernels = backend(name)
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    kernels.train_population(theta[:, :64], TUTORIAL, XOR.X, XOR.Y, 0.5, 2)  # compile
    result = benchmark(kernels.train_population, theta, TUTORIAL, XOR.X, XOR.Y, 0.5,
                       EPOCHS[name], early_stop=False)  # fmt: skip
    assert (result.epochs_trained == EPOCHS[name]).all()
    record(benchmark, name, N_NETS, EPOCHS[name])


@pytest.mark.benchmark(group="train 2-4-1 xor, float64")
def test_jax_vmap_jit(benchmark):
    pytest.importorskip("jax", reason="JAX is not installed: pip install -e '.[peers]'")
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    trainer = peers.jax_trainer(TUTORIAL, EPOCHS["jax"], 0.5)
    params = peers.jax_params(theta, TUTORIAL)
    peers.jax_run(trainer, params, XOR.X, XOR.Y)  # compile
    benchmark(peers.jax_run, trainer, params, XOR.X, XOR.Y)
    record(benchmark, "jax", N_NETS, EPOCHS["jax"])


@pytest.mark.benchmark(group="train 2-4-1 xor, float64")
def test_torch_batched_autograd(benchmark):
    pytest.importorskip("torch", reason="PyTorch is not installed: pip install -e '.[peers]'")
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    peers.torch_train(theta[:, :64], TUTORIAL, XOR.X, XOR.Y, 2, 0.5)  # warm up
    benchmark(peers.torch_train, theta, TUTORIAL, XOR.X, XOR.Y, EPOCHS["torch"], 0.5)
    record(benchmark, "torch", N_NETS, EPOCHS["torch"])


@pytest.mark.slow  # a cold compile of the float32 lane kernel: half a minute in plain pytest
@pytest.mark.benchmark(group="train 2-4-1 xor, float32")
def test_numba_float32(benchmark):
    theta = init_population(TUTORIAL, N_NETS, seed=0, dtype=np.float32)
    numba_train(theta[:, :64], TUTORIAL, XOR.X, XOR.Y, 2)
    benchmark(numba_train, theta, TUTORIAL, XOR.X, XOR.Y, EPOCHS["numba"])
    record(benchmark, "numba-float32", N_NETS, EPOCHS["numba"])


# ------------------------------------------------------------------------------ scaling


@pytest.mark.parametrize(
    "n_nets",
    # a million nets take ten seconds untimed: an integration test in plain pytest
    [pytest.param(n, marks=pytest.mark.slow) if n >= 1_000_000 else n for n in SIZES],
)
def test_population_size(benchmark, n_nets):
    benchmark.group = "numba 2-4-1 by population size"
    n_epochs = 10_000 if n_nets == 1 else 100
    theta = init_population(TUTORIAL, n_nets, seed=0)
    numba_train(theta[:, :1], TUTORIAL, XOR.X, XOR.Y, 2)
    benchmark.pedantic(numba_train, (theta, TUTORIAL, XOR.X, XOR.Y, n_epochs),
                       rounds=3 if n_nets >= 100_000 else 10)  # fmt: skip
    record(benchmark, f"numba-{n_nets}", n_nets, n_epochs)


@pytest.mark.benchmark(group="numba 2-4-1 by thread count")
@pytest.mark.parametrize("threads", [1, 2])
def test_threads(benchmark, threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"numba has {numba.config.NUMBA_NUM_THREADS} thread(s) on this machine")
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        numba_train(theta[:, :64], TUTORIAL, XOR.X, XOR.Y, 2)
        benchmark(numba_train, theta, TUTORIAL, XOR.X, XOR.Y, EPOCHS["numba"])
    finally:
        numba.set_num_threads(before)
    record(benchmark, f"numba-{threads}-threads", N_NETS, EPOCHS["numba"])


@pytest.mark.benchmark(group="numba early stopping, 10,000-epoch budget")
@pytest.mark.parametrize("early_stop", [True, False], ids=["early-stop", "full-budget"])
def test_early_stopping(benchmark, early_stop):
    # 99% of the nets converge by epoch 500 (lr 3); 1% cannot (lr 0.001) and use the budget
    spec = NetSpec((2, 4, 1))
    theta = init_population(spec, N_NETS, seed=0, init="xavier_uniform")
    lr = np.where(np.arange(N_NETS) % 100 == 0, 0.001, 3.0)
    kernels = backend("numba")
    kernels.train_population(theta[:, :64], spec, XOR.X, XOR.Y, lr[:64], 2)
    result = benchmark.pedantic(kernels.train_population,
                                (theta, spec, XOR.X, XOR.Y, lr, 10_000),
                                {"early_stop": early_stop}, rounds=3)  # fmt: skip
    done_by_500 = float(np.mean((result.epochs_to_converge >= 0)
                                & (result.epochs_to_converge <= 500)))  # fmt: skip
    record(benchmark, f"numba-{'early-stop' if early_stop else 'full-budget'}", N_NETS, 10_000,
           converged_by_500=done_by_500)  # fmt: skip


@pytest.mark.slow  # cold compiles of the register tiles for each shape
@pytest.mark.parametrize("shape", list(WIDE))
@pytest.mark.parametrize("impl", ["numba", "jax"])
def test_wider_and_deeper(benchmark, shape, impl):
    benchmark.group = f"train {shape}, float64"
    spec = WIDE[shape]
    X, Y = data_for(spec)
    theta = init_population(spec, N_NETS, seed=0, init="xavier_normal")
    if impl == "jax":
        pytest.importorskip("jax", reason="JAX is not installed: pip install -e '.[peers]'")
        trainer = peers.jax_trainer(spec, WIDE_EPOCHS, 0.5)
        params = peers.jax_params(theta, spec)
        peers.jax_run(trainer, params, X, Y)
        benchmark(peers.jax_run, trainer, params, X, Y)
    else:
        numba_train(theta[:, :64], spec, X, Y, 2)
        benchmark(numba_train, theta, spec, X, Y, WIDE_EPOCHS)
    record(benchmark, f"{impl}-{shape}", N_NETS, WIDE_EPOCHS)


# ---------------------------------------------------------------------- memory, start-up

# Peak resident memory of this process alone: VmHWM belongs to the process's own address space.
# (ru_maxrss would not do: Linux carries the forking parent's peak across exec into it.)
_PEAK_RSS = """
import sys, numpy as np
from backprop_bench.kernels import NetSpec, Optimizer, backend, get_problem, init_population
spec, xor = NetSpec((2, 4, 1)), get_problem("xor")
theta = init_population(spec, 1_000_000, seed=0)
backend("numba").train_population(theta, spec, xor.X, xor.Y, 0.5, 10,
                                  optimizer=Optimizer(sys.argv[1]), early_stop=False)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) * 1024)
"""


@pytest.mark.slow  # a fresh process training a million nets, twice
@pytest.mark.benchmark(group="peak memory, 1,000,000 nets of 2-4-1 (one process each)")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_peak_memory(benchmark, optimizer):
    def run():
        out = subprocess.run([sys.executable, "-c", _PEAK_RSS, optimizer], check=True,
                             capture_output=True, text=True)  # fmt: skip
        return int(out.stdout.strip().splitlines()[-1])

    peak = benchmark.pedantic(run, rounds=1)
    benchmark.extra_info.update(impl=f"memory-{optimizer}", peak_rss_gib=peak / 2**30)


@pytest.mark.slow  # fresh processes
@pytest.mark.benchmark(group="start-up: a fresh backprop-bench train process")
def test_start_up(benchmark):
    command = [sys.executable, "-m", "backprop_bench", "train", "--epochs", "1", "--json"]
    subprocess.run(command, check=True, capture_output=True)  # the first run fills the caches

    def run():
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    doc = benchmark.pedantic(run, rounds=3)
    assert doc["outcome"]["epochs_trained"] == 1
    benchmark.extra_info.update(impl="start-up")


# -------------------------------------------------------------------- single passes, steps


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("kernel", ["forward", "backward"])
def test_pass(benchmark, name, kernel):
    benchmark.group = f"{kernel} 2-4-1 xor, {N_NETS} nets"
    kernels = backend(name)
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    fn = getattr(kernels, kernel)
    args = (theta, TUTORIAL, XOR.X) + ((XOR.Y,) if kernel == "backward" else ())
    fn(theta[:, :2], *args[1:])  # compile
    benchmark(fn, *args)
    record(benchmark, f"{name}-{kernel}", N_NETS, 1)


@pytest.mark.benchmark(group="optimizer step, 17 x 65536")
@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_adam_step(benchmark, name):
    kernels = backend(name)
    rng = np.random.default_rng(0)
    theta, grad = rng.normal(size=(2, 17, 65536))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    kernels.adam_step(theta[:, :2].copy(), grad[:, :2].copy(), m[:, :2].copy(), v[:, :2].copy(),
                      1, 0.01)  # fmt: skip
    benchmark(kernels.adam_step, theta, grad, m, v, 1, 0.01)
    record(benchmark, f"{name}-adam", 65536, 1)


# ------------------------------------------------------------- per-pattern (online) updates

PER_PATTERN_EPOCHS = 50


@pytest.mark.benchmark(group="train 2-4-1 xor, float64, per-pattern updates")
def test_numba_per_pattern(benchmark):
    """One step per pattern, in each net's own order (kernels/numba_general.py)."""
    theta = init_population(TUTORIAL, N_NETS, seed=0)
    numba_train(theta[:, :64], TUTORIAL, XOR.X, XOR.Y, 2, batch_size=1)  # compile
    result = benchmark(numba_train, theta, TUTORIAL, XOR.X, XOR.Y, PER_PATTERN_EPOCHS,
                       batch_size=1)  # fmt: skip
    assert (result.epochs_trained == PER_PATTERN_EPOCHS).all()
    record(benchmark, "numba-per-pattern", N_NETS, PER_PATTERN_EPOCHS)


# ------------------------------------------------- batch norm, dropout and weight decay

REGULARISED = {
    "batchnorm": (NetSpec((2, 4, 1), batchnorm=True), Optimizer()),
    "dropout": (NetSpec((2, 4, 1), dropout=0.1), Optimizer()),
    "weight-decay": (TUTORIAL, Optimizer(weight_decay=1e-4)),
    "adamw": (TUTORIAL, Optimizer("adamw", weight_decay=1e-2)),
    "all": (NetSpec((2, 4, 1), batchnorm=True, dropout=0.1), Optimizer(weight_decay=1e-4)),
}
REGULARISED_EPOCHS = 200


# cold numba compiles of its own kernels (20-45 s on a clean checkout): an integration test,
# run by `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
@pytest.mark.benchmark(group="train 2-4-1 xor with options, numba float64")
@pytest.mark.parametrize("option", list(REGULARISED))
def test_fused_training_with_options(benchmark, option):
    # any option on routes training to kernels/numba_regularised.py (one net per thread, no lanes)
    spec, optimizer = REGULARISED[option]
    theta = init_population(spec, N_NETS, seed=0)
    numba_train(theta[:, :64], spec, XOR.X, XOR.Y, 2, optimizer=optimizer)  # compile
    result = benchmark(numba_train, theta, spec, XOR.X, XOR.Y, REGULARISED_EPOCHS,
                       optimizer=optimizer)  # fmt: skip
    assert (result.epochs_trained == REGULARISED_EPOCHS).all()
    record(benchmark, f"numba-{option}", N_NETS, REGULARISED_EPOCHS)
