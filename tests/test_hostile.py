"""A hostile user's bad inputs, part 1: options, files, where a run is written, the library.

Every case must end with exit status 2, exactly one line on stderr, no traceback, and nothing
lost (the user's files and the run's files byte-identical); an internal error (exit 70) or any
other exception fails the test. Part 2 (test_hostile_checkpoints.py) damages checkpoints and run
directories; part 3 (test_hostile_processes.py) kills, races and fills the disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import TINY, arrays_file, cli, refused, tree

# ---------------------------------------------------------------- bad options

BAD_TRAIN_OPTIONS = [
    ("--lr", "inf"), ("--lr", "nan"), ("--lr", "0"), ("--lr", "-1"), ("--lr", "1e-3x"),
    ("--weight-decay", "nan"), ("--weight-decay", "-1"), ("--weight-decay", "inf"),
    ("--beta1", "1"), ("--beta1", "-0.1"), ("--beta1", "nan"), ("--beta2", "1"),
    ("--beta2", "2"), ("--momentum", "1"), ("--rho", "1"), ("--eps", "inf"), ("--eps", "0"),
    ("--clip-norm", "inf"), ("--clip-norm", "-1"), ("--clip-value", "nan"),
    ("--sample-temperature", "inf"), ("--sample-temperature", "0"), ("--max-minutes", "inf"),
    ("--max-minutes", "-1"), ("--max-minutes", "nan"), ("--eval-minutes", "inf"),
    ("--decay-every", "0"), ("--eval-chars", "1"), ("--eval-chars", "-1"), ("--seed", "-1"),
    ("--seed", "x"), ("--hidden", "0"), ("--hidden", "-5"), ("--hidden", "100000"),
    ("--hidden", "2.5"), ("--layers", "0"), ("--batch", "0"), ("--seq-len", "0"),
    ("--dropout", "1"), ("--dropout", "0.5"), ("--val-fraction", "0"), ("--val-fraction", "1"),
    ("--min-lr-ratio", "2"), ("--rollback-lr-factor", "1"), ("--decay-gamma", "0"),
    ("--eval-every", "0"), ("--snapshot-every", "0"), ("--max-steps", "-1"), ("--warmup", "-1"),
    ("--embed", "-1"), ("--stop-at", "0"), ("--stop-at", "-3"), ("--cell", "peephole"),
    ("--optimizer", "foo"), ("--schedule", "linear"), ("--encoding", "latin1"),
    ("--dtype", "float16"), ("--max-rollbacks", "-1"), ("--sample-chars", "1000000000"),
    ("--no-such-option", None),
]


@pytest.mark.parametrize(("option", "value"), BAD_TRAIN_OPTIONS)
def test_bad_train_options_are_refused_before_anything_is_written(tmp_path, corpus, option,
                                                                  value):
    out = tmp_path / "out"
    before = tree(corpus.parent)
    refused(["train", corpus, "--out", out, *TINY, option, *([value] if value else [])])
    assert not out.exists()
    assert tree(corpus.parent) == before


def test_a_cosine_schedule_without_an_end_is_refused(tmp_path, corpus):
    refused(["train", corpus, "--out", tmp_path / "o", "--max-steps", "0", "--max-minutes",
             "0"], "needs an end")


FLOAT_OPTIONS = ["--lr", "--weight-decay", "--beta1", "--beta2", "--eps", "--clip-norm",
                 "--clip-value", "--max-minutes", "--sample-temperature", "--dropout",
                 "--val-fraction", "--min-lr-ratio", "--decay-gamma", "--rollback-lr-factor"]
INT_OPTIONS = ["--hidden", "--layers", "--batch", "--seq-len", "--embed", "--warmup", "--seed",
               "--eval-every", "--eval-chars", "--decay-every", "--snapshot-every",
               "--max-steps", "--stop-at", "--max-rollbacks", "--sample-chars"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from(FLOAT_OPTIONS + INT_OPTIONS),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.integers(-10**12, 10**12).map(str),
                       st.text(max_size=8)))
def test_any_option_value_is_one_line_or_accepted(tmp_path_factory, option, value):
    # The corpus does not exist, so a valid value ends at "no such file": exit 2 either way.
    tmp = tmp_path_factory.mktemp("h")
    refused(["train", tmp / "missing.txt", "--out", tmp / "o", "--quiet", f"{option}={value}"])
    assert not (tmp / "o").exists()


BAD_SAMPLE_OPTIONS = [
    ["--length", "-1"], ["--length", "10000000000"], ["--temperature", "inf"],
    ["--temperature", "nan"], ["--temperature", "-1"], ["--temperature", "0"], ["--top-k", "-1"],
    ["--top-p", "0"],
    ["--top-p", "1.5"], ["--top-p", "nan"], ["--seed", "-1"], ["--checkpoint", "middle"],
    ["--prime", "\u4e2d\u6587"], ["--stop", "\u4e2d"],
]


@pytest.mark.parametrize("extra", BAD_SAMPLE_OPTIONS)
def test_bad_sample_options(run, extra):
    before = tree(run)
    refused(["sample", run, *extra])
    assert tree(run) == before


def test_greedy_ignores_the_temperature_it_does_not_use(run):
    rc, _out, err = cli(["sample", run, "--greedy", "--temperature", "0", "--length", "5"])
    assert rc == 0, err


BAD_TASK_OPTIONS = [["--threads", "-1"], ["--seed", "-1"], ["--steps", "0"], ["--lr", "inf"],
                    ["--lr", "0"], ["--hidden", "0"], ["--batch-size", "0"], ["--T", "0"],
                    ["--epochs", "0"], ["--layers", "0"]]


@pytest.mark.parametrize("extra", BAD_TASK_OPTIONS)
def test_bad_task_options(extra):
    refused(["task", "adding", "--quick", *extra])


# ---------------------------------------------------------------- bad corpus files

def _bad_corpus(kind: str, tmp: Path) -> Path:
    p = tmp / f"bad-{kind}"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "bom-only":
        p.write_bytes(b"\xef\xbb\xbf")
    elif kind == "binary":
        p.write_bytes(b"abc\0def" * 100)
    elif kind == "latin1":
        p.write_bytes("caf\xe9 ".encode("latin-1") * 200)
    elif kind == "short":
        p.write_text("to be")
    elif kind == "directory":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "missing":
        pass
    elif kind == "loop":
        os.symlink(p, p)
    elif kind == "dangling":
        os.symlink(tmp / "nowhere", p)
    elif kind in ("dev-zero", "dev-null"):
        return Path("/dev/zero" if kind == "dev-zero" else "/dev/null")
    return p


CORPUS_KINDS = ["empty", "bom-only", "binary", "latin1", "short", "directory", "fifo", "missing",
                "loop", "dangling", "dev-zero", "dev-null"]


@pytest.mark.parametrize("kind", CORPUS_KINDS)
def test_bad_corpus_files(tmp_path, kind):
    user = tmp_path / "user"
    user.mkdir()
    path = _bad_corpus(kind, user)
    before = tree(user)
    refused(["train", path, "--out", tmp_path / "out", *TINY])
    assert tree(user) == before


@pytest.mark.parametrize("kind", CORPUS_KINDS)
def test_bad_files_to_score(run, tmp_path, kind):
    path = _bad_corpus(kind, tmp_path)
    before = tree(run)
    refused(["score", run, path])
    assert tree(run) == before


def test_a_bom_is_stripped_not_a_symbol(tmp_path, corpus):
    text = tmp_path / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbf" + corpus.read_bytes())
    rc, _, err = cli(["train", text, "--out", tmp_path / "r", *TINY, "--max-steps", "1"])
    assert rc == 0, err
    vocab = json.loads((tmp_path / "r" / "corpus.json").read_text())["vocab"]["symbols"]
    assert 0xFEFF not in vocab


# ---------------------------------------------------------------- where a run is written

def test_a_directory_that_is_not_a_run_is_never_written(tmp_path, corpus):
    user = tmp_path / "mine"
    user.mkdir()
    for name in ("config.json", "train.log", "report.html", "metrics.jsonl", "notes.txt"):
        (user / name).write_text(f"my own {name}\n")
    before = tree(user)
    for extra in ([], ["--overwrite"]):
        refused(["train", corpus, "--out", user, *TINY, *extra], "--overwrite")
        assert tree(user) == before and set(os.listdir(user)) == set(before)


@pytest.mark.parametrize("out", ["", " ", "file", "dangling"])
def test_bad_out_paths(tmp_path, corpus, out):
    cwd_before = tree(Path.cwd()) if out.strip() == "" else None
    if out == "file":
        out = tmp_path / "f.txt"
        out.write_text("mine")
    elif out == "dangling":
        out = tmp_path / "link"
        os.symlink(tmp_path / "nowhere", out)
    refused(["train", corpus, "--out", out, *TINY])
    if cwd_before is not None:
        assert tree(Path.cwd()) == cwd_before


def test_an_existing_run_needs_resume_or_overwrite(run, corpus):
    before = tree(run)
    refused(["train", corpus, "--out", run, *TINY], "--resume")
    assert tree(run) == before


def test_a_run_that_lost_last_json_is_not_restarted_over_its_metrics(run, corpus):
    (run / "last.json").unlink()
    before = tree(run)
    refused(["train", corpus, "--out", run, *TINY], "--overwrite")
    refused(["train", "--resume", run], "last.json missing")
    assert tree(run) == before


@pytest.mark.parametrize("extra", [["--overwrite"], ["--out", "x"], ["--stop-at", "0"],
                                   ["--stop-at", "2"], ["--hidden", "9"], ["--preset", "tiny"]])
def test_bad_resume_combinations(run, extra):
    before = tree(run)
    refused(["train", "--resume", run, *extra])
    assert tree(run) == before


@pytest.mark.parametrize("target", ["", "missing", "file", "plain-dir"])
def test_bad_resume_targets(tmp_path, target):
    p = tmp_path / target if target else ""
    if target == "file":
        p.write_text("x")
    elif target == "plain-dir":
        p.mkdir()
        (p / "a.txt").write_text("a")
    refused(["train", "--resume", p])


def test_other_commands_never_write_over_a_run_s_files(run, tmp_path):
    own = arrays_file(run)
    before = tree(run)
    refused(["export", run, own], "never writes over")
    refused(["export", run, run / "checkpoints" / "new.safetensors"], "never writes over")
    refused(["export", run, tmp_path], "is a directory")
    refused(["export", run, tmp_path / "x.bin"], "*.safetensors")
    for out in ("last.json", "best.json", "metrics.jsonl", "corpus.npy", ".bptt-run"):
        refused(["report", run, "--out", run / out], "never writes over")
    refused(["report", run, "--out", ""])
    assert tree(run) == before


# ---------------------------------------------------------------- the library

@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=12), embed=st.booleans())
def test_language_model_checks_every_id(ids, embed):
    from bptt.nn import LanguageModel, LMConfig
    model = LanguageModel(LMConfig(vocab_size=7, hidden=3, layers=1, embed=2 if embed else 0),
                          np.random.default_rng(0))
    x = np.array(ids)[None, :]
    if all(0 <= i < 7 for i in ids):
        scores, _ = model.logits(x)
        assert scores.shape == (1, len(ids), 7)
    else:
        with pytest.raises(ValueError, match="every value must be in"):
            model.logits(x)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize(("embed", "layers", "learn_h0"),
                         [(0, 1, False), (3, 2, True), (2, 3, False)])
def test_the_memory_estimate_counts_the_parameters_exactly(cell, embed, layers, learn_h0):
    from bptt.charlm.memory import n_parameters
    from bptt.nn import LanguageModel, LMConfig
    cfg = LMConfig(vocab_size=7, hidden=5, layers=layers, cell=cell, embed=embed,
                   learn_h0=learn_h0)
    model = LanguageModel(cfg, np.random.default_rng(0))
    assert n_parameters(cfg) == sum(p.size for p in model.params.values())


def test_a_kill_while_the_marker_was_written_leaves_a_directory_that_starts_again(tmp_path,
                                                                                  corpus):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("")
    (out / "..bptt-run.tmp-999999999").write_text("{")         # no such process
    rc, _, err = cli(["train", corpus, "--out", out, *TINY, "--max-steps", "1"])
    assert rc == 0, err
    assert not list(out.glob(".*.tmp-*"))
