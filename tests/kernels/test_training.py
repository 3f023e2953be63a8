"""Fused population training of both backends: against the tutorial's loop, against each other,
and the promises of the training contract (identity, thread counts, early stop, divergence)."""

import threading
import time

import numba
import numpy as np
import pytest
from backprop_bench.kernels import (
    Criterion,
    NetSpec,
    Optimizer,
    Status,
    get_problem,
    init_population,
    numba_backend,
    numba_lanes,
)
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels.numba_backend import train_population as nb_train
from numba import types
from numba.core.registry import CPUDispatcher

from . import tutorial

XOR = get_problem("xor")
TUTORIAL = NetSpec((2, 4, 1))
# After 10,000 full-batch steps the backends and the tutorial's loop differ only by float64
# rounding (~1e-16 per operation), carried through the iteration. Measured: at most 1e-13 absolute
# on parameters of size up to ~20. The bounds allow a 1000x margin and still catch any difference
# in the math (a wrong term shifts parameters by far more than 1e-10 within a few epochs).
TRAINED_RTOL = 1e-10
TRAINED_ATOL = 1e-10


def assert_same_outcomes(result, reference, exact_params=False):
    for name in ("status", "epochs_to_converge", "first_full_accuracy", "epochs_trained"):
        np.testing.assert_array_equal(getattr(result, name), getattr(reference, name), err_msg=name)
    if exact_params:
        np.testing.assert_array_equal(result.theta, reference.theta)
        np.testing.assert_array_equal(result.final_loss, reference.final_loss)
        np.testing.assert_array_equal(result.final_grad_norm, reference.final_grad_norm)
    else:
        np.testing.assert_allclose(result.theta, reference.theta, TRAINED_RTOL, TRAINED_ATOL)
        np.testing.assert_allclose(result.final_loss, reference.final_loss, TRAINED_RTOL, 1e-14)
        np.testing.assert_allclose(result.final_grad_norm, reference.final_grad_norm,
                                   TRAINED_RTOL, 1e-14)  # fmt: skip
    np.testing.assert_array_equal(result.final_accuracy, reference.final_accuracy)


def assert_same_nets(kernels, got, expected):
    """numba computes each net alone on one thread, and the NumPy backend sums in a fixed order
    (kernels/ordered.py): the same bits whatever else runs."""
    np.testing.assert_array_equal(got, expected)


def test_both_backends_reproduce_the_tutorials_loop_over_10000_epochs(kernels):
    n_epochs, lr = 10_000, 0.5
    theta = init_population(TUTORIAL, 3, seed=2026)
    result = kernels.train_population(
        theta, TUTORIAL, XOR.X, XOR.Y, lr, n_epochs, early_stop=False, record_every=1
    )
    for k in range(3):
        final, losses = tutorial.train(XOR.X, XOR.Y, theta[:, k], lr, n_epochs)
        np.testing.assert_allclose(result.theta[:, k], final, TRAINED_RTOL, TRAINED_ATOL)
        np.testing.assert_allclose(result.history.loss[:-1, k], losses, TRAINED_RTOL, 1e-14)
    # the tutorial's claim: lr 0.5 for 10,000 epochs learns XOR
    assert (result.status == Status.CONVERGED).all()
    assert (result.final_accuracy == 1.0).all()
    assert (result.epochs_trained == n_epochs).all()


@pytest.mark.parametrize(
    "spec, optimizer, lr",
    [
        (TUTORIAL, Optimizer("sgd"), [0.05, 0.5, 2.0, 8.0, 100.0]),
        (NetSpec((2, 3, 1), "tanh", loss="mse"), Optimizer("momentum", momentum=0.9), [0.02, 0.3]),
        (NetSpec((2, 8, 1), "relu"), Optimizer("adam"), [0.01, 0.1]),
        (NetSpec((2, 4, 4, 1), "leaky_relu", reduction="sum"), Optimizer("sgd"), [0.1, 0.3]),
        # layers wide enough for the register tiles, with edges (6 and 5 are not multiples of 4);
        # rates low enough to stay off chaotic paths (lr 3 with momentum 0.9 amplifies rounding)
        (NetSpec((2, 8, 6, 5, 1), "sigmoid"), Optimizer("momentum", momentum=0.9), [0.02, 0.3]),
    ],
    ids=["sgd-tutorial", "momentum-tanh-mse", "adam-relu", "sgd-leaky-sum", "momentum-wide"],
)
def test_numba_matches_numpy(spec, optimizer, lr):
    n_per_lr = 40
    theta = np.tile(init_population(spec, n_per_lr, seed=5), len(lr))
    lrs = np.repeat(lr, n_per_lr)
    args = (theta, spec, XOR.X, XOR.Y, lrs, 3000)
    reference = npb.train_population(*args, optimizer=optimizer, record_every=500)
    result = nb_train(*args, optimizer=optimizer, record_every=500)
    assert_same_outcomes(result, reference)
    for name in ("loss", "grad_norm", "param_norm"):
        np.testing.assert_allclose(getattr(result.history, name), getattr(reference.history, name),
                                   TRAINED_RTOL, 1e-14)  # fmt: skip
    assert len(set(result.status.tolist())) >= 2  # the grid spans more than one outcome


