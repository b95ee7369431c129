"""Encoder-decoder (sequence to sequence) model, Sutskever et al. 2014 / Cho et al. 2014.

    source ids x (N, S), mask (N, S)   -> (one-hot | embedding) -> encoder stack (masked;
                                          optionally bidirectional)
    encoder final state                -> bridge -> decoder initial state (one (h, c) per layer)
    target ids y (N, T)                -> decoder input [start, y_1 .. y_{T-1}] (teacher
                                          forcing) -> decoder stack -> temporal affine -> scores
    loss = sum over valid target steps of -log p(y_t) / N        valid: y_t != pad

A target row is the output symbols, then ``end``, then ``pad`` up to T, so the decoder learns
where to stop. The bridge:

    identity    decoder layer k starts from encoder layer k's final (h, c) (needs a
                unidirectional encoder of the decoder's width)
    affine      s = the top encoder layer's final h (N, F), F = H_enc (x 2 if bidirectional:
                [h_fwd at the last valid step, h_rev at the first]);
                h0_k = s @ W_k + b_k and, for an LSTM decoder, c0_k = s @ Wc_k + bc_k
    auto        identity where possible, else affine

Backward: the decoder's dL/d(initial state) goes through the bridge into dL/d(encoder final
state), which enters the encoder's backward as the gradient of its last state (its outputs have
no other gradient). Inference: ``greedy`` and ``beam`` (``bptt.nn.decoding``).

Parameter names: ``src_embed.W`` / ``tgt_embed.W`` (with an embedding), ``enc.*`` (the
encoder's stack), ``bridge.h{k}.w`` (F, H), ``bridge.h{k}.b`` (H,) (and ``bridge.c{k}.*``),
``dec.*`` (the decoder's ``RecurrentStack``), ``out.w`` (H, V_tgt), ``out.b`` (V_tgt,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bptt import functional as F
from bptt.nn.bidirectional import BidirectionalStack, reverse_valid_index
from bptt.nn.decoding import Hypothesis, beam_search, greedy_decode
from bptt.nn.init import xavier_uniform
from bptt.nn.layers import Embedding, RecurrentStack, TemporalAffine, check_cell, collect_params

BRIDGES = ("auto", "identity", "affine")


@dataclass
class Seq2SeqConfig:
    """Everything needed to rebuild an encoder-decoder exactly."""

    src_vocab: int
    tgt_vocab: int              # includes the pad, start and end symbols
    hidden: int = 128           # decoder width H
    enc_hidden: int = 0         # encoder width; 0 = hidden
    layers: int = 1             # in the encoder and in the decoder
    cell: str = "lstm"
    bidirectional: bool = False
    embed: int = 0              # embedding size of both vocabularies; 0 = one-hot
    bridge: str = "auto"        # auto | identity | affine (module docstring)
    pad: int = 0                # target symbol ids
    start: int = 1
    end: int = 2
    dtype: str = "float32"

    def __post_init__(self):
        check_cell(self.cell)
        if self.bridge not in BRIDGES:
            raise ValueError(f"unknown bridge {self.bridge!r}; use one of {list(BRIDGES)}")
        for name in ("src_vocab", "tgt_vocab", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be at least 1")
        for name in ("pad", "start", "end"):
            if not 0 <= getattr(self, name) < self.tgt_vocab:
                raise ValueError(f"{name} symbol {getattr(self, name)} is outside the target "
                                 f"vocabulary 0..{self.tgt_vocab - 1}")
        if self.bridge == "identity" and not self.identity_possible:
            raise ValueError("the identity bridge needs a unidirectional encoder as wide as the "
                             "decoder; use bridge='affine' (or 'auto')")

    @property
    def H_enc(self) -> int:
        return self.enc_hidden or self.hidden

    @property
    def identity_possible(self) -> bool:
        return not self.bidirectional and self.H_enc == self.hidden

    @property
    def uses_identity(self) -> bool:
        return self.bridge == "identity" or (self.bridge == "auto" and self.identity_possible)

    def build(self, rng: np.random.Generator) -> Seq2Seq:
        return Seq2Seq(self, rng)

    def to_dict(self) -> dict:
        return asdict(self)


class Seq2Seq:
    """The model of the module docstring.

        loss, grads = model.loss(x, y, mask)            # grads keyed like model.params
        outs = model.greedy(x, mask, max_len)           # N int arrays, end excluded
        hyps = model.beam(x, mask, beam=4, max_len=10, length_penalty=1.0)
    """

    def __init__(self, config: Seq2SeqConfig, rng: np.random.Generator):
        c = self.config = config
        dt = np.dtype(c.dtype)
        E = c.embed
        self.src_embed = Embedding(c.src_vocab, E, rng, dt) if E else None
        self.tgt_embed = Embedding(c.tgt_vocab, E, rng, dt) if E else None
        Ds, Dt = (E, E) if E else (c.src_vocab, c.tgt_vocab)
        He = c.H_enc
        self.enc: BidirectionalStack | RecurrentStack = (
            BidirectionalStack(Ds, He, c.cell, c.layers, rng=rng, dtype=dt)
            if c.bidirectional else
            RecurrentStack(Ds, He, c.cell, c.layers, rng=rng, dtype=dt))
        self.dec = RecurrentStack(Dt, c.hidden, c.cell, c.layers, rng=rng, dtype=dt)
        self.out = TemporalAffine(c.hidden, c.tgt_vocab, rng, dt)
        self.bridge: dict[str, np.ndarray] = {}
        if not c.uses_identity:
            Fe = He * (2 if c.bidirectional else 1)
            kinds = ("h", "c") if c.cell == "lstm" else ("h",)
            for k in range(c.layers):
                for kind in kinds:
                    self.bridge[f"{kind}{k}.w"] = xavier_uniform(rng, Fe, c.hidden, dt)
                    self.bridge[f"{kind}{k}.b"] = np.zeros(c.hidden, dtype=dt)
        self.params = collect_params(src_embed=self.src_embed, tgt_embed=self.tgt_embed,
                                     enc=self.enc, dec=self.dec, out=self.out)
        self.params.update({f"bridge.{k}": v for k, v in self.bridge.items()})

    # ------------------------------------------------------------ pieces

    def _onehot(self, ids: np.ndarray, V: int) -> np.ndarray:
        F.embedding_forward(ids[:1, :1], np.zeros((V, 1)))       # validates the ids
        out = np.zeros((*ids.shape, V), dtype=self.config.dtype)
        np.put_along_axis(out, ids[..., None], 1.0, axis=2)
        return out

    def _embed(self, ids: np.ndarray, which: str):
        layer = self.src_embed if which == "src" else self.tgt_embed
        if layer is not None:
            return layer.forward(ids)
        c = self.config
        return self._onehot(ids, c.src_vocab if which == "src" else c.tgt_vocab), None

    def encode(self, x: np.ndarray, mask: np.ndarray | None = None, train: bool = False,
               rng: np.random.Generator | None = None):
        """Source ids (N, S) -> (decoder initial state, cache for ``_encode_backward``)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"source ids have shape {x.shape}; they must be (N, S), S >= 1")
        inp, ecache = self._embed(x, "src")
        c = self.config
        if isinstance(self.enc, BidirectionalStack):                  # c.bidirectional
            h, rcache = self.enc.forward(inp, mask, train, rng)       # (N, S, 2He)
            S, He = h.shape[1], c.H_enc
            rev_at = (np.zeros(h.shape[0], dtype=np.int64) if mask is None
                      else reverse_valid_index(mask)[:, S - 1])       # (N,) where h_rev ends
            s = np.concatenate([h[:, S - 1, :He], h[np.arange(h.shape[0]), rev_at, He:]],
                               axis=1)                                 # (N, 2He)
            final = None
        else:
            h, final, rcache = self.enc.forward(inp, None, mask, train, rng)
            s, rev_at = final[-1][0], None                            # (N, He)
        if c.uses_identity:
            assert final is not None                  # the identity bridge is unidirectional
            state = [(hh.copy(), None if cc is None else cc.copy()) for hh, cc in final]
        else:
            state = []
            for k in range(c.layers):
                h0 = s @ self.bridge[f"h{k}.w"] + self.bridge[f"h{k}.b"]        # (N, H)
                c0 = (s @ self.bridge[f"c{k}.w"] + self.bridge[f"c{k}.b"]
                      if c.cell == "lstm" else None)
                state.append((h0, c0))
        return state, (x.shape, ecache, rcache, s, rev_at)

    def _encode_backward(self, dstate: list, cache) -> dict[str, np.ndarray]:
        """dL/d(decoder initial state) -> grads of the bridge, encoder and source embedding."""
        (N, S), ecache, rcache, s, rev_at = cache
        c = self.config
        grads: dict[str, np.ndarray] = {}
        He = c.H_enc
        if c.uses_identity:
            enc_dstate = list(dstate)
        else:
            ds = np.zeros_like(s)                                     # (N, F)
            for k, (dh0, dc0) in enumerate(dstate):
                for kind, d in (("h", dh0), ("c", dc0)):
                    if d is None:
                        continue
                    grads[f"bridge.{kind}{k}.w"] = s.T @ d
                    grads[f"bridge.{kind}{k}.b"] = d.sum(axis=0)
                    ds += d @ self.bridge[f"{kind}{k}.w"].T
            enc_dstate = [(None, None)] * (c.layers - 1) + [(ds, None)]
        if isinstance(self.enc, BidirectionalStack):
            dh = np.zeros((N, S, 2 * He), dtype=s.dtype)
            dh[:, S - 1, :He] += ds[:, :He]
            dh[np.arange(N), rev_at, He:] += ds[:, He:]                # rows distinct
            dinp, genc = self.enc.backward(dh, rcache)
        else:
            dh = np.zeros((N, S, He), dtype=s.dtype)
            dinp, genc, _ = self.enc.backward(dh, rcache, enc_dstate)
        grads.update({f"enc.{k}": v for k, v in genc.items()})
        if self.src_embed is not None:
            grads["src_embed.W"] = self.src_embed.backward(dinp, ecache)[1]["W"]
        return grads

    def decoder_inputs(self, y: np.ndarray) -> np.ndarray:
        """Teacher forcing: [start, y_1 .. y_{T-1}] (N, T)."""
        yin = np.empty_like(y)
        yin[:, 0] = self.config.start
        yin[:, 1:] = y[:, :-1]
        return yin

    # ------------------------------------------------------------ training

    def loss(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None,
             train: bool = False, rng: np.random.Generator | None = None):
        """(loss, grads) for source ids x (N, S) with source mask (N, S) (None: all valid) and
        target ids y (N, T): outputs, end, pad... (module docstring)."""
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[0] != np.shape(x)[0]:
            raise ValueError(f"target ids have shape {y.shape}; they must be (N, T) with the "
                             f"N = {np.shape(x)[0]} rows of the source")
        state, ecache = self.encode(x, mask, train, rng)
        inp, tcache = self._embed(self.decoder_inputs(y), "tgt")
        h, _, dcache = self.dec.forward(inp, state, None, train, rng)
        scores, acache = self.out.forward(h)
        tmask = y != self.config.pad                                   # (N, T)
        loss, dscores = F.temporal_softmax_loss(scores, y, tmask)
        dh, gout = self.out.backward(dscores, acache)
        dinp, gdec, dstate0 = self.dec.backward(dh, dcache)
        grads = {f"out.{k}": v for k, v in gout.items()}
        grads.update({f"dec.{k}": v for k, v in gdec.items()})
        if self.tgt_embed is not None:
            grads["tgt_embed.W"] = self.tgt_embed.backward(dinp, tcache)[1]["W"]
        grads.update(self._encode_backward(dstate0, ecache))
        return loss, grads

    # ------------------------------------------------------------ inference

    def step(self, ids: np.ndarray, state: list):
        """One decoder step: ids (B,) -> (log-probabilities (B, V_tgt), next state)."""
        inp, _ = self._embed(ids[:, None], "tgt")
        h, state, _ = self.dec.forward(inp, state)
        scores, _ = self.out.forward(h)
        return F.log_softmax(scores[:, 0].astype(np.float64), axis=1), state

    def greedy(self, x: np.ndarray, mask: np.ndarray | None = None,
               max_len: int = 20) -> list[np.ndarray]:
        """The most likely symbol at each step, until ``end`` or ``max_len`` symbols."""
        state, _ = self.encode(x, mask)
        return greedy_decode(self.step, state, self.config.start, self.config.end, max_len)

    def beam(self, x: np.ndarray, mask: np.ndarray | None = None, beam: int = 4,
             max_len: int = 20, length_penalty: float = 0.0,
             n_best: int = 1) -> list[list[Hypothesis]]:
        """Beam search (``bptt.nn.decoding``); per row the ``n_best`` best hypotheses."""
        state, _ = self.encode(x, mask)
        return beam_search(self.step, state, self.config.start, self.config.end, beam,
                           max_len, length_penalty, n_best)
