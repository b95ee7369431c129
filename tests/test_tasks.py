"""Task generators: the statistics each paper specifies (positions, lengths, targets, grammar)."""

import numpy as np
import pytest

from bptt.tasks import adding, copy_memory, digits, mnist1d, reber, temporal_order
from bptt.tasks.data import SeqData, mask_from_lengths, pad_sequences


def test_adding_arjovsky_markers_and_targets():
    rng = np.random.default_rng(0)
    T = 100
    d = adding.adding_arjovsky(4000, T, rng)
    x, y = d.x, d.y[:, 0]
    assert x.shape == (4000, T, 2) and np.all(d.lengths == T)
    assert np.all((x[..., 0] >= 0) & (x[..., 0] <= 1))
    marks = x[..., 1]
    assert set(np.unique(marks)) == {0.0, 1.0}
    assert np.all(marks[:, : T // 2].sum(axis=1) == 1) and np.all(marks[:, T // 2:].sum(1) == 1)
    np.testing.assert_allclose(y, (x[..., 0] * marks).sum(axis=1), rtol=1e-6)
    first = marks[:, : T // 2].argmax(axis=1)
    assert first.min() == 0 and first.max() == T // 2 - 1          # the whole first half
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.01              # baseline "predict 1"


def test_adding_1997_lengths_markers_targets():
    rng = np.random.default_rng(1)
    T = 100
    d = adding.adding_1997(4000, T, rng)
    x, y, L = d.x, d.y[:, 0], d.lengths
    assert L.min() == T and L.max() == T + T // 10 and x.shape[1] == T + T // 10
    valid = mask_from_lengths(L, x.shape[1])
    assert np.all(x[~valid] == 0.0)
    assert np.all(np.abs(x[..., 0]) <= 1.0)
    marks = x[..., 1]
    plus = marks == 1.0
    assert np.all(plus.sum(axis=1) == 2)
    pos = np.sort(np.argwhere(plus)[:, 1].reshape(-1, 2), axis=1)
    assert np.all(pos[:, 1] <= T // 2 - 1)                          # within the first T/2 - 1
    p1_in_first_ten = plus[:, :10].any(axis=1)
    assert p1_in_first_ten.all()
    rows = np.arange(len(L))
    end = marks[rows, L - 1]
    assert np.all(end == -1.0)                                      # last pair (never marked)
    assert np.all((marks[:, 0] == -1.0) | plus[:, 0])
    assert np.all(x[plus[:, 0], 0, 0] == 0.0)                       # value 0 if first marked
    np.testing.assert_allclose(y, 0.5 + (x[..., 0] * plus).sum(axis=1) / 4, rtol=1e-6)
    assert np.all((y >= 0) & (y <= 1))
    assert abs(np.mean((y - 0.5) ** 2) - 1 / 24) < 0.004            # baseline MSE 1/24
    assert abs(np.mean(np.abs(y - 0.5) < 0.04) - 0.154) < 0.02      # 15.4 % "correct"


def test_reber_strings_are_grammatical_and_sets_disjoint():
    strings = reber.distinct_strings(512, np.random.default_rng(2))
    assert len(set(strings)) == 512
    assert set(strings[:256]).isdisjoint(strings[256:])
    for s in strings:
        legal = reber.legal_next(s)                                 # raises if not grammatical
        assert len(legal) == len(s) - 1
        assert s[1] == s[-2] and legal[-2] == s[1]                  # the long-range symbol
        for t, allowed in enumerate(legal):
            assert s[t + 1] in allowed
    sides = [s[1] for s in strings]
    assert 200 < sides.count("T") < 312                             # both embeddings occur


def test_reber_rejects_invalid_strings():
    for bad in ["BTBTXSETE", "BTBTXSEPE", "BTBTXXEPE", "BTBPE"]:
        if bad == "BTBTXSETE":
            assert reber.legal_next(bad)[-1] == "E"                 # this one is valid
            continue
        with pytest.raises(ValueError, match="not an embedded Reber string"):
            reber.legal_next(bad)


def test_reber_success_criterion():
    strings = reber.distinct_strings(20, np.random.default_rng(3))
    data = reber.encode(strings)
    legal = reber.legal_mask(strings, data.x.shape[1])
    oracle = legal.astype(float)                                    # legal symbols score 1
    assert reber.strings_correct(oracle, legal, data.lengths).all()
    wrong = oracle.copy()
    n, t = 0, data.lengths[0] - 2                                   # predicting the final T|P
    wrong[n, t] = 1.0 - wrong[n, t]
    ok = reber.strings_correct(wrong, legal, data.lengths)
    assert not ok[0] and ok[1:].all()
    np.testing.assert_array_equal(data.x[0, 1:data.lengths[0]], data.y[0, :data.lengths[0] - 1])


def test_temporal_order_positions_and_classes():
    d = temporal_order.temporal_order(4000, np.random.default_rng(4))
    x, y, L = d.x, d.y, d.lengths
    S = temporal_order.SYMBOLS
    assert L.min() == 100 and L.max() == 110
    rows = np.arange(len(L))
    assert np.all(x[:, 0] == S.index("E")) and np.all(x[rows, L - 1] == S.index("B"))
    xy = (x == S.index("X")) | (x == S.index("Y"))
    assert np.all(xy.sum(axis=1) == 2)
    pos = np.argwhere(xy)[:, 1].reshape(-1, 2)
    assert pos[:, 0].min() == 10 and pos[:, 0].max() == 20
    assert pos[:, 1].min() == 50 and pos[:, 1].max() == 60
    valid = mask_from_lengths(L, x.shape[1])
    inner = valid & ~xy
    inner[:, 0] = False
    inner[rows, L - 1] = False
    assert np.all(x[inner] < 4)                                     # noise from {a, b, c, d}
    first = x[rows, pos[:, 0]] - S.index("X")
    second = x[rows, pos[:, 1]] - S.index("X")
    np.testing.assert_array_equal(y, 2 * first + second)
    assert np.all(np.abs(np.bincount(y) / len(y) - 0.25) < 0.03)


def test_copy_memory_layout_and_baseline():
    T = 30
    d = copy_memory.copy_memory(500, T, np.random.default_rng(5))
    x, y = d.x, d.y
    assert x.shape == (500, T + 20) and d.per_step
    assert np.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert np.all(x[:, 10:T + 9] == 0) and np.all(x[:, T + 9] == copy_memory.DELIM)
    assert np.all(x[:, T + 10:] == 0)
    assert np.all(y[:, : T + 10] == 0)
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    # the memoryless strategy (blank, then uniform over 1-8) scores exactly the baseline
    p = np.zeros((T + 20, copy_memory.OUT))
    p[: T + 10, 0] = 1.0
    p[T + 10:, 1:] = 1 / 8
    ce = -np.mean(np.log(p[np.arange(T + 20), y[0]]))
    assert ce == pytest.approx(copy_memory.baseline_loss(T))


def test_pad_sequences_and_batch_cut_to_longest():
    xs = [np.ones((3, 2)), np.ones((5, 2)), np.ones((1, 2))]
    x, L = pad_sequences(xs)
    assert x.shape == (3, 5, 2) and list(L) == [3, 5, 1] and x[2, 1:].sum() == 0
    d = SeqData(x, np.arange(3), L)
    xb, _yb, mask = d.batch(np.array([0, 2]))
    assert xb.shape == (2, 3, 2) and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert d.batch(np.array([1]))[2] is None                        # nothing padded: no mask


sklearn = pytest.importorskip("sklearn", reason="digits tasks need scikit-learn")


def test_digits_split_and_views():
    train, test = digits.load("rows")
    assert len(train) == 898 and len(test) == 899                   # scikit-learn example split
    assert train.x.shape == (898, 8, 8) and test.x.max() <= 1.0
    px, _ = digits.load("pixels")
    np.testing.assert_array_equal(px.x[:, :, 0], train.x.reshape(898, 64))
    pm, _ = digits.load("permuted")
    pm2, _ = digits.load("permuted")
    np.testing.assert_array_equal(pm.x, pm2.x)                      # a fixed permutation
    np.testing.assert_array_equal(np.sort(pm.x[:, :, 0], 1), np.sort(px.x[:, :, 0], 1))
    assert not np.array_equal(pm.x, px.x)


def test_digit_shifts_are_one_pixel_translations():
    imgs, _, _ = digits.load_images()
    rng = np.random.default_rng(6)
    out = digits.shift_images(imgs[:50], rng, 1)
    for a, b in zip(imgs[:50], out):
        pad = np.pad(a, 1)
        assert any(np.array_equal(b, pad[1 + dy:9 + dy, 1 + dx:9 + dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    np.testing.assert_array_equal(digits.shift_images(imgs[:5], rng, 0), imgs[:5])


@pytest.mark.skipif(not mnist1d.available(), reason="mnist1d is not installed "
                                                    "(pip install mnist1d)")
def test_mnist1d_shapes_and_global_random_state_untouched():
    mnist1d.load.cache_clear()                  # a cached load would not touch the state at all
    # The subject of this test is the legacy global generator, so it reads that generator.
    before = np.random.get_state(legacy=False)  # noqa: NPY002
    train, test = mnist1d.load()
    after = np.random.get_state(legacy=False)  # noqa: NPY002
    assert after["state"]["pos"] == before["state"]["pos"]
    np.testing.assert_array_equal(after["state"]["key"], before["state"]["key"])
    assert train.x.shape == (4000, 40, 1) and test.x.shape == (1000, 40, 1)
    assert set(np.unique(train.y)) == set(range(10))
