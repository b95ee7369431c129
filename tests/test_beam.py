"""Beam search for the character LM (``bptt sample --beam K``) and sampling from a given
initial state."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.charlm.beam import beam_generate
from bptt.charlm.console import Console
from bptt.charlm.sampling import generate, load
from bptt.charlm.trainer import Trainer, config_from_preset
from bptt.cli import main
from bptt.functional import log_softmax


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from corpus_text import make_text
    d = tmp_path_factory.mktemp("beam")
    (d / "t.txt").write_text(make_text(3000), encoding="utf-8")
    cfg = config_from_preset("tiny", corpus=[str(d / "t.txt")], max_steps=30, eval_every=30,
                             eval_chars=300, sample_chars=0, dtype="float64")
    Trainer.start(cfg, d / "run", Console(quiet=True)).run()
    return d / "run"


def _logp(model, vocab, prime, text):
    """Total log-probability of ``text`` after ``prime`` (prime of at least one symbol)."""
    ids = vocab.encode(prime + text)[0]
    scores, _ = model.logits(ids[None, :-1])
    logp = log_softmax(scores[0].astype(np.float64), axis=1)
    n = len(prime)
    return float(sum(logp[t, ids[t + 1]] for t in range(n - 1, len(ids) - 1)))


def test_beam_one_is_greedy_sampling(run):
    loaded = load(run)
    greedy, _ = generate(loaded.model, loaded.vocab, 40, np.random.default_rng(0), greedy=True,
                         prime="Th")
    text, _, _ = beam_generate(loaded.model, loaded.vocab, 40, 1, prime="Th")
    assert text == greedy


def test_wide_beam_is_exhaustive(run):
    """A beam as wide as the vocabulary keeps every first symbol, so for two symbols it is
    exhaustive: its answer is the most likely of all V^2 continuations."""
    loaded = load(run)
    model, vocab = loaded.model, loaded.vocab
    V = vocab.size
    a = int(vocab.encode("a")[0][0])
    x = np.stack([np.full(V, a), np.arange(V)], axis=1)                 # (V, 2): a, c1
    logp = log_softmax(model.logits(x)[0].astype(np.float64), axis=2)   # (V, 2, V)
    every = logp[:, 0, :].diagonal()[:, None] + logp[:, 1, :]           # (c1, c2)
    text, _, best = beam_generate(model, vocab, 2, V, prime="a")
    assert abs(best - every.max()) < 1e-12
    assert vocab.encode(text)[0].tolist() == list(np.unravel_index(every.argmax(), every.shape))
    _, _, narrow = beam_generate(model, vocab, 2, 2, prime="a")
    assert narrow <= best + 1e-12


def test_beam_finds_at_least_the_greedy_likelihood(run):
    loaded = load(run)
    model, vocab = loaded.model, loaded.vocab
    greedy, _ = generate(model, vocab, 30, np.random.default_rng(0), greedy=True, prime="The")
    text, _, logp = beam_generate(model, vocab, 30, 6, prime="The")
    assert len(text) == 30
    assert logp >= _logp(model, vocab, "The", greedy) - 1e-9


def test_one_character_stop_ends_the_search(run):
    loaded = load(run)
    text, _, _ = beam_generate(loaded.model, loaded.vocab, 200, 4, prime="a", stop=" ")
    assert " " not in text and len(text) < 200


def test_generate_from_a_state_continues_the_prime(run):
    loaded = load(run)
    model, vocab = loaded.model, loaded.vocab
    _, state = model.logits(vocab.encode("The ki")[0][None, :])
    a, _ = generate(model, vocab, 50, np.random.default_rng(3), prime="The kin")
    b, _ = generate(model, vocab, 50, np.random.default_rng(3), prime="n", state=state)
    assert a == b
    c, _, _ = beam_generate(model, vocab, 20, 3, prime="The kin")
    d, _, _ = beam_generate(model, vocab, 20, 3, prime="n", state=state)
    assert c == d


def test_cli_beam(run, capsys):
    assert main(["sample", str(run), "--beam", "3", "--length", "25", "--prime", "Th"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Th") and len(out.rstrip("\n")) >= 2
    with pytest.raises(SystemExit) as e:                 # a usage error, at parse time
        main(["sample", str(run), "--beam", "-1"])
    assert e.value.code == 2
    assert "--beam" in capsys.readouterr().err
