"""``bptt report RUN``: write RUN/report.html from a run directory (``bptt.analysis.report``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run's report.html (open it in any browser)",
                       description="Write one self-contained report.html from a run directory: "
                                   "loss curves, learning rate and gradient norm with clipping "
                                   "events, samples over time and, when the run's model can be "
                                   "loaded, the activation heatmap and LSTM gate saturation. "
                                   "Reads RUN/metrics.jsonl and RUN/samples.jsonl.")
    p.add_argument("run", metavar="RUN", help="the run directory")
    p.add_argument("--out", metavar="PATH", help="where to write (default RUN/report.html)")
    p.add_argument("--chars", type=int, default=1000,
                   help="characters of validation text in the heatmap (default 1000)")
    p.add_argument("--title", help="the page title (default: the run directory's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bptt.analysis.report import build_run_report
    from bptt.cli import UserError

    if args.chars < 1:
        raise UserError(f"--chars is {args.chars}; it must be at least 1")
    if args.out is not None:
        from bptt.charlm.rundir import refuse_run_file
        if not args.out.strip():
            raise UserError("--out is empty; give a file name, e.g. --out report.html")
        refuse_run_file(args.out, "--out")
    try:
        path = build_run_report(args.run, args.out, chars=args.chars, title=args.title)
    except ImportError as e:
        raise UserError(f"the report's figures need matplotlib ({e}); install it with "
                        "pip install 'bptt[train]'") from None
    print(path)
    return 0
