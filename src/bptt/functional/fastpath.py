"""Where the engine hands a sequence to the compiled fast path (``bptt[fast]``, numba).

Today: a batch of one (N = 1) through the vanilla RNN, the LSTM or the GRU, every dtype, masks,
c0 and b_hn included. There the NumPy loop's time is per-call overhead, and ``_compiled`` runs each
sequence's whole time loop as one compiled call (see its docstring). ``recurrence_forward``
asks ``handles(cell, x)`` and ``recurrence_backward`` asks ``owns(cache)``; everything else
takes the NumPy path, which is also the whole engine when numba is not installed.

The results are the engine's: the same shapes and semantics, h and every gradient a fresh array
(nothing returned aliases the cache), agreeing with the NumPy path to rounding (tests:
``tests/test_fastpath.py``). ``set_enabled(False)`` (or ``BPTT_FAST=0`` in the environment)
turns the fast path off.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from bptt.functional import recurrence as rec

_state = {"on": os.environ.get("BPTT_FAST", "1") != "0"
          and importlib.util.find_spec("numba") is not None}
CELLS = ("rnn", "lstm", "gru")


def _kernels():
    """The compiled kernels; importing them imports numba, so it happens on first use only."""
    from bptt.functional import _compiled
    return _compiled


def available() -> bool:
    """True when numba is installed and ``BPTT_FAST=0`` is not set."""
    return os.environ.get("BPTT_FAST", "1") != "0" and importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    return _state["on"]


def set_enabled(on: bool) -> bool:
    """Turn the compiled path on or off (on only where available); return the previous value."""
    prev = _state["on"]
    _state["on"] = bool(on) and available()
    return prev


def handles(cell, x: np.ndarray) -> bool:
    return _state["on"] and x.shape[0] == 1 and cell.name in CELLS


@dataclass
class Batch1:
    """``RecurrenceCache.extra`` of a compiled forward (layout: see ``_compiled``)."""

    Hs: np.ndarray              # (T+1, H)
    Cs: np.ndarray | None       # (T+1, H) LSTM cell states
    A: np.ndarray | None        # (T, 4H) LSTM gates i, f, g, o; GRU r, z, n, hn
    TC: np.ndarray | None       # (T, H) LSTM tanh(c_t)
    hold1: np.ndarray           # (T,) bool, or (0,) when nothing is held


def owns(cache) -> bool:
    return isinstance(cache.extra, Batch1)


def forward(cell, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
            b: np.ndarray, mask: np.ndarray | None, c0: np.ndarray | None,
            bh: np.ndarray | None, store: bool):
    """``recurrence_forward`` for N = 1: (h (1, T, H), last (1, H) or None, cache or None)."""
    K = _kernels()
    _, T, _ = x.shape
    H = h0.shape[1]
    dt = x.dtype
    hold, holds = rec._held(mask, T)
    hold1 = hold[:, 0].copy() if hold is not None else np.zeros(0, dtype=bool)
    XW = x[0] @ Wx                                     # (T, G)
    XW += b
    Hs = np.empty((T + 1, H), dtype=dt)
    Hs[0] = h0[0]
    Cs = A = TC = None
    last = None
    if cell.name == "rnn":
        K.rnn1_forward(XW, Wh, hold1, Hs)
    elif cell.name == "gru":
        A = np.empty((T, 4 * H), dtype=dt)
        K.gru1_forward(XW, Wh, bh, hold1, Hs, A)
    elif store:
        Cs = np.empty((T + 1, H), dtype=dt)
        Cs[0] = 0.0 if c0 is None else c0[0]
        A = np.empty((T, 4 * H), dtype=dt)
        TC = np.empty((T, H), dtype=dt)
        K.lstm1_forward(XW, Wh, hold1, Hs, Cs, A, TC)
        last = Cs[T][None].copy()
    else:
        c = np.zeros(H, dtype=dt) if c0 is None else c0[0].copy()
        K.lstm1_infer(XW, Wh, hold1, Hs, c)
        last = c[None]
    h = Hs[1:][None].copy()                             # (1, T, H), never a view
    if not store:
        return h, last, None
    cache = rec.RecurrenceCache(cell, x, Hs.T[:, :, None], Wx, Wh, hold, holds,
                                Batch1(Hs, Cs, A, TC, hold1), bh)
    return h, last, cache


def backward(dh: np.ndarray, cache, dlast: np.ndarray | None):
    """``recurrence_backward`` for a cache made by ``forward``."""
    K = _kernels()
    st, x, Wx, Wh = cache.extra, cache.x, cache.Wx, cache.Wh
    T1, H = st.Hs.shape
    dt = st.Hs.dtype
    dH = np.ascontiguousarray(dh[0])                    # (T, H)
    dZ = np.empty((T1 - 1, Wh.shape[1]), dtype=dt)      # (T, G)
    dh0 = np.empty(H, dtype=dt)
    dc0 = dbh = None
    if cache.cell.name == "gru":
        dZh = np.empty_like(dZ)
        K.gru1_backward(dH, st.Hs, st.A, Wh, st.hold1, dZ, dZh, dh0)
        dWh = st.Hs[:-1].T @ dZh                        # (H, 3H)
        dbh = dZh[:, 2 * H:].sum(axis=0)                # (H,)
    elif st.Cs is None:
        K.rnn1_backward(dH, st.Hs, Wh, st.hold1, dZ, dh0)
    else:
        dc_last = np.zeros(H, dtype=dt) if dlast is None else np.ascontiguousarray(dlast[0])
        dc0 = np.empty(H, dtype=dt)
        K.lstm1_backward(dH, dc_last, st.Cs, st.A, st.TC, Wh, st.hold1, dZ, dh0, dc0)
        dc0 = dc0[None]
    dx = (dZ @ Wx.T)[None]                              # (1, T, D)
    dWx = x[0].T @ dZ                                   # (D, G)
    if dbh is None:
        dWh = st.Hs[:-1].T @ dZ                         # (H, G)
    db = dZ.sum(axis=0)                                 # (G,)
    return rec.RecurrenceGrads(dx, dh0[None], dc0, dWx, dWh, db, dbh)
