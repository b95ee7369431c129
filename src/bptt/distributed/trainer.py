"""``bptt train`` on K processes: process 0 builds or resumes the run and shares it, every
process trains its streams, and the trainer's clock, stop and evaluation decisions come from
numbers all processes share.

    trainer = start_parallel(args, cfg, build, world())   # build(console) on process 0 only
    trainer.run()                       # the Trainer calls its DataParallel (trainer.dp)

Process 0 alone touches the run directory. The others receive, by broadcast, everything a resume
would read from it (configuration, encoded corpus, parameters, optimizer state, carried state,
counters, RNG, rollback snapshot), so no shared file system is needed and no other process can
write a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import cast

import numpy as np

from bptt.charlm.clock import Clock
from bptt.charlm.console import Console
from bptt.distributed import World, WorldError, broadcast
from bptt.distributed.charlm import (
    Reduced,
    StepAllreduce,
    StreamShard,
    check_same,
    evaluate_split,
    gather_carried,
    in_sync,
    slice_carried,
    stream_rows,
)

SNAP = "snapshot/"


class NullConsole(Console):
    """The console of processes other than 0: says nothing (process 0 speaks for the job)."""

    def info(self, msg: str) -> None:
        pass

    def warn(self, msg: str) -> None:
        pass

    def open_bar(self, total, initial=0, unit="step") -> None:
        pass


class ElsewhereRunDir:
    """The run directory as a process other than 0 sees it: its path (for messages) and
    nothing to write (process 0 owns every file; a write here would be a bug)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise RuntimeError(f"RunDir.{name} called on MPI process other than 0; only process 0 "
                           f"writes the run directory")


class SharedClock(Clock):
    """A ``Clock`` whose every decision (stop, evaluate by minutes, the time-budgeted learning
    rate) reads process 0's clock as of the last all-reduce, so all processes decide alike.

    Process 0 keeps its own wall clock (``real``) for what it records; the others' local
    timings are kept only for their own use."""

    def __init__(self, cfg, w: World, counters: Callable):
        self._shared = (0.0, 0.0, 0.0)       # process 0's (elapsed_s, last_step_s, last_eval_s)
        self._local = [0.0, 0.0]             # this process's last_step_s, last_eval_s
        self._eval_end = 0.0
        self.w, self._counters = w, counters
        super().__init__(cfg)
        self._t0, self._e0 = time.perf_counter(), 0.0

    def start(self) -> None:
        super().start()
        self._t0, self._e0 = time.perf_counter(), self._counters().elapsed_s
        self._shared = (self._e0, 0.0, 0.0)

    def real(self) -> float:
        return self._e0 + (time.perf_counter() - self._t0)

    def local(self) -> tuple[float, float, float]:
        """What process 0 sends with each all-reduce."""
        return (self.real(), self._local[0], self._local[1])

    def agree(self, shared: tuple) -> None:
        self._shared = tuple(shared)

    def elapsed(self, counters) -> float:
        return self._shared[0]

    def sync(self, counters) -> None:
        counters.elapsed_s = self.real() if self.w.is_root else self._shared[0]
        self.mark = time.perf_counter()

    def add_eval(self, counters, seconds: float) -> None:
        self._local[1] = seconds
        if self.w.is_root:
            counters.elapsed_s = self.real()

    @property
    def last_step_s(self) -> float:
        return self._shared[1]

    @last_step_s.setter
    def last_step_s(self, v: float) -> None:
        self._local[0] = v

    @property
    def last_eval_s(self) -> float:
        return self._shared[2]

    @last_eval_s.setter
    def last_eval_s(self, v: float) -> None:
        self._local[1] = v

    @property
    def last_eval_end(self) -> float:
        return self._eval_end

    @last_eval_end.setter
    def last_eval_end(self, v: float) -> None:
        self._eval_end = self._shared[0]          # the shared time, whatever the caller holds


