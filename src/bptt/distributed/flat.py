"""A dict of arrays (params-style: name -> ndarray) laid out in one contiguous 1-D buffer.

    flat = FlatBuffer(grads, extra=2)       # layout of grads, plus 2 trailing scalar slots
    buf = flat.pack(grads)                  # (size,) copy of every array, in the dict's order
    ... comm.Allreduce(MPI.IN_PLACE, buf) ...
    flat.unpack(buf, out=grads)             # back into the arrays, in place

One buffer means one collective call per step whatever the number of parameter arrays (the
pattern of OpenAI Baselines' ``MpiAdam``). The buffer has the arrays' common type
(``np.result_type`` of all of them), so float32 gradients are reduced as float32 and float64
ones as float64; unpacking casts every array back to its own type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np


class FlatBuffer:
    """Layout of ``like`` (names in its order, shapes, dtypes) in one buffer plus ``extra``
    scalar slots at its end (losses, counts, flags reduced in the same call)."""

    def __init__(self, like: Mapping[str, np.ndarray], extra: int = 0):
        if extra < 0:
            raise ValueError(f"extra is {extra}; it must be 0 or more")
        if not like and not extra:
            raise ValueError("a flat buffer needs at least one array or one extra slot")
        self.names = list(like)
        self.shapes = [tuple(np.shape(like[k])) for k in self.names]
        self.dtypes = [np.asarray(like[k]).dtype for k in self.names]
        for k, dt in zip(self.names, self.dtypes):
            if dt.kind not in "fc":
                raise TypeError(f"array {k!r} has dtype {dt}; a flat buffer holds floating-point "
                                f"arrays only")
        self.dtype = np.result_type(*self.dtypes) if self.dtypes else np.dtype(np.float64)
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
        self.n_values = self.offsets[-1]                 # array values, without the extra slots
        self.extra = extra
        self.buffer = np.zeros(self.n_values + extra, dtype=self.dtype)     # (size,)

    @property
    def size(self) -> int:
        return self.buffer.size

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes

    def signature(self) -> str:
        """A short hash of the layout: equal on two processes iff their layouts are equal."""
        spec = [self.names, [list(s) for s in self.shapes], [str(d) for d in self.dtypes],
                self.extra]
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]

    def _check(self, arrays: Mapping[str, np.ndarray]) -> None:
        if len(arrays) != len(self.names) or any(k not in arrays for k in self.names):
            missing = sorted(set(self.names) - set(arrays))
            extra = sorted(set(arrays) - set(self.names))
            raise ValueError(f"the arrays do not match the buffer's layout (missing {missing}, "
                             f"unexpected {extra})")
        for k, s in zip(self.names, self.shapes):
            if np.shape(arrays[k]) != s:
                raise ValueError(f"array {k!r} has shape {np.shape(arrays[k])}; the buffer "
                                 f"expects {s}")

    def pack(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Copy ``arrays`` (the layout's names and shapes, in any order) into the buffer in the
        layout's order; returns it. The extra slots are left as they are."""
        self._check(arrays)
        buf, off = self.buffer, self.offsets
        for i, k in enumerate(self.names):
            buf[off[i]:off[i + 1]] = np.ravel(arrays[k])
        return buf

    def unpack(self, buf: np.ndarray | None = None,
               out: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The arrays of ``buf`` (default: this buffer): written into ``out``'s arrays in place
        when given (returned as that dict), else new arrays of the original dtypes."""
        buf = self.buffer if buf is None else buf
        if buf.shape != self.buffer.shape:
            raise ValueError(f"buffer of shape {buf.shape}; the layout needs {self.buffer.shape}")
        off = self.offsets
        if out is not None:
            self._check(out)
            for i, k in enumerate(self.names):
                out[k][...] = buf[off[i]:off[i + 1]].reshape(self.shapes[i])
            return dict(out)
        return {k: buf[off[i]:off[i + 1]].reshape(self.shapes[i]).astype(self.dtypes[i])
                for i, k in enumerate(self.names)}

    def views(self) -> dict[str, np.ndarray]:
        """Views into the buffer, one per array, with the buffer's dtype (write gradients
        straight into them to skip ``pack``)."""
        off = self.offsets
        return {k: self.buffer[off[i]:off[i + 1]].reshape(self.shapes[i])
                for i, k in enumerate(self.names)}

    @property
    def extras(self) -> np.ndarray:
        """The extra slots: a (extra,) view at the end of the buffer."""
        return self.buffer[self.n_values:]
