"""The sweep report a person reads first: ``report.md`` with findings, tables and figures.

Everything here is computed from ``summary.json`` and ``meta.json``, so ``backprop-bench report
DIR`` rebuilds the same document from stored results without training. The headline findings are
sentences whose numbers come from the summary; none is written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic, report_regularised, schedule_options
from .figures import draw_all, figure_names, hidden_units, problems
from .report_regularised import baseline, section

FIGURES = "figures"


def _pct(p) -> str:
    return "n/a" if p is None else f"{100 * p:.1f}%"


def _rate(interval) -> str:
    p, lo, hi = interval
    if p is None:
        return "n/a"
    return f"{100 * p:.1f}% ({100 * lo:.1f}–{100 * hi:.1f})"


def _epochs(value) -> str:
    return "not reached" if value is None else f"{value:,.0f}"


def _median(cell) -> str:
    lo, hi = cell["median_epochs_ci"]
    if cell["median_epochs"] is None:
        return "not reached"
    return f"{cell['median_epochs']:,.0f} ({_epochs(lo)}–{_epochs(hi)})"


def _fallback(summary: dict, key: str, old: str):
    """Summaries written before ``key`` existed held the same number under ``old``."""
    return key if all(key in c["failed"] for c in summary["cells"]) else old


class _View:
    """Lookups into a summary's cells; the tables show the first problem (and the first
    activation/loss/optimizer combination)."""

    def __init__(self, summary, problem=None):
        self.summary = summary
        self.sweep = summary["sweep"]
        self.problem = problem or problems(self.sweep)[0]
        self.combo = (
            self.sweep["activation"][0],
            self.sweep["loss"][0],
            self.sweep["optimizer"][0],
        )

    def cells(self, **fixed):
        return [
            c
            for c in self.summary["cells"]
            if all(c[k] == v for k, v in fixed.items())
            and c.get("problem", self.problem) == self.problem
        ]

    def first(self, **fixed):
        activation, loss, optimizer = self.combo
        defaults = {"activation": activation, "loss": loss, "optimizer": optimizer}
        return self.cells(**{**defaults, **fixed})

    @staticmethod
    def total(cells, status):
        return sum(c["counts"][status] for c in cells), sum(c["n"] for c in cells)


def findings(summary: dict) -> list[str]:
    """Headline findings as sentences, each one measured in this sweep."""
    v = _View(summary)
    sweep = v.sweep
    out = []
    grid = [c for c in v.first() if c["hidden"] != 0]
    if sweep["epochs"] == 0:
        return _initial_findings(v, grid)
    if sweep["control"]:
        out.append(_control_finding(summary, v, grid))
    top = max(sweep["lr"])
    high = [c for c in grid if c["lr"] == top]
    div, n = v.total(high, "diverged")
    if div:
        out.append(
            f"**Too high a learning rate diverges.** At lr {top:g}, {div:,} of {n:,} nets "
            f"({100 * div / n:.1f}%) diverged (loss above "
            f"{summary['definitions']['divergence_factor']:g} times its start or not finite)."
        )
    low = min(sweep["lr"])
    slow = [c for c in grid if c["lr"] == low]
    conv_low, n_low = v.total(slow, "converged")
    improving, _ = v.total(slow, "improving")
    rates = sorted(sweep["lr"])
    if len(rates) > 1:
        pair, ratio = _fastest_pair(summary, v, rates)
        # the heading says what this sweep shows: the lowest rate crawls where fewer of its nets
        # converged than at some other rate, or its nets needed more epochs, net for net
        best = max(v.total([c for c in grid if c["lr"] == r], "converged")[0] for r in rates)
        crawls = conv_low < best or (ratio is not None and ratio > 1)
        heading = "Too low a learning rate crawls." if crawls else "The lowest learning rate."
        sentence = (
            f"**{heading}** At lr {low:g}, {100 * conv_low / n_low:.1f}% of the {n_low:,} "
            f"nets with a hidden layer converged within {sweep['epochs']:,} epochs and "
            f"{100 * improving / n_low:.1f}% were still improving when the budget ran out."
        )
        if pair:
            sentence += pair
        out.append(sentence)
    by_width, shares = [], set()
    for hidden in sweep["hidden"]:
        cells = [c for c in grid if c["hidden"] == hidden]
        plateau, n = v.total(cells, "plateau")
        conv, _ = v.total(cells, "converged")
        shares.add(f"{100 * conv / n:.1f}")
        by_width.append(
            f"{hidden}: {100 * conv / n:.1f}% converged, {100 * plateau / n:.1f}% on a plateau"
        )
    heading = ("One width." if len(sweep["hidden"]) == 1 else
               "Width matters." if len(shares) > 1 else "Width did not matter here.")  # fmt: skip
    out.append(
        f"**{heading}** Over all inits and learning rates, by hidden units — "
        + "; ".join(by_width)
        + "."
    )
    if len(sweep["init"]) > 1:
        out.append(_init_finding(v, grid))
    failed = sum(c["failed"]["n"] for c in grid)
    if failed:
        right = [
            sum(c["failed"]["outputs_right"][k] for c in grid)
            for k in range(len(grid[0]["failed"]["outputs_right"]))
        ]
        most = max(range(len(right)), key=lambda k: right[k])
        # summaries written before flat units had their own key held them as "saturated"
        flat_key = _fallback(summary, "with_flat_units", "with_saturated_units")
        flat = _weighted(grid, flat_key, "n")
        units = f"{_pct(flat)} had a flat hidden unit (flat on every pattern)"
        if flat_key == "with_flat_units":
            saturated = _weighted(grid, "with_saturated_units", "n")
            units = f"{_pct(saturated)} had a saturated hidden unit and {units}"
        growing = _weighted(grid, "weights_growing", "n_full_budget")
        # ("n/a still had growing weights" where no net's growth was measured: all diverged)
        grew = ("" if growing is None else f", and of those whose weight growth was measured "
                f"(they ran the whole budget, their weights not collapsed to 0) {_pct(growing)} "
                "still had growing weights")  # fmt: skip
        out.append(
            f"**How nets fail.** Of {failed:,} nets with a hidden layer that did not converge, "
            f"{100 * right[most] / failed:.1f}% ended with {most} of {len(right) - 1} outputs "
            f"right; {units}{grew}."
        )
    return out


def _control_finding(summary, v: _View, grid) -> str:
    """What the nets without a hidden layer did, against the best cell with one.

    On XOR none converge (a line cannot separate it); on AND or OR most do, and the sentence says
    so: every finding states what this sweep measured, whichever way it came out.
    """
    sweep = v.sweep
    control = v.first(hidden=0)
    conv, n = v.total(control, "converged")
    best = max(grid, key=lambda c: c["convergence"][0])
    with_hidden = (f" With a hidden layer the best cell converged "
                   f"{_pct(best['convergence'][0])} of the time ({hidden_units(best['hidden'])}, "
                   f"{best['init']} init, lr {best['lr']:g}).")  # fmt: skip
    right = [sum(c["failed"]["outputs_right"][k] for c in control)
             for k in range(len(control[0]["failed"]["outputs_right"]))]  # fmt: skip
    endings = ""
    if any(right):
        most = max(range(len(right)), key=lambda k: right[k])
        best_right = max(k for k in range(len(right)) if right[k])
        endings = (f"The most common ending was {most} of {len(right) - 1} outputs right "
                   f"({right[most]:,} nets; an output at exactly 0.5, as a net whose weights "
                   "shrank to 0 gives, is on neither side and counts as not right); none got "
                   f"more than {best_right} right.")  # fmt: skip
    low, high = min(sweep["lr"]), max(sweep["lr"])
    single = f"at learning rate {low:g}"  # a sweep of one rate: no range "from 1 to 1"
    if conv == 0:
        every = single if low == high else f"at every learning rate from {low:g} to {high:g}"
        # the claim needs nets with a hidden layer that did converge (every net diverged in a
        # sweep at lr 1e6, and the heading said XOR needs a hidden layer)
        heading = (f"{v.problem.upper()} needs a hidden layer." if best["convergence"][0] > 0
                   else "No net converged, with a hidden layer or without.")  # fmt: skip
        return (f"**{heading}** {conv:,} of "
                f"{n:,} nets without one converged, {every}. "
                f"{endings}{with_hidden}")  # fmt: skip
    over = single if low == high else f"over learning rates {low:g} to {high:g}"
    sentence = (f"**Nets without a hidden layer.** {conv:,} of {n:,} ({100 * conv / n:.1f}%) "
                f"converged on {v.problem.upper()}, {over}.")  # fmt: skip
    if endings:
        sentence += " Of the rest, t" + endings[1:]
    return sentence + with_hidden


def _initial_findings(v: _View, grid) -> list[str]:
    """A sweep of 0 epochs classifies the nets as they start: what chance gets right, with a
    hidden layer and without (nothing was trained, so nothing converged, diverged or crawled)."""
    out = []
    for label, cells in (("with a hidden layer", grid),
                         ("without one", [c for c in v.first() if c["hidden"] == 0])):  # fmt: skip
        if not cells:
            continue
        n = sum(c["n"] for c in cells)
        met, _ = v.total(cells, "converged")
        right = [sum(c["failed"]["outputs_right"][k] for c in cells)
                 for k in range(len(cells[0]["failed"]["outputs_right"]))]  # fmt: skip
        most = max(range(len(right)), key=lambda k: right[k])
        best = max((k for k in range(len(right)) if right[k]), default=0)
        out.append(
            f"**Nets {label}, as they start (0 epochs: nothing trained).** {met:,} of {n:,} "
            f"meet the convergence criterion at their initial weights; of the others, "
            f"{100 * right[most] / max(1, sum(right)):.1f}% get {most} of {len(right) - 1} "
            f"outputs right, none more than {best}."
        )
    return out


def _init_finding(v: _View, grid) -> str:
    """How much the init matters for the narrowest net, at the rate where it does best."""
    hidden = min(v.sweep["hidden"], key=lambda h: v.first(hidden=h)[0].get("hidden_units", h))
    cells = [c for c in grid if c["hidden"] == hidden]
    by_lr = {}
    for c in cells:
        by_lr.setdefault(c["lr"], []).append(c)
    lr = max(by_lr, key=lambda r: sum(c["convergence"][0] for c in by_lr[r]))
    ranked = sorted(by_lr[lr], key=lambda c: c["convergence"][0])
    worst, best = ranked[0], ranked[-1]
    tutorial = next((c for c in ranked if c["init"] == "tutorial"), None)
    if _pct(worst["convergence"][0]) == _pct(best["convergence"][0]):
        return (f"**The init did not matter here.** With {hidden_units(hidden)} at lr {lr:g}, "
                f"every init converged {_pct(best['convergence'][0])} of the time.")  # fmt: skip
    sentence = (
        f"**The init matters most for narrow nets.** With {hidden_units(hidden)} at lr {lr:g}, "
        f"convergence ranged from {_pct(worst['convergence'][0])} ({worst['init']}) to "
        f"{_pct(best['convergence'][0])} ({best['init']})"
    )
    if tutorial is not None:
        place = ranked.index(tutorial) + 1
        sentence += (
            f"; the tutorial's init (normal with variance 2/fan_in) ranked {place} of "
            f"{len(ranked)} from the bottom"
        )
    return sentence + "."


def _weighted(cells, key, count):
    """A share over the failed nets of several cells, from each cell's share of ``count`` nets."""
    pairs = [(c["failed"][key], c["failed"][count]) for c in cells if c["failed"][key] is not None]
    total = sum(n for _, n in pairs)
    return sum(share * n for share, n in pairs) / total if total else None


