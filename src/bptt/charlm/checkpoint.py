"""Checkpoints: arrays in safetensors, everything else in JSON beside them; no pickle anywhere.

Layout inside a run directory::

    last.json                         the latest checkpoint: config, vocabulary, optimizer
    best.json                         hyper-parameters and step, data cursor, RNG state, metrics,
                                      and the name and sha256 of its arrays file
    checkpoints/step-<step>-<sha>.safetensors
                                      parameters, optimizer slots, carried hidden state

Every file is written atomically: to a temporary name, flushed and fsynced, then renamed over
the old one with ``os.replace``. An arrays file is content-addressed and written before the JSON
that names it; the JSON rename is the commit point, and arrays files that no JSON names any more
are removed only after it. So a kill at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from bptt.charlm.rundir import (
    ARRAYS_DIR,
    RunDirError,
    atomic_write_bytes,
    atomic_write_text,
    check_regular_file,
    clean_temporaries,
)

FORMAT = "bptt-checkpoint"
VERSION = 1
WHICH = ("last", "best")


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or of another format (one-line message)."""


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError:
        raise CheckpointError("checkpoints need the 'safetensors' package; install it with "
                              "pip install 'bptt[train]' (or pip install safetensors)") from None
    return st


def finite_json(obj):
    """Replace non-finite floats by None so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


_NUMBER_LIST = re.compile(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]")


def dumps(obj) -> str:
    """Indented JSON with non-finite floats as null and lists of numbers on one line."""
    text = json.dumps(finite_json(obj), indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def save_checkpoint(run_dir: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict,
                    best: bool = False) -> Path:
    """Save a checkpoint as ``last`` (and also as ``best`` when ``best``); returns last.json.

    ``meta`` must be JSON-serialisable (Python ints of any size, floats, strings, lists, dicts)
    and hold ``step``.
    """
    st = _safetensors()
    run_dir = Path(run_dir)
    adir = run_dir / ARRAYS_DIR
    adir.mkdir(parents=True, exist_ok=True)
    blob = st.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    sha = hashlib.sha256(blob).hexdigest()
    name = f"step-{int(meta['step']):09d}-{sha[:12]}.safetensors"
    if not (adir / name).exists():
        atomic_write_bytes(adir / name, blob)
    doc = {"format": FORMAT, "version": VERSION, **meta,
           "arrays": f"{ARRAYS_DIR}/{name}", "arrays_sha256": sha}
    text = dumps(doc)
    atomic_write_text(run_dir / "last.json", text)           # the commit point
    if best:
        atomic_write_text(run_dir / "best.json", text)
    collect_garbage(run_dir)
    return run_dir / "last.json"


def collect_garbage(run_dir: str | os.PathLike) -> None:
    """Remove arrays files that neither last.json nor best.json names, and temporaries of
    processes that no longer exist."""
    run_dir = Path(run_dir)
    keep = set()
    for which in WHICH:
        p = run_dir / f"{which}.json"
        try:
            keep.add(Path(json.loads(p.read_text())["arrays"]).name)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    adir = run_dir / ARRAYS_DIR
    if not adir.is_dir():
        return
    clean_temporaries(adir)
    for f in adir.iterdir():
        if f.suffix == ".safetensors" and f.name not in keep:
            with contextlib.suppress(OSError):
                f.unlink()


def resolve(path: str | os.PathLike, which: str = "auto") -> Path:
    """The checkpoint JSON for a run directory (``which``: last, best, or auto = best if there
    is one, else last) or for a path to a checkpoint JSON itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint; give a run "
                              f"directory made by bptt train")
    if not path.is_dir():
        return check_regular_file(path, "checkpoint file")
    names = ["best", "last"] if which == "auto" else [which]
    for n in names:
        if n not in WHICH:
            raise CheckpointError(f"unknown checkpoint {n!r}; use one of {list(WHICH)} or auto")
        if (path / f"{n}.json").exists():
            return check_regular_file(path / f"{n}.json", "checkpoint file")
    raise CheckpointError(f"{path} holds no checkpoint ({' or '.join(f'{n}.json' for n in names)}"
                          f" missing); train one with: bptt train --out {path}")


# ---------------------------------------------------------------- the schema

# Version 1: the keys every checkpoint has, and their JSON types. A reader accepts unknown keys
# (a newer bptt of the same version may add some) and refuses a newer version.
REQUIRED = {"format": str, "version": int, "step": int, "arrays": str, "arrays_sha256": str}
# ... those of a language model (every checkpoint of bptt train and bptt import) ...
FOR_MODEL = {"model": dict, "vocab": dict}
# ... and those a checkpoint of bptt train has, needed to resume it.
FOR_RESUME = {"train": dict, "optimizer": dict, "counters": dict, "rng": dict}
MODEL_KEYS = {"vocab_size": int, "hidden": int, "layers": int, "cell": str, "embed": int,
              "dropout": (int, float), "learn_h0": bool, "dtype": str}


def type_name(t) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", bool: "true or false",
             float: "a number", list: "a list"}
    return " or ".join(names.get(x, x.__name__) for x in t) if isinstance(t, tuple) \
        else names.get(t, t.__name__)


def has_type(value, t) -> bool:
    ts = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool):
        return bool in ts
    return isinstance(value, ts)


