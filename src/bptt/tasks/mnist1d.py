"""MNIST-1D (Greydanus 2020; ``pip install mnist1d``), generated offline.

The package's default arguments (seed 42, 5000 samples, 80/20 split) give 4000 training and
1000 test sequences of length 40 with one channel, 10 classes. ``make_dataset`` seeds and uses
NumPy's global random state; it is saved and restored around the call so that generating the
data does not change anyone else's random numbers.
"""

from __future__ import annotations

import functools
import random

import numpy as np

from bptt.tasks.data import SeqData


def available() -> bool:
    try:
        import mnist1d  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=2)
def load(dtype=np.float32) -> tuple[SeqData, SeqData]:
    """(train, test): x (N, 40, 1), y (N,). Cached: treat the arrays as read-only."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise ImportError("the mnist1d task needs the mnist1d package: pip install mnist1d "
                          "(or pip install 'bptt[tasks]')") from e
    # make_dataset takes no Generator; it draws from the global ones (see the module docstring).
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    out = []
    for x, y in ((d["x"], d["y"]), (d["x_test"], d["y_test"])):
        x = np.ascontiguousarray(x[:, :, None], dtype=dtype)       # (N, 40, 1)
        out.append(SeqData(x, y.astype(np.int64), np.full(len(y), x.shape[1])))
    return out[0], out[1]
