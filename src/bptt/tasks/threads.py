"""Limit the BLAS thread pool while training.

The matrices of these tasks are small (hidden sizes 32-128, batches of 16-64), where a second
BLAS thread gains little, and on a shared machine a busy-waiting BLAS thread pool can make a run
ten times slower. The task commands therefore default to one BLAS thread, through threadpoolctl
(installed with scikit-learn, part of the ``tasks`` extra); without it the setting is left
alone (set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS yourself).
"""

from __future__ import annotations

import contextlib


def blas_threads(n: int | None):
    """Context manager limiting BLAS to ``n`` threads (None or 0: leave as is)."""
    if not n:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                           # pragma: no cover - depends on the install
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")
