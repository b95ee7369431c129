"""Parity with PyTorch autograd (float64) through bptt.interop.torch: torch.nn.RNN (tanh),
torch.nn.LSTM and torch.nn.GRU, one layer, two-layer stacks, bidirectional stacks and packed
(masked) batches.

Every torch parameter is random and non-zero (bias_ih AND bias_hh, so a mapping that drops or
doubles one of them fails), h0 and c0 are random, and the loss is sum(out * dh) + sum(h_n * dh_n)
+ sum(c_n * dc_n) with random dh, dh_n, dc_n.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt.functional import gru_backward, gru_forward
from bptt.gradcheck import rel_error
from bptt.interop.torch import (
    GRULayerWeights,
    LayerWeights,
    layer_from_torch,
    layer_to_torch,
    stack_from_torch_state_dict,
    stack_to_torch_state_dict,
)
from helpers import GATES, check, randn, seq_backward, seq_forward

torch = pytest.importorskip("torch", reason="PyTorch not installed: parity tests skipped")

PARITY_TOL = 1e-10
CELLS = ["rnn", "lstm"]


def make_module(cell: str, D: int, H: int, rng: np.random.Generator, num_layers: int = 1,
                bidirectional: bool = False, bias: bool = True):
    """A float64 torch.nn.RNN(tanh) / LSTM, batch_first, with every parameter random."""
    kw = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": True,
          "bias": bias}
    mod = (torch.nn.RNN(D, H, nonlinearity="tanh", **kw) if cell == "rnn"
           else torch.nn.GRU(D, H, **kw) if cell == "gru"
           else torch.nn.LSTM(D, H, **kw)).double()
    with torch.no_grad():
        for prm in mod.parameters():
            prm.copy_(torch.from_numpy(randn(rng, *prm.shape, scale=0.5)))
    return mod


def torch_run(mod, cell: str, x, h0, c0, dh, dhn, dcn, lengths=None) -> dict:
    """Forward + backward of the loss in torch; numpy outputs and every gradient."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True) if cell == "lstm" else None
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                      batch_first=True, enforce_sorted=False)
    out, state = mod(inp, (h0t, c0t) if cell == "lstm" else h0t)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                        total_length=x.shape[1])
    hn, cn = state if cell == "lstm" else (state, None)
    mod.zero_grad()
    loss = (out * torch.from_numpy(dh)).sum() + (hn * torch.from_numpy(dhn)).sum()
    if cell == "lstm":
        loss = loss + (cn * torch.from_numpy(dcn)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "hn": hn.detach().numpy(), "x": xt.grad.numpy(),
           "h0": h0t.grad.numpy()}
    if cell == "lstm":
        res.update(cn=cn.detach().numpy(), c0=c0t.grad.numpy())
    res["params"] = {name: prm.grad.numpy() for name, prm in mod.named_parameters()}
    return res


def bptt_stack(cell: str, layers, x, h0, c0, dh, dhn, dcn, mask=None) -> dict:
    """Run a bptt stack the way torch does (layer after layer; the reverse direction reads the
    time-reversed input) and backpropagate the same loss. Returns torch-shaped results."""
    bidir = isinstance(layers[0][0], tuple)
    ndir = 2 if bidir else 1
    inp, caches, hn, cn = x, [], [], []
    for k, entry in enumerate(layers):
        outs = []
        for d, (Wx, Wh, b) in enumerate(entry if bidir else (entry,)):
            idx = k * ndir + d
            p = {"x": inp if d == 0 else np.ascontiguousarray(inp[:, ::-1]), "h0": h0[idx],
                 "Wx": Wx, "Wh": Wh, "b": b}
            if cell == "lstm":
                p["c0"] = c0[idx]
            h, c, cache = seq_forward(cell, p, mask)
            outs.append(h if d == 0 else h[:, ::-1])
            hn.append(h[:, -1])
            cn.append(c)
            caches.append(cache)
        inp = np.concatenate(outs, axis=2)                           # (N, T, ndir * H)
    res = {"out": inp, "hn": np.stack(hn), "params": {}}
    if cell == "lstm":
        res["cn"] = np.stack(cn)

    H = h0.shape[-1]
    dout = dh
    dh0, dc0 = np.zeros_like(h0), np.zeros_like(h0)
    for k in reversed(range(len(layers))):
        din = 0.0
        for d in range(ndir):
            idx = k * ndir + d
            dh_d = dout[:, :, d * H:(d + 1) * H]
            dh_d = np.array(dh_d if d == 0 else dh_d[:, ::-1])       # own time order, a copy
            dh_d[:, -1] += dhn[idx]                                  # h_n is the last output
            g = seq_backward(cell, dh_d, dcn[idx] if cell == "lstm" else None, caches[idx])
            din = din + (g["x"] if d == 0 else g["x"][:, ::-1])
            dh0[idx] = g["h0"]
            if cell == "lstm":
                dc0[idx] = g["c0"]
            sfx = f"_l{k}" + ("_reverse" if d else "")
            res["params"].update({"weight_ih" + sfx: g["Wx"].T, "weight_hh" + sfx: g["Wh"].T,
                                  "bias_ih" + sfx: g["b"], "bias_hh" + sfx: g["b"]})
        dout = din
    res.update(x=dout, h0=dh0)
    if cell == "lstm":
        res["c0"] = dc0
    return res


