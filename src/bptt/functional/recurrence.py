"""The one backpropagation-through-time loop, generic over the cell.

Read ``reference.py`` first: the same computation as a plain loop over the step functions.

A cell is "two pre-activations, then a pointwise map":

    zx_t = x_t @ Wx + b                                      (N, G), G = gates * H
    zh_t = h_{t-1} @ Wh                                      (N, G)
    (h_t, extra_t) = cell(zx_t, zh_t, h_{t-1}, extra_{t-1})  pointwise

(the RNN and LSTM add the two; the GRU gates part of zh_t first). This module owns every matrix
product; a cell (``cells.py``, typed by its ``Cell`` protocol) supplies only its pointwise
forward, the recurrence-free factors of its backward, and one pointwise backward step. Every
cell shares all of the loop, masks and state carry below.

Internal layout ("feature-major": one column per sample, so every gate is a contiguous block):

    X2  (T*N, D)       the inputs, rows in time-major order (row t*N + n holds x[n, t]); made
                       for the input GEMM and again for dWx, not kept (the cache refers to x)
    XW  (G, T, N)      x_t @ Wx + b for every step: ONE GEMM before the loop
    Hs  (H, T+1, N)    hidden states; slot 0 holds h0
    dA  (R, T, N)      dL/dz'_t for every step (z' the internal pre-activation, below); R = G
                       rows when zx and zh get the same gradient, more when they differ (the
                       GRU's R = 4H holds both of its n rows); the cell says which G rows are
                       the input side and which the recurrent side

Per forward step: one GEMM ``Wh^T (G, H) @ h_{t-1} (H, N)`` for all gates, then the cell's
pointwise math (which adds the hoisted zx_t). Per backward step: the cell's pointwise gate
gradients and one GEMM ``dh_{t-1} = Wh (H, G) @ dz_t (G, N)`` (plus, for the GRU, its pointwise
z * dh). After the loop dWx, dWh, db and dx are single large GEMMs
over all T * N columns at once (``A[:, :T].reshape(F, T * N)`` is a view of every (F, T, N)
array). X2 is a transposed operand of its GEMMs, never transposed in memory, and dx comes out of
its GEMM time-major, (T, N, D), so only whole rows of D move to make it (N, T, D).

Batch of one: an (F, T, 1) array is stored time-major, as the transposed view of a (T, F, 1) one
(see ``steps_buffer``). Every step's column is then contiguous and the 2-D views above still
exist, so the same loop runs with no strided per-step access and no transposing copies.

Internally the gate blocks are permuted (the cell's ``x_layout`` / ``h_layout``) and the columns
of Wx, Wh and b that feed sigmoid gates are pre-scaled by 0.5, so that one ``tanh`` call
evaluates every gate: sigmoid(z) = 0.5 * tanh(z') + 0.5 with z' = 0.5 * z. The backward works
with the internal z' throughout (dL/dz' = 2 dL/dz on sigmoid rows, folded into the cell's
factors), so it multiplies by the same scaled weights and only halves the sigmoid blocks of dWx,
dWh, db at the end. Scaling by a power of two is exact in binary floating point.

Masks (N, T) of booleans: on a padded step (False) the state is held, h_t = h_{t-1} (and
c_t = c_{t-1}), and in the backward its gradient passes straight through to step t-1.

Inference: ``recurrence_forward(..., store=False)`` keeps nothing for a backward (the cell reuses
one step's buffers) and returns no cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from bptt.functional import _validate as v
from bptt.functional import fastpath
from bptt.functional.cells import AnyCell, GateLayout


@dataclass
class RecurrenceCache:
    """Everything the backward needs, in the internal layout (see the module docstring)."""

    cell: AnyCell                   # the cell (``cells.Cell``)
    x: np.ndarray                   # (N, T, D) the input, referenced (not copied) as the
                                    # other layers' caches and PyTorch do: modify none of
                                    # x, Wx, Wh in place between forward and backward
    Hs: np.ndarray                  # (H, T+1, N) hidden states, Hs[:, 0] = h0
    Wx: np.ndarray                  # (D, G) referenced, like x; the backward remakes the
    Wh: np.ndarray                  # (H, G) internal copies, so the cache holds none
    hold: np.ndarray | None         # (T, N) True where the state is held (mask False), or None
    holds: list                     # per step: hold[t], or None where no sample is held
    extra: Any = None               # the cell's forward state (see cells.py)
    bh: np.ndarray | None = field(default=None)   # (H,) the cell's recurrent bias, or None


class RecurrenceGrads(NamedTuple):
    """What ``recurrence_backward`` returns; each gradient has its argument's shape."""

    dx: np.ndarray                  # (N, T, D)
    dh0: np.ndarray                 # (N, H)
    dextra0: np.ndarray | None      # (N, H) the cell's own initial state (LSTM: c0), or None
    dWx: np.ndarray                 # (D, G)
    dWh: np.ndarray                 # (H, G)
    db: np.ndarray                  # (G,)
    dbh: np.ndarray | None          # (H,) the cell's recurrent bias (GRU: b_hn), or None