def test_numba_is_bitwise_identical_for_1_and_2_threads(numba_threads):
    if numba_threads < 2:
        pytest.skip("numba was started with one thread (NUMBA_NUM_THREADS=1 or a 1-core machine)")
    theta = init_population(TUTORIAL, 500, seed=1)
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        runs.append(nb_train(theta, TUTORIAL, XOR.X, XOR.Y, 0.7, 2000, record_every=100))
    assert_same_outcomes(runs[1], runs[0], exact_params=True)
    np.testing.assert_array_equal(runs[1].history.grad_norm, runs[0].history.grad_norm)
    np.testing.assert_array_equal(runs[1].history.param_norm, runs[0].history.param_norm)


@pytest.mark.parametrize("n_chunks", [1, 2, 7, 64, 1001])
def test_threads_take_every_chunk_once(numba_threads, n_chunks):
    """over_chunks: the parts are contiguous blocks that cover every chunk exactly once, in
    several threads where there are several, a thread taking the next block when done."""
    threads = min(2, numba_threads)
    numba.set_num_threads(threads)
    parts, names = [], set()
    busy = min(threads, n_chunks)  # threads that should each take a part
    all_busy = threading.Event()

    def run(start, stop):
        parts.append((start, stop))
        names.add(threading.current_thread().name)
        if len(names) >= busy:
            all_busy.set()
        all_busy.wait(10)  # hold the first part until the other thread has taken one

    numba_backend.over_chunks(n_chunks, run)
    parts.sort()
    assert parts[0][0] == 0 and parts[-1][1] == n_chunks
    assert [a for a, _ in parts[1:]] == [b for _, b in parts[:-1]]
    assert all(a < b for a, b in parts)
    if n_chunks >= 64 and threads > 1:  # blocks: several a thread, so that one whose nets
        # stop early takes more (one thread takes every chunk in one part: a machine or a
        # process with one core, as under taskset -c 0)
        assert len(parts) >= numba_backend.BLOCKS * threads
    assert len(names) == busy


def test_a_failing_part_stops_the_others_and_sets_abort(numba_threads):
    if numba_threads < 2:
        pytest.skip("numba was started with one thread (NUMBA_NUM_THREADS=1 or a 1-core machine)")
    numba.set_num_threads(2)
    abort = np.zeros(1, dtype=np.int8)
    started = []

    def run(start, stop):
        started.append(start)
        if start == 0:
            raise KeyboardInterrupt  # as a Ctrl-C reaching the part's thread
        time.sleep(0.01)

    with pytest.raises(KeyboardInterrupt):
        numba_backend.over_chunks(1000, run, abort)
    assert abort[0] == 1
    assert len(started) < 5  # no block is started once one has failed


def test_a_net_trains_the_same_alone_as_inside_a_population(kernels):
    population = init_population(TUTORIAL, 100_000, seed=8)
    picked = [0, 4_097, 99_999]
    # train a slice that holds the picked nets among many others, and each net alone
    crowd = np.concatenate([population[:, :2000], population[:, [4_097, 99_999]]], axis=1)
    together = kernels.train_population(crowd, TUTORIAL, XOR.X, XOR.Y, 0.5, 2000)
    for column, k in zip([0, 2000, 2001], picked, strict=True):
        alone_theta = init_population(TUTORIAL, 1, seed=8, first_net=k)
        alone = kernels.train_population(alone_theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 2000)
        assert alone.epochs_to_converge[0] == together.epochs_to_converge[column]
        assert_same_nets(kernels, alone.theta[:, 0], together.theta[:, column])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spec", [NetSpec((2, 8, 1), "tanh"),
                                  NetSpec((2, 8, 1), "tanh", batchnorm=True, dropout=0.25)])
