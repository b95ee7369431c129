"""GRU: single step (readable reference) and whole sequence, PyTorch's formulation.

Gates along 3H in the order r, z, n (PyTorch's ``torch.nn.GRU``): r the reset gate, z the update
gate, n the candidate state. Biases: b (3H,) is the input-side bias of all three gates and b_hn
(H,) the recurrent-side bias of the candidate, kept apart because the reset gate multiplies it.

    zx = x Wx + b                 x (N, D), Wx (D, 3H), b (3H,)       input side
    zh = h_prev Wh                h_prev (N, H), Wh (H, 3H)            recurrent side
    r = sigmoid(zx_r + zh_r)      z = sigmoid(zx_z + zh_z)            (N, H)
    n = tanh(zx_n + r * (zh_n + b_hn))                                 (N, H)
    h = (1 - z) * n + z * h_prev                                       (N, H)

where zx_r = zx[:, 0:H], zx_z = zx[:, H:2H], zx_n = zx[:, 2H:3H] (and the same for zh).

The choice. Cho et al. (2014), who introduced the cell, apply the reset before the matrix
product: n = tanh(x W_n + (r * h_prev) U_n). PyTorch, cuDNN and Keras' default
(``reset_after=True``) apply it after: n = tanh(x W_in + b_in + r * (h_prev W_hn + b_hn)). bptt
takes the second: then h_prev Wh for all three gates is ONE matrix product per step, issued
before r is known (Cho's form needs r first, so two dependent products per step), and the
weights load into and out of ``torch.nn.GRU`` as they are. The price is the second bias b_hn,
which cannot be folded into b (torch's bias_hh_n is multiplied by r; its r and z parts can).
Both forms interpolate the same way, h = z * h_prev + (1 - z) * n (z = 1 keeps the old state).

Backward of one step, given dh = dL/dh:

    dn = dh * (1 - z)          dz = dh * (h_prev - n)          dh_prev = dh * z + ...
    dan = dn * (1 - n**2)                       dL/d(zx_n)
    dhn = dan * r                               dL/d(zh_n) = dL/d(b_hn) per sample
    dar = dan * (zh_n + b_hn) * r * (1 - r)     daz = dz * z * (1 - z)
    dzx = [dar, daz, dan]      dzh = [dar, daz, dhn]                   (N, 3H) each
    dx = dzx Wx^T     dh_prev = dh * z + dzh Wh^T     dWx = x^T dzx     dWh = h_prev^T dzh
    db = sum_N dzx    db_hn = sum_N dhn

In the engine (``recurrence.py``) the per-step GEMM h_prev Wh covers all three gates (internal
order n, r, z: the candidate block first, so that the recurrent-side rows n_h, r, z and the
input-side rows r, z, n_x of the gradient buffer are both contiguous, see ``GRUCell``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bptt.functional import _validate as v
from bptt.functional.activations import sigmoid
from bptt.functional.cells import FACTOR_BLOCK_BYTES, GATES, GateLayout, _steps
from bptt.functional.recurrence import (
    RecurrenceCache,
    check_args,
    recurrence_backward,
    recurrence_forward,
)
from bptt.functional.rnn import _check_dh


class GRUStepCache(NamedTuple):
    x: np.ndarray        # (N, D)
    prev_h: np.ndarray   # (N, H)
    Wx: np.ndarray       # (D, 3H)
    Wh: np.ndarray       # (H, 3H)
    r: np.ndarray        # (N, H)
    z: np.ndarray        # (N, H)
    n: np.ndarray        # (N, H)
    hn: np.ndarray       # (N, H) prev_h Wh_n + b_hn, what r multiplies


def _check_weights(fn: str, D: int, H: int, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                   b_hn: np.ndarray, dtype: np.dtype) -> None:
    v.float_array(fn, "Wx", Wx, (D, 3 * H), dtype)
    v.float_array(fn, "Wh", Wh, (H, 3 * H), dtype)
    v.float_array(fn, "b", b, (3 * H,), dtype)
    v.float_array(fn, "b_hn", b_hn, (H,), dtype)


def gru_step_forward(x: np.ndarray, prev_h: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                     b: np.ndarray, b_hn: np.ndarray) -> tuple[np.ndarray, GRUStepCache]:
    """One GRU step (module docstring). x (N, D), prev_h (N, H), Wx (D, 3H), Wh (H, 3H),
    b (3H,), b_hn (H,) -> (next_h (N, H), cache)."""
    fn = "gru_step_forward"
    v.float_array(fn, "x", x, ("N", "D"))
    N, D = x.shape
    v.float_array(fn, "prev_h", prev_h, (N, "H"), x.dtype)
    H = prev_h.shape[1]
    _check_weights(fn, D, H, Wx, Wh, b, b_hn, x.dtype)
    zx = x @ Wx + b                                    # (N, 3H)
    zh = prev_h @ Wh                                   # (N, 3H)
    r = sigmoid(zx[:, :H] + zh[:, :H])
    z = sigmoid(zx[:, H:2 * H] + zh[:, H:2 * H])
    hn = zh[:, 2 * H:] + b_hn                          # (N, H)
    n = np.tanh(zx[:, 2 * H:] + r * hn)
    next_h = (1.0 - z) * n + z * prev_h
    return next_h, GRUStepCache(x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h: np.ndarray, cache: GRUStepCache):
    """Backward of one step: dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, 3H),
    dWh (H, 3H), db (3H,), db_hn (H,))."""
    fn = "gru_step_backward"
    v.cache_of(fn, cache, GRUStepCache, "gru_step_forward")
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    v.float_array(fn, "dnext_h", dnext_h, n.shape, x.dtype)
    dn = dnext_h * (1.0 - z)
    dan = dn * (1.0 - n * n)                           # dL/d(zx_n)
    dhn = dan * r                                      # dL/d(zh_n + b_hn)
    dar = dan * hn * r * (1.0 - r)
    daz = dnext_h * (prev_h - n) * z * (1.0 - z)
    dzx = np.concatenate([dar, daz, dan], axis=1)      # (N, 3H)
    dzh = np.concatenate([dar, daz, dhn], axis=1)      # (N, 3H)
    dprev_h = dnext_h * z + dzh @ Wh.T
    return dzx @ Wx.T, dprev_h, x.T @ dzx, prev_h.T @ dzh, dzx.sum(axis=0), dhn.sum(axis=0)


@dataclass(slots=True, eq=False)
class GRUFactors:
    """The GRU backward's recurrence-free factors, per step (see ``GRUCell``)."""

    K: list[np.ndarray]          # (4, H, N)  dz'_t = dh * K: blocks n_h, r, z, n_x
    Kd: list[np.ndarray]         # (H, N)     dh_{t-1} += dh * Kd  (Kd = z)
    tmp: np.ndarray              # (H, N)     scratch


