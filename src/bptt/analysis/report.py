"""``report.html``: one self-contained page about a training run, readable offline.

    write_report(run_dir / "report.html", metrics=[...], samples=[...], title="...",
                 trace=..., text=..., saturation=..., units=...)

The page holds the loss curves, learning rate and gradient norm with clipping events, samples
over time, and for a character model an activation heatmap: a passage coloured by one hidden
unit's activation, a unit selector, the units found by
``bptt.analysis.insight.interesting_units`` and, for LSTM/GRU, the gate saturation plot. Figures
are inline PNGs (``bptt.analysis.plots``); the heatmap is drawn by an inline script
(``assets/report.js``). A Content-Security-Policy forbids every network load.

``build_run_report(run_dir)`` reads a run directory (``metrics.jsonl``, ``samples.jsonl``, the
model through ``load_model_for_report``) and writes its report; ``bptt report RUN`` calls it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np

from bptt.analysis import plots
from bptt.analysis.insight import (
    FEATURES,
    GATES,
    activation_trace,
    gate_saturation,
    interesting_units,
)
from bptt.charlm.rundir import atomic_write_text, read_jsonl

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")
NO_CHECKPOINT = "This run has no checkpoint to load, so there is no activation heatmap."


def esc(s) -> str:
    """HTML-escape any value's text, quotes included."""
    return html.escape(str(s), quote=True)


def script_json(obj) -> str:
    """JSON safe to place inside <script>: no '<', '>' or '&' can end or confuse the element."""
    s = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return resources.files("bptt.analysis").joinpath("assets", name).read_text(encoding="utf-8")


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{b64}">'


def _fmt(x, digits: int = 4) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return str(x)


# ---------------------------------------------------------------- sections

def _summary(metrics: list[dict]) -> str:
    rows = []
    last = metrics[-1]
    rows.append(("steps", _fmt(last["step"])))
    for key, label in (("train_loss", "final train loss"), ("val_loss", "final validation loss")):
        vals = [m[key] for m in metrics if isinstance(m.get(key), (int, float))]
        if vals:
            rows.append((label, _fmt(float(vals[-1]))))
    vals = [(m["val_loss"], m["step"]) for m in metrics
            if isinstance(m.get("val_loss"), (int, float)) and math.isfinite(m["val_loss"])]
    if vals:
        best, at = min(vals)
        rows.append(("best validation loss", f"{_fmt(float(best))} at step {_fmt(at)}"))
    clipped = [m for m in metrics if "clipped" in m]
    if clipped:
        n = sum(1 for m in clipped if m["clipped"])
        rows.append(("gradient clipped", f"on {n:,} of {len(clipped):,} logged steps"))
    cps = [m["chars_per_s"] for m in metrics if isinstance(m.get("chars_per_s"), (int, float))]
    if cps:
        rows.append(("throughput", f"{np.median(cps):,.0f} chars/s (median)"))
    times = [m["time_s"] for m in metrics if isinstance(m.get("time_s"), (int, float))]
    if times:
        rows.append(("time", f"{max(times):,.1f} s"))
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def _training_section(metrics: list[dict]) -> str:
    out = ['<section id="training"><h2>Training</h2>']
    if not metrics:
        out.append('<p class="note">No metrics were recorded.</p></section>')
        return "".join(out)
    out.append(_summary(metrics))
    out.append(_img(plots.loss_curves(metrics), "training and validation loss against step"))
    out.append(_img(plots.lr_and_grad_norm(metrics),
                    "learning rate and gradient norm against step, clipping events marked"))
    out.append("</section>")
    return "".join(out)


def _samples_section(samples: list[dict]) -> str:
    out = ['<section id="samples"><h2>Samples</h2>']
    if not samples:
        out.append('<p class="note">No samples were recorded.</p>')
    else:
        out.append('<div class="samples">')
        for s in sorted(samples, key=lambda s: s.get("step", 0)):
            extra = "".join(f", {esc(k)} {esc(_fmt(v))}" for k, v in s.items()
                            if k not in ("step", "text") and isinstance(v, (int, float, str)))
            out.append(f'<div class="sample"><div class="step">step {esc(_fmt(s.get("step")))}'
                       f'{extra}</div><pre>{esc(s.get("text", ""))}</pre></div>')
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def _quantize(h: np.ndarray) -> str:
    """(T, H) activations in [-1, 1] -> base64 of int8 round(127 h), unit-major (H, T)."""
    q = np.rint(np.clip(h, -1.0, 1.0) * 127.0).astype(np.int8).T     # (H, T)
    return base64.b64encode(np.ascontiguousarray(q).tobytes()).decode("ascii")


