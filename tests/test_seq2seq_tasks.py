"""The addition and spelling tasks: their data, their metrics, and a smoke run of each through
``bptt task`` (--quick). The measured results are in docs/models.md."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.tasks import addition, spelling
from bptt.tasks.runner import run_task


def test_addition_data_is_keras_like():
    rng = np.random.default_rng(0)
    pairs = addition.problems(3000, 3, rng)
    keys = {(min(a, b), max(a, b)) for a, b in pairs}
    assert len(keys) == 3000                                   # distinct up to order
    assert max(max(p) for p in pairs) <= 999
    lens = np.array([len(str(a)) for a, _ in pairs])
    assert {1, 2, 3} <= set(lens.tolist())
    data = addition.encode(pairs[:5], 3)
    for i, (a, b) in enumerate(pairs[:5]):
        src = "".join(addition.SRC[j] for j in data.x[i, :data.lengths[i]])
        assert src == f"{a}+{b}"[::-1]                         # reversed, unpadded
        y = data.y[i].tolist()
        end = y.index(addition.END)
        assert addition.decode(y[:end]) == str(a + b)
        assert all(v == addition.PAD for v in y[end + 1:])
    held = set(keys)
    fresh = addition.problems(200, 3, rng, exclude=held)
    assert not {(min(a, b), max(a, b)) for a, b in fresh} & held


class _Oracle:
    """Answers with a fixed list of predictions (target ids), to test the metric."""

    def __init__(self, preds):
        self.preds = preds

    def greedy(self, x, mask, max_len):
        out, self.preds = self.preds[:len(x)], self.preds[len(x):]
        return [np.array([3 + int(c) for c in p]) for p in out]


def test_addition_metrics():
    pairs = [(535, 61), (1, 2), (999, 999)]
    data = addition.encode(pairs, 3)
    r = addition.evaluate(_Oracle(["596", "3", "1998"]), data, pairs, 3)
    assert r["char_accuracy"] == 1.0 and r["exact_match"] == 1.0
    r = addition.evaluate(_Oracle(["597", "3", "199"]), data, pairs, 3)
    # "597 " vs "596 ": 3 of 4; "3   ": 4 of 4; "199 " vs "1998": 3 of 4
    assert r["char_accuracy"] == pytest.approx(10 / 12) and r["exact_match"] == pytest.approx(1 / 3)


def test_spelling():
    assert spelling.spell(0) == "zero"
    assert spelling.spell(13) == "thirteen"
    assert spelling.spell(40) == "forty"
    assert spelling.spell(342) == "three hundred forty-two"
    assert spelling.spell(700) == "seven hundred"
    assert spelling.spell(919) == "nine hundred nineteen"
    f = spelling.features(np.array([342]))
    assert f.shape == (1, 30) and f[0].nonzero()[0].tolist() == [3, 14, 22]
    s = spelling.sequences(np.array([7, 342]))
    assert s[0, 0] == spelling.START and spelling.decode(s[1, 1:-1]) == "three hundred forty-two"
    assert s[0].tolist().count(spelling.END) == 1 and s[0, -1] == spelling.NULL


@pytest.mark.parametrize("name", ["addition", "addition5", "spelling"])
def test_quick_runs(name):
    r = run_task(name, "lstm", quick=True)
    assert r["task"] == name and 0.0 <= r["value"] <= 1.0 and r["steps"] == 3
    assert "exact_match" in r or "train_exact_match" in r
