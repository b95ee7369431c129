"""Addition of numbers written as strings ("535+61" -> "596"), the Keras example
(keras-io ``examples/nlp/addition_rnn.py``), learned by an encoder-decoder.

Data as in Keras: each operand has 1..``digits`` digits (the count uniform, then each digit
uniform, so 7 and 007 are the same number), pairs are distinct up to order, and the question
is fed reversed ("535+61" is read as "16+535"). Keras pads questions with spaces to a fixed
width; here the source is the reversed question unpadded (a mask marks each one's length) and
the target is the sum's digits, most significant first, then the end symbol.

Vocabularies: source ``0123456789+`` (ids 0..10); target pad 0, start 1, end 2, digits 3..12.

Metrics on held-out problems (greedy decoding):
    per-character accuracy  the answer and the prediction padded with spaces to digits + 1
                            characters (Keras' target width) and compared position by position,
                            the metric Keras reports
    exact match             the whole predicted answer is right
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData

SRC = "0123456789+"
PAD, START, END = 0, 1, 2
TGT_VOCAB = 13


def operand(rng: np.random.Generator, digits: int) -> int:
    """Keras' ``f()``: a number of 1..digits uniformly random digits."""
    n = int(rng.integers(1, digits + 1))
    return int("".join(str(d) for d in rng.integers(0, 10, n)))


def problems(n: int, digits: int, rng: np.random.Generator,
             exclude: set | None = None) -> list[tuple[int, int]]:
    """n distinct (a, b) pairs (distinct up to order, and not in ``exclude``)."""
    seen: set = set(exclude or ())
    out: list[tuple[int, int]] = []
    limit = 200 * n + 1000
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > limit:
            raise ValueError(f"cannot draw {n} distinct {digits}-digit problems")
        a, b = operand(rng, digits), operand(rng, digits)
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return out


def encode(pairs: list[tuple[int, int]], digits: int) -> SeqData:
    """Pairs -> SeqData: x (N, 2 digits + 1) reversed question ids (zero-padded, with lengths),
    y (N, digits + 2) the sum's digit ids, end, then pad."""
    N = len(pairs)
    S, M = 2 * digits + 1, digits + 2
    x = np.zeros((N, S), dtype=np.int64)
    y = np.full((N, M), PAD, dtype=np.int64)
    lengths = np.zeros(N, dtype=np.int64)
    for i, (a, b) in enumerate(pairs):
        q = f"{a}+{b}"[::-1]
        x[i, :len(q)] = [SRC.index(ch) for ch in q]
        lengths[i] = len(q)
        s = str(a + b)
        y[i, :len(s)] = [3 + int(ch) for ch in s]
        y[i, len(s)] = END
    return SeqData(x, y, lengths)


def decode(ids) -> str:
    """Target ids (end excluded) -> the answer string; non-digit symbols show as '?'."""
    return "".join(str(int(i) - 3) if 3 <= i < 13 else "?" for i in ids)


def answers(pairs: list[tuple[int, int]]) -> list[str]:
    return [str(a + b) for a, b in pairs]


def evaluate(model, data: SeqData, pairs: list[tuple[int, int]], digits: int,
             batch_size: int = 1000) -> dict:
    """Greedy answers for every problem -> per-character and exact-match accuracy."""
    truth = answers(pairs)
    preds: list[str] = []
    for s in range(0, len(data), batch_size):
        x, _, mask = data.batch(np.arange(s, min(s + batch_size, len(data))))
        preds += [decode(p) for p in model.greedy(x, mask, max_len=digits + 2)]
    W = digits + 1
    chars = sum(sum(p == t for p, t in zip(pr[:W].ljust(W), tr.ljust(W)))
                for pr, tr in zip(preds, truth))
    exact = sum(pr == tr for pr, tr in zip(preds, truth))
    return {"char_accuracy": chars / (W * len(truth)), "exact_match": exact / len(truth),
            "examples": [f"{a}+{b}={p}" for (a, b), p in zip(pairs[:3], preds[:3])]}
