"""bptt export / bptt import: PyTorch gets the same logits; round trips are exact; bad files fail
with one clear line."""

import json

import numpy as np
import pytest

from bptt.charlm.checkpoint import save_checkpoint
from bptt.charlm.sampling import load
from bptt.charlm.text import Vocab
from bptt.cli import main
from bptt.gradcheck import rel_error
from bptt.interop.files import (
    InteropError,
    export_torch,
    import_torch_lm,
    import_torch_stack,
    sibling,
)
from bptt.nn import LanguageModel, LMConfig

torch = pytest.importorskip("torch", reason="PyTorch not installed: interop tests skipped")
st_torch = pytest.importorskip("safetensors.torch")

TEXT = "héllo wörld — «quoted» (x)\n"


def _run(tmp_path, cell="lstm", embed=0, layers=2, learn_h0=False):
    """A run directory holding a float64 model with random non-zero weights and biases."""
    vocab = Vocab.from_text(TEXT)
    cfg = LMConfig(vocab_size=vocab.size, hidden=5, layers=layers, cell=cell, embed=embed,
                   learn_h0=learn_h0, dtype="float64")
    rng = np.random.default_rng(0)
    model = LanguageModel(cfg, rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    run = tmp_path / f"run-{cell}-{embed}"
    save_checkpoint(run, {f"param/{k}": v for k, v in model.params.items()},
                    {"step": 1, "model": cfg.to_dict(), "vocab": vocab.to_json()})
    return run, model


def _torch_logits(out, ids):
    meta = json.loads(sibling(out, ".json").read_text())
    kw = meta["rnn"]["kwargs"]
    rnn = getattr(torch.nn, meta["rnn"]["module"].removeprefix("torch.nn."))(**kw)
    rnn = rnn.double()
    rnn.load_state_dict(st_torch.load_file(str(out)))          # strict: keys match exactly
    head = st_torch.load_file(str(sibling(out, ".head.safetensors")))
    dec = torch.nn.Linear(**meta["decoder"]["kwargs"]).double()
    dec.load_state_dict({"weight": head["decoder.weight"], "bias": head["decoder.bias"]})
    t_ids = torch.from_numpy(ids)
    if meta["input"]["kind"] == "embedding":
        emb = torch.nn.Embedding(**meta["input"]["kwargs"]).double()
        emb.load_state_dict({"weight": head["encoder.weight"]})
        x = emb(t_ids)
    else:
        x = torch.nn.functional.one_hot(t_ids, meta["input"]["size"]).double()
    with torch.no_grad():
        return dec(rnn(x)[0]).numpy()


@pytest.mark.parametrize(("cell", "embed"), [("lstm", 0), ("lstm", 4), ("rnn", 0), ("rnn", 3),
                                        ("gru", 0), ("gru", 4)])
def test_exported_model_gives_the_same_logits_in_torch(tmp_path, cell, embed):
    run, model = _run(tmp_path, cell, embed)
    out = tmp_path / "model.safetensors"
    paths = export_torch(load(run), out)
    assert [p.name for p in paths] == ["model.safetensors", "model.head.safetensors",
                                       "model.json"]
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, size=(3, 11))
    ours, _ = model.logits(ids)
    theirs = _torch_logits(out, ids)
    assert rel_error(ours, theirs) <= 1e-12


@pytest.mark.parametrize(("cell", "embed"), [("lstm", 4), ("rnn", 0), ("gru", 3)])
def test_round_trip_bptt_torch_bptt_is_exact(tmp_path, cell, embed):
    run, model = _run(tmp_path, cell, embed)
    out = tmp_path / "m.safetensors"
    export_torch(load(run), out)
    back, vocab, _ = import_torch_lm(out)
    assert vocab.to_json() == load(run).vocab.to_json()
    assert set(back.params) == set(model.params)
    for k, v in model.params.items():
        np.testing.assert_array_equal(back.params[k], v)


