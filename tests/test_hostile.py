"""A hostile user's corpus of bad inputs (several hundred cases): every one must end with exit
status 2, exactly one line on stderr, no traceback, and nothing lost (the user's files and the
run's files byte-identical). An internal error (exit 70) or any other exception fails the test.

Kills (SIGKILL at random moments), concurrent writers and FIFOs run in subprocesses with
timeouts; a full disk is a 1 MiB tmpfs (skipped when not root or the mount fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt.cli import main
from corpus_text import make_text

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--preset", "tiny", "--max-steps", "4", "--eval-every", "2", "--hidden", "8", "--embed",
        "4", "--batch", "2", "--seq-len", "8", "--sample-chars", "5", "--eval-chars", "200",
        "--quiet"]


# ---------------------------------------------------------------- helpers

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("the command did not finish in 20 s (a FIFO or device read?)")


def cli(args: list[str]) -> tuple[int, str, str]:
    """Run ``bptt ARGS`` in this process: (exit status, stdout, stderr), at most 20 s."""
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as e:             # argparse's own exits
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, out.getvalue(), err.getvalue()


def refused(args: list[str], match: str | None = None) -> str:
    """Assert ``bptt ARGS`` is refused properly; returns the one line."""
    rc, _, err = cli(args)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert rc == 2, (rc, err)
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert all(line.startswith("bptt") for line in lines), err
    if match is not None:
        assert match in errors[0], errors[0]
    return errors[0]


def tree(path: Path) -> dict[str, str]:
    """Every regular file under ``path`` (relative name -> sha256), the lock file aside."""
    out = {}
    if not path.exists():
        return out
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != ".lock":
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "verse.txt"
    p.write_text(make_text(3000, seed=3), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> Path:
    """A finished tiny run (never modified: tests copy it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    rc, _, err = cli(["train", corpus, "--out", run, *TINY])
    assert rc == 0, err
    return run


@pytest.fixture
def run(tmp_path, trained) -> Path:
    """A private copy of the trained run."""
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    (dst / ".lock").unlink(missing_ok=True)
    return dst


def arrays_file(run: Path, which: str = "last") -> Path:
    return run / json.loads((run / f"{which}.json").read_text())["arrays"]


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
    ("--embed", "-1"), ("--stop-at", "0"), ("--stop-at", "-3"), ("--cell", "gru"),
    ("--optimizer", "foo"), ("--schedule", "linear"), ("--encoding", "latin1"),
    ("--dtype", "float16"), ("--max-rollbacks", "-1"), ("--no-such-option", None),
]


@pytest.mark.parametrize("option,value", BAD_TRAIN_OPTIONS)
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
    ["--length", "-1"], ["--temperature", "inf"], ["--temperature", "nan"],
    ["--temperature", "-1"], ["--temperature", "0"], ["--top-k", "-1"], ["--top-p", "0"],
    ["--top-p", "1.5"], ["--top-p", "nan"], ["--seed", "-1"], ["--checkpoint", "middle"],
    ["--prime", "\u4e2d\u6587"], ["--stop", "\u4e2d"],
]


@pytest.mark.parametrize("extra", BAD_SAMPLE_OPTIONS)
def test_bad_sample_options(run, extra):
    before = tree(run)
    refused(["sample", run, *extra])
    assert tree(run) == before


def test_greedy_ignores_the_temperature_it_does_not_use(run):
    rc, out, err = cli(["sample", run, "--greedy", "--temperature", "0", "--length", "5"])
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


# ---------------------------------------------------------------- damaged checkpoints

