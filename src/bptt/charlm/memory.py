"""Estimates of the memory a model needs, checked before anything is allocated, so that an
absurd size (``--hidden 100000``, a vocabulary of 10^9 in a damaged checkpoint) is refused in
one line with the number instead of a MemoryError (or the OOM killer) later."""

from __future__ import annotations

import os

import numpy as np

from bptt.nn import LMConfig


def n_parameters(cfg: LMConfig) -> int:
    """The parameter count of ``LanguageModel(cfg)`` (embed.W, per layer Wx, Wh, b and h0 / c0,
    out.w, out.b), in closed form (no loop over layers: a damaged size stays cheap)."""
    G = 4 if cfg.cell == "lstm" else 1
    V, H = int(cfg.vocab_size), int(cfg.hidden)
    D = int(cfg.embed) if cfg.embed > 0 else V
    K = int(cfg.layers)
    n = V * int(cfg.embed) if cfg.embed > 0 else 0
    h0 = (2 * H if cfg.cell == "lstm" else H) if cfg.learn_h0 else 0     # h0 (and c0)
    per_layer = H * G * H + G * H + h0                                 # Wh, b, h0
    n += D * G * H + (K - 1) * H * G * H + K * per_layer           # Wx of layer 0, then H -> H
    return n + H * V + V


def training_bytes(cfg: LMConfig, N: int, T: int, opt_slots: int = 2) -> int:
    """Parameters, gradients, optimizer slots, a rollback snapshot, and the activations of one
    (N, T) batch (per layer the gate buffers, states and caches; the scores and their softmax)."""
    item = np.dtype(cfg.dtype).itemsize
    G = 4 if cfg.cell == "lstm" else 1
    P = n_parameters(cfg)
    D = int(cfg.embed) if cfg.embed > 0 else int(cfg.vocab_size)
    acts = N * T * (D + int(cfg.layers) * (G + 4) * int(cfg.hidden) + 3 * int(cfg.vocab_size))
    return item * (P * (3 + 2 * opt_slots) + acts)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, else the physical memory; None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_fits(need: int, what: str, fix: str) -> None:
    """ValueError naming the estimate when ``need`` bytes exceed the memory available."""
    have = available_bytes()
    if have is not None and need > have:
        raise ValueError(f"{what} needs about {fmt_bytes(need)} of memory and "
                         f"{fmt_bytes(have)} is available; {fix}")
