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
    try:  # a folder that cannot be made is bad input, found before the study runs
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno not in atomic.PATH_ERRORS:
            raise  # the machine failed (a full disk), not the path given
        raise ValueError(f"cannot write to --out {out}: {error.strerror}; choose a folder you "
                         "can write to") from None  # fmt: skip


def _case(results, activation, init, depth, batchnorm=False):
    return next(
        c
        for c in results["cases"]
        if (c["activation"], c["init"], c["depth"]) == (activation, init, depth)
        and c.get("batchnorm", False) == batchnorm
    )


def _batchnorm_section(results: dict) -> list[str]:
    """Median ||dL/dz|| at the first and last hidden layer, without and with batch norm."""
    config = results["config"]
    if True not in config.get("batchnorm", [False]):
        return []
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


def has_bound(results: dict) -> bool:
    """Whether the study checked the sigmoid bound on some layer: it needs sigmoid nets, and a
    hidden layer below the last (a depth of 2 or more)."""
    return bool(results["claims"]) and max(results["config"]["depths"]) > 1


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
                ax.plot(
                    layers, np.maximum(median, 1e-300), marker=".", color=color, label=str(depth)
                )
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, not 1.5 of one
            ax.grid(alpha=0.3)
            ax.set_title(f"{activation}, {init}", fontsize=9)
            if row == len(inits) - 1:
                ax.set_xlabel("hidden layer (1 = nearest the input)", fontsize=8)
            if col == 0:
                ax.set_ylabel("median ||dL/dz||", fontsize=8)
    # beside the panels: on the panels' shared scale it would sit over some panel's lines
    fig.legend(*axes[0][0].get_legend_handles_labels(), title="hidden layers", fontsize=7,
               title_fontsize=7, loc="outside right upper")  # fmt: skip
    fig.suptitle(
        f"Gradient norm per layer at initialisation ({config['n_nets']:,} nets per line, "
        f"width {config['width']}, {config['problem']})",
        fontsize=10,
    )
    _save(fig, path)


def bound_figure(results: dict, path: Path) -> None:
    """For sigmoid nets of the greatest depth: actual ||dL/dh_l|| over its bound, per layer."""
    config = results["config"]
    depth = max(config["depths"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
    for init in config["inits"]:
        case = _case(results, "sigmoid", init, depth)
        layers = [e["layer"] for e in case["bound"]["layers"]]
        q = np.array([e["ratio"] for e in case["bound"]["layers"]])
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
    lines = [
        f"| activation | init | median ‖dL/dz‖, layer 1 | layer {depth} | ratio | per layer |",
        "|---|---|---|---|---|---|",
    ]
    for activation in config["activations"]:
        for init in config["inits"]:
            case = _case(results, activation, init, depth)
            bottom, top = case["layers"][0]["dz"][MEDIAN], case["layers"][-1]["dz"][MEDIAN]
            ratio = bottom / top if top > 0 else float("nan")
            per_layer = ratio ** (1 / (depth - 1)) if depth > 1 and ratio > 0 else float("nan")
            lines.append(
                f"| {activation} | {init} | {bottom:.3g} | {top:.3g} | {ratio:.3g} | "
                f"{per_layer:.3f} |"
            )
    return lines


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
        observed = (dh[0] / dh[-1]) ** (1 / (depth - 1)) if depth > 1 and dh[-1] > 0 else np.nan
        loose = case["bound"]["layers"][0]["ratio"][MEDIAN] if case["bound"]["layers"] else 1.0
        rows.append((init, float(factor), float(observed), float(loose)))
    return rows


def _theory_reading(results: dict) -> list[str]:
    """What the bound guarantees beside what the nets did: where its factor is 1 or more it
    guarantees no vanishing, and the sentence says whether the nets' gradients vanished anyway."""
    free = [(init, f, o) for init, f, o, _ in _theory_rows(results) if f >= 1]
    if not free:
        return ["Every init's factor is below 1: the bound alone guarantees that these nets' "
                "gradients shrink toward the input, at least as fast as its factor says."]
    said = "; ".join(f"{init}: {f:.3f}, observed {o:.3f}" for init, f, o in free)
    vanished = all(o < 1 for _, _, o in free)
    return [f"Where the bound's factor is 1 or more ({said}) it guarantees nothing"
            + (", and the gradients shrank toward the input anyway: sigmoid' ≤ ¼ is enough "
               "to make them vanish where the weights are small, but it is not what set their "
               "rate here." if vanished else ".")]


def _theory_table(results: dict) -> list[str]:
    lines = [
        "| init | bound's factor per layer, ¼‖W‖₂ (median) | observed factor per layer "
        "((median ‖dL/dh‖ of the first hidden layer / of the last)^(1/(layers − 1))) "
        "| actual / bound at layer 1 (median) |",
        "|---|---|---|---|",
    ]
    for init, factor, observed, loose in _theory_rows(results):
        lines.append(f"| {init} | {factor:.3f} | {observed:.3f} | {loose:.2g} |")
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
        "binary cross-entropy. Norms are Frobenius norms over the batch, per net; the figures "
        "and tables show medians over the nets (quantiles 10-90% are in vanishing.json).",
        "",
        "## The claims, checked on every net",
        "",
    ]
    if claims:
        lines += [
            f"- **sigmoid'(z) ≤ 1/4.** Largest a(1 − a) over all {claims['units_seen']:,} hidden "
            f"sigmoid activations seen: {claims['max_sigmoid_derivative']:.6g}"
            + (" (exactly 1/4, at z = 0)." if claims["max_sigmoid_derivative"] == 0.25 else "."),
            "- **The bound ‖∂L/∂h_l‖ ≤ ‖∂L/∂h_L‖ · Π_(k=l+1..L) ¼‖W_k‖₂** for every sigmoid net "
            + (f"and hidden layer l below the last: {claims['bound_violations']:,} violations in "
               f"{claims['bound_checks']:,} checks (relative slack 1e-9 for rounding)."
               if has_bound(results) else
               "and hidden layer l below the last: not checked, since the deepest nets of this "
               "study have one hidden layer (give --depths 2 or more)."),
        ]
    else:
        lines.append("- No sigmoid nets in this study: the sigmoid claims were not checked.")
    lines += [
        "",
        "## Gradient norm by layer",
        "",
        "![gradient norms](figures/gradient_norms.png)",
        "",
        f"The median gradient norm at the first hidden layer over the one at the last, for "
        f"{max(config['depths'])} hidden layers: below 1 the gradient vanishes toward the input, "
        "above 1 it explodes (*per layer*: the geometric mean factor):",
        "",
        *_decay_table(results),
        "",
        *_batchnorm_section(results),
    ]
    if has_bound(results):
        lines += [
            "## Theory beside the data (sigmoid)",
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
    figures.mkdir(parents=True, exist_ok=True)
    atomic.clean_stale(out)
    atomic.clean_stale(figures)
    texts = {
        "vanishing.json": json.dumps(results, indent=1) + "\n",
        "meta.json": json.dumps(meta, indent=1) + "\n",
        "report.md": render(results, meta),
    }
    bound = has_bound(results)
    paths = [figures / "gradient_norms.png", *([figures / "bound.png"] if bound else []),
             *(out / name for name in texts)]  # fmt: skip
    stale = () if bound else (figures / "bound.png",)  # an earlier study's
    with atomic.replacing_together(paths, stale) as temporary:
        gradient_figure(results, temporary[figures / "gradient_norms.png"])
        if bound:
            bound_figure(results, temporary[figures / "bound.png"])
        for name, text in texts.items():
            temporary[out / name].write_bytes(text.encode())
    return out / "report.md"