def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _set(keys, value):
    def edit(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


def _drop(keys):
    def edit(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
    return edit


def _rewrite_arrays(run: Path, change) -> None:
    """Replace the arrays of last.json and best.json by ``change(arrays)``, sha updated."""
    from safetensors.numpy import load, save
    for which in ("last", "best"):
        jp = run / f"{which}.json"
        doc = json.loads(jp.read_text())
        arrays = dict(load((run / doc["arrays"]).read_bytes()))
        change(arrays)
        blob = save(arrays)
        name = f"checkpoints/damaged-{which}.safetensors"
        (run / name).write_bytes(blob)
        doc["arrays"], doc["arrays_sha256"] = name, hashlib.sha256(blob).hexdigest()
        jp.write_text(json.dumps(doc))


def _json_edit(edit):
    return lambda p: _edit_json(p, edit)


def _first_param(arrays):
    return next(k for k in arrays if k.startswith("param/"))


JSON_DAMAGE = {
    "truncated-10": lambda p: p.write_bytes(p.read_bytes()[:10]),
    "truncated-half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zeroed": lambda p: p.write_bytes(b"\0" * p.stat().st_size),
    "random": lambda p: p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size)),
    "empty": lambda p: p.write_bytes(b""),
    "list": lambda p: p.write_text("[1, 2]"),
    "number": lambda p: p.write_text("3"),
    "deep": lambda p: p.write_text("[" * 100000 + "]" * 100000),
    "not-utf8": lambda p: p.write_bytes(b"\xff\xfe{}"),
    "fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    "directory": lambda p: (p.unlink(), p.mkdir()),
    "version-99": lambda p: _edit_json(p, _set(["version"], 99)),
    "version-str": lambda p: _edit_json(p, _set(["version"], "1")),
    "format": lambda p: _edit_json(p, _set(["format"], "other")),
    "step-negative": lambda p: _edit_json(p, _set(["step"], -1)),
    "step-string": lambda p: _edit_json(p, _set(["step"], "4")),
    "arrays-traversal": lambda p: _edit_json(p, _set(["arrays"], "../../etc/passwd")),
    "arrays-int": lambda p: _edit_json(p, _set(["arrays"], 5)),
    "arrays-missing-file": lambda p: _edit_json(p, _set(["arrays"], "checkpoints/x.safetensors")),
    "sha": lambda p: _edit_json(p, _set(["arrays_sha256"], "0" * 64)),
    "vocab-huge": lambda p: _edit_json(p, _set(["model", "vocab_size"], 10**9)),
    "hidden-huge": lambda p: _edit_json(p, _set(["model", "hidden"], 100000)),
    "hidden-zero": lambda p: _edit_json(p, _set(["model", "hidden"], 0)),
    "hidden-float": lambda p: _edit_json(p, _set(["model", "hidden"], 8.5)),
    "cell": lambda p: _edit_json(p, _set(["model", "cell"], "gru")),
    "dtype": lambda p: _edit_json(p, _set(["model", "dtype"], "int8")),
    "vocab-symbols": lambda p: _edit_json(p, _set(["vocab", "symbols"], ["a", "b"])),
    "vocab-unsorted": lambda p: _edit_json(p, _set(["vocab", "symbols"], [5, 3])),
    "vocab-object": lambda p: _edit_json(p, _set(["vocab"], [1, 2])),
    **{f"missing-{k}": _json_edit(_drop([k]))
       for k in ("format", "version", "step", "arrays", "arrays_sha256", "model", "vocab")},
    **{f"missing-model.{k}": _json_edit(_drop(["model", k]))
       for k in ("vocab_size", "hidden", "layers", "cell", "embed", "dtype")},
}
ARRAY_DAMAGE = {
    "arr-truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "arr-zeroed": lambda p: p.write_bytes(b"\0" * p.stat().st_size),
    "arr-random": lambda p: p.write_bytes(np.random.default_rng(1).bytes(p.stat().st_size)),
    "arr-fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    "arr-missing": lambda p: p.unlink(),
}
REWRITE_DAMAGE = {
    "wrong-shape": lambda a: a.__setitem__(_first_param(a), np.zeros((3, 3), np.float32)),
    "wrong-dtype-f64": lambda a: a.__setitem__(_first_param(a),
                                               a[_first_param(a)].astype(np.float64)),
    "wrong-dtype-f16": lambda a: a.__setitem__(_first_param(a),
                                               a[_first_param(a)].astype(np.float16)),
    "wrong-dtype-i32": lambda a: a.__setitem__(_first_param(a),
                                               a[_first_param(a)].astype(np.int32)),
    "missing-param": lambda a: a.pop(_first_param(a)),
}
READERS = [["sample", "{run}", "--length", "5"], ["score", "{run}", "{text}"],
           ["export", "{run}", "{out}/m.safetensors"], ["train", "--resume", "{run}"]]


