"""The encoder-decoder: numerical gradients (float64, every parameter random and non-zero),
parity with a PyTorch model of the same architecture (torch.nn.RNN / LSTM on packed sources,
autograd), padded batches equal to each sequence alone, and greedy / beam decoding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bptt.gradcheck import check_loss, rel_error
from bptt.interop.torch import layer_to_torch
from bptt.nn.decoding import beam_search, greedy_decode
from bptt.nn.seq2seq import Seq2Seq, Seq2SeqConfig
from helpers import check

CONFIGS = [
    dict(cell="lstm"),
    dict(cell="rnn"),
    dict(cell="lstm", bridge="affine", embed=3),
    dict(cell="rnn", enc_hidden=3, layers=2),
    dict(cell="lstm", bidirectional=True, layers=2),
    dict(cell="rnn", bidirectional=True, embed=2),
    dict(cell="gru"),
    dict(cell="gru", bidirectional=True, layers=2, bridge="affine"),
]
ids = [",".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]


def make(opts: dict, seed: int = 0, **extra) -> tuple[Seq2Seq, np.random.Generator]:
    rng = np.random.default_rng(seed)
    kw = {"src_vocab": 5, "tgt_vocab": 6, "hidden": 4, "dtype": "float64", **opts, **extra}
    cfg = Seq2SeqConfig(**kw)
    model = Seq2Seq(cfg, rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)             # non-zero biases everywhere
    return model, rng


def batch(rng: np.random.Generator, N: int = 3, S: int = 5, T: int = 4):
    """Source ids with varied lengths (one of length 1), targets with padded tails."""
    x = rng.integers(0, 5, (N, S))
    lengths = rng.integers(1, S + 1, N)
    lengths[0], lengths[-1] = S, 1
    mask = np.arange(S)[None, :] < lengths[:, None]
    y = rng.integers(1, 6, (N, T))
    y[1, 2:] = 0                                             # pad (0) after the end
    return x, mask, y


@pytest.mark.parametrize("opts", CONFIGS, ids=ids)
def test_gradients_match_numerical(opts):
    model, rng = make(opts)
    x, mask, y = batch(rng)
    results = check_loss("seq2seq", lambda: model.loss(x, y, mask), model.params)
    assert {r.name for r in results} == set(model.params)
    for r in results:
        check("seq2seq numerical", r.error, 1e-7, r.name)


def test_bridge_gradient_reaches_the_encoder():
    """The encoder's only gradient is the one through its final state into the decoder."""
    model, rng = make(dict(cell="lstm", bidirectional=True))
    x, mask, y = batch(rng)
    _, grads = model.loss(x, y, mask)
    for name in ("enc.l0.Wx", "enc.l0.Wh_rev", "bridge.h0.w", "bridge.c0.w"):
        assert np.abs(grads[name]).max() > 1e-3, name


@pytest.mark.parametrize("opts", CONFIGS, ids=ids)
def test_padded_batch_equals_each_alone(opts):
    model, rng = make(opts, seed=1)
    x, mask, y = batch(rng)
    loss, grads = model.loss(x, y, mask)
    N = x.shape[0]
    total, gsum = 0.0, {k: np.zeros_like(v) for k, v in grads.items()}
    for n in range(N):
        L = int(mask[n].sum())
        ln, gn = model.loss(x[n:n + 1, :L], y[n:n + 1], None)
        total += ln
        for k in gsum:
            gsum[k] += gn[k]
    assert abs(loss * N - total) <= 1e-12 * abs(total)
    for k in grads:
        check("seq2seq padded == alone", rel_error(grads[k] * N, gsum[k]), 1e-12, k)


# ---------------------------------------------------------------- PyTorch reference

