"""Train an LSTM classifier on variable-length sequences (padded, masked, length-bucketed) with
the public API only: bptt.nn.SequenceModel, bptt.optim and bptt.tasks.data.

The task: 3-D noise of length 5-30; the class is the channel largest at the first step.

    python examples/classify_sequences.py [--epochs 6] [--hidden 32] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from bptt.nn import SequenceConfig, SequenceModel
from bptt.optim import Adam, clip_global_norm
from bptt.tasks.data import SeqData, bucket_batches, pad_sequences


def make_data(n: int, rng: np.random.Generator) -> SeqData:
    lengths = rng.integers(5, 31, size=n)
    seqs = [rng.standard_normal((L, 3)).astype(np.float32) for L in lengths]   # (L, 3) each
    labels = np.array([s[0].argmax() for s in seqs])
    x, lengths = pad_sequences(seqs)                                          # (n, 30, 3)
    return SeqData(x, labels, lengths)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    train, test = make_data(args.train_size, rng), make_data(500, rng)
    cfg = SequenceConfig(input_size=3, output_size=3, hidden=args.hidden, pooling="last")
    model = SequenceModel(cfg, rng)
    opt = Adam(lr=1e-2)
    state = opt.init(model.params)
    for epoch in range(args.epochs):
        losses = []
        for idx in bucket_batches(train.lengths, 32, rng):
            x, y, mask = train.batch(idx)             # cut to the batch's longest; mask or None
            loss, grads = model.loss(x, y, mask)
            clip_global_norm(grads, 1.0)
            opt.update(model.params, grads, state)
            losses.append(loss)
        print(f"epoch {epoch}: train loss {np.mean(losses):.3f}")
    x, y, mask = test.batch(np.arange(len(test)))
    acc = float(np.mean(model.predict(x, mask).argmax(axis=1) == y))
    print(f"test accuracy {acc:.3f} (chance 0.333)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
