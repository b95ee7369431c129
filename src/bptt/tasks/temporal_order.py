"""Temporal order problem (Hochreiter & Schmidhuber 1997, experiment 6a).

Sequences of length 100-110 over the symbols {a, b, c, d}, framed by E (first) and B (last).
Two steps hold X or Y instead: t1 uniform in [10, 20] and t2 uniform in [50, 60] (0-based
positions). The class is the temporal order of the two: XX, XY, YX, YY (4 classes), to be read
out at the last step. Everything between them is noise.
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData

SYMBOLS = "abcdXYEB"
CLASSES = ("XX", "XY", "YX", "YY")


def temporal_order(n: int, rng: np.random.Generator, min_len: int = 100,
                   max_len: int = 110) -> SeqData:
    """n sequences of token ids, padded to (n, max_len); labels (n,) in 0..3."""
    lengths = rng.integers(min_len, max_len + 1, size=n)        # (n,)
    x = rng.integers(0, 4, size=(n, max_len))                   # a-d
    rows = np.arange(n)
    x[:, 0] = SYMBOLS.index("E")
    x[rows, lengths - 1] = SYMBOLS.index("B")
    x[np.arange(max_len)[None, :] >= lengths[:, None]] = 0      # padding
    t1 = rng.integers(10, 21, size=n)
    t2 = rng.integers(50, 61, size=n)
    s1 = rng.integers(0, 2, size=n)                             # 0 = X, 1 = Y
    s2 = rng.integers(0, 2, size=n)
    x[rows, t1] = SYMBOLS.index("X") + s1
    x[rows, t2] = SYMBOLS.index("X") + s2
    return SeqData(x, 2 * s1 + s2, lengths)
