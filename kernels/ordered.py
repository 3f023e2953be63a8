"""Sums in a fixed order, whatever the population's size: the NumPy backend's products and sums.

NumPy chooses a reduction's and an einsum's loop order, and with it the order in which their
floating-point terms are added, from the arrays' shapes: the same net rounded differently when
trained alone, in a shard of 37 nets or among 200 (by 1e-16 to 5e-13 an epoch, which Adam, or
tanh at a high learning rate, grows over a thousand epochs into another outcome). These add each
term to the running total in index order, by elementwise operations over the nets, so that each
net's arithmetic is its own and a sweep's results do not depend on how its nets are grouped.
Arrays carry the net axis last, as everywhere in the backend.
"""

from __future__ import annotations

import numpy as np

ROWS = 8  # partial sums of a long total (a fixed order: which row goes to which sum)


def total(x: np.ndarray, axes: int = 1) -> np.ndarray:
    """The sum over the first ``axes`` axes of x (flattened: its terms), in a fixed order: up to
    ROWS terms one after another; more, into ROWS partial sums (term t into sum t mod ROWS, the
    last incomplete round into the first sums) added one after another at the end."""
    terms = x.reshape(-1, *x.shape[axes:])
    n = terms.shape[0]
    if n > ROWS:
        partial = terms[:ROWS].copy()
        whole = n - n % ROWS
        for start in range(ROWS, whole, ROWS):
            partial += terms[start : start + ROWS]
        partial[: n - whole] += terms[whole:]
        terms = partial
    out = terms[0].copy()
    for row in terms[1:]:
        out += row
    return out


def forward_product(a: np.ndarray, W: np.ndarray) -> np.ndarray:
    """z[s, j, k] = sum over i of a[s, i, k] W[i, j, k] (einsum "sik,ijk->sjk"), in order of i."""
    z = a[:, 0, None, :] * W[0]
    for i in range(1, W.shape[0]):
        z += a[:, i, None, :] * W[i]
    return z


def weight_gradient(a: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """g[i, j, k] = sum over s of a[s, i, k] dz[s, j, k] (einsum "sik,sjk->ijk"), in order of s."""
    g = a[0, :, None, :] * dz[0]
    for s in range(1, a.shape[0]):
        g += a[s, :, None, :] * dz[s]
    return g


def backward_product(dz: np.ndarray, W: np.ndarray) -> np.ndarray:
    """da[s, i, k] = sum over j of dz[s, j, k] W[i, j, k] (einsum "sjk,ijk->sik"), in order of
    j."""
    da = dz[:, 0, None, :] * W[:, 0]
    for j in range(1, W.shape[1]):
        da += dz[:, j, None, :] * W[:, j]
    return da