def random_run_inputs(rng, cell, N, T, D, H, n_states):
    x = randn(rng, N, T, D)
    h0 = randn(rng, n_states, N, H, scale=0.5)
    c0 = randn(rng, n_states, N, H, scale=0.8) if cell == "lstm" else None
    return x, h0, c0


def compare(category: str, ours: dict, ref: dict, valid: np.ndarray | None = None) -> None:
    """Outputs (only at valid steps if given), final states and every gradient."""
    out, out_ref = ours["out"], ref["out"]
    if valid is not None:
        out, out_ref = out[valid], out_ref[valid]
    check(f"{category}: forward", rel_error(out, out_ref), PARITY_TOL, "out")
    for key in ("hn", "cn"):
        if key in ref:
            check(f"{category}: forward", rel_error(ours[key], ref[key]), PARITY_TOL, key)
    for key in ("x", "h0", "c0"):
        if key in ref:
            check(f"{category}: grads", rel_error(ours[key], ref[key]), PARITY_TOL, f"d{key}")
    assert ours["params"].keys() == ref["params"].keys()
    for name, g in ref["params"].items():
        check(f"{category}: grads", rel_error(ours["params"][name], g), PARITY_TOL, name)


@pytest.mark.parametrize("cell", CELLS)
def test_single_layer_matches_torch_outputs_and_every_gradient(cell):
    rng = np.random.default_rng(400 + GATES[cell])
    N, T, D, H = 3, 5, 4, 6
    mod = make_module(cell, D, H, rng)
    Wx, Wh, b = layer_from_torch(mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0,
                                 mod.bias_hh_l0, cell=cell)
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 1)
    dh, dhn, dcn = randn(rng, N, T, H), randn(rng, 1, N, H), randn(rng, 1, N, H)
    ref = torch_run(mod, cell, x, h0, c0, dh, dhn, dcn)
    ours = bptt_stack(cell, [LayerWeights(Wx, Wh, b)], x, h0, c0, dh, dhn, dcn)
    # The merged bias gradient db must equal torch's bias_ih grad and its bias_hh grad.
    np.testing.assert_array_equal(ours["params"]["bias_ih_l0"], ours["params"]["bias_hh_l0"])
    compare(f"torch parity {cell} 1 layer", ours, ref)


