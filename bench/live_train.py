"""Training for the live page: one displayed net as a generator of snapshots, and its population.

``train_live(config)`` yields a :class:`Snapshot` of the net that ``backprop-bench train`` with the
same config trains (net ``config.net`` of ``config.seed``), and each ``send(n)`` advances it ``n``
epochs. It calls the same public kernel as ``run_train`` (``train_population``, full batch,
``early_stop=False``) and so reports the same loss, accuracy and gradient norm at every epoch:

- plain SGD keeps no state between steps, so a net continued from its parameters at epoch ``e``
  takes the same steps as one trained from the start: each advance trains only the new epochs;
- momentum and Adam keep moment estimates that the kernel does not hand back, so each advance
  trains the net again from epoch 0 (the cost grows with the epoch; the kernel is fast).

``PopulationRun`` trains nets ``0 .. n_nets - 1`` of the same setup in blocks, recording their
losses, and summarises them at any epoch. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from backprop_bench.kernels import (
    Criterion,
    Status,
    backend,
    init_population,
    parse_init,
    regularised,
    streams,
)

from .train import TrainConfig

GRID_SIZE = 31  # points per side of the input-plane heatmaps
GRID_RANGE = (-0.25, 1.25)  # inputs are 0/1; a margin shows where the boundary runs outside them
# A criterion that never calls a net diverged by the loss-growth rule (a non-finite loss or
# gradient still stops it): used when a run continues from epoch e > 0, whose kernel would take
# the loss at e as the baseline; the rule is applied here against the loss at epoch 0 instead.
_NO_GROWTH_RULE = 1e300


@dataclass
class Snapshot:
    """The displayed net at one epoch.

    theta            : float array of shape (n_params,), the parameters at ``epoch``
    history          : per-epoch statistics since the previous snapshot, each an array of shape
                       (n_new,): keys epoch, loss, accuracy, grad_norm
    layer_grad_norms : list of n_layers floats, the norm of each layer's (W, b) gradient
    grid             : for 2-input problems, the output and every hidden unit's activation on
                       a square grid over the input plane, each of shape (GRID_SIZE**2,)
    """

    epoch: int
    loss: float
    accuracy: float
    grad_norm: float
    status: str  # training, converged (the criterion held at some epoch), diverged, not converged
    finished: bool  # the budget is spent or the net diverged: no further epochs
    epochs_to_converge: int
    first_full_accuracy: int
    theta: np.ndarray
    history: dict
    layer_grad_norms: list
    grid: dict | None = None


MAX_HEATMAPS = 64  # hidden units whose activation over the input plane a snapshot carries


def input_grid() -> np.ndarray:
    """The heatmaps' sample points: array of shape (GRID_SIZE**2, 2), row-major, x1 fastest."""
    ticks = np.linspace(*GRID_RANGE, GRID_SIZE)
    x2, x1 = np.meshgrid(ticks, ticks, indexing="ij")
    return np.column_stack([x1.ravel(), x2.ravel()])


def train_live(config: TrainConfig):
    """Generator of snapshots of the configured net: first at epoch 0, then ``send(n_epochs)``.

    Advancing past ``config.epochs`` (the budget) or past a divergence stops at it; the generator
    then keeps yielding the final snapshot.
    """
    kernels = backend(config.backend)
    problem, spec, criterion = config.data, config.spec, config.criterion
    theta0 = init_population(
        spec, 1, config.seed, parse_init(config.init), first_net=config.net, dtype=config.dtype
    )
    # batch norm's running statistics and dropout's masks (drawn per epoch) are state too
    resumable = config.optimizer == "sgd" and not spec.regularised
    continuing = Criterion(max_error=criterion.max_error, divergence_factor=_NO_GROWTH_RULE)
    keys = streams.net_keys(config.seed, config.net, 1)  # dropout's masks: train's for this net

    def run(theta, n_epochs, rule):
        return kernels.train_population(
            theta, spec, problem.X, problem.Y, config.lr, n_epochs,
            optimizer=config.optimizer_config, criterion=rule, early_stop=False, record_every=1,
            keys=keys,
        )  # fmt: skip

    result = run(theta0, 0, criterion)
    theta, epoch = result.theta, 0
    loss0 = float(result.history.loss[0, 0])
    rows = _rows(result, 0, 0)
    state = {"converged": int(result.epochs_to_converge[0]), "full": -1, "diverged": False}
    state["diverged"] = result.status[0] == Status.DIVERGED
    _track(state, rows)
    last = {k: v[-1:] for k, v in rows.items()}
    while True:
        n_epochs = yield _snapshot(kernels, config, theta, epoch, last, rows, state, result, keys)
        target = min(config.epochs, epoch + max(int(n_epochs or 0), 0))
        if state["diverged"] or target <= epoch:
            rows = {k: v[:0] for k, v in last.items()}
            continue
        if resumable:
            result = run(theta, target - epoch, continuing)
            rows = _rows(result, epoch, 1)
            local = int(result.epochs_to_converge[0])
            grew = np.flatnonzero(rows["loss"] > criterion.divergence_factor * loss0)
            if grew.size:  # the loss-growth rule, against epoch 0 as train applies it
                stop = int(rows["epoch"][grew[0]])
                rows = {k: v[: grew[0] + 1] for k, v in rows.items()}
                result = run(theta, stop - epoch, continuing)
                state["diverged"] = True
            if state["converged"] < 0 and local >= 0 and local + epoch <= int(rows["epoch"][-1]):
                state["converged"] = epoch + local
        else:
            result = run(theta0, target, criterion)
            rows = _rows(result, 0, epoch + 1)
            if state["converged"] < 0 and result.epochs_to_converge[0] >= 0:
                state["converged"] = int(result.epochs_to_converge[0])
        if result.status[0] == Status.DIVERGED:
            state["diverged"] = True
        theta = result.theta
        epoch = int(rows["epoch"][-1]) if rows["epoch"].size else epoch
        _track(state, rows)
        if rows["epoch"].size:
            last = {k: v[-1:] for k, v in rows.items()}


