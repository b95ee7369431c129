"""The catalogue of gradient checks behind ``bptt gradcheck``: every layer, every gradient.

Each check uses float64, random non-zero weights, biases and initial states, and a random
upstream gradient, so a backward that ignores a bias or an initial state cannot pass. Groups:
the functional layers (step functions, the engine's sequence functions, the reference loop,
temporal layers, losses), the language model, and the sequence-classification pieces.
"""

from __future__ import annotations

import functools
from typing import Any

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

    def add(layer, forward, backward, args, grad_names, douts, **kw):
        out.extend(check_function(layer, forward, backward, args, grad_names, douts,
                                  threshold=THRESHOLD, **kw))

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
    for cell in F.STEP_CELLS:                 # the reference loop, masked, from random h0 (c0)
        G = F.STEP_CELLS[cell].gates * H
        args = dict(x=r((N, T, D)), h0=r((N, H)), Wx=r((D, G)) * .5, Wh=r((H, G)) * .5, b=r(G),
                    mask=mask)
        if "b_hn" in F.STEP_CELLS[cell].extra:
            args["b_hn"] = r(H)
            add(f"reference({cell})+mask", functools.partial(F.reference_forward, cell),
                lambda dh, cache: _reference_grads(F.reference_backward(dh, cache)), args,
                ["x", "h0", "Wx", "Wh", "b", "b_hn"], r((N, T, H)))
        elif "c" in F.STEP_CELLS[cell].state:
            args["c0"] = r((N, H))
            add(f"reference({cell})+mask", functools.partial(F.reference_forward, cell),
                lambda dh, dc, cache: F.reference_backward(dh, cache, dc), args,
                ["x", "h0", "c0", "Wx", "Wh", "b"], [r((N, T, H)), r((N, H))], n_outputs=2)
        else:
            add(f"reference({cell})+mask", functools.partial(F.reference_forward, cell),
                lambda dh, cache: F.reference_backward(dh, cache), args,
                ["x", "h0", None, "Wx", "Wh", "b"], r((N, T, H)))
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


def _reference_grads(g) -> tuple:
    """A GRU's ``ReferenceGrads`` in ``gru_backward``'s order: dx, dh0, dWx, dWh, db, db_hn."""
    return g.dx, g.dh0, g.dWx, g.dWh, g.db, g.db_hn


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


def _sequence_checks(rng: np.random.Generator) -> list[CheckResult]:
    """Pooling over time, the squared-error loss, the bidirectional stack, the sequence model."""
    from bptt.nn import BidirectionalStack, SequenceConfig, SequenceModel

    N, T, D = 3, 5, 4
    r = rng.standard_normal
    mask = np.ones((N, T), dtype=bool)
    mask[0, 3:] = False                     # a padded tail
    mask[2, 0] = False                      # a hole at the start
    out: list[CheckResult] = []
    for name in ("last", "first", "max"):
        out += check_function(f"temporal_{name}+mask", getattr(F, f"temporal_{name}_forward"),
                              getattr(F, f"temporal_{name}_backward"),
                              dict(x=r((N, T, D)), mask=mask), ["x"], r((N, D)),
                              threshold=THRESHOLD)
    xm, ym = r((N, 2)), r((N, 2))
    out += check_loss("mse_loss", lambda: (F.mse_loss(xm, ym)[0], {"x": F.mse_loss(xm, ym)[1]}),
                      {"x": xm}, THRESHOLD)

    prefix = mask.copy()
    prefix[2] = [1, 1, 0, 0, 0]             # the models take prefix masks (padded batches)
    for cell in ("rnn", "lstm"):
        stack = BidirectionalStack(3, 3, cell, num_layers=2, rng=rng)
        for p in stack.params.values():
            p += 0.3 * r(p.shape)
        x, dh = r((N, T, 3)), r((N, T, 6)) * prefix[:, :, None]

        def stack_loss(stack=stack, x=x, dh=dh):
            h, cache = stack.forward(x, prefix)
            return float(np.sum(h * dh)), stack.backward(dh, cache)[1]

        out += check_loss(f"BidirectionalStack({cell})", stack_loss, stack.params, THRESHOLD)
    for opts in (dict(cell="lstm", bidirectional=True, pooling="last"),
                 dict(cell="rnn", pooling="max", loss="mse", output_size=2),
                 dict(cell="lstm", pooling="none", tokens=True, input_size=5, embed=3)):
        kw: dict[str, Any] = {"input_size": 3, "output_size": 4, "hidden": 3,
                              "dtype": "float64", **opts}
        cfg = SequenceConfig(**kw)
        model = SequenceModel(cfg, rng)
        for p in model.params.values():
            p += 0.3 * r(p.shape)
        xs = rng.integers(0, 5, (N, T)) if cfg.tokens else r((N, T, 3))
        y = (rng.integers(0, 4, (N, T)) if cfg.pooling == "none" else
             r((N, 2)) if cfg.loss == "mse" else rng.integers(0, 4, N))
        label = "SequenceModel(" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")"
        out += check_loss(label, functools.partial(model.loss, xs, y, prefix), model.params,
                          THRESHOLD)
    return out


