"""bptt.functional.lstm: numerical gradients, step == sequence, a per-gate reference, chunking,
masks and dtypes."""

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
    lstm_step_backward,
    lstm_step_forward,
)
from bptt.gradcheck import check_function, rel_error
from helpers import (
    check,
    gradcheck_sequence,
    lengths_mask,
    max_rel_error,
    problem,
    randn,
    seq_backward,
    seq_forward,
    step_loop_backward,
    step_loop_forward,
)

GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12

MASKS = {
    "none": None,
    "all_true": np.ones((3, 5), dtype=bool),
    "padded_tails": lengths_mask([5, 2, 1], 5),
    "holes": np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 1]], dtype=bool),
}


@pytest.mark.parametrize("N,D,H", [(3, 4, 5), (1, 3, 4), (2, 3, 1)])
def test_lstm_step_backward_matches_numerical_gradient(N, D, H):
    rng = np.random.default_rng(200 + N + D + H)
    args = {"x": randn(rng, N, D), "prev_h": randn(rng, N, H, scale=0.5),
            "prev_c": randn(rng, N, H, scale=0.8), "Wx": randn(rng, D, 4 * H, scale=0.6),
            "Wh": randn(rng, H, 4 * H, scale=0.6), "b": randn(rng, 4 * H, scale=0.5)}
    douts = [randn(rng, N, H), randn(rng, N, H)]                     # dnext_h, dnext_c
    names = ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]
    res = check_function("lstm_step", lstm_step_forward, lstm_step_backward, args, names, douts,
                         n_outputs=2)
    assert [r.name for r in res] == names
    for r in res:
        check("gradcheck lstm_step", r.error, GRADCHECK_TOL, r.name)


@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_lstm_backward_with_state_matches_numerical_gradient_with_masks(mask_kind):
    rng = np.random.default_rng(210)
    p = problem(rng, "lstm", 3, 5, 4, 3)
    dh, dc_last = randn(rng, 3, 5, 3), randn(rng, 3, 3)
    errors = gradcheck_sequence("lstm", p, dh, dc_last, MASKS[mask_kind])
    assert sorted(errors) == ["Wh", "Wx", "b", "c0", "h0", "x"]
    for name, err in errors.items():
        check(f"gradcheck lstm_with_state, mask {mask_kind}", err, GRADCHECK_TOL, f"d{name}")


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


@pytest.mark.parametrize("N,T,D,H", [(2, 1, 3, 4), (1, 4, 3, 2), (3, 3, 2, 1), (1, 1, 1, 1)])
def test_lstm_backward_matches_numerical_gradient_edge_shapes(N, T, D, H):
    rng = np.random.default_rng(240 + 7 * N + 5 * T + 3 * D + H)
    p = problem(rng, "lstm", N, T, D, H)
    errors = gradcheck_sequence("lstm", p, randn(rng, N, T, H), randn(rng, N, H), None)
    for name, err in errors.items():
        check("gradcheck lstm_with_state (edge shapes)", err, GRADCHECK_TOL, f"d{name}")


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


@pytest.mark.parametrize("mask_kind", ["none", "padded_tails", "holes"])
def test_lstm_sequence_equals_loop_of_step_calls(mask_kind):
    rng = np.random.default_rng(260)
    mask = MASKS[mask_kind]
    p = problem(rng, "lstm", 3, 5, 4, 6)
    dh, dc_last = randn(rng, 3, 5, 6), randn(rng, 3, 6)
    h, c_last, cache = seq_forward("lstm", p, mask)
    h_ref, c_ref, caches = step_loop_forward("lstm", p, mask)
    check("lstm sequence vs step loop: forward", rel_error(h, h_ref), EXACT_TOL, "h")
    check("lstm sequence vs step loop: forward", rel_error(c_last, c_ref), EXACT_TOL, "c_last")
    grads = seq_backward("lstm", dh, dc_last, cache)
    grads_ref = step_loop_backward(dh, dc_last, caches)
    check("lstm sequence vs step loop: grads", max_rel_error(grads, grads_ref), EXACT_TOL)


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