def torch_reference(model: Seq2Seq, x, mask, y):
    """The same model in PyTorch: (loss, grads keyed like model.params) by autograd."""
    torch = pytest.importorskip("torch")
    c, p = model.config, model.params
    kind = {"rnn": lambda D, H, **kw: torch.nn.RNN(D, H, nonlinearity="tanh", **kw),
            "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[c.cell]
    gru = c.cell == "gru"
    leaf = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()
            if not k.startswith(("enc.", "dec."))}

    def module(prefix, D, H, bidirectional):
        mod = kind(D, H, num_layers=c.layers, bidirectional=bidirectional,
                   batch_first=True).double()
        sd = {}
        for k in range(c.layers):
            for suffix, rev in (("", ""), ("_rev", "_reverse")) if bidirectional else (("", ""),):
                tw = layer_to_torch(p[f"{prefix}.l{k}.Wx{suffix}"], p[f"{prefix}.l{k}.Wh{suffix}"],
                                    p[f"{prefix}.l{k}.b{suffix}"], cell=c.cell,
                                    b_hn=p[f"{prefix}.l{k}.b_hn{suffix}"] if gru else None)
                sd.update({f"{n}_l{k}{rev}": torch.from_numpy(a) for n, a in tw.items()})
        mod.load_state_dict(sd)
        return mod

    def inputs(ids, which, V):
        t = torch.from_numpy(ids)
        if c.embed:
            return leaf[f"{which}_embed.W"][t]
        return torch.nn.functional.one_hot(t, V).double()

    Ds = c.embed or c.src_vocab
    Dt = c.embed or c.tgt_vocab
    enc = module("enc", Ds, c.H_enc, c.bidirectional)
    dec = module("dec", Dt, c.hidden, False)
    lengths = torch.from_numpy(mask.sum(axis=1))
    packed = torch.nn.utils.rnn.pack_padded_sequence(inputs(x, "src", c.src_vocab), lengths,
                                                     batch_first=True, enforce_sorted=False)
    _, hn = enc(packed)
    h_n, c_n = hn if c.cell == "lstm" else (hn, None)       # (layers * dirs, N, H)
    if c.uses_identity:
        h0, c0 = h_n, c_n
    else:
        s = torch.cat([h_n[-2], h_n[-1]], dim=1) if c.bidirectional else h_n[-1]
        h0 = torch.stack([s @ leaf[f"bridge.h{k}.w"] + leaf[f"bridge.h{k}.b"]
                          for k in range(c.layers)])
        c0 = (torch.stack([s @ leaf[f"bridge.c{k}.w"] + leaf[f"bridge.c{k}.b"]
                           for k in range(c.layers)]) if c.cell == "lstm" else None)
    h, _ = dec(inputs(model.decoder_inputs(y), "tgt", c.tgt_vocab),
               (h0, c0) if c.cell == "lstm" else h0)
    scores = h @ leaf["out.w"] + leaf["out.b"]              # (N, T, V)
    logp = torch.log_softmax(scores, dim=2)
    yt = torch.from_numpy(y)
    picked = logp.gather(2, yt[:, :, None])[:, :, 0]
    loss = -(picked * (yt != c.pad)).sum() / y.shape[0]
    loss.backward()
    grads = {k: t.grad.numpy() for k, t in leaf.items()}
    for prefix, mod, bi in (("enc", enc, c.bidirectional), ("dec", dec, False)):
        for k in range(c.layers):
            for suffix, rev in (("", ""), ("_rev", "_reverse")) if bi else (("", ""),):
                g = {n: getattr(mod, f"{n}_l{k}{rev}").grad.numpy()
                     for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
                # dL/db = dL/dbias_ih (b enters where bias_ih does); a GRU's b_hn is
                # bias_hh's n block
                grads.update({f"{prefix}.l{k}.Wx{suffix}": g["weight_ih"].T,
                              f"{prefix}.l{k}.Wh{suffix}": g["weight_hh"].T,
                              f"{prefix}.l{k}.b{suffix}": g["bias_ih"]})
                if gru:
                    H = g["weight_hh"].shape[1]
                    grads[f"{prefix}.l{k}.b_hn{suffix}"] = g["bias_hh"][2 * H:]
    return float(loss.detach()), grads


@pytest.mark.parametrize("opts", CONFIGS, ids=ids)
def test_matches_pytorch(opts):
    model, rng = make(opts, seed=2)
    x, mask, y = batch(rng, N=4, S=6, T=5)
    loss, grads = model.loss(x, y, mask)
    tloss, tgrads = torch_reference(model, x, mask, y)
    assert set(tgrads) == set(grads)
    check("seq2seq vs torch", abs(loss - tloss) / abs(tloss), 1e-12, "loss")
    for k in grads:
        check("seq2seq vs torch", rel_error(grads[k], tgrads[k]), 1e-10, k)


# ---------------------------------------------------------------- decoding

def test_beam_one_is_greedy():
    model, rng = make(dict(cell="lstm", bidirectional=True), seed=3)
    x, mask, _ = batch(rng, N=6)
    greedy = model.greedy(x, mask, max_len=7)
    beam = model.beam(x, mask, beam=1, max_len=7)
    for g, b in zip(greedy, beam):
        assert b[0].ids == g.tolist()


def _all_outputs(model, x, mask, max_len):
    """Every output (ending with end, or max_len symbols) with its exact log-probability."""
    c = model.config
    state, _ = model.encode(x, mask)
    out = []
    symbols = [v for v in range(c.tgt_vocab)]
    for L in range(1, max_len + 1):
        for seq in itertools.product(symbols, repeat=L):
            if c.end in seq[:-1] or (max_len > L and seq[-1] != c.end):
                continue
            s, cur, lp = state, np.array([c.start]), 0.0
            for v in seq:
                logp, s = model.step(cur, s)
                lp += logp[0, v]
                cur = np.array([v])
            ids = list(seq[:-1]) if seq[-1] == c.end else list(seq)
            out.append((ids, lp, L))
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_best_output(alpha):
    """With the beam as wide as every prefix, beam search is exhaustive: it must return the
    output of best normalised score among all of them."""
    model, rng = make(dict(cell="rnn"), seed=4, tgt_vocab=4, end=3, pad=0, start=1)
    x, mask, _ = batch(rng, N=2)
    max_len = 3
    hyps = model.beam(x, mask, beam=4 ** max_len, max_len=max_len, length_penalty=alpha)
    for n in range(2):
        every = _all_outputs(model, x[n:n + 1], mask[n:n + 1], max_len)
        best = max(every, key=lambda e: e[1] / e[2] ** alpha)
        assert hyps[n][0].ids == best[0]
        assert abs(hyps[n][0].logp - best[1]) < 1e-12


def test_beam_beats_or_equals_greedy():
    model, rng = make(dict(cell="lstm"), seed=5)
    x, mask, _ = batch(rng, N=8)
    state, _ = model.encode(x, mask)
    greedy = greedy_decode(model.step, state, 1, 2, 6)
    hyps = beam_search(model.step, state, 1, 2, beam=5, max_len=6)

    def logp(n, ids):
        s, cur, lp = [(h[n:n + 1], None if c is None else c[n:n + 1]) for h, c in state], \
            np.array([1]), 0.0
        for v in list(ids) + ([2] if len(ids) < 6 else []):
            out, s = model.step(cur, s)
            lp += out[0, v]
            cur = np.array([v])
        return lp

    for n in range(8):
        assert hyps[n][0].logp >= logp(n, greedy[n]) - 1e-12


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="bridge"):
        Seq2SeqConfig(5, 6, hidden=4, bidirectional=True, bridge="identity")
    with pytest.raises(ValueError, match="outside the target vocabulary"):
        Seq2SeqConfig(5, 6, end=9)
    model, rng = make(dict(cell="rnn"))
    x, mask, y = batch(rng)
    with pytest.raises(ValueError, match="target ids"):
        model.loss(x, y[:2], mask)
    with pytest.raises(ValueError, match="beam width"):
        model.beam(x, mask, beam=0)
    with pytest.raises(ValueError, match="every value must be in"):
        model.loss(x + 10, y, mask)                          # ids outside the vocabulary