def _fastest_pair(summary, v, rates) -> tuple[str, float | None]:
    """A paired sentence: nets converging at both the lowest rate and the next one up; and the
    median ratio of their epochs (None where there is none)."""
    init = v.sweep["init"][0]
    hidden = 4 if 4 in v.sweep["hidden"] else v.sweep["hidden"][0]
    lo, hi = rates[0], rates[1]
    (a,) = v.first(hidden=hidden, init=init, lr=lo)
    (b,) = v.first(hidden=hidden, init=init, lr=hi)
    for p in summary["paired"]:
        if p["axis"] == "lr" and p["a"] == a["index"] and p["b"] == b["index"]:
            if p["median_epoch_ratio"] is None:
                return "", None
            return (
                f" Paired net for net ({hidden} hidden, {init} init, same starting weights), "
                f"the {p['both']:,} nets that converged at both lr {lo:g} and lr {hi:g} needed "
                f"a median {p['median_epoch_ratio']:.1f} times as many epochs at lr {lo:g}."
            ), p["median_epoch_ratio"]
    return "", None


def _rate_table(v: _View, hidden: int) -> list[str]:
    lrs = v.sweep["lr"]
    lines = [
        "| init | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---|" + "---|" * len(lrs),
    ]
    inits = v.sweep["init"] if hidden else v.sweep["init"][:1]
    for init in inits:
        row = {c["lr"]: c for c in v.first(hidden=hidden, init=init)}
        lines.append(
            f"| {init} | " + " | ".join(_rate(row[lr]["convergence"]) for lr in lrs) + " |"
        )
    return lines


