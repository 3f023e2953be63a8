"""Every kernel of both backends passes its gradient check; the mutation catalogue is caught."""

import numpy as np
import pytest
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES
from backprop_bench.verify.kernel_checks import NETWORKS, all_rows
from backprop_bench.verify.mutants import (
    MUTANTS,
    SQUARE,
    _case,
    backprop,
    false_alarms,
    run_mutants,
)

# the kernel checks compile every numba kernel in both dtypes cold (30 s on a clean checkout):
# integration tests, run by `pytest -m slow` and CI; tests/kernels hold each kernel to its oracle
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows():
    return all_rows()


def test_every_kernel_passes_on_both_backends_in_both_dtypes(rows):
    failed = [f"{r.kernel} {r.backend} {r.dtype}: {r.detail}" for r in rows if not r.passed]
    assert not failed, "\n".join(failed)


def test_the_table_covers_what_it_should(rows):
    kernels = {r.kernel for r in rows}
    for name in HIDDEN_ACTIVATIONS:
        assert f"activation {name}" in kernels
    for name in LOSSES:
        assert f"loss {name} (d/dlogit)" in kernels
    depths = {len(layers) - 1 for layers, *_ in NETWORKS}
    batches = {batch for *_, batch in NETWORKS}
    assert depths == {1, 2, 3, 4, 5, 6} and {1, 64} <= batches
    assert {r.backend for r in rows} == {"numpy", "numba"}
    assert {r.dtype for r in rows} == {"float64", "float32"}
    assert any(k.startswith("dL/dz") for k in kernels) and any("adam" in k for k in kernels)
    assert any(k.startswith("network 2-1-1 with shortcuts") for k in kernels)
    for form in ("staged", "compact"):
        assert f"batch norm (training), {form} backward" in kernels
    assert "batch norm: staged and compact backward agree" in kernels
    assert "dropout, masks held fixed" in kernels
    assert any("batch norm dropout" in k for k in kernels)


def test_relu_kinks_are_reported_not_failed(rows):
    relu = [r for r in rows if r.kernel == "activation relu"]
    assert relu and all(r.passed and "kink" in r.detail for r in relu)


def test_every_mutant_is_caught_in_float64_and_float32():
    results = run_mutants()
    assert len(MUTANTS) >= 12
    missed = [f"{r.name} ({r.dtype})" for r in results if not r.caught]
    assert not missed
    assert {r.dtype for r in results} == {"float64", "float32"}


def test_the_classic_batch_norm_and_dropout_mutants_are_in_the_catalogue():
    classic = ("sum over the batch missing", "N-1 variance", "mean's gradient dropped",
               "variance's gradient dropped", "mask not applied", "scale not applied")  # fmt: skip
    for words in classic:
        assert any(words in name for name in MUTANTS), words


@pytest.mark.parametrize("fault", list(MUTANTS))
def test_each_mutant_really_changes_the_gradient(fault):
    spec, X, Y, theta = _case(fault, "float64")
    assert not np.allclose(backprop(theta, spec, X, Y, fault), backprop(theta, spec, X, Y, None),
                           rtol=1e-6, atol=0)  # fmt: skip


def test_no_false_alarms():
    assert false_alarms() == []
    assert SQUARE.layers == (3, 3, 3, 1)


def test_every_row_states_its_error_relative_to_the_largest_derivative(rows):
    # an element whose derivative is 0 and whose claim rounds to 1e-30 is infinitely off
    # relative to itself; the table states the error against the size its tolerance is of
    for r in rows:
        assert np.isfinite(r.worst_rel_error) and r.worst_rel_error < 1e-6, r
        assert 0 <= r.worst_to_tolerance <= 1, r


def test_a_row_is_relative_to_the_largest_derivative_not_to_its_own_element():
    from backprop_bench.verify import check_vjp
    from backprop_bench.verify.kernel_checks import _row

    x = np.array([0.0, 1.0, 2.0])
    result = check_vjp(lambda p: p**3, lambda p, u: u * (3 * p**2 + 1e-30 * (p == 0)), x)
    row = _row("cube", "numpy", "float64", result)
    assert result.groups[0].rel_error > 1e20  # 1e-30 against a derivative of about 0
    assert row.passed and row.worst_rel_error == pytest.approx(1e-30 / 12, rel=1e-6)
    assert row.worst_to_tolerance < 1
