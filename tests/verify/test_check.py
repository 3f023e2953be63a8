"""The public gradient checker on functions written for the test, with known right answers."""

import numpy as np
import pytest
from backprop_bench.verify import assert_gradients_close, check_gradient, check_vjp
from scipy.differentiate import derivative

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4))


def f(p):
    return np.sum(np.sin(p) * p**2)


def grad_f(p):
    return np.cos(p) * p**2 + 2 * p * np.sin(p)


def test_a_correct_gradient_passes_with_a_tiny_error():
    result = check_gradient(f, grad_f, X)
    assert result.passed and result.mode == "full Jacobian"
    assert result.worst_rel_error < 1e-9


def test_a_wrong_element_is_found_and_located():
    def wrong(p):
        g = grad_f(p)
        g[1, 2] *= 1.01
        return g

    result = check_gradient(f, wrong, X)
    assert not result.passed
    (group,) = result.groups
    assert group.worst_index == (1, 2) and group.rel_error == pytest.approx(0.01, rel=1e-6)
    assert "FAIL" in result.report()


def test_groups_are_reported_by_name():
    params = {"W": RNG.normal(size=(2, 3)), "b": RNG.normal(size=3)}

    def loss(p):
        return np.sum(np.tanh(p["W"]) * p["b"])

    def grad(p):
        return {"W": (1 - np.tanh(p["W"]) ** 2) * p["b"], "b": np.zeros(3)}  # b is wrong

    result = check_gradient(loss, grad, params)
    by_name = {g.name: g for g in result.groups}
    assert by_name["W"].passed and not by_name["b"].passed and not result.passed


def test_relu_at_zero_is_a_kink_with_one_sided_derivatives_not_a_failure():
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    x = np.array([0.0, 1.0, -2.0, 3.0])

    def loss(p):
        return np.sum(np.maximum(p, 0) * weights)

    result = check_gradient(loss, lambda p: (p > 0) * weights, x)  # relu'(0) = 0
    assert result.passed
    (kink,) = result.kinks
    assert kink.index == (0,) and (kink.left, kink.right) == pytest.approx((0.0, 1.0), abs=1e-6)
    wrong = check_gradient(loss, lambda p: (p > 0) * weights + np.array([2.0, 0, 0, 0]), x)
    assert not wrong.passed and not wrong.kinks[0].passed


def test_scipy_differentiate_is_silent_at_the_kink_and_we_are_not():
    scipy_says = derivative(lambda t: np.maximum(t, 0), np.array([0.0]))
    assert scipy_says.df[0] == pytest.approx(0.5) and scipy_says.error[0] == 0.0  # looks smooth
    result = check_gradient(lambda p: np.maximum(p, 0).sum(), lambda p: np.zeros(1), np.zeros(1))
    assert result.kinks and "not differentiable" in result.report()


def test_functions_that_break_complex_step_are_caught_not_trusted():
    # abs drops the imaginary part: complex step would say the gradient is 0 and accept zeros
    def loss(p):
        return np.sum(np.abs(p) ** 3)

    result = check_gradient(loss, lambda p: np.zeros_like(p), X)
    assert not result.passed
    assert any("returned real values for complex input" in note for note in result.notes)
    assert check_gradient(loss, lambda p: 3 * p * np.abs(p), X).passed

    # conjugation keeps a complex result whose imaginary part is silently 0
    def energy(p):
        return np.sum(p * np.conj(p))

    result = check_gradient(energy, lambda p: np.zeros_like(p), X)
    assert not result.passed and any("not complex-safe" in note for note in result.notes)
    assert check_gradient(energy, lambda p: 2 * p, X).passed


def test_complex_step_is_used_where_it_is_verified():
    result = check_gradient(f, grad_f, X)
    assert result.reference.startswith("complex step")


def test_float32_gradients_pass_against_a_float64_reference_and_errors_still_fail():
    x32 = X.astype(np.float32)
    assert check_gradient(f, lambda p: grad_f(p).astype(np.float32), x32).passed

    def wrong(p):
        g = grad_f(p).astype(np.float32)
        g[0, 0] *= np.float32(1.01)
        return g

    assert not check_gradient(f, wrong, x32).passed


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_probes_find_one_zeroed_element_among_20000(dtype):
    x = RNG.normal(size=20_000).astype(dtype)

    def zeroed(p):
        g = grad_f(p)
        g[1234] = 0.0
        return g.astype(dtype)

    good = check_gradient(f, lambda p: grad_f(p).astype(dtype), x)
    bad = check_gradient(f, zeroed, x)
    assert good.mode.endswith("directional probes") and good.passed
    assert not bad.passed
    # one probe is one probe (it said "1 directional probes")
    doubled = check_gradient(f, lambda p: 2 * grad_f(p).astype(dtype), x)
    assert doubled.mode == "1 directional probe" and doubled.verdict == "wrong"


def test_vjp_and_the_adjoint_test():
    A = RNG.normal(size=(300, 40))

    def fun(p):
        return np.tanh(A @ p)

    def vjp(p, u):
        return A.T @ (u * (1 - np.tanh(A @ p) ** 2))

    def jvp(p, v):
        return (1 - np.tanh(A @ p) ** 2) * (A @ v)

    p = RNG.normal(size=40) * 0.1
    assert check_vjp(fun, vjp, p).passed  # 300 x 40 = 12,000 > full limit: probes
    result = check_vjp(fun, vjp, p, jvp=jvp)
    assert result.adjoint is not None and result.adjoint.passed
    bad = check_vjp(fun, vjp, p, jvp=lambda p, v: 1.001 * jvp(p, v))
    assert not bad.adjoint.passed and not bad.passed


def test_adjoint_test_in_full_mode_too():
    A = RNG.normal(size=(5, 4))
    p = RNG.normal(size=4)
    result = check_vjp(lambda p: A @ p, lambda p, u: A.T @ u, p, jvp=lambda p, v: A @ v)
    assert result.mode == "full Jacobian" and result.adjoint.passed and result.passed
    bad = check_vjp(lambda p: A @ p, lambda p, u: A.T @ u, p, jvp=lambda p, v: A @ v + 1e-3)
    assert not bad.passed


def test_scipy_differentiate_as_a_third_reference():
    result = check_gradient(f, grad_f, X, use_scipy=True)
    assert result.passed and result.scipy_agrees
    kinked = check_gradient(lambda p: np.maximum(p, 0).sum(), lambda p: (p > 0) * 1.0,
                            np.array([0.0, 1.0]), use_scipy=True)  # fmt: skip
    # both difference references answer 0.5 at the kink and agree with each other; only the
    # one-sided analysis shows that there is no derivative there
    assert kinked.scipy_agrees is True
    assert kinked.passed and kinked.kinks and kinked.kinks[0].index == (0,)


def test_assert_gradients_close_raises_with_the_report():
    assert_gradients_close(f, grad_f, X)
    with pytest.raises(AssertionError, match="gradient check FAILED") as raised:
        assert_gradients_close(f, lambda p: -grad_f(p), X)
    # pytest shows the failure at the caller's line, not in the helper (an outside audit: the
    # helper's own frame, its `raise`, was what a failing test printed)
    hidden = [entry.frame.f_locals.get("__tracebackhide__", False)
              for entry in raised.traceback]  # fmt: skip
    assert hidden[-1] is True and not any(hidden[:-1])


@pytest.mark.parametrize(
    "fun, grad, message",
    [
        (lambda p: np.nan * p.sum(), grad_f, "fun returned NaN or inf at params"),
        (
            f,
            lambda p: grad_f(p)[:2],
            r"grad returned shape \(2, 4\) for parameter 'params' of "
            r"shape \(3, 4\)",
        ),
        (lambda p: p * 2, grad_f, r"not a scalar; for array-valued functions use check_vjp"),
    ],
)
def test_bad_functions_get_a_clear_error(fun, grad, message):
    with pytest.raises(ValueError, match=message):
        check_gradient(fun, grad, X)


def test_bad_params():
    with pytest.raises(TypeError, match=r"dtype int64; gradients need floating point"):
        check_gradient(f, grad_f, np.arange(3))
    with pytest.raises(ValueError, match=r"must return a dict with keys \['W'\]"):
        check_gradient(lambda p: p["W"].sum(), lambda p: np.ones(2), {"W": np.ones(2)})


def test_masked_arrays_and_matrices_are_refused_in_one_line():
    # a masked array reached fun as itself from the caller and as plain data from the check's
    # copies, so a correct claim was 'not deterministic'; a matrix's * is a matrix product
    masked = np.ma.masked_array([0.1, 0.2, 0.3], mask=[False, True, False])
    with pytest.warns(PendingDeprecationWarning):  # NumPy's own, on making a matrix
        matrix = np.matrix([[0.1, 0.2]])
    for params, message in ((masked, r"masked array; .* pass np.asarray\(params\)"),
                            (matrix, r"numpy.matrix, whose \* is a matrix"),
                            ({"W": masked}, r"parameter 'W' is a masked array")):  # fmt: skip
        with pytest.raises(TypeError, match=message) as error:
            check_gradient(lambda w: np.sum(np.sin(w)), lambda w: np.cos(w), params)
        assert "\n" not in str(error.value)


def test_a_function_that_raises_at_the_checks_points_has_no_value_there():
    # math.log past 0, or the function's own guard: the check stopped with the function's error
    # from deep inside the references, at a point the caller never chose; np.log's NaN was fine
    import math

    w = np.array([1e-12, 0.5, 2.0])

    def fun(w):
        return sum(math.log(x) for x in w)

    def guarded(w):
        if np.any(w <= 0):
            raise ValueError("negative variance")
        return float(np.sum(np.log(w)))

    for function in (fun, guarded):
        result = check_gradient(function, lambda w: 1 / w, w)
        assert result.verdict == "correct", result.report()
        assert any("raised ValueError" in note and "outside its domain" in note
                   for note in result.notes), result.notes  # fmt: skip
        wrong = check_gradient(function, lambda w: np.array([1, 1.01, 1]) / w, w)
        assert wrong.verdict == "wrong", wrong.report()
    with pytest.raises(ZeroDivisionError):  # at the caller's own params: the caller's error
        check_gradient(lambda w: 1 / 0, lambda w: w, w)


