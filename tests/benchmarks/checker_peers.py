"""Other libraries' gradient checkers, with their defaults, on the checker catalogue.

Each peer is used the way its users check a hand-written NumPy backward pass, in the case's
dtype (float32 cases in float32 throughout: that is the point):

- ``torch.autograd.gradcheck`` (slow mode, and ``fast_mode=True``): ``fun`` and ``grad`` wrapped
  in a ``torch.autograd.Function`` with one input tensor per parameter group; ``forward`` calls
  ``fun`` on the tensors' NumPy views, ``backward`` returns ``grad * grad_output``.
- ``jax.test_util.check_grads(f, (params,), order=1, modes=("rev",))`` with a
  ``jax.custom_vjp`` whose forward and backward call ``fun`` and ``grad`` through
  ``jax.pure_callback``; ``modes=("fwd",)`` with a ``jax.custom_jvp`` (tangent = grad . t),
  because JAX cannot apply forward mode to a custom_vjp. x64 is enabled for float64 cases only.
- ``scipy.optimize.check_grad(fun, grad, x0)`` on the flattened params. It returns an error
  norm and no verdict; here it passes when that norm is at most sqrt(eps of float64) *
  max(1, norm(grad)), i.e. about 1.5e-8 relative to the gradient.

A stochastic case's frozen seed (``options={"rng_seed": S}``) is applied for the peers as a user
would, by wrapping ``fun`` and ``grad`` with a fresh ``np.random.default_rng(S)`` per call. Each
(case, peer) gives "pass", "fail" (the peer raised its own failure or returned one), "error" (it
crashed) or "timeout" (stopped after ``max_seconds``, by SIGALRM), and its time. Torch's
fast mode, once it has found a mismatch, computes the whole numerical Jacobian for its message,
so on a large wrong gradient it costs as much as slow mode. A peer catches a mutant when it
does not pass; a false alarm is a non-pass on a correct case or a valid subgradient at a kink;
timeouts are counted apart. The peers have no "not deterministic" verdict: on those cases what
they said is recorded and shown apart.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
import warnings

import numpy as np
from backprop_bench.verify.catalogue import (
    PASSING,
    flatten,
    frozen_callables,
    score,
)

PEERS = (
    "torch gradcheck",
    "torch gradcheck fast",
    "jax check_grads fwd",
    "jax check_grads rev",
    "scipy check_grad",
)
OURS = "ours (check_gradient)"
SCIPY_RTOL = float(np.sqrt(np.finfo(np.float64).eps))


def _structure(params):
    names = list(params) if isinstance(params, dict) else None
    arrays = [params[k] for k in names] if names else [params]
    return names, arrays


def _as_params(names, arrays):
    return dict(zip(names, arrays, strict=True)) if names else arrays[0]


def _torch(problem, dtype, fast):
    import torch
    from torch.autograd.gradcheck import GradcheckError

    fun, grad = frozen_callables(problem)
    names, arrays = _structure(problem.params)
    tdtype = torch.float32 if dtype == "float32" else torch.float64

    class UserFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            value = fun(_as_params(names, [t.detach().numpy() for t in tensors]))
            return torch.as_tensor(np.asarray(value), dtype=tdtype)

        @staticmethod
        def backward(ctx, grad_output):
            g = grad(_as_params(names, [t.detach().numpy() for t in ctx.saved_tensors]))
            parts = [g[k] for k in names] if names else [g]
            return tuple(torch.as_tensor(np.asarray(p), dtype=tdtype) * grad_output for p in parts)

    inputs = tuple(
        torch.tensor(np.asarray(a), dtype=tdtype).requires_grad_(True) for a in arrays
    )
    try:
        torch.autograd.gradcheck(UserFunction.apply, inputs, fast_mode=fast)
    except GradcheckError as failure:
        return "fail", str(failure).splitlines()[0]
    return "pass", ""


def _jax(problem, dtype, mode):
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    fun, grad = frozen_callables(problem)
    np_dtype = np.dtype(dtype)
    names, arrays = _structure(problem.params)
    template = _as_params(names, [np.asarray(a, np_dtype) for a in arrays])
    value_shape = jax.ShapeDtypeStruct((), np_dtype)
    grad_shape = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np_dtype), template)

    def value_cb(p):
        return np.asarray(fun(jax.tree.map(np.asarray, p)), np_dtype)

    def grad_cb(p):
        g = grad(jax.tree.map(np.asarray, p))
        parts = [g[k] for k in names] if names else [g]
        return _as_params(names, [np.asarray(a, np_dtype) for a in parts])

    if mode == "rev":

        @jax.custom_vjp
        def f(p):
            return jax.pure_callback(value_cb, value_shape, p)

        def f_fwd(p):
            return f(p), p

        def f_bwd(p, cotangent):
            g = jax.pure_callback(grad_cb, grad_shape, p)
            return (jax.tree.map(lambda a: a * cotangent, g),)

        f.defvjp(f_fwd, f_bwd)
    else:

        @jax.custom_jvp
        def f(p):
            return jax.pure_callback(value_cb, value_shape, p)

        @f.defjvp
        def f_jvp(primals, tangents):
            (p,), (t,) = primals, tangents
            g = jax.pure_callback(grad_cb, grad_shape, p)
            pairs = zip(jax.tree.leaves(g), jax.tree.leaves(t), strict=True)
            return f(p), sum(jnp.vdot(a, b) for a, b in pairs)

    try:
        check_grads(f, (jax.tree.map(jnp.asarray, template),), order=1, modes=(mode,))
    except AssertionError as failure:
        return "fail", " ".join(str(failure).split())[:200]
    return "pass", ""


def _scipy(problem, dtype):
    from scipy.optimize import check_grad

    fun, grad = frozen_callables(problem)
    names, arrays = _structure(problem.params)
    shapes = [np.shape(a) for a in arrays]
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unflatten(x):
        parts = [x[a:b].reshape(s) for a, b, s in zip(bounds, bounds[1:], shapes, strict=False)]
        return _as_params(names, parts)

    x0 = flatten(problem.params).astype(dtype)
    g0 = flatten(grad(unflatten(x0)))
    error = check_grad(
        lambda x: float(fun(unflatten(x))), lambda x: flatten(grad(unflatten(x))), x0
    )
    bound = SCIPY_RTOL * max(1.0, float(np.linalg.norm(g0)))
    if error <= bound:
        return "pass", f"error {error:.3g} <= {bound:.3g}"
    return "fail", f"error {error:.3g} > {bound:.3g}"


def _ours(problem):
    from backprop_bench.verify import check_gradient

    result = check_gradient(problem.fun, problem.grad, problem.params, **problem.options)
    verdict = getattr(result, "verdict", None)
    return ("pass" if bool(result) else "fail"), (verdict or "(no verdict)")


def _run_one(peer, problem, dtype):
    if peer == OURS:
        return _ours(problem)
    if peer.startswith("torch"):
        return _torch(problem, dtype, fast=peer.endswith("fast"))
    if peer.startswith("jax"):
        return _jax(problem, dtype, peer.split()[-1])
    return _scipy(problem, dtype)


def _warm_up_problem():
    from backprop_bench.verify.catalogue import Problem

    return Problem(lambda x: np.sum(x**2), lambda x: 2 * x, np.array([0.5, -1.0]))


class _Timeout(BaseException):  # BaseException: a peer's own "except Exception" lets it through
    pass


_collecting = [False]  # between a collection's "start" and "stop" (_track_collection)


def _track_collection(phase, info):
    _collecting[0] = phase == "start"


def _raise_timeout(signum, frame):
    """The alarm's handler: raises _Timeout, but not while the garbage collector runs (its
    callbacks, JAX's among them, and the weakref callbacks and finalizers it calls), where Python
    swallows the exception and reports it as unraisable, which failed the test that ran the
    peers (``pytest --benchmark``): there it returns, and the repeating alarm (_timed) comes
    again once the collector is done."""
    if _collecting[0]:
        return
    callbacks = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks:
            return
        frame = frame.f_back
    raise _Timeout


def _timed(peer, problem, dtype, max_seconds):
    """(outcome, message) of one peer on one problem, stopped after max_seconds."""
    can_alarm = threading.current_thread() is threading.main_thread() and sys.platform != "win32"
    if can_alarm:
        gc.callbacks.append(_track_collection)
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        # repeating: an alarm that falls inside a gc callback is put off (_raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, max_seconds, 0.5)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # torch warns on every float32 input
            return _run_one(peer, problem, dtype)
    except _Timeout:
        return "timeout", f"stopped after {max_seconds:g} s"
    except Exception as crash:  # a crash is an outcome here, recorded as such
        return "error", f"{type(crash).__name__}: {crash}"[:200]
    finally:
        if can_alarm:  # ignore first: an alarm due now must not escape from here
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            gc.callbacks.remove(_track_collection)
            _collecting[0] = False


def run_peers(
    cases, peers=PEERS, max_seconds: float = 60.0, ours: bool = False, progress=None
) -> list[dict]:
    """Every peer (and with ``ours``, our checker) on every case, each on a fresh problem.

    Returns one dict per (case, peer): case (the Case), peer, outcome ("pass", "fail", "error",
    "timeout"), passed (bool), seconds, message, and for ours the verdict; ``progress`` is
    called with each row as it comes.
    """
    import jax

    peers = (*peers, OURS) if ours else tuple(peers)
    x64 = jax.config.jax_enable_x64
    rows = []
    try:
        for peer in peers:  # imports and first-call set-up, untimed
            jax.config.update("jax_enable_x64", True)
            _timed(peer, _warm_up_problem(), "float64", max_seconds)
        for case in cases:
            for peer in peers:
                jax.config.update("jax_enable_x64", case.dtype == "float64")
                problem = case.make()
                start = time.perf_counter()
                outcome, message = _timed(peer, problem, case.dtype, max_seconds)
                rows.append(
                    {"case": case, "peer": peer, "outcome": outcome, "passed": outcome == "pass",
                     "seconds": time.perf_counter() - start, "message": message,
                     "verdict": message if peer == OURS and outcome in ("pass", "fail") else None}
                )  # fmt: skip
                if progress is not None:
                    progress(rows[-1])
    finally:
        jax.config.update("jax_enable_x64", x64)
    return rows


def peer_table(rows) -> str:
    """Per group and dtype, per peer: mutants caught, false alarms, time (markdown)."""
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    keys = list(dict.fromkeys((r["case"].group, r["case"].dtype) for r in rows))
    run = [r for r in rows if r["outcome"] != "timeout"]
    tallies = {p: score([r for r in run if r["peer"] == p]) for p in peers}
    lines = [
        "| group | dtype | " + " | ".join(peers) + " |",
        "|---|---|" + "---|" * len(peers),
    ]
    for key in [*keys, ("all", "")]:
        cells = []
        for peer in peers:
            if key[0] == "all":
                parts = tallies[peer].values()
                t = {k: sum(p[k] for p in parts) for k in next(iter(parts), {})}
            else:
                t = tallies[peer].get(key)
            if not t:
                cells.append("timed out")
                continue
            cell = []
            if t["mutants"]:
                cell.append(f"caught {t['caught']}/{t['mutants']}")
            if t["controls"]:
                cell.append(f"false alarms {t['false_alarms']}/{t['controls']}")
            said = [r for r in run if r["peer"] == peer and _in(r, key)]
            nd = [r["outcome"] for r in said if r["case"].expect not in (*PASSING, "wrong")]
            if nd:
                cell.append("not-deterministic cases: " + _counts(nd))
            skipped = [r for r in rows if r["peer"] == peer and _in(r, key)]
            n_skipped = sum(r["outcome"] == "timeout" for r in skipped)
            if n_skipped:
                cell.append(f"{n_skipped} timed out")
            cell.append(f"{sum(r['seconds'] for r in skipped):.1f} s")
            cells.append(", ".join(cell))
        label = "**all**" if key[0] == "all" else key[0]
        lines.append(f"| {label} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _in(row, key):
    return key[0] == "all" or (row["case"].group, row["case"].dtype) == key


def _counts(outcomes):
    return " ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))


def rows_as_json(rows) -> list[dict]:
    """The rows with the case reduced to its name, group, dtype and expected verdict."""
    out = []
    for r in rows:
        c = r["case"]
        out.append(
            {"case": c.name, "group": c.group, "dtype": c.dtype, "expect": c.expect}
            | {k: v for k, v in r.items() if k != "case"}
        )
    return out
