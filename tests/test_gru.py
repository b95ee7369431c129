"""bptt.functional.gru: numerical gradients of step and sequence, step == sequence, a naive
per-gate reference, chunking, padding and masks, the inference path, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.functional import gru as gru_module
from bptt.functional import (
    gru_backward,
    gru_backward_with_state,
    gru_forward,
    gru_forward_with_state,
    gru_step_backward,
    gru_step_forward,
    lstm_forward,
)
from bptt.functional.cells import GATES
from bptt.functional.recurrence import recurrence_forward
from bptt.gradcheck import check_function, rel_error
from helpers import check, lengths_mask, max_rel_error, randn

GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12
NAMES = ("x", "h0", "Wx", "Wh", "b", "b_hn")

MASKS = {
    "none": None,
    "all_true": np.ones((3, 5), dtype=bool),
    "padded_tails": lengths_mask([5, 2, 1], 5),
    "holes": np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 1]], dtype=bool),
}


def problem(rng: np.random.Generator, N: int, T: int, D: int, H: int,
            dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Random non-zero x, h0, Wx (D, 3H), Wh (H, 3H), b (3H,), b_hn (H,)."""
    return {
        "x": randn(rng, N, T, D, dtype=dtype),
        "h0": randn(rng, N, H, scale=0.5, dtype=dtype),
        "Wx": randn(rng, D, 3 * H, scale=0.6, dtype=dtype),
        "Wh": randn(rng, H, 3 * H, scale=0.6, dtype=dtype),
        "b": randn(rng, 3 * H, scale=0.5, dtype=dtype),
        "b_hn": randn(rng, H, scale=0.5, dtype=dtype),
    }


def run(p: dict, dh: np.ndarray, dh_last: np.ndarray | None = None,
        mask: np.ndarray | None = None):
    """Forward + backward with state -> (h, h_last, grads dict keyed like NAMES)."""
    h, h_last, cache = gru_forward_with_state(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"],
                                              p["b_hn"], mask)
    return h, h_last, dict(zip(NAMES, gru_backward_with_state(dh, dh_last, cache), strict=True))


def step_loop(p: dict, dh: np.ndarray, mask: np.ndarray | None = None):
    """Reference: one step call per t (a masked step holds h), then the reversed loop of step
    backward calls (a masked step passes dh through)."""
    N, T, _ = p["x"].shape
    h, hs, caches = p["h0"], [], []
    for t in range(T):
        hn, cache = gru_step_forward(np.ascontiguousarray(p["x"][:, t]), h, p["Wx"], p["Wh"],
                                     p["b"], p["b_hn"])
        h = hn if mask is None else np.where(mask[:, t, None], hn, h)
        hs.append(h)
        caches.append(cache)
    grads = {k: np.zeros_like(p[k]) for k in NAMES}
    dh_next = np.zeros_like(p["h0"])
    for t in reversed(range(T)):
        dh_tot = dh[:, t] + dh_next
        m = np.ones((N, 1), dtype=bool) if mask is None else mask[:, t, None]
        dx, dprev, dWx, dWh, db, db_hn = gru_step_backward(dh_tot * m, caches[t])
        dh_next = np.where(m, dprev, dh_tot)
        grads["x"][:, t] = dx
        for k, g in (("Wx", dWx), ("Wh", dWh), ("b", db), ("b_hn", db_hn)):
            grads[k] += g
    grads["h0"] = dh_next
    return np.stack(hs, axis=1), grads


# --- numerical gradients ---------------------------------------------------------------------

@pytest.mark.parametrize(("N", "D", "H"), [(3, 4, 5), (1, 3, 4), (2, 3, 1)])
def test_gru_step_backward_matches_numerical_gradient(N, D, H):
    rng = np.random.default_rng(500 + N + D + H)
    args = {"x": randn(rng, N, D), "prev_h": randn(rng, N, H, scale=0.5),
            "Wx": randn(rng, D, 3 * H, scale=0.6), "Wh": randn(rng, H, 3 * H, scale=0.6),
            "b": randn(rng, 3 * H, scale=0.5), "b_hn": randn(rng, H, scale=0.5)}
    names = ["x", "prev_h", "Wx", "Wh", "b", "b_hn"]
    res = check_function("gru_step", gru_step_forward, gru_step_backward, args, names,
                         randn(rng, N, H))
    assert [r.name for r in res] == names
    for r in res:
        check("gradcheck gru_step", r.error, GRADCHECK_TOL, r.name)


