"""The tutorial's 2-4-1 training loop, transcribed one net at a time: the oracle for both backends.

Written from the tutorial's text (shapes ``W1 (2, 4)``, ``b1 (1, 4)``, ``W2 (4, 1)``, ``b2 (1, 1)``,
``dz2 = a2 - y``, gradients divided by m), not from the project's kernels. The sigmoid is the
tutorial's ``1 / (1 + exp(-z))``, which the kernels do not use (it overflows for z < -709; the
logits of these tests stay far from that).
"""

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def unpack(column):
    """One net's parameters from a column of theta (layout of kernels.spec)."""
    W1 = column[0:8].reshape(2, 4)
    b1 = column[8:12].reshape(1, 4)
    W2 = column[12:16].reshape(4, 1)
    b2 = column[16:17].reshape(1, 1)
    return W1.copy(), b1.copy(), W2.copy(), b2.copy()


def forward(X, W1, b1, W2, b2):
    z1 = X @ W1 + b1
    a1 = sigmoid(z1)
    z2 = a1 @ W2 + b2
    a2 = sigmoid(z2)
    return z1, a1, z2, a2


def compute_loss(y, z2):
    # the tutorial's binary cross-entropy, taken from logits so that it never needs clipping
    return np.mean(np.logaddexp(0, z2) - y * z2)


def backward(X, y, z1, a1, z2, a2, W1, W2):
    m = y.shape[0]
    dz2 = a2 - y
    dW2 = (a1.T @ dz2) / m
    db2 = np.mean(dz2, axis=0, keepdims=True)
    da1 = dz2 @ W2.T
    dz1 = da1 * a1 * (1 - a1)
    dW1 = (X.T @ dz1) / m
    db1 = np.mean(dz1, axis=0, keepdims=True)
    return dW1, db1, dW2, db2, dz1, da1, dz2


def train(X, y, column, lr, epochs):
    """The tutorial's loop: forward, loss, backward, update, ``epochs`` times. Returns the final
    parameters as a column of theta and the loss before each update."""
    W1, b1, W2, b2 = unpack(column)
    losses = []
    for _ in range(epochs):
        z1, a1, z2, a2 = forward(X, W1, b1, W2, b2)
        losses.append(compute_loss(y, z2))
        dW1, db1, dW2, db2, *_ = backward(X, y, z1, a1, z2, a2, W1, W2)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    final = np.concatenate([W1.ravel(), b1.ravel(), W2.ravel(), b2.ravel()])
    return final, np.array(losses)
