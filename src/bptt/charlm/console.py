"""What a training run shows: a progress bar (tqdm when installed), one-line reports, warnings.

Every line printed is also appended to the run's ``train.log``. ``quiet`` silences the bar and
the reports; warnings still go to stderr.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


class Console:
    def __init__(self, quiet: bool = False, log_path: str | os.PathLike | None = None):
        self.quiet = quiet
        self.log_path = log_path
        self._bar = None

    def _log(self, msg: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def _write(self, msg: str, file) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=file)
        else:
            print(msg, file=file, flush=True)

    def info(self, msg: str) -> None:
        self._log(msg)
        if not self.quiet:
            self._write(msg, sys.stdout)

    def warn(self, msg: str) -> None:
        self._log("warning: " + msg)
        self._write(f"bptt: warning: {msg}", sys.stderr)

    # ------------------------------------------------------------ progress bar

    def open_bar(self, total: float | None, initial: float = 0, unit: str = "step") -> None:
        if self.quiet:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        fmt = None
        if unit == "s":       # a time-budgeted run: the bar measures seconds of the budget
            fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}<{remaining}{postfix}]"
        self._bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True,
                         file=sys.stderr, bar_format=fmt, smoothing=0.05, leave=True,
                         disable=None)         # None: no bar when stderr is not a terminal

    def update_bar(self, n: float, postfix: str) -> None:
        if self._bar is not None:
            self._bar.n = n
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(0)

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class GracefulInterrupt:
    """Within the block, the first SIGINT only sets ``requested``; a second one raises
    KeyboardInterrupt as usual. Does nothing outside the main thread."""

    def __init__(self, console: Console):
        self.console, self.requested = console, False
        self._old: Any = None                 # the SIGINT handler to restore (signal.signal's)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.console.warn("stopping after this step to save a checkpoint (Ctrl-C again to "
                          "abort without saving)")

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:                    # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
