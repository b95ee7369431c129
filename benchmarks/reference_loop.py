"""The reference loop against the engine: forward + backward of one sequence batch, in ms.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/reference_loop.py

Prints a markdown table (the best of 7 interleaved rounds after one warm-up: on a shared
machine the minimum is the least disturbed estimate) for a tanh RNN and an LSTM at a
min-char-rnn shape (N = 1), a small batch and a float32 training shape. The reference loop is
for reading and testing, not for speed; this shows what the engine's layout buys.
"""

from __future__ import annotations

import time

import numpy as np

from bptt import functional as F

CASES = [(1, 100, 65, 128, np.float64), (32, 100, 64, 128, np.float64),
         (64, 50, 128, 256, np.float32)]


def _best_ms(fns, rounds: int = 7) -> list[float]:
    """Best time of each function in ms, the functions run in turn in every round."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return [1e3 * t for t in best]


def case(cell: str, N: int, T: int, D: int, H: int, dtype) -> tuple[float, float]:
    """(reference ms, engine ms) for forward + backward from random h0 (and c0)."""
    rng = np.random.default_rng(0)
    G = F.STEP_CELLS[cell].gates * H
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0, c0 = (0.5 * rng.standard_normal((N, H))).astype(dtype), None
    if "c" in F.STEP_CELLS[cell].state:
        c0 = (0.5 * rng.standard_normal((N, H))).astype(dtype)
    Wx, Wh = (0.1 * rng.standard_normal((D, G))).astype(dtype), \
        (0.1 * rng.standard_normal((H, G))).astype(dtype)
    b = (0.1 * rng.standard_normal(G)).astype(dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)

    def engine():
        if cell == "lstm":
            _, _, cache = F.lstm_forward_with_state(x, h0, c0, Wx, Wh, b)
            F.lstm_backward_with_state(dh, None, cache)
        else:
            _, cache = F.rnn_forward(x, h0, Wx, Wh, b)
            F.rnn_backward(dh, cache)

    def reference():
        _, _, cache = F.reference_forward(cell, x, h0, Wx, Wh, b, None, c0)
        F.reference_backward(dh, cache)

    ref, eng = _best_ms([reference, engine])
    return ref, eng


def main() -> None:
    print("| cell | N | T | D | H | dtype | reference ms | engine ms | engine speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in ("rnn", "lstm"):
        for N, T, D, H, dtype in CASES:
            ref, eng = case(cell, N, T, D, H, dtype)
            print(f"| {cell} | {N} | {T} | {D} | {H} | {np.dtype(dtype).name} | {ref:.1f} | "
                  f"{eng:.1f} | {ref / eng:.1f}x |")


if __name__ == "__main__":
    main()
