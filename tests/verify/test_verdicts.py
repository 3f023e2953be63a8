"""Each verdict of the checker, on user-style functions with known right answers.

Written against the failures of the previous checker: float32 functions whose tolerance was as
large as the gradient, correct subgradients failed at exact kinks, hidden state unseen, false
alarms at badly scaled parameters, noise called a kink, a cost cliff, and bad input ending in
internal errors.
"""

import time

import numpy as np
import pytest
import scipy.special
from backprop_bench.verify import VERDICTS, assert_gradients_close, check_gradient, check_vjp
from backprop_bench.verify.verdict import (
    CANNOT_TELL,
    CORRECT,
    KINK,
    NOT_DETERMINISTIC,
    WRONG,
)


def mlp(dtype, n_in=6, hidden=12, n=32, seed=0, cast=False):
    """A user's two-layer tanh net with BCE in plain NumPy; cast=True computes in float32
    whatever the params (code that is not dtype-generic)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in)).astype(dtype)
    y = (rng.random((n, 1)) < 0.5).astype(dtype)
    params = {
        "W1": (rng.normal(size=(n_in, hidden)) / np.sqrt(n_in)).astype(dtype),
        "b1": (rng.normal(size=hidden) * 0.1).astype(dtype),
        "W2": (rng.normal(size=(hidden, 1)) / np.sqrt(hidden)).astype(dtype),
        "b2": np.zeros(1, dtype),
    }

    def forward(p):
        if cast:
            p = {k: v.astype(np.float32) for k, v in p.items()}
        a1 = np.tanh(X @ p["W1"] + p["b1"])
        return p, a1, a1 @ p["W2"] + p["b2"]

    def loss(p):
        _, _, z2 = forward(p)
        return np.mean(np.logaddexp(0, z2) - y * z2)

    def grad(p):
        p, a1, z2 = forward(p)
        dz2 = (1 / (1 + np.exp(-z2)) - y) / len(X)
        dz1 = (dz2 @ p["W2"].T) * (1 - a1**2)
        return {"W1": X.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

    return loss, grad, params


def mutate(grad, how, key, index):
    def wrong(p, **kw):
        g = {k: np.array(v) for k, v in grad(p, **kw).items()}
        flat = g[key].reshape(-1)
        if how == "zero":
            flat[index] = 0
        elif how == "1e-3":
            flat[index] = flat[index] * flat.dtype.type(1.001)
        elif how == "flip":
            flat[index] = -flat[index]
        return g

    return wrong


# ------------------------------------------------------------------------------ correct, wrong


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correct_mlp_gradients_are_correct(dtype):
    loss, grad, params = mlp(dtype)
    result = check_gradient(loss, grad, params)
    assert result.verdict == CORRECT and result
    assert result.floor < 1e-5  # float32 code, but a float64 reference and its float64 re-run


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("how", ["zero", "1e-3", "flip"])
@pytest.mark.parametrize("key, index", [("W1", 7), ("b1", 3), ("W2", 5)])
def test_a_single_wrong_element_is_caught_in_float32_too(dtype, how, key, index):
    loss, grad, params = mlp(dtype)
    result = check_gradient(loss, mutate(grad, how, key, index), params)
    assert result.verdict == WRONG and not result
    assert any(not g.passed for g in result.groups if g.name == key)


def test_float32_sum_of_squares_no_longer_accepts_a_zero_gradient():
    x = np.arange(1, 11, dtype=np.float32) / 10

    def loss(p):
        return np.sum(p**2) + np.float32(1)

    assert check_gradient(loss, lambda p: 2 * p, x).verdict == CORRECT
    assert check_gradient(loss, lambda p: np.zeros_like(p), x).verdict == WRONG


def test_float32_code_that_is_not_dtype_generic_gets_its_own_precision_and_a_floor():
    # a small net: least-squares fits over many steps see errors of 1e-3 of the largest
    # derivative, not yet 1e-3 of every sizable element: cannot tell, and how to do better
    loss, grad, params = mlp(np.float32, n_in=2, hidden=4, cast=True)
    result = check_gradient(loss, grad, params)
    assert result.verdict == CANNOT_TELL and result.floor < 1e-3
    assert any("computes in float32" in note and "no astype(np.float32) inside" in note
               for note in result.notes)  # fmt: skip
    assert "least-squares fits" in result.reference
    # a function of a few float32 parameters is resolved in full
    x = np.array([0.8, -1.3, 0.4], np.float32)
    cube = lambda p: np.sum(p.astype(np.float32) ** 3)  # noqa: E731
    assert check_gradient(cube, lambda p: 3 * p.astype(np.float32) ** 2, x).verdict == CORRECT
    loss, grad, params = mlp(np.float32, cast=True)
    assert check_gradient(loss, mutate(grad, "flip", "W1", 7), params).verdict == WRONG
    assert check_gradient(loss, mutate(grad, "zero", "W2", 5), params).verdict == WRONG


def test_the_wrong_verdict_says_where_against_what_and_by_how_much():
    x = np.linspace(-1, 1, 6)

    def wrong(p):
        g = np.cos(p)
        g[4] *= 1.01
        return g

    result = check_gradient(lambda p: np.sum(np.sin(p)), wrong, x)
    (group,) = result.groups
    assert group.worst_index == (4,) and group.rel_error == pytest.approx(0.01, rel=1e-6)
    text = result.report()
    assert "FAILED: wrong" in text and "reference" in text and "tolerance" in text


# ------------------------------------------------------------------------------- kinks


W = np.array([1.0, 2.0, 3.0])


def relu_loss(p):
    return np.sum(np.maximum(p, 0) * W)


@pytest.mark.parametrize("subgradient", [0.0, 1.0, 0.25])
def test_a_valid_subgradient_at_an_exact_kink_passes_as_not_differentiable(subgradient):
    x = np.array([0.0, 1.0, -1.0])

    def grad(p):
        g = (p > 0) * W
        g[0] = subgradient * W[0]
        return g

    result = check_gradient(relu_loss, grad, x)
    assert result.verdict == KINK and result
    (kink,) = result.kinks
    assert kink.index == (0,) and (kink.left, kink.right) == pytest.approx((0.0, 1.0), abs=1e-6)


def test_a_claim_outside_the_one_sided_derivatives_is_wrong():
    x = np.array([0.0, 1.0, -1.0])
    result = check_gradient(relu_loss, lambda p: (p > 0) * W + np.array([2.0, 0, 0]), x)
    assert result.verdict == WRONG and not result.kinks[0].passed


@pytest.mark.parametrize("distance", [1e-9, 1e-8, 1e-7])
def test_a_differentiable_point_within_a_step_of_a_kink_is_resolved(distance):
    x = np.array([distance, 1.0, -distance])
    result = check_gradient(relu_loss, lambda p: (p > 0) * W, x)
    assert result.verdict == CORRECT and not result.kinks
    wrong = check_gradient(relu_loss, lambda p: (p >= 0) * W + np.array([0, 0, 3.0]), x)
    assert wrong.verdict == WRONG


def test_relu_net_with_a_pre_activation_exactly_zero():
    X = np.array([[1.0, -1.0], [2.0, 0.5], [0.0, 1.0]])
    W1 = np.array([[1.0, 0.5], [1.0, -2.0]])  # sample 0, unit 0: 1 - 1 = exactly 0
    v = np.array([1.5, -0.5])

    def loss(p):
        return np.sum(np.maximum(X @ p, 0) @ v)

    def grad(p):
        return X.T @ ((X @ p > 0) * v)

    assert (X @ W1)[0, 0] == 0.0
    result = check_gradient(loss, grad, W1)
    assert result.passed and result.verdict == KINK


# ----------------------------------------------------------------- hidden state and noise


def test_a_gradient_buffer_never_reset_is_not_deterministic():
    buffer = {}

    def grad(p):
        buffer.setdefault("g", np.zeros_like(p))
        buffer["g"] += 2 * p  # never reset: right once, wrong from the second call
        return buffer["g"]

    result = check_gradient(lambda p: np.sum(p**2), grad, np.ones(3))
    assert result.verdict == NOT_DETERMINISTIC and not result
    # each call adds 2 p: two calls in a row differ by 2 (relative to the buffer, by as much as
    # the calls before them, one of them now at other params, leave)
    assert result.nondeterminism.which == "grad"
    assert result.nondeterminism.max_abs_difference == pytest.approx(2.0)
    assert "grad gave different values" in result.report()


@pytest.mark.parametrize("step", [1e-4, 0.2])
@pytest.mark.parametrize("hidden", [12, 100])  # 97 parameters (full Jacobian), 801 (probes)
def test_a_float32_gradient_cached_by_id_stale_after_a_step_is_not_deterministic(step, hidden):
    # the stale claim was called correct: a few ulps away, where the checker measures the
    # claim's rounding, the cache misses and gives fresh values, so the scatter was as large
    # as the error (5x off at a step of 0.2 on 1,108 parameters passed)
    loss, grad, params = mlp(np.float32, hidden=hidden)
    cache = {}

    def cached(p):
        if id(p) not in cache:
            cache[id(p)] = grad(p)
        return cache[id(p)]

    for key, g in cached(params).items():
        params[key] -= np.float32(step) * g  # the optimiser's step, in place
    result = check_gradient(loss, cached, params)
    assert result.verdict == NOT_DETERMINISTIC
    assert result.nondeterminism.when == "a copy of params"


def test_a_backward_pass_reading_what_the_last_forward_saved_is_not_deterministic():
    loss, _, params = mlp(np.float32)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 6)).astype(np.float32)
    y = (rng.random((32, 1)) < 0.5).astype(np.float32)
    saved = {}

    def forward(p):  # a layer object: the forward pass keeps what the backward pass needs
        saved["a1"] = np.tanh(X @ p["W1"] + p["b1"])
        saved["z2"] = saved["a1"] @ p["W2"] + p["b2"]
        return np.mean(np.logaddexp(0, saved["z2"]) - y * saved["z2"])

    def backward(p):
        a1, z2 = saved["a1"], saved["z2"]
        dz2 = (1 / (1 + np.exp(-z2)) - y) / len(X)
        dz1 = (dz2 @ p["W2"].T) * (1 - a1**2)
        return {"W1": X.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

    result = check_gradient(forward, backward, params)  # raised a TypeError on complex values
    assert result.verdict == NOT_DETERMINISTIC
    assert "last call of fun" in result.report() and "forward pass" in result.report()


@pytest.mark.parametrize("n_freq", [4, 600])  # 8 parameters (full Jacobian), 1,200 (probes)
def test_a_wrong_special_case_at_an_exact_zero_is_caught(n_freq):
    # features sin(w t) / w, taken as t at w = 0 (some w start at exactly 0); the derivative's
    # limit there is 0. Returning t instead jumps a few ulps away, where the claim's rounding
    # is measured: in probes that scatter hid the error (cannot tell, floor 5.8)
    rng = np.random.default_rng(3)
    t = np.linspace(0.1, 2.0, 12).astype(np.float32)
    y = np.sin(1.3 * t)
    w = rng.uniform(0.2, 2, n_freq)
    w[rng.choice(n_freq, 3, replace=False)] = 0.0
    params = {"w": w.astype(np.float32), "a": (rng.normal(size=n_freq) / n_freq).astype(np.float32)}

    def features(w):
        safe = np.where(w == 0, 1, w)
        return np.where(w == 0, t[:, None], np.sin(w * t[:, None]) / safe)

    def loss(p):
        r = features(p["w"]) @ p["a"] - y.astype(p["a"].dtype)
        return 0.5 * np.sum(r**2) / len(t)

    def grad(p, limit_at_zero=0.0):
        w, a = p["w"], p["a"]
        F = features(w)
        r = (F @ a - y.astype(a.dtype)) / len(t)
        z = w * t[:, None]
        safe = np.where(w == 0, 1, w)
        d = np.where(w == 0, limit_at_zero * t[:, None], (z * np.cos(z) - np.sin(z)) / safe**2)
        return {"w": (r[:, None] * d * a).sum(0), "a": F.T @ r}

    assert check_gradient(loss, grad, params).verdict == CORRECT
    assert check_gradient(loss, lambda p: grad(p, 1.0), params).verdict == WRONG


def test_a_loss_with_tiny_noise_is_not_deterministic_not_a_kink():
    noise = np.random.default_rng(1)

    def loss(p):
        return np.sum(p**2) * (1 + 1e-14 * noise.standard_normal())

    result = check_gradient(loss, lambda p: 2 * p, np.linspace(0.5, 1.5, 20))
    assert result.verdict == NOT_DETERMINISTIC and result.nondeterminism.which == "fun"
    assert result.nondeterminism.max_rel_difference < 1e-13 and not result.kinks


def test_a_first_call_unlike_the_others_is_not_deterministic():
    # check_gradient's first call (it looks at the output's shape) was never compared with the
    # later ones: a lazy setup that returns something else once passed as correct
    calls = []

    def loss(p):
        calls.append(1)
        return np.sum(np.sin(p) * p) + (100.0 if len(calls) == 1 else 0.0)

    def grad(p):
        return np.cos(p) * p + np.sin(p)

    result = check_gradient(loss, grad, np.linspace(-1, 1, 12))
    assert result.verdict == NOT_DETERMINISTIC and result.nondeterminism.which == "fun"
    assert result.nondeterminism.when == "its first call and the next"


def test_a_value_carried_from_the_last_call_is_not_deterministic():
    # each value 1e-6 of the last one returned: two calls in a row at params agree (the value
    # has settled), and only after a call elsewhere does fun at params come back changed
    x = np.linspace(-1, 1, 12)
    last = [0.0]

    def loss(p):
        value = np.sum(np.sin(p) * p) + 1e-6 * last[0]
        last[0] = float(np.real(value))
        return value

    for _ in range(3):  # called before, as in a training loop: settled
        loss(x)

    result = check_gradient(loss, lambda p: np.cos(p) * p + np.sin(p), x)
    assert result.verdict == NOT_DETERMINISTIC and result.nondeterminism.which == "fun"
    assert result.nondeterminism.when == "after it ran at other params"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_gradient_cached_by_shape_is_not_passed(dtype):
    # filled by the checker's own first call, the cache held the right values at params and
    # passed; called first at other params, it holds theirs
    cache = {}

    def grad(p):
        if p.shape not in cache:
            cache[p.shape] = np.cos(p) * p + np.sin(p)
        return cache[p.shape]

    x = np.linspace(-1, 1, 12).astype(dtype)
    result = check_gradient(lambda p: np.sum(np.sin(p) * p), grad, x)
    assert not result and result.verdict in (WRONG, NOT_DETERMINISTIC), result.report()


def test_state_that_drifts_with_the_number_of_calls_is_not_deterministic():
    calls = {"n": 0}

    def loss(p):
        calls["n"] += 1
        return np.sum(p**2) + (1.0 if calls["n"] > 50 else 0.0)

    result = check_gradient(loss, lambda p: 2 * p, np.linspace(0.5, 1.5, 20))
    assert result.verdict == NOT_DETERMINISTIC


def test_dropout_with_its_randomness_frozen_by_rng_seed():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(16, 4))
    W0 = rng.normal(size=(4, 6))

    def loss(p, rng):
        mask = (rng.random((16, 6)) > 0.5) / 0.5
        return np.sum(np.tanh(X @ p) * mask)

    def grad(p, rng):
        mask = (rng.random((16, 6)) > 0.5) / 0.5
        return X.T @ ((1 - np.tanh(X @ p) ** 2) * mask)

    def grad_without_mask(p, rng):
        return X.T @ (1 - np.tanh(X @ p) ** 2)

    assert check_gradient(loss, grad, W0, rng_seed=0).verdict == CORRECT
    assert check_gradient(loss, grad_without_mask, W0, rng_seed=0).verdict == WRONG


# ------------------------------------------------------------------------------- scaling


def test_parameters_entering_at_large_and_small_scales_are_checked_without_false_alarms():
    x = np.random.default_rng(0).uniform(-1, 1, 5)
    assert check_gradient(lambda p: np.sum(np.sin(1e6 * p)), lambda p: 1e6 * np.cos(1e6 * p),
                          x).verdict == CORRECT  # fmt: skip
    big = np.array([1e6, 2e6, 3e6])
    result = check_gradient(lambda p: np.sum(np.log(p) ** 2), lambda p: 2 * np.log(p) / p, big)
    assert result.verdict == CORRECT and not result.notes
    small = np.array([1e-6, 2e-6, 3e-6])
    assert check_gradient(lambda p: np.sum(np.exp(1e6 * p)), lambda p: 1e6 * np.exp(1e6 * p),
                          small).verdict == CORRECT  # fmt: skip


def test_a_small_entry_is_checked_against_its_own_accuracy():
    x = np.array([1.0, 1e-6])

    def loss(p):
        return p[0] ** 2 + 1e-8 * p[1]

    assert check_gradient(loss, lambda p: np.array([2 * p[0], 1e-8]), x).verdict == CORRECT
    assert check_gradient(loss, lambda p: np.array([2 * p[0], 2e-8]), x).verdict == WRONG


# ------------------------------------------------------------------------------ cannot tell


def test_cannot_tell_when_the_reference_cannot_resolve_the_claim():
    # float32 throughout, many parameters, so probes, and the loss carries a constant a
    # thousand times its varying part (a penalty summed in): its float32 rounding hides errors
    # of 1e-3 of the largest derivative; the result says so instead of passing
    loss, grad, params = mlp(np.float32, n_in=64, hidden=300, n=16, cast=True)
    result = check_gradient(lambda p: loss(p) + np.float32(1000), grad, params, mode="probes")
    assert result.verdict == CANNOT_TELL and not result
    assert result.floor > 1e-2 and "INCONCLUSIVE" in result.report()


@pytest.mark.parametrize("coupling", [0.0, 1e-12, 1e-11])
@pytest.mark.parametrize("returned", [np.asarray, float])
def test_a_group_below_its_references_first_accuracy_is_judged_at_its_own_size(coupling, returned):
    # b's derivative (the coupling) lies below the accuracy of the first differences (2.6e-9).
    # Such a group was judged against the largest derivative of all groups, and a claim of 0,
    # or of the coupling's opposite, passed `correct`; at steps up to the parameters' size its
    # change rises above rounding, and a complex step (where the function takes one) is
    # confirmed that far. Exactly 0 (a hinge that is inactive: its reference came out as
    # rounding, 1.8e-11 +- 2.6e-9) is still judged against the largest derivative
    params = {"w": np.array([0.3, -0.7, 1.1]), "b": np.array([0.2])}

    def loss(p):
        return returned(np.sum(np.sin(p["w"])) + coupling * p["b"][0])

    for claimed in (0.0, coupling, -coupling):
        def grad(p, c=claimed):
            return {"w": np.cos(p["w"]), "b": np.array([c])}

        result = check_gradient(loss, grad, params)
        if coupling == 0:
            assert result.verdict == CORRECT and result.floor < 1e-8, result.report()
        elif claimed == coupling:
            assert result.verdict in (CORRECT, CANNOT_TELL), result.report()
        else:
            assert result.verdict == WRONG, result.report()
    # a small derivative the reference does resolve is held to its own size, as before
    resolved = 1e-6
    result = check_gradient(
        lambda p: returned(np.sum(np.sin(p["w"])) + resolved * p["b"][0]),
        lambda p: {"w": np.cos(p["w"]), "b": np.array([2 * resolved])}, params,
    )  # fmt: skip
    assert result.verdict == WRONG


def _saturated_tanh_net(returned, dtype=np.float64):
    # every hidden unit at pre-activations of -12 to -18: W1's derivatives are below 1e-11,
    # beside W2's of 0.1 (an outside review's case)
    rng = np.random.default_rng(12)
    X = rng.normal(size=(8, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(3, size=8)]
    params = {"W1": 0.3 * rng.normal(size=(5, 8)) / np.sqrt(5), "b1": rng.uniform(-18, -12, 8),
              "W2": rng.normal(size=(8, 3)) / np.sqrt(8), "b2": 0.1 * rng.normal(size=3)}
    params = {k: v.astype(dtype) for k, v in params.items()}

    def forward(p):
        h = np.tanh(X @ p["W1"] + p["b1"])
        return h, h @ p["W2"] + p["b2"]

    def loss(p):
        _, Z = forward(p)
        Z = Z - Z.max(1, keepdims=True)
        return returned(-(Y * (Z - np.log(np.exp(Z).sum(1, keepdims=True)))).sum() / 8)

    def grad(p, flip=False, naive=False):
        h, Z = forward(p)
        q = np.exp(Z - Z.max(1, keepdims=True))
        dZ = (q / q.sum(1, keepdims=True) - Y) / 8
        dz = (dZ @ p["W2"].T) * (1 - h**2) if naive else (
            (dZ @ p["W2"].T) / np.cosh(X @ p["W1"] + p["b1"]) ** 2)  # fmt: skip
        g = {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ dZ, "b2": dZ.sum(0)}
        if flip:
            g["W1"] = g["W1"] * np.where(np.arange(8) < 4, -1, 1)
        return g

    return loss, grad, params


@pytest.mark.parametrize("returned", [np.asarray, float])
def test_a_sign_flip_in_a_saturated_layer_is_not_a_pass(returned):
    # the flip passed `correct` with a detection floor of 1.5e-8 (of W2's derivatives), with
    # or without a complex step; W1's own derivatives are at most 7e-12
    loss, grad, params = _saturated_tanh_net(returned)
    assert np.abs(grad(params)["W1"]).max() < 1e-11
    result = check_gradient(loss, lambda p: grad(p, flip=True), params)
    assert result.verdict == WRONG, result.report()
    # (with a complex step, W1's own size is known: see SELF_STEPS)
    exact = check_gradient(loss, grad, params).verdict
    assert exact == CORRECT if returned is np.asarray else exact in (CORRECT, CANNOT_TELL)


def test_a_float32_layer_whose_derivatives_round_to_zero_cannot_pass():
    # in float32, 1 - tanh(z) ** 2 is exactly 0 at z = -12 to -18: that formula's claim for W1
    # is 0 where the derivatives are up to 7e-12, and it passed `correct`; 1 / cosh(z) ** 2
    # holds them in float32 too, and its float64 run resolves a sign flip
    loss, grad, params = _saturated_tanh_net(np.asarray, np.float32)
    assert not np.any(grad(params, naive=True)["W1"])
    result = check_gradient(loss, lambda p: grad(p, naive=True), params)
    assert result.verdict in (WRONG, CANNOT_TELL), result.report()
    assert check_gradient(loss, lambda p: grad(p, flip=True), params).verdict == WRONG
    assert check_gradient(loss, grad, params).verdict == CORRECT


@pytest.mark.parametrize("mode", [None, "probes"])
def test_a_float32_claim_of_a_group_that_is_exactly_zero_holds_the_other_groups_rounding(mode):
    # softmax regression with one offset c added to every logit: dL/dc is exactly 0, and the
    # float32 chain rule's sum(p - y) / N holds 4e-9 of rounding, the size of the sums that
    # cancel to it (their terms are b's derivatives, 0.2): it was `wrong` against 2 of its own
    # ulps. An error of 1e-3 of the largest derivative there is still seen
    rng = np.random.default_rng(106)
    X = rng.normal(size=(16, 6)).astype(np.float32)
    Y = np.eye(4, dtype=np.float32)[rng.integers(4, size=16)]
    params = {"W": (0.5 * rng.normal(size=(6, 4))).astype(np.float32),
              "b": (0.1 * rng.normal(size=4)).astype(np.float32),
              "c": np.array([0.3], dtype=np.float32)}  # fmt: skip

    def probabilities(p):
        Z = X @ p["W"] + p["b"] + p["c"][0]
        Z = Z - Z.max(1, keepdims=True)
        E = np.exp(Z)
        return Z, E / E.sum(1, keepdims=True)

    def loss(p):
        Z, P = probabilities(p)
        return -np.sum(Y * (Z - np.log(np.exp(Z).sum(1, keepdims=True)))) / 16

    def grad(p, leak=0.0):
        dZ = (probabilities(p)[1] - Y) / 16
        return {"W": X.T @ dZ, "b": dZ.sum(0), "c": np.array([dZ.sum() + leak], dZ.dtype)}

    assert grad(params)["c"][0] != 0  # the rounding this is about
    assert check_gradient(loss, grad, params, mode=mode).verdict == CORRECT
    largest = float(np.abs(grad(params)["b"]).max())
    leaking = check_gradient(loss, lambda p: grad(p, 1e-3 * largest), params, mode=mode)
    assert leaking.verdict == WRONG


def _deeply_saturated_net(act, shift, inputs, hidden):
    # every hidden unit at pre-activations around -shift: W1's and b1's derivatives lie far
    # below the others' (an outside review's tanh at -20: 7e-17 beside 2.3)
    rng = np.random.default_rng(230)
    X, Y = rng.standard_normal((10, inputs)), rng.standard_normal((10, 3))
    params = {"W1": 0.3 * rng.standard_normal((inputs, hidden)),
              "b1": -shift + 0.2 * rng.standard_normal(hidden),
              "W2": rng.standard_normal((hidden, 3)),
              "b2": 0.1 * rng.standard_normal(3)}  # fmt: skip
    f, slope = {
        "tanh": (np.tanh, lambda z: 1 / np.cosh(z) ** 2),
        "sigmoid": (lambda z: 1 / (1 + np.exp(-z)),
                    lambda z: 1 / ((1 + np.exp(-z)) * (1 + np.exp(z)))),
    }[act]  # fmt: skip

    def loss(p):
        return np.sum((f(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"] - Y) ** 2) / 20

    def grad(p, how=None):
        z = X @ p["W1"] + p["b1"]
        h = f(z)
        do = (h @ p["W2"] + p["b2"] - Y) / 10
        # the naive chain rule rounds the saturated slope to 0 (tanh(-20) is -1 in float64)
        dz = (do @ p["W2"].T) * ((1 - h**2) if how == "naive" else slope(z))
        g = {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ do, "b2": do.sum(0)}
        if how == "flip":
            g["W1"] = -g["W1"]
        return g

    return loss, grad, params


@pytest.mark.parametrize("hidden", [6, 40])  # the full Jacobian; probes (1,000+ parameters)
def test_a_layer_below_the_rounding_of_the_largest_is_sized_by_its_complex_steps(hidden):
    # tanh at -22 (W1's derivatives below 1e-16 of W2's): taken for 0 holding rounding, W1 was
    # judged against W2's size and a sign flip passed `correct`. Its complex steps at three
    # step sizes agree to 1e-15 of themselves: the exact claim holds at W1's own size, and a
    # claim off it within the rounding of W2's (the flip; 1 - tanh ** 2, which is 0 there)
    # cannot be told from rounding
    inputs, shift = (30, 30.0) if hidden > 6 else (4, 22.0)
    loss, grad, params = _deeply_saturated_net("tanh", shift, inputs, hidden)
    g = grad(params)
    assert np.abs(g["W1"]).max() < 1e-15 * np.abs(g["W2"]).max()
    assert not np.any(grad(params, "naive")["W1"])
    assert check_gradient(loss, grad, params).verdict == CORRECT
    for how in ("flip", "naive"):
        result = check_gradient(loss, lambda p, h=how: grad(p, h), params)
        assert result.verdict == CANNOT_TELL, (how, result.report())
        assert "not told from rounding" in result.report()


def test_a_sign_flip_in_a_layer_saturated_above_the_rounding_of_the_largest_is_wrong():
    # sigmoid at -30: W1's derivatives are 3.6e-13 of b2's, 1,600 float64 ulps, below the
    # ZERO_ULPS of a known zero: the flip passed `correct` against b2's size
    loss, grad, params = _deeply_saturated_net("sigmoid", 30.0, 4, 6)
    assert check_gradient(loss, lambda p: grad(p, "flip"), params).verdict == WRONG
    assert check_gradient(loss, grad, params).verdict == CORRECT


def test_a_zero_group_whose_complex_steps_hold_rounding_is_not_sized_by_them():
    # a bias before a batch norm: its derivatives are exactly 0, its complex steps the rounding
    # of sums that cancel (different at each step size): still judged against the largest,
    # the exact claim `correct` and a leak of 1e-3 of the largest `wrong`
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((10, 4)), rng.standard_normal((10, 2))
    params = {"W": rng.standard_normal((4, 5)), "b": rng.standard_normal(5),
              "V": rng.standard_normal((5, 2))}  # fmt: skip

    def normed(p):
        z = X @ p["W"] + p["b"]
        c = z - z.mean(0)
        s = np.sqrt((c**2).mean(0) + 1e-5)
        return z, c, s, c / s

    def loss(p):
        return np.sum((np.tanh(normed(p)[3]) @ p["V"] - Y) ** 2) / 20

    def grad(p, leak=0.0):
        z, c, s, n = normed(p)
        h = np.tanh(n)
        do = (h @ p["V"] - Y) / 10
        dn = (do @ p["V"].T) * (1 - h**2)
        dc = (dn - n * (dn * n).mean(0)) / s
        dz = dc - dc.mean(0)
        return {"W": X.T @ dz, "b": dz.sum(0) + leak, "V": h.T @ do}

    x = np.concatenate([params[k].ravel() for k in ("W", "b", "V")])
    e = np.zeros(x.size)
    e[20] = 1.0  # b[0]

    def f(t):
        return np.atleast_1d(loss({"W": t[:20].reshape(4, 5), "b": t[20:25],
                                   "V": t[25:].reshape(5, 2)}))  # fmt: skip

    # what this is about: the complex steps of b are rounding, and differ with the step
    steps = [np.imag(f(x + 1j * h * e))[0] / h for h in (1e-30, 0.618e-30, 1.414e-30)]
    assert max(abs(v) for v in steps) < 1e-14 and len(set(steps)) > 1
    assert check_gradient(loss, grad, params).verdict == CORRECT
    largest = float(np.abs(grad(params)["V"]).max())
    assert check_gradient(loss, lambda p: grad(p, 1e-3 * largest), params).verdict == WRONG


def test_a_saturated_attention_vjp_is_linear_in_its_cotangent_within_its_rows_rounding():
    # queries and keys behind a softmax saturated by 25: their derivatives are 1e-10 beside
    # the values' 4.8, some below the differences' accuracy (their complex steps size them),
    # and the exact VJP at a random cotangent was off its rows' combination by 9e-14, each
    # row within its own rounding: `wrong` as "not linear in the cotangent" (tolerance 6e-14)
    rng = np.random.default_rng(21)
    params = {k: s * rng.standard_normal((4, 4)) for k, s in (("Wq", 0.5), ("Wk", 0.5), ("Wv", 1))}
    X, M = rng.standard_normal((6, 4)), 25.0 * np.eye(6)

    def parts(p):
        Q, K, V = X @ p["Wq"], X @ p["Wk"], X @ p["Wv"]
        S = 0.5 * Q @ K.T + M
        E = np.exp(S - S.real.max(1, keepdims=True))
        return Q, K, V, E / E.sum(1, keepdims=True)

    def vjp(p, u):
        Q, K, V, P = parts(p)
        dP = u @ V.T
        dS = P * (dP - (dP * P).sum(1, keepdims=True))
        return {"Wq": X.T @ (0.5 * dS @ K), "Wk": X.T @ (0.5 * dS.T @ Q), "Wv": X.T @ (P.T @ u)}

    def attention(p):
        return parts(p)[3] @ parts(p)[2]

    assert check_vjp(attention, vjp, params).verdict == CORRECT
    # a VJP that normalises its cotangent is still not linear in it
    normalised = check_vjp(attention, lambda p, u: vjp(p, u / np.abs(u).max()), params)
    assert normalised.verdict == WRONG, normalised.report()


@pytest.mark.parametrize("inputs, hidden", [(4, 6), (30, 40)])  # full Jacobian; probes
def test_a_float32_group_off_by_the_rounding_of_the_largest_alone_is_not_wrong(inputs, hidden):
    # naive GELU, 0.5 z (1 + erf(z / sqrt 2)), in float32 at z = -5.5: the hidden activations
    # (4e-4) hold float32's rounding of the 1 in 1 + erf, so the float32 claim of W2 is off
    # by 3e-8, where the same code in float64 holds: it was `wrong` against W2's own ulps
    rng = np.random.default_rng(301)
    X, Y = rng.standard_normal((10, inputs)), rng.standard_normal((10, 3))
    params = {"W1": 0.6 / np.sqrt(inputs) * rng.standard_normal((inputs, hidden)),
              "b1": -5.5 + 0.2 * rng.standard_normal(hidden),
              "W2": rng.standard_normal((hidden, 3)),
              "b2": 0.1 * rng.standard_normal(3)}  # fmt: skip
    params = {k: v.astype(np.float32) for k, v in params.items()}
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    root2 = np.sqrt(np.float32(2))

    def forward(p):
        z = X @ p["W1"] + p["b1"]
        h = 0.5 * z * (1 + scipy.special.erf(z / root2))
        return z, h, h @ p["W2"] + p["b2"]

    def loss(p):
        return np.sum((forward(p)[2] - Y) ** 2) / 20

    def grad(p, flip=False):
        z, h, o = forward(p)
        do = (o - Y) / 10
        slope = 0.5 * scipy.special.erfc(-z / root2) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
        dz = (do @ p["W2"].T) * slope.astype(z.dtype)
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": (-1 if flip else 1) * (h.T @ do),
                "b2": do.sum(0)}  # fmt: skip

    assert check_gradient(loss, grad, params).verdict != WRONG
    assert check_gradient(loss, lambda p: grad(p, flip=True), params).verdict == WRONG


def test_a_kink_whose_slopes_lie_below_the_first_accuracy_is_not_taken_at_its_mean():
    # |b| at b = 0 in code that casts to float32 inside, its slopes (1e-5 +- 3e-5) below the
    # first differences' accuracy: the wider steps see the mean of both slopes accurately,
    # and a claim of either slope (both valid) was `wrong` against it
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(32, 6)), rng.normal(size=32)
    kink, slope = 3e-5, 1e-5

    def loss(p):
        w, b = p["w"].astype(np.float32), p["b"].astype(np.float32)
        r = X.astype(np.float32) @ w - y.astype(np.float32)
        return np.mean(r * r) + np.float32(kink) * np.abs(b[0]) + np.float32(slope) * b[0]

    def grad(p, side):
        return {"w": 2 * X.T @ (X @ p["w"] - y) / 32, "b": np.array([slope + side * kink])}

    params = {"w": rng.normal(size=6), "b": np.zeros(1)}
    for side in (-1.0, 1.0):
        result = check_gradient(loss, lambda p, s=side: grad(p, s), params)
        assert result.verdict != WRONG, result.report()
    assert check_gradient(loss, lambda p: grad(p, 3.0), params).verdict != CORRECT


def test_a_tread_as_long_as_the_wider_steps_is_not_taken_for_a_derivative():
    # log(1 + e^-m) at margins of 37 to 60 is exactly 0 in float64 wherever the wider steps
    # reach: differences there say 0 with no error, where the derivatives (a complex step's)
    # are up to 2e-18. Taken as the reference, they made the exact gradient `wrong`
    rng = np.random.default_rng(52)
    X = rng.normal(size=(200, 10))
    w = rng.normal(size=10)
    y = np.sign(X @ w)
    w = w * 45.0 / np.median(np.abs(X @ w))
    keep = np.abs(X @ w) > 37
    X, y = X[keep], y[keep]

    def loss(w):
        return np.mean(np.log(1 + np.exp(-(X @ w) * y)))

    def grad(w):
        return X.T @ (-scipy.special.expit(-(X @ w) * y) * y) / len(y)

    assert loss(w) == 0 and 0 < np.abs(grad(w)).max() < 1e-17
    assert check_gradient(loss, grad, w).verdict in (CORRECT, CANNOT_TELL)


# ------------------------------------------------------------------------------ large, cost


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_probes_catch_one_element_in_a_large_float32_net(dtype):
    loss, grad, params = mlp(dtype, n_in=64, hidden=400, n=32)
    assert sum(v.size for v in params.values()) > 25_000
    good = check_gradient(loss, grad, params)
    assert good.mode.endswith("directional probes") and good.verdict == CORRECT
    for how in ("zero", "1e-3", "flip"):
        assert check_gradient(loss, mutate(grad, how, "W1", 12_345), params).verdict == WRONG


def zero_sample_relu_net(layers=1, mask=lambda z: (z > 0), positive=False, fault=None):
    """relu 24-48-1 (24-32-32-1 for two layers) MSE, batch 6, sample 0 all zeros and biases 0:
    every hidden unit of sample 0 at exactly 0 (over 1,000 parameters: probes). ``fault``:
    (group, index, factor)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 24))
    X[0] = 0.0
    y = rng.standard_normal((6, 1))
    sizes = (24,) + ((48,) if layers == 1 else (32,) * layers) + (1,)
    p = {}
    for k, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False), 1):
        p[f"W{k}"] = rng.standard_normal((a, b)) * np.sqrt(2 / a)
        p[f"b{k}"] = np.zeros(b)
    if positive:
        p[f"W{layers + 1}"] = np.abs(p[f"W{layers + 1}"])

    def forward(p):
        h, zs, hs = X, [], [X]
        for k in range(1, layers + 2):
            z = h @ p[f"W{k}"] + p[f"b{k}"]
            h = np.maximum(z, 0) if k <= layers else z
            zs.append(z)
            hs.append(h)
        return zs, hs

    def loss(p):
        return 0.5 * np.mean((forward(p)[1][-1] - y) ** 2)

    def grad(p):
        zs, hs = forward(p)
        d = (hs[-1] - y) / len(X)
        g = {}
        for k in range(layers + 1, 0, -1):
            g[f"W{k}"], g[f"b{k}"] = hs[k - 1].T @ d, d.sum(0)
            if k > 1:
                d = (d @ p[f"W{k}"].T) * mask(zs[k - 2])
        if fault is not None:
            key, index, factor = fault
            g[key] = g[key].copy()
            g[key][index] *= factor
        return g

    assert sum(v.size for v in p.values()) > 1000
    return loss, grad, p