def _median_table(v: _View) -> list[str]:
    lrs = v.sweep["lr"]
    init = v.sweep["init"][0]
    lines = [
        "| hidden | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---|" + "---|" * len(lrs),
    ]
    for hidden in v.sweep["hidden"]:
        row = {c["lr"]: c for c in v.first(hidden=hidden, init=init)}
        lines.append(f"| {hidden} | " + " | ".join(_median(row[lr]) for lr in lrs) + " |")
    return lines


def _paired_table(summary, v: _View) -> list[str]:
    init = v.sweep["init"][0]
    by_index = {c["index"]: c for c in summary["cells"]}
    # a sweep of several problems pairs the rates of each: its rows say which problem they are
    several = len(problems(v.sweep)) > 1
    lines = [
        ("| problem " if several else "")
        + "| hidden | lr A → lr B | both | only A | only B | neither | McNemar p | "
        "median epochs A/B |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if several else ""),
    ]
    for p in summary["paired"]:
        a, b = by_index[p["a"]], by_index[p["b"]]
        if (
            p["axis"] != "lr"
            or a["init"] != init
            or (a["activation"], a["loss"], a["optimizer"]) != v.combo
        ):
            continue
        ratio = "–" if p["median_epoch_ratio"] is None else f"{p['median_epoch_ratio']:.2f}"
        hidden = "none" if a["hidden"] == 0 else a["hidden"]
        lines.append(
            (f"| {a.get('problem', v.problem)} " if several else "")
            + f"| {hidden} | {a['lr']:g} → {b['lr']:g} | {p['both']} | {p['only_a']} | "
            f"{p['only_b']} | {p['neither']} | {p['mcnemar_p']:.2g} | {ratio} |"
        )
    return lines


