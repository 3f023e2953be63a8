"""A scalar reference for shortcut nets and per-pattern or minibatch training: plain Python loops,
one net, one pattern at a time, written from the equations (not from the kernels).

The net: sigmoid units throughout; hidden layer l computes a_l = sigmoid(a_{l-1} W_l + b_l); the
output computes sigmoid(a_{L-1} W_L + b_L + sum over sources q of a_q S_q), where the sources
are the input and every hidden layer but the last when ``shortcut`` is on. Parameter layout (the
contract of kernels/spec.py, restated): per layer its weights row-major (fan_in by fan_out),
then its biases; then the shortcut blocks S_q, each layers[q] by n_out row-major, from q = 0 up.

Training: each epoch visits the patterns in the order ``streams.permutation(key, epoch, n)`` (the
draws' own oracle) and takes an SGD step after each run of ``batch_size`` patterns (the last run
shorter), on the loss of that run: the mean (or sum) over its patterns of the per-pattern loss.
"""

import math

from backprop_bench.kernels import streams


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def unpack(column, layers, shortcut):
    """Lists W[l][i][j], b[l][j] and S[q][i][j] of one net's parameters."""
    column = [float(v) for v in column]
    pos = 0
    W, b, S = [], [], []
    for fan_in, fan_out in zip(layers[:-1], layers[1:], strict=True):
        W.append([[column[pos + i * fan_out + j] for j in range(fan_out)] for i in range(fan_in)])
        pos += fan_in * fan_out
        b.append(column[pos : pos + fan_out])
        pos += fan_out
    n_out = layers[-1]
    sources = range(len(layers) - 2) if shortcut else range(0)
    for q in sources:
        S.append([[column[pos + i * n_out + j] for j in range(n_out)] for i in range(layers[q])])
        pos += layers[q] * n_out
    assert pos == len(column)
    return W, b, S


def pack(W, b, S):
    column = []
    for Wl, bl in zip(W, b, strict=True):
        column += [w for row in Wl for w in row] + list(bl)
    for Sq in S:
        column += [w for row in Sq for w in row]
    return column


def forward(x, W, b, S):
    """Activations of every layer for one pattern: a[0] = x, ..., a[-1] the outputs; and the
    output logits."""
    a = [list(x)]
    n_layers = len(W)
    for layer in range(n_layers):
        fan_out = len(b[layer])
        z = []
        for j in range(fan_out):
            total = b[layer][j]
            for i, value in enumerate(a[layer]):
                total += value * W[layer][i][j]
            if layer == n_layers - 1:
                for q, Sq in enumerate(S):
                    for i, value in enumerate(a[q]):
                        total += value * Sq[i][j]
            z.append(total)
        a.append([sigmoid(v) for v in z])
    return a, z


def pattern_loss(z_out, a_out, y, loss):
    if loss == "bce":
        return sum(max(z, 0) + math.log1p(math.exp(-abs(z))) - t * z
                   for z, t in zip(z_out, y, strict=True))  # fmt: skip
    return sum(0.5 * (v - t) ** 2 for v, t in zip(a_out, y, strict=True))


def pattern_gradients(x, y, W, b, S, loss):
    """dL/dW, dL/db, dL/dS of one pattern's loss (same nesting as W, b, S)."""
    a, _ = forward(x, W, b, S)
    n_layers = len(W)
    out = a[-1]
    if loss == "bce":
        delta = [v - t for v, t in zip(out, y, strict=True)]
    else:
        delta = [(v - t) * v * (1 - v) for v, t in zip(out, y, strict=True)]
    delta_out = delta
    gW = [None] * n_layers
    gb = [None] * n_layers
    gS = [[[a[q][i] * d for d in delta_out] for i in range(len(a[q]))] for q in range(len(S))]
    for layer in range(n_layers - 1, -1, -1):
        gW[layer] = [[a[layer][i] * d for d in delta] for i in range(len(a[layer]))]
        gb[layer] = list(delta)
        if layer > 0:
            below = []
            for i in range(len(a[layer])):
                total = sum(delta[j] * W[layer][i][j] for j in range(len(delta)))
                if layer < len(S):  # this hidden layer feeds the output directly too
                    total += sum(delta_out[j] * S[layer][i][j] for j in range(len(delta_out)))
                below.append(total * a[layer][i] * (1 - a[layer][i]))
            delta = below
    return gW, gb, gS


def gradient(X, Y, column, layers, shortcut, loss, reduction="mean"):
    """The gradient of the whole set's loss, as a flat list laid out like theta."""
    W, b, S = unpack(column, layers, shortcut)
    total = None
    for x, y in zip(X, Y, strict=True):
        g = pack(*pattern_gradients(x, y, W, b, S, loss))
        total = g if total is None else [u + v for u, v in zip(total, g, strict=True)]
    scale = 1.0 / len(X) if reduction == "mean" else 1.0
    return [v * scale for v in total]


def total_loss(X, Y, column, layers, shortcut, loss, reduction="mean"):
    W, b, S = unpack(column, layers, shortcut)
    total = 0.0
    for x, y in zip(X, Y, strict=True):
        a, z = forward(x, W, b, S)
        total += pattern_loss(z, a[-1], y, loss)
    return total / len(X) if reduction == "mean" else total


def train(X, Y, column, layers, shortcut, loss, lr, epochs, batch_size, key, reduction="mean"):
    """SGD on runs of ``batch_size`` patterns in the net's own order; returns the final column."""
    column = [float(v) for v in column]
    n = len(X)
    for epoch in range(epochs):
        order = [int(i) for i in streams.permutation(key, epoch, n)]
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            g = gradient([X[i] for i in rows], [Y[i] for i in rows], column, layers, shortcut,
                         loss, reduction)  # fmt: skip
            column = [p - lr * d for p, d in zip(column, g, strict=True)]
    return column
