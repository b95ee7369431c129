"""A language model conditioned on a feature vector through its initial state: CS231n's
``CaptioningRNN`` (image features -> caption), for any feature vector.

    features f (N, D)  ->  h0_k = f @ P_k + p_k                  (N, H), every layer k
                           (c0 = 0 for an LSTM, as in CS231n)
    sequence s (N, T+1) -> input s[:, :-1], target s[:, 1:], mask = target != null
                        -> (embedding | one-hot) -> recurrent stack from (h0, c0)
                        -> temporal affine -> loss = sum of -log p over valid steps / N

The recurrent part is a ``LanguageModel``; its ``loss_and_state(..., dstate0=True)`` returns
dL/dh0, which trains the projection end to end:

    dP_k = f^T dh0_k        dp_k = sum_n dh0_k[n]        (df = sum_k dh0_k P_k^T, not needed)

Parameter names: ``proj.l{k}.w`` (D, H), ``proj.l{k}.b`` (H,), then the language model's
(``embed.W`` (V, E) with an embedding, ``rnn.l{k}.Wx`` / ``Wh`` / ``b``, ``out.w``, ``out.b``).
CS231n's names map as W_proj -> proj.l0.w, b_proj -> proj.l0.b, W_embed -> embed.W, Wx, Wh,
b -> rnn.l0.* (CS231n's LSTM gates are ordered i, f, o, g; bptt's i, f, g, o), W_vocab ->
out.w, b_vocab -> out.b.

Generation: the sequence starts with ``start`` and ends at ``end`` (``greedy``, ``beam``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bptt import functional as F
from bptt.functional import _validate as v
from bptt.nn.decoding import Hypothesis, beam_search, greedy_decode
from bptt.nn.init import xavier_uniform
from bptt.nn.layers import check_cell
from bptt.nn.models import LanguageModel, LMConfig


@dataclass
class ConditionedConfig:
    """Everything needed to rebuild a conditioned language model exactly."""

    feature_dim: int            # D
    vocab_size: int             # V, including the null, start and end symbols
    hidden: int = 128
    embed: int = 0              # embedding size; 0 = one-hot input
    layers: int = 1
    cell: str = "lstm"
    null: int = 0               # padding: targets equal to it are masked out of the loss
    start: int = 1
    end: int = 2
    dtype: str = "float32"

    def __post_init__(self):
        check_cell(self.cell)
        for name in ("feature_dim", "vocab_size", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be at least 1")
        for name in ("null", "start", "end"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name} symbol {getattr(self, name)} is outside the "
                                 f"vocabulary 0..{self.vocab_size - 1}")

    def build(self, rng: np.random.Generator) -> ConditionedLM:
        return ConditionedLM(self, rng)

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionedLM:
    """The model of the module docstring.

        loss, grads = model.loss(features, sequences)     # grads keyed like model.params
        outs = model.greedy(features, max_len)            # N int arrays, end excluded
    """

    def __init__(self, config: ConditionedConfig, rng: np.random.Generator):
        c = self.config = config
        dt = np.dtype(c.dtype)
        self.lm = LanguageModel(LMConfig(vocab_size=c.vocab_size, hidden=c.hidden,
                                         layers=c.layers, cell=c.cell, embed=c.embed,
                                         dtype=c.dtype), rng)
        self.params: dict[str, np.ndarray] = {}
        for k in range(c.layers):
            self.params[f"proj.l{k}.w"] = xavier_uniform(rng, c.feature_dim, c.hidden, dt)
            self.params[f"proj.l{k}.b"] = np.zeros(c.hidden, dtype=dt)
        self.params.update(self.lm.params)

    def initial_state(self, features: np.ndarray) -> list:
        """features (N, D) -> one (h0 (N, H), c0 (N, H) zeros or None) pair per layer."""
        c = self.config
        v.float_array("ConditionedLM", "features", features, ("N", c.feature_dim),
                      np.dtype(c.dtype))
        out = []
        for k in range(c.layers):
            h0 = features @ self.params[f"proj.l{k}.w"] + self.params[f"proj.l{k}.b"]
            c0 = np.zeros_like(h0) if c.cell == "lstm" else None
            out.append((h0, c0))
        return out

    def loss(self, features: np.ndarray, seqs: np.ndarray, mask: np.ndarray | None = None,
             train: bool = False, rng: np.random.Generator | None = None):
        """(loss, grads) for features (N, D) and sequences (N, T+1) of ids (module docstring).

        ``mask`` (N, T), if given, replaces ``target != null`` as the mask of valid targets.
        """
        seqs = np.asarray(seqs)
        if seqs.ndim != 2 or seqs.shape[1] < 2 or seqs.shape[0] != np.shape(features)[0]:
            raise ValueError(f"sequences have shape {seqs.shape}; they must be (N, T+1) with "
                             f"T >= 1 and the N = {np.shape(features)[0]} rows of the features")
        x, y = seqs[:, :-1], seqs[:, 1:]
        if mask is None:
            mask = y != self.config.null
        state = self.initial_state(features)
        loss, grads, _, dstate = self.lm.loss_and_state(x, y, mask, state, train, rng,
                                                        dstate0=True)
        for k, (dh0, _) in enumerate(dstate):
            grads[f"proj.l{k}.w"] = features.T @ dh0                       # (D, H)
            grads[f"proj.l{k}.b"] = dh0.sum(axis=0)                         # (H,)
        return loss, grads

    def step(self, ids: np.ndarray, state: list):
        """One step: ids (B,) -> (log-probabilities (B, V), next state)."""
        scores, state = self.lm.logits(ids[:, None], state)
        return F.log_softmax(scores[:, 0].astype(np.float64), axis=1), state

    def greedy(self, features: np.ndarray, max_len: int = 30) -> list[np.ndarray]:
        c = self.config
        return greedy_decode(self.step, self.initial_state(features), c.start, c.end, max_len)

    def beam(self, features: np.ndarray, beam: int = 4, max_len: int = 30,
             length_penalty: float = 0.0, n_best: int = 1) -> list[list[Hypothesis]]:
        c = self.config
        return beam_search(self.step, self.initial_state(features), c.start, c.end, beam,
                           max_len, length_penalty, n_best)