def test_an_output_whose_shape_follows_the_params_gets_a_one_line_error():
    # z[z > 0] with a unit 1e-10 above 0: NumPy's "operands could not be broadcast together
    # with shapes (10,) (11,)" came out of the references
    rng = np.random.default_rng(2)
    W, X = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    W[0, 0] -= ((X @ W.T)[0, 0] - 1e-10) / X[0, 0]

    def vjp(W, u):
        z = X @ W.T
        G = np.zeros_like(z)
        G[z > 0] = u
        return G.T @ X

    with pytest.raises(ValueError, match=r"shape must not depend on the params' values \(a "
                       r"boolean mask such as z\[z > 0\]\?") as error:  # fmt: skip
        check_vjp(lambda W: (X @ W.T)[X @ W.T > 0], vjp, W)
    assert "\n" not in str(error.value)


def test_a_claim_that_raises_at_its_first_other_params_is_said_in_a_note():
    # the check calls the claim first at params moved by 1e-3 (a result cached from the first
    # call shows); an error there was swallowed and that test skipped without a word
    w = np.array([0.3, 0.7])

    def grad(w):
        if not np.array_equal(w, [0.3, 0.7]):
            raise ValueError("only at the point")
        return np.cos(w)

    result = check_gradient(lambda w: np.sum(np.sin(w)), grad, w)
    assert result.verdict == "correct"
    assert any("grad raised ValueError: only at the point at other params" in note
               for note in result.notes), result.notes  # fmt: skip
    with pytest.raises(TypeError, match=r"jvp must be a callable .* got ndarray$"):
        check_vjp(np.sin, lambda w, u: np.cos(w) * u, w, jvp=np.zeros((50, 50)))


@pytest.mark.parametrize("cached", ["fun", "grad"])
def test_a_cache_keyed_by_id_filled_during_the_check_meets_no_id_twice(cached):
    # a dict keyed by id(params), as a training loop that clears it at each step keeps: the
    # check's arrays were freed and Python gave their ids to the next ones, so the cache handed
    # back values of other points, and a correct claim was 'cannot tell' with derivatives 'as
    # large as 3.5e+03' where they are below 2
    rng = np.random.default_rng(1)
    W, x = rng.normal(size=(4, 3)), rng.normal(size=3)

    def loss(W):
        return float(np.sum(np.tanh(W @ x)))

    def grad(W):
        return np.outer(1 - np.tanh(W @ x) ** 2, x)

    def by_id(function):
        cache = {}
        return lambda W: cache.setdefault(id(W), function(W))

    fun, claim = (by_id(loss), grad) if cached == "fun" else (loss, by_id(grad))
    assert check_gradient(fun, claim, W).verdict == "correct"
    assert check_gradient(fun, lambda W: 2 * claim(W), W).verdict == "wrong"


def test_no_warning_of_the_checks_own_arithmetic_reaches_the_caller():
    # overflow and NaN in the references where fun has none; under -W error (pytest's
    # filterwarnings = error) one stopped the check
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fun, grad, w in (
            (lambda w: float(np.sum(np.exp(w))), lambda w: np.exp(w), np.array([709.7, 0.1])),
            (lambda w: np.sum(np.log(w)), lambda w: 1 / w, np.array([1e-12, 0.5])),
            (lambda w: np.sum(np.sqrt(w)), lambda w: 0.5 / np.sqrt(w), np.array([1e-14, 0.5])),
        ):
            check_gradient(fun, grad, w)


def test_bad_params_and_claims_get_the_fix_that_fits_them():
    import types

    for params, grad, message in (
        (types.MappingProxyType({"W": np.ones(2)}), np.cos,
         r"params is a mappingproxy; pass a dict of named arrays: dict\(params\)$"),
        ({"W": 3}, np.cos, r"pass it as float\(W\)$"),  # an int has no astype
        ([1, 2], np.cos, r"pass it as np.asarray\(params, dtype=float\)$"),
        (np.ones(3), lambda p: p > 0, r"grad returned ndarray of dtype bool for parameter"),
    ):  # fmt: skip
        with pytest.raises(TypeError, match=message):
            check_gradient(lambda p: float(np.sum(np.sin(p["W"] if isinstance(p, dict) else p))),
                           grad, params)  # fmt: skip


def test_a_claim_of_nan_is_wrong_and_located():
    def grad(p):
        g = grad_f(p)
        g[1, 2] = np.nan
        return g

    result = check_gradient(f, grad, X)
    assert result.verdict == "wrong" and result.groups[0].worst_index == (1, 2)


def test_a_float32_jvp_one_output_1e_2_off_is_caught_by_the_float64_adjoint_test():
    # the float32 adjoint test's bound (512 float32 ulps of the norms) passed it; dtype-generic
    # code is also tested on float64 params, allowed only its float32 constants' ulps
    rng = np.random.default_rng(7)
    A = rng.normal(size=(6, 6)).astype(np.float32)
    p = rng.normal(size=(6, 6)).astype(np.float32)

    def jvp(p, v, bump=1.0):
        out = A @ v
        out[0, 0] *= bump
        return out

    def check(bump):
        return check_vjp(lambda p: A @ p, lambda p, u: A.T @ u, p,
                         jvp=lambda p, v: jvp(p, v, bump))  # fmt: skip

    assert check(1.0).verdict == "correct"
    bad = check(1.01)
    assert bad.verdict == "wrong" and not bad.adjoint.passed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_jvp_1e_3_off_on_one_output_of_800_is_caught_output_by_output(dtype):
    # one dot product over all 800 outputs allowed 16 float32 ulps of all their terms, which
    # hid an error of 1e-3 in one output; each output is now held to its own terms
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 20)).astype(dtype)
    p = {"W": (rng.standard_normal((20, 100)) / np.sqrt(20)).astype(dtype),
         "b": np.zeros(100, dtype)}  # fmt: skip

    def fun(p):
        return np.tanh(X @ p["W"] + p["b"])

    def vjp(p, u):
        d = u * (1 - fun(p) ** 2)
        return {"W": X.T @ d, "b": d.sum(0)}

    def jvp(p, v, bump=1.0):
        out = (X @ v["W"] + v["b"]) * (1 - fun(p) ** 2)
        out[3, 41] *= bump
        return out

    assert check_vjp(fun, vjp, p, jvp=jvp).verdict == "correct"
    bad = check_vjp(fun, vjp, p, jvp=lambda p, v: jvp(p, v, 1.001))
    assert bad.verdict == "wrong" and not bad.adjoint.passed
    assert bad.adjoint.claim.endswith("output (3, 41)")


@pytest.mark.parametrize("sizes_by_group", [[5], [3, 7], [1000, 1, 20]])
def test_the_probes_progress_counts_every_direction(sizes_by_group):
    # the progress line's total was the random probes alone: "probes 16/8"
    from backprop_bench.verify.check import _count_directions, _directions, _Groups

    params = {f"g{i}": np.ones(size) for i, size in enumerate(sizes_by_group)}
    groups = _Groups(params)
    sizes = np.concatenate([np.full(n, 10.0 ** -(3 * i)) for i, n in enumerate(sizes_by_group)])
    directions = list(_directions(groups, sizes, np.random.default_rng(0), 8))
    assert _count_directions(groups, sizes, 8) == len(directions)


def test_a_float32_vjp_off_in_an_output_far_smaller_than_the_others_is_wrong():
    # scores of order 1 beside a weight decay of 1e-7 times |W|^2: a VJP that leaves out the
    # decay (or halves it, or flips its sign) was allowed two float32 ulps of the scores'
    # derivatives in the decay's row too, and passed as correct
    x = np.array([3.0, -2.0, 4.0, 1.0])
    lam = 1e-7

    def fun(W):
        return np.concatenate([x.astype(W.dtype) @ W, [lam * np.sum(W**2)]])

    def vjp(W, u, decay=1.0):
        return np.outer(x.astype(W.dtype), u[:3]) + decay * 2 * lam * W * u[3]

    W = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    assert check_vjp(fun, vjp, W.copy()).verdict == "correct"
    for decay in (0.0, 0.5, -1.0):
        result = check_vjp(fun, lambda W, u, decay=decay: vjp(W, u, decay), W.copy())
        assert not result and result.verdict == "wrong", (decay, result.report())


