"""The stopping-rule flags that ``train`` and ``sweep`` share (see kernels/training.py).

``--tolerance`` (every output within it of its target; 0.4 is the 40-20-40 rule) is each
command's own flag; these add the rules on a total error over the patterns, of which a run takes
at most one, alone or together with the tolerance.
"""

from __future__ import annotations

RULES = (
    ("--loss-below", "converged once the training loss (with its reduction) is below this"),
    ("--rms-below", "converged once the RMS error sqrt(sum (a - y)^2 / outputs) is below this"),
    ("--tss-below", "converged once the total sum of squares sum (a - y)^2 is below this"),
)


def add_stopping_flags(parser, default=None) -> None:
    for flag, help_text in RULES:
        parser.add_argument(flag, type=float, default=default, metavar="X",
                            help=help_text + " (default: rule not used)")  # fmt: skip
