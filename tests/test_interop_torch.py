"""bptt.interop.torch without PyTorch: layouts, exact round trips, key names, error messages,
and that importing it never imports torch. (Autograd parity lives in test_torch_parity.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bptt.interop.torch import (
    GRULayerWeights,
    LayerWeights,
    layer_from_torch,
    layer_to_torch,
    stack_from_torch_state_dict,
    stack_to_torch_state_dict,
)
from helpers import randn

SRC = Path(__file__).resolve().parents[1] / "src"


def random_layer(rng, D: int, H: int, gates: int, dtype=np.float64) -> LayerWeights:
    G = gates * H
    return LayerWeights(randn(rng, D, G, dtype=dtype), randn(rng, H, G, dtype=dtype),
                        randn(rng, G, dtype=dtype))


def test_importing_interop_does_not_import_torch():
    code = "import sys, bptt.interop.torch; assert 'torch' not in sys.modules, 'torch imported'"
    res = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("gates", [1, 4])
def test_layer_to_torch_layout_and_exact_round_trip(gates):
    rng = np.random.default_rng(500 + gates)
    Wx, Wh, b = random_layer(rng, 3, 5, gates)
    t = layer_to_torch(Wx, Wh, b)
    assert t.keys() == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    np.testing.assert_array_equal(t["weight_ih"], Wx.T)              # (G, D)
    np.testing.assert_array_equal(t["weight_hh"], Wh.T)              # (G, H)
    np.testing.assert_array_equal(t["bias_ih"], b)
    np.testing.assert_array_equal(t["bias_hh"], np.zeros(gates * 5))
    assert all(a.flags.c_contiguous and not np.shares_memory(a, w)
               for a in t.values() for w in (Wx, Wh, b))
    back = layer_from_torch(**t)
    for a, ref in zip(back, (Wx, Wh, b), strict=True):
        np.testing.assert_array_equal(a, ref)


def test_layer_from_torch_sums_the_two_biases_and_allows_none():
    rng = np.random.default_rng(510)
    w_ih, w_hh = randn(rng, 8, 3), randn(rng, 8, 2)
    b_ih, b_hh = randn(rng, 8), randn(rng, 8)
    Wx, Wh, b = layer_from_torch(w_ih, w_hh, b_ih, b_hh, cell="lstm")
    assert Wx.shape == (3, 8) and Wh.shape == (2, 8)
    np.testing.assert_array_equal(b, b_ih + b_hh)
    np.testing.assert_array_equal(layer_from_torch(w_ih, w_hh).b, np.zeros(8))
    np.testing.assert_array_equal(layer_from_torch(w_ih, w_hh, b_ih).b, b_ih)


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("lstm", 4)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_state_dict_keys_shapes_and_exact_round_trip(cell, gates, bidirectional):
    rng = np.random.default_rng(520 + gates + bidirectional)
    D, H = 3, 4
    ndir = 2 if bidirectional else 1
    layers = []
    for k in range(3):
        dirs = tuple(random_layer(rng, D if k == 0 else ndir * H, H, gates) for _ in range(ndir))
        layers.append(dirs if bidirectional else dirs[0])
    sd = stack_to_torch_state_dict(layers, cell)
    sfx = ["", "_reverse"][:ndir]
    expected = {f"{kind}_l{k}{s}" for k in range(3) for s in sfx
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert set(sd) == expected
    assert sd["weight_ih_l0"].shape == (gates * H, D)
    assert sd["weight_ih_l2"].shape == (gates * H, ndir * H)
    back = stack_from_torch_state_dict(sd, cell)
    assert len(back) == 3
    for got, ref in zip(back, layers, strict=True):
        for g_dir, r_dir in zip(*((got, ref) if bidirectional else ((got,), (ref,))),
                                strict=True):
            for a, r in zip(g_dir, r_dir, strict=True):
                np.testing.assert_array_equal(a, r)
    prefixed = {"enc.rnn." + k: v for k, v in sd.items()}
    assert len(stack_from_torch_state_dict(prefixed, cell, prefix="enc.rnn.")) == 3


def test_stack_from_state_dict_without_biases_gives_zero_bias():
    rng = np.random.default_rng(530)
    sd = {"weight_ih_l0": randn(rng, 4, 3), "weight_hh_l0": randn(rng, 4, 4)}
    (layer,) = stack_from_torch_state_dict(sd, "rnn")
    np.testing.assert_array_equal(layer.b, np.zeros(4))


def _lstm_sd(rng) -> dict[str, np.ndarray]:
    return stack_to_torch_state_dict([random_layer(rng, 3, 2, 4), random_layer(rng, 2, 2, 4)],
                                     "lstm")


@pytest.mark.parametrize(("edit", "match"), [
    (lambda sd: sd.update(extra=np.zeros(1)), r"unknown key 'extra'"),
    (lambda sd: sd.update(weight_hr_l0=np.zeros((8, 2))), r"unknown key 'weight_hr_l0'"),
    (lambda sd: sd.update(weight_ih_l3=np.zeros((8, 2))), r"missing the key 'weight_ih_l2'"),
    (lambda sd: sd.pop("bias_hh_l1"), r"missing the key 'bias_hh_l1'"),
    (lambda sd: sd.pop("weight_ih_l0"), r"missing the key 'weight_ih_l0'"),
    (lambda sd: sd.update(weight_ih_l1=np.zeros((8, 3))), r"'weight_ih_l1' has shape \(8, 3\)"),
    (lambda sd: sd.update(weight_hh_l1=np.zeros((8, 3))), r"'weight_hh_l1' has shape \(8, 3\)"),
    (lambda sd: sd.update(bias_ih_l0=np.zeros(7)), r"'bias_ih_l0' has shape \(7,\)"),
    (lambda sd: sd.update(weight_hh_l0=np.zeros((6, 2))), r"'weight_hh_l0' has shape \(6, 2\)"),
    (lambda sd: sd.update(weight_hh_l0=np.zeros(8)), r"'weight_hh_l0' has shape \(8,\)"),
    (lambda sd: sd.update(bias_ih_l1=np.zeros(8, np.float32)), r"'bias_ih_l1' has dtype"),
    (lambda sd: sd.update(bias_ih_l1=np.zeros(8, np.int64)), r"bias_ih_l1'\] has dtype int64"),
    (lambda sd: sd.update(bias_ih_l1=[0.0] * 8), r"bias_ih_l1'\] is a list"),
    (lambda sd: sd.clear(), r"state_dict is empty"),
])
def test_stack_from_state_dict_rejects_bad_keys_and_shapes(edit, match):
    sd = _lstm_sd(np.random.default_rng(540))
    edit(sd)
    with pytest.raises(ValueError, match=r"^stack_from_torch_state_dict: .*" + match):
        stack_from_torch_state_dict(sd, "lstm")


def test_mapping_functions_reject_bad_arguments():
    rng = np.random.default_rng(550)
    Wx, Wh, b = random_layer(rng, 3, 2, 4)
    with pytest.raises(ValueError, match=r"^layer_to_torch: cell 'cfc' is unknown"):
        layer_to_torch(Wx, Wh, b, cell="cfc")
    with pytest.raises(ValueError, match=r"^layer_to_torch: Wh has 8 gate rows for H = 2; rnn"):
        layer_to_torch(Wx, Wh, b, cell="rnn")
    with pytest.raises(ValueError, match=r"^layer_to_torch: Wx has shape \(3, 4\)"):
        layer_to_torch(Wx[:, :4], Wh, b)
    with pytest.raises(ValueError, match=r"^layer_to_torch: b has shape \(1, 8\)"):
        layer_to_torch(Wx, Wh, b[None])
    with pytest.raises(ValueError, match=r"^layer_to_torch: Wx, Wh, b have dtypes"):
        layer_to_torch(Wx.astype(np.float32), Wh, b)
    with pytest.raises(ValueError, match=r"^layer_from_torch: weight_hh has 4 gate rows"):
        layer_from_torch(Wx.T[:4], Wh.T[:4])                        # 2H: no cell has that
    with pytest.raises(ValueError, match=r"^layer_from_torch: weight_ih has shape \(7, 3\)"):
        layer_from_torch(Wx.T[:7], Wh.T)
    with pytest.raises(ValueError, match=r"^layer_from_torch: bias_hh has shape \(4,\)"):
        layer_from_torch(Wx.T, Wh.T, b, b[:4])
    with pytest.raises(ValueError, match=r"^layer_from_torch: weight_ih is a list"):
        layer_from_torch(Wx.T.tolist(), Wh.T)
    with pytest.raises(ValueError, match=r"^stack_from_torch_state_dict: cell 'cfc'"):
        stack_from_torch_state_dict({}, "cfc")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers\[1\] is a str"):
        stack_to_torch_state_dict([(Wx, Wh, b), "oops"], "lstm")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers mixes"):
        stack_to_torch_state_dict([((Wx, Wh, b), (Wx, Wh, b)), (Wx, Wh, b)], "lstm")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers is a"):
        stack_to_torch_state_dict([], "lstm")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers\[0\]: b has shape"):
        stack_to_torch_state_dict([(Wx, Wh, b[:4])], "lstm")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: .*'weight_ih_l1' has "
                                         r"shape \(8, 3\)"):
        stack_to_torch_state_dict([(Wx, Wh, b), (Wx, Wh, b)], "lstm")   # layer 1 needs D = H


def test_gru_layer_maps_b_hn_into_bias_hh_and_back_exactly():
    rng = np.random.default_rng(560)
    D, H = 3, 4
    Wx, Wh, b = random_layer(rng, D, H, 3)
    b_hn = randn(rng, H)
    t = layer_to_torch(Wx, Wh, b, b_hn=b_hn)                        # G = 3H: a GRU
    np.testing.assert_array_equal(t["bias_ih"], b)
    np.testing.assert_array_equal(t["bias_hh"], np.concatenate([np.zeros(2 * H), b_hn]))
    back = layer_from_torch(**t)
    assert isinstance(back, GRULayerWeights)
    for a, ref in zip(back, (Wx, Wh, b, b_hn), strict=True):
        np.testing.assert_array_equal(a, ref)
    sd = stack_to_torch_state_dict([GRULayerWeights(Wx, Wh, b, b_hn)], "gru")
    (again,) = stack_from_torch_state_dict(sd, "gru")
    for a, ref in zip(again, (Wx, Wh, b, b_hn), strict=True):
        np.testing.assert_array_equal(a, ref)


def test_gru_mapping_errors_name_the_missing_or_misplaced_b_hn():
    rng = np.random.default_rng(570)
    Wx, Wh, b = random_layer(rng, 3, 2, 3)
    with pytest.raises(ValueError, match=r"^layer_to_torch: a GRU layer needs b_hn"):
        layer_to_torch(Wx, Wh, b, cell="gru")
    with pytest.raises(ValueError, match=r"^layer_to_torch: b_hn has shape \(3,\)"):
        layer_to_torch(Wx, Wh, b, b_hn=randn(rng, 3))
    Wx4, Wh4, b4 = random_layer(rng, 3, 2, 4)
    with pytest.raises(ValueError, match=r"^layer_to_torch: b_hn is a GRU's bias"):
        layer_to_torch(Wx4, Wh4, b4, b_hn=randn(rng, 2))
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers\[0\] has 3 arrays"):
        stack_to_torch_state_dict([(Wx, Wh, b)], "gru")
    with pytest.raises(ValueError, match=r"^stack_to_torch_state_dict: layers\[0\] has 4 arrays"):
        stack_to_torch_state_dict([(Wx4, Wh4, b4, randn(rng, 2))], "lstm")