@pytest.mark.parametrize("cell", CELLS)
def test_two_layer_stack_matches_torch_num_layers_2(cell):
    rng = np.random.default_rng(410 + GATES[cell])
    N, T, D, H = 3, 4, 3, 5
    mod = make_module(cell, D, H, rng, num_layers=2)
    layers = stack_from_torch_state_dict(mod.state_dict(), cell)
    assert len(layers) == 2 and layers[1].Wx.shape == (H, GATES[cell] * H)
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 2)
    dh, dhn, dcn = randn(rng, N, T, H), randn(rng, 2, N, H), randn(rng, 2, N, H)
    compare(f"torch parity {cell} 2 layers", bptt_stack(cell, layers, x, h0, c0, dh, dhn, dcn),
            torch_run(mod, cell, x, h0, c0, dh, dhn, dcn))


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_two_layer_stack_matches_torch(cell):
    rng = np.random.default_rng(420 + GATES[cell])
    N, T, D, H = 2, 4, 3, 3
    mod = make_module(cell, D, H, rng, num_layers=2, bidirectional=True)
    layers = stack_from_torch_state_dict(mod.state_dict(), cell)
    assert len(layers) == 2 and len(layers[1]) == 2 and layers[1][1].Wx.shape[0] == 2 * H
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 4)
    dh, dhn, dcn = randn(rng, N, T, 2 * H), randn(rng, 4, N, H), randn(rng, 4, N, H)
    compare(f"torch parity {cell} bidirectional", bptt_stack(cell, layers, x, h0, c0, dh, dhn,
                                                             dcn),
            torch_run(mod, cell, x, h0, c0, dh, dhn, dcn))


@pytest.mark.parametrize("cell", CELLS)
def test_masked_batch_matches_torch_packed_sequence(cell):
    """Right-padded batch with a mask == torch's packed sequence (h_n = last valid state)."""
    rng = np.random.default_rng(430 + GATES[cell])
    lengths, T, D, H = [5, 2, 4, 1], 5, 3, 4
    N = len(lengths)
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    mod = make_module(cell, D, H, rng, num_layers=2)
    layers = stack_from_torch_state_dict(mod.state_dict(), cell)
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 2)
    dh = randn(rng, N, T, H) * mask[:, :, None]
    dhn, dcn = randn(rng, 2, N, H), randn(rng, 2, N, H)
    compare(f"torch parity {cell} packed vs mask",
            bptt_stack(cell, layers, x, h0, c0, dh, dhn, dcn, mask=mask),
            torch_run(mod, cell, x, h0, c0, dh, dhn, dcn, lengths=lengths), valid=mask)


@pytest.mark.parametrize("cell", CELLS)
def test_bptt_weights_loaded_into_torch_reproduce_bptt_outputs(cell):
    """bptt -> stack_to_torch_state_dict -> load_state_dict(strict=True) -> same forward."""
    rng = np.random.default_rng(440 + GATES[cell])
    N, T, D, H, G = 2, 4, 3, 4, GATES[cell] * 4
    layers = [LayerWeights(randn(rng, D, G, scale=0.5), randn(rng, H, G, scale=0.5),
                           randn(rng, G, scale=0.5)),
              LayerWeights(randn(rng, H, G, scale=0.5), randn(rng, H, G, scale=0.5),
                           randn(rng, G, scale=0.5))]
    mod = make_module(cell, D, H, rng, num_layers=2)
    mod.load_state_dict(stack_to_torch_state_dict(layers, cell, as_tensors=True), strict=True)
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 2)
    dh, dhn, dcn = randn(rng, N, T, H), randn(rng, 2, N, H), randn(rng, 2, N, H)
    compare(f"torch parity {cell} bptt weights in torch",
            bptt_stack(cell, layers, x, h0, c0, dh, dhn, dcn),
            torch_run(mod, cell, x, h0, c0, dh, dhn, dcn))