def test_a_net_trains_to_the_same_bits_in_any_population_where_rounding_grows(kernels, spec,
                                                                              dtype):
    # tanh with Adam at lr 1 grows a difference of 1e-16 into another outcome within 1,000
    # epochs: NumPy's einsum and sums, whose order of terms follows the arrays' shapes, gave a
    # net alone, among 37 and among 200 different results (4.8e-12 apart at 100 epochs, 0.16 at
    # 1,000; float32 1e-3), and a sweep's results depended on --nets-per-shard
    from backprop_bench.kernels import streams

    population = init_population(spec, 200, seed=0, init="xavier_normal", dtype=dtype)
    keys = streams.net_keys(0, 0, 200)

    def train(columns):
        return kernels.train_population(
            np.ascontiguousarray(population[:, columns]), spec, XOR.X, XOR.Y, 1.0, 1000,
            optimizer=Optimizer("adam"), keys=keys[columns],
        )  # fmt: skip

    everyone = train(np.arange(200))
    some = np.arange(3, 200, 5)  # 40 nets
    among_some = train(some)
    np.testing.assert_array_equal(among_some.theta, everyone.theta[:, some])
    np.testing.assert_array_equal(among_some.epochs_to_converge, everyone.epochs_to_converge[some])
    for k in (0, 17):
        alone = train(np.array([k]))
        np.testing.assert_array_equal(alone.theta[:, 0], everyone.theta[:, k])


def test_diverging_nets_are_marked_and_poison_nobody(kernels):
    spec = NetSpec((2, 4, 1), "relu")
    theta = init_population(spec, 6, seed=3)
    theta[:, 5] = 1e308  # overflows to inf in the first forward pass
    lr = np.array([0.5, 100.0, 0.5, 1e250, 1e4, 0.5])
    # pytest turns every warning into an error (pyproject.toml): this run must warn about nothing
    result = kernels.train_population(theta, spec, XOR.X, XOR.Y, lr, 1000)
    assert result.status[1] == result.status[3] == result.status[5] == Status.DIVERGED
    assert result.epochs_trained[5] == 0 and not np.isfinite(result.final_loss[5])
    sane = [0, 2]
    alone = kernels.train_population(theta[:, sane], spec, XOR.X, XOR.Y, 0.5, 1000)
    assert_same_nets(kernels, result.theta[:, sane], alone.theta)
    np.testing.assert_array_equal(result.status[sane], alone.status)


def test_learning_rate_100_diverges_on_every_net_without_warnings(kernels):
    theta = init_population(TUTORIAL, 300, seed=0)
    result = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 100.0, 10_000)
    assert (result.status == Status.DIVERGED).all()
    loss0 = kernels.loss(theta, TUTORIAL, XOR.X, XOR.Y)
    assert (result.final_loss > Criterion().divergence_factor * loss0).all()


def test_early_stop_freezes_a_net_at_the_epoch_it_converged(kernels):
    theta = init_population(TUTORIAL, 20, seed=4)
    stopped = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 10_000)
    assert (stopped.status == Status.CONVERGED).all()
    assert (stopped.epochs_trained == stopped.epochs_to_converge).all()
    assert (stopped.first_full_accuracy <= stopped.epochs_to_converge).all()
    for k in (0, 7):
        e = int(stopped.epochs_to_converge[k])
        exact = kernels.train_population(theta[:, [k]], TUTORIAL, XOR.X, XOR.Y, 0.5, e,
                                         early_stop=False)  # fmt: skip
        before = kernels.train_population(theta[:, [k]], TUTORIAL, XOR.X, XOR.Y, 0.5, e - 1,
                                          early_stop=False)  # fmt: skip
        assert_same_nets(kernels, exact.theta[:, 0], stopped.theta[:, k])
        out = kernels.forward(exact.theta, TUTORIAL, XOR.X).a[-1][:, 0, 0]
        assert (np.abs(out - XOR.Y[:, 0]) < 0.4).all()
        out = kernels.forward(before.theta, TUTORIAL, XOR.X).a[-1][:, 0, 0]
        assert not (np.abs(out - XOR.Y[:, 0]) < 0.4).all()


def test_a_looser_or_loss_based_criterion_converges_sooner_or_later(kernels):
    theta = init_population(TUTORIAL, 50, seed=6)
    default = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 5000)
    loose = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 5000,
                                     criterion=Criterion(max_error=0.49))  # fmt: skip
    strict = kernels.train_population(
        theta,
        TUTORIAL,
        XOR.X,
        XOR.Y,
        0.5,
        5000,
        criterion=Criterion(max_error=None, loss_below=0.01),
    )
    done = default.status == Status.CONVERGED
    assert done.sum() >= 45
    assert (loose.epochs_to_converge[done] <= default.epochs_to_converge[done]).all()
    assert (strict.final_loss[strict.status == Status.CONVERGED] < 0.01).all()
    s_done = strict.status == Status.CONVERGED
    assert (
        strict.epochs_to_converge[s_done & done] > default.epochs_to_converge[s_done & done]
    ).all()


