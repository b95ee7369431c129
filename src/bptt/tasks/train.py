"""A small training loop shared by every task: minibatches in, an optimizer step out.

    history = fit(model, next_batch, config, rng, validate=..., done=..., log=...)

``next_batch(rng) -> (x, y, mask)`` supplies the batches: fresh samples for the generated tasks
(as in the papers, which train online), bucketed epochs for the fixed data sets. Every
``eval_every`` steps ``validate(model) -> dict`` runs, and training stops early when
``done(result)`` is true (the papers' stopping criteria, checked on held-out data that is not the
test set).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bptt.optim import Clipping, lr_at, make_optimizer, train_step


@dataclass
class FitConfig:
    """The task loop's options (the char-LM trainer has its own, ``charlm.config.TrainConfig``)."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "constant"      # constant | step | cosine (see bptt.optim.lr_at)
    warmup: int = 0
    clip: float = 1.0               # global-norm clipping; 0 = off
    eval_every: int = 0             # 0 = never validate during training
    weight_decay: float = 0.0


@dataclass
class History:
    steps: int = 0
    seconds: float = 0.0
    losses: list = field(default_factory=list)          # (step, training loss)
    evals: list = field(default_factory=list)           # (step, validation result)
    stopped_early: bool = False


def fit(model, next_batch: Callable, config: FitConfig, rng: np.random.Generator,
        validate: Callable | None = None, done: Callable | None = None,
        log: Callable[[str], None] | None = None, log_every: int = 0) -> History:
    """Train ``model`` in place; returns the history (losses every step, validations)."""
    kwargs = {"weight_decay": config.weight_decay} if config.weight_decay else {}
    opt = make_optimizer(config.optimizer, config.lr, **kwargs)
    state = opt.init(model.params)
    clipping = Clipping(max_norm=max(config.clip, 0.0))
    hist = History()
    start = time.perf_counter()
    smooth = None
    for step in range(config.steps):
        x, y, mask = next_batch(rng)
        loss, grads = model.loss(x, y, mask, train=True, rng=rng)
        lr = lr_at(config.schedule, config.lr, step, total=config.steps, warmup=config.warmup,
                   every=max(1, config.steps // 3))
        train_step(model.params, grads, opt, state, lr, clipping)
        hist.losses.append((step, loss))
        smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
        hist.steps = step + 1
        if log and log_every and (step + 1) % log_every == 0:
            log(f"step {step + 1:6d}  loss {smooth:.4f}  lr {lr:.2e}  "
                f"{time.perf_counter() - start:6.1f}s")
        if validate and config.eval_every and (step + 1) % config.eval_every == 0:
            result = validate(model)
            hist.evals.append((step + 1, result))
            if log:
                shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in result.items())
                log(f"step {step + 1:6d}  validation: {shown}")
            if done and done(result):
                hist.stopped_early = True
                break
    hist.seconds = time.perf_counter() - start
    return hist


def predict_all(model, data, batch_size: int = 256) -> np.ndarray:
    """Scores for every row of ``data`` (a SeqData), in its order; per-step scores padded with
    zeros to data's T."""
    from bptt.tasks.data import bucket_batches

    batches = bucket_batches(data.lengths, batch_size, np.random.default_rng(0), shuffle=False)
    out = None
    for idx in batches:
        x, _, mask = data.batch(idx)
        s = model.predict(x, mask)
        if out is None:
            shape = (len(data), data.x.shape[1], s.shape[2]) if s.ndim == 3 else \
                (len(data), s.shape[1])
            out = np.zeros(shape, dtype=s.dtype)
        if s.ndim == 3:
            out[idx, : s.shape[1]] = s
        else:
            out[idx] = s
    if out is None:
        raise ValueError("predict_all: the data set has no rows")
    return out
