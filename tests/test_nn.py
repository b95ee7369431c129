"""Layers and models: whole-model gradient checks, state carry, initialisers, bad options."""

import numpy as np
import pytest

from bptt.gradcheck import check_loss, rel_error
from bptt.nn import LanguageModel, LMConfig, RecurrentStack, orthogonal, recurrent_weights


def _perturbed_model(cell, embed, layers, learn_h0, seed=0, dropout=0.0):
    rng = np.random.default_rng(seed)
    cfg = LMConfig(vocab_size=5, hidden=3, layers=layers, cell=cell, embed=embed,
                   dropout=dropout, learn_h0=learn_h0, dtype="float64")
    model = LanguageModel(cfg, rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)       # non-zero biases, h0, c0
    return model, rng


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize(("embed", "layers", "learn_h0", "dropout"),
                         [(0, 1, False, 0.0), (3, 2, True, 0.0), (3, 2, False, 0.4)])
def test_language_model_gradients_match_numerical(cell, embed, layers, learn_h0, dropout):
    model, rng = _perturbed_model(cell, embed, layers, learn_h0, dropout=dropout)
    x = rng.integers(0, 5, size=(2, 4))
    y = rng.integers(0, 5, size=(2, 4))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    results = check_loss("lm", lambda: model.loss(x, y, mask, train=True,
                                                  rng=np.random.default_rng(3)), model.params)
    assert {r.name for r in results} == set(model.params)
    worst = max(results, key=lambda r: r.error)
    assert worst.error < 1e-7, worst


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_stack_state_carry_equals_whole_sequence(cell):
    rng = np.random.default_rng(1)
    stack = RecurrentStack(3, 4, cell, num_layers=2, rng=rng)
    for p in stack.params.values():
        p += 0.2 * rng.standard_normal(p.shape)
    x = rng.standard_normal((2, 9, 3))
    state = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4)) if cell == "lstm"
              else None) for _ in range(2)]
    h_all, final_all, _ = stack.forward(x, state)
    parts, s = [], state
    for k in range(3):
        h, s, _ = stack.forward(x[:, 3 * k:3 * k + 3], s)
        parts.append(h)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), h_all)
    for (ha, ca), (hb, cb) in zip(final_all, s):
        np.testing.assert_array_equal(ha, hb)
        if cell == "lstm":
            np.testing.assert_array_equal(ca, cb)


def test_stack_dstate0_is_gradient_of_initial_state():
    rng = np.random.default_rng(2)
    stack = RecurrentStack(3, 4, "lstm", num_layers=2, rng=rng)
    x = rng.standard_normal((2, 5, 3))
    state = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4))) for _ in range(2)]
    dh = rng.standard_normal((2, 5, 4))
    _, _, cache = stack.forward(x, state)
    _, _, dstate0 = stack.backward(dh, cache)
    from bptt.gradcheck import numerical_gradient
    num = numerical_gradient(lambda: stack.forward(x, state)[0], state[1][1], dh)
    assert rel_error(dstate0[1][1], num) < 1e-8


def test_initialisers():
    rng = np.random.default_rng(0)
    q = orthogonal(rng, 6)
    assert rel_error(q @ q.T, np.eye(6)) < 1e-14
    Wx, Wh, b = recurrent_weights(rng, 3, 4, gates=4)
    assert Wx.shape == (3, 16) and Wh.shape == (4, 16)
    np.testing.assert_array_equal(b[4:8], 1.0)           # forget gate bias 1
    np.testing.assert_array_equal(np.delete(b, np.s_[4:8]), 0.0)
    for k in range(4):
        blk = Wh[:, 4 * k:4 * k + 4]
        assert rel_error(blk.T @ blk, np.eye(4)) < 1e-14
    assert np.abs(Wx).max() <= np.sqrt(6 / 7)


def test_float32_model_gives_float32_grads():
    cfg = LMConfig(vocab_size=5, hidden=3, layers=1, dtype="float32")
    model = LanguageModel(cfg, np.random.default_rng(0))
    loss, grads = model.loss(np.zeros((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64))
    assert np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(cell="transformer"), "unknown cell"),
    (dict(num_layers=0), "num_layers"),
    (dict(dropout=1.0), "dropout"),
])
def test_stack_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecurrentStack(3, 4, **kwargs)


def test_dropout_in_training_needs_rng():
    stack = RecurrentStack(3, 4, "rnn", num_layers=2, dropout=0.5)
    with pytest.raises(ValueError, match="rng"):
        stack.forward(np.zeros((1, 2, 3)), train=True)
