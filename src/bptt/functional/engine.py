"""Public entry points onto the recurrence engine beyond the layer functions.

    infer(cell, x, h0, Wx, Wh, b, mask=None, c0=None, bh=None) -> (h (N, T, H), last or None)
        the forward pass without a cache for a backward (inference): one step's gate buffers,
        nothing stored; h and the cell's last own state (LSTM: c_T) equal the layer
        functions' results.
    gemm_floor(cell, mode, x, h0, Wx, Wh) -> callable
        the engine's matrix products alone, on the shapes, layouts and order the engine uses
        (see ``recurrence.py``): what a step would cost if every pointwise op, copy and Python
        line were free. Benchmarks use it as the engine's floor on the BLAS at hand.

``cell`` is a name: "rnn", "lstm" or "gru". Shapes are batch-first as everywhere: x (N, T, D),
h0 (N, H), Wx (D, G), Wh (H, G), b (G,), G = 4H for the LSTM, 3H for the GRU, H for the RNN;
c0 (N, H) the LSTM's initial cell state, bh (H,) the GRU's recurrent candidate bias b_hn.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bptt.functional import _validate as v
from bptt.functional import cells, fastpath
from bptt.functional import recurrence as rec
from bptt.functional.gru import GRU

CELLS = {"rnn": cells.RNN, "lstm": cells.LSTM, "gru": GRU}


def _cell(fn: str, name: str):
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"{fn}: unknown cell {name!r}; use one of {sorted(CELLS)}") from None


def infer(cell: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
          b: np.ndarray, mask: np.ndarray | None = None,
          c0: np.ndarray | None = None,
          bh: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward only, nothing kept for a backward -> (h (N, T, H), last own state or None)."""
    c = _cell("infer", cell)
    fn = f"{cell} infer"
    rec.check_args(fn, x, h0, Wx, Wh, b, c.gates, mask, c0)
    if cell == "gru":
        v.float_array(fn, "bh", bh, (h0.shape[1],), x.dtype)
    h, last, _ = rec.recurrence_forward(c, x, h0, Wx, Wh, b, mask, c0, bh=bh, store=False)
    return h, last


def gemm_floor(cell: str, mode: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray,
               Wh: np.ndarray, seed: int = 1) -> Callable[[], object]:
    """A callable that runs the engine's GEMMs of one forward ("infer") or training step.

    Inputs and buffers are made once (states and gate gradients random, from ``seed``). Forward:
    the input GEMM and T per-step GEMMs Wh^T h_{t-1}; "train" adds T per-step GEMMs Wh dz_t and
    the post-loop dx, dWx, dWh. The "train" callable returns (dx, dWx, dWh), "infer" the input
    projection (G, T*N).
    """
    c = _cell("gemm_floor", cell)
    if mode not in ("train", "infer"):
        raise ValueError(f"gemm_floor: mode {mode!r}; use 'train' or 'infer'")
    N, T, _D = x.shape
    H = h0.shape[1]
    G, dt = c.gates * H, x.dtype
    rng = np.random.default_rng(seed)
    Wx_f = rec._to_internal(Wx, c, H)                                     # (D, G)
    Wh_f = rec._to_internal(Wh, c, H, recurrent=True)                     # (H, G)
    X2 = rec._time_major_rows(x)                                          # (T*N, D)
    Hs = rec.steps_buffer(H, T + 1, N, dt, time_major=mode == "infer")
    Hs[...] = rng.uniform(-0.5, 0.5, Hs.shape)
    h_steps = rec._step_views(Hs)
    z = np.empty((G, N), dtype=dt)                                        # a step's z

    def forward():
        XW = np.matmul(Wx_f.T, X2.T)                                      # (G, T*N)
        WhT_f = rec._recurrent_operand(Wh_f, N)                           # (G, H)
        for t in range(T):
            np.matmul(WhT_f, h_steps[t], out=z)
        return XW

    if mode == "infer":
        return forward
    dA = rec.steps_buffer(G, T, N, dt)
    dA[...] = rng.uniform(-0.5, 0.5, dA.shape)
    dA_steps, dA2 = rec._step_views(dA), dA.reshape(G, T * N)
    dh_next = np.empty((H, N), dtype=dt)
    Hprev = Hs[:, :T].reshape(H, T * N)

    def train():
        forward()
        for t in reversed(range(T)):
            np.matmul(Wh_f, dA_steps[t], out=dh_next)
        return (rec._input_grad(dA2, Wx_f, N, T), rec._weight_grad(X2.T, dA2, c, H),
                rec._weight_grad(Hprev, dA2, c, H, recurrent=True))
    return train


def fast_status() -> dict:
    """Whether the compiled fast path (the ``bptt[fast]`` extra, numba) is installed and on,
    and what it covers."""
    return {"compiled": fastpath.enabled(), "available": fastpath.available(),
            "covers": f"batch 1, cells {', '.join(fastpath.CELLS)}"}
