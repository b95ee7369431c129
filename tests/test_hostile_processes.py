"""A hostile user, part 3: processes. Two writers at once (one wins, the other is refused in one
line), readers during training, SIGKILL at random moments (the run always resumes), and a full
disk (a 1 MiB tmpfs; skipped when not root or the mount fails)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from corpus_text import make_text
from hostile import TINY, bptt_process, cli, finish, metric_steps, refused, tree


def test_two_trainings_into_one_directory_one_wins_the_other_is_refused(tmp_path, corpus):
    run = tmp_path / "run"
    slow = [*TINY, "--max-steps", "40", "--eval-every", "10"]
    a = bptt_process("train", corpus, "--out", run, *slow, "--seed", "1")
    time.sleep(0.05)
    b = bptt_process("train", corpus, "--out", run, *slow, "--seed", "2")
    (ra, ea), (rb, eb) = finish(a), finish(b)
    assert sorted([ra, rb]) == [0, 2], (ea, eb)
    loser = eb if rb == 2 else ea
    assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser
    assert "in use" in loser or "already holds a run" in loser
    assert metric_steps(run) == [0, 10, 20, 30, 40]


def test_two_resumes_of_one_run_one_wins_and_readers_keep_working(run):
    slow = ["--max-steps", "60", "--eval-every", "10"]
    a = bptt_process("train", "--resume", run, *slow, "--quiet")
    time.sleep(0.3)
    b = bptt_process("train", "--resume", run, *slow, "--quiet")
    rc, _, err = cli(["sample", run, "--length", "5", "--checkpoint", "last"])   # a reader
    assert rc == 0, err
    (ra, ea), (rb, eb) = finish(a), finish(b)
    assert sorted([ra, rb]) == [0, 2], (ea, eb)
    steps = metric_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 60


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kill_9_at_a_random_moment_leaves_a_run_that_resumes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    text = tmp_path / "big.txt"
    text.write_text(make_text(400_000, seed=seed), encoding="utf-8")   # encoding takes a moment
    run = tmp_path / "run"
    args = ["train", text, "--out", run, *TINY, "--max-steps", "30", "--eval-every", "3",
            "--eval-chars", "300"]
    p = bptt_process(*args)
    time.sleep(float(rng.uniform(0.3, 2.5)))
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    if (run / "last.json").exists():
        rc, err = finish(bptt_process("train", "--resume", run, "--quiet"))
    else:                                  # killed before the first checkpoint: start again
        rc, err = finish(bptt_process(*args))
    assert rc == 0, err
    leftovers = [p.name for p in run.rglob(".*.tmp-*")]
    assert leftovers == []
    steps = metric_steps(run)
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
    rc, err = finish(bptt_process("train", text, "--out", small_disk / "run", *TINY))
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
