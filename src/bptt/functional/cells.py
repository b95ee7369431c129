"""Pointwise math of each recurrent cell, in the engine's internal layout.

Shapes here are feature-major (see ``recurrence.py``): a step's arrays are (H, N), one column per
sample, and the step's pre-activations z are (G, N) with the gate blocks in the cell's internal
``order`` and the sigmoid rows already halved (so ``tanh`` of them gives tanh(z_true / 2)).

A cell provides:
    gates, order, sigmoid_blocks          layout of its G = gates * H pre-activations
    forward_begin / preactivation / forward_step / last_state
    backward_factors / backward_begin / backward_step / backward_end
"""

from __future__ import annotations

import numpy as np


class RNNCell:
    """Vanilla tanh RNN:  h_t = tanh(z_t),  z_t = x_t Wx + h_{t-1} Wh + b.

    Backward:  dz_t = dh_t * (1 - h_t**2);  dh_{t-1} = dz_t Wh^T  (taken by the engine).
    """

    name = "rnn"
    gates = 1
    order = (0,)
    sigmoid_blocks = 0

    def forward_begin(self, T, N, H, dtype, c0):
        return {}

    def preactivation(self, st, t, Hs):
        return Hs[:, t + 1]                         # z_t is computed straight into h_t's slot

    def forward_step(self, st, t, z, h_prev, h_out, hold):
        np.tanh(z, out=h_out)                       # z is h_out: in place

    def last_state(self, st):
        return None

    def backward_factors(self, st, Hs, hold):
        """K (T, H, N) = 1 - h_t**2, zero on held steps (their dz is zero)."""
        h = Hs[:, 1:].transpose(1, 0, 2)            # (T, H, N) view
        K = np.multiply(h, h)
        np.subtract(1.0, K, out=K)
        if hold is not None:
            K *= ~hold[:, None, :]
        return {"K": K}

    def backward_begin(self, fac, dlast, H, N, dtype):
        return None

    def backward_step(self, fac, carry, t, dh, dz):
        np.multiply(dh, fac["K"][t], out=dz[0])     # dz (1, H, N)

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

    Every factor that does not depend on dh or dc is computed for all T at once before the loop.
    Internal block order is (o, i, f, g): the three sigmoid gates are contiguous (rows 0:3H) and
    so are the three gates driven by dc (rows H:4H).
    """

    name = "lstm"
    gates = 4
    order = (3, 0, 1, 2)                            # internal block k holds public gate order[k]
    sigmoid_blocks = 3

    def forward_begin(self, T, N, H, dtype, c0):
        cs = np.empty((T + 1, H, N), dtype=dtype)   # cell states, slot 0 = c0
        if c0 is None:
            cs[0] = 0.0
        else:
            cs[0] = c0.T
        return {
            "Z": np.empty((T, 4 * H, N), dtype=dtype),  # post-activation gates (o, i, f, g)
            "cs": cs,
            "tc": np.empty((T, H, N), dtype=dtype),     # tanh(c_t)
            "tmp": np.empty((H, N), dtype=dtype),
            "H": H,
        }

    def preactivation(self, st, t, Hs):
        return st["Z"][t]

    def forward_step(self, st, t, z, h_prev, h_out, hold):
        H = st["H"]
        np.tanh(z, out=z)                           # all four gates in one call
        s = z[: 3 * H]                              # o, i, f: sigmoid = 0.5 * tanh(z / 2) + 0.5
        s *= 0.5
        s += 0.5
        o, i, f, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        c_prev, c = st["cs"][t], st["cs"][t + 1]
        np.multiply(f, c_prev, out=c)
        np.multiply(i, g, out=st["tmp"])
        c += st["tmp"]
        if hold is not None:
            np.copyto(c, c_prev, where=hold)
        tc = st["tc"][t]
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=h_out)

    def last_state(self, st):
        return st["cs"][-1].T.copy()               # (N, H)

    def backward_factors(self, st, Hs, hold):
        """K (T, 4, H, N) = [Ko, Ki, Kf, Kg], Kc (T, H, N), F (T, H, N): see the class docstring."""
        Z, tc = st["Z"], st["tc"]
        T, G, N = Z.shape
        H = G // 4
        Zg = Z.reshape(T, 4, H, N)
        o, i, f, g = Zg[:, 0], Zg[:, 1], Zg[:, 2], Zg[:, 3]      # (T, H, N) views
        c_prev = st["cs"][:T]
        K = np.empty((T, 4, H, N), dtype=Z.dtype)
        np.multiply(o, 1.0 - o, out=K[:, 0])
        K[:, 0] *= tc                                            # Ko = tanh(c) o (1 - o)
        np.multiply(i, 1.0 - i, out=K[:, 1])
        K[:, 1] *= g                                             # Ki = g i (1 - i)
        np.multiply(f, 1.0 - f, out=K[:, 2])
        K[:, 2] *= c_prev                                        # Kf = c_{t-1} f (1 - f)
        np.multiply(g, g, out=K[:, 3])
        np.subtract(1.0, K[:, 3], out=K[:, 3])
        K[:, 3] *= i                                             # Kg = i (1 - g^2)
        Kc = np.multiply(tc, tc)
        np.subtract(1.0, Kc, out=Kc)
        Kc *= o                                                  # Kc = o (1 - tanh(c)^2)
        F = f.copy()                                             # dc_{t-1} = dc * F
        if hold is not None:
            valid = ~hold[:, None, :]                            # (T, 1, N)
            K *= valid[:, None]
            Kc *= valid
            np.copyto(F, 1.0, where=hold[:, None, :])
        return {"K": K, "Kc": Kc, "F": F, "tmp": np.empty((H, N), dtype=Z.dtype)}

    def backward_begin(self, fac, dlast, H, N, dtype):
        dc = np.zeros((H, N), dtype=dtype)                       # dL/dc_t, carried
        if dlast is not None:
            dc[...] = dlast.T
        return dc

    def backward_step(self, fac, dc, t, dh, dz):
        tmp = fac["tmp"]
        np.multiply(dh, fac["Kc"][t], out=tmp)
        dc += tmp                                                # dL/dc_t, total
        np.multiply(dh, fac["K"][t, 0], out=dz[0])               # dz_o
        np.multiply(dc, fac["K"][t, 1:], out=dz[1:])             # dz_i, dz_f, dz_g
        dc *= fac["F"][t]                                        # becomes dL/dc_{t-1}

    def backward_end(self, dc):
        return dc.T.copy()


RNN = RNNCell()
LSTM = LSTMCell()
