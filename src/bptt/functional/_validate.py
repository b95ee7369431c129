"""Input checks shared by the functional layers.

Every check raises ``ValueError`` with one line that names the function, the argument, what it
got and what it needs, so a caller sees the problem without reading a traceback.
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class NonFiniteError(ValueError):
    """An input holds NaN or inf (a ValueError, so callers that catch those still do)."""


def _fail(fn: str, name: str, got: str, need: str, error: type = ValueError) -> NoReturn:
    raise error(f"{fn}: {name} {got}; {need}")


def float_array(fn: str, name: str, a: object, shape: tuple, dtype: np.dtype | None = None,
                finite: bool = True) -> np.ndarray:
    """Check that ``a`` is a float32/float64 ndarray of the given shape pattern.

    ``shape`` holds one entry per axis: an int (that exact size), a str (a dimension letter,
    any size >= 1, used only in messages) or None (any size, zero allowed).
    """
    pattern = "(" + ", ".join(str(s) if s is not None else "*" for s in shape) + ")"
    if not isinstance(a, np.ndarray):
        _fail(fn, name, f"is a {type(a).__name__}", f"pass a NumPy array of shape {pattern}")
    if a.ndim != len(shape):
        _fail(fn, name, f"has shape {a.shape} ({a.ndim}-D)",
              f"it must be {len(shape)}-D with shape {pattern}")
    if a.dtype not in FLOAT_DTYPES:
        _fail(fn, name, f"has dtype {a.dtype}",
              "use float32 or float64 (e.g. a.astype(np.float64))")
    if dtype is not None and a.dtype != dtype:
        _fail(fn, name, f"has dtype {a.dtype} but x has {dtype}",
              f"cast every array to one dtype (e.g. {name}.astype(np.{dtype}))")
    for axis, (got, want) in enumerate(zip(a.shape, shape)):
        if isinstance(want, int) and got != want:
            _fail(fn, name, f"has shape {a.shape}",
                  f"axis {axis} must be {want} to match {pattern}")
        if isinstance(want, str) and got < 1:
            _fail(fn, name, f"has shape {a.shape}", f"axis {axis} ({want}) must be at least 1")
    if finite:
        check_finite(fn, name, a)
    return a


def check_finite(fn: str, name: str, a: np.ndarray) -> None:
    """Raise if ``a`` holds NaN or inf (one cheap reduction first, exact check only on doubt)."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(a, axis=None)
    if np.isfinite(total):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(fn, name, f"holds NaN or inf (first at index {where})",
              "find where it came from, or lower the learning rate / clip gradients",
              NonFiniteError)


def int_array(fn: str, name: str, a: object, shape: tuple) -> np.ndarray:
    """Check an integer array (labels, token ids) of the given shape pattern."""
    pattern = "(" + ", ".join(str(s) for s in shape) + ")"
    if not isinstance(a, np.ndarray):
        _fail(fn, name, f"is a {type(a).__name__}",
              f"pass an integer NumPy array of shape {pattern}")
    if a.ndim != len(shape):
        _fail(fn, name, f"has shape {a.shape} ({a.ndim}-D)", f"it must have shape {pattern}")
    if a.dtype.kind not in "iu":
        _fail(fn, name, f"has dtype {a.dtype}",
              "pass integer class indices (e.g. y.astype(np.int64))")
    for axis, (got, want) in enumerate(zip(a.shape, shape)):
        if isinstance(want, int) and got != want:
            _fail(fn, name, f"has shape {a.shape}",
                  f"axis {axis} must be {want} to match {pattern}")
    return a


def in_range(fn: str, name: str, a: np.ndarray, high: int, where: np.ndarray | None = None) -> None:
    """Check 0 <= a < high (only at positions where ``where`` is True, if given)."""
    vals = a if where is None else a[where]
    if vals.size == 0:
        return
    lo, hi = int(vals.min()), int(vals.max())
    if lo < 0 or hi >= high:
        bad = lo if lo < 0 else hi
        _fail(fn, name, f"holds the index {bad}", f"every value must be in [0, {high - 1}]")


def bool_mask(fn: str, name: str, mask: object, shape: tuple[int, int],
              need_valid_row: bool = True) -> np.ndarray:
    """Check a boolean (N, T) mask; optionally require each row to have a valid step."""
    if not isinstance(mask, np.ndarray):
        _fail(fn, name, f"is a {type(mask).__name__}",
              f"pass a boolean NumPy array of shape {shape}")
    if mask.dtype != np.bool_:
        _fail(fn, name, f"has dtype {mask.dtype}", "pass booleans (e.g. mask.astype(bool))")
    if mask.shape != tuple(shape):
        _fail(fn, name, f"has shape {mask.shape}", f"it must have shape (N, T) = {tuple(shape)}")
    if need_valid_row:
        empty = ~mask.any(axis=1)
        if empty.any():
            _fail(fn, name, f"row {int(np.argmax(empty))} has no valid step",
                  "drop empty sequences from the batch or mark at least one step True")
    return mask


def cache_of(fn: str, cache: object, cls: type, producer: str) -> None:
    """Check that a backward got the cache its own forward returned."""
    if not isinstance(cache, cls):
        _fail(fn, "cache", f"is a {type(cache).__name__}",
              f"pass the cache that {producer} returned")
