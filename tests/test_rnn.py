"""bptt.functional.rnn: numerical gradients, step == sequence, chunking, masks, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.functional import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
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
def test_rnn_step_backward_matches_numerical_gradient(N, D, H):
    rng = np.random.default_rng(100 + N + D + H)
    args = {"x": randn(rng, N, D), "prev_h": randn(rng, N, H, scale=0.5),
            "Wx": randn(rng, D, H, scale=0.6), "Wh": randn(rng, H, H, scale=0.6),
            "b": randn(rng, H, scale=0.5)}
    dnext_h = randn(rng, N, H)
    res = check_function("rnn_step", rnn_step_forward, rnn_step_backward, args,
                         ["x", "prev_h", "Wx", "Wh", "b"], dnext_h)
    assert [r.name for r in res] == ["x", "prev_h", "Wx", "Wh", "b"]
    for r in res:
        check("gradcheck rnn_step", r.error, GRADCHECK_TOL)


@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_rnn_backward_matches_numerical_gradient_with_masks(mask_kind):
    rng = np.random.default_rng(110)
    p = problem(rng, "rnn", 3, 5, 4, 3)
    dh = randn(rng, 3, 5, 3)
    errors = gradcheck_sequence("rnn", p, dh, None, MASKS[mask_kind])
    assert sorted(errors) == ["Wh", "Wx", "b", "h0", "x"]
    for name, err in errors.items():
        check(f"gradcheck rnn sequence, mask {mask_kind}", err, GRADCHECK_TOL, f"d{name}")


@pytest.mark.parametrize("N,T,D,H", [(2, 1, 3, 4), (1, 4, 3, 2), (3, 3, 2, 1), (1, 1, 1, 1)])
def test_rnn_backward_matches_numerical_gradient_edge_shapes(N, T, D, H):
    rng = np.random.default_rng(120 + 7 * N + 5 * T + 3 * D + H)
    p = problem(rng, "rnn", N, T, D, H)
    errors = gradcheck_sequence("rnn", p, randn(rng, N, T, H), None, None)
    for err in errors.values():
        check("gradcheck rnn sequence (edge shapes)", err, GRADCHECK_TOL)


def test_rnn_masked_padded_steps_get_zero_input_gradient():
    rng = np.random.default_rng(130)
    mask = MASKS["holes"]
    p = problem(rng, "rnn", 3, 5, 4, 3)
    _, cache = rnn_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask=mask)
    dx = rnn_backward(randn(rng, 3, 5, 3), cache)[0]
    assert np.all(dx[~mask] == 0.0)
    assert np.all(np.abs(dx[mask]).max(axis=-1) > 0.0)


@pytest.mark.parametrize("mask_kind", ["none", "padded_tails", "holes"])
def test_rnn_sequence_equals_loop_of_step_calls(mask_kind):
    rng = np.random.default_rng(140)
    mask = MASKS[mask_kind]
    p = problem(rng, "rnn", 3, 5, 4, 6)
    dh = randn(rng, 3, 5, 6)
    h, _, cache = seq_forward("rnn", p, mask)
    h_ref, _, caches = step_loop_forward("rnn", p, mask)
    check("rnn sequence vs step loop: forward", rel_error(h, h_ref), EXACT_TOL)
    grads = seq_backward("rnn", dh, None, cache)
    grads_ref = step_loop_backward(dh, None, caches)
    check("rnn sequence vs step loop: grads", max_rel_error(grads, grads_ref), EXACT_TOL)


def test_rnn_all_true_mask_equals_no_mask():
    rng = np.random.default_rng(150)
    p = problem(rng, "rnn", 3, 5, 4, 3)
    dh = randn(rng, 3, 5, 3)
    h0, _, c0 = seq_forward("rnn", p, None)
    h1, _, c1 = seq_forward("rnn", p, np.ones((3, 5), dtype=bool))
    np.testing.assert_array_equal(h0, h1)
    g0, g1 = seq_backward("rnn", dh, None, c0), seq_backward("rnn", dh, None, c1)
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k])


def test_rnn_chunked_with_carried_state_equals_whole_sequence():
    """T=12 at once == 3 chunks of 4 carrying h[:, -1] forward and dh0 backward."""
    rng = np.random.default_rng(160)
    N, T, D, H = 3, 12, 4, 5
    p = problem(rng, "rnn", N, T, D, H)
    dh = randn(rng, N, T, H)
    h, _, cache = seq_forward("rnn", p, None)
    whole = seq_backward("rnn", dh, None, cache)

    h_prev, hs, caches = p["h0"], [], []
    for k in range(3):
        part = {**p, "x": np.ascontiguousarray(p["x"][:, 4 * k: 4 * k + 4]), "h0": h_prev}
        hk, _, ck = seq_forward("rnn", part, None)
        hs.append(hk)
        caches.append(ck)
        h_prev = hk[:, -1]
    check("rnn chunked vs whole: forward", rel_error(np.concatenate(hs, axis=1), h), 1e-14)

    dh_carry = np.zeros((N, H))
    dxs, sums = [None] * 3, {}
    for k in reversed(range(3)):
        dhk = dh[:, 4 * k: 4 * k + 4].copy()
        dhk[:, -1] += dh_carry                       # dL/dh0 of chunk k+1 = dL/dh_last of chunk k
        g = seq_backward("rnn", dhk, None, caches[k])
        dxs[k], dh_carry = g["x"], g["h0"]
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g[name]
    chunked = {"x": np.concatenate(dxs, axis=1), "h0": dh_carry, **sums}
    check("rnn chunked vs whole: grads", max_rel_error(chunked, whole), EXACT_TOL)


def test_rnn_padded_batch_equals_each_sequence_alone():
    rng = np.random.default_rng(170)
    lengths, T, D, H = [6, 3, 1, 4], 6, 4, 5
    N = len(lengths)
    mask = lengths_mask(lengths, T)
    p = problem(rng, "rnn", N, T, D, H)
    dh = randn(rng, N, T, H) * mask[:, :, None]      # no upstream gradient on padded steps
    h, _, cache = seq_forward("rnn", p, mask)
    g = seq_backward("rnn", dh, None, cache)

    sums: dict[str, np.ndarray] = {}
    for n, L in enumerate(lengths):
        one = {**p, "x": p["x"][n:n + 1, :L].copy(), "h0": p["h0"][n:n + 1]}
        h1, _, c1 = seq_forward("rnn", one, None)
        check("rnn padded batch vs alone: forward", rel_error(h[n:n + 1, :L], h1), EXACT_TOL)
        np.testing.assert_array_equal(h[n, L:], np.broadcast_to(h[n, L - 1], (T - L, H)))
        check("rnn padded batch vs alone: forward", rel_error(h[n, -1], h1[0, -1]), EXACT_TOL)
        g1 = seq_backward("rnn", dh[n:n + 1, :L].copy(), None, c1)
        check("rnn padded batch vs alone: grads", rel_error(g["x"][n:n + 1, :L], g1["x"]),
              EXACT_TOL)
        assert np.all(g["x"][n, L:] == 0.0)
        check("rnn padded batch vs alone: grads", rel_error(g["h0"][n:n + 1], g1["h0"]),
              EXACT_TOL)
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g1[name]
    for name in ("Wx", "Wh", "b"):
        check("rnn padded batch vs alone: grads", rel_error(g[name], sums[name]), EXACT_TOL)


def test_rnn_mask_with_holes_equals_sequence_with_held_steps_removed():
    rng = np.random.default_rng(180)
    mask = np.array([[1, 0, 0, 1, 1, 0, 1]], dtype=bool)
    p = problem(rng, "rnn", 1, 7, 3, 4)
    dh = randn(rng, 1, 7, 4) * mask[:, :, None]
    h, _, cache = seq_forward("rnn", p, mask)
    g = seq_backward("rnn", dh, None, cache)
    keep = np.flatnonzero(mask[0])
    short = {**p, "x": p["x"][:, keep].copy()}
    hs, _, cs = seq_forward("rnn", short, None)
    check("rnn holes vs steps removed", rel_error(h[:, keep], hs), EXACT_TOL)
    gs = seq_backward("rnn", dh[:, keep].copy(), None, cs)
    assert np.all(g["x"][:, ~mask[0]] == 0.0)
    g["x"] = g["x"][:, keep]
    check("rnn holes vs steps removed", max_rel_error(g, gs), EXACT_TOL)


def test_rnn_float32_gives_float32_matching_float64():
    rng = np.random.default_rng(190)
    mask = lengths_mask([6, 4, 5], 6)
    p64 = problem(rng, "rnn", 3, 6, 5, 7)
    dh64 = randn(rng, 3, 6, 7)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    h64, _, c64 = seq_forward("rnn", p64, mask)
    h32, _, c32 = seq_forward("rnn", p32, mask)
    g64 = seq_backward("rnn", dh64, None, c64)
    g32 = seq_backward("rnn", dh64.astype(np.float32), None, c32)
    assert h32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g32.values())
    check("rnn float32 vs float64", rel_error(h32, h64), 1e-4)
    check("rnn float32 vs float64", max_rel_error(g32, g64), 1e-4)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), masked=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_rnn_sequence_shapes_dtypes_and_held_state(N, T, D, H, dtype, masked, seed):
    rng = np.random.default_rng(seed)
    p = problem(rng, "rnn", N, T, D, H, dtype=dtype)
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.5
        mask[np.arange(N), rng.integers(0, T, N)] = True      # every row has a valid step
    h, cache = rnn_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask=mask)
    assert h.shape == (N, T, H) and h.dtype == dtype
    valid = np.ones((N, T), dtype=bool) if mask is None else mask
    assert np.all(np.abs(h[valid]) <= 1.0)           # a held leading step still shows h0
    grads = rnn_backward(randn(rng, N, T, H, dtype=dtype), cache)
    shapes = [(N, T, D), (N, H), (D, H), (H, H), (H,)]
    assert [g.shape for g in grads] == shapes
    assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in grads)
    if mask is not None:
        last = T - 1 - np.argmax(mask[:, ::-1], axis=1)             # each row's last valid step
        np.testing.assert_array_equal(h[:, -1], h[np.arange(N), last])
        assert np.all(grads[0][~mask] == 0.0)


@pytest.mark.parametrize("N,T,H", [(2, 3, 4), (1, 3, 1), (3, 1, 1)])
def test_rnn_backward_unaffected_by_in_place_edits_of_outputs_and_inputs(N, T, H):
    """The caller owns what forward returns and what it passed in: editing those arrays in place
    after the forward (dropout on h, reusing buffers) must not change the backward, and neither
    forward nor backward may modify its arguments."""
    rng = np.random.default_rng(195 + N + T + H)
    p = problem(rng, "rnn", N, T, 3, H)
    dh, dc_last = randn(rng, N, T, H), None
    saved = {k: v.copy() for k, v in p.items()}
    dh_saved = dh.copy()
    h, c_last, cache = seq_forward("rnn", p, None)
    ref = seq_backward("rnn", dh, dc_last, cache)
    for k, v in saved.items():
        np.testing.assert_array_equal(p[k], v, err_msg=f"forward/backward modified {k}")
    np.testing.assert_array_equal(dh, dh_saved, err_msg="backward modified dh")

    h, c_last, cache = seq_forward("rnn", p, None)
    h *= 0.5                                         # e.g. dropout applied in place
    if c_last is not None:
        c_last *= 0.5
    got = seq_backward("rnn", dh, dc_last, cache)
    check("rnn backward after in-place edit of outputs", max_rel_error(got, ref), 0.0)
