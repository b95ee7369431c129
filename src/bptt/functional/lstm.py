"""LSTM: one step, written plainly, and the whole sequence through the engine.

The step functions are the readable definition of the cell: ``functional/reference.py`` loops
over them (the reference BPTT that the engine is tested against and that
``analysis/gradflow.py`` records gradients with); ``analysis/insight.py`` reads activations
from them; and they are the place to learn the math.
Training and sampling run whole sequences through ``lstm_forward_with_state`` (the fast loop).

Gates along 4H in the order i, f, g, o (PyTorch's); in seed 001's notation i = Γu (update),
f = Γf (forget), g = c̃ (candidate), o = Γo (output), and h is seed 001's a.

    z = x Wx + h_prev Wh + b                x (N, D), Wx (D, 4H), Wh (H, 4H), b (4H,)
    i = sigmoid(z[:, 0:H])     f = sigmoid(z[:, H:2H])
    g = tanh(z[:, 2H:3H])      o = sigmoid(z[:, 3H:4H])
    c = f * c_prev + i * g                 (N, H)
    h = o * tanh(c)                        (N, H)

Backward of one step, given dh = dL/dh and dc = dL/dc from above:

    dc_total = dc + dh * o * (1 - tanh(c)**2)
    do = dh * tanh(c)       di = dc_total * g       dg = dc_total * i       df = dc_total * c_prev
    dz = [di * i(1-i), df * f(1-f), dg * (1-g**2), do * o(1-o)]         (N, 4H)
    dc_prev = dc_total * f        dh_prev = dz Wh^T        dx = dz Wx^T
    dWx = x^T dz        dWh = h_prev^T dz        db = sum_N dz
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bptt.functional import _validate as v
from bptt.functional.activations import sigmoid
from bptt.functional.cells import LSTM
from bptt.functional.recurrence import (
    RecurrenceCache,
    check_args,
    recurrence_backward,
    recurrence_forward,
)
from bptt.functional.rnn import _check_dh


class LSTMStepCache(NamedTuple):
    x: np.ndarray        # (N, D)
    prev_h: np.ndarray   # (N, H)
    prev_c: np.ndarray   # (N, H)
    Wx: np.ndarray       # (D, 4H)
    Wh: np.ndarray       # (H, 4H)
    gates: np.ndarray    # (N, 4H) post-activation i, f, g, o
    tanh_c: np.ndarray   # (N, H)


def lstm_step_forward(x: np.ndarray, prev_h: np.ndarray, prev_c: np.ndarray, Wx: np.ndarray,
                      Wh: np.ndarray, b: np.ndarray):
    """One LSTM step -> (next_h (N, H), next_c (N, H), cache)."""
    fn = "lstm_step_forward"
    v.float_array(fn, "x", x, ("N", "D"))
    N, D = x.shape
    v.float_array(fn, "prev_h", prev_h, (N, "H"), x.dtype)
    H = prev_h.shape[1]
    v.float_array(fn, "prev_c", prev_c, (N, H), x.dtype)
    v.float_array(fn, "Wx", Wx, (D, 4 * H), x.dtype)
    v.float_array(fn, "Wh", Wh, (H, 4 * H), x.dtype)
    v.float_array(fn, "b", b, (4 * H,), x.dtype)
    gates = x @ Wx + prev_h @ Wh + b                            # (N, 4H) pre-activations
    sigmoid(gates[:, : 2 * H], out=gates[:, : 2 * H])           # i, f
    np.tanh(gates[:, 2 * H: 3 * H], out=gates[:, 2 * H: 3 * H])  # g
    sigmoid(gates[:, 3 * H:], out=gates[:, 3 * H:])             # o
    i, f, g, o = np.split(gates, 4, axis=1)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, LSTMStepCache(x, prev_h, prev_c, Wx, Wh, gates, tanh_c)


def lstm_step_backward(dnext_h: np.ndarray, dnext_c: np.ndarray, cache: LSTMStepCache):
    """Backward of one step -> (dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx, dWh, db)."""
    v.cache_of("lstm_step_backward", cache, LSTMStepCache, "lstm_step_forward")
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    fn = "lstm_step_backward"
    v.float_array(fn, "dnext_h", dnext_h, tanh_c.shape, x.dtype)
    v.float_array(fn, "dnext_c", dnext_c, tanh_c.shape, x.dtype)
    i, f, g, o = np.split(gates, 4, axis=1)
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
    dz = np.concatenate([
        dc * g * i * (1.0 - i),                 # dz_i
        dc * prev_c * f * (1.0 - f),            # dz_f
        dc * i * (1.0 - g * g),                 # dz_g
        dnext_h * tanh_c * o * (1.0 - o),       # dz_o
    ], axis=1)                                  # (N, 4H)
    return dz @ Wx.T, dz @ Wh.T, dc * f, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


def lstm_forward(x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, RecurrenceCache]:
    """Run an LSTM over a whole sequence with c0 = 0.

    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,), mask (N, T) bool or None.
    Returns h (N, T, H) and the cache for ``lstm_backward``. For a given c0 and the final cell
    state, use ``lstm_forward_with_state`` / ``lstm_backward_with_state``.
    """
    check_args("lstm_forward", x, h0, Wx, Wh, b, 4, mask)
    h, _, cache = recurrence_forward(LSTM, x, h0, Wx, Wh, b, mask)
    return h, cache


def lstm_backward(dh: np.ndarray, cache: RecurrenceCache):
    """Backward of ``lstm_forward``: dh (N, T, H) -> (dx, dh0, dWx, dWh, db)."""
    _check_dh("lstm_backward", dh, cache, "lstm")
    dx, dh0, _, dWx, dWh, db, _ = recurrence_backward(dh, cache)
    return dx, dh0, dWx, dWh, db


def lstm_forward_with_state(x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                            Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                            mask: np.ndarray | None = None):
    """LSTM over a sequence from a given (h0, c0) -> (h (N, T, H), c_last (N, H), cache).
    c0 None starts from a zero cell state.

    ``c_last`` is the final cell state (each row's last valid one under a mask), to carry into
    the next chunk together with h[:, -1] (truncated BPTT). The cache also works with
    ``lstm_backward`` (which then treats dL/dc_last as zero).
    """
    check_args("lstm_forward_with_state", x, h0, Wx, Wh, b, 4, mask, c0=c0)
    return recurrence_forward(LSTM, x, h0, Wx, Wh, b, mask, c0=c0)


def lstm_backward_with_state(dh: np.ndarray, dc_last: np.ndarray | None, cache: RecurrenceCache):
    """Backward of ``lstm_forward_with_state``.

    dh (N, T, H), dc_last (N, H) or None (= zeros) -> (dx, dh0, dc0, dWx, dWh, db).
    """
    fn = "lstm_backward_with_state"
    _check_dh(fn, dh, cache, "lstm")
    if dc_last is not None:
        H, _, N = cache.Hs.shape
        v.float_array(fn, "dc_last", dc_last, (N, H), cache.Hs.dtype)
    dx, dh0, dc0, dWx, dWh, db, _ = recurrence_backward(dh, cache, dc_last)
    return dx, dh0, dc0, dWx, dWh, db