def test_parameters_far_below_one_are_differentiated_at_their_own_scale():
    # steps of 1e-5 around a parameter of 1e-15 leave the log's domain (nan), and around p ** 2
    # at 1e-30 round off values of 1e-10: the exact gradients were called wrong
    x = np.array([1.0, 2.0, 3.0]) * 1e-15
    for dtype in (np.float64, np.float32):
        result = check_gradient(lambda p: np.sum(np.log(p)), lambda p: 1 / p, x.astype(dtype))
        assert result and result.verdict == "correct", result.report()
    result = check_gradient(lambda p: np.sum(np.log(p)), lambda p: 2 / p, x)
    assert not result and result.verdict == "wrong", result.report()
    tiny = np.array([1.0, 2.0, 3.0]) * 1e-30
    result = check_gradient(lambda p: np.sum(p**2), lambda p: 2 * p, tiny)
    assert result and result.verdict == "correct", result.report()
    result = check_gradient(lambda p: np.sum(p**2), lambda p: 3 * p, tiny)
    assert not result and result.verdict == "wrong", result.report()
    # a function of w / 1e-30 has derivatives of 1e30: its own steps resolve them (the steps
    # of 1e-5 were kept, their error bound smaller in absolute terms, and the exact gradient
    # was wrong at scales of 1e-30 to 1e-300)
    for scale in (1e-30, 1e-100, 1e-300):
        w = np.array([1.0, -2.0, 3.0]) * scale
        result = check_gradient(lambda p, s=scale: np.sum(np.tanh(p / s)),
                                lambda p, s=scale: (1 - np.tanh(p / s) ** 2) / s, w)  # fmt: skip
        assert result and result.verdict == "correct", (scale, result.report())
        result = check_gradient(lambda p, s=scale: np.sum(np.sin(p / s)),
                                lambda p, s=scale: 1.001 * np.cos(p / s) / s, w)  # fmt: skip
        assert not result and result.verdict == "wrong", (scale, result.report())
    # where no step gives a finite value, the check cannot tell (1e-200: it raised LinAlgError)
    result = check_gradient(lambda p: np.sum(np.log(p)), lambda p: 1 / p, tiny * 1e-170)
    assert result.verdict in ("correct", "cannot tell"), result.report()


def test_a_reference_of_zero_that_resolves_nothing_passes_nothing():
    # w ** 2 underflows at w = 1e-300: the reference is 0 +- 1e272, and claims of 2 to 6e3 all
    # passed under a floor of 0, taken against a largest derivative of 0
    w = np.array([1e-300, -2e-300, 3e-300])
    for claim in (lambda p: 2e300 * p, lambda p: -2e300 * p, lambda p: 2e303 * p):
        result = check_gradient(lambda p: 1e300 * np.sum(p**2), claim, w)
        assert not result and result.verdict == "cannot tell", result.report()
        assert result.floor > 1


def _gelu_layer(seed, scale, n_in, n_out, dtype=np.float64):
    from scipy.special import erf

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, n_in)).astype(dtype)
    P = {"W": (rng.normal(size=(n_in, n_out)) * scale).astype(dtype),
         "b": (rng.normal(size=n_out) * 0.1).astype(dtype)}  # fmt: skip

    def fun(p):
        h = X @ p["W"] + p["b"]
        return 0.5 * h * (1 + erf(h / np.sqrt(2)))

    def vjp(p, u, off=1.0):
        h = X @ p["W"] + p["b"]
        d = 0.5 * (1 + erf(h / np.sqrt(2))) + off * h * np.exp(-0.5 * h * h) / np.sqrt(2 * np.pi)
        return {"W": X.T @ (u * d), "b": (u * d).sum(0)}

    return fun, vjp, P, float((X @ P["W"] + P["b"]).min())


@pytest.mark.parametrize("seed, scale", [(1, 2.0), (2, 1.0), (2, 2.0)])
def test_an_output_that_rounds_a_far_larger_quantity_is_not_a_false_alarm(seed, scale):
    # exact GELU, 0.5 h (1 + erf(h / sqrt 2)), at pre-activations of -5 to -16: 1 + erf there is
    # rounded to 1e-16. At -5.5 steps of the noise's few hundred ulps do not move it, and the
    # rounding the central differences meet at steps of 1e-5 went unmeasured; at -8 it is
    # frozen over steps of 0.01, so that the output as computed is linear in W with a slope of
    # -9e-16 where the derivative (the complex step's) is 6e-14: the exact VJP was wrong
    fun, vjp, P, low = _gelu_layer(seed, scale, 6, 10)
    assert low < -6
    result = check_vjp(fun, vjp, P)
    assert result and result.verdict == "correct", result.report()
    result = check_vjp(fun, lambda p, u: vjp(p, u, off=1.001), P)
    assert not result and result.verdict == "wrong", result.report()


@pytest.mark.parametrize(
    "seed, scale, n_in, n_out, dtype, lowest",
    [
        # one-sided differences a few ulps wide took the slope of a frozen 1 + erf at -6
        # (3.8e-10 +- 6e-14, the derivative -1.4e-8) over the confirmed complex step
        (0, 3.0, 6, 10, np.float64, -11),
        # ... where the complex step was confirmed only loosely (+-6e-12 at -8.3e-12)
        (1, 2.0, 12, 12, np.float64, -15),
        # the complex step underflowed at -37 (its imaginary part below the smallest normal)
        (2, 4.0, 12, 12, np.float64, -36),
        # float32 params: the claim in float32 (exp underflowed to 0) chose the sides of an
        # output frozen at 0 as the reference, and the same claim in float64 failed there
        (0, 2.0, 12, 12, np.float32, -21),
    ],
)
def test_a_wide_gelu_layer_far_into_its_tail_is_not_a_false_alarm(seed, scale, n_in, n_out,
                                                                   dtype, lowest):  # fmt: skip
    # exact GELU layers whose pre-activations reach -11 to -37: their exact VJPs were wrong
    # (36 such layers of 6-20 units, scales 2-6: 31 wrong in float64; now none, and each
    # x1.001 mutant wrong, as before)
    fun, vjp, P, low = _gelu_layer(seed, scale, n_in, n_out, dtype)
    assert low < lowest
    result = check_vjp(fun, vjp, P, mode="full")
    assert result and result.verdict == "correct", result.report()
    result = check_vjp(fun, lambda p, u: vjp(p, u, off=1.001), P, mode="full")
    assert not result and result.verdict == "wrong", result.report()


def test_an_output_frozen_at_every_step_in_its_own_float32_is_not_a_false_alarm():
    # log(1 + e^z) in code that casts to float32 inside: at z below -17, 1 + e^z is 1 and the
    # output exactly 0 at every step, with no complex step to take over; its exact VJP was
    # wrong against 0 +- 1e-300. Such an output is held no finer than the column's others
    from scipy.special import expit

    rng = np.random.default_rng(4)
    X = rng.normal(size=(8, 10)).astype(np.float32)
    W = (rng.normal(size=(10, 12)) * 3.0).astype(np.float32)

    def fun(W):
        return np.log(1 + np.exp(X @ W.astype(np.float32)))

    def vjp(W, u, c=1.0):
        return X.T @ (u.astype(np.float32) * expit(X @ W.astype(np.float32)) * np.float32(c))

    assert (X @ W < -17).sum() == 5
    assert check_vjp(fun, vjp, W).verdict == "cannot tell"
    assert check_vjp(fun, lambda W, u: vjp(W, u, 1.1), W).verdict == "wrong"


def test_stairs_finds_a_jump_and_not_a_kink_or_a_curve():
    from backprop_bench.verify import references as R

    def fun(p):  # a staircase (treads of slope 0.5, stairs of 1e-3 every 0.05), |p - 0.12|, p^2
        t = p[0]
        return np.array([0.5 * t + 1e-3 * np.floor(t / 0.05), abs(t - 0.12), t * t])

    f = R.Evaluator(lambda z: z, fun, lambda z: z, 3)
    x = np.array([0.01])
    f0, _ = f.at(x)
    found = R.stairs(f, x, np.array([1.0]), f0, np.full(3, 1e-16), 1e-4, [0, 1, 2],
                     np.array([0.5, -1.0, 0.02]), 0.25, 1.0)  # fmt: skip
    assert set(found) == {0}
    jump, distance, bound = found[0]
    assert jump == pytest.approx(1e-3, rel=1e-6) and distance == pytest.approx(0.01, rel=1e-3)
    assert bound >= jump / distance
    # a jump larger than a rounding at the function's scale is not a stair
    assert R.stairs(f, x, np.array([1.0]), f0, np.full(3, 1e-16), 1e-4, [0], np.array([0.5]),
                    0.25, 1e-4) == {}  # fmt: skip


def test_a_tread_of_a_staircase_in_its_own_float32_is_not_a_false_alarm():
    # mish, z tanh(log(1 + e^z)), in code that casts to float32 inside: where z is about -16,
    # 1 + e^z rounds to 1 + 2^-23, and the output is z 2^-23, linear in the weights (slope -8e-8)
    # over every step up to 3% of them, where the derivative is 1.6e-6; only a step that crosses
    # the next stair shows it. The exact VJP was wrong, held to the tread's slope to 1e-12
    from scipy.special import expit

    rng = np.random.default_rng(16)
    X = rng.normal(size=(8, 10)).astype(np.float32)
    W = (rng.normal(size=(10, 12)) * 5.0).astype(np.float32)

    def fun(W):
        z = X @ W.astype(np.float32)
        return z * np.tanh(np.log(1 + np.exp(z)))

    def vjp(W, u, c=1.0):
        z = X @ W.astype(np.float32)
        s = np.logaddexp(np.float32(0), z)
        slope = np.tanh(s) + np.float32(c) * z * expit(z) / np.cosh(s) ** 2
        return X.T @ (u.astype(np.float32) * slope)

    result = check_vjp(fun, vjp, W)
    assert result.verdict == "cannot tell", result.report()
    assert any("staircase" in note for note in result.notes)
    assert check_vjp(fun, lambda W, u: vjp(W, u, 1.1), W).verdict == "wrong"


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("mode", [None, "probes"])
def test_a_tread_longer_than_the_parameters_is_not_a_false_alarm(mode):
    # softplus written log(1 + e^z), in code that casts to float32 inside, every unit near
    # z = -16: 1 + e^z is 1 + 2^-23 and the output flat for every weight within 5 times the
    # weights' size (the next stair is where z moves by 0.46); its slope 0, the derivative
    # up to 6e-7. The exact gradient was wrong, in the full Jacobian (a stair looked for only
    # within the weights' size, and of at most 16 roundings of the float64 output, where this
    # code rounds in float32) and along probes (no stair looked for)
    from scipy.special import expit

    rng = np.random.default_rng(3)
    X = rng.normal(size=(8, 8))
    W = rng.normal(size=(8, 8)) * 0.05

    def fun(W):
        z = X.astype(np.float32) @ W.astype(np.float32) - np.float32(16)
        return float(np.sum(np.log(1 + np.exp(z))))

    def grad(W, c=1.0):
        return c * X.T @ expit(X @ W - 16)

    def fun_ignoring_the_last_unit(W):
        W = W.copy()
        W[:, -1] = 0.0
        return fun(W)

    def leaking(W):  # a gradient into weights the function ignores
        g = grad(W)
        g[:, -1] = 1e-3
        return g

    result = check_gradient(fun, grad, W, mode=mode)
    assert result.verdict == "cannot tell", result.report()
    assert any("staircase" in note for note in result.notes)
    assert check_gradient(fun, lambda W: grad(W, 1000.0), W, mode=mode).verdict == "wrong"
    assert check_gradient(fun_ignoring_the_last_unit, leaking, W, mode=mode).verdict == "wrong"


