"""The checker's score on the catalogue of user-style cases (:mod:`.catalogue`).

Each case says which verdict a trustworthy checker must give. A mutant (expect ``wrong``) is
caught when the checker does not pass it; a control (expect ``correct`` or ``not differentiable
here``) raises a false alarm when the checker calls it ``wrong``; ``cannot tell`` on a control is
counted apart (no error was claimed, but the check could not vouch for it). Cases that expect
``not deterministic`` count as caught only when the checker says exactly that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .check import check_gradient
from .verdict import CANNOT_TELL, CORRECT, KINK, NOT_DETERMINISTIC, WRONG


@dataclass
class CaseResult:
    name: str
    group: str
    dtype: str
    expect: str
    verdict: str
    seconds: float
    floor: float

    @property
    def kind(self) -> str:
        """'mutant', 'control' or 'nondeterministic'."""
        if self.expect == WRONG:
            return "mutant"
        if self.expect == NOT_DETERMINISTIC:
            return "nondeterministic"
        return "control"

    @property
    def good(self) -> bool:
        """The verdict a trustworthy checker gives, or for a control a passing one."""
        if self.kind == "control":
            return self.verdict in (CORRECT, KINK)
        return self.verdict == self.expect

    @property
    def false_alarm(self) -> bool:
        return self.kind == "control" and self.verdict in (WRONG, NOT_DETERMINISTIC)


def run_catalogue(cases, checker=check_gradient, progress=None) -> list[CaseResult]:
    """Run ``checker`` with its defaults (plus each case's own options) on every case."""
    results = []
    for count, case in enumerate(cases):
        problem = case.make()
        started = time.perf_counter()
        result = checker(problem.fun, problem.grad, problem.params, **problem.options)
        results.append(
            CaseResult(
                case.name, case.group, case.dtype, case.expect, result.verdict,
                time.perf_counter() - started, result.floor,
            )
        )  # fmt: skip
        if progress is not None:
            progress(count + 1, len(cases))
    return results


def score_table(results: list[CaseResult]) -> list[dict]:
    """One row per (group, dtype): mutants caught, false alarms, cannot-tell, time."""
    rows = {}
    for r in results:
        row = rows.setdefault(
            (r.group, r.dtype),
            {"group": r.group, "dtype": r.dtype, "mutants": 0, "caught": 0,
             "mutants_cannot_tell": 0, "missed": 0, "controls": 0,
             "false_alarms": 0, "cannot_tell": 0, "nondeterministic": 0,
             "nondeterministic_named": 0, "seconds": 0.0},
        )  # fmt: skip
        row["seconds"] += r.seconds
        if r.kind == "mutant":
            row["mutants"] += 1
            row["caught"] += r.verdict == WRONG
            row["mutants_cannot_tell"] += r.verdict == CANNOT_TELL
            row["missed"] += r.verdict in (CORRECT, KINK)
        elif r.kind == "control":
            row["controls"] += 1
            row["false_alarms"] += r.false_alarm
            row["cannot_tell"] += r.verdict == CANNOT_TELL
        else:
            row["nondeterministic"] += 1
            row["nondeterministic_named"] += r.verdict == NOT_DETERMINISTIC
    return list(rows.values())


def render_table(rows: list[dict]) -> str:
    """Mutants: said wrong / said cannot tell / passed (missed); controls: false alarms (said
    wrong or not deterministic) / said cannot tell; nondeterministic cases: named as such."""
    lines = [
        f"{'group':<26} {'dtype':<7} {'mutants: wrong':>14} {'cannot tell':>11} {'missed':>6}  "
        f"{'controls: false alarm':>21} {'cannot tell':>11}  {'not determ.':>11} {'time':>7}"
    ]
    for r in rows:
        named, total = r["nondeterministic_named"], r["nondeterministic"]
        nondet = f"{named}/{total}" if total else "-"
        m, c = r["mutants"], r["controls"]
        lines.append(
            f"{r['group']:<26} {r['dtype']:<7} {r['caught']:>8}/{m:<5} "
            f"{r['mutants_cannot_tell']:>11} {r['missed']:>6}  {r['false_alarms']:>15}/{c:<5} "
            f"{r['cannot_tell']:>11}  {nondet:>11} {r['seconds']:>6.1f}s"
        )
    return "\n".join(lines)
