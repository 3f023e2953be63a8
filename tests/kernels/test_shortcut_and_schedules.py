"""Shortcut connections and per-pattern/minibatch updates: both backends against a scalar
reference (tests/kernels/scalar_reference.py), against each other, and the identity promises
(a net's pattern orders and results do not depend on the population, shard or thread count)."""

import numba
import numpy as np
import pytest
from backprop_bench.kernels import (
    Criterion,
    NetSpec,
    Optimizer,
    get_problem,
    init_population,
    schedules,
    streams,
)
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels.numba_backend import train_population as nb_train

from . import scalar_reference as ref
from .test_training import TRAINED_ATOL, TRAINED_RTOL, assert_same_outcomes

XOR = get_problem("xor")
PARITY3 = get_problem("parity3")
RHW = NetSpec((2, 1, 1), shortcut=True)
DEEP = NetSpec((3, 3, 2, 1), shortcut=True)
# One pattern's forward and backward pass: a handful of roundings of O(1) numbers, summed in
# another order by the kernels than by the scalar loops: agreement to a few ulps.
PASS_RTOL = 1e-12


def test_shortcut_weights_come_after_the_layered_ones():
    plain = NetSpec((3, 3, 2, 1))
    assert RHW.n_params == 7  # 2 + 1 hidden, 1 + 1 output, 2 input-to-output
    assert DEEP.n_params == plain.n_params + 3 + 3
    np.testing.assert_array_equal(DEEP.offsets(), plain.offsets())
    np.testing.assert_array_equal(DEEP.shortcut_offsets(), [plain.n_params, plain.n_params + 3])
    assert DEEP.output_fan_in == 2 + 3 + 3
    assert NetSpec((2, 4, 1)).shortcut_sources() == ()
    assert "with shortcuts" in RHW.describe() and "shortcut" not in plain.describe()


def test_shortcut_init_keeps_the_hidden_draws_and_scales_the_output_by_its_fan_in():
    plain, short = NetSpec((2, 4, 1)), NetSpec((2, 4, 1), shortcut=True)
    a = init_population(plain, 6, seed=3, init="he_uniform")
    b = init_population(short, 6, seed=3, init="he_uniform")
    np.testing.assert_array_equal(b[:12], a[:12])  # hidden layer: the same numbers
    # output weights: the same draws, scaled by sqrt(6 / 6) instead of sqrt(6 / 4)
    np.testing.assert_allclose(b[12:16], a[12:16] * np.sqrt(4 / 6), rtol=1e-15)
    assert (np.abs(b[17:]) <= 1.0).all() and (b[17:] != 0).all()
    with pytest.raises(ValueError, match="need a hidden layer"):
        NetSpec((2, 1), shortcut=True)


@pytest.mark.parametrize("spec, problem", [(RHW, XOR), (DEEP, PARITY3),
                                           (NetSpec((2, 3, 1), "sigmoid", "sigmoid", "mse",
                                                    "sum", True), XOR)])  # fmt: skip
def test_shortcut_passes_match_the_scalar_reference(kernels, spec, problem):
    theta = init_population(spec, 3, seed=2, init="uniform:2")
    grads = kernels.backward(theta, spec, problem.X, problem.Y).grad
    losses = kernels.loss(theta, spec, problem.X, problem.Y)
    outputs = kernels.forward(theta, spec, problem.X).a[-1]
    for k in range(theta.shape[1]):
        args = (problem.X.tolist(), problem.Y.tolist(), theta[:, k], spec.layers, True, spec.loss,
                spec.reduction)  # fmt: skip
        np.testing.assert_allclose(grads[:, k], ref.gradient(*args), PASS_RTOL, 1e-15)
        np.testing.assert_allclose(losses[k], ref.total_loss(*args), PASS_RTOL)
        W, b, S = ref.unpack(theta[:, k], spec.layers, True)
        for s, x in enumerate(problem.X.tolist()):
            np.testing.assert_allclose(outputs[s, :, k], ref.forward(x, W, b, S)[0][-1], PASS_RTOL)


