"""Recipes of the sequence-to-sequence and conditioned-generation tasks (registered in
``registry.py``): addition of numbers as strings (3 and 5 digits, encoder-decoder) and spelling
a number from its digits (conditioned language model)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable

import numpy as np

from bptt.nn.conditioned import ConditionedConfig
from bptt.nn.seq2seq import Seq2SeqConfig
from bptt.tasks import addition, spelling
from bptt.tasks.data import EpochBatcher
from bptt.tasks.train import FitConfig


@functools.lru_cache(maxsize=4)
def _majority_baseline(digits: int) -> float:
    """Per-character accuracy of always answering the most common character at each position
    (answers padded with spaces to digits + 1), on 5000 problems."""
    rng = np.random.default_rng(12345)
    W = digits + 1
    ans = [s.ljust(W) for s in addition.answers(addition.problems(5000, digits, rng))]
    hits = sum(Counter(a[i] for a in ans).most_common(1)[0][1] for i in range(W))
    return hits / (W * len(ans))


class _Baseline(dict):
    def __missing__(self, digits: int) -> float:
        return _majority_baseline(digits)


ADDITION_BASELINE = _Baseline()


def addition_setup(digits: int) -> Callable:
    """3 digits: Keras' data (50k distinct problems, 45k to train, 5k held out), 10 epochs.
    5 digits: fresh problems every batch (never one of the 5k held out), 6000 steps."""

    def make(cell: str, T, seed: int, quick: bool):
        from bptt.tasks.registry import Setup, stream

        model = Seq2SeqConfig(len(addition.SRC), addition.TGT_VOCAB, hidden=128, cell=cell,
                              dtype="float32")
        train = FitConfig(batch_size=128, lr=1e-2, schedule="cosine", warmup=50, clip=1.0)
        n_test = 64 if quick else 5000
        if digits <= 3:
            pairs = addition.problems(50_000, digits, stream(seed, 1))
            train_pairs, test_pairs = pairs[:45_000], pairs[45_000:45_000 + n_test]
            data = addition.encode(train_pairs, digits)
            batches = lambda bs: EpochBatcher(data, bs).next          # noqa: E731
            epochs, size = 10, len(train_pairs)
        else:
            test_pairs = addition.problems(n_test, digits, stream(seed, 1))
            held = {(min(a, b), max(a, b)) for a, b in test_pairs}

            def batches(bs):
                def next_batch(rng):
                    d = addition.encode(addition.problems(bs, digits, rng, exclude=held), digits)
                    return d.batch(np.arange(bs))
                return next_batch
            train.steps, epochs, size = 6000, 0, 0
        test = addition.encode(test_pairs, digits)

        def evaluate(m):
            r = addition.evaluate(m, test, test_pairs, digits)
            return {"value": r.pop("char_accuracy"), **r}

        return Setup(model, train, batches, evaluate, epochs=epochs, train_size=size)
    return make


def spelling_setup(cell: str, T, seed: int, quick: bool):
    """800 numbers of 0..999 to train on, 200 held out; 60 epochs of batches of 32."""
    from bptt.tasks.registry import Setup, stream

    order = stream(seed, 1).permutation(1000)
    test_n, train_n = order[:200], order[200:]
    if quick:
        test_n = test_n[:64]
    feats, seqs = spelling.features(train_n), spelling.sequences(train_n)
    lengths = (seqs != spelling.NULL).sum(axis=1)                    # start .. end

    def batches(bs):
        def next_batch(rng):
            idx = rng.choice(len(train_n), size=min(bs, len(train_n)), replace=False)
            return feats[idx], seqs[idx, :lengths[idx].max()], None
        return next_batch

    def evaluate(m):
        value, examples = spelling.exact_match(m, test_n)
        train_value, _ = spelling.exact_match(m, train_n[:200])
        return {"value": value, "train_exact_match": train_value, "examples": examples}

    model = ConditionedConfig(spelling.FEATURES, spelling.VOCAB, hidden=128, cell=cell,
                              null=spelling.NULL, start=spelling.START, end=spelling.END,
                              dtype="float32")
    train = FitConfig(batch_size=32, lr=5e-3, schedule="cosine", warmup=50, clip=1.0)
    return Setup(model, train, batches, evaluate, epochs=60, train_size=len(train_n))
