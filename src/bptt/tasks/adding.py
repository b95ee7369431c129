"""The adding problem, in its two published forms.

**Le et al. 2015 / Arjovsky et al. 2016** (``adding``): two input channels of length T. Channel 0
holds values U[0, 1]; channel 1 is zero except for exactly two markers (1.0), one at a uniformly
chosen step of the first half [0, T/2) and one in the second half [T/2, T). The target is the sum
of the two marked values; the loss and the metric are the mean squared error. Predicting 1
always (the mean of the target) scores E[(U1 + U2 - 1)^2] = 2 / 12 = 0.167.

**Hochreiter & Schmidhuber 1997, experiment 4** (``adding1997``): pairs (value U[-1, 1],
marker). Lengths are uniform in [T, T + T/10]. One of the first ten pairs is marked (its value is
X1), then one of the first T/2 - 1 pairs still unmarked (X2); markers are 1.0. The first and the
last pair carry the marker -1 unless marked (if the first pair is marked, its value is set to 0;
the paper says so for X1, and we apply it to X2 too, which can also land there). The
target is 0.5 + (X1 + X2) / 4 in [0, 1]; a sequence counts as correct if the absolute error of
the output at its last step is below 0.04. Predicting 0.5 always scores MSE 1/24 and gets 15.4 %
of sequences correct.
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData


def adding_arjovsky(n: int, T: int, rng: np.random.Generator, dtype=np.float32) -> SeqData:
    """n sequences (n, T, 2), targets (n, 1), all of length T (T >= 2)."""
    if T < 2:
        raise ValueError(f"adding: T is {T}; it must be at least 2")
    x = np.zeros((n, T, 2), dtype=dtype)
    x[:, :, 0] = rng.random((n, T))
    half = T // 2
    first = rng.integers(0, half, size=n)                     # (n,) in [0, T/2)
    second = rng.integers(half, T, size=n)                    # (n,) in [T/2, T)
    rows = np.arange(n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]      # (n, 1)
    return SeqData(x, y.astype(dtype), np.full(n, T))


def adding_1997(n: int, T: int, rng: np.random.Generator, dtype=np.float32) -> SeqData:
    """n sequences of lengths in [T, T + T//10], padded to (n, T + T//10, 2); targets (n, 1)."""
    if T < 24:
        raise ValueError(f"adding1997: T is {T}; it must be at least 24 (markers in the first "
                         "ten and the first T/2 - 1 pairs)")
    Tmax = T + T // 10
    lengths = rng.integers(T, Tmax + 1, size=n)                # (n,)
    valid = np.arange(Tmax)[None, :] < lengths[:, None]       # (n, Tmax)
    x = np.zeros((n, Tmax, 2), dtype=dtype)
    x[:, :, 0] = np.where(valid, rng.uniform(-1.0, 1.0, size=(n, Tmax)), 0.0)
    rows = np.arange(n)
    x[:, 0, 1] = -1.0
    x[rows, lengths - 1, 1] = -1.0
    p1 = rng.integers(0, 10, size=n)                           # one of the first ten pairs
    j = rng.integers(0, T // 2 - 1, size=n)                    # one of the first T/2 - 1 unmarked
    p2 = np.where(j < p1, j, j + 1)
    first_marked = (p1 == 0) | (p2 == 0)
    x[first_marked, 0, 0] = 0.0                                # the first pair marked: value 0
    x[rows, p1, 1] = 1.0
    x[rows, p2, 1] = 1.0
    y = 0.5 + (x[rows, p1, 0] + x[rows, p2, 0]) / 4.0
    return SeqData(x, y[:, None].astype(dtype), lengths)
