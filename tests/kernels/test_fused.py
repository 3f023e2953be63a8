"""The fused pass (kernels/numba_fused.py) against the lane loops it replaces for small nets.

The pass writes out the lane kernel's arithmetic operation for operation (every fused
multiply-add where the lane loops have one, the same order of every sum), so a training run
must give the same bits whichever of the two runs its epochs: parameters, statuses, epochs,
final values and history. The lane loops are in turn held to the NumPy backend by
test_training.py. The oracle here is exact: any difference, of an ulp or in the sign of a zero,
fails.
"""

import numba
import numba.extending
import numpy as np
import pytest
from backprop_bench.kernels import (
    Criterion,
    NetSpec,
    Optimizer,
    get_problem,
    init_population,
    numba_backend,
    numba_fused,
)

XOR = get_problem("xor")
PARITY3 = get_problem("parity3")
# learning rates from crawling to diverging, so that every decision (converged, diverged, not
# converged, early stop, full accuracy) happens somewhere in the population
RATES = np.array([0.05, 0.5, 2.0, 8.0, 40.0, 400.0])
FIELDS = ("status", "epochs_to_converge", "first_full_accuracy", "epochs_trained", "final_loss",
          "final_accuracy", "final_grad_norm")  # fmt: skip


def two_outputs(n_inputs=3):
    rng = np.random.default_rng(5)
    X = (rng.random((6, n_inputs)) < 0.5).astype(float)
    return X, np.stack([X.sum(axis=1) % 2, X[:, 0]], axis=1)


def train(spec, X, Y, n_nets, epochs, fused, monkeypatch, dtype=np.float64, **kw):
    """train_population with the fused pass (also for jobs this small), or without it."""
    monkeypatch.setattr(numba_backend, "FUSED_MIN_WORK", 0)
    if not fused:
        monkeypatch.setattr(numba_backend, "fused_key", lambda *args: "")
    theta = init_population(spec, n_nets, seed=11, dtype=dtype)
    lr = np.resize(RATES, n_nets).astype(dtype)
    result = numba_backend.train_population(theta, spec, X, Y, lr, epochs, **kw)
    monkeypatch.undo()
    return result


def bits(array):
    array = np.ascontiguousarray(array)
    return array.view(np.uint8) if array.dtype.kind == "f" else array


def assert_same_bits(fused, lanes):
    np.testing.assert_array_equal(bits(fused.theta), bits(lanes.theta))
    for name in FIELDS:
        np.testing.assert_array_equal(bits(getattr(fused, name)), bits(getattr(lanes, name)),
                                      err_msg=name)  # fmt: skip
    assert (fused.history is None) == (lanes.history is None)
    if fused.history is not None:
        for name in ("loss", "accuracy", "grad_norm", "param_norm"):
            got, want = getattr(fused.history, name), getattr(lanes.history, name)
            np.testing.assert_array_equal(bits(got), bits(want), err_msg=name)


