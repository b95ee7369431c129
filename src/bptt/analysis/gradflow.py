"""Seeing why LSTMs work: how the gradient flows back through time, and how saturated the gates
are.

The engine's backward keeps dL/dh_t only for the step it is on. This module runs a plain,
readable BPTT with the step functions (``rnn_step_*`` / ``lstm_step_*``) and records, for every
step t, the total gradient

    dL/dh_t = (dL/dh_t from the layer above, at step t) + (dL/dh_{t+1}) (dh_{t+1}/dh_t)

For a tanh RNN the second factor is diag(1 - h_{t+1}^2) Wh^T: unless Wh is large and the units
unsaturated, ||dL/dh_t|| shrinks geometrically as t moves away from the loss (the vanishing
gradient). The LSTM also carries dL/dc_t, whose path back multiplies only by the forget gate f:
with f near 1 the gradient reaches far into the past.

    flow = gradient_flow("lstm", x, h0, Wx, Wh, b, dh_up, mask)   # dh_up (N, T, H)
    flow.norms          # (N, T) ||dL/dh_t|| per sequence (NaN on padded steps)
    flow.saturation     # per-gate statistics over valid steps

``model_gradient_flow`` does this for the top recurrent layer of a trained ``SequenceModel``.
The same loop also returns dx, dh0 and the weight gradients, which the tests compare with the
engine, and ``reference_forward``'s ``probe`` (an additive perturbation of every h_t) lets the
tests check dL/dh_t itself against central differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bptt import functional as F


def reference_forward(cell: str, x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                      b: np.ndarray, mask: np.ndarray | None = None,
                      c0: np.ndarray | None = None, probe: np.ndarray | None = None):
    """A step-by-step forward -> (h (N, T, H), step caches).

    x (N, T, D), h0 (N, H), mask (N, T) bool or None; c0 (N, H) for an LSTM (default zeros);
    probe (N, T, H) or None is added to h_t after step t (it feeds the output and the next
    step), so dL/dprobe_t = dL/dh_t.
    """
    if cell not in ("rnn", "lstm"):
        raise ValueError(f"unknown cell {cell!r}; use 'rnn' or 'lstm'")
    N, T, _ = x.shape
    h = h0
    c = np.zeros_like(h0) if c0 is None else c0
    hs = np.empty((N, T, h0.shape[1]), dtype=x.dtype)
    caches = []
    for t in range(T):
        if cell == "rnn":
            h_new, cache = F.rnn_step_forward(x[:, t], h, Wx, Wh, b)
            c_new = c
        else:
            h_new, c_new, cache = F.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        if mask is not None:                                    # held state on padded steps
            keep = mask[:, t][:, None]                          # (N, 1)
            h_new = np.where(keep, h_new, h)
            c_new = np.where(keep, c_new, c)
        if probe is not None:
            h_new = h_new + probe[:, t]
        h, c = h_new, c_new
        hs[:, t] = h
        caches.append(cache)
    return hs, caches


@dataclass
class GradFlow:
    dh: np.ndarray                  # (N, T, H) total dL/dh_t
    dc: np.ndarray | None           # (N, T, H) total dL/dc_t (LSTM), None for an RNN
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
                  c0: np.ndarray | None = None) -> GradFlow:
    """Backpropagate ``dh_up`` (N, T, H), the gradient from above at every step, recording the
    total dL/dh_t (and dL/dc_t) at every step. See the module docstring."""
    N, T, D = x.shape
    H = h0.shape[1]
    _, caches = reference_forward(cell, x, h0, Wx, Wh, b, mask, c0)
    dh_all = np.empty((N, T, H), dtype=x.dtype)
    dc_all = np.empty((N, T, H), dtype=x.dtype) if cell == "lstm" else None
    dx = np.empty((N, T, D), dtype=x.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next = np.zeros((N, H), dtype=x.dtype)                   # dL/dh_t via step t+1
    dc = np.zeros((N, H), dtype=x.dtype)                        # dL/dc_t via step t+1
    for t in reversed(range(T)):
        dh = dh_up[:, t] + dh_next                              # total dL/dh_t
        dh_all[:, t] = dh
        valid = np.ones((N, 1), dtype=bool) if mask is None else mask[:, t][:, None]
        if cell == "rnn":
            dxt, dprev, dWx_t, dWh_t, db_t = F.rnn_step_backward(dh * valid, caches[t])
        else:
            dc_all[:, t] = dc
            dxt, dprev, dcprev, dWx_t, dWh_t, db_t = F.lstm_step_backward(dh * valid,
                                                                         dc * valid, caches[t])
            dc = dcprev + dc * ~valid                           # held: passes straight through
        dh_next = dprev + dh * ~valid
        dx[:, t] = dxt
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    norms = np.linalg.norm(dh_all, axis=2)                      # (N, T)
    if mask is not None:
        norms = np.where(mask, norms, np.nan)
    return GradFlow(dh_all, dc_all, norms, dx, dh_next, dWx, dWh, db,
                    saturation_stats(cell, caches, mask))


def saturation_stats(cell: str, caches: list, mask: np.ndarray | None = None) -> dict:
    """Per-gate statistics over all valid steps and units.

    Sigmoid gates (LSTM i, f, o): mean, and the fractions below 0.1 ("closed") and above 0.9
    ("open"). Tanh values (RNN h; LSTM candidate g and tanh(c)): mean |v| and the fraction with
    |v| > 0.9, where the derivative 1 - v^2 is below 0.19.
    """
    if cell == "rnn":
        vals = {"h": np.stack([c.next_h for c in caches], axis=1)}           # (N, T, H)
    else:
        gates = np.stack([c.gates for c in caches], axis=1)                   # (N, T, 4H)
        i, f, g, o = np.split(gates, 4, axis=2)
        vals = {"i": i, "f": f, "g": g, "o": o,
                "tanh_c": np.stack([c.tanh_c for c in caches], axis=1)}
    sel = (slice(None),) if mask is None else (mask,)
    out = {}
    for name, v in vals.items():
        v = v[sel].reshape(-1)
        if name in ("i", "f", "o"):
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
    mean over N).
    """
    cfg = model.config
    if cfg.bidirectional:
        raise ValueError("model_gradient_flow: use a unidirectional model")
    inp, _ = model._inputs(x)
    h, _, rcache = model.rnn.forward(inp, None, mask)
    k = cfg.layers - 1
    below = inp if k == 0 else np.ascontiguousarray(rcache.layers[k].Xf.transpose(2, 1, 0))
    scores, cache = model.forward(x, mask)
    _, dscores = model.loss_from_scores(scores, y, mask)
    ecache, _, pcache, acache = cache
    if cfg.pooling == "none":
        dh, _ = model.out.backward(dscores, acache)
    else:
        dpooled, _ = model.out.backward(dscores[:, None, :], acache)
        dh = model._pool_backward(dpooled[:, 0], pcache)
    p = model.rnn.params
    N = x.shape[0]
    h0 = np.zeros((N, cfg.hidden), dtype=h.dtype)
    return gradient_flow(cfg.cell, below, h0, p[f"l{k}.Wx"], p[f"l{k}.Wh"], p[f"l{k}.b"],
                         dh * N, mask)


def plot_gradient_flow(curves: dict, path: str, title: str = "", relative: bool = True) -> None:
    """Plot ||dL/dh_t|| against t (log scale) for each labelled curve (T,) and save to path.

    With ``relative`` each curve is divided by its value at the last step, so models whose
    losses differ in size compare on how fast the gradient decays going back in time.
    Labels containing "init" are drawn dashed; labels sharing a first word share a colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors: dict[str, str] = {}
    for label, norms in curves.items():
        norms = np.asarray(norms, dtype=np.float64)
        if relative:
            norms = norms / norms[-1]
        style = "--" if "init" in label else "-"
        color = colors.setdefault(label.split()[0], f"C{len(colors)}")   # one colour per model
        ax.semilogy(np.arange(len(norms)), norms, style, color=color, label=label)
    ax.set_xlabel("time step t (the loss is read at the last step)")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||" if relative else "mean ||dL/dh_t||")
    ax.set_title(title or "gradient norm through time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
