"""The stopping rules of the training criterion: RMS error, total sum of squares, loss and the
40-20-40 rule, against a scalar transcription of the tutorial's loop, across backends and threads.
"""

import functools

import numba
import numpy as np
import pytest
from backprop_bench.kernels import Criterion, NetSpec, Optimizer, get_problem, init_population
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels.numba_backend import train_population as nb_train

from . import tutorial

XOR = get_problem("xor")
TUTORIAL = NetSpec((2, 4, 1))
N_EPOCHS = 3000


def scalar_errors(column, lr, n_epochs):
    """Per epoch of the tutorial's loop, before its update: loss, largest |a - y|, TSS and RMS
    error, each written out from its definition (E = sum (a - y)^2, RMS = sqrt(E / 4))."""
    W1, b1, W2, b2 = tutorial.unpack(column)
    rows = []
    for _ in range(n_epochs + 1):
        z1, a1, z2, a2 = tutorial.forward(XOR.X, W1, b1, W2, b2)
        squared = 0.0
        worst = 0.0
        for s in range(4):
            diff = float(a2[s, 0]) - float(XOR.Y[s, 0])
            squared += diff * diff
            worst = max(worst, abs(diff))
        rows.append((tutorial.compute_loss(XOR.Y, z2), worst, squared, (squared / 4) ** 0.5))
        dW1, db1, dW2, db2, *_ = tutorial.backward(XOR.X, XOR.Y, z1, a1, z2, a2, W1, W2)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return np.array(rows)


@functools.cache
def tutorial_nets(lr=0.5, seed=12, n_nets=3):
    """Initial parameters of a few tutorial nets and the scalar loop's errors for each."""
    theta = init_population(TUTORIAL, n_nets, seed=seed)
    return theta, [scalar_errors(theta[:, k], lr, N_EPOCHS) for k in range(n_nets)]


def first_epoch(held):
    hits = np.flatnonzero(held)
    return int(hits[0]) if hits.size else -1


RULES = {
    "rms": (Criterion(max_error=None, rms_below=0.15), lambda e: e[:, 3] < 0.15),
    "tss": (Criterion(max_error=None, tss_below=0.1), lambda e: e[:, 2] < 0.1),
    "loss": (Criterion(max_error=None, loss_below=0.1), lambda e: e[:, 0] < 0.1),
    "40-20-40 and rms": (
        Criterion(max_error=0.4, rms_below=0.3),
        lambda e: (e[:, 1] < 0.4) & (e[:, 3] < 0.3),
    ),
    "tolerance 0.1": (Criterion(max_error=0.1), lambda e: e[:, 1] < 0.1),
}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_stops_where_the_scalar_loop_first_meets_it(kernels, rule):
    criterion, held = RULES[rule]
    theta, errors = tutorial_nets()
    result = kernels.train_population(
        theta, TUTORIAL, XOR.X, XOR.Y, 0.5, N_EPOCHS, criterion=criterion
    )
    expected = [first_epoch(held(e)) for e in errors]
    assert min(expected) > 0  # the rule is met during training, not at the start or never
    np.testing.assert_array_equal(result.epochs_to_converge, expected)
    np.testing.assert_array_equal(result.epochs_trained, expected)  # early stop, by default


def test_the_backends_agree_on_every_rule_with_sum_reduction_mse_and_momentum():
    spec = NetSpec((2, 2, 1), loss="mse", reduction="sum")
    theta = init_population(spec, 200, seed=5, init="uniform:1")
    momentum = Optimizer("momentum", momentum=0.9)
    for criterion, _ in RULES.values():
        kwargs = dict(optimizer=momentum, criterion=criterion, record_every=50)
        a = npb.train_population(theta, spec, XOR.X, XOR.Y, 0.5, 1500, **kwargs)
        b = nb_train(theta, spec, XOR.X, XOR.Y, 0.5, 1500, **kwargs)
        np.testing.assert_array_equal(a.status, b.status)
        np.testing.assert_array_equal(a.epochs_to_converge, b.epochs_to_converge)
        assert 0 < (a.epochs_to_converge >= 0).sum() < 200  # some nets meet it, some do not


@pytest.mark.parametrize(
    "n_nets, n_epochs", [(64, 400), (2048, 600)], ids=["lane loops", "fused pass"]
)
def test_squared_error_nets_diverge_and_converge_where_the_numpy_backend_says(n_nets, n_epochs):
    """The squared error's loss is exact without its log terms, so only the nets whose decisions
    could change go through them each epoch (the cross-entropy's way), not every net: the same
    epochs of divergence and convergence as the NumPy backend, which decides every net every
    epoch, on the lane loops and on the fused pass (2,048 x 600 epochs is enough work for it)."""
    spec = NetSpec((2, 4, 1), loss="mse")
    theta = init_population(spec, n_nets, seed=3, init="xavier_normal")
    kwargs = dict(criterion=Criterion(divergence_factor=1.5), early_stop=True)
    a = npb.train_population(theta, spec, XOR.X, XOR.Y, 30.0, n_epochs, **kwargs)
    b = nb_train(theta, spec, XOR.X, XOR.Y, 30.0, n_epochs, **kwargs)
    for name in ("status", "epochs_trained", "epochs_to_converge", "first_full_accuracy"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # the backends round otherwise, and at this learning rate their trajectories part: by up to
    # 1e-8 of a net's loss where a vector holds 8 lanes, by 1.5e-6 (one net of 2,048) on an AVX2
    # core, whose fused pass takes 4 lanes a vector; a loss read one epoch off moves by 9.7e-6
    # of it or more (the 1,791 nets that did not diverge; by 0.13 in the median)
    np.testing.assert_allclose(b.final_loss, a.final_loss, rtol=4e-6)
    assert len(set(b.status.tolist())) == 3  # some diverge, some converge, some do neither


def test_squared_error_rules_are_bitwise_the_same_for_1_and_2_threads(numba_threads):
    if numba_threads < 2:
        pytest.skip("numba was started with one thread (NUMBA_NUM_THREADS=1 or a 1-core machine)")
    theta = init_population(TUTORIAL, 300, seed=4)
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        runs.append(nb_train(theta, TUTORIAL, XOR.X, XOR.Y, 0.7, 800,
                             criterion=Criterion(max_error=None, rms_below=0.2)))  # fmt: skip
    np.testing.assert_array_equal(runs[0].epochs_to_converge, runs[1].epochs_to_converge)
    np.testing.assert_array_equal(runs[0].theta, runs[1].theta)


def test_the_squared_error_limit():
    assert Criterion(rms_below=0.1).squared_error_limit(8) == pytest.approx(0.08)
    assert Criterion(tss_below=0.04).squared_error_limit(8) == 0.04
    assert Criterion().squared_error_limit(8) == np.inf
    assert Criterion(0.4, rms_below=0.1).describe() == (
        "every output within 0.4 of its target and RMS error below 0.1"
    )
    assert Criterion(None, tss_below=0.04).describe() == "total sum of squares below 0.04"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_error=None), "a criterion needs max_error, or one of loss_below"),
        (dict(rms_below=0.1, tss_below=0.1), "rms_below and tss_below both bound the total"),
        (dict(loss_below=0.1, rms_below=0.1), r"give one of them \(alone or with max_error\)"),
        (dict(rms_below=0.0), "rms_below must be a positive finite number"),
        (dict(tss_below=float("nan")), "tss_below must be a positive finite number"),
    ],
)
def test_bad_criteria_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Criterion(**kwargs)
