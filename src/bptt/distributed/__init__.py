"""Data-parallel building blocks over MPI (mpi4py), the same code from 1 process to a cluster.

    from bptt.distributed import world, broadcast, allreduce_mean

    w = world()                        # rank, size; a 1-process world without mpiexec
    broadcast(model.params)            # every process starts from process 0's weights
    for step in ...:
        loss, grads = model.loss(x_local, y_local)      # x_local: this process's rows
        allreduce_mean(grads)          # ONE in-place Allreduce over a flat buffer
        opt.update(model.params, grads, state, lr)

Started with ``mpiexec -n K`` (or ``srun``), ``world()`` is MPI's COMM_WORLD through mpi4py;
started any other way it is a 1-process world and mpi4py is not even imported, so nothing here
costs anything in a plain run. A launcher that asks for more than one process while mpi4py is
missing (or is built against a different MPI than the launcher) is a one-line error naming the
fix. ``BPTT_MPI=0`` ignores the launcher, ``BPTT_MPI=1`` uses mpi4py even without one.

Failures: a process that raises calls ``fail`` (one line naming its rank, then MPI_Abort, which
stops every process); a process that is killed is noticed by the launcher, which stops the others
(MPICH's Hydra within about a second).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bptt.distributed.flat import FlatBuffer

__all__ = ["FlatBuffer", "World", "WorldError", "allreduce_mean", "allreduce_sum", "broadcast",
           "fail", "reduce_sum", "world"]

MPI_HINT = ("pip install 'bptt[mpi]' (mpi4py and the MPICH wheel), or on a cluster "
            "pip install mpi4py against the site's MPI")

# Environment variables launchers set: (variable holding the world size, or None, and the
# variable whose presence says "started by an MPI launcher").
_LAUNCHERS = (
    ("PMI_SIZE", "PMI_RANK"),                        # MPICH Hydra, Intel MPI, srun --mpi=pmi2
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),  # Open MPI
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),  # MVAPICH
    ("SLURM_STEP_NUM_TASKS", "PMIX_RANK"),           # srun --mpi=pmix
    (None, "PMIX_RANK"),
)


class WorldError(RuntimeError):
    """A problem every process found in the same way (raised on all of them): printed once by
    process 0, after which every process exits normally."""


def launcher_request() -> tuple[int | None, str | None, int]:
    """(requested world size or None when unknown, the variable that says so, this process's
    rank as the launcher numbers it) from the environment; (None, None, 0) when no MPI launcher
    started this process."""
    env = os.environ
    for size_var, marker in _LAUNCHERS:
        if marker in env:
            rank = int(env[marker]) if env[marker].isdigit() else 0
            if size_var and env.get(size_var, "").isdigit():
                return int(env[size_var]), size_var, rank
            return None, marker, rank
    return None, None, 0


def launched() -> bool:
    """True when an MPI launcher started this process (or BPTT_MPI=1), so ``world()`` would
    import mpi4py; False for a plain run (or BPTT_MPI=0)."""
    flag = os.environ.get("BPTT_MPI", "").strip()
    return flag == "1" or (flag != "0" and launcher_request()[1] is not None)


class World:
    """The processes of one job: ``rank`` in 0..``size``-1; ``comm`` is the mpi4py
    communicator, or None in a 1-process world (where every collective is the identity)."""

    def __init__(self, comm: Any = None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self._reducers: dict[str, FlatBuffer] = {}

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------ collectives on buffers

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` (contiguous) over every process, in place; returns it."""
        if self.comm is not None and self.size > 1:
            from mpi4py import MPI

            if not buf.flags.c_contiguous:
                raise ValueError("allreduce_ needs a contiguous buffer")
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def bcast_(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buf`` (contiguous, same shape and dtype everywhere) with root's."""
        if self.comm is not None and self.size > 1:
            self.comm.Bcast(buf, root=root)
        return buf

    # ------------------------------------------------------------ small JSON objects

    def bcast_json(self, obj: Any = None, root: int = 0) -> Any:
        """Root's JSON-serialisable ``obj`` on every process (no pickle)."""
        if self.comm is None or self.size == 1:
            return obj
        text = self.comm.bcast(json.dumps(obj) if self.rank == root else None, root=root)
        return json.loads(text)

    def allgather_json(self, obj: Any) -> list:
        """Every process's ``obj``, in rank order, on every process."""
        if self.comm is None or self.size == 1:
            return [obj]
        return [json.loads(t) for t in self.comm.allgather(json.dumps(obj))]

    def gather_json(self, obj: Any, root: int = 0) -> list | None:
        """Every process's ``obj`` in rank order on ``root``; None elsewhere."""
        if self.comm is None or self.size == 1:
            return [obj]
        out = self.comm.gather(json.dumps(obj), root=root)
        return None if out is None else [json.loads(t) for t in out]

    def barrier(self) -> None:
        if self.comm is not None and self.size > 1:
            self.comm.Barrier()

    def idle_barrier(self, poll_s: float = 0.005) -> None:
        """A barrier that waits asleep: MPI's blocking calls spin on the CPU, which on a full
        node slows the very process being waited for (process 0 encoding a corpus, writing a
        checkpoint, or another suite run). Every process must call it."""
        if self.comm is not None and self.size > 1:
            req = self.comm.Ibarrier()
            while not req.Test():
                time.sleep(poll_s)

    # ------------------------------------------------------------ arrays

    def reducer(self, like: Mapping[str, np.ndarray], extra: int = 0) -> FlatBuffer:
        """The cached flat buffer for this layout; the first use of a layout checks that every
        process has the same one (a mismatch would silently sum unrelated numbers)."""
        key = json.dumps([list(like), [list(np.shape(v)) for v in like.values()],
                          [str(np.asarray(v).dtype) for v in like.values()], extra])
        flat = self._reducers.get(key)
        if flat is None:
            flat = FlatBuffer(like, extra)
            sigs = self.allgather_json(flat.signature())
            if len(set(sigs)) != 1:
                bad = [r for r, s in enumerate(sigs) if s != sigs[0]]
                raise WorldError(f"the processes hold different arrays to reduce (ranks {bad} "
                                 f"differ from rank 0); every process must run the same model")
            self._reducers[key] = flat
        return flat

    def broadcast_arrays(self, arrays: Mapping[str, np.ndarray] | None,
                         root: int = 0) -> dict[str, np.ndarray]:
        """Root's dict of arrays on every process, built there from a JSON header (names,
        dtypes, shapes) and one Bcast per array; other processes pass None."""
        if self.comm is None or self.size == 1:
            return dict(arrays or {})
        mine: Mapping[str, np.ndarray] = {} if arrays is None else arrays   # read on root only
        spec = None
        if self.rank == root:
            spec = [[k, np.asarray(v).dtype.str, list(np.shape(v))] for k, v in mine.items()]
        spec = self.bcast_json(spec, root)
        out = {}
        for k, dt, shape in spec:
            a = np.ascontiguousarray(mine[k]) if self.rank == root else \
                np.empty(shape, dtype=np.dtype(dt))
            self.comm.Bcast(a, root=root)
            out[k] = a
        return out

    def abort(self, code: int = 1) -> None:
        if self.comm is not None and self.size > 1:
            self.comm.Abort(code)
        raise SystemExit(code)


_WORLD: World | None = None


def world() -> World:
    """This job's world (created on the first call): COMM_WORLD when an MPI launcher started
    the process (or ``BPTT_MPI=1``), else a 1-process world without importing mpi4py."""
    global _WORLD
    if _WORLD is None:
        _WORLD = _make_world()
    return _WORLD


def _make_world() -> World:
    if not launched():
        return World()
    size, var, _ = launcher_request()
    try:
        from mpi4py import MPI
    except ImportError:
        if size == 1:
            return World()
        if var is None:
            raise WorldError(f"BPTT_MPI=1 asks for MPI, but mpi4py is not installed; "
                             f"{MPI_HINT}") from None
        asked = f"{size} processes ({var}={size})" if size else f"MPI ({var} is set)"
        raise WorldError(f"this process was started by an MPI launcher asking for {asked}, but "
                         f"mpi4py is not installed; {MPI_HINT}; or set BPTT_MPI=0 to run "
                         f"every process on its own") from None
    comm = MPI.COMM_WORLD
    if size is not None and size > 1 and comm.Get_size() != size:
        lib = " ".join(MPI.Get_library_version().splitlines()[0].split())
        raise WorldError(f"the launcher started {size} processes ({var}={size}) but mpi4py sees a "
                         f"world of {comm.Get_size()}: mpi4py uses {lib}, which is not the "
                         f"launcher's MPI. Start with the mpiexec of mpi4py's MPI "
                         f"({os.path.dirname(sys.executable)}/mpiexec with the mpich wheel), or "
                         f"reinstall mpi4py against the launcher's MPI")
    return World(comm)


def current_size() -> int:
    """The size of the world if one was created, else 1 (does not create one)."""
    return 1 if _WORLD is None else _WORLD.size


def is_root_process() -> bool:
    """Rank 0 of the world if one was created, else of the launcher's numbering."""
    return (_WORLD.rank if _WORLD is not None else launcher_request()[2]) == 0


def _set_world(w: World | None) -> None:
    """Replace the cached world (tests)."""
    global _WORLD
    _WORLD = w


# ---------------------------------------------------------------- the user-loop API

def allreduce_sum(grads: Mapping[str, np.ndarray], w: World | None = None) -> dict:
    """Sum a params-style dict over every process, in place (one Allreduce on a flat buffer);
    returns the dict."""
    w = w or world()
    if w.size == 1:
        return dict(grads)
    flat = w.reducer(grads)
    w.allreduce_(flat.pack(grads))
    return flat.unpack(out=grads)


def allreduce_mean(grads: Mapping[str, np.ndarray], weight: float | None = None,
                   w: World | None = None) -> dict:
    """The mean of a params-style dict over every process, in place; returns the dict.

    Without ``weight`` the plain mean over processes. With ``weight`` (this process's share,
    e.g. its number of characters when its grads are a per-character mean) the weighted mean
    sum_r weight_r * grads_r / sum_r weight_r, which equals the mean over the global batch. The
    weight rides in an extra slot of the same buffer: still one Allreduce."""
    w = w or world()
    if w.size == 1:
        return dict(grads)
    flat = w.reducer(grads, extra=1)
    buf = flat.pack(grads)
    wt = 1.0 if weight is None else float(weight)
    if wt != 1.0:
        buf[:flat.n_values] *= wt
    flat.extras[0] = wt
    w.allreduce_(buf)
    total = float(flat.extras[0])
    if not total > 0:
        raise ValueError(f"the weights sum to {total}; at least one process must have weight > 0")
    buf[:flat.n_values] *= 1.0 / total
    return flat.unpack(out=grads)


def broadcast(arrays: Mapping[str, np.ndarray], root: int = 0, w: World | None = None) -> dict:
    """Overwrite every process's arrays with root's, in place (one Bcast on a flat buffer of
    the dict; the layouts must match); returns the dict. Works for parameters and for an
    optimizer's state slots alike."""
    w = w or world()
    if w.size == 1:
        return dict(arrays)
    flat = w.reducer(arrays)
    buf = flat.pack(arrays)
    w.bcast_(buf, root)
    return flat.unpack(out=arrays)


def reduce_sum(values: Sequence[float] | np.ndarray, w: World | None = None) -> np.ndarray:
    """Element-wise float64 sum of ``values`` over every process (e.g. a validation loss sum and
    a character count), on every process."""
    w = w or world()
    buf = np.array(values, dtype=np.float64).ravel()
    return w.allreduce_(buf)


def fail(message: str, code: int = 2, w: World | None = None) -> int:
    """Report ``message`` (one line) and stop. In a 1-process world print it and return
    ``code``; with more processes, name the rank and call MPI_Abort, which ends every process.

    A process other than 0 waits a second before printing: when every process hit the same
    error, process 0's abort ends them first, so the line appears once."""
    w = w if w is not None else (_WORLD or World())
    if w.size == 1:
        print(message, file=sys.stderr, flush=True)
        return code
    if w.rank != 0:
        time.sleep(1.0)
    print(f"{message} (process rank {w.rank} of {w.size}; stopping all processes)",
          file=sys.stderr, flush=True)
    w.abort(code)
    return code
