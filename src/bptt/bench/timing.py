"""Clocks and meters that run inside a worker process: rounds of calls, GEMM peak, peak memory.

A round repeats a call enough times to last ``min_round`` seconds and gives the time per call.
The GEMM peak is the best of five n^3 matrix products through NumPy's BLAS. Peak memory of a
training step: after a small warm-up step the kernel's resident-set high-water mark is reset
(/proc/self/clear_refs), one full-size step runs, and the increase of the high-water mark over
the resident set before the step is the answer (inputs and weights, made before, are not counted;
outputs, caches, activations and gradients are). Where /proc is not available, ru_maxrss deltas
are used instead, which can under-count.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Timing:
    """Seconds per call over the rounds of one side."""

    median: float
    min: float
    max: float
    calls_per_round: int

    @classmethod
    def of(cls, samples: list[float], calls: int) -> Timing:
        return cls(statistics.median(samples), min(samples), max(samples), calls)


def calls_for(fn: Callable[[], Any], min_round: float) -> int:
    """Warm ``fn`` up and return how many calls make a round of at least ``min_round`` s."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, math.ceil(min_round / one))


def round_time(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def gemm_peak(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n^3 matrix product through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def _proc_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory(build: Callable[[tuple[int, int, int, int]], Callable[[], Any]],
                shape: tuple[int, int, int, int]) -> dict:
    """The high-water-mark increase (bytes) of one call of ``build(shape)``, after a warm-up
    call at a tiny shape with the same batch size class (N = 1 or not, so that the same engine
    path is imported and, for the compiled batch-1 path, compiled: a one-time cost per process,
    not the step's). Run it in a fresh process: freed memory a process keeps would hide the
    step's own."""
    import resource
    build((3, min(shape[1], 2), 4, 5))()            # imports, lazy initialisation
    step = build(shape)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                            # reset VmHWM to the current VmRSS
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    rss0 = _proc_kb("VmRSS") if method == "VmHWM" else None
    max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = step()                                 # noqa: F841  (kept alive until measured)
    hwm = _proc_kb("VmHWM") if method == "VmHWM" else None
    if hwm is not None and rss0 is not None:
        kb = hwm - rss0
    else:                                           # no /proc/self/status to read
        method = "ru_maxrss"
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max0
    return {"bytes": kb * 1024, "method": method}
