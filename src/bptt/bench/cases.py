"""What is timed: the cases, their data, and each side's callable (bptt, its GEMMs, PyTorch).

    train   forward + full BPTT: the gradients of Wx, Wh, b, h0 and of the input x, with a
            random upstream gradient dh
    infer   forward only (bptt: ``engine.infer``, which stores nothing for a backward; PyTorch:
            under ``torch.inference_mode()``)

PyTorch runs torch.nn.RNN(tanh) / torch.nn.LSTM / torch.nn.GRU (batch_first=True) on the same
data and weights; its training step is the backward of (out * dh).sum() with x.requires_grad.
Everything here uses bptt's public API (``bptt.functional`` and ``bptt.functional.engine``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bptt import functional as F
from bptt.functional import engine
from bptt.functional.cells import GATES

Shape = tuple[int, int, int, int]               # (T, N, D, H)

SHAPES: list[Shape] = [                         # the five standard shapes
    (50, 32, 128, 128),
    (100, 64, 256, 256),
    (100, 32, 512, 512),
    (25, 1, 65, 100),
    (1000, 16, 64, 128),
]
ISSUE_SHAPES: list[Shape] = [                   # five more, from the performance issue
    (64, 48, 96, 192),
    (200, 32, 128, 128),
    (80, 40, 160, 320),
    (60, 24, 100, 200),
    (30, 1, 80, 120),
]
QUICK_SHAPES: list[Shape] = [(50, 32, 128, 128), (25, 1, 65, 100)]
CELLS = ("rnn", "lstm", "gru")
DTYPES = ("float32", "float64")
MODES = ("train", "infer")


def gemm_flops(cell: str, T: int, N: int, D: int, H: int, mode: str) -> float:
    """GEMM FLOPs of a forward (mode "infer") or a training step (3x) of one layer."""
    G = GATES[cell] * H
    fwd = 2.0 * T * N * G * (D + H)
    return 3.0 * fwd if mode == "train" else fwd


def make_data(cell: str, dtype: str, T: int, N: int, D: int, H: int, seed: int = 0) -> dict:
    """Inputs, weights (bptt layout) and an upstream gradient, scaled like an initialised layer."""
    G = GATES[cell] * H
    rng = np.random.default_rng(seed)
    s = 1.0 / math.sqrt(H)
    return {
        "bh": rng.uniform(-s, s, H).astype(dtype),          # the GRU's b_hn
        "x": rng.standard_normal((N, T, D)).astype(dtype),
        "h0": np.zeros((N, H), dtype=dtype),
        "Wx": rng.uniform(-s, s, (D, G)).astype(dtype),
        "Wh": rng.uniform(-s, s, (H, G)).astype(dtype),
        "b": rng.uniform(-s, s, G).astype(dtype),
        "dh": rng.standard_normal((N, T, H)).astype(dtype),
    }


def bptt_callable(cell: str, mode: str, d: dict) -> Callable[[], Any]:
    """One training step or inference pass of bptt's engine on the data ``d``."""
    steps: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "rnn": (F.rnn_forward, F.rnn_backward), "lstm": (F.lstm_forward, F.lstm_backward),
        "gru": (F.gru_forward, F.gru_backward)}
    fwd, bwd = steps[cell]
    x, h0, Wx, Wh, b, dh = d["x"], d["h0"], d["Wx"], d["Wh"], d["b"], d["dh"]
    extra = (d["bh"],) if cell == "gru" else ()
    if mode == "train":
        def train():
            _, cache = fwd(x, h0, Wx, Wh, b, *extra)
            return bwd(dh, cache)
        return train
    bh = d["bh"] if cell == "gru" else None

    def infer():
        return engine.infer(cell, x, h0, Wx, Wh, b, bh=bh)[0]
    return infer


def gemm_only_callable(cell: str, mode: str, d: dict) -> Callable[[], Any]:
    """bptt's matrix products alone (``engine.gemm_floor``) on the data ``d``."""
    return engine.gemm_floor(cell, mode, d["x"], d["h0"], d["Wx"], d["Wh"])


