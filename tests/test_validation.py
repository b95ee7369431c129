"""Bad input to every public function raises ValueError with one line naming the argument.

Each case starts from a valid call and breaks one thing. The message must start with
"<function>: <argument> " (the house format ``fn: name got; need``) and fit on one line.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from bptt.functional import (
    embedding_backward,
    embedding_forward,
    lstm_backward,
    lstm_backward_with_state,
    lstm_forward,
    lstm_forward_with_state,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    softmax_loss,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_mean_backward,
    temporal_mean_forward,
    temporal_softmax_loss,
)
from helpers import randn

N, T, D, H, V = 2, 3, 4, 5, 6


def seq_args(gates: int, dtype=np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1000)
    G = gates * H
    return {"x": randn(rng, N, T, D, dtype=dtype), "h0": randn(rng, N, H, dtype=dtype),
            "Wx": randn(rng, D, G, dtype=dtype), "Wh": randn(rng, H, G, dtype=dtype),
            "b": randn(rng, G, dtype=dtype)}


def with_nan(a: np.ndarray, value: float = np.nan) -> np.ndarray:
    a = a.copy()
    a.flat[a.size // 2] = value
    return a


def raises_naming(fn: str, name: str, call) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(fn)}: {re.escape(name)} ") as info:
        call()
    assert "\n" not in str(info.value)


# (label, argument to break, replacement built from the valid value)
SEQ_CASES = [
    ("x 2-D", "x", lambda a: a[:, 0]),
    ("x not an array", "x", lambda a: a.tolist()),
    ("x int", "x", lambda a: a.astype(np.int64)),
    ("x float16", "x", lambda a: a.astype(np.float16)),
    ("x empty time axis", "x", lambda a: a[:, :0]),
    ("x NaN", "x", with_nan),
    ("x inf", "x", lambda a: with_nan(a, np.inf)),
    ("h0 float32 with float64 x", "h0", lambda a: a.astype(np.float32)),
    ("h0 wrong N", "h0", lambda a: a[:1]),
    ("h0 3-D", "h0", lambda a: a[None]),
    ("Wx float32 with float64 x", "Wx", lambda a: a.astype(np.float32)),
    ("Wx wrong D", "Wx", lambda a: a[:-1]),
    ("Wx wrong G", "Wx", lambda a: a[:, :-1]),
    ("Wx 1-D", "Wx", lambda a: a[0]),
    ("Wh wrong H", "Wh", lambda a: a[:-1]),
    ("Wh wrong G", "Wh", lambda a: a[:, :-1]),
    ("Wh NaN", "Wh", with_nan),
    ("Wh -inf", "Wh", lambda a: with_nan(a, -np.inf)),
    ("b wrong G", "b", lambda a: a[:-1]),
    ("b 2-D", "b", lambda a: a[None]),
    ("b float32", "b", lambda a: a.astype(np.float32)),
    ("b NaN", "b", with_nan),
]


@pytest.mark.parametrize(("fn_name", "fwd", "gates"), [
    ("rnn_forward", rnn_forward, 1),
    ("lstm_forward", lstm_forward, 4),
])
@pytest.mark.parametrize(("label", "name", "breaker"), SEQ_CASES, ids=[c[0] for c in SEQ_CASES])
def test_sequence_forward_rejects_bad_argument(fn_name, fwd, gates, label, name, breaker):
    args = seq_args(gates)
    args[name] = breaker(args[name])
    raises_naming(fn_name, name, lambda: fwd(**args))


def test_lstm_weights_sized_for_an_rnn_are_rejected():
    args = seq_args(1)
    raises_naming("lstm_forward", "Wx", lambda: lstm_forward(**args))


def test_float32_everywhere_is_accepted():
    for fwd, gates in ((rnn_forward, 1), (lstm_forward, 4)):
        assert fwd(**seq_args(gates, np.float32))[0].dtype == np.float32


MASK_CASES = [
    ("mask int", lambda m: m.astype(np.int64)),
    ("mask float", lambda m: m.astype(np.float64)),
    ("mask wrong T", lambda m: m[:, :-1]),
    ("mask transposed", lambda m: np.ascontiguousarray(m.T)),
    ("mask list", lambda m: m.tolist()),
    ("mask row without valid step", lambda m: np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)),
]


@pytest.mark.parametrize(("label", "breaker"), MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_bad_mask_is_rejected(label, breaker):
    bad = breaker(np.ones((N, T), dtype=bool))
    raises_naming("rnn_forward", "mask", lambda: rnn_forward(**seq_args(1), mask=bad))
    raises_naming("lstm_forward", "mask", lambda: lstm_forward(**seq_args(4), mask=bad))
    x = randn(np.random.default_rng(1), N, T, D)
    raises_naming("temporal_mean_forward", "mask", lambda: temporal_mean_forward(x, bad))


@pytest.mark.parametrize("breaker", [lambda a: a[:1], lambda a: a.astype(np.float32), with_nan,
                                     lambda a: a[:, :2]])
def test_lstm_with_state_rejects_bad_c0(breaker):
    args = seq_args(4)
    c0 = breaker(randn(np.random.default_rng(2), N, H))
    raises_naming("lstm_forward_with_state", "c0", lambda: lstm_forward_with_state(
        args["x"], args["h0"], c0, args["Wx"], args["Wh"], args["b"]))


@pytest.mark.parametrize("breaker", [lambda a: a[:, :-1], lambda a: a.astype(np.float32),
                                     with_nan, lambda a: a[0]])
def test_sequence_backward_rejects_bad_upstream_gradient(breaker):
    dh = breaker(randn(np.random.default_rng(3), N, T, H))
    _, rnn_cache = rnn_forward(**seq_args(1))
    _, lstm_cache = lstm_forward(**seq_args(4))
    raises_naming("rnn_backward", "dh", lambda: rnn_backward(dh, rnn_cache))
    raises_naming("lstm_backward", "dh", lambda: lstm_backward(dh, lstm_cache))
    raises_naming("lstm_backward_with_state", "dh",
                  lambda: lstm_backward_with_state(dh, None, lstm_cache))


def test_lstm_backward_with_state_rejects_bad_dc_last():
    _, _, cache = lstm_forward_with_state(*list(seq_args(4).values())[:2],
                                          np.zeros((N, H)), *list(seq_args(4).values())[2:])
    dh = randn(np.random.default_rng(4), N, T, H)
    for bad in (np.zeros((N, H + 1)), np.zeros((N, H), np.float32), with_nan(np.ones((N, H)))):
        raises_naming("lstm_backward_with_state", "dc_last",
                      lambda bad=bad: lstm_backward_with_state(dh, bad, cache))


def test_sequence_backward_rejects_a_cache_from_another_layer():
    dh = randn(np.random.default_rng(5), N, T, H)
    _, rnn_cache = rnn_forward(**seq_args(1))
    _, lstm_cache = lstm_forward(**seq_args(4))
    a = seq_args(1)
    _, step_cache = rnn_step_forward(a["x"][:, 0], a["h0"], a["Wx"], a["Wh"], a["b"])
    raises_naming("rnn_backward", "cache", lambda: rnn_backward(dh, lstm_cache))
    raises_naming("lstm_backward", "cache", lambda: lstm_backward(dh, rnn_cache))
    raises_naming("lstm_backward_with_state", "cache",
                  lambda: lstm_backward_with_state(dh, None, rnn_cache))
    raises_naming("rnn_backward", "cache", lambda: rnn_backward(dh, step_cache))
    raises_naming("rnn_backward", "cache", lambda: rnn_backward(dh, None))


def _step_caches():
    a, a4 = seq_args(1), seq_args(4)
    x0 = a["x"][:, 0].copy()
    _, rnn_step_cache = rnn_step_forward(x0, a["h0"], a["Wx"], a["Wh"], a["b"])
    _, _, lstm_step_cache = lstm_step_forward(x0, a4["h0"], a4["h0"], a4["Wx"], a4["Wh"], a4["b"])
    _, seq_cache = rnn_forward(**a)
    return rnn_step_cache, lstm_step_cache, seq_cache, np.ones((N, H))


def test_rnn_step_backward_rejects_a_sequence_cache():
    _, _, seq_cache, dnext = _step_caches()
    raises_naming("rnn_step_backward", "cache", lambda: rnn_step_backward(dnext, seq_cache))


def test_rnn_step_backward_rejects_an_lstm_step_cache():
    _, lstm_step_cache, _, dnext = _step_caches()
    raises_naming("rnn_step_backward", "cache",
                  lambda: rnn_step_backward(dnext, lstm_step_cache))


def test_lstm_step_backward_rejects_an_rnn_step_cache():
    rnn_step_cache, _, _, dnext = _step_caches()
    raises_naming("lstm_step_backward", "cache",
                  lambda: lstm_step_backward(dnext, dnext, rnn_step_cache))


def _temporal_caches() -> dict:
    rng = np.random.default_rng(9)
    x = randn(rng, N, T, D)
    return {"affine": temporal_affine_forward(x, randn(rng, D, V), randn(rng, V))[1],
            "mean": temporal_mean_forward(x)[1],
            "embedding": embedding_forward(np.zeros((N, T), dtype=int), randn(rng, V, D))[1],
            "rnn": rnn_forward(**seq_args(1))[1]}


@pytest.mark.parametrize(("fn_name", "bwd", "dout_shape", "wrong"), [
    ("temporal_affine_backward", temporal_affine_backward, (N, T, V), "mean"),
    ("temporal_mean_backward", temporal_mean_backward, (N, D), "affine"),
    ("embedding_backward", embedding_backward, (N, T, D), "rnn"),
])
def test_temporal_backward_rejects_a_cache_from_another_layer(fn_name, bwd, dout_shape, wrong):
    dout = randn(np.random.default_rng(10), *dout_shape)
    cache = _temporal_caches()[wrong]
    raises_naming(fn_name, "cache", lambda: bwd(dout, cache))


@pytest.mark.parametrize(("name", "breaker"), [
    ("x", lambda a: a[:, :, None]), ("x", lambda a: a.astype(np.int32)), ("x", with_nan),
    ("prev_h", lambda a: a[:1]), ("prev_h", lambda a: a.astype(np.float32)),
    ("Wx", lambda a: a[:-1]), ("Wh", lambda a: a[:, :-1]), ("b", lambda a: a[:-1]),
    ("Wh", with_nan),
])
def test_step_forward_rejects_bad_argument(name, breaker):
    for fn_name, gates in (("rnn_step_forward", 1), ("lstm_step_forward", 4)):
        a = seq_args(gates)
        args = {"x": a["x"][:, 0].copy(), "prev_h": a["h0"], "Wx": a["Wx"], "Wh": a["Wh"],
                "b": a["b"]}
        if gates == 4:
            args["prev_c"] = a["h0"].copy()
        args[name] = breaker(args[name])
        fwd = rnn_step_forward if gates == 1 else lstm_step_forward
        raises_naming(fn_name, name, lambda fwd=fwd, args=args: fwd(**args))


def test_lstm_step_rejects_bad_prev_c_and_upstream():
    a = seq_args(4)
    x0 = a["x"][:, 0].copy()
    raises_naming("lstm_step_forward", "prev_c", lambda: lstm_step_forward(
        x0, a["h0"], a["h0"][:, :-1], a["Wx"], a["Wh"], a["b"]))
    _, _, cache = lstm_step_forward(x0, a["h0"], a["h0"], a["Wx"], a["Wh"], a["b"])
    good = np.ones((N, H))
    raises_naming("lstm_step_backward", "dnext_h",
                  lambda: lstm_step_backward(good[:, :-1], good, cache))
    raises_naming("lstm_step_backward", "dnext_c",
                  lambda: lstm_step_backward(good, with_nan(good), cache))
    _, rcache = rnn_step_forward(x0, a["h0"], a["Wx"][:, :H], a["Wh"][:, :H], a["b"][:H])
    raises_naming("rnn_step_backward", "dnext_h",
                  lambda: rnn_step_backward(good.astype(np.float32), rcache))


def test_losses_reject_bad_scores_and_labels():
    rng = np.random.default_rng(7)
    x2, y1 = randn(rng, N, V), np.array([0, V - 1])
    raises_naming("softmax_loss", "y", lambda: softmax_loss(x2, np.array([0, V])))
    raises_naming("softmax_loss", "y", lambda: softmax_loss(x2, np.array([-1, 0])))
    raises_naming("softmax_loss", "y", lambda: softmax_loss(x2, y1.astype(np.float64)))
    raises_naming("softmax_loss", "y", lambda: softmax_loss(x2, y1[:1]))
    raises_naming("softmax_loss", "x", lambda: softmax_loss(x2[None], y1))
    raises_naming("softmax_loss", "x", lambda: softmax_loss(with_nan(x2), y1))
    x3, y2 = randn(rng, N, T, V), rng.integers(0, V, (N, T))
    raises_naming("temporal_softmax_loss", "y",
                  lambda: temporal_softmax_loss(x3, np.full((N, T), V)))
    raises_naming("temporal_softmax_loss", "y",
                  lambda: temporal_softmax_loss(x3, y2[:, :-1]))
    raises_naming("temporal_softmax_loss", "x",
                  lambda: temporal_softmax_loss(x3.astype(np.float16), y2))
    raises_naming("temporal_softmax_loss", "mask",
                  lambda: temporal_softmax_loss(x3, y2, np.ones((N, T), dtype=np.int8)))
    raises_naming("temporal_softmax_loss", "mask",
                  lambda: temporal_softmax_loss(x3, y2, np.ones((N, T + 1), dtype=bool)))
    mask = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    y_bad = y2.copy()
    y_bad[1, 1] = V                                  # out of range at a valid step
    raises_naming("temporal_softmax_loss", "y", lambda: temporal_softmax_loss(x3, y_bad, mask))


def test_temporal_layers_reject_bad_arguments():
    rng = np.random.default_rng(8)
    x, w, b = randn(rng, N, T, D), randn(rng, D, V), randn(rng, V)
    raises_naming("temporal_affine_forward", "x", lambda: temporal_affine_forward(x[0], w, b))
    raises_naming("temporal_affine_forward", "w", lambda: temporal_affine_forward(x, w[1:], b))
    raises_naming("temporal_affine_forward", "w",
                  lambda: temporal_affine_forward(x, w.astype(np.float32), b))
    raises_naming("temporal_affine_forward", "b", lambda: temporal_affine_forward(x, w, b[1:]))
    raises_naming("temporal_affine_forward", "b",
                  lambda: temporal_affine_forward(x, w, with_nan(b)))
    _, cache = temporal_affine_forward(x, w, b)
    raises_naming("temporal_affine_backward", "dout",
                  lambda: temporal_affine_backward(randn(rng, N, T, V + 1), cache))
    _, mcache = temporal_mean_forward(x)
    raises_naming("temporal_mean_backward", "dout",
                  lambda: temporal_mean_backward(randn(rng, N, D + 1), mcache))
    raises_naming("temporal_mean_forward", "x", lambda: temporal_mean_forward(x.astype(int)))
    W, ids = randn(rng, V, D), np.array([[0, 1, V - 1], [2, 2, 3]])
    raises_naming("embedding_forward", "x", lambda: embedding_forward(ids + 1, W))
    raises_naming("embedding_forward", "x", lambda: embedding_forward(ids - 1, W))
    raises_naming("embedding_forward", "x", lambda: embedding_forward(ids.astype(float), W))
    raises_naming("embedding_forward", "x", lambda: embedding_forward(ids[0], W))
    raises_naming("embedding_forward", "W", lambda: embedding_forward(ids, W.astype(int)))
    raises_naming("embedding_forward", "W", lambda: embedding_forward(ids, with_nan(W)))
    _, ecache = embedding_forward(ids, W)
    raises_naming("embedding_backward", "dout",
                  lambda: embedding_backward(randn(rng, N, T, D + 1), ecache))
