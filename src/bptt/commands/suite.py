"""``bptt suite``: every task with fixed seeds; a results table (markdown + JSON) and plots."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from bptt.cli import int_at_least

    p = sub.add_parser("suite", help="run every task with fixed seeds; write tables and plots",
                       description="Train and evaluate every task of the suite with fixed "
                                   "seeds, and write results.md, results.json, "
                                   "gradient_flow.png and training_curves.png to --out.")
    p.add_argument("--out", default="runs/suite", help="output folder (default runs/suite)")
    p.add_argument("--jobs", type=int_at_least(1), default=None,
                   help="runs in parallel, one process each (default 2; under mpiexec 1 per "
                        "MPI process, and the runs are spread over the MPI processes)")
    p.add_argument("--threads", type=int_at_least(0), default=1,
                   help="BLAS threads per run (default 1)")
    p.add_argument("--only", nargs="+", metavar="TASK", help="run only these tasks")
    p.add_argument("--quick", action="store_true",
                   help="a few steps per run (checks the plumbing, not the results)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bptt.tasks.registry import TASKS
    from bptt.tasks.suite import run_suite

    for name in args.only or []:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; use one of {list(TASKS)}")
    from bptt.distributed import world

    if args.jobs is None:
        args.jobs = 2 if world().size == 1 else 1
    if args.jobs < 1:
        raise ValueError(f"--jobs is {args.jobs}; it must be at least 1")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    report = run_suite(args.out, args.jobs, args.quick, args.only, args.threads, log)
    if report is None:                 # an MPI process other than 0: process 0 reports
        return 0
    with open(f"{args.out}/results.md") as f:
        print(f.read(), end="")
    targeted = [r for r in report["results"] if r.get("target_met") is not None]
    missed = [r for r in targeted if not r["target_met"]]
    if missed and not args.quick:
        print(f"\n{len(missed)} of the {len(targeted)} runs with a target missed it: "
              + ", ".join(f"{r['task']} {r['cell']} seed {r['seed']}" for r in missed),
              file=sys.stderr)
    return 0