def test_a_relu_net_cast_inside_and_returned_as_a_python_float_is_not_a_false_alarm():
    # 30-120-10 ReLU, 4,930 parameters (probes), float32 inside, the loss returned by float():
    # the evaluator is float64's, but steps at float32's scale span 24 to 29 kinks, and the
    # exact gradient was wrong (a probe's reference -0.368 against -0.492), where the same code
    # returning its float32 scalar was cannot tell; found by an outside review
    rng = np.random.default_rng(9)
    params = {"W1": rng.normal(size=(30, 120)) / np.sqrt(30), "b1": 0.1 * rng.normal(size=120),
              "W2": rng.normal(size=(120, 10)) / np.sqrt(120), "b2": 0.1 * rng.normal(size=10)}
    X = rng.normal(size=(16, 30)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(10, size=16)]

    def forward(P):
        Q = {k: v.astype(np.float32) for k, v in P.items()}
        z1 = X @ Q["W1"] + Q["b1"]
        h = np.maximum(z1, 0)
        return Q, z1, h, h @ Q["W2"] + Q["b2"]

    def loss(P):
        *_, Z = forward(P)
        zm = Z - Z.max(1, keepdims=True)
        return float(-(Y * (zm - np.log(np.exp(zm).sum(1, keepdims=True)))).sum() / 16)

    def grad(P, flip=1.0):
        Q, z1, h, Z = forward(P)
        p = np.exp(Z - Z.max(1, keepdims=True))
        dZ = (p / p.sum(1, keepdims=True) - Y) / 16
        dz1 = (dZ @ Q["W2"].T) * (z1 > 0)
        return {"W1": flip * (X.T @ dz1), "b1": dz1.sum(0), "W2": h.T @ dZ, "b2": dZ.sum(0)}

    assert check_gradient(loss, grad, params).verdict == "cannot tell"
    assert check_gradient(loss, lambda P: grad(P, -1.0), params).verdict == "wrong"


