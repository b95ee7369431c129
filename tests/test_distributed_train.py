"""``mpiexec -n 2 bptt train``: the same training as 1 process, only process 0 writes, run
directories move between world sizes, failures stop the job, bad setups are one line.

Every run is a subprocess with a timeout; the tests skip (saying why) without mpi4py/mpiexec."""

from __future__ import annotations

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

from test_distributed import MPI_SKIP, _env, _mpiexec

pytestmark = pytest.mark.skipif(MPI_SKIP is not None, reason=f"multi-process tests: {MPI_SKIP}")

BASE = ["--preset", "tiny", "--batch", "4", "--seq-len", "16", "--eval-every", "10",
        "--sample-chars", "0", "--quiet"]


def bptt(args: list[str], n: int = 1, timeout: float = 90, prefix: list[str] | None = None):
    """``bptt ARGS`` on n processes (n = 1: no mpiexec at all); (rc, stdout, stderr)."""
    cmd = [sys.executable, *(prefix or ["-m", "bptt"]), *args]
    if n > 1:
        cmd = [_mpiexec(), "-n", str(n), *cmd]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                       env=_env())
    return p.returncode, p.stdout, p.stderr


def arrays_of(run: Path) -> dict[str, np.ndarray]:
    from bptt.charlm.checkpoint import load_checkpoint

    _, arrays, _ = load_checkpoint(run, "last")
    return arrays


def assert_same_training(a: Path, b: Path, tol: float) -> None:
    """Parameters, optimizer slots and the carried state of last.json agree to ``tol`` (relative
    to each array's largest value); counters and the cursor exactly."""
    x, y = arrays_of(a), arrays_of(b)
    assert sorted(x) == sorted(y)
    assert any(k.startswith("state/") for k in x)              # the carried state is there
    for k in x:
        assert x[k].shape == y[k].shape and x[k].dtype == y[k].dtype, k
        scale = max(float(np.max(np.abs(x[k]))), 1e-30)
        err = float(np.max(np.abs(x[k].astype(np.float64) - y[k]))) / scale
        assert err <= tol, (k, err)
    ma, mb = (json.loads((r / "last.json").read_text()) for r in (a, b))
    for key in ("step", "epoch", "cursor", "chars"):
        assert ma["counters"][key] == mb["counters"][key], key


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from corpus_text import make_text

    path = tmp_path_factory.mktemp("corpus") / "verse.txt"
    path.write_text(make_text(6000), encoding="utf-8")
    return path


def common(corpus: Path, dtype: str = "float64") -> list[str]:
    return ["train", str(corpus), *BASE, "--max-steps", "20", "--dtype", dtype]


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory):
    """1 process, the whole batch, 20 steps, per dtype (shared by the tests below)."""
    runs = {}
    for dtype in ("float64", "float32"):
        out = tmp_path_factory.mktemp("one") / dtype
        rc, _, err = bptt([*common(corpus, dtype), "--out", str(out)])
        assert rc == 0, err
        runs[dtype] = out
    return runs


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 2e-5)])
def test_two_processes_train_like_one(tmp_path, corpus, one_process, dtype, tol):
    """K = 2 with half the batch each == 1 process with the whole batch after 20 steps."""
    rc, _, err = bptt([*common(corpus, dtype), "--out", str(tmp_path / "two")], n=2)
    assert rc == 0, err
    assert_same_training(one_process[dtype], tmp_path / "two", tol)
    rec = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rec] == [0, 10, 20]
    assert all(r["world_size"] == 2 for r in rec) and rec[-1]["allreduce_ms"] > 0
    one = [json.loads(x) for x in (one_process[dtype] / "metrics.jsonl").read_text()
           .splitlines()]
    for r1, r2 in zip(one, rec):
        assert r2["val_loss"] == pytest.approx(r1["val_loss"], rel=10 * tol)
        assert r2["chars"] == r1["chars"]
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("world: 2 processes, 2 streams each") == 1


GUARD = """
    # Process 1 of the job: refuse (and record) any write into the run directory.
    import os, sys
    run = os.path.realpath(sys.argv[1])
    if os.environ.get("PMI_RANK", "0") != "0":
        def hook(event, args):
            writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
            if event == "open" and (any(m in str(args[1] or "") for m in "wax+")
                                    or (args[2] or 0) & writing):
                path = args[0]
            elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "os.unlink"):
                path = args[0]
            else:
                return
            if isinstance(path, (str, bytes, os.PathLike)) and \\
                    os.path.realpath(os.fsdecode(path)).startswith(run):
                raise PermissionError(f"process 1 wrote {path}")
        sys.addaudithook(hook)
    from bptt.cli import main
    sys.exit(main(sys.argv[2:]))
"""