@pytest.mark.parametrize("cell", CELLS)
def test_module_without_bias_reads_as_zero_bias_and_matches(cell):
    rng = np.random.default_rng(450 + GATES[cell])
    N, T, D, H = 2, 3, 3, 4
    mod = make_module(cell, D, H, rng, bias=False)
    (layer,) = stack_from_torch_state_dict(mod.state_dict(), cell)
    assert np.all(layer.b == 0.0)
    x, h0, c0 = random_run_inputs(rng, cell, N, T, D, H, 1)
    dh, dhn, dcn = randn(rng, N, T, H), randn(rng, 1, N, H), randn(rng, 1, N, H)
    ours = bptt_stack(cell, [layer], x, h0, c0, dh, dhn, dcn)
    ref = torch_run(mod, cell, x, h0, c0, dh, dhn, dcn)
    ours["params"] = {k: v for k, v in ours["params"].items() if k.startswith("weight")}
    compare(f"torch parity {cell} bias=False", ours, ref)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_state_dict_round_trip_bptt_torch_bptt_is_exact(cell, bidirectional):
    rng = np.random.default_rng(460 + GATES[cell] + bidirectional)
    mod = make_module(cell, 3, 4, rng, num_layers=2, bidirectional=bidirectional)
    layers = stack_from_torch_state_dict(mod.state_dict(), cell)
    sd = stack_to_torch_state_dict(layers, cell, as_tensors=True)
    assert set(sd) == set(mod.state_dict())
    for name, t in sd.items():
        if name.startswith("bias_hh"):
            assert torch.all(t == 0)
    fresh = make_module(cell, 3, 4, rng, num_layers=2, bidirectional=bidirectional)
    fresh.load_state_dict(sd, strict=True)
    back = stack_from_torch_state_dict(fresh.state_dict(), cell)

    def flat(stack):
        return [a for e in stack for lw in (e if bidirectional else (e,)) for a in lw]

    assert len(flat(back)) == len(flat(layers)) == 6 * (1 + bidirectional)
    for a, b in zip(flat(back), flat(layers), strict=True):
        np.testing.assert_array_equal(a, b)


def test_layer_from_torch_merges_biases_and_copies():
    rng = np.random.default_rng(470)
    mod = make_module("lstm", 3, 2, rng)
    Wx, Wh, b = layer_from_torch(mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0,
                                 mod.bias_hh_l0)
    np.testing.assert_array_equal(Wx, mod.weight_ih_l0.detach().numpy().T)
    np.testing.assert_array_equal(Wh, mod.weight_hh_l0.detach().numpy().T)
    np.testing.assert_array_equal(b, (mod.bias_ih_l0 + mod.bias_hh_l0).detach().numpy())
    Wx += 1.0                                        # a copy: the module is untouched
    assert not np.allclose(Wx, mod.weight_ih_l0.detach().numpy().T)
    Wx32, _, b32 = layer_from_torch(mod.weight_ih_l0.float(), mod.weight_hh_l0.float(),
                                    mod.bias_ih_l0.float(), mod.bias_hh_l0.float())
    assert Wx32.dtype == np.float32 and b32.dtype == np.float32
    t = layer_to_torch(Wx, Wh, b, cell="lstm", as_tensors=True)
    assert isinstance(t["weight_ih"], torch.Tensor) and t["weight_ih"].shape == (8, 3)


def test_torch_state_dicts_that_do_not_fit_raise_value_error():
    rng = np.random.default_rng(480)
    lstm_sd = make_module("lstm", 3, 4, rng, num_layers=2).state_dict()
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(16, 3\)"):
        stack_from_torch_state_dict(lstm_sd, "rnn")                 # LSTM weights read as RNN
    gru_sd = torch.nn.GRU(3, 4).double().state_dict()
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(12, 3\)"):
        stack_from_torch_state_dict(gru_sd, "lstm")
    proj_sd = torch.nn.LSTM(3, 4, proj_size=2).double().state_dict()
    with pytest.raises(ValueError, match=r"unknown key 'weight_hr_l0'.*proj_size"):
        stack_from_torch_state_dict(proj_sd, "lstm")
    wrapped = torch.nn.Sequential(torch.nn.LSTM(3, 4)).double().state_dict()
    with pytest.raises(ValueError, match=r"unknown key '0\.weight_ih_l0'"):
        stack_from_torch_state_dict(wrapped, "lstm")
    assert len(stack_from_torch_state_dict(wrapped, "lstm", prefix="0.")) == 1
    missing = {k: v for k, v in lstm_sd.items() if k != "weight_hh_l1"}
    with pytest.raises(ValueError, match=r"missing the key 'weight_hh_l1'"):
        stack_from_torch_state_dict(missing, "lstm")
    half = torch.nn.LSTM(3, 4).half().state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] has dtype torch.float16"):
        stack_from_torch_state_dict(half, "lstm")


# --- torch.nn.GRU: its own stack runner, since a GRU layer carries b_hn -------------------------