class DataParallel:
    """The trainer's link to the other processes (a ``Trainer`` has one when K > 1)."""

    def __init__(self, w: World, trainer):
        self.w = w
        cfg = trainer.cfg
        self.lo, self.hi = stream_rows(cfg.batch, w)
        trainer.batcher = StreamShard(trainer.batcher, self.lo, self.hi)
        for st in (trainer.state, trainer.snapshot):
            st.carried = self.local_rows(st.carried, cfg.batch)
        self.reduce = StepAllreduce(w, trainer.model.params)
        self.clock = SharedClock(cfg, w, lambda: trainer.counters)
        self.stop = False                  # some process asked to stop (agreed)
        self.i_seconds = 0.0               # all-reduce seconds since the last evaluation
        self.i_steps = 0
        self.last_ms = 0.0
        self.dropout_seed = cfg.seed
        self.threads = "BLAS threads as the environment sets them"

    @property
    def is_root(self) -> bool:
        return self.w.is_root

    def local_rows(self, carried, N: int):
        """This process's rows of a carried state (as loaded: all N rows)."""
        if carried is None or carried[0][0].shape[0] != N:
            return carried
        return slice_carried(carried, self.lo, self.hi)

    def dropout_rng(self, step: int) -> np.random.Generator:
        """The dropout masks of ``step`` on this process: keyed by (seed, step, rank), so a
        resumed run draws the same masks without any saved generator state."""
        return np.random.default_rng([self.dropout_seed, 3, step, self.w.rank])

    def step(self, grads, loss: float, chars: int, stop_requested: bool) -> Reduced:
        """The step's one all-reduce (``grads`` None when this process failed)."""
        with np.errstate(all="ignore"):
            r = self.reduce(grads, loss, chars, stop_requested, self.clock.local())
        self.clock.agree(r.clock)
        self.stop = self.stop or r.stop
        self.i_seconds += r.seconds
        self.i_steps += 1
        self.last_ms = 1e3 * r.seconds
        return r

    def combine(self, local, chars: int, stop_requested: bool):
        """The trainer's local (loss, grads, final) or failure string -> the global mean
        (grads in place), or the failure if any process failed (the same on every process)."""
        failed = isinstance(local, str)
        r = self.step(None if failed else local[1], math.nan if failed else local[0], chars,
                      stop_requested)
        if r.failed:
            return local if failed else "a non-finite loss or gradient on another process"
        return r.loss, local[1], local[2]

    def record(self, params: dict, console: Console) -> dict:
        """The evaluation's world fields (and the parameter check); resets the interval."""
        self.resync(params, console)
        ms = 1e3 * self.i_seconds / self.i_steps if self.i_steps else None
        self.i_seconds, self.i_steps = 0.0, 0
        return {"world_size": self.w.size, "allreduce_ms": ms}

    def eval_suffix(self, rec: dict) -> str:
        ms = rec.get("allreduce_ms")
        return f" | {self.w.size} processes" + (f", all-reduce {ms:.1f} ms/step" if ms else "")

    def bar(self) -> str:
        return f", {self.w.size} procs, all-reduce {self.last_ms:.1f} ms"

    def evaluate(self, model, ids: np.ndarray, max_chars: int) -> float:
        from bptt.charlm.data import EVAL_SEQ, EVAL_STREAMS

        return evaluate_split(model, ids, self.w, max_chars, EVAL_STREAMS, EVAL_SEQ)

    def resync(self, params: dict, console: Console) -> None:
        """At each evaluation: if the processes' parameters ever differ (an MPI whose reduction
        is not bit-identical on every process), take process 0's and say so."""
        if not in_sync(params, self.w):
            broadcast(params, w=self.w)
            console.warn("the processes' parameters had drifted apart by rounding; process 0's "
                         "were broadcast to all")

    @contextlib.contextmanager
    def gathered(self, *states):
        """Collective: within the block, on process 0, the states' carried hidden state holds
        all N streams (what a checkpoint stores); yields whether this process writes."""
        self.w.idle_barrier()                  # process 0 may still be sampling and plotting
        full = [gather_carried(st.carried, self.w) for st in states]
        if not self.is_root:
            yield False
            return
        local = [st.carried for st in states]
        try:
            for st, f in zip(states, full):
                st.carried = f
            yield True
        finally:
            for st, c in zip(states, local):
                st.carried = c

    def describe(self) -> list[str]:
        me = self.w.allgather_json([os.getpid(), socket.gethostname()])
        ranks = ", ".join(f"rank {r} pid {p} on {h}" for r, (p, h) in enumerate(me))
        return [f"world: {self.w.size} processes, {self.hi - self.lo} streams each, "
                f"{self.threads}; {ranks}"]


# ---------------------------------------------------------------- starting together

