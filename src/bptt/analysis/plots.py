"""Every figure bptt draws (the run report's, the task suite's), with matplotlib (the ``train``
extra), returned as PNG bytes.

Each function takes plain data and returns the bytes of one PNG, or None when there is nothing
to draw; callers write the bytes where they want them. Figures are built on
``matplotlib.figure.Figure`` directly and drawn on an Agg canvas (no pyplot, no global state).
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np

# Figures are WIDTH inches at DPI (1500 px) and shown about 1000 px wide, so 10 pt text reads at
# the page's own size and stays sharp on high-density screens.
WIDTH, DPI = 10.0, 150
STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
         "xtick.labelsize": 9, "ytick.labelsize": 9}
TRAIN, VAL, CLIP = "#2b6cb0", "#dd6b20", "#c53030"
LAYER_COLOURS = ["#38a169", "#3182ce", "#e53e3e", "#805ad5", "#d69e2e", "#319795"]


def _styled(draw):
    """Run a drawing function under the report's matplotlib style."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def _figure(height: float, ncols: int = 1, width: float = WIDTH):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, color="#e2e8f0", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _series(metrics: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records whose ``key`` is a finite number."""
    pts = [(m["step"], float(m[key])) for m in metrics
           if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool)
           and math.isfinite(m[key])]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pts)
    return np.asarray(s), np.asarray(v)