def steps_buffer(F: int, T: int, N: int, dtype, time_major: bool = False) -> np.ndarray:
    """An uninitialised (F, T, N) array for per-step columns ``A[:, t]`` (F, N).

    Stored feature-major (C order) so that ``A[:, :T].reshape(F, T * N)`` is a view for the
    post-loop GEMMs. For N == 1, or when asked (``time_major``: no 2-D view needed), it is the
    transposed view of a (T, F, N) array instead: each step's column is then contiguous, and for
    N == 1 the reshape is still a view (of transposed strides).
    """
    if N == 1 or time_major:
        return np.empty((T, F, N), dtype=dtype).transpose(1, 0, 2)
    return np.empty((F, T, N), dtype=dtype)


def _time_major_rows(x: np.ndarray) -> np.ndarray:
    """x (N, T, D) -> X2 (T*N, D), row t*N + n = x[n, t]: only whole rows of D move (a view if
    N == 1). The input GEMM and dWx use it as a transposed operand, never transposed in memory."""
    N, T, D = x.shape
    return x.transpose(1, 0, 2).reshape(T * N, D)


def _step_views(A: np.ndarray) -> list:
    """[A[:, t] for every t], made in one C-level pass: the loops index a list, not an array."""
    return list(A.swapaxes(0, 1))


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
    gname = "H" if gates == 1 else f"{gates}H"
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


def _layout(cell: AnyCell, recurrent: bool) -> GateLayout:
    return cell.h_layout if recurrent else cell.x_layout


def _to_internal(W: np.ndarray, cell: AnyCell, H: int, recurrent: bool = False) -> np.ndarray:
    """W (..., G) with its gate blocks in the cell's internal order and sigmoid blocks halved.

    ``recurrent`` picks the cell's layout for Wh (else the one for Wx and b; the RNN's and the
    LSTM's are the same). The same array when there is nothing to change (the RNN). ``np.take``
    on a block axis copies whole runs of H into a C-ordered result: several times faster than a
    gather of single columns, and than fancy indexing, whose result is block-major in memory and
    costly to reshape.
    """
    lay = _layout(cell, recurrent)
    if lay.identity:
        return W
    out = np.take(W.reshape(*W.shape[:-1], cell.gates, H), lay.order, axis=-2).reshape(W.shape)
    if lay.sigmoid:
        out *= _internal_scale(lay, H, W.dtype)                # contiguous: one pass
    return out


@functools.lru_cache(maxsize=64)
def _internal_scale(lay: GateLayout, H: int, dtype: np.dtype) -> np.ndarray:
    """(gates * H,) read-only: 0.5 on the internal sigmoid blocks, 1 elsewhere."""
    scale = np.ones(len(lay.order) * H, dtype=dtype)
    for k, p in enumerate(lay.order):
        if p in lay.sigmoid:
            scale[k * H:(k + 1) * H] = 0.5
    scale.flags.writeable = False
    return scale


def _recurrent_operand(Wh_f: np.ndarray, N: int) -> np.ndarray:
    """Wh_f^T (G, H), the forward's per-step GEMM operand: a view, or for float32 with N > 1 a
    contiguous copy (that sgemm measured 2-14 % faster with it; no gain in float64 or at N = 1)."""
    if Wh_f.dtype == np.float32 and N > 1:
        return np.ascontiguousarray(Wh_f.T)
    return Wh_f.T


def _weight_grad(A: np.ndarray, dA2: np.ndarray, cell: AnyCell, H: int,
                 recurrent: bool = False) -> np.ndarray:
    """A (R, T*N) @ dA2.T (T*N, G), the gradient of an internal weight, made public in place.

    Each run of internal gate blocks that is also consecutive in the public order is one GEMM
    written straight into its public columns (two for the LSTM), then the sigmoid blocks are
    halved: no permuting copy of the (R, G) result. ``recurrent`` as in ``_to_internal``.
    """
    lay = _layout(cell, recurrent)
    if lay.identity:
        return A @ dA2.T
    order, gates = lay.order, len(lay.order)
    out = np.empty((A.shape[0], dA2.shape[0]), dtype=dA2.dtype)
    k = 0
    while k < gates:
        k2 = k + 1                                   # extend the run while public blocks follow
        while k2 < gates and order[k2] == order[k2 - 1] + 1:
            k2 += 1
        p = order[k]
        np.matmul(A, dA2[k * H:k2 * H].T, out=out[:, p * H:(p + k2 - k) * H])
        k = k2
    half = dA2.dtype.type(0.5)
    for p in lay.sigmoid:
        out[:, p * H:(p + 1) * H] *= half
    return out


