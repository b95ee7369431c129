"""The compiled fast path (the optional ``bptt[fast]`` extra, numba): batch of one, whole loop.

Cells: the vanilla RNN, the LSTM and the GRU (its equations: ``gru.py``).

At batch 1 a NumPy step is a handful of calls on arrays of a few hundred numbers, so the time is
per-call overhead (about 1 us a call), not arithmetic. Here each sequence forward and backward
is ONE compiled call over all T steps (the input GEMM x Wx and the post-loop weight GEMMs stay in
NumPy's BLAS): per step a matrix-vector product, the cell's pointwise math, and nothing else.

Layout (public, time-major; N = 1 so the batch axis is dropped):

    XW (T, G)     x_t Wx + b for every step (one GEMM before the loop)
    Hs (T+1, H)   hidden states, Hs[0] = h0
    Cs (T+1, H)   LSTM cell states, Cs[0] = c0
    A  (T, 4H)    LSTM activated gates i, f, g, o; GRU r, z, n and hn = h_{t-1} Wh_n + b_hn
    TC (T, H)     LSTM tanh(c_t)
    dZ (T, G)     dL/dz_t, the gradient of the public pre-activations
    hold (T,)     True where the state is held (mask False); length 0 when nothing is held

The transcendental functions are written out (numba has no vector math library, and a call to
libm's tanh per element costs more than the rest of the step): exp on [0, 40] by a degree-15
Taylor polynomial of exp(y / 64) squared six times (relative error < 1e-14), tanh by Cephes'
rational form below 0.625 and 1 - 2 / (exp(2|x|) + 1) above, sigmoid from the same exp. All of it
in float64 whatever the array dtype, so float32 results are correctly rounded to float32
precision and float64 ones agree with NumPy to about 1e-14. The loops vectorise (``fastmath``:
reassociation of the matrix-vector sums, as BLAS does).

``AVAILABLE`` is False when numba is not installed or ``BPTT_FAST=0`` is set; the engine then
uses its NumPy path only.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:
    if os.environ.get("BPTT_FAST", "1") == "0":
        raise ImportError("BPTT_FAST=0")
    import numba
    from numba import njit
    AVAILABLE = True
    WHY = f"numba {numba.__version__}"
except ImportError as _e:                           # the NumPy path only
    AVAILABLE = False
    WHY = f"not available ({_e})"

    def njit(*args, **kwargs):                      # keeps the definitions importable
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

FM = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan / ninf: NaN and inf propagate

_C = [1.0 / math.factorial(k) for k in range(16)]
(C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15) = _C
P0, P1, P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
Q0, Q1, Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@njit(inline="always", fastmath=FM, error_model="numpy")
def _exp_pos(y):
    """exp(y) for 0 <= y <= 40: (Taylor_15(y / 64)) ** 64."""
    u = y * 0.015625
    p = ((((((((((((((C15 * u + C14) * u + C13) * u + C12) * u + C11) * u + C10) * u + C9)
                  * u + C8) * u + C7) * u + C6) * u + C5) * u + C4) * u + C3) * u + C2) * u
         + C1) * u + C0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(inline="always", fastmath=FM, error_model="numpy")
def _tanh(x):
    x = np.float64(x)
    a = min(abs(x), 20.0)                           # tanh(20) is 1 in float64
    z = a * a
    small = a + a * z * (((P0 * z + P1) * z + P2) / (((z + Q0) * z + Q1) * z + Q2))
    large = 1.0 - 2.0 / (_exp_pos(2.0 * a) + 1.0)
    w = np.float64(a < 0.625)                       # a select without a branch: vectorises
    return math.copysign(large + w * (small - large), x)


@njit(inline="always", fastmath=FM, error_model="numpy")
def _sigmoid(x):
    x = np.float64(x)
    r = 1.0 / (1.0 + _exp_pos(min(abs(x), 40.0)))   # sigmoid(-|x|)
    return r + np.float64(x >= 0.0) * (1.0 - 2.0 * r)


@njit(fastmath=FM, error_model="numpy", cache=True)
def tanh_into(x, out):
    """out[...] = tanh(x) elementwise, 1-D arrays (for tests of the approximation)."""
    for j in range(x.shape[0]):
        out[j] = _tanh(x[j])


@njit(fastmath=FM, error_model="numpy", cache=True)
def sigmoid_into(x, out):
    for j in range(x.shape[0]):
        out[j] = _sigmoid(x[j])


@njit(fastmath=FM, error_model="numpy", cache=True)
def _matvec_acc(z, h, W):
    """z (G,) += h (H,) @ W (H, G), four rows of W a pass (a quarter of the loads and stores
    of z), in the arrays' dtype as BLAS does."""
    H, G = W.shape
    k = 0
    while k + 4 <= H:
        h0, h1, h2, h3 = h[k], h[k + 1], h[k + 2], h[k + 3]
        for j in range(G):
            z[j] += h0 * W[k, j] + h1 * W[k + 1, j] + h2 * W[k + 2, j] + h3 * W[k + 3, j]
        k += 4
    while k < H:
        hk = h[k]
        for j in range(G):
            z[j] += hk * W[k, j]
        k += 1