@pytest.mark.parametrize("positive", [False, True])
def test_probes_hold_each_kinked_element_to_its_own_one_sided_derivatives(positive):
    # a direction over 48 kinks was held between their summed one-sided slopes: with output
    # weights of both signs valid subgradients fell outside (wrong), with one sign an error in
    # a bias at a kink fell inside (not differentiable here)
    for mask in (lambda z: z > 0, lambda z: z >= 0):
        loss, grad, params = zero_sample_relu_net(mask=mask, positive=positive)
        result = check_gradient(loss, grad, params)
        assert result.mode.endswith("directional probes") and result.verdict == KINK
        assert "b1" in {k.group for k in result.kinks}
    loss, grad, params = zero_sample_relu_net(mask=lambda z: 2.0 * (z >= 0), positive=positive)
    assert check_gradient(loss, grad, params).verdict == WRONG
    for fault in (("b1", 3, 0.0), ("W2", (5, 0), 1.001), ("W1", (2, 7), 1.001)):
        loss, grad, params = zero_sample_relu_net(positive=positive, fault=fault)
        result = check_gradient(loss, grad, params)
        assert result.verdict == WRONG, (fault, result.report())


@pytest.mark.parametrize("mode", ["full", "probes"])  # (apart: the longest test, halved)
def test_kinks_meeting_in_one_element_are_not_called_wrong_for_a_valid_mixture(mode):
    # two relu layers with every unit of sample 0 at exactly 0: along a first-layer bias the
    # second layer's kinks meet its own, and relu'(0) = 1 everywhere (the limit of gradients
    # where all of them are on) lies beyond both one-sided derivatives there
    loss, grad, params = zero_sample_relu_net(layers=2, mask=lambda z: z >= 0)
    result = check_gradient(loss, grad, params, mode=mode)
    assert result.verdict == CANNOT_TELL, (mode, result.report())
    undecided = [k for k in result.kinks if not k.decided]
    assert undecided and all(k.nearby is not None for k in undecided)
    assert "UNDECIDED" in result.report()
    loss, grad, params = zero_sample_relu_net(layers=2)
    assert check_gradient(loss, grad, params, mode=mode).verdict == KINK
    loss, grad, params = zero_sample_relu_net(layers=2, mask=lambda z: 2.0 * (z >= 0))
    assert check_gradient(loss, grad, params, mode=mode).verdict == WRONG


