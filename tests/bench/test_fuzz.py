"""Property-based tests of the input contract: any flags, TOML file or API arguments end in a
result, or in one line on stderr and status 2 (from the API: a ValueError or TypeError that
names the argument); never a traceback, never a file of the user's changed.

Hypothesis generates values of every kind (numbers in and out of range, NaN, huge integers,
bools, text in any case, lists, nested tables) for every setting. The work itself is replaced by
a stand-in where a generated config could ask for hours of training: what is fuzzed here is the
boundary, which must have refused everything the work cannot take.
"""

import json
import string

import numpy as np
import pytest
from backprop_bench.bench import cli
from backprop_bench.bench.sweep_config import (
    FIELD_NAMES,
    SweepConfig,
    config_from_dict,
    make_config,
)
from backprop_bench.kernels import NetSpec, Optimizer, backend, get_problem, init_population
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The fixtures used (tmp_path, capsys) are reset by hand inside each example.
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

NAMES = [
    "xor",
    "AND",
    "parity3",
    "parity99",
    "tutorial",
    "Xavier-Normal",
    "uniform:1",
    "uniform:-2",
    "normal:1e400",
    "zeros",
    "sigmoid",
    "TANH",
    "relu",
    "leaky-relu",
    "bce",
    "mse",
    "sgd",
    "Momentum",
    "adam",
    "numba",
    "numpy",
    "float32",
    "mean",
    "sum",
    "",
    " ",
    "none",
    "a/b",
    ".",
]
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.001, max_value=0.6),
    st.booleans(),
    st.sampled_from(NAMES),
    st.text(string.printable, max_size=6),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(NAMES), scalars, max_size=2),
)
settings_dicts = st.dictionaries(
    st.sampled_from([*FIELD_NAMES, "nets", "learning_rate"]), values, max_size=5
)


def _names_the_key(message: str, keys) -> bool:
    spelled = {k for key in keys for k in (key, key.replace("_", "-"))}
    return any(k in message for k in spelled)


@FUZZ
@given(settings_dicts)
def test_any_sweep_settings_give_a_config_or_a_value_error_naming_the_key(data):
    try:
        config = make_config(data, {})
    except ValueError as error:
        message = str(error)
        assert "\n" not in message
        assert _names_the_key(message, data), message
        return
    assert isinstance(config, SweepConfig)
    # what is accepted is stored and read back as the same sweep: a folder never becomes
    # unusable through a config that was accepted once
    stored = json.loads(json.dumps(config.to_dict()))
    assert config_from_dict(stored).fingerprint() == config.fingerprint()


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


class ReachedTheWork(Exception):
    pass


def _stand_in(*args, **kwargs):
    raise ReachedTheWork


@FUZZ
@given(settings_dicts, st.sampled_from(["new", "sentinel", "file"]))
def test_any_toml_file_gives_a_sweep_or_one_line_and_status_2(
    tmp_path_factory, capsys, monkeypatch, data, out_kind
):
    folder = tmp_path_factory.mktemp("toml")
    path = folder / "sweep.toml"
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in data.items())
    path.write_text(text)
    out = folder / "out"
    if out_kind == "sentinel":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif out_kind == "file":
        out.write_text("mine")
    monkeypatch.setattr(cli, "run_sweep", _stand_in)
    try:
        code = cli.main(["sweep", "--config", str(path), "--out", str(out)])
    except ReachedTheWork:
        code = None
    err = capsys.readouterr().err
    assert path.read_text() == text  # the user's file is never touched
    if out_kind == "sentinel":
        assert [p.name for p in out.iterdir()] == ["notes.txt"] and code == 2
    if out_kind == "file":
        assert out.read_text() == "mine" and code == 2
    if code is None:
        assert err == "" and [p.name for p in out.iterdir()] == ["sweep.json"]
    else:
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert out_kind != "new" or not out.exists()


