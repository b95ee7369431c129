"""The budget of a training run: wall-clock time carried across resumes, and when to stop.

``elapsed_s`` lives in the run's counters (so a resumed run continues its clock); the clock
adds the time since its last mark. A run stops at ``max_steps``, at ``stop_at``, or when the
time left cannot hold one more step and the final evaluation.
"""

from __future__ import annotations

import time

from bptt.charlm.config import TrainConfig
from bptt.charlm.state import Counters


class Clock:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.mark = time.perf_counter()        # when elapsed_s was last brought up to date
        self.last_eval_s = 0.0                 # how long the last evaluation took
        self.last_step_s = 0.0                 # how long the last training step took
        self.last_eval_end = 0.0               # elapsed_s when the last evaluation ended

    def start(self) -> None:
        self.mark = time.perf_counter()

    def elapsed(self, counters: Counters) -> float:
        return counters.elapsed_s + (time.perf_counter() - self.mark)

    def sync(self, counters: Counters) -> None:
        """Bring ``counters.elapsed_s`` up to now."""
        counters.elapsed_s = self.elapsed(counters)
        self.mark = time.perf_counter()

    def add_eval(self, counters: Counters, seconds: float) -> None:
        """An evaluation of ``seconds`` right after a sync: counted in elapsed_s at once."""
        self.last_eval_s = seconds
        counters.elapsed_s += seconds
        self.mark += seconds

    def time_frac(self, counters: Counters) -> float:
        """The fraction of the time budget used (0 without one)."""
        cfg = self.cfg
        return self.elapsed(counters) / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0

    def eval_due(self, counters: Counters) -> bool:
        cfg = self.cfg
        return counters.step % cfg.eval_every == 0 or bool(
            cfg.eval_minutes
            and self.elapsed(counters) - self.last_eval_end >= 60 * cfg.eval_minutes)

    def should_stop(self, counters: Counters, stop_at: int | None) -> str | None:
        """"done", "stop-at", "time" (a step-limited run that ran out of time) or None."""
        cfg = self.cfg
        if cfg.max_steps and counters.step >= cfg.max_steps:
            return "done"
        if stop_at is not None and counters.step >= stop_at:
            return "stop-at"
        if cfg.max_minutes:
            # room for one more step and the final evaluation
            reserve = self.last_eval_s + self.last_step_s + 1.0
            if self.elapsed(counters) + reserve >= cfg.max_minutes * 60:
                return "done" if cfg.time_budgeted else "time"
        return None
