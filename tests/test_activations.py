"""bptt.functional.activations: sigmoid through tanh, derivatives from outputs, softmax."""

from __future__ import annotations

import warnings

import numpy as np

from bptt.functional import dsigmoid_from_output, dtanh_from_output, log_softmax, sigmoid, softmax
from bptt.gradcheck import numerical_gradient, rel_error
from helpers import check, randn


def test_sigmoid_equals_logistic_function_and_works_in_place():
    rng = np.random.default_rng(800)
    z = randn(rng, 4, 6, scale=4.0)
    ref = 1.0 / (1.0 + np.exp(-z))
    check("sigmoid value", rel_error(sigmoid(z), ref), 1e-15)
    zz = z.copy()
    assert sigmoid(zz, out=zz) is zz
    check("sigmoid value", rel_error(zz, ref), 1e-15, "in place")


def test_sigmoid_does_not_overflow_for_large_inputs():
    z = np.array([-1000.0, -100.0, 100.0, 1000.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid(z)
    assert s.dtype == np.float32
    np.testing.assert_array_equal(s, [0.0, 0.0, 1.0, 1.0])


def test_derivatives_from_outputs_match_numerical_derivatives():
    rng = np.random.default_rng(810)
    z, dy = randn(rng, 3, 4), randn(rng, 3, 4)
    for f, dfo in ((sigmoid, dsigmoid_from_output), (np.tanh, dtanh_from_output)):
        num = numerical_gradient(lambda f=f: f(z), z, dy)
        check("activation derivative from output", rel_error(dy * dfo(f(z)), num), 1e-9,
              f.__name__)


def test_softmax_and_log_softmax_are_stable_and_consistent():
    rng = np.random.default_rng(820)
    z = randn(rng, 3, 5, scale=3.0)
    p = softmax(z, axis=1)
    check("softmax value", rel_error(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)), 1e-15)
    check("softmax value", rel_error(log_softmax(z, axis=1), np.log(p)), 1e-15, "log_softmax")
    big = softmax(z + 1e4, axis=1)                   # shift invariant, no overflow
    check("softmax value", rel_error(big, p), 1e-12, "shifted by 1e4")
    check("softmax value", np.abs(softmax(z, axis=0).sum(axis=0) - 1.0).max(), 1e-15, "axis 0")