def gru_stack(layers, x, h0, dh, dhn, mask=None) -> dict:
    """``bptt_stack`` for GRU layers (Wx, Wh, b, b_hn): torch-shaped results and gradients,
    bias_hh's gradient being [db_r, db_z, db_hn]."""
    bidir = isinstance(layers[0][0], tuple)
    ndir = 2 if bidir else 1
    inp, caches, hn = x, [], []
    for k, entry in enumerate(layers):
        outs = []
        for d, (Wx, Wh, b, b_hn) in enumerate(entry if bidir else (entry,)):
            xin = inp if d == 0 else np.ascontiguousarray(inp[:, ::-1])
            h, cache = gru_forward(xin, h0[k * ndir + d], Wx, Wh, b, b_hn, mask)
            outs.append(h if d == 0 else h[:, ::-1])
            hn.append(h[:, -1])
            caches.append(cache)
        inp = np.concatenate(outs, axis=2)
    res = {"out": inp, "hn": np.stack(hn), "params": {}}
    H = h0.shape[-1]
    dout, dh0 = dh, np.zeros_like(h0)
    for k in reversed(range(len(layers))):
        din = 0.0
        for d in range(ndir):
            idx = k * ndir + d
            dh_d = dout[:, :, d * H:(d + 1) * H]
            dh_d = np.array(dh_d if d == 0 else dh_d[:, ::-1])
            dh_d[:, -1] += dhn[idx]
            dx, dh0[idx], dWx, dWh, db, db_hn = gru_backward(dh_d, caches[idx])
            din = din + (dx if d == 0 else dx[:, ::-1])
            sfx = f"_l{k}" + ("_reverse" if d else "")
            res["params"].update({"weight_ih" + sfx: dWx.T, "weight_hh" + sfx: dWh.T,
                                  "bias_ih" + sfx: db,
                                  "bias_hh" + sfx: np.concatenate([db[:2 * H], db_hn])})
        dout = din
    res.update(x=dout, h0=dh0)
    return res


@pytest.mark.parametrize(("num_layers", "bidirectional", "packed"), [
    (1, False, False), (2, False, False), (2, True, False), (2, False, True)])
def test_gru_matches_torch_gru_outputs_and_every_gradient(num_layers, bidirectional, packed):
    """Random h0, every torch parameter random (bias_hh's n block is b_hn); packed and
    bidirectional together is the BidirectionalStack test below (per-row reversal)."""
    rng = np.random.default_rng(600 + 4 * num_layers + 2 * bidirectional + packed)
    lengths, T, D, H = [5, 2, 4, 1], 5, 3, 4
    N = len(lengths)
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None] if packed else None
    mod = make_module("gru", D, H, rng, num_layers=num_layers, bidirectional=bidirectional)
    layers = stack_from_torch_state_dict(mod.state_dict(), "gru")
    first = layers[0][0] if bidirectional else layers[0]
    assert isinstance(first, GRULayerWeights) and first.b_hn.shape == (H,)
    ndir = 2 if bidirectional else 1
    x, h0 = randn(rng, N, T, D), randn(rng, num_layers * ndir, N, H, scale=0.5)
    dh = randn(rng, N, T, ndir * H)
    if packed:
        dh *= mask[:, :, None]
    dhn = randn(rng, num_layers * ndir, N, H)
    ref = torch_run(mod, "gru", x, h0, None, dh, dhn, None,
                    lengths=lengths if packed else None)
    compare(f"torch parity gru {num_layers} layer(s){' bidirectional' if bidirectional else ''}"
            f"{' packed' if packed else ''}", gru_stack(layers, x, h0, dh, dhn, mask), ref,
            valid=mask)