def _rows(result, offset: int, first_local: int) -> dict:
    """History rows of a one-net result from local epoch ``first_local`` on, at global epochs.

    Rows after the net stopped (NaN-filled by the kernel) are dropped.
    """
    h = result.history
    keep = (h.epochs >= first_local) & (h.epochs <= result.epochs_trained[0])
    return {
        "epoch": h.epochs[keep] + offset,
        "loss": h.loss[keep, 0].astype(np.float64),
        "accuracy": h.accuracy[keep, 0].astype(np.float64),
        "grad_norm": h.grad_norm[keep, 0].astype(np.float64),
    }


def _track(state: dict, rows: dict) -> None:
    if state["full"] < 0:
        full = np.flatnonzero(rows["accuracy"] == 1.0)
        if full.size:
            state["full"] = int(rows["epoch"][full[0]])


def _snapshot(kernels, config, theta, epoch, last, rows, state, result, keys) -> Snapshot:
    spec, problem = config.spec, config.data
    if spec.regularised:  # the training-mode gradient, with the masks of the epoch on display
        with np.errstate(all="ignore"):
            grads = regularised.backward(theta, spec, problem.X, problem.Y, keys=keys,
                                         epoch=epoch)  # fmt: skip
    else:
        grads = kernels.backward(theta, spec, problem.X, problem.Y).grad
    layer_norms = [
        float(np.sqrt((W.astype(np.float64) ** 2).sum() + (b.astype(np.float64) ** 2).sum()))
        for W, b in spec.layer_views(grads)
    ]
    grid = None
    if spec.n_inputs == 2:
        points = input_grid().astype(theta.dtype)
        with np.errstate(all="ignore"):
            if spec.regularised:  # the net as it is used: evaluation mode, as train predicts
                trace = regularised.forward(theta, spec, points, training=False,
                                            running_mean=result.running_mean,
                                            running_var=result.running_var)  # fmt: skip
                output, hidden = trace.a[-1], trace.h
            else:
                fwd = kernels.forward(theta, spec, points)
                output, hidden = fwd.a[-1], fwd.a[1:-1]
        grid = {
            "output": output[:, 0, 0].astype(np.float64),
            # the first MAX_HEATMAPS units: 384 of them (64 units in 6 layers) made each frame
            # 2.6 MB and the page 7,000 px tall
            "hidden": [h[:, j, 0].astype(np.float64) for h in hidden
                       for j in range(h.shape[1])][:MAX_HEATMAPS],
        }
    if state["diverged"]:
        status = "diverged"
    elif state["converged"] >= 0:
        status = "converged"
    else:
        status = "not converged" if epoch >= config.epochs else "training"
    return Snapshot(
        epoch=epoch,
        loss=float(last["loss"][0]),
        accuracy=float(last["accuracy"][0]),
        grad_norm=float(last["grad_norm"][0]),
        status=status,
        finished=state["diverged"] or epoch >= config.epochs,
        epochs_to_converge=state["converged"],
        first_full_accuracy=state["full"],
        theta=theta[:, 0].astype(np.float64),
        history=rows,
        layer_grad_norms=layer_norms,
        grid=grid,
    )


# ----------------------------------------------------------------------------------- population


