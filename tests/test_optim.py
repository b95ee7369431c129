"""Optimizers against their update rules written out by hand; schedules; clipping."""

import math

import numpy as np
import pytest

from bptt import optim


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    p = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    gs = [{k: rng.standard_normal(v.shape) for k, v in p.items()} for _ in range(3)]
    return p, gs


def test_adam_matches_the_formula_over_three_steps():
    p, gs = _setup()
    ref = {k: v.copy() for k, v in p.items()}
    opt = optim.Adam(lr=0.01)
    st = opt.init(p)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, g in enumerate(gs, 1):
        opt.update(p, g, st)
        for k in ref:
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v2[k] = 0.999 * v2[k] + 0.001 * g[k] ** 2
            ref[k] -= 0.01 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v2[k] / (1 - 0.999 ** t)) + 1e-8)
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-13)
    assert st["step"] == 3


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_descends_a_quadratic(name):
    rng = np.random.default_rng(1)
    p = {"x": rng.standard_normal(5)}
    opt = optim.make_optimizer(name, lr=0.05)
    st = opt.init(p)
    start = float(p["x"] @ p["x"])
    for _ in range(50):
        opt.update(p, {"x": 2 * p["x"]}, st)
    assert float(p["x"] @ p["x"]) < 0.5 * start


def test_adagrad_and_rmsprop_rules():
    p, gs = _setup(2)
    q = {k: v.copy() for k, v in p.items()}
    a, r = optim.Adagrad(0.1), optim.RMSprop(0.1, rho=0.9)
    sa, sr = a.init(p), r.init(q)
    G = {k: np.zeros_like(v) for k, v in p.items()}
    S = {k: np.zeros_like(v) for k, v in p.items()}
    ref_a = {k: v.copy() for k, v in p.items()}
    ref_r = {k: v.copy() for k, v in p.items()}
    for g in gs:
        a.update(p, g, sa)
        r.update(q, g, sr)
        for k in g:
            G[k] += g[k] ** 2
            ref_a[k] -= 0.1 * g[k] / (np.sqrt(G[k]) + 1e-8)
            S[k] = 0.9 * S[k] + 0.1 * g[k] ** 2
            ref_r[k] -= 0.1 * g[k] / (np.sqrt(S[k]) + 1e-8)
    for k in p:
        np.testing.assert_allclose(p[k], ref_a[k], rtol=1e-13)
        np.testing.assert_allclose(q[k], ref_r[k], rtol=1e-13)


def test_schedules():
    assert optim.lr_at("constant", 0.1, 500) == 0.1
    assert optim.lr_at("step", 0.1, 2500, every=1000, gamma=0.5) == pytest.approx(0.025)
    assert optim.lr_at("cosine", 1.0, 0, total=100, warmup=10) == pytest.approx(0.1)
    assert optim.lr_at("cosine", 1.0, 10, total=110, warmup=10) == pytest.approx(1.0)
    assert optim.lr_at("cosine", 1.0, 60, total=110, warmup=10) == pytest.approx(0.5)
    assert optim.lr_at("cosine", 1.0, 110, total=110, warmup=10, min_lr=0.01) == 0.01
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.lr_at("linear", 0.1, 0)


def test_clipping():
    g = {"a": np.array([3.0, 4.0]), "b": np.array([0.0])}
    norm, fired = optim.clip_global_norm(g, 1.0)
    assert norm == 5.0 and fired
    assert math.isclose(optim.global_norm(g), 1.0)
    g = {"a": np.array([-7.0, 0.5, 6.0])}
    assert optim.clip_value(g, 5.0) == 2
    np.testing.assert_array_equal(g["a"], [-5.0, 0.5, 5.0])


def test_bad_options():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make_optimizer("adamax", 0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(0.0)


def test_train_step_reports_the_norm_before_clipping_and_refuses_non_finite_values():
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads = {"w": 10 * rng.standard_normal((3, 4)), "b": 10 * rng.standard_normal(4)}
    norm = optim.global_norm(grads)
    expected = {k: p - 0.1 * grads[k] * (1.0 / norm) for k, p in params.items()}
    opt = optim.SGD(0.1)
    state = opt.init(params)
    stats = optim.train_step(params, grads, opt, state, 0.1, optim.Clipping(max_norm=1.0))
    assert stats.norm == pytest.approx(norm) and stats.clipped and stats.failure is None
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12)
    stats = optim.train_step(params, {"w": grads["w"], "b": np.full(4, 0.5)}, opt, state, 0.1,
                             optim.Clipping(max_value=0.1))
    assert stats.clipped_values >= 4 and stats.clipped
    before = {k: v.copy() for k, v in params.items()}
    bad = {"w": np.full((3, 4), np.nan), "b": np.zeros(4)}
    stats = optim.train_step(params, bad, opt, state, 0.1)
    assert stats.failure == "non-finite gradient"
    for k in params:                                  # no update was made
        np.testing.assert_array_equal(params[k], before[k])
    with np.errstate(over="ignore"):
        stats = optim.train_step(params, {"w": np.full((3, 4), 10.0), "b": np.zeros(4)}, opt,
                                 state, 1e308)
    assert stats.failure == "non-finite parameters"


def test_every_schedule_warms_up_and_a_time_budgeted_cosine_follows_progress():
    for schedule in optim.SCHEDULES:
        assert optim.lr_at(schedule, 1.0, 4, total=100, warmup=10) == pytest.approx(0.5)
    assert optim.lr_at("cosine", 1.0, 50, warmup=10, progress=0.5) == pytest.approx(0.5)
    assert optim.lr_at("cosine", 1.0, 50, warmup=10, min_lr=0.1, progress=2.0) == 0.1
