"""Copy memory problem (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016).

Alphabet 0-9: 0 is the blank, 1-8 the data symbols, 9 the delimiter. The input is ten data
symbols drawn uniformly from 1-8, then T - 1 blanks, the delimiter, and ten more blanks (length
T + 20). The target is blank for the first T + 10 steps and then the ten data symbols in order:
the net must output the sequence it saw T steps before. The loss is the cross-entropy averaged
over all T + 20 steps; the memoryless strategy (blank until the delimiter, then a uniform guess
among the 8 symbols) scores 10 ln 8 / (T + 20).
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData

BLANK, DELIM, VOCAB, OUT = 0, 9, 10, 9       # output classes 0-8 (never the delimiter)
COPY = 10                                    # symbols to copy


def copy_memory(n: int, T: int, rng: np.random.Generator) -> SeqData:
    """n sequences (n, T + 20) of token ids, per-step targets (n, T + 20)."""
    if T < 1:
        raise ValueError(f"copy: T is {T}; it must be at least 1")
    L = T + 2 * COPY
    data = rng.integers(1, 9, size=(n, COPY))
    x = np.zeros((n, L), dtype=np.int64)
    x[:, :COPY] = data
    x[:, COPY + T - 1] = DELIM
    y = np.zeros((n, L), dtype=np.int64)
    y[:, -COPY:] = data
    return SeqData(x, y, np.full(n, L), per_step=True)


def baseline_loss(T: int) -> float:
    """Cross-entropy per step of the memoryless strategy: 10 ln 8 / (T + 20)."""
    return COPY * float(np.log(8.0)) / (T + 2 * COPY)
