import numpy as np
import pytest
from backprop_bench.kernels import NetSpec


def test_tutorial_net_has_17_parameters_laid_out_weights_then_biases():
    spec = NetSpec((2, 4, 1))
    assert spec.n_params == 2 * 4 + 4 + 4 * 1 + 1 == 17
    assert spec.offsets().tolist() == [[0, 8], [12, 16]]


def test_layer_views_are_views_into_theta():
    spec = NetSpec((2, 3, 2))
    theta = np.arange(spec.n_params * 5, dtype=np.float64).reshape(spec.n_params, 5)
    (W1, b1), (W2, b2) = spec.layer_views(theta)
    assert W1.shape == (2, 3, 5) and b1.shape == (3, 5)
    assert W2.shape == (3, 2, 5) and b2.shape == (2, 5)
    W1[1, 2, 4] = -1.0  # row-major W: element (i, j) at i * fan_out + j
    assert theta[1 * 3 + 2, 4] == -1.0
    assert np.shares_memory(b2, theta)


def test_no_hidden_layer_is_a_valid_net():
    spec = NetSpec((2, 1))
    assert spec.n_layers == 1 and spec.n_params == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": (2, 0, 1)}, "every layer width must be at least 1"),
        ({"layers": (2,)}, "at least an input and an output width"),
        ({"layers": "abc"}, "integer widths"),
        ({"activation": "swish"}, "unknown activation 'swish'; choose one of: sigmoid, tanh"),
        ({"loss": "hinge"}, "unknown loss 'hinge'; choose one of: bce, mse"),
        ({"output": "tanh"}, "unknown output activation 'tanh'"),
        ({"reduction": "avg"}, "unknown reduction 'avg'; choose one of: mean, sum"),
    ],
)
def test_bad_specs_are_rejected_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NetSpec(**kwargs)
