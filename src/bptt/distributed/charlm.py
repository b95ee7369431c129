"""Data parallelism for the character-LM trainer: which streams a process owns, the per-step
all-reduce, the split validation, and the world-size-independent form of the carried state.

The global batch of N streams (``--batch``) is split over the K processes: process r owns streams
r*N/K .. (r+1)*N/K - 1 of the one ``data.StreamBatcher`` every process builds alike, so the data a
step sees does not depend on K. Each process's gradient is a per-character mean over its own
streams; ``StepAllreduce`` weights it by the process's character count, sums, and divides by the
total, which is the 1-process mean over the global batch:

    g = sum_r chars_r * g_r / sum_r chars_r          (one Allreduce of one flat buffer)

The same buffer carries a few scalars that every process must agree on (the loss, whether some
process failed or was interrupted, process 0's clock), so a step costs one collective call.
Checkpoints hold the carried state of all N streams (gathered to process 0), so a run resumes
on any number of processes that divides N.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass

import numpy as np

from bptt.distributed import World, WorldError
from bptt.functional._validate import NonFiniteError

Carried = list | None          # per layer (h (N, H), c (N, H) or None)


def stream_rows(N: int, w: World) -> tuple[int, int]:
    """(lo, hi): the streams of the global batch of N that process ``w.rank`` owns."""
    if N % w.size:
        lower = max(w.size, N - N % w.size)
        raise WorldError(f"--batch {N} does not split over {w.size} processes; use a multiple "
                         f"of {w.size} (e.g. --batch {lower} or {lower + w.size})")
    n = N // w.size
    return w.rank * n, (w.rank + 1) * n


class StreamShard:
    """Streams lo..hi-1 of a ``StreamBatcher`` (same epochs, same batch index k)."""

    def __init__(self, batcher, lo: int, hi: int):
        self.base, self.lo, self.hi = batcher, lo, hi
        self.N, self.T, self.L = hi - lo, batcher.T, batcher.L
        self.steps_per_epoch = batcher.steps_per_epoch
        self.starts = batcher.starts[lo:hi]                          # (N_local,)
        self._cols = np.arange(batcher.T + 1, dtype=np.int64)       # (T+1,)

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) int64 (N_local, T): rows lo..hi-1 of the global batch k."""
        if not 0 <= k < self.steps_per_epoch:
            raise IndexError(f"batch {k} outside 0..{self.steps_per_epoch - 1}")
        idx = self.starts[:, None] + (k * self.T + self._cols)       # (N_local, T+1)
        chunk = np.asarray(self.base.ids[idx], dtype=np.int64)
        return chunk[:, :-1], chunk[:, 1:]


# ---------------------------------------------------------------- the step's all-reduce

@dataclass
class Reduced:
    loss: float            # the global per-character mean loss
    failed: bool           # some process could not compute its gradient
    stop: bool             # some process was asked to stop (Ctrl-C)
    clock: tuple           # process 0's (elapsed_s, last_step_s, last_eval_s)
    seconds: float         # time in the Allreduce call (waiting for the slowest included)


class StepAllreduce:
    """One Allreduce per step of [grads..., chars, chars * loss, failed, stop, clock x 3]."""

    N_EXTRA = 7

    def __init__(self, w: World, like: dict[str, np.ndarray]):
        self.w = w
        self.flat = w.reducer(like, extra=self.N_EXTRA)
        self.nbytes = self.flat.nbytes

    def __call__(self, grads: dict[str, np.ndarray] | None, loss: float, chars: int,
                 stop: bool = False, clock: tuple = (0.0, 0.0, 0.0)) -> Reduced:
        """``grads`` (per-character means over this process's streams; None when this process
        failed) are replaced in place by the global mean. ``clock`` counts only on process 0."""
        flat, n = self.flat, self.flat.n_values
        buf = flat.buffer
        failed = grads is None or not np.isfinite(loss)
        if failed:
            buf[:n] = 0.0
        else:
            assert grads is not None                 # not failed
            flat.pack(grads)
            if chars != 1:
                buf[:n] *= chars
        mine = flat.extras
        mine[0] = chars
        mine[1] = 0.0 if failed else chars * loss
        mine[2] = float(failed)
        mine[3] = float(stop)
        mine[4:7] = clock if self.w.is_root else (0.0, 0.0, 0.0)
        t0 = time.perf_counter()
        self.w.allreduce_(buf)
        seconds = time.perf_counter() - t0
        total, loss_sum, n_failed, n_stop = (float(v) for v in mine[:4])
        if n_failed == 0 and grads is not None:
            buf[:n] *= 1.0 / total
            flat.unpack(out=grads)
        return Reduced(loss_sum / total if n_failed == 0 else float("nan"), n_failed > 0,
                       n_stop > 0, tuple(float(v) for v in mine[4:7]), seconds)


