"""Check every gradient of an LSTM sequence layer against central differences, with the public
API only (bptt.functional and bptt.gradcheck).

    python examples/check_gradients.py [--cell rnn|lstm] [--seed S]
"""

from __future__ import annotations

import argparse

import numpy as np

from bptt import functional as F
from bptt.gradcheck import check_function


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", choices=["rnn", "lstm"], default="lstm")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    N, T, D, H = 3, 5, 4, 6                                  # batch, time, input, hidden
    G = 4 * H if args.cell == "lstm" else H
    inputs = {
        "x": rng.standard_normal((N, T, D)),
        "h0": rng.standard_normal((N, H)),
        "Wx": 0.5 * rng.standard_normal((D, G)),
        "Wh": 0.5 * rng.standard_normal((H, G)),
        "b": rng.standard_normal(G),
    }
    forward = F.lstm_forward if args.cell == "lstm" else F.rnn_forward
    backward = F.lstm_backward if args.cell == "lstm" else F.rnn_backward
    dh = rng.standard_normal((N, T, H))                      # a random upstream gradient
    results = check_function(args.cell, forward, backward, inputs,
                             ["x", "h0", "Wx", "Wh", "b"], dh)
    for r in results:
        print(f"{r.layer:5s} d{r.name:3s} relative error {r.error:.1e} "
              f"({'ok' if r.ok else 'FAIL'}, threshold {r.threshold:.0e})")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
