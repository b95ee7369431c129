"""The one backpropagation-through-time loop, generic over the cell.

A cell is "pre-activation, then a pointwise map":

    z_t = x_t @ Wx + h_{t-1} @ Wh + b                       (N, G), G = gates * H
    (h_t, extra_t) = cell(z_t, h_{t-1}, extra_{t-1})         pointwise

This module owns every matrix product; a cell (``cells.py``) supplies only its pointwise forward,
the recurrence-free factors of its backward, and one pointwise backward step. RNN and LSTM share
all of the loop, masks and state carry below.

Internal layout ("feature-major": one column per sample, so every gate is a contiguous block):

    X2  (T*N, D)       the inputs, rows in time-major order (row t*N + n holds x[n, t])
    XW  (G, T, N)      x_t @ Wx + b for every step: ONE GEMM before the loop
    Hs  (H, T+1, N)    hidden states; slot 0 holds h0
    dA  (G, T, N)      dL/dz_t for every step, filled by the backward loop

Per forward step: one GEMM ``Wh^T (G, H) @ h_{t-1} (H, N)`` for all gates, one add, the cell's
pointwise math. Per backward step: the cell's pointwise gate gradients and one GEMM
``dh_{t-1} = Wh (H, G) @ dz_t (G, N)``. After the loop dWx, dWh, db and dx are single large GEMMs
over all T * N columns at once (``A[:, :T].reshape(F, T * N)`` is a view of every (F, T, N)
array). X2 is a transposed operand of its GEMMs, never transposed in memory, and dx comes out of
its GEMM time-major, (T, N, D), so only whole rows of D move to make it (N, T, D).

Batch of one: an (F, T, 1) array is stored time-major, as the transposed view of a (T, F, 1) one
(see ``steps_buffer``). Every step's column is then contiguous and the 2-D views above still
exist, so the same loop runs with no strided per-step access and no transposing copies.

Internally the gate blocks are permuted (the cell's ``order``) and the rows of sigmoid gates are
pre-scaled by 0.5, so that one ``tanh`` call evaluates every gate:
sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5. Scaling by 0.5 is exact in binary floating point.

Masks (N, T) of booleans: on a padded step (False) the state is held, h_t = h_{t-1} (and
c_t = c_{t-1}), and in the backward its gradient passes straight through to step t-1.

Inference: ``recurrence_forward(..., store=False)`` keeps nothing for a backward (the cell reuses
one step's buffers) and returns no cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as v


@dataclass
class RecurrenceCache:
    """Everything the backward needs, in the internal layout (see the module docstring)."""

    cell: Any                       # the Cell object
    X2: np.ndarray                  # (T*N, D) inputs, time-major rows
    Hs: np.ndarray                  # (H, T+1, N) hidden states, Hs[:, 0] = h0
    Wx_b: np.ndarray                # (D, G) Wx with internal gate order, unscaled
    Wh_b: np.ndarray                # (H, G) Wh with internal gate order, unscaled
    inv: np.ndarray | None          # (G,) inverse column permutation, None for identity
    hold: np.ndarray | None         # (T, N) True where the state is held (mask False)
    held_steps: np.ndarray | None   # (T,) True where any sample is held at step t
    extra: dict = field(default_factory=dict)   # the cell's own arrays (see cells.py)


def steps_buffer(F: int, T: int, N: int, dtype) -> np.ndarray:
    """An uninitialised (F, T, N) array for per-step columns ``A[:, t]`` (F, N).

    Stored feature-major (C order) so that ``A[:, :T].reshape(F, T * N)`` is a view for the
    post-loop GEMMs. For N == 1 it is the transposed view of a (T, F, 1) array instead: each
    step's column is then contiguous, and the reshape is still a view (of transposed strides).
    """
    if N == 1:
        return np.empty((T, F, 1), dtype=dtype).transpose(1, 0, 2)
    return np.empty((F, T, N), dtype=dtype)


def check_args(fn: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
               b: np.ndarray, gates: int, mask: np.ndarray | None = None,
               c0: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Validate the arguments of a sequence forward; return (N, T, D, H)."""
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, D = x.shape
    dt = x.dtype
    v.float_array(fn, "h0", h0, (N, "H"), dt)
    H = h0.shape[1]
    G = gates * H
    gname = "H" if gates == 1 else "4H"
    if isinstance(Wx, np.ndarray) and Wx.ndim == 2 and Wx.shape != (D, G):
        raise ValueError(f"{fn}: Wx has shape {Wx.shape}; it must be (D, {gname}) = {(D, G)} "
                         f"for x of shape {x.shape} and h0 of shape {h0.shape}")
    v.float_array(fn, "Wx", Wx, (D, G), dt)
    v.float_array(fn, "Wh", Wh, (H, G), dt)
    v.float_array(fn, "b", b, (G,), dt)
    if c0 is not None:
        v.float_array(fn, "c0", c0, (N, H), dt)
    if mask is not None:
        v.bool_mask(fn, "mask", mask, (N, T))
    return N, T, D, H


def _internal_weights(cell, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, H: int):
    """Permute gate blocks to the cell's internal order and pre-scale sigmoid rows by 0.5.

    Returns (WxT_f (G, D), WhT_f (G, H), b_f (G, 1), Wx_b (D, G), Wh_b (H, G), inv (G,) | None).
    """
    if cell.order == tuple(range(cell.gates)):
        cols = None
        Wx_b, Wh_b, b_i = Wx, Wh, b
    else:
        cols = np.concatenate([np.arange(k * H, (k + 1) * H) for k in cell.order])  # (G,)
        Wx_b, Wh_b, b_i = Wx[:, cols], Wh[:, cols], b[cols]
    if cell.sigmoid_blocks:
        scale = np.ones(cell.gates * H, dtype=Wx.dtype)                            # (G,)
        scale[: cell.sigmoid_blocks * H] = 0.5
        WxT_f, WhT_f, b_f = (Wx_b * scale).T, (Wh_b * scale).T, (b_i * scale)[:, None]
    else:
        WxT_f, WhT_f, b_f = Wx_b.T, Wh_b.T, b_i[:, None]
    inv = None if cols is None else np.argsort(cols)
    return WxT_f, WhT_f, b_f, Wx_b, Wh_b, inv


