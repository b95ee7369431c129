"""Numerical gradient checking: central differences against an upstream gradient.

For a function f producing an output y and an upstream gradient dy = dL/dy, the directional
derivative of L = sum(y * dy) with respect to each entry of an input p is estimated by

    dL/dp[k] ~ (sum(f(p + h e_k) * dy) - sum(f(p - h e_k) * dy)) / (2 h)

and compared with the analytic gradient through ``rel_error``:

    rel_error(a, b) = max|a - b| / max(max|a| + max|b|, tiny)

(a scale-free relative error of the whole array, which does not blow up on entries that are
zero by chance). In float64 with h = 1e-5 a correct backward gives about 1e-9 or less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / (max|a| + max|b|); 0.0 when both are all zeros."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    denom = np.abs(a).max() + np.abs(b).max()
    if denom == 0.0:
        return 0.0
    return float(np.abs(a - b).max() / max(denom, np.finfo(np.float64).tiny))


def numerical_gradient(f: Callable[[], object], p: np.ndarray,
                       dout: Sequence[np.ndarray] | np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of sum(f() * dout) with respect to ``p`` (perturbed in place).

    ``f`` takes no arguments and reads ``p`` itself; it returns one array or a tuple of arrays
    (matched with ``dout``; entries of dout that are None are skipped). p is restored.
    """
    douts = dout if isinstance(dout, (list, tuple)) else [dout]

    def objective() -> float:
        out = f()
        outs = out if isinstance(out, (list, tuple)) else [out]
        return float(sum(np.sum(o * d) for o, d in zip(outs, douts) if d is not None))

    grad = np.zeros(p.shape, dtype=np.float64)
    flat = p.reshape(-1)               # a view: p must be contiguous
    if not np.shares_memory(flat, p):
        raise ValueError("numerical_gradient: p must be a contiguous array")
    g = grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        plus = objective()
        flat[k] = old - h
        minus = objective()
        flat[k] = old
        g[k] = (plus - minus) / (2.0 * h)
    return grad


def numerical_gradient_scalar(f: Callable[[], float], p: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of a scalar loss ``f()`` with respect to ``p`` (restored)."""
    return numerical_gradient(lambda: np.asarray(f()), p, np.ones(()), h)


@dataclass
class CheckResult:
    layer: str
    name: str
    error: float
    threshold: float

    @property
    def ok(self) -> bool:
        return bool(self.error <= self.threshold)


def check_function(layer: str, forward: Callable[..., tuple], backward: Callable[..., tuple],
                   args: dict[str, Any], grad_names: Sequence[str | None],
                   douts: Sequence[np.ndarray] | np.ndarray,
                   threshold: float = 1e-7, h: float = 1e-5,
                   n_outputs: int = 1) -> list[CheckResult]:
    """Check every gradient of a functional layer against central differences.

    ``forward(**args)`` returns (*outputs, cache) with ``n_outputs`` outputs;
    ``backward(*douts, cache)`` returns the gradients named by ``grad_names`` in order (a None
    name skips that position). Every named argument is checked; returns one result per name.
    """
    douts = [douts] if isinstance(douts, np.ndarray) else list(douts)
    res = forward(**args)
    grads = backward(*douts, res[-1])
    grads = grads if isinstance(grads, tuple) else (grads,)
    results = []
    for name, analytic in zip(grad_names, grads):
        if name is None:
            continue
        num = numerical_gradient(lambda: forward(**args)[:n_outputs], args[name], douts, h)
        results.append(CheckResult(layer, name, rel_error(analytic, num), threshold))
    return results


def check_loss(layer: str, loss_fn: Callable[[], tuple[float, dict[str, np.ndarray]]],
               params: dict[str, np.ndarray], threshold: float = 1e-7,
               h: float = 1e-5) -> list[CheckResult]:
    """Check a model-style ``loss_fn() -> (loss, grads)`` for every array in ``params``."""
    _, grads = loss_fn()
    out = []
    for name, p in params.items():
        num = numerical_gradient_scalar(lambda: loss_fn()[0], p, h)
        out.append(CheckResult(layer, name, rel_error(grads[name], num), threshold))
    return out