def test_derivatives_nearby_are_the_mixtures_of_slopes_where_kinks_meet():
    from backprop_bench.verify import references as R

    # along x0 at 0 two kinks cancel: one-sided slopes 0 and 0, but nearby the units turn
    # apart, so the derivative is 1, 0 or -1, plus a smooth part 3 x0 + x1^2 drifting away
    def fun(x):
        return np.array([np.maximum(x[0] + x[1], 0) - np.maximum(x[0] - x[2], 0)
                         + 1.5 * x[0] ** 2 + x[0] * x[1] ** 2 + np.sin(x[3])])  # fmt: skip

    f = R.Evaluator(lambda x: x, fun, lambda x: x, 1)
    x, e = np.zeros(4), np.eye(4)[0]
    noise = np.array([1e-16])
    d = R.nearby(f, x, e, noise, R.base_step(x, e, fun(x), noise), np.random.default_rng(0),
                 points=16)  # fmt: skip
    values = d.value[:, 0]
    # every value within Clarke's [-1, 1] (a central difference that straddles a kink gives a
    # mean of two mixtures), nearly all on a mixture once the drift (3 x0, x1^2) is taken out
    assert np.all(np.abs(values) <= 1 + 1e-6)
    off = np.abs(values[:, None] - np.array([-1.0, 0.0, 1.0])).min(axis=1)
    assert np.mean(off < 1e-6) >= 0.75
    assert {-1, 1} <= set(np.round(values[off < 1e-6]).astype(int).tolist())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_limit_of_gradients_beyond_both_one_sided_derivatives_is_not_wrong(dtype):
    # 2 relu(p0 + p1) - relu(p0 - p2) at 0: along p0 the one-sided slopes are 0 and 1, but
    # with p0 + p1 > 0 > p0 - p2 the gradient's kinked part is (2, 2, 0), a valid claim for
    # p0 beyond both. Code that computes in float32 (astype inside) was called wrong: its
    # derivatives nearby were not looked at, and values whose rounding spans the gap between
    # the sides counted as seeing both, the evidence of one kink alone
    a = np.random.default_rng(0).normal(size=6).astype(dtype)

    def fun(p):
        p = p.astype(dtype)
        kinked = dtype(2) * np.maximum(p[0] + p[1], 0) - np.maximum(p[0] - p[2], 0)
        return np.sum(a * p) + dtype(0.5) * np.sum(p * p) + dtype(10) + kinked

    def grad(p, extra=0.0):
        g = (a + p.astype(dtype)).astype(dtype)
        g[0] += dtype(2 + extra)
        g[1] += dtype(2)
        return g

    x = np.zeros(6, dtype=dtype)
    x[3:] = 0.5
    assert check_gradient(fun, grad, x).verdict != WRONG
    if dtype == np.float64:  # p0's limits reach 2 at most: 3 is beyond the mixtures seen
        assert check_gradient(fun, lambda p: grad(p, 1.0), x).verdict in (WRONG, CANNOT_TELL)


