"""Optimizer steps of both backends against the published update rules, written per element."""

import math

import numpy as np
import pytest
from backprop_bench.kernels import numpy_backend
from backprop_bench.kernels.numba_backend import adam_step as nb_adam_step
from backprop_bench.kernels.numba_backend import momentum_step as nb_momentum_step
from backprop_bench.kernels.numba_backend import sgd_step as nb_sgd_step

# One update is a handful of floating-point operations per element.
STEP_RTOL = 1e-12
N_PARAMS, N_NETS = 5, 3


def arrays(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(N_PARAMS, N_NETS)).astype(dtype)
    grads = [rng.normal(size=(N_PARAMS, N_NETS)).astype(dtype) for _ in range(4)]
    lr = np.array([0.1, 0.5, 2.0])
    return theta, grads, lr


def test_sgd(kernels):
    theta, grads, lr = arrays(0)
    expected = theta.copy()
    for g in grads:
        kernels.sgd_step(theta, g, lr)
        for i in range(N_PARAMS):
            for k in range(N_NETS):
                expected[i, k] = expected[i, k] - lr[k] * g[i, k]
    np.testing.assert_allclose(theta, expected, rtol=STEP_RTOL)


def test_momentum_is_rumelhart_hinton_williams(kernels):
    # Delta w(t) = -lr * g(t) + alpha * Delta w(t - 1)
    theta, grads, lr = arrays(1)
    alpha = 0.9
    velocity = np.zeros_like(theta)
    expected, delta = theta.copy(), np.zeros_like(theta)
    for g in grads:
        kernels.momentum_step(theta, g, velocity, lr, alpha)
        for i in range(N_PARAMS):
            for k in range(N_NETS):
                delta[i, k] = -lr[k] * g[i, k] + alpha * delta[i, k]
                expected[i, k] += delta[i, k]
    np.testing.assert_allclose(theta, expected, rtol=STEP_RTOL)
    np.testing.assert_allclose(velocity, delta, rtol=STEP_RTOL)


def test_adam_is_kingma_ba_algorithm_1(kernels):
    theta, grads, lr = arrays(2)
    b1, b2, eps = 0.8, 0.99, 1e-7
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    expected = theta.copy()
    m_ref, v_ref = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        kernels.adam_step(theta, g, m, v, t, lr, b1, b2, eps)
        for i in range(N_PARAMS):
            for k in range(N_NETS):
                m_ref[i, k] = b1 * m_ref[i, k] + (1 - b1) * g[i, k]
                v_ref[i, k] = b2 * v_ref[i, k] + (1 - b2) * g[i, k] ** 2
                m_hat = m_ref[i, k] / (1 - b1**t)
                v_hat = v_ref[i, k] / (1 - b2**t)
                expected[i, k] -= lr[k] * m_hat / (math.sqrt(v_hat) + eps)
    np.testing.assert_allclose(theta, expected, rtol=STEP_RTOL)
    np.testing.assert_allclose(m, m_ref, rtol=STEP_RTOL)
    np.testing.assert_allclose(v, v_ref, rtol=STEP_RTOL)


def test_adam_first_step_moves_every_parameter_by_about_lr(kernels):
    # With bias correction the first step is lr * g / (|g| + eps): a property of the method.
    theta, grads, lr = arrays(3)
    before = theta.copy()
    kernels.adam_step(theta, grads[0], np.zeros_like(theta), np.zeros_like(theta), 1, lr)
    np.testing.assert_allclose(np.abs(before - theta), np.broadcast_to(lr, theta.shape), rtol=1e-6)


def test_numba_steps_match_numpy_in_float32():
    theta, grads, lr = arrays(4, np.float32)
    pairs = [
        (numpy_backend.sgd_step, nb_sgd_step, ()),
        (numpy_backend.momentum_step, nb_momentum_step, (0.5,)),
    ]
    for ref_step, nb_step, extra in pairs:
        a, b = theta.copy(), theta.copy()
        state_a = [np.zeros_like(theta)] if extra else []
        state_b = [np.zeros_like(theta)] if extra else []
        for g in grads:
            ref_step(a, g, *state_a, lr, *extra)
            nb_step(b, g, *state_b, lr, *extra)
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-6)
    a, b = theta.copy(), theta.copy()
    sa = [np.zeros_like(theta), np.zeros_like(theta)]
    sb = [np.zeros_like(theta), np.zeros_like(theta)]
    for t, g in enumerate(grads, start=1):
        numpy_backend.adam_step(a, g, *sa, t, lr)
        nb_adam_step(b, g, *sb, t, lr)
    np.testing.assert_allclose(b, a, rtol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda k, th, g: k.sgd_step(th, g, 0.0), "learning rate must be a positive finite number"),
        (lambda k, th, g: k.sgd_step(th, g, np.nan), "learning rate must be a positive finite"),
        (lambda k, th, g: k.sgd_step(th, g, [0.1, 0.2]), r"shape \(n_nets,\) = \(3,\)"),
        (lambda k, th, g: k.sgd_step(th, g[:2], 0.1), "grad must be an array of theta's shape"),
        (lambda k, th, g: k.sgd_step(th.T, g.T, 0.1), "theta must be a C-contiguous array"),
        (lambda k, th, g: k.momentum_step(th, g, g, 0.1, 1.5), r"momentum must be in \[0, 1\)"),
        (lambda k, th, g: k.adam_step(th, g, g, g, 0, 0.1), "step must be a positive integer"),
        (lambda k, th, g: k.adam_step(th, g, g, g[:1], 1, 0.1), "v must be an array of theta's"),
        (lambda k, th, g: k.adam_step(th, g, g, g, 1, 0.1, eps=0), "eps must be a positive"),
        (lambda k, th, g: k.sgd_step(th, g, "0.1"), "learning rate must be a number or an array"),
        (lambda k, th, g: k.momentum_step(th, g, g, 0.1, "0.9"), "momentum must be a number"),
        (lambda k, th, g: k.adam_step(th, g, g, g, 1, 0.1, beta1="0.9"), "beta1 must be a number"),
        # an integer theta was blamed on grad ("dtype int64"), or failed deep in NumPy
        (lambda k, th, g: k.sgd_step(th.astype(int), g, 0.1), "theta must be float64 or float32"),
        (lambda k, th, g: k.momentum_step(th.astype(int), g.astype(int), g.astype(int), 0.1, 0.9),
         "theta must be float64 or float32, got int64; use theta.astype"),
        (lambda k, th, g: k.sgd_step(th[:, 0], g[:, 0], 0.1), r"for one net use theta\[:, None\]"),
    ],
)
def test_bad_step_arguments(kernels, call, message):
    theta, grads, _ = arrays(5)
    with pytest.raises(ValueError, match=message):
        call(kernels, theta, grads[0])