def start_parallel(args, cfg, build: Callable, w: World):
    """``bptt train``'s data-parallel start: the processes' options compared, the batch split
    checked, then ``build(console)`` (start or resume) on process 0 and the trainer shared."""
    from bptt import __version__

    options = {k: v for k, v in vars(args).items() if k != "func"}
    check_same({**options, "bptt_version": __version__}, w, "options")
    if cfg is not None:
        stream_rows(cfg.batch, w)
    threads = share_cores(w)

    def on_root():
        if cfg is None:                            # resume: the run's batch, before any work
            batch = peek_batch(args.resume)
            if batch is not None:
                stream_rows(batch, w)
        return build(Console(quiet=args.quiet))

    trainer = start_together(w, on_root, follower)
    trainer.dp.threads = threads
    return trainer


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share_cores(w: World) -> str:
    """Give each process its share of the node's cores as BLAS threads (unless the environment
    already sets a thread count): K processes x the default all-core thread pools would
    oversubscribe the node, where a BLAS step can run ten times slower. Returns what was done."""
    if any(v in os.environ for v in THREAD_VARS):
        return "BLAS threads as the environment sets them"
    from mpi4py import MPI

    local = w.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()     # processes on this node
    cpus = os.cpu_count() or 1
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    n = mine if mine < cpus else max(1, cpus // local)              # bound: its own cores
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return (f"BLAS threads not set (threadpoolctl is not installed; set "
                f"OPENBLAS_NUM_THREADS={n})")
    threadpool_limits(limits=n, user_api="blas")
    return f"{n} BLAS thread{'s' if n > 1 else ''} each"


def peek_batch(run_dir) -> int | None:
    """The --batch of the run in ``run_dir`` (None if it cannot tell: resume will say why)."""
    try:
        batch = json.loads((Path(run_dir) / "last.json").read_text())["train"]["batch"]
        return batch if isinstance(batch, int) and batch > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_together(w: World, build: Callable, follower: Callable):
    """Process 0 runs ``build()`` (start or resume: every file is its business) and shares the
    trainer's state; the others make theirs with ``follower(meta, arrays, console)``. An error
    on process 0 is raised on every process as a ``WorldError`` (printed once)."""
    from bptt.cli import UserError, os_error_message

    err, trainer = None, None
    if w.is_root:
        try:
            trainer = build()
        except OSError as e:
            err = os_error_message(e)
        except (ValueError, UserError, WorldError) as e:   # CorpusError, CheckpointError, ...
            err = " ".join(str(e).split())
    w.idle_barrier()                                     # the others sleep while 0 builds
    err = w.bcast_json(err)
    if err is not None:
        raise WorldError(err)
    meta = w.bcast_json(share_meta(trainer) if w.is_root else None)
    arrays = w.broadcast_arrays(share_arrays(trainer) if w.is_root else None)
    if not w.is_root:
        trainer = follower(meta, arrays, NullConsole(quiet=True))
    assert trainer is not None                   # built on the root (or err was raised)
    trainer.dp = DataParallel(w, trainer)
    trainer.clock = trainer.dp.clock
    return trainer


def share_meta(trainer) -> dict:
    st, snap = trainer.state, trainer.snapshot
    return {"train": asdict(trainer.cfg), "model": trainer.model.config.to_dict(),
            "vocab": trainer.corpus.vocab.to_json(),
            "state": st.meta(), "snapshot": snap.meta(), "path": str(trainer.path)}


def share_arrays(trainer) -> dict[str, np.ndarray]:
    arrays = {**trainer.state.arrays(), **trainer.snapshot.arrays(SNAP)}
    arrays["corpus"] = np.ascontiguousarray(trainer.corpus.ids)
    return arrays


def _rng(state: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = state
    return rng


def follower(meta: dict, arrays: dict[str, np.ndarray], console: Console):
    """The Trainer of a process other than 0, from what process 0 shared (no run directory)."""
    from bptt.charlm.config import TrainConfig
    from bptt.charlm.rundir import RunDir
    from bptt.charlm.state import Counters, TrainState
    from bptt.charlm.text import EncodedCorpus, Vocab
    from bptt.charlm.trainer import Trainer
    from bptt.nn import LanguageModel, LMConfig
    from bptt.optim import make_optimizer

    cfg = TrainConfig(**meta["train"])
    model = LanguageModel(LMConfig(**meta["model"]), np.random.default_rng(0))
    opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())

    def state_of(part: dict, params: dict, prefix: str) -> TrainState:
        st = TrainState(params, opt.init(params), None, Counters(**part["counters"]),
                        _rng(part["rng"]))
        st.opt_state["step"] = int(part["opt_step"])
        st.load_arrays(arrays, cfg.layers, prefix)
        return st

    state = state_of(meta["state"], model.params, "")
    snapshot = state_of(meta["snapshot"], {k: v.copy() for k, v in model.params.items()}, SNAP)
    corpus = EncodedCorpus(arrays["corpus"], Vocab.from_json(meta["vocab"]), [])
    # A stand-in with the RunDir methods a follower's Trainer calls (it writes no file).
    run = cast(RunDir, ElsewhereRunDir(meta["path"]))
    return Trainer(cfg, run, console, corpus, model, opt, state, snapshot, [])