@njit(fastmath=FM, error_model="numpy", cache=True)
def _matvec_t(out, W, dz):
    """out (H,) = W (H, G) @ dz (G,), four rows a pass (each load of dz serves four sums),
    accumulated in the arrays' dtype."""
    H, G = W.shape
    zero = dz[0] - dz[0]                            # 0 in the arrays' dtype
    k = 0
    while k + 4 <= H:
        s0 = s1 = s2 = s3 = zero
        for j in range(G):
            d = dz[j]
            s0 += W[k, j] * d
            s1 += W[k + 1, j] * d
            s2 += W[k + 2, j] * d
            s3 += W[k + 3, j] * d
        out[k], out[k + 1], out[k + 2], out[k + 3] = s0, s1, s2, s3
        k += 4
    while k < H:
        s = zero
        for j in range(G):
            s += W[k, j] * dz[j]
        out[k] = s
        k += 1


# ----------------------------------------------------------------------------------------------
# vanilla RNN, batch 1


@njit(fastmath=FM, error_model="numpy", cache=True)
def rnn1_forward(XW, Wh, hold, Hs):
    """Hs[t+1] = tanh(XW[t] + Hs[t] @ Wh), held where hold[t]; Hs[0] holds h0."""
    T, H = XW.shape
    z = np.empty(H, dtype=XW.dtype)
    for t in range(T):
        if hold.shape[0] and hold[t]:
            Hs[t + 1] = Hs[t]
            continue
        z[:] = XW[t]
        _matvec_acc(z, Hs[t], Wh)
        for j in range(H):
            Hs[t + 1, j] = _tanh(z[j])


@njit(fastmath=FM, error_model="numpy", cache=True)
def rnn1_backward(dH, Hs, Wh, hold, dZ, dh0):
    """dZ[t] = dL/dz_t for every step; dh0 = dL/dh0 (out)."""
    T, H = dH.shape
    dh_next = np.zeros(H, dtype=dH.dtype)
    for t in range(T - 1, -1, -1):
        if hold.shape[0] and hold[t]:
            dZ[t] = 0.0
            for j in range(H):
                dh_next[j] += dH[t, j]
            continue
        for j in range(H):
            h = Hs[t + 1, j]
            dZ[t, j] = (dH[t, j] + dh_next[j]) * (1.0 - h * h)
        _matvec_t(dh_next, Wh, dZ[t])
    dh0[:] = dh_next


# ----------------------------------------------------------------------------------------------
# LSTM, batch 1 (gates i, f, g, o along 4H)


@njit(fastmath=FM, error_model="numpy", cache=True)
def _lstm_gates(z, c_prev, a, c_out, tc_out, h_out, H):
    for j in range(H):
        i = _sigmoid(z[j])
        f = _sigmoid(z[H + j])
        g = _tanh(z[2 * H + j])
        o = _sigmoid(z[3 * H + j])
        c = f * c_prev[j] + i * g
        tc = _tanh(c)
        a[j] = i
        a[H + j] = f
        a[2 * H + j] = g
        a[3 * H + j] = o
        c_out[j] = c
        tc_out[j] = tc
        h_out[j] = o * tc


@njit(fastmath=FM, error_model="numpy", cache=True)
def lstm1_forward(XW, Wh, hold, Hs, Cs, A, TC):
    """Forward over all steps, storing what the backward needs; Hs[0], Cs[0] hold h0, c0."""
    T, G = XW.shape
    H = G // 4
    z = np.empty(G, dtype=XW.dtype)
    for t in range(T):
        if hold.shape[0] and hold[t]:
            Hs[t + 1] = Hs[t]
            Cs[t + 1] = Cs[t]
            A[t] = 0.0
            TC[t] = 0.0
            continue
        z[:] = XW[t]
        _matvec_acc(z, Hs[t], Wh)
        _lstm_gates(z, Cs[t], A[t], Cs[t + 1], TC[t], Hs[t + 1], H)


@njit(fastmath=FM, error_model="numpy", cache=True)
def lstm1_infer(XW, Wh, hold, Hs, c):
    """Forward keeping only the hidden states; c (H,) holds c0 in, c_T out."""
    T, G = XW.shape
    H = G // 4
    z = np.empty(G, dtype=XW.dtype)
    a = np.empty(G, dtype=XW.dtype)
    tc = np.empty(H, dtype=XW.dtype)
    c2 = np.empty(H, dtype=XW.dtype)
    for t in range(T):
        if hold.shape[0] and hold[t]:
            Hs[t + 1] = Hs[t]
            continue
        z[:] = XW[t]
        _matvec_acc(z, Hs[t], Wh)
        _lstm_gates(z, c, a, c2, tc, Hs[t + 1], H)
        c[:] = c2


