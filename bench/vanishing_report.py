"""The vanishing-gradient study's report: ``report.md``, ``vanishing.json`` and figures.

Everything shown is computed from the study's results (``backprop_bench.verify.vanishing.study``).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from . import atomic  # noqa: E402

OUTPUT_NAMES = {"report.md", "vanishing.json", "meta.json", "figures"}
MEDIAN = 2  # index of the median in the quantile lists (10, 25, 50, 75, 90)


def check_out(out: Path, config: dict | None = None) -> None:
    """Refuse a folder that holds anything but this study's own output: files of its own, or
    (given the study's ``config``, as ``VanishingConfig.to_dict``) a study of another config,
    which the new one would replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the study's report")
    if out.exists():
        names = [p.name for p in out.iterdir() if not atomic.is_temporary(p.name)]
        foreign = sorted(name for name in names if name not in OUTPUT_NAMES)
        if foreign:
            raise ValueError(
                f"--out {out} holds files that are not this study's "
                f"({', '.join(foreign[:3])}); choose another folder"
            )
        stored = out / "vanishing.json"
        # a study writes its files together, vanishing.json among them: files of these names
        # without it are someone else's (a report.md of the user's own was replaced)
        figures = out / "figures"
        theirs = [name for name in ("report.md", "meta.json") if name in names]
        if figures.is_dir():
            theirs += [f"figures/{p.name}" for p in sorted(figures.iterdir())
                       if not atomic.is_temporary(p.name)]  # fmt: skip
        elif figures.exists():
            theirs.append("figures")
        if theirs and not stored.exists():
            raise ValueError(
                f"--out {out} holds files that are not a study's ({', '.join(theirs[:3])}, "
                "without its vanishing.json); choose another folder"
            )
        if config is not None and stored.exists():
            try:
                other = json.loads(stored.read_text())["config"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ValueError(f"--out {out} holds an unreadable vanishing.json ({error}); "
                                 "choose another --out") from None  # fmt: skip
            changed = [k for k in sorted(set(config) | set(other))
                       if config.get(k) != other.get(k)]  # fmt: skip
            if changed:
                raise ValueError(
                    f"--out {out} holds a study of another config (it differs in: "
                    f"{', '.join(changed)}); choose another --out, or delete that folder to "
                    "start over"
                )
    # a folder that cannot be made is bad input, found before the study runs; made to see,
    # and removed again, so that a study that then fails leaves no empty folder behind
    made = _missing(out / "figures")
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno not in atomic.PATH_ERRORS:
            raise  # the machine failed (a full disk), not the path given
        raise ValueError(f"cannot write to --out {out}: {error.strerror}; choose a folder you "
                         "can write to") from None  # fmt: skip
    finally:
        _remove_empty(made)


def _missing(folder: Path) -> list[Path]:
    """The folders that making ``folder`` would create, the deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # the deepest first
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not there): it and the folders above it stay


def _plain(results) -> bool:
    """The batch-norm setting that the tables and figures show: the nets without it wherever the
    study has them (--batchnorm on,off ran into the bound's section, which only they have),
    the batch-norm nets in a study of those alone."""
    return False not in results["config"].get("batchnorm", [False])


def _case(results, activation, init, depth, batchnorm=None):
    batchnorm = _plain(results) if batchnorm is None else batchnorm
    return next(
        c
        for c in results["cases"]
        if (c["activation"], c["init"], c["depth"]) == (activation, init, depth)
        and c.get("batchnorm", False) == batchnorm
    )


def _batchnorm_section(results: dict) -> list[str]:
    """Median ||dL/dz|| at the first and last hidden layer, without and with batch norm."""
    config = results["config"]
    if set(config.get("batchnorm", [False])) != {False, True}:
        return []  # nothing to compare with
    depth = max(config["depths"])
    lines = [
        "## With batch norm",
        "",
        f"The same nets (the same weights; batch norm's scale 1 and shift 0) with every hidden "
        f"layer batch-normalised, in training mode. Median ‖dL/dz‖ at the first hidden layer "
        f"over the one at the last, {depth} hidden layers (z before normalisation):",
        "",
        "| activation | init | ratio without | ratio with | per layer without | with |",
        "|---|---|---|---|---|---|",
    ]
    for activation in config["activations"]:
        for init in config["inits"]:
            ratios = []
            for batchnorm in (False, True):
                layers = _case(results, activation, init, depth, batchnorm)["layers"]
                bottom, top = layers[0]["dz"][MEDIAN], layers[-1]["dz"][MEDIAN]
                ratios.append(bottom / top if top > 0 else float("nan"))
            per = [r ** (1 / (depth - 1)) if depth > 1 and r > 0 else float("nan")
                   for r in ratios]  # fmt: skip
            lines.append(f"| {activation} | {init} | {ratios[0]:.3g} | {ratios[1]:.3g} | "
                         f"{per[0]:.3f} | {per[1]:.3f} |")  # fmt: skip
    return [*lines, ""]


def _save(fig, path: Path) -> None:
    try:
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def _floats(values) -> np.ndarray:
    """Values to draw: None (no net had a finite value) as NaN, which matplotlib leaves out;
    0 as the smallest positive float, which a log scale can place."""
    array = np.array([np.nan if v is None else v for v in values], dtype=float)
    return np.where(array == 0, 1e-300, array)


def has_bound(results: dict) -> bool:
    """Whether the study checked the sigmoid bound on some layer: it needs sigmoid nets, and a
    hidden layer below the last (a depth of 2 or more)."""
    return any(c.get("bound", {}).get("layers") for c in results["cases"])


def _number(x) -> str:
    """A factor or ratio for a table: 3 decimals in the usual range, else 3 significant digits
    (a 300-digit number was printed for an init of scale 1e300)."""
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.3f}" if 1e-3 <= abs(x) < 1e4 else f"{x:.3g}"


def _per_layer(bottom, top, depth) -> float:
    """(bottom / top) ** (1 / (depth - 1)): the geometric mean factor per layer."""
    if depth < 2 or bottom is None or top is None or not top > 0 or not bottom > 0:
        return float("nan")
    return (bottom / top) ** (1 / (depth - 1))


def _panel(ax, activation, init, bottom: bool, left: bool, ylabel: str) -> None:
    """A panel of a per-layer figure: log scale, whole layers, its case as title, labels on the
    figure's edges."""
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, not 1.5 of one
    ax.grid(alpha=0.3)
    ax.set_title(f"{activation}, {init}", fontsize=9)
    if bottom:
        ax.set_xlabel("hidden layer (1 = nearest the input)", fontsize=8)
    if left:
        ax.set_ylabel(ylabel, fontsize=8)


def gradient_figure(results: dict, path: Path) -> None:
    """Median ||dL/dz|| against hidden layer: one line per depth, one panel per activation."""
    config = results["config"]
    inits, activations, depths = config["inits"], config["activations"], config["depths"]
    fig, axes = plt.subplots(
        len(inits),
        len(activations),
        squeeze=False,
        sharex=True,
        # one scale for every panel: on scales of their own a tanh panel spanning a factor of 5
        # looked as steep as a sigmoid one spanning 10^12
        sharey=True,
        figsize=(3.6 * len(activations), 2.8 * len(inits)),
        layout="constrained",
    )
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(depths)))
    for row, init in enumerate(inits):
        for col, activation in enumerate(activations):
            ax = axes[row][col]
            for color, depth in zip(colors, depths, strict=True):
                case = _case(results, activation, init, depth)
                layers = [entry["layer"] for entry in case["layers"]]
                median = [entry["dz"][MEDIAN] for entry in case["layers"]]
                ax.plot(layers, _floats(median), marker=".", color=color, label=str(depth))
            _panel(ax, activation, init, row == len(inits) - 1, col == 0, "median ||dL/dz||")
    # beside the panels: on the panels' shared scale it would sit over some panel's lines
    fig.legend(*axes[0][0].get_legend_handles_labels(), title="hidden layers", fontsize=7,
               title_fontsize=7, loc="outside right upper")  # fmt: skip
    fig.suptitle(
        f"Gradient norm per layer at initialisation ({config['n_nets']:,} nets per line, "
        f"width {config['width']}, {config['problem']}" + (", batch norm" if _plain(results)
                                                            else "") + ")",
        fontsize=10,
    )  # fmt: skip
    _save(fig, path)


def has_mean_field(results: dict) -> bool:
    """Whether the figure of theory beside the data has anything to show: cases without batch
    norm, and a hidden layer below the last."""
    return max(results["config"]["depths"]) > 1 and bool(_mean_field_rows(results))


def mean_field_figure(results: dict, path: Path) -> None:
    """The deepest nets' ||dL/dz|| per layer: mean-field theory's root mean square over nets
    beside the observed root mean square and the median."""
    config = results["config"]
    inits, activations, depth = config["inits"], config["activations"], max(config["depths"])
    fig, axes = plt.subplots(len(inits), len(activations), squeeze=False, sharex=True,
                             sharey=True, figsize=(3.6 * len(activations), 2.8 * len(inits)),
                             layout="constrained")  # fmt: skip
    for row, init in enumerate(inits):
        for col, activation in enumerate(activations):
            ax, case = axes[row][col], _case(results, activation, init, depth)
            layers = [e["layer"] for e in case["layers"]]
            ax.plot(layers, _floats(e["dz_rms"] for e in case["layers"]), "o",
                    color="#1d3557", ms=4, label="observed, RMS over nets")  # fmt: skip
            ax.plot(layers, _floats(e["dz"][MEDIAN] for e in case["layers"]), "s",
                    color="#e76f51", ms=3, mfc="none", label="observed, median")  # fmt: skip
            ax.plot(layers, _floats(e["dz"] for e in case["mean_field"]), "-",
                    color="black", lw=1.0, label="mean-field theory (RMS)")  # fmt: skip
            _panel(ax, activation, init, row == len(inits) - 1, col == 0, "||dL/dz||")
    fig.legend(*axes[0][0].get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    fig.suptitle(f"Theory beside the data: {depth} hidden layers of {config['width']}, "
                 f"{config['n_nets']:,} nets per panel", fontsize=10)  # fmt: skip
    _save(fig, path)


def bound_figure(results: dict, path: Path) -> None:
    """For sigmoid nets of the greatest depth: actual ||dL/dh_l|| over its bound, per layer."""
    config = results["config"]
    depth = max(config["depths"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
    for init in config["inits"]:
        case = _case(results, "sigmoid", init, depth)
        layers = [e["layer"] for e in case["bound"]["layers"]]
        q = np.array([_floats(e["ratio"]) for e in case["bound"]["layers"]])
        line = ax.plot(layers, q[:, MEDIAN], marker=".", label=init)[0]
        ax.fill_between(layers, q[:, 0], q[:, -1], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xlabel(f"hidden layer l (of {depth}; the bound is exact at the top)", fontsize=8)
    ax.set_ylabel("||dL/dh_l|| / bound", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("How loose the sigmoid bound is (median, 10-90% of nets)", fontsize=9)
    _save(fig, path)


def _decay_table(results: dict) -> list[str]:
    config = results["config"]
    depth = max(config["depths"])
    if depth < 2:
        return ["With one hidden layer there is no layer below the last to compare: give "
                "--depths 2 or more for the table."]  # fmt: skip
    lines = [
        f"| activation | init | median ‖dL/dz‖, layer 1 | layer {depth} | ratio | per layer |",
        "|---|---|---|---|---|---|",
    ]
    for activation in config["activations"]:
        for init in config["inits"]:
            case = _case(results, activation, init, depth)
            bottom, top = case["layers"][0]["dz"][MEDIAN], case["layers"][-1]["dz"][MEDIAN]
            # a norm is None where no net had a finite one
            ratio = bottom / top if bottom is not None and top else None
            g = lambda x: "–" if x is None or not np.isfinite(x) else f"{x:.3g}"  # noqa: E731
            lines.append(
                f"| {activation} | {init} | {g(bottom)} | {g(top)} | {g(ratio)} | "
                f"{_number(_per_layer(bottom, top, depth))} |"
            )
    return lines


def _mean_field_rows(results: dict) -> list[dict]:
    """Per activation and init at the greatest depth: the factor per layer of ||dL/dh|| that
    mean-field theory predicts, observed as a root mean square over nets and as a median, and
    the share of nets without a gradient at the first layer."""
    config = results["config"]
    depth = max(config["depths"])
    rows = []
    for activation in config["activations"]:
        for init in config["inits"]:
            case = _case(results, activation, init, depth)
            if "mean_field" not in case:  # batch-norm nets: the theory is a plain chain's
                continue
            layers, theory = case["layers"], case["mean_field"]
            rows.append({
                "activation": activation, "init": init,
                "theory": _per_layer(theory[0]["dh"], theory[-1]["dh"], depth),
                "rms": _per_layer(layers[0]["dh_rms"], layers[-1]["dh_rms"], depth),
                "median": _per_layer(layers[0]["dh"][MEDIAN], layers[-1]["dh"][MEDIAN], depth),
                "no_gradient": case["no_gradient"],
            })  # fmt: skip
    return rows


def _mean_field_section(results: dict) -> list[str]:
    config = results["config"]
    depth = max(config["depths"])
    rows = _mean_field_rows(results)
    if depth < 2 or not rows:
        return []
    lines = [
        "## Theory beside the data",
        "",
        "Mean-field theory: over the draws of the weights each unit's z is normal with mean 0, "
        "its variance carried up from the data by the init's variances (biases included: "
        "`normal:σ` and `uniform:a` draw them, the other inits set them to 0), and each layer "
        "multiplies the mean square of the backpropagated ‖dL/dh‖ by fan-in · var(W) · "
        "E[φ′(z)²]. It predicts the root mean square over nets; the tutorial's rule, sigmoid′ ≤ "
        "¼, gives ¼ a layer for sigmoid nets whose weights neither grow nor shrink a gradient. "
        f"Factors per layer of ‖dL/dh‖ over {depth} hidden layers, "
        "(first hidden layer / last)^(1/(layers − 1)):",
        "",
        "| activation | init | tutorial's rule | mean-field | observed, RMS over nets | "
        "observed, median | nets with no gradient at layer 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rule = "0.250" if row["activation"] == "sigmoid" else "–"
        lines.append(f"| {row['activation']} | {row['init']} | {rule} | "
                     f"{_number(row['theory'])} | {_number(row['rms'])} | "
                     f"{_number(row['median'])} | {100 * row['no_gradient']:.1f}% |")  # fmt: skip
    fits = [abs(r["rms"] / r["theory"] - 1) for r in rows
            if np.isfinite(r["rms"]) and np.isfinite(r["theory"]) and r["theory"] > 0]  # fmt: skip
    below = [r for r in rows if np.isfinite(r["median"]) and np.isfinite(r["rms"])
             and r["median"] < r["rms"]]  # fmt: skip
    lines += ["", "![theory beside the data](figures/mean_field.png)", ""]
    if fits:
        lines.append(
            f"Mean-field theory predicts the root mean square within {100 * max(fits):.0f}% per "
            f"layer in every case here ({len(fits)} cases). The median net's factor lies below "
            f"it in {len(below)} of {len(rows)}: a net's gradient is a product of a random "
            f"factor per layer, spread more widely the narrower the layers ({config['width']} "
            "units here), and the median of such a product falls below its root mean square."
        )
    sigmoid = [r for r in rows if r["activation"] == "sigmoid" and np.isfinite(r["median"])]
    if sigmoid:
        faster = [r["init"] for r in sigmoid if r["median"] < 0.25]
        slower = [r["init"] for r in sigmoid if r["median"] >= 0.25]
        lines += ["", "The tutorial's ¼ a layer counts sigmoid′ at its largest and no weights. "
                  "The rate the sigmoid nets showed is sigmoid′ where their units sit times the "
                  "weights' typical gain √(fan-in · var(W)), as the mean-field column has it: "
                  "the median net's gradient shrank"
                  + (f" faster than ¼ a layer with {', '.join(faster)}" if faster else "")
                  + ("," if faster and slower else "")
                  + (f" more slowly with {', '.join(slower)}" if slower else "") + "."]  # fmt: skip
    return [*lines, ""]


def _theory_rows(results: dict) -> list[tuple[str, float, float, float]]:
    """Per init of the deepest sigmoid nets: (init, the bound's factor per layer, the observed
    factor per layer, actual / bound at layer 1), medians."""
    config = results["config"]
    depth = max(config["depths"])
    rows = []
    for init in config["inits"]:
        case = _case(results, "sigmoid", init, depth)
        factor = np.median([e["factor_per_layer"][MEDIAN] for e in case["bound"]["layers"]])
        dh = [e["dh"][MEDIAN] for e in case["layers"]]
        observed = _per_layer(dh[0], dh[-1], depth)
        loose = case["bound"]["layers"][0]["ratio"][MEDIAN] if case["bound"]["layers"] else None
        loose = float("nan") if loose is None else loose  # no net had a nonzero bound
        rows.append((init, float(factor), float(observed), float(loose)))
    return rows


def _theory_reading(results: dict) -> list[str]:
    """What the bound guarantees beside what the nets did: where its factor is 1 or more it
    guarantees no vanishing, and the sentence says whether the nets' gradients vanished anyway."""
    rows = _theory_rows(results)
    free = [(init, f, o) for init, f, o, _ in rows if f >= 1]
    spans = [f / o for _, f, o, _ in rows if np.isfinite(f) and np.isfinite(o) and o > 0]
    looser = ((f"Its factor is {_number(min(spans))} to {_number(max(spans))} times the "
               "observed one here: " if spans else "")
              + "‖W‖₂, the largest gain of a layer in any direction, is larger than the typical "
              "gain √(fan-in · var(W)) that sets the rate (the mean-field column above): about "
              "1.7 times at width 8, twice for wide Gaussian layers; and sigmoid′ lies below ¼ "
              "where the units sit, and a median net below the root mean square.")  # fmt: skip
    if not free:
        return ["For the median net of every init the factor is below 1: for such a net the "
                "bound alone guarantees that its gradient shrinks toward the input, at least as "
                "fast as the factor says. " + looser]  # fmt: skip
    said = "; ".join(f"{init}: {_number(f)}, observed {_number(o)}" for init, f, o in free)
    vanished = all(o < 1 for _, _, o in free)
    return [f"Where the bound's factor is 1 or more ({said}) it guarantees nothing"
            + (", and the gradients shrank toward the input anyway. " if vanished else ". ")
            + looser]


def _theory_table(results: dict) -> list[str]:
    lines = [
        "| init | bound's factor per layer, ¼‖W‖₂ (median) | observed factor per layer "
        "((median ‖dL/dh‖ of the first hidden layer / of the last)^(1/(layers − 1))) "
        "| actual / bound at layer 1 (median) |",
        "|---|---|---|---|",
    ]
    for init, factor, observed, loose in _theory_rows(results):
        shown = "–" if not np.isfinite(loose) else f"{loose:.2g}"
        lines.append(f"| {init} | {_number(factor)} | {_number(observed)} | {shown} |")
    return lines


def render(results: dict, meta: dict) -> str:
    config, claims = results["config"], results["claims"]
    n_cases = len(results["cases"])
    lines = [
        "# Vanishing gradients at initialisation",
        "",
        f"{n_cases} cases: hidden depths {', '.join(map(str, config['depths']))}; activations "
        f"{', '.join(config['activations'])}; inits {', '.join(config['inits'])}; "
        f"{config['width']} units per hidden layer; {config['n_nets']:,} seeded nets per case "
        f"(seed {config['seed']}), one forward and backward pass on {config['problem']} with "
        "binary cross-entropy"
        + (", every hidden layer batch-normalised (training mode; the study has no nets "
           "without batch norm)" if _plain(results) else "")
        + ". Norms are Frobenius norms over the batch, per net; the figures and tables show "
        "medians over the nets (quantiles 10-90% are in vanishing.json).",
        "",
        "## The claims, checked on every net",
        "",
    ]
    if claims:
        lines += [
            f"- **sigmoid'(z) ≤ 1/4.** Largest a(1 − a) over all {claims['units_seen']:,} hidden "
            f"sigmoid activations seen: {claims['max_sigmoid_derivative']:.6g}"
            + (" (exactly 1/4, which a(1 − a) rounds to in float64 only within about 1e-8 of "
               "z = 0: units with zero bias on an all-zero input, here). The claim is an "
               "identity, a(1 − a) ≤ ¼ for "
               "every a; what it does to a deep net's gradient is the question of the sections "
               "below." if claims["max_sigmoid_derivative"] == 0.25 else "."),
            "- **The bound ‖∂L/∂h_l‖ ≤ ‖∂L/∂h_L‖ · Π_(k=l+1..L) ¼‖W_k‖₂** for every sigmoid net "
            + (f"and hidden layer l below the last: {claims['bound_violations']:,} violations in "
               f"{claims['bound_checks']:,} checks (relative slack 1e-9 for rounding)"
               + (f"; {claims['bound_unchecked']:,} not made, a norm not being finite."
                  if claims.get("bound_unchecked") else ".")
               if has_bound(results) else
               "and hidden layer l below the last: not checked, since "
               + ("the deepest nets of this study have one hidden layer (give --depths 2 or "
                  "more)." if max(config["depths"]) < 2 else "this study's sigmoid nets have "
                  "batch norm, whose chain the bound does not describe.")),
        ]
    else:
        lines.append("- No sigmoid nets in this study: the sigmoid claims were not checked.")
    lines += [
        "",
        "## Gradient norm by layer",
        "",
        "![gradient norms](figures/gradient_norms.png)",
        "",
        *([f"The median gradient norm at the first hidden layer over the one at the last, for "
           f"{max(config['depths'])} hidden layers: below 1 the gradient vanishes toward the "
           "input, above 1 it explodes (*per layer*: the geometric mean factor):", ""]
          if max(config["depths"]) > 1 else []),
        *_decay_table(results),
        "",
        *_mean_field_section(results),
        *_batchnorm_section(results),
    ]
    if has_bound(results):
        lines += [
            "## The sigmoid bound beside the data",
            "",
            "The bound multiplies ¼‖W_k‖₂ per layer. It is reached only where every unit sits at "
            "z = 0 (sigmoid' = ¼) and the backpropagated vector lies along W's top singular "
            "direction at every layer; the table compares its factor with the shrinkage per "
            "layer that the nets actually showed.",
            "",
            *_theory_table(results),
            "",
            *_theory_reading(results),
            "",
            "![bound looseness](figures/bound.png)",
            "",
        ]
    lines += [
        "## How this report was made",
        "",
        f"- Command: `{meta.get('command')}`",
        f"- Time: {meta.get('seconds', float('nan')):.1f} s; versions: "
        f"{', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}; commit "
        f"{meta.get('commit') or 'unknown'}",
        "- Data: `vanishing.json` (every quantile of every layer of every case).",
        "",
    ]
    return "\n".join(lines)


def write(out: Path, results: dict, meta: dict) -> Path:
    """The study's files in ``out``: each made in a temporary file first, and renamed into
    place together only once all of them are made (``atomic.replacing_together``), so that a
    study that fails or is interrupted on its way leaves an earlier study's folder as it was
    (not its figures replaced and its report kept)."""
    out = Path(out)
    figures = out / "figures"
    made = _missing(figures)
    figures.mkdir(parents=True, exist_ok=True)
    try:
        return _write(out, figures, results, meta)
    except BaseException:
        _remove_empty(made)  # a study that did not land leaves no empty folders
        raise


def _write(out: Path, figures: Path, results: dict, meta: dict) -> Path:
    atomic.clean_stale(out)
    atomic.clean_stale(figures)
    texts = {
        "vanishing.json": json.dumps(results, indent=1) + "\n",
        "meta.json": json.dumps(meta, indent=1) + "\n",
        "report.md": render(results, meta),
    }
    bound, theory = has_bound(results), has_mean_field(results)
    paths = [figures / "gradient_norms.png", *([figures / "bound.png"] if bound else []),
             *([figures / "mean_field.png"] if theory else []),
             *(out / name for name in texts)]  # fmt: skip
    # an earlier study's figures that this one does not draw
    stale = (*(() if bound else (figures / "bound.png",)),
             *(() if theory else (figures / "mean_field.png",)))  # fmt: skip
    with atomic.replacing_together(paths, stale) as temporary:
        gradient_figure(results, temporary[figures / "gradient_norms.png"])
        if bound:
            bound_figure(results, temporary[figures / "bound.png"])
        if theory:
            mean_field_figure(results, temporary[figures / "mean_field.png"])
        for name, text in texts.items():
            temporary[out / name].write_bytes(text.encode())
    return out / "report.md"
