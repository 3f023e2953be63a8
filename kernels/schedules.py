"""Update schedules: full batch, per pattern (online) and minibatches of k patterns.

An epoch is one pass over all n patterns. Full batch (``batch_size=None``) takes one step per
epoch with the gradient of the whole set. A batch size k takes ceil(n / k) steps per epoch: the
net visits the patterns in its own order for that epoch and steps after each run of k patterns
(the last run holds the n mod k left over when k does not divide n; k >= n is one step on all
patterns, full batch up to the order of the sums). k = 1 is per-pattern (online) learning.

Each step's gradient is that of the batch's loss, reduced over the batch as the spec says: with
``reduction="mean"`` a per-pattern step uses one pattern's loss, so an epoch of n per-pattern
steps moves about n times as far as one full-batch step at the same learning rate; with ``sum``
(the convention of the 1980s papers) an epoch of per-pattern steps sums to the full-batch step to
first order. Optimizer steps (Adam's step counter) count updates, not epochs.

The order of net ``k`` at epoch ``e`` is ``streams.permutation(keys[k], e, n)``: a function of the
net's key alone, so the same net visits the same patterns whatever the population, the shard,
the thread count or the backend. Sweeps pass ``net_keys(seed, first_net, n_nets)``.
"""

from __future__ import annotations

import numpy as np

from .streams import bits, net_keys


def check_batch_size(batch_size) -> int | None:
    """None (full batch) or a positive integer number of patterns per step."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(
            f"batch_size must be None (full batch) or a positive integer, got {batch_size!r}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (1 = per pattern), got {batch_size!r}")
    return int(batch_size)


def check_keys(keys, n_nets: int) -> np.ndarray:
    """The nets' stream keys: uint64 of shape (n_nets,); None means ``net_keys(0, 0, n_nets)``."""
    if keys is None:
        return net_keys(0, 0, n_nets)
    if not (isinstance(keys, np.ndarray) and keys.dtype == np.uint64 and keys.shape == (n_nets,)):
        got = (keys.shape, keys.dtype) if isinstance(keys, np.ndarray) else type(keys).__name__
        raise ValueError(
            f"keys must be a uint64 array of shape (n_nets,) = ({n_nets},), e.g. "
            f"streams.net_keys(seed, first_net, n_nets), got {got}"
        )
    return np.ascontiguousarray(keys)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each step's run of patterns within an epoch's order."""
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def orders(keys: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """Every net's pattern order at ``epoch``: int64 array of shape (n_nets, n), row k equal to
    ``streams.permutation(keys[k], epoch, n)`` (the same Fisher-Yates, vectorised over nets)."""
    n_nets = keys.shape[0]
    order = np.broadcast_to(np.arange(n, dtype=np.int64), (n_nets, n)).copy()
    draws = bits(keys[:, None], epoch, np.arange(n, dtype=np.uint64)[None, :])
    rows = np.arange(n_nets)
    for i in range(n - 1, 0, -1):
        j = (draws[:, i] % np.uint64(i + 1)).astype(np.int64)
        swapped = order[rows, j]
        order[rows, j] = order[:, i]
        order[:, i] = swapped
    return order
