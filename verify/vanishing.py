"""The vanishing-gradient study: per-layer gradient norms of many seeded nets at initialisation.

For every (activation, init, depth) it draws ``n_nets`` nets of ``width`` hidden units per layer,
runs one forward and backward pass on the problem's data, and keeps per hidden layer l:
||dL/dz_l||, ||dL/dh_l|| (h_l = the layer's activation) and ||dL/dW_l|| (Frobenius norms over the
batch), as quantiles over the nets.

It also checks two claims on everything it computed:

- the tutorial's: sigmoid'(z) = a (1 - a) <= 1/4 on every hidden unit and sample seen;
- for sigmoid nets, the bound ||dL/dh_l|| <= ||dL/dh_L|| * prod_{k=l+1..L} 1/4 ||W_k||_2, where
  h_L is the last hidden layer and W_k the weights into hidden layer k. It holds sample by
  sample (dL/dh_{k-1} = (dL/dh_k * sigmoid'(z_k)) W_k^T, |sigmoid'| <= 1/4, ||x W^T|| <=
  ||W||_2 ||x||), hence for the batch's Frobenius norm. Violations beyond rounding
  (BOUND_RTOL) are counted; the ratio actual / bound shows how loose it is.

Beside the data it puts what mean-field theory predicts of the nets of a case on average
(``mean_field``): over the draws of the weights each unit's z is normal with mean 0 and a
variance that the init's variances carry up layer by layer, and each layer multiplies the mean
square of the backpropagated gradient by fan_in * var(W) * E[phi'(z)^2] (the derivative taken
independent of the gradient it multiplies). It predicts the root mean square over nets, which
the study keeps beside the quantiles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from backprop_bench.kernels import (
    BACKENDS,
    NetSpec,
    backend,
    get_problem,
    init_population,
    parse_init,
    regularised,
    values,
)
from backprop_bench.kernels.activations import ACTIVATIONS
from backprop_bench.kernels.init import layer_variances
from backprop_bench.kernels.passes import Forward, Gradients
from backprop_bench.kernels.spec import HIDDEN_ACTIVATIONS

QUANTILES = (10, 25, 50, 75, 90)
# The bound is checked after a chain of float64 products and sums over at most 20 layers:
# a relative slack of 1e-9 is ~10^7 ulps, far above rounding and far below any real violation.
BOUND_RTOL = 1e-9
# Deeper nets only repeat the story (the figures show 1 to 20 layers); the cap keeps one
# case's product of depth and width within what a pass can hold.
MAX_DEPTH = 1000


def _depth(depth) -> int:
    try:
        return values.integer("depths", depth, 1, MAX_DEPTH)
    except ValueError:
        raise ValueError(f"depths are numbers of hidden layers >= 1, got {depth!r} "
                         f"(at most {MAX_DEPTH})") from None  # fmt: skip


def _init_name(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"inits must be scheme names such as tutorial, got {text!r}")
    return str(parse_init(text))


@dataclass(frozen=True)
class VanishingConfig:
    depths: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 20)
    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu")
    # xavier_normal and lecun_normal coincide on square hidden layers: normal:1 is the third
    inits: tuple[str, ...] = ("xavier_normal", "tutorial", "normal:1")
    width: int = 8
    n_nets: int = 2000
    problem: str = "xor"
    seed: int = 0
    backend: str = "numba"
    # with True among them, every case is run with batch norm too (training mode: the pass the
    # first step of training takes); the bound is a plain sigmoid chain's and is not checked there
    batchnorm: tuple[bool, ...] = (False,)

    def __post_init__(self):
        # values checked and names normalised before the duplicate check: sigmoid,SIGMOID or
        # uniform:1,uniform:1.0 would otherwise be one case counted twice
        def setting(field, value):
            object.__setattr__(self, field, value)

        setting("depths", values.grid("depths", self.depths, _depth))
        activation = lambda a: values.name("activation", a, HIDDEN_ACTIVATIONS)  # noqa: E731
        setting("activations", values.grid("activations", self.activations, activation))
        setting("inits", values.grid("inits", self.inits, _init_name))
        setting("width", values.integer("width", self.width, 1, values.MAX_WIDTH))
        setting("n_nets", values.integer("nets", self.n_nets, 1))
        setting("seed", values.integer("seed", self.seed))
        setting("problem", get_problem(values.name("problem", self.problem)).name)
        setting("backend", values.name("backend", self.backend, BACKENDS))
        setting("batchnorm", values.grid("batchnorm", self.batchnorm,
                                         lambda v: values.flag("batchnorm", v)))  # fmt: skip

    def to_dict(self) -> dict:
        # batchnorm only where a study asks for it: one without keeps its stored form
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if not (k == "batchnorm" and v == (False,))}  # fmt: skip


def _quantiles(values: np.ndarray) -> list[float | None]:
    """Quantiles over nets (the last axis) -> list per QUANTILES; over the nets where the value
    is defined (not NaN), None where it is defined for none."""
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return [None] * len(QUANTILES)
    with np.errstate(invalid="ignore"):  # inf among the values: inf - inf between two of them
        return [float(q) for q in np.nanpercentile(values, QUANTILES, axis=-1)]


def _finite(value):
    """``value`` (nested dicts and lists of floats) with every float that is not finite as
    None: inf or NaN norms (an init of scale 1e300) wrote non-standard JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _rms(values: np.ndarray) -> float:
    """Root mean square over nets, as mean-field theory predicts it."""
    with np.errstate(over="ignore"):
        return float(np.sqrt(np.mean(np.square(np.asarray(values, dtype=float)))))


