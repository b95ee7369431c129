"""What a training run says: the description at the start, one line per evaluation, the
metrics record written to ``metrics.jsonl``."""

from __future__ import annotations

import math

from bptt.charlm.config import TrainConfig
from bptt.charlm.state import Counters

LN2 = math.log(2)


def fmt_duration(s: float) -> str:
    s = round(float(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def fmt_rate(r: float) -> str:
    return f"{r / 1000:.1f}k" if r >= 1000 else f"{r:.0f}"


def metrics_record(c: Counters, steps_per_epoch: int, val: float, lr: float) -> dict:
    """One evaluation's record: the validation loss and the training interval's statistics."""
    n = c.i_steps
    return {"step": c.step, "epoch": round(c.epoch + c.cursor / steps_per_epoch, 4),
            "chars": c.chars,
            "train_loss": c.i_loss / n if n else None,
            "val_loss": val, "val_bits": val / LN2, "lr": lr,
            "grad_norm": c.i_norm / n if n else None,
            "grad_norm_max": c.i_norm_max if n else None,
            "clip_rate": c.i_clipped / n if n else None,
            "clipped": c.i_clipped, "clipped_values": c.i_values,
            "chars_per_s": c.i_chars / c.i_train_s if c.i_train_s else None,
            "rollbacks": c.rollbacks}


def eval_line(cfg: TrainConfig, rec: dict, best: bool, elapsed_s: float) -> str:
    """``step 200/2000 | epoch 0.41 | train 1.83 | val 1.79 nats/char = ... | lr ... | ...``."""
    tl, val = rec["train_loss"], rec["val_loss"]
    parts = [f"step {rec['step']}" + (f"/{cfg.max_steps}" if cfg.max_steps else ""),
             f"epoch {rec['epoch']:.2f}",
             f"train {tl:.3f}" if tl is not None else "train -",
             f"val {val:.3f} nats/char = {val / LN2:.3f} bits/char" + (" *" if best else ""),
             f"lr {rec['lr']:.2e}"]
    if rec["grad_norm"] is not None:
        parts.append(f"|g| {rec['grad_norm']:.2f} (clipped {100 * rec['clip_rate']:.0f}%)")
    if rec["chars_per_s"]:
        parts.append(f"{fmt_rate(rec['chars_per_s'])} chars/s")
    parts.append(fmt_duration(elapsed_s))
    return " | ".join(parts)


def describe(cfg: TrainConfig, c: Counters, n_symbols: int, vocab_size: int, n_train: int,
             n_val: int, steps_per_epoch: int, n_params: int, run_dir) -> list[str]:
    """The lines printed when a run starts or resumes."""
    kind = "symbols (bytes)" if cfg.encoding == "bytes" else "characters"
    lines = [f"data: {n_symbols:,} {kind}, {vocab_size} distinct; train {n_train:,} / "
             f"validation {n_val:,}; {steps_per_epoch} steps per epoch"]
    inp = f"embedding {cfg.embed}" if cfg.embed else "one-hot input"
    drop = f", dropout {cfg.dropout}" if cfg.dropout else ""
    lines.append(f"model: {cfg.layers}-layer {cfg.cell.upper()}, hidden {cfg.hidden}, "
                 f"{inp}{drop}, {n_params:,} parameters, {cfg.dtype}")
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
    lines.append(f"training: {cfg.optimizer} lr {cfg.lr:g}, {cfg.schedule} schedule (warmup "
                 f"{cfg.warmup}), clipping {', '.join(clip) or 'off'}, batch {cfg.batch} x "
                 f"{cfg.seq_len} steps, {budget}, seed {cfg.seed}")
    if c.step:
        lines.append(f"resuming at step {c.step} ({fmt_duration(c.elapsed_s)} elapsed)")
    lines.append(f"run directory: {run_dir}")
    return lines


def diverged_message(cfg: TrainConfig, c: Counters, path, saved_step: int) -> str:
    return (f"training diverged {cfg.max_rollbacks + 1} times in a row (last at step {c.step}, "
            f"learning rate scaled by {c.lr_scale:g}); stopped. The last good checkpoint is "
            f"intact: {path / 'last.json'} (step {saved_step}). Try a lower --lr, --clip-norm 1, "
            f"or a smaller model")


def done_message(c: Counters, path) -> str:
    best = ("no step was taken" if c.best_val is None else
            f"best validation {c.best_val:.3f} nats/char ({c.best_val / LN2:.3f} bits/char) at "
            f"step {c.best_step}")
    return (f"done: {c.step} steps in {fmt_duration(c.elapsed_s)}; {best}. Sample with: "
            f"bptt sample {path}; report: {path / 'report.html'}")


def stopped_message(c: Counters, path, why: str, stop_at: int | None) -> str:
    reason = {"time": "the time limit (--max-minutes)", "stop-at": f"--stop-at {stop_at}",
              "interrupted": "Ctrl-C"}[why]
    return (f"stopped at step {c.step} by {reason}; checkpoint saved. Continue with: "
            f"bptt train --resume {path}")


def loss_plot(records: list[dict], cfg: TrainConfig) -> bytes | None:
    """loss.png of the metrics so far (ImportError without matplotlib)."""
    from bptt.analysis.plots import training_losses

    return training_losses(records, f"{cfg.corpus_name}: {cfg.layers}-layer "
                                    f"{cfg.cell.upper()}, hidden {cfg.hidden}")
