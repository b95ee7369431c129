"""Pointwise math of each recurrent cell, in the engine's internal layout.

Shapes here are feature-major (see ``recurrence.py``): a step's arrays are (H, N), one column per
sample, and the step's pre-activations z' are (G, N) with the gate blocks in the cell's internal
``order`` and the sigmoid rows already halved (so ``tanh`` of them gives tanh(z / 2)). The
backward produces dL/dz', which on a sigmoid row is 2 dL/dz.

A cell provides:
    gates, order, sigmoid_blocks          layout of its G = gates * H pre-activations
    forward_begin / preactivation / forward_step / last_state
    backward_factors / backward_begin / backward_step / backward_end

``forward_begin(T, N, H, dtype, c0, store, h_steps)`` gets the engine's per-step views of the
hidden states; with store False (inference) a cell keeps only the buffers of the current step.
``backward_factors(st, Hs, hold, dA)`` gets the engine's (G, T, N) buffer for the gate gradients,
which a cell may pre-fill with its factors (the RNN does, and then scales them in place each step).
Per-step views are made once, as lists (``_steps``), because the loops run once per time step and
at small batch sizes their Python overhead is most of the time.
"""

from __future__ import annotations

import numpy as np

FACTOR_BLOCK_BYTES = 1 << 20     # the LSTM backward's factors are made over blocks this large


def _steps(A: np.ndarray) -> list:
    """[A[t] for every t] as a list of views, made in one C-level pass."""
    return list(A)


class RNNCell:
    """Vanilla tanh RNN:  h_t = tanh(z_t),  z_t = x_t Wx + h_{t-1} Wh + b.

    Backward:  dz_t = dh_t * (1 - h_t**2);  dh_{t-1} = dz_t Wh^T  (taken by the engine).
    """

    name = "rnn"
    gates = 1
    order = (0,)
    sigmoid_blocks = 0

    def forward_begin(self, T, N, H, dtype, c0, store, h_steps):
        # z_t goes straight into h_t's slot where that is contiguous; else into a buffer, since
        # ufuncs on strided (H, N) views run several times slower.
        if h_steps[0].flags.c_contiguous:
            return h_steps[1:]
        return [np.empty((H, N), dtype=dtype)] * T

    def preactivation(self, st, t):
        return st[t]

    def forward_step(self, st, t, z, h_out, hold):
        np.tanh(z, out=h_out)

    def last_state(self, st):
        return None

    def backward_factors(self, st, Hs, hold, dA):
        """dA (H, T, N) <- 1 - h_t**2, zero on held steps; backward_step scales it in place.

        Two passes over the hidden states, redone by every backward, so the cache holds nothing
        beyond the states themselves.
        """
        h = Hs[:, 1:]                               # (H, T, N), same storage order as dA
        np.multiply(h, h, out=dA)
        np.subtract(dA.dtype.type(1), dA, out=dA)
        if hold is not None:
            dA *= ~hold                             # (T, N) broadcast over H
        return None

    def backward_begin(self, fac, dlast, H, N, dtype):
        return None

    def backward_step(self, fac, carry, t, dh, dz):
        dz[0] *= dh                                 # dz (1, H, N) holds 1 - h_t**2

    def backward_end(self, carry):
        return None


