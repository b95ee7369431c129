"""Pointwise math of each recurrent cell, in the engine's internal layout, and the typed
``Cell`` protocol that the one loop (``recurrence.py``) runs. The RNN and LSTM cells are here;
the GRU's sits beside its step functions in ``gru.py``.

Shapes here are feature-major (see ``recurrence.py``): a step's arrays are (H, N), one column per
sample. Each cell's G = gates * H public columns of Wx, Wh, b are permuted into an internal block
order (its ``x_layout`` for Wx and b, its ``h_layout`` for Wh), and the columns of sigmoid gates
are pre-scaled by 0.5 (so ``tanh`` of them gives tanh(z / 2)). The backward produces dL/dz' for
the internal pre-activations z', which on a sigmoid row is 2 dL/dz.

The engine calls, per forward step t:

    zh = cell.preactivation(st, t)                    (G, N) buffer
    zh <- Wh'^T h_{t-1}                                 the engine's one recurrent GEMM
    cell.forward_step(st, t, zh, xw_t, h_t, hold_t)    xw_t = x_t Wx' + b' (G, N), hoisted

and per backward step, with dh = dL/dh_t (total):

    cell.backward_step(fac, carry, t, dh, dz_t)        writes dz_t (grad_blocks, H, N)
    dh_{t-1} <- Wh' dz_t[recurrent side]                the engine's one GEMM
    cell.backward_direct(fac, t, dh, dh_{t-1})          only if ``cell.direct`` (a term of
                                                        dh_{t-1} that skips the GEMM)

dz_t's blocks are the cell's: the rows from ``x_block`` (G of them) are dL/d(x_t Wx' + b'), the
rows from ``h_block`` dL/d(h_{t-1} Wh'); for a cell whose pre-activation is one sum the two are
the same rows. ``bias_block`` names the block whose sum over steps is the gradient of the cell's
recurrent bias (the GRU's b_hn), None when it has none.

``forward_begin(T, N, H, dtype, extra0, bh, store, h_steps)`` gets the engine's per-step views of
the hidden states (h_steps[t] = h_{t-1}, h_steps[t + 1] = h_t); with store False (inference) a
cell keeps only the buffers of the current step. ``backward_factors(st, Hs, hold, dA)`` gets the
engine's (grad_blocks * H, T, N) buffer for the gate gradients, which a cell may pre-fill with its
factors (the RNN does, and then scales them in place each step). Per-step views are made once, as
lists (``_steps``), because the loops run once per time step and at small batch sizes their
Python overhead is most of the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

FACTOR_BLOCK_BYTES = 1 << 20     # LSTM and GRU backward factors are made over blocks this large

GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
"""The one gate-count table: a cell has G = GATES[name] * H columns of Wx, Wh and b. The cells
here and in ``gru.py`` read their ``gates`` from it, as do ``nn`` and ``interop``."""

S = TypeVar("S")                 # a cell's forward state (and, after the backward, its factors)
K = TypeVar("K")                 # its recurrence-free backward factors
C = TypeVar("C")                 # what its backward carries from step t to t - 1


@dataclass(frozen=True)
class GateLayout:
    """Where a cell's public gate blocks sit in the internal layout, and which are sigmoids."""

    order: tuple[int, ...]       # internal block k holds public gate order[k]
    sigmoid: tuple[int, ...]     # public gates that are sigmoids (columns halved internally)
    identity: bool = field(init=False)   # internal weights are the public ones: nothing moves

    def __post_init__(self) -> None:
        same = not self.sigmoid and self.order == tuple(range(len(self.order)))
        object.__setattr__(self, "identity", same)