flag_values = st.one_of(
    st.sampled_from(NAMES),
    st.integers(min_value=-3, max_value=40).map(str),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0.5", "1e-3", "1e308", "4,4", "2,8,1", "3,x", "", ",", "-1"]),
)
TRAIN_FLAGS = [
    "--problem",
    "--hidden",
    "--layers",
    "--activation",
    "--loss",
    "--reduction",
    "--optimizer",
    "--momentum",
    "--lr",
    "--init",
    "--epochs",
    "--seed",
    "--net",
    "--backend",
    "--dtype",
    "--every",
    "--tolerance",
    "--bogus",
]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(TRAIN_FLAGS), flag_values), max_size=4))
def test_any_train_flags_give_a_run_or_one_line_and_status_2(capsys, flags):
    argv = ["train", "--backend", "numpy", "--epochs", "20", "--every", "5"]
    for flag, value in flags:
        argv += [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
    config = {}

    def small_run(run_train, c):
        config["value"] = c
        if c.epochs > 50 or c.spec.n_params > 500 or c.backend == "numba":
            raise ReachedTheWork  # valid, but more work than a fuzzing example should do
        return run_train(c)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "interruptible", small_run)
        try:
            code = cli.main(argv)
        except ReachedTheWork:
            code = 0
    out, err = capsys.readouterr()
    if code == 0:
        assert err == "" and "value" in config
    else:
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


# ---------------------------------------------------------------------------------- the API

objects = st.one_of(
    scalars,
    st.none(),
    st.lists(st.integers(-2, 6), max_size=4).map(tuple),
    st.just(np.int64(3)),
    st.just(np.float64(0.5)),
    st.just([2, 4, 1]),
)


@settings(max_examples=60)
@given(objects, st.sampled_from(["sigmoid", "tanh", "relu", "Relu", 3]))
def test_netspec_takes_widths_or_names_the_argument(layers, activation):
    try:
        spec = NetSpec(layers, activation)
    except (ValueError, TypeError) as error:
        assert "layer" in str(error) or "activation" in str(error)
        return
    assert all(isinstance(w, int) and w >= 1 for w in spec.layers) and len(spec.layers) >= 2


@settings(max_examples=60)
@given(
    objects, objects, objects, objects, st.sampled_from([np.float64, np.float32, "float16", None])
)
def test_init_population_gives_weights_or_names_the_argument(n_nets, seed, init, first_net, dtype):
    spec = NetSpec((2, 3, 1))
    try:
        if isinstance(n_nets, int) and n_nets > 10_000:
            n_nets = 10_000
        theta = init_population(spec, n_nets, seed, init, first_net=first_net, dtype=dtype)
    except (ValueError, TypeError) as error:
        names = ("n_nets", "seed", "init", "first_net", "dtype", "scale")
        assert any(name in str(error) for name in names), error
        return
    assert theta.shape == (spec.n_params, n_nets) and np.isfinite(theta).all()


@settings(max_examples=40)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.just(-1.0),
        st.just(1e308),
        st.just("0.5"),
    ),
    st.one_of(st.integers(-2, 30), st.just(2**70), st.just(1.5), st.just(True)),
    st.one_of(st.integers(-1, 7), st.just("5")),
    st.sampled_from([Optimizer("adam"), "adam", None, Optimizer("momentum", momentum=0.5)]),
    st.sampled_from([np.float64, np.float32]),
    st.sampled_from([None, np.zeros(1, np.int8), np.zeros(2)]),
)
def test_train_population_trains_or_names_the_argument(
    lr, n_epochs, record_every, optimizer, dtype, abort
):
    spec, xor = NetSpec((2, 3, 1)), get_problem("xor")
    theta = init_population(spec, 4, 0, dtype=dtype)
    names = ("learning rate", "n_epochs", "record_every", "optimizer", "abort")
    for name in ("numpy",):
        try:
            result = backend(name).train_population(
                theta,
                spec,
                xor.X,
                xor.Y,
                lr,
                n_epochs,
                record_every=record_every,
                optimizer=optimizer,
                abort=abort,
            )
        except (ValueError, TypeError) as error:
            assert any(n in str(error) for n in names), error
            continue
        assert result.status.shape == (4,)
