"""The live page's training: the displayed net is the net of ``backprop-bench train``, epoch for
epoch, and the page's settings are validated with messages that name the fix."""

import shlex

import numpy as np
import pytest
from backprop_bench.bench.cli import _train_config, build_parser
from backprop_bench.bench.live_session import (
    MAX_BLOCK,
    MIN_BLOCK,
    parse_setup,
    population_block,
    setup_query,
    train_command,
)
from backprop_bench.bench.live_train import PopulationRun, stall_judged_from, train_live
from backprop_bench.bench.train import TrainConfig, run_train
from backprop_bench.kernels import Status

# Irregular advances: 1-epoch steps, chunks that straddle convergence, one past the budget.
ADVANCES = (1, 1, 7, 100, 250, 300, 50)


def live_history(config):
    trainer = train_live(config)
    snap = next(trainer)
    rows = [(snap.epoch, snap.loss, snap.accuracy, snap.grad_norm)]
    for n in ADVANCES:
        snap = trainer.send(n)
        h = snap.history
        rows += zip(h["epoch"].tolist(), h["loss"].tolist(), h["accuracy"].tolist(),
                    h["grad_norm"].tolist(), strict=True)  # fmt: skip
        assert (snap.loss, snap.epoch) == (rows[-1][1], rows[-1][0])
    return rows, snap


def train_history(config):
    run = run_train(config)
    return [(r["epoch"], r["loss"], r["accuracy"], r["grad_norm"]) for r in run.history], run


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the tutorial's net: sgd, continued from its parameters
        {"optimizer": "momentum", "lr": 0.1, "seed": 3},  # trained again from epoch 0
        {"optimizer": "adam", "lr": 0.05, "activation": "tanh", "hidden": (3, 2)},
        {"lr": 40.0},  # diverges at once (non-finite gradient or loss growth)
        # the loss-growth rule at epoch 12, part way through a chunk of 100
        {"lr": 30.0, "seed": 1, "init": "normal:1"},
        {"problem": "parity3", "hidden": (5,), "net": 17, "tolerance": 0.3},
        # batch norm and dropout: trained again from epoch 0 (running statistics, masks)
        {"batchnorm": True, "hidden": (4,), "seed": 2},
        {"dropout": 0.2, "hidden": (8,), "net": 5},
        {"weight_decay": 0.01, "optimizer": "adamw", "lr": 0.05},
        {"weight_decay": 0.001},  # sgd with weight decay: continued from its parameters
    ],
)
def test_displayed_net_is_the_net_of_train_at_every_epoch(settings):
    config = TrainConfig(epochs=600, every=1, backend="numpy", **settings)
    live, snap = live_history(config)
    cli, run = train_history(config)
    assert live == cli  # bit for bit: the same kernel on the same parameters
    outcome = run.outcome
    assert snap.epochs_to_converge == outcome["epochs_to_converge"]
    assert snap.first_full_accuracy == outcome["first_full_accuracy"]
    assert snap.status == outcome["status"].replace("_", " ")
    assert snap.finished


# cold numba compiles (10-25 s on a clean checkout): an integration test, run by
# `pytest -m slow` and CI, so that plain pytest stays under 5 minutes
@pytest.mark.slow
def test_numba_displayed_net_matches_train_on_numba():
    config = TrainConfig(epochs=400, every=1, optimizer="adam", lr=0.05)
    assert live_history(config)[0] == train_history(config)[0]


def test_snapshot_holds_weights_layer_gradients_and_heatmaps():
    config = TrainConfig(hidden=(3, 2), epochs=50, backend="numpy")
    trainer = train_live(config)
    next(trainer)
    snap = trainer.send(50)
    run = run_train(config)
    assert snap.theta.shape == (config.spec.n_params,)
    assert len(snap.layer_grad_norms) == 3 and all(v > 0 for v in snap.layer_grad_norms)
    total = np.sqrt(sum(v**2 for v in snap.layer_grad_norms))
    assert total == pytest.approx(run.outcome["final_grad_norm"], rel=1e-12)
    assert len(snap.grid["hidden"]) == 5 and snap.grid["output"].min() >= 0
    assert train_live(TrainConfig(problem="parity3", backend="numpy")).__next__().grid is None


def test_population_summary_counts_what_train_population_reports():
    config = TrainConfig(epochs=1000, backend="numpy", seed=2)
    population = PopulationRun(config, 40, block=16)
    while not population.done:
        population.advance()
    for net in (0, 27):  # a population's net k is train's --net k
        assert population.epochs_to_converge[net] == run_train(
            TrainConfig(epochs=1000, backend="numpy", seed=2, net=net)
        ).outcome["epochs_to_converge"]
    summary = population.summary(1000)
    etc = population.epochs_to_converge
    assert summary["converged_now"] == ((etc >= 0) & (etc <= 1000)).mean()
    assert summary["converged"] == sorted(summary["converged"])  # a fraction that only grows
    assert sum(summary["histogram"]["counts"]) + summary["histogram"]["nonfinite"] == 40
    for stalled in summary["stalled"]:
        assert population.status[stalled["net"]] != Status.DIVERGED
        assert not 0 <= etc[stalled["net"]] <= 1000
    half = population.summary(500)
    assert half["epoch"] == 500 and half["epochs"][-1] <= 500
    # the histogram says which record it counts (up to a record's interval before the epoch
    # on display, where the page's caption said "at the displayed epoch")
    assert half["histogram"]["epoch"] == half["epochs"][-1]
    assert population.summary(501)["histogram"]["epoch"] == half["epochs"][-1] < 501


