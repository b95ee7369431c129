"""The GRU through every model that takes a cell: stacks, the classifier, the character LM
(training, exact resume, checkpoint, sampling), the task suite, the gate-saturation report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bptt import functional as F
from bptt.analysis.insight import activation_trace, gate_saturation
from bptt.charlm.checkpoint import load_checkpoint
from bptt.charlm.console import Console
from bptt.charlm.sampling import generate, load
from bptt.charlm.trainer import Trainer, config_from_preset
from bptt.cli import main
from bptt.gradcheck import check_loss, numerical_gradient, rel_error
from bptt.nn import LanguageModel, LMConfig, RecurrentStack, SequenceConfig, SequenceModel
from bptt.nn.bidirectional import BidirectionalStack
from corpus_text import make_text

TOL = 1e-7


def perturbed(model, rng, scale=0.3):
    for p in model.params.values():
        p += scale * rng.standard_normal(p.shape)          # non-zero biases, b_hn and h0
    return model


def test_stack_has_gru_parameters_and_gradients_match_numerical():
    rng = np.random.default_rng(700)
    stack = perturbed(RecurrentStack(3, 4, "gru", num_layers=2, dropout=0.3, learn_h0=True,
                                     rng=rng), rng)
    assert sorted(stack.params) == sorted(f"l{k}.{n}" for k in range(2)
                                          for n in ("Wx", "Wh", "b", "b_hn", "h0"))
    assert stack.params["l0.Wx"].shape == (3, 12) and stack.params["l1.b_hn"].shape == (4,)
    x, dh = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)

    def loss_fn():
        h, _, cache = stack.forward(x, None, mask, train=True, rng=np.random.default_rng(4))
        return float(np.sum(h * dh)), stack.backward(dh, cache)[1]

    results = check_loss("stack gru", loss_fn, stack.params)
    assert {r.name for r in results} == set(stack.params)
    assert max(r.error for r in results) < TOL, results


def test_stack_state_carry_and_dstate0():
    rng = np.random.default_rng(710)
    stack = perturbed(RecurrentStack(3, 4, "gru", num_layers=2, rng=rng), rng)
    x, dh = rng.standard_normal((2, 9, 3)), rng.standard_normal((2, 9, 4))
    state = [(rng.standard_normal((2, 4)), None) for _ in range(2)]
    h_all, final_all, cache = stack.forward(x, state)
    parts, s = [], state
    for k in range(3):
        h, s, _ = stack.forward(x[:, 3 * k:3 * k + 3], s)
        parts.append(h)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), h_all, rtol=0, atol=1e-14)
    for (ha, ca), (hb, cb) in zip(final_all, s, strict=True):
        np.testing.assert_allclose(ha, hb, rtol=0, atol=1e-14)
        assert ca is None and cb is None
    _, _, dstate0 = stack.backward(dh, cache)
    num = numerical_gradient(lambda: stack.forward(x, state)[0], state[1][0], dh)
    assert rel_error(dstate0[1][0], num) < 1e-8 and dstate0[1][1] is None


def test_bidirectional_gru_gradients_match_numerical():
    rng = np.random.default_rng(720)
    stack = perturbed(BidirectionalStack(3, 3, "gru", num_layers=2, dropout=0.3, rng=rng), rng)
    assert "l1.b_hn_rev" in stack.params and stack.params["l1.Wx_rev"].shape == (6, 9)
    x = rng.standard_normal((3, 5, 3))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    dh = rng.standard_normal((3, 5, 6)) * mask[:, :, None]

    def loss_fn():
        h, cache = stack.forward(x, mask, train=True, rng=np.random.default_rng(5))
        return float(np.sum(h * dh)), stack.backward(dh, cache)[1]

    results = check_loss("bi gru", loss_fn, stack.params)
    assert max(r.error for r in results) < TOL, results


@pytest.mark.parametrize("opts", [dict(bidirectional=True, pooling="last"),
                                  dict(pooling="none", tokens=True, input_size=5, embed=3)])
def test_sequence_model_with_gru_matches_numerical_and_padding_changes_nothing(opts):
    rng = np.random.default_rng(730)
    cfg = SequenceConfig(**{"input_size": 3, "output_size": 4, "hidden": 3, "cell": "gru",
                            "dtype": "float64", **opts})
    model = perturbed(SequenceModel(cfg, rng), rng)
    N, T = 3, 5
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    x = rng.integers(0, 5, (N, T)) if cfg.tokens else rng.standard_normal((N, T, 3))
    y = rng.integers(0, 4, (N, T)) if cfg.pooling == "none" else rng.integers(0, 4, N)
    results = check_loss("seq gru", lambda: model.loss(x, y, mask), model.params)
    assert max(r.error for r in results) < TOL, results
    scores = model.predict(x, mask)
    for n, L in enumerate(mask.sum(axis=1)):
        alone = model.predict(x[n:n + 1, :L], None)
        got = scores[n:n + 1, :L] if cfg.pooling == "none" else scores[n:n + 1]
        assert rel_error(got, alone) < 1e-12


def test_language_model_gru_gradients_match_numerical():
    rng = np.random.default_rng(740)
    cfg = LMConfig(vocab_size=5, hidden=3, layers=2, cell="gru", embed=3, learn_h0=True,
                   dtype="float64")
    model = perturbed(LanguageModel(cfg, rng), rng)
    x, y = rng.integers(0, 5, size=(2, 4)), rng.integers(0, 5, size=(2, 4))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    results = check_loss("lm gru", lambda: model.loss(x, y, mask), model.params)
    assert {r.name for r in results} == set(model.params)
    assert max(r.error for r in results) < TOL, results


def _cfg(path, **kw):
    base = dict(corpus=[str(path)], cell="gru", hidden=16, embed=8, batch=4, seq_len=8,
                max_steps=30, eval_every=10, eval_chars=300, sample_chars=20)
    base.update(kw)
    return config_from_preset("tiny", **base)


def test_char_lm_gru_trains_resumes_exactly_and_samples(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(make_text(900, seed=1), encoding="utf-8")
    Trainer.start(_cfg(text, layers=2), tmp_path / "a", Console(quiet=True)).run()
    r = Trainer.start(_cfg(text, layers=2), tmp_path / "b", Console(quiet=True)).run(stop_at=13)
    assert r.step == 13
    Trainer.resume(tmp_path / "b", Console(quiet=True)).run()
    (ma, a, _), (mb, b, _) = (load_checkpoint(tmp_path / d, "last") for d in "ab")
    assert ma["model"]["cell"] == "gru" and ma["step"] == mb["step"] == 30
    assert "param/rnn.l1.b_hn" in a and set(a) == set(b)
    for k in a:                                   # parameters, optimiser slots, carried state
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text()
            .splitlines()]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    loaded = load(tmp_path / "a")
    assert loaded.model.config.cell == "gru"
    first, _ = generate(loaded.model, loaded.vocab, 40, rng=np.random.default_rng(3),
                        prime="the")
    again, _ = generate(loaded.model, loaded.vocab, 40, rng=np.random.default_rng(3),
                        prime="the")
    assert first == again and len(first) == 40


def test_cli_train_cell_gru_then_sample(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(make_text(2000, seed=2), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(text), "--cell", "gru", "--preset", "tiny", "--max-steps", "12",
                 "--eval-every", "6", "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["cell"] == "gru"
    capsys.readouterr()
    assert main(["sample", str(run), "--length", "30", "--seed", "1", "--prime", "a"]) == 0
    assert len(capsys.readouterr().out) >= 30
    assert (run / "report.html").is_file()
    assert "Gate saturation" in (run / "report.html").read_text(encoding="utf-8")


def test_task_cell_gru_prints_the_json_contract(capsys):
    assert main(["task", "adding", "--cell", "gru", "--quick", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["task"] == "adding" and r["cell"] == "gru" and r["steps"] <= 3
    assert isinstance(r["value"], (int, float))


def test_trace_records_r_and_z_and_saturation_covers_them():
    rng = np.random.default_rng(750)
    cfg = LMConfig(vocab_size=6, hidden=4, layers=2, cell="gru", embed=3, dtype="float64")
    model = perturbed(LanguageModel(cfg, rng), rng, scale=1.0)
    ids = rng.integers(0, 6, size=12)
    trace = activation_trace(model, ids)
    assert trace["cell"] == "gru" and set(trace["layers"][0]) == {"h", "r", "z"}
    # h from the trace is the model's own forward; r and z are the step function's gates
    _scores, _ = model.logits(ids[None])
    inp, _ = model._inputs(ids[None])
    p = model.rnn.params
    h, cache = F.gru_step_forward(inp[:, 0], np.zeros((1, 4)), p["l0.Wx"], p["l0.Wh"],
                                  p["l0.b"], p["l0.b_hn"])
    np.testing.assert_allclose(trace["layers"][0]["r"][0], cache.r[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(trace["layers"][0]["h"][0], h[0], rtol=0, atol=1e-15)
    sat = gate_saturation(trace, low=0.3, high=0.7)
    assert len(sat) == 2 and set(sat[1]) == {"r", "z"}
    z = trace["layers"][1]["z"]
    np.testing.assert_array_equal(sat[1]["z"]["left"], (z < 0.3).mean(axis=0))
    np.testing.assert_array_equal(sat[1]["z"]["right"], (z > 0.7).mean(axis=0))


def test_gradient_flow_of_a_two_layer_gru_model_runs_the_reference_loop():
    from bptt.analysis.gradflow import model_gradient_flow

    rng = np.random.default_rng(760)
    cfg = SequenceConfig(2, 1, hidden=4, layers=2, cell="gru", pooling="last", loss="mse",
                         dtype="float64")
    model = perturbed(SequenceModel(cfg, rng), rng)
    x, y = rng.standard_normal((3, 6, 2)), rng.standard_normal((3, 1))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=bool)
    flow = model_gradient_flow(model, x, y, mask)
    assert flow.norms.shape == (3, 6) and np.isnan(flow.norms[2, 2:]).all()
    assert set(flow.saturation) == {"r", "z", "n"}
    _, grads = model.loss(x, y, mask)
    assert rel_error(flow.dWh, 3 * grads["rnn.l1.Wh"]) < 1e-12    # dh * N: per-sequence losses


def test_forget_bias_initialises_the_gru_update_gate():
    stack = RecurrentStack(3, 4, "gru", num_layers=2, rng=np.random.default_rng(770),
                           forget_bias=2.5)
    for k in range(2):
        b = stack.params[f"l{k}.b"]                          # r, z, n along 3H
        np.testing.assert_array_equal(b[4:8], 2.5)
        np.testing.assert_array_equal(np.delete(b, np.s_[4:8]), 0.0)
        np.testing.assert_array_equal(stack.params[f"l{k}.b_hn"], 0.0)
    bi = BidirectionalStack(3, 4, "gru", rng=np.random.default_rng(771), forget_bias=3.0)
    np.testing.assert_array_equal(bi.params["l0.b_rev"][4:8], 3.0)