def _damage(run: Path, name: str) -> None:
    if name in JSON_DAMAGE:
        for which in ("last", "best"):
            JSON_DAMAGE[name](run / f"{which}.json")
    elif name in ARRAY_DAMAGE:
        for which in ("last", "best"):
            p = arrays_file(run, which)
            if p.exists() or p.is_fifo():
                ARRAY_DAMAGE[name](p)
    else:
        _rewrite_arrays(run, REWRITE_DAMAGE[name])


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r[0] + ("-resume" if "--resume" in r
                                                                    else ""))
@pytest.mark.parametrize("damage", [*JSON_DAMAGE, *ARRAY_DAMAGE, *REWRITE_DAMAGE])
def test_damaged_checkpoints_are_one_line_for_every_reader(run, tmp_path, corpus, damage,
                                                           reader):
    _damage(run, damage)
    before = tree(run)
    out = tmp_path / "exported"
    out.mkdir()
    args = [a.format(run=run, text=corpus, out=out) for a in reader]
    refused(args)
    assert tree(run) == before
    assert not any(out.iterdir())


def test_a_damaged_best_checkpoint_suggests_the_last(run):
    JSON_DAMAGE["truncated-half"](run / "best.json")
    refused(["sample", run], "--checkpoint last")
    rc, _, err = cli(["sample", run, "--checkpoint", "last", "--length", "3"])
    assert rc == 0, err


@pytest.mark.parametrize("where", [[], ["model"], ["train"], ["counters"], ["optimizer"]])
def test_unknown_keys_from_a_newer_bptt_are_ignored(run, where):
    def edit(doc):
        d = doc
        for k in where:
            d = d[k]
        d["added_by_a_newer_bptt"] = {"x": 1}
    for which in ("last", "best"):
        _edit_json(run / f"{which}.json", edit)
    rc, _, err = cli(["sample", run, "--length", "3"])
    assert rc == 0, err
    rc, _, err = cli(["train", "--resume", run, "--quiet"])
    assert rc == 0 and "Traceback" not in err, err


RESUME_DAMAGE = {
    **{f"missing-{k}": _drop([k]) for k in ("train", "optimizer", "counters", "rng")},
    "missing-train.lr": _drop(["train", "lr"]),
    "train.lr-string": _set(["train", "lr"], "fast"),
    "train.lr-inf": _set(["train", "lr"], 1e400),
    "train.hidden-other": _set(["train", "hidden"], 9),
    "train.batch-other": _set(["train", "batch"], 3),
    "train.cell-gru": _set(["train", "cell"], "gru"),
    "missing-counters.step": _drop(["counters", "step"]),
    "counters.cursor-huge": _set(["counters", "cursor"], 10**6),
    "counters.cursor-negative": _set(["counters", "cursor"], -1),
    "counters.step-string": _set(["counters", "step"], "x"),
    "optimizer.step-negative": _set(["optimizer", "step"], -5),
    "optimizer.step-missing": _drop(["optimizer", "step"]),
    "rng-garbage": _set(["rng"], {"bit_generator": "MT19937", "state": 3}),
    "rng-list": _set(["rng"], [1, 2]),
    "counters-list": _set(["counters"], [1]),
    "vocab-other": _set(["vocab", "symbols"], [10, 32, 65]),
}


@pytest.mark.parametrize("damage", list(RESUME_DAMAGE))
def test_damaged_resume_state_is_one_line(run, damage):
    _edit_json(run / "last.json", RESUME_DAMAGE[damage])
    before = tree(run)
    refused(["train", "--resume", run, "--max-steps", "8"])
    assert tree(run) == before


@pytest.mark.parametrize("damage", ["corpus-json-missing", "corpus-json-garbage",
                                    "corpus-npy-missing", "corpus-npy-short", "corpus-npy-fifo",
                                    "corpus-json-fifo", "opt-slot-shape", "state-shape"])