# ---------------------------------------------------------------- validation

def evaluate_split(model, ids: np.ndarray, w: World, max_chars: int = 0, N: int = 64,
                   T: int = 256) -> float:
    """Mean nats per character of ``ids`` (the first ``max_chars`` if > 0), read as
    ``data.eval_chunks`` reads it (up to N streams, T steps a call, state carried), with the
    streams split over the processes and the sums reduced: the 1-process value, up to the order
    of the additions."""
    from bptt.charlm.sampling import nll_sum

    if max_chars:
        ids = ids[:max_chars]
    n = len(ids)
    total = 0.0
    count = 0
    if n >= 2:
        Ne = max(1, min(N, (n - 1) // T))
        L = (n - 1) // Ne
        lo, hi = w.rank * Ne // w.size, (w.rank + 1) * Ne // w.size
        starts = np.arange(lo, hi, dtype=np.int64) * L                  # (hi - lo,)
        state = None
        try:
            for s in range(0, L, T) if hi > lo else ():
                width = min(T, L - s)
                idx = starts[:, None] + (s + np.arange(width + 1, dtype=np.int64))
                chunk = np.asarray(ids[idx], dtype=np.int64)
                scores, state = model.logits(chunk[:, :-1], state)
                total += nll_sum(scores, chunk[:, 1:])
                count += chunk[:, 1:].size
        except (NonFiniteError, FloatingPointError):   # reported as a NaN by every process,
            total = math.nan                             # not raised by this one alone
    sums = np.array([total, count], dtype=np.float64)
    w.allreduce_(sums)
    return float(sums[0] / sums[1]) if sums[1] else float("nan")


# ---------------------------------------------------------------- carried state

def gather_carried(carried: Carried, w: World) -> Carried:
    """Every process's carried state (N_local rows each) stacked in rank order on process 0
    (N rows, the world-size-independent form a checkpoint stores); None elsewhere. A world of
    one returns ``carried`` itself."""
    if w.size == 1:
        return carried
    have = w.allgather_json(carried is not None)
    if not any(have):
        return None
    if not all(have):
        raise WorldError("the processes disagree on whether a hidden state is carried")
    assert carried is not None                       # every process carries one (have)
    out = []
    for h, c in carried:
        parts: list[np.ndarray | None] = []
        for a in (h, c):
            if a is None:
                parts.append(None)
                continue
            a = np.ascontiguousarray(a)
            full = np.empty((a.shape[0] * w.size, *a.shape[1:]), a.dtype) if w.is_root else None
            w.comm.Gather(a, full, root=0)
            parts.append(full)
        out.append(tuple(parts))
    return out if w.is_root else None


def slice_carried(carried: Carried, lo: int, hi: int) -> Carried:
    """Rows lo..hi-1 of a global carried state (copies)."""
    if carried is None:
        return None
    return [(h[lo:hi].copy(), None if c is None else c[lo:hi].copy()) for h, c in carried]


# ---------------------------------------------------------------- agreement

def check_same(options: dict, w: World, what: str = "options") -> None:
    """Raise ``WorldError`` (on every process) naming the first differing keys when the
    processes were started with different ``options`` (a JSON-serialisable dict)."""
    if w.size == 1:
        return
    text = json.dumps(options, sort_keys=True, default=str)
    digests = w.allgather_json(hashlib.sha256(text.encode()).hexdigest())
    if len(set(digests)) == 1:
        return
    everyone = w.allgather_json(json.loads(text))
    bad = next(r for r, d in enumerate(digests) if d != digests[0])
    theirs = everyone[bad]
    keys = sorted(k for k in set(everyone[0]) | set(theirs) if everyone[0].get(k) != theirs.get(k))
    shown = ", ".join(f"{k}: {everyone[0].get(k)!r} vs {theirs.get(k)!r}" for k in keys[:4])
    raise WorldError(f"the processes were started with different {what} (rank {bad} differs "
                     f"from rank 0 in {shown}); start every process with the same command line")


def params_digest(params: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k, v in params.items():
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:16]


def in_sync(params: dict[str, np.ndarray], w: World) -> bool:
    """True when every process holds bit-identical parameters (one small allgather)."""
    return w.size == 1 or len(set(w.allgather_json(params_digest(params)))) == 1
