"""``bptt train --tensorboard DIR``: the run's scalars and samples as TensorBoard events.

The run directory's ``metrics.jsonl`` (one JSON object per evaluation) and ``samples.jsonl``
stay the record; a background thread mirrors their new complete lines into DIR every few
seconds while training runs, and once more at the end, through tensorboardX's ``SummaryWriter``
(a small, maintained writer library: no hand-written event format). Every numeric field of a
metrics record becomes a scalar ``metrics/<field>`` at its ``step`` (nested objects as
``<field>/<key>``); every sample becomes text ``samples`` at its step.

When DIR already holds event files (a resumed run logging to the same place), only lines
written after the mirror starts are added, so no step is logged twice.

    tensorboard --logdir DIR          # (pip install tensorboard) to look at it
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from pathlib import Path

INTERVAL_S = 5.0


def open_writer(logdir: str | None):
    """A tensorboardX SummaryWriter for ``logdir`` (None: no logging -> None)."""
    if logdir is None:
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the 'tensorboardX' package; "
                         "pip install tensorboardX (or bptt[tensorboard])") from None
    path = Path(logdir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--tensorboard {logdir}: exists and is not a directory; "
                         "give a directory")
    fresh = not (path.is_dir() and any(path.glob("events.out.tfevents.*")))
    writer = SummaryWriter(str(path))
    writer.bptt_fresh = fresh
    return writer


def _scalars(rec: dict, prefix: str = "metrics"):
    for key, value in rec.items():
        if key == "step":
            continue
        if isinstance(value, dict):
            yield from _scalars(value, f"{prefix}/{key}")
        elif (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value)):
            yield f"{prefix}/{key}", float(value)


class _Tail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: Path, from_end: bool):
        self.path = path
        self.offset = path.stat().st_size if from_end and path.exists() else 0

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1                              # only complete lines
        self.offset += end
        return [line for line in data[:end].decode("utf-8", "replace").splitlines() if line]


class Mirror:
    """Copies RUN/metrics.jsonl and RUN/samples.jsonl into a SummaryWriter (see the module)."""

    def __init__(self, writer, run_dir: str | Path):
        run_dir = Path(run_dir)
        from_end = not getattr(writer, "bptt_fresh", True)
        self.writer = writer
        self.metrics = _Tail(run_dir / "metrics.jsonl", from_end)
        self.samples = _Tail(run_dir / "samples.jsonl", from_end)
        self._lock = threading.Lock()

    def sync(self) -> None:
        with self._lock:
            for line in self.metrics.new_lines():
                rec = _load(line)
                if rec is not None and isinstance(rec.get("step"), int):
                    for tag, value in _scalars(rec):
                        self.writer.add_scalar(tag, value, rec["step"])
            for line in self.samples.new_lines():
                rec = _load(line)
                if rec is not None and isinstance(rec.get("text"), str):
                    text = "\n".join("    " + t for t in rec["text"].splitlines())  # verbatim
                    self.writer.add_text("samples", text, rec.get("step", 0))
            self.writer.flush()


def _load(line: str) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def run_path(trainer) -> Path:
    """The run directory of a Trainer."""
    return Path(getattr(trainer, "path", None) or trainer.run_dir)


@contextlib.contextmanager
def mirroring(writer, run_dir: str | Path, interval_s: float = INTERVAL_S):
    """While the block runs, mirror the run into ``writer`` every ``interval_s`` seconds; a
    last sync and close at the end (also on an exception or Ctrl-C). ``writer`` None: nothing."""
    if writer is None:
        yield None
        return
    mirror = Mirror(writer, run_dir)
    stop = threading.Event()

    def loop():
        while not stop.wait(interval_s):
            mirror.sync()

    thread = threading.Thread(target=loop, name="bptt-tensorboard", daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        stop.set()
        thread.join()
        mirror.sync()
        writer.close()