def test_a_damaged_run_directory_is_one_line_on_resume(run, damage):
    if damage == "corpus-json-missing":
        (run / "corpus.json").unlink()
    elif damage == "corpus-json-garbage":
        (run / "corpus.json").write_text("{")
    elif damage == "corpus-npy-missing":
        (run / "corpus.npy").unlink()
    elif damage == "corpus-npy-short":
        np.save(run / "corpus.npy", np.zeros(5, np.uint8))
    elif damage.endswith("fifo"):
        p = run / ("corpus.npy" if "npy" in damage else "corpus.json")
        p.unlink()
        os.mkfifo(p)
    elif damage == "opt-slot-shape":
        _rewrite_arrays(run, lambda a: a.__setitem__(next(k for k in a if k.startswith("opt/")),
                                                     np.zeros(2, np.float32)))
    else:
        _rewrite_arrays(run, lambda a: a.__setitem__("state/0/h", np.zeros((5, 8), np.float32)))
    before = tree(run)
    refused(["train", "--resume", run, "--max-steps", "8"])
    assert tree(run) == before


# ---------------------------------------------------------------- JSON-lines files

def test_one_bad_line_in_the_middle_of_the_metrics_is_reported_not_dropped(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, "{torn")
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = tree(run)
    refused(["train", "--resume", run, "--max-steps", "8"], "metrics.jsonl:2")
    refused(["report", run], "metrics.jsonl:2")
    assert tree(run) == before


def test_a_torn_last_line_is_repaired_on_resume(run):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "val')
    rc, _, err = cli(["report", run])
    assert rc == 0, err
    rc, _, err = cli(["train", "--resume", run, "--max-steps", "6", "--quiet"])
    assert rc == 0, err
    assert "partial last line" in err
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 6]


@pytest.mark.parametrize("name", ["metrics.jsonl", "samples.jsonl"])
@pytest.mark.parametrize("content", [b"[1]\n", b"\xff\xfe\n{}\n", b"3\n{\"step\": 1}\n"])
def test_damaged_jsonl_files_are_one_line_for_report(run, name, content):
    (run / name).write_bytes(content)
    before = tree(run)
    refused(["report", run], name)
    assert tree(run) == before


# ---------------------------------------------------------------- import

@pytest.fixture
def exported(run, tmp_path) -> Path:
    out = tmp_path / "exp" / "m.safetensors"
    out.parent.mkdir()
    rc, _, err = cli(["export", run, out])
    assert rc == 0, err
    return out


SIDECAR_DAMAGE = {
    **{f"missing-{k}": _drop([k]) for k in ("format", "decoder", "bptt_config", "vocab")},
    "missing-decoder.file": _drop(["decoder", "file"]),
    "decoder-file-traversal": _set(["decoder", "file"], "../../x.safetensors"),
    "config-hidden-huge": _set(["bptt_config", "hidden"], 10**6),
    "config-vocab-other": _set(["bptt_config", "vocab_size"], 3),
    "config-list": _set(["bptt_config"], [1]),
    "vocab-garbage": _set(["vocab"], {"symbols": "abc"}),
}


@pytest.mark.parametrize("damage", list(SIDECAR_DAMAGE))
def test_import_sidecars_with_missing_or_bad_keys(exported, tmp_path, damage):
    _edit_json(exported.parent / "m.json", SIDECAR_DAMAGE[damage])
    refused(["import", exported, tmp_path / "imported"])
    assert not (tmp_path / "imported").exists()


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_import_never_casts_arrays_silently(exported, tmp_path, dtype):
    from safetensors.numpy import load, save
    head = exported.parent / "m.head.safetensors"
    arrays = {k: v.astype(dtype) for k, v in load(head.read_bytes()).items()}
    head.write_bytes(save(arrays))
    refused(["import", exported, tmp_path / "imported"], str(np.dtype(dtype)))


