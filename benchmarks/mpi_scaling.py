"""Data-parallel training over MPI: measured throughput on this machine and a scaling model.

    python benchmarks/mpi_scaling.py measure        # 1 process x 2 threads vs 2 x 1, + step times
    python benchmarks/mpi_scaling.py table          # the scaling table from the measured JSON
    python benchmarks/mpi_scaling.py all --markdown docs/distributed_tables.md

``measure`` times the trainer's step (forward + backward over T = 128, the per-character
scaling, the one all-reduce of the flat gradient buffer, global-norm clipping, Adam) with the
library API of ``bptt.distributed``, for the default model (2-layer LSTM, H 256, E 64) at a
global batch of 32 streams: once as 1 process with 2 BLAS threads, once as ``mpiexec -n 2`` with
1 thread each (16 streams per process); then the 1-thread step time at per-process batches of
32, 16, 8, 4, 2, 1 for both models (the default and the shakespeare preset, H 384), which is what
a process of a larger job would spend. Results go to benchmarks/results/mpi_scaling.json.

``table`` models a ring all-reduce, 2 (K - 1) / K * bytes / bandwidth (bandwidth term only; the
latency term 2 (K - 1) alpha adds about 1.3 ms at K = 64 for alpha = 10 us), at 10 and
100 Gbit/s, against the measured step time, for K = 2..64:

    weak scaling    every process keeps 32 streams (global batch 32 K):
                    efficiency = t(32) / (t(32) + t_allreduce(K))
    strong scaling  the global batch stays 32 (32 / K streams per process, K <= 32):
                    efficiency = t(32) / (K * (t(32 / K) + t_allreduce(K)))
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mpi_scaling.json"
MODELS = {"default": dict(hidden=256, embed=64), "shakespeare": dict(hidden=384, embed=64)}
V, T, GLOBAL_N = 65, 128, 32          # tiny-shakespeare's vocabulary; the presets' batch shape
KS = (2, 4, 8, 16, 32, 64)
BANDWIDTHS = (10, 100)                # Gbit/s


def _model(name: str, rng):
    from bptt.nn import LanguageModel, LMConfig

    return LanguageModel(LMConfig(vocab_size=V, layers=2, cell="lstm", dtype="float32",
                                  **MODELS[name]), rng)


def grad_bytes(name: str) -> int:
    """float32 bytes of the flat gradient buffer of the model (V = 65)."""
    import numpy as np

    m = _model(name, np.random.default_rng(0))
    return 4 * sum(int(p.size) for p in m.params.values())


# ---------------------------------------------------------------- measuring (worker side)

def worker(name: str, global_n: int, steps: int, warmup: int) -> dict:
    """Time ``steps`` training steps of ``name`` at a global batch of ``global_n`` streams,
    split over the MPI world; returns process 0's view (others return {})."""
    import numpy as np

    from bptt import distributed as dist
    from bptt.charlm.data import StreamBatcher
    from bptt.distributed.charlm import StepAllreduce, StreamShard, stream_rows
    from bptt.optim import clip_global_norm, make_optimizer

    w = dist.world()
    ids = np.random.default_rng(1).integers(0, V, global_n * T * (steps + warmup + 2) + 1)
    shard = StreamShard(StreamBatcher(ids.astype(np.uint8), global_n, T),
                        *stream_rows(global_n, w))
    model = _model(name, np.random.default_rng(0))
    dist.broadcast(model.params)
    opt = make_optimizer("adam", 1e-3)
    state = opt.init(model.params)
    reduce = StepAllreduce(w, model.params)
    carried, step_s, ar_s = None, [], []
    for k in range(warmup + steps):
        w.barrier()
        t0 = time.perf_counter()
        x, y = shard.batch(k)
        loss, grads, carried = model.loss_and_state(x, y, state=carried)
        for g in grads.values():
            g *= 1.0 / T
        r = reduce(grads, loss / T, x.size)
        clip_global_norm(grads, 5.0)
        opt.update(model.params, grads, state, 1e-3)
        if k >= warmup:
            step_s.append(time.perf_counter() - t0)
            ar_s.append(r.seconds)
    times = w.gather_json([step_s, ar_s])
    if not w.is_root:
        return {}
    step = [max(ts[0][i] for ts in times) for i in range(steps)]       # the slowest process
    ar = [sum(ts[1][i] for ts in times) / len(times) for i in range(steps)]
    med = sorted(step)[steps // 2]
    return {"model": name, "processes": w.size, "global_batch": global_n,
            "local_batch": global_n // w.size, "steps": steps, "step_s_median": med,
            "step_s_all": step, "allreduce_s_median": sorted(ar)[steps // 2],
            "chars_per_s": global_n * T / med, "grad_bytes": reduce.flat.n_values * 4}


def allreduce_alone(repeats: int = 20) -> dict:
    """The Allreduce of each model's flat float32 gradient buffer alone, after a barrier (no
    waiting for a slower process): median seconds on process 0."""
    import numpy as np

    from bptt import distributed as dist

    w = dist.world()
    out = {}
    for name in MODELS:
        buf = np.ones(grad_bytes(name) // 4, dtype=np.float32)
        times = []
        for _ in range(repeats):
            w.barrier()
            t0 = time.perf_counter()
            w.allreduce_(buf)
            times.append(time.perf_counter() - t0)
        out[name] = sorted(times)[repeats // 2]
    return out if w.is_root else {}


def _run(procs: int, threads: int, args: list[str], timeout: float = 600) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, __file__, "worker", *args]
    if procs > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec"), "-n",
               str(procs), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode:
        raise SystemExit(f"worker failed ({' '.join(cmd)}):\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def train_runs(steps: int, corpus: str | None, rounds: int = 2) -> list[dict]:
    """``bptt train`` itself (default model, batch 32 x 128) as 1 process x 2 BLAS threads and
    as ``mpiexec -n 2`` x 1 thread, interleaved ``rounds`` times; chars/s and the all-reduce
    time per step from the run's last metrics record (the steps after step 0)."""
    import tempfile

    out = []
    for _ in range(rounds):
        for procs, threads in ((1, 2), (2, 1)):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "OMP_NUM_THREADS": str(threads),
                       "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                       "PYTHONPATH": str(ROOT / "src")}
                cmd = [sys.executable, "-m", "bptt", "train", *([corpus] if corpus else []),
                       "--max-steps", str(steps), "--eval-every", str(10 * steps),
                       "--eval-chars", "20000", "--sample-chars", "0", "--quiet",
                       "--out", f"{tmp}/run"]
                if procs > 1:
                    mpiexec = Path(sys.executable).parent / "mpiexec"
                    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(procs),
                           *cmd]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env,
                                   check=False)
                if p.returncode:
                    raise SystemExit(f"bptt train failed: {p.stderr[-2000:]}")
                rec = json.loads(Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()[-1])
            r = {"processes": procs, "threads": threads, "steps": steps,
                 "chars_per_s": rec["chars_per_s"], "allreduce_ms": rec.get("allreduce_ms"),
                 "step_ms": 1e3 * 32 * 128 / rec["chars_per_s"]}
            out.append(r)
            print(f"bptt train, {procs} x {threads}: {r['chars_per_s']:.0f} chars/s, step "
                  f"{r['step_ms']:.0f} ms, all-reduce {r['allreduce_ms'] or 0:.1f} ms",
                  file=sys.stderr)
    return out


def measure(steps: int) -> dict:
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_before": os.getloadavg()}, "T": T, "V": V, "runs": [],
           "step_time_1_thread": {}}
    for procs, threads in ((1, 2), (2, 1), (1, 2), (2, 1)):     # interleaved, twice
        r = _run(procs, threads, ["default", str(GLOBAL_N), str(steps)])
        r["threads"] = threads
        out["runs"].append(r)
        print(f"{procs} process(es) x {threads} thread(s): step {1e3 * r['step_s_median']:.0f} ms"
              f", all-reduce {1e3 * r['allreduce_s_median']:.1f} ms, "
              f"{r['chars_per_s']:.0f} chars/s", file=sys.stderr)
    out["allreduce_alone_s"] = _run(2, 1, ["allreduce"])
    for name in MODELS:
        for n in (32, 16, 8, 4, 2, 1):
            r = _run(1, 1, [name, str(n), str(max(3, steps // 2))])
            out["step_time_1_thread"].setdefault(name, {})[n] = r["step_s_median"]
            print(f"{name} batch {n}: {1e3 * r['step_s_median']:.0f} ms", file=sys.stderr)
    data = next((p / "shared/data/tinyshakespeare/input.txt" for p in ROOT.parents
                 if (p / "shared/data/tinyshakespeare/input.txt").is_file()), None)
    out["train"] = train_runs(max(10, steps * 2), str(data) if data else None)
    out["machine"]["load_after"] = os.getloadavg()
    return out


# ---------------------------------------------------------------- the scaling model

def ring_seconds(nbytes: int, K: int, gbit: float) -> float:
    return 2 * (K - 1) / K * nbytes * 8 / (gbit * 1e9)


def tables(res: dict) -> str:
    lines = []
    runs = res["runs"]
    lines += ["| processes x BLAS threads | global batch | per process | step (ms, median) | "
              "all-reduce (ms) | all-reduce share | chars/s |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['processes']} x {r['threads']} | {r['global_batch']} x {T} | "
                     f"{r['local_batch']} | {1e3 * r['step_s_median']:.0f} | "
                     f"{1e3 * r['allreduce_s_median']:.1f} | "
                     f"{100 * r['allreduce_s_median'] / r['step_s_median']:.1f} % | "
                     f"{r['chars_per_s']:,.0f} |")
    lines.append("")
    if res.get("train"):
        lines += ["`bptt train` itself (default model, batch 32 x 128, the run's chars/s after "
                  "step 0; all-reduce from metrics.jsonl):", "",
                  "| processes x BLAS threads | chars/s | step (ms) | all-reduce (ms/step) |",
                  "|---|---|---|---|"]
        for r in res["train"]:
            ar = f"{r['allreduce_ms']:.1f}" if r["allreduce_ms"] else "-"
            lines.append(f"| {r['processes']} x {r['threads']} | {r['chars_per_s']:,.0f} | "
                         f"{r['step_ms']:.0f} | {ar} |")
        lines.append("")
    st = res["step_time_1_thread"]
    lines += ["Step time of one process with 1 BLAS thread by per-process batch (ms):", "",
              "| model | " + " | ".join(f"N = {n}" for n in st["default"]) + " |",
              "|---|" + "---|" * len(st["default"])]
    for name, row in st.items():
        lines.append(f"| {name} | " + " | ".join(f"{1e3 * v:.0f}" for v in row.values()) + " |")
    for name in MODELS:
        nbytes = grad_bytes(name)
        t32 = st[name]["32"] if "32" in st[name] else st[name][32]
        alone = res.get("allreduce_alone_s", {}).get(name)
        here = (f"; its Allreduce alone between 2 processes on this machine (shared memory, "
                f"after a barrier): {1e3 * alone:.1f} ms") if alone else ""
        lines += ["", f"**{name}** model (2-layer LSTM, H {MODELS[name]['hidden']}, E 64, "
                      f"V {V}): {nbytes / 4:,.0f} parameters, {nbytes / 1e6:.2f} MB of float32 "
                      f"gradient per step; measured step {1e3 * t32:.0f} ms at 32 streams "
                      f"x {T} steps, 1 thread{here}.", "",
                  "| K | ring all-reduce 10 Gbit/s (ms) | 100 Gbit/s (ms) | weak scaling eff. "
                  "10 / 100 | strong scaling (global batch 32): streams per process | "
                  "eff. 10 / 100 |", "|---|---|---|---|---|---|"]
        for K in KS:
            ar = [ring_seconds(nbytes, K, g) for g in BANDWIDTHS]
            weak = [t32 / (t32 + a) for a in ar]
            if GLOBAL_N % K == 0 and GLOBAL_N // K >= 1:
                n = GLOBAL_N // K
                tn = st[name].get(str(n), st[name].get(n))
                strong = " / ".join(f"{100 * t32 / (K * (tn + a)):.0f} %" for a in ar)
                per = str(n)
            else:
                strong, per = "- (batch < K)", f"{GLOBAL_N / K:g}"
            lines.append(f"| {K} | {1e3 * ar[0]:.2f} | {1e3 * ar[1]:.3f} | "
                         f"{100 * weak[0]:.0f} % / {100 * weak[1]:.0f} % | {per} | {strong} |")
    m = res["machine"]
    lines += ["", f"Measured on {m['cpus']} CPUs ({m['platform']}); load average before "
                  f"{m['load_before'][0]:.1f}, after {m['load_after'][0]:.1f} (the machine was "
                  f"shared)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["measure", "table", "all", "worker", "allreduce"])
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.what == "worker":
        if a.rest[0] == "allreduce":
            r = allreduce_alone()
        else:
            name, n, steps = a.rest[0], int(a.rest[1]), int(a.rest[2])
            r = worker(name, n, steps, warmup=1)
        if r:
            print(json.dumps(r))
        return 0
    if a.what in ("measure", "all"):
        res = measure(a.steps)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1))
    res = json.loads(RESULTS.read_text())
    if a.what == "allreduce":                  # re-measure only the all-reduce alone
        res["allreduce_alone_s"] = _run(2, 1, ["allreduce"])
        RESULTS.write_text(json.dumps(res, indent=1))
    text = tables(res)
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
