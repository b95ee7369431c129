"""Optimizers as update rules with explicit state, learning-rate schedules, gradient clipping.

An optimizer holds only its hyper-parameters. Its state lives in a plain dict that the caller
keeps (and checkpoints):

    opt = Adam(lr=2e-3)
    state = opt.init(params)                 # {"step": 0, "slots": {name: {slot: array}}}
    opt.update(params, grads, state, lr)     # params and state are updated in place

Update rules (g the gradient, t the step count after increment, lr the learning rate):

    SGD        p -= lr * g
    Momentum   v = mu * v + g;   p -= lr * v   (nesterov: p -= lr * (g + mu * v))
    Adagrad    G += g**2;                            p -= lr * g / (sqrt(G) + eps)   (PyTorch)
               with eps_inside_sqrt=True:            p -= lr * g / sqrt(G + eps)     (min-char-rnn)
    RMSprop    s = rho * s + (1 - rho) * g**2;       p -= lr * g / (sqrt(s) + eps)
    Adam       m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g**2
               p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)   (Kingma & Ba 2015)
    AdamW      Adam, plus decoupled weight decay p -= lr * wd * p (Loshchilov & Hutter 2019)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]


class Optimizer:
    """Base class: subclasses name their per-parameter ``slots`` and implement ``_apply``."""

    slots: tuple[str, ...] = ()

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate is {lr}; it must be positive")
        self.lr = lr

    def init(self, params: Params) -> dict:
        return {"step": 0,
                "slots": {k: {s: np.zeros_like(p) for s in self.slots} for k, p in params.items()}}

    def update(self, params: Params, grads: Params, state: dict, lr: float | None = None) -> None:
        """Apply one update to every parameter in place, using ``lr`` (default self.lr)."""
        lr = self.lr if lr is None else lr
        state["step"] += 1
        for name, p in params.items():
            self._apply(p, grads[name], state["slots"][name], lr, state["step"])

    def _apply(self, p, g, slots, lr, t):
        raise NotImplementedError


class SGD(Optimizer):
    def _apply(self, p, g, slots, lr, t):
        p -= lr * g


class Momentum(Optimizer):
    slots = ("v",)

    def __init__(self, lr: float, mu: float = 0.9, nesterov: bool = False):
        super().__init__(lr)
        self.mu, self.nesterov = mu, nesterov

    def _apply(self, p, g, slots, lr, t):
        v = slots["v"]
        v *= self.mu
        v += g
        p -= lr * (g + self.mu * v) if self.nesterov else lr * v


class Adagrad(Optimizer):
    """G += g**2, then p -= lr * g / (sqrt(G) + eps) (PyTorch's torch.optim.Adagrad), or with
    ``eps_inside_sqrt`` p -= lr * g / sqrt(G + eps) (min-char-rnn's
    ``param += -learning_rate * dparam / np.sqrt(mem + 1e-8)``). The two differ wherever G is
    not large against eps (early steps, rarely used inputs); eps = 0 gives 0/0 = NaN where a
    gradient has been 0 so far, under either rule."""

    slots = ("G",)

    def __init__(self, lr: float, eps: float = 1e-8, eps_inside_sqrt: bool = False):
        super().__init__(lr)
        self.eps, self.eps_inside_sqrt = eps, eps_inside_sqrt

    def _apply(self, p, g, slots, lr, t):
        G = slots["G"]
        G += g * g
        if self.eps_inside_sqrt:
            p -= lr * g / np.sqrt(G + self.eps)
        else:
            p -= lr * g / (np.sqrt(G) + self.eps)


class RMSprop(Optimizer):
    slots = ("s",)

    def __init__(self, lr: float, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(lr)
        self.rho, self.eps = rho, eps

    def _apply(self, p, g, slots, lr, t):
        s = slots["s"]
        s *= self.rho
        s += (1.0 - self.rho) * g * g
        p -= lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay

    def _apply(self, p, g, slots, lr, t):
        m, v = slots["m"], slots["v"]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        if self.weight_decay:
            p -= lr * self.weight_decay * p
        mhat = m / (1.0 - self.beta1 ** t)
        vhat = v / (1.0 - self.beta2 ** t)
        p -= lr * mhat / (np.sqrt(vhat) + self.eps)


class AdamW(Adam):
    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "rmsprop": RMSprop,
              "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, lr: float, **kwargs) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; use one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](lr, **kwargs)


# ---------------------------------------------------------------- learning-rate schedules

def constant_lr(base: float, step: int) -> float:
    return base


def step_decay_lr(base: float, step: int, every: int, gamma: float = 0.5) -> float:
    """base * gamma ** (step // every)."""
    return base * gamma ** (step // every)


def warmup_lr(base: float, step: int, warmup: int) -> float | None:
    """base * (step + 1) / warmup during the first ``warmup`` steps, else None."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    return None


def cosine_decay(base: float, frac: float, min_lr: float = 0.0) -> float:
    """min_lr + (base - min_lr) * (1 + cos(pi * frac)) / 2, frac clamped to [0, 1]."""
    frac = min(max(frac, 0.0), 1.0)
    return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * frac))


def cosine_lr(base: float, step: int, total: int, warmup: int = 0, min_lr: float = 0.0) -> float:
    """Linear warmup for ``warmup`` steps, then cosine decay from base to min_lr at ``total``."""
    lr = warmup_lr(base, step, warmup)
    if lr is not None:
        return lr
    if step >= total:
        return min_lr
    return cosine_decay(base, (step - warmup) / max(1, total - warmup), min_lr)


SCHEDULES = ("constant", "step", "cosine")


def lr_at(schedule: str, base: float, step: int, total: int = 0, warmup: int = 0,
          every: int = 1000, gamma: float = 0.5, min_lr: float = 0.0,
          progress: float | None = None) -> float:
    """Learning rate at ``step`` (0-based) for the named schedule.

    Every schedule starts with a linear warmup over ``warmup`` steps. The cosine decays over
    steps ``warmup .. total``, or, when ``progress`` is given (the fraction of a time budget
    used, for a run that ends on the clock), over that fraction.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; use one of {list(SCHEDULES)}")
    lr = warmup_lr(base, step, warmup)
    if lr is not None:
        return lr
    if schedule == "constant":
        return constant_lr(base, step)
    if schedule == "step":
        return step_decay_lr(base, step, every, gamma)
    if progress is not None:
        return cosine_decay(base, progress, min_lr)
    return cosine_lr(base, step, total, warmup, min_lr)


# ---------------------------------------------------------------- clipping

def global_norm(grads: Params) -> float:
    """sqrt(sum over every gradient array of sum(g**2))."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_global_norm(grads: Params, max_norm: float,
                     norm: float | None = None) -> tuple[float, bool]:
    """Scale all grads in place so their global norm is at most ``max_norm``.

    ``norm``: the grads' global norm when the caller already has it. Returns (the norm before
    clipping, whether clipping fired).
    """
    norm = global_norm(grads) if norm is None else norm
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
        return norm, True
    return norm, False


def clip_value(grads: Params, limit: float) -> int:
    """Clip every entry to [-limit, limit] in place; returns how many entries were clipped.

    min-char-rnn clips at 5 the gradients of its loss summed over the T = 25 steps of a chunk.
    The same limit on the gradient of the per-step mean loss (bptt train's default) acts like
    a limit of 5 T on the summed gradients: T times looser.
    """
    n = 0
    for g in grads.values():
        n += int(np.count_nonzero(np.abs(g) > limit))
        np.clip(g, -limit, limit, out=g)
    return n


# ---------------------------------------------------------------- the training step

@dataclass(frozen=True)
class Clipping:
    """Gradient clipping of a training step: by value first, then by global norm (0 = off)."""

    max_norm: float = 0.0
    max_value: float = 0.0


@dataclass(frozen=True)
class StepStats:
    """What one training step did.

    norm: the global gradient norm before any clipping; clipped: clipping changed the gradient
    (by value or by norm); clipped_values: entries clipped by value; failure: why the step was
    not taken or left non-finite parameters (None when it is fine).
    """

    norm: float
    clipped: bool = False
    clipped_values: int = 0
    failure: str | None = None


def train_step(params: Params, grads: Params, optimizer: Optimizer, state: dict, lr: float,
               clipping: Clipping = Clipping()) -> StepStats:
    """Clip ``grads`` in place and apply one ``optimizer`` update to ``params`` (in place).

        norm = global_norm(grads)                        (before clipping, for the logs)
        non-finite norm -> no update, failure "non-finite gradient"
        clip_value(grads, max_value); clip_global_norm(grads, max_norm)
        optimizer.update(params, grads, state, lr)
        non-finite parameters after the update -> failure "non-finite parameters"

    The last check catches a divergence whose loss and gradient still look finite (weights that
    overflowed to inf can give saturated, finite activations). A failed step leaves the caller
    to restore its parameters (the char-LM trainer rolls back to a snapshot).
    """
    norm = global_norm(grads)
    if not math.isfinite(norm):
        return StepStats(norm, failure="non-finite gradient")
    n_values = clip_value(grads, clipping.max_value) if clipping.max_value else 0
    fired = False
    if clipping.max_norm:
        _, fired = clip_global_norm(grads, clipping.max_norm,
                                    None if n_values else norm)
    optimizer.update(params, grads, state, lr)
    if not all(np.isfinite(p).all() for p in params.values()):
        return StepStats(norm, fired or n_values > 0, n_values, "non-finite parameters")
    return StepStats(norm, fired or n_values > 0, n_values)
