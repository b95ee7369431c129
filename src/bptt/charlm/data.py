"""The data side of training: N contiguous streams for truncated BPTT (``StreamBatcher``), the
train/validation split, evaluation chunks and the validation loss. Symbols: N streams, T steps."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bptt.charlm.config import TrainConfig
from bptt.charlm.sampling import nll_sum
from bptt.charlm.text import CorpusError, EncodedCorpus
from bptt.nn import LanguageModel

EVAL_STREAMS, EVAL_SEQ = 64, 256        # evaluation batch: up to 64 streams, 256 steps a call


def split_and_batch(corpus: EncodedCorpus, cfg: TrainConfig):
    """(train ids, validation ids, StreamBatcher); a clear error when the text is too short."""
    train_ids, val_ids = corpus.split(cfg.val_fraction)
    if len(val_ids) < 2:
        raise CorpusError(f"the validation split has {len(val_ids)} characters; use a longer "
                          f"text or a larger --val-fraction")
    return train_ids, val_ids, StreamBatcher(train_ids, cfg.batch, cfg.seq_len)


def evaluate(model: LanguageModel, ids: np.ndarray, max_chars: int = 0) -> float:
    """Mean nats per character of ``ids`` (the first ``max_chars`` if > 0), state carried."""
    if max_chars:
        ids = ids[:max_chars]
    total, count, state = 0.0, 0, None
    for x, y in eval_chunks(ids, EVAL_STREAMS, EVAL_SEQ):
        scores, state = model.logits(x, state)
        total += nll_sum(scores, y)
        count += y.size
    return total / count


# ---------------------------------------------------------------- batching

class StreamBatcher:
    """N contiguous streams over ``ids`` for truncated BPTT.

    The ids are cut into N equal streams of L = (n - 1) // N symbols; batch k holds steps
    k*T .. k*T + T - 1 of every stream (inputs) and the next symbol of each (targets), so the
    hidden state after batch k is the right initial state for batch k + 1. An epoch has
    L // T batches; at the wrap the caller resets the state.
    """

    def __init__(self, ids: np.ndarray, N: int, T: int):
        if N < 1 or T < 1:
            raise ValueError(f"batch ({N}) and seq-len ({T}) must be at least 1")
        n = len(ids)
        L = (n - 1) // N
        if L // T < 1:
            raise CorpusError(f"the training text has {n} characters, too few for {N} streams "
                              f"of {T} steps (it needs at least {N * T + 1}); use a smaller "
                              f"--batch or --seq-len, or a longer text")
        self.ids, self.N, self.T, self.L = ids, N, T, L
        self.steps_per_epoch = L // T
        self.starts = np.arange(N, dtype=np.int64) * L                 # (N,)
        self._cols = np.arange(T + 1, dtype=np.int64)                  # (T+1,)

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) int64 (N, T) for batch k of the epoch (0 <= k < steps_per_epoch)."""
        if not 0 <= k < self.steps_per_epoch:
            raise IndexError(f"batch {k} outside 0..{self.steps_per_epoch - 1}")
        idx = self.starts[:, None] + (k * self.T + self._cols)         # (N, T+1)
        chunk = np.asarray(self.ids[idx], dtype=np.int64)
        return chunk[:, :-1], chunk[:, 1:]


def eval_chunks(ids: np.ndarray, N: int, T: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cover ``ids`` with up to N streams read T steps at a time (the last chunk may be shorter),
    for evaluation with the state carried from chunk to chunk. Yields (x, y) int64 (N', T')."""
    n = len(ids)
    if n < 2:
        return
    Ne = max(1, min(N, (n - 1) // T))
    L = (n - 1) // Ne
    starts = np.arange(Ne, dtype=np.int64) * L
    for s in range(0, L, T):
        w = min(T, L - s)
        idx = starts[:, None] + (s + np.arange(w + 1, dtype=np.int64))
        chunk = np.asarray(ids[idx], dtype=np.int64)
        yield chunk[:, :-1], chunk[:, 1:]
