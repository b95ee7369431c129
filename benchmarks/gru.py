"""The GRU's cost: bptt's GRU against torch.nn.GRU (CPU) and against bptt's own LSTM and RNN.

Per case (T, N, D, H) and dtype: one training step (forward + backward of sum(h * dh)) and one
inference pass, in interleaved rounds (bptt GRU, torch GRU, bptt LSTM, bptt RNN, ...), each
round repeating the call for >= 0.2 s; the median time per call is reported, and the ratio
torch / bptt (> 1: bptt is faster). Threads are fixed before NumPy and torch load.

    python benchmarks/gru.py                                   # 2 threads, the default cases
    python benchmarks/gru.py --threads 1 --cases 50x32x128x128 --dtypes float64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

CASES = ["50x32x128x128", "100x64x256x256", "25x1x65x100"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=CASES, metavar="TxNxDxH")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], default=["float32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import numpy as np
    import torch

    from bptt import functional as F

    torch.set_num_threads(args.threads)
    print(f"{'case':>16} {'dtype':7} {'mode':5} | {'bptt gru':>9} {'torch gru':>9} "
          f"{'torch/bptt':>10} | {'bptt lstm':>9} {'bptt rnn':>9}  (ms per call)")
    for case in args.cases:
        T, N, D, H = (int(v) for v in case.split("x"))
        for dtype in args.dtypes:
            for mode, fns in case_calls(np, torch, F, T, N, D, H, dtype).items():
                med = timed(fns, args.rounds)
                print(f"{case:>16} {dtype:7} {mode:5} | {med[0] * 1e3:9.2f} {med[1] * 1e3:9.2f} "
                      f"{med[1] / med[0]:10.2f} | {med[2] * 1e3:9.2f} {med[3] * 1e3:9.2f}",
                      flush=True)
    return 0


def case_calls(np, torch, F, T: int, N: int, D: int, H: int, dtype: str) -> dict[str, list]:
    """{"train": [bptt gru, torch gru, bptt lstm, bptt rnn], "infer": [the same]} callables."""
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)

    def arr(*shape, s=1.0):
        return (s * rng.standard_normal(shape)).astype(dt)

    x, h0, dh = arr(N, T, D), arr(N, H, s=0.1), arr(N, T, H)
    w = {g: (arr(D, g * H, s=0.05), arr(H, g * H, s=0.05), arr(g * H, s=0.1)) for g in (1, 3, 4)}
    b_hn = arr(H, s=0.1)
    mod = torch.nn.GRU(D, H, batch_first=True).to(getattr(torch, dtype))
    xt, h0t, dht = (torch.from_numpy(a) for a in (x, h0[None], dh))
    xt.requires_grad_(True)

    def gru_train():
        _, cache = F.gru_forward(x, h0, *w[3], b_hn)
        return F.gru_backward(dh, cache)

    def torch_train():
        mod.zero_grad()
        out, _ = mod(xt, h0t)
        (out * dht).sum().backward()

    def torch_infer():
        with torch.no_grad():
            return mod(xt, h0t)

    def lstm_train():
        _, cache = F.lstm_forward(x, h0, *w[4])
        return F.lstm_backward(dh, cache)

    def rnn_train():
        _, cache = F.rnn_forward(x, h0, *w[1])
        return F.rnn_backward(dh, cache)

    return {"train": [gru_train, torch_train, lstm_train, rnn_train],
            "infer": [lambda: F.gru_forward(x, h0, *w[3], b_hn), torch_infer,
                      lambda: F.lstm_forward(x, h0, *w[4]), lambda: F.rnn_forward(x, h0, *w[1])]}


def timed(fns: list, rounds: int, min_round: float = 0.2) -> list[float]:
    """Median seconds per call of each function, over interleaved rounds."""
    for f in fns:
        f()
    reps = []
    for f in fns:
        t0 = time.perf_counter()
        f()
        reps.append(max(1, int(min_round / max(time.perf_counter() - t0, 1e-7))))
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0 = time.perf_counter()
            for _ in range(reps[i]):
                fns[i]()
            times[i].append((time.perf_counter() - t0) / reps[i])
    return [statistics.median(t) for t in times]


if __name__ == "__main__":
    sys.exit(main())
