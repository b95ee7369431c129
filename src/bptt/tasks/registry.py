"""Every task that ships with bptt: its data, its model and training recipe, its metric, the
published number and the baseline to put beside ours.

A ``Task`` turns (cell, T, seed) into a ``Setup``: the model config, the training config, a
batch source, a validation (for early stopping) and the test evaluation. ``run_task`` (in
``runner.py``) trains and evaluates it. Random streams are split by purpose from one seed:
``SeedSequence([seed, 0])`` initialises and trains, ``[seed, 1]`` draws the test set and
``[seed, 2]`` the validation set (and ``[seed, 3]`` the batch of the gradient-flow diagnostic),
so the test data never depends on how long training ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bptt.functional import softmax_loss, temporal_softmax_loss
from bptt.nn import SequenceConfig
from bptt.tasks import adding, copy_memory, digits, mnist1d, reber, seq2seq_tasks, temporal_order
from bptt.tasks.data import EpochBatcher, SeqData
from bptt.tasks.train import FitConfig, predict_all

if TYPE_CHECKING:
    from bptt.nn.conditioned import ConditionedConfig
    from bptt.nn.seq2seq import Seq2SeqConfig


def stream(seed: int, purpose: int) -> np.random.Generator:
    """The random stream for one purpose: 0 train, 1 test, 2 validation, 3 diagnostics."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose]))


@dataclass
class Setup:
    model: SequenceConfig | Seq2SeqConfig | ConditionedConfig
    train: FitConfig
    batches: Callable                        # batch_size -> next_batch(rng) -> (x, y, mask)
    evaluate: Callable                       # model -> dict with "value" (the test metric)
    validate: Callable | None = None         # model -> dict, for early stopping
    done: Callable | None = None             # validation dict -> stop?
    epochs: int = 0                          # fixed data sets: epochs (sets train.steps)
    train_size: int = 0                      # fixed data sets: sequences per epoch
    probe: Callable | None = None            # () -> (x, y, mask): a batch for diagnostics


@dataclass
class Task:
    name: str
    summary: str
    metric: str                              # what "value" measures
    higher_is_better: bool
    make: Callable                           # (cell, T, seed, quick) -> Setup
    published: Callable                      # (cell, T) -> str
    baseline: Callable                       # (T) -> float | None
    baseline_note: str
    default_T: int | None = None             # None: the task has no length to choose
    target: Callable = field(default=lambda cell, T: None)   # (cell, T) -> (op, value) | None
    needs: str | None = None                 # optional package the data comes from

    def setup(self, cell: str, T: int | None, seed: int, quick: bool = False) -> Setup:
        """The recipe; ``quick`` shrinks the held-out sets to 64 sequences (smoke runs)."""
        if T is not None and self.default_T is None:
            raise ValueError(f"task {self.name!r} has no length; drop --T")
        return self.make(cell, self.default_T if T is None else T, seed, quick)


def _size(n: int, quick: bool) -> int:
    return min(n, 64) if quick else n


def _online(sample: Callable) -> Callable:
    """Batches of fresh sequences each step, from sample(n, rng) -> SeqData."""
    def batches(batch_size: int) -> Callable:
        def next_batch(rng):
            return sample(batch_size, rng).batch(np.arange(batch_size))
        return next_batch
    return batches


def _epochs(data: SeqData) -> Callable:
    """Length-bucketed epochs over a fixed data set."""
    return lambda batch_size: EpochBatcher(data, batch_size).next


def _accuracy(model, data: SeqData) -> float:
    return float(np.mean(predict_all(model, data).argmax(axis=1) == data.y))


def _mse(model, data: SeqData) -> float:
    pred = predict_all(model, data)
    return float(np.mean((pred - data.y) ** 2))


# The recipe for the long-lag tasks: 32 LSTM units whose forget gates start open (bias 3,
# f ~ 0.95) and whose input gates start mostly closed (bias -2, i ~ 0.12), as in the 1997
# paper's negative input-gate biases: the cell state then neither forgets nor fills with the
# noise of every step before the net has learned what to store. (No effect on a tanh RNN.)
LONG_MEMORY: dict[str, Any] = {"hidden": 32, "forget_bias": 3.0, "input_bias": -2.0}


# --------------------------------------------------------------------------- adding (Arjovsky)

