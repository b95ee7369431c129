"""What only the LSTM has: c0 = 0 entry points, the cell-state gradient path, and a per-gate
reference written from seed 001. The tests every cell shares are in test_recurrent_common.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.functional import (
    lstm_backward,
    lstm_backward_with_state,
    lstm_forward,
    lstm_forward_with_state,
)
from bptt.gradcheck import rel_error
from helpers import check, gradcheck_sequence, lengths_mask, problem, randn

GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12

MASKS = {
    "none": None,
    "padded_tails": lengths_mask([5, 2, 1], 5),
    "holes": np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 1]], dtype=bool),
}


@pytest.mark.parametrize("mask_kind", ["none", "holes"])
def test_lstm_backward_matches_numerical_gradient_zero_c0(mask_kind):
    rng = np.random.default_rng(220)
    p = problem(rng, "lstm", 3, 5, 4, 3)
    errors = gradcheck_sequence("lstm", p, randn(rng, 3, 5, 3), None, MASKS[mask_kind],
                                with_state=False)
    assert sorted(errors) == ["Wh", "Wx", "b", "h0", "x"]
    for name, err in errors.items():
        check(f"gradcheck lstm (c0 = 0), mask {mask_kind}", err, GRADCHECK_TOL, f"d{name}")


@pytest.mark.parametrize("mask_kind", ["none", "padded_tails"])
def test_lstm_dc_last_path_alone_matches_numerical_gradient(mask_kind):
    """Only dL/dc_last is non-zero: every gradient flows through the cell-state path."""
    rng = np.random.default_rng(230)
    p = problem(rng, "lstm", 3, 5, 4, 3)
    errors = gradcheck_sequence("lstm", p, np.zeros((3, 5, 3)), randn(rng, 3, 3),
                                MASKS[mask_kind])
    for name, err in errors.items():
        check("gradcheck lstm dc_last path", err, GRADCHECK_TOL, f"d{name}")


def test_lstm_forward_equals_with_state_at_zero_c0():
    rng = np.random.default_rng(250)
    p = problem(rng, "lstm", 3, 5, 4, 3)
    mask = MASKS["holes"]
    dh = randn(rng, 3, 5, 3)
    args = (p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
    h, cache = lstm_forward(*args, mask=mask)
    h_s, _, cache_s = lstm_forward_with_state(p["x"], p["h0"], np.zeros((3, 3)), *args[2:],
                                              mask=mask)
    np.testing.assert_array_equal(h, h_s)
    g = lstm_backward(dh, cache)
    g_none = lstm_backward_with_state(dh, None, cache_s)
    g_zero = lstm_backward_with_state(dh, np.zeros((3, 3)), cache_s)
    for a, b_, c in zip(g, g_none[:2] + g_none[3:], g_zero[:2] + g_zero[3:], strict=True):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(g_none[2], g_zero[2])


# --- A naive per-gate LSTM written from seed 001's equations (a = h, Γu = i, Γf = f, c̃ = g) ---

def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def naive_lstm_forward(x, a0, c0, W):
    """Seed 001 eq. 1-10 with one weight per gate, row-vector form z = a W_*a + x W_*x + b_*."""
    a, c, steps = a0, c0, []
    for t in range(x.shape[1]):
        xt = x[:, t]
        G_f = _sig(a @ W["fa"] + xt @ W["fx"] + W["bf"])             # eq. 1-2
        G_u = _sig(a @ W["ua"] + xt @ W["ux"] + W["bu"])             # eq. 3-4
        G_o = _sig(a @ W["oa"] + xt @ W["ox"] + W["bo"])             # eq. 5-6
        c_tilde = np.tanh(a @ W["ca"] + xt @ W["cx"] + W["bc"])      # eq. 7-8
        c_next = G_u * c_tilde + G_f * c                             # eq. 9
        a_next = np.tanh(c_next) * G_o                               # eq. 10
        steps.append((xt, a, c, G_f, G_u, G_o, c_tilde, c_next))
        a, c = a_next, c_next
    h = np.stack([np.tanh(s[7]) * s[5] for s in steps], axis=1)
    return h, c, steps


def naive_lstm_backward(dh, dc_last, W, steps):
    """Seed 001 section 2.1, gate by gate; returns per-gate gradients and dx, da0, dc0."""
    g = {k: np.zeros_like(v) for k, v in W.items()}
    da_next = np.zeros_like(dh[:, 0])
    dc_next = dc_last.copy()
    dxs = []
    for t in reversed(range(len(steps))):
        xt, a_prev, c_prev, G_f, G_u, G_o, c_tilde, c = steps[t]
        da = dh[:, t] + da_next                                       # 2.1.3: both components
        dG_o = da * np.tanh(c)                                        # 2.1.4
        dc = dc_next + da * G_o * (1.0 - np.tanh(c) ** 2)
        dz = {
            "o": dG_o * G_o * (1.0 - G_o),                            # 2.1.5
            "u": dc * c_tilde * G_u * (1.0 - G_u),                    # 2.1.6-2.1.7
            "f": dc * c_prev * G_f * (1.0 - G_f),                     # 2.1.6, 2.1.8
            "c": dc * G_u * (1.0 - c_tilde ** 2),                     # 2.1.6, 2.1.9
        }
        dc_next = dc * G_f                                            # 2.1.6: dc_{t-1}
        da_next = sum(dz[k] @ W[k + "a"].T for k in dz)               # 2.1.10
        dxs.append(sum(dz[k] @ W[k + "x"].T for k in dz))
        for k in dz:
            g[k + "a"] += a_prev.T @ dz[k]
            g[k + "x"] += xt.T @ dz[k]
            g["b" + k] += dz[k].sum(axis=0)
    return g, np.stack(dxs[::-1], axis=1), da_next, dc_next


def test_fused_lstm_equals_naive_per_gate_reference_from_seed_001():
    rng = np.random.default_rng(270)
    N, T, D, H = 3, 5, 4, 3
    W = {}
    for k in "fuoc":
        W[k + "x"] = randn(rng, D, H, scale=0.6)
        W[k + "a"] = randn(rng, H, H, scale=0.6)
        W["b" + k] = randn(rng, H, scale=0.5)
    order = "ufco"                                     # house order i, f, g, o = Γu, Γf, c̃, Γo
    Wx = np.concatenate([W[k + "x"] for k in order], axis=1)          # (D, 4H)
    Wh = np.concatenate([W[k + "a"] for k in order], axis=1)          # (H, 4H)
    b = np.concatenate([W["b" + k] for k in order])                   # (4H,)
    x, h0, c0 = randn(rng, N, T, D), randn(rng, N, H, scale=0.5), randn(rng, N, H, scale=0.8)
    dh, dc_last = randn(rng, N, T, H), randn(rng, N, H)

    h, c_last, cache = lstm_forward_with_state(x, h0, c0, Wx, Wh, b)
    h_ref, c_ref, steps = naive_lstm_forward(x, h0, c0, W)
    check("lstm fused vs naive per-gate: forward", rel_error(h, h_ref), EXACT_TOL, "h")
    check("lstm fused vs naive per-gate: forward", rel_error(c_last, c_ref), EXACT_TOL, "c")

    dx, dh0, dc0, dWx, dWh, db = lstm_backward_with_state(dh, dc_last, cache)
    g, dx_ref, da0_ref, dc0_ref = naive_lstm_backward(dh, dc_last, W, steps)
    errors = {"x": rel_error(dx, dx_ref), "h0": rel_error(dh0, da0_ref),
              "c0": rel_error(dc0, dc0_ref)}
    for j, k in enumerate(order):
        cols = slice(j * H, (j + 1) * H)
        errors[f"W{k}x"] = rel_error(dWx[:, cols], g[k + "x"])
        errors[f"W{k}a"] = rel_error(dWh[:, cols], g[k + "a"])
        errors[f"b{k}"] = rel_error(db[cols], g["b" + k])
    for name, err in errors.items():
        check("lstm fused vs naive per-gate: grads", err, EXACT_TOL, name)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), masked=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_lstm_forward_without_state_shapes_and_dtypes(N, T, D, H, dtype, masked, seed):
    """lstm_forward / lstm_backward (c0 = 0, no c_last): the with-state shapes less c0."""
    rng = np.random.default_rng(seed)
    p = problem(rng, "lstm", N, T, D, H, dtype=dtype)
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.5
        mask[np.arange(N), rng.integers(0, T, N)] = True      # every row has a valid step
    h, cache = lstm_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask=mask)
    assert h.shape == (N, T, H) and h.dtype == dtype
    grads = lstm_backward(randn(rng, N, T, H, dtype=dtype), cache)
    assert [g.shape for g in grads] == [(N, T, D), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in grads)
