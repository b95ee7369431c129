"""Faithfulness to min-char-rnn (Karpathy 2015, min-char-rnn.py), re-implemented below from its
published code: loss summed over 25 steps, gradients clipped to [-5, 5], Adagrad
``param += -lr * dparam / np.sqrt(mem + 1e-8)``, weights randn * 0.01, hidden 100, one-hot input.
``bptt train --preset min-char-rnn`` must agree with it to float64 rounding: loss, gradients,
clipping, every update, and sampling from a carried state."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.charlm.config import config_from_preset
from bptt.charlm.console import Console
from bptt.charlm.sampling import generate
from bptt.charlm.trainer import Trainer
from bptt.gradcheck import rel_error
from bptt.nn import LanguageModel
from bptt.optim import Adagrad, clip_value
from corpus_text import make_text
from helpers import check

# ---------------------------------------------------------------- the reference

def mcr_loss(inputs, targets, hprev, P):
    """min-char-rnn's lossFun: column vectors, h = tanh(Wxh x + Whh h + bh), y = Why h + by."""
    Wxh, Whh, Why, bh, by = P["Wxh"], P["Whh"], P["Why"], P["bh"], P["by"]
    V = Why.shape[0]
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        ps[t] = np.exp(ys) / np.sum(np.exp(ys))
        loss += -np.log(ps[t][targets[t], 0])
    d = {k: np.zeros_like(v) for k, v in P.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        d["Why"] += dy @ hs[t].T
        d["by"] += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        d["bh"] += dhraw
        d["Wxh"] += dhraw @ xs[t].T
        d["Whh"] += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    unclipped = {k: v.copy() for k, v in d.items()}
    for v in d.values():
        np.clip(v, -5, 5, out=v)
    return loss, unclipped, d, hs[len(inputs) - 1]


def mcr_sample(h, seed_ix, n, P, rng):
    """min-char-rnn's sample, drawing with a np.random.Generator's choice."""
    V = P["Why"].shape[0]
    x = np.zeros((V, 1))
    x[seed_ix] = 1
    ixes = []
    for _ in range(n):
        h = np.tanh(P["Wxh"] @ x + P["Whh"] @ h + P["bh"])
        y = P["Why"] @ h + P["by"]
        p = np.exp(y) / np.sum(np.exp(y))
        ix = rng.choice(range(V), p=p.ravel())
        x = np.zeros((V, 1))
        x[ix] = 1
        ixes.append(int(ix))
    return ixes


def mcr_train(data, P, steps, lr=1e-1, seq_length=25):
    """min-char-rnn's main loop for ``steps`` iterations (P updated in place)."""
    mem = {k: np.zeros_like(v) for k, v in P.items()}
    H = P["Whh"].shape[0]
    p, losses = 0, []
    for n in range(steps):
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev = np.zeros((H, 1))
            p = 0
        inputs, targets = data[p:p + seq_length], data[p + 1:p + seq_length + 1]
        loss, _, d, hprev = mcr_loss(inputs, targets, hprev, P)
        losses.append(loss)
        for k in P:
            mem[k] += d[k] * d[k]
            P[k] += -lr * d[k] / np.sqrt(mem[k] + 1e-8)
        p += seq_length
    return losses, hprev


def to_mcr(params):
    """bptt's LanguageModel parameters (x @ Wx) -> min-char-rnn's (Wxh @ x), copies."""
    return {"Wxh": params["rnn.l0.Wx"].T.copy(), "Whh": params["rnn.l0.Wh"].T.copy(),
            "Why": params["out.w"].T.copy(), "bh": params["rnn.l0.b"][:, None].copy(),
            "by": params["out.b"][:, None].copy()}


# ---------------------------------------------------------------- the checks

@pytest.fixture
def mcr_run(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(make_text(1000), encoding="utf-8")
    cfg = config_from_preset("min-char-rnn", corpus=[str(path)], max_steps=80,
                             eval_every=1000, sample_chars=0, eval_chars=200)
    return Trainer.start(cfg, tmp_path / "run", Console(quiet=True))


def test_preset_is_min_char_rnn(mcr_run):
    m = mcr_run.model
    c = m.config
    assert (c.cell, c.layers, c.hidden, c.embed, c.dtype) == ("rnn", 1, 100, 0, "float64")
    assert (mcr_run.cfg.batch, mcr_run.cfg.seq_len) == (1, 25)
    for name in ("rnn.l0.Wx", "rnn.l0.Wh", "out.w"):
        assert 0.008 < m.params[name].std() < 0.012              # randn * 0.01
    assert not m.params["rnn.l0.b"].any() and not m.params["out.b"].any()


def test_loss_gradients_and_clipping_match(mcr_run):
    rng = np.random.default_rng(0)
    model: LanguageModel = mcr_run.model
    for p in model.params.values():
        p += 0.15 * rng.standard_normal(p.shape)                 # large enough to clip
    ids = mcr_run.train_ids
    x, y = np.asarray(ids[None, 10:35]), np.asarray(ids[None, 11:36])
    h0 = 0.5 * rng.standard_normal((1, 100))
    loss, grads, final = model.loss_and_state(x, y, state=[(h0, None)])
    P = to_mcr(model.params)
    rloss, runclipped, rclipped, rh = mcr_loss(x[0].tolist(), y[0].tolist(), h0.T, P)
    check("min-char-rnn", abs(loss - rloss) / rloss, 1e-12, "loss")
    check("min-char-rnn", rel_error(final[0][0], rh.T), 1e-12, "hprev")
    ours = to_mcr({k: g.copy() for k, g in grads.items()})
    for k in P:
        check("min-char-rnn", rel_error(ours[k], runclipped[k]), 1e-12, f"d{k}")
    n = clip_value(grads, 5.0)
    assert n > 0                                                  # clipping did fire
    ours = to_mcr(grads)
    for k in P:
        check("min-char-rnn", rel_error(ours[k], rclipped[k]), 1e-12, f"clipped d{k}")


def test_training_steps_match(mcr_run):
    """The trainer's first steps (loss summed over 25 steps, clip at 5, min-char-rnn's Adagrad)
    against the reference loop, end to end. Only a few: min-char-rnn's training amplifies
    rounding about tenfold a step (Adagrad divides gradients near 0 by sqrt(1e-8)); the
    reference run twice, from parameters one ulp apart, drifts apart exactly as fast."""
    data = np.asarray(mcr_run.train_ids).tolist()
    P = to_mcr(mcr_run.model.params)
    mcr_run.cfg.max_steps = 3
    assert mcr_run.run().status == 0
    mcr_train(data, P, 3)
    ours = to_mcr(mcr_run.model.params)
    for k in P:
        check("min-char-rnn training", rel_error(ours[k], P[k]), 1e-10, k)


def test_every_update_matches_across_the_wrap(mcr_run):
    """Two passes over the text, one chunk at a time: the trainer's chunks are min-char-rnn's
    (same count per pass, the state reset at each wrap), and from the reference's parameters,
    memory and hprev each step bptt's loss, clipped gradients and Adagrad update equal the
    reference's."""
    data = np.asarray(mcr_run.train_ids).tolist()
    batcher, model = mcr_run.batcher, mcr_run.model
    per_pass = sum(1 for p in range(0, len(data), 25) if p + 25 + 1 < len(data))
    assert batcher.steps_per_epoch == per_pass < 40
    P = to_mcr(model.params)
    mem = {k: np.zeros_like(v) for k, v in P.items()}
    opt = Adagrad(0.1, eps=1e-8, eps_inside_sqrt=True)
    state = opt.init(model.params)
    p, hprev = 0, None
    for n in range(2 * per_pass + 3):
        k = n % per_pass
        if p + 25 + 1 >= len(data) or n == 0:
            hprev, p = np.zeros((100, 1)), 0
        assert (k == 0) == (p == 0)
        x, y = batcher.batch(k)
        assert x[0].tolist() == data[p:p + 25] and y[0].tolist() == data[p + 1:p + 26]
        rloss, _, d, hnext = mcr_loss(data[p:p + 25], data[p + 1:p + 26], hprev, P)
        loss, grads, final = model.loss_and_state(x, y, state=[(hprev.T.copy(), None)])
        clip_value(grads, 5.0)
        check("min-char-rnn steps", abs(loss - rloss) / rloss, 1e-12, "loss")
        opt.update(model.params, grads, state)
        for name in P:
            mem[name] += d[name] * d[name]
            P[name] += -0.1 * d[name] / np.sqrt(mem[name] + 1e-8)
        ours, G = to_mcr(model.params), to_mcr({q: s["G"] for q, s in state["slots"].items()})
        for name in P:   # an update is lr / sqrt(1e-8) = 1e3 times a gradient's rounding
            check("min-char-rnn steps", rel_error(ours[name], P[name]), 1e-11, name)
            check("min-char-rnn steps", rel_error(G[name], mem[name]), 1e-12, "mem " + name)
        check("min-char-rnn steps", rel_error(final[0][0], hnext.T), 1e-12, "hprev")
        for name, a in zip(("rnn.l0.Wx", "rnn.l0.Wh", "out.w", "rnn.l0.b", "out.b"),
                           (P["Wxh"].T, P["Whh"].T, P["Why"].T, P["bh"][:, 0], P["by"][:, 0])):
            model.params[name][...] = a                            # carry on from the reference
        for q, a in zip(("rnn.l0.Wx", "rnn.l0.Wh", "out.w", "rnn.l0.b", "out.b"),
                        (mem["Wxh"].T, mem["Whh"].T, mem["Why"].T, mem["bh"][:, 0],
                         mem["by"][:, 0])):
            state["slots"][q]["G"][...] = a
        hprev, p = hnext, p + 25


def test_sampling_from_a_carried_state_matches(mcr_run):
    model, vocab = mcr_run.model, mcr_run.corpus.vocab
    rng = np.random.default_rng(1)
    for name, p in model.params.items():      # Whh's spectral radius ~0.8: not chaotic, so
        scale = 0.08 if name == "rnn.l0.Wh" else 0.5   # rounding cannot grow over 200 steps
        p[...] = scale * rng.standard_normal(p.shape)
    h = rng.standard_normal((1, 100)) * 0.5
    seed_ix = int(mcr_run.train_ids[3])
    text, _ = generate(model, vocab, 200, np.random.default_rng(7),
                       prime=vocab.decode([seed_ix]), state=[(h, None)])
    ref = mcr_sample(h.T, seed_ix, 200, to_mcr(model.params), np.random.default_rng(7))
    assert text == vocab.decode(ref)
    again, _ = generate(model, vocab, 200, np.random.default_rng(7),
                        prime=vocab.decode([seed_ix]), state=h[0])   # h alone, (H,)
    assert again == text


def test_adagrad_rules():
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) * 1e-3 for _ in range(50)]
    for g in grads:
        g[:5] = 0.0                                               # never-used entries
    mine = {"w": p0.copy()}
    torch_rule = {"w": p0.copy()}
    ref, mem = p0.copy(), np.zeros(50)
    opt, opt2 = Adagrad(0.1, eps_inside_sqrt=True), Adagrad(0.1)
    s, s2 = opt.init(mine), opt2.init(torch_rule)
    for g in grads:
        opt.update(mine, {"w": g}, s)
        opt2.update(torch_rule, {"w": g}, s2)
        mem += g * g
        ref += -0.1 * g / np.sqrt(mem + 1e-8)
    check("min-char-rnn adagrad", rel_error(mine["w"], ref), 1e-14)
    assert rel_error(torch_rule["w"], ref) > 1e-3                 # PyTorch's rule differs
    assert np.isfinite(mine["w"]).all() and np.isfinite(torch_rule["w"]).all()


def test_generate_refuses_a_bad_state(mcr_run):
    with pytest.raises(ValueError, match="shape"):
        generate(mcr_run.model, mcr_run.corpus.vocab, 5, np.random.default_rng(0),
                 state=[(np.zeros((1, 7)), None)])
    with pytest.raises(ValueError, match="list of 1"):
        generate(mcr_run.model, mcr_run.corpus.vocab, 5, np.random.default_rng(0),
                 state=[(np.zeros((1, 100)), None)] * 2)