def test_a_kink_does_not_pass_a_check_that_could_not_have_seen_a_sizable_error():
    # float32 code (astype inside) at a point where two kinks of 0.1 meet in p0: the element's
    # reference, a fit in float32 across the kink, could not have seen an error below 0.53 of
    # the largest derivative, and a claim 0.25 off in p0 passed as not differentiable here,
    # because a kink elsewhere passed; the floor now decides as it does at smooth points
    a = np.random.default_rng(0).normal(size=6).astype(np.float32)

    def fun(p):
        p = p.astype(np.float32)
        kinked = np.float32(2) * np.maximum(p[0] + p[1], 0) - np.maximum(p[0] - p[2], 0)
        smooth = np.sum(a * p) + np.float32(0.5) * np.sum(p * p) + np.float32(10)
        return smooth + np.float32(0.1) * kinked

    def grad(p):
        g = (a + p.astype(np.float32)).astype(np.float32)
        g[0] += np.float32(0.3)  # p0's kinked part reaches 0.2 at most
        return g

    x = np.zeros(6, dtype=np.float32)
    x[3:] = 0.5
    result = check_gradient(fun, grad, x)
    assert not result and result.verdict == CANNOT_TELL and result.floor > 0.1


def test_derivatives_nearby_at_points_spread_over_orders_do_not_straddle_a_lone_kink():
    from backprop_bench.verify import references as R

    # relu(p0) at p0 = 0 alone: every derivative nearby along p0 is 0 or 1. A point spread over
    # orders lies as close as 1e-3 of the usual distance; a step of the usual size there
    # straddles the kink by the same share at all three distances, a false mixture that
    # left a claim of 2 undecided (test_a_claim_outside_the_one_sided_derivatives_is_wrong)
    f = R.Evaluator(lambda x: x, lambda x: np.array([relu_loss(x)]), lambda x: x, 1)
    x, e = np.array([0.0, 1.0, -1.0]), np.eye(3)[0]
    noise = np.array([1e-16])
    h = R.base_step(x, e, np.array([relu_loss(x)]), noise)

    def off_both_sides(**how):
        d = R.nearby(f, x, e, noise, h, np.random.default_rng(0), **how)
        values = d.value[d.linear[:, 0].astype(bool), 0]
        return int(np.sum(np.minimum(np.abs(values), np.abs(values - 1)) > 1e-6)), len(values)

    assert off_both_sides() == (0, 32)
    assert off_both_sides(narrow=False)[0] >= 1


