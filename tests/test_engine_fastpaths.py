"""Parity of the engine's fast paths with the plain path and with numerical gradients.

The plain path is a float64 batch (N > 1) through ``rnn_forward`` / ``lstm_forward`` and their
backwards. The fast paths checked against it:

- inference, ``recurrence_forward(..., store=False)``: same h and c_T, no cache;
- batch of one (time-major storage): each sequence alone equals its row of a batch, and passes
  a numerical gradient check, with and without a mask;
- float32: within 1e-4 (relative) of float64 on the same data;
- a second backward on the same cache (the LSTM's factors are computed in place by the first);
- the engine against an independent per-step reference built from the step functions.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt import functional as F
from bptt.functional import cells
from bptt.functional.recurrence import recurrence_forward
from bptt.gradcheck import check_function, rel_error

CELLS = ("rnn", "lstm")


def make(cell: str, N: int, T: int, D: int, H: int, seed: int = 0, dtype=np.float64,
         masked: bool = False):
    """Random non-zero weights, biases, states and upstream gradients (and a mask)."""
    rng = np.random.default_rng(seed)
    G = 4 * H if cell == "lstm" else H
    mask = None
    if masked:
        mask = rng.random((N, T)) < 0.6
        mask[:, 0] = True                          # every row has a valid step
        mask[0] = True                             # and one row is never held
    a = {
        "x": rng.normal(size=(N, T, D)),
        "h0": rng.normal(size=(N, H)),
        "c0": rng.normal(size=(N, H)),
        "Wx": rng.normal(size=(D, G)) * 0.5,
        "Wh": rng.normal(size=(H, G)) * 0.5,
        "b": rng.normal(size=G),
        "dh": rng.normal(size=(N, T, H)),
        "dc": rng.normal(size=(N, H)),
    }
    a = {k: v.astype(dtype) for k, v in a.items()}
    a["mask"] = mask
    return a


def run(cell: str, a: dict):
    """Forward + backward through the public functions -> (h, c_last or None, grads dict)."""
    if cell == "rnn":
        h, cache = F.rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["mask"])
        dx, dh0, dWx, dWh, db = F.rnn_backward(a["dh"], cache)
        return h, None, {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}, cache
    h, c, cache = F.lstm_forward_with_state(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"],
                                            a["mask"])
    dx, dh0, dc0, dWx, dWh, db = F.lstm_backward_with_state(a["dh"], a["dc"], cache)
    return h, c, {"x": dx, "h0": dh0, "c0": dc0, "Wx": dWx, "Wh": dWh, "b": db}, cache


def assert_close(a, b, tol, what=""):
    err = rel_error(a, b)
    assert err < tol, f"{what}: relative error {err:.3g} >= {tol}"


# ---------------------------------------------------------------------------------------------
# inference path


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 4])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inference_path_matches_training_forward(cell, N, masked, dtype):
    a = make(cell, N, 7, 3, 5, seed=1, dtype=dtype, masked=masked)
    c = cells.LSTM if cell == "lstm" else cells.RNN
    c0 = a["c0"] if cell == "lstm" else None
    h_tr, c_tr, cache = recurrence_forward(c, a["x"], a["h0"], a["Wx"], a["Wh"], a["b"],
                                           a["mask"], c0)
    h_in, c_in, none = recurrence_forward(c, a["x"], a["h0"], a["Wx"], a["Wh"], a["b"],
                                          a["mask"], c0, store=False)
    assert none is None and cache is not None
    assert h_in.dtype == dtype and h_in.shape == h_tr.shape and h_in.flags.c_contiguous
    np.testing.assert_array_equal(h_in, h_tr)
    if cell == "lstm":
        np.testing.assert_array_equal(c_in, c_tr)
    else:
        assert c_in is None and c_tr is None


@pytest.mark.parametrize("T", [1, 2, 5])
def test_inference_lstm_last_state_for_odd_and_even_T(T):
    # Inference alternates two buffers: c_T must come from the right one for either parity.
    a = make("lstm", 3, T, 2, 4, seed=2)
    h, c_last, _ = F.lstm_forward_with_state(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"])
    h2, c2, _ = recurrence_forward(cells.LSTM, a["x"], a["h0"], a["Wx"], a["Wh"], a["b"],
                                   c0=a["c0"], store=False)
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_array_equal(c2, c_last)


# ---------------------------------------------------------------------------------------------
# batch of one


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_batch_of_one_matches_its_row_of_a_batch(cell, masked):
    N = 4
    a = make(cell, N, 6, 3, 5, seed=3, masked=masked)
    h, c, g, _ = run(cell, a)
    sum_w = {k: np.zeros_like(g[k]) for k in ("Wx", "Wh", "b")}
    for n in range(N):
        one = {k: (v[n:n + 1] if isinstance(v, np.ndarray) and k not in ("Wx", "Wh", "b")
                   else v) for k, v in a.items()}
        h1, c1, g1, cache1 = run(cell, one)
        assert cache1.Hs[:, 1].flags.c_contiguous                   # time-major storage
        assert_close(h1, h[n:n + 1], 1e-13, f"h row {n}")
        if cell == "lstm":
            assert_close(c1, c[n:n + 1], 1e-13, f"c_last row {n}")
        for k in ("x", "h0") + (("c0",) if cell == "lstm" else ()):
            assert_close(g1[k], g[k][n:n + 1], 1e-12, f"d{k} row {n}")
        for k in sum_w:
            sum_w[k] += g1[k]
    for k in sum_w:
        assert_close(sum_w[k], g[k], 1e-12, f"sum over rows of d{k}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_batch_of_one_numerical_gradients(cell, masked):
    a = make(cell, 1, 5, 3, 4, seed=4, masked=masked)
    if masked:
        a["mask"][0, 2:4] = False                                    # a held stretch
    if cell == "rnn":
        args = {k: a[k] for k in ("x", "h0", "Wx", "Wh", "b", "mask")}
        res = check_function("rnn", F.rnn_forward, F.rnn_backward, args,
                             ["x", "h0", "Wx", "Wh", "b"], a["dh"])
    else:
        args = {k: a[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b", "mask")}
        res = check_function("lstm", F.lstm_forward_with_state, F.lstm_backward_with_state,
                             args, ["x", "h0", "c0", "Wx", "Wh", "b"], [a["dh"], a["dc"]],
                             n_outputs=2)
    for r in res:
        assert r.error < 1e-8, f"{r.name}: {r.error:.3g}"


# ---------------------------------------------------------------------------------------------
# float32


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_float32_close_to_float64(cell, N, masked):
    a64 = make(cell, N, 8, 4, 6, seed=5, masked=masked)
    a64["Wx"] *= 0.5                                                 # keep gates off saturation
    a64["Wh"] *= 0.5
    a32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64
               else v) for k, v in a64.items()}
    h64, c64, g64, _ = run(cell, a64)
    h32, c32, g32, _ = run(cell, a32)
    assert h32.dtype == np.float32
    assert_close(h32, h64, 1e-4, "h")
    if cell == "lstm":
        assert c32.dtype == np.float32
        assert_close(c32, c64, 1e-4, "c_last")
    for k in g64:
        assert g32[k].dtype == np.float32, k
        assert_close(g32[k], g64[k], 1e-4, f"d{k}")


# ---------------------------------------------------------------------------------------------
# caches


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 3])
def test_second_backward_on_the_same_cache(cell, N):
    a = make(cell, N, 6, 3, 4, seed=6, masked=True)
    _, _, g, cache = run(cell, a)
    if cell == "rnn":
        again = F.rnn_backward(a["dh"], cache)
        names = ("x", "h0", "Wx", "Wh", "b")
    else:
        again = F.lstm_backward_with_state(a["dh"], a["dc"], cache)
        names = ("x", "h0", "c0", "Wx", "Wh", "b")
    for k, v in zip(names, again, strict=True):
        np.testing.assert_array_equal(v, g[k])
    other = np.random.default_rng(7).normal(size=a["dh"].shape)
    if cell == "lstm":                               # and a different upstream gradient
        g2 = F.lstm_backward(other, cache)
        _, _, fresh = F.lstm_forward_with_state(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"],
                                                a["b"], a["mask"])
        np.testing.assert_allclose(g2[0], F.lstm_backward(other, fresh)[0], rtol=0, atol=0)


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("block_bytes", [1, 7 * 4 * 8 * 2])   # per sample: blocks of 1, 2 steps
def test_lstm_factors_made_in_blocks_equal_one_pass(monkeypatch, N, masked, block_bytes):
    """The backward's factors, made over blocks of steps, give bit-identical gradients (and the
    uneven last block and masks change nothing)."""
    a = make("lstm", N, 7, 3, 4, seed=8, masked=masked)
    _, _, whole, _ = run("lstm", a)
    monkeypatch.setattr(cells, "FACTOR_BLOCK_BYTES", block_bytes * N)
    _, _, blocked, _ = run("lstm", a)
    for k, v in whole.items():
        np.testing.assert_array_equal(blocked[k], v, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 3])
def test_outputs_do_not_alias_the_cache(cell, N):
    a = make(cell, N, 5, 3, 4, seed=8)
    h, c, g, cache = run(cell, a)
    assert not np.shares_memory(h, cache.Hs)
    h[...] = 0.0                                     # a caller may reuse its output buffers
    if cell == "lstm":
        c[...] = 0.0
        again = F.lstm_backward_with_state(a["dh"], a["dc"], cache)
    else:
        again = F.rnn_backward(a["dh"], cache)
    np.testing.assert_array_equal(again[0], g["x"])
    np.testing.assert_array_equal(again[-2], g["Wh"])


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_are_c_contiguous_and_public_order(cell):
    a = make(cell, 3, 4, 2, 3, seed=9)
    _, _, g, _ = run(cell, a)
    for k, v in g.items():
        assert v.flags.c_contiguous, k
        assert v.dtype == np.float64, k


# ---------------------------------------------------------------------------------------------
# an independent reference: the single-step functions, looped (bptt.functional.reference)


def reference(cell: str, a: dict):
    """Forward and BPTT with the reference loop -> (h, c_last or None, grads dict)."""
    h, c, cache = F.reference_forward(cell, a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["mask"],
                                      a["c0"] if cell == "lstm" else None)
    g = F.reference_backward(a["dh"], cache, a["dc"] if cell == "lstm" else None)
    out = {"x": g.dx, "h0": g.dh0, "Wx": g.dWx, "Wh": g.dWh, "b": g.db}
    if cell == "lstm":
        out["c0"] = g.dc0
    return h, c, out


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 2, 5])
@pytest.mark.parametrize("T", [1, 4, 9])
@pytest.mark.parametrize("masked", [False, True])
def test_engine_matches_step_function_reference(cell, N, T, masked):
    a = make(cell, N, T, 3, 4, seed=10 + N + T, masked=masked)
    h, c, g, _ = run(cell, a)
    h_ref, c_ref, g_ref = reference(cell, a)
    assert_close(h, h_ref, 1e-13, "h")
    if cell == "lstm":
        assert_close(c, c_ref, 1e-13, "c_last")
    for k in g_ref:
        assert_close(g[k], g_ref[k], 1e-12, f"d{k}")


def test_hidden_size_one_and_input_size_one():
    for cell in CELLS:
        a = make(cell, 2, 3, 1, 1, seed=11)
        h, _c, g, _ = run(cell, a)
        h_ref, _, g_ref = reference(cell, a)
        assert_close(h, h_ref, 1e-13, f"{cell} h")
        for k in g_ref:
            assert_close(g[k], g_ref[k], 1e-12, f"{cell} d{k}")
