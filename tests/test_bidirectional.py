"""Bidirectional stacks: the reverse direction starts at each row's own last valid step."""

import numpy as np
import pytest

from bptt import functional as F
from bptt.gradcheck import check_loss
from bptt.nn import BidirectionalStack, reverse_valid_index


def test_reverse_index_reverses_valid_steps_only():
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]], dtype=bool)
    perm = reverse_valid_index(mask)
    np.testing.assert_array_equal(perm, [[3, 2, 1, 0, 4, 5], [5, 1, 3, 2, 4, 0],
                                         [5, 4, 3, 2, 1, 0]])
    rows = np.arange(3)[:, None]
    np.testing.assert_array_equal(perm[rows, perm], np.tile(np.arange(6), (3, 1)))  # involution
    assert np.all(mask[rows, perm] == mask)                  # the mask is unchanged


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_reverse_direction_equals_running_reversed_sequence(cell):
    rng = np.random.default_rng(0)
    stack = BidirectionalStack(3, 4, cell, rng=rng)
    x = rng.standard_normal((2, 6, 3))
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    h, _ = stack.forward(x, mask)
    p = stack.params
    fwd = F.lstm_forward if cell == "lstm" else F.rnn_forward
    for n, L in enumerate(mask.sum(axis=1)):
        xs = x[n:n + 1, :L]
        hf, _ = fwd(xs, np.zeros((1, 4)), p["l0.Wx"], p["l0.Wh"], p["l0.b"])
        hr, _ = fwd(xs[:, ::-1].copy(), np.zeros((1, 4)), p["l0.Wx_rev"], p["l0.Wh_rev"],
                    p["l0.b_rev"])
        np.testing.assert_allclose(h[n, :L, :4], hf[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(h[n, :L, 4:], hr[0, ::-1], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_gradients_match_numerical(cell, masked):
    rng = np.random.default_rng(1)
    stack = BidirectionalStack(3, 3, cell, num_layers=2, dropout=0.3, rng=rng)
    for v in stack.params.values():
        v += 0.3 * rng.standard_normal(v.shape)              # non-zero biases
    x = rng.standard_normal((3, 5, 3))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool) if masked \
        else None
    dh = rng.standard_normal((3, 5, 6))
    if masked:
        dh *= mask[:, :, None]                               # outputs on padding are unused

    def loss_fn():
        h, cache = stack.forward(x, mask, train=True, rng=np.random.default_rng(5))
        _, grads = stack.backward(dh, cache)
        return float(np.sum(h * dh)), grads

    results = check_loss("bi", loss_fn, stack.params)
    assert max(r.error for r in results) < 1e-7, results


def test_bidirectional_dx_matches_numerical():
    rng = np.random.default_rng(2)
    stack = BidirectionalStack(2, 3, "lstm", rng=rng)
    x = rng.standard_normal((2, 4, 2))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    dh = rng.standard_normal((2, 4, 6)) * mask[:, :, None]
    _, cache = stack.forward(x, mask)
    dx, _ = stack.backward(dh, cache)
    from bptt.gradcheck import numerical_gradient, rel_error
    num = numerical_gradient(lambda: stack.forward(x, mask)[0], x, dh)
    assert rel_error(dx, num) < 1e-8