def test_lstm_chunked_with_carried_state_equals_whole_sequence():
    """T=12 at once == 3 chunks of 4 carrying (h[:, -1], c_last) forward, (dh0, dc0) back."""
    rng = np.random.default_rng(280)
    N, T, D, H = 3, 12, 4, 5
    p = problem(rng, "lstm", N, T, D, H)
    dh, dc_last = randn(rng, N, T, H), randn(rng, N, H)
    h, c_last, cache = seq_forward("lstm", p, None)
    whole = seq_backward("lstm", dh, dc_last, cache)

    h_prev, c_prev, hs, caches = p["h0"], p["c0"], [], []
    for k in range(3):
        part = {**p, "x": np.ascontiguousarray(p["x"][:, 4 * k: 4 * k + 4]),
                "h0": h_prev, "c0": c_prev}
        hk, c_prev, ck = seq_forward("lstm", part, None)
        hs.append(hk)
        caches.append(ck)
        h_prev = hk[:, -1]
    check("lstm chunked vs whole: forward", rel_error(np.concatenate(hs, axis=1), h), 1e-14)
    check("lstm chunked vs whole: forward", rel_error(c_prev, c_last), 1e-14, "c_last")

    dh_carry, dc_carry = np.zeros((N, H)), dc_last
    dxs, sums = [None] * 3, {}
    for k in reversed(range(3)):
        dhk = dh[:, 4 * k: 4 * k + 4].copy()
        dhk[:, -1] += dh_carry
        g = seq_backward("lstm", dhk, dc_carry, caches[k])
        dxs[k], dh_carry, dc_carry = g["x"], g["h0"], g["c0"]
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g[name]
    chunked = {"x": np.concatenate(dxs, axis=1), "h0": dh_carry, "c0": dc_carry, **sums}
    check("lstm chunked vs whole: grads", max_rel_error(chunked, whole), EXACT_TOL)


def test_lstm_padded_batch_equals_each_sequence_alone():
    rng = np.random.default_rng(290)
    lengths, T, D, H = [6, 3, 1, 4], 6, 4, 5
    N = len(lengths)
    mask = lengths_mask(lengths, T)
    p = problem(rng, "lstm", N, T, D, H)
    dh = randn(rng, N, T, H) * mask[:, :, None]      # no upstream gradient on padded steps
    dc_last = randn(rng, N, H)
    h, c_last, cache = seq_forward("lstm", p, mask)
    g = seq_backward("lstm", dh, dc_last, cache)

    sums: dict[str, np.ndarray] = {}
    for n, L in enumerate(lengths):
        rows = slice(n, n + 1)
        one = {**p, "x": p["x"][rows, :L].copy(), "h0": p["h0"][rows], "c0": p["c0"][rows]}
        h1, c1, cache1 = seq_forward("lstm", one, None)
        check("lstm padded batch vs alone: forward", rel_error(h[rows, :L], h1), EXACT_TOL)
        check("lstm padded batch vs alone: forward", rel_error(h[n, -1], h1[0, -1]), EXACT_TOL,
              "h[:, -1] == last valid h")
        check("lstm padded batch vs alone: forward", rel_error(c_last[rows], c1), EXACT_TOL,
              "c_last")
        g1 = seq_backward("lstm", dh[rows, :L].copy(), dc_last[rows], cache1)
        check("lstm padded batch vs alone: grads", rel_error(g["x"][rows, :L], g1["x"]),
              EXACT_TOL, "dx")
        assert np.all(g["x"][n, L:] == 0.0)
        for name in ("h0", "c0"):
            check("lstm padded batch vs alone: grads", rel_error(g[name][rows], g1[name]),
                  EXACT_TOL, name)
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g1[name]
    for name in ("Wx", "Wh", "b"):
        check("lstm padded batch vs alone: grads", rel_error(g[name], sums[name]), EXACT_TOL,
              name)


def test_lstm_mask_with_holes_equals_sequence_with_held_steps_removed():
    rng = np.random.default_rng(300)
    mask = np.array([[0, 1, 0, 1, 1, 0, 1]], dtype=bool)
    p = problem(rng, "lstm", 1, 7, 3, 4)
    dh, dc_last = randn(rng, 1, 7, 4) * mask[:, :, None], randn(rng, 1, 4)
    h, c_last, cache = seq_forward("lstm", p, mask)
    g = seq_backward("lstm", dh, dc_last, cache)
    keep = np.flatnonzero(mask[0])
    hs, cs, caches = seq_forward("lstm", {**p, "x": p["x"][:, keep].copy()}, None)
    check("lstm holes vs steps removed", rel_error(h[:, keep], hs), EXACT_TOL)
    check("lstm holes vs steps removed", rel_error(c_last, cs), EXACT_TOL)
    gs = seq_backward("lstm", dh[:, keep].copy(), dc_last, caches)
    assert np.all(g["x"][:, ~mask[0]] == 0.0)
    g["x"] = g["x"][:, keep]
    check("lstm holes vs steps removed", max_rel_error(g, gs), EXACT_TOL)


