"""The failure analysis every trained population carries: on hand-built nets whose units are
known, on real failed nets of an RHW-style XOR sweep, and the same in both backends."""

import numba
import numpy as np
import pytest
from backprop_bench.kernels import (
    NetSpec,
    Optimizer,
    Status,
    failure,
    get_problem,
    init_population,
    numba_backend,
)
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels.numba_backend import train_population as nb_train
from backprop_bench.kernels.training import TrainResult

XOR = get_problem("xor")
SMALL = NetSpec((2, 2, 1))
# Rumelhart, Hinton & Williams' XOR setup: 2-2-1 sigmoid net, squared error summed over the
# patterns, lr 0.5 with momentum 0.9, small uniform initial weights.
RHW = NetSpec((2, 2, 1), loss="mse", reduction="sum")
RHW_EPOCHS = 3000
MOMENTUM = Optimizer("momentum", momentum=0.9)
# the numba backend's analysis runs its training kernel's forward pass (its own exponential,
# fused multiply-adds): outputs a few ulps from the oracle's (float64; float32 in FORWARD32_RTOL)
FORWARD_RTOL = 1e-13
FORWARD32_RTOL = 1e-5


def hand_built(w_first, b_first):
    """A 2-2-1 net whose first hidden unit has weights ``w_first`` and bias ``b_first``; the
    second hidden unit and the output are 0 (theta layout of kernels.spec)."""
    theta = np.zeros((SMALL.n_params, 1))
    W, b = SMALL.layer_views(theta)[0]
    W[:, 0, 0] = w_first
    b[0, 0] = b_first
    return theta


def analyse_one(theta):
    result = TrainResult(theta, np.zeros(1, np.int8), *(np.full(1, -1),) * 3,
                         *(np.full(1, 0.5),) * 3)  # fmt: skip
    return failure.analyse(result, SMALL, XOR.X, XOR.Y, 100, npb.forward)


@pytest.mark.parametrize(
    "w_first, b_first, saturated, flat",
    [
        # z = 20 x1 - 10: -10 on patterns 00, 01 and +10 on 10, 11: pinned on all four
        ((20.0, 0.0), -10.0, 1, 1),
        # z = 20 x1 + 20 x2 - 10: -10, 10, 10, 30: pinned on all four as well
        ((20.0, 20.0), -10.0, 1, 1),
        # z = 20 x1 - 1: -1 on 00, 01 (sigmoid' = 0.197), 19 on 10, 11 (flat): half the patterns
        ((20.0, 0.0), -1.0, 1, 0),
        # z = 20 x1 + 20 x2 - 21: -21, -1, -1, 19: flat on 00 and 11 only, half again
        ((20.0, 20.0), -21.0, 1, 0),
        # z = 8 x1 - 3 x2: 0, -3, 8, 5: flat (sigmoid' < 1% of 1/4) only at 8, one in four
        ((8.0, -3.0), 0.0, 0, 0),
    ],
)
def test_saturated_and_flat_units_of_hand_built_nets(w_first, b_first, saturated, flat):
    # the second hidden unit has z = 0 on every pattern (sigmoid' = 1/4, its maximum): never flat
    analysis = analyse_one(hand_built(w_first, b_first))
    assert analysis.saturated_units[0] == saturated
    assert analysis.flat_units[0] == flat
    # the output unit's weights are 0: every output is exactly 0.5, near half and undecided
    np.testing.assert_array_equal(analysis.outputs[:, 0, 0], 0.5)
    assert analysis.outputs_near_half[0] == 4


@pytest.fixture(scope="module")
def rhw_sweep():
    theta = init_population(RHW, 500, seed=0, init="uniform:0.5")
    return theta, nb_train(theta, RHW, XOR.X, XOR.Y, 0.5, RHW_EPOCHS,
                           optimizer=MOMENTUM, record_every=30)  # fmt: skip


