"""Train and evaluate one task: ``run_task(name, cell, T, seed) -> result dict``.

The result is what ``bptt task --json`` prints: at least task, cell, metric, value, published
and baseline, plus T, seed, steps run, seconds, the target of the issue where there is one and
whether it was met, and the task's extra measurements.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..nn import SequenceModel
from .registry import get_task, stream
from .train import fit

OPS = {"<=": operator.le, ">=": operator.ge}

MODEL_OPTIONS = ("hidden", "layers", "bidirectional", "pooling", "dropout")
TRAIN_OPTIONS = ("lr", "batch_size", "optimizer", "schedule", "clip", "weight_decay")


def run_task(name: str, cell: str = "lstm", T: int | None = None, seed: int = 0,
             steps: int | None = None, epochs: int | None = None, quick: bool = False,
             log: Callable[[str], None] | None = None, log_every: int = 0,
             return_model: bool = False, **options):
    """Train and evaluate task ``name``; returns the result dict (and the model if asked).

    ``options`` override the task's recipe: model (hidden, layers, bidirectional, pooling,
    dropout) and training (lr, batch_size, optimizer, schedule, clip, weight_decay); None
    values are ignored. ``steps`` or ``epochs`` override the length of training; ``quick``
    trains for a handful of steps (a smoke run).
    """
    task = get_task(name)
    unknown = set(options) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    setup = task.setup(cell, T, seed)
    T = task.default_T if T is None else T
    mcfg = replace(setup.model, **{k: v for k, v in options.items()
                                   if k in MODEL_OPTIONS and v is not None})
    tcfg = replace(setup.train, **{k: v for k, v in options.items()
                                   if k in TRAIN_OPTIONS and v is not None})
    if setup.epochs:
        n_epochs = epochs if epochs is not None else setup.epochs
        tcfg = replace(tcfg, steps=n_epochs * -(-setup.train_size // tcfg.batch_size))
    if steps is not None:
        tcfg = replace(tcfg, steps=steps)
    if quick:
        tcfg = replace(tcfg, steps=min(tcfg.steps, 3), eval_every=2 if tcfg.eval_every else 0)
    rng = stream(seed, 0)
    model = SequenceModel(mcfg, rng)
    start = time.perf_counter()
    hist = fit(model, setup.batches(tcfg.batch_size), tcfg, rng, setup.validate, setup.done,
               log, log_every)
    result = setup.evaluate(model)
    seconds = time.perf_counter() - start
    value = result.pop("value")
    target = task.target(cell, T)
    out = {
        "task": task.name, "cell": cell, "T": T, "seed": seed,
        "metric": task.metric, "value": value,
        "published": task.published(cell, T),
        "baseline": task.baseline(T), "baseline_note": task.baseline_note,
        "target": None if target is None else f"{target[0]} {target[1]}",
        "target_met": None if target is None else bool(OPS[target[0]](value, target[1])),
        "steps": hist.steps, "stopped_early": hist.stopped_early,
        "seconds": round(seconds, 1),
        "final_train_loss": float(np.mean([l for _, l in hist.losses[-20:]])),
        "model": {k: getattr(mcfg, k) for k in ("hidden", "layers", "bidirectional", "pooling")},
        **{k: v for k, v in result.items()},
    }
    return (out, model, hist) if return_model else out