def test_stalls_are_judged_from_a_tenth_of_the_budget_or_1000_epochs():
    # at epoch 127 of the tutorial's 10,000, 998 of 1,000 nets sat on the early plateau that
    # 98% of them leave by epoch 1,000: the page listed them all as stalled
    config = TrainConfig(epochs=3000, backend="numpy")
    population = PopulationRun(config, 64, block=64)
    population.advance()
    early = population.summary(127)
    assert early["stalled_from"] == 1000 and early["n_stalled"] == 0 and early["stalled"] == []
    late = population.summary(3000)
    etc = population.epochs_to_converge
    assert late["n_stalled"] == len(late["stalled"]) <= (etc < 0).sum()
    assert [stall_judged_from(b) for b in (500, 3000, 10_000, 100_000)] == [500, 1000, 1000,
                                                                            10_000]  # fmt: skip


def test_a_population_block_is_sized_by_its_work():
    small = TrainConfig(epochs=10_000)
    wide = TrainConfig(epochs=10_000, hidden=(64,) * 6)
    assert population_block(small) == 128  # the tutorial's net: about 0.07 s a block
    assert population_block(wide) == MIN_BLOCK  # 21,057 parameters: 7.5 s a net
    assert population_block(TrainConfig(epochs=10)) == MAX_BLOCK


def test_an_aborted_population_block_keeps_nothing():
    population = PopulationRun(TrainConfig(epochs=500, backend="numpy"), 16, block=8)
    population.advance(abort=np.ones(1, dtype=np.int8))
    assert population.n_done == 0 and np.isnan(population.losses).all()


def test_the_page_shows_the_command_that_trains_the_same_net():
    config, n_nets = parse_setup(
        {"problem": "parity3", "hidden": "5,3", "lr": "0.25", "optimizer": "adam", "seed": "4",
         "net": "9", "tolerance": "0.3", "init": "normal:1", "epochs": "777", "nets": "12"},
        "numpy",
    )  # fmt: skip
    assert n_nets == 12 and config.hidden == (5, 3) and config.lr == 0.25
    argv = shlex.split(train_command(config))[1:]
    assert _train_config(build_parser().parse_args(argv)) == config
    assert parse_setup(setup_query(config, n_nets), "numpy") == (config, n_nets)
    regularised, _ = parse_setup(
        {"hidden": "6", "batchnorm": "on", "dropout": "0.1", "weight_decay": "0.001"}, "numpy"
    )
    command = train_command(regularised)
    assert "--batchnorm --dropout 0.1 --weight-decay 0.001" in command
    argv = shlex.split(command)[1:]
    assert _train_config(build_parser().parse_args(argv)) == regularised
    assert parse_setup(setup_query(regularised, 5), "numpy") == (regularised, 5)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"lr": "abc"}, "learning rate must be a number such as 0.5, got 'abc'"),
        ({"lr": "-1"}, "--lr must be a positive finite number"),
        ({"lr": "nan"}, "learning rate must be a finite number"),
        ({"hidden": "1000000"}, "hidden widths must be between 1 and 64"),
        ({"hidden": "4,x"}, "each hidden width must be a number"),
        ({"seed": "-1"}, "seed must be a non-negative integer, got -1"),
        ({"nets": "0"}, "nets (the population) must be between 1 and 10,000"),
        ({"epochs": "10000000"}, "epochs must be between 0 and 100,000"),
        ({"problem": "parity12"}, "the page draws problems of up to 8 inputs"),
        ({"activation": "gelu"}, "unknown activation 'gelu'"),
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"colour": "red"}, "weight_decay, nets"),  # every setting the page takes is named
        ({"batchnorm": "maybe"}, "batchnorm must be on or off, got 'maybe'"),
        ({"dropout": "1.5"}, "--dropout"),
        ({"weight_decay": "x"}, "weight decay must be a number such as 0.5, got 'x'"),
        ({"batchnorm": "on", "hidden": "none"}, "hidden layer"),
        # train takes --tolerance none beside another rule; the page has no other rule
        ({"tolerance": "None"}, "no rule for converging: give a number such as 0.4"),
    ],
)
def test_bad_settings_get_a_message_that_names_the_fix(setting, message):
    with pytest.raises(ValueError) as error:
        parse_setup(setting, "numpy")
    assert message in str(error.value)


def test_a_url_with_one_bad_setting_keeps_the_others():
    from backprop_bench.bench.live_session import Session

    session = Session({"nets": "50", "lr": "abc", "hidden": "3"}, "numpy")
    session.close()
    assert session.n_nets == 50 and session.config.hidden == (3,) and session.config.lr == 0.5
    assert session.first_error.endswith("(the rest of the setup is shown, lr at its default)")


def test_a_url_with_two_bad_settings_keeps_the_others():
    from backprop_bench.bench.live_session import Session

    session = Session({"nets": "50", "lr": "abc", "epochs": "xyz", "colour": "red"}, "numpy")
    session.close()
    assert session.n_nets == 50 and session.config.epochs == 10_000
    assert session.first_error.endswith(
        "(the rest of the setup is shown, lr, epochs at their defaults; colour left out)")


def test_a_snapshot_carries_at_most_64_hidden_units_heatmaps():
    # 384 of them (64 units in 6 layers) made each frame 2.6 MB (an outside review)
    from backprop_bench.bench.live_train import MAX_HEATMAPS

    snap = next(train_live(TrainConfig(hidden=(64, 64, 64), backend="numpy")))
    assert MAX_HEATMAPS == 64 and len(snap.grid["hidden"]) == MAX_HEATMAPS