class LSTMCell:
    """LSTM with gates i, f, g, o (PyTorch's order along 4H; seed 001's Γu, Γf, c̃, Γo):

        i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Backward, with dh = dL/dh_t (total) and dc = dL/dc_t arriving from step t+1:

        dc   += dh * o * (1 - tanh(c_t)**2)
        dz_o  = dh * tanh(c_t) * o * (1 - o)
        dz_i  = dc * g * i * (1 - i)
        dz_f  = dc * c_{t-1} * f * (1 - f)
        dz_g  = dc * i * (1 - g**2)
        dc_{t-1} = dc * f

    Internal block order is (o, i, f, g): the three sigmoid gates are contiguous (rows 0:3H) and
    so are the three gates driven by dc (rows H:4H).

    Forward storage ``Z`` (T+1, 5H, N): step t's block holds its activated gates o, i, f, g and,
    in rows 4H:5H, c_{t-1} (slot T holds c_T). Rows H:3H (i, f) times rows 3H:5H (g, c_{t-1}) is
    then one multiply, and c_t one add. Inference uses two such blocks in turn. Every factor of
    the backward that does not depend on dh or dc is computed once, for all T, by the first
    backward, in place over Z: Z[t] becomes (Ko, Ki, Kf, Kg, F) with dz'_o = dh * Ko,
    dz'_ifg = dc * (Ki, Kf, Kg), dc_{t-1} = dc * F, and tanh(c_t) is replaced by
    Kc = o (1 - tanh(c_t)**2). Ko, Ki and Kf carry the factor 2 of the halved sigmoid
    pre-activations (dz' = 2 dz). Later backward calls on the same cache reuse them.
    """

    name = "lstm"
    gates = 4
    order = (3, 0, 1, 2)                            # internal block k holds public gate order[k]
    sigmoid_blocks = 3

    def forward_begin(self, T, N, H, dtype, c0, store, h_steps):
        Z = np.empty((T + 1 if store else 2, 5 * H, N), dtype=dtype)  # o, i, f, g, c_{t-1}
        Z[0, 4 * H:] = 0.0 if c0 is None else c0.T
        tc = np.empty((H, N), dtype=dtype)          # tanh(c_t), one step (the backward remakes it)
        prod = np.empty((2 * H, N), dtype=dtype)

        def per_step(A):                            # inference: blocks 0, 1, 0, 1, ... (T + 1)
            views = _steps(A)
            return views if store else [views[t % len(views)] for t in range(T + 1)]

        return {
            "Z": Z, "tc": tc, "T": T, "H": H,
            "z": per_step(Z[:, :4 * H]),            # pre-activations, then activated gates
            "sig": per_step(Z[:, :3 * H]),          # o, i, f
            "o": per_step(Z[:, :H]),
            "if": per_step(Z[:, H:3 * H]),
            "gc": per_step(Z[:, 3 * H:]),           # g, c_{t-1}
            "c": per_step(Z[:, 4 * H:]),            # c[t] = c_{t-1}
            "prod": prod, "ig": prod[:H], "fc": prod[H:],
            "half": dtype.type(0.5),                # a typed scalar: faster on small float32 arrays
        }

    def preactivation(self, st, t):
        return st["z"][t]

    def forward_step(self, st, t, z, h_out, hold):
        np.tanh(z, out=z)                           # all four gates in one call
        s, half = st["sig"][t], st["half"]          # o, i, f: sigmoid = 0.5 * tanh(z / 2) + 0.5
        s *= half
        s += half
        np.multiply(st["if"][t], st["gc"][t], out=st["prod"])      # i * g, f * c_{t-1}
        c = st["c"][t + 1]                          # c_t goes where step t+1 reads c_{t-1}
        np.add(st["ig"], st["fc"], out=c)
        if hold is not None:
            np.copyto(c, st["c"][t], where=hold)
        tc = st["tc"]
        np.tanh(c, out=tc)
        np.multiply(st["o"][t], tc, out=h_out)

    def last_state(self, st):
        return st["c"][st["T"]].T.copy()                             # c_T (N, H), never a view

    def backward_factors(self, st, Hs, hold, dA):
        """The recurrence-free factors (see the class docstring), computed on first use."""
        if "K" not in st:
            self._factors_in_place(st, hold)
        return st

    @staticmethod
    def _factors_in_place(st, hold):
        Z, H, T = st["Z"], st["H"], st["T"]
        N = Z.shape[2]
        B = Z[:T]                                                # (T, 5H, N)
        o, i, f, g, cp = (B[:, k * H:(k + 1) * H] for k in range(5))   # (T, H, N) views
        Kc = np.tanh(Z[1:, 4 * H:])                              # tanh(c_t), remade: one pass,
        # before any block overwrites c_{t-1} with F. The rest runs over blocks of steps that
        # fit in cache (~1 MB touched a block): 17 passes over data in cache instead of memory.
        steps = max(1, min(T, FACTOR_BLOCK_BYTES // (7 * H * N * Z.itemsize)))
        tmp = np.empty((steps, H, N), dtype=Z.dtype)
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            LSTMCell._factors_block(o[t0:t1], i[t0:t1], f[t0:t1], g[t0:t1], cp[t0:t1],
                                    Kc[t0:t1], tmp[:t1 - t0])
        if hold is not None:
            valid = ~hold[:, None, :]                            # (T, 1, N)
            B[:, :4 * H] *= valid
            Kc *= valid
            np.copyto(cp, Z.dtype.type(1), where=hold[:, None, :])   # held: dc passes through
        for k in ("z", "sig", "o", "if", "gc", "c", "tc"):      # forward views: stale now
            del st[k]
        st["K"] = True
        st["Ko"] = _steps(o)
        st["Kifg"] = _steps(B[:, H:4 * H].reshape(T, 3, H, -1))  # (3, H, N) per step
        st["F"] = _steps(cp)
        st["Kc"] = _steps(Kc)
        st["tmp"] = np.empty_like(Kc[0])

    @staticmethod
    def _factors_block(o, i, f, g, cp, Kc, tmp):
        """In place over a block of steps, all (k, H, N): the forward's o, i, f, g, c_{t-1}
        become Ko, Ki, Kf, Kg, F; Kc (holding tanh(c_t)) becomes o (1 - tanh(c_t)^2)."""
        one = o.dtype.type(1)
        np.multiply(Kc, o, out=tmp)
        tmp += tmp                                               # 2 tanh(c) o
        np.multiply(Kc, Kc, out=Kc)
        np.subtract(one, Kc, out=Kc)
        Kc *= o                                                  # Kc = o (1 - tanh(c)^2)
        np.subtract(one, o, out=o)
        o *= tmp                                                 # Ko = 2 tanh(c) o (1 - o)
        np.subtract(one, f, out=tmp)
        tmp *= f
        np.multiply(cp, tmp, out=tmp)
        tmp += tmp                                               # Kf = 2 c_{t-1} f (1 - f)
        np.copyto(cp, f)                                         # F = f
        np.copyto(f, tmp)
        np.multiply(g, g, out=tmp)
        np.subtract(one, tmp, out=tmp)
        tmp *= i                                                 # Kg = i (1 - g^2)
        g *= i
        g += g
        np.subtract(one, i, out=i)
        i *= g                                                   # Ki = 2 g i (1 - i)
        np.copyto(g, tmp)

    def backward_begin(self, fac, dlast, H, N, dtype):
        dc = np.zeros((H, N), dtype=dtype)                       # dL/dc_t, carried
        if dlast is not None:
            dc[...] = dlast.T
        return dc

    def backward_step(self, fac, dc, t, dh, dz):
        tmp = fac["tmp"]
        np.multiply(dh, fac["Kc"][t], out=tmp)
        dc += tmp                                                # dL/dc_t, total
        np.multiply(dh, fac["Ko"][t], out=dz[0])                 # dz'_o
        np.multiply(dc, fac["Kifg"][t], out=dz[1:])              # dz'_i, dz'_f, dz'_g
        dc *= fac["F"][t]                                        # becomes dL/dc_{t-1}

    def backward_end(self, dc):
        return dc.T.copy()


RNN = RNNCell()
LSTM = LSTMCell()
