"""The readable reference loop (bptt.functional.reference): equal to the engine to 1e-12 in
float64, and right by central differences, for every cell, with and without a mask."""

import numpy as np
import pytest

from bptt import functional as F
from bptt.gradcheck import numerical_gradient, rel_error
from helpers import check, lengths_mask, problem, randn

CELLS = sorted(F.STEP_CELLS)
ENGINE = {"rnn", "lstm", "gru"}              # cells whose engine entry points are compared below


def _mask(N, T, rng):
    """Right-padded lengths plus one hole in the middle of a row: held steps everywhere."""
    lengths = rng.integers(1, T + 1, N)
    lengths[0] = T
    mask = lengths_mask(list(lengths), T)
    if T >= 3:
        mask[0, T // 2] = False
    return mask


def _engine(cell, p, mask, dh, dc_last):
    """The fast engine's forward outputs and every gradient, for the public cells."""
    if cell == "rnn":
        h, cache = F.rnn_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask)
        dx, dh0, dWx, dWh, db = F.rnn_backward(dh, cache)
        return h, None, {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}
    if cell == "gru":
        h, cache = F.gru_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], p["b_hn"], mask)
        dx, dh0, dWx, dWh, db, db_hn = F.gru_backward(dh, cache)
        return h, None, {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db, "b_hn": db_hn}
    h, c, cache = F.lstm_forward_with_state(p["x"], p["h0"], p["c0"], p["Wx"], p["Wh"], p["b"],
                                            mask)
    dx, dh0, dc0, dWx, dWh, db = F.lstm_backward_with_state(dh, dc_last, cache)
    return h, c, {"x": dx, "h0": dh0, "c0": dc0, "Wx": dWx, "Wh": dWh, "b": db}


def _reference(cell, p, mask, dh, dc_last):
    h, c, cache = F.reference_forward(cell, p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask,
                                      p.get("c0"), b_hn=p.get("b_hn"))
    g = F.reference_backward(dh, cache, dc_last)
    grads = {"x": g.dx, "h0": g.dh0, "Wx": g.dWx, "Wh": g.dWh, "b": g.db}
    if g.dc0 is not None:
        grads["c0"] = g.dc0
    if g.db_hn is not None:
        grads["b_hn"] = g.db_hn
    return h, c, grads, g


