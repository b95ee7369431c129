"""The run report: activation traces, gate saturation, unit finding, report.html (self-contained,
escaped), ``bptt report RUN``, and the page itself in headless Chromium."""

import html.parser
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from bptt import functional as F
from bptt.analysis.insight import (
    activation_trace,
    correlations,
    gate_saturation,
    interesting_units,
    text_features,
)
from bptt.analysis.report import NO_CHECKPOINT, write_report
from bptt.cli import main
from bptt.nn import LanguageModel, LMConfig
from bptt.optim import Adam, clip_global_norm, cosine_lr

ROOT = Path(__file__).resolve().parents[1]
TEXT = 'def f(x):\n    return {"a": [x, (1, 2)]}  # é\nprint("hi <b>", f(3))\n'


def _model(cell, layers=2, embed=0, vocab=None, hidden=6, seed=0, dtype="float64",
           learn_h0=False):
    vocab = vocab or sorted(set(TEXT))
    rng = np.random.default_rng(seed)
    model = LanguageModel(LMConfig(len(vocab), hidden=hidden, layers=layers, cell=cell,
                                   embed=embed, dtype=dtype, learn_h0=learn_h0), rng)
    for p in model.params.values():
        p += 0.5 * rng.standard_normal(p.shape).astype(p.dtype)    # non-zero biases
    return model, vocab


def _ids(text, vocab):
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in text])


# ---------------------------------------------------------------- activation_trace

@pytest.mark.parametrize(("cell", "embed", "learn_h0"), [("lstm", 0, False), ("lstm", 4, True),
                                                 ("rnn", 0, True), ("rnn", 4, False)])
def test_trace_has_per_layer_activations_that_match_the_sequence_forward(cell, embed, learn_h0):
    model, vocab = _model(cell, embed=embed, learn_h0=learn_h0)
    ids = _ids(TEXT, vocab)
    trace = activation_trace(model, ids)
    T, H = len(TEXT), model.config.hidden
    assert trace["cell"] == cell and len(trace["layers"]) == 2
    names = {"h", "i", "f", "o"} if cell == "lstm" else {"h"}
    for layer in trace["layers"]:
        assert set(layer) == names
        assert all(a.shape == (T, H) for a in layer.values())
    # The step-by-step trace equals the whole-sequence forward, layer by layer.
    x, _ = model._inputs(ids[None])
    h_top, final, _ = model.rnn.forward(x)
    np.testing.assert_allclose(trace["layers"][-1]["h"], h_top[0], rtol=0, atol=1e-12)
    for (h, c), (h_ref, c_ref) in zip(trace["state"], final):
        np.testing.assert_allclose(h, h_ref, rtol=0, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-12)


def test_trace_gates_are_the_post_sigmoid_i_f_o_in_pytorch_order():
    model, vocab = _model("lstm", layers=1)
    ids = _ids(TEXT, vocab)
    trace = activation_trace(model, ids)
    H = model.config.hidden
    p = model.rnn.params
    x, _ = model._inputs(ids[None])
    z = x[0, 0] @ p["l0.Wx"] + p["l0.b"]                 # h0 = 0 at the first step
    sig = 1 / (1 + np.exp(-z))
    for k, g in enumerate("if"):
        np.testing.assert_allclose(trace["layers"][0][g][0], sig[k * H:(k + 1) * H], atol=1e-12)
    np.testing.assert_allclose(trace["layers"][0]["o"][0], sig[3 * H:], atol=1e-12)
    for g in "ifo":
        assert ((trace["layers"][0][g] > 0) & (trace["layers"][0][g] < 1)).all()


def test_trace_continues_from_a_given_state():
    model, vocab = _model("lstm")
    ids = _ids(TEXT, vocab)
    whole = activation_trace(model, ids)
    first = activation_trace(model, ids[:10])
    rest = activation_trace(model, ids[10:], state=first["state"])
    for k in range(2):
        np.testing.assert_allclose(whole["layers"][k]["h"],
                                   np.concatenate([first["layers"][k]["h"],
                                                   rest["layers"][k]["h"]]), atol=1e-12)


