"""The sweep report's figures, drawn from ``summary.json`` alone (no training, no shards).

Each function takes the summary and a path, draws one PNG with matplotlib's Agg backend, and
returns nothing. Figures show the first init's cells where a figure cannot show every init.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import atomic


def hidden_units(hidden) -> str:
    """'1 hidden unit', '4 hidden units', '2n hidden units' (a multiple of the inputs)."""
    return f"{hidden} hidden unit" + ("" if str(hidden) == "1" else "s")


# converged and still improving in greens, stopped in warm colours: the four told apart at a
# glance, also printed in grey (grey values 0.52, 0.85, 0.69, 0.31, Rec. 709 weights of the
# sRGB components; improving and plateau, side by side in a bar, were both yellows before)
STATUS_COLORS = {
    "converged": "#2a9d8f",
    "improving": "#b7e4c7",
    "plateau": "#f4a261",
    "diverged": "#b5332e",
}
DPI = 110


def problems(sweep) -> list[str]:
    """The sweep's problems (one name, or a list of them)."""
    return [sweep["problem"]] if isinstance(sweep["problem"], str) else list(sweep["problem"])


def _grid_cells(summary, **fixed):
    """Cells of the sweep's first problem (the figures show that one) matching ``fixed``."""
    first = problems(summary["sweep"])[0]
    return [
        c
        for c in summary["cells"]
        if all(c[k] == v for k, v in fixed.items()) and c.get("problem", first) == first
    ]


def _first_init_cell(summary, hidden, lr):
    """The cell of the first init and first activation/loss/optimizer combination."""
    activation, loss, optimizer = _combos(summary)[0]
    (cell,) = _grid_cells(
        summary,
        hidden=hidden,
        init=summary["sweep"]["init"][0],
        activation=activation,
        loss=loss,
        optimizer=optimizer,
        lr=lr,
    )
    return cell


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use: it takes half a second,
    which every command would pay at start-up (``backprop-bench train`` draws nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight",
                        metadata={"Software": None})  # fmt: skip
    finally:
        _pyplot().close(fig)


def _combos(summary):
    sweep = summary["sweep"]
    return [
        (a, lo, o) for a in sweep["activation"] for lo in sweep["loss"] for o in sweep["optimizer"]
    ]


def heatmaps(summary: dict, path: Path, activation: str, loss: str, optimizer: str) -> None:
    """Convergence rate, learning rate by init, one panel per hidden size."""
    sweep = summary["sweep"]
    lrs, inits, hiddens = sweep["lr"], sweep["init"], sweep["hidden"]
    fig, axes = _pyplot().subplots(
        1,
        len(hiddens),
        figsize=(3.2 * len(hiddens) + 1, 0.45 * len(inits) + 1.6),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, hidden in zip(axes[0], hiddens, strict=True):
        rate = np.full((len(inits), len(lrs)), np.nan)
        for c in _grid_cells(
            summary, hidden=hidden, activation=activation, loss=loss, optimizer=optimizer
        ):
            rate[inits.index(c["init"]), lrs.index(c["lr"])] = c["convergence"][0]
        image = ax.imshow(rate, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(rate):
            ax.text(
                j,
                i,
                f"{100 * value:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < 0.6 else "black",
            )
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], fontsize=7)
        ax.set_yticks(range(len(inits)), inits, fontsize=7)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_title(hidden_units(hidden), fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="share converged")
    fig.suptitle(
        f"Convergence rate ({activation}, {loss}, {optimizer}); numbers are %", fontsize=10
    )
    _save(fig, path)