@pytest.mark.parametrize("mask_kind", list(MASKS))
def test_gru_backward_matches_numerical_gradient_with_masks(mask_kind):
    rng = np.random.default_rng(510)
    args = {**problem(rng, 3, 5, 4, 3), "mask": MASKS[mask_kind]}
    res = check_function("gru", gru_forward, gru_backward, args, list(NAMES),
                         randn(rng, 3, 5, 3))
    assert [r.name for r in res] == list(NAMES)
    for r in res:
        check(f"gradcheck gru, mask {mask_kind}", r.error, GRADCHECK_TOL, f"d{r.name}")


@pytest.mark.parametrize("mask_kind", ["none", "padded_tails", "holes"])
@pytest.mark.parametrize("upstream", ["both", "dh_last only"])
def test_gru_backward_with_state_matches_numerical_gradient(mask_kind, upstream):
    rng = np.random.default_rng(520)
    args = {**problem(rng, 3, 5, 4, 3), "mask": MASKS[mask_kind]}
    dh = randn(rng, 3, 5, 3) if upstream == "both" else np.zeros((3, 5, 3))
    res = check_function("gru_with_state", gru_forward_with_state, gru_backward_with_state, args,
                         list(NAMES), [dh, randn(rng, 3, 3)], n_outputs=2)
    for r in res:
        check(f"gradcheck gru_with_state, {upstream}", r.error, GRADCHECK_TOL, f"d{r.name}")


@pytest.mark.parametrize(("N", "T", "D", "H"), [(2, 1, 3, 4), (1, 4, 3, 2), (3, 3, 2, 1),
                                                (1, 1, 1, 1), (1, 6, 2, 3)])
def test_gru_backward_matches_numerical_gradient_edge_shapes(N, T, D, H):
    rng = np.random.default_rng(530 + 7 * N + 5 * T + 3 * D + H)
    mask = None
    if T > 2:                                       # batch of one, with a hole
        mask = np.ones((N, T), dtype=bool)
        mask[:, 1] = False
    args = {**problem(rng, N, T, D, H), "mask": mask}
    res = check_function("gru", gru_forward, gru_backward, args, list(NAMES),
                         randn(rng, N, T, H))
    for r in res:
        check("gradcheck gru (edge shapes)", r.error, GRADCHECK_TOL, f"d{r.name}")


# --- exact references ------------------------------------------------------------------------

@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("N", [3, 1])
def test_gru_sequence_equals_loop_of_step_calls(mask_kind, N):
    rng = np.random.default_rng(540)
    mask = MASKS[mask_kind]
    mask = None if mask is None else mask[:N]
    p = problem(rng, N, 5, 4, 6)
    dh = randn(rng, N, 5, 6)
    h, _, g = run(p, dh, mask=mask)
    h_ref, g_ref = step_loop(p, dh, mask)
    check("gru sequence vs step loop: forward", rel_error(h, h_ref), EXACT_TOL, "h")
    check("gru sequence vs step loop: grads", max_rel_error(g, g_ref), EXACT_TOL)


