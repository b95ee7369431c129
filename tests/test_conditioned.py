"""The conditioned language model (CS231n's CaptioningRNN): the notebooks' fixed-input losses
to 1e-10, numerical gradients with every parameter random and non-zero (the projection's
gradient arrives only through dL/dh0), and the initial-state gradient of LanguageModel."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.gradcheck import check_loss, numerical_gradient_scalar, rel_error
from bptt.nn import LanguageModel, LMConfig
from bptt.nn.conditioned import ConditionedConfig, ConditionedLM
from helpers import check


def cs231n_model(cell: str) -> ConditionedLM:
    """CaptioningRNN of RNN_Captioning.ipynb / LSTM_Captioning.ipynb ("Check your
    implementation"): N, D, W, H = 10, 20, 30, 40, word_to_idx {'<NULL>': 0, 'cat': 2,
    'dog': 3} (V = 3), every parameter np.linspace(-1.4, 1.3, size) in CS231n's shapes."""
    D, W, H, V = 20, 30, 40, 3
    G = 4 if cell == "lstm" else 1
    model = ConditionedLM(ConditionedConfig(D, V, H, embed=W, cell=cell, null=0, start=1,
                                            end=2, dtype="float64"), np.random.default_rng(0))
    shapes = {"W_proj": (D, H), "b_proj": (H,), "W_embed": (V, W), "Wx": (W, G * H),
              "Wh": (H, G * H), "b": (G * H,), "W_vocab": (H, V), "b_vocab": (V,)}
    cs = {k: np.linspace(-1.4, 1.3, num=int(np.prod(s))).reshape(s) for k, s in shapes.items()}

    def gates(a):                 # CS231n orders the LSTM gates i, f, o, g; bptt i, f, g, o
        if G == 1:
            return a
        i, f, o, g = np.split(a, 4, axis=-1)
        return np.concatenate([i, f, g, o], axis=-1)

    ours = {"proj.l0.w": cs["W_proj"], "proj.l0.b": cs["b_proj"], "embed.W": cs["W_embed"],
            "rnn.l0.Wx": gates(cs["Wx"]), "rnn.l0.Wh": gates(cs["Wh"]),
            "rnn.l0.b": gates(cs["b"]), "out.w": cs["W_vocab"], "out.b": cs["b_vocab"]}
    assert set(ours) == set(model.params)
    for k, a in ours.items():
        model.params[k][...] = a
    return model


@pytest.mark.parametrize(("cell", "features", "expected"), [
    ("rnn", (-1.5, 0.3), 9.83235591003),
    ("lstm", (-0.5, 1.7), 9.82445935443),
])
def test_loss_equals_cs231n(cell, features, expected):
    N, D, T, V = 10, 20, 13, 3
    model = cs231n_model(cell)
    f = np.linspace(*features, num=N * D).reshape(N, D)
    captions = (np.arange(N * T) % V).reshape(N, T)          # the null token (0) is masked
    loss, _ = model.loss(f, captions)
    assert abs(loss - expected) < 1e-10


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "embed"), [(1, 3), (2, 0)])
def test_gradients_match_numerical(cell, layers, embed):
    rng = np.random.default_rng(1)
    model = ConditionedLM(ConditionedConfig(4, 6, 5, embed=embed, cell=cell, layers=layers,
                                            dtype="float64"), rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    f = rng.standard_normal((3, 4))
    seqs = rng.integers(1, 6, (3, 6))
    seqs[0, 4:] = 0                                           # null-padded tail
    results = check_loss("conditioned", lambda: model.loss(f, seqs), model.params)
    assert {r.name for r in results} == set(model.params)
    for r in results:
        check("conditioned numerical", r.error, 1e-7, r.name)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_returns_the_initial_state_gradient(cell):
    rng = np.random.default_rng(2)
    lm = LanguageModel(LMConfig(vocab_size=5, hidden=4, layers=2, cell=cell, embed=3,
                                dtype="float64"), rng)
    x, y = rng.integers(0, 5, (2, 4)), rng.integers(0, 5, (2, 4))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    state = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4)) if cell == "lstm"
              else None) for _ in range(2)]
    _, _, _, dstate = lm.loss_and_state(x, y, mask, state, dstate0=True)
    for k in range(2):
        for j in (0, 1):
            if state[k][j] is None:
                assert dstate[k][j] is None
                continue
            num = numerical_gradient_scalar(lambda: lm.loss_and_state(x, y, mask, state)[0],
                                            state[k][j])
            check("LanguageModel dstate0", rel_error(dstate[k][j], num), 1e-7, f"{k},{j}")


def test_generation_and_bad_input():
    rng = np.random.default_rng(3)
    model = ConditionedLM(ConditionedConfig(4, 7, 5, dtype="float64"), rng)
    f = rng.standard_normal((3, 4))
    greedy = model.greedy(f, max_len=6)
    beam = model.beam(f, beam=1, max_len=6)
    assert [b[0].ids for b in beam] == [g.tolist() for g in greedy]
    with pytest.raises(ValueError, match="features"):
        model.loss(rng.standard_normal((3, 5)), rng.integers(0, 7, (3, 4)))
    with pytest.raises(ValueError, match="sequences"):
        model.loss(f, rng.integers(0, 7, (3, 1)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ConditionedConfig(4, 7, null=7)