def test_import_into_a_used_directory_or_a_file_is_refused(exported, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("mine")
    refused(["import", exported, used])
    (tmp_path / "f").write_text("x")
    refused(["import", exported, tmp_path / "f"])
    assert (used / "mine.txt").read_text() == "mine"


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


# ---------------------------------------------------------------- processes: locks, kills

def _bptt(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bptt", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"bptt did not finish in {timeout} s: {err}")
    return p.returncode, err


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_trainings_into_one_directory_one_wins_the_other_is_refused(tmp_path, corpus):
    run = tmp_path / "run"
    slow = [*TINY, "--max-steps", "40", "--eval-every", "10"]
    a = _bptt("train", corpus, "--out", run, *slow, "--seed", "1")
    time.sleep(0.05)
    b = _bptt("train", corpus, "--out", run, *slow, "--seed", "2")
    (ra, ea), (rb, eb) = _finish(a), _finish(b)
    assert sorted([ra, rb]) == [0, 2], (ea, eb)
    loser = eb if rb == 2 else ea
    assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser
    assert "in use" in loser or "already holds a run" in loser
    assert _steps(run) == [0, 10, 20, 30, 40]


def test_two_resumes_of_one_run_one_wins_and_readers_keep_working(run):
    slow = ["--max-steps", "60", "--eval-every", "10"]
    a = _bptt("train", "--resume", run, *slow, "--quiet")
    time.sleep(0.3)
    b = _bptt("train", "--resume", run, *slow, "--quiet")
    rc, _, err = cli(["sample", run, "--length", "5", "--checkpoint", "last"])   # a reader
    assert rc == 0, err
    (ra, ea), (rb, eb) = _finish(a), _finish(b)
    assert sorted([ra, rb]) == [0, 2], (ea, eb)
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 60


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kill_9_at_a_random_moment_leaves_a_run_that_resumes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    text = tmp_path / "big.txt"
    text.write_text(make_text(400_000, seed=seed), encoding="utf-8")   # encoding takes a moment
    run = tmp_path / "run"
    args = ["train", text, "--out", run, *TINY, "--max-steps", "30", "--eval-every", "3",
            "--eval-chars", "300"]
    p = _bptt(*args)
    time.sleep(float(rng.uniform(0.3, 2.5)))
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    if (run / "last.json").exists():
        rc, err = _finish(_bptt("train", "--resume", run, "--quiet"))
    else:                                  # killed before the first checkpoint: start again
        rc, err = _finish(_bptt(*args))
    assert rc == 0, err
    leftovers = [p.name for p in run.rglob(".*.tmp-*")]
    assert leftovers == []
    steps = _steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 30


# ---------------------------------------------------------------- a full disk

@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_a_full_disk_while_encoding_the_corpus_is_one_line(small_disk, tmp_path):
    text = tmp_path / "big.txt"
    text.write_text(make_text(1_500_000, seed=4), encoding="utf-8")
    rc, err = _finish(_bptt("train", text, "--out", small_disk / "run", *TINY))
    assert rc == 2 and "disk is full" in err and len(err.strip().splitlines()) == 1, err
    assert not list((small_disk / "run").glob(".corpus.npy.tmp-*"))


def test_a_full_disk_never_leaves_a_partial_report_or_checkpoint(small_disk, trained):
    run = small_disk / "run"
    shutil.copytree(trained, run)
    old_report = (run / "report.html").read_bytes()
    before = tree(run)
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    refused(["report", run], "disk is full")
    assert (run / "report.html").read_bytes() == old_report
    out = small_disk / "m.safetensors"
    refused(["export", run, out], "disk is full")
    assert not out.exists()
    assert tree(run) == before


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("embed,layers,learn_h0", [(0, 1, False), (3, 2, True), (2, 3, False)])
def test_the_memory_estimate_counts_the_parameters_exactly(cell, embed, layers, learn_h0):
    from bptt.charlm.memory import n_parameters
    from bptt.nn import LanguageModel, LMConfig
    cfg = LMConfig(vocab_size=7, hidden=5, layers=layers, cell=cell, embed=embed,
                   learn_h0=learn_h0)
    model = LanguageModel(cfg, np.random.default_rng(0))
    assert n_parameters(cfg) == sum(p.size for p in model.params.values())
