"""Sampling (temperature, top-k, top-p, greedy, prime, stop) and scoring from a checkpoint."""

import math

import numpy as np
import pytest

from bptt.charlm.console import Console
from bptt.charlm.sampling import generate, load, next_symbol, score_file, score_ids
from bptt.charlm.text import CorpusError, Vocab
from bptt.charlm.trainer import Trainer, config_from_preset
from bptt.nn import LanguageModel, LMConfig


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from corpus_text import make_text
    d = tmp_path_factory.mktemp("sample")
    (d / "t.txt").write_text(make_text(4000), encoding="utf-8")
    cfg = config_from_preset("tiny", corpus=[str(d / "t.txt")], max_steps=20, eval_every=20,
                             eval_chars=300, sample_chars=0)
    Trainer.start(cfg, d / "run", Console(quiet=True)).run()
    return d / "run"


def test_greedy_top_k_1_and_tiny_top_p_all_pick_the_argmax():
    rng = np.random.default_rng(0)
    z = np.array([0.1, 2.0, -1.0, 1.9])
    assert next_symbol(z, rng, greedy=True) == 1
    assert all(next_symbol(z, rng, top_k=1) == 1 for _ in range(20))
    assert all(next_symbol(z, rng, top_p=0.01) == 1 for _ in range(20))


def test_sampling_frequencies_follow_the_filtered_softmax():
    rng = np.random.default_rng(1)
    z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    n = 20_000
    counts = np.bincount([next_symbol(z, rng) for _ in range(n)], minlength=4) / n
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.015)
    counts = np.bincount([next_symbol(z, rng, top_k=2) for _ in range(n)], minlength=4) / n
    np.testing.assert_allclose(counts, [0.625, 0.375, 0, 0], atol=0.015)
    counts = np.bincount([next_symbol(z, rng, top_p=0.9) for _ in range(n)], minlength=4) / n
    np.testing.assert_allclose(counts, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=0.015)
    counts = np.bincount([next_symbol(z, rng, temperature=0.5) for _ in range(n)],
                         minlength=4) / n
    p = np.array([0.5, 0.3, 0.15, 0.05]) ** 2
    np.testing.assert_allclose(counts, p / p.sum(), atol=0.015)


def test_same_seed_same_text_and_stop_string(run):
    loaded = load(run)
    a, _ = generate(loaded.model, loaded.vocab, 200, np.random.default_rng(7), prime="The ")
    b, _ = generate(loaded.model, loaded.vocab, 200, np.random.default_rng(7), prime="The ")
    c, _ = generate(loaded.model, loaded.vocab, 200, np.random.default_rng(8), prime="The ")
    assert a == b and a != c and len(a) == 200
    d, _ = generate(loaded.model, loaded.vocab, 200, np.random.default_rng(7), prime="The ",
                    stop="\n")
    assert "\n" not in d and a.startswith(d) and a[len(d)] == "\n"


def test_prime_characters_outside_the_vocabulary(run):
    loaded = load(run)
    with pytest.raises(CorpusError, match=r"'é' \(U\+00E9\), '✓' \(U\+2713\).*--skip-unknown"):
        generate(loaded.model, loaded.vocab, 10, np.random.default_rng(0), prime="thé ✓")
    text, skipped = generate(loaded.model, loaded.vocab, 10, np.random.default_rng(0),
                             prime="thé ✓", skip_unknown=True)
    assert skipped == [0xE9, 0x2713] and len(text) == 10


def test_bad_sampling_options_are_rejected(run):
    loaded = load(run)
    for kw, match in [({"temperature": 0}, "temperature"), ({"top_k": -1}, "top-k"),
                      ({"top_p": 0}, "top-p")]:
        with pytest.raises(ValueError, match=match):
            generate(loaded.model, loaded.vocab, 5, np.random.default_rng(0), **kw)


def test_score_is_the_models_cross_entropy_of_the_whole_sequence():
    rng = np.random.default_rng(3)
    model = LanguageModel(LMConfig(vocab_size=5, hidden=6, layers=2, embed=3, dtype="float64"),
                          rng)
    ids = rng.integers(0, 5, size=301)
    total, n = score_ids(model, ids, chunk=64)                    # chunked, state carried
    loss, _ = model.loss(ids[None, :-1], ids[None, 1:])           # one pass, N = 1
    assert n == 300
    assert total == pytest.approx(loss, rel=1e-12)


def test_score_file_reports_nats_bits_and_perplexity(run, tmp_path):
    loaded = load(run)
    path = tmp_path / "s.txt"
    path.write_text("The king shall speak.\n", encoding="utf-8")
    res, skipped = score_file(loaded, path)
    assert set(res) == {"nats_per_char", "bits_per_char", "perplexity", "chars"}
    assert res["chars"] == len("The king shall speak.\n") - 1 and skipped == []
    assert res["bits_per_char"] == pytest.approx(res["nats_per_char"] / math.log(2))
    assert res["perplexity"] == pytest.approx(math.exp(res["nats_per_char"]))


def test_vocab_decode_in_byte_mode():
    v = Vocab(tuple(sorted(set("héllo".encode()))), "bytes")
    ids, _ = v.encode("héllo")
    assert v.decode(ids) == "héllo"