@pytest.mark.parametrize(
    "values, verdict",
    [
        ([0.0] * 8 + [1.0] * 8, "wrong"),  # one kink, both sides seen: 1.5 is no subgradient
        ([1.0] * 16, "undecided"),  # one side only: no evidence of one kink
        ([0.0] * 8 + [1.0] * 7 + [1.7], "undecided"),  # one mixture: kinks meet, maybe more
        ([0.0] * 8 + [1.0] * 6 + [1.2, 1.7], "valid"),  # mixtures on both sides of the claim
        ([0.0] * 8 + [1.0] * 6 + [1.2, 1.3], "undecided"),  # mixtures, all short of it
        ([0.0] * 8 + [1.0] * 6 + [2.5, 3.0], "drifting"),  # no mixtures: they drift fast
    ],
)
def test_a_claim_beyond_a_kink_is_judged_by_the_mixtures_seen_nearby(values, verdict):
    from backprop_bench.verify.check import _at_kink

    values = np.array(values)
    errors, linear = np.full(16, 1e-9), np.ones(16, dtype=bool)
    moved = np.full(16, 1e-7)
    if verdict == "drifting":
        # moved by more than they lie beyond (a fast oscillation): void, and what is left is
        # one kink's two slopes
        moved[values > 2] = 1.0
        verdict = "wrong"
    from backprop_bench.verify.references import Derivative

    seen = Derivative(values[:, None], errors[:, None], "derivatives nearby")
    seen.moved, seen.linear = moved[:, None], linear[:, None]
    passed, decided, _ = _at_kink([(1.5, 2.0**-52)], 0.0, 1.0, 1e-9, seen)
    assert {"wrong": (False, True), "undecided": (False, False),
            "valid": (True, True)}[verdict] == (passed, decided)  # fmt: skip


def test_a_value_nearby_that_agrees_with_the_claim_within_its_margin_leaves_it_undecided():
    from backprop_bench.verify.check import _at_kink
    from backprop_bench.verify.references import Derivative

    # both sides seen accurately, and one value near the upper side whose margin holds the
    # claim 1.01: it may be the claim's own mixture, 0.01 past that side (a two-layer ReLU
    # net: a valid claim was wrong, that value counted as the side)
    values = np.array([0.0] * 8 + [1.0] * 7 + [1.012])
    errors = np.array([1e-9] * 15 + [0.01])
    seen = Derivative(values[:, None], errors[:, None], "derivatives nearby")
    seen.moved, seen.linear = np.full((16, 1), 1e-7), np.ones((16, 1), dtype=bool)
    assert _at_kink([(1.01, 2.0**-52)], 0.0, 1.0, 1e-9, seen)[:2] == (False, False)
    # a claim beyond that margin is still wrong: one kink, both sides seen
    assert _at_kink([(1.5, 2.0**-52)], 0.0, 1.0, 1e-9, seen)[:2] == (False, True)


def test_no_cost_cliff_4000_parameters_on_a_1024_sample_batch():
    loss, grad, params = mlp(np.float32, n_in=32, hidden=120, n=1024)
    n = sum(v.size for v in params.values())
    assert 4000 <= n <= 4100
    started = time.perf_counter()
    result = check_gradient(loss, grad, params)
    assert result.verdict == CORRECT
    assert time.perf_counter() - started < 30  # generous on a loaded 2-core machine; ~0.2 s idle


def test_budget_and_mode_choose_between_full_jacobian_and_probes():
    loss, grad, params = mlp(np.float64)
    assert check_gradient(loss, grad, params).mode == "full Jacobian"
    assert check_gradient(loss, grad, params, budget=1e-9).mode.endswith("probes")
    assert check_gradient(loss, grad, params, mode="probes").mode.endswith("probes")


class CallClock:
    """A clock that moves only when the function is called: a machine on which one call of fun
    takes ``per_call`` seconds, whatever else it is doing."""

    def __init__(self, per_call):
        self.now, self.per_call = 0.0, per_call

    def perf_counter(self):
        return self.now

    def slowed(self, fun):
        def call(*args, **kwargs):
            self.now += self.per_call
            return fun(*args, **kwargs)

        return call


def checked_at_speed(monkeypatch, per_call, loss, grad, params, **options):
    import backprop_bench.verify.check as check

    clock = CallClock(per_call)
    monkeypatch.setattr(check, "time", clock)
    result = check_gradient(clock.slowed(loss), grad, params, progress=False, **options)
    return result, (result.verdict, result.mode, result.evaluations, result.floor, result.notes)


@pytest.mark.parametrize("case", ["float32 inside, correct", "float32 inside, 1e-3",
                                  "float64, 1e-3", "refinement cut by its count"])  # fmt: skip
def test_the_verdict_does_not_depend_on_how_fast_the_machine_is(monkeypatch, case):
    # the checker timed its plan (a 1 s budget and shares of it): float32 mutants moved between
    # wrong and cannot tell, and nets between the full Jacobian and probes, with the machine's load
    import backprop_bench.verify.check as check

    if case == "refinement cut by its count":
        monkeypatch.setattr(check, "REFINE_EVALS", 2)
    dtype = np.float64 if case.startswith("float64") else np.float32
    loss, grad, params = mlp(dtype, cast=dtype == np.float32)
    if case.endswith("1e-3"):
        grad = mutate(grad, "1e-3", "W1", 7)
    outcomes = [checked_at_speed(monkeypatch, t, loss, grad, params)[1] for t in (1e-7, 2e-3)]
    assert outcomes[0] == outcomes[1]
    assert not any("budget" in note for note in outcomes[0][4])
    if case == "refinement cut by its count":
        assert any("within 2 evaluations per parameter" in note for note in outcomes[0][4])


def test_the_full_jacobian_up_to_full_params_whatever_one_call_costs(monkeypatch):
    import backprop_bench.verify.check as check

    for n, mode in ((check.FULL_PARAMS, "full Jacobian"), (check.FULL_PARAMS + 1, "probes")):
        x = np.linspace(-1, 1, n)
        for per_call in (1e-7, 1e-3):
            result, _ = checked_at_speed(monkeypatch, per_call, lambda p: np.sum(p**2),
                                         lambda p: 2 * p, x)  # fmt: skip
            assert result.mode.endswith(mode) and result.verdict == CORRECT, (n, per_call)