def test_lstm_float32_gives_float32_matching_float64():
    rng = np.random.default_rng(310)
    mask = lengths_mask([6, 4, 5], 6)
    p64 = problem(rng, "lstm", 3, 6, 5, 7)
    dh64, dc64 = randn(rng, 3, 6, 7), randn(rng, 3, 7)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    h64, c64, cache64 = seq_forward("lstm", p64, mask)
    h32, c32, cache32 = seq_forward("lstm", p32, mask)
    g64 = seq_backward("lstm", dh64, dc64, cache64)
    g32 = seq_backward("lstm", dh64.astype(np.float32), dc64.astype(np.float32), cache32)
    assert h32.dtype == np.float32 and c32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g32.values())
    check("lstm float32 vs float64", max(rel_error(h32, h64), rel_error(c32, c64)), 1e-4)
    check("lstm float32 vs float64", max_rel_error(g32, g64), 1e-4)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), masked=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_lstm_sequence_shapes_dtypes_and_held_state(N, T, D, H, dtype, masked, seed):
    rng = np.random.default_rng(seed)
    p = problem(rng, "lstm", N, T, D, H, dtype=dtype)
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.5
        mask[np.arange(N), rng.integers(0, T, N)] = True      # every row has a valid step
    h, c_last, cache = lstm_forward_with_state(p["x"], p["h0"], p["c0"], p["Wx"], p["Wh"],
                                               p["b"], mask=mask)
    assert h.shape == (N, T, H) and h.dtype == dtype
    assert c_last.shape == (N, H) and c_last.dtype == dtype
    valid = np.ones((N, T), dtype=bool) if mask is None else mask
    assert np.all(np.abs(h[valid]) <= 1.0)           # a held leading step still shows h0
    grads = lstm_backward_with_state(randn(rng, N, T, H, dtype=dtype),
                                     randn(rng, N, H, dtype=dtype), cache)
    shapes = [(N, T, D), (N, H), (N, H), (D, 4 * H), (H, 4 * H), (4 * H,)]
    assert [g.shape for g in grads] == shapes
    assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in grads)
    h2, cache2 = lstm_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask=mask)
    assert h2.shape == (N, T, H) and h2.dtype == dtype
    assert [g.shape for g in lstm_backward(np.ones_like(h2), cache2)] == shapes[:2] + shapes[3:]
    if mask is not None:
        last = T - 1 - np.argmax(mask[:, ::-1], axis=1)             # each row's last valid step
        np.testing.assert_array_equal(h[:, -1], h[np.arange(N), last])
        assert np.all(grads[0][~mask] == 0.0)


@pytest.mark.parametrize("N,T,H", [(2, 3, 4), (1, 3, 1), (3, 1, 1)])
def test_lstm_backward_unaffected_by_in_place_edits_of_outputs_and_inputs(N, T, H):
    """The caller owns what forward returns and what it passed in: editing those arrays in place
    after the forward (dropout on h, reusing buffers) must not change the backward, and neither
    forward nor backward may modify its arguments."""
    rng = np.random.default_rng(195 + N + T + H)
    p = problem(rng, "lstm", N, T, 3, H)
    dh, dc_last = randn(rng, N, T, H), randn(rng, N, H)
    saved = {k: v.copy() for k, v in p.items()}
    dh_saved = dh.copy()
    h, c_last, cache = seq_forward("lstm", p, None)
    ref = seq_backward("lstm", dh, dc_last, cache)
    for k, v in saved.items():
        np.testing.assert_array_equal(p[k], v, err_msg=f"forward/backward modified {k}")
    np.testing.assert_array_equal(dh, dh_saved, err_msg="backward modified dh")

    h, c_last, cache = seq_forward("lstm", p, None)
    h *= 0.5                                         # e.g. dropout applied in place
    if c_last is not None:
        c_last *= 0.5
    got = seq_backward("lstm", dh, dc_last, cache)
    check("lstm backward after in-place edit of outputs", max_rel_error(got, ref), 0.0)