@pytest.mark.parametrize("cell", sorted(ENGINE))
@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "mask"])
@pytest.mark.parametrize(("N", "T"), [(1, 1), (1, 7), (4, 6), (5, 9)])
def test_reference_equals_engine(cell, masked, N, T):
    rng = np.random.default_rng(100 + 10 * N + T + masked)
    p = problem(rng, cell, N, T, 3, 4)
    mask = _mask(N, T, rng) if masked else None
    dh = randn(rng, N, T, 4)
    dc_last = randn(rng, N, 4) if cell == "lstm" else None
    h, c, g = _engine(cell, p, mask, dh, dc_last)
    h_ref, c_ref, g_ref, _ = _reference(cell, p, mask, dh, dc_last)
    check("reference == engine", rel_error(h, h_ref), 1e-12, f"{cell} h")
    if cell == "lstm":
        check("reference == engine", rel_error(c, c_ref), 1e-12, f"{cell} c_last")
    else:
        assert c_ref is None
    assert g.keys() == g_ref.keys()
    for k in g:
        assert g_ref[k].shape == g[k].shape and g_ref[k].dtype == np.float64
        check("reference == engine", rel_error(g[k], g_ref[k]), 1e-12, f"{cell} d{k}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "mask"])
def test_reference_gradients_are_central_differences(cell, masked):
    rng = np.random.default_rng(7 + masked)
    N, T, D, H = 3, 5, 2, 3
    p = problem(rng, cell, N, T, D, H)
    mask = _mask(N, T, rng) if masked else None
    dh = randn(rng, N, T, H)
    has_c = "c" in F.STEP_CELLS[cell].state
    dc_last = randn(rng, N, H) if has_c else None
    _, _, g, _ = _reference(cell, p, mask, dh, dc_last)

    def outputs():
        h, c, _ = F.reference_forward(cell, p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask,
                                      p.get("c0"), b_hn=p.get("b_hn"))
        return (h, c) if has_c else (h,)

    for name in g:
        num = numerical_gradient(outputs, p[name], [dh, dc_last] if has_c else [dh])
        check("reference vs numerical", rel_error(g[name], num), 1e-8, f"{cell} d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_recorded_dh_t_is_the_gradient_of_each_h_t(cell):
    """dh_steps[:, t] is dL/dh_t: perturbing h_t right after step t (``probe``) moves the loss by
    exactly that, on padded steps too (there h_t is the held state)."""
    rng = np.random.default_rng(3)
    N, T, D, H = 3, 6, 2, 3
    p = problem(rng, cell, N, T, D, H)
    mask = _mask(N, T, rng)
    dh = randn(rng, N, T, H)
    probe = np.zeros((N, T, H))
    _, _, _, g = _reference(cell, p, mask, dh, None)
    num = numerical_gradient(
        lambda: F.reference_forward(cell, p["x"], p["h0"], p["Wx"], p["Wh"], p["b"], mask,
                                    p.get("c0"), b_hn=p.get("b_hn"), probe=probe)[0], probe, dh)
    check("reference vs numerical", rel_error(g.dh_steps, num), 1e-8, f"{cell} dh_t")
    if cell == "lstm":
        np.testing.assert_array_equal(g.dc_steps[:, -1], 0.0)     # no dc_last: zero at T
        assert g.dc_steps.shape == (N, T, H)


def test_padded_batch_reproduces_each_sequence_alone():
    rng = np.random.default_rng(5)
    p = problem(rng, "lstm", 3, 6, 2, 3)
    lengths = [6, 2, 4]
    mask = lengths_mask(lengths, 6)
    dh = randn(rng, 3, 6, 3) * mask[:, :, None]
    h, c, g, _ = _reference("lstm", p, mask, dh, None)
    for n, L in enumerate(lengths):
        one = {k: (a[n:n + 1, :L].copy() if k == "x" else a[n:n + 1] if k in ("h0", "c0") else a)
               for k, a in p.items()}
        h1, c1, g1, _ = _reference("lstm", one, None, dh[n:n + 1, :L].copy(), None)
        assert rel_error(h[n, :L], h1[0]) < 1e-14
        assert (h[n, L:] == h[n, L - 1]).all()                   # held after the end
        assert rel_error(c[n], c1[0]) < 1e-14
        assert rel_error(g["x"][n, :L], g1["x"][0]) < 1e-14
        assert not g["x"][n, L:].any()
        assert rel_error(g["h0"][n], g1["h0"][0]) < 1e-14


def test_float32_runs_in_float32():
    rng = np.random.default_rng(6)
    p = problem(rng, "lstm", 2, 3, 2, 3, dtype=np.float32)
    h, c, g, rg = _reference("lstm", p, None, randn(rng, 2, 3, 3, dtype=np.float32), None)
    assert h.dtype == c.dtype == np.float32
    assert all(a.dtype == np.float32 for a in g.values())
    assert rg.dh_steps.dtype == np.float32


def test_bad_arguments_get_one_line_errors():
    rng = np.random.default_rng(0)
    p = problem(rng, "rnn", 2, 3, 2, 3)
    args = (p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
    with pytest.raises(ValueError, match="unknown cell 'gruu'; use one of"):
        F.reference_forward("gruu", *args)
    with pytest.raises(ValueError, match="has no cell state; drop c0"):
        F.reference_forward("rnn", *args, c0=p["h0"])
    with pytest.raises(ValueError, match=r"reference_forward: Wx has shape \(2, 12\)"):
        F.reference_forward("rnn", p["x"], p["h0"], np.zeros((2, 12)), p["Wh"], p["b"])
    with pytest.raises(ValueError, match="reference_forward: mask"):
        F.reference_forward("rnn", *args, mask=np.ones((2, 4), dtype=bool))
    _, _, cache = F.reference_forward("rnn", *args)
    with pytest.raises(ValueError, match=r"reference_backward: dh has shape \(2, 3\)"):
        F.reference_backward(np.zeros((2, 3)), cache)
    with pytest.raises(ValueError, match="has no cell state; drop dc_last"):
        F.reference_backward(np.zeros((2, 3, 3)), cache, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pass the cache that reference_forward returned"):
        F.reference_backward(np.zeros((2, 3, 3)), {"not": "a cache"})
    with pytest.raises(ValueError, match="reference_forward: a 'rnn' cell has no b_hn; drop it"):
        F.reference_forward("rnn", *args, b_hn=p["b"])
    g = problem(rng, "gru", 2, 3, 2, 3)
    with pytest.raises(ValueError, match=r"reference_forward: a 'gru' cell needs b_hn \(H,\)"):
        F.reference_forward("gru", g["x"], g["h0"], g["Wx"], g["Wh"], g["b"])
    with pytest.raises(ValueError, match=r"reference_forward: b_hn has shape \(9,\)"):
        F.reference_forward("gru", g["x"], g["h0"], g["Wx"], g["Wh"], g["b"], b_hn=g["b"])