def _heatmap_section(trace: dict, text: str, units: list[dict] | None) -> tuple[str, str]:
    """(the section's HTML, the <script> holding its data)."""
    layers = [layer["h"] for layer in trace["layers"]]
    for k, h in enumerate(layers):
        if h.ndim != 2 or h.shape[0] != len(text):
            raise ValueError(f"trace layer {k} has h of shape {h.shape}; it must be (T, H) "
                             f"with T = len(text) = {len(text)}")
    units = units or []
    tags: dict[str, list[str]] = {}
    for u in units:
        tags.setdefault(f"{u['layer']}:{u['unit']}", []).append(f"{u['feature']} {u['r']:+.2f}")
    best = max(units, key=lambda u: abs(u["r"]), default=None)
    default = f"{best['layer']}:{best['unit']}" if best else "0:0"

    opts = []
    for k, h in enumerate(layers):
        opts.append(f'<optgroup label="layer {k}">')
        for j in range(h.shape[1]):
            key = f"{k}:{j}"
            tag = f" — {', '.join(tags[key])}" if key in tags else ""
            sel = " selected" if key == default else ""
            opts.append(f'<option value="{key}"{sel}>layer {k}, unit {j}{esc(tag)}</option>')
        opts.append("</optgroup>")

    found = []
    for name, desc in FEATURES.items():
        mine = [u for u in units if u["feature"] == name]
        if not mine:
            continue
        found.append(f'<li class="head" title="{esc(desc)}">{esc(name.replace("_", " "))}</li>')
        for u in mine:
            key = f"{u['layer']}:{u['unit']}"
            found.append(f'<li class="unit" tabindex="0" role="button" data-unit="{key}">'
                         f"layer {u['layer']}, unit {u['unit']}: r = {u['r']:+.2f}</li>")
    found_html = ("<ul id=\"units\">" + "".join(found) + "</ul>" if found else
                  '<ul id="units"></ul><p class="note">No text feature varies over this '
                  "passage.</p>")

    section = (
        '<section id="heatmap"><h2>Activation heatmap</h2>'
        f'<p class="note">A passage of {len(text):,} characters of validation text; each character '
        "is coloured by the chosen hidden unit's activation h<sub>t</sub> right after the model "
        "has read it. Hover a character to read its value.</p>"
        '<div class="controls"><label>unit <select id="unit">' + "".join(opts) +
        '</select></label><span class="legend">&minus;1 <span class="bar"></span> +1</span>'
        '<span id="readout"></span></div>'
        '<div class="heatmap"><pre id="passage"></pre><div><p class="muted" style="margin:0">'
        "Units most correlated (Pearson r) with each feature; click one to show it.</p>"
        f"{found_html}</div></div></section>")
    data = {"text": text, "layers": [_quantize(h) for h in layers]}
    script = f'<script id="heatmap-data" type="application/json">{script_json(data)}</script>'
    return section, script


def _saturation_section(saturation: list[dict]) -> str:
    return ('<section id="saturation"><h2>Gate saturation</h2>'
            '<p class="note">Each point is one gate unit, placed by the fraction of the passage '
            "for which it is left-saturated (activation &lt; 0.1) and right-saturated "
            "(&gt; 0.9), as in Karpathy, Johnson &amp; Fei-Fei (2015), “Visualizing and "
            "Understanding Recurrent Networks”. Points near the dashed line are almost always "
            "saturated: the gate acts as a switch.</p>"
            + _img(plots.gate_saturation(saturation), "gate saturation scatter") + "</section>")


def _grad_flow_section(grad_norms: dict) -> str:
    return ('<section id="gradflow"><h2>Gradient norm through time</h2>'
            '<p class="note">‖dL/dh<sub>t</sub>‖ at every step t of one sequence: how much of '
            "the loss's gradient reaches each earlier hidden state (log scale).</p>"
            + _img(plots.grad_norm_through_time(grad_norms),
                   "gradient norm against time step, log scale") + "</section>")


# ---------------------------------------------------------------- the page

