"""The gradient-through-time diagnostic: dL/dh_t against central differences, the reference loop
against the engine, and the vanishing gradient it is meant to show."""

import numpy as np
import pytest

from bptt import functional as F
from bptt.analysis.gradflow import gradient_flow, model_gradient_flow
from bptt.analysis.plots import grad_norm_through_time
from bptt.gradcheck import numerical_gradient, rel_error
from bptt.nn import SequenceConfig, SequenceModel

MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=bool)


def _weights(rng, cell, D, H):
    G = 4 * H if cell == "lstm" else H
    return (rng.standard_normal((D, G)) * 0.5, rng.standard_normal((H, G)) * 0.5,
            rng.standard_normal(G) * 0.5)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("mask", [None, MASK], ids=["no mask", "mask"])
def test_recorded_dh_t_is_the_numerical_gradient_of_each_h_t(cell, mask):
    rng = np.random.default_rng(0)
    N, T, D, H = 3, 6, 2, 3
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    c0 = rng.standard_normal((N, H)) if cell == "lstm" else None
    Wx, Wh, b = _weights(rng, cell, D, H)
    dh_up = rng.standard_normal((N, T, H))
    if mask is not None:
        dh_up *= mask[:, :, None]
    flow = gradient_flow(cell, x, h0, Wx, Wh, b, dh_up, mask, c0)
    probe = np.zeros((N, T, H))
    num = numerical_gradient(
        lambda: F.reference_forward(cell, x, h0, Wx, Wh, b, mask, c0, probe=probe)[0], probe,
        dh_up)
    valid = np.ones((N, T), bool) if mask is None else mask
    assert rel_error(flow.dh[valid], num[valid]) < 1e-8
    assert np.isnan(flow.norms[~valid]).all()
    np.testing.assert_allclose(flow.norms[valid], np.linalg.norm(num[valid], axis=1),
                               rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_reference_loop_agrees_with_the_engine(cell):
    rng = np.random.default_rng(1)
    N, T, D, H = 3, 6, 2, 4
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = _weights(rng, cell, D, H)
    dh_up = rng.standard_normal((N, T, H))
    fwd, bwd = (F.lstm_forward, F.lstm_backward) if cell == "lstm" else \
        (F.rnn_forward, F.rnn_backward)
    h, cache = fwd(x, h0, Wx, Wh, b, MASK)
    ref_h, _, _ = F.reference_forward(cell, x, h0, Wx, Wh, b, MASK)
    assert rel_error(h, ref_h) < 1e-13
    flow = gradient_flow(cell, x, h0, Wx, Wh, b, dh_up, MASK)
    for got, want in zip((flow.dx, flow.dh0, flow.dWx, flow.dWh, flow.db), bwd(dh_up, cache)):
        assert rel_error(got, want) < 1e-12


def test_rnn_gradient_vanishes_and_an_open_forget_gate_carries_it():
    """On the adding problem (loss at the last of 100 steps), ||dL/dh_t|| of a tanh RNN decays by
    orders of magnitude towards t = 0; an LSTM whose forget gates are open (f ~ 0.95) carries it
    back through the cell state almost undiminished."""
    from bptt.tasks.adding import adding_arjovsky

    data = adding_arjovsky(16, 100, np.random.default_rng(2), dtype=np.float64)
    ratios = {}
    for cell, forget_bias in (("rnn", 1.0), ("lstm", 3.0)):
        model = SequenceModel(SequenceConfig(2, 1, hidden=32, cell=cell, loss="mse",
                                             forget_bias=forget_bias, dtype="float64"),
                              np.random.default_rng(3))
        flow = model_gradient_flow(model, data.x, data.y)
        m = flow.mean_norms()
        ratios[cell] = m[0] / m[-1]
        assert set(flow.saturation) == ({"h"} if cell == "rnn" else
                                        {"i", "f", "g", "o", "tanh_c"})
    assert ratios["rnn"] < 1e-3
    assert ratios["lstm"] > 0.1
    assert flow.saturation["f"]["open (>0.9)"] > 0.5


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_model_gradient_flow_with_two_and_three_layers(cell, pooling):
    """The top layer's input is the output of the layers below: the flow's weight gradients are
    the model's own for that layer (times N, the flow's scaling), masked batch included."""
    rng = np.random.default_rng(4)
    N, T, D = 3, 6, 2
    x = rng.standard_normal((N, T, D))
    y = rng.integers(0, 3, N)
    for layers in (2, 3):
        model = SequenceModel(SequenceConfig(D, 3, hidden=4, layers=layers, cell=cell,
                                             pooling=pooling, dtype="float64"),
                              np.random.default_rng(5))
        flow = model_gradient_flow(model, x, y, MASK)
        _, grads = model.loss(x, y, MASK)
        k = layers - 1
        for name, got in (("Wx", flow.dWx), ("Wh", flow.dWh), ("b", flow.db)):
            assert rel_error(got, N * grads[f"rnn.l{k}.{name}"]) < 1e-12, (layers, name)
        assert flow.dx.shape == (N, T, 4)
        assert np.isnan(flow.norms[~MASK]).all() and np.isfinite(flow.norms[MASK]).all()


def test_plot_is_drawn():
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    png = grad_norm_through_time({"rnn": np.logspace(-5, 0, 10), "lstm (init)": np.ones(10)},
                                 title="flow", relative=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert grad_norm_through_time({}) is None
