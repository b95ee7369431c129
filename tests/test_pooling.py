"""Pooling over time and the squared-error loss: values, masks and gradient checks."""

import numpy as np
import pytest

from bptt import functional as F
from bptt.gradcheck import check_function, check_loss

MASK = np.array([[1, 1, 1, 0, 0],      # padded tail
                 [1, 1, 1, 1, 1],      # full
                 [0, 1, 1, 0, 1]],     # holes at both ends and inside
                dtype=bool)


def test_valid_indices():
    np.testing.assert_array_equal(F.last_valid_index(MASK), [2, 4, 4])
    np.testing.assert_array_equal(F.first_valid_index(MASK), [0, 0, 1])


def test_last_first_max_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4))
    last, _ = F.temporal_last_forward(x, MASK)
    first, _ = F.temporal_first_forward(x, MASK)
    mx, _ = F.temporal_max_forward(x, MASK)
    for n in range(3):
        valid = x[n, MASK[n]]                                  # (valid steps, 4)
        np.testing.assert_array_equal(last[n], valid[-1])
        np.testing.assert_array_equal(first[n], valid[0])
        np.testing.assert_array_equal(mx[n], valid.max(axis=0))


def test_max_ignores_large_padded_values():
    x = np.zeros((1, 3, 1))
    x[0, 2, 0] = 100.0                                         # padded, must not win
    out, _ = F.temporal_max_forward(x, np.array([[True, True, False]]))
    assert out[0, 0] == 0.0


@pytest.mark.parametrize("mask", [None, MASK], ids=["no mask", "mask"])
@pytest.mark.parametrize("name", ["last", "first", "max"])
def test_pooling_gradients_match_numerical(name, mask):
    rng = np.random.default_rng(1)
    fwd = getattr(F, f"temporal_{name}_forward")
    bwd = getattr(F, f"temporal_{name}_backward")
    results = check_function(name, fwd, bwd, {"x": rng.standard_normal((3, 5, 4)),
                                              "mask": mask}, ["x"],
                             rng.standard_normal((3, 4)))
    assert results[0].error < 1e-9, results


def test_max_backward_routes_to_argmax_only():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 4))
    out, cache = F.temporal_max_forward(x, MASK)
    dx = F.temporal_max_backward(np.ones((3, 4)), cache)
    assert dx.sum() == 12.0 and np.all(dx[~MASK] == 0.0)
    np.testing.assert_array_equal((dx * x).sum(axis=1), out)


def test_pick_rejects_out_of_range_index():
    with pytest.raises(ValueError, match="idx"):
        F.temporal_pick_forward(np.zeros((2, 3, 1)), np.array([0, 3]))


def test_pooling_rejects_empty_row():
    with pytest.raises(ValueError, match="no valid step"):
        F.temporal_max_forward(np.zeros((2, 3, 1)), np.array([[1, 0, 0], [0, 0, 0]], bool))


def test_mse_loss_value_and_gradient():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    loss, _dx = F.mse_loss(x, y)
    assert loss == pytest.approx(np.sum((x - y) ** 2) / 6)
    res = check_loss("mse", lambda: (F.mse_loss(x, y)[0], {"x": F.mse_loss(x, y)[1]}), {"x": x})
    assert res[0].error < 1e-9


def test_mse_loss_rejects_mismatched_target():
    with pytest.raises(ValueError, match="y"):
        F.mse_loss(np.zeros((3, 1)), np.zeros((3,)))