@njit(fastmath=FM, error_model="numpy", cache=True)
def lstm1_backward(dH, dc_last, Cs, A, TC, Wh, hold, dZ, dh0, dc0):
    """dZ[t] = dL/dz_t (i, f, g, o) for every step; dh0, dc0 (out) = dL/dh0, dL/dc0."""
    T, H = dH.shape
    dh_next = np.zeros(H, dtype=dH.dtype)
    dc = dc_last.copy()
    for t in range(T - 1, -1, -1):
        if hold.shape[0] and hold[t]:                # held: both gradients pass through
            dZ[t] = 0.0
            for j in range(H):
                dh_next[j] += dH[t, j]
            continue
        for j in range(H):
            dh = np.float64(dH[t, j]) + dh_next[j]
            i = np.float64(A[t, j])
            f = np.float64(A[t, H + j])
            g = np.float64(A[t, 2 * H + j])
            o = np.float64(A[t, 3 * H + j])
            tc = np.float64(TC[t, j])
            dcj = dc[j] + dh * o * (1.0 - tc * tc)
            dZ[t, j] = dcj * g * i * (1.0 - i)
            dZ[t, H + j] = dcj * Cs[t, j] * f * (1.0 - f)
            dZ[t, 2 * H + j] = dcj * i * (1.0 - g * g)
            dZ[t, 3 * H + j] = dh * tc * o * (1.0 - o)
            dc[j] = dcj * f
        _matvec_t(dh_next, Wh, dZ[t])
    dh0[:] = dh_next
    dc0[:] = dc


# ----------------------------------------------------------------------------------------------
# GRU, batch 1 (gates r, z, n along 3H; b_hn the candidate's recurrent bias, see gru.py)


@njit(fastmath=FM, error_model="numpy", cache=True)
def gru1_forward(XW, Wh, bhn, hold, Hs, A):
    """Hs[t+1] = (1 - z) n + z Hs[t]; A[t] = (r, z, n, hn) with hn = Hs[t] Wh_n + b_hn."""
    T, G = XW.shape
    H = G // 3
    zh = np.empty(G, dtype=XW.dtype)
    for t in range(T):
        if hold.shape[0] and hold[t]:
            Hs[t + 1] = Hs[t]
            A[t] = 0.0
            continue
        zh[:] = 0.0
        _matvec_acc(zh, Hs[t], Wh)
        for j in range(H):
            r = _sigmoid(np.float64(XW[t, j]) + zh[j])
            z = _sigmoid(np.float64(XW[t, H + j]) + zh[H + j])
            hn = np.float64(zh[2 * H + j]) + bhn[j]
            n = _tanh(XW[t, 2 * H + j] + r * hn)
            A[t, j] = r
            A[t, H + j] = z
            A[t, 2 * H + j] = n
            A[t, 3 * H + j] = hn
            Hs[t + 1, j] = n + z * (Hs[t, j] - n)


@njit(fastmath=FM, error_model="numpy", cache=True)
def gru1_backward(dH, Hs, A, Wh, hold, dZx, dZh, dh0):
    """dZx[t] = dL/dzx_t (r, z, n), dZh[t] = dL/dzh_t (r, z, n: its n part is dL/db_hn per
    step); dh0 (out) = dL/dh0."""
    T, H = dH.shape
    dh_next = np.zeros(H, dtype=dH.dtype)
    dh = np.empty(H, dtype=dH.dtype)
    for t in range(T - 1, -1, -1):
        if hold.shape[0] and hold[t]:
            dZx[t] = 0.0
            dZh[t] = 0.0
            for j in range(H):
                dh_next[j] += dH[t, j]
            continue
        for j in range(H):
            d = np.float64(dH[t, j]) + dh_next[j]
            r = np.float64(A[t, j])
            z = np.float64(A[t, H + j])
            n = np.float64(A[t, 2 * H + j])
            hn = np.float64(A[t, 3 * H + j])
            dan = d * (1.0 - z) * (1.0 - n * n)
            dar = dan * hn * r * (1.0 - r)
            daz = d * (Hs[t, j] - n) * z * (1.0 - z)
            dZx[t, j] = dar
            dZx[t, H + j] = daz
            dZx[t, 2 * H + j] = dan
            dZh[t, j] = dar
            dZh[t, H + j] = daz
            dZh[t, 2 * H + j] = dan * r
            dh[j] = d * z
        _matvec_t(dh_next, Wh, dZh[t])
        for j in range(H):
            dh_next[j] += dh[j]
    dh0[:] = dh_next
