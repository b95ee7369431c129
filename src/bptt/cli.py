"""The ``bptt`` command line: a thin shell over importable functions.

Each subcommand lives in its own module under ``bptt.commands`` with two functions:
``register(subparsers)`` (adds its parser and sets ``func``) and the runner it sets.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order ``bptt --help`` lists them.
COMMANDS = [
    "bptt.commands.train",
    "bptt.commands.sample",
    "bptt.commands.score",
    "bptt.commands.gradcheck",
    "bptt.commands.task",
    "bptt.commands.suite",
    "bptt.commands.report",
    "bptt.commands.export",
    "bptt.commands.import_torch",
]


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from bptt import __version__

    parser = argparse.ArgumentParser(
        prog="bptt",
        description="Recurrent networks (RNN, LSTM) with hand-written backpropagation through "
                    "time in NumPy.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from bptt import distributed as dist

    try:
        if dist.launched():           # under mpiexec / srun: the MPI world first (see distributed)
            dist.world()
        return int(args.func(args) or 0)
    except dist.WorldError as e:      # found alike by every process: one line, from process 0
        if dist.is_root_process():
            print(f"bptt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (UserError, ValueError, OSError) as e:
        return dist.fail(f"bptt {args.command}: error: {e}")
    except KeyboardInterrupt:
        if dist.current_size() > 1:
            return dist.fail(f"bptt {args.command}: interrupted", 130)
        print(f"bptt {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:            # a bug: the traceback alone, except in a multi-process job,
        if dist.current_size() > 1:   # where the others would wait for this process forever
            import traceback

            traceback.print_exc()
            return dist.fail(f"bptt {args.command}: error: {type(e).__name__}: {e}", 1)
        raise

