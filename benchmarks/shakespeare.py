"""The tiny-shakespeare target: validation loss <= 1.50 nats/char within 30 minutes wall-clock.

Trains `bptt train DATA --preset shakespeare --max-minutes M --out OUT` (90/10 split by position;
the whole validation tenth is evaluated every --eval-every steps), which records validation loss
against wall-clock time in OUT/metrics.jsonl (`elapsed_s`, evaluations included) and plots it in
OUT/loss.png; then prints when the target was first met and the best loss.

    python benchmarks/shakespeare.py                       # the full 30 minutes
    python benchmarks/shakespeare.py --minutes 3 --out runs/shakespeare-check
    python benchmarks/shakespeare.py --report runs/shakespeare   # summarise an existing run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (or beside a parent folder, for a git worktree)
DATA = next((p / "shared/data/tinyshakespeare/input.txt" for p in ROOT.parents
             if (p / "shared/data/tinyshakespeare/input.txt").is_file()),
            ROOT.parent / "shared/data/tinyshakespeare/input.txt")
TARGET = 1.50


def report(out: Path, target: float = TARGET) -> dict:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]
    if not rows:
        raise SystemExit(f"{out}/metrics.jsonl has no evaluations yet")
    best = min(rows, key=lambda r: r["val_loss"])
    hit = next((r for r in rows if r["val_loss"] <= target), None)
    summary = {"evaluations": len(rows), "steps": rows[-1]["step"],
               "chars": rows[-1]["chars"], "minutes": rows[-1]["elapsed_s"] / 60,
               "final_val": rows[-1]["val_loss"], "best_val": best["val_loss"],
               "best_at_minutes": best["elapsed_s"] / 60,
               "target": target, "target_met": hit is not None,
               "target_met_at_minutes": hit["elapsed_s"] / 60 if hit else None}
    print(f"{out}: {summary['steps']} steps, {summary['chars']:,} characters in "
          f"{summary['minutes']:.1f} min; best validation {summary['best_val']:.3f} nats/char "
          f"at {summary['best_at_minutes']:.1f} min; final {summary['final_val']:.3f}")
    if hit:
        print(f"target <= {target} nats/char met at {summary['target_met_at_minutes']:.1f} min "
              f"(step {hit['step']})")
    else:
        print(f"target <= {target} nats/char not met")
    print("val loss vs wall-clock (min: nats/char): " + ", ".join(
        f"{r['elapsed_s'] / 60:.1f}: {r['val_loss']:.3f}" for r in rows))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA), help="tiny-shakespeare input.txt")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--out", default="runs/shakespeare")
    p.add_argument("--report", metavar="RUN", help="only summarise an existing run")
    p.add_argument("extra", nargs="*", help="more bptt train options, after --")
    a = p.parse_args()
    if a.report:
        report(Path(a.report))
        return
    sys.path.insert(0, str(ROOT / "src"))
    from bptt.cli import main as bptt

    argv = ["train", a.data, "--preset", "shakespeare", "--max-minutes", str(a.minutes),
            "--out", a.out, "--overwrite", *a.extra]
    print("bptt " + " ".join(argv), flush=True)
    rc = bptt(argv)
    if rc not in (0, 130):
        raise SystemExit(rc)
    report(Path(a.out))


if __name__ == "__main__":
    main()