def test_a_slow_function_of_few_parameters_keeps_the_full_jacobian(monkeypatch):
    """Probes of 20 elements take more evaluations than their full Jacobian (14 directions of
    about 8 each, against 4 a parameter): over the budget, the full Jacobian stays, where it
    was replaced by probes that took longer (measured: 2.6 s against 2.0 s at 0.02 s a call)."""
    x = np.linspace(-1, 1, 20)
    result, _ = checked_at_speed(monkeypatch, 1.0, lambda p: np.sum(np.sin(p) * p),
                                 lambda p: np.cos(p) * p + np.sin(p), x)  # fmt: skip
    assert result.mode == "full Jacobian" and result.verdict == CORRECT
    assert not any("probes were used instead" in note for note in result.notes)


def test_slow_functions_meet_the_time_guard_and_say_so(monkeypatch):
    loss, grad, params = mlp(np.float32, cast=True)
    # 97 parameters: a full Jacobian of about 400 calls at 0.1 s a call is over the 20 s budget
    result, _ = checked_at_speed(monkeypatch, 0.1, loss, grad, params)
    assert result.mode.endswith("probes")
    assert any("over budget=20" in note and "mode='full'" in note for note in result.notes)
    # forced to the full Jacobian, refinement stops at the guard
    result, _ = checked_at_speed(monkeypatch, 0.03, loss, grad, params, mode="full")
    assert any("within budget=20 s" in note for note in result.notes), result.notes
    assert result.verdict in (CORRECT, CANNOT_TELL)


def test_a_progress_line_on_long_checks(capsys, monkeypatch):
    import backprop_bench.verify.check as check

    monkeypatch.setattr(check, "PROGRESS_AFTER", 0.0)
    loss, grad, params = mlp(np.float64)
    check_gradient(loss, grad, params, progress=True)
    assert "gradient check:" in capsys.readouterr().err
    check_gradient(loss, grad, params, progress=False)
    assert capsys.readouterr().err == ""
    # a slow function's first column or probe may take many calls (at a second a call, the
    # first line came after 61 s): lines come between the calls too, before the first column
    check_gradient(loss, grad, params, progress=True, mode="full")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("gradient check: evaluations so far: "), lines[:3]
    assert lines.index(next(line for line in lines if "columns 1/" in line)) > 0


# ------------------------------------------------------------------------------ the result


def test_every_verdict_in_json_form_and_in_assert_gradients_close():
    import itertools
    import json

    loss, grad, params = mlp(np.float64)
    result = check_gradient(loss, grad, params)
    as_json = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert as_json["verdict"] in VERDICTS and as_json["passed"] is True
    assert as_json == result.as_dict()  # lists, not tuples: the same after a round trip
    # strict JSON where the result holds inf and NaN too (JavaScript's JSON.parse, Go's and
    # Rust's parsers refuse NaN and Infinity): a NaN claim, a 'not deterministic' floor
    nan_claim = check_gradient(loss, lambda p: {k: v * np.nan for k, v in grad(p).items()},
                               params)  # fmt: skip
    calls = itertools.count()  # state kept between calls: 'not deterministic', floor inf
    noisy = check_gradient(lambda p: loss(p) + 1e-3 * next(calls), grad, params)
    for other in (nan_claim, noisy):
        text = json.dumps(other.as_dict(), allow_nan=False)
        assert json.loads(text)["verdict"] == other.verdict
    assert_gradients_close(loss, grad, params)
    with pytest.raises(AssertionError, match="FAILED: wrong"):
        assert_gradients_close(loss, mutate(grad, "flip", "W1", 0), params)


# ------------------------------------------------------------------------------ bad input


def f(p):
    return np.sum(np.sin(p))


@pytest.mark.parametrize(
    "fun, grad, params, error, message",
    [
        (f, lambda p: None, np.ones(3), TypeError, "grad returned None"),
        (f, lambda p: "zero", np.ones(3), TypeError, "grad returned str"),
        (f, lambda p: [1, 2], np.ones(3), ValueError, r"shape \(2,\)"),
        (f, np.cos, np.array([1.0, np.nan]), ValueError, "holds NaN or inf at \\(1,\\)"),
        (f, np.cos, np.array([1.0, np.inf]), ValueError, "holds NaN or inf"),
        (f, np.cos, np.arange(3), TypeError, "dtype int64; gradients need floating point"),
        (lambda p: 3, np.cos, np.ones(3), TypeError, "fun returned int64"),
        (lambda p: None, np.cos, np.ones(3), TypeError, "fun returned None"),
        (f, np.cos, None, TypeError, "parameter 'params' is None"),
        (f, np.cos, np.ones(0), ValueError, "is empty"),
        (f, 3, np.ones(3), TypeError, "must be callables"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(fun, grad, params, error, message):
    with pytest.raises(error, match=message) as raised:
        check_gradient(fun, grad, params)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "fun, grad, params, error, message",
    [
        (f, lambda p: (np.cos(p), f(p)), np.ones(3), TypeError, r"a \(gradient, loss\) pair"),
        # a tuple of as many grads as params' names: not a (gradient, loss) pair (an audit)
        (lambda p: f(p["a"]) + f(p["b"]), lambda p: (np.cos(p["a"]), np.cos(p["b"])),
         {"a": np.ones(3), "b": np.ones(2)}, TypeError,
         r"return a dict with params' names \('a', 'b'\)"),
        (lambda p: f(p[0]), np.cos, (np.ones(3), np.ones(2)), TypeError, "pass a dict of named"),
        (f, np.cos, np.array([True, False]), TypeError, "dtype bool; pass it as np.asarray"),
        (f, np.cos, np.array([0.5, 1.0], dtype=object), TypeError, "dtype object"),
        (f, np.cos, np.array([1 + 1j, 2.0]), TypeError, "is complex; the check takes real"),
        (f, np.cos, {"layer": {"W": np.ones(2)}}, TypeError, "a dict inside params"),
    ],
)
def test_more_bad_input_is_one_line_naming_the_fix(fun, grad, params, error, message):
    # (they ended in NumPy's messages from deep inside the check, or, for complex params, in a
    # suggestion that dropped the imaginary parts)
    with pytest.raises(error, match=message) as raised:
        check_gradient(fun, grad, params)
    assert "\n" not in str(raised.value)


def test_bad_seeds_and_jvps_are_named():
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got 'zero'"):
        check_gradient(f, np.cos, np.ones(3), seed="zero")
    with pytest.raises(ValueError, match="rng_seed must be a non-negative integer or None"):
        check_gradient(lambda p, rng: f(p), lambda p, rng: np.cos(p), np.ones(3), rng_seed=-1)
    A = np.arange(6.0).reshape(2, 3) / 5
    for jvp, got in ((lambda x, v: v.copy(), r"ndarray of shape \(3,\)"), (lambda x, v: None,
                                                                             "None")):
        with pytest.raises(ValueError, match=f"jvp returned {got}; it must return J v"):
            check_vjp(lambda x: A @ x, lambda x, u: A.T @ u, np.ones(3), jvp=jvp)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match="check_gradient"):
        check_gradient(f, np.cos, np.ones(3), frob=1)
    with pytest.raises(ValueError, match="budget"):
        check_gradient(f, np.cos, np.ones(3), budget=-1)
    with pytest.raises(ValueError, match="mode"):
        check_gradient(f, np.cos, np.ones(3), mode="fast")


def test_a_point_1e_15_from_a_kink_is_resolved_where_the_function_is_small_enough():
    # one-sided steps stopped at 16 levels (about 1e-14 here): the kink 1e-15 away was taken
    # for one at the point, and the other side's slope passed as a subgradient. They now go on
    # while the function's rounding allows (in a loss of order 1 it does not: see the README)
    x = np.full(20, 1e-6)  # a loss of about 2e-5, rounding about 1e-20: resolves 1e-16 steps
    x[3] = 1e-15
    w = np.linspace(0.5, 1.5, 20)

    def loss(p):
        return np.sum(np.maximum(p, 0) * w)

    def grad(p, other_side=False):
        g = (p > 0) * w
        if other_side:
            g[3] = 0.0
        return g

    assert check_gradient(loss, grad, x).verdict == CORRECT
    result = check_gradient(loss, lambda p: grad(p, True), x)
    assert result.verdict == WRONG and not result.kinks


@pytest.mark.parametrize("distance", [1e-9, 1e-8])
def test_points_within_a_step_of_a_kink_in_probes(distance):
    # 1,200 parameters, two 1e-9 from a ReLU's kink: a probe crossing them was held between the
    # summed one-sided slopes, and the other side's slope passed as not differentiable here
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 1.5, 1200)
    x = rng.standard_normal(1200)
    x[5], x[9] = distance, -distance

    def loss(p):
        return np.sum(np.maximum(p, 0) * w)

    good = check_gradient(loss, lambda p: (p > 0) * w, x)
    assert good.mode.endswith("directional probes") and good.verdict in (CORRECT, CANNOT_TELL)
    other_side = check_gradient(loss, lambda p: np.where(np.arange(1200) == 9, w, (p > 0) * w), x)
    assert not other_side.passed
    if distance == 1e-9:
        assert good.verdict == CORRECT and other_side.verdict == WRONG


def test_kinks_cancelling_along_a_probe_are_split_not_called_wrong():
    # |a| - |b| at 0 with sign(0) = 1: every vector of [-1, 1]^2 is a subgradient, but along
    # (-1, 1) both kinks turn together and the function is flat there, so the probe looked
    # smooth and the claim (1, -1) was wrong; the points nearby show the mixtures and split it
    c = np.array([1.0, -1.0])

    def loss(p):
        return float(np.sum(c * np.abs(p))) + 0.0625 * float(np.sum(p**3))

    def grad(p, at_zero=1.0):
        s = np.sign(p)
        s[p == 0] = at_zero
        return c * s + 3 * 0.0625 * p**2

    assert check_gradient(loss, grad, np.zeros(2), mode="probes").verdict == KINK
    assert check_gradient(loss, lambda p: grad(p, 2.0), np.zeros(2), mode="probes").verdict == WRONG


