"""Variable-length sequence data: padding, masks and a length-bucketing batcher.

A data set is a ``SeqData``: inputs padded to a common length T with zeros, the targets and each
sequence's length. A batch is cut to the longest sequence it holds and comes with its mask
(N, T_batch) bool, True on the first ``length`` steps of each row.

Length bucketing (``bucket_batches``): sort the sequences by length, with random tie-breaking so
that batches differ from epoch to epoch, cut the sorted order into batches of consecutive
sequences and shuffle the order of the batches. Each batch then holds sequences of similar
length and little padding is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mask_from_lengths(lengths: np.ndarray, T: int | None = None) -> np.ndarray:
    """(N,) ints -> (N, T) bool, row n True on its first lengths[n] steps."""
    lengths = np.asarray(lengths)
    T = int(lengths.max()) if T is None else T
    return np.arange(T)[None, :] < lengths[:, None]


def pad_sequences(seqs: list[np.ndarray], dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """List of (T_n, ...) arrays -> (padded (N, T_max, ...) zero-filled, lengths (N,))."""
    if not seqs:
        raise ValueError("pad_sequences: got no sequences")
    lengths = np.array([len(s) for s in seqs])
    if lengths.min() < 1:
        raise ValueError("pad_sequences: every sequence needs at least one step")
    first = np.asarray(seqs[0])
    out = np.zeros((len(seqs), lengths.max(), *first.shape[1:]), dtype=dtype or first.dtype)
    for n, s in enumerate(seqs):
        out[n, : len(s)] = s
    return out, lengths


@dataclass
class SeqData:
    """x (N, T, D) floats or (N, T) token ids, zero-padded; y (N,), (N, M), or (N, T) with
    ``per_step`` (one target per step, cut with x); lengths (N,) ints in [1, T]."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    per_step: bool = False

    def __post_init__(self):
        N, T = self.x.shape[:2]
        if self.y.shape[0] != N or self.lengths.shape != (N,):
            raise ValueError(f"SeqData: x has {N} rows, y {self.y.shape[0]}, lengths "
                             f"{self.lengths.shape}")
        if self.lengths.min() < 1 or self.lengths.max() > T:
            raise ValueError(f"SeqData: lengths must be in [1, {T}]")
        if self.per_step and self.y.shape[:2] != (N, T):
            raise ValueError(f"SeqData: per-step y has shape {self.y.shape}; need {(N, T)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows ``idx`` cut to their longest length -> (x, y, mask or None when none padded)."""
        lengths = self.lengths[idx]
        T = int(lengths.max())
        x = self.x[idx, :T]
        y = self.y[idx, :T] if self.per_step else self.y[idx]
        mask = None if lengths.min() == T else mask_from_lengths(lengths, T)
        return x, y, mask

    def subset(self, idx: np.ndarray) -> SeqData:
        return SeqData(self.x[idx], self.y[idx], self.lengths[idx], self.per_step)


def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   shuffle: bool = True) -> list[np.ndarray]:
    """Indices of length-bucketed batches covering every sequence once (see module docstring).

    Without ``shuffle`` the batches come in order of increasing length, ties in index order
    (deterministic; for evaluation).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size is {batch_size}; it must be at least 1")
    lengths = np.asarray(lengths)
    tie = rng.random(len(lengths)) if shuffle else np.arange(len(lengths))
    order = np.lexsort((tie, lengths))                       # by length, then tie-breaker
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class EpochBatcher:
    """Endless bucketed batches over a fixed data set: ``next(rng) -> (x, y, mask)``.

    A new bucketing (new ties, new batch order) is drawn at the start of every epoch.
    """

    def __init__(self, data: SeqData, batch_size: int):
        self.data, self.batch_size = data, batch_size
        self._queue: list[np.ndarray] = []
        self.epoch = 0

    def next(self, rng: np.random.Generator):
        if not self._queue:
            self._queue = bucket_batches(self.data.lengths, self.batch_size, rng)
            self.epoch += 1
        return self.data.batch(self._queue.pop())

    def steps_per_epoch(self) -> int:
        return -(-len(self.data) // self.batch_size)