def _adding_setup(cell: str, T: int, seed: int, quick: bool) -> Setup:
    def sample(n, rng):
        return adding.adding_arjovsky(n, T, rng)

    test = sample(_size(2000, quick), stream(seed, 1))
    val = sample(_size(500, quick), stream(seed, 2))
    probe = sample(_size(100, quick), stream(seed, 3))
    model = SequenceConfig(2, 1, cell=cell, pooling="last", loss="mse", **LONG_MEMORY)
    train = FitConfig(steps=3000 if T <= 200 else 6000, batch_size=50, lr=1e-2,
                        schedule="cosine", warmup=100, clip=1.0, eval_every=100)
    return Setup(model, train, _online(sample),
                 evaluate=lambda m: {"value": _mse(m, test)},
                 validate=lambda m: {"mse": _mse(m, val)},
                 done=lambda r: r["mse"] < 1e-3, probe=lambda: probe.batch(np.arange(len(probe))))


ADDING = Task(
    "adding", "adding problem, Le et al. 2015 / Arjovsky et al. 2016 (two markers, MSE)",
    "test MSE", False, _adding_setup,
    published=lambda cell, T: ("beats 0.167 up to T=400, does well at 750 (128 units)"
                               if cell == "lstm" else "never beats 0.167" if cell == "rnn"
                               else "-"),
    baseline=lambda T: 1.0 / 6.0, baseline_note="always predict 1", default_T=100,
    target=lambda cell, T: ("<=", 0.01) if cell == "lstm" and T in (100, 200) else None)


# --------------------------------------------------------------------------- adding (1997)

def _adding1997_eval(model, data: SeqData) -> dict:
    err = np.abs(predict_all(model, data)[:, 0] - data.y[:, 0])
    return {"value": int(np.sum(err >= 0.04)), "mse": float(np.mean(err ** 2))}


def _adding1997_setup(cell: str, T: int, seed: int, quick: bool) -> Setup:
    def sample(n, rng):
        return adding.adding_1997(n, T, rng)

    test = sample(_size(2560, quick), stream(seed, 1))
    val = sample(_size(1000, quick), stream(seed, 2))
    model = SequenceConfig(2, 1, cell=cell, pooling="last", loss="mse", **LONG_MEMORY)
    train = FitConfig(steps=3000, batch_size=50, lr=1e-2, schedule="cosine", warmup=100,
                        clip=1.0, eval_every=200)
    return Setup(model, train, _online(sample),
                 evaluate=lambda m: _adding1997_eval(m, test),
                 validate=lambda m: _adding1997_eval(m, val),
                 done=lambda r: r["value"] == 0 and r["mse"] < 2e-5)


ADDING1997 = Task(
    "adding1997", "adding problem, Hochreiter & Schmidhuber 1997 exp. 4 (|error| < 0.04)",
    "wrong of 2560", False, _adding1997_setup,
    published=lambda cell, T: ("1 / 0 / 1 wrong at T = 100 / 500 / 1000" if cell == "lstm"
                               else "-"),
    baseline=lambda T: 2560 * (1 - 0.1536), baseline_note="always predict 0.5 (15.4 % correct)",
    default_T=100)


# --------------------------------------------------------------------------- embedded Reber

def _reber_setup(cell: str, T, seed: int, quick: bool) -> Setup:
    strings = reber.distinct_strings(512, stream(seed, 1))
    sets = {"train": strings[:256], "test": strings[256:]}
    data = {k: reber.encode(v) for k, v in sets.items()}
    legal = {k: reber.legal_mask(v, data[k].x.shape[1]) for k, v in sets.items()}

    def wrong(model, which):
        d = data[which]
        ok = reber.strings_correct(predict_all(model, d), legal[which], d.lengths)
        return int(np.sum(~ok))

    def evaluate(model):
        w = {k: wrong(model, k) for k in data}
        return {"value": float(w["train"] == 0 and w["test"] == 0),
                "wrong_train": w["train"], "wrong_test": w["test"]}

    model = SequenceConfig(len(reber.SYMBOLS), len(reber.SYMBOLS), cell=cell, pooling="none",
                           tokens=True, **LONG_MEMORY)
    # Weight decay: the test strings hold loops (SSSS..., TTTT...) longer than any in the 256
    # training strings, and a net with smaller weights tracks the grammar's state through them
    # more reliably (4 of 6 trials succeed with it, 1 of 9 without, in our runs).
    train = FitConfig(batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.05, clip=1.0)
    return Setup(model, train, _epochs(data["train"]), evaluate, epochs=160, train_size=256)