def _failure_table(v: _View) -> list[str]:
    init = v.sweep["init"][0]
    # summaries written before flat units had their own key held them as "saturated": there the
    # one column is the flat share; else both, so that the saturated share is the findings' (a
    # column headed "saturated" that held the flat share read 0.0% under a finding of 100%)
    flat = _fallback(v.summary, "with_flat_units", "with_saturated_units")
    both = flat == "with_flat_units"
    hiddens = ([0] if v.sweep["control"] else []) + list(v.sweep["hidden"])
    cells = [c for hidden in hiddens for c in v.first(hidden=hidden, init=init)]
    # a 0-epoch sweep's nets are all undetermined: without the column its rows summed to 0
    undetermined = any(c["counts"].get("undetermined", 0) for c in cells)
    head = ("| hidden | lr | converged | improving | plateau | diverged | "
            + ("undetermined | " if undetermined else "")
            + "failed: outputs right (0,1,2,…) | "
            + ("with a saturated unit | " if both else "")
            + "with a flat unit | weights still growing |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in cells:
        k, f = c["counts"], c["failed"]
        hidden = c["hidden"]
        lines.append(
            f"| {'none' if hidden == 0 else hidden} | {c['lr']:g} | {k['converged']} | "
            f"{k['improving']} | {k['plateau']} | {k['diverged']} | "
            + (f"{k.get('undetermined', 0)} | " if undetermined else "")
            + f"{', '.join(map(str, f['outputs_right']))} | "
            + (f"{_pct(f['with_saturated_units'])} | " if both else "")
            + f"{_pct(f[flat])} | {_pct(f['weights_growing'])} |"
        )
    return lines


def _problem_tables(summary: dict) -> list[str]:
    """Convergence and median epochs of every problem (the other tables show the first)."""
    sweep = summary["sweep"]
    lines = [
        "## By problem",
        "",
        f"Tables above and figures are for {problems(sweep)[0]}; here every problem, for the "
        f"{sweep['init'][0]} init: convergence rate (95% Wilson interval) and median epochs to "
        "converge (95% interval).",
        "",
    ]
    for problem in problems(sweep):
        v = _View(summary, problem)
        lines += [
            f"### {problem}",
            "",
            "| hidden | units | " + " | ".join(f"lr {lr:g}" for lr in sweep["lr"]) + " |",
            "|---|---|" + "---|" * len(sweep["lr"]),
        ]
        for hidden in ([0] if sweep["control"] else []) + list(sweep["hidden"]):
            row = {c["lr"]: c for c in v.first(hidden=hidden, init=sweep["init"][0])}
            units = next(iter(row.values())).get("hidden_units", hidden)
            cells = [f"{_rate(row[lr]['convergence'])}; {_median(row[lr])}" for lr in sweep["lr"]]
            lines.append(f"| {'none' if hidden == 0 else hidden} | {units} | "
                         + " | ".join(cells) + " |")  # fmt: skip
        lines.append("")
    return lines


def render(summary: dict, meta: dict, figure_names: list[str]) -> str:
    """report.md as text."""
    full, summary = summary, baseline(summary)
    v = _View(summary)
    sweep, d = v.sweep, summary["definitions"]
    paired = _paired_table(summary, v)  # its header's two lines, and a row per pair
    combos = len(sweep["activation"]) * len(sweep["loss"]) * len(sweep["optimizer"])
    lines = [
        f"# Convergence sweep `{sweep['name']}`: {', '.join(p.upper() for p in problems(sweep))}",
        "",
        f"{summary['n_nets']:,} seeded nets in {summary['n_cells']} "
        f"cell{'' if summary['n_cells'] == 1 else 's'} "
        f"({sweep['nets_per_cell']:,} per cell), trained with "
        f"{schedule_options.describe(sweep.get('batch_size'))} for at "
        f"most {sweep['epochs']:,} epochs. Grid: learning rates "
        f"{', '.join(f'{lr:g}' for lr in sweep['lr'])}; inits {', '.join(sweep['init'])}; hidden "
        f"units {', '.join(map(str, sweep['hidden']))}"
        + ("; shortcut connections from the input to the output" if sweep.get("shortcut") else "")
        + ("; plus the no-hidden-layer control" if sweep["control"] else "")
        + f". Activation {', '.join(sweep['activation'])}, loss {', '.join(sweep['loss'])}, "
        f"optimizer {', '.join(sweep['optimizer'])}, seed {sweep['seed']}"
        + (", loss summed over the patterns" if sweep.get("reduction") == "sum" else "")
        + f". Converged means: {d['converged']}.",
        "",
        "## Findings",
        "",
        # which combination they measure, where there are several (a sweep of sgd and adam
        # said "too low a learning rate crawls" of sgd alone, where lr 0.01 was adam's best)
        *([f"For {', '.join(v.combo)} and {problems(sweep)[0].upper()}, the first of "
           f"{combos} combinations of activation, loss and optimizer; the others are in the "
           "heatmaps and in summary.json.", ""] if combos > 1 else []),
        *[f"{i}. {text}" for i, text in enumerate(findings(summary), start=1)],
        "",
        *section(full),
        "## Convergence rate",
        "",
        "Share of nets that converged within the budget, with its 95% Wilson interval.",
        "",
    ]
    for name in figure_names:
        if name.startswith("heatmap_"):
            lines += [f"![convergence rate heatmap]({FIGURES}/{name})", ""]
    if combos > 1:
        lines += [
            f"Tables for {', '.join(v.combo)}; the other combinations are in the heatmaps "
            "and in summary.json.",
            "",
        ]
    for hidden in ([0] if sweep["control"] else []) + list(sweep["hidden"]):
        title = "No hidden layer (control)" if hidden == 0 else hidden_units(hidden).capitalize()
        lines += [f"### {title}", "", *_rate_table(v, hidden), ""]
    if len(problems(sweep)) > 1:
        lines += _problem_tables(summary)
    lines += [
        "## Epochs to converge",
        "",
        f"Kaplan-Meier estimates for the {sweep['init'][0]} init: nets that did not converge "
        "count as censored at the budget. Median epochs to converge with its 95% interval; "
        '"not reached" where fewer than half converged.',
        "",
        f"![survival curves]({FIGURES}/survival.png)",
        "",
        *_median_table(v),
        "",
        "## Paired comparisons of learning rates",
        "",
        *(["Net k of every cell below starts from the same weights at both learning rates, so "
           "the comparison is net for net. *Only A* counts nets that converged at rate A but not "
           "at B; McNemar's exact test asks whether the two discordant counts differ; the last "
           "column is the median, over nets that converged at both, of epochs at A over epochs "
           "at B.", "", *paired]
          if len(paired) > 2 else ["None: the grid has one learning rate."]),
        "",
        "## How nets failed",
        "",
        f"![failure modes]({FIGURES}/failure_modes.png)",
        "",
        f"Statuses: *converged*; *improving*: loss still fell by more than "
        f"{100 * d['plateau_drop']:g}% over the last quarter of the budget; *plateau*: it did "
        f"not; *diverged*: loss above {d['divergence_factor']:g}× its start or not finite. For "
        "the nets that did not converge: how many of the outputs were on the right side of 0.5, "
        f"the share with a hidden unit whose derivative stayed below {100 * d['saturation']:g}% "
        f"of its maximum on at least {100 * d.get('saturated_share', 0.5):g}% of the inputs "
        "(saturated) and on every input (flat, or a dead ReLU), and the share whose "
        f"parameter norm grew by more than {100 * (d['growth_flag'] - 1):g}% over the second half "
        f"of the budget. Cells of the {sweep['init'][0]} init.",
        "",
        *_failure_table(v),
        "",
        "## Learning curves",
        "",
        f"![learning curves]({FIGURES}/learning_curves.png)",
        "",
        "## How this report was made",
        "",
        f"- Command: `{meta.get('command', 'backprop-bench sweep')}`",
        f"- Training time: {meta.get('training_seconds', float('nan')):.0f} s on "
        f"{meta.get('machine', {}).get('cpus', '?')} CPUs with the {meta.get('backend')} backend"
        + (f" ({meta.get('machine', {}).get('numba_threads', '?')} numba threads)"
           if meta.get("backend") == "numba" else ""),
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}",
        f"- Commit: {meta.get('commit') or 'unknown'}; sweep fingerprint {meta.get('fingerprint')}",
        "- Files: `summary.json` (every number above), `results.csv.gz` (one row per net), "
        "`meta.json`, `sweep.json` (the config). `backprop-bench report DIR` rebuilds this page.",
        "",
    ]
    return "\n".join(lines)


