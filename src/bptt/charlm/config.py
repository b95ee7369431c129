"""The configuration of a training run (``TrainConfig``), its presets and its learning-rate
schedule. A TrainConfig is stored in every checkpoint; ``bptt train``'s options map onto its
fields one to one (``--seq-len`` is ``seq_len``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bptt.charlm.text import ENCODINGS
from bptt.nn import LMConfig
from bptt.nn.layers import CELLS
from bptt.optim import OPTIMIZERS, SCHEDULES, lr_at


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint)."""

    # data
    corpus: list[str] = field(default_factory=list)   # files, concatenated; [] = default corpus
    corpus_name: str = ""
    encoding: str = "utf-8"            # utf-8 | bytes
    val_fraction: float = 0.1          # the last fraction of the text (by position)
    # model
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embed: int = 64                    # 0 = one-hot input
    dropout: float = 0.0               # between layers
    learn_h0: bool = False
    dtype: str = "float32"
    init_std: float = 0.0              # > 0: weight matrices ~ N(0, init_std**2); 0 = default
    # batches
    batch: int = 32                    # N streams
    seq_len: int = 128                 # T steps of truncated BPTT
    # optimizer
    optimizer: str = "adam"
    lr: float = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.9
    rho: float = 0.9
    eps: float = 1e-8
    eps_inside_sqrt: bool = False      # Adagrad: g / sqrt(G + eps) (min-char-rnn), else
                                       # g / (sqrt(G) + eps) (PyTorch)
    weight_decay: float | None = None  # None: the optimizer's own default (AdamW 0.01, Adam 0)
    # schedule
    schedule: str = "cosine"           # constant | step | cosine
    warmup: int = 100
    min_lr_ratio: float = 0.1          # cosine ends at lr * min_lr_ratio
    decay_every: int = 1000            # step schedule: lr *= decay_gamma every decay_every steps
    decay_gamma: float = 0.5
    # loss: "mean" = nats per character (the mean over N and T), "sum" = summed over the T steps
    # of a batch and averaged over the N streams (min-char-rnn's loss for N = 1). Gradients,
    # clipping and updates act on this loss; the logged loss is per character either way.
    reduction: str = "mean"
    # clipping
    clip_norm: float = 5.0             # 0 = off
    clip_value: float = 0.0            # 0 = off
    # budget
    max_steps: int = 0                 # 0 = no step limit
    max_minutes: float = 0.0           # 0 = no time limit
    # evaluation and output
    eval_every: int = 200
    eval_minutes: float = 0.0          # also evaluate after this much wall-clock time (0 = off)
    eval_chars: int = 200_000          # validation characters per evaluation (0 = all)
    sample_chars: int = 300            # characters sampled at each evaluation (0 = none)
    sample_temperature: float = 0.8
    # divergence
    max_rollbacks: int = 5             # consecutive rollbacks before giving up
    rollback_lr_factor: float = 0.5
    snapshot_every: int = 50
    seed: int = 0

    def model_config(self, vocab_size: int) -> LMConfig:
        return LMConfig(vocab_size=vocab_size, hidden=self.hidden, layers=self.layers,
                        cell=self.cell, embed=self.embed, dropout=self.dropout,
                        learn_h0=self.learn_h0, dtype=self.dtype, init_std=self.init_std)

    @property
    def time_budgeted(self) -> bool:
        """True when the schedule runs on wall-clock time (a time limit and no step limit)."""
        return self.max_steps == 0 and self.max_minutes > 0

    def validate(self) -> TrainConfig:
        """Check every option's type and range (one-line ValueError naming the option and the
        rule); the CLI calls this before it touches any file. The rules are the tables below
        the class: _CHOICES, _RANGE_RULES, _CROSS_RULES."""
        def bad(name, rule):
            value = getattr(self, name)
            raise ValueError(f"--{name.replace('_', '-')} is {value!r}; {rule}")

        for f in dataclasses.fields(self):
            rule = _type_error(getattr(self, f.name), str(f.type))
            if rule:
                bad(f.name, rule)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                bad(name, f"use one of {allowed}")
        for names, ok, rule in _RANGE_RULES:
            for name in names:
                if not ok(getattr(self, name)):
                    bad(name, rule)
        for name, ok, rule in _CROSS_RULES:
            if not ok(self):
                bad(name, rule)
        if self.schedule == "cosine" and self.max_steps == 0 and self.max_minutes == 0:
            raise ValueError("the cosine schedule needs an end: give --max-steps or --max-minutes "
                             "(or --schedule constant to train until interrupted)")
        return self

    def optimizer_kwargs(self) -> dict:
        name = self.optimizer
        kw: dict = {}
        if name == "momentum":
            kw = {"mu": self.momentum}
        elif name == "adagrad":
            kw = {"eps": self.eps, "eps_inside_sqrt": self.eps_inside_sqrt}
        elif name == "rmsprop":
            kw = {"rho": self.rho, "eps": self.eps}
        elif name in ("adam", "adamw"):
            kw = {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
            if self.weight_decay is not None:
                kw["weight_decay"] = self.weight_decay
        return kw


# Presets fill in options the user did not give. "default" is the main job (`bptt train`),
# "shakespeare" the 30-minute tiny-shakespeare target, "tiny" a seconds-long smoke run.
PRESETS: dict[str, dict] = {
    "default": dict(cell="lstm", layers=2, hidden=256, embed=64, dropout=0.0, batch=32,
                    seq_len=128, optimizer="adam", lr=3e-3, schedule="cosine", warmup=100,
                    min_lr_ratio=0.05, clip_norm=5.0, max_minutes=7.0, eval_every=250,
                    eval_minutes=1.0, eval_chars=50_000, sample_chars=300),
    "shakespeare": dict(cell="lstm", layers=2, hidden=384, embed=64, dropout=0.2, batch=32,
                        seq_len=128, optimizer="adam", lr=2e-3, schedule="cosine", warmup=100,
                        min_lr_ratio=0.02, clip_norm=5.0, max_minutes=30.0, eval_every=400,
                        eval_minutes=2.5, eval_chars=0, sample_chars=300),
    "tiny": dict(cell="lstm", layers=1, hidden=32, embed=16, dropout=0.0, batch=4, seq_len=16,
                 optimizer="adam", lr=1e-2, schedule="cosine", warmup=5, max_steps=60,
                 eval_every=20, eval_chars=2000, sample_chars=80),
}
# min-char-rnn (Karpathy 2015) exactly: one-hot input, one tanh RNN layer of 100, one stream of
# 25 steps, the loss summed over the 25 steps, every gradient entry clipped to [-5, 5], Adagrad
# with lr 0.1 and p -= lr * g / sqrt(G + 1e-8), weights N(0, 0.01^2), zero biases, float64, no
# schedule. Its one difference: it trains on the whole text; this holds out the last 10 %.
PRESETS["min-char-rnn"] = dict(
    cell="rnn", layers=1, hidden=100, embed=0, dropout=0.0, learn_h0=False, dtype="float64",
    init_std=0.01, batch=1, seq_len=25, optimizer="adagrad", lr=0.1, eps=1e-8,
    eps_inside_sqrt=True, reduction="sum", schedule="constant", warmup=0, clip_norm=0.0,
    clip_value=5.0, max_minutes=5.0, eval_every=1000, eval_chars=50_000, sample_chars=200,
    sample_temperature=1.0)
RESUME_OVERRIDABLE = ("max_steps", "max_minutes", "eval_every", "eval_minutes", "eval_chars",
                      "sample_chars", "sample_temperature", "max_rollbacks")


def config_from_preset(preset: str, **given) -> TrainConfig:
    """TrainConfig from the named preset, with the given (non-None) options on top.

    Giving only one of ``max_steps`` and ``max_minutes`` sets the other to 0 (no limit)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(given) - fields
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    given = {k: v for k, v in given.items() if v is not None}
    values = {**PRESETS[preset], **given}
    # The budget is one choice: giving --max-steps or --max-minutes turns off the preset's other.
    for mine, other in (("max_steps", "max_minutes"), ("max_minutes", "max_steps")):
        if mine in given and other not in given:
            values[other] = 0
    return TrainConfig(**values).validate()


def learning_rate(cfg: TrainConfig, step: int, time_frac: float) -> float:
    """The scheduled learning rate at ``step`` (0-based), before any rollback reduction
    (``bptt.optim.lr_at``: a linear warmup, then the schedule). A time-budgeted cosine
    (``max_minutes`` without ``max_steps``) decays over the fraction of the time budget used."""
    return lr_at(cfg.schedule, cfg.lr, step, total=cfg.max_steps, warmup=cfg.warmup,
                 every=cfg.decay_every, gamma=cfg.decay_gamma, min_lr=cfg.lr * cfg.min_lr_ratio,
                 progress=time_frac if cfg.time_budgeted else None)


# The options with a fixed set of values, and the values (TrainConfig.validate).
_CHOICES: dict[str, list[str]] = {
    "cell": sorted(CELLS), "optimizer": sorted(OPTIMIZERS), "schedule": list(SCHEDULES),
    "encoding": list(ENCODINGS), "dtype": ["float32", "float64"], "reduction": ["mean", "sum"]}
# (options, the test each one's value must pass, the rule it breaks), checked in this order
# after the types (so every value here is a finite number of the right type, or None).
_RANGE_RULES: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (("layers", "hidden", "batch", "seq_len", "eval_every", "snapshot_every", "decay_every"),
     lambda v: v >= 1, "it must be at least 1"),
    (("embed", "warmup", "max_steps", "eval_chars", "sample_chars", "max_rollbacks", "seed"),
     lambda v: v >= 0, "it must be 0 or more"),
    (("sample_chars",), lambda v: v <= 100_000,
     "it must be at most 100,000 (sampled at every evaluation)"),
    (("eval_chars",), lambda v: v != 1,
     "one character leaves nothing to predict: use 2 or more (0 = all)"),
    (("clip_norm", "clip_value", "max_minutes", "eval_minutes", "init_std"),
     lambda v: v >= 0, "it must be 0 (off) or positive"),
    (("lr", "eps", "sample_temperature"), lambda v: v > 0, "it must be positive"),
    (("dropout",), lambda v: 0 <= v < 1, "it must be in [0, 1)"),
    (("val_fraction",), lambda v: 0 < v < 1, "it must be in (0, 1)"),
    (("beta1", "beta2", "momentum", "rho"), lambda v: 0 <= v < 1,
     "it must be in [0, 1) (at 1 the average never moves)"),
    (("min_lr_ratio",), lambda v: 0 <= v <= 1, "it must be in [0, 1]"),
    (("rollback_lr_factor",), lambda v: 0 < v < 1, "it must be in (0, 1)"),
    (("decay_gamma",), lambda v: 0 < v <= 1, "it must be in (0, 1]"),
    (("weight_decay",), lambda v: v is None or v >= 0, "it must be 0 or more"),
)
# (option named in the message, the test the whole config must pass, the rule it breaks).
_CROSS_RULES: tuple[tuple[str, Callable[[TrainConfig], bool], str], ...] = (
    ("dropout", lambda c: c.dropout == 0 or c.layers >= 2,
     "dropout acts between layers; use --layers 2 or more"),
)


def _type_error(value, kind: str) -> str | None:
    """The rule ``value`` breaks for a field annotated ``kind``, or None when it has the type
    (a float field must also be finite)."""
    ok = {"int": _is_int(value), "float": _is_number(value),
          "float | None": value is None or _is_number(value),
          "str": isinstance(value, str), "bool": isinstance(value, bool),
          "list[str]": isinstance(value, list)}.get(kind, True)
    if not ok:
        return f"it must be {'an integer' if kind == 'int' else 'a ' + kind}"
    if kind.startswith("float") and value is not None and not math.isfinite(value):
        return "it must be a finite number"
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
