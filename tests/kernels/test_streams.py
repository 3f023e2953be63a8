"""Counter-based draws: the numba twins equal the NumPy oracle to the bit, and the draws are
uniform and independent enough for pattern orders and dropout masks."""

import numpy as np
import pytest
from backprop_bench.kernels import numba_streams as nbs
from backprop_bench.kernels import streams


def test_mix64_matches_splitmix64_reference_values():
    # splitmix64 seeded with 0 returns mix64(GOLDEN), then mix64(2 * GOLDEN), ... (the
    # published generator's first outputs)
    first = streams.mix64(np.array([1, 2], dtype=np.uint64) * streams.GOLDEN)
    assert [hex(int(v)) for v in first] == ["0xe220a8397b1dcdaf", "0x6e789e6aa1b965f4"]


def test_numba_twins_equal_numpy_bit_for_bit():
    keys = streams.net_keys(7, 1000, 5)
    for key in keys:
        for epoch in (0, 1, 12345):
            for index in (0, 3, 2**40):
                assert nbs.bits(key, epoch, index) == streams.bits(key, epoch, index)
                assert nbs.uniform(key, epoch, index) == streams.uniform(key, epoch, index)
            order = np.empty(9, dtype=np.int64)
            nbs.permutation(key, epoch, order)
            assert np.array_equal(order, streams.permutation(key, epoch, 9))


def test_a_nets_key_does_not_depend_on_its_population():
    whole = streams.net_keys(3, 0, 100)
    assert np.array_equal(streams.net_keys(3, 40, 10), whole[40:50])
    assert len(set(whole.tolist())) == 100
    assert not np.array_equal(streams.net_keys(4, 0, 100), whole)


def test_draws_are_uniform_and_permutations_unbiased():
    key = streams.net_keys(0, 0, 1)[0]
    u = streams.uniform(key, np.arange(200)[:, None], np.arange(500)[None, :]).ravel()
    assert 0.0 <= u.min() and u.max() < 1.0
    # 100,000 draws: the mean's standard error is 0.29/sqrt(1e5) ~ 9e-4; allow 5 of them
    assert abs(u.mean() - 0.5) < 5 * 0.29 / np.sqrt(u.size)
    counts = np.zeros((4, 4))
    for epoch in range(4000):
        counts[np.arange(4), streams.permutation(key, epoch, 4)] += 1
    # each pattern at each position with probability 1/4: 1000 expected, sd ~ 27
    assert np.abs(counts - 1000).max() < 6 * 27


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_identity_is_refused(value):
    with pytest.raises(ValueError, match="non-negative integer"):
        streams.net_keys(value, 0, 3)


def test_an_identity_beyond_the_keys_range_is_refused():
    # NumPy's "Python int too large to convert to C long" before (an outside audit)
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*64"):
        streams.net_keys(2**64, 0, 3)
    with pytest.raises(ValueError, match=r"n_nets must be below 2\*\*64"):
        streams.net_keys(0, 2**64 - 2, 3)
    assert streams.net_keys(2**64 - 1, 2**64 - 3, 3).shape == (3,)
