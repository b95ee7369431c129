"""Pointwise activations and their derivatives written in terms of the outputs.

    sigmoid(z) = 1 / (1 + exp(-z)) = 0.5 * tanh(0.5 * z) + 0.5
    d sigmoid / dz = s * (1 - s)        where s = sigmoid(z)
    d tanh / dz    = 1 - t**2           where t = tanh(z)

The tanh form of the sigmoid never overflows (exp(-z) does for z < -88 in float32) and is the
faster of the two in NumPy.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic sigmoid through tanh; ``out`` may be ``z`` itself. Same shape as z."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def dsigmoid_from_output(s: np.ndarray) -> np.ndarray:
    """s * (1 - s): derivative of the sigmoid given its output s. Same shape as s."""
    return s * (1.0 - s)


def dtanh_from_output(t: np.ndarray) -> np.ndarray:
    """1 - t**2: derivative of tanh given its output t. Same shape as t."""
    return 1.0 - t * t


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (shifted by the max). Same shape as z."""
    e = z - z.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(z)) computed as z - max - log(sum(exp(z - max))). Same shape as z."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