REBER = Task(
    "reber", "embedded Reber grammar, 1997 exp. 1 (next-symbol prediction, 256 + 256 strings)",
    "success (1 = every string of both sets right)", True, _reber_setup,
    published=lambda cell, T: ("success in 97-100 % of trials" if cell == "lstm"
                               else "Elman net: 0 % of trials" if cell == "rnn" else "-"),
    baseline=lambda T: 0.0,
    baseline_note="no long memory: the T/P before the final E is a coin flip",
    target=lambda cell, T: (">=", 1.0) if cell == "lstm" else None)


# --------------------------------------------------------------------------- temporal order

def _order_eval(model, data: SeqData) -> dict:
    scores = predict_all(model, data)
    loss, _ = softmax_loss(scores, data.y)
    return {"value": int(np.sum(scores.argmax(axis=1) != data.y)), "cross_entropy": loss}


def _order_setup(cell: str, T, seed: int, quick: bool) -> Setup:
    test = temporal_order.temporal_order(_size(2560, quick), stream(seed, 1))
    val = temporal_order.temporal_order(_size(1000, quick), stream(seed, 2))
    model = SequenceConfig(len(temporal_order.SYMBOLS), 4, cell=cell, pooling="last",
                           tokens=True, **LONG_MEMORY)
    train = FitConfig(steps=3000, batch_size=32, lr=1e-2, schedule="cosine", warmup=100,
                        clip=1.0, eval_every=200)
    return Setup(model, train, _online(lambda n, r: temporal_order.temporal_order(n, r)),
                 evaluate=lambda m: _order_eval(m, test),
                 validate=lambda m: _order_eval(m, val),
                 done=lambda r: r["value"] == 0 and r["cross_entropy"] < 1e-3)


TEMPORAL_ORDER = Task(
    "temporal-order", "temporal order, 1997 exp. 6a (X/Y at t1 in [10,20], t2 in [50,60])",
    "wrong of 2560", False, _order_setup,
    published=lambda cell, T: "1 wrong of 2560" if cell == "lstm" else "-",
    baseline=lambda T: 2560 * 0.75, baseline_note="guess one class (25 % right)",
    target=lambda cell, T: ("<=", 1) if cell == "lstm" else None)


# --------------------------------------------------------------------------- copy memory

def _copy_setup(cell: str, T: int, seed: int, quick: bool) -> Setup:
    def sample(n, rng):
        return copy_memory.copy_memory(n, T, rng)

    test = sample(_size(1000, quick), stream(seed, 1))

    def evaluate(model):
        scores = predict_all(model, test)                      # (N, L, 9)
        loss, _ = temporal_softmax_loss(scores, test.y)
        recalled = scores[:, -copy_memory.COPY:].argmax(axis=2) == test.y[:, -copy_memory.COPY:]
        return {"value": loss / test.x.shape[1], "recall_accuracy": float(recalled.mean())}

    model = SequenceConfig(copy_memory.VOCAB, copy_memory.OUT, cell=cell, pooling="none",
                           tokens=True, **{**LONG_MEMORY, "hidden": 64})
    train = FitConfig(steps=2000, batch_size=32, lr=1e-2, schedule="cosine", warmup=100,
                        clip=1.0)
    return Setup(model, train, _online(sample), evaluate)


COPY = Task(
    "copy", "copy memory, Arjovsky et al. 2016 (10 symbols from 8, recalled after T steps)",
    "test cross-entropy per step", False, _copy_setup,
    published=lambda cell, T: ("beats the baseline only at T=100 (T=100..500 tried)"
                               if cell == "lstm" else "stays at the baseline" if cell == "rnn"
                               else "-"),
    baseline=copy_memory.baseline_loss, baseline_note="memoryless: 10 ln 8 / (T + 20)",
    default_T=100)


# --------------------------------------------------------------------------- digits

def _digits_setup(view: str) -> Callable:
    """Rows (8 steps): a bidirectional LSTM with mean pooling, 150 epochs. Pixels (64 steps):
    a unidirectional one read at the last step, 60 epochs. Training images shifted by up to one
    pixel (a new shift every time an image is drawn), except for the permuted view."""
    rows = view == "rows"

    def make(cell: str, T, seed: int, quick: bool) -> Setup:
        train_data, test = digits.load(view)
        test = test.subset(np.arange(_size(len(test), quick)))
        model = SequenceConfig(test.x.shape[2], 10, hidden=64, cell=cell, bidirectional=rows,
                               pooling="mean" if rows else "last")
        train = FitConfig(batch_size=32, lr=1e-2, schedule="cosine", warmup=50, clip=1.0)
        # shifts help the rows and the ordered pixels; they only add noise to the permuted view
        shift = 0 if view == "permuted" else 1
        return Setup(model, train, digits.augmented_batches(view, max_shift=shift),
                     evaluate=lambda m: {"value": _accuracy(m, test)},
                     epochs=150 if rows else 60, train_size=len(train_data))
    return make


