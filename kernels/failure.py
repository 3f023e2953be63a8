"""How each net of a trained population ended: its outputs and, if it failed, the signature.

Both backends' ``train_population`` attach an :class:`Analysis` to their result, computed from the
final parameters and the training history by the same rules. The NumPy backend runs the oracle's
forward pass; so does the numba backend below ``numba_backend.ANALYSIS_MIN_WORK`` forward
multiply-adds, and its training kernel's (``numba_lanes.summary_kernel``) from there, whose
outputs differ from the oracle's by rounding only: the NumPy pass took longer than a short
training job of wide nets itself (0.23 s of 1.1 s for 4,096 8-32-32-1 nets, 30 epochs). Per net:

- ``outputs``: the final outputs, and ``outputs_right``: how many are on the target's side of
  0.5 (the final accuracy as training counted it, times the number of outputs);
- ``outputs_near_half``: outputs within NEAR_HALF of 0.5, the net that cannot tell patterns of
  opposite targets apart and answers their mean;
- ``saturated_units``: hidden units whose derivative is below SATURATION of the activation's
  largest derivative on at least half of the patterns (SATURATED_SHARE). A unit pinned at 0 or
  1 on those patterns passes almost no error back for them, so training cannot recruit it to
  separate them: the classic failure of XOR nets whose weights grew (Rumelhart, Hinton &
  Williams 1986). ``flat_units`` is the stricter rule of earlier reports, a unit whose
  derivative is that small on *every* pattern (a dead ReLU, or a sigmoid unit pinned
  throughout); failed sigmoid nets rarely have one, because a unit pinned on every pattern is
  a constant the output layer can absorb;
- ``weight_growth``: parameter norm at the last record over the norm at the first record at or
  after half the budget. Above GROWTH_FLAG the weights are still growing (with cross-entropy a
  net pushing outputs toward 0/1 grows like log t: log 10,000 / log 5,000 = 1.08);
- ``loss_drop``: relative fall of the loss over the last quarter of the budget, and
  ``outcome``: converged, diverged, improving (not converged, loss fell by more than
  PLATEAU_DROP), plateau (it did not), or undetermined (no history to tell: ``record_every``
  was 0 or the budget is under 4 epochs). ``weight_growth`` and ``loss_drop`` are NaN for nets
  that stopped before the budget and where the history cannot tell, and ``weight_growth`` also
  where either norm is below NORM_FLOOR (parameters collapsed to the origin, a control net at
  its optimum w = b = 0: the ratio of two rounding noises is no number to report).

This module does no I/O; the numbers are functions of the result alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations as F
from .training import Status

OUTCOMES = ("converged", "improving", "plateau", "diverged", "undetermined")
CONVERGED, IMPROVING, PLATEAU, DIVERGED, UNDETERMINED = range(len(OUTCOMES))
PLATEAU_DROP = 0.01  # relative loss decrease over the last quarter of the budget
SATURATION = 0.01  # fraction of the activation's largest derivative
SATURATED_SHARE = 0.5  # share of the patterns on which a saturated unit is that flat
NEAR_HALF = 0.05  # an output this close to 0.5 answers "either"
NORM_FLOOR = 1e-6  # parameter norms below this are treated as collapsed to zero
GROWTH_FLAG = 1.05  # parameter norm at the budget / at half the budget: still growing
BLOCK_NETS = 1 << 14  # nets analysed at a time
MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "leaky_relu": 1.0}


@dataclass
class Analysis:
    """Per-net ending of a trained population; arrays of shape (n_nets,) unless said.

    outputs           : final outputs, shape (n_samples, n_outputs, n_nets)
    outputs_right     : int64, outputs on the target's side of 0.5
    outputs_near_half : int64, outputs within NEAR_HALF of 0.5
    saturated_units   : int64, hidden units flat on at least SATURATED_SHARE of the patterns
    flat_units        : int64, hidden units flat on every pattern
    param_norm        : Euclidean norm of the final parameters
    weight_growth     : float, NaN where not known (see the module docstring)
    loss_drop         : float, NaN where not known
    outcome           : int8, an index into OUTCOMES
    """

    outputs: np.ndarray
    outputs_right: np.ndarray
    outputs_near_half: np.ndarray
    saturated_units: np.ndarray
    flat_units: np.ndarray
    param_norm: np.ndarray
    weight_growth: np.ndarray
    loss_drop: np.ndarray
    outcome: np.ndarray


def _hidden_units(spec, fwd):
    """Per net: units flat on at least SATURATED_SHARE of the patterns, and on every one."""
    derivative = F.ACTIVATIONS[spec.activation][1]
    limit = SATURATION * MAX_DERIVATIVE[spec.activation]
    n_nets = fwd.a[-1].shape[-1]
    saturated = np.zeros(n_nets, dtype=np.int64)
    flat = np.zeros(n_nets, dtype=np.int64)
    for z, a in zip(fwd.z[:-1], fwd.a[1:-1], strict=True):
        low = derivative(z, a) < limit  # (n_samples, width, n_nets)
        saturated += (low.mean(axis=0) >= SATURATED_SHARE).sum(axis=0)
        flat += low.all(axis=0).sum(axis=0)
    return saturated, flat


def _row_at(epochs: np.ndarray, epoch: int) -> int:
    """History row of the first record at or after ``epoch``."""
    return int(np.searchsorted(epochs, epoch))


def _trend(result, n_epochs: int):
    """Weight growth, loss drop and whether they can be told, per net."""
    n_nets = result.status.size
    nan = np.full(n_nets, np.nan)
    history = result.history
    if history is None or n_epochs < 4:
        return nan, nan, np.zeros(n_nets, dtype=bool)
    quarter = _row_at(history.epochs, n_epochs - n_epochs // 4)
    half = _row_at(history.epochs, n_epochs // 2)
    if quarter >= history.epochs.size - 1:  # no record inside the last quarter
        return nan, nan, np.zeros(n_nets, dtype=bool)
    loss_quarter = history.loss[quarter]
    loss_drop = (loss_quarter - result.final_loss) / loss_quarter
    half_norm, last_norm = history.param_norm[half], history.param_norm[-1]
    weight_growth = last_norm / half_norm
    # a net whose parameters collapsed to the origin (a control net at its optimum w = b = 0)
    # has norms made of rounding noise: their ratio is not a number to report
    collapsed = np.minimum(half_norm, last_norm) < NORM_FLOOR
    ran_full = result.epochs_trained == n_epochs
    return (
        np.where(ran_full & ~collapsed, weight_growth, np.nan),
        np.where(ran_full, loss_drop, np.nan),
        ran_full,
    )


def _column_norms(theta) -> np.ndarray:
    """Each column's Euclidean norm in float64, the same bits as
    ``np.linalg.norm(theta.astype(np.float64), axis=0)`` (whose sum over rows runs row after
    row), without its two temporaries of theta's size: on 4,096 nets of 1,377 parameters those
    took 0.25 s, mostly the first touch of their fresh pages, against 0.01 s row by row.
    NumPy sums one column (or columns that are not contiguous in a row) pairwise: there, as it
    does."""
    if theta.ndim != 2 or theta.shape[1] < 2 or theta.strides[1] != theta.itemsize:
        return np.linalg.norm(theta.astype(np.float64), axis=0)
    total = np.zeros(theta.shape[1])
    square = np.empty(theta.shape[1])
    for row in theta:
        np.multiply(row, row, out=square, dtype=np.float64)
        total += square
    return np.sqrt(total)


def analyse(result, spec, X, Y, n_epochs: int, forward, evaluate=None,
            summarise=None, summary=None) -> Analysis:
    """The :class:`Analysis` of a finished ``TrainResult``.

    result   : a TrainResult whose theta holds the final parameters, shape (n_params, n_nets)
    X, Y     : the training data, shapes (n_samples, n_inputs) and (n_samples, n_outputs)
    n_epochs : the budget the population was trained with
    forward  : the NumPy backend's forward pass, ``forward(theta, spec, X) -> Forward``
    evaluate : instead of ``forward``, for nets whose evaluation needs more than theta (batch
               norm's running statistics): ``evaluate(block) -> Forward`` of the nets
               ``theta[:, block]``
    summarise: instead of either, for a backend that computes them in one pass without keeping
               every layer: ``summarise(theta block) -> (outputs, saturated, flat)`` with
               outputs of shape (n_samples, n_outputs, n_block), by the rule of _hidden_units
    summary  : instead of all three, summarise's (outputs, saturated, flat) of every net,
               already computed (by the numba training kernel as each net stopped)
    """
    theta = result.theta
    n_nets = theta.shape[1]
    outputs = np.empty((*Y.shape, n_nets))
    saturated = np.empty(n_nets, dtype=np.int64)
    flat = np.empty(n_nets, dtype=np.int64)
    param_norm = np.empty(n_nets)
    # a diverged net's numbers overflow (norms, outputs): inf or NaN is the honest value there
    with np.errstate(all="ignore"):
        # in blocks of nets, so that a million-net population needs no more memory to analyse
        for start in range(0, n_nets, BLOCK_NETS):
            block = slice(start, min(start + BLOCK_NETS, n_nets))
            if summary is not None:
                outputs[:, :, block] = summary[0][:, :, block]
                saturated[block], flat[block] = summary[1][block], summary[2][block]
            elif summarise is not None:
                outputs[:, :, block], saturated[block], flat[block] = summarise(theta[:, block])
            else:
                fwd = forward(theta[:, block], spec, X) if evaluate is None else evaluate(block)
                outputs[:, :, block] = fwd.a[-1]
                saturated[block], flat[block] = _hidden_units(spec, fwd)
            param_norm[block] = _column_norms(theta[:, block])
        accuracy = np.nan_to_num(result.final_accuracy.astype(np.float64), nan=0.0)
        weight_growth, loss_drop, known = _trend(result, n_epochs)
        outcome = np.where(loss_drop > PLATEAU_DROP, IMPROVING, PLATEAU)
        outcome = np.where(known, outcome, UNDETERMINED)
        outcome = np.where(result.status == Status.CONVERGED, CONVERGED, outcome)
        outcome = np.where(result.status == Status.DIVERGED, DIVERGED, outcome)
        return Analysis(
            outputs=outputs,
            outputs_right=np.rint(accuracy * Y.size).astype(np.int64),
            outputs_near_half=(np.abs(outputs - 0.5) < NEAR_HALF).sum(axis=(0, 1)),
            saturated_units=saturated,
            flat_units=flat,
            param_norm=param_norm,
            weight_growth=weight_growth.astype(np.float64),
            loss_drop=loss_drop.astype(np.float64),
            outcome=outcome.astype(np.int8),
        )
