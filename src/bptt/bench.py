"""Benchmark bptt against PyTorch CPU: training steps, inference passes, memory, a char-LM step.

    python -m bptt.bench                      # the full table (a few minutes)
    python -m bptt.bench --quick              # two small shapes, fewer rounds (1-2 minutes)
    python -m bptt.bench --cases 100x64x256x256 --cells lstm --dtypes float32 --json out.json
    python -m bptt.bench --markdown table.md  # as markdown; --render out.json: a saved run

What is timed, per cell (rnn | lstm), dtype (float32 | float64) and shape (T, N, D, H):

    train   forward + full BPTT: gradients of Wx, Wh, b, h0 and of the input x, upstream dh random
    infer   forward only (bptt: the engine's inference path that stores nothing for backward;
            PyTorch: under torch.inference_mode())

PyTorch runs torch.nn.RNN(tanh) / torch.nn.LSTM (batch_first=True) on the same data and weights;
its training step is the backward of (out * dh).sum() with x.requires_grad. Both libraries get the
same number of threads (``--threads``, default 2). Rounds are interleaved (bptt, pause, torch,
pause, with the order alternating), because OpenBLAS and OpenMP worker threads keep spinning after
a call and slow whichever library runs next; the pause (>= 0.2 s) lets them go to sleep. Each round
repeats a call enough times to last ``--min-round`` seconds; the table gives the median time per
call over the rounds, with min and max, and ratio = torch_time / bptt_time (> 1: bptt is faster).

Achieved GFLOP/s count only the GEMM work, 2 * T * N * G * (D + H) for a forward (G = 4H for an
LSTM, H for an RNN) and 3x that for a training step, and are compared with the GEMM peak measured
in the same run (float32 / float64 2048^3 matrix products through NumPy). "gemm ms" times bptt's
own matrix products alone, the same calls on the same shapes and layouts with every pointwise op
and copy left out (``gemm_only_callable``), in the same interleaved rounds; "cap" = torch_time /
gemm_time is the highest ratio this engine could reach on this BLAS if all its other work were
free (below 1: PyTorch's whole step is faster than bptt's matrix products alone).

Peak memory of a training step is measured the same way for both libraries, each in a fresh
subprocess: after a small warm-up step, the kernel's resident-set high-water mark is reset
(/proc/self/clear_refs), one full-size step runs, and the increase of the high-water mark over the
resident set before the step is reported (inputs and weights, allocated before, are not counted;
outputs, caches, activations and gradients are). Where /proc is not available, ru_maxrss deltas are
used instead, which can under-count.

The char-LM step is embedding -> LSTM (``--charlm-layers``, hidden ``--charlm-hidden``) -> temporal
affine -> temporal softmax loss, forward + backward, batch 32 x 100 characters of a 65-symbol
vocabulary, built from ``bptt.functional`` and reported in characters per second against the same
model in PyTorch.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bptt import functional as F
from bptt.functional import cells
from bptt.functional.recurrence import (
    _input_grad,
    _recurrent_operand,
    _step_views,
    _time_major_rows,
    _to_internal,
    _weight_grad,
    check_args,
    recurrence_forward,
    steps_buffer,
)

SHAPES: list[tuple[int, int, int, int]] = [     # (T, N, D, H)
    (50, 32, 128, 128),
    (100, 64, 256, 256),
    (100, 32, 512, 512),
    (25, 1, 65, 100),
    (1000, 16, 64, 128),
]
QUICK_SHAPES = [(50, 32, 128, 128), (25, 1, 65, 100)]
CELLS = ("rnn", "lstm")
DTYPES = ("float32", "float64")
MODES = ("train", "infer")


# ----------------------------------------------------------------------------------------------
# helpers


def _try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _set_numpy_threads(threads: int) -> str:
    """Limit the BLAS thread pools NumPy (and SciPy, if loaded) use; return a note on how."""
    try:
        import scipy.linalg.blas  # noqa: F401  (load SciPy's BLAS too, so it is limited as well)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return (f"threadpoolctl not installed: BLAS threads not set by the benchmark (set "
                f"OPENBLAS_NUM_THREADS={threads} before starting Python to match PyTorch)")
    threadpool_limits(limits=threads, user_api="blas")
    return f"BLAS threads limited to {threads} with threadpoolctl"


def machine_info() -> dict:
    """CPU model, whether it has AVX-512, and which kernels NumPy's OpenBLAS picked."""
    model, avx512 = platform.processor() or platform.machine(), False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    avx512 = " avx512f " in line + " "
                    break
    except OSError:
        pass
    core = None
    try:
        from threadpoolctl import threadpool_info
        core = next((i.get("architecture") for i in threadpool_info()
                     if i.get("internal_api") == "openblas"), None)
    except ImportError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "avx512": avx512, "openblas_core": core,
            "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE")}


