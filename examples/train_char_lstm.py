"""Train a small character-level LSTM with bptt's public API, then sample from it.

    python examples/train_char_lstm.py                      # on text it makes up (~15 s)
    python examples/train_char_lstm.py my_text.txt --steps 500 --hidden 128

Only the public API is used: ``bptt.nn.LanguageModel`` (forward + BPTT backward in one call),
``bptt.optim`` (Adam, a warmup + cosine learning rate, global-norm clipping) and
``bptt.functional.softmax`` for sampling. The loop is truncated BPTT: the text is cut into
``--batch`` parallel streams, each step trains on the next ``--seq-len`` characters of every
stream, and the final hidden state of one chunk is the initial state of the next (no gradient
flows across the chunk boundary). Losses are in nats per character; a uniform guess over V
characters scores ln(V), and the made-up text's own entropy is about 0.115 (one of 6 subjects
and one of 5 objects per 30-character sentence), the floor a perfect model reaches. With the
defaults the validation loss goes from 3.16 to about 0.16 in about 5 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from bptt import functional as F
from bptt import optim
from bptt.nn import LanguageModel, LMConfig


def made_up_text(n_chars: int, rng: np.random.Generator) -> str:
    """Sentences from a tiny grammar: enough structure (words, spaces, agreement, full stops)
    for a small model to learn in seconds, and no file needed."""
    subjects = ["the cat", "a dog", "my sister", "the old man", "two birds", "our teacher"]
    verbs = {"the cat": "sees", "a dog": "chases", "my sister": "paints", "the old man": "reads",
             "two birds": "watch", "our teacher": "likes"}
    objects = ["the red ball", "a small house", "the long river", "an open book", "the moon"]
    parts, size = [], 0
    while size < n_chars:
        s = subjects[rng.integers(len(subjects))]
        sentence = f"{s} {verbs[s]} {objects[rng.integers(len(objects))]}. "
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:n_chars]


def read_text(path: str) -> str:
    """The UTF-8 text of ``path``, or SystemExit with a one-line reason."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SystemExit(f"train_char_lstm: cannot read {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"train_char_lstm: {path} is not UTF-8 text (byte {e.start}); "
                         "convert it, e.g. iconv -t utf-8") from None
    if len(text) < 2:
        raise SystemExit(f"train_char_lstm: {path} holds {len(text)} characters; "
                         "give a text of at least a few hundred")
    return text


def streams(ids: np.ndarray, N: int) -> np.ndarray:
    """ids (L,) -> (N, L // N): N contiguous streams of the text side by side."""
    per = ids.size // N
    return ids[:N * per].reshape(N, per)


def evaluate(model: LanguageModel, ids: np.ndarray, T: int, N: int) -> float:
    """Mean loss per character over ``ids`` (held-out text), carrying the state through it."""
    data = streams(ids, N)
    state, total, count = None, 0.0, 0
    for s in range(0, data.shape[1] - 1, T):
        x, y = data[:, s:s + T], data[:, s + 1:s + T + 1]
        x = x[:, :y.shape[1]]
        if x.shape[1] == 0:
            break
        scores, state = model.logits(x, state)                        # (N, T', V)
        logp = scores - scores.max(axis=2, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=2, keepdims=True))
        total -= float(np.take_along_axis(logp, y[..., None], axis=2).sum())
        count += y.size
    return total / max(count, 1)


def sample(model: LanguageModel, vocab: list[str], start: str, n: int,
           rng: np.random.Generator, temperature: float = 0.8) -> str:
    """Feed ``start`` (characters from the vocabulary), then draw ``n`` characters."""
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = np.array([[index[ch] for ch in start if ch in index] or [0]])   # (1, T)
    scores, state = model.logits(ids)
    out = []
    for _ in range(n):
        p = F.softmax(scores[0, -1].astype(np.float64) / temperature)   # (V,)
        nxt = int(rng.choice(len(vocab), p=p))
        out.append(vocab[nxt])
        scores, state = model.logits(np.array([[nxt]]), state)
    return start + "".join(out)


def train(text: str, steps: int, hidden: int, seq_len: int, batch: int, lr: float, seed: int,
          sample_chars: int, log=print) -> dict:
    """Train on ``text``; returns the losses before and after and a sample."""
    rng = np.random.default_rng(seed)
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = np.array([index[ch] for ch in text])
    split = int(0.9 * ids.size)
    train_ids, val_ids = ids[:split], ids[split:]
    data = streams(train_ids, batch)                                  # (N, L)
    if data.shape[1] < seq_len + 2:
        raise SystemExit(f"train_char_lstm: the text is too short for --batch {batch} and "
                         f"--seq-len {seq_len}; give more text or smaller values")

    model = LanguageModel(LMConfig(len(vocab), hidden=hidden, layers=1, cell="lstm",
                                   dtype="float32"), rng)
    opt = optim.Adam(lr)
    opt_state = opt.init(model.params)
    val_before = evaluate(model, val_ids, seq_len, min(batch, max(1, val_ids.size // 64)))
    log(f"{len(text):,} characters, vocabulary {len(vocab)} (uniform guess: "
        f"{math.log(len(vocab)):.3f} nats/char), validation loss at init {val_before:.3f}")

    state, pos, t0 = None, 0, time.perf_counter()
    for step in range(steps):
        if pos + seq_len + 1 > data.shape[1]:                         # an epoch: start again
            state, pos = None, 0
        x = data[:, pos:pos + seq_len]                                # (N, T) inputs
        y = data[:, pos + 1:pos + seq_len + 1]                        # (N, T) next characters
        pos += seq_len
        loss, grads, state = model.loss_and_state(x, y, state=state)  # loss: sum over T, mean N
        for g in grads.values():
            g /= seq_len                                              # per character
        norm, _ = optim.clip_global_norm(grads, 1.0)
        rate = optim.cosine_lr(lr, step, steps, warmup=min(20, steps // 10), min_lr=lr / 10)
        opt.update(model.params, grads, opt_state, rate)
        if step % max(1, steps // 8) == 0 or step == steps - 1:
            log(f"step {step:4d}  train {loss / seq_len:.3f}  lr {rate:.2e}  "
                f"|grad| {norm:.2f}  {time.perf_counter() - t0:5.1f}s")

    val_after = evaluate(model, val_ids, seq_len, min(batch, max(1, val_ids.size // 64)))
    text_out = sample(model, vocab, text[:8], sample_chars, rng)
    log(f"validation loss {val_before:.3f} -> {val_after:.3f} nats/char "
        f"in {time.perf_counter() - t0:.1f}s")
    log(f"sample: {text_out!r}")
    return {"val_before": val_before, "val_after": val_after, "sample": text_out,
            "vocab": len(vocab)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?", help="a UTF-8 text file (default: made-up sentences)")
    ap.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    ap.add_argument("--hidden", type=int, default=64, help="LSTM hidden size (default 64)")
    ap.add_argument("--seq-len", type=int, default=32, help="BPTT length T (default 32)")
    ap.add_argument("--batch", type=int, default=16, help="parallel streams N (default 16)")
    ap.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (default 1e-2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-chars", type=int, default=120)
    a = ap.parse_args(argv)
    for name in ("steps", "hidden", "seq_len", "batch"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} is {getattr(a, name)}; it must be at least 1")
    text = read_text(a.path) if a.path else made_up_text(60_000, np.random.default_rng(a.seed))
    train(text, a.steps, a.hidden, a.seq_len, a.batch, a.lr, a.seed, a.sample_chars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
