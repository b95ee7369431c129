"""bptt.functional.temporal: temporal affine, masked mean over time, embedding."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.functional import (
    embedding_backward,
    embedding_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_mean_backward,
    temporal_mean_forward,
)
from bptt.gradcheck import check_function, numerical_gradient, rel_error
from helpers import check, randn

GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12


def test_temporal_affine_forward_equals_per_step_affine():
    rng = np.random.default_rng(600)
    x, w, b = randn(rng, 3, 4, 5), randn(rng, 5, 2), randn(rng, 2)
    out, _ = temporal_affine_forward(x, w, b)
    ref = np.stack([x[:, t] @ w + b for t in range(4)], axis=1)
    check("temporal affine forward", rel_error(out, ref), EXACT_TOL)


@pytest.mark.parametrize(("N", "T", "D", "M"), [(3, 4, 5, 2), (1, 1, 1, 1)])
def test_temporal_affine_backward_matches_numerical_gradient(N, T, D, M):
    rng = np.random.default_rng(610 + N)
    args = {"x": randn(rng, N, T, D), "w": randn(rng, D, M), "b": randn(rng, M)}
    for r in check_function("temporal_affine", temporal_affine_forward, temporal_affine_backward,
                            args, ["x", "w", "b"], randn(rng, N, T, M)):
        check("gradcheck temporal affine", r.error, GRADCHECK_TOL, r.name)


def test_temporal_mean_divides_by_each_rows_count_of_valid_steps():
    rng = np.random.default_rng(620)
    x = randn(rng, 3, 5, 4)
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=bool)
    out, _ = temporal_mean_forward(x, mask)
    ref = np.stack([x[n, mask[n]].sum(axis=0) / mask[n].sum() for n in range(3)])
    check("temporal mean forward", rel_error(out, ref), EXACT_TOL)
    out_all, _ = temporal_mean_forward(x)
    check("temporal mean forward", rel_error(out_all, x.mean(axis=1)), EXACT_TOL, "no mask")
    x2 = x.copy()
    x2[~mask] = 1e6                                  # padded steps do not enter the mean
    check("temporal mean forward", rel_error(temporal_mean_forward(x2, mask)[0], out),
          EXACT_TOL, "padded values ignored")


@pytest.mark.parametrize("masked", [False, True])
def test_temporal_mean_backward_matches_numerical_gradient(masked):
    rng = np.random.default_rng(630 + masked)
    mask = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=bool) if masked else None
    args = {"x": randn(rng, 3, 4, 5), "mask": mask}
    dout = randn(rng, 3, 5)
    (r,) = check_function("temporal_mean", temporal_mean_forward, temporal_mean_backward, args,
                          ["x"], dout)
    check("gradcheck temporal mean", r.error, GRADCHECK_TOL)
    if masked:
        dx = temporal_mean_backward(dout, temporal_mean_forward(**args)[1])
        assert np.all(dx[~mask] == 0.0)
        check("temporal mean backward", rel_error(dx[1, 2], dout[1]), EXACT_TOL,
              "a row with one valid step passes dout whole")


def test_temporal_mean_keeps_float32():
    rng = np.random.default_rng(640)
    x = randn(rng, 2, 3, 4, dtype=np.float32)
    out, cache = temporal_mean_forward(x, np.array([[1, 1, 0], [0, 1, 1]], dtype=bool))
    assert out.dtype == np.float32
    assert temporal_mean_backward(randn(rng, 2, 4, dtype=np.float32), cache).dtype == np.float32


def test_embedding_forward_looks_up_rows():
    rng = np.random.default_rng(650)
    W = randn(rng, 6, 3)
    x = np.array([[0, 5, 2], [2, 2, 1]])
    out, _ = embedding_forward(x, W)
    assert out.shape == (2, 3, 3)
    for n in range(2):
        for t in range(3):
            np.testing.assert_array_equal(out[n, t], W[x[n, t]])


def test_embedding_backward_matches_numerical_gradient_with_repeated_indices():
    rng = np.random.default_rng(660)
    W = randn(rng, 5, 4)
    x = np.array([[1, 3, 1, 1], [0, 3, 4, 1]])                      # 1 and 3 repeat; 2 unused
    dout = randn(rng, 2, 4, 4)
    dW = embedding_backward(dout, embedding_forward(x, W)[1])
    num = numerical_gradient(lambda: embedding_forward(x, W)[0], W, dout)
    check("gradcheck embedding", rel_error(dW, num), GRADCHECK_TOL)
    check("embedding repeated indices accumulate",
          rel_error(dW[1], dout[0, 0] + dout[0, 2] + dout[0, 3] + dout[1, 3]), EXACT_TOL)
    assert np.all(dW[2] == 0.0)


def test_embedding_keeps_float32():
    rng = np.random.default_rng(670)
    W = randn(rng, 4, 3, dtype=np.float32)
    x = np.array([[0, 3]], dtype=np.int32)
    out, cache = embedding_forward(x, W)
    assert out.dtype == np.float32
    assert embedding_backward(randn(rng, 1, 2, 3, dtype=np.float32), cache).dtype == np.float32