SUMMARY_ERRORS = (KeyError, TypeError, IndexError, AttributeError, ValueError)
# what every sweep's meta.json has held: the report's provenance comes from these
META_KEYS = ("config", "fingerprint", "command", "versions", "commit", "machine", "backend",
             "training_seconds")  # fmt: skip


def write_report(folder: Path) -> Path:
    """Draw the figures and write report.md in ``folder`` from its summary.json and meta.json.

    A summary that is not a sweep's (an edited file, ``{}``, a key missing) is refused in one
    line before anything is written; every file is replaced atomically.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a sweep's folder; give the folder that "
                         "backprop-bench sweep --out wrote")  # fmt: skip
    if (folder / FIGURES).exists() and not (folder / FIGURES).is_dir():
        raise ValueError(f"{folder / FIGURES} is a file where the report's figures go; move it "
                         "away and run report again")  # fmt: skip
    documents = {}
    for name in ("summary.json", "meta.json"):
        try:
            documents[name] = json.loads((folder / name).read_text())
        except FileNotFoundError:
            raise ValueError(f"{folder} holds no finished sweep ({name} is missing); run "
                             "backprop-bench sweep --out on it first") from None  # fmt: skip
        except OSError as error:
            raise ValueError(f"cannot read {folder / name}: {error.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{folder / name} is not valid JSON ({error}); run the sweep "
                             "again to rewrite it") from None  # fmt: skip
    summary, meta = documents["summary.json"], documents["meta.json"]

    def unreadable(error):
        what = f"lacks {error}" if isinstance(error, KeyError) else f"is malformed ({error})"
        return ValueError(f"{folder / 'summary.json'} is not a sweep summary this version "
                          f"can read: it {what}; run the sweep again")  # fmt: skip

    def damaged(what):
        return ValueError(f"{folder / 'meta.json'} {what}: it is not a sweep's record of how "
                          "it ran; run the sweep again to rewrite it")  # fmt: skip

    if not isinstance(meta, dict):
        raise damaged("is not a JSON object")
    try:
        text = render(summary, meta, figure_names(baseline(summary)))
    except SUMMARY_ERRORS as error:
        raise unreadable(error) from None
    if lacking := [key for key in META_KEYS if key not in meta]:
        raise damaged(f"lacks {', '.join(lacking)}")
    try:
        atomic.clean_stale(folder / FIGURES)
        names = draw_all(baseline(summary), folder / FIGURES)
        names += report_regularised.draw(summary, folder / FIGURES)
    except SUMMARY_ERRORS as error:
        raise unreadable(error) from None
    del names  # render() named them already
    atomic.clean_stale(folder)
    return atomic.write_text(folder / "report.md", text)
