"""The helpers shared by the models: one-hot token inputs and the recurrent stacks' checks."""

import numpy as np
import pytest

from bptt.nn import (
    BidirectionalStack,
    LanguageModel,
    LMConfig,
    RecurrentStack,
    SequenceConfig,
    SequenceModel,
    one_hot,
)


def test_one_hot_puts_a_single_one_at_each_id():
    ids = np.array([[0, 3, 1], [2, 2, 0]])
    out = one_hot(ids, 4, np.float32)
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out.sum(axis=2), 1.0)
    np.testing.assert_array_equal(out.argmax(axis=2), ids)


@pytest.mark.parametrize(("ids", "message"), [
    (np.array([[0, 4]]), r"one_hot: ids holds the index 4; every value must be in \[0, 3\]"),
    (np.array([[0, -1]]), r"one_hot: ids holds the index -1"),
    (np.array([[0.0, 1.0]]), "one_hot: ids has dtype float64"),
    (np.array([0, 1]), r"one_hot: ids has shape \(2,\)"),
])
def test_one_hot_rejects_bad_ids_anywhere_in_the_batch(ids, message):
    with pytest.raises(ValueError, match=message):
        one_hot(ids, 4)


def test_both_models_encode_token_ids_the_same_way():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (3, 4))
    lm = LanguageModel(LMConfig(5, hidden=3, layers=1, dtype="float64"), rng)
    clf = SequenceModel(SequenceConfig(5, 2, hidden=3, tokens=True, dtype="float64"), rng)
    np.testing.assert_array_equal(lm._inputs(ids)[0], one_hot(ids, 5))
    np.testing.assert_array_equal(clf._inputs(ids)[0], one_hot(ids, 5))
    bad = ids.copy()
    bad[2, 3] = 5                                   # the last id, not the first
    for model in (lm, clf):
        with pytest.raises(ValueError, match="holds the index 5"):
            model._inputs(bad)


@pytest.mark.parametrize("stack", [RecurrentStack, BidirectionalStack])
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cell": "gruu"}, "unknown cell 'gruu'"),
    ({"num_layers": 0}, "num_layers is 0; it must be at least 1"),
    ({"dropout": 1.0}, r"dropout is 1.0; it must be in \[0, 1\)"),
    ({"dropout": -0.1}, r"dropout is -0.1"),
])
def test_stacks_check_their_arguments_alike(stack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stack(3, 4, **kwargs)
