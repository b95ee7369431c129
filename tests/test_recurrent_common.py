"""Every recurrent cell (RNN, LSTM): numerical gradients of the step and of the sequence, the
engine against the reference loop, chunking with carried state, masks, dtypes, ownership.

The same test for each cell; what is particular to one cell lives in tests/test_lstm.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import functional as F
from bptt.gradcheck import check_function, rel_error
from helpers import (
    GATES,
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

CELLS = ["rnn", "lstm"]
SEED = {"rnn": 100, "lstm": 200}         # a different random problem for each cell
GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12

MASKS = {
    "none": None,
    "all_true": np.ones((3, 5), dtype=bool),
    "padded_tails": lengths_mask([5, 2, 1], 5),
    "holes": np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 1]], dtype=bool),
}


def has_c(cell: str) -> bool:
    return "c" in F.STEP_CELLS[cell].state


def dc_or_none(cell: str, rng: np.random.Generator, N: int, H: int, dtype=np.float64):
    """A random dL/dc_last for a cell with a cell state, else None."""
    return randn(rng, N, H, dtype=dtype) if has_c(cell) else None


def step_problem(cell: str, rng: np.random.Generator, N: int, D: int, H: int):
    """(forward, backward, args, grad names, upstream grads, n_outputs) of one step."""
    G = GATES[cell] * H
    args = {"x": randn(rng, N, D), "prev_h": randn(rng, N, H, scale=0.5)}
    if has_c(cell):
        args["prev_c"] = randn(rng, N, H, scale=0.8)
    args.update({"Wx": randn(rng, D, G, scale=0.6), "Wh": randn(rng, H, G, scale=0.6),
                 "b": randn(rng, G, scale=0.5)})
    douts = [randn(rng, N, H) for _ in F.STEP_CELLS[cell].state]     # dnext_h (, dnext_c)
    fwd = getattr(F, f"{cell}_step_forward")
    bwd = getattr(F, f"{cell}_step_backward")
    return fwd, bwd, args, list(args), douts, len(douts)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("N", "D", "H"), [(3, 4, 5), (1, 3, 4), (2, 3, 1)])
def test_step_backward_matches_numerical_gradient(cell, N, D, H):
    rng = np.random.default_rng(SEED[cell] + N + D + H)
    fwd, bwd, args, names, douts, n_out = step_problem(cell, rng, N, D, H)
    res = check_function(f"{cell}_step", fwd, bwd, args, names, douts, n_outputs=n_out)
    assert [r.name for r in res] == names
    for r in res:
        check(f"gradcheck {cell}_step", r.error, GRADCHECK_TOL, r.name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_sequence_backward_matches_numerical_gradient_with_masks(cell, mask_kind):
    rng = np.random.default_rng(SEED[cell] + 10)
    p = problem(rng, cell, 3, 5, 4, 3)
    dh, dc_last = randn(rng, 3, 5, 3), dc_or_none(cell, rng, 3, 3)
    errors = gradcheck_sequence(cell, p, dh, dc_last, MASKS[mask_kind])
    assert sorted(errors) == sorted(p)
    for name, err in errors.items():
        check(f"gradcheck {cell} sequence, mask {mask_kind}", err, GRADCHECK_TOL, f"d{name}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("N", "T", "D", "H"), [(2, 1, 3, 4), (1, 4, 3, 2), (3, 3, 2, 1),
                                                (1, 1, 1, 1)])
def test_sequence_backward_matches_numerical_gradient_edge_shapes(cell, N, T, D, H):
    rng = np.random.default_rng(SEED[cell] + 20 + 7 * N + 5 * T + 3 * D + H)
    p = problem(rng, cell, N, T, D, H)
    errors = gradcheck_sequence(cell, p, randn(rng, N, T, H), dc_or_none(cell, rng, N, H), None)
    assert sorted(errors) == sorted(p)
    for name, err in errors.items():
        check(f"gradcheck {cell} sequence (edge shapes)", err, GRADCHECK_TOL, f"d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_masked_padded_steps_get_zero_input_gradient(cell):
    rng = np.random.default_rng(SEED[cell] + 30)
    mask = MASKS["holes"]
    p = problem(rng, cell, 3, 5, 4, 3)
    _, _, cache = seq_forward(cell, p, mask)
    dx = seq_backward(cell, randn(rng, 3, 5, 3), dc_or_none(cell, rng, 3, 3), cache)["x"]
    assert np.all(dx[~mask] == 0.0)
    assert np.all(np.abs(dx[mask]).max(axis=-1) > 0.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mask_kind", ["none", "padded_tails", "holes"])
def test_sequence_equals_reference_loop_of_step_calls(cell, mask_kind):
    rng = np.random.default_rng(SEED[cell] + 40)
    mask = MASKS[mask_kind]
    p = problem(rng, cell, 3, 5, 4, 6)
    dh, dc_last = randn(rng, 3, 5, 6), dc_or_none(cell, rng, 3, 6)
    h, c_last, cache = seq_forward(cell, p, mask)
    h_ref, c_ref, ref_cache = step_loop_forward(cell, p, mask)
    check(f"{cell} sequence vs step loop: forward", rel_error(h, h_ref), EXACT_TOL, "h")
    if has_c(cell):
        check(f"{cell} sequence vs step loop: forward", rel_error(c_last, c_ref), EXACT_TOL,
              "c_last")
    grads = seq_backward(cell, dh, dc_last, cache)
    grads_ref = step_loop_backward(dh, dc_last, ref_cache)
    check(f"{cell} sequence vs step loop: grads", max_rel_error(grads, grads_ref), EXACT_TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_all_true_mask_equals_no_mask(cell):
    rng = np.random.default_rng(SEED[cell] + 50)
    p = problem(rng, cell, 3, 5, 4, 3)
    dh, dc_last = randn(rng, 3, 5, 3), dc_or_none(cell, rng, 3, 3)
    h0, c0, cache0 = seq_forward(cell, p, None)
    h1, c1, cache1 = seq_forward(cell, p, np.ones((3, 5), dtype=bool))
    np.testing.assert_array_equal(h0, h1)
    if has_c(cell):
        np.testing.assert_array_equal(c0, c1)
    g0, g1 = seq_backward(cell, dh, dc_last, cache0), seq_backward(cell, dh, dc_last, cache1)
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k])


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_with_carried_state_equals_whole_sequence(cell):
    """T=12 at once == 3 chunks of 4 carrying (h[:, -1], c_last) forward, (dh0, dc0) back."""
    rng = np.random.default_rng(SEED[cell] + 60)
    N, T, D, H = 3, 12, 4, 5
    p = problem(rng, cell, N, T, D, H)
    dh, dc_last = randn(rng, N, T, H), dc_or_none(cell, rng, N, H)
    h, c_last, cache = seq_forward(cell, p, None)
    whole = seq_backward(cell, dh, dc_last, cache)

    h_prev, c_prev, hs, caches = p["h0"], p.get("c0"), [], []
    for k in range(3):
        part = {**p, "x": np.ascontiguousarray(p["x"][:, 4 * k: 4 * k + 4]), "h0": h_prev}
        if has_c(cell):
            part["c0"] = c_prev
        hk, c_prev, ck = seq_forward(cell, part, None)
        hs.append(hk)
        caches.append(ck)
        h_prev = hk[:, -1]
    check(f"{cell} chunked vs whole: forward", rel_error(np.concatenate(hs, axis=1), h), 1e-14)
    if has_c(cell):
        check(f"{cell} chunked vs whole: forward", rel_error(c_prev, c_last), 1e-14, "c_last")

    dh_carry, dc_carry = np.zeros((N, H)), dc_last
    dxs, sums = [None] * 3, {}
    for k in reversed(range(3)):
        dhk = dh[:, 4 * k: 4 * k + 4].copy()
        dhk[:, -1] += dh_carry                       # dL/dh0 of chunk k+1 = dL/dh_last of chunk k
        g = seq_backward(cell, dhk, dc_carry, caches[k])
        dxs[k], dh_carry, dc_carry = g["x"], g["h0"], g.get("c0")
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g[name]
    chunked = {"x": np.concatenate(dxs, axis=1), "h0": dh_carry, **sums}
    if has_c(cell):
        chunked["c0"] = dc_carry
    check(f"{cell} chunked vs whole: grads", max_rel_error(chunked, whole), EXACT_TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_equals_each_sequence_alone(cell):
    rng = np.random.default_rng(SEED[cell] + 70)
    lengths, T, D, H = [6, 3, 1, 4], 6, 4, 5
    N = len(lengths)
    mask = lengths_mask(lengths, T)
    p = problem(rng, cell, N, T, D, H)
    dh = randn(rng, N, T, H) * mask[:, :, None]      # no upstream gradient on padded steps
    dc_last = dc_or_none(cell, rng, N, H)
    h, c_last, cache = seq_forward(cell, p, mask)
    g = seq_backward(cell, dh, dc_last, cache)
    what = f"{cell} padded batch vs alone"

    sums: dict[str, np.ndarray] = {}
    for n, L in enumerate(lengths):
        rows = slice(n, n + 1)
        one = {k: (v[rows, :L].copy() if k == "x" else v[rows] if k in ("h0", "c0") else v)
               for k, v in p.items()}
        h1, c1, cache1 = seq_forward(cell, one, None)
        check(f"{what}: forward", rel_error(h[rows, :L], h1), EXACT_TOL)
        np.testing.assert_array_equal(h[n, L:], np.broadcast_to(h[n, L - 1], (T - L, H)))
        check(f"{what}: forward", rel_error(h[n, -1], h1[0, -1]), EXACT_TOL,
              "h[:, -1] == last valid h")
        if has_c(cell):
            check(f"{what}: forward", rel_error(c_last[rows], c1), EXACT_TOL, "c_last")
        g1 = seq_backward(cell, dh[rows, :L].copy(),
                          None if dc_last is None else dc_last[rows], cache1)
        check(f"{what}: grads", rel_error(g["x"][rows, :L], g1["x"]), EXACT_TOL, "dx")
        assert np.all(g["x"][n, L:] == 0.0)
        for name in ("h0", "c0"):
            if name in g:
                check(f"{what}: grads", rel_error(g[name][rows], g1[name]), EXACT_TOL, name)
        for name in ("Wx", "Wh", "b"):
            sums[name] = sums.get(name, 0.0) + g1[name]
    for name in ("Wx", "Wh", "b"):
        check(f"{what}: grads", rel_error(g[name], sums[name]), EXACT_TOL, name)


@pytest.mark.parametrize(("cell", "row"), [("rnn", [1, 0, 0, 1, 1, 0, 1]),
                                           ("lstm", [0, 1, 0, 1, 1, 0, 1])])
def test_mask_with_holes_equals_sequence_with_held_steps_removed(cell, row):
    rng = np.random.default_rng(SEED[cell] + 80)
    mask = np.array([row], dtype=bool)
    p = problem(rng, cell, 1, 7, 3, 4)
    dh, dc_last = randn(rng, 1, 7, 4) * mask[:, :, None], dc_or_none(cell, rng, 1, 4)
    h, c_last, cache = seq_forward(cell, p, mask)
    g = seq_backward(cell, dh, dc_last, cache)
    keep = np.flatnonzero(mask[0])
    hs, cs, caches = seq_forward(cell, {**p, "x": p["x"][:, keep].copy()}, None)
    check(f"{cell} holes vs steps removed", rel_error(h[:, keep], hs), EXACT_TOL)
    if has_c(cell):
        check(f"{cell} holes vs steps removed", rel_error(c_last, cs), EXACT_TOL, "c_last")
    gs = seq_backward(cell, dh[:, keep].copy(), dc_last, caches)
    assert np.all(g["x"][:, ~mask[0]] == 0.0)
    g["x"] = g["x"][:, keep]
    check(f"{cell} holes vs steps removed", max_rel_error(g, gs), EXACT_TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_gives_float32_matching_float64(cell):
    rng = np.random.default_rng(SEED[cell] + 90)
    mask = lengths_mask([6, 4, 5], 6)
    p64 = problem(rng, cell, 3, 6, 5, 7)
    dh64, dc64 = randn(rng, 3, 6, 7), dc_or_none(cell, rng, 3, 7)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    dc32 = None if dc64 is None else dc64.astype(np.float32)
    h64, c64, cache64 = seq_forward(cell, p64, mask)
    h32, c32, cache32 = seq_forward(cell, p32, mask)
    g64 = seq_backward(cell, dh64, dc64, cache64)
    g32 = seq_backward(cell, dh64.astype(np.float32), dc32, cache32)
    assert h32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g32.values())
    check(f"{cell} float32 vs float64", rel_error(h32, h64), 1e-4)
    if has_c(cell):
        assert c32.dtype == np.float32
        check(f"{cell} float32 vs float64", rel_error(c32, c64), 1e-4, "c_last")
    check(f"{cell} float32 vs float64", max_rel_error(g32, g64), 1e-4)


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), masked=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_sequence_shapes_dtypes_and_held_state(cell, N, T, D, H, dtype, masked, seed):
    rng = np.random.default_rng(seed)
    p = problem(rng, cell, N, T, D, H, dtype=dtype)
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.5
        mask[np.arange(N), rng.integers(0, T, N)] = True      # every row has a valid step
    h, c_last, cache = seq_forward(cell, p, mask)
    assert h.shape == (N, T, H) and h.dtype == dtype
    if has_c(cell):
        assert c_last.shape == (N, H) and c_last.dtype == dtype
    valid = np.ones((N, T), dtype=bool) if mask is None else mask
    assert np.all(np.abs(h[valid]) <= 1.0)           # a held leading step still shows h0
    grads = seq_backward(cell, randn(rng, N, T, H, dtype=dtype),
                         dc_or_none(cell, rng, N, H, dtype), cache)
    G = GATES[cell] * H
    shapes = {"x": (N, T, D), "h0": (N, H), "c0": (N, H), "Wx": (D, G), "Wh": (H, G),
              "b": (G,)}
    assert {k: g.shape for k, g in grads.items()} == {k: shapes[k] for k in p}
    assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in grads.values())
    if mask is not None:
        last = T - 1 - np.argmax(mask[:, ::-1], axis=1)             # each row's last valid step
        np.testing.assert_array_equal(h[:, -1], h[np.arange(N), last])
        assert np.all(grads["x"][~mask] == 0.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("N", "T", "H"), [(2, 3, 4), (1, 3, 1), (3, 1, 1)])
def test_backward_unaffected_by_in_place_edits_of_outputs_and_inputs(cell, N, T, H):
    """The caller owns what forward returns and what it passed in: editing those arrays in place
    after the forward (dropout on h, reusing buffers) must not change the backward, and neither
    forward nor backward may modify its arguments."""
    rng = np.random.default_rng(195 + N + T + H)
    p = problem(rng, cell, N, T, 3, H)
    dh, dc_last = randn(rng, N, T, H), dc_or_none(cell, rng, N, H)
    saved = {k: v.copy() for k, v in p.items()}
    dh_saved = dh.copy()
    h, c_last, cache = seq_forward(cell, p, None)
    ref = seq_backward(cell, dh, dc_last, cache)
    for k, v in saved.items():
        np.testing.assert_array_equal(p[k], v, err_msg=f"forward/backward modified {k}")
    np.testing.assert_array_equal(dh, dh_saved, err_msg="backward modified dh")

    h, c_last, cache = seq_forward(cell, p, None)
    h *= 0.5                                         # e.g. dropout applied in place
    if c_last is not None:
        c_last *= 0.5
    got = seq_backward(cell, dh, dc_last, cache)
    check(f"{cell} backward after in-place edit of outputs", max_rel_error(got, ref), 0.0)