@pytest.mark.parametrize(
    ("route", "returned"),
    [("first", np.float32),  # the rest: pytest -m slow (5 s a check)
     pytest.param("last", np.float32, marks=pytest.mark.slow),
     pytest.param("first", float, marks=pytest.mark.slow),
     pytest.param("last", float, marks=pytest.mark.slow)],
)  # fmt: skip
def test_max_pool_ties_cast_inside_are_not_a_false_alarm_along_probes(route, returned):
    # 1,200 inputs (probes) of a 2 x 2 max pool, every window with two tied maxima, beside an
    # overlapping average pool, float32 inside: along a probe, or a part of one, the ties' kinks
    # cancel (their one-sided slopes agree) while a claim that routes each window to one of its
    # tied inputs, a valid subgradient, mixes them; float32 code's values nearby, whose margins
    # spanned the claim's distance from the slope, were taken for proof that no kinks cancel
    # (or were not looked at), and both valid routes were wrong, whether the loss was returned
    # as float32 or by float(); found by an outside audit. A claim 1.1 times a valid one stays
    # wrong
    rng = np.random.default_rng(0)
    C, H = 3, 20
    x = rng.normal(size=(C, H // 2, 2, H // 2, 2))
    top = x.max(axis=(2, 4)) + 0.5
    x[:, :, 0, :, 0] = x[:, :, 1, :, 1] = top
    x = x.reshape(C, H, H).astype(np.float32)
    A = rng.normal(size=(C, H // 2, H // 2)).astype(np.float32)
    B = (0.5 * rng.normal(size=(C, H - 1, H - 1))).astype(np.float32)

    def windows(p):
        return p.reshape(C, H // 2, 2, H // 2, 2).transpose(0, 1, 3, 2, 4).reshape(C, H // 2,
                                                                                    H // 2, 4)

    def average(p):
        return (p[:, :-1, :-1] + p[:, 1:, :-1] + p[:, :-1, 1:] + p[:, 1:, 1:]) / 4

    def loss(p):
        p = p.astype(np.float32)
        return returned(np.sum(A * np.tanh(windows(p).max(-1))) + np.sum(B * average(p) ** 2))

    def grad(p, route):
        p = p.astype(np.float32)
        w = windows(p)
        slope = A * (1 - np.tanh(w.max(-1)) ** 2)
        pick = 3 - np.argmax(w[..., ::-1], -1) if route == "last" else np.argmax(w, -1)
        gw = np.zeros_like(w)
        np.put_along_axis(gw, pick[..., None], slope[..., None], -1)
        g = gw.reshape(C, H // 2, H // 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(C, H, H)
        d = B * average(p) / 2
        g[:, :-1, :-1] += d
        g[:, 1:, :-1] += d
        g[:, :-1, 1:] += d
        g[:, 1:, 1:] += d
        return g

    assert check_gradient(loss, lambda p: grad(p, route), x).verdict == "cannot tell"
    assert check_gradient(loss, lambda p: 1.1 * grad(p, route), x).verdict == "wrong"


def _log_sum_squares_cast_inside(w):
    """log sum w^2, computed in float32 whatever w is, returned as a Python float."""
    w = np.asarray(w, np.float32)
    return float(np.log(np.sum(w * w)))


def _log_sum_squares_gradient(w):
    w = np.asarray(w, np.float32)
    return 2 * w / np.sum(w * w)


@pytest.mark.parametrize("case", ["square", "log_sum"])
def test_code_cast_inside_returning_a_python_float_is_differenced_about_its_point(case):
    # Code that casts its params to float32 inside and returns float(...) is evaluated at
    # float64 points, which it rounds: a step far larger than a coordinate (a base step of 0.4
    # beside w of 1e-10) lost the coordinate to that rounding, every difference was the
    # derivative at another point (0 where w is lost: (w + 0.4)^2 and (w - 0.4)^2 round alike),
    # and Ridders' tableau agreed on it, so exact claims were wrong (an outside audit). Now such a
    # step is not taken about x; a claim 1.05 times the exact one, or one flipped element,
    # stays wrong
    rng = np.random.default_rng(1400)
    if case == "square":  # k = 2^33: the float32 claim k^2 w is exact
        k = np.float32(2.0**33)
        w = (rng.normal(size=50) / 2.0**33).astype(np.float32)

        def fun(w):
            return float(0.5 * np.sum((np.asarray(w, np.float32) * k) ** 2))

        def grad(w):
            return (np.asarray(w, np.float32) * k) * k
    else:
        w = (rng.normal(size=50) * 1e-10).astype(np.float32)
        fun, grad = _log_sum_squares_cast_inside, _log_sum_squares_gradient

    assert check_gradient(fun, grad, w).verdict in ("correct", "cannot tell")
    assert check_gradient(fun, lambda w: 1.05 * grad(w), w).verdict == "wrong"
    top = int(np.argmax(np.abs(grad(w))))

    def flipped(w):
        g = grad(w)
        g[top] = -g[top]
        return g

    assert check_gradient(fun, flipped, w).verdict == "wrong"


def test_probes_of_code_cast_inside_at_a_tiny_scale_are_not_a_false_alarm():
    # log sum w^2 at w of 1e-15, 2,000 parameters (probes), cast to float32 inside and returned
    # by float(): steps of 1e-3 (relative to 1, not to w) differenced it far beyond its scale
    # and the exact gradient was wrong (0 or 3e4 where the derivative along the probe is 1e17);
    # its float32 value, far coarser than that derivative's steps, resolves no claim
    w = (np.random.default_rng(1400).normal(size=2000) * 1e-15).astype(np.float32)
    verdict = check_gradient(_log_sum_squares_cast_inside, _log_sum_squares_gradient, w).verdict
    assert verdict == "cannot tell"


@pytest.mark.parametrize("scale", [1e-20, 1e-15])
def test_a_claim_of_zeros_for_code_cast_inside_at_a_tiny_scale_is_wrong(scale):
    # the same log sum w^2, 2,000 parameters (probes): a claim of all zeros was `correct`
    # against derivatives of 5e13 along the probes (found while measuring the checker). Its
    # values are float32 numbers, flat over steps that move it by less than an ulp, whose
    # differences of 0 were taken for exact with float64's rounding; and the fits' search for
    # smaller windows stopped at windows far wider than w, whose estimates grew tenfold from
    # one to the next. The exact gradient stays no false alarm
    w = (np.random.default_rng(1400).normal(size=2000) * scale).astype(np.float32)
    fun, grad = _log_sum_squares_cast_inside, _log_sum_squares_gradient
    assert check_gradient(fun, lambda w: 0 * grad(w), w).verdict == "wrong"
    assert check_gradient(fun, grad, w).verdict == "cannot tell"


def test_vague_one_sided_slopes_pass_no_claim_along_a_smooth_line_in_float32():
    # along a probe of code that computes in float32, one-sided slopes that agree with the
    # reference (and with each other, within errors of half their size) were each taken as a
    # reference of their own, however vague, for what a kink would do: log sum w^2 cast inside
    # at w of 1e-15, the negated gradient passed every probe along which they were vaguer than
    # its distance (`cannot tell`); where nothing shows a kink they no longer count
    w = (np.random.default_rng(1).normal(size=2000) * 1e-15).astype(np.float32)
    fun, grad = _log_sum_squares_cast_inside, _log_sum_squares_gradient
    assert check_gradient(fun, lambda w: -grad(w), w).verdict == "wrong"


def test_float32_least_squares_at_its_optimum_is_not_a_false_alarm():
    # X^T (X w - y) written in float32 (the loss dtype-generic) at the least-squares optimum
    # rounded to float32: terms of 1 cancel to a gradient of 1e-6, and float32 rounding moves
    # the claim by 3e-6 a few dozen ulps away, its midpoints as much, and as much 8 times closer
    # in: rounding, not a jump at x. Taken for a jump, its allowance was capped at 4e-9 and the
    # exact formula was `wrong` (an outside audit). A pass that leaves out a sample stays wrong
    rng = np.random.default_rng(1900)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = (X.astype(np.float64) @ rng.normal(size=4) + rng.normal(size=50)).astype(np.float32)
    w = np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    w = w.astype(np.float32)

    def loss(w):
        r = X @ w - y
        return 0.5 * np.sum(r * r)

    def grad(w, rows=slice(None)):
        w = np.asarray(w, np.float32)
        return X[rows].T @ (X[rows] @ w - y[rows])

    assert check_gradient(loss, grad, w).verdict == "cannot tell"
    assert check_gradient(loss, lambda w: grad(w, slice(1, None)), w).verdict == "wrong"


def _log_sum_exp_cast_inside(p):
    p = np.asarray(p, np.float32)
    top = p.max()
    return float(top + np.log(np.sum(np.exp(p - top))))


def _softmax_cast_inside(p):
    p = np.asarray(p, np.float32)
    e = np.exp(p - p.max())
    return e / e.sum()


def test_log_sum_exp_cast_inside_far_from_0_is_not_a_false_alarm():
    # log-sum-exp of 20 values at 3e4 +- 3, cast to float32 inside and returned by float(): the
    # first steps (150, relative to 3e4) see a kink where the function turns over a scale of
    # 1, and the one-sided differences from them agreed on its slopes (0.00066 +- 0.002 where
    # the derivative is 0.031), so that the exact softmax was `wrong`. In float32 its values
    # resolve no element here: `cannot tell`
    w = (3e4 + np.random.default_rng(0).normal(size=20) * 3).astype(np.float32)
    assert check_gradient(_log_sum_exp_cast_inside, _softmax_cast_inside, w).verdict == (
        "cannot tell")


def test_vague_sides_pass_no_claim_where_code_cast_inside_shows_no_kink():
    # the vague one-sided estimates that count where a kink is in sight count nowhere else: at
    # 100 +- 3 the references resolve the softmax to 0.2%, and a claim 5% off stays `wrong`
    w = (100 + np.random.default_rng(1).normal(size=20) * 3).astype(np.float32)
    fun, grad = _log_sum_exp_cast_inside, _softmax_cast_inside
    assert check_gradient(fun, lambda w: 1.05 * grad(w), w).verdict == "wrong"
    assert check_gradient(fun, lambda w: -grad(w), w).verdict == "wrong"


@pytest.mark.parametrize("n, seed", [(5, 2), (20, 0), (20, 2)])
def test_log_sum_exp_far_from_0_in_float64_is_not_a_false_alarm(n, seed):
    # log-sum-exp of values at 1e9 +- 3 in float64: the first steps (1e4) lie far beyond the
    # scale it turns over (about 10), where one side rises and the other lies on a plateau,
    # whose slopes from such steps were taken for sharp one-sided derivatives (0 +- 2.6e-9 where
    # the derivative is 3e-6), and the exact softmax was `wrong`. A claim 5% off and the
    # negation stay `wrong`
    w = 1e9 + np.random.default_rng(seed).normal(size=n) * 3

    def lse(p):
        top = p.max()
        return float(top + np.log(np.sum(np.exp(p - top))))

    def softmax(p):
        e = np.exp(p - p.max())
        return e / e.sum()

    assert check_gradient(lse, softmax, w).verdict != "wrong"
    assert check_gradient(lse, lambda p: 1.05 * softmax(p), w).verdict == "wrong"
    assert check_gradient(lse, lambda p: -softmax(p), w).verdict == "wrong"


def test_refinement_takes_no_steps_below_the_resolution_of_code_cast_inside():
    # code that rounds its float64 points to float32 inside, at 3000 + d: a Ridders tableau
    # whose steps were a few ulps of 3000 (2.4e-4) or less took points that round back to x,
    # a difference of exactly 0, and every wider step was held to it: log cosh's slope of
    # 0.305 came out as 0 +- 0.27
    from backprop_bench.verify import references as R
    from backprop_bench.verify.check import EPS32

    def fun(p):
        d = np.asarray(p, np.float32) - np.float32(3000)
        return np.array([np.sum(np.logaddexp(d, -d))], dtype=np.float64)

    f = R.Evaluator(lambda x: x, fun, lambda x: x, 1)
    f.rounds_to, f.inner_eps, f.out_eps = np.float32, EPS32, R.EPS
    x = np.array([3000.3147, 2999.6, 3001.9], dtype=np.float32).astype(np.float64)
    f0, _ = f.at(x)
    e = np.eye(3)[0]
    exact = float(np.tanh(x[0] - 3000))
    for noise in (np.abs(f0) * EPS32, 4 * np.abs(f0) * EPS32):
        d = R.refine(f, x, e, noise, R.base_step(x, e, f0, noise, True))
        assert d.error[0] < 0.01 and abs(d.value[0] - exact) <= 3 * d.error[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_function_returning_one_reused_buffer_is_not_a_false_alarm(dtype):
    # fun writes each value into one preallocated array and returns it, so its next call
    # overwrites what it returned: deterministic by value, yet the values kept were changed
    # under the check ("not deterministic" from check_vjp, or references of 0 and `cannot
    # tell`, from an outside audit). A VJP 1.05 times the exact one stays wrong
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 5)).astype(dtype)
    w = rng.normal(size=5).astype(dtype)
    buffers = {}

    def fun(w):
        value = np.sin(A @ w)
        out = buffers.setdefault((value.dtype, value.shape), np.empty_like(value))
        out[...] = value
        return out

    def vjp(w, u):
        return A.T @ (u * np.cos(A @ w))

    assert check_vjp(fun, vjp, w).verdict == "correct"
    assert check_vjp(fun, lambda w, u: 1.05 * vjp(w, u), w).verdict == "wrong"
    loss = lambda w: fun(w)[:1].reshape(())  # noqa: E731 - a 0-d view of the buffer
    assert check_gradient(loss, lambda w: vjp(w, np.eye(6, 1, dtype=w.dtype).ravel()),
                          w).verdict == "correct"  # fmt: skip


def test_a_float32_claim_that_underflows_is_not_a_false_alarm():
    # SiLU, z / (1 + e^-z), in float32 at pre-activations down to -90: the claim's sigmoid is 0
    # below -88.7, so its s (1 + z (1 - s)) is 0 where the float64 twin gives up to -3e-37; the
    # exact VJP was wrong, held to 6e-44
    from scipy.special import expit

    rng = np.random.default_rng(19)
    X = (rng.normal(size=(8, 10)) * 3).astype(np.float32)
    W = (rng.normal(size=(10, 12)) * 6).astype(np.float32)

    def fun(W):
        z = X.astype(W.dtype) @ W
        with np.errstate(over="ignore"):
            return z / (1 + np.exp(-z))

    def vjp(W, u, c=1.0):
        z = X.astype(W.dtype) @ W
        s = expit(z)
        return X.astype(W.dtype).T @ (u * (s + z * s * expit(-z) * W.dtype.type(c)))

    z = X @ W
    assert ((z < -88.8) & (expit(z.astype(np.float64)) * np.abs(z) > 1e-38)).any()
    assert check_vjp(fun, vjp, W).verdict != "wrong"
    assert check_vjp(fun, lambda W, u: vjp(W, u, 1.01), W).verdict == "wrong"


def test_the_complex_step_error_covers_its_underflow():
    from backprop_bench.verify import references as R

    # a derivative of 3e-299 along a step of 1e-30 has an imaginary part of 3e-329: 0
    f = R.Evaluator(lambda z: z, lambda p: 3e-299 * p, lambda z: z, 1, build_complex=lambda z: z)
    d = R.complex_step(f, np.array([2.0]), np.array([1.0]))
    assert d.value[0] == 0 and 3e-299 <= d.error[0] <= 1e-270


def test_a_forward_that_rounds_its_change_away_is_not_a_false_alarm():
    # log(1 + e^z) at z = -40: 1 + e^-40 is 1, so the function as computed does not move at any
    # step, and its exact derivative e^z / (1 + e^z) was wrong, per output and summed
    z = np.array([-40.0, -1.0, 0.5, 2.0, -38.0])

    def vjp(p, u, off=1.0):
        return u * off / (1 + np.exp(-p))

    result = check_vjp(lambda p: np.log(1 + np.exp(p)), vjp, z)
    assert result and result.verdict == "correct", result.report()
    result = check_vjp(lambda p: np.log(1 + np.exp(p)), lambda p, u: vjp(p, u, 1.001), z)
    assert not result and result.verdict == "wrong", result.report()
    result = check_gradient(lambda p: np.sum(np.log(1 + np.exp(p))), lambda p: vjp(p, 1.0), z)
    assert result and result.verdict == "correct", result.report()


@pytest.mark.parametrize("layout", ["fortran", "transposed"])
def test_params_in_any_memory_order_are_checked_as_given(layout):
    # the checker's copies were C-ordered: a sum over a Fortran-ordered array and over such a
    # copy round differently, and a correct gradient was `not deterministic` for 40-60% of seeds
    # (an outside audit, with the README's own example)
    def fun(W):
        return np.sum(np.tanh(W) ** 2)

    def grad(W):
        return 2 * np.tanh(W) * (1 - np.tanh(W) ** 2)

    for seed in range(12):
        A = np.random.default_rng(seed).normal(size=(4, 3))
        W = np.asfortranarray(A) if layout == "fortran" else np.ascontiguousarray(A.T).T
        assert not W.flags.c_contiguous
        result = check_gradient(fun, grad, W)
        assert result.verdict == "correct", result.report()
        result = check_gradient(lambda p: fun(p["W"] + p["b"]),
                                lambda p: {"W": grad(p["W"] + p["b"]),
                                           "b": grad(p["W"] + p["b"]).sum(axis=0)},
                                {"W": W, "b": np.zeros(3)})  # fmt: skip
        assert result.verdict == "correct", result.report()


def test_views_with_gaps_or_reversed_axes_are_checked_as_given():
    # a view of a parameter buffer (buf[:, ::2]) was copied contiguous: W @ x of the view and of
    # the copy take other paths and differ by an ulp, and a correct gradient was `not
    # deterministic` (an outside audit), a wrong one too instead of `wrong`
    rng = np.random.default_rng(0)
    buf, x = rng.normal(size=(6, 10)), rng.normal(size=5)

    def fun(W):
        return np.sum(np.tanh(W @ x) ** 2)

    def grad(W, wrong=False):
        t = np.tanh(W @ x)
        return np.outer(2 * t * (1 - (t if wrong else t**2)), x)

    views = [buf[:, ::2], buf[::-1, ::-2], buf.astype(np.float32)[:, 1::2]]
    for W in views:
        assert check_gradient(fun, grad, W).verdict == "correct"
        assert check_gradient(fun, lambda W: grad(W, True), W).verdict == "wrong"
    both = {"A": buf[:, ::2], "B": buf[::-2, 1::2]}
    result = check_gradient(lambda p: fun(p["A"]) + fun(p["B"]),
                            lambda p: {"A": grad(p["A"]), "B": grad(p["B"])}, both)  # fmt: skip
    assert result.verdict == "correct", result.report()
    result = check_vjp(lambda W: np.tanh(W @ x), lambda W, u: np.outer(
        u * (1 - np.tanh(W @ x) ** 2), x), buf[:, ::2])  # fmt: skip
    assert result.verdict == "correct", result.report()


def test_reports_at_kinks_say_what_was_judged_and_how():
    # an outside audit: a group's line showed an element at a kink with its straddling
    # reference's tolerance ("worst at (0,) ... tolerance 4 -> ok"), a claim 9.5 times off its
    # reference "-> ok" under FAILED, and floors of "errors above 0" and "above 60"
    def relu_sum(w):
        return np.sum(np.maximum(w, 0))

    def relu_grad(w):
        return (w > 0) * 1.0

    mixed = check_gradient(relu_sum, relu_grad, np.array([0.0, 0.0, 1.0, -2.0]))
    assert mixed.verdict == "not differentiable here"
    line = mixed.report().splitlines()[1]
    assert "worst at (2,)" in line and line.endswith("-> ok (2 elements at kinks: below)"), line
    assert mixed.groups[0].at_kinks == 2 and not mixed.groups[0].all_at_kinks
    every = check_gradient(relu_sum, relu_grad, np.zeros(2)).report()
    assert "params (2,) [grad]: every element at a kink or within rounding of one" in every
    assert "detection floor: none to state: every element lies at a kink" in every
    assert "errors above 0 of" not in every

    tau, y = 0.3, np.array([1.0, 2.0, 3.0])  # pinball loss at every kink, the claim 3x off

    def pinball(q):
        return np.sum(np.maximum(tau * (y - q), (tau - 1) * (y - q)))

    result = check_gradient(pinball, lambda q: np.where(y - q > 0, -tau, 1 - tau) * 3, y.copy())
    report = result.report()
    assert result.verdict == "wrong"
    assert "-> within a tolerance above its group's derivatives: not resolved" in report
    assert "-> ok" not in report.splitlines()[1]
    if result.floor >= 1:
        assert "some element was not resolved (the lines above and the notes say why)" in report
    assert "1 more suspects" not in report


def test_a_group_its_reference_resolves_is_sized_by_it_beside_far_larger_derivatives():
    # w of about 1 beside eps of 1e-30 under a log (derivatives of 1e30): w was taken for zero
    # beside them and held to their rounding, 4.4e14, its reference good to 4e-8; a correct claim
    # was `cannot tell`, and a cos written as sin too, with no word why (an outside audit)
    rng = np.random.default_rng(9)
    params = {"w": rng.normal(size=5), "eps": np.array([3e-30, 1e-30])}

    def fun(p):
        return np.sum(np.sin(p["w"])) + np.sum(np.log(p["eps"]))

    def grad(p, first=np.cos):
        return {"w": first(p["w"]), "eps": 1 / p["eps"]}

    result = check_gradient(fun, grad, params)
    assert result.verdict == "correct" and result.floor < 1e-6, result.report()
    # the wrong claim's w is off within the rounding of eps's derivatives: not told from
    # rounding in intermediates of that size, said so, with what checks it
    result = check_gradient(fun, lambda p: grad(p, np.sin), params)
    assert result.verdict == "cannot tell", result.report()
    assert any(n.startswith("w: off its derivatives (at most 0.97, resolved by its reference)")
               and "w's claim checked alone" in n for n in result.notes), result.notes  # fmt: skip
    alone = check_gradient(lambda w: fun({"w": w, "eps": params["eps"]}),
                           lambda w: np.sin(w), params["w"])  # fmt: skip
    assert alone.verdict == "wrong"
    # along probes, a probe moves eps across 0 and the log is NaN at every step: no reference
    # there, not judged (a NaN reference failed the correct claim: `wrong`)
    result = check_gradient(fun, grad, params, mode="probes")
    assert result.verdict == "cannot tell", result.report()
    assert any(n.endswith("not judged") and "probes without a reference" in n
               for n in result.notes)  # fmt: skip
    assert "-> not judged" in result.report() and "FAIL" not in result.report()


def test_a_vjps_failing_smooth_output_is_shown_beside_its_kinked_ones():
    # every column had one output at a kink, and the group's line said "every element at a
    # kink": a FAILED check showed no line that failed (a review of the diff)
    def fun(w):
        return np.array([np.maximum(w[0], 0), 2 * w[0] + w[1], np.maximum(w[1], 0)])

    def vjp(w, u):
        return np.array([u[0] * (w[0] > 0) + 3.0 * u[1], u[1] + u[2] * (w[1] > 0)])

    result = check_vjp(fun, vjp, np.zeros(2))
    line = result.report().splitlines()[1]
    assert result.verdict == "wrong" and "-> FAIL (2 elements at kinks: below)" in line, line


def test_float32_code_summing_intermediates_of_a_far_larger_group_is_not_wrong():
    # exact in real arithmetic, computed in float32 through terms of 1e30 (u / eps): w's values
    # hold their rounding; taken for 0 before, w was allowed it (cannot tell); sized by its
    # reference, it was held to float64 ulps of it and `wrong` (a review of the diff)
    f32 = np.float32
    w0 = np.random.default_rng(9).normal(size=3).astype(f32)
    params = {"w": w0, "eps": np.array([1.01e-30, 1.30e-30], f32)}

    def fun(p):
        w, e = p["w"].astype(f32), p["eps"].astype(f32)
        return np.array([np.sum(np.sin(w)) + np.sum(np.log(e * f32(1e30))), np.sum(np.sin(w))],
                        dtype=f32)  # fmt: skip

    def vjp(p, u):
        w, e, u = p["w"].astype(f32), p["eps"].astype(f32), np.asarray(u, f32)
        big = u[0] / e
        return {"w": ((((u[0] + u[1]) * np.cos(w) + big[0]) + big[1]) - big[1] - big[0]),
                "eps": big}  # fmt: skip

    assert np.abs(vjp(params, np.array([1, 0], f32))["w"]).max() > 1e15  # the rounding is there
    assert check_vjp(fun, vjp, params).verdict == "cannot tell"


def test_where_every_derivative_and_claim_is_zero_the_floor_is_not_zero():
    # relus 1e-9 past their kinks: every reference 0 +- 1.18 and the claim 0 was `correct` with
    # "errors above 0 ... would have been seen", where a claim of 1e-3 was `cannot tell` (a
    # review of the diff; an older fault): the floor is taken against a derivative of the
    # function's size (or 1) over the parameters' size
    c = np.array([1.000000001, 2.000000001])

    def f(w):
        return np.maximum(w[0] - c[0], 0) + np.maximum(w[1] - c[1], 0)

    result = check_gradient(f, lambda w: np.zeros(2), np.array([1.0, 2.0]))
    assert result.verdict == "cannot tell" and result.floor > 1, result.report()
    assert "not resolved" in result.report()
    # a function exactly 0 everywhere resolves its zero derivative all the same
    zero = check_gradient(lambda w: 0.0 * np.sum(w), lambda w: np.zeros(2), np.array([1.0, 2.0]))
    assert zero.verdict == "correct" and zero.floor < 1e-30, zero.report()
    off = check_gradient(lambda w: 0.0 * np.sum(w), lambda w: np.full(2, 1e-3),
                         np.array([1.0, 2.0]))  # fmt: skip
    assert off.verdict == "wrong"


def test_a_function_that_jumps_at_the_point_is_said_to():
    # round at a half: the report said only that the derivatives "could not be told from 0
    # (they may be as large as 4.5)", where the function has none (an outside audit)
    def rounded(W):
        return np.sum(np.round(W) * 0.5) + np.sum(W**2)

    result = check_gradient(rounded, lambda W: 2 * W, np.array([0.5, 1.5, 2.25]))
    jumps = [n for n in result.notes
             if n.startswith("fun seems to jump at x along params(0,): by 0.5")]
    assert result.verdict == "cannot tell" and len(jumps) == 1, result.notes
    assert "and along 1 more of the 3 elements looked at" in jumps[0]  # 2.25 is no jump
    # in code that computes in float32, and a comparison of params
    cast = check_gradient(lambda W: rounded(W.astype(np.float32)), lambda W: 2 * W,
                          np.array([0.5, 1.5, 2.25], dtype=np.float32))  # fmt: skip
    assert any(n.startswith("fun seems to jump at x along params(0,)") for n in cast.notes)
    step = check_gradient(lambda W: np.sum(W > 1.0) + np.sum(W**2), lambda W: 2 * W,
                          np.array([1.0, 0.3]))  # fmt: skip
    assert any(n.startswith("fun seems to jump at x along params(0,): by 1 ") for n in step.notes)
    # unresolved for rounding beside a large constant, or at a kink: no jump said
    W = np.random.default_rng(0).normal(size=6)
    offset = check_gradient(lambda W: 1e9 + np.sum(np.tanh(W)) + 1e-3 * np.abs(W[3]),
                            lambda W: 1 - np.tanh(W) ** 2 + 1e-3 * np.sign(W) * (
                                np.arange(6) == 3), W)  # fmt: skip
    assert offset.verdict == "cannot tell"
    kink = check_gradient(lambda w: np.sum(np.maximum(w, 0)), lambda w: (w > 0) * 1.0,
                          np.zeros(3))  # fmt: skip
    # nor a steep slope that the reference resolves (its derivative of 1e12 known to 2%)
    steep = check_gradient(lambda w: np.sum(np.tanh(1e12 * (w - 0.3))),
                           lambda w: 1e12 * (1 - np.tanh(1e12 * (w - 0.3)) ** 2),
                           np.array([0.3, 1.0]))  # fmt: skip
    assert not any("jump" in n for n in offset.notes + kink.notes + steep.notes)


def test_a_steep_rise_below_every_step_is_resolved_at_smaller_ones():
    # tanh(k (w - 0.3)) at 0.3: central differences at steps of 1e-9 of w and wider see only
    # its two plateaus (10 +- 35 where the derivative is 1e13), and a right claim was `wrong`
    # for k of 1e13 and more (an outside audit), `cannot tell` for 1e10 and 1e12. At the
    # steps where it is smooth a right claim is `correct` and one 1% off `wrong`, as far as
    # its own rounding a few dozen ulps away allows; no further, `cannot tell`
    def case(k, factor, real=False, n=0):
        def f(w):
            value = np.sum(np.tanh(k * (w[:3] - 0.3))) + np.sum(np.sin(w[3:]))
            return float(value) if real else value

        def g(w):
            out = np.cos(w)
            out[:3] = factor * k * (1 - np.tanh(k * (w[:3] - 0.3)) ** 2)
            return out

        w = np.concatenate([[0.3, 0.7, 0.3 + 0.5 / k],
                            np.random.default_rng(0).normal(size=n)])  # fmt: skip
        return check_gradient(f, g, w)

    for k, right in ((1e10, "correct"), (1e12, "correct"), (1e13, "cannot tell"),
                     (1e15, "cannot tell"), (1e16, "cannot tell")):  # fmt: skip
        for real in (False, True):  # (real: no complex step)
            result = case(k, 1.0, real)
            assert result.verdict == right, (k, real, result.report())
            off = case(k, 1.01, real).verdict
            assert off == ("wrong" if k <= 1e13 else "cannot tell"), (k, real, off)
            assert case(k, 2.0, real).verdict in ("wrong", "cannot tell")
    # beside other parameters, in the full Jacobian and along probes: never `wrong` when right
    for n in (50, 1500):
        for k in (1e10, 1e13):
            assert case(k, 1.0, n=n).verdict != "wrong", (n, k)
    assert case(1e10, 1.01, n=50).verdict == "wrong"
    # code that casts to float32 inside: tanh(1e5 (w - 0.3)) rises over 1e-5 of w, wider than
    # the jump test's smallest step there and far narrower than the first (3e-3); its reference
    # was 0 +- 28 and a right claim `wrong`
    def rise32(k, factor=1.0):
        k32, c = np.float32(k), np.float32(0.3)

        def f32(w):
            return np.sum(np.tanh(k32 * (np.asarray(w, np.float32) - c)))

        def g32(w):
            t = np.tanh(k32 * (np.asarray(w, np.float32) - c))
            return np.float32(factor) * k32 * (1 - t**2)

        w32 = np.array([0.3, 0.7, 0.3 + 0.5 / k], dtype=np.float32)
        return check_gradient(f32, g32, w32).verdict

    for k in (1e4, 1e5, 1e6, 1e8):
        assert rise32(k) != "wrong", k
    assert rise32(1e4, 2.0) == "wrong"


def test_one_large_derivative_does_not_hide_a_float32_claims_errors_in_the_others():
    # log w at w = 1e-6 beside w of 0.5 to 2: the group's largest derivative, 1e6, allowed
    # every element 2 float32 ulps of it (0.24), in the float32 claim and in its float64 run,
    # and a claim 1% off at a derivative of 2 was `correct`. The float64 run of code that shows
    # no float32 rounding in the group is allowed float64's there
    def log_sum(w):
        return np.sum(np.log(w))

    def off(grad):
        def claim(w):
            g = grad(w)
            g[1] = g[1] * 1.01
            return g

        return claim

    def buffered(w):  # a float32 buffer: float32 rounding in the float64 run too
        out = np.empty(w.shape, np.float32)
        out[:] = 1 / w
        return out.astype(w.dtype)

    for n in (3, 50):
        w = np.random.default_rng(1).uniform(0.5, 2, size=n).astype(np.float32)
        w[0] = 1e-6
        assert check_gradient(log_sum, lambda w: 1 / w, w).verdict == "correct"
        assert check_gradient(log_sum, off(lambda w: 1 / w), w).verdict == "wrong"
        # code with float32 constants or buffers keeps the float32 allowance: no false alarm
        for right in (buffered, lambda w: np.float32(0.1) * 10 / w):
            assert check_gradient(log_sum, right, w).verdict == "correct"


def test_the_checkers_copies_are_laid_out_as_the_callers_arrays():
    from backprop_bench.verify.check import CACHE_LINE, _copy_laid_out_as, _empty_laid_out_as

    def lowest(a):  # the address of the element lowest in memory
        steps = zip(a.strides, a.shape, strict=True)
        return a.ctypes.data + sum(s * (n - 1) for s, n in steps if s < 0)

    base = np.arange(200.0).reshape(10, 20)
    for view in (base[:, ::2], base[::-1, 1::-3][:, :1], base[1:, 3:], base.T[::3],
                 base[2:7:2, ::-1], np.asfortranarray(base)[1:, 1:]):  # fmt: skip
        copy = _copy_laid_out_as(view)
        assert copy.strides == view.strides and np.array_equal(copy, view)
        assert not np.shares_memory(copy, view)
        assert (lowest(copy) - lowest(view)) % CACHE_LINE == 0
        wide = _empty_laid_out_as(view, np.complex128)  # the complex step's points
        assert wide.strides == tuple(2 * s for s in view.strides)
        wide[...] = view  # every element its own
        assert np.array_equal(wide.real, view)
    # elements that share memory cannot be laid out so: each its own (as np.empty_like)
    shared = np.broadcast_to(base[0, :5], (3, 5))
    copy = _copy_laid_out_as(shared)
    assert 0 not in copy.strides and copy.flags.writeable and np.array_equal(copy, shared)


def test_contiguous_params_are_built_without_the_general_layout_copy(monkeypatch):
    # the general copy (strides, a buffer, its place in a cache line) costs 30 times numpy's
    # empty_like: built for every group at every evaluation, it made checks of dict params 5.5x
    # slower; contiguous arrays (C or Fortran order) are laid out by empty_like
    from backprop_bench.verify import check as C

    calls = []
    general = C._empty_laid_out_as
    monkeypatch.setattr(C, "_empty_laid_out_as", lambda *a: calls.append(1) or general(*a))
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(4, 3)), "V": np.asfortranarray(rng.normal(size=(3, 5)))}
    result = check_gradient(lambda p: np.sum(np.tanh(p["W"] @ p["V"])),
                            lambda p: {"W": (1 - np.tanh(p["W"] @ p["V"]) ** 2) @ p["V"].T,
                                       "V": p["W"].T @ (1 - np.tanh(p["W"] @ p["V"]) ** 2)},
                            params)  # fmt: skip
    assert result.verdict == "correct", result.report()
    assert len(calls) <= 4 * len(params), len(calls)  # its copies of params, not every point


def test_misuses_found_by_an_outside_audit_are_refused_in_one_line():
    W = np.random.default_rng(0).normal(size=(3, 2))
    f = lambda W: np.sum(np.tanh(W) ** 2)  # noqa: E731
    g = lambda W: 2 * np.tanh(W) * (1 - np.tanh(W) ** 2)  # noqa: E731
    cases = [
        # a (loss, grad) pair: NumPy's "inhomogeneous shape" named no fix
        (lambda: check_gradient(lambda W: (f(W), g(W)), g, W), "a (loss, gradient) pair?"),
        (lambda: check_vjp(lambda W: np.zeros(0), lambda W, u: np.zeros_like(W), W),
         "fun returned an empty array"),
        # refused before the check, not after it ran
        (lambda: check_vjp(np.tanh, lambda W, u: u, W, jvp=3), "jvp must be a callable"),
        # 10**9 probes ran for days
        (lambda: check_gradient(f, g, W, probes=10**9), "probes must be an integer from 1 to"),
        # a string "no" was taken for True
        (lambda: check_gradient(f, g, W, use_scipy="no"), "use_scipy must be True or False"),
        (lambda: check_gradient(f, g, W, progress="no"), "progress must be True or False or"),
    ]
    for call, message in cases:
        with pytest.raises((TypeError, ValueError)) as error:
            call()
        assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("shape", [(8,), (2, 4)])
def test_a_jvp_of_another_shape_is_refused(shape):
    # a flat or transposed J v of the right size was reshaped and judged (README: refused)
    A = np.random.default_rng(0).normal(size=(4, 3))
    W = np.random.default_rng(1).normal(size=(3, 2))
    fun = lambda W: np.tanh(A @ W)  # noqa: E731  (outputs (4, 2))
    vjp = lambda W, u: A.T @ (u * (1 - np.tanh(A @ W) ** 2))  # noqa: E731
    jvp = lambda W, v: ((1 - np.tanh(A @ W) ** 2) * (A @ v)).reshape(shape)  # noqa: E731
    with pytest.raises(ValueError, match=r"it must return J v, an array shaped like fun's output"):
        check_vjp(fun, vjp, W, jvp=jvp)


def test_params_of_1e140_are_checked_and_of_1e160_refused_in_one_line():
    # 1e160 ended in NumPy's LinAlgError from the noise fit (an outside audit)
    W = np.random.default_rng(0).normal(size=(3, 2))
    s = 1e140
    fun = lambda W: np.sum(np.sin(W / s))  # noqa: E731
    assert check_gradient(fun, lambda W: np.cos(W / s) / s, W * s).verdict == "correct"
    assert check_gradient(fun, lambda W: -np.cos(W / s) / s, W * s).verdict == "wrong"
    with pytest.raises(ValueError, match=r"params holds values as large as .*; the references"):
        check_gradient(fun, lambda W: np.cos(W / s) / s, W * 1e160)


def test_a_group_without_references_reads_not_judged_and_no_floor():
    # "tolerance nan -> ok" and "errors above inf of ..." (an outside audit)
    W = np.random.default_rng(0).normal(size=(3, 2))
    W0 = W[0, 0]
    result = check_gradient(lambda W: np.sum(np.tanh(W) ** 2) if W[0, 0] == W0 else np.nan,
                            lambda W: 2 * np.tanh(W) * (1 - np.tanh(W) ** 2), W)  # fmt: skip
    report = result.report()
    assert result.verdict == "cannot tell" and "-> not judged" in report and "-> ok" not in report
    assert "detection floor: none (no error of any size" in report


def test_tied_weights_are_named_in_a_note():
    """One array under two names is checked as two parameters, each moved alone (the per-name
    derivative passes, the summed one a training step uses does not): a note says so, where
    there was none (from an audit of the API), and copies or other arrays get none."""
    W, x = np.array([[0.3, -0.2], [0.1, 0.5]]), np.array([1.0, 2.0])

    def fun(p):
        return float(np.sum(np.tanh(p["enc"] @ x) * (p["dec"] @ x)))

    def per_name(p):
        a, b = p["enc"] @ x, p["dec"] @ x
        return {"enc": np.outer((1 - np.tanh(a) ** 2) * b, x), "dec": np.outer(np.tanh(a), x)}

    def summed(p):
        g = per_name(p)
        return {"enc": g["enc"] + g["dec"], "dec": g["enc"] + g["dec"]}

    def tied_note(result):
        return [n for n in result.notes if "'enc' and 'dec' are one array" in n]

    assert check_gradient(fun, per_name, {"enc": W, "dec": W}).verdict == "correct"
    result = check_gradient(fun, summed, {"enc": W, "dec": W})
    assert result.verdict == "wrong" and len(tied_note(result)) == 1
    assert len(tied_note(check_gradient(fun, per_name, {"enc": W, "dec": W[:, ::1]}))) == 1
    assert not tied_note(check_gradient(fun, per_name, {"enc": W, "dec": W.copy()}))


def test_big_endian_float64_params_are_float64():
    """'>f8' params were taken for a lower precision and reported twice ([grad] and [grad in
    float64]); float64 either way now, and an error of 1e-3 still wrong (from an audit)."""
    w = np.linspace(-1, 1, 5).astype(">f8")

    def grad(p):
        return np.cos(p) * p + np.sin(p)

    result = check_gradient(lambda p: np.sum(np.sin(p) * p), grad, w)
    assert result.verdict == "correct"
    assert not any("in float64]" in line for line in result.report().splitlines())
    off = check_gradient(lambda p: np.sum(np.sin(p) * p),
                         lambda p: grad(p) * (1 + 1e-3 * (np.arange(5) == 1)), w)  # fmt: skip
    assert off.verdict == "wrong"


def test_a_check_by_probes_names_the_params_shape():
    """A (10, 5) array checked by probes was reported as params (50,) (from an audit)."""
    W = np.random.default_rng(0).normal(size=(10, 5))
    result = check_gradient(lambda p: np.sum(np.sin(p)), np.cos, W, mode="probes")
    assert result.verdict == "correct"
    assert result.report().splitlines()[1].startswith("  params (10, 5) [grad]")


def _springs(offset, cast):
    """A spring network's energy and its exact gradient at points moved by ``offset``: a
    function of the points' differences, which are exact there (8 points, 13 springs)."""
    rng = np.random.default_rng(37)
    edges = [(i, i + 1) for i in range(7)] + [(i, i + 2) for i in range(6)]
    first, second = np.array(edges).T
    rest = np.where(second - first == 1, 1.0, 2.0)
    stiffness = rng.uniform(0.5, 2, len(edges))
    x0 = np.stack([np.arange(8.0), np.zeros(8)], 1) + 0.2 * rng.normal(size=(8, 2))

    def parts(x):
        if cast:
            x = x.astype(np.float32)
        d = x[first] - x[second]
        r = np.sqrt(np.sum(d * d, 1))
        return x, d, r, stiffness.astype(x.dtype), rest.astype(x.dtype)

    def fun(x):
        _, _, r, k, length = parts(x)
        return np.sum(0.5 * k * (r - length) ** 2)

    def grad(x):
        x, d, r, k, length = parts(x)
        force = (k * (r - length) / r)[:, None] * d
        g = np.zeros_like(x)
        np.add.at(g, first, force)
        np.add.at(g, second, -force)
        return g

    return fun, grad, (x0 + offset).astype(np.float32 if cast else np.float64)


@pytest.mark.parametrize("offset, cast", [(1e12, False), (1e13, False), (3e4, True), (1e5, True)])
def test_a_function_of_differences_far_from_zero_is_judged_at_its_own_scale(offset, cast):
    """Springs between points at 1e12 (float64) or 1e5 (float32 inside): the rounding measured
    a few hundred ulps from x was the energy's curvature (1e-3 where it is 3e-17), so no step
    below 1e11 was tried; references at steps far beyond the springs' length made a negated
    gradient `not differentiable here` (kinks with one-sided derivatives of 3 and -11) and the
    exact one `wrong` (from an outside audit). The right claim is not `wrong`; a negated one
    and one twice the gradient are."""
    fun, grad, x = _springs(offset, cast)
    assert check_gradient(fun, grad, x).verdict in ("correct", "cannot tell")
    assert check_gradient(fun, lambda p: -grad(p), x).verdict == "wrong"
    assert check_gradient(fun, lambda p: 2 * grad(p), x).verdict == "wrong"


def test_a_claim_on_a_tread_narrower_than_the_step_is_not_wrong():
    """A term of 1e6 w added and taken away rounds the rest of the value to stairs of 1.2e-10,
    5e-10 wide, and |w| keeps the complex step out: refinement's small steps fell on a tread
    (slope 0.01, the |w| term's alone) and the exact claim, 0.2534, was `wrong` against
    0.01 +- 2.5e-4 (from an outside audit). The stairs are now looked for from those steps
    up: not `wrong` (the tread's slope no finer than a stair over its width)."""
    c, big = 0.6404226504432183, 1e6

    def fun(w):
        return (np.sum(c * np.tanh(w)) + big * np.sum(w)) - big * np.sum(w) + 0.01 * np.sum(
            np.abs(w))

    def grad(w):
        return c * (1 - np.tanh(w) ** 2) + 0.01 * np.sign(w)

    result = check_gradient(fun, grad, np.array([1.064354024785745]))
    assert result.verdict != "wrong", result.report()
    assert any("staircase" in note for note in result.notes), result.report()


@pytest.mark.parametrize("offset", [1e5, 1e6])
def test_float32_code_far_from_zero_is_not_wrong_when_right(offset):
    """sin(w - c) in float32 code that casts inside, w near 1e6 (float32 ulps of 0.0625): a
    few hundred float32 ulps of w span several periods, and the rounding measured there was
    4 times the value, so the references were taken in steps the cast rounds away and the
    exact gradient was `wrong` against 0 (from an outside audit). The rounding is now measured
    along whole ulps closer in: not `wrong`. (At 1e7, where an ulp of w is 1, it still is: the
    README's known false alarms.)"""
    w = (offset + np.array([0.3, -1.2, 0.8, 1.9, -0.4, 2.6])).astype(np.float32)
    c = np.array([0.5, -1.1, 0.7, 0.2, -0.9, 1.3], dtype=np.float32)
    centre = np.float32(offset)

    def fun(p):
        return np.sum(np.sin(p.astype(np.float32) - centre) * c)

    def grad(p):
        return np.cos(p.astype(np.float32) - centre) * c

    assert check_gradient(fun, grad, w).verdict in ("correct", "cannot tell")
    assert check_gradient(fun, lambda p: -grad(p), w).verdict in ("wrong", "cannot tell")
