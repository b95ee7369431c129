"""Benchmark bptt against PyTorch CPU, each library in its own long-lived worker process.

    python -m bptt.bench                      # both BLAS settings, all cases (several minutes)
    python -m bptt.bench --quick              # two small shapes, 3 rounds
    python -m bptt.bench --cases 100x64x256x256 --cells lstm --dtypes float32 --json out.json
    python -m bptt.bench --markdown table.md  # as markdown; --render out.json: a saved run

Phases, one module each: ``cases`` (what is timed: shapes, data, each side's callable, through
bptt's public API), ``workers`` (one process per library and BLAS setting, JSON over pipes),
``timing`` (rounds, GEMM peak and peak memory inside a worker), ``tables`` (records, console and
markdown), ``cli`` (the run).

Method. For every BLAS setting ("as-set": the environment, with OPENBLAS_CORETYPE pinned to
Haswell where it is not set; "unset": OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed in the
worker processes only) a bptt worker and a PyTorch worker are started and stay alive for the
whole run, so warm-up and caches stay but no threads are shared. Each case is prepared (built and
warmed up) in every worker, then timed in rounds that alternate between the workers, the order
reversing every round, with a pause after each round so that the last worker's spinning threads
go to sleep. A round repeats the call for >= ``--min-round`` seconds. The table gives the median
time per call over the rounds, with min and max; ratio = torch_time / bptt_time (> 1: bptt is
faster). Each worker reports which BLAS kernels it runs (threadpoolctl) and the bptt worker its
GEMM peak. Peak memory is measured in a fresh process per case and library.
"""

from bptt.bench.cases import (
    CELLS,
    DTYPES,
    ISSUE_SHAPES,
    MODES,
    QUICK_SHAPES,
    SHAPES,
    gemm_flops,
    gemm_only_callable,
    make_data,
)
from bptt.bench.cli import build_parser, main, parse_shape
from bptt.bench.tables import markdown

__all__ = ["CELLS", "DTYPES", "ISSUE_SHAPES", "MODES", "QUICK_SHAPES", "SHAPES", "build_parser",
           "gemm_flops", "gemm_only_callable", "main", "make_data", "markdown", "parse_shape"]
