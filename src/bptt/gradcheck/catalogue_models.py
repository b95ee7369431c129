"""Gradient checks of the encoder-decoder and the conditioned language model, appended to
``bptt gradcheck``: every parameter random and non-zero, padded sources, null-padded targets."""

from __future__ import annotations

import functools

import numpy as np

from bptt.gradcheck import CheckResult, check_loss

THRESHOLD = 1e-7


def model_checks(rng: np.random.Generator) -> list[CheckResult]:
    from bptt.nn.conditioned import ConditionedConfig, ConditionedLM
    from bptt.nn.seq2seq import Seq2Seq, Seq2SeqConfig

    out: list[CheckResult] = []
    N, S, T = 3, 5, 4
    mask = np.arange(S)[None, :] < np.array([5, 3, 1])[:, None]     # (N, S) padded sources
    for opts in (dict(cell="lstm"), dict(cell="rnn", enc_hidden=3, layers=2),
                 dict(cell="lstm", bidirectional=True, embed=3),
                 dict(cell="gru", bidirectional=True, layers=2)):
        model = Seq2Seq(Seq2SeqConfig(5, 6, hidden=4, dtype="float64", **opts), rng)
        for p in model.params.values():
            p += 0.3 * rng.standard_normal(p.shape)
        x = rng.integers(0, 5, (N, S))
        y = rng.integers(1, 6, (N, T))
        y[1, 2:] = 0                                                  # pad after the end
        label = "Seq2Seq(" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")"
        out += check_loss(label, functools.partial(model.loss, x, y, mask), model.params,
                          THRESHOLD)
    for cell in ("rnn", "lstm", "gru"):
        lm = ConditionedLM(ConditionedConfig(4, 6, 5, embed=3, cell=cell, dtype="float64"), rng)
        for p in lm.params.values():
            p += 0.3 * rng.standard_normal(p.shape)
        f = rng.standard_normal((N, 4))
        seqs = rng.integers(1, 6, (N, 6))
        seqs[0, 4:] = 0                                               # null padding
        out += check_loss(f"ConditionedLM({cell})", functools.partial(lm.loss, f, seqs),
                          lm.params, THRESHOLD)
    return out
