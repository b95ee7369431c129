"""bptt.functional.losses: softmax cross-entropy and its masked temporal form."""

from __future__ import annotations

import numpy as np

from bptt.functional import softmax_loss, temporal_softmax_loss
from bptt.gradcheck import numerical_gradient_scalar, rel_error
from helpers import check, randn

GRADCHECK_TOL = 1e-7
EXACT_TOL = 1e-12


def direct_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-log softmax(x)[y] per row, written out (for moderate x only). x (M, C), y (M,)."""
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(y)), y])


def test_softmax_loss_equals_direct_mean_cross_entropy():
    rng = np.random.default_rng(700)
    x, y = randn(rng, 6, 5), rng.integers(0, 5, 6)
    loss, _ = softmax_loss(x, y)
    check("softmax_loss value", abs(loss - direct_cross_entropy(x, y).mean()) / abs(loss),
          EXACT_TOL)


def test_softmax_loss_gradient_matches_numerical_gradient():
    rng = np.random.default_rng(710)
    x, y = randn(rng, 4, 5), rng.integers(0, 5, 4)
    _, dx = softmax_loss(x, y)
    num = numerical_gradient_scalar(lambda: softmax_loss(x, y)[0], x)
    check("gradcheck softmax_loss", rel_error(dx, num), GRADCHECK_TOL)


def test_softmax_loss_is_stable_for_huge_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0]])
    loss, dx = softmax_loss(x, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    check("softmax_loss value", abs(loss - (0.0 + 1.0 + np.log1p(np.exp(-1.0))) / 2), EXACT_TOL,
          "huge scores")


def test_temporal_softmax_loss_sums_valid_steps_and_divides_by_n():
    rng = np.random.default_rng(720)
    N, T, V = 3, 4, 5
    x, y = randn(rng, N, T, V), rng.integers(0, V, (N, T))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=bool)
    loss, _ = temporal_softmax_loss(x, y, mask)
    per_step = direct_cross_entropy(x.reshape(-1, V), y.reshape(-1)).reshape(N, T)
    ref = (per_step * mask).sum() / N                # divided by N, not by the count of steps
    check("temporal_softmax_loss value", abs(loss - ref) / abs(ref), EXACT_TOL)
    loss_all, _ = temporal_softmax_loss(x, y)
    ref_all = T * softmax_loss(x.reshape(-1, V), y.reshape(-1))[0]
    check("temporal_softmax_loss value", abs(loss_all - ref_all) / abs(ref_all), EXACT_TOL,
          "no mask")


def test_temporal_softmax_loss_gradient_matches_numerical_gradient():
    rng = np.random.default_rng(730)
    x, y = randn(rng, 3, 4, 5), rng.integers(0, 5, (3, 4))
    for mask in (None, np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=bool)):
        _, dx = temporal_softmax_loss(x, y, mask)
        num = numerical_gradient_scalar(lambda m=mask: temporal_softmax_loss(x, y, m)[0], x)
        check("gradcheck temporal_softmax_loss", rel_error(dx, num), GRADCHECK_TOL)


def test_temporal_softmax_loss_masked_steps_contribute_nothing():
    rng = np.random.default_rng(740)
    x, y = randn(rng, 2, 5, 4), rng.integers(0, 4, (2, 5))
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)   # row 1 fully padded
    loss, dx = temporal_softmax_loss(x, y, mask)
    assert np.all(dx[~mask] == 0.0)
    x2, y2 = x.copy(), y.copy()
    x2[~mask] = randn(rng, int((~mask).sum()), 4) * 100
    y2[~mask] = -7                                   # padded targets may hold anything
    loss2, dx2 = temporal_softmax_loss(x2, y2, mask)
    assert loss2 == loss
    np.testing.assert_array_equal(dx2, dx)
    ref = direct_cross_entropy(x[mask], y[mask]).sum() / 2
    check("temporal_softmax_loss value", abs(loss - ref) / abs(ref), EXACT_TOL, "masked")