class Cell(Protocol[S, K, C]):
    """What the one BPTT loop needs of a cell (see the module docstring for the call order)."""

    name: str
    gates: int                   # G = gates * H public columns of Wx, Wh, b
    x_layout: GateLayout         # internal layout of Wx and b
    h_layout: GateLayout         # internal layout of Wh
    grad_blocks: int             # blocks of H rows of dA per step
    x_block: int                 # dA rows x_block * H ... + G: input side (dWx, dx, db)
    h_block: int                 # dA rows h_block * H ... + G: recurrent side (dWh, dh_{t-1})
    bias_block: int | None       # dA block summed into the recurrent bias's gradient, or None
    direct: bool                 # call backward_direct after each backward GEMM

    def forward_begin(self, T: int, N: int, H: int, dtype: np.dtype, extra0: np.ndarray | None,
                      bh: np.ndarray | None, store: bool, h_steps: list[np.ndarray]) -> S: ...

    def preactivation(self, st: S, t: int) -> np.ndarray: ...

    def forward_step(self, st: S, t: int, zh: np.ndarray, xw: np.ndarray, h_out: np.ndarray,
                     hold: np.ndarray | None) -> None: ...

    def last_state(self, st: S) -> np.ndarray | None: ...

    def backward_factors(self, st: S, Hs: np.ndarray, hold: np.ndarray | None,
                         dA: np.ndarray) -> K: ...

    def backward_begin(self, fac: K, dlast: np.ndarray | None, H: int, N: int,
                       dtype: np.dtype) -> C: ...

    def backward_step(self, fac: K, carry: C, t: int, dh: np.ndarray, dz: np.ndarray) -> None: ...

    def backward_direct(self, fac: K, t: int, dh: np.ndarray, dh_prev: np.ndarray) -> None: ...

    def backward_end(self, carry: C) -> np.ndarray | None: ...


AnyCell = Cell[Any, Any, Any]


def _steps(A: np.ndarray) -> list[np.ndarray]:
    """[A[t] for every t] as a list of views, made in one C-level pass."""
    return list(A)


class RNNState(NamedTuple):
    z: list[np.ndarray]          # per step: the (H, N) buffer of z_t (h_t's own slot if it can)


class RNNCell:
    """Vanilla tanh RNN:  h_t = tanh(z_t),  z_t = x_t Wx + h_{t-1} Wh + b.

    Backward:  dz_t = dh_t * (1 - h_t**2);  dh_{t-1} = dz_t Wh^T  (taken by the engine).
    """

    name: str = "rnn"
    gates: int = GATES["rnn"]
    x_layout: GateLayout = GateLayout((0,), ())
    h_layout: GateLayout = x_layout
    grad_blocks: int = 1
    x_block: int = 0
    h_block: int = 0
    bias_block: int | None = None
    direct: bool = False

    def forward_begin(self, T: int, N: int, H: int, dtype: np.dtype, extra0: np.ndarray | None,
                      bh: np.ndarray | None, store: bool,
                      h_steps: list[np.ndarray]) -> RNNState:
        # z_t goes straight into h_t's slot where that is contiguous; else into a buffer, since
        # ufuncs on strided (H, N) views run several times slower.
        if h_steps[0].flags.c_contiguous:
            return RNNState(h_steps[1:])
        return RNNState([np.empty((H, N), dtype=dtype)] * T)

    def preactivation(self, st: RNNState, t: int) -> np.ndarray:
        return st.z[t]

    def forward_step(self, st: RNNState, t: int, zh: np.ndarray, xw: np.ndarray,
                     h_out: np.ndarray, hold: np.ndarray | None) -> None:
        zh += xw
        np.tanh(zh, out=h_out)

    def last_state(self, st: RNNState) -> None:
        return None

    def backward_factors(self, st: RNNState, Hs: np.ndarray, hold: np.ndarray | None,
                         dA: np.ndarray) -> None:
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

    def backward_begin(self, fac: None, dlast: np.ndarray | None, H: int, N: int,
                       dtype: np.dtype) -> None:
        return None

    def backward_step(self, fac: None, carry: None, t: int, dh: np.ndarray,
                      dz: np.ndarray) -> None:
        dz[0] *= dh                                 # dz (1, H, N) holds 1 - h_t**2

    def backward_direct(self, fac: None, t: int, dh: np.ndarray, dh_prev: np.ndarray) -> None:
        raise NotImplementedError("the RNN's dh_{t-1} is the GEMM alone (direct is False)")

    def backward_end(self, carry: None) -> None:
        return None