def check_keys(doc: dict, schema: dict, where: str, fix: str) -> None:
    """Every key of ``schema`` present in ``doc`` with its type (one-line CheckpointError)."""
    for key, t in schema.items():
        if key not in doc:
            raise CheckpointError(f"{where} lacks the key {key!r}; {fix}")
        if not has_type(doc[key], t):
            raise CheckpointError(f"{where}: {key!r} is {type(doc[key]).__name__} "
                                  f"{doc[key]!r:.40}, expected {type_name(t)}; {fix}")


def check_meta(meta, jpath: Path, for_resume: bool = False) -> dict:
    """Validate a checkpoint's JSON against the schema of this version (see REQUIRED)."""
    damaged = "the checkpoint is damaged (try --checkpoint last, or the run's other checkpoint)"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{jpath} is not a bptt checkpoint; give a run directory made by "
                              f"bptt train (or its last.json / best.json)")
    version: Any = meta.get("version")          # a JSON value: checked next
    if not has_type(version, int) or version < 1:
        raise CheckpointError(f"{jpath} has no valid checkpoint version; {damaged}")
    if version > VERSION:
        raise CheckpointError(f"{jpath} has checkpoint version {version}, written by a newer "
                              f"bptt; this bptt reads version {VERSION}: upgrade bptt")
    check_keys(meta, REQUIRED, str(jpath), damaged)
    if meta["step"] < 0:
        raise CheckpointError(f"{jpath}: step is {meta['step']}; {damaged}")
    parts = Path(meta["arrays"]).parts
    if len(parts) != 2 or parts[0] != ARRAYS_DIR or not parts[1].endswith(".safetensors"):
        raise CheckpointError(f"{jpath}: arrays is {meta['arrays']!r}, not a file in "
                              f"{ARRAYS_DIR}/; {damaged}")
    if for_resume or "model" in meta or "vocab" in meta:
        check_keys(meta, FOR_MODEL, str(jpath), damaged)
        check_keys(meta["model"], MODEL_KEYS, f"{jpath}: model", damaged)
        check_keys(meta["vocab"], {"symbols": list}, f"{jpath}: vocab", damaged)
    if for_resume:
        fix = ("this checkpoint cannot be resumed (it was not written by bptt train, or it is "
               "damaged); sample from it, or start a new run")
        check_keys(meta, FOR_RESUME, str(jpath), fix)
        check_keys(meta["optimizer"], {"step": int}, f"{jpath}: optimizer", damaged)
    return meta


def load_checkpoint(path: str | os.PathLike, which: str = "auto", for_resume: bool = False
                    ) -> tuple[dict, dict[str, np.ndarray], Path]:
    """Load (meta, arrays, json path) of a checkpoint: the JSON validated against the schema,
    the arrays' sha256 verified."""
    jpath = resolve(path, which)
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{jpath} is not a readable checkpoint ({str(e)[:80]}); the file is "
                              f"damaged (try --checkpoint last, or the run's other checkpoint)"
                              ) from None
    check_meta(meta, jpath, for_resume)
    apath = jpath.parent / meta["arrays"]
    if not apath.exists():                     # a training run may just have replaced both:
        with contextlib.suppress(OSError, ValueError):      # read the JSON once more
            again = json.loads(jpath.read_text(encoding="utf-8"))
            if isinstance(again, dict) and again.get("arrays") != meta["arrays"]:
                meta = check_meta(again, jpath, for_resume)
                apath = jpath.parent / meta["arrays"]
    if not apath.exists():
        raise CheckpointError(f"{jpath} names {apath}, which is missing; copy the whole run "
                              f"directory")
    try:
        blob = check_regular_file(apath, "arrays file").read_bytes()
    except RunDirError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{apath}: {e.strerror}; check the file's permissions") from None
    if hashlib.sha256(blob).hexdigest() != meta["arrays_sha256"]:
        raise CheckpointError(f"{apath} does not match {jpath.name} (sha256 differs); the "
                              f"checkpoint is damaged (try --checkpoint last, or the run's other "
                              f"checkpoint)")
    try:
        arrays = _safetensors().load(blob)
    except CheckpointError:
        raise
    except Exception as e:      # safetensors raises its own error types
        raise CheckpointError(f"{apath} is not a readable safetensors file ({str(e)[:80]}); the "
                              f"checkpoint is damaged") from None
    return meta, arrays, jpath


def check_arrays(arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                 where: str) -> None:
    """Every expected array present with its shape and dtype (no silent casts)."""
    for name, want in expected.items():
        a = arrays.get(name)
        if a is None:
            raise CheckpointError(f"{where}: array {name} is missing; the checkpoint is damaged")
        if a.shape != want.shape or a.dtype != want.dtype:
            raise CheckpointError(f"{where}: array {name} is {a.dtype} {a.shape}, expected "
                                  f"{want.dtype} {want.shape}; the checkpoint is damaged")


_ANNOTATION_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool,
                     "list[str]": list, "float | None": (int, float, type(None)),
                     "int | None": (int, type(None))}


def dataclass_from_json(cls, doc: dict, where: str):
    """``cls(**doc)`` with every field present and of its annotated JSON type; keys ``cls`` does
    not have (written by a newer bptt) are ignored. Returns (instance, ignored keys)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    schema = {name: _ANNOTATION_TYPES.get(str(f.type), object) for name, f in fields.items()}
    check_keys(doc, schema, where, "the checkpoint is damaged")
    unknown = sorted(set(doc) - set(fields))
    return cls(**{k: doc[k] for k in fields}), unknown
