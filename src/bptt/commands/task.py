"""``bptt task NAME``: train and evaluate one task of the suite, print the result."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from bptt.cli import SEED, finite_float, int_at_least
    from bptt.tasks.registry import TASKS

    names = ", ".join(TASKS)
    p = sub.add_parser("task", help="train and evaluate one long-range task",
                       description=f"Train a model on one task and evaluate it on the task's "
                                   f"test set. Tasks: {names}.")
    p.add_argument("name", metavar="NAME", help=f"one of: {names}")
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="lstm",
                   help="recurrent cell (default lstm)")
    p.add_argument("--T", type=int_at_least(1), default=None,
                   help="sequence length, for adding, adding1997 and copy")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help="training steps (online tasks)")
    p.add_argument("--epochs", type=int_at_least(1), default=None,
                   help="training epochs (fixed data sets)")
    p.add_argument("--hidden", type=int_at_least(1), default=None,
                   help="hidden units per direction")
    p.add_argument("--layers", type=int_at_least(1), default=None, help="recurrent layers")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="bidirectional recurrent layers (classification tasks only)")
    p.add_argument("--pooling", choices=["last", "mean", "max"], default=None,
                   help="pooling over time (classification and regression tasks)")
    p.add_argument("--lr", type=finite_float(0, low_open=True), default=None, help="learning rate")
    p.add_argument("--batch-size", type=int_at_least(1), default=None, help="sequences per batch")
    p.add_argument("--threads", type=int_at_least(0), default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    p.add_argument("--verbose", action="store_true", help="print training progress")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def format_result(r: dict) -> str:
    from bptt.tasks.results import format_value

    lines = [f"task        {r['task']} ({r['cell']}" + (f", T={r['T']}" if r["T"] else "") + ")",
             f"metric      {r['metric']}",
             f"ours        {format_value(r['value'])}",
             f"published   {r['published']}",
             f"baseline    {format_value(r['baseline'])} ({r['baseline_note']})"]
    if r["target"]:
        lines.append(f"target      {r['target']}: {'met' if r['target_met'] else 'MISSED'}")
    extra = {k: v for k, v in r.items() if k not in {
        "task", "cell", "T", "seed", "metric", "value", "published", "baseline", "baseline_note",
        "target", "target_met", "model", "curve", "gradient_flow"}}
    lines.append("details     " + ", ".join(f"{k} {format_value(v)}" for k, v in extra.items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from bptt.distributed import WorldError, world
    from bptt.tasks.runner import run_task
    from bptt.tasks.threads import blas_threads

    if world().size > 1:
        raise WorldError(f"bptt task trains one small model in one process ({world().size} "
                         f"were started): its steps take milliseconds, so splitting a batch would "
                         f"spend them in the all-reduce. Spread runs instead: mpiexec -n "
                         f"{world().size} bptt suite --only {args.name}")

    if args.name in ("reber", "copy") and (args.pooling or args.bidirectional):
        raise ValueError(f"task {args.name!r} predicts the next symbol at every step; it takes "
                         "neither --pooling nor --bidirectional (which would see the future)")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with blas_threads(args.threads):
        r = run_task(args.name, args.cell, args.T, args.seed, steps=args.steps,
                     epochs=args.epochs, quick=args.quick, log=log if args.verbose else None,
                     log_every=100 if args.verbose else 0, hidden=args.hidden,
                     layers=args.layers, bidirectional=args.bidirectional,
                     pooling=args.pooling, lr=args.lr, batch_size=args.batch_size)
    print(json.dumps(r) if args.json else format_result(r))
    return 0
