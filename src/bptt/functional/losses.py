"""Softmax cross-entropy losses, returning the loss and its gradient in one call.

For scores z and target class y, with p = softmax(z):

    loss = -log p[y]          dloss/dz = p - onehot(y)      (seed 002's  Z - 1_m)
"""

from __future__ import annotations

import numpy as np

from bptt.functional import _validate as v
from bptt.functional.activations import log_softmax


def softmax_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over the batch.  x (N, C) scores, y (N,) ints in [0, C) -> (loss, dx)."""
    fn = "softmax_loss"
    v.float_array(fn, "x", x, ("N", "C"))
    N, C = x.shape
    v.int_array(fn, "y", y, (N,))
    v.in_range(fn, "y", y, C)
    logp = log_softmax(x, axis=1)                               # (N, C)
    rows = np.arange(N)
    loss = -logp[rows, y].sum() / N
    dx = np.exp(logp)
    dx[rows, y] -= 1.0
    dx /= N
    return float(loss), dx


def temporal_softmax_loss(x: np.ndarray, y: np.ndarray,
                          mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Cross-entropy at every valid step, summed over steps and divided by N.

    x (N, T, V) scores, y (N, T) ints in [0, V) (only checked where mask is True; padded
    positions may hold any value), mask (N, T) bool or None (all valid) -> (loss, dx (N, T, V)).
    """
    fn = "temporal_softmax_loss"
    v.float_array(fn, "x", x, ("N", "T", "V"))
    N, T, V = x.shape
    v.int_array(fn, "y", y, (N, T))
    if mask is not None:
        v.bool_mask(fn, "mask", mask, (N, T), need_valid_row=False)
    v.in_range(fn, "y", y, V, where=mask)
    yy = y.reshape(N * T)
    if mask is not None:
        yy = np.where(mask.reshape(N * T), yy, 0)               # padded targets: any valid index
    logp = log_softmax(x.reshape(N * T, V), axis=1)             # (N*T, V)
    rows = np.arange(N * T)
    picked = logp[rows, yy]                                     # (N*T,)
    dx = np.exp(logp)
    dx[rows, yy] -= 1.0
    if mask is not None:
        m = mask.reshape(N * T)
        picked = picked * m
        dx *= m[:, None]
    loss = -picked.sum() / N
    dx /= N
    return float(loss), dx.reshape(N, T, V)