# mean-field expectations over z ~ N(0, q): a fine rule on +-10 standard deviations, with no
# node at 0, so that a step there (relu') is averaged exactly by symmetry (a node at 0 cost 1e-3)
# and a kink (relu) costs the rule below 1e-6 of the value; Gauss-Hermite rules converge slowly
# on either
_U = np.linspace(-10.0, 10.0, 4000)
_W = np.exp(-0.5 * _U * _U)
_W /= _W.sum()


def _expect(f, q: np.ndarray) -> np.ndarray:
    """E[f(z)] for z ~ N(0, q), for each variance in ``q`` (q = 0: f(0))."""
    z = np.sqrt(np.asarray(q, dtype=float))[..., None] * _U
    return f(z) @ _W


def mean_field(spec: NetSpec, init: str, X, Y) -> list[dict]:
    """Mean-field predictions, per hidden layer, of the root mean square over nets of ||dL/dh||
    and ||dL/dz|| (Frobenius norms over the batch), for nets of ``spec`` drawn by ``init`` at
    their first pass on (X, Y) with binary cross-entropy averaged over the samples.

    Per sample, z of a unit of layer l is N(0, q_l) over the weights' draws: q_1 = var(W_1)
    ||x||^2 + var(b_1), q_l = fan_in var(W_l) E[phi(z_{l-1})^2] + var(b_l). Backward, the output's
    dL/dz is (sigmoid(z) - y) / n_samples; each layer below multiplies the mean square of dL/dh
    by fan_in var(W) E[phi'(z)^2] (fan_in: the layer below's width).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # an init of scale 1e300: inf, NaN
        return _mean_field(spec, init, X, Y)


def _mean_field(spec: NetSpec, init: str, X, Y) -> list[dict]:
    phi, grad = ACTIVATIONS[spec.activation]
    dphi2 = lambda z: grad(z, phi(z)) ** 2  # noqa: E731
    phi2 = lambda z: phi(z) ** 2  # noqa: E731
    variances = layer_variances(spec, init)
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    n_samples, depth = X.shape[0], len(spec.layers) - 2
    q = [variances[0][0] * (X * X).sum(axis=1) + variances[0][1]]  # per sample, layer 1
    for layer in range(1, depth + 1):  # into hidden layer layer + 1, or the output
        fan_in = spec.layers[layer]
        var_w, var_b = variances[layer]
        q.append(fan_in * var_w * _expect(phi2, q[-1]) + var_b)
    sigmoid = ACTIVATIONS["sigmoid"][0]
    # the output's E[dL/dz^2] per sample, summed over outputs; then down through W_out
    delta2 = sum(_expect(lambda z, y=y: (sigmoid(z) - y[:, None]) ** 2, q[depth])
                 for y in Y.T) / n_samples**2  # fmt: skip
    dh2 = spec.layers[depth] * variances[depth][0] * delta2  # E||dL/dh_L||^2 per sample
    out = []
    for hidden in range(depth, 0, -1):  # hidden layer `hidden`, q[hidden - 1] its variance
        derivative2 = _expect(dphi2, q[hidden - 1])
        out.append({"layer": hidden, "dh": float(np.sqrt(dh2.sum())),
                    "dz": float(np.sqrt((derivative2 * dh2).sum()))})  # fmt: skip
        if hidden > 1:
            dh2 = spec.layers[hidden - 1] * variances[hidden - 1][0] * derivative2 * dh2
    return out[::-1]


def _norms(array) -> np.ndarray:
    """Frobenius norm per net of an array of shape (..., n_nets)."""
    flat = np.asarray(array).reshape(-1, array.shape[-1])
    with np.errstate(over="ignore", invalid="ignore"):  # an inf norm is a finding, not a warning
        return np.sqrt((flat * flat).sum(axis=0))


def _spectral(W: np.ndarray) -> np.ndarray:
    """Largest singular value of each net's W (shape (fan_in, fan_out, n_nets))."""
    return np.linalg.norm(np.moveaxis(W, -1, 0), ord=2, axis=(1, 2))


