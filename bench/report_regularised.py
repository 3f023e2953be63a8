"""The part of a sweep's report about batch norm, dropout and weight decay.

Only sweeps with one of these axes get it (``sweep_config.OPTIONAL_AXES``): the rest of the
report then describes the baseline slice (every optional axis at its first value, the control
cells as they are), so a sweep without them reads, byte for byte, as it did before they existed.
Every sentence is computed from ``summary.json``; comparisons are paired (net k starts from the
same weights, and draws the same dropout masks, in every cell it appears in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figures
from .figures import hidden_units, problems
from .sweep_config import OPTIONAL_AXES

# A learning rate "converges" for a cell when the 95% Wilson interval of its convergence rate
# lies above this share: most nets converge there, and not by the luck of the draw.
CONVERGING = 0.5
SIGNIFICANT = 0.05  # McNemar's p below which a paired difference is called one
NAMES = {"batchnorm": "batch norm", "dropout": "dropout", "weight_decay": "weight decay"}
OTHER = ("hidden", "init", "activation", "loss", "optimizer")
FIGURE = "regularised.png"


def axes_of(summary) -> list[str]:
    return [axis for axis in OPTIONAL_AXES if axis in summary["sweep"]]


def _in_baseline(summary, cell, skip=()) -> bool:
    for axis in axes_of(summary):
        if axis in skip or (cell["hidden"] == 0 and axis != "weight_decay"):
            continue
        if cell[axis] != summary["sweep"][axis][0]:
            return False
    return True


def baseline(summary: dict) -> dict:
    """The summary restricted to the first value of every optional axis (itself without any)."""
    if not axes_of(summary):
        return summary
    cells = [c for c in summary["cells"] if _in_baseline(summary, c)]
    kept = {c["index"] for c in cells}
    paired = [p for p in summary["paired"] if p["a"] in kept and p["b"] in kept]
    return {**summary, "cells": cells, "paired": paired}


def _value(axis, value) -> str:
    if axis == "batchnorm":
        return "on" if value else "off"
    return f"{value:g}"


def _pct(p) -> str:
    return "n/a" if p is None else f"{100 * p:.1f}%"


def _rate(interval) -> str:
    p, lo, hi = interval
    return "n/a" if p is None else f"{100 * p:.1f}% ({100 * lo:.1f}–{100 * hi:.1f})"


def _median(cell) -> str:
    if cell["median_epochs"] is None:
        return "not reached"
    lo, hi = cell["median_epochs_ci"]
    show = lambda v: "not reached" if v is None else f"{v:,.0f}"  # noqa: E731
    return f"{cell['median_epochs']:,.0f} ({show(lo)}–{show(hi)})"


def _key(summary, cell, axis):
    """What a cell shares with its partners along ``axis`` and across learning rates: its
    problem too (a sweep of two problems drew both as one line)."""
    others = [a for a in axes_of(summary) if a != axis]
    return (tuple(cell[k] for k in OTHER) + (cell.get("problem"),)
            + tuple(cell[a] for a in others))  # fmt: skip


def _of_first_problem(summary, cell) -> bool:
    """The section, as the report's tables, describes the sweep's first problem."""
    return cell.get("problem") in (None, problems(summary["sweep"])[0])


def _groups(summary, axis):
    """Cells with a hidden layer, in the baseline of the other axes, by setting then axis value."""
    groups = {}
    for c in summary["cells"]:
        if c["hidden"] == 0 or not _in_baseline(summary, c, skip=(axis,)):
            continue
        groups.setdefault(_key(summary, c, axis), {}).setdefault(c[axis], []).append(c)
    return groups


def _converging(cells) -> list[float]:
    return sorted(c["lr"] for c in cells if c["convergence"][1] > CONVERGING)


def _span(rates) -> str:
    if not rates:
        return "none"
    return f"{rates[0]:g}–{rates[-1]:g} ({len(rates)} of the rates)"


def batchnorm_finding(summary) -> str | None:
    """Does batch norm widen the range of learning rates at which most nets converge?"""
    if summary["sweep"].get("batchnorm") is None or len(summary["sweep"]["batchnorm"]) < 2:
        return None
    wider = narrower = same = 0
    examples = []
    for key, by_value in _groups(summary, "batchnorm").items():
        off, on = _converging(by_value[False]), _converging(by_value[True])
        wider += len(on) > len(off)
        narrower += len(on) < len(off)
        same += len(on) == len(off)
        if len(examples) < 3:
            examples.append(f"{key[0]} hidden, {key[1]}: without {_span(off)}, with {_span(on)}")
    total = wider + narrower + same
    verdict = (
        "did not change" if wider == narrower == 0 else "widened" if wider > narrower + same
        else "narrowed" if narrower > wider + same else "did not consistently change"
    )  # fmt: skip
    better, worse = set(), set()
    for p, a, _ in _pairs_of(summary, "batchnorm", first_problem=True):
        if p["mcnemar_p"] < SIGNIFICANT:
            (better if p["only_b"] > p["only_a"] else worse).add(a["lr"])
    shown = lambda rates: ", ".join(f"{r:g}" for r in sorted(rates))  # noqa: E731
    more = f"more nets converged with it than without at lr {shown(better)}"
    if better and worse:
        paired = f"{more}, fewer at lr {shown(worse)}"
    elif better:
        paired = more
    elif worse:
        paired = f"fewer nets converged with it than without at lr {shown(worse)}"
    else:
        paired = "no rate showed a difference either way"
    return (
        f"**Batch norm {verdict} the range of learning rates that converge.** Counting a rate as "
        f"converging when the 95% interval of its convergence rate lies above "
        f"{100 * CONVERGING:.0f}%, batch norm gave more converging rates in {wider} of {total} "
        f"settings, fewer in {narrower} and as many in {same} ("
        + "; ".join(examples)
        + "). Net for net (McNemar p < "
        f"{SIGNIFICANT:g}), {paired}."
    )


def _pairs_of(summary, axis, first_problem=False):
    by_index = {c["index"]: c for c in summary["cells"]}
    for p in summary["paired"]:
        if p["axis"] == axis:
            a, b = by_index[p["a"]], by_index[p["b"]]
            if a["hidden"] and _in_baseline(summary, a, skip=(axis,)) and (
                    not first_problem or _of_first_problem(summary, a)):  # fmt: skip
                yield p, a, b


def _shown(summary, axis) -> tuple[int, dict]:
    """The hidden size the findings and the figure show for ``axis`` (4 where there, else the
    narrowest), and its cells of the first init and combination by axis value, ordered by lr."""
    groups = _groups(summary, axis)
    widths = {key[0] for key in groups}
    hidden = 4 if 4 in widths else min(widths)
    sweep = summary["sweep"]
    first = (hidden, sweep["init"][0], sweep["activation"][0], sweep["loss"][0],
             sweep["optimizer"][0])  # fmt: skip
    (by_value,) = [cells for key, cells in groups.items() if key[: len(first)] == first
                   and key[len(first)] in (None, problems(summary["sweep"])[0])]  # fmt: skip
    return hidden, {v: sorted(cells, key=lambda c: c["lr"]) for v, cells in by_value.items()}


def draw(summary: dict, folder: Path) -> list[str]:
    """The section's figure, convergence rate and median epochs against the learning rate with
    one line per value of each axis (the first setting of everything else), drawn into
    ``folder``; returns its name, or nothing for a sweep without an axis of two values."""
    axes_shown = [a for a in axes_of(summary) if len(summary["sweep"][a]) > 1]
    if not axes_shown:
        return []
    plt = figures._pyplot()
    lrs = summary["sweep"]["lr"]
    fig, grid = plt.subplots(2, len(axes_shown), figsize=(3.6 * len(axes_shown) + 0.8, 5.2),
                             squeeze=False, sharex=True, layout="constrained")  # fmt: skip
    for column, axis in enumerate(axes_shown):
        hidden, by_value = _shown(summary, axis)
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(by_value)))
        rate_ax, epochs_ax = grid[0][column], grid[1][column]
        for (value, cells), color in zip(by_value.items(), colors, strict=True):
            x = np.array([lrs.index(c["lr"]) for c in cells], dtype=float)
            # values side by side at each rate, so that their intervals do not hide each other
            x += 0.08 * (list(by_value).index(value) - (len(by_value) - 1) / 2)
            p, lo, hi = (np.array([np.nan if c["convergence"][i] is None
                                   else 100 * c["convergence"][i] for c in cells])
                         for i in range(3))  # fmt: skip
            label = f"{NAMES[axis]} {_value(axis, value)}"
            rate_ax.errorbar(x, p, yerr=[p - lo, hi - p], color=color, marker="o", ms=3.5,
                             lw=1.2, capsize=2, label=label)  # fmt: skip
            median = np.array([np.nan if c["median_epochs"] is None else c["median_epochs"]
                               for c in cells])  # fmt: skip
            ci = [[np.nan if c["median_epochs"] is None or v is None else v
                   for v in c["median_epochs_ci"]] for c in cells]  # fmt: skip
            low, high = (np.array([pair[i] for pair in ci], dtype=float) for i in range(2))
            # an interval without an upper end (fewer than half converged at its edge) is drawn
            # to the point only
            high = np.where(np.isnan(high), median, high)
            epochs_ax.errorbar(x, median, yerr=[median - np.where(np.isnan(low), median, low),
                                                high - median],
                               color=color, marker="o", ms=3.5, lw=1.2, capsize=2)  # fmt: skip
        rate_ax.set_title(f"{NAMES[axis]} ({hidden_units(hidden)})", fontsize=9)
        rate_ax.set_ylim(-3, 103)
        rate_ax.legend(fontsize=7, loc="best")
        if any(c["median_epochs"] for cells in by_value.values() for c in cells):
            epochs_ax.set_yscale("log")
        else:  # a log axis of nothing but NaN failed the whole report
            epochs_ax.text(0.5, 0.5, "no cell reached a median", ha="center", va="center",
                           transform=epochs_ax.transAxes, fontsize=8, color="#666")  # fmt: skip
        epochs_ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], fontsize=7)
        epochs_ax.set_xlabel("learning rate", fontsize=8)
        for ax in (rate_ax, epochs_ax):
            ax.grid(alpha=0.3)
    grid[0][0].set_ylabel("converged, % (95% interval)", fontsize=8)
    grid[1][0].set_ylabel("median epochs to converge", fontsize=8)
    sweep = summary["sweep"]
    fig.suptitle(f"Convergence against the learning rate, the same initial weights in every "
                 f"cell ({sweep['init'][0]} init; {sweep['activation'][0]}, {sweep['loss'][0]}, "
                 f"{sweep['optimizer'][0]}); no median where fewer than half converged",
                 fontsize=9)  # fmt: skip
    figures._save(fig, Path(folder) / FIGURE)
    return [FIGURE]


def axis_finding(summary, axis) -> str | None:
    """First value of the axis against the others, at the rate where the first does best."""
    values = summary["sweep"][axis]
    if len(values) < 2:
        return None
    pairs = list(_pairs_of(summary, axis, first_problem=True))
    widths = {a["hidden"] for _, a, _ in pairs}
    hidden = 4 if 4 in widths else min(widths)
    init = summary["sweep"]["init"][0]
    chosen = [(p, a, b) for p, a, b in pairs if a["hidden"] == hidden and a["init"] == init]
    best_lr = max((a for _, a, _ in chosen), key=lambda c: c["convergence"][0])["lr"]
    parts = []
    for p, a, b in chosen:
        if a["lr"] != best_lr:
            continue
        ratio = p["median_epoch_ratio"]
        epochs = "" if ratio is None else (
            f"; over the {p['both']:,} nets that converged both ways, the median of epochs "
            f"without over epochs with it was {ratio:.2f}"
        )  # fmt: skip
        parts.append(
            f"{NAMES[axis]} {_value(axis, b[axis])}: {_rate(b['convergence'])} converged against "
            f"{_rate(a['convergence'])} at {_value(axis, a[axis])}, median epochs {_median(b)} "
            f"against {_median(a)}; {p['only_a']:,} net{'' if p['only_a'] == 1 else 's'} "
            f"converged only without it and {p['only_b']:,} only with it (McNemar p = "
            f"{p['mcnemar_p']:.2g}){epochs}"
        )
    names = problems(summary["sweep"])
    on = f" on {names[0].upper()}" if len(names) > 1 else ""
    return (
        f"**What {NAMES[axis]} does to {hidden_units(hidden)}{on}.** At lr {best_lr:g} "
        f"({init} init, the rate where {NAMES[axis]} {_value(axis, values[0])} converged most "
        "often), net for net on the same initial weights: " + "; ".join(parts) + "."
    )


def _table(summary, axis) -> list[str]:
    several = len(problems(summary["sweep"])) > 1  # each row says which problem it pairs
    lines = [
        ("| problem " if several else "")
        + f"| hidden | lr | {NAMES[axis]} A → B | converged A | converged B | only A | only B | "
        "McNemar p | median epochs A/B |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if several else ""),
    ]
    init = summary["sweep"]["init"][0]
    for p, a, b in _pairs_of(summary, axis):
        if a["init"] != init:
            continue
        ratio = "–" if p["median_epoch_ratio"] is None else f"{p['median_epoch_ratio']:.2f}"
        lines.append(
            (f"| {a.get('problem')} " if several else "")
            + f"| {a['hidden']} | {a['lr']:g} | "
            f"{_value(axis, a[axis])} → {_value(axis, b[axis])} | "
            f"{_rate(a['convergence'])} | {_rate(b['convergence'])} | {p['only_a']} | "
            f"{p['only_b']} | {p['mcnemar_p']:.2g} | {ratio} |"
        )
    return lines


def section(summary: dict) -> list[str]:
    """Markdown lines of the section (none for a sweep without the optional axes)."""
    axes = [axis for axis in axes_of(summary) if len(summary["sweep"][axis]) > 1]
    if not axes_of(summary):
        return []
    grid = "; ".join(
        f"{NAMES[a]} {', '.join(_value(a, v) for v in summary['sweep'][a])}"
        for a in axes_of(summary)
    )
    lines = [
        "## Batch norm, dropout and weight decay",
        "",
        f"Grid: {grid}. The other sections of this report describe the cells with the first "
        "value of each (the no-hidden-layer control has neither batch norm nor dropout). Batch "
        "norm and "
        "dropout nets are judged in evaluation mode (running statistics, no dropout); net k "
        "starts from the same weights and draws the same dropout masks in every cell, so the "
        "comparisons below are net for net. *A* is the first value of the axis.",
        "",
    ]
    found = [batchnorm_finding(summary)] + [axis_finding(summary, axis) for axis in axes]
    lines += [f"- {text}" for text in found if text]
    if axes:
        lines += ["", f"![convergence and epochs by {', '.join(NAMES[a] for a in axes)}]"
                  f"(figures/{FIGURE})"]  # fmt: skip
    for axis in axes:
        lines += ["", f"### {NAMES[axis].capitalize()}, paired", "", *_table(summary, axis)]
    return [*lines, ""]