@pytest.mark.parametrize(
    "spec, batch_size",
    [(RHW, 1), (NetSpec((2, 4, 1)), 1), (RHW, None), (NetSpec((2, 3, 1), shortcut=True), 3)],
    ids=["rhw-per-pattern", "tutorial-per-pattern", "rhw-full-batch", "minibatch-3-of-4"],
)
def test_training_matches_the_scalar_per_pattern_loop(kernels, spec, batch_size):
    n_epochs, lr = 150, 0.5
    theta = init_population(spec, 3, seed=4, init="uniform:1")
    keys = streams.net_keys(9, 40, 3)
    result = kernels.train_population(theta, spec, XOR.X, XOR.Y, lr, n_epochs, early_stop=False,
                                      batch_size=batch_size, keys=keys)  # fmt: skip
    for k in range(3):
        expected = ref.train(XOR.X.tolist(), XOR.Y.tolist(), theta[:, k], spec.layers,
                             spec.shortcut, spec.loss, lr, n_epochs, batch_size or 4, keys[k])
        np.testing.assert_allclose(result.theta[:, k], expected, TRAINED_RTOL, TRAINED_ATOL)
    assert (result.epochs_trained == n_epochs).all()


@pytest.mark.parametrize(
    "spec, optimizer, batch_size, n_epochs, lr",
    # rates low enough to stay off chaotic paths: per-pattern steps with momentum 0.9 at lr 2
    # amplify rounding until two backends' nets converge a hundred epochs apart
    [
        (RHW, Optimizer("sgd"), None, 2000, [0.5, 2.0]),
        (RHW, Optimizer("momentum"), 1, 1000, [0.1, 0.5]),
        (NetSpec((2, 4, 1)), Optimizer("sgd"), 1, 1000, [0.5, 2.0]),
        (NetSpec((2, 3, 1), loss="mse", shortcut=True), Optimizer("adam"), 3, 300, [0.5, 2.0]),
        (NetSpec((2, 3, 2, 1), "tanh", loss="mse", shortcut=True), Optimizer("sgd"), 3, 300,
         [0.5, 2.0]),
        (NetSpec((2, 3, 2, 1), reduction="sum", shortcut=True), Optimizer("momentum"), 2, 300,
         [0.1, 0.5]),
    ],
    ids=["rhw-full", "rhw-online-momentum", "tutorial-online", "adam-minibatch",
         "tanh-deep-minibatch", "sum-minibatch"],  # fmt: skip
)
def test_numba_matches_numpy(spec, optimizer, batch_size, n_epochs, lr):
    theta = np.tile(init_population(spec, 16, seed=1, init="uniform:1"), 2)
    lrs = np.repeat(lr, 16)
    args = (theta, spec, XOR.X, XOR.Y, lrs, n_epochs)
    options = dict(optimizer=optimizer, record_every=100, batch_size=batch_size,
                   keys=streams.net_keys(3, 0, 32))  # fmt: skip
    reference = npb.train_population(*args, **options)
    result = nb_train(*args, **options)
    assert_same_outcomes(result, reference)
    for name in ("loss", "accuracy", "grad_norm", "param_norm"):
        np.testing.assert_allclose(getattr(result.history, name), getattr(reference.history, name),
                                   TRAINED_RTOL, 1e-14)  # fmt: skip


def test_general_kernel_is_bitwise_identical_for_1_and_2_threads(numba_threads):
    if numba_threads < 2:
        pytest.skip("numba was started with one thread (NUMBA_NUM_THREADS=1 or a 1-core machine)")
    theta = init_population(RHW, 300, seed=1, init="uniform:1")
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        runs.append(nb_train(theta, RHW, XOR.X, XOR.Y, 0.7, 500, record_every=50, batch_size=1))
    assert_same_outcomes(runs[1], runs[0], exact_params=True)
    np.testing.assert_array_equal(runs[1].history.param_norm, runs[0].history.param_norm)