def torch_callable(torch, cell: str, mode: str, d: dict) -> Callable[[], Any]:
    """The same step in torch.nn.RNN / torch.nn.LSTM, weights copied from ``d``."""
    _N, _T, D = d["x"].shape
    H = d["h0"].shape[1]
    dt = torch.float32 if d["x"].dtype == np.float32 else torch.float64
    Layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    kw = {"nonlinearity": "tanh"} if cell == "rnn" else {}
    m = Layer(D, H, batch_first=True, **kw).to(dt)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(d["Wx"].T.copy()))
        m.weight_hh_l0.copy_(torch.from_numpy(d["Wh"].T.copy()))
        m.bias_ih_l0.copy_(torch.from_numpy(d["b"]))
        m.bias_hh_l0.zero_()
        if cell == "gru":                           # bias_hh's n part is bptt's b_hn
            m.bias_hh_l0[2 * H:] = torch.from_numpy(d["bh"])
    x = torch.from_numpy(d["x"])
    if mode == "infer":
        def infer():
            with torch.inference_mode():
                return m(x)[0]
        return infer
    xg = x.clone().requires_grad_(True)
    dh = torch.from_numpy(d["dh"])

    def train():
        xg.grad = None
        m.zero_grad(set_to_none=True)
        out = m(xg)[0]
        (out * dh).sum().backward()
        return xg.grad
    return train


# ----------------------------------------------------------------------------------------------
# character-level language model step

CHARLM = {"V": 65, "N": 32, "T": 100}


def charlm_params(V: int, E: int, H: int, layers: int, N: int, T: int, dtype: str,
                  seed: int = 0) -> tuple[dict, np.ndarray]:
    """Weights (bptt layout) and character ids (N, T+1) of the char-LM step."""
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
    return p, rng.integers(0, V, (N, T + 1))


def charlm_bptt(p: dict, ids: np.ndarray, layers: int) -> Callable[[], Any]:
    """A training step (loss, all gradients) of embedding -> LSTM x layers -> affine -> softmax."""
    xs, ys = ids[:, :-1], ids[:, 1:]
    H = p["Wh0"].shape[0]
    h0 = np.zeros((ids.shape[0], H), dtype=p["We"].dtype)

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
    return step


def charlm_torch(torch, p: dict, ids: np.ndarray, layers: int) -> Callable[[], Any]:
    """The same char-LM step in PyTorch (nn.Embedding, nn.LSTM, nn.Linear, cross-entropy)."""
    V, E = p["We"].shape
    H = p["Wh0"].shape[0]
    dt = torch.float32 if p["We"].dtype == np.float32 else torch.float64
    emb = torch.nn.Embedding(V, E).to(dt)
    lstm = torch.nn.LSTM(E, H, num_layers=layers, batch_first=True).to(dt)
    head = torch.nn.Linear(H, V).to(dt)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(p["We"]))
        for k in range(layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(p[f"Wx{k}"].T.copy()))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(p[f"Wh{k}"].T.copy()))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(p[f"b{k}"]))
            getattr(lstm, f"bias_hh_l{k}").zero_()
        head.weight.copy_(torch.from_numpy(p["Wy"].T.copy()))
        head.bias.zero_()
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    t = torch.from_numpy(ids)
    xs, ys = t[:, :-1], t[:, 1:].reshape(-1)
    N = ids.shape[0]

    def step():
        for q in params:
            q.grad = None
        scores = head(lstm(emb(xs))[0])
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), ys, reduction="sum") / N
        loss.backward()
        return float(loss.detach())
    return step


def build(torch, spec: dict) -> Callable[[], Any]:
    """The callable a worker times for ``spec``: {"what": "bptt" | "gemm" | "torch" |
    "charlm-bptt" | "charlm-torch", "cell", "dtype", "mode", "shape"} (the char-LM specs take
    "dtype", "E", "H", "layers" instead of cell, mode and shape)."""
    what = spec["what"]
    if what.startswith("charlm"):
        c = CHARLM
        p, ids = charlm_params(c["V"], spec["E"], spec["H"], spec["layers"], c["N"], c["T"],
                               spec["dtype"])
        if what == "charlm-bptt":
            return charlm_bptt(p, ids, spec["layers"])
        return charlm_torch(torch, p, ids, spec["layers"])
    d = make_data(spec["cell"], spec["dtype"], *spec["shape"])
    if what == "bptt":
        return bptt_callable(spec["cell"], spec["mode"], d)
    if what == "gemm":
        return gemm_only_callable(spec["cell"], spec["mode"], d)
    if what == "torch":
        return torch_callable(torch, spec["cell"], spec["mode"], d)
    raise ValueError(f"unknown benchmark side {what!r}")
