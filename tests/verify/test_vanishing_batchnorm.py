"""The vanishing-gradient study with batch norm as a case."""

import numpy as np
from backprop_bench.kernels import NetSpec, get_problem, init_population, regularised
from backprop_bench.verify.vanishing import VanishingConfig, run_case, study


def test_a_study_without_batch_norm_keeps_its_stored_form():
    assert "batchnorm" not in VanishingConfig().to_dict()
    assert VanishingConfig(batchnorm=(False, True)).to_dict()["batchnorm"] == [False, True]


def test_batch_norm_cases_sit_beside_the_plain_ones():
    config = VanishingConfig(depths=(1, 3), activations=("sigmoid", "relu"), inits=("tutorial",),
                             n_nets=20, backend="numpy", batchnorm=(False, True))  # fmt: skip
    plain = study(VanishingConfig(**{**config.__dict__, "batchnorm": (False,)}))
    both = study(config)
    assert len(both["cases"]) == 2 * len(plain["cases"])
    assert both["cases"][: len(plain["cases"])] == plain["cases"]
    normed = [c for c in both["cases"] if c.get("batchnorm")]
    assert len(normed) == len(plain["cases"]) and not any("bound" in c for c in normed)
    assert both["claims"]["bound_checks"] == plain["claims"]["bound_checks"]


def test_per_layer_gradients_of_a_batch_norm_net_are_those_of_its_weights():
    # dL/dW of layer l is a_l^T dL/dz_l: the per-layer dz the study reports are the ones the
    # weight gradient (checked against finite differences in the kernel tests) is made of
    xor = get_problem("xor")
    spec = NetSpec((2, 5, 5, 1), "tanh", batchnorm=True)
    theta = init_population(spec, 3, 0)
    trace = regularised.forward(theta, spec, xor.X, training=True)
    grad, dz, da = regularised.backward_trace(theta, spec, trace, xor.Y, per_layer=True)
    for layer, (gW, _) in enumerate(spec.layer_views(grad)):
        np.testing.assert_allclose(np.einsum("sik,sjk->ijk", trace.a[layer], dz[layer]), gW,
                                   rtol=1e-13, atol=1e-16)  # fmt: skip
    assert [d.shape for d in da] == [a.shape for a in trace.a[1:-1]]
    config = VanishingConfig(width=5, n_nets=3, backend="numpy")
    case = run_case(config, "tanh", "tutorial", 2, batchnorm=True)
    norms = np.sqrt((dz[0] ** 2).sum(axis=(0, 1)))
    assert case["batchnorm"] and case["layers"][0]["dz"][2] == np.percentile(norms, 50)
