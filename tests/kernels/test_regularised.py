"""Batch norm, dropout and weight decay: the NumPy oracle against scalar references and finite
differences, the numba fused kernel against the oracle, and the promises (layout, identity of a
net's masks, thread counts, everything off changes nothing)."""

import math

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
    streams,
)
from backprop_bench.kernels import numpy_backend as npb
from backprop_bench.kernels import regularised as R
from backprop_bench.kernels.numba_backend import train_population as nb_train
from backprop_bench.kernels.regularised_training import train_regularised
from backprop_bench.kernels.training import check_abort, start_training

XOR = get_problem("xor")
RNG = np.random.default_rng(5)
X6 = RNG.normal(size=(6, 2))
Y6 = (RNG.random((6, 1)) < 0.5).astype(float)
BOTH = NetSpec((2, 5, 3, 1), "tanh", batchnorm=True, dropout=0.3)
# central differences with h = 1e-6 on a smooth float64 loss of size ~1: truncation ~1e-12,
# round-off ~1e-10; measured worst 3e-10
FD_ATOL = 1e-8
# numba against NumPy over 30 epochs in float64: rounding differences (~1e-16 per operation)
# carried through the iteration; measured worst 5e-10 (adam on batch norm), sgd/momentum ~1e-13
TRAINED_RTOL64 = 1e-8
# float32 on a well-conditioned case (relu, batch norm, momentum): measured worst 6e-7
TRAINED_RTOL32 = 1e-5


def central_differences(f, theta, h=1e-6):
    grad = np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


# ------------------------------------------------------------------------------ spec and init


def test_layout_of_existing_specs_is_unchanged():
    plain = NetSpec((2, 5, 3, 1))
    normed = NetSpec((2, 5, 3, 1), batchnorm=True)
    assert plain.n_params == 2 * 5 + 5 + 5 * 3 + 3 + 3 + 1
    assert normed.n_params == plain.n_params + 2 * (5 + 3)
    np.testing.assert_array_equal(normed.offsets(), plain.offsets())
    np.testing.assert_array_equal(normed.norm_offsets(), [[37, 42], [47, 50]])
    assert plain.norm_offsets().shape == (0, 2)