def test_trace_rejects_empty_ids_and_wrong_state():
    model, _vocab = _model("rnn")
    with pytest.raises(ValueError, match="ids"):
        activation_trace(model, np.array([], dtype=int))
    with pytest.raises(ValueError, match="state has 1 layers"):
        activation_trace(model, np.array([0, 1]), state=[(np.zeros((1, 6)), None)])


def test_trace_of_a_float32_model_is_float64():
    model, vocab = _model("lstm", dtype="float32")
    trace = activation_trace(model, _ids(TEXT, vocab))
    assert trace["layers"][0]["h"].dtype == np.float64


# ---------------------------------------------------------------- gate_saturation

def test_gate_saturation_fractions_match_a_direct_count():
    model, vocab = _model("lstm", hidden=5)
    for p in model.params.values():
        p *= 4.0                                         # push gates into saturation
    trace = activation_trace(model, _ids(TEXT, vocab))
    sat = gate_saturation(trace, low=0.1, high=0.9)
    T = len(TEXT)
    assert len(sat) == 2
    seen_left = seen_right = False
    for k, layer in enumerate(sat):
        assert set(layer) == {"i", "f", "o"}
        for g, frac in layer.items():
            acts = trace["layers"][k][g]
            for j in range(5):
                left = sum(1 for t in range(T) if acts[t, j] < 0.1) / T
                right = sum(1 for t in range(T) if acts[t, j] > 0.9) / T
                assert frac["left"][j] == pytest.approx(left)
                assert frac["right"][j] == pytest.approx(right)
            assert ((frac["left"] >= 0) & (frac["left"] + frac["right"] <= 1)).all()
            seen_left |= bool(frac["left"].any())
            seen_right |= bool(frac["right"].any())
    assert seen_left and seen_right                       # the test saw both kinds


def test_gate_saturation_needs_an_lstm_and_sane_thresholds():
    model, vocab = _model("rnn")
    with pytest.raises(ValueError, match="LSTM"):
        gate_saturation(activation_trace(model, _ids(TEXT, vocab)))
    model, vocab = _model("lstm")
    with pytest.raises(ValueError, match="thresholds"):
        gate_saturation(activation_trace(model, _ids(TEXT, vocab)), low=0.9, high=0.1)


# ---------------------------------------------------------------- interesting_units

