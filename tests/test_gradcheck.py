"""bptt.gradcheck: rel_error, numerical gradients, and check_function catching a bad backward."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.functional import rnn_backward, rnn_forward
from bptt.gradcheck import (
    check_function,
    check_loss,
    numerical_gradient,
    numerical_gradient_scalar,
    rel_error,
)
from helpers import check, randn


def test_rel_error_properties():
    rng = np.random.default_rng(900)
    a, b = randn(rng, 4, 3), randn(rng, 4, 3)
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0
    assert rel_error(a, b) == rel_error(b, a)
    assert 0.0 < rel_error(a, b) <= 1.0
    assert rel_error(a, -a) == 1.0
    assert rel_error(a, np.zeros_like(a)) == 1.0
    assert rel_error(1e-20 * a, 1e-20 * b) == pytest.approx(rel_error(a, b), rel=1e-12)
    expected = np.abs(a - b).max() / (np.abs(a).max() + np.abs(b).max())
    assert rel_error(a, b) == pytest.approx(expected, rel=1e-15)
    assert rel_error(a.astype(np.float32), a) < 1e-7                 # float32 rounding only
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(a, b[:2])


def test_numerical_gradient_of_a_linear_map_equals_analytic_and_restores_input():
    rng = np.random.default_rng(910)
    A, x, dy = randn(rng, 3, 4), randn(rng, 4, 2), randn(rng, 3, 2)
    x_before = x.copy()
    dx = numerical_gradient(lambda: A @ x, x, dy)                     # d sum(A x * dy) / dx
    check("numerical_gradient known function", rel_error(dx, A.T @ dy), 1e-9)
    dA = numerical_gradient(lambda: A @ x, A, dy)
    check("numerical_gradient known function", rel_error(dA, dy @ x.T), 1e-9, "dA")
    np.testing.assert_array_equal(x, x_before)
    ds = numerical_gradient_scalar(lambda: float(np.sum(x ** 3)), x)
    check("numerical_gradient known function", rel_error(ds, 3 * x ** 2), 1e-9, "scalar")


def test_numerical_gradient_skips_none_upstream_and_rejects_non_contiguous_input():
    rng = np.random.default_rng(920)
    x, dy = randn(rng, 3), randn(rng, 3)
    g = numerical_gradient(lambda: (2 * x, x ** 2), x, [dy, None])
    check("numerical_gradient known function", rel_error(g, 2 * dy), 1e-9, "None skipped")
    xt = randn(rng, 3, 4).T
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: xt * 2.0, xt, randn(rng, 4, 3))


def _rnn_args(rng):
    return {"x": randn(rng, 2, 3, 3), "h0": randn(rng, 2, 4, scale=0.5),
            "Wx": randn(rng, 3, 4, scale=0.6), "Wh": randn(rng, 4, 4, scale=0.6),
            "b": randn(rng, 4, scale=0.5)}


def test_check_function_passes_a_correct_backward():
    rng = np.random.default_rng(930)
    res = check_function("rnn", rnn_forward, rnn_backward, _rnn_args(rng),
                         ["x", "h0", "Wx", "Wh", "b"], randn(rng, 2, 3, 4))
    assert [r.name for r in res] == ["x", "h0", "Wx", "Wh", "b"]
    assert all(r.ok and r.layer == "rnn" and r.threshold == 1e-7 for r in res)


def test_check_function_flags_a_wrong_backward():
    rng = np.random.default_rng(940)

    def backward_missing_recurrence(dh, cache):
        # A classic BPTT bug: the gradient from step t+1 never reaches step t (wrong for T > 1).
        grads = [rnn_backward(dh * (np.arange(3) == t)[None, :, None], cache) for t in range(3)]
        dx = sum(g[0] * (np.arange(3) == t)[None, :, None] for t, g in enumerate(grads))
        return (dx, *rnn_backward(dh, cache)[1:])

    def backward_wrong_bias(dh, cache):
        dx, dh0, dWx, dWh, db = rnn_backward(dh, cache)
        return dx, dh0, dWx, dWh, 2.0 * db

    args = _rnn_args(rng)
    dh = randn(rng, 2, 3, 4)
    res = {r.name: r for r in check_function("rnn", rnn_forward, backward_missing_recurrence,
                                             args, ["x", None, None, None, None], dh)}
    assert list(res) == ["x"] and not res["x"].ok and res["x"].error > 1e-3
    res = {r.name: r for r in check_function("rnn", rnn_forward, backward_wrong_bias, args,
                                             ["x", "h0", "Wx", "Wh", "b"], dh)}
    assert all(res[k].ok for k in ("x", "h0", "Wx", "Wh"))
    assert not res["b"].ok and res["b"].error > 0.1


def test_check_loss_flags_a_wrong_gradient():
    rng = np.random.default_rng(950)
    w = randn(rng, 5)

    def loss_fn(scale):
        return lambda: (float(np.sum(np.sin(w))), {"w": scale * np.cos(w)})

    (good,) = check_loss("sin", loss_fn(1.0), {"w": w})
    (bad,) = check_loss("sin", loss_fn(1.01), {"w": w})
    assert good.ok and good.error < 1e-9
    assert not bad.ok and bad.error > 1e-3
