"""The stopping-rule flags that ``train`` and ``sweep`` share (see kernels/training.py).

``--tolerance`` (every output within it of its target; 0.4 is the 40-20-40 rule) is each
command's own flag; these add the rules on a total error over the patterns, of which a run takes
at most one, alone or together with the tolerance.
"""

from __future__ import annotations

import re

from backprop_bench.kernels import Criterion

RULES = (
    ("--loss-below", "converged once the training loss (with its reduction) is below this"),
    ("--rms-below", "converged once the RMS error sqrt(sum (a - y)^2 / (patterns x outputs)) "
     "is below this"),
    ("--tss-below", "converged once the total sum of squares sum (a - y)^2 is below this"),
)


def criterion(tolerance, loss_below, rms_below, tss_below) -> Criterion:
    """The run's Criterion; a run with no rule at all is told the flags and keys that set one
    (Criterion itself names its Python fields)."""
    if tolerance is None and loss_below is None and rms_below is None and tss_below is None:
        raise ValueError(
            "a run needs a rule for converging: --tolerance, or one of --loss-below, "
            "--rms-below, --tss-below (tolerance, loss_below, rms_below, tss_below in a config "
            "file), or the tolerance with one of them"
        )
    try:
        return Criterion(max_error=tolerance, loss_below=loss_below, rms_below=rms_below,
                         tss_below=tss_below)  # fmt: skip
    except ValueError as error:  # Criterion names its Python fields; a command user gave flags
        raise ValueError(re.sub(r"\b(max_error|loss_below|rms_below|tss_below)\b",
                                lambda m: FLAGS[m.group(1)], str(error))) from None  # fmt: skip


# Criterion's fields as the commands' flags (a config file's keys are the flags' names)
FLAGS = {"max_error": "--tolerance", "loss_below": "--loss-below", "rms_below": "--rms-below",
         "tss_below": "--tss-below"}  # fmt: skip


def add_stopping_flags(parser, default=None) -> None:
    for flag, help_text in RULES:
        parser.add_argument(flag, type=float, default=default, metavar="X",
                            help=help_text + " (default: rule not used)")  # fmt: skip
