"""The strongest JAX and PyTorch formulations (``fast_peers.py``), each held to the kernel's
final parameters, then timed under ``pytest --benchmark`` (group ``peers <spec>, <dtype>``).

Plain ``pytest`` checks, small (512 nets, 10 epochs): every formulation on 2-4-1, and on the
other 2-4-1 cases (tanh, relu, Adam, float32) the two PyTorch ones that compile nothing: the
hand-written eager step, whose arithmetic (``lanes_gradients``, ``Rule``) the compiled PyTorch
step and the JAX lanes share, and the naive autograd one. The JAX formulations of those cases
compile a graph each (seconds): ``pytest -m slow``. Their compiled PyTorch step and the wider
specs compile for minutes: only ``pytest --benchmark`` (full size) runs them. The interleaved
table (ours against the best of these per spec) is ``python -m tests.benchmarks.peer_table``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from . import peer_table
from .peer_table import CASES

KEYS = list(peer_table.formulations(CASES["2-4-1"]))
SMALL_NETS, SMALL_EPOCHS = 512, 10
UNCOMPILED = ("torch-eager", "torch-naive")
VARIANTS = [name for name in CASES if name.startswith("2-4-1 ")]  # tanh, relu, adam, float32


def _settled(benchmark, *args):
    """pytest-benchmark's setup for a timed round: the pause ``peer_table`` makes before each
    timed call (``SETTLE``: PyTorch's worker threads run on for a while after a call returns,
    and slowed whatever was timed next), untimed, then the call's arguments. No pause in plain
    pytest, which runs each once, untimed."""

    def setup():
        if not benchmark.disabled:
            time.sleep(peer_table.SETTLE)
        return args, {}

    return setup


def _params():
    for name in CASES:
        for key in KEYS:
            slow = name in VARIANTS and key.startswith("jax")
            yield pytest.param(name, key, marks=pytest.mark.slow if slow else (),
                               id=f"{name}-{key}")  # fmt: skip


# torch.compile goes through torch.jit, which warns that it is deprecated
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("name", "key"), list(_params()))
def test_peer_formulation(benchmark, name, key):
    case = CASES[name]
    label, library, factory = peer_table.formulations(case, small=benchmark.disabled)[key]
    pytest.importorskip(library, reason=f"{library} is not installed: pip install -e '.[peers]'")
    cheap = name == "2-4-1" or (name in VARIANTS and (key in UNCOMPILED or key.startswith("jax")))
    if benchmark.disabled and not cheap:
        pytest.skip("compiles for minutes: timed and checked by pytest --benchmark")
    if not fast_peers_ready(library):
        pytest.skip("jax was imported before XLA_FLAGS asked for two host devices")
    n_nets = peer_table.N_NETS if not benchmark.disabled else SMALL_NETS
    n_epochs = case.n_epochs if not benchmark.disabled else SMALL_EPOCHS
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for(name, n_nets)
    reference, bound, allowed = _held_to(case, n_nets, n_epochs)
    train = factory(case, X, Y)
    got = train(theta, n_epochs)  # compiles, then checked
    assert got.dtype == theta.dtype, label
    diff, share = peer_table.agreement(got, reference, bound, allowed)
    assert share <= 1.0, f"{label}: parameters differ by {diff:.1e}, {share:.3g}x the tolerance"
    benchmark.group = f"peers {name}, {np.dtype(case.dtype).name}"
    benchmark.pedantic(train, setup=_settled(benchmark, theta, n_epochs), rounds=3)
    benchmark.extra_info.update(impl=f"peer {name} {key}", label=label, spec=name, n_nets=n_nets,
                                n_epochs=n_epochs)  # fmt: skip


@functools.cache
def _held_to(case, n_nets, n_epochs):
    """The kernel's final parameters on a case's job, each net's bound and the nets a
    formulation may leave beyond it (``peer_table.tolerance``, ``allowance``): once per case,
    not once per formulation (the NumPy twin takes 20 s on 8-32-32-1)."""
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for(None, n_nets, case)
    reference, bound = peer_table.tolerance(case, peer_table.ours(case, X, Y), theta, n_epochs)
    return reference, bound, peer_table.allowance(case, X, Y, theta, n_epochs, reference, bound)


@pytest.mark.parametrize("name", list(CASES))
def test_ours_on_the_peers_job(benchmark, name):
    """Our kernel on each case's job, beside its peers (group ``peers <spec>, <dtype>``): the
    summary of ``pytest --benchmark`` sets it against the fastest of them."""
    if benchmark.disabled:
        pytest.skip("a timing only: pytest --benchmark")
    case = CASES[name]
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for(name)
    train = peer_table.ours(case, X, Y)
    train(theta, 2)  # compile: the whole population, whose chunks take the fused pass
    benchmark.group = f"peers {name}, {np.dtype(case.dtype).name}"
    benchmark.pedantic(train, setup=_settled(benchmark, theta, case.n_epochs), rounds=3)
    benchmark.extra_info.update(impl=f"ours {name}", spec=name, n_nets=theta.shape[1],
                                n_epochs=case.n_epochs)  # fmt: skip


def test_a_wrong_step_is_caught(monkeypatch):
    """The tolerance is no blanket: Adam without its bias corrections, 10 epochs of 512 nets,
    is left far outside it (measured: 3e10 times; the right step within 3e-5 of it)."""
    pytest.importorskip("torch", reason="torch is not installed: pip install -e '.[peers]'")
    case = CASES["2-4-1 adam"]
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for("2-4-1 adam", SMALL_NETS)
    reference, bound = peer_table.tolerance(case, peer_table.ours(case, X, Y), theta,
                                            SMALL_EPOCHS)  # fmt: skip
    train = peer_table.formulations(case, small=True)["torch-eager"][2](case, X, Y)
    _, share = peer_table.agreement(train(theta, SMALL_EPOCHS), reference, bound)
    assert share <= 1.0
    monkeypatch.setattr(peer_table.fast_peers.Rule, "corrections",
                        lambda self, first, count, dtype: np.ones((count, 2), dtype=dtype))
    _, share = peer_table.agreement(train(theta, SMALL_EPOCHS), reference, bound)
    assert share > 1e3


def fast_peers_ready(library):
    if library != "jax":
        return True
    import jax

    return jax.device_count() >= 2


def test_our_timing_of_each_peers_job_runs_just_before_its_peers():
    """pytest-benchmark times tests one after another: a ratio's two timings are taken beside
    each other only if the tests run so (conftest.pytest_collection_modifyitems)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                          "no:cacheprovider", "-m", "slow or not slow", __file__],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    ids = [line.split("::", 1)[1] for line in out.splitlines() if "::" in line]
    for name in CASES:
        ours = ids.index(f"test_ours_on_the_peers_job[{name}]")
        first_peer = next(i for i, id_ in enumerate(ids)
                          if id_.startswith(f"test_peer_formulation[{name}-"))  # fmt: skip
        assert first_peer == ours + 1, (name, ids[ours - 1 : ours + 2])