def test_text_features_follow_quotes_lines_and_brackets():
    f = text_features('a "b(c)" d\nx[y]')
    #                  a _ " b ( c ) " _ d \n x [ y ]
    assert f["quotes"].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["brackets"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert f["line_position"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 4]


def test_correlations_are_pearson_and_zero_for_constant_columns():
    rng = np.random.default_rng(1)
    feats, acts = rng.standard_normal((50, 2)), rng.standard_normal((50, 3))
    acts[:, 2] = 0.7
    r = correlations(feats, acts)
    assert r.shape == (2, 3)
    for k in range(2):
        for u in range(2):
            assert r[k, u] == pytest.approx(np.corrcoef(feats[:, k], acts[:, u])[0, 1])
    assert (r[:, 2] == 0).all()


def test_interesting_units_finds_planted_units_across_layers():
    rng = np.random.default_rng(0)
    text = ('x = f("a (b)", [1, 2])\n' * 3 + 'say("hello, world")\n') * 4
    feats = text_features(text)
    layers = [0.3 * rng.standard_normal((len(text), 8)) for _ in range(2)]
    layers[1][:, 5] = np.tanh(2 * feats["quotes"] - 1) + 0.05 * rng.standard_normal(len(text))
    layers[0][:, 2] = -feats["line_position"] / 25
    layers[0][:, 7] = feats["brackets"] - 0.5
    units = interesting_units(text, layers, top_k=2)
    best = {}
    for u in units:                                       # best first within each feature
        best.setdefault(u["feature"], u)
    assert (best["quotes"]["layer"], best["quotes"]["unit"]) == (1, 5)
    assert best["quotes"]["r"] > 0.95
    assert (best["line_position"]["layer"], best["line_position"]["unit"]) == (0, 2)
    assert best["line_position"]["r"] < -0.95
    assert (best["brackets"]["layer"], best["brackets"]["unit"]) == (0, 7)
    assert len(units) == 6 and all(isinstance(u["r"], float) for u in units)


def test_interesting_units_finds_a_line_position_cell_planted_in_an_lstm():
    # Unit 3 of a one-layer LSTM counts characters since the newline: its forget gate is open
    # (f ~ 1) except on "\n" (f ~ 0), i ~ 1, o ~ 1 and g = 0.03, so c_t ~ 0.03 (column + 1).
    text = "".join(f"{'ab cd' * (n % 7)}xy\n" for n in range(12))
    model, vocab = _model("lstm", layers=1, vocab=sorted(set(text)), hidden=6)
    H, u, nl = 6, 3, sorted(set(text)).index("\n")
    p = model.rnn.params
    for gate, bias in ((0, 12.0), (1, 12.0), (2, np.arctanh(0.03)), (3, 12.0)):
        col = gate * H + u
        p["l0.Wx"][:, col], p["l0.Wh"][:, col], p["l0.b"][col] = 0.0, 0.0, bias
    p["l0.Wx"][nl, 1 * H + u] = -30.0
    trace = activation_trace(model, _ids(text, vocab))
    units = interesting_units(text, trace["layers"][0]["h"], top_k=1)
    (line,) = [v for v in units if v["feature"] == "line_position"]
    assert (line["layer"], line["unit"]) == (0, u) and line["r"] > 0.95


def test_interesting_units_skips_features_constant_over_the_text_and_checks_lengths():
    h = np.random.default_rng(0).standard_normal((5, 3))
    units = interesting_units("abcde", h)                 # no quotes, brackets or newlines
    assert {u["feature"] for u in units} == {"line_position"}
    with pytest.raises(ValueError, match="len\\(text\\)"):
        interesting_units("abc", h)


# ---------------------------------------------------------------- report.html

def _metrics(n=120):
    return [{"step": s, "train_loss": 3.0 / (1 + s / 40), "lr": 2e-3 * (1 - s / n),
             "val_loss": 3.1 / (1 + s / 40) if s % 20 == 0 else None,
             "grad_norm": 2.0 + math.sin(s), "clipped": math.sin(s) > 0.8,
             "chars_per_s": 5000.0, "time_s": 0.1 * s} for s in range(n)]


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: str):
    p = _Tags()
    p.feed(page)
    return p.tags


def _full_report(path, title="run <1> & \"friends\"", samples=None):
    model, vocab = _model("lstm")
    trace = activation_trace(model, _ids(TEXT, vocab))
    units = interesting_units(TEXT, [layer["h"] for layer in trace["layers"]])
    return write_report(path, metrics=_metrics(), title=title,
                        samples=samples or [{"step": 0, "text": "abc"}],
                        trace=trace, text=TEXT, units=units, saturation=gate_saturation(trace),
                        grad_norms={"rnn": [0.5 ** t for t in range(30)],
                                    "lstm": [0.97 ** t for t in range(30)]})


def test_report_is_self_contained(tmp_path):
    page = _full_report(tmp_path / "report.html").read_text(encoding="utf-8")
    tags = _tags(page)
    for tag, attrs in tags:
        for key in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            assert not re.match(r"^(https?:)?//", value), (tag, key, value[:80])
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
        if tag == "script":
            assert "src" not in attrs
        assert tag not in ("link", "iframe", "object", "embed")
    assert sum(tag == "img" for tag, _ in tags) == 4        # loss, lr/grad, saturation, flow
    csp = [a["content"] for t, a in tags if t == "meta"
           and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]
    for section in ("training", "samples", "heatmap", "saturation", "gradflow"):
        assert f'id="{section}"' in page


def test_report_escapes_titles_samples_and_the_passage(tmp_path):
    nasty = '</pre><script>alert("x")</script> & \'q\' é 😀 <!--'
    page = _full_report(tmp_path / "r.html", title=nasty,
                        samples=[{"step": 5, "text": nasty, "temperature": 0.8}]
                        ).read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<!--" not in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27; " \
           "é 😀 &lt;!--" in page
    assert "temperature 0.8" in page
    # The passage travels as JSON inside <script>; it cannot close the element and decodes back.
    data = re.search(r'<script id="heatmap-data" type="application/json">(.*?)</script>', page,
                     re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data)["text"] == TEXT