@dataclass
class PopulationRun:
    """Nets ``0 .. n_nets - 1`` of a setup, trained in blocks over the whole epoch budget.

    Arrays fill block by block; ``n_done`` nets are known. ``losses`` has shape
    (n_records, n_nets), the loss at ``record_epochs``; the rest have shape (n_nets,).
    """

    config: TrainConfig
    n_nets: int
    block: int = 128
    n_done: int = 0
    record_epochs: np.ndarray = field(init=False)
    losses: np.ndarray = field(init=False)
    status: np.ndarray = field(init=False)
    epochs_to_converge: np.ndarray = field(init=False)
    epochs_trained: np.ndarray = field(init=False)

    def __post_init__(self):
        self.record_every = max(1, self.config.epochs // 200)
        n_records = len(range(0, self.config.epochs + 1, self.record_every))
        n_records += (self.config.epochs % self.record_every) != 0
        self.losses = np.full((n_records, self.n_nets), np.nan)
        self.status = np.zeros(self.n_nets, dtype=np.int8)
        self.epochs_to_converge = np.full(self.n_nets, -1, dtype=np.int64)
        self.epochs_trained = np.zeros(self.n_nets, dtype=np.int64)
        self.record_epochs = np.zeros(n_records, dtype=np.int64)

    @property
    def done(self) -> bool:
        return self.n_done >= self.n_nets

    def advance(self, abort=None) -> None:
        """Train the next block of nets over the whole budget; nothing is kept where ``abort``
        (an int8 array of shape (1,), the kernel's flag) is raised on the way."""
        c = self.config
        first, count = self.n_done, min(self.block, self.n_nets - self.n_done)
        spec, problem = c.spec, c.data
        theta = init_population(spec, count, c.seed, parse_init(c.init), first_net=first,
                                dtype=c.dtype)  # fmt: skip
        r = backend(c.backend).train_population(
            theta, spec, problem.X, problem.Y, c.lr, c.epochs, optimizer=c.optimizer_config,
            criterion=c.criterion, early_stop=False, record_every=self.record_every,
            keys=streams.net_keys(c.seed, first, count),  # each net's masks, as train draws them
            abort=abort,
        )  # fmt: skip
        if abort is not None and abort[0]:
            return
        nets = slice(first, first + count)
        self.record_epochs = r.history.epochs
        self.losses[:, nets] = r.history.loss
        self.status[nets] = r.status
        self.epochs_to_converge[nets] = r.epochs_to_converge
        self.epochs_trained[nets] = r.epochs_trained
        self.n_done += count

    def summary(self, epoch: int, n_stalled: int = 40) -> dict:
        """The population at ``epoch``, over the nets trained so far (plain values for JSON).

        converged : fraction converged by each recorded epoch up to ``epoch``
        histogram : counts of log10(loss) at the last record not after ``epoch``
        stalled   : nets neither converged nor diverged by ``epoch`` whose loss fell by less than
                    STALL_DROP over the second half of the epochs so far, highest loss first;
                    judged from epoch ``stalled_from`` on (none before: at epoch 127 of the
                    tutorial's 10,000, 998 of 1,000 nets sat on the early plateau that 98% of
                    them leave by epoch 1,000)
        """
        n = self.n_done
        upto = self.record_epochs <= epoch
        summary = {"n_nets": self.n_nets, "n_done": n, "epoch": int(epoch)}
        if n == 0 or not upto.any():
            return summary
        etc = self.epochs_to_converge[:n]
        epochs = self.record_epochs[upto]
        converged = [float(((etc >= 0) & (etc <= e)).mean()) for e in epochs]
        diverged = (self.status[:n] == Status.DIVERGED) & (self.epochs_trained[:n] <= epoch)
        now = int(np.flatnonzero(upto)[-1])
        half = int(np.searchsorted(self.record_epochs, self.record_epochs[now] // 2, "right")) - 1
        loss_now, loss_half = self.losses[now, :n], self.losses[max(half, 0), :n]
        open_ = ~diverged & ~((etc >= 0) & (etc <= epoch))
        stalled_from = stall_judged_from(self.config.epochs)
        stalled = open_ & (loss_now > (1 - STALL_DROP) * loss_half) & (now > 0)
        stalled &= epoch >= stalled_from
        order = np.flatnonzero(stalled)
        order = order[np.argsort(-loss_now[order], kind="stable")][:n_stalled]
        finite = np.log10(loss_now[np.isfinite(loss_now) & (loss_now > 0)])
        counts, edges = np.histogram(np.clip(finite, *HIST_RANGE), bins=HIST_BINS, range=HIST_RANGE)
        summary.update(
            epochs=epochs.tolist(),
            converged=converged,
            converged_now=converged[-1],
            diverged=int(diverged.sum()),
            n_stalled=int(stalled.sum()),
            stalled_from=stalled_from,
            stalled=[{"net": int(k), "loss": float(loss_now[k])} for k in order],
            # the histogram's epoch: the last record, up to a record's interval before `epoch`
            histogram={"edges": edges.tolist(), "counts": counts.tolist(),
                       "nonfinite": int(n - finite.size),
                       "epoch": int(self.record_epochs[now])},
        )  # fmt: skip
        return summary


STALL_DROP = 0.1  # less than a 10% fall of the loss over the second half of the run: stalled
STALL_SHARE, STALL_EPOCHS = 10, 1_000  # judged from a tenth of the budget, or 1,000 epochs on


def stall_judged_from(budget: int) -> int:
    """The first epoch at which a net is said to stall: a tenth of the budget, at least 1,000
    epochs (or the whole budget, where shorter)."""
    return min(budget, max(budget // STALL_SHARE, STALL_EPOCHS))
HIST_RANGE = (-6.0, 1.0)  # log10 of the loss; values outside are counted in the end bins
HIST_BINS = 28
