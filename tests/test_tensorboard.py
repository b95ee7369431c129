"""``bptt train --tensorboard DIR``: metrics.jsonl's scalars and the samples, as TensorBoard
events written by tensorboardX, read back here record by record."""

from __future__ import annotations

import json
import struct
import sys

import pytest

from bptt.cli import main

pytest.importorskip("tensorboardX", reason="needs tensorboardX: pip install -e '.[tensorboard]'")


def read_events(logdir):
    """Every Event proto in the TFRecord files of ``logdir`` (length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            events.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + n]))
            pos += 12 + n + 4
    return events


def test_scalars_and_samples_match_the_run_files(tmp_path, corpus_file, capsys):
    run, logdir = tmp_path / "run", tmp_path / "tb"
    rc = main(["train", str(corpus_file), "--preset", "tiny", "--out", str(run), "--quiet",
               "--max-steps", "12", "--eval-every", "4", "--tensorboard", str(logdir)])
    assert rc == 0, capsys.readouterr().err
    scalars, texts = {}, {}
    for ev in read_events(logdir):
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                scalars[(v.tag, ev.step)] = v.simple_value
            elif v.HasField("tensor"):
                texts[ev.step] = v.tensor.string_val[0].decode()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) >= 3
    for rec in records:
        assert scalars[("metrics/val_loss", rec["step"])] == pytest.approx(rec["val_loss"],
                                                                           rel=1e-6)
        assert scalars[("metrics/lr", rec["step"])] == pytest.approx(rec["lr"], rel=1e-6)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["step"] in texts for s in samples)
    first = samples[0]["text"].splitlines()[0]
    assert first.strip() in texts[samples[0]["step"]]


def test_without_tensorboardx_the_error_is_one_line(tmp_path, corpus_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    rc = main(["train", str(corpus_file), "--preset", "tiny", "--out", str(tmp_path / "r"),
               "--quiet", "--tensorboard", str(tmp_path / "tb")])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install tensorboardX" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()                     # refused before the run started


class FakeWriter:
    def __init__(self, fresh):
        self.bptt_fresh, self.scalars, self.texts = fresh, [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step, value))

    def add_text(self, tag, text, step):
        self.texts.append((step, text))

    def flush(self):
        pass


@pytest.mark.parametrize("fresh", [True, False])
def test_mirror_skips_lines_already_logged_and_partial_lines(tmp_path, fresh):
    from bptt.charlm.tensorboard import Mirror

    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "val_loss": 2.0, "grad_norm": {"mean": 1.0, "max": 3.0}}\n')
    writer = FakeWriter(fresh)
    mirror = Mirror(writer, tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "val_loss": 1.5, "clipped": true, "note": "x"}\n{"step": 3, "va')
    mirror.sync()
    steps = sorted({s for _, s, _ in writer.scalars})
    assert steps == ([1, 2] if fresh else [2])               # the partial line waits
    if fresh:
        assert ("metrics/grad_norm/max", 1, 3.0) in writer.scalars
    assert not any(tag.endswith(("clipped", "note")) for tag, _, _ in writer.scalars)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('l_loss": 1.2}\n')
    mirror.sync()
    assert ("metrics/val_loss", 3, 1.2) in writer.scalars
