"""Parameter-holding layers built on ``bptt.functional``.

Each layer keeps its arrays in ``self.params`` (name -> array) and has

    out, cache = layer.forward(...)
    dx, grads = layer.backward(dout, cache)      # grads keyed like layer.params

Caches are returned, never stored on the layer, so one layer can run several forwards before
their backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt import functional as F
from bptt.functional.cells import GATES
from bptt.nn.init import recurrent_weights, xavier_uniform

CELLS = GATES                    # cell name -> gate blocks per hidden unit (the engine's table)


def collect_params(**layers) -> dict[str, np.ndarray]:
    """One flat dict "<prefix>.<name>" -> array over the layers given (None entries skipped)."""
    return {f"{prefix}.{k}": v for prefix, layer in layers.items() if layer is not None
            for k, v in layer.params.items()}


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; use one of {sorted(CELLS)}")
    return cell


class Embedding:
    """Token ids (N, T) -> vectors (N, T, D) by row lookup in W (V, D), W ~ N(0, 1)."""

    def __init__(self, V: int, D: int, rng: np.random.Generator, dtype=np.float64):
        self.params = {"W": rng.standard_normal((V, D)).astype(dtype)}

    def forward(self, x: np.ndarray):
        return F.embedding_forward(x, self.params["W"])

    def backward(self, dout: np.ndarray, cache) -> tuple[None, dict]:
        return None, {"W": F.embedding_backward(dout, cache)}


class TemporalAffine:
    """(N, T, D) -> (N, T, M): out = x @ w + b at every step; w Xavier uniform, b zero."""

    def __init__(self, D: int, M: int, rng: np.random.Generator, dtype=np.float64):
        self.params = {"w": xavier_uniform(rng, D, M, dtype), "b": np.zeros(M, dtype=dtype)}

    def forward(self, x: np.ndarray):
        return F.temporal_affine_forward(x, self.params["w"], self.params["b"])

    def backward(self, dout: np.ndarray, cache):
        dx, dw, db = F.temporal_affine_backward(dout, cache)
        return dx, {"w": dw, "b": db}


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator):
    """Inverted dropout: keep each entry with probability 1 - p and scale it by 1 / (1 - p).

    Returns (out, keep) where keep (same shape as x) is the scaled mask, reused by the backward:
    dx = dout * keep.
    """
    keep = (rng.random(x.shape) >= p).astype(x.dtype)
    keep /= 1.0 - p
    return x * keep, keep


def dropout_backward(dout: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """dx = dout * keep (the scaled mask from the forward)."""
    return dout * keep


@dataclass
class StackCache:
    layers: list          # per-layer functional caches
    keeps: list           # per-layer dropout masks applied to that layer's input (or None)
    N: int
    learned_state: bool   # True when the initial state came from the learned h0 / c0


class RecurrentStack:
    """``num_layers`` RNN or LSTM layers, with optional dropout between layers.

    Parameters of layer k: ``l{k}.Wx`` (D_k, G), ``l{k}.Wh`` (H, G), ``l{k}.b`` (G,), and with
    ``learn_h0`` also ``l{k}.h0`` (H,) (and ``l{k}.c0`` for an LSTM), a learned initial state
    shared by every sequence (seed 002), used when no state is passed in.

    A state is a list with one ``(h, c)`` pair per layer, h and c (N, H) (c is None for an RNN).
    """

    def __init__(self, D: int, H: int, cell: str = "lstm", num_layers: int = 1,
                 dropout: float = 0.0, learn_h0: bool = False,
                 rng: np.random.Generator | None = None, dtype=np.float64,
                 forget_bias: float = 1.0):
        self.cell = check_cell(cell)
        if num_layers < 1:
            raise ValueError(f"num_layers is {num_layers}; it must be at least 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout is {dropout}; it must be in [0, 1)")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.D, self.H, self.num_layers, self.dropout = D, H, num_layers, dropout
        self.learn_h0, self.dtype = learn_h0, np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        for k in range(num_layers):
            Wx, Wh, b = recurrent_weights(rng, D if k == 0 else H, H, CELLS[cell], forget_bias,
                                          dtype)
            self.params.update({f"l{k}.Wx": Wx, f"l{k}.Wh": Wh, f"l{k}.b": b})
            if learn_h0:
                self.params[f"l{k}.h0"] = np.zeros(H, dtype=dtype)
                if cell == "lstm":
                    self.params[f"l{k}.c0"] = np.zeros(H, dtype=dtype)

    def initial_state(self, N: int) -> list:
        """The state used when none is given: zeros, or the learned h0/c0 broadcast to N rows."""
        out = []
        for k in range(self.num_layers):
            if self.learn_h0:
                h = np.repeat(self.params[f"l{k}.h0"][None], N, axis=0)
                c = (np.repeat(self.params[f"l{k}.c0"][None], N, axis=0)
                     if self.cell == "lstm" else None)
            else:
                h = np.zeros((N, self.H), dtype=self.dtype)
                c = np.zeros((N, self.H), dtype=self.dtype) if self.cell == "lstm" else None
            out.append((h, c))
        return out

    def forward(self, x: np.ndarray, state: list | None = None, mask: np.ndarray | None = None,
                train: bool = False, rng: np.random.Generator | None = None):
        """x (N, T, D) -> (h (N, T, H) of the top layer, final state, cache).

        Dropout (rate ``self.dropout``) is applied to the input of every layer above the first
        when ``train`` is True; it then needs ``rng``.
        """
        N = x.shape[0] if isinstance(x, np.ndarray) and x.ndim == 3 else 0
        given = state is not None
        if state is None:
            state = self.initial_state(N)
        elif len(state) != self.num_layers:
            raise ValueError(f"state has {len(state)} layers; this stack has {self.num_layers}")
        caches, keeps, final = [], [], []
        h = x
        for k in range(self.num_layers):
            keep = None
            if k > 0 and train and self.dropout > 0.0:
                if rng is None:
                    raise ValueError("dropout in training needs rng (a np.random.Generator)")
                h, keep = dropout_forward(h, self.dropout, rng)
            h0, c0 = state[k]
            p = self.params
            if self.cell == "lstm":
                h, c_last, cache = F.lstm_forward_with_state(h, h0, c0, p[f"l{k}.Wx"],
                                                             p[f"l{k}.Wh"], p[f"l{k}.b"], mask)
            else:
                h, cache = F.rnn_forward(h, h0, p[f"l{k}.Wx"], p[f"l{k}.Wh"], p[f"l{k}.b"], mask)
                c_last = None
            caches.append(cache)
            keeps.append(keep)
            final.append((h[:, -1].copy(), c_last))
        return h, final, StackCache(caches, keeps, N, self.learn_h0 and not given)

    def backward(self, dh: np.ndarray, cache: StackCache, dstate: list | None = None):
        """dh (N, T, H) of the top layer -> (dx (N, T, D), grads, dstate0).

        ``dstate`` optionally gives dL/d(final state) per layer as (dh_last, dc_last) pairs
        (dh_last is added to dh[:, -1]). ``dstate0`` holds dL/d(initial state) per layer; with
        ``learn_h0`` the grads of ``l{k}.h0``/``l{k}.c0`` are its sums over the batch.
        """
        grads: dict[str, np.ndarray] = {}
        dstate0: list = [None] * self.num_layers
        d = dh
        for k in reversed(range(self.num_layers)):
            dh_last, dc_last = (None, None) if dstate is None else dstate[k]
            if dh_last is not None:
                d = d.copy()
                d[:, -1] += dh_last
            if self.cell == "lstm":
                dx, dh0, dc0, dWx, dWh, db = F.lstm_backward_with_state(d, dc_last,
                                                                        cache.layers[k])
            else:
                dx, dh0, dWx, dWh, db = F.rnn_backward(d, cache.layers[k])
                dc0 = None
            grads.update({f"l{k}.Wx": dWx, f"l{k}.Wh": dWh, f"l{k}.b": db})
            if self.learn_h0:
                learned = cache.learned_state
                grads[f"l{k}.h0"] = dh0.sum(axis=0) if learned else np.zeros_like(dh0[0])
                if dc0 is not None:
                    grads[f"l{k}.c0"] = dc0.sum(axis=0) if learned else np.zeros_like(dc0[0])
            dstate0[k] = (dh0, dc0)
            if cache.keeps[k] is not None:
                dx = dropout_backward(dx, cache.keeps[k])
            d = dx
        return d, grads, dstate0