def test_sum_reduction_is_the_mean_with_a_scaled_learning_rate(kernels):
    # On XOR m = 4, so dividing by m and scaling the rate by 4 are exact in binary: same bits.
    theta = init_population(TUTORIAL, 30, seed=9)
    mean = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 3000)
    summed_spec = NetSpec((2, 4, 1), reduction="sum")
    summed = kernels.train_population(theta, summed_spec, XOR.X, XOR.Y, 0.125, 3000)
    np.testing.assert_array_equal(summed.theta, mean.theta)
    np.testing.assert_array_equal(summed.epochs_to_converge, mean.epochs_to_converge)
    np.testing.assert_allclose(summed.final_loss, 4 * mean.final_loss, rtol=1e-15)


def test_xor_needs_a_hidden_layer_and_and_or_do_not(kernels):
    spec = NetSpec((2, 1))
    theta = init_population(spec, 200, seed=1)
    xor = kernels.train_population(theta, spec, XOR.X, XOR.Y, 0.5, 10_000)
    assert (xor.status == Status.NOT_CONVERGED).all()
    assert xor.final_accuracy.max() <= 0.75  # a line gets at most 3 of the 4 points right
    for name in ("and", "or"):
        problem = get_problem(name)
        result = kernels.train_population(theta, spec, problem.X, problem.Y, 0.5, 10_000)
        assert (result.status == Status.CONVERGED).all()


def test_parity3_with_a_deeper_net(kernels):
    problem = get_problem("parity3")
    spec = NetSpec((3, 6, 1), "tanh")
    theta = init_population(spec, 30, seed=2, init="xavier_normal")
    result = kernels.train_population(theta, spec, problem.X, problem.Y, 0.5, 5000)
    assert (result.status == Status.CONVERGED).mean() > 0.5


def test_history_records_every_n_epochs_and_the_last(kernels):
    theta = init_population(TUTORIAL, 4, seed=3)
    result = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 2500,
                                      early_stop=False, record_every=1000)  # fmt: skip
    history = result.history
    assert history.epochs.tolist() == [0, 1000, 2000, 2500]
    np.testing.assert_allclose(history.loss[0], kernels.loss(theta, TUTORIAL, XOR.X, XOR.Y),
                               rtol=1e-15)  # fmt: skip
    grad0 = kernels.backward(theta, TUTORIAL, XOR.X, XOR.Y).grad
    np.testing.assert_allclose(history.grad_norm[0], np.linalg.norm(grad0, axis=0), rtol=1e-13)
    np.testing.assert_allclose(history.param_norm[0], np.linalg.norm(theta, axis=0), rtol=1e-14)
    np.testing.assert_allclose(history.param_norm[-1], np.linalg.norm(result.theta, axis=0),
                               rtol=1e-14)  # fmt: skip
    np.testing.assert_array_equal(history.loss[-1], result.final_loss)
    np.testing.assert_array_equal(history.accuracy[-1], result.final_accuracy)
    stopped = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 2500, record_every=1000)
    # nets stop near epoch 500-900 here: later records are NaN, not stale values
    assert (stopped.epochs_trained < 1000).all() and np.isnan(stopped.history.loss[1:]).all()
    assert kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 10).history is None


# cold numba compiles of its own kernels (20-45 s on a clean checkout): an integration test,
# run by `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_float32_training_matches_float64_outcomes(kernels):
    theta = init_population(TUTORIAL, 200, seed=0)
    r64 = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 10_000)
    r32 = kernels.train_population(theta.astype(np.float32), TUTORIAL, XOR.X, XOR.Y, 0.5, 10_000)
    assert r32.theta.dtype == np.float32 and r32.final_loss.dtype == np.float32
    # Measured on 2,000 nets: identical statuses, epochs to converge within 0 epochs. Allow a
    # little: float32 rounding may move a net that meets the criterion at a borderline epoch.
    assert (r32.status == r64.status).mean() >= 0.99
    assert np.abs(r32.epochs_to_converge - r64.epochs_to_converge).max() <= 5


def test_zero_epochs_evaluates_the_initial_nets(kernels):
    theta = init_population(TUTORIAL, 5, seed=1)
    result = kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 0)
    np.testing.assert_array_equal(result.theta, theta)
    np.testing.assert_allclose(result.final_loss, kernels.loss(theta, TUTORIAL, XOR.X, XOR.Y))
    assert (result.epochs_trained == 0).all()