def write_report(path, *, metrics: list[dict], samples: list[dict], title: str,
                 trace: dict | None = None, text: str | None = None,
                 saturation: list[dict] | None = None, units: list[dict] | None = None,
                 grad_norms: dict | None = None, heatmap_note: str | None = None) -> Path:
    """Write one self-contained ``report.html`` and return its path.

    metrics: records with at least ``step``, ``train_loss``, ``val_loss`` (None or absent where not
    measured) and optionally ``lr``, ``grad_norm`` (before clipping), ``clipped`` (bool or count),
    ``chars_per_s``, ``time_s``. samples: ``{"step": int, "text": str}`` records. trace and text:
    an ``activation_trace`` of ``text`` (len(text) = T) for the heatmap, with ``units`` from
    ``interesting_units`` and, for LSTM/GRU, ``saturation`` from ``gate_saturation``. grad_norms:
    ``{"rnn": [‖dL/dh_t‖ for t], "lstm": [...]}`` for the gradient-flow plot. heatmap_note: shown
    in place of the heatmap when there is no trace (for example, no checkpoint).
    """
    if (trace is None) != (text is None):
        raise ValueError("the heatmap needs both trace and text (the passage that was traced)")
    path = Path(path)
    sections = [_training_section(list(metrics)), _samples_section(list(samples))]
    nav = [("training", "Training"), ("samples", "Samples")]
    data_script = ""
    if trace is not None and text is not None:                  # both or neither (above)
        section, data_script = _heatmap_section(trace, text, units)
        sections.append(section)
        nav.append(("heatmap", "Activation heatmap"))
    elif heatmap_note:
        sections.append(f'<section id="heatmap"><h2>Activation heatmap</h2>'
                        f'<p class="note">{esc(heatmap_note)}</p></section>')
        nav.append(("heatmap", "Activation heatmap"))
    if saturation:
        sections.append(_saturation_section(saturation))
        nav.append(("saturation", "Gate saturation"))
    if grad_norms:
        sections.append(_grad_flow_section(grad_norms))
        nav.append(("gradflow", "Gradient through time"))
    scripts = f"{data_script}<script>{_asset('report.js')}</script>" if data_script else ""
    nav_html = "".join(f'<a href="#{a}">{esc(b)}</a>' for a, b in nav)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_asset('report.css')}</style></head>\n<body><main>"
        f"<h1>{esc(title)}</h1><nav>{nav_html}</nav>\n" + "\n".join(sections) +
        f"\n</main>{scripts}</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page)          # a full disk leaves the old report, not a 0-byte one
    return path


# ---------------------------------------------------------------- a run directory

def load_model_for_report(run_dir) -> tuple | None:
    """(model, vocab list[str], validation text) of a run, or None when it cannot be loaded.

    Reads the checkpoint (best, else last) and the encoded corpus of a run made by
    ``bptt train`` (see ``charlm.sampling.load_for_report``); a directory without them counts as
    having no checkpoint, and its report has no heatmap.
    """
    from bptt.charlm.sampling import load_for_report

    return load_for_report(run_dir)


def passage_ids(text: str, vocab: list[str], chars: int) -> tuple[str, np.ndarray]:
    """The first ``chars`` characters of ``text`` that are in ``vocab``, and their ids (T,)."""
    index = {c: i for i, c in enumerate(vocab)}
    kept = "".join(c for c in text[: 4 * chars] if c in index)[:chars]
    return kept, np.array([index[c] for c in kept], dtype=np.int64)


def build_run_report(run_dir, out=None, chars: int = 1000, title: str | None = None) -> Path:
    """Write ``out`` (default ``run_dir/report.html``) from a run directory; return its path.

    Reads ``metrics.jsonl`` and ``samples.jsonl`` and, where ``load_model_for_report`` gives a
    model, traces ``chars`` characters of validation text for the heatmap (and, for an LSTM,
    gate saturation). ``grad_norms.json`` ({name: [‖dL/dh_t‖ for t]}) adds the gradient-flow plot.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is not a directory")
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    samples = read_jsonl(run_dir / "samples.jsonl")
    gpath = run_dir / "grad_norms.json"
    grad_norms = json.loads(gpath.read_text(encoding="utf-8")) if gpath.exists() else None
    kw: dict = {"heatmap_note": NO_CHECKPOINT}
    loaded = load_model_for_report(run_dir)
    if loaded is not None:
        model, vocab, val_text = loaded
        text, ids = passage_ids(val_text, vocab, chars)
        if ids.size:
            trace = activation_trace(model, ids)
            kw = {"trace": trace, "text": text,
                  "units": interesting_units(text, [layer["h"] for layer in trace["layers"]])}
            if trace["cell"] in GATES:
                kw["saturation"] = gate_saturation(trace)
        else:
            kw = {"heatmap_note": "The validation text has no characters of the vocabulary."}
    return write_report(out or run_dir / "report.html", metrics=metrics, samples=samples,
                        title=title or f"bptt run {run_dir.resolve().name}",
                        grad_norms=grad_norms, **kw)
