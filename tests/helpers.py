"""Shared test helpers: random problems, a uniform RNN/LSTM interface, the reference loop.

Everything random comes from an explicit ``np.random.Generator``; weights, biases, initial states
and upstream gradients are random and non-zero (never ones or zeros), so a missing term in a
backward cannot hide behind a zero factor.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bptt.functional import (
    STEP_CELLS,
    lstm_backward,
    lstm_backward_with_state,
    lstm_forward,
    lstm_forward_with_state,
    reference_backward,
    reference_forward,
    rnn_backward,
    rnn_forward,
)
from bptt.gradcheck import check_function, rel_error

GATES = {name: cell.gates for name, cell in STEP_CELLS.items()}
GRAD_NAMES = ("x", "h0", "c0", "Wx", "Wh", "b")

# Largest error measured per category in this session (printed by ``pytest --error-report``).
MEASURED: dict[str, float] = defaultdict(float)


def check(category: str, error: float, threshold: float, what: str = "") -> None:
    """Record ``error`` under ``category`` and assert it is at most ``threshold``."""
    MEASURED[category] = max(MEASURED[category], float(error))
    assert error <= threshold, f"{category} {what}: error {error:.3e} > {threshold:.0e}"


def randn(rng: np.random.Generator, *shape: int, scale: float = 1.0,
          dtype: type = np.float64) -> np.ndarray:
    """Normal(0, scale**2) samples of the given shape and dtype."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def problem(rng: np.random.Generator, cell: str, N: int, T: int, D: int, H: int,
            dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Random inputs and parameters of a sequence layer: x, h0, c0 (LSTM only), Wx, Wh, b, and
    b_hn (GRU only)."""
    G = GATES[cell] * H
    p = {
        "x": randn(rng, N, T, D, dtype=dtype),
        "h0": randn(rng, N, H, scale=0.5, dtype=dtype),
        "Wx": randn(rng, D, G, scale=0.6, dtype=dtype),
        "Wh": randn(rng, H, G, scale=0.6, dtype=dtype),
        "b": randn(rng, G, scale=0.5, dtype=dtype),
    }
    if "c" in STEP_CELLS[cell].state:
        p["c0"] = randn(rng, N, H, scale=0.8, dtype=dtype)
    if "b_hn" in STEP_CELLS[cell].extra:
        p["b_hn"] = randn(rng, H, scale=0.5, dtype=dtype)
    return p


def lengths_mask(lengths: list[int], T: int) -> np.ndarray:
    """Right-padded mask (N, T): row n is True at its first lengths[n] steps."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def seq_forward(cell: str, p: dict[str, np.ndarray], mask: np.ndarray | None = None):
    """Uniform forward: (h (N, T, H), c_last (N, H) or None, cache). LSTM uses p["c0"]."""
    if cell == "rnn":
        h, cache = rnn_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask=mask)
        return h, None, cache
    return lstm_forward_with_state(p["x"], p["h0"], p["c0"], p["Wx"], p["Wh"], p["b"], mask=mask)


def seq_backward(cell: str, dh: np.ndarray, dc_last: np.ndarray | None,
                 cache) -> dict[str, np.ndarray]:
    """Uniform backward -> {"x", "h0", ["c0",] "Wx", "Wh", "b"} gradients."""
    if cell == "rnn":
        dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)
        return {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}
    dx, dh0, dc0, dWx, dWh, db = lstm_backward_with_state(dh, dc_last, cache)
    return {"x": dx, "h0": dh0, "c0": dc0, "Wx": dWx, "Wh": dWh, "b": db}


def step_loop_forward(cell: str, p: dict[str, np.ndarray], mask: np.ndarray | None = None):
    """The reference loop's forward (``bptt.functional.reference``): (h, c_last, cache)."""
    return reference_forward(cell, p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask, p.get("c0"),
                             b_hn=p.get("b_hn"))


def step_loop_backward(dh: np.ndarray, dc_last: np.ndarray | None,
                       cache) -> dict[str, np.ndarray]:
    """The reference loop's BPTT, as {"x", "h0", ["c0",] "Wx", "Wh", "b"} gradients."""
    g = reference_backward(dh, cache, dc_last)
    grads = {"x": g.dx, "h0": g.dh0, "Wx": g.dWx, "Wh": g.dWh, "b": g.db}
    if g.dc0 is not None:
        grads["c0"] = g.dc0
    if g.db_hn is not None:
        grads["b_hn"] = g.db_hn
    return grads


def gradcheck_sequence(cell: str, p: dict[str, np.ndarray], dh: np.ndarray,
                       dc_last: np.ndarray | None, mask: np.ndarray | None,
                       with_state: bool = True) -> dict[str, float]:
    """Numerical check of every gradient of a sequence layer; returns {name: rel error}.

    ``with_state=False`` checks ``lstm_forward`` / ``lstm_backward`` (c0 = 0, no dc_last).
    """
    args = {k: v for k, v in p.items() if k != "c0"}
    args["mask"] = mask
    if cell == "rnn":
        res = check_function("rnn", rnn_forward, rnn_backward, args,
                             ["x", "h0", "Wx", "Wh", "b"], dh)
    elif not with_state:
        res = check_function("lstm", lstm_forward, lstm_backward, args,
                             ["x", "h0", "Wx", "Wh", "b"], dh)
    else:
        args["c0"] = p["c0"]
        res = check_function("lstm_with_state", lstm_forward_with_state, lstm_backward_with_state,
                             args, ["x", "h0", "c0", "Wx", "Wh", "b"], [dh, dc_last],
                             n_outputs=2)
    return {r.name: r.error for r in res}


def max_rel_error(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest rel_error over the arrays both dicts name (the key sets must match)."""
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max(rel_error(a[k], b[k]) for k in a)
