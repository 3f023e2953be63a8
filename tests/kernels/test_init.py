import numpy as np
import pytest
from backprop_bench.kernels import SCHEMES, Init, NetSpec, init_population, parse_init
from backprop_bench.kernels.init import BLOCK_NETS

SPEC = NetSpec((2, 4, 1))
# Sample moments of n draws: the standard error of a variance estimate is about
# var * sqrt(2 / n); with 1e5 nets x (8 or 4) weights a 3% band is > 10 standard errors.
MOMENT_RTOL = 0.03


def test_net_k_alone_equals_net_k_inside_a_population_of_100000():
    population = init_population(SPEC, 100_000, seed=7)
    for k in (0, 1, BLOCK_NETS - 1, BLOCK_NETS, 54_321, 99_999):
        alone = init_population(SPEC, 1, seed=7, first_net=k)
        np.testing.assert_array_equal(alone[:, 0], population[:, k])


def test_chunking_does_not_change_any_net():
    whole = init_population(SPEC, 5000, seed=3, init="xavier_uniform")
    cuts = [0, 1, 700, 1024, 1025, 3333, 5000]
    chunks = [
        init_population(SPEC, hi - lo, seed=3, init="xavier_uniform", first_net=lo)
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), whole)


def test_seeds_differ_and_repeat():
    a = init_population(SPEC, 10, seed=1)
    np.testing.assert_array_equal(a, init_population(SPEC, 10, seed=1))
    assert not np.allclose(a, init_population(SPEC, 10, seed=2))
    # nets of one seed differ from each other
    assert len({tuple(col) for col in a.T}) == 10


def test_float32_weights_are_the_float64_ones_rounded():
    w64 = init_population(SPEC, 100, seed=0, init="he_uniform")
    w32 = init_population(SPEC, 100, seed=0, init="he_uniform", dtype=np.float32)
    assert w32.dtype == np.float32 and w32.flags.c_contiguous
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def _layer_samples(theta, spec, layer):
    W, b = spec.layer_views(theta)[layer]
    return W.ravel(), b.ravel()


@pytest.mark.parametrize(
    "scheme, family, width",
    [
        ("tutorial", "normal", lambda fi, fo: np.sqrt(2 / fi)),
        ("he_normal", "normal", lambda fi, fo: np.sqrt(2 / fi)),
        ("xavier_normal", "normal", lambda fi, fo: np.sqrt(2 / (fi + fo))),
        ("lecun_normal", "normal", lambda fi, fo: np.sqrt(1 / fi)),
        ("xavier_uniform", "uniform", lambda fi, fo: np.sqrt(6 / (fi + fo))),
        ("he_uniform", "uniform", lambda fi, fo: np.sqrt(6 / fi)),
    ],
)
def test_fan_scaled_schemes_have_the_published_variance(scheme, family, width):
    spec = NetSpec((3, 5, 2))
    theta = init_population(spec, 100_000, seed=11, init=scheme)
    for layer, (fi, fo) in enumerate([(3, 5), (5, 2)]):
        W, b = _layer_samples(theta, spec, layer)
        expected_var = width(fi, fo) ** 2 if family == "normal" else width(fi, fo) ** 2 / 3
        np.testing.assert_allclose(W.var(), expected_var, rtol=MOMENT_RTOL)
        assert abs(W.mean()) < 0.01
        if family == "uniform":
            assert np.abs(W).max() <= width(fi, fo)
        np.testing.assert_array_equal(b, 0.0)


def test_uniform_and_normal_draw_biases_with_their_scale():
    theta = init_population(SPEC, 50_000, seed=5, init="uniform:0.3")
    assert np.abs(theta).max() <= 0.3
    np.testing.assert_allclose(theta.var(), 0.3**2 / 3, rtol=MOMENT_RTOL)
    theta = init_population(SPEC, 50_000, seed=5, init=Init("normal", 2.0))
    np.testing.assert_allclose(theta.std(), 2.0, rtol=MOMENT_RTOL)
    _, b = _layer_samples(theta, SPEC, 0)
    np.testing.assert_allclose(b.std(), 2.0, rtol=MOMENT_RTOL)


def test_schemes_sharing_a_family_scale_the_same_draws():
    # Common random numbers across inits: he_normal is xavier_normal rescaled, net for net.
    he = init_population(SPEC, 50, seed=9, init="he_normal")
    xavier = init_population(SPEC, 50, seed=9, init="xavier_normal")
    (W_he, _), _ = SPEC.layer_views(he)
    (W_x, _), _ = SPEC.layer_views(xavier)
    np.testing.assert_allclose(W_he / W_x, np.sqrt(2 / 2) / np.sqrt(2 / 6), rtol=1e-14)


def test_zeros():
    assert not init_population(SPEC, 3, seed=0, init="zeros").any()


def test_every_scheme_is_covered():
    assert set(SCHEMES) == {
        "tutorial", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
        "lecun_normal", "uniform", "normal", "zeros",
    }  # fmt: skip


def test_parse_init():
    assert parse_init("He-Normal") == Init("he_normal")
    assert parse_init("uniform:0.5") == Init("uniform", 0.5)
    assert str(parse_init("normal:0.25")) == "normal:0.25"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: parse_init("glorot"), "unknown init 'glorot'; choose one of: tutorial"),
        (lambda: parse_init("-1"), "unknown init '-1'; choose"),  # named as given, not '_1'
        (lambda: parse_init("uniform:x"), "init scale must be a number, as in uniform:0.5"),
        (lambda: parse_init("uniform:"), "init scale missing after ':' in 'uniform:'"),
        (lambda: parse_init("uniform:-1"), "init scale must be a positive finite number"),
        (lambda: parse_init("he_normal:2"), "takes no scale; only uniform:A and normal:SIGMA"),
        (lambda: init_population(SPEC, 0, 1), "n_nets must be a positive integer"),
        (lambda: init_population(SPEC, 2**63, 1), r"n_nets must be at most 2\*\*62"),
        (lambda: init_population(SPEC, 5, -1), "seed must be a non-negative integer"),
        (lambda: init_population(SPEC, 5, 1.5), "seed must be a non-negative integer"),
        (lambda: init_population(SPEC, 5, 1, first_net=-2), "first_net must be a non-negative"),
        (lambda: init_population(SPEC, 5, 1, dtype=np.int32), "dtype must be float64 or float32"),
        # beyond any address space (NumPy's MemoryError, once)
        (lambda: init_population(SPEC, 10**14, 1), "for theta alone, more than can be allocated"),
    ],
)
def test_bad_init_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
