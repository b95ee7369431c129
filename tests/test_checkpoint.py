"""Checkpoints: safetensors + JSON, atomic (a kill at any moment leaves one loadable), no pickle."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import bptt.charlm.checkpoint as ck
from bptt.charlm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _arrays(step: int) -> dict:
    return {"param/w": np.full((64, 64), step, dtype=np.float32),
            "opt/w/m": np.arange(10, dtype=np.float64) * step,
            "state/0/h": np.full((2, 3), -step, dtype=np.float32)}


def test_round_trip_keeps_last_and_best(tmp_path):
    rng = np.random.default_rng(0)
    meta = {"step": 3, "rng": rng.bit_generator.state, "loss": float("inf")}
    save_checkpoint(tmp_path, _arrays(3), meta, best=True)
    save_checkpoint(tmp_path, _arrays(5), {"step": 5}, best=False)
    last, arrays, _ = load_checkpoint(tmp_path, "last")
    best, barrays, _ = load_checkpoint(tmp_path, "best")
    assert last["step"] == 5 and best["step"] == 3
    for k, v in _arrays(5).items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype
    np.testing.assert_array_equal(barrays["param/w"], _arrays(3)["param/w"])
    assert best["loss"] is None                                # JSON stays standard
    r2 = np.random.Generator(np.random.PCG64())
    r2.bit_generator.state = best["rng"]                       # 128-bit ints survive JSON
    assert r2.random() == rng.random()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(files) == 2                                     # last and best, nothing else
    assert load_checkpoint(tmp_path)[0]["step"] == 3           # auto = best


def test_failure_between_temp_write_and_replace_keeps_the_previous_checkpoint(tmp_path,
                                                                               monkeypatch):
    save_checkpoint(tmp_path, _arrays(1), {"step": 1})
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("last.json"):
            raise OSError("simulated crash before the commit")
        return real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, _arrays(2), {"step": 2})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    meta, arrays, _ = load_checkpoint(tmp_path, "last")
    assert meta["step"] == 1
    np.testing.assert_array_equal(arrays["param/w"], _arrays(1)["param/w"])
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]   # no temp file left
    save_checkpoint(tmp_path, _arrays(3), {"step": 3})                # next save cleans up
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1
    assert load_checkpoint(tmp_path, "last")[0]["step"] == 3


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {src!r})
    from bptt.charlm.checkpoint import save_checkpoint
    run = sys.argv[1]
    step = 0
    while True:
        step += 1
        arrays = {{"param/w": np.full((256, 256), step, dtype=np.float32)}}
        save_checkpoint(run, arrays, {{"step": step}}, best=step % 3 == 0)
        print(step, flush=True)
""")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_a_kill_during_saves_leaves_a_consistent_checkpoint(tmp_path, delay):
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(src=SRC))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE)
    assert proc.stdout.readline()                    # at least one save completed
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for which in ("last", "best"):
        if which == "best" and not (run / "best.json").exists():
            continue
        meta, arrays, _ = load_checkpoint(run, which)
        assert np.all(arrays["param/w"] == meta["step"])          # arrays belong to the JSON


def test_damaged_or_foreign_checkpoints_are_clear_errors(tmp_path):
    save_checkpoint(tmp_path, _arrays(1), {"step": 1})
    meta = json.loads((tmp_path / "last.json").read_text())
    apath = tmp_path / meta["arrays"]
    blob = bytearray(apath.read_bytes())
    blob[-1] ^= 0xFF
    apath.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path)
    apath.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a bptt checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "last.json").write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such run"):
        load_checkpoint(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(empty)