@_styled
def loss_curves(metrics: list[dict]) -> bytes | None:
    """Training and validation loss against step."""
    ts, tv = _series(metrics, "train_loss")
    vs, vv = _series(metrics, "val_loss")
    if not ts.size and not vs.size:
        return None
    fig, (ax,) = _figure(3.4)
    if ts.size:
        ax.plot(ts, tv, color=TRAIN, linewidth=1.0, alpha=0.85, label="train")
    if vs.size:
        ax.plot(vs, vv, color=VAL, linewidth=1.8, marker="o", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    return _png(fig)


@_styled
def training_losses(metrics: list[dict], title: str = "") -> bytes | None:
    """A training run's ``loss.png``: train and validation loss against step (left) and
    validation loss against wall-clock minutes (right, from ``elapsed_s``)."""
    ts, tv = _series(metrics, "train_loss")
    vs, vv = _series(metrics, "val_loss")
    if not ts.size and not vs.size:
        return None
    fig, (ax, ax2) = _figure(3.4, 2)
    if ts.size:
        ax.plot(ts, tv, color=TRAIN, linewidth=1.2, label="train")
    if vs.size:
        ax.plot(vs, vv, color=VAL, linewidth=1.8, marker="o", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.legend(frameon=False)
    timed = [(m["elapsed_s"] / 60, m["val_loss"]) for m in metrics
             if isinstance(m.get("elapsed_s"), (int, float))
             and isinstance(m.get("val_loss"), (int, float)) and math.isfinite(m["val_loss"])]
    if timed:
        minutes, val = zip(*timed)
        ax2.plot(minutes, val, color=VAL, linewidth=1.8, marker="o", markersize=3)
        k = int(np.argmin(val))
        ax2.set_title(f"best {val[k]:.3f} nats/char at {minutes[k]:.1f} min", color="#4a5568")
    ax2.set_xlabel("wall-clock minutes")
    ax2.set_ylabel("validation loss (nats/char)")
    if title:
        fig.suptitle(title)
    return _png(fig)


@_styled
def lr_and_grad_norm(metrics: list[dict]) -> bytes | None:
    """Learning rate (left) and pre-clip gradient norm with clipping events (right)."""
    ls, lv = _series(metrics, "lr")
    gs, gv = _series(metrics, "grad_norm")
    panels = [p for p, s in (("lr", ls), ("grad", gs)) if s.size]
    if not panels:
        return None
    fig, axes = _figure(3.0, len(panels))
    for ax, panel in zip(axes, panels):
        if panel == "lr":
            ax.plot(ls, lv, color=TRAIN, linewidth=1.4)
            ax.set_ylabel("learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        else:
            ax.plot(gs, gv, color="#4a5568", linewidth=0.9)
            clipped = {m["step"] for m in metrics if m.get("clipped")}
            hit = np.isin(gs, list(clipped))
            ax.scatter(gs[hit], gv[hit], s=10, color=CLIP, zorder=3)
            ax.set_title(f"before clipping; red: clipped ({int(hit.sum()):,} of {gs.size:,} "
                         "steps)", color="#4a5568")
            if gv.min() > 0:
                ax.set_yscale("log")
            ax.set_ylabel("gradient norm")
        ax.set_xlabel("step")
    return _png(fig)


@_styled
def gate_saturation(saturation: list[dict]) -> bytes | None:
    """Karpathy et al. 2015, fig. 3: one point per gate unit at (left-, right-saturated fraction),
    one panel per gate, coloured by layer."""
    if not saturation:
        return None
    titles = {"i": "input gate i", "f": "forget gate f", "o": "output gate o",
              "r": "reset gate r", "z": "update gate z"}
    gates = [g for g in titles if g in saturation[0]]
    fig, axes = _figure(3.6, len(gates))
    for ax, g in zip(axes, gates):
        ax.plot([0, 1], [1, 0], color="#a0aec0", linewidth=0.8, linestyle="--")
        for k, layer in enumerate(saturation):
            ax.scatter(layer[g]["left"], layer[g]["right"], s=9, alpha=0.7,
                       color=LAYER_COLOURS[k % len(LAYER_COLOURS)], label=f"layer {k}",
                       linewidths=0)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.set_title(titles[g])
        ax.set_xlabel("fraction left-saturated (< 0.1)")
    axes[0].set_ylabel("fraction right-saturated (> 0.9)")
    if len(saturation) > 1:
        axes[-1].legend(frameon=False, loc="upper right")
    return _png(fig)


@_styled
def grad_norm_through_time(curves: dict[str, list[float]], title: str = "",
                           relative: bool = False) -> bytes | None:
    """||dL/dh_t|| against t for each labelled curve (T,), log y where every value is positive.

    With ``relative`` each curve is divided by its value at the last step, so models whose
    losses differ in size compare on how fast the gradient decays going back in time. Labels
    containing "init" are drawn dashed; labels sharing a first word share a colour (one colour
    per model, trained and at init).
    """
    series = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items() if len(v)}
    if not series:
        return None
    if relative:
        series = {k: v / v[-1] for k, v in series.items()}
    palette = [TRAIN, VAL, *LAYER_COLOURS]
    colours: dict[str, str] = {}
    fig, (ax,) = _figure(3.4)
    for name, v in series.items():
        colour = colours.setdefault(name.split()[0], palette[len(colours) % len(palette)])
        ax.plot(np.arange(v.size), v, linewidth=1.6, label=name, color=colour,
                linestyle="--" if "init" in name else "-")
    if all((v > 0).all() for v in series.values()):
        ax.set_yscale("log")
    ax.set_xlabel("time step t" + (" (the loss is read at the last step)" if relative else ""))
    ax.set_ylabel(r"$\Vert\, \partial L / \partial h_t \,\Vert$"
                  + (r" / $\Vert\, \partial L / \partial h_T \,\Vert$" if relative else ""))
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return _png(fig)


@_styled
def loss_panels(panels: list[tuple[str, list[list[tuple[float, float]]]]],
                cols: int = 4) -> bytes:
    """A grid of small training-loss plots (log y): one panel per (title, curves), each curve a
    list of (step, loss) points (no panels: one empty row)."""
    rows = max(1, -(-len(panels) // cols))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * cols, 2.8 * rows), dpi=90, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, (title, curves) in zip(axes, panels):
        for curve in curves:
            steps, losses = zip(*curve)
            ax.plot(steps, losses, linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.axis("off")                                # the panels left over
    fig.supxlabel("training step")
    fig.supylabel("training loss")
    return _png(fig)
