"""Bidirectional recurrent layers for padded, masked batches.

The reverse direction of a row must start at that row's own last valid step, not at the padded
end of the batch. ``reverse_valid_index`` builds, per row, the permutation of time that reverses
the order of the valid steps among themselves and leaves padded steps where they are:

    mask [1 1 1 1 0 0]   ->   perm [3 2 1 0 4 5]

Gathering x[n, perm[n]] gives each row reversed within its own length, with the same mask, so the
engine's masked recurrence runs it unchanged; gathering the outputs by perm again (the
permutation is its own inverse) puts step t of the reverse direction back at position t. Its
backward is the same gather applied to the gradients.

Layer k's output is [h_fwd, h_rev] (N, T, 2H); layer k+1 reads it (D_{k+1} = 2H). At position t,
h_fwd summarises steps <= t and h_rev steps >= t of the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.nn.layers import (
    check_stack,
    dropout_backward,
    dropout_forward,
    init_layer,
    layer_backward,
    layer_forward,
    layer_param_names,
)


def reverse_valid_index(mask: np.ndarray) -> np.ndarray:
    """(N, T) bool -> (N, T) int permutation reversing each row's valid steps among themselves.

    perm[n, t] = t on padded steps; on valid steps, the valid step of the mirrored rank (the
    k-th valid step from the start maps to the k-th from the end). perm[n, perm[n, t]] = t.
    """
    _N, T = mask.shape
    order = np.argsort(~mask, axis=1, kind="stable")       # (N, T) valid positions first, in order
    rank = np.cumsum(mask, axis=1) - 1                      # (N, T) rank of t among valid steps
    count = mask.sum(axis=1, keepdims=True)                 # (N, 1)
    mirrored = np.clip(count - 1 - rank, 0, T - 1)          # (N, T)
    picked = np.take_along_axis(order, mirrored, axis=1)    # (N, T)
    return np.where(mask, picked, np.arange(T)[None, :])


def gather_time(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """out[n, t] = x[n, perm[n, t]].  x (N, T, D), perm (N, T) -> (N, T, D)."""
    return np.take_along_axis(x, perm[:, :, None], axis=1)


@dataclass
class BiCache:
    perm: np.ndarray | None       # (N, T) reversal permutation; None = plain reversal (no mask)
    fwd: list                     # per-layer forward-direction caches
    rev: list                     # per-layer reverse-direction caches
    keeps: list                   # per-layer dropout masks on that layer's input (or None)


class BidirectionalStack:
    """``num_layers`` bidirectional RNN, LSTM or GRU layers, zero initial states.

    Parameters of layer k: forward direction ``l{k}.Wx`` (D_k, G), ``l{k}.Wh`` (H, G),
    ``l{k}.b`` (G,); reverse direction the same names with the suffix ``_rev`` (PyTorch's
    ``weight_ih_l0_reverse``), and for a GRU ``l{k}.b_hn`` (H,) (and ``_rev``). D_0 = D,
    D_k = 2H above; G = H (RNN), 4H (LSTM) or 3H (GRU).

        h, cache = stack.forward(x, mask)          # x (N, T, D) -> h (N, T, 2H)
        dx, grads = stack.backward(dh, cache)      # grads keyed like stack.params
    """

    def __init__(self, D: int, H: int, cell: str = "lstm", num_layers: int = 1,
                 dropout: float = 0.0, rng: np.random.Generator | None = None,
                 dtype=np.float64, forget_bias: float = 1.0):
        self.cell = check_stack(cell, num_layers, dropout)
        rng = rng if rng is not None else np.random.default_rng(0)
        self.D, self.H, self.num_layers, self.dropout = D, H, num_layers, dropout
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        for k in range(num_layers):
            for suffix in ("", "_rev"):
                layer = init_layer(rng, D if k == 0 else 2 * H, H, cell, forget_bias, dtype)
                self.params.update({f"l{k}.{name}{suffix}": a for name, a in layer.items()})

    def _run(self, x, mask, k, suffix):
        p = {name: self.params[f"l{k}.{name}{suffix}"] for name in layer_param_names(self.cell)}
        h0 = np.zeros((x.shape[0], self.H), dtype=x.dtype)
        c0 = np.zeros_like(h0) if self.cell == "lstm" else None
        h, _, cache = layer_forward(self.cell, x, h0, c0, p, mask)
        return h, cache

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None, train: bool = False,
                rng: np.random.Generator | None = None):
        """x (N, T, D), mask (N, T) bool or None -> (h (N, T, 2H), cache).

        Dropout (rate ``self.dropout``) is applied to the input of every layer above the first
        when ``train`` is True; it then needs ``rng``.
        """
        perm = None if mask is None else reverse_valid_index(mask)

        def flip(a):                                        # (N, T, *) reversed per row
            return a[:, ::-1] if perm is None else gather_time(a, perm)

        fwd_caches, rev_caches, keeps = [], [], []
        h = x
        for k in range(self.num_layers):
            keep = None
            if k > 0 and train and self.dropout > 0.0:
                if rng is None:
                    raise ValueError("dropout in training needs rng (a np.random.Generator)")
                h, keep = dropout_forward(h, self.dropout, rng)
            hf, cf = self._run(h, mask, k, "")              # (N, T, H)
            hr, cr = self._run(flip(h), mask, k, "_rev")    # (N, T, H) in reversed time
            h = np.concatenate([hf, flip(hr)], axis=2)      # (N, T, 2H)
            fwd_caches.append(cf)
            rev_caches.append(cr)
            keeps.append(keep)
        return h, BiCache(perm, fwd_caches, rev_caches, keeps)

    def backward(self, dh: np.ndarray, cache: BiCache):
        """dh (N, T, 2H) -> (dx (N, T, D), grads keyed like params)."""
        perm, H = cache.perm, self.H

        def flip(a):
            return a[:, ::-1] if perm is None else gather_time(a, perm)

        grads: dict[str, np.ndarray] = {}
        d = dh
        for k in reversed(range(self.num_layers)):
            dxf, _, _, g = layer_backward(self.cell, np.ascontiguousarray(d[:, :, :H]), None,
                                          cache.fwd[k])
            grads.update({f"l{k}.{name}": a for name, a in g.items()})
            dxr, _, _, g = layer_backward(self.cell, flip(d[:, :, H:]), None, cache.rev[k])
            grads.update({f"l{k}.{name}_rev": a for name, a in g.items()})
            d = dxf + flip(dxr)                             # (N, T, D_k)
            if cache.keeps[k] is not None:
                d = dropout_backward(d, cache.keeps[k])
        return d, grads
