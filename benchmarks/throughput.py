"""Training-loop throughput (characters/s): bptt's NumPy loop against the same model in PyTorch.

Same model (embedding, K-layer LSTM, affine, softmax cross-entropy), same batch N, sequence length
T, optimizer (Adam), global-norm clipping and thread count, with the hidden state carried between
batches. Each measurement runs in its own process (OpenBLAS and OpenMP worker threads that spin
after a call would otherwise slow the other library), and the two alternate for several rounds;
the report gives medians and their ratio, measured in one run.

    python benchmarks/throughput.py                     # the default job's model, ~1-2 minutes
    python benchmarks/throughput.py --hidden 512 --dropout 0.2 --rounds 3 --json
    python benchmarks/throughput.py --blas unset      # OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE removed

``--blas`` sets the BLAS variables of the measuring processes only, as ``python -m bptt.bench``
does: "as-set" keeps the environment (pinning OPENBLAS_CORETYPE=Haswell where it is not set, as
this project's environment does), "unset" removes both variables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _corpus(path: Path, n: int, seed: int) -> None:
    import numpy as np
    alphabet = np.array(list("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
    rng = np.random.default_rng(seed)
    path.write_text("".join(alphabet[rng.integers(0, alphabet.size, n)]), encoding="utf-8")


def measure_bptt(a) -> list[float]:
    """Seconds per training step of bptt's own loop (``Trainer._step``)."""
    sys.path.insert(0, str(ROOT / "src"))
    from bptt.charlm.console import Console
    from bptt.charlm.trainer import Trainer, config_from_preset

    with tempfile.TemporaryDirectory() as d:
        text = Path(d) / "corpus.txt"
        _corpus(text, a.batch * a.seq_len * (a.steps + a.warmup + 2) + 1000, a.seed)
        cfg = config_from_preset("default", corpus=[str(text)], hidden=a.hidden, embed=a.embed,
                                 layers=a.layers, batch=a.batch, seq_len=a.seq_len,
                                 dropout=a.dropout, max_steps=10**6, val_fraction=0.01,
                                 sample_chars=0)
        trainer = Trainer.start(cfg, Path(d) / "run", Console(quiet=True))
        times = []
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            assert trainer._step(2e-3) is None
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    return times


def measure_torch(a) -> list[float]:
    """Seconds per training step of the same model and loop in PyTorch (CPU)."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    V = 65

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, a.embed)
            self.rnn = torch.nn.LSTM(a.embed, a.hidden, a.layers, batch_first=True,
                                     dropout=a.dropout if a.layers > 1 else 0.0)
            self.out = torch.nn.Linear(a.hidden, V)

        def forward(self, x, state):
            h, state = self.rnn(self.embed(x), state)
            return self.out(h), state

    model = LM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(a.seed)
    n = a.batch * a.seq_len * (a.steps + a.warmup + 2) + 1
    ids = torch.from_numpy(rng.integers(0, V, n))
    L = (n - 1) // a.batch
    streams = torch.stack([ids[k * L:(k + 1) * L + 1] for k in range(a.batch)])   # (N, L+1)
    state, times = None, []
    model.train()
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        chunk = streams[:, i * a.seq_len:(i + 1) * a.seq_len + 1]
        x, y = chunk[:, :-1], chunk[:, 1:]
        scores, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    return times


def child(a) -> None:
    times = measure_bptt(a) if a.child == "bptt" else measure_torch(a)
    print(json.dumps({"times": times}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=8, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternating bptt/torch processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas", choices=["as-set", "unset"], default="as-set")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=["bptt", "torch"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a)
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads),
           "OPENBLAS_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    if a.blas == "unset":
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(k, None)
    elif not env.get("OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = "Haswell"
    argv = [sys.executable, __file__] + [x for x in sys.argv[1:] if x != "--json"]
    times: dict[str, list[float]] = {"bptt": [], "torch": []}
    for r in range(a.rounds):
        for who in ("bptt", "torch") if r % 2 == 0 else ("torch", "bptt"):
            out = subprocess.run([*argv, "--child", who], env=env, capture_output=True,
                                 text=True, check=True).stdout
            times[who] += json.loads(out.strip().splitlines()[-1])["times"]
            time.sleep(0.5)
    chars = a.batch * a.seq_len
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: chars / v for k, v in med.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {"model": f"{a.layers}-layer LSTM H={a.hidden} E={a.embed} V=65 float32",
              "batch": a.batch, "seq_len": a.seq_len, "threads": a.threads,
              "dropout": a.dropout, "blas": a.blas,
              "OPENBLAS_CORETYPE": env.get("OPENBLAS_CORETYPE"),
              "steps_timed": {k: len(v) for k, v in times.items()},
              "bptt_ms_per_step": 1e3 * med["bptt"], "torch_ms_per_step": 1e3 * med["torch"],
              "bptt_chars_per_s": rate["bptt"], "torch_chars_per_s": rate["torch"],
              "ratio_bptt_over_torch": rate["bptt"] / rate["torch"], "load_avg_1min": load}
    if a.json:
        print(json.dumps(report))
        return
    print(f"{report['model']}, batch {a.batch} x {a.seq_len}, {a.threads} threads, Adam, "
          f"clip 5, BLAS {a.blas} (OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE')}), state "
          f"carried (medians of {len(times['bptt'])} steps each)")
    print(f"  bptt (NumPy)   {report['bptt_ms_per_step']:8.1f} ms/step "
          f"{rate['bptt']:10,.0f} chars/s")
    print(f"  PyTorch (CPU)  {report['torch_ms_per_step']:8.1f} ms/step "
          f"{rate['torch']:10,.0f} chars/s")
    print(f"  ratio bptt / PyTorch: {report['ratio_bptt_over_torch']:.2f}"
          + (f"   (1-min load average {load:.1f})" if load is not None else ""))


if __name__ == "__main__":
    main()
