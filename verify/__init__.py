"""Gradient verification: check any function's claimed gradient, and every kernel of ours.

    from backprop_bench.verify import check_gradient, check_vjp, assert_gradients_close

See ``backprop_bench.verify.check`` for how references and tolerances are derived,
``backprop_bench.verify.kernel_checks`` for the checks of the project's kernels and
``backprop_bench.verify.mutants`` for the mutation catalogue.
"""

from .check import assert_gradients_close, check_gradient, check_vjp
from .verdict import VERDICTS, GradCheckResult

__all__ = ["VERDICTS", "GradCheckResult", "assert_gradients_close", "check_gradient", "check_vjp"]
