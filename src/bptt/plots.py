"""The loss plot of a run (PNG): train and validation loss per step, and validation loss against
wall-clock time. Needs matplotlib (the ``train`` extra); without it, no plot is drawn."""

from __future__ import annotations

import io
import os

from .checkpoint import atomic_write_bytes


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_losses(records: list[dict], path: str | os.PathLike, title: str = "") -> bool:
    """Draw ``records`` (metrics.jsonl rows) to ``path`` atomically; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        return False
    steps = [r["step"] for r in records]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    if train:
        ax1.plot(*zip(*train), label="train", color="tab:blue")
    ax1.plot(steps, [r["val_loss"] for r in records], "o-", ms=3, label="validation",
             color="tab:orange")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss (nats/char)")
    ax1.grid(alpha=0.3)
    ax1.legend()
    minutes = [r.get("elapsed_s", 0.0) / 60 for r in records]
    ax2.plot(minutes, [r["val_loss"] for r in records], "o-", ms=3, color="tab:orange")
    ax2.set_xlabel("wall-clock minutes")
    ax2.set_ylabel("validation loss (nats/char)")
    ax2.grid(alpha=0.3)
    if records:
        best = min(records, key=lambda r: r["val_loss"])
        ax2.set_title(f"best {best['val_loss']:.3f} nats/char at step {best['step']}",
                      fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return True
