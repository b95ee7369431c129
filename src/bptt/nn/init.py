"""Weight initialisers. Every function takes an explicit ``np.random.Generator``.

Defaults used by the layers (documented choices):
- input weights Wx: Glorot/Xavier uniform per gate block, U(-a, a) with a = sqrt(6 / (D + H))
  (Glorot & Bengio 2010);
- recurrent weights Wh: an orthogonal (H, H) matrix per gate block (Saxe et al. 2014), so the
  linear part of the recurrence neither shrinks nor grows gradients at initialisation;
- biases zero, except the LSTM forget gate, which starts at 1 (Gers et al. 2000; Jozefowicz et al.
  2015) so the cell remembers by default.
"""

from __future__ import annotations

import numpy as np


def xavier_uniform(rng: np.random.Generator, fan_in: int, fan_out: int,
                   dtype=np.float64) -> np.ndarray:
    """(fan_in, fan_out) matrix with entries U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


def orthogonal(rng: np.random.Generator, n: int, dtype=np.float64) -> np.ndarray:
    """(n, n) random orthogonal matrix: Q of a Gaussian's QR, signs fixed so Q is uniform."""
    a = rng.standard_normal((n, n))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q.astype(dtype)


def recurrent_weights(rng: np.random.Generator, D: int, H: int, gates: int,
                      forget_bias: float = 1.0, dtype=np.float64):
    """Wx (D, G), Wh (H, G), b (G,) for a cell with ``gates`` blocks of H (G = gates * H).

    For an LSTM (gates = 4, order i, f, g, o) the forget block of b is ``forget_bias``.
    """
    Wx = np.concatenate([xavier_uniform(rng, D, H, dtype) for _ in range(gates)], axis=1)
    Wh = np.concatenate([orthogonal(rng, H, dtype) for _ in range(gates)], axis=1)
    b = np.zeros(gates * H, dtype=dtype)
    if gates == 4:
        b[H:2 * H] = forget_bias
    return Wx, Wh, b