@dataclass(slots=True, eq=False)
class LSTMFactors:
    """The LSTM backward's recurrence-free factors, per step (see ``LSTMCell``)."""

    Ko: list[np.ndarray]         # (H, N)     dz'_o = dh * Ko
    Kifg: list[np.ndarray]       # (3, H, N)  dz'_i, dz'_f, dz'_g = dc * Kifg
    F: list[np.ndarray]          # (H, N)     dc_{t-1} = dc * F
    Kc: list[np.ndarray]         # (H, N)     dc += dh * Kc
    tmp: np.ndarray              # (H, N)     scratch


@dataclass(slots=True, eq=False)
class LSTMState:
    """The LSTM forward's storage and its per-step views (see ``LSTMCell``)."""

    Z: np.ndarray                # (T+1 or 2, 5H, N): o, i, f, g, c_{t-1} per step
    tc: np.ndarray               # (H, N) tanh(c_t), one step
    T: int
    H: int
    z: list[np.ndarray]          # (4H, N) pre-activations, then activated gates
    sig: list[np.ndarray]        # (3H, N) o, i, f
    o: list[np.ndarray]          # (H, N)
    if_: list[np.ndarray]        # (2H, N) i, f
    gc: list[np.ndarray]         # (2H, N) g, c_{t-1}
    c: list[np.ndarray]          # (H, N) c[t] = c_{t-1}
    prod: np.ndarray             # (2H, N) i * g, f * c_{t-1}
    ig: np.ndarray               # (H, N) view of prod
    fc: np.ndarray               # (H, N) view of prod
    half: np.floating            # a typed scalar: faster on small float32 arrays
    factors: LSTMFactors | None = None   # made by the first backward, over Z (see below)


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

    name: str = "lstm"
    gates: int = GATES["lstm"]
    x_layout: GateLayout = GateLayout((3, 0, 1, 2), (0, 1, 3))   # internal o, i, f, g
    h_layout: GateLayout = x_layout
    grad_blocks: int = 4
    x_block: int = 0
    h_block: int = 0
    bias_block: int | None = None
    direct: bool = False

    def forward_begin(self, T: int, N: int, H: int, dtype: np.dtype, extra0: np.ndarray | None,
                      bh: np.ndarray | None, store: bool,
                      h_steps: list[np.ndarray]) -> LSTMState:
        Z = np.empty((T + 1 if store else 2, 5 * H, N), dtype=dtype)  # o, i, f, g, c_{t-1}
        Z[0, 4 * H:] = 0.0 if extra0 is None else extra0.T
        prod = np.empty((2 * H, N), dtype=dtype)

        def per_step(A: np.ndarray) -> list[np.ndarray]:  # inference: blocks 0, 1, 0, ...
            views = _steps(A)
            return views if store else [views[t % len(views)] for t in range(T + 1)]

        return LSTMState(
            Z=Z, tc=np.empty((H, N), dtype=dtype), T=T, H=H,
            z=per_step(Z[:, :4 * H]), sig=per_step(Z[:, :3 * H]), o=per_step(Z[:, :H]),
            if_=per_step(Z[:, H:3 * H]), gc=per_step(Z[:, 3 * H:]), c=per_step(Z[:, 4 * H:]),
            prod=prod, ig=prod[:H], fc=prod[H:], half=dtype.type(0.5))

    def preactivation(self, st: LSTMState, t: int) -> np.ndarray:
        return st.z[t]

    def forward_step(self, st: LSTMState, t: int, zh: np.ndarray, xw: np.ndarray,
                     h_out: np.ndarray, hold: np.ndarray | None) -> None:
        zh += xw
        np.tanh(zh, out=zh)                         # all four gates in one call
        s, half = st.sig[t], st.half                # o, i, f: sigmoid = 0.5 * tanh(z / 2) + 0.5
        s *= half
        s += half
        np.multiply(st.if_[t], st.gc[t], out=st.prod)               # i * g, f * c_{t-1}
        c = st.c[t + 1]                             # c_t goes where step t+1 reads c_{t-1}
        np.add(st.ig, st.fc, out=c)
        if hold is not None:
            np.copyto(c, st.c[t], where=hold)
        tc = st.tc
        np.tanh(c, out=tc)
        np.multiply(st.o[t], tc, out=h_out)

    def last_state(self, st: LSTMState) -> np.ndarray:
        return st.c[st.T].T.copy()                  # c_T (N, H), never a view

    def backward_factors(self, st: LSTMState, Hs: np.ndarray, hold: np.ndarray | None,
                         dA: np.ndarray) -> LSTMFactors:
        """The recurrence-free factors (see the class docstring), computed on first use."""
        if st.factors is None:
            st.factors = self._factors_in_place(st, hold)
        return st.factors

    @staticmethod
    def _factors_in_place(st: LSTMState, hold: np.ndarray | None) -> LSTMFactors:
        Z, H, T = st.Z, st.H, st.T
        B = Z[:T]                                                # (T, 5H, N)
        o, i, f, g, cp = (B[:, k * H:(k + 1) * H] for k in range(5))   # (T, H, N) views
        Kc = np.tanh(Z[1:, 4 * H:])                              # tanh(c_t), remade: one pass,
        # before any block overwrites c_{t-1} with F. The rest runs over blocks of steps that
        # fit in cache (~1 MB touched a block): 17 passes over data in cache instead of memory.
        steps = max(1, min(T, FACTOR_BLOCK_BYTES // (7 * H * Z.shape[2] * Z.itemsize)))
        tmp = np.empty((steps, H, Z.shape[2]), dtype=Z.dtype)
        for t0 in range(0, T, steps):
            t1 = min(T, t0 + steps)
            LSTMCell._factors_block(o[t0:t1], i[t0:t1], f[t0:t1], g[t0:t1], cp[t0:t1],
                                    Kc[t0:t1], tmp[:t1 - t0])
        if hold is not None:
            valid = ~hold[:, None, :]                            # (T, 1, N)
            B[:, :4 * H] *= valid
            Kc *= valid
            np.copyto(cp, Z.dtype.type(1), where=hold[:, None, :])   # held: dc passes through
        st.z = st.sig = st.o = st.if_ = st.gc = st.c = []       # forward views: stale now
        return LSTMFactors(Ko=_steps(o), Kifg=_steps(B[:, H:4 * H].reshape(T, 3, H, -1)),
                           F=_steps(cp), Kc=_steps(Kc), tmp=np.empty_like(Kc[0]))

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

    def backward_begin(self, fac: LSTMFactors, dlast: np.ndarray | None, H: int, N: int,
                       dtype: np.dtype) -> np.ndarray:
        dc = np.zeros((H, N), dtype=dtype)                       # dL/dc_t, carried
        if dlast is not None:
            dc[...] = dlast.T
        return dc

    def backward_step(self, fac: LSTMFactors, dc: np.ndarray, t: int, dh: np.ndarray,
                      dz: np.ndarray) -> None:
        tmp = fac.tmp
        np.multiply(dh, fac.Kc[t], out=tmp)
        dc += tmp                                                # dL/dc_t, total
        np.multiply(dh, fac.Ko[t], out=dz[0])                    # dz'_o
        np.multiply(dc, fac.Kifg[t], out=dz[1:])                 # dz'_i, dz'_f, dz'_g
        dc *= fac.F[t]                                           # becomes dL/dc_{t-1}

    def backward_direct(self, fac: LSTMFactors, t: int, dh: np.ndarray,
                        dh_prev: np.ndarray) -> None:
        raise NotImplementedError("the LSTM's dh_{t-1} is the GEMM alone (direct is False)")

    def backward_end(self, dc: np.ndarray) -> np.ndarray:
        return dc.T.copy()


RNN = RNNCell()
LSTM = LSTMCell()