def test_a_net_trains_the_same_in_any_shard(kernels):
    """Nets 5..9 of seed 7 trained as a shard of their own, with their keys, equal the same nets
    inside a population of 10: orders follow the net, not its column."""
    spec, seed = RHW, 7
    whole_theta = init_population(spec, 10, seed, "uniform:1")
    whole = kernels.train_population(whole_theta, spec, XOR.X, XOR.Y, 0.5, 300, batch_size=1,
                                     keys=streams.net_keys(seed, 0, 10))  # fmt: skip
    part_theta = init_population(spec, 5, seed, "uniform:1", first_net=5)
    part = kernels.train_population(part_theta, spec, XOR.X, XOR.Y, 0.5, 300, batch_size=1,
                                    keys=streams.net_keys(seed, 5, 5))  # fmt: skip
    np.testing.assert_array_equal(part.epochs_to_converge, whole.epochs_to_converge[5:])
    if kernels is npb:
        np.testing.assert_allclose(part.theta, whole.theta[:, 5:], TRAINED_RTOL, TRAINED_ATOL)
    else:
        np.testing.assert_array_equal(part.theta, whole.theta[:, 5:])


def test_orders_of_a_population_are_each_nets_own_permutation():
    keys = streams.net_keys(11, 1000, 20)
    for n in (1, 2, 4, 8, 13):
        for epoch in (0, 5):
            order = schedules.orders(keys, epoch, n)
            for k in range(20):
                np.testing.assert_array_equal(order[k], streams.permutation(keys[k], epoch, n))
    assert schedules.batch_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert schedules.batch_bounds(4, 8) == [(0, 4)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": 2.5}, "batch_size must be None .full batch. or a positive integer"),
        ({"batch_size": True}, "batch_size must be None"),
        ({"keys": np.zeros(3, dtype=np.int64)}, r"keys must be a uint64 array"),
        ({"keys": np.zeros(2, dtype=np.uint64)}, r"= \(3,\)"),
    ],
)
def test_bad_schedule_arguments(kernels, kwargs, message):
    theta = init_population(RHW, 3, seed=0)
    with pytest.raises(ValueError, match=message):
        kernels.train_population(theta, RHW, XOR.X, XOR.Y, 0.5, 5, **kwargs)


# cold numba compiles (10-25 s on a clean checkout): an integration test, run by
# `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_numba_per_layer_passes_of_a_shortcut_net_match_numpy():
    from backprop_bench.kernels import numba_backend as nbb

    spec = NetSpec((3, 4, 3, 2), "tanh", loss="mse", shortcut=True)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3)), (rng.random((5, 2)) < 0.5).astype(float)
    theta = init_population(spec, 3, 0, "normal:0.7")
    expected, got = (k.backward(theta, spec, X, Y, per_layer=True) for k in (npb, nbb))
    for want, have in zip(expected.dz + expected.da, got.dz + got.da, strict=True):
        np.testing.assert_allclose(have, want, PASS_RTOL, 1e-15)
    for want, have in zip(npb.forward(theta, spec, X).a, nbb.forward(theta, spec, X).a,
                          strict=True):  # fmt: skip
        np.testing.assert_allclose(have, want, PASS_RTOL, 1e-15)


@pytest.mark.parametrize("criterion", [Criterion(max_error=None, rms_below=0.1),
                                       Criterion(tss_below=0.05)], ids=["rms", "tss+tolerance"])
def test_total_error_rules_and_the_failure_analysis_with_schedules(criterion):
    """The per-pattern and shortcut paths stop by the RMS and TSS rules and report the failure
    analysis as the full-batch path does, both backends alike."""
    theta = init_population(RHW, 16, seed=2, init="uniform:1")
    options = dict(criterion=criterion, batch_size=1, keys=streams.net_keys(2, 0, 16))
    reference = npb.train_population(theta, RHW, XOR.X, XOR.Y, 0.5, 800, **options)
    result = nb_train(theta, RHW, XOR.X, XOR.Y, 0.5, 800, **options)
    assert_same_outcomes(result, reference)
    assert (reference.epochs_to_converge >= 0).any()
    for name in ("outputs", "outputs_right", "saturated_units"):
        np.testing.assert_allclose(getattr(result.analysis, name),
                                   getattr(reference.analysis, name), TRAINED_RTOL)  # fmt: skip