def test_a_kink_confirmed_wrong_is_wrong_when_the_suspects_run_out():
    # relu 32-32-4, 1,188 parameters, the full Jacobian: 4 zero-input samples and half the units
    # at exactly 0 for a fifth sample (through W1 too), relu'(0) = 2. Its kinks failed their
    # one-sided derivatives, but only smooth errors counted as confirmed wrong, so running out of
    # evaluations for the other suspects made it cannot tell
    rng = np.random.default_rng(0)
    X = rng.integers(-8, 9, size=(16, 32)) / 4.0
    X[:4] = 0.0
    Y = rng.integers(-4, 5, size=(16, 4)) / 4.0
    W1 = rng.integers(-8, 9, size=(32, 32)) / 8.0
    b1 = np.zeros(32)
    b1[16:] = -(X @ W1)[4, 16:]
    b1[1:3] = -1000.0
    p = {"W1": W1, "b1": b1, "W2": rng.integers(-8, 9, size=(32, 4)) / 8.0,
         "b2": rng.integers(-4, 5, size=4) / 8.0}  # fmt: skip

    def loss(p):
        h = np.maximum(X @ p["W1"] + p["b1"], 0)
        return 0.5 * np.sum((h @ p["W2"] + p["b2"] - Y) ** 2) / len(X)

    def grad(p, at_zero):
        z = X @ p["W1"] + p["b1"]
        h = np.maximum(z, 0)
        d = (h @ p["W2"] + p["b2"] - Y) / len(X)
        dz = (d @ p["W2"].T) * np.where(z > 0, 1.0, np.where(z == 0, at_zero, 0.0))
        return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": h.T @ d, "b2": d.sum(0)}

    for at_zero in (2.0, -1.0):
        result = check_gradient(loss, lambda p, a=at_zero: grad(p, a), p, mode="full")
        assert result.verdict == WRONG, result.report()[:2000]


def _three_relus_in_two_parameters():
    """offset + c . relu(A p) + softplus(b . p) + 1/2 sum q (p - mu)^2 at a point where three
    relus meet in p0 and p1: relu(a . p) and relu(-a . p) (coefficients 1.3 and -0.8) and
    relu(a' . p) with a' 31 degrees from a; a fourth unit, off, has a margin. The gradient of
    each piece around the point, by its units' on/off pattern, is a valid claim there."""
    A = np.array([[-0.890592, -0.454671, 0.0], [0.890592, 0.454671, 0.0],
                  [-0.991647, 0.060144, 0.0], [-1.074412, -0.033777, 0.802867]])  # fmt: skip
    c = np.array([1.3, -0.8, -0.920475, -1.344215])
    b = np.array([-0.264205, -1.097671, -0.744515])
    q = np.array([0.822963, 0.740318, 1.418809])
    mu = np.array([0.271264, 0.156751, -0.186931])

    def fun(p):
        return (10.0 + c @ np.maximum(A @ p, 0.0) + np.logaddexp(0.0, b @ p)
                + 0.5 * np.sum(q * (p - mu) ** 2))  # fmt: skip

    def piece(on):
        def grad(p):
            active = np.r_[on, float(A[3] @ p > 0)]
            return A.T @ (c * active) + q * (p - mu) + b / (1.0 + np.exp(-(b @ p)))

        return grad

    return fun, piece, np.array([0.0, 0.0, -0.274138])


def test_a_limit_of_gradients_that_the_first_points_nearby_missed_is_not_wrong():
    # the piece where relu(a . p) alone is on, a sector of about 31 degrees of the plane of p0
    # and p1: the one-sided derivatives along p0 (-1.08 and -0.61) are other pieces', and none
    # of the 32 points nearby lay in it, so its claim of -1.53 there was called wrong; the
    # points looked at again before a kink's claim is decided wrong (CONFIRM_POINTS) show it
    fun, piece, x = _three_relus_in_two_parameters()
    result = check_gradient(fun, piece([1.0, 0.0, 0.0]), x)
    assert result and result.verdict == KINK, result.report()
    # and a claim beyond every piece's stays wrong
    beyond = piece([1.0, 0.0, 0.0])
    result = check_gradient(fun, lambda p: beyond(p) + np.array([2.1, 1.6, 0.0]), x)
    assert not result and result.verdict == WRONG, result.report()


def test_kinks_of_both_signs_that_meet_do_not_hold_a_valid_claim_to_a_convex_bound():
    # four relus meeting in three parameters, coefficients of both signs (two of them a and
    # -a): every element's slope rises at its kink, and directions over all of them held each
    # piece's gradient between their one-sided derivatives, as a convex function's would be.
    # The function is not convex there: the gradient of the piece where units 1 and 2 are on,
    # valid, was called wrong along a random direction, 1.1 beyond a one-sided derivative.
    # Derivatives nearby along it lie beyond both one-sided ones, and the claim among them
    A = np.array([[-1.641397, -0.005203, -0.623464, 0.0], [1.641397, 0.005203, 0.623464, 0.0],
                  [0.148632, -1.608188, 0.241772, 0.0], [0.235381, 1.575626, 0.316645, 0.0]])
    c = np.array([1.3, -0.8, 2.552729, -2.215646])
    b = np.array([0.550901, -0.164952, -0.440323, -0.328143])
    q = np.array([1.914206, 1.498486, 0.700094, 1.246801])
    mu = np.array([-1.829604, -0.003081, -0.892056, 0.775872])

    def fun(p):
        return (10.0 + c @ np.maximum(A @ p, 0.0) + np.logaddexp(0.0, b @ p)
                + 0.5 * np.sum(q * (p - mu) ** 2))  # fmt: skip

    def piece(on):
        return lambda p: A.T @ (c * on) + q * (p - mu) + b / (1.0 + np.exp(-(b @ p)))

    x = np.array([0.0, 0.0, 0.0, 0.659148])
    result = check_gradient(fun, piece(np.array([0.0, 1.0, 1.0, 0.0])), x)
    assert result and result.verdict == KINK, result.report()
    # a claim 3 beyond along p0 no longer fails on the convex bound: where kinks of both signs
    # meet, beyond every derivative seen, a valid piece thinner than the points see might
    # still hold it, so the check cannot tell (it does not pass)
    result = check_gradient(fun, lambda p: piece(np.array([0.0, 1.0, 1.0, 0.0]))(p)
                            + np.array([3.0, 0.0, 0.0, 0.0]), x)  # fmt: skip
    assert not result and result.verdict == CANNOT_TELL, result.report()


def _relu_of_relus_at_zero():
    """relu(c + sum_k w_k relu(b_k)) + smooth terms at c = b = 0, every w_k < 0: along each b_k
    alone the function is flat both ways (the outer relu stays off), yet where c outweighs them
    the outer relu is on and the b_k that are on slope at w_k. The gradient with every relu on,
    a limit of gradients along (1, e, e, e), is valid; returns fun, that gradient, x."""
    w = np.array([-1.0, -0.5, -0.25])
    q = np.array([0.3, 0.7, 1.1, 0.9])

    def fun(p):
        return np.maximum(p[0] + w @ np.maximum(p[1:], 0.0), 0.0) + 0.5 * q @ (p - 0.2) ** 2

    def grad(p):
        return np.concatenate([[1.0], w]) + q * (p - 0.2)

    return fun, grad, np.zeros(4)


def test_a_limit_of_gradients_at_stacked_kinks_flat_along_each_element_is_not_wrong():
    # along b_k alone the function's slope is the smooth part's at x, both ways, and a claim of
    # w_k more was called wrong there; the points that c leads (references.dominant) lie on the
    # pieces where the outer relu is on, and show the claim's slope
    fun, grad, x = _relu_of_relus_at_zero()
    result = check_gradient(fun, grad, x)
    assert result and result.verdict == KINK, result.report()
    assert "smooth along it at" in result.report()  # and says why it is a kink all the same
    # a slope twice w_1 lies beyond every piece's: still wrong
    result = check_gradient(fun, lambda p: grad(p) + np.array([0.0, -1.0, 0.0, 0.0]), x)
    assert not result and result.verdict == WRONG, result.report()


def test_a_limit_of_gradients_at_stacked_kinks_is_not_wrong_along_directions_over_them():
    # relu(c + w . relu(b)) + 0.3 relu(b_1) at 0: every element kinked, and along each direction
    # over all of them (all up, all down, random signs) the function is smooth, the outer relu
    # off both ways, at one slope; the claim with every relu on slopes at -9.5 along the first.
    # Its piece, c outweighing every b_k and every b_k on, is a cone that random points nearby
    # enter once in 16 draws or less, and the claim was called wrong along four directions;
    # the points the claim's own sides lead to (references.claimed) show its slopes
    w = np.array([-1.0, -2.0, -3.0, -4.0])
    q = np.array([0.3, 0.7, 1.1, 0.9, 0.5])

    def fun(p):
        return (np.maximum(p[0] + w @ np.maximum(p[1:], 0.0), 0.0) + 0.3 * max(p[1], 0.0)
                + 0.5 * q @ (p - 0.2) ** 2)  # fmt: skip

    def piece(on_b, extra=0.0):  # the outer relu on, the b_k on where on_b, and b_1's own relu
        return lambda p: (np.concatenate([[1.0], w * on_b]) + q * (p - 0.2)
                          + np.array([0.0, 0.3 * on_b[0] + extra, 0.0, 0.0, 0.0]))  # fmt: skip

    x = np.zeros(5)
    for on_b in ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]):
        result = check_gradient(fun, piece(np.array(on_b)), x)
        assert result and result.verdict == KINK, (on_b, result.report())
    # b_1's slope 1 beyond every piece's: still wrong
    result = check_gradient(fun, piece(np.ones(4), extra=-1.0), x)
    assert not result and result.verdict == WRONG, result.report()


def _relus_of_relus(W, a, s, q):
    """a . relu(c + W relu(b)) + s . relu(b) + smooth at c = b = 0, and the gradient of the piece
    where the outer units on_outer and the inner ones on_b are on, and every piece's gradient."""
    m, k = W.shape

    def fun(p):
        c, b = p[:m], p[m:]
        return a @ np.maximum(c + W @ np.maximum(b, 0.0), 0.0) + s @ np.maximum(b, 0.0) + (
            0.5 * q @ (p - 0.2) ** 2)

    def piece(p, on_outer, on_b):
        gc = a * on_outer
        return np.concatenate([gc, (W.T @ gc + s) * on_b]) + q * (p - 0.2)

    def pattern(r):  # the units on at x + t r for small t
        b = np.maximum(r[m:], 0.0)
        return (r[:m] + W @ b > 0).astype(float), (r[m:] > 0).astype(float)

    every = np.array([piece(np.zeros(m + k), np.array(o), np.array(i))
                      for o in np.ndindex(*(2,) * m) for i in np.ndindex(*(2,) * k)])  # fmt: skip
    return fun, piece, pattern, every


def _outside_every_mixture(g, every):
    """Whether g lies outside the convex hull of ``every`` (a linear program): then outside
    Clarke's subdifferential, which every piece's gradient spans at most."""
    from scipy.optimize import linprog

    n = len(every)
    res = linprog(np.zeros(n), A_eq=np.vstack([every.T, np.ones(n)]),
                  b_eq=np.concatenate([g, [1.0]]), bounds=[(0, None)] * n, method="highs")
    return res.status != 0


