"""``backprop-bench train``: the tutorial's live trainer, as a config, a pure function and a result.

``TrainConfig`` holds what the user asked for and validates all of it when it is made, so a bad
flag fails before any work. ``run_train`` trains one seeded net (net ``net`` of ``seed``, the same
net a population of that seed would hold) and returns everything the CLI shows; it prints nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from backprop_bench.kernels import (
    BACKENDS,
    Criterion,
    NetSpec,
    Optimizer,
    Status,
    backend,
    get_problem,
    init_population,
    parse_init,
    regularised,
    streams,
    values,
)
from backprop_bench.kernels.regularised_training import is_needed
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS, LOSSES, REDUCTIONS
from backprop_bench.kernels.training import DECISION_MARGIN, OPTIMIZERS

from . import schedule_options, stopping

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``hidden`` gives hidden widths (``()`` for none); ``layers``, when given,
    is the whole net including the problem's input and output widths and overrides ``hidden``."""

    problem: str = "xor"
    hidden: tuple[int, ...] = (4,)
    layers: tuple[int, ...] | None = None
    activation: str = "sigmoid"
    loss: str = "bce"
    reduction: str = "mean"
    optimizer: str = "sgd"
    momentum: float = 0.9
    lr: float = 0.5
    init: str = "tutorial"
    epochs: int = 10_000
    seed: int = 0
    net: int = 0
    backend: str = "numba"
    dtype: str = "float64"
    every: int = 1000
    tolerance: float | None = 0.4
    early_stop: bool = False
    loss_below: float | None = None
    rms_below: float | None = None
    tss_below: float | None = None
    shortcut: bool = False
    batch_size: int | None = None  # None: full batch; 1: per pattern; k: minibatches of k
    batchnorm: bool = False
    dropout: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self):
        # Every value checked by type and range and names normalised first; then every derived
        # object is built once, each raising a one-line ValueError naming the fix.
        def setting(field, value):
            object.__setattr__(self, field, value)

        setting("problem", get_problem(values.name("problem", self.problem)).name)
        width = lambda w: values.integer("layer widths", w, 0, values.MAX_WIDTH)  # noqa: E731
        if isinstance(self.hidden, int):
            setting("hidden", (self.hidden,))
        setting("hidden", tuple(width(w) for w in self.hidden))
        if self.layers is not None:
            setting("layers", tuple(width(w) for w in self.layers))
        setting("activation", values.name("activation", self.activation, HIDDEN_ACTIVATIONS))
        setting("loss", values.name("loss", self.loss, LOSSES))
        setting("reduction", values.name("reduction", self.reduction, REDUCTIONS))
        setting("optimizer", values.name("optimizer", self.optimizer, OPTIMIZERS))
        setting("momentum", values.real("momentum", self.momentum, 0.0, 1.0, low_open=False,
                                        high_open=True))  # fmt: skip
        setting("lr", values.real("--lr", self.lr))
        if not isinstance(self.init, str):
            raise ValueError(f"--init must be a scheme name such as tutorial, got {self.init!r}")
        setting("init", str(parse_init(self.init)))
        setting("epochs", values.integer("--epochs", self.epochs))
        setting("seed", values.integer("--seed", self.seed))
        setting("net", values.integer("--net", self.net))
        setting("every", values.integer("--every", self.every, 1))
        setting("backend", values.name("backend", self.backend, BACKENDS))
        setting("dtype", values.name("dtype", self.dtype, DTYPES))
        if isinstance(self.tolerance, str) and self.tolerance.strip().lower() == "none":
            setting("tolerance", None)
        if self.tolerance is not None:
            setting("tolerance", values.tolerance("--tolerance", self.tolerance))
        for rule in ("loss_below", "rms_below", "tss_below"):
            if getattr(self, rule) is not None:
                setting(rule, values.real("--" + rule.replace("_", "-"), getattr(self, rule)))
        setting("early_stop", values.flag("--early-stop", self.early_stop))
        setting("shortcut", schedule_options.shortcut(self.shortcut))
        setting("batch_size", schedule_options.batch_size(self.batch_size))
        setting("batchnorm", values.flag("--batchnorm", self.batchnorm))
        setting("dropout", values.real("--dropout", self.dropout, 0.0, 1.0, low_open=False,
                                       high_open=True))  # fmt: skip
        setting("weight_decay", values.real("--weight-decay", self.weight_decay, 0.0,
                                            low_open=False))  # fmt: skip
        if self.dtype == "float32" and self.lr > float(np.finfo(np.float32).max):
            raise ValueError(f"--lr {self.lr:g} is beyond float32's range; use --dtype float64")
        self.spec  # noqa: B018
        self.optimizer_config  # noqa: B018
        self.criterion  # noqa: B018
        # what the regularised loop does not implement, refused here as sweep refuses it (train
        # reached the kernel's own check, which raised through a 29-line traceback)
        if is_needed(self.spec, self.optimizer_config):
            what = "batch norm, dropout, weight decay and adamw"
            if self.batch_size is not None:
                raise ValueError(f"{what} train with full-batch updates only; leave --batch-size "
                                 "at full")  # fmt: skip
            if self.rms_below is not None or self.tss_below is not None:
                raise ValueError(f"the RMS and TSS stopping rules are not available with {what}; "
                                 "use --tolerance or --loss-below")  # fmt: skip

    @property
    def data(self):
        return get_problem(self.problem)

    @property
    def spec(self) -> NetSpec:
        problem = self.data
        if self.layers is None:
            layers = (problem.n_inputs, *self.hidden, problem.n_outputs)
        else:
            layers = tuple(self.layers)
            if len(layers) >= 1 and layers[0] != problem.n_inputs:
                raise ValueError(
                    f"layers {layers} take {layers[0]} inputs but problem {problem.name} has "
                    f"{problem.n_inputs}; start --layers with {problem.n_inputs} or use --hidden"
                )
            if len(layers) >= 2 and layers[-1] != problem.n_outputs:
                raise ValueError(
                    f"layers {layers} give {layers[-1]} outputs but problem {problem.name} has "
                    f"{problem.n_outputs}; end --layers with {problem.n_outputs} or use --hidden"
                )
        if self.shortcut and len(layers) < 3:
            raise ValueError("--shortcut needs a hidden layer (e.g. --hidden 1 or --layers 2,1,1)")
        return NetSpec(layers, self.activation, "sigmoid", self.loss, self.reduction,
                       self.shortcut, batchnorm=self.batchnorm, dropout=self.dropout)  # fmt: skip

    @property
    def optimizer_config(self) -> Optimizer:
        return Optimizer(self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay)

    @property
    def criterion(self) -> Criterion:
        return stopping.criterion(self.tolerance, self.loss_below, self.rms_below,
                                  self.tss_below)  # fmt: skip


