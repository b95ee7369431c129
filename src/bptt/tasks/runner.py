"""Train and evaluate one task: ``run_task(name, cell, T, seed) -> result dict``.

The result is what ``bptt task --json`` prints: at least task, cell, metric, value, published
and baseline, plus T, seed, steps run, seconds, the target of the issue where there is one and
whether it was met, and the task's extra measurements.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bptt.nn import SequenceModel
from bptt.tasks.registry import get_task, stream
from bptt.tasks.train import fit

OPS = {"<=": operator.le, ">=": operator.ge}

MODEL_OPTIONS = ("hidden", "layers", "bidirectional", "pooling", "dropout", "forget_bias",
                 "input_bias")
TRAIN_OPTIONS = ("lr", "batch_size", "optimizer", "schedule", "clip", "weight_decay")


def run_task(name: str, cell: str = "lstm", T: int | None = None, seed: int = 0,
             steps: int | None = None, epochs: int | None = None, quick: bool = False,
             log: Callable[[str], None] | None = None, log_every: int = 0,
             return_model: bool = False, diagnose: bool = False, **options):
    """Train and evaluate task ``name``; returns the result dict (and the model if asked).

    ``options`` override the task's recipe: model (hidden, layers, bidirectional, pooling,
    dropout) and training (lr, batch_size, optimizer, schedule, clip, weight_decay); None
    values are ignored. ``steps`` or ``epochs`` override the length of training; ``quick``
    trains for a handful of steps (a smoke run). ``diagnose`` adds the gradient flow
    ||dL/dh_t|| and gate saturation before and after training (tasks with a probe batch).
    """
    task = get_task(name)
    unknown = set(options) - set(MODEL_OPTIONS) - set(TRAIN_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    setup = task.setup(cell, T, seed, quick)
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
    # a config with its own model (seq2seq, conditioned) builds it; else a SequenceModel
    model = mcfg.build(rng) if hasattr(mcfg, "build") else SequenceModel(mcfg, rng)
    flows = {}
    if diagnose and setup.probe is not None and not getattr(mcfg, "bidirectional", False):
        flows["init"] = _flow(model, setup.probe())
    start = time.perf_counter()
    hist = fit(model, setup.batches(tcfg.batch_size), tcfg, rng, setup.validate, setup.done,
               log, log_every)
    result = setup.evaluate(model)
    seconds = time.perf_counter() - start
    if flows and setup.probe is not None:
        flows["trained"] = _flow(model, setup.probe())
        result["gradient_flow"] = flows
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
        **({"epochs": n_epochs} if setup.epochs and not quick else {}),
        "seconds": round(seconds, 1),
        "final_train_loss": float(np.mean([loss for _, loss in hist.losses[-20:]])),
        "curve": _curve(hist.losses),
        "model": {k: getattr(mcfg, k, None) for k in ("hidden", "layers", "bidirectional",
                                                      "pooling")},
        **{k: v for k, v in result.items()},
    }
    return (out, model, hist) if return_model else out


def _flow(model, batch) -> dict:
    """Mean ||dL/dh_t|| per step and the gate saturation on one batch."""
    from bptt.analysis.gradflow import model_gradient_flow

    x, y, mask = batch
    flow = model_gradient_flow(model, x, y, mask)
    return {"norms": [float(v) for v in flow.mean_norms()], "saturation": flow.saturation}


def _curve(losses: list, points: int = 100) -> list:
    """The training loss, averaged over windows, as at most ``points`` (step, loss) pairs."""
    if not losses:
        return []
    steps = np.array([s for s, _ in losses])
    vals = np.array([v for _, v in losses])
    edges = np.linspace(0, len(vals), min(points, len(vals)) + 1).astype(int)
    return [[int(steps[b - 1]) + 1, float(vals[a:b].mean())] for a, b in itertools.pairwise(edges)]