def survival_curves(summary: dict, path: Path) -> None:
    """Fraction of nets not yet converged against epoch, one line per learning rate."""
    sweep = summary["sweep"]
    init = sweep["init"][0]
    epochs = np.asarray(summary["curve_epochs"], dtype=float)
    hiddens = sweep["hidden"]
    colors = _pyplot().cm.plasma(np.linspace(0, 0.9, len(sweep["lr"])))
    fig, axes = _pyplot().subplots(
        1,
        len(hiddens),
        figsize=(3.2 * len(hiddens), 3),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, hidden in zip(axes[0], hiddens, strict=True):
        for color, lr in zip(colors, sweep["lr"], strict=True):
            c = _first_init_cell(summary, hidden, lr)
            ax.step(
                np.maximum(epochs, 1), c["survival"], where="post", color=color, label=f"{lr:g}"
            )
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_title(hidden_units(hidden), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("not yet converged", fontsize=8)
    # beside the panels, not over a panel's curves
    fig.legend(*axes[0][0].get_legend_handles_labels(), title="lr", fontsize=7, title_fontsize=7,
               loc="outside right upper")  # fmt: skip
    fig.suptitle(f"Kaplan-Meier survival: epochs to converge ({init} init)", fontsize=10)
    _save(fig, path)


def learning_curves(summary: dict, path: Path) -> None:
    """Loss quantile bands against epoch, one panel per learning rate."""
    sweep = summary["sweep"]
    init, loss = sweep["init"][0], _combos(summary)[0][1]
    hidden = 4 if 4 in sweep["hidden"] else sweep["hidden"][len(sweep["hidden"]) // 2]
    epochs = np.maximum(np.asarray(summary["curve_epochs"], dtype=float), 1)
    lrs = sweep["lr"]
    columns = min(4, len(lrs))
    rows = -(-len(lrs) // columns)
    fig, axes = _pyplot().subplots(
        rows,
        columns,
        figsize=(3 * columns, 2.5 * rows),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    for ax, lr in zip(axes.flat, lrs, strict=False):
        c = _first_init_cell(summary, hidden, lr)
        q = {
            k: np.asarray([np.nan if v is None else v for v in vals], dtype=float)
            for k, vals in c["loss_quantiles"].items()
        }
        ax.fill_between(epochs, q["10"], q["90"], color="#457b9d", alpha=0.2, lw=0)
        ax.fill_between(epochs, q["25"], q["75"], color="#457b9d", alpha=0.4, lw=0)
        ax.plot(epochs, q["50"], color="#1d3557", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"lr {lr:g}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(lrs) :]:
        ax.set_visible(False)
    fig.supxlabel("epoch", fontsize=8)
    fig.supylabel(f"{loss} loss", fontsize=8)
    fig.suptitle(
        f"Loss: median, 25-75% and 10-90% of nets ({hidden} hidden, {init} init; "
        "a stopped net keeps its last loss)",
        fontsize=9,
    )
    _save(fig, path)


def failure_modes(summary: dict, path: Path) -> None:
    """How nets ended, per learning rate, one panel per hidden size (and the control)."""
    sweep = summary["sweep"]
    init = sweep["init"][0]
    panels = ([0] if sweep["control"] else []) + list(sweep["hidden"])
    fig, axes = _pyplot().subplots(
        1,
        len(panels),
        figsize=(2.8 * len(panels), 3),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    lrs = sweep["lr"]
    for ax, hidden in zip(axes[0], panels, strict=True):
        bottom = np.zeros(len(lrs))
        cells = [_first_init_cell(summary, hidden, lr) for lr in lrs]
        for status, color in STATUS_COLORS.items():
            share = np.array([c["counts"][status] / c["n"] for c in cells])
            ax.bar(range(len(lrs)), share, bottom=bottom, color=color, label=status, width=0.8)
            bottom += share
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], fontsize=7, rotation=45)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_title("no hidden layer" if hidden == 0 else hidden_units(hidden), fontsize=9)
    axes[0][0].set_ylabel("share of nets", fontsize=8)
    # beside the panels, not over a panel's bars; listed top down as the bars stack
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], fontsize=7, loc="outside right upper")
    fig.suptitle(f"How nets ended ({init} init)", fontsize=10)
    _save(fig, path)


FIGURES = (
    ("survival.png", survival_curves),
    ("learning_curves.png", learning_curves),
    ("failure_modes.png", failure_modes),
)


def figure_names(summary: dict) -> list[str]:
    """The file names ``draw_all`` writes, in its order."""
    heatmap_names = [f"heatmap_{a}_{lo}_{o}.png" for a, lo, o in _combos(summary)]
    return heatmap_names + [name for name, _ in FIGURES]


def draw_all(summary: dict, folder: Path) -> list[str]:
    """Every figure of the report; returns their file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for activation, loss, optimizer in _combos(summary):
        name = f"heatmap_{activation}_{loss}_{optimizer}.png"
        heatmaps(summary, folder / name, activation, loss, optimizer)
    for name, draw in FIGURES:
        draw(summary, folder / name)
    return figure_names(summary)