def _to_public(dW: np.ndarray, cell: AnyCell, H: int) -> np.ndarray:
    """A gradient with respect to internal Wx-side columns (b) -> the one for the public ones.

    The internal pre-activation of a sigmoid gate is z / 2, so its gradient is halved (in
    place: dW is the caller's own array); then the blocks go back to the public order.
    """
    lay = cell.x_layout
    if lay.identity:
        return dW
    if lay.sigmoid:
        dW *= _internal_scale(lay, H, dW.dtype)
    blocks = dW.reshape(*dW.shape[:-1], cell.gates, H)
    return np.take(blocks, np.argsort(lay.order), axis=-2).reshape(dW.shape)


def _held(mask: np.ndarray | None, T: int):
    """(hold (T, N) True where the state is held, or None; per step hold[t] or None if none is)."""
    if mask is None or mask.all():
        return None, [None] * T
    hold = np.ascontiguousarray(~mask.T)                                # (T, N)
    return hold, [hold[t] if hold[t].any() else None for t in range(T)]


Forward = tuple[np.ndarray, np.ndarray | None, RecurrenceCache]


@overload
def recurrence_forward(cell: AnyCell, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray,
                       Wh: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
                       c0: np.ndarray | None = None, *, bh: np.ndarray | None = None,
                       store: Literal[True] = True) -> Forward: ...
@overload
def recurrence_forward(cell: AnyCell, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray,
                       Wh: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
                       c0: np.ndarray | None = None, *, bh: np.ndarray | None = None,
                       store: Literal[False]) -> tuple[np.ndarray, np.ndarray | None, None]: ...
def recurrence_forward(cell: AnyCell, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray,
                       Wh: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
                       c0: np.ndarray | None = None, *, bh: np.ndarray | None = None,
                       store: bool = True) -> tuple[np.ndarray, np.ndarray | None,
                                                    RecurrenceCache | None]:
    """Run the cell over all T steps. Arguments are assumed validated (see ``check_args``).

    ``c0`` (N, H) is the cell's own initial state (the LSTM's c0), ``bh`` (H,) its recurrent
    bias (the GRU's b_hn); None where the cell has none. Returns (h (N, T, H), last_extra (N, H)
    or None, cache). ``last_extra`` is the cell's own final state (the LSTM cell state c_T), None
    for the others. With ``store=False`` (inference) nothing is kept for a backward and the cache
    is None; h and last_extra are the same.
    """
    if fastpath.handles(cell, x):                                      # compiled (bptt[fast])
        return fastpath.forward(cell, x, h0, Wx, Wh, b, mask, c0, bh, store)
    N, T, _D = x.shape
    H = h0.shape[1]
    G = cell.gates * H
    dt = x.dtype
    Wx_f, Wh_f = _to_internal(Wx, cell, H), _to_internal(Wh, cell, H, recurrent=True)
    WxT_f, WhT_f = Wx_f.T, _recurrent_operand(Wh_f, N)                # (G, D), (G, H)
    b_f = _to_internal(b, cell, H)[:, None]                            # (G, 1)

    X2 = _time_major_rows(x)                                           # (T*N, D)
    XW = np.matmul(WxT_f, X2.T)                                        # (G, T*N)
    del X2                                                             # remade by the backward
    XW += b_f
    XW = XW.reshape(G, T, N)
    Hs = steps_buffer(H, T + 1, N, dt, time_major=not store)           # slot 0 = h0
    Hs[:, 0] = h0.T
    h_steps, xw_steps = _step_views(Hs), _step_views(XW)               # (H, N), (G, N) per step
    hold, holds = _held(mask, T)

    st = cell.forward_begin(T, N, H, dt, c0, bh, store, h_steps)
    for t in range(T):
        zh = cell.preactivation(st, t)                                 # (G, N) buffer
        np.matmul(WhT_f, h_steps[t], out=zh)
        cell.forward_step(st, t, zh, xw_steps[t], h_steps[t + 1], holds[t])
        if holds[t] is not None:
            np.copyto(h_steps[t + 1], h_steps[t], where=holds[t])

    h = Hs[:, 1:].transpose(2, 1, 0).copy()                            # (N, T, H), never a view
    if not store:
        return h, cell.last_state(st), None
    cache = RecurrenceCache(cell, x, Hs, Wx, Wh, hold, holds, st, bh)
    return h, cell.last_state(st), cache


