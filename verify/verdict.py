"""What a gradient check concludes, and the evidence for it.

A check ends in exactly one verdict:

- ``correct``: every claimed value agrees with the reference within a tolerance made of the
  reference's own error bound and the claim's measured rounding;
- ``wrong``: some value does not (where, by how much, against which reference and tolerance);
  a claim outside the one-sided derivatives at a kink is wrong too;
- ``not differentiable here``: the function has a kink at the point (ReLU at exactly 0) and every
  claim there is a valid subgradient (between the one-sided derivatives);
- ``not deterministic``: ``fun`` or ``grad`` gave different values for the same input (hidden
  state, unseeded randomness); no gradient can be judged then;
- ``cannot tell``: no error was seen, but the reference is not accurate enough here to resolve
  the claimed values (the smallest error the check could have seen is stated).

``bool(result)`` is True for ``correct`` and for ``not differentiable here`` (a valid
subgradient), False otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

CORRECT = "correct"
WRONG = "wrong"
KINK = "not differentiable here"
NOT_DETERMINISTIC = "not deterministic"
CANNOT_TELL = "cannot tell"
VERDICTS = (CORRECT, WRONG, KINK, NOT_DETERMINISTIC, CANNOT_TELL)
PASSING = (CORRECT, KINK)
ROUNDING_SHOWN = 3  # report lines for kinks within a claim's rounding; the rest are counted


@dataclass
class KinkReport:
    group: str
    index: tuple
    output: int
    left: float
    right: float
    claimed: float
    passed: bool  # the claim is a subgradient: between left and right, within tolerance
    # where several kinks meet in the element, the derivatives seen at points nearby can lie
    # beyond both one-sided ones: their range, where they were looked at
    nearby: tuple[float, float] | None = None
    # False: several kinks meet here, and the claim lies beyond the one-sided derivatives and
    # every derivative seen nearby, where a valid choice of slope per kink might still lie
    decided: bool = True
    # a dtype (float32): no kink at the point, but kinks within the rounding of a claim in that
    # dtype (left, right: the range of the reference's derivatives there); never decided
    within_rounding: str = ""


@dataclass
class GroupReport:
    """The worst element of one parameter group, for one claim."""

    name: str
    shape: tuple
    claim: str  # which claim: "grad" (as called), or "grad in float64" (the same code, float64)
    worst_index: tuple | None
    abs_error: float
    rel_error: float
    reference_error: float
    tolerance: float
    passed: bool
    floor: float  # the largest tolerance, relative to the group's largest derivative
    # the derivative size the floor is relative to: the group's largest (along probes, the
    # largest reference of the claim's probes); the largest of all groups where the group is 0
    largest: float = 0.0
    # elements at kinks, judged by their one-sided derivatives (the kinks' lines), not by a
    # tolerance: how many; and whether every value is judged so (at a kink, or within a float32
    # claim's rounding of one: then the line shows no worst element)
    at_kinks: int = 0
    all_at_kinks: bool = False


@dataclass
class ProbeReport:
    reference: float
    claimed: float
    reference_error: float
    tolerance: float
    passed: bool
    kink: tuple[float, float] | None = None
    claim: str = "grad"


@dataclass
class Nondeterminism:
    which: str  # "fun" or "grad"
    max_abs_difference: float
    max_rel_difference: float
    when: str  # "two calls in a row" or "after the check"
    cause: str = ""  # where known: "wrote into params in place", ...
    fix: str = "return new arrays instead"  # what to change, said with a known cause


@dataclass
class GradCheckResult:
    """A verdict and the evidence for it."""

    verdict: str
    mode: str
    reference: str
    groups: list[GroupReport] = field(default_factory=list)
    probes: list[ProbeReport] = field(default_factory=list)
    kinks: list[KinkReport] = field(default_factory=list)
    adjoint: ProbeReport | None = None
    notes: list[str] = field(default_factory=list)
    scipy_agrees: bool | None = None  # None where scipy.differentiate was not asked
    nondeterminism: Nondeterminism | None = None
    floor: float = 0.0  # the smallest relative error (to the largest derivative) surely seen
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING

    def __bool__(self) -> bool:
        return self.passed

    @property
    def worst_rel_error(self) -> float:
        return max((g.rel_error for g in self.groups), default=0.0)

    def as_dict(self) -> dict:
        """The result for machines, ready for strict JSON (``json.dumps(..., allow_nan=False)``,
        which JavaScript, Go and Rust parsers need): NaN and infinite numbers as None (a
        floor of inf, no error seen to bound, is None), tuples as lists, NumPy scalars as
        Python numbers."""
        out = asdict(self)
        out["passed"] = self.passed
        return _json_ready(out)

    def report(self) -> str:
        head = {
            CORRECT: "gradient check PASSED: correct",
            KINK: "gradient check PASSED: not differentiable here, the claim is a subgradient",
            WRONG: "gradient check FAILED: wrong",
            NOT_DETERMINISTIC: "gradient check FAILED: not deterministic",
            CANNOT_TELL: "gradient check INCONCLUSIVE: cannot tell",
        }[self.verdict]
        lines = [f"{head} ({self.mode}, reference: {self.reference})"]
        if self.nondeterminism is not None and self.nondeterminism.cause:
            d = self.nondeterminism
            lines.append(
                f"  {d.which} {d.cause} ({d.when}): the same input no longer gives the same "
                f"values; {d.fix}"
            )
        elif self.nondeterminism is not None:
            d = self.nondeterminism
            lines.append(
                f"  {d.which} gave different values for the same input ({d.when}): max abs "
                f"difference {d.max_abs_difference:.3g}, rel {d.max_rel_difference:.3g}; hidden "
                "state or unseeded randomness? (freeze randomness with rng_seed=)"
            )
        # a line beyond its tolerance under a verdict of cannot tell (suspects not confirmed
        # within the budget, float32 rounding that an error cannot be told from) read "FAIL"
        # under "INCONCLUSIVE": it says what it is
        off = "FAIL" if self.verdict != CANNOT_TELL else "beyond it, not confirmed: UNDECIDED"
        for g in self.groups:
            if g.all_at_kinks:
                lines.append(f"  {g.name} {g.shape} [{g.claim}]: every element at a kink or "
                             "within rounding of one, judged as the lines below say")  # fmt: skip
                continue
            where = "" if g.worst_index is None else f" worst at {g.worst_index}"
            # no reference there (NaN error and tolerance): not judged, rather than "ok"
            outcome = ("not judged" if g.tolerance != g.tolerance else "ok") if g.passed else off
            if g.passed and g.largest > 0 and g.tolerance >= g.largest:
                # within a tolerance wider than every derivative of the group: nothing resolved
                # (a reference across a kink, not re-examined: "rel error 9.5 -> ok")
                outcome = "within a tolerance above its group's derivatives: not resolved"
            kinked = (f" ({g.at_kinks} {'element' if g.at_kinks == 1 else 'elements'} at "
                      "kinks: below)" if g.at_kinks else "")  # fmt: skip
            lines.append(
                f"  {g.name} {g.shape} [{g.claim}]:{where} abs error {g.abs_error:.3g}, rel error "
                f"{g.rel_error:.3g}, reference error {g.reference_error:.3g}, tolerance "
                f"{g.tolerance:.3g} -> {outcome}{kinked}"
            )
        for i, p in enumerate(self.probes):
            kink = "" if p.kink is None else f" (crosses a kink: one-sided {p.kink})"
            lines.append(
                f"  probe {i} [{p.claim}]: reference {p.reference:.6g}, claimed {p.claimed:.6g}, "
                f"reference error {p.reference_error:.3g}, tolerance {p.tolerance:.3g}{kink} -> "
                # no reference there (the function not finite along it): not judged
                f"{('not judged' if p.tolerance != p.tolerance else 'ok') if p.passed else off}"
            )
        rounding = [k for k in self.kinks if k.within_rounding]
        for k in rounding[:ROUNDING_SHOWN]:
            lines.append(
                f"  kinks within {k.within_rounding} rounding of {k.group}{k.index} (output "
                f"{k.output}): derivatives there from {k.left:.6g} to {k.right:.6g}, claimed "
                f"{k.claimed:.6g} -> UNDECIDED: {k.within_rounding} code may take either side"
            )
        if len(rounding) > ROUNDING_SHOWN:
            lines.append(
                f"  ... and {len(rounding) - ROUNDING_SHOWN} more elements or probe parts within "
                f"{rounding[0].within_rounding} rounding of kinks, each UNDECIDED (all in .kinks)"
            )
        for k in self.kinks:
            if k.within_rounding:
                continue
            seen = "" if k.nearby is None else (
                f", derivatives nearby from {k.nearby[0]:.6g} to {k.nearby[1]:.6g}")
            outcome = (
                "a subgradient, ok" if k.passed
                else "FAIL: not between them" if k.decided
                else "UNDECIDED: the derivatives seen nearby do not rule out a valid slope "
                "here (as several kinks meeting, or rounding that blurs the two sides, leave "
                "them)"
            )  # fmt: skip
            direction = k.group.startswith("direction")
            # an element smooth along its line where pieces that meet at x slope otherwise
            sides = (
                f"smooth along it at {k.left:.6g} both ways" if k.left == k.right and not direction
                else f"one-sided derivatives {k.left:.6g} and {k.right:.6g}"
            )  # fmt: skip
            lines.append(
                f"  kink at {k.group}{k.index} (output {k.output}): "
                f"{'along it' if direction else 'not differentiable'}, "
                f"{sides}{seen}, claimed {k.claimed:.6g} -> {outcome}"
            )
        if self.adjoint is not None:
            a = self.adjoint
            lines.append(  # [claim, output (i, j)] where that output failed on its own
                f"  adjoint [{a.claim}] <u, Jv> = {a.reference:.6g} vs <J^T u, v> = "
                f"{a.claimed:.6g}, tolerance {a.tolerance:.3g} -> {'ok' if a.passed else 'FAIL'}"
            )
        if self.verdict != NOT_DETERMINISTIC and self.floor == float("inf"):
            lines.append("  detection floor: none (no error of any size would surely have been "
                         "seen: see the notes)")  # fmt: skip
        elif self.verdict != NOT_DETERMINISTIC and self.floor == 0 and self.kinks:
            # every element judged lay at a kink: none was held to a tolerance ("errors above 0")
            lines.append("  detection floor: none to state: every element lies at a kink or "
                         "within rounding of one, judged as the lines above say")  # fmt: skip
        elif self.verdict != NOT_DETERMINISTIC:
            # above 1: some element is not resolved (a reference across a kink, not re-examined
            # once others were confirmed wrong; the rounding of far larger derivatives): say
            # so, not only a number
            coarse = (": some element was not resolved (the lines above and the notes say "
                      "why)" if self.floor >= 1 else "")  # fmt: skip
            lines.append(
                f"  detection floor: errors above {self.floor:.2g} of their group's largest "
                f"derivative would have been seen{coarse}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
