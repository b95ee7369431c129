"""Helpers of the hostile tests (test_hostile*.py): run the CLI in this process with a time
limit, assert a proper refusal, fingerprint a directory, damage checkpoint files, start bptt in a
subprocess. The fixtures (a corpus, a finished tiny run, a private copy of it) are in conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bptt.cli import main

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


def arrays_file(run: Path, which: str = "last") -> Path:
    return run / json.loads((run / f"{which}.json").read_text())["arrays"]


def edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def set_key(keys, value):
    def edit(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


def drop_key(keys):
    def edit(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
    return edit


def rewrite_arrays(run: Path, change) -> None:
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


def json_edit(edit):
    return lambda p: edit_json(p, edit)


def first_param(arrays):
    return next(k for k in arrays if k.startswith("param/"))


def bptt_process(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bptt", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"bptt did not finish in {timeout} s: {err}")
    return p.returncode, err


def metric_steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