def test_gru_bidirectional_stack_matches_torch_packed_bidirectional_gru():
    """nn.BidirectionalStack(cell='gru') on a padded, masked batch == torch's packed
    bidirectional GRU (zero initial states), outputs and every weight gradient."""
    from bptt.nn.bidirectional import BidirectionalStack

    rng = np.random.default_rng(620)
    lengths, T, D, H = [5, 2, 4, 1], 5, 3, 4
    N = len(lengths)
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    mod = make_module("gru", D, H, rng, num_layers=2, bidirectional=True)
    stack = BidirectionalStack(D, H, "gru", num_layers=2)
    for k, (fwd, rev) in enumerate(stack_from_torch_state_dict(mod.state_dict(), "gru")):
        for sfx, lw in (("", fwd), ("_rev", rev)):
            for name in ("Wx", "Wh", "b", "b_hn"):
                stack.params[f"l{k}.{name}{sfx}"][...] = getattr(lw, name)
    x, dh = randn(rng, N, T, D), randn(rng, N, T, 2 * H) * mask[:, :, None]
    h0 = np.zeros((4, N, H))
    ref = torch_run(mod, "gru", x, h0, None, dh, np.zeros((4, N, H)), None, lengths=lengths)
    h, cache = stack.forward(x, mask)
    dx, grads = stack.backward(dh, cache)
    check("torch parity gru BidirectionalStack packed: forward", rel_error(h[mask],
          ref["out"][mask]), PARITY_TOL, "out")
    check("torch parity gru BidirectionalStack packed: grads", rel_error(dx, ref["x"]),
          PARITY_TOL, "dx")
    for k in range(2):
        for sfx, tsfx in (("", ""), ("_rev", "_reverse")):
            g = grads
            ours = {"weight_ih": g[f"l{k}.Wx{sfx}"].T, "weight_hh": g[f"l{k}.Wh{sfx}"].T,
                    "bias_ih": g[f"l{k}.b{sfx}"],
                    "bias_hh": np.concatenate([g[f"l{k}.b{sfx}"][:2 * H], g[f"l{k}.b_hn{sfx}"]])}
            for name, a in ours.items():
                check("torch parity gru BidirectionalStack packed: grads",
                      rel_error(a, ref["params"][f"{name}_l{k}{tsfx}"]), PARITY_TOL, name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_state_dict_round_trip_and_strict_load_reproduce_outputs(bidirectional):
    """torch -> bptt -> torch is exact (bias_hh keeps only b_hn), loads with strict=True, and
    bptt weights loaded into torch give bptt's outputs."""
    rng = np.random.default_rng(630 + bidirectional)
    mod = make_module("gru", 3, 4, rng, num_layers=2, bidirectional=bidirectional)
    layers = stack_from_torch_state_dict(mod.state_dict(), "gru")
    sd = stack_to_torch_state_dict(layers, "gru", as_tensors=True)
    assert set(sd) == set(mod.state_dict())
    for name, t in sd.items():
        if name.startswith("bias_hh"):
            assert torch.all(t[:8] == 0) and torch.all(t[8:] != 0)
    fresh = make_module("gru", 3, 4, rng, num_layers=2, bidirectional=bidirectional)
    fresh.load_state_dict(sd, strict=True)
    back = stack_from_torch_state_dict(fresh.state_dict(), "gru")

    def flat(stack):
        return [a for e in stack for lw in (e if bidirectional else (e,)) for a in lw]

    assert len(flat(back)) == 8 * (1 + bidirectional)
    for a, b in zip(flat(back), flat(layers), strict=True):
        np.testing.assert_array_equal(a, b)
    if not bidirectional:
        x, h0 = randn(rng, 2, 4, 3), randn(rng, 2, 2, 4, scale=0.5)
        dh, dhn = randn(rng, 2, 4, 4), randn(rng, 2, 2, 4)
        compare("torch parity gru bptt weights in torch", gru_stack(layers, x, h0, dh, dhn),
                torch_run(fresh, "gru", x, h0, None, dh, dhn, None))


def test_gru_layer_mapping_splits_the_recurrent_bias():
    rng = np.random.default_rng(640)
    mod = make_module("gru", 3, 2, rng)
    lw = layer_from_torch(mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0, mod.bias_hh_l0)
    b_ih, b_hh = mod.bias_ih_l0.detach().numpy(), mod.bias_hh_l0.detach().numpy()
    assert isinstance(lw, GRULayerWeights)
    np.testing.assert_array_equal(lw.b, b_ih + np.concatenate([b_hh[:4], np.zeros(2)]))
    np.testing.assert_array_equal(lw.b_hn, b_hh[4:])
    t = layer_to_torch(*lw[:3], cell="gru", b_hn=lw.b_hn, as_tensors=True)
    assert torch.equal(t["bias_hh"], torch.from_numpy(np.concatenate([np.zeros(4), b_hh[4:]])))
