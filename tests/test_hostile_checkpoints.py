"""A hostile user's bad inputs, part 2: damaged checkpoints (truncated, zeroed, random, wrong
shape or dtype, missing or extra keys) for every reader, damaged run directories, JSON-lines
files and import sidecars. Each: exit 2, one line, no traceback, nothing changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import (
    arrays_file,
    cli,
    drop_key,
    edit_json,
    first_param,
    json_edit,
    refused,
    rewrite_arrays,
    set_key,
    tree,
)

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
    "version-99": lambda p: edit_json(p, set_key(["version"], 99)),
    "version-str": lambda p: edit_json(p, set_key(["version"], "1")),
    "format": lambda p: edit_json(p, set_key(["format"], "other")),
    "step-negative": lambda p: edit_json(p, set_key(["step"], -1)),
    "step-string": lambda p: edit_json(p, set_key(["step"], "4")),
    "arrays-traversal": lambda p: edit_json(p, set_key(["arrays"], "../../etc/passwd")),
    "arrays-int": lambda p: edit_json(p, set_key(["arrays"], 5)),
    "arrays-missing-file": lambda p: edit_json(p, set_key(["arrays"], "checkpoints/x.safetensors")),
    "sha": lambda p: edit_json(p, set_key(["arrays_sha256"], "0" * 64)),
    "vocab-huge": lambda p: edit_json(p, set_key(["model", "vocab_size"], 10**9)),
    "hidden-huge": lambda p: edit_json(p, set_key(["model", "hidden"], 100000)),
    "hidden-zero": lambda p: edit_json(p, set_key(["model", "hidden"], 0)),
    "hidden-float": lambda p: edit_json(p, set_key(["model", "hidden"], 8.5)),
    "cell": lambda p: edit_json(p, set_key(["model", "cell"], "peephole")),
    "dtype": lambda p: edit_json(p, set_key(["model", "dtype"], "int8")),
    "vocab-symbols": lambda p: edit_json(p, set_key(["vocab", "symbols"], ["a", "b"])),
    "vocab-unsorted": lambda p: edit_json(p, set_key(["vocab", "symbols"], [5, 3])),
    "vocab-object": lambda p: edit_json(p, set_key(["vocab"], [1, 2])),
    **{f"missing-{k}": json_edit(drop_key([k]))
       for k in ("format", "version", "step", "arrays", "arrays_sha256", "model", "vocab")},
    **{f"missing-model.{k}": json_edit(drop_key(["model", k]))
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
    "wrong-shape": lambda a: a.__setitem__(first_param(a), np.zeros((3, 3), np.float32)),
    "wrong-dtype-f64": lambda a: a.__setitem__(first_param(a),
                                               a[first_param(a)].astype(np.float64)),
    "wrong-dtype-f16": lambda a: a.__setitem__(first_param(a),
                                               a[first_param(a)].astype(np.float16)),
    "wrong-dtype-i32": lambda a: a.__setitem__(first_param(a),
                                               a[first_param(a)].astype(np.int32)),
    "missing-param": lambda a: a.pop(first_param(a)),
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
        rewrite_arrays(run, REWRITE_DAMAGE[name])


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
        edit_json(run / f"{which}.json", edit)
    rc, _, err = cli(["sample", run, "--length", "3"])
    assert rc == 0, err
    rc, _, err = cli(["train", "--resume", run, "--quiet"])
    assert rc == 0 and "Traceback" not in err, err


RESUME_DAMAGE = {
    **{f"missing-{k}": drop_key([k]) for k in ("train", "optimizer", "counters", "rng")},
    "missing-train.lr": drop_key(["train", "lr"]),
    "train.lr-string": set_key(["train", "lr"], "fast"),
    "train.lr-inf": set_key(["train", "lr"], 1e400),
    "train.hidden-other": set_key(["train", "hidden"], 9),
    "train.batch-other": set_key(["train", "batch"], 3),
    "train.cell-unknown": set_key(["train", "cell"], "peephole"),
    "train.cell-other": set_key(["train", "cell"], "gru"),        # a valid cell, other arrays
    "train.layers-other": set_key(["train", "layers"], 3),
    "missing-counters.step": drop_key(["counters", "step"]),
    "counters.cursor-huge": set_key(["counters", "cursor"], 10**6),
    "counters.cursor-negative": set_key(["counters", "cursor"], -1),
    "counters.step-string": set_key(["counters", "step"], "x"),
    "optimizer.step-negative": set_key(["optimizer", "step"], -5),
    "optimizer.step-missing": drop_key(["optimizer", "step"]),
    "rng-garbage": set_key(["rng"], {"bit_generator": "MT19937", "state": 3}),
    "rng-list": set_key(["rng"], [1, 2]),
    "counters-list": set_key(["counters"], [1]),
    "vocab-other": set_key(["vocab", "symbols"], [10, 32, 65]),
}


@pytest.mark.parametrize("damage", list(RESUME_DAMAGE))
def test_damaged_resume_state_is_one_line(run, damage):
    edit_json(run / "last.json", RESUME_DAMAGE[damage])
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
        rewrite_arrays(run, lambda a: a.__setitem__(next(k for k in a if k.startswith("opt/")),
                                                     np.zeros(2, np.float32)))
    else:
        rewrite_arrays(run, lambda a: a.__setitem__("state/0/h", np.zeros((5, 8), np.float32)))
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
    **{f"missing-{k}": drop_key([k]) for k in ("format", "decoder", "bptt_config", "vocab")},
    "missing-decoder.file": drop_key(["decoder", "file"]),
    "decoder-file-traversal": set_key(["decoder", "file"], "../../x.safetensors"),
    "config-hidden-huge": set_key(["bptt_config", "hidden"], 10**6),
    "config-vocab-other": set_key(["bptt_config", "vocab_size"], 3),
    "config-list": set_key(["bptt_config"], [1]),
    "vocab-garbage": set_key(["vocab"], {"symbols": "abc"}),
}


@pytest.mark.parametrize("damage", list(SIDECAR_DAMAGE))
def test_import_sidecars_with_missing_or_bad_keys(exported, tmp_path, damage):
    edit_json(exported.parent / "m.json", SIDECAR_DAMAGE[damage])
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


@pytest.mark.parametrize("damage", ["truncated-half", "random", "vocab-huge", "missing-model",
                                    "cell", "wrong-dtype-f64", "missing-param", "arr-fifo",
                                    "train-list", "corpus-other-vocab"])
def test_damaged_checkpoints_are_one_line_for_report(run, damage):
    if damage == "train-list":
        for which in ("last", "best"):
            edit_json(run / f"{which}.json", set_key(["train"], [1]))
    elif damage == "corpus-other-vocab":
        edit_json(run / "corpus.json", set_key(["vocab", "symbols"], [10, 32, 65]))
    else:
        _damage(run, damage)
    before = tree(run)
    rc, _, err = cli(["report", run])
    if damage == "train-list":               # the model loads; the report needs no train options
        assert rc == 0, err
        return
    refused(["report", run])
    assert tree(run) == before


def _paths(doc, prefix=()):
    """Every key path of a JSON document (objects only)."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=5)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_value_anywhere_in_a_checkpoint_is_accepted_or_one_line(hostile_trained,
                                                                    tmp_path_factory, data):
    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(hostile_trained, run)
    doc = json.loads((run / "last.json").read_text())
    path = data.draw(st.sampled_from(_paths(doc)))
    value = data.draw(JSON_VALUES | st.just("__delete__"))
    edit = drop_key(list(path)) if value == "__delete__" else set_key(list(path), value)
    for which in ("last", "best"):
        edit_json(run / f"{which}.json", edit)
    command = data.draw(st.sampled_from([["sample", run, "--length", "3"],
                                         ["train", "--resume", run, "--quiet"]]))
    rc, _, err = cli(command)
    assert "Traceback" not in err and "internal error" not in err, (path, value, err)
    assert rc in (0, 2), (path, value, err)
    if rc == 2:
        refused(command)
