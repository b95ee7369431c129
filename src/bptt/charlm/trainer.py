"""Training a character language model: the loop, evaluation, divergence rollback, exact resume.

    cfg = TrainConfig(corpus=["input.txt"], max_steps=2000)
    result = Trainer.start(cfg, "runs/x", Console()).run()
    result = Trainer.resume("runs/x", Console()).run()        # continues exactly

One step (truncated BPTT over N contiguous streams of T steps, see ``data.StreamBatcher``):

    loss, grads, state = model.loss_and_state(x, y, state=carried)   # state carried between
    loss, grads /= T: nats per character, the mean over N and T       # batches, reset at wrap
    optim.train_step: global norm (logged before clipping), clip by value, then by global norm,
                      the optimizer update with the scheduled lr
    (--reduction sum: the gradients stay those of the loss summed over the T steps)
    a non-finite loss, gradient, parameter or validation loss -> roll back to the last snapshot
                      and lower the lr (give up after max_rollbacks in a row)

The parts: ``rundir.RunDir`` (the files, marker and lock), ``opening`` (a new run built, or a
checkpoint read back and validated), ``state.TrainState`` (what a step changes, and its
checkpoint form), ``clock.Clock`` (the budget), ``progress`` (what is printed and logged), and
``bptt.optim.train_step`` (clipping and the update, shared with the task loop).

Randomness comes only from ``np.random.Generator`` objects derived from ``seed``: one for the
initial weights, one for dropout (its state is checkpointed), and one per evaluation for the
printed sample, so evaluation never changes training.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from bptt import __version__
from bptt.charlm.checkpoint import finite_json, save_checkpoint
from bptt.charlm.clock import Clock
from bptt.charlm.config import (  # noqa: F401  (re-exported: bptt.charlm.trainer is the public entry)
    PRESETS,
    RESUME_OVERRIDABLE,
    TrainConfig,
    config_from_preset,
    learning_rate,
)
from bptt.charlm.console import Console, GracefulInterrupt
from bptt.charlm.corpora import default_run_dir, resolve_corpus
from bptt.charlm.data import evaluate, split_and_batch
from bptt.charlm.memory import check_fits, training_bytes
from bptt.charlm.opening import load_run, new_run
from bptt.charlm.progress import (
    describe,
    diverged_message,
    done_message,
    eval_line,
    fmt_rate,
    loss_plot,
    metrics_record,
    stopped_message,
)
from bptt.charlm.rundir import RunDir, atomic_write_bytes
from bptt.charlm.sampling import generate
from bptt.charlm.state import Counters, TrainState, copy_carried, snapshot_checkpoint
from bptt.charlm.text import EncodedCorpus
from bptt.functional._validate import NonFiniteError
from bptt.nn import LanguageModel
from bptt.optim import Clipping, Optimizer, make_optimizer, train_step


@dataclass
class Result:
    status: int                        # 0 done, 1 diverged, 130 interrupted
    message: str
    run_dir: Path
    step: int
    best_val: float | None


class Trainer:
    """One run: its directory, data, model, optimizer, state and clock."""

    def __init__(self, cfg: TrainConfig, run: RunDir, console: Console, corpus: EncodedCorpus,
                 model: LanguageModel, optimizer: Optimizer, state: TrainState,
                 snapshot: TrainState | None, records: list[dict]):
        self.cfg, self.rundir, self.console = cfg, run, console
        self.corpus, self.model, self.optimizer = corpus, model, optimizer
        self.state = state                         # what a step changes
        self.snapshot = snapshot or state.snapshot()   # what a rollback returns to
        self.records = records                     # metrics.jsonl, one per evaluation
        self.train_ids, self.val_ids, self.batcher = split_and_batch(corpus, cfg)
        self.clipping = Clipping(max_norm=cfg.clip_norm, max_value=cfg.clip_value)
        self.clock = Clock(cfg)
        self.last_loss = math.nan                  # of the last training step
        self.ema: float | None = None              # smoothed training loss, for the bar
        self.rate = 0.0                            # training characters per second, for the bar
        self.plot_warned = False
        self.saved_step = state.counters.step      # of the checkpoint last.json holds
        self.dp = None             # bptt.distributed.trainer.DataParallel on K > 1 processes
        self.interrupt = None      # the loop's GracefulInterrupt

    @property
    def counters(self) -> Counters:
        return self.state.counters

    @property
    def path(self) -> Path:
        return self.rundir.path

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (process 0 of a data-parallel job)."""
        return self.dp is None or self.dp.is_root

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.model.params.values()))

    # ------------------------------------------------------------ construction

    @classmethod
    def start(cls, cfg: TrainConfig, run_dir: str | os.PathLike | None, console: Console,
              overwrite: bool = False) -> Trainer:
        """A fresh run in ``run_dir`` (new, empty, or with ``overwrite`` a run to start over;
        None: ``runs/<corpus>-<date>-<time>``). An empty ``cfg.corpus`` means the default
        corpus."""
        cfg.validate()
        t_created = time.perf_counter()
        check_fits(training_bytes(cfg.model_config(1), cfg.batch, cfg.seq_len),
                   f"a {cfg.layers}-layer {cfg.cell.upper()} with hidden {cfg.hidden} at batch "
                   f"{cfg.batch} x {cfg.seq_len}",
                   "use a smaller --hidden, --layers, --batch or --seq-len")
        notes = resolve_corpus(cfg, console)
        run = RunDir.create(run_dir if run_dir is not None else default_run_dir(cfg), overwrite)
        try:
            trainer = cls._build(cfg, run, console, notes)
        except BaseException:
            run.close()
            raise
        trainer.counters.elapsed_s = time.perf_counter() - t_created  # reading the corpus counts
        return trainer

    @classmethod
    def _build(cls, cfg: TrainConfig, run: RunDir, console: Console, notes: list[str]
               ) -> Trainer:
        """A new run's Trainer (``opening.new_run``) and its step-0 checkpoint."""
        r = new_run(cfg, run, console, notes)
        opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())
        trainer = cls(cfg, run, console, r.corpus, r.model, opt, r.state, None, [])
        trainer.save()                        # step 0: there is always a good checkpoint
        return trainer

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, console: Console,
               overrides: dict | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its last checkpoint, exactly."""
        run = RunDir.open(run_dir)
        try:
            r = load_run(run, console, overrides)
            opt = make_optimizer(r.cfg.optimizer, r.cfg.lr, **r.cfg.optimizer_kwargs())
            trainer = cls(r.cfg, run, console, r.corpus, r.model, opt, r.state, r.snapshot,
                          r.records)
        except BaseException:
            run.close()
            raise
        run.rewrite_records("metrics.jsonl", trainer.records)   # what follows is logged again
        if (run / "samples.jsonl").exists():
            run.rewrite_records("samples.jsonl", r.samples)
        return trainer

    # ------------------------------------------------------------ checkpoints

    def save(self, best: bool = False) -> None:
        """Write last.json (and best.json); data-parallel: every process calls it (the carried
        state of all streams is gathered), process 0 writes."""
        if self.dp is None:
            return self._save(best)
        with self.dp.gathered(self.state, self.snapshot) as writes:
            if writes:
                self._save(best)

    def _save(self, best: bool) -> None:
        st, cfg = self.state, self.cfg
        snap_meta, snap_arrays = snapshot_checkpoint(self.snapshot, st)
        meta = {"step": st.counters.step,
                "saved_at": datetime.now().isoformat(timespec="seconds"),
                "bptt_version": __version__, "model": self.model.config.to_dict(),
                "vocab": self.corpus.vocab.to_json(), "train": asdict(cfg),
                "optimizer": {"name": cfg.optimizer, "step": int(st.opt_state["step"]),
                              "hyper": cfg.optimizer_kwargs()},
                "counters": asdict(st.counters), "rng": st.rng.bit_generator.state,
                "metrics": self.records[-1] if self.records else None,
                "rollback_snapshot": snap_meta}
        save_checkpoint(self.path, {**st.arrays(), **snap_arrays}, meta, best=best)
        self.saved_step = st.counters.step

    # ------------------------------------------------------------ rollback

    def _rollback(self, why: str) -> bool:
        """Restore the snapshot with a lower learning rate; False when giving up."""
        c, cfg = self.counters, self.cfg
        fails = c.fails_in_row + 1
        if fails > cfg.max_rollbacks:
            return False
        lr_scale = c.lr_scale * cfg.rollback_lr_factor
        counters = dataclasses.replace(self.snapshot.counters, lr_scale=lr_scale,
                                       fails_in_row=fails, rollbacks=c.rollbacks + 1,
                                       elapsed_s=c.elapsed_s, train_s=c.train_s)
        bad_step = c.step
        self.state.restore(self.snapshot, counters)
        self.console.warn(f"{why} at step {bad_step}: rolled back to step {counters.step} and "
                          f"lowered the learning rate to {lr_scale:g} x schedule (rollback "
                          f"{fails} of at most {cfg.max_rollbacks} in a row)")
        return True

    # ------------------------------------------------------------ one step, one evaluation

    def _step(self, lr: float) -> str | None:
        """One training step; returns why it failed or None. A floating-point overflow or
        invalid operation anywhere in the step (NumPy raises it here) is a failure, whatever
        the loss: weights that overflowed can still give saturated, finite activations and a
        finite loss on some BLAS kernels, and would never be caught by the loss alone."""
        try:
            with np.errstate(over="raise", invalid="raise", divide="ignore"):
                return self._step_checked(lr)
        except FloatingPointError as e:
            return f"floating-point {str(e).replace(' encountered', '')}"

    def _step_checked(self, lr: float) -> str | None:
        st = self.state
        c = st.counters
        if c.cursor == 0:
            st.carried = None              # wrap: every stream starts again, state reset
        x, y = self.batcher.batch(c.cursor)
        local = self._local_gradient(x, y)
        n_chars = x.size
        if self.dp is not None:            # the one all-reduce: the mean over the global batch
            local = self.dp.combine(local, x.size, self.interrupt is not None
                                    and self.interrupt.requested)
            n_chars *= self.dp.w.size
        if isinstance(local, str):
            return local
        loss, grads, final = local
        stats = train_step(self.model.params, grads, self.optimizer, st.opt_state, lr,
                           self.clipping)
        if stats.failure is not None:
            return stats.failure
        st.carried = copy_carried(final)
        c.step += 1
        c.cursor += 1
        if c.cursor == self.batcher.steps_per_epoch:
            c.cursor, c.epoch = 0, c.epoch + 1
        c.chars += n_chars
        self.last_loss = loss
        c.i_loss += loss
        c.i_steps += 1
        c.i_norm += stats.norm
        c.i_norm_max = max(c.i_norm_max, stats.norm)
        c.i_clipped += int(stats.clipped)
        c.i_values += stats.clipped_values
        c.i_chars += n_chars
        return None

    def _local_gradient(self, x: np.ndarray, y: np.ndarray):
        """(loss, grads, final state) of this process's batch, per character, or why not."""
        st, cfg = self.state, self.cfg
        rng = st.rng if self.dp is None else self.dp.dropout_rng(st.counters.step)
        try:
            loss, grads, final = self.model.loss_and_state(
                x, y, state=st.carried, train=cfg.dropout > 0, rng=rng)
            T = x.shape[1]
            loss /= T                      # logged: nats per character (mean over N and T)
            if cfg.reduction == "mean":    # train on the mean cross-entropy, so clipping
                for g in grads.values():   # thresholds mean what they mean in char-rnn and
                    g *= 1.0 / T           # PyTorch; "sum": on the sum over the T steps
        except NonFiniteError:             # the engine refuses NaN / inf activations
            return "non-finite values inside the model"
        except FloatingPointError as e:
            return f"floating-point {str(e).replace(' encountered', '')}"
        if not math.isfinite(loss):
            return "non-finite loss"
        return loss, grads, final

    def _evaluate_and_report(self, lr: float, sample_text: bool = True) -> str | None:
        """Evaluate, log, sample, plot and checkpoint; returns why it failed (a non-finite
        validation loss, handled like a diverged step) or None. Call right after a clock sync."""
        cfg, c, run = self.cfg, self.counters, self.rundir
        t0 = time.perf_counter()
        try:
            with np.errstate(over="raise", invalid="raise", divide="ignore"):
                val = (evaluate(self.model, self.val_ids, cfg.eval_chars) if self.dp is None
                       else self.dp.evaluate(self.model, self.val_ids, cfg.eval_chars))
        except (NonFiniteError, FloatingPointError):
            val = math.nan
        if not math.isfinite(val):
            self.clock.add_eval(c, time.perf_counter() - t0)
            return "non-finite validation loss"
        rec = metrics_record(c, self.batcher.steps_per_epoch, val, lr)
        if self.dp is not None:
            rec.update(self.dp.record(self.model.params, self.console))
        best = c.step > 0 and (c.best_val is None or val < c.best_val)   # not the untrained
        if best:
            c.best_val, c.best_step = val, c.step
        sample = ""
        if cfg.sample_chars and sample_text and self.writes:
            srng = np.random.default_rng([cfg.seed, 2, c.step])
            sample, _ = generate(self.model, self.corpus.vocab, cfg.sample_chars, srng,
                                 temperature=cfg.sample_temperature)
        c.last_eval_step = c.step
        c.reset_interval()
        self.clock.add_eval(c, time.perf_counter() - t0)
        rec["elapsed_s"] = rec["time_s"] = round(c.elapsed_s, 3)
        self.records.append(rec)
        if self.writes:
            run.append_record("metrics.jsonl", finite_json(rec))
        if sample:
            run.append_text("samples.txt", f"=== step {c.step}, val {val:.3f} nats/char, "
                                           f"temperature {cfg.sample_temperature} ===\n"
                                           f"{sample}\n\n")
            run.append_record("samples.jsonl", {"step": c.step, "text": sample,
                                                "temperature": cfg.sample_temperature})
        self._plot()
        self.save(best=best)
        self.console.info(eval_line(cfg, rec, best, c.elapsed_s)
                          + (self.dp.eval_suffix(rec) if self.dp is not None else ""))
        if sample:
            self.console.info(f"--- sample at step {c.step} ---\n{sample}\n---")
        return None

    def _plot(self) -> None:
        """Redraw loss.png (atomically); without matplotlib, warn once and go on."""
        if not self.writes:
            return
        try:
            png = loss_plot(self.records, self.cfg)
        except ImportError:
            if not self.plot_warned:
                self.console.warn("matplotlib is not installed, so there is no loss.png "
                                  "(pip install 'bptt[train]')")
                self.plot_warned = True
            return
        if png is not None:
            atomic_write_bytes(self.rundir / "loss.png", png)

    def describe(self) -> None:
        lines = describe(self.cfg, self.counters, len(self.corpus.ids), self.corpus.vocab.size,
                         len(self.train_ids), len(self.val_ids), self.batcher.steps_per_epoch,
                         self.n_params, self.path)
        for line in lines + (self.dp.describe() if self.dp is not None else []):
            self.console.info(line)

    # ------------------------------------------------------------ the loop

    def run(self, stop_at: int | None = None) -> Result:
        """Train until the budget is used (or ``stop_at`` steps, or Ctrl-C); always leaves a
        checkpoint of the last good state. Releases the run's lock at the end.

        The first Ctrl-C stops after the current step and saves a checkpoint (resume it with
        ``Trainer.resume``); a second one aborts at once, leaving the previous checkpoint.
        """
        try:
            return self._loop(stop_at)
        finally:
            self.rundir.close()

    def _loop(self, stop_at: int | None) -> Result:
        cfg, con, clock = self.cfg, self.console, self.clock
        self.describe()
        clock.start()
        if cfg.time_budgeted:
            con.open_bar(cfg.max_minutes * 60, initial=self.counters.elapsed_s, unit="s")
        else:
            con.open_bar(cfg.max_steps or None, initial=self.counters.step, unit="step")
        why = None
        if self.counters.step == 0 and not self.records:          # where the curves start
            why = self._evaluate_or_roll_back(learning_rate(cfg, 0, 0.0), sample_text=False)
        clock.last_eval_end = self.counters.elapsed_s
        with GracefulInterrupt(con) as interrupt:
            self.interrupt = interrupt
            while why is None:
                c = self.counters
                why = clock.should_stop(c, stop_at)
                if why == "done" and c.last_eval_step != c.step:    # the final evaluation first
                    why = self._evaluate_or_roll_back(
                        learning_rate(cfg, max(c.step - 1, 0), 1.0) * c.lr_scale)
                    continue
                if why is None and (interrupt.requested if self.dp is None else self.dp.stop):
                    why = "interrupted"          # data-parallel: every process stops together
                if why is not None:
                    break
                lr = learning_rate(cfg, c.step, clock.time_frac(c)) * c.lr_scale
                why = self._advance(lr)
                self._show_progress(lr)
            con.close_bar()
            clock.sync(self.counters)
            return self._finish(why, stop_at)

    def _advance(self, lr: float) -> str | None:
        """One training step, then the snapshot and the evaluation when they are due; a failure
        rolls back. Returns "diverged" when giving up, else None."""
        t0 = time.perf_counter()
        fail = self._step(lr)
        dt = self.clock.last_step_s = time.perf_counter() - t0
        if fail is not None:
            return None if self._rollback(fail) else "diverged"
        c = self.counters
        c.train_s += dt
        c.i_train_s += dt
        if c.step % self.cfg.snapshot_every == 0:
            c.fails_in_row = 0
            self.snapshot = self.state.snapshot()
        self.ema = self.last_loss if self.ema is None else 0.95 * self.ema + 0.05 * self.last_loss
        return self._evaluate_or_roll_back(lr) if self.clock.eval_due(c) else None

    def _evaluate_or_roll_back(self, lr: float, sample_text: bool = True) -> str | None:
        """Evaluate now (the clock brought up to date first); a failure rolls back. Returns
        "diverged" when giving up, else None."""
        self.clock.sync(self.counters)
        fail = self._evaluate_and_report(lr, sample_text)
        self.clock.last_eval_end = self.counters.elapsed_s
        return None if fail is None or self._rollback(fail) else "diverged"

    def _show_progress(self, lr: float) -> None:
        c = self.counters
        if self.ema is None:
            return
        if c.i_train_s:
            self.rate = c.i_chars / c.i_train_s
        n = self.clock.elapsed(c) if self.cfg.time_budgeted else c.step
        self.console.update_bar(n, f"step {c.step}, loss {self.ema:.3f}, {fmt_rate(self.rate)} "
                                   f"chars/s, lr {lr:.1e}" + (self.dp.bar() if self.dp else ""))

    def _finish(self, why: str, stop_at: int | None) -> Result:
        c, path = self.counters, self.path
        if why == "diverged":
            msg = diverged_message(self.cfg, c, path, self.saved_step)
            return Result(1, msg, path, c.step, c.best_val)
        if why != "done":
            self.save()
        self._write_report()
        msg = done_message(c, path) if why == "done" else stopped_message(c, path, why, stop_at)
        self.console.info(msg)
        return Result(130 if why == "interrupted" else 0, msg, path, c.step, c.best_val)

    def _write_report(self) -> None:
        """Write RUN/report.html (analysis.report); a failure there only warns: the run is saved."""
        if not self.writes:
            return
        try:
            from bptt.analysis.report import build_run_report
            build_run_report(self.path)
        except Exception as e:   # the report is a convenience; never lose a finished run to it
            self.console.warn(f"could not write report.html ({type(e).__name__}: {e}); "
                              f"try: bptt report {self.path}")
