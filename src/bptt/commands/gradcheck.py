"""``bptt gradcheck``: every layer's every gradient against central differences, in float64."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from bptt.cli import SEED

    p = sub.add_parser("gradcheck", help="check every hand-written backward numerically",
                       description="Compare every layer's analytic gradients with central "
                                   "differences in float64 (random non-zero weights, biases, "
                                   "initial states and upstream gradients). Exits 1 if any "
                                   "relative error exceeds its threshold.")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bptt.gradcheck.catalogue import format_table, run_all

    results = run_all(args.seed)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({"passed": not failed, "results": [
            {"layer": r.layer, "gradient": r.name, "error": r.error, "threshold": r.threshold}
            for r in results]}))
    else:
        print(format_table(results))
        worst = max(results, key=lambda r: r.error)
        print(f"\n{len(results)} gradients checked, {len(failed)} failed; worst "
              f"{worst.error:.1e} ({worst.layer} d{worst.name})")
    return 1 if failed else 0
