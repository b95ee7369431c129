"""The catalogue of gradient checks behind ``bptt gradcheck``: every layer, every gradient.

Each check uses float64, random non-zero weights, biases and initial states, and a random
upstream gradient, so a backward that ignores a bias or an initial state cannot pass.
"""

from __future__ import annotations

import numpy as np

from bptt import functional as F
from bptt.gradcheck import CheckResult, check_function, check_loss

THRESHOLD = 1e-7


def _layer_checks(rng: np.random.Generator) -> list[CheckResult]:
    N, T, D, H, V = 3, 5, 4, 5, 6
    r = rng.standard_normal
    mask = np.ones((N, T), dtype=bool)
    mask[0, 3:] = False                     # a padded tail
    mask[2, 1] = False                      # a hole
    out: list[CheckResult] = []

    def add(*args, **kw):
        out.extend(check_function(*args, threshold=THRESHOLD, **kw))

    add("rnn_step", F.rnn_step_forward, F.rnn_step_backward,
        dict(x=r((N, D)), prev_h=r((N, H)), Wx=r((D, H)) * .5, Wh=r((H, H)) * .5, b=r(H)),
        ["x", "prev_h", "Wx", "Wh", "b"], r((N, H)))
    add("lstm_step", F.lstm_step_forward, F.lstm_step_backward,
        dict(x=r((N, D)), prev_h=r((N, H)), prev_c=r((N, H)), Wx=r((D, 4 * H)) * .5,
             Wh=r((H, 4 * H)) * .5, b=r(4 * H)),
        ["x", "prev_h", "prev_c", "Wx", "Wh", "b"], [r((N, H)), r((N, H))], n_outputs=2)
    for name, m in (("", None), ("+mask", mask)):
        add("rnn" + name, F.rnn_forward, F.rnn_backward,
            dict(x=r((N, T, D)), h0=r((N, H)), Wx=r((D, H)) * .5, Wh=r((H, H)) * .5, b=r(H),
                 mask=m),
            ["x", "h0", "Wx", "Wh", "b"], r((N, T, H)))
        add("lstm" + name, F.lstm_forward, F.lstm_backward,
            dict(x=r((N, T, D)), h0=r((N, H)), Wx=r((D, 4 * H)) * .5, Wh=r((H, 4 * H)) * .5,
                 b=r(4 * H), mask=m),
            ["x", "h0", "Wx", "Wh", "b"], r((N, T, H)))
        add("lstm_with_state" + name, F.lstm_forward_with_state, F.lstm_backward_with_state,
            dict(x=r((N, T, D)), h0=r((N, H)), c0=r((N, H)), Wx=r((D, 4 * H)) * .5,
                 Wh=r((H, 4 * H)) * .5, b=r(4 * H), mask=m),
            ["x", "h0", "c0", "Wx", "Wh", "b"], [r((N, T, H)), r((N, H))], n_outputs=2)
    add("temporal_affine", F.temporal_affine_forward, F.temporal_affine_backward,
        dict(x=r((N, T, D)), w=r((D, V)), b=r(V)), ["x", "w", "b"], r((N, T, V)))
    add("temporal_mean+mask", F.temporal_mean_forward, F.temporal_mean_backward,
        dict(x=r((N, T, D)), mask=mask), ["x"], r((N, D)))
    ids = rng.integers(0, V, size=(N, T))
    ids[0, :2] = 1                          # repeated indices must accumulate
    add("embedding", F.embedding_forward, lambda d, c: (F.embedding_backward(d, c),),
        dict(x=ids, W=r((V, D))), ["W"], r((N, T, D)))

    xs, ys = r((N, V)), rng.integers(0, V, size=N)
    out.extend(check_loss("softmax_loss", lambda: _loss_grads(F.softmax_loss(xs, ys), "x"),
                          {"x": xs}, THRESHOLD))
    xt, yt = r((N, T, V)), rng.integers(0, V, size=(N, T))
    out.extend(check_loss("temporal_softmax_loss+mask",
                          lambda: _loss_grads(F.temporal_softmax_loss(xt, yt, mask), "x"),
                          {"x": xt}, THRESHOLD))
    return out


def _loss_grads(res: tuple, name: str):
    loss, dx = res
    return loss, {name: dx}


def _model_checks(rng: np.random.Generator) -> list[CheckResult]:
    from bptt.nn import LanguageModel, LMConfig

    out = []
    for cell in ("rnn", "lstm"):
        for embed, dropout in ((0, 0.0), (3, 0.3)):
            cfg = LMConfig(vocab_size=5, hidden=4, layers=2, cell=cell, embed=embed,
                           dropout=dropout, learn_h0=True, dtype="float64")
            model = LanguageModel(cfg, rng)
            for p in model.params.values():
                p += 0.3 * rng.standard_normal(p.shape)       # non-zero biases and h0
            x = rng.integers(0, 5, size=(2, 4))
            y = rng.integers(0, 5, size=(2, 4))
            mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)

            def loss_fn(model=model, x=x, y=y, mask=mask):
                # the same dropout mask on every call, so the loss is a fixed function
                return model.loss(x, y, mask, train=True, rng=np.random.default_rng(7))

            label = f"LanguageModel({cell}, {'embed' if embed else 'one-hot'}"
            label += f", dropout {dropout})" if dropout else ")"
            out.extend(check_loss(label, loss_fn, model.params, THRESHOLD))
    return out


def run_all(seed: int = 0) -> list[CheckResult]:
    """Run every check; returns one result per (layer, gradient)."""
    from bptt.gradcheck.catalogue_models import model_checks
    from bptt.gradcheck.catalogue_sequence import sequence_checks

    rng = np.random.default_rng(seed)
    return _layer_checks(rng) + _model_checks(rng) + sequence_checks(rng) + model_checks(rng)


def format_table(results: list[CheckResult]) -> str:
    w = max(len(r.layer) for r in results)
    lines = [f"{'layer':<{w}}  {'gradient':<10} {'rel. error':>10}  {'threshold':>9}  ok"]
    for r in results:
        lines.append(f"{r.layer:<{w}}  {r.name:<10} {r.error:10.2e}  {r.threshold:9.0e}  "
                     f"{'yes' if r.ok else 'NO'}")
    return "\n".join(lines)