def _input_grad(dA2: np.ndarray, Wx_f: np.ndarray, N: int, T: int) -> np.ndarray:
    """dx (N, T, D) from dA2 (G, T*N) (time-major columns) and the internal Wx_f (D, G).

    dx = dA^T Wx^T, taken in chunks of whole steps (>= 1024 columns a GEMM) so that no (T*N, D)
    temporary as large as dx exists; each chunk comes out time-major and moves into dx by whole
    rows of D.
    """
    D = Wx_f.shape[0]
    dx = np.empty((N, T, D), dtype=dA2.dtype)
    steps = max(1, min(T, -(-max(1024, T * N // 8) // N)))
    for t0 in range(0, T, steps):
        t1 = min(T, t0 + steps)
        dX2 = dA2[:, t0 * N:t1 * N].T @ Wx_f.T                         # ((t1-t0)*N, D)
        dx[:, t0:t1] = dX2.reshape(t1 - t0, N, D).transpose(1, 0, 2)
    return dx


def recurrence_backward(dh: np.ndarray, cache: RecurrenceCache,
                        dlast_extra: np.ndarray | None = None) -> RecurrenceGrads:
    """Backpropagate through all T steps.

    dh (N, T, H) is dL/dh_t from above at every step (the loss's own dependence on each output);
    ``dlast_extra`` (N, H) is the gradient of the cell's final own state (LSTM: dL/dc_T).
    Returns ``RecurrenceGrads`` (dx (N, T, D), dh0 (N, H), dextra0 (N, H) or None, dWx (D, G),
    dWh (H, G), db (G,), dbh (H,) or None). The cache may be used for more than one backward.
    """
    if fastpath.owns(cache):                                           # a compiled forward's
        return fastpath.backward(dh, cache, dlast_extra)
    cell, Hs, x = cache.cell, cache.Hs, cache.x
    N, T, _D = x.shape
    H = Hs.shape[0]
    G = cell.gates * H
    dt = Hs.dtype

    dA = steps_buffer(cell.grad_blocks * H, T, N, dt)                  # dL/dz'_t, all steps
    one_side = cell.grad_blocks == cell.gates                          # zx, zh: same gradient
    dAx = dA if one_side else dA[cell.x_block * H:cell.x_block * H + G]   # input-side rows
    dAh = dA if one_side else dA[cell.h_block * H:cell.h_block * H + G]   # recurrent-side rows
    fac = cell.backward_factors(cache.extra, Hs, cache.hold, dA)       # recurrence-free factors
    carry = cell.backward_begin(fac, dlast_extra, H, N, dt)
    dHt = np.ascontiguousarray(dh.transpose(1, 2, 0))                  # (T, H, N)

    Wh_f = _to_internal(cache.Wh, cell, H, recurrent=True)             # (H, G)
    dAh_steps = _step_views(dAh)                                    # (G, N) per step
    dz_steps = list(dA.reshape(cell.grad_blocks, H, T, N).transpose(2, 0, 1, 3))  # (R/H, H, N)
    holds, direct = cache.holds, cell.direct
    dh_next = np.zeros((H, N), dtype=dt)                               # dL/dh_t via step t+1
    dh_tot = np.empty((H, N), dtype=dt)
    for t in reversed(range(T)):
        np.add(dHt[t], dh_next, out=dh_tot)                            # dL/dh_t, total
        cell.backward_step(fac, carry, t, dh_tot, dz_steps[t])         # writes dz'_t
        np.matmul(Wh_f, dAh_steps[t], out=dh_next)                     # (H, G) @ (G, N)
        if direct:
            cell.backward_direct(fac, t, dh_tot, dh_next)              # the GRU's z * dh
        if holds[t] is not None:
            np.copyto(dh_next, dh_tot, where=holds[t])                 # held: pass straight through

    # After the loop, in the order that keeps the fewest large arrays alive at once.
    del dHt, Wh_f
    dAx2 = dAx.reshape(G, T * N)                                       # views (see steps_buffer)
    dAh2 = dAx2 if one_side else dAh.reshape(G, T * N)
    Wx_f = _to_internal(cache.Wx, cell, H)                             # (D, G)
    dx = _input_grad(dAx2, Wx_f, N, T)                                  # (N, T, D)
    del Wx_f
    dWx = _weight_grad(_time_major_rows(x).T, dAx2, cell, H)           # (D, G)
    Hprev = Hs[:, :T].reshape(H, T * N)                                # h_{t-1} for every step
    dWh = _weight_grad(Hprev, dAh2, cell, H, recurrent=True)           # (H, G)
    db = _to_public(dAx2.sum(axis=1), cell, H)                         # (G,)
    dbh = None
    if cell.bias_block is not None:
        k = cell.bias_block
        dbh = dA[k * H:(k + 1) * H].reshape(H, T * N).sum(axis=1)      # (H,)
    dextra0 = cell.backward_end(carry)
    return RecurrenceGrads(dx, dh_next.T.copy(), dextra0, dWx, dWh, db, dbh)
