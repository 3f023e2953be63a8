"""Kernel timings with pytest-benchmark (``pytest --benchmark``; plain ``pytest`` runs each once).

Throughput is recorded as net-epochs per second in ``extra_info``, next to the problem sizes, so
saved runs can be compared as ratios on the same machine. JIT compilation is warmed up first.
"""

import numpy as np
import pytest

from kernels import NetSpec, backend, get_problem, init_population
from tests.kernels import tutorial

XOR = get_problem("xor")
TUTORIAL = NetSpec((2, 4, 1))
# Sizes keep an untimed run (plain pytest) around a second in all.
FUSED_NETS = 4096
FUSED_EPOCHS = {"numpy": 100, "numba": 500}
PASS_NETS = 4096


def record(benchmark, n_nets, n_epochs, **sizes):
    benchmark.extra_info.update(n_nets=n_nets, n_epochs=n_epochs, spec="2-4-1", **sizes)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.min > 0:
        benchmark.extra_info["net_epochs_per_second"] = n_nets * n_epochs / stats.stats.min


@pytest.mark.benchmark(group="fused training 2-4-1 xor")
def test_tutorial_one_net_loop(benchmark):
    theta = init_population(TUTORIAL, 1, seed=0)[:, 0]
    n_epochs = 1000
    benchmark(tutorial.train, XOR.X, XOR.Y, theta, 0.5, n_epochs)
    record(benchmark, 1, n_epochs)


@pytest.mark.benchmark(group="fused training 2-4-1 xor")
@pytest.mark.parametrize("name", ["numpy", "numba"])
def test_fused_training(benchmark, name):
    kernels = backend(name)
    theta = init_population(TUTORIAL, FUSED_NETS, seed=0)
    n_epochs = FUSED_EPOCHS[name]
    kernels.train_population(theta[:, :2], TUTORIAL, XOR.X, XOR.Y, 0.5, 2)  # compile
    result = benchmark(kernels.train_population, theta, TUTORIAL, XOR.X, XOR.Y, 0.5, n_epochs,
                       early_stop=False)  # fmt: skip
    assert (result.epochs_trained == n_epochs).all()
    record(benchmark, FUSED_NETS, n_epochs)


@pytest.mark.parametrize("name", ["numpy", "numba"])
@pytest.mark.parametrize("kernel", ["forward", "backward"])
def test_pass(benchmark, name, kernel):
    benchmark.group = f"{kernel} 2-4-1 xor, {PASS_NETS} nets"
    kernels = backend(name)
    theta = init_population(TUTORIAL, PASS_NETS, seed=0)
    fn = getattr(kernels, kernel)
    args = (theta, TUTORIAL, XOR.X) + ((XOR.Y,) if kernel == "backward" else ())
    fn(theta[:, :2], *args[1:])  # compile
    benchmark(fn, *args)
    record(benchmark, PASS_NETS, 1)


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
    record(benchmark, 65536, 1)
