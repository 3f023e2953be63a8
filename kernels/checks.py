"""Input validation shared by both backends, at their public boundary.

Every message names what was expected and how to fix it; nothing deeper in the kernels checks
again. Validated arrays come back C-contiguous and writable in the population's dtype: numba
types a read-only array apart from a writable one, so read-only data (the problems' arrays are)
would cost every kernel a second compile of 10 to 45 s. The kernels never write these arrays;
read-only ones are copied.
"""

from __future__ import annotations

import numpy as np

from . import values
from .spec import NetSpec

DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def check_spec(spec) -> NetSpec:
    if not isinstance(spec, NetSpec):
        raise TypeError(
            f"spec must be a NetSpec, e.g. NetSpec((2, 4, 1)), got {type(spec).__name__}"
        )
    return spec


def check_theta(theta, spec: NetSpec) -> np.ndarray:
    """theta : float64 or float32 array of shape (n_params, n_nets), nets on the last axis."""
    check_spec(spec)
    theta = np.asarray(theta)
    if theta.dtype not in DTYPES:
        raise ValueError(f"theta must be float64 or float32, got {theta.dtype}; use theta.astype")
    if theta.ndim != 2 or theta.shape[0] != spec.n_params or theta.shape[1] < 1:
        raise ValueError(
            f"theta must have shape (n_params, n_nets) = ({spec.n_params}, n_nets >= 1) for "
            f"layers {spec.layers}, got {theta.shape}; for one net use theta[:, None]"
        )
    return _for_kernels(theta)


def _for_kernels(array: np.ndarray) -> np.ndarray:
    """array itself if C-contiguous and writable, else such a copy (see the module's docstring)."""
    return np.require(array, requirements=("C", "W"))


def _real(name: str, values) -> None:
    """Complex data would be cast to real with NumPy's warning, its imaginary part dropped."""
    if np.iscomplexobj(values):
        raise ValueError(f"{name} holds complex numbers; the nets train on real data (take "
                         f"{name}.real, or both parts as features)")  # fmt: skip


def check_data(X, Y, spec: NetSpec, dtype) -> tuple[np.ndarray, np.ndarray]:
    """X of shape (n_samples, n_inputs), Y of shape (n_samples, n_outputs), finite, n_samples >= 1.

    ``Y`` may be None where only the forward pass is wanted.
    """
    _real("X", X)
    X = np.asarray(X, dtype=dtype)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] != spec.n_inputs:
        raise ValueError(
            f"X must have shape (n_samples >= 1, {spec.n_inputs}) for layers {spec.layers}, "
            f"got {X.shape}; the spec's input width must match the data"
        )
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or inf; inputs must be finite")
    if Y is None:
        return _for_kernels(X), None
    _real("Y", Y)
    Y = np.asarray(Y, dtype=dtype)
    if Y.ndim != 2 or Y.shape != (X.shape[0], spec.n_outputs):
        raise ValueError(
            f"Y must have shape (n_samples, n_outputs) = ({X.shape[0]}, {spec.n_outputs}), "
            f"got {Y.shape}; the spec's output width must match the targets"
        )
    if not np.isfinite(Y).all():
        raise ValueError("Y holds NaN or inf; targets must be finite")
    if spec.loss == "bce" and not ((Y >= 0) & (Y <= 1)).all():
        raise ValueError(
            "Y holds targets outside [0, 1]; binary cross-entropy needs targets in [0, 1] "
            "(use loss='mse' for others)"
        )
    return _for_kernels(X), _for_kernels(Y)


def check_learning_rate(learning_rate, n_nets: int, dtype) -> np.ndarray:
    """A positive finite scalar or one per net; returns an array of shape (n_nets,)."""
    lr = np.asarray(learning_rate)
    if lr.dtype.kind not in "fiu":  # True is not 1.0, "0.5" is not 0.5
        got = f"an array of dtype {lr.dtype}" if lr.ndim else repr(learning_rate)
        raise ValueError(f"learning rate must be a number or an array of numbers, got {got}")
    lr = lr.astype(np.float64)
    if lr.ndim == 0:
        lr = np.full(n_nets, float(lr))
    if lr.shape != (n_nets,):
        raise ValueError(
            f"learning rate must be a scalar or an array of shape (n_nets,) = ({n_nets},), "
            f"got shape {lr.shape}"
        )
    if not (np.isfinite(lr).all() and (lr > 0).all()):
        bad = lr[~(np.isfinite(lr) & (lr > 0))][0]
        raise ValueError(f"learning rate must be a positive finite number, got {float(bad)!r}")
    top = float(np.finfo(dtype).max)
    if (lr > top).any():
        raise ValueError(f"learning rate {float(lr.max())!r} is beyond {np.dtype(dtype)}'s range "
                         f"(at most {top:.3g}); use float64 parameters")  # fmt: skip
    return lr.astype(dtype)


def check_epochs(n_epochs) -> int:
    return values.integer("n_epochs", n_epochs)


def check_like(name: str, array, theta: np.ndarray) -> np.ndarray:
    """An array that must match theta's shape and dtype (a gradient, an optimizer state)."""
    if (
        not isinstance(array, np.ndarray)
        or array.shape != theta.shape
        or array.dtype != theta.dtype
    ):
        got = (array.shape, array.dtype) if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(
            f"{name} must be an array of theta's shape {theta.shape} and dtype {theta.dtype}, "
            f"got {got}"
        )
    return array


def check_step_inputs(theta, grad, learning_rate, *state) -> np.ndarray:
    """Arguments of an in-place optimizer step; returns the learning rate per net.

    state : (name, array) pairs of optimizer state that must match theta
    """
    if not (isinstance(theta, np.ndarray) and theta.ndim == 2):
        got = theta.shape if isinstance(theta, np.ndarray) else type(theta).__name__
        raise ValueError(
            f"theta must be an array of shape (n_params, n_nets), got {got}; for one net use "
            "theta[:, None] (a view: the step updates theta in place)"
        )
    if theta.dtype not in DTYPES:
        raise ValueError(f"theta must be float64 or float32, got {theta.dtype}; use theta.astype")
    if not theta.flags.c_contiguous:
        raise ValueError(
            "theta must be a C-contiguous array of shape (n_params, n_nets); it is "
            "updated in place, so pass the array itself (np.ascontiguousarray first)"
        )
    if not theta.flags.writeable:
        raise ValueError("theta is read-only; optimizer steps update it in place, pass a copy")
    check_like("grad", grad, theta)
    for name, array in state:
        check_like(name, array, theta)
    return check_learning_rate(learning_rate, theta.shape[1], theta.dtype)


def check_step_number(step) -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"step must be a positive integer (1 for the first step), got {step!r}")
    return int(step)
