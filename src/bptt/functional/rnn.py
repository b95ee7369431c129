"""Vanilla tanh RNN: one step, written plainly, and the whole sequence through the engine.

The step functions are the readable definition of the cell: ``functional/reference.py`` loops
over them (the reference BPTT that the engine is tested against and that
``analysis/gradflow.py`` records gradients with); ``analysis/insight.py`` reads activations
from them; and they are the place to learn the math.
Training and sampling run whole sequences through ``rnn_forward`` (the fast loop).

    z_t = x_t Wx + h_{t-1} Wh + b          x_t (N, D), Wx (D, H), Wh (H, H), b (H,)
    h_t = tanh(z_t)                        h_t (N, H)

Backward of one step, given dh_t = dL/dh_t:

    dz = dh_t * (1 - h_t**2)
    dx = dz Wx^T     dh_{t-1} = dz Wh^T     dWx = x^T dz     dWh = h_{t-1}^T dz     db = sum_N dz

Backward through time (seed 002):  dL/dh_{t-1} = [(1 - h_t**2) * dL/dh_t] Wh^T + (upstream at
t-1), and every weight gradient is the sum of its per-step terms over t.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt.functional import _validate as v
from bptt.functional.cells import RNN
from bptt.functional.recurrence import (
    RecurrenceCache,
    check_args,
    recurrence_backward,
    recurrence_forward,
)


class RNNStepCache(NamedTuple):
    x: np.ndarray        # (N, D)
    prev_h: np.ndarray   # (N, H)
    Wx: np.ndarray       # (D, H)
    Wh: np.ndarray       # (H, H)
    next_h: np.ndarray   # (N, H)


def rnn_step_forward(x: np.ndarray, prev_h: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                     b: np.ndarray) -> tuple[np.ndarray, RNNStepCache]:
    """One RNN step. x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H)."""
    fn = "rnn_step_forward"
    v.float_array(fn, "x", x, ("N", "D"))
    N, D = x.shape
    v.float_array(fn, "prev_h", prev_h, (N, "H"), x.dtype)
    H = prev_h.shape[1]
    v.float_array(fn, "Wx", Wx, (D, H), x.dtype)
    v.float_array(fn, "Wh", Wh, (H, H), x.dtype)
    v.float_array(fn, "b", b, (H,), x.dtype)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, RNNStepCache(x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h: np.ndarray, cache: RNNStepCache):
    """Backward of one step: dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx, dWh, db)."""
    v.cache_of("rnn_step_backward", cache, RNNStepCache, "rnn_step_forward")
    x, prev_h, Wx, Wh, next_h = cache
    v.float_array("rnn_step_backward", "dnext_h", dnext_h, next_h.shape, next_h.dtype)
    dz = dnext_h * (1.0 - next_h * next_h)          # (N, H)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


def rnn_forward(x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                mask: np.ndarray | None = None) -> tuple[np.ndarray, RecurrenceCache]:
    """Run a tanh RNN over a whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,), mask (N, T) bool or None.
    Returns h (N, T, H), the hidden state at every step, and the cache for ``rnn_backward``.
    Where mask is False the state is held (h_t = h_{t-1}), so h[:, -1] is each row's last valid
    state.
    """
    check_args("rnn_forward", x, h0, Wx, Wh, b, 1, mask)
    h, _, cache = recurrence_forward(RNN, x, h0, Wx, Wh, b, mask)
    return h, cache


def rnn_backward(dh: np.ndarray, cache: RecurrenceCache):
    """Backward of ``rnn_forward``: dh (N, T, H) = dL/dh_t from above at every step.

    Returns (dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,)).
    """
    _check_dh("rnn_backward", dh, cache, "rnn")
    dx, dh0, _, dWx, dWh, db, _ = recurrence_backward(dh, cache)
    return dx, dh0, dWx, dWh, db


def _check_dh(fn: str, dh: np.ndarray, cache: RecurrenceCache, cell: str) -> None:
    if not isinstance(cache, RecurrenceCache) or cache.cell.name != cell:
        got = cache.cell.name if isinstance(cache, RecurrenceCache) else type(cache).__name__
        raise ValueError(f"{fn}: cache comes from a '{got}' forward; pass the cache that "
                         f"{cell}_forward returned")
    H, T1, N = cache.Hs.shape
    v.float_array(fn, "dh", dh, (N, T1 - 1, H), cache.Hs.dtype)
