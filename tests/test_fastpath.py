"""Parity of the compiled fast path (``bptt[fast]``, numba) with the NumPy path and PyTorch.

Batch of one through the RNN, the LSTM and the GRU, float64 and float32, with and without a
mask, c0 and dL/dc_T (GRU: b_hn and dL/dh_T): every output and gradient of the compiled path
against the same call with the fast path off (float64 within 1e-12, float32 within float32
rounding), against PyTorch autograd (float64, 1e-10), and against numerical gradients. Skipped,
with the reason, where numba is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt import functional as F
from bptt.functional import engine, fastpath
from bptt.gradcheck import check_function, rel_error

pytest.importorskip("numba", reason="numba is not installed: the compiled fast path (the "
                                    "bptt[fast] extra) is not available to test")
from bptt.functional import _compiled

TOL = {np.float64: 1e-12, np.float32: 2e-6}


@pytest.fixture
def fast():
    prev = fastpath.set_enabled(True)
    yield
    fastpath.set_enabled(prev)


def make(cell, T, D, H, seed=0, dtype=np.float64, masked=False):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    a = {"x": rng.normal(size=(1, T, D)), "h0": rng.normal(size=(1, H)),
         "bh": rng.normal(size=H),
         "c0": rng.normal(size=(1, H)), "Wx": rng.normal(size=(D, G)) * 0.5,
         "Wh": rng.normal(size=(H, G)) * 0.5, "b": rng.normal(size=G),
         "dh": rng.normal(size=(1, T, H)), "dc": rng.normal(size=(1, H))}
    a = {k: v.astype(dtype) for k, v in a.items()}
    a["mask"] = None
    if masked:
        m = rng.random((1, T)) < 0.6
        m[0, 0] = True
        m[0, -1] = False                            # a held tail: h_T is an earlier state
        a["mask"] = m
    return a


def run(cell, a):
    """(outputs and gradients as a dict, cache) through the public functions."""
    if cell == "rnn":
        h, cache = F.rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["mask"])
        g = F.rnn_backward(a["dh"], cache)
        return dict(zip(("h", "x", "h0", "Wx", "Wh", "b"), (h, *g))), cache
    if cell == "gru":
        h, hl, cache = F.gru_forward_with_state(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"],
                                                a["bh"], a["mask"])
        g = F.gru_backward_with_state(a["dh"], a["dc"], cache)
        return dict(zip(("h", "hl", "x", "h0", "Wx", "Wh", "b", "bh"), (h, hl, *g))), cache
    h, c, cache = F.lstm_forward_with_state(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"],
                                            a["mask"])
    g = F.lstm_backward_with_state(a["dh"], a["dc"], cache)
    return dict(zip(("h", "c", "x", "h0", "c0", "Wx", "Wh", "b"), (h, c, *g))), cache


def both(cell, a):
    fastpath.set_enabled(False)
    ref, ref_cache = run(cell, a)
    fastpath.set_enabled(True)
    got, cache = run(cell, a)
    assert fastpath.owns(cache) and not fastpath.owns(ref_cache)
    return got, ref, cache


def test_tanh_and_sigmoid_are_accurate():
    x = np.concatenate([np.linspace(-45, 45, 200_001), np.geomspace(1e-300, 1e-3, 1000),
                        -np.geomspace(1e-300, 1e-3, 1000), [0.0, 0.625, -0.625]])
    out = np.empty_like(x)
    _compiled.tanh_into(x, out)
    ref = np.tanh(x)
    assert np.all(np.abs(out - ref) <= 64 * np.finfo(np.float64).eps * np.abs(ref))
    assert np.all(np.abs(out) <= 1.0)
    _compiled.sigmoid_into(x, out)
    e = np.exp(-np.abs(x))
    ref = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))         # stable logistic
    sel = np.abs(x) < 30                            # beyond, exp(-|x|) saturates at e^-40
    assert np.all(np.abs(out - ref)[sel] <= 64 * np.finfo(np.float64).eps * ref[sel])
    assert np.all((out >= 0) & (out <= 1))
    x32 = x.astype(np.float32)
    o32 = np.empty_like(x32)
    _compiled.tanh_into(x32, o32)
    ref32 = np.tanh(x32.astype(np.float64)).astype(np.float32)     # correctly rounded
    assert np.all(np.abs(o32 - ref32) <= np.spacing(np.abs(ref32)))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_equals_numpy_path(cell, dtype, masked, fast):
    a = make(cell, 13, 5, 7, seed=1, dtype=dtype, masked=masked)
    got, ref, cache = both(cell, a)
    for k in ref:
        assert got[k].dtype == dtype and got[k].shape == ref[k].shape, k
        assert rel_error(got[k], ref[k]) < TOL[dtype], (k, rel_error(got[k], ref[k]))
    again, _ = run(cell, a)                          # same inputs: same results
    for k in ref:
        np.testing.assert_array_equal(again[k], got[k])
    st = cache.extra                                 # nothing returned aliases the cache
    for k, v in got.items():
        for buf in (st.Hs, st.Cs, st.A, st.TC):
            assert buf is None or not np.shares_memory(v, buf), k


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_second_backward_on_a_compiled_cache(cell, fast):
    a = make(cell, 6, 4, 5, seed=2)
    _, cache = run(cell, a)
    bwd = {"rnn": F.rnn_backward, "lstm": F.lstm_backward, "gru": F.gru_backward}[cell]
    g1 = bwd(a["dh"], cache)
    g2 = bwd(a["dh"], cache)
    for u, w in zip(g1, g2):
        np.testing.assert_array_equal(u, w)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_inference_equals_training_forward(cell, masked, fast):
    a = make(cell, 11, 3, 6, seed=3, masked=masked)
    c0 = a["c0"] if cell == "lstm" else None
    bh = a["bh"] if cell == "gru" else None
    h, last = engine.infer(cell, a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["mask"], c0, bh)
    got, _ = run(cell, a)
    np.testing.assert_allclose(h, got["h"], rtol=0, atol=1e-15)
    if cell == "lstm":
        np.testing.assert_allclose(last, got["c"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_path_passes_a_numerical_gradient_check(cell, masked, fast):
    a = make(cell, 5, 3, 4, seed=4, masked=masked)
    mask = a["mask"]
    if cell == "rnn":
        def fwd(x, h0, Wx, Wh, b):
            return F.rnn_forward(x, h0, Wx, Wh, b, mask)
        res = check_function("rnn", fwd, F.rnn_backward,
                             {k: a[k] for k in ("x", "h0", "Wx", "Wh", "b")},
                             ["x", "h0", "Wx", "Wh", "b"], a["dh"])
    elif cell == "gru":
        def fwd(x, h0, Wx, Wh, b, bh):
            return F.gru_forward(x, h0, Wx, Wh, b, bh, mask)
        res = check_function("gru", fwd, F.gru_backward,
                             {k: a[k] for k in ("x", "h0", "Wx", "Wh", "b", "bh")},
                             ["x", "h0", "Wx", "Wh", "b", "bh"], a["dh"])
    else:
        def fwd(x, h0, c0, Wx, Wh, b):
            return F.lstm_forward_with_state(x, h0, c0, Wx, Wh, b, mask)
        res = check_function("lstm", fwd, F.lstm_backward_with_state,
                             {k: a[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b")},
                             ["x", "h0", "c0", "Wx", "Wh", "b"], [a["dh"], a["dc"]],
                             n_outputs=2)
    for r in res:
        assert r.ok and r.error < 1e-7, r


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_compiled_path_matches_pytorch(cell, fast):
    torch = pytest.importorskip("torch")
    a = make(cell, 9, 4, 6, seed=5)
    a["dc"] = np.zeros_like(a["dc"]) if cell == "gru" else a["dc"]
    got, cache = run(cell, a)
    assert fastpath.owns(cache)
    t = {k: torch.tensor(a[k], requires_grad=True)
         for k in ("x", "h0", "c0", "Wx", "Wh", "b", "bh")}
    H = a["h0"].shape[1]
    h, hp, cp = t["h0"][0], [], t["c0"][0]
    for s in range(a["x"].shape[1]):
        z = t["x"][0, s] @ t["Wx"] + h @ t["Wh"] + t["b"]
        if cell == "rnn":
            h = torch.tanh(z)
        elif cell == "gru":                          # PyTorch's GRU, written out
            zx, zh = t["x"][0, s] @ t["Wx"] + t["b"], h @ t["Wh"]
            r = torch.sigmoid(zx[:H] + zh[:H])
            u = torch.sigmoid(zx[H:2 * H] + zh[H:2 * H])
            n = torch.tanh(zx[2 * H:] + r * (zh[2 * H:] + t["bh"]))
            h = (1 - u) * n + u * h
        else:
            i, f, g, o = (z[k * H:(k + 1) * H] for k in range(4))
            cp = torch.sigmoid(f) * cp + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(cp)
        hp.append(h)
    hs = torch.stack(hp)[None]
    loss = (hs * torch.tensor(a["dh"])).sum()
    names = ["x", "h0", "Wx", "Wh", "b"] + (["bh"] if cell == "gru" else [])
    if cell == "lstm":
        loss = loss + (cp[None] * torch.tensor(a["dc"])).sum()
        names.append("c0")
    loss.backward()
    assert rel_error(got["h"], hs.detach().numpy()) < 1e-10
    for k in names:
        assert rel_error(got[k], t[k].grad.numpy()) < 1e-10, k


def test_switch_and_status():
    prev = fastpath.set_enabled(False)
    try:
        a = make("lstm", 3, 2, 2)
        _, cache = run("lstm", a)
        assert not fastpath.owns(cache)
        fastpath.set_enabled(True)
        assert fastpath.enabled() and engine.fast_status()["compiled"]
        _, cache = run("lstm", a)
        assert fastpath.owns(cache)
        b = make("lstm", 3, 2, 2)
        b["x"] = np.repeat(b["x"], 2, axis=0)        # N = 2: the NumPy path
        b["h0"], b["c0"] = np.repeat(b["h0"], 2, 0), np.repeat(b["c0"], 2, 0)
        b["dh"], b["dc"] = np.repeat(b["dh"], 2, 0), np.repeat(b["dc"], 2, 0)
        _, cache = run("lstm", b)
        assert not fastpath.owns(cache)
    finally:
        fastpath.set_enabled(prev)