def test_report_without_model_says_why_and_omits_empty_sections(tmp_path):
    page = write_report(tmp_path / "r.html", metrics=[], samples=[], title="t",
                        heatmap_note=NO_CHECKPOINT).read_text(encoding="utf-8")
    assert NO_CHECKPOINT in page and "No metrics were recorded" in page
    assert 'id="saturation"' not in page and 'id="gradflow"' not in page
    assert "<img" not in page and "heatmap-data" not in page


def test_report_needs_the_traced_text_with_the_trace(tmp_path):
    model, vocab = _model("rnn")
    trace = activation_trace(model, _ids(TEXT, vocab))
    with pytest.raises(ValueError, match="both trace and text"):
        write_report(tmp_path / "r.html", metrics=[], samples=[], title="t", trace=trace)
    with pytest.raises(ValueError, match="len\\(text\\)"):
        write_report(tmp_path / "r.html", metrics=[], samples=[], title="t", trace=trace,
                     text=TEXT[:-1])


def test_bptt_report_command_reads_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run1"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in _metrics(30)))
    (run / "samples.jsonl").write_text(json.dumps({"step": 10, "text": "to be <or>"}) + "\n")
    assert main(["report", str(run)]) == 0
    out = run / "report.html"
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    assert "to be &lt;or&gt;" in page and NO_CHECKPOINT in page and page.count("<img") == 2


def test_bptt_report_command_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    assert main(["report", str(tmp_path)]) == 2
    assert "metrics.jsonl:2: not JSON" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--chars", "0"]) == 2
    assert "--chars is 0" in capsys.readouterr().err


# ---------------------------------------------------------------- the page in a browser

def _source_split(block=2048):
    """This repository's own Python source (quotes, brackets and lines, on every machine), cut
    into blocks of ``block`` characters: every tenth block is validation text, the rest train."""
    files = sorted((ROOT / "src" / "bptt").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    blocks = [text[i:i + block] for i in range(0, len(text), block)]
    train = "".join(b for k, b in enumerate(blocks) if k % 10 != 9)
    val = "".join(b for k, b in enumerate(blocks) if k % 10 == 9)
    return train, val, sorted(set(text))


def _sample(model, vocab, rng, n=160, start="def "):
    ids = _ids(start, vocab)
    logits, state = model.logits(ids[None])
    out = []
    for _ in range(n):
        p = np.exp(logits[0, -1] - logits[0, -1].max())
        nxt = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[nxt])
        logits, state = model.logits(np.array([[nxt]]), state)
    return start + "".join(out)


def _grad_norm_through_time(cell, T=60, V=8, H=24, seed=0):
    """‖dL/dh_t‖ for a loss on the last state of a freshly initialised one-layer network."""
    rng = np.random.default_rng(seed)
    model = LanguageModel(LMConfig(V, hidden=H, layers=1, cell=cell, dtype="float64"), rng)
    x, _ = model._inputs(rng.integers(0, V, (1, T)))
    p = model.rnn.params
    _, _, cache = F.reference_forward(cell, x, np.zeros((1, H)), p["l0.Wx"], p["l0.Wh"],
                                      p["l0.b"])
    dh = np.zeros((1, T, H))
    dh[:, -1] = rng.standard_normal((1, H))                          # the loss reads h_T only
    g = F.reference_backward(dh, cache)
    return [float(v) for v in np.linalg.norm(g.dh_steps[0], axis=1)]