def test_training_does_not_modify_its_input(kernels):
    theta = init_population(TUTORIAL, 5, seed=1)
    before = theta.copy()
    kernels.train_population(theta, TUTORIAL, XOR.X, XOR.Y, 0.5, 100)
    np.testing.assert_array_equal(theta, before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": -0.5}, "learning rate must be a positive finite number, got -0.5"),
        ({"learning_rate": np.inf}, "learning rate must be a positive finite number, got inf"),
        ({"learning_rate": np.ones(4)}, r"shape \(n_nets,\) = \(3,\), got shape \(4,\)"),
        ({"n_epochs": -1}, "n_epochs must be a non-negative integer, got -1"),
        ({"n_epochs": 2.5}, "n_epochs must be a non-negative integer, got 2.5"),
        ({"record_every": -5}, "record_every must be a non-negative integer"),
        # converted, these ran: True as a rate of 1.0, and the text "no" kept early stopping on
        ({"learning_rate": True}, "learning rate must be a number or an array of numbers"),
        ({"learning_rate": "0.5"}, "learning rate must be a number or an array of numbers"),
        ({"learning_rate": np.array(["0.5"] * 3)}, "numbers, got an array of dtype <U3"),
        ({"early_stop": "no"}, "early_stop must be true or false, got 'no'"),
        ({"early_stop": 0}, "early_stop must be true or false, got 0"),
    ],
)
def test_bad_training_arguments(kernels, kwargs, message):
    args = {"learning_rate": 0.5, "n_epochs": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        kernels.train_population(
            init_population(TUTORIAL, 3, 0),
            TUTORIAL,
            XOR.X,
            XOR.Y,
            args.pop("learning_rate"),
            args.pop("n_epochs"),
            **args,
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Optimizer("rmsprop"), "unknown optimizer 'rmsprop'; choose one of: sgd, momentum"),
        (lambda: Optimizer("adam", beta2=1.0), r"beta2 must be in \[0, 1\)"),
        (lambda: Criterion(max_error=None), "a criterion needs max_error, or one of loss_below"),
        (lambda: Criterion(max_error=-0.1), "max_error must be a positive finite number"),
        (lambda: Criterion(divergence_factor=1.0), "divergence_factor must be greater than 1"),
        (lambda: Criterion(max_error=True), "max_error must be a number, got True"),
        (lambda: Criterion(rms_below="0.1"), "rms_below must be a number, got '0.1'"),
        (lambda: Optimizer("momentum", momentum="0.9"), "momentum must be a number, got '0.9'"),
        (lambda: Optimizer("adam", beta1=False), "beta1 must be a number, got False"),
        (lambda: Optimizer("adam", eps="1e-8"), "eps must be a number"),
        (lambda: Optimizer(weight_decay=True), "weight_decay must be a number, got True"),
    ],
)
def test_bad_training_configs(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_read_only_data_compiles_no_kernel_of_its_own():
    """numba types a read-only array apart from a writable one: the problems' arrays (read-only)
    and a user's writable copy must reach the same compiled kernels, or every kernel compiles
    twice (10 to 45 s each)."""
    assert not XOR.X.flags.writeable
    theta = init_population(TUTORIAL, 3, seed=0)
    for X, Y in ((XOR.X, XOR.Y), (XOR.X.copy(), XOR.Y.copy())):
        read_only = theta.copy()
        read_only.setflags(write=False)
        nb_train(read_only, TUTORIAL, X, Y, 0.5, 3)
        numba_backend.forward(read_only, TUTORIAL, X)
        numba_backend.backward(read_only, TUTORIAL, X, Y)
    dispatchers = [numba_lanes.train_kernel] + [
        value for value in vars(numba_backend).values() if isinstance(value, CPUDispatcher)
    ]
    for dispatcher in dispatchers:
        for signature in dispatcher.signatures:
            assert not any(isinstance(t, types.Array) and not t.mutable for t in signature), (
                dispatcher.__name__,
                signature,
            )


@pytest.mark.parametrize("train", [npb.train_population, nb_train], ids=["numpy", "numba"])
def test_a_history_too_large_to_hold_names_the_fix(train):
    # NumPy's "Unable to allocate 7.28 TiB for an array" before (an outside audit)
    spec = NetSpec((2, 4, 1))
    with pytest.raises(MemoryError, match=r"needs .* GiB; record less often \(record_every\)"):
        train(init_population(spec, 8, 0), spec, XOR.X, XOR.Y, 0.5, 10**12, record_every=1)
