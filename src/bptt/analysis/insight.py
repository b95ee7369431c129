"""Looking inside a trained character model (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks").

    trace = activation_trace(model, ids)      # h, and the gates (LSTM i, f, o; GRU r, z), per layer
    sat = gate_saturation(trace)              # fraction of time each gate is < 0.1 or > 0.9
    units = interesting_units(text, [layer["h"] for layer in trace["layers"]])

Time is aligned with the input: row t of every array is the state right after the model has read
character t, so character t of a passage is coloured by h_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bptt import functional as F

# The sigmoid gates each cell's trace records (post-activation), in report order.
GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}

# Text features that interesting_units correlates with every hidden unit, in report order.
FEATURES = {
    "quotes": "inside double quotes",
    "line_position": "characters since the last newline",
    "brackets": "inside (), [] or {} (depth > 0)",
}
_OPEN, _CLOSE = "([{", ")]}"
_QUOTES = "\"\u201c\u201d"


def activation_trace(model, ids: np.ndarray, state: list | None = None) -> dict:
    """Run token ids through a ``LanguageModel`` one step at a time (batch 1) and record its state.

    ids (T,) ints; ``state`` optionally a list of (h (1, H), c (1, H) or None) per layer to start
    from (default: the model's initial state). Returns::

        {"cell": "lstm" | "gru" | "rnn", "ids": (T,) ints,
         "layers": [{"h": (T, H), and the cell's ``GATES`` (LSTM "i", "f", "o"; GRU the reset
                     "r" and update "z"): (T, H) post-sigmoid}, ...],
         "state": the final state, in the same form as ``state``}

    Arrays are float64 whatever the model's dtype. Runs in inference mode (no dropout).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"ids has shape {ids.shape}; it must be (T,) with T >= 1")
    cell, L = model.config.cell, model.config.layers
    p = model.rnn.params
    x, _ = model._inputs(ids[None])                       # (1, T, D)
    if state is None:
        state = model.rnn.initial_state(1)
    elif len(state) != L:
        raise ValueError(f"state has {len(state)} layers; the model has {L}")
    T, H = ids.size, model.config.hidden
    names = ("h", *GATES.get(cell, ()))
    layers = [{n: np.empty((T, H)) for n in names} for _ in range(L)]
    state = [(h, c) for h, c in state]
    for t in range(T):
        inp = x[:, t]                                     # (1, D_k)
        for k in range(L):
            h, c = state[k]
            Wx, Wh, b = p[f"l{k}.Wx"], p[f"l{k}.Wh"], p[f"l{k}.b"]
            rec = layers[k]
            if cell == "lstm":
                h, c, cache = F.lstm_step_forward(inp, h, c, Wx, Wh, b)
                gates = cache.gates[0]                    # (4H,) post-activation i, f, g, o
                rec["i"][t], rec["f"][t], rec["o"][t] = gates[:H], gates[H:2 * H], gates[3 * H:]
            elif cell == "gru":
                h, gcache = F.gru_step_forward(inp, h, Wx, Wh, b, p[f"l{k}.b_hn"])
                rec["r"][t], rec["z"][t] = gcache.r[0], gcache.z[0]     # (H,) each
            else:
                h, _ = F.rnn_step_forward(inp, h, Wx, Wh, b)
            rec["h"][t] = h[0]
            state[k] = (h, c)
            inp = h
    return {"cell": cell, "ids": ids.copy(), "layers": layers, "state": state}


def gate_saturation(trace: dict, low: float = 0.1, high: float = 0.9) -> list[dict]:
    """Fraction of time each gate unit is left-saturated (< low) and right-saturated (> high).

    Returns one dict per layer: ``{gate: {"left": (H,), "right": (H,)}}`` over the cell's
    ``GATES`` (LSTM i, f, o; GRU r, z), fractions in [0, 1] over the T steps of the trace. A
    forget gate (or a GRU update gate z, which keeps the old state where it is 1) that is
    right-saturated most of the time remembers across long spans; one never saturated works as a
    soft, input-dependent mixer.
    """
    if trace["cell"] not in GATES:
        raise ValueError(f"gate saturation needs an LSTM or GRU trace; this one is "
                         f"{trace['cell']!r}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"thresholds low={low}, high={high}; need 0 <= low < high <= 1")
    return [{g: {"left": (layer[g] < low).mean(axis=0), "right": (layer[g] > high).mean(axis=0)}
             for g in GATES[trace["cell"]]} for layer in trace["layers"]]


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per-character features (T,) float64 of ``FEATURES``, each the state after reading char t.

    quotes: 1 between a double quote and the next (the opening quote counts as inside, the closing
    one as outside); line_position: characters since the last newline (0 on the newline itself);
    brackets: 1 where the nesting depth of (, [, { is positive (unmatched closers are ignored).
    """
    T = len(text)
    quotes, line, brackets = np.zeros(T), np.zeros(T), np.zeros(T)
    inside, col, depth = False, 0, 0
    for t, ch in enumerate(text):
        if ch in _QUOTES:
            inside = ch == "\u201c" or (ch == '"' and not inside)
        col = 0 if ch == "\n" else col + 1
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        quotes[t], line[t], brackets[t] = inside, col, depth > 0
    return {"quotes": quotes, "line_position": line, "brackets": brackets}


def correlations(features: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Pearson r of every feature with every unit: features (T, K), acts (T, U) -> (K, U).

    A constant feature or unit has no correlation; its entries are 0.
    """
    def standardize(a):
        a = a - a.mean(axis=0)
        sd = np.sqrt((a * a).mean(axis=0))
        return np.divide(a, sd, out=np.zeros_like(a), where=sd > 1e-12)
    T = features.shape[0]
    return standardize(features).T @ standardize(acts) / T


def interesting_units(text: str, h: np.ndarray | Sequence[np.ndarray],
                      top_k: int = 3) -> list[dict]:
    """The units whose activation follows a text feature most closely (by Pearson |r|).

    text of length T; h (T, H) for one layer or a list of (T, H) arrays, one per layer. Returns, for
    each of ``FEATURES`` that varies over the text, its ``top_k`` units, best first, as
    ``{"feature": name, "layer": k, "unit": j, "r": r}``. Features constant over the text (a
    passage without quotes) are skipped.
    """
    if isinstance(h, np.ndarray) and h.ndim == 2:
        h = [h]
    layers = [np.asarray(a, dtype=np.float64) for a in h]
    for k, a in enumerate(layers):
        if a.ndim != 2 or a.shape[0] != len(text):
            raise ValueError(f"activations of layer {k} have shape {a.shape}; they must be "
                             f"(T, H) with T = len(text) = {len(text)}")
    acts = np.concatenate(layers, axis=1)                              # (T, L*H)
    owner = np.concatenate([np.full(a.shape[1], k) for k, a in enumerate(layers)])
    index = np.concatenate([np.arange(a.shape[1]) for a in layers])
    feats = text_features(text)
    names = [n for n in FEATURES if np.ptp(feats[n]) > 0]
    if not names:
        return []
    r = correlations(np.stack([feats[n] for n in names], axis=1), acts)  # (K, L*H)
    out = []
    for row, name in zip(r, names):
        for u in np.argsort(-np.abs(row), kind="stable")[:top_k]:
            out.append({"feature": name, "layer": int(owner[u]), "unit": int(index[u]),
                        "r": float(row[u])})
    return out
