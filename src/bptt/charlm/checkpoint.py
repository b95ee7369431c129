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

import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np

FORMAT = "bptt-checkpoint"
VERSION = 1
ARRAYS_DIR = "checkpoints"
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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite_json(obj):
    """Replace non-finite floats by None so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_json(v) for v in obj]
    return obj


_NUMBER_LIST = re.compile(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]")


def dumps(obj) -> str:
    """Indented JSON with non-finite floats as null and lists of numbers on one line."""
    text = json.dumps(_finite_json(obj), indent=1, allow_nan=False)
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
    """Remove arrays files that neither last.json nor best.json names, and stale temp files."""
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
    for f in adir.iterdir():
        stale_tmp = f.name.startswith(".") and ".tmp-" in f.name
        if (f.suffix == ".safetensors" and f.name not in keep) or stale_tmp:
            try:
                f.unlink()
            except OSError:
                pass


def resolve(path: str | os.PathLike, which: str = "auto") -> Path:
    """The checkpoint JSON for a run directory (``which``: last, best, or auto = best if there
    is one, else last) or for a path to a checkpoint JSON itself."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint")
    names = ["best", "last"] if which == "auto" else [which]
    for n in names:
        if n not in WHICH:
            raise CheckpointError(f"unknown checkpoint {n!r}; use one of {list(WHICH)} or auto")
        if (path / f"{n}.json").is_file():
            return path / f"{n}.json"
    raise CheckpointError(f"{path} holds no checkpoint ({' or '.join(f'{n}.json' for n in names)}"
                          f" missing); train one with: bptt train --out {path}")


def load_checkpoint(path: str | os.PathLike, which: str = "auto"
                    ) -> tuple[dict, dict[str, np.ndarray], Path]:
    """Load (meta, arrays, json path) of a checkpoint; verifies the arrays' sha256."""
    jpath = resolve(path, which)
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{jpath} is not a readable checkpoint ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{jpath} is not a bptt checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{jpath} has checkpoint version {meta.get('version')}; this bptt "
                              f"reads version {VERSION}")
    apath = jpath.parent / meta["arrays"]
    try:
        blob = apath.read_bytes()
    except OSError:
        raise CheckpointError(f"{jpath} names {apath}, which is missing; copy the whole run "
                              f"directory") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
        raise CheckpointError(f"{apath} does not match {jpath.name} (sha256 differs); the "
                              f"checkpoint is damaged")
    try:
        arrays = _safetensors().load(blob)
    except Exception as e:      # safetensors raises its own error types
        raise CheckpointError(f"{apath} is not a readable safetensors file ({e})") from None
    return meta, arrays, jpath
