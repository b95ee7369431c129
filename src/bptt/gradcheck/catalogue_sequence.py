"""Gradient checks of the sequence-classification pieces, appended to ``bptt gradcheck``:
pooling over time, the squared-error loss, the bidirectional stack and the sequence model."""

from __future__ import annotations

import numpy as np

from bptt import functional as F
from bptt.gradcheck import CheckResult, check_function, check_loss

THRESHOLD = 1e-7


def sequence_checks(rng: np.random.Generator) -> list[CheckResult]:
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
        cfg = SequenceConfig(**{"input_size": 3, "output_size": 4, "hidden": 3,
                                "dtype": "float64", **opts})
        model = SequenceModel(cfg, rng)
        for p in model.params.values():
            p += 0.3 * r(p.shape)
        x = rng.integers(0, 5, (N, T)) if cfg.tokens else r((N, T, 3))
        y = (rng.integers(0, 4, (N, T)) if cfg.pooling == "none" else
             r((N, 2)) if cfg.loss == "mse" else rng.integers(0, 4, N))
        label = "SequenceModel(" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")"
        out += check_loss(label, lambda m=model, x=x, y=y: m.loss(x, y, prefix), model.params,
                          THRESHOLD)
    return out