def _digits_task(view: str, summary: str) -> Task:
    return Task(
        f"digits-{view}", summary, "test accuracy", True, _digits_setup(view),
        published=lambda cell, T: ("SVC 0.97; Keras SimpleRNN(10) 0.51 .. 2-layer LSTM(10) "
                                   "0.915"),
        baseline=lambda T: 0.1, baseline_note="chance (10 classes)",
        target=(lambda cell, T: (">=", 0.98) if cell == "lstm" else None)
        if view == "rows" else (lambda cell, T: None),
        needs="sklearn")


DIGITS_ROWS = _digits_task("rows", "scikit-learn digits, 8 steps of 8-pixel rows")
DIGITS_PIXELS = _digits_task("pixels", "scikit-learn digits, 64 steps of one pixel")
DIGITS_PERMUTED = _digits_task("permuted", "scikit-learn digits, 64 pixels in a fixed "
                                           "permuted order")


# --------------------------------------------------------------------------- MNIST-1D

def _mnist1d_setup(cell: str, T, seed: int, quick: bool) -> Setup:
    train_data, test = mnist1d.load()
    test = test.subset(np.arange(_size(len(test), quick)))
    model = SequenceConfig(1, 10, hidden=128, cell=cell, pooling="last")
    train = FitConfig(batch_size=64, lr=3e-3, schedule="cosine", warmup=50, clip=1.0)
    return Setup(model, train, _epochs(train_data),
                 evaluate=lambda m: {"value": _accuracy(m, test)},
                 epochs=40, train_size=len(train_data))


MNIST1D = Task(
    "mnist1d", "MNIST-1D (Greydanus 2020), 4000 / 1000 sequences of length 40",
    "test accuracy", True, _mnist1d_setup,
    published=lambda cell, T: "logistic 0.32, MLP 0.68, GRU 0.91, CNN 0.94",
    baseline=lambda T: 0.1, baseline_note="chance (10 classes)",
    target=lambda cell, T: (">=", 0.93) if cell == "lstm" else None, needs="mnist1d")


# --------------------------------------------------------------------------- sequence to sequence

ADDITION = Task(
    "addition", "adding numbers written as strings, 3 digits (Keras addition_rnn.py): "
                "encoder-decoder, reversed input, 45k / 5k problems",
    "held-out per-character accuracy", True, seq2seq_tasks.addition_setup(3),
    published=lambda cell, T: ("Keras: 1-layer LSTM(128), 50k examples: 99 % train/test "
                               "(per-character) accuracy in 100 epochs"),
    baseline=lambda T: seq2seq_tasks.ADDITION_BASELINE[3],
    baseline_note="the most common digit at each position",
    target=lambda cell, T: (">=", 0.99) if cell == "lstm" else None)

ADDITION5 = Task(
    "addition5", "adding numbers written as strings, 5 digits: encoder-decoder, reversed "
                 "input, fresh problems every batch, 5k held out",
    "held-out per-character accuracy", True, seq2seq_tasks.addition_setup(5),
    published=lambda cell, T: ("Keras: 1-layer LSTM(128), 550k examples: 99 % train/test "
                               "(per-character) accuracy in 30 epochs (16.5M problems seen)"),
    baseline=lambda T: seq2seq_tasks.ADDITION_BASELINE[5],
    baseline_note="the most common digit at each position")

SPELLING = Task(
    "spelling", "spell a number 0..999 in English from its digits as features (conditioned "
                "LM: h0 = affine(features)), 200 numbers held out",
    "held-out exact-match rate", True, seq2seq_tasks.spelling_setup,
    published=lambda cell, T: "no published number (bptt's demonstration of CS231n's model)",
    baseline=lambda T: 0.005, baseline_note="no conditioning: one spelling for every number")

TASKS: dict[str, Task] = {t.name: t for t in (
    ADDING, ADDING1997, REBER, TEMPORAL_ORDER, COPY, DIGITS_ROWS, DIGITS_PIXELS, DIGITS_PERMUTED,
    MNIST1D, ADDITION, ADDITION5, SPELLING)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; use one of {list(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Setup", "Task", "get_task", "stream"]