def _batchnorm_pass(spec, theta, problem):
    """A training-mode pass of a batch-normalised population, as the backends' passes return."""
    trace = regularised.forward(theta, spec, problem.X, training=True)
    Y = np.asarray(problem.Y, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        grad, dz, da = regularised.backward_trace(theta, spec, trace, Y, per_layer=True)
    return Forward(trace.z, trace.a), Gradients(grad, dz, da)


def run_case(config: VanishingConfig, activation: str, init: str, depth: int,
             batchnorm: bool = False) -> dict:  # fmt: skip
    """Per-layer gradient norms of ``n_nets`` nets with ``depth`` hidden layers."""
    problem = get_problem(config.problem)
    spec = NetSpec((problem.n_inputs, *([config.width] * depth), problem.n_outputs), activation,
                   batchnorm=batchnorm)  # fmt: skip
    theta = init_population(spec, config.n_nets, config.seed, init)
    if batchnorm:
        fwd, grads = _batchnorm_pass(spec, theta, problem)
    else:
        kernels = backend(config.backend)
        fwd = kernels.forward(theta, spec, problem.X)
        grads = kernels.backward(theta, spec, problem.X, problem.Y, per_layer=True)
    weight_grads = spec.layer_views(grads.grad)
    layers = []
    for hidden in range(depth):  # hidden layer hidden + 1, fed by weight layer `hidden`
        dz, dh = _norms(grads.dz[hidden]), _norms(grads.da[hidden])
        layers.append(
            {
                "layer": hidden + 1,
                "dz": _quantiles(dz),
                "dh": _quantiles(dh),
                "dW": _quantiles(_norms(weight_grads[hidden][0])),
                "dz_rms": _rms(dz),
                "dh_rms": _rms(dh),
            }
        )
    layers = _finite(layers)  # JSON has no NaN or inf: a value that is not finite is None
    case = {"activation": activation, "init": init, "depth": depth, "layers": layers,
            # nets whose gradient is exactly 0 at the first hidden layer (dead ReLU paths)
            "no_gradient": float((_norms(grads.dz[0]) == 0).mean())}  # fmt: skip
    if batchnorm:
        case["batchnorm"] = True
    else:
        case["mean_field"] = _finite(mean_field(spec, init, problem.X, problem.Y))
    if activation == "sigmoid":
        a = np.concatenate([np.asarray(h).reshape(-1) for h in fwd.a[1:-1]])
        case["max_sigmoid_derivative"] = float((a * (1 - a)).max())
        case["units_seen"] = int(a.size)
        if not batchnorm:
            case["bound"] = _bound(spec, theta, grads, depth)
    return case


def _bound(spec, theta, grads, depth) -> dict:
    """Check ||dL/dh_l|| <= ||dL/dh_L|| prod 1/4 ||W_k||_2 for every net and layer l < L."""
    views = spec.layer_views(theta)
    top = _norms(grads.da[depth - 1])
    factor = np.ones_like(top)
    ratios, violations, checked, unchecked = [], 0, 0, 0
    for hidden in range(depth - 2, -1, -1):  # da[hidden] is dL/dh of hidden layer hidden + 1
        with np.errstate(over="ignore", invalid="ignore"):
            factor = factor * 0.25 * _spectral(views[hidden + 1][0])
            bound = top * factor
        actual = _norms(grads.da[hidden])
        # a comparison with a norm that is not finite is not a check (NaN > x is False, and
        # such nets counted as holding the bound)
        finite = np.isfinite(actual) & np.isfinite(bound)
        violations += int((actual[finite] > bound[finite] * (1 + BOUND_RTOL)).sum())
        checked += int(finite.sum())
        unchecked += int((~finite).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            # 0 / 0 (a net with no gradient and a zero bound) has no ratio: left out
            ratio = np.where(finite & (bound > 0), actual / np.where(bound > 0, bound, 1), np.nan)
        ratios.append(
            {
                "layer": hidden + 1,
                "ratio": _quantiles(ratio),
                "factor_per_layer": _quantiles(0.25 * _spectral(views[hidden + 1][0])),
            }
        )
    return {"violations": violations, "checked": checked, "unchecked": unchecked,
            "layers": _finite(ratios[::-1])}  # fmt: skip


def study(config: VanishingConfig, progress=None) -> dict:
    """Every case of the study; deterministic for a given config."""
    cases = []
    todo = [(a, i, d, b) for b in config.batchnorm for a in config.activations
            for i in config.inits for d in config.depths]  # fmt: skip
    for n, (activation, init, depth, batchnorm) in enumerate(todo, start=1):
        cases.append(run_case(config, activation, init, depth, batchnorm))
        if progress is not None:
            progress(n, len(todo))
    sigmoid = [c for c in cases if c["activation"] == "sigmoid"]
    bounded = [c for c in sigmoid if "bound" in c]
    claims = {}
    if sigmoid:
        claims = {
            "max_sigmoid_derivative": max(c["max_sigmoid_derivative"] for c in sigmoid),
            "units_seen": sum(c["units_seen"] for c in sigmoid),
            "bound_violations": sum(c["bound"]["violations"] for c in bounded),
            "bound_checks": sum(c["bound"]["checked"] for c in bounded),
            "bound_unchecked": sum(c["bound"]["unchecked"] for c in bounded),
        }
    return {
        "config": config.to_dict(),
        "quantiles": list(QUANTILES),
        "claims": claims,
        "cases": cases,
    }
