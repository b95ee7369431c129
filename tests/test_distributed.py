"""bptt.distributed: the flat buffer, the 1-process world, launcher detection, and (with mpi4py
and an mpiexec) real 2-process collectives, failures and the task suite spread over processes.

Every multi-process test runs ``mpiexec -n 2`` as a subprocess with a timeout, so a hang fails
the test instead of the CI job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bptt import distributed as dist
from bptt.distributed import FlatBuffer, World, WorldError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    MPI_SKIP = None if _mpiexec() else "no mpiexec on PATH or beside the Python executable"
except ImportError:
    MPI_SKIP = "mpi4py is not installed (pip install 'bptt[mpi]')"
needs_mpi = pytest.mark.skipif(MPI_SKIP is not None, reason=f"multi-process tests: {MPI_SKIP}")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "OMPI_", "MV2_", "SLURM_", "BPTT_MPI"))}
    env.update(PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def mpirun(n: int, args: list[str], timeout: float = 60, cwd=None, **env):
    """``mpiexec -n n python args...``; (returncode, stdout, stderr, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, *args], check=False,
                       capture_output=True, text=True, timeout=timeout, cwd=cwd,
                       env=_env(**env))
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


# ---------------------------------------------------------------- flat buffer

def _arrays(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {"Wx": rng.standard_normal((3, 8)).astype(dtype),
            "Wh": rng.standard_normal((2, 8)).astype(dtype),
            "b": rng.standard_normal(8).astype(dtype),
            "s": np.asarray(rng.standard_normal(), dtype=dtype)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_buffer_round_trip_keeps_values_and_dtype(dtype):
    a = _arrays(dtype)
    flat = FlatBuffer(a, extra=2)
    assert flat.size == 24 + 16 + 8 + 1 + 2 and flat.buffer.dtype == dtype
    buf = flat.pack(a)
    assert np.shares_memory(buf, flat.buffer)
    np.testing.assert_array_equal(buf[:24], a["Wx"].ravel())
    back = flat.unpack()
    for k in a:
        assert back[k].dtype == a[k].dtype and back[k].shape == a[k].shape
        np.testing.assert_array_equal(back[k], a[k])
    out = {k: np.zeros_like(v) for k, v in a.items()}
    flat.unpack(out=out)
    for k in a:
        np.testing.assert_array_equal(out[k], a[k])
    flat.extras[:] = [3.0, 4.0]
    assert buf[-2:].tolist() == [3.0, 4.0]
    views = flat.views()
    views["b"][0] = 123.0
    assert flat.unpack()["b"][0] == 123.0


def test_flat_buffer_mixed_dtypes_reduce_in_the_wider_type():
    a = {"x": np.ones(3, np.float32) / 3, "y": np.arange(2, dtype=np.float64) / 7}
    flat = FlatBuffer(a)
    assert flat.dtype == np.float64
    back = flat.unpack(flat.pack(a))
    assert back["x"].dtype == np.float32 and back["y"].dtype == np.float64
    np.testing.assert_array_equal(back["x"], a["x"])
    np.testing.assert_array_equal(back["y"], a["y"])


def test_flat_buffer_rejects_other_layouts():
    a = _arrays()
    flat = FlatBuffer(a)
    with pytest.raises(ValueError, match="shape"):
        flat.pack({**a, "b": np.zeros(9)})
    with pytest.raises(ValueError, match="missing"):
        flat.pack({k: v for k, v in a.items() if k != "b"})
    with pytest.raises(TypeError, match="floating-point"):
        FlatBuffer({"i": np.arange(3)})
    assert FlatBuffer(a).signature() == flat.signature()
    assert FlatBuffer({**a, "b": np.zeros(9)}).signature() != flat.signature()


# ---------------------------------------------------------------- the 1-process world

def test_one_process_world_is_the_identity(monkeypatch):
    monkeypatch.setattr(dist, "_WORLD", None)
    for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("BPTT_MPI", raising=False)
    w = dist.world()
    assert (w.rank, w.size, w.is_root, w.comm) == (0, 1, True, None)
    g = _arrays()
    before = {k: v.copy() for k, v in g.items()}
    dist.allreduce_sum(g)
    dist.allreduce_mean(g, weight=5.0)
    dist.broadcast(g)
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])
    assert dist.reduce_sum([1.5, 2.0]).tolist() == [1.5, 2.0]
    assert w.allgather_json({"a": 1}) == [{"a": 1}] and w.bcast_json([2]) == [2]