# Jobs of the kernel outside CASES, one for each thing the peers take from the spec: every
# hidden activation, both losses and reductions, every optimizer they run, several outputs (the
# loss summed over them), float32, widths that are not powers of two. Small: 512 nets, 10 epochs.
OWN_JOBS = {
    "leaky_relu": {"layers": "2-4-1", "activation": "leaky_relu"},
    "mse": {"layers": "2-4-1", "loss": "mse"},
    "sum": {"layers": "2-4-1", "reduction": "sum", "lr": 0.1},
    "momentum": {"layers": "2-4-1", "optimizer": "momentum"},
    "3-8-8-2 tanh mse momentum float32": {"layers": "3-8-8-2", "activation": "tanh",
                                          "loss": "mse", "optimizer": "momentum",
                                          "dtype": "float32"},  # fmt: skip
    "4-6-3 leaky_relu sum adam": {"layers": "4-6-3", "activation": "leaky_relu",
                                  "reduction": "sum", "optimizer": "adam"},  # fmt: skip
}
JAX_KEYS = [key for key in KEYS if key.startswith("jax")]


def _own_job(job):
    case = peer_table.custom_case(n_epochs=SMALL_EPOCHS, **OWN_JOBS[job])
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for(None, SMALL_NETS, case)
    reference, bound, allowed = _held_to(case, SMALL_NETS, SMALL_EPOCHS)
    assert allowed == 0
    return case, X, Y, theta, reference, bound


def _own_params():
    for job in OWN_JOBS:
        for key in UNCOMPILED + tuple(JAX_KEYS):
            marks = pytest.mark.slow if key.startswith("jax") else ()  # a compile each
            yield pytest.param(job, key, marks=marks, id=f"{job}-{key}")


@pytest.mark.parametrize(("job", "key"), list(_own_params()))
def test_the_peers_run_every_plain_job_of_the_kernel(job, key):
    library = "jax" if key.startswith("jax") else "torch"
    pytest.importorskip(library, reason=f"{library} is not installed: pip install -e '.[peers]'")
    if not fast_peers_ready(library):
        pytest.skip("jax was imported before XLA_FLAGS asked for two host devices")
    case, X, Y, theta, reference, bound = _own_job(job)
    label, _, factory = peer_table.formulations(case, small=True, n_nets=SMALL_NETS)[key]
    got = factory(case, X, Y)(theta, SMALL_EPOCHS)
    assert got.dtype == theta.dtype, label
    diff, share = peer_table.agreement(got, reference, bound)
    assert share <= 1.0, f"{label}: parameters differ by {diff:.1e}, {share:.3g}x the tolerance"