def _demo_report(path, steps=100, hidden=32, N=16, T=48, seed=0):
    """Train a small two-layer character LSTM on this repository's source; write its report.

    Gradients are those of the mean loss per character, clipped to global norm 0.5.
    """
    train, val, vocab = _source_split()
    data, vdata = _ids(train, vocab), _ids(val, vocab)
    vx, vy = vdata[:40 * T].reshape(40, T), vdata[1:40 * T + 1].reshape(40, T)
    rng = np.random.default_rng(seed)
    model = LanguageModel(LMConfig(len(vocab), hidden=hidden, layers=2, cell="lstm"), rng)
    opt = Adam(1e-2)
    state = opt.init(model.params)
    metrics, samples, t0 = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, data.size - T - 1, N)
        x = np.stack([data[s:s + T] for s in starts])                # (N, T)
        y = np.stack([data[s + 1:s + T + 1] for s in starts])
        loss, grads, _ = model.loss_and_state(x, y)
        for g in grads.values():
            g /= T
        norm, clipped = clip_global_norm(grads, 0.5)
        lr = cosine_lr(1e-2, step, steps, warmup=min(50, steps // 10), min_lr=1e-3)
        opt.update(model.params, grads, state, lr)
        rec = {"step": step, "train_loss": loss / T, "val_loss": None, "lr": lr,
               "grad_norm": norm, "clipped": clipped, "time_s": time.perf_counter() - t0}
        rec["chars_per_s"] = step * N * T / rec["time_s"]
        if step == 1 or step % max(steps // 20, 1) == 0:
            rec["val_loss"] = model.loss_and_state(vx, vy)[0] / T
        if step % max(steps // 4, 1) == 0:
            samples.append({"step": step, "text": _sample(model, vocab, rng)})
        metrics.append(rec)
    passage = val[:1200]
    trace = activation_trace(model, _ids(passage, vocab))
    return write_report(path, metrics=metrics, samples=samples,
                        title="bptt demo: a 2-layer character LSTM trained on its own source",
                        trace=trace, text=passage,
                        units=interesting_units(passage, [la["h"] for la in trace["layers"]]),
                        saturation=gate_saturation(trace),
                        grad_norms={"rnn": _grad_norm_through_time("rnn"),
                                    "lstm": _grad_norm_through_time("lstm")})


def test_report_renders_in_headless_chromium_and_the_unit_selector_recolours(tmp_path):
    from headless_chromium import Chromium, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    save = os.environ.get("BPTT_SAVE_SCREENSHOT") == "1"
    big = {"steps": 1500, "hidden": 64, "N": 32, "T": 64} if save else {}
    path = _demo_report(tmp_path / "report.html", **big)
    passage_len = len(json.loads(re.search(
        r'<script id="heatmap-data" type="application/json">(.*?)</script>',
        path.read_text(encoding="utf-8"), re.S).group(1))["text"])
    colours = "Array.from(document.querySelectorAll('#passage span'))" \
              ".map(s => getComputedStyle(s).backgroundColor)"
    with Chromium() as browser:
        page = browser.open(path.as_uri())
        if save:                                           # as it opens: the strongest unit
            page.screenshot(ROOT / "docs" / "report.png")
        assert page.evaluate("document.querySelectorAll('#passage span').length") == passage_len
        assert page.evaluate("document.querySelectorAll('img.plot').length") == 4
        assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
        before = page.evaluate(colours)
        first = page.evaluate("document.getElementById('unit').value")
        # The passage is coloured (a strongly saturated unit may take only a few colours).
        assert len(set(before)) >= 3
        # Choose another unit in the selector: the colours change.
        other = page.evaluate("(() => { const s = document.getElementById('unit');"
                              " const o = Array.from(s.options).find(o => o.value !== s.value);"
                              " s.value = o.value; s.dispatchEvent(new Event('change'));"
                              " return o.value; })()")
        after = page.evaluate(colours)
        assert other != first and after != before and len(set(after)) >= 3
        # A real mouse click on a listed unit selects it.
        second = "document.querySelectorAll('#units li.unit')[1]"
        target = page.evaluate(f"{second}.dataset.unit")
        page.click(second)
        assert page.evaluate("document.getElementById('unit').value") == target
        assert page.evaluate("document.querySelector('#units li.selected').dataset.unit") \
            == target
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(tmp_path / "report.png")
        assert page.console_errors == []
        assert all(u.startswith(("file:", "data:")) for u in page.requests)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
