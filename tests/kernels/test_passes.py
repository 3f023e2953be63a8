"""forward, loss and backward of both backends against three oracles: the tutorial's one-net
formulas, central finite differences, and (for numba) the NumPy backend."""

import numpy as np
import pytest
from backprop_bench.kernels import NetSpec, get_problem, init_population, numpy_backend
from backprop_bench.kernels.numba_backend import backward as nb_backward
from backprop_bench.kernels.numba_backend import forward as nb_forward
from backprop_bench.kernels.numba_backend import loss as nb_loss

from . import tutorial

# numba against NumPy, one pass: each value is a short sum of O(1) products, so both backends are
# within a few ulp in relative terms; where a sum cancels to near zero only an absolute bound
# (a few hundred float64 ulp of the O(1) terms) is meaningful.
KERNEL_RTOL = 1e-12
KERNEL_ATOL = 1e-13
# float32 against float64: float32 keeps ~7 digits; a pass over a few layers loses at most a
# few ulp (eps32 = 1.2e-7) per operation.
FLOAT32_RTOL = 1e-5
FLOAT32_ATOL = 1e-6
# Central differences with step h = eps^(1/3) ~ 6e-6: truncation error ~ h^2 |f'''| and rounding
# error ~ eps |f| / h are both ~ 1e-10 for these O(1) losses; 1e-7 leaves a wide margin while a
# wrong gradient term (an error of order 1e-2 or more) still fails by orders of magnitude.
FD_STEP = np.finfo(np.float64).eps ** (1 / 3)
FD_ATOL = 1e-7

XOR = get_problem("xor")
SPECS = [
    NetSpec((2, 1)),
    NetSpec((2, 4, 1)),
    NetSpec((3, 5, 2), "tanh", loss="mse"),
    NetSpec((4, 3, 3, 2), "relu"),
    NetSpec((2, 6, 5, 4, 1), "leaky_relu", reduction="sum"),
    NetSpec((5, 2, 7, 3, 2, 3), "sigmoid", loss="mse", reduction="sum"),
]


def random_data(spec, n_samples, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, spec.n_inputs))
    Y = (rng.random((n_samples, spec.n_outputs)) < 0.5).astype(float)
    return X, Y


def random_population(spec, n_nets, seed=0):
    # "normal" draws biases too, so ReLU units sit away from their kink at 0
    return init_population(spec, n_nets, seed, init="normal:0.8")


