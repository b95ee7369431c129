"""Seeing why LSTMs work: how the gradient flows back through time, and how saturated the gates
are.

The engine's backward keeps dL/dh_t only for the step it is on. This module runs the reference
loop (``bptt.functional.reference``: the plain BPTT over the step functions), which records, for
every step t, the total gradient

    dL/dh_t = (dL/dh_t from the layer above, at step t) + (dL/dh_{t+1}) (dh_{t+1}/dh_t)

For a tanh RNN the second factor is diag(1 - h_{t+1}^2) Wh^T: unless Wh is large and the units
unsaturated, ||dL/dh_t|| shrinks geometrically as t moves away from the loss (the vanishing
gradient). The LSTM also carries dL/dc_t, whose path back multiplies only by the forget gate f:
with f near 1 the gradient reaches far into the past.

    flow = gradient_flow("lstm", x, h0, Wx, Wh, b, dh_up, mask)   # dh_up (N, T, H)
    flow.norms          # (N, T) ||dL/dh_t|| per sequence (NaN on padded steps)
    flow.saturation     # per-gate statistics over valid steps

``model_gradient_flow`` does this for the top recurrent layer of a ``SequenceModel``. The
reference loop also returns dx, dh0 and the weight gradients (kept here, equal to the engine's),
and its tests check the recorded dL/dh_t against central differences. The plot of the norms is
``bptt.analysis.plots.grad_norm_through_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bptt import functional as F


@dataclass
class GradFlow:
    dh: np.ndarray                  # (N, T, H) total dL/dh_t
    dc: np.ndarray | None           # (N, T, H) dL/dc_t from step t+1 (LSTM), None otherwise
    norms: np.ndarray               # (N, T) ||dL/dh_t||, NaN on padded steps
    dx: np.ndarray                  # (N, T, D)
    dh0: np.ndarray                 # (N, H)
    dWx: np.ndarray
    dWh: np.ndarray
    db: np.ndarray
    saturation: dict = field(default_factory=dict)

    def mean_norms(self) -> np.ndarray:
        """(T,) mean over sequences of ||dL/dh_t|| (valid steps only)."""
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.norms, axis=0)


def gradient_flow(cell: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                  b: np.ndarray, dh_up: np.ndarray, mask: np.ndarray | None = None,
                  c0: np.ndarray | None = None, b_hn: np.ndarray | None = None) -> GradFlow:
    """Backpropagate ``dh_up`` (N, T, H), the gradient from above at every step, recording the
    total dL/dh_t (and dL/dc_t) at every step (b_hn: a GRU's). See the module docstring."""
    _, _, cache = F.reference_forward(cell, x, h0, Wx, Wh, b, mask, c0, b_hn=b_hn)
    g = F.reference_backward(dh_up, cache)
    norms = np.linalg.norm(g.dh_steps, axis=2)                  # (N, T)
    if mask is not None:
        norms = np.where(mask, norms, np.nan)
    return GradFlow(g.dh_steps, g.dc_steps, norms, g.dx, g.dh0, g.dWx, g.dWh, g.db,
                    saturation_stats(cell, cache.steps, mask))


def saturation_stats(cell: str, caches: list, mask: np.ndarray | None = None) -> dict:
    """Per-gate statistics over all valid steps and units.

    Sigmoid gates (LSTM i, f, o; GRU r, z): mean, and the fractions below 0.1 ("closed") and
    above 0.9 ("open"). Tanh values (RNN h; LSTM g and tanh(c); GRU n): mean |v| and the
    fraction with |v| > 0.9, where the derivative 1 - v^2 is below 0.19. ``caches`` are the
    reference loop's step caches; a cell not named here reports no statistics (an empty dict).
    """
    if cell == "rnn":
        vals = {"h": np.stack([c.next_h for c in caches], axis=1)}           # (N, T, H)
    elif cell == "lstm":
        gates = np.stack([c.gates for c in caches], axis=1)                   # (N, T, 4H)
        i, f, g, o = np.split(gates, 4, axis=2)
        vals = {"i": i, "f": f, "g": g, "o": o,
                "tanh_c": np.stack([c.tanh_c for c in caches], axis=1)}
    elif cell == "gru":
        vals = {k: np.stack([getattr(c, k) for c in caches], axis=1) for k in ("r", "z", "n")}
    else:
        return {}
    sel = (slice(None),) if mask is None else (mask,)
    out = {}
    for name, v in vals.items():
        v = v[sel].reshape(-1)
        if name in ("i", "f", "o", "r", "z"):
            out[name] = {"mean": float(v.mean()), "closed (<0.1)": float(np.mean(v < 0.1)),
                         "open (>0.9)": float(np.mean(v > 0.9))}
        else:
            out[name] = {"mean abs": float(np.abs(v).mean()),
                         "saturated (abs>0.9)": float(np.mean(np.abs(v) > 0.9))}
    return out


def model_gradient_flow(model, x: np.ndarray, y: np.ndarray,
                        mask: np.ndarray | None = None) -> GradFlow:
    """Gradient flow through the top recurrent layer of a unidirectional ``SequenceModel``.

    The gradient from above is the model's own (head, pooling and loss) for the batch; it is
    multiplied by N so that the norms are those of each sequence's own loss (the batch loss is a
    mean over N). The top layer's input is the layer below's output, recomputed with the
    reference loop (inference mode: no dropout), from each layer's initial state.
    """
    cfg = model.config
    if cfg.bidirectional:
        raise ValueError("model_gradient_flow: use a unidirectional model")
    p = model.rnn.params
    N = x.shape[0]
    state = model.rnn.initial_state(N)                          # [(h0, c0)] per layer
    below, _ = model._inputs(x)                                 # (N, T, D) layer 0's input
    k = cfg.layers - 1
    for j in range(k):                                          # outputs of the layers below
        h0, c0 = state[j]
        below, _, _ = F.reference_forward(cfg.cell, below, h0, p[f"l{j}.Wx"], p[f"l{j}.Wh"],
                                          p[f"l{j}.b"], mask, c0, b_hn=p.get(f"l{j}.b_hn"))
    scores, cache = model.forward(x, mask)
    _, dscores = model.loss_from_scores(scores, y, mask)
    _, _, pcache, acache = cache
    if cfg.pooling == "none":
        dh, _ = model.out.backward(dscores, acache)
    else:
        dpooled, _ = model.out.backward(dscores[:, None, :], acache)
        dh = model._pool_backward(dpooled[:, 0], pcache)
    h0, c0 = state[k]
    return gradient_flow(cfg.cell, below, h0, p[f"l{k}.Wx"], p[f"l{k}.Wh"], p[f"l{k}.b"],
                         dh * N, mask, c0, p.get(f"l{k}.b_hn"))