def test_init_keeps_the_weights_and_starts_batch_norm_as_identity():
    plain = init_population(NetSpec((2, 5, 3, 1)), 7, 3, "normal:0.7")
    normed_spec = NetSpec((2, 5, 3, 1), batchnorm=True)
    normed = init_population(normed_spec, 7, 3, "normal:0.7")
    np.testing.assert_array_equal(normed[: plain.shape[0]], plain)
    for gamma, beta in normed_spec.norm_views(normed):
        assert (gamma == 1).all() and (beta == 0).all()
    zeros = init_population(normed_spec, 2, 0, "zeros")
    assert (normed_spec.norm_views(zeros)[0][0] == 1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dropout": 1.0}, "dropout must be a rate in"),
        ({"dropout": -0.1}, "dropout must be a rate in"),
        ({"batchnorm": "yes"}, "batchnorm must be True or False"),
        ({"dropout": "0.1"}, "dropout must be a number, got '0.1'"),
        ({"layers": (2, 1), "batchnorm": True}, "act on hidden layers"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NetSpec(**{"layers": (2, 4, 1), **kwargs})


def test_optimizer_validation_and_plain_kernels_refuse_modes():
    with pytest.raises(ValueError, match="weight_decay must be a non-negative"):
        Optimizer(weight_decay=-1)
    with pytest.raises(ValueError, match="training=True or False"):
        npb.forward(init_population(BOTH, 1, 0), BOTH, X6)
    with pytest.raises(ValueError, match="keys must be a uint64 array"):
        npb.train_population(init_population(BOTH, 2, 0), BOTH, X6, Y6, 0.1, 1, keys=[1, 2])


# ------------------------------------------------------------------------------ the passes


def scalar_training_loss(theta, spec, X, Y, masks):
    """One net, plain Python loops over samples and units: the tutorial's arithmetic."""
    offsets, norms = spec.offsets(), spec.norm_offsets()
    rows = [list(map(float, x)) for x in X]
    for layer, (fi, fo) in enumerate(zip(spec.layers[:-1], spec.layers[1:], strict=True)):
        w0, b0 = offsets[layer]
        z = [[theta[b0 + j] + sum(r[i] * theta[w0 + i * fo + j] for i in range(fi))
              for j in range(fo)] for r in rows]  # fmt: skip
        if layer == spec.n_layers - 1:
            break
        if spec.batchnorm:
            for j in range(fo):
                mean = sum(r[j] for r in z) / len(z)
                var = sum((r[j] - mean) ** 2 for r in z) / len(z)
                g0, s0 = norms[layer]
                for r in z:
                    r[j] = theta[g0 + j] * (r[j] - mean) / math.sqrt(var + R.BN_EPS) + theta[s0 + j]
        rows = [[math.tanh(v) * (masks[layer][s, j] if masks else 1) for j, v in enumerate(r)]
                for s, r in enumerate(z)]  # fmt: skip
    total = sum(max(v, 0) + math.log1p(math.exp(-abs(v))) - y * v
                for r, t in zip(z, Y, strict=True) for v, y in zip(r, t, strict=True))  # fmt: skip
    return total / len(z)


def test_training_loss_matches_a_scalar_transcription():
    theta = init_population(BOTH, 3, 1, "normal:0.7")
    keys = streams.net_keys(4, 0, 3)
    losses = R.loss(theta, BOTH, X6, Y6, training=True, keys=keys, epoch=2)
    masks = R.dropout_masks(BOTH, keys, 2, 6, np.float64)
    for k in range(3):
        expected = scalar_training_loss(theta[:, k], BOTH, X6, Y6,
                                        [m[:, :, k] for m in masks])  # fmt: skip
        assert losses[k] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(
    "spec",
    [BOTH, NetSpec((2, 4, 1), batchnorm=True, loss="mse", reduction="sum"),
     NetSpec((2, 4, 4, 1), "sigmoid", dropout=0.5)],  # fmt: skip
    ids=["both", "batchnorm", "dropout"],
)
def test_backward_matches_central_differences(spec):
    theta = init_population(spec, 2, 1, "normal:0.7")
    keys = streams.net_keys(9, 0, 2)
    claimed = R.backward(theta, spec, X6, Y6, keys=keys, epoch=5)
    expected = central_differences(
        lambda t: R.loss(t, spec, X6, Y6, training=True, keys=keys, epoch=5).sum(), theta
    )
    np.testing.assert_allclose(claimed, expected, atol=FD_ATOL)


def test_staged_and_compact_batchnorm_backward_agree():
    z = RNG.normal(size=(7, 3, 2)) * 3 + 1
    gamma, beta = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    dy = RNG.normal(size=z.shape)
    _, zhat, _, _, inv_std = R.batchnorm_forward(z, gamma, beta)
    compact = R.batchnorm_backward(dy, zhat, gamma, inv_std)
    staged = R.batchnorm_backward_staged(dy, z, gamma)
    for a, b in zip(compact, staged, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_evaluation_mode_uses_running_statistics_and_no_dropout():
    spec = NetSpec((2, 5, 3, 1), "tanh", batchnorm=True, dropout=0.5)
    theta = init_population(spec, 2, 1, "normal:0.7")
    mean, var = RNG.normal(size=(8, 2)), RNG.random((8, 2)) + 0.5
    trace = R.forward(theta, spec, X6, training=False, running_mean=mean, running_var=var)
    assert trace.masks is None
    z0 = trace.z[0]
    gamma, beta = spec.norm_views(theta)[0]
    expected = np.tanh(gamma * (z0 - mean[:5]) / np.sqrt(var[:5] + R.BN_EPS) + beta)
    np.testing.assert_allclose(trace.a[1], expected, rtol=1e-14)
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        R.forward(theta, spec, X6, training=False)
    # a negative or NaN variance made every output NaN, without a word
    for bad_var in (-var, np.where(var > 1, np.nan, var)):
        with pytest.raises(ValueError, match="running_var must be finite and >= 0"):
            R.forward(theta, spec, X6, training=False, running_mean=mean, running_var=bad_var)
    with pytest.raises(ValueError, match="running_mean holds NaN or inf"):
        R.loss(theta, spec, X6, Y6, training=False, running_mean=mean * np.inf, running_var=var)


def test_dropout_masks_follow_the_documented_index_and_the_nets_key():
    spec = NetSpec((2, 3, 2, 1), dropout=0.4)
    keys = streams.net_keys(11, 0, 5)
    masks = R.dropout_masks(spec, keys, 7, 4, np.float64)
    u = streams.uniform(R.dropout_key(keys[2]), 7, 4 * 3 + 1 * 2 + 1)  # layer 1, sample 1, unit 1
    assert masks[1][1, 1, 2] == (1 / 0.6 if u >= 0.4 else 0.0)
    alone = R.dropout_masks(spec, keys[2:3], 7, 4, np.float64)
    for full, one in zip(masks, alone, strict=True):
        np.testing.assert_array_equal(full[:, :, 2:3], one)
    many = R.dropout_masks(NetSpec((2, 50, 1), dropout=0.4), streams.net_keys(0, 0, 40), 0, 25,
                           np.float64)[0]  # fmt: skip
    assert abs((many > 0).mean() - 0.6) < 0.01  # 50,000 draws: standard error 0.002


# ------------------------------------------------------------------------------ training


def test_regularised_loop_with_everything_off_is_the_plain_loop_to_the_bit():
    spec = NetSpec((2, 4, 1))
    theta = init_population(spec, 16, 0)
    plain = npb.train_population(theta, spec, XOR.X, XOR.Y, 0.5, 400, record_every=50)
    result, X, Y, lr, n = start_training(theta, spec, XOR.X, XOR.Y, 0.5, 400, 50)
    loop = train_regularised(result, spec, X, Y, lr, n, streams.net_keys(0, 0, 16), Optimizer(),
                             Criterion(), True, check_abort(None))  # fmt: skip
    for name in ("theta", "status", "epochs_to_converge", "epochs_trained", "final_loss",
                 "final_grad_norm", "final_accuracy"):  # fmt: skip
        np.testing.assert_array_equal(getattr(loop, name), getattr(plain, name), err_msg=name)
    np.testing.assert_array_equal(loop.history.loss, plain.history.loss)


def test_weight_decay_steps_follow_their_rules():
    spec = NetSpec((2, 4, 1))
    theta = init_population(spec, 3, 0, "normal:0.7")
    grad = npb.backward(theta, spec, XOR.X, XOR.Y).grad
    lr, decay = 0.3, 0.01
    coupled = npb.train_population(theta, spec, XOR.X, XOR.Y, lr, 1, early_stop=False,
                                   optimizer=Optimizer(weight_decay=decay))  # fmt: skip
    np.testing.assert_allclose(coupled.theta, theta - lr * (grad + decay * theta), rtol=1e-14)
    adamw = npb.train_population(theta, spec, XOR.X, XOR.Y, lr, 1, early_stop=False,
                                 optimizer=Optimizer("adamw", weight_decay=decay))  # fmt: skip
    # adam's first step is lr sign(g) up to eps; the decay shrinks theta first
    shrunk = theta * (1 - lr * decay)
    expected = shrunk - lr * grad / (np.abs(grad) + 1e-8)
    np.testing.assert_allclose(adamw.theta, expected, rtol=1e-12)


CASES = [
    (BOTH, Optimizer("adam", weight_decay=1e-3), 0.05),
    (NetSpec((2, 4, 1), batchnorm=True), Optimizer("adamw", weight_decay=1e-2), 0.05),
    (NetSpec((2, 4, 1), dropout=0.3), Optimizer("momentum", weight_decay=1e-3), 0.3),
    (NetSpec((2, 5, 3, 1), "relu", batchnorm=True, loss="mse", reduction="sum"),
     Optimizer(weight_decay=1e-3), 0.3),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "optimizer", "lr"), CASES)
def test_numba_kernel_against_numpy_float64(spec, optimizer, lr):
    theta = init_population(spec, 4, 2)
    keys = streams.net_keys(2, 0, 4)
    kwargs = dict(optimizer=optimizer, record_every=7, early_stop=False, keys=keys)
    a = npb.train_population(theta, spec, XOR.X, XOR.Y, lr, 30, **kwargs)
    b = nb_train(theta, spec, XOR.X, XOR.Y, lr, 30, **kwargs)
    for name in ("status", "epochs_to_converge", "first_full_accuracy", "epochs_trained"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    np.testing.assert_allclose(b.theta, a.theta, rtol=TRAINED_RTOL64, atol=1e-12)
    np.testing.assert_allclose(b.history.loss, a.history.loss, rtol=TRAINED_RTOL64)
    np.testing.assert_allclose(b.history.grad_norm, a.history.grad_norm, rtol=TRAINED_RTOL64,
                               atol=1e-12)  # fmt: skip
    if spec.batchnorm:
        np.testing.assert_allclose(b.running_var, a.running_var, rtol=TRAINED_RTOL64)
    else:
        assert a.running_mean is None and b.running_mean is None


@pytest.mark.slow  # a second signature of the fused kernel: about 20 s of compiling when cold
def test_numba_kernel_against_numpy_float32():
    spec = NetSpec((2, 5, 3, 1), "relu", batchnorm=True, dropout=0.2)
    theta = init_population(spec, 4, 2, dtype=np.float32)
    kwargs = dict(optimizer=Optimizer("momentum"), record_every=10, early_stop=False)
    a = npb.train_population(theta, spec, XOR.X, XOR.Y, 0.1, 30, **kwargs)
    b = nb_train(theta, spec, XOR.X, XOR.Y, 0.1, 30, **kwargs)
    assert b.theta.dtype == np.float32
    np.testing.assert_allclose(b.theta, a.theta, rtol=TRAINED_RTOL32, atol=1e-6)


def test_numba_kernel_converges_like_numpy_and_is_identical_for_any_threads_and_population(
    numba_threads,
):
    spec, n = NetSpec((2, 4, 1), batchnorm=True, dropout=0.1), 12
    theta = init_population(spec, n, 0)
    keys = streams.net_keys(0, 0, n)
    a = npb.train_population(theta, spec, XOR.X, XOR.Y, 0.5, 600, keys=keys)
    runs = []
    for threads in (1, numba_threads):
        numba.set_num_threads(threads)
        runs.append(nb_train(theta, spec, XOR.X, XOR.Y, 0.5, 600, keys=keys))
    part = nb_train(theta[:, 5:9], spec, XOR.X, XOR.Y, 0.5, 600, keys=keys[5:9])
    np.testing.assert_array_equal(runs[0].theta, runs[1].theta)
    np.testing.assert_array_equal(runs[0].running_mean, runs[1].running_mean)
    np.testing.assert_array_equal(part.theta, runs[0].theta[:, 5:9])
    np.testing.assert_array_equal(runs[0].status, a.status)
    np.testing.assert_array_equal(runs[0].epochs_to_converge, a.epochs_to_converge)
    assert (a.status == Status.CONVERGED).sum() >= n // 2


@pytest.mark.parametrize("epoch", [2**64, 2**70])
def test_an_epoch_beyond_the_streams_is_refused_in_one_line(epoch):
    # NumPy's OverflowError came out of the dropout streams before
    theta = init_population(BOTH, 2, 1, "normal:0.7")
    with pytest.raises(ValueError, match="epoch must be below 2\\*\\*64"):
        R.loss(theta, BOTH, X6, Y6, training=True, keys=streams.net_keys(4, 0, 2), epoch=epoch)