def recurrence_forward(cell, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                       b: np.ndarray, mask: np.ndarray | None = None,
                       c0: np.ndarray | None = None, *, store: bool = True):
    """Run the cell over all T steps. Arguments are assumed validated (see ``check_args``).

    Returns (h (N, T, H), last_extra (N, H) or None, cache). ``last_extra`` is the cell's own
    final state (the LSTM cell state c_T), None for a vanilla RNN. With ``store=False`` (inference)
    nothing is kept for a backward and the cache is None; h and last_extra are the same.
    """
    N, T, D = x.shape
    H = h0.shape[1]
    G = cell.gates * H
    dt = x.dtype
    WxT_f, WhT_f, b_f, Wx_b, Wh_b, inv = _internal_weights(cell, Wx, Wh, b, H)

    X2 = x.transpose(1, 0, 2).reshape(T * N, D)                        # (T*N, D), a view if N == 1
    XW = np.matmul(WxT_f, X2.T)                                        # (G, T*N)
    XW += b_f
    XW = XW.reshape(G, T, N)
    Hs = steps_buffer(H, T + 1, N, dt)                                 # slot 0 = h0
    Hs[:, 0] = h0.T

    hold = held_steps = None
    if mask is not None and not mask.all():
        hold = np.ascontiguousarray(~mask.T)                           # (T, N)
        held_steps = hold.any(axis=1)                                  # (T,)

    st = cell.forward_begin(T, N, H, dt, c0, store)
    for t in range(T):
        h_prev = Hs[:, t]                                              # (H, N)
        z = cell.preactivation(st, t, Hs)                              # (G, N) buffer
        np.matmul(WhT_f, h_prev, out=z)
        z += XW[:, t]
        ht = hold[t] if held_steps is not None and held_steps[t] else None
        cell.forward_step(st, t, z, h_prev, Hs[:, t + 1], ht)
        if ht is not None:
            np.copyto(Hs[:, t + 1], h_prev, where=ht)

    h = Hs[:, 1:].transpose(2, 1, 0).copy()                            # (N, T, H), never a view
    if not store:
        return h, cell.last_state(st), None
    if np.may_share_memory(X2, x):
        X2 = X2.copy()                                                 # the cache owns its inputs
    cache = RecurrenceCache(cell, X2, Hs, Wx_b, Wh_b, inv, hold, held_steps, st)
    return h, cell.last_state(st), cache


def recurrence_backward(dh: np.ndarray, cache: RecurrenceCache,
                        dlast_extra: np.ndarray | None = None):
    """Backpropagate through all T steps.

    dh (N, T, H) is dL/dh_t from above at every step (the loss's own dependence on each output);
    ``dlast_extra`` (N, H) is the gradient of the cell's final own state (LSTM: dL/dc_T).
    Returns (dx (N, T, D), dh0 (N, H), dextra0 (N, H) or None, dWx (D, G), dWh (H, G), db (G,)).
    The cache may be used for more than one backward.
    """
    cell, Hs, X2 = cache.cell, cache.Hs, cache.X2
    H, T1, N = Hs.shape
    T = T1 - 1
    D = X2.shape[1]
    G = cell.gates * H
    dt = Hs.dtype

    dHt = np.ascontiguousarray(dh.transpose(1, 2, 0))                  # (T, H, N)
    dA = steps_buffer(G, T, N, dt)                                     # dL/dz_t, all steps
    fac = cell.backward_factors(cache.extra, Hs, cache.hold, dA)       # recurrence-free factors
    carry = cell.backward_begin(fac, dlast_extra, H, N, dt)

    dA4 = dA.reshape(cell.gates, H, T, N)
    dh_next = np.zeros((H, N), dtype=dt)                               # dL/dh_t via step t+1
    dh_tot = np.empty((H, N), dtype=dt)
    for t in reversed(range(T)):
        np.add(dHt[t], dh_next, out=dh_tot)                            # dL/dh_t, total
        cell.backward_step(fac, carry, t, dh_tot, dA4[:, :, t])        # writes dz_t (gates, H, N)
        np.matmul(cache.Wh_b, dA[:, t], out=dh_next)                   # (H, G) @ (G, N)
        if cache.held_steps is not None and cache.held_steps[t]:
            np.copyto(dh_next, dh_tot, where=cache.hold[t])            # held: pass straight through

    dA2 = dA.reshape(G, T * N)                                         # a view (see steps_buffer)
    Hprev = Hs[:, :T].reshape(H, T * N)                                # h_{t-1} for every step
    dWx = X2.T @ dA2.T                                                 # (D, G)
    dWh = Hprev @ dA2.T                                                # (H, G)
    db = dA2.sum(axis=1)                                               # (G,)
    dX2 = dA2.T @ cache.Wx_b.T                                         # (T*N, D), time-major rows
    dx = np.ascontiguousarray(dX2.reshape(T, N, D).transpose(1, 0, 2))  # (N, T, D)
    if cache.inv is not None:
        inv = cache.inv                                                # back to public order
        dWx, dWh, db = np.take(dWx, inv, axis=1), np.take(dWh, inv, axis=1), db[inv]
    dextra0 = cell.backward_end(carry)
    return dx, np.ascontiguousarray(dh_next.T), dextra0, dWx, dWh, db