@pytest.mark.parametrize(
    ("job", "name", "wrong"),
    [  # measured: 2.4e9 and 1.5e9 times the tolerance
        ("3-8-8-2 tanh mse momentum float32", "_scale",
         lambda spec, X: 1.0 / (X.shape[0] * spec.n_outputs)),  # the mean over outputs too
        ("leaky_relu", "LEAKY_SLOPE", 0.011),
    ],
    ids=["loss averaged over outputs", "leaky slope 0.011"],
)
def test_a_peer_that_takes_the_job_otherwise_is_caught(monkeypatch, job, name, wrong):
    pytest.importorskip("torch", reason="torch is not installed: pip install -e '.[peers]'")
    case, X, Y, theta, reference, bound = _own_job(job)
    train = peer_table.formulations(case, small=True, n_nets=SMALL_NETS)["torch-eager"][2]
    _, share = peer_table.agreement(train(case, X, Y)(theta, SMALL_EPOCHS), reference, bound)
    assert share <= 1.0
    monkeypatch.setattr(peer_table.fast_peers, name, wrong)
    _, share = peer_table.agreement(train(case, X, Y)(theta, SMALL_EPOCHS), reference, bound)
    assert share > 1e3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": "2x4x1"}, "widths joined by '-'"),
        ({"layers": "2-4-1", "activation": "swish"}, "unknown activation 'swish'"),
        ({"layers": "2-4-1", "optimizer": "adamw"}, "sgd, momentum or adam without weight decay"),
        ({"layers": "2-4-1", "dtype": "float16"}, "float64 or float32"),
        ({"layers": "2-4-1", "n_epochs": 15}, "a multiple of 10"),
        ({"layers": "2-4-1", "lr": -1.0}, "positive learning rate"),
        ({"layers": "2-4-1", "init": "glorot"}, "glorot"),
    ],
)
def test_a_job_of_ones_own_names_the_fix_for_bad_values(options, message):
    with pytest.raises(ValueError, match=message):
        peer_table.custom_case(**options)


def test_peer_table_runs_a_job_of_ones_own_and_refuses_bad_ones_without_a_traceback():
    run = [sys.executable, "-m", "tests.benchmarks.peer_table", "--layers", "2-4-1"]
    root = Path(__file__).parents[2]
    bad = subprocess.run(run + ["--activation", "swish"], capture_output=True, text=True,
                         cwd=root)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert "unknown activation 'swish'" in bad.stderr
    bad = subprocess.run(run + ["--nets", "1000"], capture_output=True, text=True, cwd=root)
    assert bad.returncode == 2 and "a multiple of 512" in bad.stderr, bad.stderr
    # argparse's own refusals too: one line, not the whole usage above it
    bad = subprocess.run(run + ["--repeats", "x"], capture_output=True, text=True, cwd=root)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "--repeats: 'x' is not a whole number" in bad.stderr and "usage:" not in bad.stderr


def test_a_few_nets_that_take_a_kink_otherwise_are_set_aside_as_the_twin_measures():
    """Float32 at a kink: a net whose unit ends an epoch within rounding of z = 0 leaves the
    trajectory in one correct formulation and not in another. Our NumPy twin, correct and
    rounding otherwise, shows how many such nets a job has; a formulation may leave twice as many
    beyond their bounds and the scatter of such counts, no more, and none where the twin leaves
    none."""
    reference = np.zeros((3, 6))
    bound = np.full(6, 1e-4)
    got = reference.copy()
    got[:, :2] = 0.03  # two nets taken off at a kink
    assert peer_table.agreement(got, reference, bound)[1] > 1.0
    assert peer_table.agreement(got, reference, bound, allowed=2)[1] == 0.0
    assert peer_table.agreement(got, reference, bound, allowed=1)[1] > 1.0
    assert peer_table.beyond(got, reference, bound) == 2
    # the twin's 0, 4 and 39 nets (measured: see peer_table) give 0, 17 and 105; the peers left
    # 1 to 5 and 55 to 86
    assert [peer_table.set_aside(n) for n in (0, 4, 39)] == [0, 17, 105]


def test_a_twin_that_disagrees_with_the_kernel_raises_rather_than_loosening_the_check():
    case = CASES["2-4-1"]
    X, Y = peer_table.data_for(case.spec)
    theta = peer_table.theta_for("2-4-1", SMALL_NETS)
    far = np.zeros(theta.shape)  # as if the kernel had ended elsewhere on every net
    with pytest.raises(RuntimeError, match="the two disagree on this job"):
        peer_table.allowance(case, X, Y, theta, SMALL_EPOCHS, far, np.full(SMALL_NETS, 1e-10))