CASES = {
    # spec, data, optimizer, criterion, dtype, early stop, record every
    "sigmoid bce sgd": (NetSpec((2, 4, 1)), XOR, "sgd", Criterion(), np.float64, True, 0),
    "tanh mse momentum f32, loss rule": (
        NetSpec((2, 4, 1), "tanh", loss="mse"), XOR, "momentum", Criterion(loss_below=0.02),
        np.float32, True, 25),
    "relu bce adam, rms rule": (
        NetSpec((2, 5, 1), "relu"), XOR, "adam", Criterion(rms_below=0.1), np.float64, False,
        0),
    "leaky parity3 sgd f32, recorded": (
        NetSpec((3, 6, 1), "leaky_relu"), PARITY3, "sgd", Criterion(max_error=0.2), np.float32,
        True, 10),
    "two hidden layers, two outputs": (
        NetSpec((3, 5, 4, 2)), None, "sgd", Criterion(tss_below=0.05), np.float64, True, 0),
    # 256 nets a chunk in rows of 264 lanes, a sample's 16 rows 528 cache lines: Z, A, D get
    # a 17th row (_unit_rows), and the loss rule reads the output logits the pass writes into Z
    # every epoch
    "padded sample rows, loss rule": (
        NetSpec((2, 16, 1)), XOR, "sgd", Criterion(loss_below=0.05), np.float64, True, 0),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_the_fused_pass_trains_to_the_same_bits_as_the_lane_loops(case, monkeypatch):
    spec, problem, optimizer, criterion, dtype, early_stop, record_every = CASES[case]
    X, Y = two_outputs() if problem is None else (problem.X, problem.Y)
    assert numba_fused.fused_key(spec.layers, X.shape[0], 0, 0, True)  # the pass does run
    kw = dict(optimizer=Optimizer(optimizer), criterion=criterion, early_stop=early_stop,
              record_every=record_every)  # fmt: skip
    # 70 nets: a partial last vector of lanes, and nets leaving their chunk as they stop
    fused = train(spec, X, Y, 70, 400, True, monkeypatch, dtype, **kw)
    lanes = train(spec, X, Y, 70, 400, False, monkeypatch, dtype, **kw)
    assert len(set(fused.status.tolist())) >= 2  # the decisions were exercised
    assert_same_bits(fused, lanes)


@pytest.mark.parametrize("activation, dtype", [("tanh", np.float64), ("relu", np.float64),
                                               ("leaky_relu", np.float32)])  # fmt: skip
def test_a_tiled_hidden_layer_gives_the_pass_bits_for_every_activation(activation, dtype,
                                                                       monkeypatch):  # fmt: skip
    """In the lane loops a 5 x 4 hidden layer's products run in the register tiles (numba_tiles)
    and its derivatives in a pass of their own; the fused pass writes both out. The same bits
    for the other activations too (sigmoid: the case "two hidden layers, two outputs")."""
    from backprop_bench.kernels import numba_lanes
    from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS

    spec = NetSpec((2, 5, 4, 1), activation)
    key = numba_fused.fused_key(spec.layers, 4, HIDDEN_ACTIVATIONS.index(activation), 0, True)
    assert numba_lanes._tiled(5, 4) and key
    real, used = numba_backend.pass_function, []
    monkeypatch.setattr(numba_backend, "pass_function",
                        lambda key, size: used.append(key) or real(key, size))  # fmt: skip
    fused = train(spec, XOR.X, XOR.Y, 70, 400, True, monkeypatch, dtype)
    lanes = train(spec, XOR.X, XOR.Y, 70, 400, False, monkeypatch, dtype)
    assert used == [key]  # the first run went through the pass, the second not at all
    assert_same_bits(fused, lanes)


@pytest.mark.slow  # 32 shapes' passes to compile: about a minute
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("loss", ["bce", "mse"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_activation_loss_dtype_and_step_gives_the_lane_loops_bits(
    activation, loss, dtype, optimizer, monkeypatch
):
    spec = NetSpec((2, 3, 2, 1), activation, loss=loss)
    kw = dict(optimizer=Optimizer(optimizer), record_every=50)
    fused = train(spec, XOR.X, XOR.Y, 40, 300, True, monkeypatch, dtype, **kw)
    lanes = train(spec, XOR.X, XOR.Y, 40, 300, False, monkeypatch, dtype, **kw)
    assert_same_bits(fused, lanes)


def test_small_jobs_keep_the_lane_loops(monkeypatch):
    used = []
    monkeypatch.setattr(numba_backend, "pass_function", lambda key, size: used.append(key) or
                        numba_fused.pass_function("", size))  # fmt: skip
    theta = init_population(NetSpec((2, 4, 1)), 16, seed=0)
    for epochs in (10, numba_backend.FUSED_MIN_WORK // 16):
        numba_backend.train_population(theta, NetSpec((2, 4, 1)), XOR.X, XOR.Y, 0.5, epochs)
    assert used == ["", "2-4-1/4/0/0/1"]


def test_only_small_nets_are_fused_and_each_shape_and_dtype_has_its_own_pass():
    assert numba_fused.fused_key((2, 4, 1), 4, 0, 0, True) == "2-4-1/4/0/0/1"
    assert numba_fused.steps_in_pass("2-4-1/4/0/0/1")
    assert not numba_fused.steps_in_pass(numba_fused.fused_key((2, 4, 1), 4, 0, 0, False))
    assert numba_fused.fused_key((2, 16, 16, 1), 4, 0, 0, True) == ""  # 1,216 products x samples
    key = numba_fused.fused_key((2, 2, 1), 4, 0, 0, True)
    assert numba_fused.pass_function(key, 8) is numba_fused.pass_function(key, 8)
    assert numba_fused.pass_function(key, 8) is not numba_fused.pass_function(key, 4)
    assert numba_fused.pass_function("", 8) is numba_fused.pass_function("", 4)


@pytest.mark.parametrize("itemsize", [4, 8])
def test_the_pass_runs_only_on_chunks_of_whole_steps(itemsize, monkeypatch):
    """A step of the pass is INTERLEAVE vectors (pass_lanes: 32 float32 lanes on an AVX-512
    core) and may run past w, the lanes in use (a multiple of numba_lanes.LANES, 16), into the
    chunk's empty lanes. A chunk that is not a whole number of steps keeps the lane loops:
    here chunks of 16 nets, which on an AVX-512 core fuse float64 nets but not float32 ones."""
    dtype = np.float32 if itemsize == 4 else np.float64
    spec = NetSpec((2, 4, 1))
    key = numba_fused.fused_key(spec.layers, 4, 0, 0, True)
    real = numba_backend.pass_function
    used = []
    monkeypatch.setattr(numba_backend, "chunk_size", lambda *args: 16)
    monkeypatch.setattr(numba_backend, "pass_function",
                        lambda key, size: used.append(key) or real(key, size))  # fmt: skip
    lanes = train(spec, XOR.X, XOR.Y, 40, 200, False, monkeypatch, dtype)
    monkeypatch.setattr(numba_backend, "chunk_size", lambda *args: 16)
    monkeypatch.setattr(numba_backend, "pass_function",
                        lambda key, size: used.append(key) or real(key, size))  # fmt: skip
    got = train(spec, XOR.X, XOR.Y, 40, 200, True, monkeypatch, dtype)
    whole = 16 % numba_fused.pass_lanes(itemsize) == 0
    assert used == ["", key if whole else ""]
    assert_same_bits(got, lanes)


def test_a_chunk_of_part_of_a_step_keeps_the_lane_loops_on_any_core(monkeypatch):
    """The backend's rule itself, whatever this core's vectors: with a step said to be 32
    lanes, chunks of 16 float64 nets (a whole step on every core) keep the lane loops."""
    spec = NetSpec((2, 4, 1))
    real, used = numba_backend.pass_function, []
    monkeypatch.setattr(numba_backend, "chunk_size", lambda *args: 16)
    monkeypatch.setattr(numba_backend, "pass_lanes", lambda itemsize: 32)
    monkeypatch.setattr(numba_backend, "pass_function",
                        lambda key, size: used.append(key) or real(key, size))  # fmt: skip
    train(spec, XOR.X, XOR.Y, 40, 50, True, monkeypatch)
    assert used == [""]


@numba.extending.intrinsic
def _margin32(typingctx, margin):
    def codegen(context, builder, signature, args):
        return numba_fused._margin32(builder, args[0])

    return numba.types.float32(numba.types.float64), codegen


@numba.njit
def margin32(margin):
    return _margin32(margin)


def test_the_float32_margin_is_the_largest_float32_at_or_below_the_float64_one():
    """float32 nets count a sample right when sign z > the margin in float32, against the lane
    loops' float64 comparison of z widened: the same for every float32 z only if the float32
    margin is the largest float32 <= the float64 one."""
    f32 = np.float32
    rng = np.random.default_rng(0)
    margins = [1e-9, 0.0, -0.0, -1e-9, 1e-50, -1e-50, 0.1, -0.1, 1.0, 3.4e38, 3.5e38, -3.5e38,
               float(np.finfo(f32).tiny) / 3, float(f32(1e-9)), *rng.normal(size=200),
               *(rng.normal(size=200) * 10.0 ** rng.integers(-45, 38, size=200))]  # fmt: skip
    with np.errstate(over="ignore"):  # past float32's range: to +-inf, then one below
        for margin in margins:
            got = margin32(margin)
            want = f32(margin)
            if float(want) > margin:
                want = np.nextafter(want, f32(-np.inf))
            assert f32(got).tobytes() == f32(want).tobytes(), margin
            # the comparison itself, at the float32 values around the margin
            for z in (want, np.nextafter(want, f32(np.inf)), np.nextafter(want, f32(-np.inf))):
                assert (f32(z) > f32(got)) == (float(z) > margin), (margin, z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_one_float_either_side_of_the_decision_margin_count_as_the_lane_loops_do(
    dtype, monkeypatch
):
    """Nets whose output logit is a given number at every sample (all weights 0, the output
    bias that number): at epoch 0, before any step, a sample counts as right when sign(y - 0.5) z
    exceeds DECISION_MARGIN, in both the pass and the lane loops, to the last float."""
    from backprop_bench.kernels.training import DECISION_MARGIN

    spec = NetSpec((2, 4, 1))
    near = dtype(DECISION_MARGIN)
    logits = [near, np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(-np.inf)),
              dtype(DECISION_MARGIN * 2), dtype(0.0)]  # fmt: skip
    logits = np.array(logits + [-x for x in logits], dtype=dtype)
    n_nets = 32
    results = []
    for fused in (True, False):
        monkeypatch.setattr(numba_backend, "FUSED_MIN_WORK", 0)
        if not fused:
            monkeypatch.setattr(numba_backend, "fused_key", lambda *args: "")
        theta = np.zeros((spec.n_params, n_nets), dtype=dtype)
        theta[-1] = np.resize(logits, n_nets)  # the output bias
        result = numba_backend.train_population(theta, spec, XOR.X, XOR.Y, 0.5, 1,
                                                record_every=1)  # fmt: skip
        monkeypatch.undo()
        results.append(result)
    signs = np.where(XOR.Y[:, 0] >= 0.5, 1.0, -1.0)
    z = np.resize(logits, n_nets).astype(np.float64)
    expected = (signs[None, :] * z[:, None] > DECISION_MARGIN).mean(axis=1)
    np.testing.assert_array_equal(results[0].history.accuracy[0], expected)
    assert len(set(expected.tolist())) > 1
    assert_same_bits(*results)
