import numpy as np
import pytest
from backprop_bench.kernels import get_problem


def test_xor_is_the_tutorials_dataset():
    xor = get_problem("xor")
    assert xor.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert xor.Y.tolist() == [[0], [1], [1], [0]]


def test_and_or():
    assert get_problem("and").Y.ravel().tolist() == [0, 0, 0, 1]
    assert get_problem("OR").Y.ravel().tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_parity_is_xor_generalised(bits):
    problem = get_problem(f"parity{bits}")
    assert problem.X.shape == (2**bits, bits) and problem.Y.shape == (2**bits, 1)
    # every row distinct, target = odd number of ones
    assert len({tuple(row) for row in problem.X}) == 2**bits
    np.testing.assert_array_equal(problem.Y[:, 0], problem.X.sum(axis=1) % 2)
    if bits == 2:
        np.testing.assert_array_equal(problem.Y, get_problem("xor").Y)


def test_problem_data_is_read_only():
    with pytest.raises(ValueError):
        get_problem("xor").X[0, 0] = 5


@pytest.mark.parametrize("name", ["nand", "parity1", "parity17", "parity", ""])
def test_unknown_problem_names_the_choices(name):
    with pytest.raises(ValueError, match="unknown problem .*choose one of: xor, and, or, parityN"):
        get_problem(name)


def test_a_name_of_thousands_of_digits_is_refused_in_a_short_line():
    # int() of its digits raised Python's own error about integer string conversion
    shortened = r"unknown problem 'parity9+\.\.\. \(5006 characters\)"
    with pytest.raises(ValueError, match=shortened) as error:
        get_problem("parity" + "9" * 5000)
    assert len(str(error.value)) < 200


def test_leading_zeros_name_the_same_problem():
    # parity0005 was parity5, parity00005 unknown (five digits)
    assert get_problem("parity00005").name == get_problem("parity0005").name == "parity5"
