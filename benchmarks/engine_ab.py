"""Engine A/B: the recurrence engine at a git revision against the working tree, in one process.

Both versions of ``bptt.functional`` run on the same data and weights (the benchmark's), in
alternating rounds (old, new, new, old, ...), each round repeating the call for >= 0.2 s; the
report gives each side's median time per call and the median of the per-round ratios
old / new (> 1: the working tree is faster). Interleaving in one process is what makes a few
per cent visible on a shared machine, where separate runs differ by more than that. (For an A/B
of the compiled fast path in separate worker processes, use ``python -m bptt.bench --fast-ab``.)

    python benchmarks/engine_ab.py HEAD~1                        # training steps, 2 threads
    python benchmarks/engine_ab.py HEAD~1 --mode infer --cells lstm --dtypes float32
    python benchmarks/engine_ab.py HEAD~1 --cases 100x64x256x256 --threads 1 --rounds 15

The revision's ``src/bptt`` is extracted with ``git archive`` into a temporary folder and
imported under another package name, so it must be a revision with the same functional API
(``recurrence_forward`` / ``recurrence_backward`` and the ``cells`` module).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bptt import bench  # noqa: E402  (after the path insert)


def load_revision(rev: str, into: Path):
    """Import ``src/bptt`` as it is at ``rev`` under the name ``bptt_ab_base``."""
    try:
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/bptt"],
                              check=True, capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"engine_ab: git archive {rev!r} failed: {e.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    (into / "src" / "bptt").rename(into / "bptt_ab_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("bptt_ab_base.functional")


def step_fn(F, cell: str, mode: str, d: dict):
    """One training step (forward + backward) or one inference pass of a ``functional`` module."""
    c = F.cells.LSTM if cell == "lstm" else F.cells.RNN
    rec = F.recurrence
    args = (d["x"], d["h0"], d["Wx"], d["Wh"], d["b"])
    if mode == "infer":
        return lambda: rec.recurrence_forward(c, *args, store=False)

    def train():
        _, _, cache = rec.recurrence_forward(c, *args)
        return rec.recurrence_backward(d["dh"], cache)
    return train


def ab(old, new, rounds: int, min_round: float) -> tuple[float, float, float]:
    """(old median s, new median s, median of per-round old/new) over interleaved rounds."""
    for f in (old, new):
        f()
    t0 = time.perf_counter()
    old()
    calls = max(1, int(min_round / max(time.perf_counter() - t0, 1e-7)))
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(rounds):
        order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for name, f in order:
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            times[name].append((time.perf_counter() - t0) / calls)
    ratios = [o / n for o, n in zip(times["old"], times["new"])]
    return statistics.median(times["old"]), statistics.median(times["new"]), \
        statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rev", help="the git revision to compare the working tree with")
    p.add_argument("--mode", choices=bench.MODES, default="train")
    p.add_argument("--cells", nargs="+", choices=bench.CELLS, default=list(bench.CELLS))
    p.add_argument("--dtypes", nargs="+", choices=bench.DTYPES, default=list(bench.DTYPES))
    p.add_argument("--cases", nargs="+", type=bench.parse_shape, metavar="TxNxDxH",
                   default=bench.SHAPES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--min-round", type=float, default=0.2)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=args.threads, user_api="blas")
    note = "threadpoolctl"
    with tempfile.TemporaryDirectory() as tmp:
        base = load_revision(args.rev, Path(tmp))
        import bptt.functional as work
        print(f"engine A/B: {args.rev} (old) against the working tree (new), {args.mode}, "
              f"{args.threads} thread(s) ({note}), {args.rounds} interleaved rounds")
        print(f"{'cell':4} {'dtype':7} {'T, N, D, H':>18} | {'old ms':>9} {'new ms':>9} "
              f"{'old/new':>7}")
        for shape in args.cases:
            for cell in args.cells:
                for dtype in args.dtypes:
                    d = bench.make_data(cell, dtype, *shape)
                    o, n, r = ab(step_fn(base, cell, args.mode, d),
                                 step_fn(work, cell, args.mode, d), args.rounds, args.min_round)
                    print(f"{cell:4} {dtype:7} {str(shape)[1:-1]:>18} | {o * 1e3:9.3f} "
                          f"{n * 1e3:9.3f} {r:7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
