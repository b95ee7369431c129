"""Pooling over time under a mask: pick one step per row, or take the masked max.

Shapes: N batch, T time, D features. ``mask`` (N, T) bool marks valid steps (None = all valid);
every row needs at least one valid step. The masked mean is ``temporal_mean_forward`` in
``temporal.py`` (seed 003's average over time); this module adds the other two poolings a
sequence classifier uses:

    last valid   out[n] = x[n, last(n)]            last(n)  = max {t : mask[n, t]}
    first valid  out[n] = x[n, first(n)]           first(n) = min {t : mask[n, t]}
    masked max   out[n, d] = max_{t : mask[n, t]} x[n, t, d]

Backward: the gradient of a picked entry is routed back to the one step it came from,

    dx[n, t, d] = dout[n, d]  if t is the step picked for (n, d),  else 0

(for the max, the first step attaining it; ties have measure zero for real-valued inputs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt.functional import _validate as v


def last_valid_index(mask: np.ndarray) -> np.ndarray:
    """(N, T) bool -> (N,) int: the index of each row's last True."""
    T = mask.shape[1]
    return T - 1 - np.argmax(mask[:, ::-1], axis=1)


def first_valid_index(mask: np.ndarray) -> np.ndarray:
    """(N, T) bool -> (N,) int: the index of each row's first True."""
    return np.argmax(mask, axis=1)


class PickCache(NamedTuple):
    idx: np.ndarray        # (N,) the step picked in each row
    shape: tuple           # (N, T, D)
    dtype: np.dtype


def _check(fn: str, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, _ = x.shape
    if mask is None:
        return np.ones((N, T), dtype=bool)
    return v.bool_mask(fn, "mask", mask, (N, T))


def temporal_pick_forward(x: np.ndarray, idx: np.ndarray):
    """out[n] = x[n, idx[n]].   x (N, T, D), idx (N,) ints in [0, T) -> out (N, D)."""
    fn = "temporal_pick_forward"
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, _ = x.shape
    v.int_array(fn, "idx", idx, (N,))
    v.in_range(fn, "idx", idx, T)
    return x[np.arange(N), idx], PickCache(idx, x.shape, x.dtype)


def temporal_pick_backward(dout: np.ndarray, cache: PickCache) -> np.ndarray:
    """dout (N, D) -> dx (N, T, D), zero except dx[n, idx[n]] = dout[n]."""
    idx, (N, T, D), dtype = cache
    v.float_array("temporal_pick_backward", "dout", dout, (N, D), dtype)
    dx = np.zeros((N, T, D), dtype=dtype)
    dx[np.arange(N), idx] = dout
    return dx


def temporal_last_forward(x: np.ndarray, mask: np.ndarray | None = None):
    """Each row's state at its last valid step (seed 002's final hidden state).

    x (N, T, D), mask (N, T) bool or None -> (out (N, D), cache); backward is
    ``temporal_pick_backward``. With the engine's masks (state held on padded steps) this equals
    x[:, -1], but the gradient lands on the step that produced it.
    """
    mask = _check("temporal_last_forward", x, mask)
    return temporal_pick_forward(x, last_valid_index(mask))


def temporal_first_forward(x: np.ndarray, mask: np.ndarray | None = None):
    """Each row's value at its first valid step: the final state of a reverse-direction RNN.

    x (N, T, D), mask (N, T) bool or None -> (out (N, D), cache); backward is
    ``temporal_pick_backward``.
    """
    mask = _check("temporal_first_forward", x, mask)
    return temporal_pick_forward(x, first_valid_index(mask))


temporal_last_backward = temporal_pick_backward
temporal_first_backward = temporal_pick_backward


class MaxCache(NamedTuple):
    arg: np.ndarray        # (N, D) the step of each maximum
    shape: tuple           # (N, T, D)
    dtype: np.dtype


def temporal_max_forward(x: np.ndarray, mask: np.ndarray | None = None):
    """Masked max over time: out[n, d] = max over valid t of x[n, t, d].

    x (N, T, D), mask (N, T) bool or None -> (out (N, D), cache). Padded steps never win
    (they are treated as -inf).
    """
    mask = _check("temporal_max_forward", x, mask)
    _N, _T, _D = x.shape
    xm = np.where(mask[:, :, None], x, -np.inf)                       # (N, T, D)
    arg = np.argmax(xm, axis=1)                                        # (N, D)
    out = np.take_along_axis(x, arg[:, None, :], axis=1)[:, 0]         # (N, D)
    return out, MaxCache(arg, x.shape, x.dtype)


def temporal_max_backward(dout: np.ndarray, cache: MaxCache) -> np.ndarray:
    """dout (N, D) -> dx (N, T, D): each dout[n, d] goes to the step of its maximum."""
    arg, (N, T, D), dtype = cache
    v.float_array("temporal_max_backward", "dout", dout, (N, D), dtype)
    dx = np.zeros((N, T, D), dtype=dtype)
    np.put_along_axis(dx, arg[:, None, :], dout[:, None, :], axis=1)
    return dx
