"""Layers applied at every time step: temporal affine, masked mean over time, embedding.

Shapes: N batch, T time, D input features, M output features, V vocabulary size.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt.functional import _validate as v


class AffineCache(NamedTuple):
    x: np.ndarray   # (N, T, D)
    w: np.ndarray   # (D, M)


def temporal_affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """out[n, t] = x[n, t] @ w + b.   x (N, T, D), w (D, M), b (M,) -> out (N, T, M)."""
    fn = "temporal_affine_forward"
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, D = x.shape
    v.float_array(fn, "w", w, (D, "M"), x.dtype)
    M = w.shape[1]
    v.float_array(fn, "b", b, (M,), x.dtype)
    out = (x.reshape(N * T, D) @ w).reshape(N, T, M)
    out += b
    return out, AffineCache(x, w)


def temporal_affine_backward(dout: np.ndarray, cache: AffineCache):
    """dout (N, T, M) -> (dx (N, T, D), dw (D, M), db (M,)); dw and db sum over N and T."""
    v.cache_of("temporal_affine_backward", cache, AffineCache, "temporal_affine_forward")
    x, w = cache
    N, T, D = x.shape
    M = w.shape[1]
    v.float_array("temporal_affine_backward", "dout", dout, (N, T, M), x.dtype)
    d2 = dout.reshape(N * T, M)
    dx = (d2 @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ d2
    return dx, dw, d2.sum(axis=0)


class MeanCache(NamedTuple):
    weights: np.ndarray  # (N, T) mask / count, the weight of each step in the mean
    D: int


def temporal_mean_forward(x: np.ndarray, mask: np.ndarray | None = None):
    """Masked average over time (seed 003): out[n] = sum_t mask[n, t] x[n, t] / sum_t mask[n, t].

    x (N, T, D), mask (N, T) bool or None (all steps valid) -> out (N, D). Divides by each row's
    count of valid steps, not by T; a row without a valid step is an error.
    """
    fn = "temporal_mean_forward"
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, D = x.shape
    if mask is None:
        mask = np.ones((N, T), dtype=bool)
    v.bool_mask(fn, "mask", mask, (N, T))
    weights = mask / mask.sum(axis=1, keepdims=True)              # (N, T)
    weights = weights.astype(x.dtype)
    out = np.einsum("nt,ntd->nd", weights, x)
    return out, MeanCache(weights, D)


def temporal_mean_backward(dout: np.ndarray, cache: MeanCache) -> np.ndarray:
    """dout (N, D) -> dx (N, T, D) = dout[n] * mask[n, t] / count[n]."""
    v.cache_of("temporal_mean_backward", cache, MeanCache, "temporal_mean_forward")
    weights, D = cache
    N, _T = weights.shape
    v.float_array("temporal_mean_backward", "dout", dout, (N, D), weights.dtype)
    return weights[:, :, None] * dout[:, None, :]


class EmbeddingCache(NamedTuple):
    x: np.ndarray        # (N, T) int
    shape: tuple         # (V, D)
    dtype: np.dtype


def embedding_forward(x: np.ndarray, W: np.ndarray):
    """out[n, t] = W[x[n, t]].   x (N, T) integer ids in [0, V), W (V, D) -> out (N, T, D)."""
    fn = "embedding_forward"
    v.float_array(fn, "W", W, ("V", "D"))
    v.int_array(fn, "x", x, ("N", "T"))
    v.in_range(fn, "x", x, W.shape[0])
    return W[x], EmbeddingCache(x, W.shape, W.dtype)


def embedding_backward(dout: np.ndarray, cache: EmbeddingCache) -> np.ndarray:
    """dout (N, T, D) -> dW (V, D); rows of repeated indices accumulate."""
    v.cache_of("embedding_backward", cache, EmbeddingCache, "embedding_forward")
    x, (V, D), dtype = cache
    v.float_array("embedding_backward", "dout", dout, (*x.shape, D), dtype)
    dW = np.zeros((V, D), dtype=dtype)
    np.add.at(dW, x.reshape(-1), dout.reshape(-1, D))
    return dW