def gemm_flops(cell: str, T: int, N: int, D: int, H: int, mode: str) -> float:
    """GEMM FLOPs of a forward (mode "infer") or a training step (3x) for one layer."""
    G = 4 * H if cell == "lstm" else H
    fwd = 2.0 * T * N * G * (D + H)
    return 3.0 * fwd if mode == "train" else fwd


def measure_gemm_peak(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n^3 matrix product through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


@dataclass
class Timing:
    median: float
    min: float
    max: float
    calls_per_round: int


def _calls_for(fn: Callable[[], Any], min_round: float) -> int:
    """Warm up ``fn`` and return how many calls make a round of at least ``min_round`` seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, math.ceil(min_round / one))


def _round(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def time_interleaved(fns: dict[str, Callable[[], Any] | None], repeats: int, pause: float,
                     min_round: float) -> dict[str, Timing | None]:
    """Interleaved rounds of every callable (order alternating), with a pause after each."""
    names = [k for k, f in fns.items() if f is not None]
    calls = {}
    for k in names:
        calls[k] = _calls_for(fns[k], min_round)
        time.sleep(pause)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            samples[k].append(_round(fns[k], calls[k]))
            time.sleep(pause)
    out: dict[str, Timing | None] = {k: None for k in fns}
    for k in names:
        s = samples[k]
        out[k] = Timing(statistics.median(s), min(s), max(s), calls[k])
    return out


# ----------------------------------------------------------------------------------------------
# the two sides of one case


def make_data(cell: str, dtype: str, T: int, N: int, D: int, H: int, seed: int = 0):
    """Inputs, weights (bptt layout) and an upstream gradient, scaled like an initialised layer."""
    G = 4 * H if cell == "lstm" else H
    rng = np.random.default_rng(seed)
    s = 1.0 / math.sqrt(H)
    return {
        "x": rng.standard_normal((N, T, D)).astype(dtype),
        "h0": np.zeros((N, H), dtype=dtype),
        "Wx": rng.uniform(-s, s, (D, G)).astype(dtype),
        "Wh": rng.uniform(-s, s, (H, G)).astype(dtype),
        "b": rng.uniform(-s, s, G).astype(dtype),
        "dh": rng.standard_normal((N, T, H)).astype(dtype),
    }


def bptt_callable(cell: str, mode: str, d: dict) -> Callable[[], Any]:
    fwd, bwd = (F.lstm_forward, F.lstm_backward) if cell == "lstm" else (F.rnn_forward,
                                                                         F.rnn_backward)
    x, h0, Wx, Wh, b, dh = d["x"], d["h0"], d["Wx"], d["Wh"], d["b"], d["dh"]
    if mode == "train":
        def train():
            _, cache = fwd(x, h0, Wx, Wh, b)
            return bwd(dh, cache)
        return train
    c = cells.LSTM if cell == "lstm" else cells.RNN

    def infer():
        check_args("bench", x, h0, Wx, Wh, b, c.gates)
        return recurrence_forward(c, x, h0, Wx, Wh, b, store=False)[0]
    return infer


def gemm_only_callable(cell: str, mode: str, d: dict) -> Callable[[], Any]:
    """bptt's matrix products alone: the engine's GEMMs, same shapes, layouts and order.

    The inputs and buffers are made once, so a call is what the step would cost if every
    pointwise op, copy and Python line of the engine were free: the floor of this engine on
    this BLAS. Forward: the input GEMM and T per-step GEMMs Wh^T h_{t-1}; training adds T
    per-step GEMMs Wh dz_t and the post-loop dx, dWx, dWh (see ``recurrence.py``).
    """
    c = cells.LSTM if cell == "lstm" else cells.RNN
    x = d["x"]
    N, T, D = x.shape
    H = d["h0"].shape[1]
    G, dt = c.gates * H, x.dtype
    rng = np.random.default_rng(1)
    Wx_f, Wh_f = _to_internal(d["Wx"], c, H), _to_internal(d["Wh"], c, H)
    X2 = _time_major_rows(x)                                           # (T*N, D)
    Hs = steps_buffer(H, T + 1, N, dt, time_major=mode == "infer")
    Hs[...] = rng.uniform(-0.5, 0.5, Hs.shape)
    h_steps = _step_views(Hs)
    z = np.empty((G, N), dtype=dt)                                     # a step's pre-activation

    def forward():
        XW = np.matmul(Wx_f.T, X2.T)                                   # (G, T*N)
        WhT_f = _recurrent_operand(Wh_f, N)                            # (G, H)
        for t in range(T):
            np.matmul(WhT_f, h_steps[t], out=z)
        return XW

    if mode == "infer":
        return forward
    dA = steps_buffer(G, T, N, dt)
    dA[...] = rng.uniform(-0.5, 0.5, dA.shape)
    dA_steps, dA2 = _step_views(dA), dA.reshape(G, T * N)
    dh_next = np.empty((H, N), dtype=dt)
    Hprev = Hs[:, :T].reshape(H, T * N)

    def train():
        forward()
        for t in reversed(range(T)):
            np.matmul(Wh_f, dA_steps[t], out=dh_next)
        return (_input_grad(dA2, Wx_f, N, T), _weight_grad(X2.T, dA2, c, H),
                _weight_grad(Hprev, dA2, c, H))
    return train


def torch_callable(torch, cell: str, mode: str, d: dict) -> Callable[[], Any]:
    T_ = torch
    N, T, D = d["x"].shape
    H = d["h0"].shape[1]
    dt = T_.float32 if d["x"].dtype == np.float32 else T_.float64
    Layer = T_.nn.LSTM if cell == "lstm" else T_.nn.RNN
    kw = {} if cell == "lstm" else {"nonlinearity": "tanh"}
    m = Layer(D, H, batch_first=True, **kw).to(dt)
    with T_.no_grad():
        m.weight_ih_l0.copy_(T_.from_numpy(d["Wx"].T.copy()))
        m.weight_hh_l0.copy_(T_.from_numpy(d["Wh"].T.copy()))
        m.bias_ih_l0.copy_(T_.from_numpy(d["b"]))
        m.bias_hh_l0.zero_()
    x = T_.from_numpy(d["x"])
    if mode == "infer":
        def infer():
            with T_.inference_mode():
                return m(x)[0]
        return infer
    xg = x.clone().requires_grad_(True)
    dh = T_.from_numpy(d["dh"])

    def train():
        xg.grad = None
        m.zero_grad(set_to_none=True)
        out = m(xg)[0]
        (out * dh).sum().backward()
        return xg.grad
    return train


# ----------------------------------------------------------------------------------------------
# character-level language model step


def charlm_bptt(V: int, E: int, H: int, layers: int, N: int, T: int, dtype: str, seed: int = 0):
    """A training step (loss, all gradients) of embedding -> LSTM x layers -> affine -> softmax."""
    rng = np.random.default_rng(seed)
    s = 1.0 / math.sqrt(H)
    p = {"We": rng.standard_normal((V, E)).astype(dtype)}
    for k in range(layers):
        Din = E if k == 0 else H
        p[f"Wx{k}"] = rng.uniform(-s, s, (Din, 4 * H)).astype(dtype)
        p[f"Wh{k}"] = rng.uniform(-s, s, (H, 4 * H)).astype(dtype)
        p[f"b{k}"] = rng.uniform(-s, s, 4 * H).astype(dtype)
    p["Wy"] = rng.uniform(-s, s, (H, V)).astype(dtype)
    p["by"] = np.zeros(V, dtype=dtype)
    ids = rng.integers(0, V, (N, T + 1))
    xs, ys = ids[:, :-1], ids[:, 1:]
    h0 = np.zeros((N, H), dtype=dtype)

    def step():
        g = {}
        a, emb_cache = F.embedding_forward(xs, p["We"])
        caches = []
        for k in range(layers):
            a, c = F.lstm_forward(a, h0, p[f"Wx{k}"], p[f"Wh{k}"], p[f"b{k}"])
            caches.append(c)
        scores, aff_cache = F.temporal_affine_forward(a, p["Wy"], p["by"])
        loss, dscores = F.temporal_softmax_loss(scores, ys)
        da, g["Wy"], g["by"] = F.temporal_affine_backward(dscores, aff_cache)
        for k in reversed(range(layers)):
            da, _, g[f"Wx{k}"], g[f"Wh{k}"], g[f"b{k}"] = F.lstm_backward(da, caches[k])
        g["We"] = F.embedding_backward(da, emb_cache)
        return loss, g
    return step, p, ids


def charlm_torch(torch, p: dict, ids: np.ndarray, V: int, E: int, H: int, layers: int):
    T_ = torch
    dt = T_.float32 if p["We"].dtype == np.float32 else T_.float64
    emb = T_.nn.Embedding(V, E).to(dt)
    lstm = T_.nn.LSTM(E, H, num_layers=layers, batch_first=True).to(dt)
    head = T_.nn.Linear(H, V).to(dt)
    with T_.no_grad():
        emb.weight.copy_(T_.from_numpy(p["We"]))
        for k in range(layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(T_.from_numpy(p[f"Wx{k}"].T.copy()))
            getattr(lstm, f"weight_hh_l{k}").copy_(T_.from_numpy(p[f"Wh{k}"].T.copy()))
            getattr(lstm, f"bias_ih_l{k}").copy_(T_.from_numpy(p[f"b{k}"]))
            getattr(lstm, f"bias_hh_l{k}").zero_()
        head.weight.copy_(T_.from_numpy(p["Wy"].T.copy()))
        head.bias.zero_()
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    t = T_.from_numpy(ids)
    xs, ys = t[:, :-1], t[:, 1:].reshape(-1)
    N = ids.shape[0]

    def step():
        for q in params:
            q.grad = None
        scores = head(lstm(emb(xs))[0])
        loss = T_.nn.functional.cross_entropy(scores.reshape(-1, V), ys, reduction="sum") / N
        loss.backward()
        return float(loss.detach())
    return step


# ----------------------------------------------------------------------------------------------
# peak memory in fresh subprocesses


def _proc_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _memory_worker(side: str, cell: str, dtype: str, T: int, N: int, D: int, H: int,
                   threads: int) -> dict:
    """Run in a fresh process: the high-water-mark increase of one training step, in bytes."""
    import resource
    torch = None
    if side == "torch":
        torch = _try_import_torch()
        torch.set_num_threads(threads)
    else:
        _set_numpy_threads(threads)

    def build(shape):
        d = make_data(cell, dtype, *shape)
        if side == "torch":
            return torch_callable(torch, cell, "train", d)
        return bptt_callable(cell, "train", d)

    build((3, 2, 4, 5))()                          # warm-up: imports, lazy initialisation
    step = build((T, N, D, H))
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                            # reset VmHWM to the current VmRSS
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    rss0 = _proc_kb("VmRSS") if method == "VmHWM" else None
    max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = step()                                 # noqa: F841  (kept alive until measured)
    if method == "VmHWM":
        kb = _proc_kb("VmHWM") - rss0
    else:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max0
    return {"bytes": kb * 1024, "method": method}


def measure_memory(side: str, cell: str, dtype: str, shape, threads: int) -> dict | None:
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "bptt.bench", "--_memory-worker",
           ",".join([side, cell, dtype, *map(str, shape), str(threads)])]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        print(f"  memory worker failed ({side} {cell} {dtype} {shape}): {r.stderr.strip()[-300:]}",
              file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# the run


@dataclass
class Record:
    cell: str
    dtype: str
    mode: str
    T: int
    N: int
    D: int
    H: int
    bptt_s: float
    torch_s: float | None
    ratio: float | None
    bptt_min_s: float
    bptt_max_s: float
    torch_min_s: float | None
    torch_max_s: float | None
    gflop: float
    bptt_gflops: float
    torch_gflops: float | None
    peak_gflops: float
    bptt_pct_peak: float
    torch_pct_peak: float | None
    gemm_s: float | None = None         # bptt's GEMMs alone (gemm_only_callable)
    bptt_mem_mb: float | None = None
    torch_mem_mb: float | None = None
    threads: int = 2
    extra: dict = field(default_factory=dict)


def parse_shape(s: str) -> tuple[int, int, int, int]:
    parts = s.lower().replace(",", "x").split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"case {s!r}: expected TxNxDxH, e.g. 100x64x256x256")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bptt.bench",
        description="Time bptt's RNN/LSTM training steps and inference passes against PyTorch "
                    "CPU (ratio = torch_time / bptt_time, > 1 means bptt is faster).")
    p.add_argument("--quick", action="store_true",
                   help="two small shapes, 3 rounds, memory for LSTM float32 only")
    p.add_argument("--cases", nargs="+", type=parse_shape, metavar="TxNxDxH",
                   help="shapes to run (default: the five standard ones)")
    p.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--threads", type=int, default=2, help="threads for both libraries (2)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per case (default 5, --quick 3)")
    p.add_argument("--pause", type=float, default=0.25,
                   help="seconds of pause after each round (>= 0.2 recommended)")
    p.add_argument("--min-round", type=float, default=0.05,
                   help="each round repeats the call for at least this many seconds")
    p.add_argument("--no-torch", action="store_true", help="time bptt only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-floor", action="store_true",
                   help="skip timing bptt's GEMMs alone (the 'gemm ms' and 'cap' columns)")
    p.add_argument("--no-charlm", action="store_true", help="skip the char-LM step")
    p.add_argument("--charlm-layers", type=int, default=1)
    p.add_argument("--charlm-hidden", type=int, default=256)
    p.add_argument("--charlm-embed", type=int, default=65)
    p.add_argument("--charlm-dtype", choices=DTYPES, default="float32")
    p.add_argument("--json", metavar="PATH", help="write the records as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    p.add_argument("--render", metavar="JSON",
                   help="measure nothing: print the markdown of a run saved with --json")
    p.add_argument("--_memory-worker", dest="memory_worker", help=argparse.SUPPRESS)
    return p


def _fmt_ms(t: float | None) -> str:
    return f"{'-':>9}" if t is None else f"{t * 1e3:9.3f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.memory_worker:
        side, cell, dtype, T, N, D, H, threads = args.memory_worker.split(",")
        print(json.dumps(_memory_worker(side, cell, dtype, int(T), int(N), int(D), int(H),
                                        int(threads))))
        return 0
    if args.render:
        try:
            with open(args.render) as f:
                text = markdown(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as e:
            build_parser().error(f"--render {args.render}: not a benchmark JSON written by "
                                 f"--json ({type(e).__name__}: {e})")
        print(text, end="")
        return 0
    if args.threads < 1:
        build_parser().error("--threads must be >= 1")
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1:
        build_parser().error("--repeats must be >= 1")
    shapes = args.cases or (QUICK_SHAPES if args.quick else SHAPES)

    torch = None if args.no_torch else _try_import_torch()
    if torch is None and not args.no_torch:
        print("PyTorch is not installed: timing bptt only (ratios and torch columns left empty)")
    if torch is not None:
        torch.set_num_threads(args.threads)
    thread_note = _set_numpy_threads(args.threads)

    info = machine_info()
    print(f"bptt benchmark  |  {info['cpu']}, {info['cpus']} CPUs  |  numpy {np.__version__}"
          f" (OpenBLAS kernels: {info['openblas_core'] or '?'})"
          + (f"  |  torch {torch.__version__}" if torch is not None else ""))
    print(f"threads {args.threads} ({thread_note})  |  {repeats} interleaved rounds, "
          f"pause {args.pause:g} s")
    if info["avx512"] and info["openblas_core"] == "Haswell":
        why = (f"OPENBLAS_CORETYPE={info['openblas_coretype_env']} is set"
               if info["openblas_coretype_env"] else "OpenBLAS chose them")
        print(f"note: this CPU has AVX-512 but NumPy's OpenBLAS runs its Haswell (AVX2) kernels "
              f"({why}); PyTorch's oneDNN uses AVX-512. See docs/benchmarks.md.")
    peak = {dt: measure_gemm_peak(dt) for dt in args.dtypes}
    print("GEMM peak (2048^3, best of 5; measured again at the end): "
          + ", ".join(f"{dt} {g:.1f} GFLOP/s" for dt, g in peak.items()))
    print()
    head = (f"{'cell':4} {'dtype':7} {'mode':5} {'T':>4} {'N':>3} {'D':>3} {'H':>3} | "
            f"{'bptt ms':>9} {'torch ms':>9} {'ratio':>6} | {'bptt GF/s':>9} {'%pk':>4} "
            f"{'torch GF/s':>10} {'%pk':>4} | {'gemm ms':>9} {'cap':>5}")
    print(head)
    print("-" * len(head))

    records: list[Record] = []
    for shape in shapes:
        T, N, D, H = shape
        for cell in args.cells:
            for dtype in args.dtypes:
                d = make_data(cell, dtype, T, N, D, H)
                for mode in args.modes:
                    fns = {"bptt": bptt_callable(cell, mode, d),
                           "torch": torch_callable(torch, cell, mode, d) if torch else None,
                           "gemm": None if args.no_floor else gemm_only_callable(cell, mode, d)}
                    tm = time_interleaved(fns, repeats, args.pause, args.min_round)
                    b, t, g = tm["bptt"], tm["torch"], tm["gemm"]
                    fl = gemm_flops(cell, T, N, D, H, mode)
                    rec = Record(
                        cell, dtype, mode, T, N, D, H,
                        bptt_s=b.median, torch_s=t.median if t else None,
                        ratio=t.median / b.median if t else None,
                        bptt_min_s=b.min, bptt_max_s=b.max,
                        torch_min_s=t.min if t else None, torch_max_s=t.max if t else None,
                        gflop=fl / 1e9, bptt_gflops=fl / b.median / 1e9,
                        torch_gflops=fl / t.median / 1e9 if t else None,
                        peak_gflops=peak[dtype],
                        bptt_pct_peak=100 * fl / b.median / 1e9 / peak[dtype],
                        torch_pct_peak=(100 * fl / t.median / 1e9 / peak[dtype]) if t else None,
                        gemm_s=g.median if g else None, threads=args.threads)
                    records.append(rec)
                    tg = f"{rec.torch_gflops:10.1f} {rec.torch_pct_peak:4.0f}" if t else \
                        f"{'-':>10} {'-':>4}"
                    cap = f"{t.median / g.median:5.2f}" if t and g else f"{'-':>5}"
                    print(f"{cell:4} {dtype:7} {mode:5} {T:4} {N:3} {D:3} {H:3} | "
                          f"{_fmt_ms(b.median)} {_fmt_ms(t.median if t else None)} "
                          f"{(f'{rec.ratio:6.2f}' if t else '     -')} | "
                          f"{rec.bptt_gflops:9.1f} {rec.bptt_pct_peak:4.0f} {tg} | "
                          f"{_fmt_ms(g.median if g else None)} {cap}", flush=True)
                    del fns
                    gc.collect()

    if not args.no_memory and "train" in args.modes:
        print("\nPeak memory of one training step (MB above the resident set before the step, "
              "fresh subprocess each):")
        print(f"{'cell':4} {'dtype':7} {'T':>4} {'N':>3} {'D':>3} {'H':>3} | {'bptt MB':>8} "
              f"{'torch MB':>8} {'torch/bptt':>10}")
        for rec in records:
            if rec.mode != "train" or (args.quick and (rec.cell, rec.dtype) != ("lstm",
                                                                                "float32")):
                continue
            shape = (rec.T, rec.N, rec.D, rec.H)
            mb = measure_memory("bptt", rec.cell, rec.dtype, shape, args.threads)
            mt = measure_memory("torch", rec.cell, rec.dtype, shape, args.threads) \
                if torch is not None else None
            rec.bptt_mem_mb = mb["bytes"] / 2 ** 20 if mb else None
            rec.torch_mem_mb = mt["bytes"] / 2 ** 20 if mt else None
            if mb:
                rec.extra["memory_method"] = mb["method"]
            ratio = (f"{rec.torch_mem_mb / rec.bptt_mem_mb:10.2f}"
                     if rec.bptt_mem_mb and rec.torch_mem_mb else f"{'-':>10}")
            print(f"{rec.cell:4} {rec.dtype:7} {rec.T:4} {rec.N:3} {rec.D:3} {rec.H:3} | "
                  f"{(rec.bptt_mem_mb or float('nan')):8.1f} "
                  f"{(rec.torch_mem_mb if rec.torch_mem_mb is not None else float('nan')):8.1f} "
                  f"{ratio}", flush=True)

    charlm = None
    if not args.no_charlm:
        V, E, Hc, L, Nc, Tc = 65, args.charlm_embed, args.charlm_hidden, args.charlm_layers, 32, 100
        step, p, ids = charlm_bptt(V, E, Hc, L, Nc, Tc, args.charlm_dtype)
        fns = {"bptt": step, "torch": charlm_torch(torch, p, ids, V, E, Hc, L) if torch else None}
        tm = time_interleaved(fns, repeats, args.pause, args.min_round)
        b, t = tm["bptt"], tm["torch"]
        charlm = {"V": V, "E": E, "H": Hc, "layers": L, "N": Nc, "T": Tc,
                  "dtype": args.charlm_dtype, "bptt_s": b.median,
                  "bptt_chars_per_s": Nc * Tc / b.median,
                  "torch_s": t.median if t else None,
                  "torch_chars_per_s": Nc * Tc / t.median if t else None,
                  "ratio": t.median / b.median if t else None}
        print(f"\nchar-LM step (embedding {V}->{E}, LSTM {L}x{Hc}, affine, softmax loss; "
              f"{Nc} x {Tc} chars, {args.charlm_dtype}):")
        print(f"  bptt  {b.median * 1e3:8.2f} ms  {charlm['bptt_chars_per_s']:10.0f} chars/s")
        if t:
            print(f"  torch {t.median * 1e3:8.2f} ms  {charlm['torch_chars_per_s']:10.0f} chars/s"
                  f"   ratio {charlm['ratio']:.2f}")

    for dt in peak:                                 # a shared machine: keep the better peak
        again = measure_gemm_peak(dt)
        if again > peak[dt]:
            scale = peak[dt] / again
            peak[dt] = again
            for rec in records:
                if rec.dtype == dt:
                    rec.peak_gflops = again
                    rec.bptt_pct_peak *= scale
                    if rec.torch_pct_peak is not None:
                        rec.torch_pct_peak *= scale
    print("\nGEMM peak used for %: " + ", ".join(f"{dt} {g:.1f} GFLOP/s" for dt, g in peak.items()))

    out = []
    for rec in records:
        r = asdict(rec)
        extra = r.pop("extra")
        r.update(extra)
        out.append(r)
    doc = {"machine": {**info, "numpy": np.__version__, "python": platform.python_version(),
                       "torch": torch.__version__ if torch is not None else None,
                       "threads": args.threads, "repeats": repeats, "pause_s": args.pause},
           "peak_gflops": peak, "records": out, "charlm": charlm}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(doc))
        print(f"wrote {args.markdown}")
    return 0


def _cell(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(doc: dict) -> str:
    """The run as markdown: a header line, the timing table (with memory where measured), the
    char-LM step. ``doc`` is what ``--json`` writes."""
    m = doc["machine"]
    peak = ", ".join(f"{dt} {g:.1f}" for dt, g in doc["peak_gflops"].items())
    lines = [f"{m['cpu']}, {m['cpus']} CPUs, numpy {m['numpy']} (OpenBLAS kernels: "
             f"{m.get('openblas_core') or '?'}), torch {m.get('torch') or 'absent'}, "
             f"{m['threads']} thread(s), {m['repeats']} interleaved rounds (median); "
             f"GEMM peak (GFLOP/s): {peak}", "",
             "| cell | dtype | mode | T, N, D, H | bptt ms | torch ms | ratio | bptt GF/s "
             "| % peak | torch GF/s | torch % peak | gemm ms | cap | bptt MB | torch MB |",
             "|" + "---|" * 15]
    for r in doc["records"]:
        ms = [None if r.get(k) is None else r[k] * 1e3 for k in ("bptt_s", "torch_s", "gemm_s")]
        cap = r["torch_s"] / r["gemm_s"] if r.get("torch_s") and r.get("gemm_s") else None
        lines.append(
            f"| {r['cell']} | {r['dtype']} | {r['mode']} | {r['T']}, {r['N']}, {r['D']}, {r['H']} "
            f"| {_cell(ms[0], '.3f')} | {_cell(ms[1], '.3f')} | **{_cell(r['ratio'], '.2f')}** "
            f"| {r['bptt_gflops']:.1f} | {r['bptt_pct_peak']:.0f} "
            f"| {_cell(r['torch_gflops'], '.1f')} | {_cell(r['torch_pct_peak'], '.0f')} "
            f"| {_cell(ms[2], '.3f')} | {_cell(cap, '.2f')} "
            f"| {_cell(r.get('bptt_mem_mb'), '.1f')} | {_cell(r.get('torch_mem_mb'), '.1f')} |")
    c = doc.get("charlm")
    if c:
        lines += ["", f"char-LM step (embedding {c['V']} -> {c['E']}, LSTM {c['layers']} x "
                      f"{c['H']}, temporal affine, softmax loss; {c['N']} x {c['T']} characters, "
                      f"{c['dtype']}): bptt {c['bptt_s'] * 1e3:.2f} ms = "
                      f"{c['bptt_chars_per_s']:,.0f} chars/s"
                  + (f", PyTorch {c['torch_s'] * 1e3:.2f} ms = {c['torch_chars_per_s']:,.0f} "
                     f"chars/s, ratio **{c['ratio']:.2f}**" if c.get("torch_s") else "")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
