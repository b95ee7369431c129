"""Sequence classifier / regressor / labeller on variable-length, masked batches.

    inputs          x (N, T, D) floats, or (N, T) token ids (one-hot or an embedding)
    recurrent       1..k RNN or LSTM layers, optionally bidirectional       -> h (N, T, F)
    pooling         last valid state | masked mean | masked max             -> (N, F)
                    or none: per-step outputs for sequence labelling        -> (N, T, F)
    head            dense affine                                            -> scores (N, C)
    loss            softmax cross-entropy (classes) or squared error (regression)

F = H, or 2H when bidirectional. Seed 002's model is ``pooling="last"``: the final hidden state
through a dense softmax. Seed 003's (RNN -> temporal affine -> masked average -> softmax) is
``pooling="mean"``: averaging before or after the affine head gives the same scores, because
both are linear.

With ``pooling="last"`` and a bidirectional stack the pooled vector is [h_fwd at the last valid
step, h_rev at the first valid step]: each direction's own final state.

Every array that depends on padding is masked, so a padded batch gives the same loss and
gradients as each sequence run alone (see ``tests/test_classifier.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bptt import functional as F
from bptt.nn.bidirectional import BidirectionalStack
from bptt.nn.layers import (
    Embedding,
    RecurrentStack,
    TemporalAffine,
    check_cell,
    collect_params,
    one_hot,
)

POOLINGS = ("last", "mean", "max", "none")
LOSSES = ("softmax", "mse")


@dataclass
class SequenceConfig:
    """Everything needed to rebuild a sequence model exactly."""

    input_size: int             # D for float inputs; the vocabulary size V for token ids
    output_size: int            # classes C (softmax) or regression outputs M (mse)
    hidden: int = 64
    layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = False
    pooling: str = "last"       # last | mean | max | none (per-step outputs)
    loss: str = "softmax"       # softmax | mse
    tokens: bool = False        # x holds token ids (N, T) rather than vectors (N, T, D)
    embed: int = 0              # with tokens: embedding size; 0 = one-hot
    dropout: float = 0.0        # between recurrent layers
    forget_bias: float = 1.0    # initial bias of the LSTM's forget / GRU's update gates (remember)
    input_bias: float = 0.0     # LSTM: initial bias of the input gates (< 0: write rarely)
    dtype: str = "float32"

    def __post_init__(self):
        check_cell(self.cell)
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; use one of {list(POOLINGS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {list(LOSSES)}")
        if self.pooling == "none" and self.loss != "softmax":
            raise ValueError("per-step outputs (pooling 'none') use the softmax loss")
        if self.embed and not self.tokens:
            raise ValueError("embed > 0 needs tokens=True (token-id inputs)")
        for name in ("input_size", "output_size", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


class SequenceModel:
    """The model of the module docstring. Parameter names: ``embed.W`` (V, E) with an embedding,
    ``rnn.*`` for the recurrent stack (see ``RecurrentStack`` / ``BidirectionalStack``), ``out.w``
    (F, C) and ``out.b`` (C,).

        scores = model.predict(x, mask)                       # (N, C) or (N, T, C)
        loss, grads = model.loss(x, y, mask)                  # grads keyed like model.params

    y: (N,) class ids (softmax), (N, M) or (N,) targets (mse), (N, T) ids (pooling "none").
    """

    def __init__(self, config: SequenceConfig, rng: np.random.Generator):
        self.config = c = config
        dt = np.dtype(c.dtype)
        self.embed = Embedding(c.input_size, c.embed, rng, dt) if c.embed else None
        D = c.embed if c.embed else c.input_size
        self.rnn: BidirectionalStack | RecurrentStack
        if c.bidirectional:
            self.rnn = BidirectionalStack(D, c.hidden, c.cell, c.layers, c.dropout, rng, dt,
                                          c.forget_bias)
        else:
            self.rnn = RecurrentStack(D, c.hidden, c.cell, c.layers, c.dropout, False, rng, dt,
                                      c.forget_bias)
        if c.cell == "lstm" and c.input_bias:
            for name, b in self.rnn.params.items():
                if ".b" in name:
                    b[: c.hidden] = c.input_bias                        # gate order i, f, g, o
        feat = 2 * c.hidden if c.bidirectional else c.hidden
        self.out = TemporalAffine(feat, c.output_size, rng, dt)
        self.params = collect_params(embed=self.embed, rnn=self.rnn, out=self.out)

    # ------------------------------------------------------------------ pieces

    def _inputs(self, x: np.ndarray):
        """x -> (input vectors (N, T, D), embedding cache or None)."""
        c = self.config
        if not c.tokens:
            return x, None
        if self.embed is not None:
            return self.embed.forward(x)
        return one_hot(x, c.input_size, c.dtype), None

    def _recurrent(self, inp, mask, train, rng):
        if isinstance(self.rnn, BidirectionalStack):            # config.bidirectional
            return self.rnn.forward(inp, mask, train, rng)
        h, _, cache = self.rnn.forward(inp, None, mask, train, rng)
        return h, cache

    def _recurrent_backward(self, dh, cache):
        if isinstance(self.rnn, BidirectionalStack):
            return self.rnn.backward(dh, cache)
        dx, grads, _ = self.rnn.backward(dh, cache)
        return dx, grads

    def _pool(self, h: np.ndarray, mask: np.ndarray | None):
        """h (N, T, F) -> (pooled (N, F), cache)."""
        kind = self.config.pooling
        if kind == "mean":
            return F.temporal_mean_forward(h, mask)
        if kind == "max":
            return F.temporal_max_forward(h, mask)
        if not self.config.bidirectional:
            return F.temporal_last_forward(h, mask)
        H = self.config.hidden
        pf, cf = F.temporal_last_forward(np.ascontiguousarray(h[:, :, :H]), mask)
        pr, cr = F.temporal_first_forward(np.ascontiguousarray(h[:, :, H:]), mask)
        return np.concatenate([pf, pr], axis=1), (cf, cr)

    def _pool_backward(self, dpooled: np.ndarray, cache) -> np.ndarray:
        kind = self.config.pooling
        if kind == "mean":
            return F.temporal_mean_backward(dpooled, cache)
        if kind == "max":
            return F.temporal_max_backward(dpooled, cache)
        if not self.config.bidirectional:
            return F.temporal_last_backward(dpooled, cache)
        H = self.config.hidden
        cf, cr = cache
        return np.concatenate([F.temporal_pick_backward(np.ascontiguousarray(dpooled[:, :H]), cf),
                               F.temporal_pick_backward(np.ascontiguousarray(dpooled[:, H:]), cr)],
                              axis=2)

    # ------------------------------------------------------------------ model

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None, train: bool = False,
                rng: np.random.Generator | None = None):
        """-> (scores (N, C) or (N, T, C), cache for ``backward``)."""
        inp, ecache = self._inputs(x)
        h, rcache = self._recurrent(inp, mask, train, rng)              # (N, T, F)
        if self.config.pooling == "none":
            scores, acache = self.out.forward(h)                        # (N, T, C)
            return scores, (ecache, rcache, None, acache)
        pooled, pcache = self._pool(h, mask)                            # (N, F)
        scores, acache = self.out.forward(pooled[:, None, :])           # (N, 1, C)
        return scores[:, 0], (ecache, rcache, pcache, acache)

    def backward(self, dscores: np.ndarray, cache) -> dict[str, np.ndarray]:
        """dscores like the scores -> grads keyed like ``params``."""
        ecache, rcache, pcache, acache = cache
        if self.config.pooling == "none":
            dh, gout = self.out.backward(dscores, acache)
        else:
            dpooled, gout = self.out.backward(dscores[:, None, :], acache)
            dh = self._pool_backward(dpooled[:, 0], pcache)
        dinp, grnn = self._recurrent_backward(dh, rcache)
        grads = {f"out.{k}": v for k, v in gout.items()}
        grads.update({f"rnn.{k}": v for k, v in grnn.items()})
        if self.embed is not None:
            grads["embed.W"] = self.embed.backward(dinp, ecache)[1]["W"]
        return grads

    def predict(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Scores in inference mode: (N, C), or (N, T, C) for per-step outputs."""
        return self.forward(x, mask)[0]

    def loss_from_scores(self, scores: np.ndarray, y: np.ndarray,
                         mask: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(loss, dscores): the configured loss, averaged over the batch."""
        c = self.config
        if c.pooling == "none":
            return F.temporal_softmax_loss(scores, y, mask)
        if c.loss == "softmax":
            return F.softmax_loss(scores, y)
        target = y.reshape(scores.shape).astype(scores.dtype, copy=False)
        return F.mse_loss(scores, target)

    def loss(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None,
             train: bool = False, rng: np.random.Generator | None = None):
        """(loss, grads keyed like params)."""
        scores, cache = self.forward(x, mask, train, rng)
        loss, dscores = self.loss_from_scores(scores, y, mask)
        return loss, self.backward(dscores, cache)