def _gru_checks(rng: np.random.Generator) -> list[CheckResult]:
    """The GRU: step, sequence (masked, with state), and in every model that takes a cell."""
    from bptt.nn import BidirectionalStack, LanguageModel, LMConfig, SequenceConfig, SequenceModel

    N, T, D, H = 3, 5, 4, 5
    r = rng.standard_normal
    mask = np.ones((N, T), dtype=bool)
    mask[0, 3:] = False                     # a padded tail
    mask[2, 1] = False                      # a hole
    out = check_function("gru_step", F.gru_step_forward, F.gru_step_backward,
                         dict(x=r((N, D)), prev_h=r((N, H)), Wx=r((D, 3 * H)) * .5,
                              Wh=r((H, 3 * H)) * .5, b=r(3 * H), b_hn=r(H)),
                         ["x", "prev_h", "Wx", "Wh", "b", "b_hn"], r((N, H)), THRESHOLD)
    names = ["x", "h0", "Wx", "Wh", "b", "b_hn"]
    for name, m in (("", None), ("+mask", mask)):
        args = dict(x=r((N, T, D)), h0=r((N, H)), Wx=r((D, 3 * H)) * .5, Wh=r((H, 3 * H)) * .5,
                    b=r(3 * H), b_hn=r(H), mask=m)
        out += check_function("gru" + name, F.gru_forward, F.gru_backward, args, names,
                              r((N, T, H)), THRESHOLD)
        out += check_function("gru_with_state" + name, F.gru_forward_with_state,
                              F.gru_backward_with_state, args, names, [r((N, T, H)), r((N, H))],
                              THRESHOLD, n_outputs=2)

    def perturbed(model):
        for p in model.params.values():
            p += 0.3 * r(p.shape)           # non-zero biases (b_hn too) and h0
        return model

    lm = perturbed(LanguageModel(LMConfig(vocab_size=5, hidden=4, layers=2, cell="gru", embed=3,
                                          dropout=0.3, learn_h0=True, dtype="float64"), rng))
    x, y = rng.integers(0, 5, size=(2, 4)), rng.integers(0, 5, size=(2, 4))
    lm_mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    out += check_loss("LanguageModel(gru, embed, dropout 0.3)",
                      lambda: lm.loss(x, y, lm_mask, train=True, rng=np.random.default_rng(7)),
                      lm.params, THRESHOLD)
    prefix = mask.copy()
    prefix[2] = [1, 1, 0, 0, 0]             # the models take prefix masks (padded batches)
    stack = perturbed(BidirectionalStack(3, 3, "gru", num_layers=2, rng=rng))
    xs, dh = r((N, T, 3)), r((N, T, 6)) * prefix[:, :, None]

    def stack_loss():
        h, cache = stack.forward(xs, prefix)
        return float(np.sum(h * dh)), stack.backward(dh, cache)[1]

    out += check_loss("BidirectionalStack(gru)", stack_loss, stack.params, THRESHOLD)
    model = perturbed(SequenceModel(SequenceConfig(3, 4, hidden=3, cell="gru", layers=2,
                                                   pooling="mean", dtype="float64"), rng))
    xc, yc = r((N, T, 3)), rng.integers(0, 4, N)
    out += check_loss("SequenceModel(cell=gru, layers=2, pooling=mean)",
                      lambda: model.loss(xc, yc, prefix), model.params, THRESHOLD)
    return out


def run_all(seed: int = 0) -> list[CheckResult]:
    """Run every check; returns one result per (layer, gradient)."""
    from bptt.gradcheck.catalogue_models import model_checks

    rng = np.random.default_rng(seed)
    return (_layer_checks(rng) + _model_checks(rng) + _sequence_checks(rng) + _gru_checks(rng)
            + model_checks(rng))


def format_table(results: list[CheckResult]) -> str:
    w = max(len(r.layer) for r in results)
    lines = [f"{'layer':<{w}}  {'gradient':<10} {'rel. error':>10}  {'threshold':>9}  ok"]
    for r in results:
        lines.append(f"{r.layer:<{w}}  {r.name:<10} {r.error:10.2e}  {r.threshold:9.0e}  "
                     f"{'yes' if r.ok else 'NO'}")
    return "\n".join(lines)