@dataclass(slots=True, eq=False)
class GRUState:
    """The GRU forward's storage and its per-step views (see ``GRUCell``)."""

    Z: np.ndarray                # (T or 1, 5H, N): hn, r, z, n, h_{t-1} - n per step
    T: int
    H: int
    zh: list[np.ndarray]         # (3H, N) the GEMM's output: n, r, z (h side); n becomes hn
    hn: list[np.ndarray]         # (H, N) h_{t-1} Wh_n + b_hn
    rz: list[np.ndarray]         # (2H, N) r, z
    r: list[np.ndarray]          # (H, N)
    z: list[np.ndarray]          # (H, N)
    n: list[np.ndarray]          # (H, N)
    d: list[np.ndarray]          # (H, N) h_{t-1} - n
    h_prev: list[np.ndarray]     # (H, N) the engine's h_{t-1}
    bh: np.ndarray               # (H, 1) b_hn
    half: np.floating
    factors: GRUFactors | None = None


class GRUCell:
    """GRU (module docstring) in the engine's layout (``cells.py``).

    Internal layouts: Wx and b in the public order (r, z, n), Wh as (n, r, z). The gradient
    buffer has 4 blocks of H per step, (n_h, r, z, n_x): rows 0:3H are the recurrent side
    (dL/dzh in Wh's internal order, feeding dh_{t-1} and dWh), rows H:4H the input side (dL/dzx
    in Wx's order, feeding dx, dWx, db), and block 0 sums to db_hn. r and z are sigmoids, their
    columns pre-scaled by 0.5 (dz' = 2 dz).

    Forward storage ``Z`` (T, 5H, N): step t's block holds hn = h_{t-1} Wh_n + b_hn, r, z, n and
    d = h_{t-1} - n; the GEMM writes rows 0:3H (n, r, z of the recurrent side) in place. Then

        r, z = sigmoid(zx_rz + zh_rz)       n = tanh(zx_n + r * hn)       h_t = n + z * d

    Inference keeps one block. The first backward turns Z, in place and for all T at once, into
    the factors K = (Kn * r, 2 Kn hn r (1 - r), 2 d z (1 - z), Kn) with Kn = (1 - z)(1 - n**2),
    so that dz'_t = dh * K (one multiply a step, into the gradient buffer), and keeps z for the
    direct term dh_{t-1} += z * dh. Held steps get K = 0 (the engine passes dh through).
    """

    name: str = "gru"
    gates: int = GATES["gru"]
    x_layout: GateLayout = GateLayout((0, 1, 2), (0, 1))          # r, z, n
    h_layout: GateLayout = GateLayout((2, 0, 1), (0, 1))          # n, r, z
    grad_blocks: int = 4
    x_block: int = 1
    h_block: int = 0
    bias_block: int | None = 0
    direct: bool = True

    def forward_begin(self, T: int, N: int, H: int, dtype: np.dtype, extra0: np.ndarray | None,
                      bh: np.ndarray | None, store: bool,
                      h_steps: list[np.ndarray]) -> GRUState:
        if bh is None:
            raise ValueError("the GRU cell needs its recurrent bias b_hn (bh)")
        Z = np.empty((T if store else 1, 5 * H, N), dtype=dtype)

        def per_step(A: np.ndarray) -> list[np.ndarray]:
            views = _steps(A)
            return views if store else views * T

        return GRUState(Z=Z, T=T, H=H, zh=per_step(Z[:, :3 * H]), hn=per_step(Z[:, :H]),
                        rz=per_step(Z[:, H:3 * H]), r=per_step(Z[:, H:2 * H]),
                        z=per_step(Z[:, 2 * H:3 * H]), n=per_step(Z[:, 3 * H:4 * H]),
                        d=per_step(Z[:, 4 * H:]), h_prev=h_steps, bh=bh[:, None],
                        half=dtype.type(0.5))

    def preactivation(self, st: GRUState, t: int) -> np.ndarray:
        return st.zh[t]

    def forward_step(self, st: GRUState, t: int, zh: np.ndarray, xw: np.ndarray,
                     h_out: np.ndarray, hold: np.ndarray | None) -> None:
        H, half = st.H, st.half
        rz = st.rz[t]
        rz += xw[:2 * H]
        np.tanh(rz, out=rz)                          # r, z: sigmoid = 0.5 * tanh(z / 2) + 0.5
        rz *= half
        rz += half
        hn, n, d = st.hn[t], st.n[t], st.d[t]
        hn += st.bh
        np.multiply(st.r[t], hn, out=n)
        n += xw[2 * H:]
        np.tanh(n, out=n)
        np.subtract(st.h_prev[t], n, out=d)
        np.multiply(st.z[t], d, out=h_out)
        h_out += n                                   # h_t = n + z (h_{t-1} - n)

    def last_state(self, st: GRUState) -> None:
        return None

    def backward_factors(self, st: GRUState, Hs: np.ndarray, hold: np.ndarray | None,
                         dA: np.ndarray) -> GRUFactors:
        """The recurrence-free factors (class docstring), computed on first use."""
        if st.factors is None:
            st.factors = self._factors_in_place(st, hold)
        return st.factors

    @staticmethod
    def _factors_in_place(st: GRUState, hold: np.ndarray | None) -> GRUFactors:
        Z, H, T = st.Z, st.H, st.T
        N = Z.shape[2]
        steps = max(1, min(T, FACTOR_BLOCK_BYTES // (6 * H * N * Z.itemsize)))
        tmp = np.empty((2, steps, H, N), dtype=Z.dtype)
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            hn, r, z, n, d = (Z[t0:t1, k * H:(k + 1) * H] for k in range(5))   # (k, H, N)
            GRUCell._factors_block(hn, r, z, n, d, tmp[:, :t1 - t0])
        if hold is not None:
            Z[:, :4 * H] *= ~hold[:, None, :]                      # (T, 1, N)
        st.zh = st.hn = st.rz = st.r = st.z = st.n = st.d = []    # forward views: stale now
        return GRUFactors(K=_steps(Z[:, :4 * H].reshape(T, 4, H, N)), Kd=_steps(Z[:, 4 * H:]),
                          tmp=np.empty((H, N), dtype=Z.dtype))

    @staticmethod
    def _factors_block(hn: np.ndarray, r: np.ndarray, z: np.ndarray, n: np.ndarray,
                       d: np.ndarray, tmp: np.ndarray) -> None:
        """In place over a block of steps, all (k, H, N): hn, r, z, n, d become
        Kn * r, 2 Kn hn r (1 - r), 2 d z (1 - z), Kn and z (Kn = (1 - z)(1 - n^2))."""
        one = n.dtype.type(1)
        a, c = tmp[0], tmp[1]
        np.multiply(n, n, out=a)
        np.subtract(one, a, out=a)                   # 1 - n^2
        np.subtract(one, z, out=c)                   # 1 - z
        np.multiply(a, c, out=n)                     # n <- Kn
        c *= z
        c *= d
        c += c                                       # 2 d z (1 - z)
        np.copyto(d, z)                              # d <- Kd = z
        np.copyto(z, c)                              # z <- Kz
        np.subtract(one, r, out=a)
        a *= r
        a *= hn
        a *= n
        a += a                                       # 2 Kn hn r (1 - r)
        np.multiply(n, r, out=hn)                    # hn <- Kn * r
        np.copyto(r, a)                              # r <- Kr

    def backward_begin(self, fac: GRUFactors, dlast: np.ndarray | None, H: int, N: int,
                       dtype: np.dtype) -> None:
        return None

    def backward_step(self, fac: GRUFactors, carry: None, t: int, dh: np.ndarray,
                      dz: np.ndarray) -> None:
        np.multiply(fac.K[t], dh, out=dz)            # dz (4, H, N): n_h, r, z, n_x

    def backward_direct(self, fac: GRUFactors, t: int, dh: np.ndarray,
                        dh_prev: np.ndarray) -> None:
        tmp = fac.tmp
        np.multiply(dh, fac.Kd[t], out=tmp)
        dh_prev += tmp                               # dL/dh_{t-1} += z * dh

    def backward_end(self, carry: None) -> None:
        return None


GRU = GRUCell()


def gru_forward(x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                b_hn: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, RecurrenceCache]:
    """Run a GRU over a whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,), b_hn (H,), mask (N, T) bool or
    None. Returns h (N, T, H) and the cache for ``gru_backward``. Where mask is False the state
    is held (h_t = h_{t-1}), so h[:, -1] is each row's last valid state: the state to carry into
    the next chunk (see ``gru_forward_with_state``).
    """
    fn = "gru_forward"
    check_args(fn, x, h0, Wx, Wh, b, 3, mask)
    v.float_array(fn, "b_hn", b_hn, (h0.shape[1],), x.dtype)
    h, _, cache = recurrence_forward(GRU, x, h0, Wx, Wh, b, mask, bh=b_hn)
    return h, cache


def gru_backward(dh: np.ndarray, cache: RecurrenceCache):
    """Backward of ``gru_forward``: dh (N, T, H) = dL/dh_t from above at every step.

    Returns (dx (N, T, D), dh0 (N, H), dWx (D, 3H), dWh (H, 3H), db (3H,), db_hn (H,)).
    """
    _check_dh("gru_backward", dh, cache, "gru")
    g = recurrence_backward(dh, cache)
    return g.dx, g.dh0, g.dWx, g.dWh, g.db, g.dbh


def gru_forward_with_state(x: np.ndarray, h0: np.ndarray, Wx: np.ndarray, Wh: np.ndarray,
                           b: np.ndarray, b_hn: np.ndarray, mask: np.ndarray | None = None):
    """GRU over a sequence from a given h0 -> (h (N, T, H), h_last (N, H), cache).

    ``h_last`` is the final state (each row's last valid one under a mask; a copy of
    h[:, -1]), to carry into the next chunk (truncated BPTT). Its gradient goes to
    ``gru_backward_with_state``; the cache also works with ``gru_backward``.
    """
    fn = "gru_forward_with_state"
    check_args(fn, x, h0, Wx, Wh, b, 3, mask)
    v.float_array(fn, "b_hn", b_hn, (h0.shape[1],), x.dtype)
    h, _, cache = recurrence_forward(GRU, x, h0, Wx, Wh, b, mask, bh=b_hn)
    return h, h[:, -1].copy(), cache


def gru_backward_with_state(dh: np.ndarray, dh_last: np.ndarray | None, cache: RecurrenceCache):
    """Backward of ``gru_forward_with_state``.

    dh (N, T, H), dh_last (N, H) = dL/dh_last or None (= zeros) -> (dx, dh0, dWx, dWh, db,
    db_hn). h_last is h[:, -1], so dh_last adds to dh[:, -1] (under a mask the held steps pass
    it back to each row's last valid step).
    """
    fn = "gru_backward_with_state"
    _check_dh(fn, dh, cache, "gru")
    if dh_last is not None:
        H, _, N = cache.Hs.shape
        v.float_array(fn, "dh_last", dh_last, (N, H), cache.Hs.dtype)
        dh = dh.copy()
        dh[:, -1] += dh_last
    g = recurrence_backward(dh, cache)
    return g.dx, g.dh0, g.dWx, g.dWh, g.db, g.dbh
