"""Spelling a number in English from its value: the conditioned generation task.

    features  the number's three decimal digits, each one-hot: (30,) = hundreds | tens | units
    sequence  start, the spelling's characters, end, then null padding
              ("three hundred forty-two", "twelve", "zero", "seven hundred")

A language model can only spell the number it is given through its initial state
(``bptt.nn.conditioned``): the features enter nowhere else. Vocabulary: null 0, start 1, end 2,
then " -abcdefghijklmnopqrstuvwxyz" (ids 3..30).
"""

from __future__ import annotations

import numpy as np

NULL, START, END = 0, 1, 2
CHARS = " -abcdefghijklmnopqrstuvwxyz"
VOCAB = 3 + len(CHARS)
FEATURES = 30

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int) -> str:
    """0..999 in words: "nine hundred ninety-nine" (no "and")."""
    if not 0 <= n <= 999:
        raise ValueError(f"spell: {n} is outside 0..999")
    h, rest = divmod(n, 100)
    parts = [f"{ONES[h]} hundred"] if h else []
    if rest or not h:
        if rest < 20:
            parts.append(ONES[rest])
        else:
            t, u = divmod(rest, 10)
            parts.append(TENS[t] + (f"-{ONES[u]}" if u else ""))
    return " ".join(parts)


def features(numbers: np.ndarray) -> np.ndarray:
    """(N,) ints in 0..999 -> (N, 30) float32 one-hot digits."""
    numbers = np.asarray(numbers)
    out = np.zeros((len(numbers), FEATURES), dtype=np.float32)
    for k, place in enumerate((100, 10, 1)):
        out[np.arange(len(numbers)), 10 * k + numbers // place % 10] = 1.0
    return out


def sequences(numbers: np.ndarray) -> np.ndarray:
    """(N,) ints -> (N, L + 2) ids: start, spelling, end, null padding (L the longest)."""
    words = [spell(int(n)) for n in numbers]
    L = max(len(w) for w in words)
    out = np.full((len(words), L + 2), NULL, dtype=np.int64)
    for i, w in enumerate(words):
        out[i, 0] = START
        out[i, 1:len(w) + 1] = [3 + CHARS.index(ch) for ch in w]
        out[i, len(w) + 1] = END
    return out


def decode(ids) -> str:
    return "".join(CHARS[i - 3] if 3 <= i < VOCAB else "?" for i in ids)


def exact_match(model, numbers: np.ndarray) -> tuple[float, list[str]]:
    """(fraction of numbers spelled exactly right by greedy decoding, the first few outputs)."""
    outs = [decode(o) for o in model.greedy(features(numbers), max_len=32)]
    ok = [o == spell(int(n)) for o, n in zip(outs, numbers)]
    return float(np.mean(ok)), [f"{int(n)}: {o}" for n, o in zip(numbers[:3], outs[:3])]
