"""The readable BPTT loop: forward and backward of a whole sequence, one step function per step.

Read this before ``recurrence.py``. It computes exactly what the engine computes (the tests hold
the two to 1e-12 in float64), written the way the seeds derive it, with none of the engine's
layout tricks: a Python ``for t in range(T)`` over ``*_step_forward`` and a
``for t in reversed(range(T))`` over ``*_step_backward``, batch-first arrays, public gate order.

Forward (seeds 002 and 003, section 3.1), for a tanh RNN:

    z_t = x_t Wx + h_{t-1} Wh + b          x_t (N, D), h_{t-1} (N, H), Wx (D, H), Wh (H, H)
    h_t = tanh(z_t)                        h_t (N, H)

and for an LSTM (seed 001, eq. 1-10, with its update gate Γu = i, forget gate Γf = f, candidate
c̃ = g, output gate Γo = o, and its a = h):

    [z_i, z_f, z_g, z_o] = x_t Wx + h_{t-1} Wh + b          Wx (D, 4H), Wh (H, 4H), b (4H,)
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o)      g = tanh(z_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

and for a GRU (PyTorch's form, see ``gru.py``; its extra parameter b_hn (H,) is passed by
keyword and its gradient comes back as ``db_hn``):

    [zx_r, zx_z, zx_n] = x_t Wx + b     [zh_r, zh_z, zh_n] = h_{t-1} Wh    Wx (D, 3H), Wh (H, 3H)
    r, z = sigmoid(zx_r + zh_r), sigmoid(zx_z + zh_z)
    n = tanh(zx_n + r * (zh_n + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

Backward through time (seed 003, section 3.2; seed 004's ``dh = Why^T dy + dhnext``). h_t feeds
two things: the layer above at step t (its gradient ``dh[:, t]``, given) and step t+1. So the
total gradient arriving at h_t is

    dL/dh_t = dh[:, t] + dL/dh_t|via step t+1          (the second term is 0 at t = T-1)

and step t's backward turns it into dL/dh_{t-1}|via step t, which the next iteration (t-1) adds
to its own upstream gradient. An LSTM carries dL/dc_t the same way (only step t+1 reads c_t
directly; step t's own use of c_t, through h_t = o * tanh(c_t), is inside its step backward).
Every weight is shared by all steps, so its gradient is the sum of the per-step terms:

    dWx = sum_t x_t^T dz_t      dWh = sum_t h_{t-1}^T dz_t      db = sum_t sum_N dz_t

Masks (N, T) bool, the engine's contract: on a padded step (False) the state is held,
h_t = h_{t-1} and c_t = c_{t-1}; in the backward the gradient arriving at h_t (and c_t) passes
straight through to step t-1, and the step itself receives zero, so it adds nothing to any
gradient. A padded batch therefore reproduces each sequence run alone.

A cell plugs in by one entry in ``STEP_CELLS``: its step forward and backward, adapted to a
state tuple (``("h",)`` or ``("h", "c")``) and, for the GRU, its extra parameter b_hn. Nothing
else in the loop knows which cell it runs.

Use: ``reference_forward`` / ``reference_backward`` (the sequence API, with dL/dh_t and dL/dc_t
recorded at every step, which ``bptt.analysis.gradflow`` plots); the tests check the engine
against it; ``docs/reference-loop.md`` puts it beside the fast loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from bptt.functional import _validate as v
from bptt.functional.gru import gru_step_backward, gru_step_forward
from bptt.functional.lstm import lstm_step_backward, lstm_step_forward
from bptt.functional.rnn import rnn_step_backward, rnn_step_forward

State = tuple[np.ndarray, ...]          # the carried state: (h,) or (h, c), each (N, H)


class StepCell(NamedTuple):
    """One cell's step functions, adapted to a state tuple so that the loop is cell-agnostic.

    forward(x_t (N, D), state, Wx, Wh, b, *extra) -> (next state, step cache)
    backward(dstate, step cache) -> (dx_t (N, D), dprev_state, dWx_t, dWh_t, db_t, *dextra_t)

    ``dstate`` holds dL/d(each state component of step t's output); ``dprev_state`` the same for
    step t's input state (the previous step's output). ``extra`` names the cell's parameters
    beyond Wx, Wh, b (the GRU's ("b_hn",)), in that order.
    """

    name: str
    gates: int                          # G = gates * H columns of Wx, Wh and b
    state: tuple[str, ...]              # names of the carried state: ("h",) or ("h", "c")
    forward: Callable[..., tuple[State, Any]]
    backward: Callable[..., tuple[Any, ...]]
    extra: tuple[str, ...] = ()         # more parameters: ("b_hn",) for the GRU


def _rnn_forward(x, state, Wx, Wh, b):
    (h,) = state
    next_h, cache = rnn_step_forward(x, h, Wx, Wh, b)
    return (next_h,), cache


def _rnn_backward(dstate, cache):
    (dh,) = dstate
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dh, cache)
    return dx, (dprev_h,), dWx, dWh, db


def _lstm_forward(x, state, Wx, Wh, b):
    h, c = state
    next_h, next_c, cache = lstm_step_forward(x, h, c, Wx, Wh, b)
    return (next_h, next_c), cache


def _lstm_backward(dstate, cache):
    dh, dc = dstate
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dh, dc, cache)
    return dx, (dprev_h, dprev_c), dWx, dWh, db


def _gru_forward(x, state, Wx, Wh, b, b_hn):
    (h,) = state
    next_h, cache = gru_step_forward(x, h, Wx, Wh, b, b_hn)
    return (next_h,), cache


def _gru_backward(dstate, cache):
    (dh,) = dstate
    dx, dprev_h, dWx, dWh, db, db_hn = gru_step_backward(dh, cache)
    return dx, (dprev_h,), dWx, dWh, db, db_hn


STEP_CELLS: dict[str, StepCell] = {
    "rnn": StepCell("rnn", 1, ("h",), _rnn_forward, _rnn_backward),
    "lstm": StepCell("lstm", 4, ("h", "c"), _lstm_forward, _lstm_backward),
    "gru": StepCell("gru", 3, ("h",), _gru_forward, _gru_backward, ("b_hn",)),
}


class ReferenceCache(NamedTuple):
    """What ``reference_backward`` needs: the step caches, in order, and the mask."""

    cell: StepCell
    steps: list                         # T step caches, steps[t] from step t's forward
    mask: np.ndarray | None             # (N, T) bool or None
    shape: tuple[int, int, int, int]    # (N, T, D, H)
    dtype: np.dtype                     # of x and every array of the forward


class ReferenceGrads(NamedTuple):
    """Gradients of a whole sequence, and the gradient that reached every step's state."""

    dx: np.ndarray                      # (N, T, D)
    dh0: np.ndarray                     # (N, H)
    dc0: np.ndarray | None              # (N, H) for an LSTM, else None
    dWx: np.ndarray                     # (D, G)
    dWh: np.ndarray                     # (H, G)
    db: np.ndarray                      # (G,)
    dh_steps: np.ndarray                # (N, T, H) total dL/dh_t (upstream + via step t+1)
    dc_steps: np.ndarray | None         # (N, T, H) dL/dc_t arriving from step t+1, LSTM only
    db_hn: np.ndarray | None = None     # (H,) for a GRU, else None


def step_cell(name: str, fn: str = "reference") -> StepCell:
    """The ``STEP_CELLS`` entry called ``name``, or a one-line error listing the known cells."""
    if name not in STEP_CELLS:
        known = ", ".join(repr(k) for k in sorted(STEP_CELLS))
        raise ValueError(f"{fn}: unknown cell {name!r}; use one of {known}")
    return STEP_CELLS[name]


def _check_args(fn, sc, x, h0, Wx, Wh, b, mask, c0, probe) -> tuple[int, int, int, int]:
    v.float_array(fn, "x", x, ("N", "T", "D"))
    N, T, D = x.shape
    v.float_array(fn, "h0", h0, (N, "H"), x.dtype)
    H = h0.shape[1]
    G = sc.gates * H
    for name, a, shape in (("Wx", Wx, (D, G)), ("Wh", Wh, (H, G)), ("b", b, (G,))):
        v.float_array(fn, name, a, shape, x.dtype)
    if c0 is not None:
        v.float_array(fn, "c0", c0, (N, H), x.dtype)
    if probe is not None:
        v.float_array(fn, "probe", probe, (N, T, H), x.dtype)
    if mask is not None:
        v.bool_mask(fn, "mask", mask, (N, T))
    return N, T, D, H


def reference_forward(cell: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                      b: np.ndarray, mask: np.ndarray | None = None,
                      c0: np.ndarray | None = None, *, b_hn: np.ndarray | None = None,
                      probe: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, np.ndarray | None, ReferenceCache]:
    """Run ``cell`` ("rnn", "lstm", ...) over a sequence, one step function call per step.

    x (N, T, D), h0 (N, H), Wx (D, G), Wh (H, G), b (G,), mask (N, T) bool or None, c0 (N, H)
    (cells with a cell state only; default zeros), b_hn (H,) (the GRU's, required there).
    Returns (h (N, T, H), c_last (N, H) or None, cache), the same as the engine's
    ``*_forward_with_state``.

    ``probe`` (N, T, H), for tests: added to h_t after step t (so it feeds the layer above and
    step t+1), which makes dL/dprobe_t = dL/dh_t, checkable by central differences.
    """
    fn = "reference_forward"
    sc = step_cell(cell, fn)
    if c0 is not None and "c" not in sc.state:
        raise ValueError(f"{fn}: c0 was given but a {cell!r} cell has no cell state; drop c0")
    N, T, D, H = _check_args(fn, sc, x, h0, Wx, Wh, b, mask, c0, probe)
    if ("b_hn" in sc.extra) != (b_hn is not None):
        raise ValueError(f"{fn}: a {cell!r} cell " + ("needs b_hn (H,)" if b_hn is None else
                                                      "has no b_hn; drop it"))
    extra: tuple[np.ndarray, ...] = ()
    if b_hn is not None:
        extra = (v.float_array(fn, "b_hn", b_hn, (H,), x.dtype),)

    state: State = (h0,) if len(sc.state) == 1 else (h0, np.zeros_like(h0) if c0 is None else c0)
    hs = np.empty((N, T, H), dtype=x.dtype)
    steps = []
    for t in range(T):
        # z_t = x_t Wx + h_{t-1} Wh + b;  RNN: h_t = tanh(z_t);  LSTM: c_t = f * c_{t-1} + i * g,
        # h_t = o * tanh(c_t)  (seed 003 3.1; seed 001 eq. 1-10);  GRU: h_t = (1 - z) n + z h_{t-1}
        new, cache = sc.forward(np.ascontiguousarray(x[:, t]), state, Wx, Wh, b, *extra)
        if mask is not None:                                    # padded: h_t = h_{t-1} (c too)
            keep = mask[:, t, None]                             # (N, 1)
            new = tuple(np.where(keep, s_new, s) for s_new, s in zip(new, state))
        if probe is not None:
            new = (new[0] + probe[:, t], *new[1:])
        state = new
        hs[:, t] = state[0]
        steps.append(cache)
    c_last = state[1] if len(state) > 1 else None
    return hs, c_last, ReferenceCache(sc, steps, mask, (N, T, D, H), x.dtype)


def reference_backward(dh: np.ndarray, cache: ReferenceCache,
                       dc_last: np.ndarray | None = None) -> ReferenceGrads:
    """Backpropagate through time with the step backward functions, last step first.

    dh (N, T, H) is dL/dh_t from the layer above at every step; dc_last (N, H) or None (zeros)
    is dL/dc_T for a cell with a cell state. Returns ``ReferenceGrads``.
    """
    fn = "reference_backward"
    v.cache_of(fn, cache, ReferenceCache, "reference_forward")
    sc, mask = cache.cell, cache.mask
    N, T, D, H = cache.shape
    dtype = cache.dtype
    v.float_array(fn, "dh", dh, (N, T, H), dtype)
    has_c = len(sc.state) > 1
    if dc_last is not None:
        if not has_c:
            raise ValueError(f"{fn}: dc_last was given but a {sc.name!r} cell has no cell "
                             f"state; drop dc_last")
        v.float_array(fn, "dc_last", dc_last, (N, H), dtype)

    dx = np.empty((N, T, D), dtype=dtype)
    dWx = dWh = db = db_hn = None
    dh_steps = np.empty((N, T, H), dtype=dtype)
    dc_steps = np.empty((N, T, H), dtype=dtype) if has_c else None
    dh_next = np.zeros((N, H), dtype=dtype)                     # dL/dh_t via step t+1
    dc_next = None
    if has_c:                                                   # dL/dc_t via step t+1
        dc_next = np.zeros((N, H), dtype=dtype) if dc_last is None else dc_last.copy()
    for t in reversed(range(T)):
        dh_t = dh[:, t] + dh_next                               # dL/dh_t = dh_t + via step t+1
        dstate: State = (dh_t,) if dc_next is None else (dh_t, dc_next)    # None: no c
        dh_steps[:, t] = dh_t
        if dc_steps is not None:
            dc_steps[:, t] = dc_next
        keep = None if mask is None else mask[:, t, None]       # (N, 1)
        step_in = dstate if keep is None else tuple(d * keep for d in dstate)
        # RNN: dz = dL/dh_t * (1 - h_t**2); dx_t = dz Wx^T; dL/dh_{t-1} = dz Wh^T (seed 004's
        # dhraw, dhnext). LSTM: seed 001 2.1.4-2.1.10, dL/dc_{t-1} = dL/dc_t(total) * f.
        # GRU: dL/dh_{t-1} = dL/dh_t * z + dzh Wh^T, dzh's n block scaled by r (gru.py).
        dx[:, t], dprev, dWx_t, dWh_t, db_t, *dextra = sc.backward(step_in, cache.steps[t])
        if dextra:                                              # the GRU's db_hn: summed too
            db_hn = dextra[0] if db_hn is None else db_hn + dextra[0]
        if keep is not None:                                    # held: pass straight through
            dprev = tuple(np.where(keep, dp, d) for dp, d in zip(dprev, dstate))
        dh_next = dprev[0]                                      # dL/dh_{t-1} via step t
        dc_next = dprev[1] if has_c else None                   # dL/dc_{t-1} = dc_t * f
        if dWx is None:
            dWx, dWh, db = dWx_t, dWh_t, db_t                   # shared weights: sum over t
        else:
            dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    assert dWx is not None and dWh is not None and db is not None       # T >= 1 steps
    return ReferenceGrads(dx, dh_next, dc_next, dWx, dWh, db, dh_steps, dc_steps, db_hn)