@pytest.mark.parametrize(
    "W, a, s, q, r, j, delta",
    [
        # convex through its kinks (every weight positive): along the direction from the
        # gradients seen nearby to the claim, the claim rises faster than the function
        ([[0.82, 0.33, 1.3]], [1.33], [0.0, 0.0, 0.03], [0.83, 0.44, 0.56, 0.31],
         [0.049, 2.002, 0.189, -0.633], 0, -0.814),
        # weights of both signs: no direction's one-sided derivatives bound the claim, and it
        # lies outside every mixture of the pieces seen near x
        ([[-0.17, -1.66, 0.66, 1.64], [-0.01, -0.62, -0.15, -1.61]], [-1.29, 1.48],
         [0.0, 0.0, 0.0, 0.61], [0.6, 0.59, 0.6, 0.97, 0.48, 0.38],
         [-1.259, 1.514, 1.346, 0.781, 0.264, -0.314], 1, -0.736),
    ],
)
def test_a_claim_outside_every_mixture_of_the_pieces_does_not_pass(W, a, s, q, r, j, delta):
    # a piece's gradient with one element moved: each element still within its own one-sided
    # derivatives (or the derivatives nearby), so every element passed, and along the random
    # directions over them the claim passed too. Both were passed as subgradients
    fun, piece, pattern, every = _relus_of_relus(*(np.array(v, dtype=float) for v in (W, a, s, q)))
    x = np.zeros(len(r))
    on_outer, on_b = pattern(np.array(r))
    moved = delta * np.eye(len(r))[j]
    assert _outside_every_mixture(piece(x, on_outer, on_b) + moved, every)  # invalid for sure
    result = check_gradient(fun, lambda p: piece(p, on_outer, on_b) + moved, x)
    assert not result and result.verdict in (WRONG, CANNOT_TELL), result.report()
    if W[0][0] > 0:  # the convex one is decided
        assert result.verdict == WRONG, result.report()
    # the piece itself, a limit of gradients at x, passes
    result = check_gradient(fun, lambda p: piece(p, on_outer, on_b), x)
    assert result and result.verdict == KINK, result.report()


def _rnn_hidden_states(dtype, bug=None):
    """A tanh RNN (T = 10 steps, batch 3, 3 inputs, 8 units) as a function of its params whose
    outputs are its hidden states, and its textbook backprop through time (``bug``: the
    derivative of tanh taken from the pre-activation, 1 - z ** 2)."""
    T, B, D, H = 10, 3, 3, 8
    rng = np.random.default_rng(1017)
    W_xh = rng.normal(scale=1 / np.sqrt(D), size=(H, D))
    W_hh = rng.normal(scale=1 / np.sqrt(H), size=(H, H))
    b = rng.normal(scale=0.1, size=H)
    rng.normal(size=(2 * H + 2))  # the review's output layer, not used here: its draw kept
    x = rng.normal(size=(T, B, D)).astype(dtype)
    params = {"W_xh": W_xh.astype(dtype), "W_hh": W_hh.astype(dtype), "b": b.astype(dtype)}

    def states(p):
        h, hs, zs = np.zeros((B, H), dtype=p["W_hh"].dtype), [], []
        for t in range(T):
            z = x[t] @ p["W_xh"].T + h @ p["W_hh"].T + p["b"]
            h = np.tanh(z)
            hs.append(h)
            zs.append(z)
        return np.stack(hs), zs

    def vjp(p, u):
        hs, zs = states(p)
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dh = np.zeros((B, H), dtype=p["W_hh"].dtype)
        for t in reversed(range(T)):
            before = hs[t - 1] if t > 0 else np.zeros_like(hs[0])
            slope = 1 - zs[t] ** 2 if bug else 1 - hs[t] ** 2
            dz = (u[t] + dh) * slope
            grads["W_xh"] += dz.T @ x[t]
            grads["W_hh"] += dz.T @ before
            grads["b"] += dz.sum(axis=0)
            dh = dz @ p["W_hh"]
        return grads

    return (lambda p: states(p)[0]), vjp, params


def test_a_float32_rnns_backprop_through_time_is_not_wrong_where_its_rounding_is():
    # an outside review: correct float32 BPTT, off by 4.7e-8 in an output whose largest
    # derivative is 1.3e-3 (300 float32 ulps of it, 2 of the largest of all outputs: the
    # rounding of intermediates the (1 - h^2) factors shrink), was `wrong`
    fun, vjp, params = _rnn_hidden_states(np.float32)
    assert check_vjp(fun, vjp, params).verdict in ("correct", "cannot tell")
    fun, vjp, params = _rnn_hidden_states(np.float32, bug=True)
    assert check_vjp(fun, vjp, params).verdict == "wrong"
    fun, vjp, params = _rnn_hidden_states(np.float64)
    assert check_vjp(fun, vjp, params).verdict == "correct"


def test_an_inconclusive_report_does_not_say_fail():
    # a suspect element beyond its tolerance, not confirmed within the budget: the verdict was
    # "INCONCLUSIVE: cannot tell" over a group line ending "-> FAIL"
    from backprop_bench.verify.verdict import CANNOT_TELL, WRONG, GradCheckResult, GroupReport

    group = GroupReport("params", (3,), "grad", (1,), 0.5, 0.5, 0.01, 0.1, False, 1e-3, 1.0)
    for verdict, shown in ((CANNOT_TELL, "-> beyond it, not confirmed: UNDECIDED"),
                           (WRONG, "-> FAIL")):  # fmt: skip
        result = GradCheckResult(verdict=verdict, mode="full Jacobian", reference="central",
                                 groups=[group])  # fmt: skip
        line = next(x for x in result.report().splitlines() if x.startswith("  params"))
        assert line.endswith(shown), line


def test_no_time_limit_and_nothing_left_in_the_callers_dict(monkeypatch):
    """budget=math.inf is no guard (it was refused: no way to say "no limit"), so a slow
    function of 97 parameters keeps its full Jacobian; and a key that fun adds to the dict it
    was given (a cache) is not left in the caller's dict (from an audit)."""
    import math

    loss, grad, params = mlp(np.float32, cast=True)
    result, _ = checked_at_speed(monkeypatch, 0.1, loss, grad, params, budget=math.inf)
    assert result.mode == "full Jacobian" and not any("budget" in n for n in result.notes)
    with pytest.raises(ValueError, match="budget must be a positive number"):
        check_gradient(f, np.cos, np.ones(3), budget=float("nan"))

    def caching(p):
        p["_seen"] = True
        return float(np.sum(np.sin(p["w"])))

    mine = {"w": np.linspace(-1, 1, 4)}
    assert check_gradient(caching, lambda p: {"w": np.cos(p["w"])}, mine).verdict == CORRECT
    assert list(mine) == ["w"]


# A Huber and pinball (quantile) regression whose pinball residuals are exactly 0 at 4 of its
# 12 (dyadic data: 0 in float32 and float64 alike): kinks in every parameter, coupled, so that
# a claim within each element's one-sided derivatives may lie outside the subdifferential.
_QX = np.array([[0.5, -1.0], [-2.0, -2.0], [1.5, 1.5], [0.5, 1.0], [0.0, 1.5], [1.5, -2.0]])
_QY = np.array([[0.9482610821723938, 2.335026741027832], [-3.3820693492889404, 7.732926845550537],
                [1.669610619544983, -3.0469799041748047], [3.4319403171539307, -1.561975359916687],
                [0.013001501560211182, -3.3434507846832275],
                [-0.5404516458511353, 0.19039024412631989]])  # fmt: skip
_QY2 = np.array([[-0.8846181631088257, 0.04082442447543144], [-3.2842249870300293, 5.0],
                 [3.2146592140197754, -3.394627332687378], [1.625, -1.8796136379241943],
                 [2.28397536277771, -1.5], [0.375, 1.2639237642288208]])  # fmt: skip
_QW, _QB = np.array([[1.0, -1.5], [0.75, -1.0]]), np.array([0.375, 0.0])


def _quantile_loss(p):
    dt = p["W"].dtype
    P = _QX.astype(dt) @ p["W"] + p["b"]
    r = np.abs(P - _QY.astype(dt))
    e = _QY2.astype(dt) - P
    huber = np.where(r <= 1.0, 0.5 * r**2, r - 0.5)
    return (np.sum(huber) + np.sum(np.maximum(0.3 * e, -0.7 * e))) / P.size


def _quantile_grad(p):
    dt = p["W"].dtype
    X = _QX.astype(dt)
    P = X @ p["W"] + p["b"]
    dP = np.clip(P - _QY.astype(dt), -1.0, 1.0) - np.where(_QY2.astype(dt) - P > 0, 0.3, -0.7)
    dP = (dP / P.size).astype(dt)
    return {"W": X.T @ dP, "b": dP.sum(0)}


@pytest.mark.parametrize("cast", [False, True], ids=["generic", "cast inside"])
@pytest.mark.parametrize("error", ["element", "scaled"])
def test_a_claim_outside_the_subdifferential_at_coupled_kinks_does_not_pass(cast, error):
    """Each element of these claims lies within its own one-sided derivatives, but not the
    claim: W[1, 0] moved by 10% of W's largest derivative, or the whole claim 1% larger, is no
    subgradient (along the direction from the subdifferential to it, the claim rises faster
    than the function's one-sided derivative: 7.4e-4 against 2.5e-4). The gradients nearby
    show it where the code runs in float64; where it casts to float32 inside they are not
    resolved, and such a claim had passed as `not differentiable here` (an outside audit,
    2026-12-06). The right claim passes where they show it, and is never `wrong`."""
    params = {"W": _QW.astype(np.float32), "b": _QB.astype(np.float32)}

    def cast_of(f):
        return (lambda p: f({k: v.astype(np.float32) for k, v in p.items()})) if cast else f

    fun, grad = cast_of(_quantile_loss), cast_of(_quantile_grad)
    largest = float(np.abs(_quantile_grad(params)["W"]).max())

    def claim(p):
        g = {k: np.array(v, copy=True) for k, v in grad(p).items()}
        if error == "element":
            g["W"][1, 0] += g["W"].dtype.type(0.1 * largest)
        else:
            g = {k: v * v.dtype.type(1.01) for k, v in g.items()}
        return g

    bad = check_gradient(fun, claim, {k: v.copy() for k, v in params.items()})
    assert bad.verdict in ("wrong", "cannot tell"), bad.report()
    assert bad.verdict == "wrong" or cast
    right = check_gradient(fun, grad, {k: v.copy() for k, v in params.items()})
    assert right.verdict in ("not differentiable here", "cannot tell"), right.report()
    assert right.verdict == "not differentiable here" or cast