def test_launcher_detection(monkeypatch):
    for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
              "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_STEP_NUM_TASKS", "BPTT_MPI"):
        monkeypatch.delenv(k, raising=False)
    assert dist.launcher_request() == (None, None, 0) and not dist.launched()
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    assert dist.launcher_request() == (8, "OMPI_COMM_WORLD_SIZE", 3) and dist.launched()
    monkeypatch.setenv("BPTT_MPI", "0")
    assert not dist.launched()


def test_missing_mpi4py_under_a_launcher_is_one_line_with_the_fix(tmp_path, monkeypatch):
    """A launcher asked for 2 processes and mpi4py cannot be imported: world() and the CLI say
    so in one line (the CLI once, from launcher rank 0) and name the install command."""
    fake = tmp_path / "nompi" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    env = _env(PMI_RANK="0", PMI_SIZE="2")
    env["PYTHONPATH"] = str(fake.parent) + os.pathsep + env["PYTHONPATH"]
    p = subprocess.run([sys.executable, "-m", "bptt", "suite", "--quick", "--only", "adding",
                        "--out", str(tmp_path / "s")], check=False, capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "mpi4py is not installed" in lines[0] and "pip install 'bptt[mpi]'" in lines[0]
    assert "PMI_SIZE=2" in lines[0]
    env["PMI_RANK"] = "1"                  # the other process exits as quietly
    p = subprocess.run([sys.executable, "-m", "bptt", "suite", "--quick", "--only", "adding"],
                       check=False, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2 and p.stderr == ""
    assert not (tmp_path / "s").exists()

    monkeypatch.setitem(sys.modules, "mpi4py", None)          # the library call alike
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.delenv("BPTT_MPI", raising=False)
    with pytest.raises(WorldError, match=r"asking for 4 processes .*pip install"):
        dist._make_world()


@needs_mpi
def test_an_mpi4py_of_another_mpi_than_the_launcher_is_refused(tmp_path):
    """Open MPI's mpirun asked for 2 processes, but mpi4py's MPI (MPICH) sees a world of 1:
    each process would run the whole job alone, so the CLI refuses in one line."""
    env = _env(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
    p = subprocess.run([sys.executable, "-m", "bptt", "suite", "--quick", "--only", "adding",
                        "--out", str(tmp_path / "s")], check=False, capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 2
    ours = [line for line in p.stderr.splitlines() if line.startswith("bptt suite: error:")]
    assert len(ours) == 1 and "mpi4py sees a world of 1" in ours[0], p.stderr
    assert not (tmp_path / "s").exists()


def test_fail_in_one_process_prints_and_returns_the_code(capsys):
    assert dist.fail("bptt x: error: broken", 3, World()) == 3
    assert capsys.readouterr().err == "bptt x: error: broken\n"


# ---------------------------------------------------------------- 2 processes

COLLECTIVES = """
    import json, sys
    import numpy as np
    from bptt import distributed as dist

    w = dist.world()
    calls = []
    inner = w.allreduce_
    w.allreduce_ = lambda buf: (calls.append(buf.size), inner(buf))[1]
    out = {"rank": w.rank, "size": w.size}
    for dt in ("float32", "float64"):
        rng = np.random.default_rng(w.rank)
        g = {"a": rng.standard_normal((4, 3)).astype(dt), "b": rng.standard_normal(5).astype(dt)}
        mine = {k: v.copy() for k, v in g.items()}
        n0 = len(calls)
        dist.allreduce_sum(g)
        out[dt + "_sum_calls"] = len(calls) - n0
        out[dt + "_dtype"] = str(g["a"].dtype)
        out[dt + "_sum"] = {k: v.tolist() for k, v in g.items()}
        g = {k: v.copy() for k, v in mine.items()}
        dist.allreduce_mean(g, weight=1.0 + w.rank)          # weights 1 and 2
        out[dt + "_wmean"] = {k: v.tolist() for k, v in g.items()}
        out[dt + "_mine"] = {k: v.tolist() for k, v in mine.items()}
    p = {"w": np.full((2, 2), float(w.rank + 7)), "m": np.full(3, float(-w.rank))}
    dist.broadcast(p)
    out["bcast"] = {k: v.tolist() for k, v in p.items()}
    out["sums"] = dist.reduce_sum([w.rank + 1.0, 10.0]).tolist()
    arrays = w.broadcast_arrays({"z": np.arange(6, dtype=np.uint8).reshape(2, 3)}
                                if w.is_root else None)
    out["bcast_arrays"] = [str(arrays["z"].dtype), arrays["z"].tolist()]
    try:
        bad = {"a": np.zeros(3 + w.rank)}
        dist.allreduce_sum(bad)
        out["layout"] = "no error"
    except dist.WorldError as e:
        out["layout"] = str(e)
    with open(f"out.{w.rank}.json", "w") as f:    # a file each: stdout lines can interleave
        json.dump(out, f)
"""


@needs_mpi
def test_collectives_on_two_processes(tmp_path):
    rc, _out, err, _ = mpirun(2, [script(tmp_path, COLLECTIVES)], timeout=60, cwd=tmp_path)
    assert rc == 0, err
    res = [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in res] == [0, 1] and res[0]["size"] == 2
    for dt, tol in (("float32", 1e-6), ("float64", 1e-14)):
        m0, m1 = res[0][dt + "_mine"], res[1][dt + "_mine"]
        for k in ("a", "b"):
            a0, a1 = np.array(m0[k]), np.array(m1[k])
            for r in res:
                assert r[dt + "_sum_calls"] == 1          # one Allreduce for the whole dict
                assert r[dt + "_dtype"] == dt
                np.testing.assert_allclose(r[dt + "_sum"][k], a0 + a1, rtol=tol, atol=tol)
                np.testing.assert_allclose(r[dt + "_wmean"][k], (a0 + 2 * a1) / 3,
                                           rtol=tol, atol=tol)
    for r in res:
        assert r["bcast"] == {"w": [[7.0, 7.0], [7.0, 7.0]], "m": [0.0, 0.0, 0.0]}
        assert r["sums"] == [3.0, 20.0]
        assert r["bcast_arrays"] == ["uint8", [[0, 1, 2], [3, 4, 5]]]
        assert "different arrays" in r["layout"]


RAISES = """
    import sys, time
    from bptt import distributed as dist

    w = dist.world()
    if w.rank == 1:
        sys.exit(dist.fail("job: error: rank one broke"))
    w.barrier()                       # process 0 would wait here forever without the abort
    print("unreachable")
"""

KILLED = """
    import os, time
    import numpy as np
    from bptt import distributed as dist

    w = dist.world()
    with open(f"pid.{w.rank}", "w") as f:
        f.write(str(os.getpid()))
    buf = np.ones(1000)
    for step in range(2_000):
        if w.rank == 1 and step == 20:
            os.kill(os.getpid(), 9)
        time.sleep(0.005)
        w.allreduce_(buf)
        buf[:] = 1.0
    print("finished")
"""


@needs_mpi
def test_a_process_that_raises_stops_every_process_with_one_line(tmp_path):
    rc, out, err, secs = mpirun(2, [script(tmp_path, RAISES)], timeout=30)
    assert rc != 0 and secs < 15 and "unreachable" not in out
    ours = [line for line in err.splitlines() if "rank one broke" in line]
    assert len(ours) == 1 and "process rank 1 of 2" in ours[0], err


@needs_mpi
def test_a_killed_process_stops_the_others_within_seconds(tmp_path):
    rc, out, err, secs = mpirun(2, [script(tmp_path, KILLED)], timeout=30, cwd=tmp_path)
    assert rc != 0 and secs < 15 and "finished" not in out
    pid = (tmp_path / "pid.1").read_text()
    # MPICH's launcher names the dead process by PID (and host); its rank is that PID's.
    said = out + err                      # Hydra writes its banner to stdout
    assert f"PID {pid}" in said and "signal 9" in said.lower(), said


@needs_mpi
def test_suite_spreads_its_runs_over_the_processes(tmp_path):
    out_dir = tmp_path / "suite"
    rc, out, err, _ = mpirun(2, ["-m", "bptt", "suite", "--quick", "--only", "adding",
                                 "--out", str(out_dir)], timeout=120)
    assert rc == 0, err
    report = json.loads((out_dir / "results.json").read_text())
    assert report["processes"] == 2 and report["jobs"] == 1
    from bptt.tasks.suite import SUITE
    expected = [(r.task, r.cell, r.T) for r in SUITE if r.task == "adding"]
    assert [(r["task"], r["cell"], r["T"]) for r in report["results"]] == expected
    assert all("metric" in r for r in report["results"])
    assert "[process 0/2]" in err and "[process 1/2]" in err        # both ran some
    assert out.count("| adding |") == len(expected)          # the table once, from process 0
    assert "2 MPI processes" in (out_dir / "results.md").read_text()


@needs_mpi
def test_task_and_one_process_commands_under_mpiexec_say_why_not_once(tmp_path):
    rc, _out, err, _ = mpirun(2, ["-m", "bptt", "task", "adding", "--quick"], timeout=60)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "mpiexec -n 2 bptt suite --only adding" in lines[0], err
    rc, out, err, _ = mpirun(2, ["-m", "bptt", "report", str(tmp_path)], timeout=60)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bptt report runs in one process" in lines[0], err


USER_LOOP = """
    import sys
    import numpy as np
    from bptt import distributed as dist
    from bptt.charlm.data import StreamBatcher
    from bptt.distributed.charlm import (StepAllreduce, StreamShard, evaluate_split,
                                         gather_carried, stream_rows)
    from bptt.nn import LanguageModel, LMConfig
    from bptt.optim import clip_global_norm, make_optimizer

    dtype, out = sys.argv[1], sys.argv[2]
    w = dist.world()
    ids = np.random.default_rng(0).integers(0, 20, 5000).astype(np.uint8)
    N, T = 8, 16
    shard = StreamShard(StreamBatcher(ids, N, T), *stream_rows(N, w))
    cfg = LMConfig(vocab_size=20, hidden=16, layers=2, cell="lstm", embed=8, dtype=dtype)
    model = LanguageModel(cfg, np.random.default_rng(w.rank))      # different on every rank
    dist.broadcast(model.params)                                   # ... until rank 0's win
    opt = make_optimizer("adam", 1e-2)
    state = opt.init(model.params)
    dist.broadcast({f"{k}/{s}": a for k, slots in state["slots"].items()
                    for s, a in slots.items()})                    # views: in place
    reduce = StepAllreduce(w, model.params)
    carried = None
    for k in range(20):
        x, y = shard.batch(k)
        loss, grads, carried = model.loss_and_state(x, y, state=carried)
        for g in grads.values():
            g *= 1.0 / T
        r = reduce(grads, loss / T, x.size)
        clip_global_norm(grads, 0.5)
        opt.update(model.params, grads, state, 1e-2)
    val = evaluate_split(model, ids[:3000], w, N=6, T=64)
    full = gather_carried(carried, w)
    if w.is_root:
        np.savez(out, val=val, loss=r.loss, h=full[0][0], c=full[1][1],
                 **{"p_" + k: v for k, v in model.params.items()})
"""


@needs_mpi
@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 2e-5)])
def test_user_loop_on_two_processes_equals_one_process(tmp_path, dtype, tol):
    """20 Adam steps with the library API: 2 processes x 4 streams == 1 process x 8 streams
    (parameters, loss, split validation, gathered carried state), to rounding of the dtype."""
    job = script(tmp_path, USER_LOOP)
    one = subprocess.run([sys.executable, job, dtype, str(tmp_path / "one.npz")], check=False,
                         capture_output=True, text=True, timeout=60, env=_env())
    assert one.returncode == 0, one.stderr
    rc, _, err, _ = mpirun(2, [job, dtype, str(tmp_path / "two.npz")], timeout=60)
    assert rc == 0, err
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert b[k].dtype == a[k].dtype and b[k].shape == a[k].shape, k
        scale = max(float(np.max(np.abs(a[k]))), 1e-30)
        assert float(np.max(np.abs(a[k] - b[k]))) / scale <= tol, k
    assert float(a["val"]) > 0 and float(a["loss"]) > 0
