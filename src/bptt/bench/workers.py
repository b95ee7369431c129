"""Each library in its own long-lived worker process, spoken to in JSON lines over pipes.

A worker (``python -m bptt.bench.workers ROLE THREADS``, ROLE "bptt" or "torch") imports one
library, limits its threads, and then answers requests from the parent, one JSON object a line:

    {"op": "info"}                              pid, BLAS libraries and kernels, environment
    {"op": "peak", "dtype": "float32"}          GEMM peak (GFLOP/s) through NumPy in this process
    {"op": "prepare", "key": K, "spec": {...}}  build a callable (``cases.build``), warm it up
                                                -> {"calls": calls per round}
    {"op": "round", "key": K}                   one round -> {"s": seconds per call}
    {"op": "drop", "key": K}                    forget it
    {"op": "quit"}

Warm-up, caches and thread pools stay alive between rounds, as in a user's process, and no
thread is shared with the other library. Peak memory is measured in a fresh process per case
(``--memory``), so that memory a long-lived process keeps after earlier cases cannot hide it.

A ``Setting`` is the environment the workers start with: the BLAS variables as set, or with
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed (for the worker processes only).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SRC = str(Path(__file__).resolve().parents[2])          # the folder holding the bptt package


@dataclass
class Setting:
    """A named environment for worker processes: variables to set and variables to remove."""

    name: str
    set_vars: dict = field(default_factory=dict)
    unset_vars: tuple = ()
    env_extra: dict = field(default_factory=dict)      # e.g. BPTT_FAST for an engine A/B

    def env(self, threads: int) -> dict:
        env = dict(os.environ)
        for k in self.unset_vars:
            env.pop(k, None)
        env.update(self.set_vars)
        env.update(self.env_extra)
        env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                   else "")
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
        return env


def standard_settings(pin: str = "Haswell") -> list[Setting]:
    """"as-set": the environment as it is; where OPENBLAS_CORETYPE is not set here, it is pinned
    to ``pin`` (what this project's environment sets for its users and CI). "unset": both BLAS
    variables removed, so OpenBLAS picks its kernels for the CPU."""
    as_set = Setting("as-set")
    if not os.environ.get("OPENBLAS_CORETYPE") and pin:
        as_set.set_vars = {"OPENBLAS_CORETYPE": pin}
    return [as_set, Setting("unset", unset_vars=BLAS_VARS)]


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, role: str, setting: Setting, threads: int, timeout: float = 900.0):
        self.role, self.setting, self.timeout = role, setting, timeout
        # Open for the worker's lifetime (its stderr); close() closes it.
        self._err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bptt.bench.workers", role, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
            env=setting.env(threads), bufsize=1)
        self.info = self.ask({"op": "info"})

    def ask(self, req: dict) -> dict:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None         # Popen(stdin=PIPE, stdout=PIPE)
        try:
            stdin.write(json.dumps(req) + "\n")
            stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(self._failure(req)) from None
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        line = stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise RuntimeError(self._failure(req))
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"{self.role} worker ({self.setting.name}): {out['error']}")
        return out

    def _failure(self, req: dict) -> str:
        self._err.seek(0)
        tail = self._err.read()[-600:].strip()
        return (f"{self.role} worker ({self.setting.name}) gave no answer to {req['op']!r}"
                f" within {self.timeout:g} s: {tail or 'no message'}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError):
                self.ask({"op": "quit"})
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._err.close()


def measure_memory(role: str, spec: dict, setting: Setting, threads: int,
                   timeout: float = 600.0) -> dict | None:
    """Peak memory of one training step of ``spec`` in a fresh ``role`` process."""
    cmd = [sys.executable, "-m", "bptt.bench.workers", role, str(threads), "--memory",
           json.dumps(spec)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=setting.env(threads),
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        print(f"  memory worker failed ({role} {spec}): {r.stderr.strip()[-300:]}",
              file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# inside the worker


def blas_info() -> list[dict] | None:
    """The thread-pool libraries loaded here (threadpoolctl), with OpenBLAS's kernel name."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("internal_api", "architecture", "num_threads", "version", "threading_layer")
    return [{k: i.get(k) for k in keys if i.get(k) is not None} for i in threadpool_info()]


def _limit_blas(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return                                     # OPENBLAS_NUM_THREADS is set in the env
    threadpool_limits(limits=threads, user_api="blas")


def _setup(role: str, threads: int):
    if role == "torch":
        import torch
        torch.set_num_threads(threads)
    else:
        torch = None
    import numpy  # noqa: F401  (loads NumPy's BLAS, to be limited below)
    _limit_blas(threads)
    return torch


def _info(role: str, torch) -> dict:
    import numpy as np
    info = {"pid": os.getpid(), "role": role, "numpy": np.__version__,
            "env": {k: os.environ.get(k) for k in BLAS_VARS}, "blas": blas_info()}
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    else:
        from bptt.functional import engine
        info["fast"] = engine.fast_status()
    return info


def serve(role: str, threads: int) -> None:
    """Answer requests on stdin until "quit"; replies go to the original stdout only."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                                  # anything else printed goes to stderr
    sys.stdout = sys.stderr
    from bptt.bench import cases, timing
    torch = _setup(role, threads)
    fns: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "quit":
                break
            if op == "info":
                rep = _info(role, torch)
            elif op == "peak":
                rep = {"gflops": timing.gemm_peak(req["dtype"])}
            elif op == "prepare":
                fn = cases.build(torch, req["spec"])
                calls = timing.calls_for(fn, req.get("min_round", 0.05))
                fns[req["key"]] = (fn, calls)
                rep = {"calls": calls}
            elif op == "round":
                fn, calls = fns[req["key"]]
                rep = {"s": timing.round_time(fn, calls)}
            elif op == "drop":
                fns.pop(req["key"], None)
                gc.collect()
                rep = {}
            else:
                rep = {"error": f"unknown request {op!r}"}
        except Exception as e:                     # reported to the parent, which stops
            rep = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep) + "\n")


def memory_main(role: str, threads: int, spec: dict) -> None:
    from bptt.bench import cases, timing
    torch = _setup(role, threads)

    def build(shape):
        return cases.build(torch, {**spec, "shape": shape, "mode": "train"})
    print(json.dumps(timing.peak_memory(build, tuple(spec["shape"]))))


if __name__ == "__main__":
    _role, _threads = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 4 and sys.argv[3] == "--memory":
        memory_main(_role, _threads, json.loads(sys.argv[4]))
    else:
        serve(_role, _threads)
