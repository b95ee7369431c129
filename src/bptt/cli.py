"""The ``bptt`` command line: a thin shell over importable functions.

Each subcommand lives in its own module under ``bptt.commands`` with two functions:
``register(subparsers)`` (adds its parser and sets ``func``) and the runner it sets.

Exit status: 0 done, 1 training diverged, 2 a problem with what was asked (one line on stderr
naming the problem and the fix), 70 an internal error (a bug: one line, and with ``--debug`` or
``BPTT_DEBUG=1`` the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
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
EXIT_USAGE, EXIT_INTERNAL = 2, 70
# The commands that run on several MPI processes (train: data-parallel; suite: runs spread out;
# task: says why not); the others refuse to run K copies of themselves.
MPI_COMMANDS = ("train", "suite", "task")

# What to do about an OSError, by errno.
OS_FIXES: dict[int | None, str] = {
    errno.ENOSPC: "the disk is full; free some space and try again (files bptt had written are "
                  "intact)",
    errno.EDQUOT: "the disk quota is used up; free some space and try again",
    errno.EACCES: "permission denied; choose a path you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a path you can write to",
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.ELOOP: "a loop of symbolic links; give a real path",
    errno.ENOTDIR: "a component of the path is a file, not a directory; fix the path",
    errno.EISDIR: "it is a directory; give a file",
    errno.EEXIST: "it already exists; choose a new name",
    errno.ENAMETOOLONG: "the name is too long; use a shorter path",
    errno.ENOENT: "no such file or directory; check the path",
    errno.EMFILE: "too many open files; close some programs and try again",
    errno.EIO: "an input/output error from the disk; check the disk and try again",
}


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


# ---------------------------------------------------------------- option types (ranges checked
# where the option is parsed; an error is argparse's one line)

def int_at_least(low: int, what: str = "", high: int | None = None):
    """An argparse type: an integer >= low (and <= high when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            rule = {0: "0 or more", 1: "at least 1"}.get(low, f"at least {low}")
            raise argparse.ArgumentTypeError(f"{value} is too small: it must be {rule}{what}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is too large: at most {high:,}{what}")
        return value
    parse.__name__ = "int"
    return parse


def finite_float(low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False):
    """An argparse type: a finite float in the given range (bounds open or closed)."""
    lo_b, hi_b = "(" if low_open else "[", ")" if high_open else "]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            rng = f"{lo_b}{'-inf' if low is None else f'{low:g}'}, " \
                  f"{'inf' if high is None else f'{high:g}'}{hi_b}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be a finite "
                                             f"number in {rng}")
        return value
    parse.__name__ = "float"
    return parse


SEED = int_at_least(0, " (a seed is a non-negative integer)")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``bptt CMD: error: MESSAGE (see bptt CMD -h)``."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from bptt import __version__

    parser = OneLineParser(
        prog="bptt",
        description="Recurrent networks (RNN, LSTM) with hand-written backpropagation through "
                    "time in NumPy.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an internal error (also "
                             "BPTT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def os_error_message(e: OSError) -> str:
    """``PATH: what happened; what to do`` for an OSError (no raw [Errno N])."""
    where = e.filename if e.filename is not None else ""
    fix = OS_FIXES.get(e.errno, f"{e.strerror or e}; check the path, the disk and the "
                                f"permissions")
    return f"{where}: {fix}" if where else fix


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("BPTT_DEBUG", "") not in ("", "0") or "--debug" in argv
    argv = [a for a in argv if a != "--debug"]             # accepted anywhere on the line
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from bptt import distributed as dist

    prog = f"bptt {args.command}"
    try:
        _enter_world(args.command, prog)
        return int(args.func(args) or 0)
    except dist.WorldError as e:      # found alike by every process: one line, from process 0
        if dist.is_root_process():
            print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE
    # dist.fail prints the line; in a multi-process job it names the rank and aborts every
    # process, which would otherwise wait for this one forever.
    except KeyboardInterrupt:
        return dist.fail(f"{prog}: interrupted", 130)
    except (UserError, ValueError) as e:
        msg = " ".join(str(e).split())              # always one line
        return dist.fail(f"{prog}: error: {msg}", EXIT_USAGE)
    except OSError as e:
        return dist.fail(f"{prog}: error: {os_error_message(e)}", EXIT_USAGE)
    except MemoryError:
        return dist.fail(f"{prog}: error: out of memory; use a smaller model, batch or file",
                         EXIT_USAGE)
    except Exception as e:
        if debug and dist.current_size() == 1:
            raise
        return _internal_error(e, prog, debug)


def _enter_world(command: str, prog: str) -> None:
    """Under mpiexec / srun: the MPI world first (see bptt.distributed); commands that are not
    made for several processes refuse."""
    from bptt import distributed as dist

    if dist.launched():
        size = dist.world().size
        if size > 1 and command not in MPI_COMMANDS:
            raise dist.WorldError(f"{prog} runs in one process ({size} were started); run it "
                                  f"without mpiexec or srun")


def _internal_error(e: Exception, prog: str, debug: bool) -> int:
    """An unexpected exception: one line that says it is a bug and how to see the traceback
    (printed here too with --debug in a multi-process job)."""
    from bptt import distributed as dist

    if debug:
        import traceback

        traceback.print_exception(e)
    msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
    return dist.fail(f"{prog}: internal error ({msg}); this is a bug in bptt: rerun with "
                     f"--debug (or BPTT_DEBUG=1) for the traceback and report it", EXIT_INTERNAL)
