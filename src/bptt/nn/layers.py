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
from bptt.functional import _validate as v
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


def check_stack(cell: str, num_layers: int, dropout: float) -> str:
    """The checks every recurrent stack's constructor makes; returns the cell name."""
    check_cell(cell)
    if num_layers < 1:
        raise ValueError(f"num_layers is {num_layers}; it must be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is {dropout}; it must be in [0, 1)")
    return cell


def one_hot(ids: np.ndarray, V: int, dtype=np.float64) -> np.ndarray:
    """Token ids (N, T) in [0, V) -> (N, T, V) with out[n, t, ids[n, t]] = 1, zeros elsewhere."""
    v.int_array("one_hot", "ids", ids, ("N", "T"))
    v.in_range("one_hot", "ids", ids, V)
    out = np.zeros((*ids.shape, V), dtype=dtype)                # (N, T, V)
    np.put_along_axis(out, ids[..., None], 1.0, axis=2)
    return out


def layer_param_names(cell: str) -> tuple[str, ...]:
    """The arrays of one recurrent layer: Wx (D, G), Wh (H, G), b (G,), and for a GRU b_hn (H,)."""
    return ("Wx", "Wh", "b", "b_hn") if cell == "gru" else ("Wx", "Wh", "b")


def init_layer(rng: np.random.Generator, D: int, H: int, cell: str, forget_bias: float,
               dtype) -> dict[str, np.ndarray]:
    """Initial parameters of one layer (``nn.init.recurrent_weights``).

    ``forget_bias`` is the initial bias of the gate that keeps the state: the LSTM's forget gate
    f, and the GRU's update gate z (h' = (1 - z) n + z h, so z near 1 remembers; measured: with
    3.0, as the long-memory tasks use, the GRU solves temporal order, at 0 it stays at chance).
    A GRU's b_hn starts at zero.
    """
    Wx, Wh, b = recurrent_weights(rng, D, H, CELLS[cell], forget_bias, dtype)
    out = {"Wx": Wx, "Wh": Wh, "b": b}
    if cell == "gru":
        b[H:2 * H] = forget_bias                    # gates r, z, n: the update gate z
        out["b_hn"] = np.zeros(H, dtype=dtype)
    return out


def layer_forward(cell: str, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                  p: dict[str, np.ndarray], mask: np.ndarray | None = None):
    """One layer, one direction, over a sequence: p holds ``layer_param_names(cell)``.

    Returns (h (N, T, H), c_last (N, H) for an LSTM else None, cache for ``layer_backward``).
    """
    if cell == "lstm":
        return F.lstm_forward_with_state(x, h0, c0, p["Wx"], p["Wh"], p["b"], mask)
    if cell == "gru":
        h, cache = F.gru_forward(x, h0, p["Wx"], p["Wh"], p["b"], p["b_hn"], mask)
    else:
        h, cache = F.rnn_forward(x, h0, p["Wx"], p["Wh"], p["b"], mask)
    return h, None, cache


def layer_backward(cell: str, dh: np.ndarray, dc_last: np.ndarray | None, cache):
    """Backward of ``layer_forward`` -> (dx, dh0, dc0 or None, grads keyed like p)."""
    if cell == "lstm":
        dx, dh0, dc0, dWx, dWh, db = F.lstm_backward_with_state(dh, dc_last, cache)
        return dx, dh0, dc0, {"Wx": dWx, "Wh": dWh, "b": db}
    if cell == "gru":
        dx, dh0, dWx, dWh, db, db_hn = F.gru_backward(dh, cache)
        return dx, dh0, None, {"Wx": dWx, "Wh": dWh, "b": db, "b_hn": db_hn}
    dx, dh0, dWx, dWh, db = F.rnn_backward(dh, cache)
    return dx, dh0, None, {"Wx": dWx, "Wh": dWh, "b": db}


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
    """``num_layers`` RNN, LSTM or GRU layers, with optional dropout between layers.

    Parameters of layer k: ``l{k}.Wx`` (D_k, G), ``l{k}.Wh`` (H, G), ``l{k}.b`` (G,) (G = H, 4H,
    3H), for a GRU also ``l{k}.b_hn`` (H,), and with
    ``learn_h0`` also ``l{k}.h0`` (H,) (and ``l{k}.c0`` for an LSTM), a learned initial state
    shared by every sequence (seed 002), used when no state is passed in.

    A state is a list with one ``(h, c)`` pair per layer, h and c (N, H) (c is None for an RNN or
    a GRU).
    """

    def __init__(self, D: int, H: int, cell: str = "lstm", num_layers: int = 1,
                 dropout: float = 0.0, learn_h0: bool = False,
                 rng: np.random.Generator | None = None, dtype=np.float64,
                 forget_bias: float = 1.0):
        self.cell = check_stack(cell, num_layers, dropout)
        rng = rng if rng is not None else np.random.default_rng(0)
        self.D, self.H, self.num_layers, self.dropout = D, H, num_layers, dropout
        self.learn_h0, self.dtype = learn_h0, np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        for k in range(num_layers):
            layer = init_layer(rng, D if k == 0 else H, H, cell, forget_bias, dtype)
            self.params.update({f"l{k}.{name}": a for name, a in layer.items()})
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
            p = {name: self.params[f"l{k}.{name}"] for name in layer_param_names(self.cell)}
            h, c_last, cache = layer_forward(self.cell, h, h0, c0, p, mask)
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
            dx, dh0, dc0, g = layer_backward(self.cell, d, dc_last, cache.layers[k])
            grads.update({f"l{k}.{name}": a for name, a in g.items()})
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