@dataclass
class TrainRun:
    """What a training run produced (all plain Python values, ready for JSON).

    history     : one dict per recorded epoch: epoch, loss, accuracy, grad_norm
    predictions : one dict per sample: input, target, output
    outcome     : status, epochs_to_converge, first_full_accuracy, final statistics
    """

    config: dict
    spec: str
    n_params: int
    history: list[dict]
    predictions: list[dict]
    outcome: dict


def run_train(config: TrainConfig, abort=None) -> TrainRun:
    """Train the configured net and return its history, predictions and outcome.

    ``abort`` is ``train_population``'s flag (see bench/interrupt.py): an aborted run's result
    is incomplete and the caller discards it.
    """
    kernels = backend(config.backend)
    problem, spec = config.data, config.spec
    theta = init_population(
        spec, 1, config.seed, parse_init(config.init), first_net=config.net, dtype=config.dtype
    )
    result = kernels.train_population(
        theta,
        spec,
        problem.X,
        problem.Y,
        config.lr,
        config.epochs,
        optimizer=config.optimizer_config,
        criterion=config.criterion,
        early_stop=config.early_stop,
        record_every=config.every,
        abort=abort,
        batch_size=config.batch_size,
        keys=streams.net_keys(config.seed, config.net, 1),  # orders and masks: this net's
    )
    history = [
        {
            "epoch": int(epoch),
            "loss": float(result.history.loss[i, 0]),
            "accuracy": float(result.history.accuracy[i, 0]),
            "grad_norm": float(result.history.grad_norm[i, 0]),
        }
        for i, epoch in enumerate(result.history.epochs)
        if epoch <= result.epochs_trained[0]
    ]
    stopped = int(result.epochs_trained[0])
    if history and history[-1]["epoch"] < stopped:
        # a net that stopped between records (--early-stop, or a divergence) ends its table
        # with the epoch it stopped at, as one that ran its budget does
        history.append({"epoch": stopped, "loss": float(result.final_loss[0]),
                        "accuracy": float(result.final_accuracy[0]),
                        "grad_norm": float(result.final_grad_norm[0])})  # fmt: skip
    with np.errstate(all="ignore"):  # a diverged net's outputs overflow: 0 or 1 is the answer
        if spec.regularised:  # the net as it is used: evaluation mode
            fwd = regularised.forward(result.theta, spec, problem.X, training=False,
                                      running_mean=result.running_mean,
                                      running_var=result.running_var)  # fmt: skip
        else:
            fwd = kernels.forward(result.theta, spec, problem.X)
    outputs, logits = fwd.a[-1][:, :, 0], fwd.z[-1][:, :, 0]
    predictions = [
        {
            "input": x.tolist(),
            "target": y.tolist(),
            "output": [float(v) for v in out],
            # the class the net gives: None while the logit is within DECISION_MARGIN of 0
            "class": [1 if v > DECISION_MARGIN else 0 if v < -DECISION_MARGIN else None for v in z],
        }
        for x, y, out, z in zip(problem.X, problem.Y, outputs, logits, strict=True)
    ]
    outcome = {
        "status": Status(int(result.status[0])).name.lower(),
        "criterion": config.criterion.describe(),
        "epochs_to_converge": int(result.epochs_to_converge[0]),
        "first_full_accuracy": int(result.first_full_accuracy[0]),
        "epochs_trained": int(result.epochs_trained[0]),
        "final_loss": float(result.final_loss[0]),
        "final_accuracy": float(result.final_accuracy[0]),
        "final_grad_norm": float(result.final_grad_norm[0]),
    }
    config_dict = asdict(config)
    config_dict["layers"] = list(spec.layers)
    config_dict["hidden"] = list(spec.layers[1:-1])
    return TrainRun(config_dict, spec.describe(), spec.n_params, history, predictions, outcome)