def _sig(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def naive_gru(x, h0, W, dh):
    """torch.nn.GRU's documented equations with one matrix and two biases per gate,
    column-vector form r = sigma(W_ir x + b_ir + W_hr h + b_hr); forward and BPTT gate by gate."""
    h, steps = h0, []
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = _sig(xt @ W["ir"].T + W["b_ir"] + h @ W["hr"].T + W["b_hr"])
        z = _sig(xt @ W["iz"].T + W["b_iz"] + h @ W["hz"].T + W["b_hz"])
        hn = h @ W["hn"].T + W["b_hn"]
        n = np.tanh(xt @ W["in"].T + W["b_in"] + r * hn)
        steps.append((xt, h, r, z, n, hn))
        h = (1.0 - z) * n + z * h
    hs = np.stack([(1 - s[3]) * s[4] + s[3] * s[1] for s in steps], axis=1)
    g = {k: np.zeros_like(v) for k, v in W.items()}
    dxs, dnext = [], np.zeros_like(h0)
    for t in reversed(range(len(steps))):
        xt, hp, r, z, n, hn = steps[t]
        d = dh[:, t] + dnext
        dan = d * (1.0 - z) * (1.0 - n ** 2)                 # through n = tanh(a_n)
        da = {"r": dan * hn * r * (1.0 - r), "z": d * (hp - n) * z * (1.0 - z), "n": dan}
        dah = {"r": da["r"], "z": da["z"], "n": dan * r}    # the reset gate scales W_hn h + b_hn
        dnext = d * z + sum(dah[k] @ W["h" + k] for k in "rzn")
        dxs.append(sum(da[k] @ W["i" + k] for k in "rzn"))
        for k in "rzn":
            g["i" + k] += da[k].T @ xt
            g["h" + k] += dah[k].T @ hp
            g["b_i" + k] += da[k].sum(axis=0)
            g["b_h" + k] += dah[k].sum(axis=0)
    return hs, g, np.stack(dxs[::-1], axis=1), dnext


def test_fused_gru_equals_naive_per_gate_reference():
    rng = np.random.default_rng(550)
    N, T, D, H = 3, 5, 4, 3
    W = {}
    for k in "rzn":
        W["i" + k], W["h" + k] = randn(rng, H, D, scale=0.6), randn(rng, H, H, scale=0.6)
        W["b_i" + k], W["b_h" + k] = randn(rng, H, scale=0.5), randn(rng, H, scale=0.5)
    Wx = np.concatenate([W["i" + k].T for k in "rzn"], axis=1)          # (D, 3H)
    Wh = np.concatenate([W["h" + k].T for k in "rzn"], axis=1)          # (H, 3H)
    b = np.concatenate([W["b_ir"] + W["b_hr"], W["b_iz"] + W["b_hz"], W["b_in"]])
    x, h0, dh = randn(rng, N, T, D), randn(rng, N, H, scale=0.5), randn(rng, N, T, H)
    p = {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b, "b_hn": W["b_hn"]}
    h, _, g = run(p, dh)
    h_ref, gr, dx_ref, dh0_ref = naive_gru(x, h0, W, dh)
    check("gru fused vs naive per-gate: forward", rel_error(h, h_ref), EXACT_TOL, "h")
    errors = {"x": rel_error(g["x"], dx_ref), "h0": rel_error(g["h0"], dh0_ref),
              "b_hn": rel_error(g["b_hn"], gr["b_hn"])}
    for j, k in enumerate("rzn"):
        cols = slice(j * H, (j + 1) * H)
        errors[f"W_i{k}"] = rel_error(g["Wx"][:, cols], gr["i" + k].T)
        errors[f"W_h{k}"] = rel_error(g["Wh"][:, cols], gr["h" + k].T)
        errors[f"b_i{k}"] = rel_error(g["b"][cols], gr["b_i" + k])
        if k != "n":                         # r, z: torch's two biases only ever appear summed
            errors[f"b_h{k}"] = rel_error(g["b"][cols], gr["b_h" + k])
    for name, err in errors.items():
        check("gru fused vs naive per-gate: grads", err, EXACT_TOL, name)


def test_gru_chunked_with_carried_state_equals_whole_sequence():
    """T=12 at once == 3 chunks of 4 carrying h_last forward and dh0 back."""
    rng = np.random.default_rng(560)
    N, T, D, H = 3, 12, 4, 5
    p = problem(rng, N, T, D, H)
    dh, dh_last = randn(rng, N, T, H), randn(rng, N, H)
    h, h_last, whole = run(p, dh, dh_last)
    h_prev, hs, caches = p["h0"], [], []
    for k in range(3):
        hk, h_prev, ck = gru_forward_with_state(np.ascontiguousarray(p["x"][:, 4 * k:4 * k + 4]),
                                                h_prev, p["Wx"], p["Wh"], p["b"], p["b_hn"])
        hs.append(hk)
        caches.append(ck)
    check("gru chunked vs whole: forward", rel_error(np.concatenate(hs, axis=1), h), 1e-14)
    check("gru chunked vs whole: forward", rel_error(h_prev, h_last), 1e-14, "h_last")
    carry, dxs, sums = dh_last, [None] * 3, {}
    for k in reversed(range(3)):
        g = dict(zip(NAMES, gru_backward_with_state(dh[:, 4 * k:4 * k + 4].copy(), carry,
                                                    caches[k]), strict=True))
        dxs[k], carry = g["x"], g["h0"]
        for name in ("Wx", "Wh", "b", "b_hn"):
            sums[name] = sums.get(name, 0.0) + g[name]
    chunked = {"x": np.concatenate(dxs, axis=1), "h0": carry, **sums}
    check("gru chunked vs whole: grads", max_rel_error(chunked, whole), EXACT_TOL)


def test_gru_padded_batch_equals_each_sequence_alone():
    rng = np.random.default_rng(570)
    lengths, T, D, H = [6, 3, 1, 4], 6, 4, 5
    N = len(lengths)
    mask = lengths_mask(lengths, T)
    p = problem(rng, N, T, D, H)
    dh = randn(rng, N, T, H) * mask[:, :, None]      # no upstream gradient on padded steps
    dh_last = randn(rng, N, H)
    h, h_last, g = run(p, dh, dh_last, mask)
    sums: dict[str, np.ndarray] = {}
    for n, L in enumerate(lengths):
        rows = slice(n, n + 1)
        one = {**p, "x": p["x"][rows, :L].copy(), "h0": p["h0"][rows]}
        h1, h1_last, g1 = run(one, dh[rows, :L].copy(), dh_last[rows])
        check("gru padded batch vs alone: forward", rel_error(h[rows, :L], h1), EXACT_TOL)
        check("gru padded batch vs alone: forward", rel_error(h_last[rows], h1_last), EXACT_TOL,
              "h_last == last valid h")
        check("gru padded batch vs alone: grads", rel_error(g["x"][rows, :L], g1["x"]),
              EXACT_TOL, "dx")
        assert np.all(g["x"][n, L:] == 0.0)
        check("gru padded batch vs alone: grads", rel_error(g["h0"][rows], g1["h0"]), EXACT_TOL,
              "h0")
        for name in ("Wx", "Wh", "b", "b_hn"):
            sums[name] = sums.get(name, 0.0) + g1[name]
    for name in ("Wx", "Wh", "b", "b_hn"):
        check("gru padded batch vs alone: grads", rel_error(g[name], sums[name]), EXACT_TOL,
              name)


def test_gru_mask_with_holes_equals_sequence_with_held_steps_removed():
    rng = np.random.default_rng(580)
    mask = np.array([[0, 1, 0, 1, 1, 0, 1]], dtype=bool)
    p = problem(rng, 1, 7, 3, 4)
    dh, dh_last = randn(rng, 1, 7, 4) * mask[:, :, None], randn(rng, 1, 4)
    h, h_last, g = run(p, dh, dh_last, mask)
    keep = np.flatnonzero(mask[0])
    hs, hs_last, gs = run({**p, "x": p["x"][:, keep].copy()}, dh[:, keep].copy(), dh_last)
    check("gru holes vs steps removed", rel_error(h[:, keep], hs), EXACT_TOL)
    check("gru holes vs steps removed", rel_error(h_last, hs_last), EXACT_TOL)
    assert np.all(g["x"][:, ~mask[0]] == 0.0)
    g["x"] = g["x"][:, keep]
    check("gru holes vs steps removed", max_rel_error(g, gs), EXACT_TOL)


# --- engine paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("N", [1, 4])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gru_inference_path_matches_training_forward(N, masked, dtype):
    rng = np.random.default_rng(590)
    p = problem(rng, N, 7, 3, 5, dtype=dtype)
    mask = lengths_mask([7, 3, 5, 1][:N], 7) if masked else None
    a = (p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
    h, last, cache = recurrence_forward(gru_module.GRU, *a, mask, bh=p["b_hn"])
    h_in, last_in, none = recurrence_forward(gru_module.GRU, *a, mask, bh=p["b_hn"],
                                             store=False)
    assert none is None and cache is not None and last is None and last_in is None
    assert h_in.dtype == dtype and h_in.flags.c_contiguous
    np.testing.assert_array_equal(h_in, h)


@pytest.mark.parametrize("N", [1, 3])
def test_gru_second_backward_on_the_same_cache(N):
    """The first backward turns the cache's forward storage into factors; later ones reuse them
    and give the same gradients as a fresh forward, for any upstream gradient."""
    rng = np.random.default_rng(600)
    p = problem(rng, N, 6, 3, 4)
    mask = lengths_mask([6, 2, 4][:N], 6)
    args = (p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], p["b_hn"], mask)
    dh, other = randn(rng, N, 6, 4), randn(rng, N, 6, 4)
    _, cache = gru_forward(*args)
    first = gru_backward(dh, cache)
    for a, b in zip(gru_backward(dh, cache), first, strict=True):
        np.testing.assert_array_equal(a, b)
    again = gru_backward(other, cache)
    fresh = gru_backward(other, gru_forward(*args)[1])
    for a, b in zip(again, fresh, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("block_bytes", [1, 6 * 4 * 8 * 2])   # per sample: blocks of 1, 2 steps
def test_gru_factors_made_in_blocks_equal_one_pass(monkeypatch, N, block_bytes):
    rng = np.random.default_rng(610)
    p = problem(rng, N, 7, 3, 4)
    dh, mask = randn(rng, N, 7, 4), lengths_mask([7, 5, 2][:N], 7)
    _, _, whole = run(p, dh, mask=mask)
    monkeypatch.setattr(gru_module, "FACTOR_BLOCK_BYTES", block_bytes * N)
    _, _, blocked = run(p, dh, mask=mask)
    for k, v in whole.items():
        np.testing.assert_array_equal(blocked[k], v, err_msg=k)


def test_gru_outputs_do_not_alias_the_cache_and_are_contiguous():
    rng = np.random.default_rng(620)
    p = problem(rng, 3, 5, 3, 4)
    dh = randn(rng, 3, 5, 4)
    h, h_last, cache = gru_forward_with_state(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"],
                                              p["b_hn"])
    assert not np.shares_memory(h, cache.Hs) and not np.shares_memory(h, h_last)
    g = gru_backward(dh, cache)
    h[...] = 0.0
    h_last[...] = 0.0
    for a, b in zip(gru_backward(dh, cache), g, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(a.flags.c_contiguous and a.dtype == np.float64 for a in g)


def test_gru_float32_gives_float32_matching_float64():
    rng = np.random.default_rng(630)
    mask = lengths_mask([6, 4, 5], 6)
    p64 = problem(rng, 3, 6, 5, 7)
    dh64 = randn(rng, 3, 6, 7)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    h64, _, g64 = run(p64, dh64, mask=mask)
    h32, _, g32 = run(p32, dh64.astype(np.float32), mask=mask)
    assert h32.dtype == np.float32 and all(v.dtype == np.float32 for v in g32.values())
    check("gru float32 vs float64", rel_error(h32, h64), 1e-4)
    check("gru float32 vs float64", max_rel_error(g32, g64), 1e-4)


@settings(max_examples=15, deadline=None)
@given(N=st.integers(1, 4), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5),
       masked=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gru_sequence_equals_step_loop_for_any_shape(N, T, D, H, masked, seed):
    rng = np.random.default_rng(seed)
    p = problem(rng, N, T, D, H)
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.5
        mask[np.arange(N), rng.integers(0, T, N)] = True      # every row has a valid step
    dh = randn(rng, N, T, H)
    h, h_last, g = run(p, dh, mask=mask)
    h_ref, g_ref = step_loop(p, dh, mask)
    assert h.shape == (N, T, H) and h_last.shape == (N, H)
    np.testing.assert_array_equal(h_last, h[:, -1])
    assert rel_error(h, h_ref) < EXACT_TOL
    assert max_rel_error(g, g_ref) < 1e-10


# --- bad input -------------------------------------------------------------------------------

def test_gru_gate_count_comes_from_the_one_table():
    assert gru_module.GRU.gates == GATES["gru"] == 3


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: {**p, "Wx": p["Wx"][:, :8]}, r"Wx has shape \(4, 8\); it must be \(D, 3H\)"),
    (lambda p: {**p, "Wh": p["Wh"][:, :6]}, "Wh has shape"),
    (lambda p: {**p, "b": p["b"][:4]}, "b has shape"),
    (lambda p: {**p, "b_hn": p["b"]}, "b_hn has shape"),
    (lambda p: {**p, "b_hn": p["b_hn"].astype(np.float32)}, "b_hn has dtype float32"),
    (lambda p: {**p, "x": np.full_like(p["x"], np.nan)}, "x holds NaN"),
])
def test_gru_forward_rejects_bad_arguments_with_one_line(change, message):
    p = change(problem(np.random.default_rng(640), 2, 3, 4, 3))
    with pytest.raises(ValueError, match=message) as e:
        gru_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], p["b_hn"])
    assert "\n" not in str(e.value) and str(e.value).startswith("gru_forward: ")


def test_gru_backward_rejects_a_cache_of_another_cell_and_bad_gradients():
    rng = np.random.default_rng(650)
    p = problem(rng, 2, 3, 4, 3)
    _, lstm_cache = lstm_forward(p["x"], p["h0"], randn(rng, 4, 12), randn(rng, 3, 12),
                                 randn(rng, 12))
    with pytest.raises(ValueError, match="cache comes from a 'lstm' forward"):
        gru_backward(randn(rng, 2, 3, 3), lstm_cache)
    _, _h_last, cache = gru_forward_with_state(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"],
                                              p["b_hn"])
    with pytest.raises(ValueError, match="dh has shape"):
        gru_backward(randn(rng, 2, 3, 4), cache)
    with pytest.raises(ValueError, match="dh_last has shape"):
        gru_backward_with_state(randn(rng, 2, 3, 3), randn(rng, 3, 3), cache)
    with pytest.raises(ValueError, match="pass the cache that gru_step_forward returned"):
        gru_step_backward(randn(rng, 2, 3), cache)