def test_the_saturation_rule_sees_the_failed_nets_of_an_rhw_sweep(rhw_sweep):
    _, result = rhw_sweep
    a = result.analysis
    failed = result.status != Status.CONVERGED
    assert failed.sum() >= 10  # local minima of the 2-2-1 net, a few percent of the nets
    assert (result.status != Status.DIVERGED).all()
    # the classic signature: two outputs stuck at 0.5, the other two right, the weights still
    # growing, and a hidden unit pinned at 0 or 1 on half of the patterns
    assert (a.outputs_near_half[failed] == 2).mean() > 0.8
    assert (a.outputs_right[failed] >= 2).all()
    assert (a.weight_growth[failed] > failure.GROWTH_FLAG).all()
    assert (a.saturated_units[failed] > 0).mean() > 0.95
    assert (a.saturated_units[~failed] > 0).mean() < 0.05
    # the earlier rule (flat on every pattern) saw none of them: why it was redefined
    assert (a.flat_units[failed] == 0).all()
    assert (a.outcome[failed] == failure.PLATEAU).all()
    assert (a.outcome[~failed] == failure.CONVERGED).all()


def test_both_backends_give_the_same_analysis(rhw_sweep):
    theta, numba_result = rhw_sweep
    cols = np.r_[0:20, np.flatnonzero(numba_result.status != Status.CONVERGED)[:10]]
    numba_result = nb_train(theta[:, cols], RHW, XOR.X, XOR.Y, 0.5, RHW_EPOCHS,
                            optimizer=MOMENTUM, record_every=30)  # fmt: skip
    numpy_result = npb.train_population(theta[:, cols], RHW, XOR.X, XOR.Y, 0.5, RHW_EPOCHS,
                                        optimizer=MOMENTUM,
                                        record_every=30)  # fmt: skip
    a, b = numba_result.analysis, numpy_result.analysis
    for name in ("outcome", "outputs_right", "outputs_near_half", "saturated_units", "flat_units"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # trained 3,000 steps apart in each backend: equal to float64 rounding carried along
    for name in ("outputs", "param_norm", "weight_growth", "loss_drop"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12,
                                   err_msg=name)  # fmt: skip


def test_outputs_are_the_forward_pass_of_the_final_parameters(kernels):
    theta = init_population(SMALL, 40, seed=3)
    result = kernels.train_population(theta, SMALL, XOR.X, XOR.Y, 1.0, 400, record_every=10)
    # a population this small is analysed by NumPy's forward pass in both backends (larger ones
    # by the numba kernel's, held to it below)
    np.testing.assert_array_equal(
        result.analysis.outputs, npb.forward(result.theta, SMALL, XOR.X).a[-1]
    )
    np.testing.assert_array_equal(
        result.analysis.outputs_right, np.rint(result.final_accuracy * 4).astype(int)
    )


@pytest.mark.parametrize("n_epochs, record_every", [(0, 1), (2, 1), (400, 0)])
def test_without_a_last_quarter_to_judge_a_failed_net_is_undetermined(kernels, n_epochs,
                                                                      record_every):  # fmt: skip
    theta = init_population(NetSpec((2, 1)), 20, seed=1)  # no hidden layer: never converges
    result = kernels.train_population(theta, NetSpec((2, 1)), XOR.X, XOR.Y, 1.0, n_epochs,
                                      record_every=record_every)  # fmt: skip
    assert (result.analysis.outcome == failure.UNDETERMINED).all()
    assert np.isnan(result.analysis.weight_growth).all()
    assert (result.analysis.saturated_units == 0).all()  # no hidden units to saturate


# each dtype is a first compile of the summary kernel (10 to 40 s on this machine), which the
# quick suite's small populations never need: these run with the integration tests
@pytest.mark.slow
@pytest.mark.parametrize(
    "layers, activation, dtype",
    [((2, 8, 1), "relu", np.float64), ((2, 3, 1), "sigmoid", np.float64),
     ((2, 5, 4, 2), "tanh", np.float32), ((2, 4, 3, 1), "leaky_relu", np.float32),
     ((2, 6, 6, 1), "sigmoid", np.float32)],
)  # fmt: skip
def test_the_numba_backend_counts_units_by_the_numpy_rule(layers, activation, dtype,
                                                           monkeypatch):  # fmt: skip
    """Weights scaled up so that many units saturate or die; 3 hidden-layer shapes x dtypes.
    Populations this small are analysed by NumPy's forward pass unless told otherwise."""
    monkeypatch.setattr(numba_backend, "ANALYSIS_MIN_WORK", 0)
    spec = NetSpec(layers, activation)
    theta = (4 * init_population(spec, 70, seed=5, init="xavier_normal")).astype(dtype)
    Y = np.repeat(XOR.Y, layers[-1], axis=1)
    result = nb_train(theta, spec, XOR.X, Y, 0.5, 30, record_every=5)
    oracle = failure.analyse(result, spec, XOR.X.astype(dtype), Y, 30, npb.forward)
    got = result.analysis
    for name in ("saturated_units", "flat_units", "outputs_near_half", "outcome"):
        np.testing.assert_array_equal(getattr(got, name), getattr(oracle, name), err_msg=name)
    rtol = FORWARD_RTOL if dtype == np.float64 else FORWARD32_RTOL
    # below the smallest normal number the lane exponential has no relative accuracy left
    atol = np.finfo(dtype).tiny
    np.testing.assert_allclose(got.outputs, oracle.outputs, rtol=rtol, atol=atol)
    assert (got.saturated_units > 0).any() or activation == "leaky_relu"


@pytest.mark.slow
def test_the_summary_in_threads_covers_every_net_once_by_the_numpy_rule(monkeypatch):
    """Populations of several chunks are summarised in parts that threads take in turn: every
    net once, with the values of the rule above (float64, whose kernel the test above
    compiles). Trained in the fused pass, which keeps no hidden layer for the kernel's own
    summary (below), so that the summary kernel runs."""
    monkeypatch.setattr(numba_backend, "ANALYSIS_MIN_WORK", 0)
    monkeypatch.setattr(numba_backend, "FUSED_MIN_WORK", 0)
    parts = []
    kernel = numba_backend.summary_kernel

    def recorded(*args):
        parts.append(args[-2:])
        kernel(*args)

    monkeypatch.setattr(numba_backend, "summary_kernel", recorded)
    spec = NetSpec((2, 8, 1), "relu")
    theta = 4 * init_population(spec, 2100, seed=6, init="xavier_normal")
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        result = nb_train(theta, spec, XOR.X, XOR.Y, 0.5, 20)
    finally:
        numba.set_num_threads(threads)
    chunk = numba_backend.chunk_size(spec.n_layers, 4, 8, spec.n_params, 8)
    bounds = sorted(parts)
    assert len(bounds) >= min(2, numba.config.NUMBA_NUM_THREADS)
    assert [a for a, _ in bounds[1:]] == [b for _, b in bounds[:-1]]  # each chunk once
    assert bounds[0][0] == 0 and bounds[-1][1] == -(-2100 // chunk) > 1
    oracle = failure.analyse(result, spec, XOR.X, XOR.Y, 20, npb.forward)
    for name in ("saturated_units", "flat_units", "outputs_near_half", "outcome"):
        np.testing.assert_array_equal(getattr(result.analysis, name), getattr(oracle, name))
    np.testing.assert_allclose(result.analysis.outputs, oracle.outputs, rtol=FORWARD_RTOL)
    assert (result.analysis.saturated_units > 0).any()


def test_small_populations_are_analysed_by_numpy_and_large_ones_by_the_kernels(monkeypatch):
    """Which path runs, not what it computes (above and below): NumPy's forward pass and the
    summary kernel are replaced by recorders. From ANALYSIS_MIN_WORK, the lane loops' training
    kernel keeps the values itself, the fused pass leaves them to the summary kernel."""
    calls = []
    monkeypatch.setattr(numba_backend, "summary_kernel", lambda *a: calls.append("kernel"))
    numpy_forward = npb.forward
    monkeypatch.setattr(npb, "forward", lambda *a: calls.append("numpy") or numpy_forward(*a))
    theta = init_population(SMALL, 64, seed=3)
    nb_train(theta, SMALL, XOR.X, XOR.Y, 1.0, 5)
    assert calls == ["numpy"]
    monkeypatch.setattr(numba_backend, "ANALYSIS_MIN_WORK", 64 * 4 * 6)  # this job's work
    calls.clear()
    result = nb_train(theta, SMALL, XOR.X, XOR.Y, 1.0, 5)
    assert calls == [] and result.analysis.outputs.shape == (4, 1, 64)
    monkeypatch.setattr(numba_backend, "FUSED_MIN_WORK", 0)
    nb_train(theta, SMALL, XOR.X, XOR.Y, 1.0, 5)
    assert calls == ["kernel"]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_the_training_kernel_keeps_each_nets_summary_of_its_last_epoch(activation, monkeypatch):
    """Where the lane loops run, the analysis' outputs and unit counts come from the forward
    pass of the epoch each net stops in: here nets converge, diverge and run to the end (a
    range of learning rates), over several chunks, and every net's values are the NumPy
    rule's of its final parameters (the counts exactly, the outputs to the kernel's rounding)."""
    monkeypatch.setattr(numba_backend, "ANALYSIS_MIN_WORK", 0)
    spec = NetSpec((2, 6, 5, 1), activation)
    n_nets = 700  # chunks of 256 nets: the last one part full
    theta = 3 * init_population(spec, n_nets, seed=8, init="xavier_normal")
    lr = np.geomspace(0.05, 200, n_nets)
    result = nb_train(theta, spec, XOR.X, XOR.Y, lr, 300, record_every=10)
    assert len(set(result.epochs_trained)) > 10
    assert {Status.CONVERGED, Status.DIVERGED, Status.NOT_CONVERGED} <= set(result.status)
    oracle = failure.analyse(result, spec, XOR.X, XOR.Y, 300, npb.forward)
    got = result.analysis
    for name in ("saturated_units", "flat_units", "outputs_near_half", "outcome"):
        np.testing.assert_array_equal(getattr(got, name), getattr(oracle, name), err_msg=name)
    finite = np.isfinite(oracle.outputs)
    np.testing.assert_array_equal(finite, np.isfinite(got.outputs))
    # an output sigma(z) moves by |z| (1 - sigma) times z's relative rounding, which grows with
    # |z| (the two passes sum in their own orders): nets at logits of -300 differ by 1e-13
    want = oracle.outputs[finite]
    scale = np.maximum(1.0, -np.log(np.maximum(want, np.finfo(np.float64).tiny)))
    np.testing.assert_array_less(np.abs(got.outputs[finite] - want), FORWARD_RTOL * scale * want
                                 + np.finfo(np.float64).tiny)  # fmt: skip
    assert (got.saturated_units > 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_training_kernels_summary_is_the_summary_kernels_to_the_bit(dtype, monkeypatch):
    """The values the training kernel keeps as nets stop are the summary kernel's of their
    final parameters, bit for bit: the same forward pass of the same parameters."""
    monkeypatch.setattr(numba_backend, "ANALYSIS_MIN_WORK", 0)
    for layers, activation in (((2, 16, 16, 1), "tanh"), ((2, 5, 7, 3, 2), "sigmoid"),
                               ((2, 8, 2), "relu")):  # fmt: skip
        spec = NetSpec(layers, activation)
        theta = (3 * init_population(spec, 300, seed=5, init="xavier_normal")).astype(dtype)
        Y = np.repeat(XOR.Y, layers[-1], axis=1)
        result = nb_train(theta, spec, XOR.X, Y, np.geomspace(0.05, 50, 300), 60)
        assert len(set(result.epochs_trained)) > 3
        X = XOR.X.astype(dtype)
        oracle = failure.analyse(result, spec, X, Y, 60, npb.forward,
                                 summarise=numba_backend._summarise(spec, X, 300))  # fmt: skip
        for name in ("outputs", "saturated_units", "flat_units"):
            got, want = getattr(result.analysis, name), getattr(oracle, name)
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=name)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_params, n_nets", [(1, 5), (9, 1), (300, 1), (300, 2), (1377, 70)])
def test_parameter_norms_are_numpys_to_the_bit(order, dtype, n_params, n_nets):
    """The analysis sums the squares row by row (no temporaries of theta's size): the same
    bits as np.linalg.norm, which sums one column, or columns not contiguous in a row, pairwise
    instead; NaN and inf as it has them."""
    rng = np.random.default_rng(n_params * n_nets)
    theta = rng.normal(size=(n_params, n_nets)) * rng.choice([1e-3, 1.0, 1e3], (n_params, n_nets))
    theta = np.asarray(theta, dtype=dtype, order=order)
    if n_nets > 2:
        theta[0, 1], theta[-1, 2] = np.nan, np.inf
    for block in (theta, theta[:, 1:]):
        got = failure._column_norms(block)
        want = np.linalg.norm(block.astype(np.float64), axis=0)
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
