"""Squared-error loss for regression heads, returning the loss and its gradient in one call.

For predictions x and targets y, both (N, M):

    loss = sum_{n, m} (x[n, m] - y[n, m])**2 / N          dloss/dx = 2 (x - y) / N

i.e. the squared error summed over the M outputs and averaged over the batch (with M = 1 this is
the mean squared error the adding problem reports), matching ``softmax_loss``'s mean over N.
"""

from __future__ import annotations

import numpy as np

from bptt.functional import _validate as v


def mse_loss(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """x (N, M) predictions, y (N, M) targets (same dtype) -> (loss, dx (N, M))."""
    fn = "mse_loss"
    v.float_array(fn, "x", x, ("N", "M"))
    v.float_array(fn, "y", y, x.shape, x.dtype)
    N = x.shape[0]
    diff = x - y                                                # (N, M)
    loss = float(np.vdot(diff, diff)) / N
    return loss, diff * (2.0 / N)