def test_cli_export_then_import_then_score(tmp_path, capsys):
    run, _model = _run(tmp_path)
    out = tmp_path / "exp.safetensors"
    assert main(["export", str(run), "--format", "torch", str(out)]) == 0
    assert main(["import", str(out), str(tmp_path / "imported")]) == 0
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    capsys.readouterr()
    assert main(["score", str(run), str(text), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["score", str(tmp_path / "imported"), str(text), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["nats_per_char"] == b["nats_per_char"]


def test_import_bidirectional_torch_state_dict_merges_biases(tmp_path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    sd = {k: v.detach().clone().contiguous() for k, v in lstm.state_dict().items()}
    path = tmp_path / "bi.safetensors"
    st_torch.save_file(sd, str(path))
    stack = import_torch_stack(path)
    assert (stack.cell, stack.num_layers, stack.bidirectional) == ("lstm", 2, True)
    assert (stack.input_size, stack.hidden_size) == (3, 4)
    for k in range(2):
        for suffix, tsuf in (("", ""), ("_rev", "_reverse")):
            np.testing.assert_array_equal(stack.params[f"l{k}.Wx{suffix}"],
                                          sd[f"weight_ih_l{k}{tsuf}"].numpy().T)
            np.testing.assert_array_equal(stack.params[f"l{k}.Wh{suffix}"],
                                          sd[f"weight_hh_l{k}{tsuf}"].numpy().T)
            np.testing.assert_array_equal(
                stack.params[f"l{k}.b{suffix}"],
                sd[f"bias_ih_l{k}{tsuf}"].numpy() + sd[f"bias_hh_l{k}{tsuf}"].numpy())
    # the imported forward direction of layer 0 reproduces torch's first layer
    from bptt import functional as F
    x = np.random.default_rng(2).standard_normal((2, 6, 3))
    one = torch.nn.LSTM(3, 4, batch_first=True).double()
    one.load_state_dict({k: sd[k] for k in ("weight_ih_l0", "weight_hh_l0",
                                       "bias_ih_l0", "bias_hh_l0")})
    with torch.no_grad():
        ref = one(torch.from_numpy(x))[0].numpy()
    p = stack.params
    h, _ = F.lstm_forward(x, np.zeros((2, 4)), p["l0.Wx"], p["l0.Wh"], p["l0.b"])
    assert rel_error(h, ref) <= 1e-12


def test_import_bidirectional_torch_gru_keeps_b_hn_apart(tmp_path):
    torch.manual_seed(1)
    gru = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for prm in gru.parameters():                       # non-zero biases in both vectors
            prm.normal_(0.0, 0.5)
    sd = {k: v.detach().clone().contiguous() for k, v in gru.state_dict().items()}
    path = tmp_path / "bigru.safetensors"
    st_torch.save_file(sd, str(path))
    stack = import_torch_stack(path)
    assert (stack.cell, stack.num_layers, stack.bidirectional) == ("gru", 2, True)
    for k in range(2):
        for suffix, tsuf in (("", ""), ("_rev", "_reverse")):
            b_ih, b_hh = sd[f"bias_ih_l{k}{tsuf}"].numpy(), sd[f"bias_hh_l{k}{tsuf}"].numpy()
            np.testing.assert_array_equal(stack.params[f"l{k}.b{suffix}"],
                                          b_ih + np.concatenate([b_hh[:8], np.zeros(4)]))
            np.testing.assert_array_equal(stack.params[f"l{k}.b_hn{suffix}"], b_hh[8:])
    x = np.random.default_rng(3).standard_normal((2, 6, 3))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2], dtype=bool)
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), [6, 4],
                                                         batch_first=True)
        ref = torch.nn.utils.rnn.pad_packed_sequence(gru(packed)[0], batch_first=True)[0]
    h, _ = stack.to_module().forward(x, mask)
    assert rel_error(h[mask], ref.numpy()[mask]) <= 1e-12
    main(["import", str(path), str(tmp_path / "s.safetensors"), "--stack-only"])
    assert json.loads((tmp_path / "s.json").read_text())["cell"] == "gru"


def test_cli_stack_only_import(tmp_path, capsys):
    rnn = torch.nn.RNN(3, 5, num_layers=1).double()
    path = tmp_path / "rnn.safetensors"
    st_torch.save_file({k: v.detach().contiguous() for k, v in rnn.state_dict().items()},
                       str(path))
    out = tmp_path / "stack.safetensors"
    assert main(["import", str(path), str(out), "--stack-only"]) == 0
    desc = json.loads(sibling(out, ".json").read_text())
    assert desc == {"cell": "rnn", "num_layers": 1, "bidirectional": False, "input_size": 3,
                    "hidden_size": 5, "source": str(path)}


def test_unsupported_files_get_one_line_errors(tmp_path, capsys):
    odd = {"weight_ih_l0": torch.zeros(8, 3, dtype=torch.float64),     # 2H gate rows: no cell
           "weight_hh_l0": torch.zeros(8, 4, dtype=torch.float64)}
    path = tmp_path / "odd.safetensors"
    st_torch.save_file(odd, str(path))
    with pytest.raises(InteropError, match=r"\(8, 4\), which is none of"):
        import_torch_stack(path)
    lstm = torch.nn.LSTM(3, 4).double()
    sd = {k: v.detach().contiguous() for k, v in lstm.state_dict().items()}
    sd["weight_hr_l0"] = torch.zeros(2, 4, dtype=torch.float64)
    bad = tmp_path / "proj.safetensors"
    st_torch.save_file(sd, str(bad))
    with pytest.raises(InteropError, match="weight_hr_l0"):
        import_torch_stack(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert main(["import", str(junk), str(tmp_path / "r"), "--stack-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bptt import: error:") and "\n" not in err
    # a bare state dict has no sidecar: the error names the way out
    with pytest.raises(InteropError, match="--stack-only"):
        import_torch_lm(bad)


def test_learned_initial_state_cannot_be_exported(tmp_path):
    run, _ = _run(tmp_path, learn_h0=True)
    with pytest.raises(InteropError, match="learn_h0"):
        export_torch(load(run), tmp_path / "x.safetensors")