def test_only_process_0_writes_and_the_run_moves_between_world_sizes(tmp_path, corpus,
                                                                     one_process):
    """Process 1 writing anything into RUN would fail the job (an audit hook); the 2-process run
    directory then samples, scores, reports and resumes on 1 process, and a 1-process run resumes
    on 2: both end where an uninterrupted 1-process run ends (float64, to 1e-12)."""
    guard = tmp_path / "guard.py"
    guard.write_text(textwrap.dedent(GUARD))
    ref = common(corpus)
    two = tmp_path / "two"
    rc, _, err = bptt([*ref, "--out", str(two), "--stop-at", "10"], n=2,
                      prefix=[str(guard), str(two)])
    assert rc == 0, err
    rc, out, err = bptt(["sample", str(two), "--length", "40", "--seed", "1"])
    assert rc == 0 and len(out.strip()) > 0, err
    rc, out, err = bptt(["score", str(two), str(corpus), "--json"])
    assert rc == 0 and json.loads(out)["nats_per_char"] > 0, err
    rc, _, err = bptt(["report", str(two)])
    assert rc == 0 and (two / "report.html").stat().st_size > 0, err
    rc, _, err = bptt(["train", "--resume", str(two), "--quiet"])           # 2 -> 1
    assert rc == 0, err
    assert_same_training(one_process["float64"], two, 1e-12)

    one = tmp_path / "one"
    rc, _, err = bptt([*ref, "--out", str(one), "--stop-at", "10"])
    assert rc == 0, err
    rc, _, err = bptt(["train", "--resume", str(one), "--quiet"], n=2,       # 1 -> 2
                      prefix=[str(guard), str(one)])
    assert rc == 0, err
    assert_same_training(one_process["float64"], one, 1e-12)


def test_bad_setups_are_one_line_and_write_nothing(tmp_path, corpus):
    out = tmp_path / "bad"
    rc, _, err = bptt(["train", str(corpus), *BASE, "--batch", "5", "--out", str(out)],
                      n=2)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--batch 5 does not split over 2 processes" in lines[0], err
    assert not out.exists()

    # different options on the two processes (MPMD: one command line per process)
    def argv(lr: str) -> list[str]:
        return [sys.executable, "-m", "bptt", "train", str(corpus), *BASE, "--out",
                str(out), "--lr", lr]

    cmd = [_mpiexec(), "-n", "1", *argv("0.01"), ":", "-n", "1", *argv("0.02")]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=_env())
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "different options" in lines[0] and "lr" in lines[0], p.stderr
    assert not out.exists()


def test_a_killed_process_stops_the_job_and_the_checkpoint_stays(tmp_path, corpus):
    run = tmp_path / "run"
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "bptt", "train", str(corpus),
           "--preset", "tiny", "--batch", "4", "--seq-len", "16", "--max-steps", "100000",
           "--eval-every", "5", "--sample-chars", "0", "--quiet", "--out", str(run)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:              # until a checkpoint after step 0
            time.sleep(0.2)
            try:
                if json.loads((run / "last.json").read_text())["step"] >= 10:
                    break
            except (OSError, ValueError, KeyError):
                pass
        log = (run / "train.log").read_text()
        world = next(line for line in log.splitlines() if line.startswith("world: "))
        pid1 = int(world.split("rank 1 pid ")[1].split()[0])
        os.kill(pid1, signal.SIGKILL)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=30)
        stopped_in = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0 and stopped_in < 10
    assert f"PID {pid1}" in out + err                   # the launcher names the dead process
    meta = json.loads((run / "last.json").read_text())
    assert meta["step"] >= 10
    rc, _, err = bptt(["sample", str(run), "--length", "20"])
    assert rc == 0, err
    rc, _, err = bptt(["train", "--resume", str(run), "--max-steps", str(meta["step"] + 5),
                       "--quiet"])
    assert rc == 0, err


FAULT = """
    # Process 1 raises in the middle of training (in its 6th all-reduce call).
    import os, sys
    if os.environ.get("PMI_RANK", "0") == "1":
        from bptt.distributed import charlm
        calls = [0]
        inner = charlm.StepAllreduce.__call__

        def faulty(self, *a, **k):
            calls[0] += 1
            if calls[0] == 6:
                raise RuntimeError("injected fault")
            return inner(self, *a, **k)
        charlm.StepAllreduce.__call__ = faulty
    from bptt.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_a_process_that_raises_stops_the_job_with_one_line(tmp_path, corpus):
    fault = tmp_path / "fault.py"
    fault.write_text(textwrap.dedent(FAULT))
    run = tmp_path / "run"
    t0 = time.monotonic()
    rc, _out, err = bptt(["train", str(corpus), *BASE, "--max-steps", "50", "--eval-every", "2",
                         "--out", str(run)], n=2, prefix=[str(fault)], timeout=60)
    assert rc != 0 and time.monotonic() - t0 < 40
    ours = [line for line in err.splitlines() if "injected fault" in line]
    assert len(ours) == 1 and "process rank 1 of 2" in ours[0], err
    assert json.loads((run / "last.json").read_text())["step"] == 4      # the last checkpoint
    rc, _, err = bptt(["sample", str(run), "--length", "20"])
    assert rc == 0, err
