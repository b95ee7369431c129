"""scikit-learn's 8x8 handwritten digits (``load_digits``, shipped with scikit-learn, offline).

1797 images of 8x8 pixels in 0..16 (scaled here to [0, 1]), 10 classes, read three ways:

    rows       8 steps of 8 pixels (one image row per step)
    pixels     64 steps of one pixel (row-major)
    permuted   64 steps of one pixel in a fixed random order (the same for every run)

Split as in scikit-learn's "Recognizing hand-written digits" example
(``train_test_split(..., test_size=0.5, shuffle=False)``): the first 898 images train, the last
899 test. That example's SVC (gamma = 0.001) scores 0.97 on this split.

Training batches may be augmented by shifting each image by up to one pixel in each direction
(zero fill), the classic cheap augmentation for digits; the test images are never changed.
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData

VIEWS = ("rows", "pixels", "permuted")
PERMUTATION_SEED = 1234


def load_images(dtype=np.float32) -> tuple[np.ndarray, np.ndarray, int]:
    """(images (1797, 8, 8) in [0, 1], labels (1797,), number of training images 898)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:                       # pragma: no cover - depends on the install
        raise ImportError("the digits tasks need scikit-learn: pip install 'bptt[tasks]'") from e
    d = load_digits()
    n = len(d.target)
    n_test = n - n // 2                            # test_size=0.5 rounds the test set up
    return (d.images / 16.0).astype(dtype), d.target.astype(np.int64), n - n_test


def as_sequences(images: np.ndarray, view: str) -> np.ndarray:
    """(N, 8, 8) images -> (N, 8, 8) rows or (N, 64, 1) pixels (permuted for "permuted")."""
    if view not in VIEWS:
        raise ValueError(f"unknown digits view {view!r}; use one of {list(VIEWS)}")
    if view == "rows":
        return np.ascontiguousarray(images)
    x = images.reshape(len(images), 64, 1)
    if view == "permuted":
        x = x[:, np.random.default_rng(PERMUTATION_SEED).permutation(64)]
    return np.ascontiguousarray(x)


def shift_images(images: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Shift each (8, 8) image by dy, dx uniform in [-max_shift, max_shift], zero fill."""
    N, h, w = images.shape
    s = max_shift
    padded = np.zeros((N, h + 2 * s, w + 2 * s), dtype=images.dtype)
    padded[:, s:s + h, s:s + w] = images
    oy = rng.integers(0, 2 * s + 1, size=(N,))                   # (N,) crop offsets
    ox = rng.integers(0, 2 * s + 1, size=(N,))
    rows = oy[:, None] + np.arange(h)[None, :]                   # (N, h)
    cols = ox[:, None] + np.arange(w)[None, :]                   # (N, w)
    return padded[np.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]


def load(view: str, dtype=np.float32) -> tuple[SeqData, SeqData]:
    """(train, test) for one view; x (N, T, D) floats, y (N,) labels."""
    images, y, n_train = load_images(dtype)
    x = as_sequences(images, view)
    T = x.shape[1]
    n_test = len(y) - n_train
    return (SeqData(x[:n_train], y[:n_train], np.full(n_train, T)),
            SeqData(x[n_train:], y[n_train:], np.full(n_test, T)))


def augmented_batches(view: str, max_shift: int = 1, dtype=np.float32):
    """A batch source over the training images with random shifts:
    batch_size -> next_batch(rng) -> (x, y, None), drawing a random permutation per epoch."""
    images, y, n_train = load_images(dtype)
    images, y = images[:n_train], y[:n_train]

    def batches(batch_size: int):
        queue: list[np.ndarray] = []

        def next_batch(rng):
            if not queue:
                perm = rng.permutation(n_train)
                queue.extend(perm[i:i + batch_size] for i in range(0, n_train, batch_size))
                queue.reverse()
            idx = queue.pop()
            imgs = shift_images(images[idx], rng, max_shift) if max_shift else images[idx]
            return as_sequences(imgs, view), y[idx], None
        return next_batch
    return batches
