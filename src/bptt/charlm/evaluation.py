"""Splitting a corpus for training and validation, and the validation loss."""

from __future__ import annotations

import numpy as np

from bptt.charlm.config import TrainConfig
from bptt.charlm.sampling import nll_sum
from bptt.charlm.text import CorpusError, EncodedCorpus, StreamBatcher, eval_chunks
from bptt.nn import LanguageModel

EVAL_STREAMS, EVAL_SEQ = 64, 256        # evaluation batch: up to 64 streams, 256 steps a call


def split_and_batch(corpus: EncodedCorpus, cfg: TrainConfig):
    """(train ids, validation ids, StreamBatcher); a clear error when the text is too short."""
    train_ids, val_ids = corpus.split(cfg.val_fraction)
    if len(val_ids) < 2:
        raise CorpusError(f"the validation split has {len(val_ids)} characters; use a longer "
                          f"text or a larger --val-fraction")
    if cfg.eval_chars == 1:
        raise CorpusError("--eval-chars 1 leaves nothing to predict; use 2 or more (0 = all)")
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
