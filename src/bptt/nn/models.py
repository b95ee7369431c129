"""Whole models with a ``loss(...) -> (loss, grads)`` keyed like ``model.params``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bptt import functional as F
from bptt.functional._validate import in_range, int_array
from bptt.nn.layers import (
    Embedding,
    RecurrentStack,
    TemporalAffine,
    check_cell,
    collect_params,
    one_hot,
)


@dataclass
class LMConfig:
    """Everything needed to rebuild a language model exactly (stored in every checkpoint)."""

    vocab_size: int
    hidden: int = 256
    layers: int = 2
    cell: str = "lstm"
    embed: int = 0            # embedding size; 0 = one-hot input (D = vocab_size)
    dropout: float = 0.0
    learn_h0: bool = False
    dtype: str = "float32"
    init_std: float = 0.0     # > 0: every weight matrix ~ N(0, init_std**2) (min-char-rnn 0.01)

    def to_dict(self) -> dict:
        return asdict(self)


def check_ids(fn: str, name: str, x: np.ndarray, V: int) -> None:
    """x must be an integer array (N, T) with every id in [0, V)."""
    int_array(fn, name, x, ("N", "T"))
    in_range(fn, name, x, V)


class LanguageModel:
    """Next-token model: (embedding | one-hot) -> recurrent stack -> temporal affine -> softmax.

    Parameter names: ``embed.W`` (V, E) if embedding, ``rnn.l{k}.*`` for the stack, ``out.w``
    (H, V) and ``out.b`` (V,).

    Initialisation: the layers' own (``bptt.nn.init``), or with ``init_std`` > 0 every weight
    matrix (each 2-D parameter: embed.W, Wx, Wh, out.w) drawn N(0, init_std**2) instead, as
    min-char-rnn's ``np.random.randn(...) * 0.01``; biases and learned initial states keep their
    initial values (zero; an LSTM's forget-gate bias 1).
    """

    def __init__(self, config: LMConfig, rng: np.random.Generator):
        check_cell(config.cell)
        self.config = config
        dt = np.dtype(config.dtype)
        V = config.vocab_size
        self.embed = Embedding(V, config.embed, rng, dt) if config.embed > 0 else None
        D = config.embed if config.embed > 0 else V
        self.rnn = RecurrentStack(D, config.hidden, config.cell, config.layers, config.dropout,
                                  config.learn_h0, rng, dt)
        self.out = TemporalAffine(config.hidden, V, rng, dt)
        self.params = collect_params(embed=self.embed, rnn=self.rnn, out=self.out)
        if config.init_std > 0:
            for p in self.params.values():
                if p.ndim == 2:
                    p[...] = rng.standard_normal(p.shape) * config.init_std

    def _inputs(self, x: np.ndarray):
        """Token ids (N, T) -> input vectors (N, T, D) and the embedding cache (or None)."""
        V = self.config.vocab_size
        check_ids("LanguageModel", "x", x, V)                  # every id, before any use
        if self.embed is not None:
            return self.embed.forward(x)
        return one_hot(x, V, self.config.dtype), None

    def logits(self, x: np.ndarray, state: list | None = None):
        """Token ids (N, T) -> (scores (N, T, V), final state), inference mode."""
        inp, _ = self._inputs(x)
        h, final, _ = self.rnn.forward(inp, state)
        scores, _ = self.out.forward(h)
        return scores, final

    def loss_and_state(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None,
                       state: list | None = None, train: bool = False,
                       rng: np.random.Generator | None = None, dstate0: bool = False):
        """Mean cross-entropy per sequence (summed over valid steps, divided by N) and grads.

        x, y (N, T) token ids (y is x shifted by one), mask (N, T) bool or None.
        Returns (loss, grads keyed like params, final state for carrying to the next chunk),
        and with ``dstate0`` a fourth item: dL/d(initial state), one (dh0, dc0) pair of (N, H)
        arrays per layer (dc0 None for an RNN), for training whatever produced that state.
        """
        inp, ecache = self._inputs(x)
        h, final, rcache = self.rnn.forward(inp, state, None, train, rng)
        scores, acache = self.out.forward(h)
        loss, dscores = F.temporal_softmax_loss(scores, y, mask)
        dh, gout = self.out.backward(dscores, acache)
        dinp, grnn, dstate = self.rnn.backward(dh, rcache)
        grads = {f"out.{k}": v for k, v in gout.items()}
        grads.update({f"rnn.{k}": v for k, v in grnn.items()})
        if self.embed is not None:
            _, gemb = self.embed.backward(dinp, ecache)
            grads["embed.W"] = gemb["W"]
        if dstate0:
            return loss, grads, final, dstate
        return loss, grads, final

    def loss(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None,
             state: list | None = None, train: bool = False,
             rng: np.random.Generator | None = None):
        """(loss, grads) — see ``loss_and_state``."""
        loss, grads, _ = self.loss_and_state(x, y, mask, state, train, rng)
        return loss, grads
