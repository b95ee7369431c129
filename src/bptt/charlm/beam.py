"""Beam search for the character language model: the most likely continuation of a prime.

    text, skipped, logp = beam_generate(model, vocab, length=200, beam=8, prime="ROMEO:")

Keeps the ``beam`` most likely continuations at every step (``bptt.nn.decoding.beam_search``;
N = 1, the prime run first). Without an end symbol every continuation has ``length`` symbols,
so the answer is the one of highest total log-probability. A one-symbol ``stop`` (e.g. a
newline) is the end symbol: a continuation that produces it is finished there, and
``length_penalty`` a ranks finished ones by logp / length ** a. A longer stop string only cuts
the answer where it first appears.
"""

from __future__ import annotations

import numpy as np

from bptt.charlm.sampling import prepare_prompt
from bptt.charlm.text import Vocab
from bptt.functional import log_softmax
from bptt.nn import LanguageModel
from bptt.nn.decoding import beam_search, check_decoding


def beam_generate(model: LanguageModel, vocab: Vocab, length: int, beam: int,
                  prime: str = "", stop: str | None = None, length_penalty: float = 0.0,
                  skip_unknown: bool = False, state: list | None = None
                  ) -> tuple[str, list[int], float]:
    """(continuation without the prime, skipped prime symbols, its total log-probability in
    nats). ``state``: the hidden state to start from, as in ``sampling.generate``."""
    if length < 1:
        raise ValueError(f"length is {length}; beam search needs at least 1")
    check_decoding(beam, length, length_penalty)
    cur, state, skipped, stop_ids = prepare_prompt(model, vocab, prime, stop, skip_unknown,
                                                   state)
    end = stop_ids[0] if len(stop_ids) == 1 else None      # a one-symbol stop ends a beam
    if state is None:
        state = model.rnn.initial_state(1)

    def step(x: np.ndarray, st: list):
        scores, st = model.logits(x[:, None], st)                 # (B, 1, V)
        return log_softmax(scores[:, 0].astype(np.float64), axis=1), st

    best = beam_search(step, state, cur, end, beam, length, length_penalty)[0][0]
    out = best.ids
    if len(stop_ids) > 1:
        for i in range(len(out) - len(stop_ids) + 1):
            if out[i:i + len(stop_ids)] == stop_ids:
                out = out[:i]
                break
    return vocab.decode(out), skipped, best.logp