def finite_difference_gradient(kernels, theta, spec, X, Y):
    grad = np.empty_like(theta)
    for i in range(spec.n_params):  # nets are independent: perturb row i of every net at once
        step = FD_STEP * np.maximum(1.0, np.abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (kernels.loss(up, spec, X, Y) - kernels.loss(down, spec, X, Y)) / (2 * step)
    return grad


def test_forward_matches_the_tutorial(kernels):
    spec = NetSpec((2, 4, 1))
    theta = init_population(spec, 6, seed=3)
    fwd = kernels.forward(theta, spec, XOR.X)
    for k in range(6):
        z1, a1, z2, a2 = tutorial.forward(XOR.X, *tutorial.unpack(theta[:, k]))
        np.testing.assert_allclose(fwd.z[0][:, :, k], z1, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        np.testing.assert_allclose(fwd.a[1][:, :, k], a1, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        np.testing.assert_allclose(fwd.z[1][:, :, k], z2, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        np.testing.assert_allclose(fwd.a[2][:, :, k], a2, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    np.testing.assert_array_equal(fwd.a[0][:, :, 5], XOR.X)


def test_loss_and_backward_match_the_tutorial(kernels):
    spec = NetSpec((2, 4, 1))
    theta = init_population(spec, 6, seed=4)
    losses = kernels.loss(theta, spec, XOR.X, XOR.Y)
    grads = kernels.backward(theta, spec, XOR.X, XOR.Y, per_layer=True)
    for k in range(6):
        W1, b1, W2, b2 = tutorial.unpack(theta[:, k])
        z1, a1, z2, a2 = tutorial.forward(XOR.X, W1, b1, W2, b2)
        dW1, db1, dW2, db2, dz1, da1, dz2 = tutorial.backward(XOR.X, XOR.Y, z1, a1, z2, a2, W1, W2)
        np.testing.assert_allclose(losses[k], tutorial.compute_loss(XOR.Y, z2), rtol=KERNEL_RTOL)
        expected = np.concatenate([dW1.ravel(), db1.ravel(), dW2.ravel(), db2.ravel()])
        np.testing.assert_allclose(grads.grad[:, k], expected, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        m = XOR.X.shape[0]  # the tutorial divides by m in dW; our dz is of the mean loss
        np.testing.assert_allclose(
            grads.dz[1][:, :, k] * m, dz2, rtol=KERNEL_RTOL, atol=KERNEL_ATOL
        )
        np.testing.assert_allclose(
            grads.da[0][:, :, k] * m, da1, rtol=KERNEL_RTOL, atol=KERNEL_ATOL
        )
        np.testing.assert_allclose(
            grads.dz[0][:, :, k] * m, dz1, rtol=KERNEL_RTOL, atol=KERNEL_ATOL
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
@pytest.mark.parametrize("n_samples", [1, 7])
def test_backward_matches_finite_differences(kernels, spec, n_samples):
    X, Y = random_data(spec, n_samples, seed=n_samples)
    theta = random_population(spec, 4)
    grad = kernels.backward(theta, spec, X, Y).grad
    np.testing.assert_allclose(
        grad, finite_difference_gradient(kernels, theta, spec, X, Y), rtol=0, atol=FD_ATOL
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_numba_matches_numpy(spec):
    X, Y = random_data(spec, 9, seed=1)
    theta = random_population(spec, 33, seed=2)
    ref_fwd, fwd = numpy_backend.forward(theta, spec, X), nb_forward(theta, spec, X)
    for ref, got in zip(ref_fwd.z + ref_fwd.a, fwd.z + fwd.a, strict=True):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    np.testing.assert_allclose(
        nb_loss(theta, spec, X, Y), numpy_backend.loss(theta, spec, X, Y), rtol=KERNEL_RTOL
    )
    ref_g = numpy_backend.backward(theta, spec, X, Y, per_layer=True)
    got_g = nb_backward(theta, spec, X, Y, per_layer=True)
    np.testing.assert_allclose(got_g.grad, ref_g.grad, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    assert len(got_g.dz) == spec.n_layers and len(got_g.da) == spec.n_layers - 1
    for ref, got in zip(ref_g.dz + ref_g.da, got_g.dz + got_g.da, strict=True):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
    assert nb_backward(theta, spec, X, Y).dz is None


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[3]], ids=lambda s: s.describe())
def test_float32_passes_stay_float32_and_near_float64(kernels, spec):
    X, Y = random_data(spec, 5, seed=3)
    theta64 = random_population(spec, 8)
    theta32 = theta64.astype(np.float32)
    g32 = kernels.backward(theta32, spec, X, Y).grad
    assert g32.dtype == np.float32
    assert kernels.forward(theta32, spec, X).a[-1].dtype == np.float32
    assert kernels.loss(theta32, spec, X, Y).dtype == np.float32
    np.testing.assert_allclose(
        g32, kernels.backward(theta64, spec, X, Y).grad, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL
    )


def test_extreme_logits_give_exact_finite_losses(kernels):
    # BCE from logits: a confidently wrong output costs |z|, with no log(0) and no warning
    spec = NetSpec((1, 1))
    theta = np.array([[0.0, 0.0], [800.0, -800.0]])  # weight 0, bias +-800
    losses = kernels.loss(theta, spec, np.zeros((1, 1)), np.zeros((1, 1)))
    np.testing.assert_allclose(losses, [800.0, 0.0], atol=1e-300)


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda th, X, Y: (th[:5], X, Y), r"theta must have shape \(n_params, n_nets\) = \(17"),
        (lambda th, X, Y: (th[:, 0], X, Y), r"for one net use theta\[:, None\]"),
        (lambda th, X, Y: (th.astype(int), X, Y), "theta must be float64 or float32"),
        (lambda th, X, Y: (th, X[:, :1], Y), r"X must have shape \(n_samples >= 1, 2\)"),
        (lambda th, X, Y: (th, X[:0], Y[:0]), r"X must have shape \(n_samples >= 1, 2\)"),
        (lambda th, X, Y: (th, X, Y[:3]), r"Y must have shape \(n_samples, n_outputs\) = \(4, 1\)"),
        (lambda th, X, Y: (th, X * np.nan, Y), "X holds NaN or inf"),
        (lambda th, X, Y: (th, X, Y + np.inf), "Y holds NaN or inf"),
        # cast to real with NumPy's warning, the imaginary part dropped (an outside audit)
        (lambda th, X, Y: (th, X + 1j, Y), "X holds complex numbers; the nets train on real"),
        (lambda th, X, Y: (th, X, Y + 0j), "Y holds complex numbers"),
    ],
)
def test_bad_inputs_name_the_fix(kernels, args, message):
    spec = NetSpec((2, 4, 1))
    theta, X, Y = args(init_population(spec, 3, 0), XOR.X, XOR.Y)
    with pytest.raises(ValueError, match=message):
        kernels.backward(theta, spec, X, Y)


def test_spec_must_be_a_netspec(kernels):
    with pytest.raises(TypeError, match=r"spec must be a NetSpec, e.g. NetSpec\(\(2, 4, 1\)\)"):
        kernels.loss(np.zeros((17, 1)), (2, 4, 1), XOR.X, XOR.Y)


def test_numba_passes_are_bitwise_identical_for_1_and_2_threads(numba_threads):
    if numba_threads < 2:
        pytest.skip("numba was started with one thread (NUMBA_NUM_THREADS=1 or a 1-core machine)")
    import numba
    from backprop_bench.kernels.numba_backend import adam_step

    spec = SPECS[4]
    X, Y = random_data(spec, 6, seed=0)
    theta = random_population(spec, 301)
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        fwd = nb_forward(theta, spec, X)
        grads = nb_backward(theta, spec, X, Y, per_layer=True)
        stepped, m, v = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
        adam_step(stepped, grads.grad, m, v, 1, 0.01)
        runs.append([*fwd.z, *fwd.a, nb_loss(theta, spec, X, Y), grads.grad, *grads.dz, *grads.da,
                     stepped, m, v])  # fmt: skip
    for one, two in zip(*runs, strict=True):
        np.testing.assert_array_equal(one, two)
