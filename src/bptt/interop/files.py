"""Moving trained models between bptt and PyTorch as safetensors files (never pickle).

Export of a character language model (``bptt export RUN --format torch OUT.safetensors``):

    OUT.safetensors          the recurrent stack with PyTorch's own keys and layouts
                             (weight_ih_l{k} (G, D), weight_hh_l{k} (G, H), bias_ih_l{k},
                             bias_hh_l{k}; gates i, f, g, o, or r, z, n), so that
                             torch.nn.LSTM(**ctor).load_state_dict(load_file(OUT)) (or
                             torch.nn.GRU / torch.nn.RNN) works as is
    OUT.head.safetensors     the layers around it, in torch.nn layouts:
                             decoder.weight (V, H) and decoder.bias (V,) for torch.nn.Linear,
                             encoder.weight (V, E) for torch.nn.Embedding (embedding models only)
    OUT.json                 the sidecar: the constructor arguments of each module, the
                             vocabulary, and how the input is encoded (one-hot or embedding)

The logits of the exported model in PyTorch are
``decoder(lstm(encoder(ids) or one_hot(ids))[0])``; they equal bptt's (float64, to rounding).

Import (``bptt import``) reads a torch.nn.RNN / LSTM / GRU state dict saved as safetensors
(multi-layer, bidirectional; b = bias_ih + bias_hh, except a GRU's bias_hh n block, which is
its b_hn). With the sidecar and head of an export it
rebuilds the whole language model; with a bare state dict it gives the recurrent stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.charlm.rundir import atomic_write_bytes, atomic_write_text
from bptt.interop.torch import (
    GRULayerWeights,
    LayerWeights,
    stack_from_torch_state_dict,
    stack_to_torch_state_dict,
)

SIDECAR_FORMAT = "bptt-torch-export"
_LAYER = re.compile(r"^weight_ih_l(\d+)(_reverse)?$")


class InteropError(ValueError):
    """A file that cannot be exported or imported (one-line message naming the fix)."""


def _st():
    try:
        from safetensors import numpy as st
    except ImportError:
        raise InteropError("reading and writing safetensors needs the 'safetensors' package; "
                           "pip install 'bptt[train]'") from None
    return st


def sibling(out: Path, suffix: str) -> Path:
    """OUT.safetensors -> OUT<suffix> (e.g. OUT.head.safetensors, OUT.json)."""
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + suffix)


def lm_to_torch_arrays(model) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """A ``bptt.nn.LanguageModel`` -> (stack state dict, head state dict, constructor args).

    Arrays are NumPy, in PyTorch's layouts (see the module docstring).
    """
    cfg = model.config
    if cfg.learn_h0:
        raise InteropError("this model learns its initial state (learn_h0); torch.nn.LSTM has "
                           "no such parameter, so it cannot be exported faithfully")
    p = model.params
    names = ("Wx", "Wh", "b", "b_hn") if cfg.cell == "gru" else ("Wx", "Wh", "b")
    layers = [tuple(p[f"rnn.l{k}.{n}"] for n in names) for k in range(cfg.layers)]
    stack = stack_to_torch_state_dict(layers, cfg.cell)
    head = {"decoder.weight": np.ascontiguousarray(p["out.w"].T), "decoder.bias": p["out.b"]}
    D = cfg.embed if cfg.embed > 0 else cfg.vocab_size
    if cfg.embed > 0:
        head["encoder.weight"] = p["embed.W"]
    ctor = {"input_size": D, "hidden_size": cfg.hidden, "num_layers": cfg.layers,
            "batch_first": True, "bias": True, "bidirectional": False}
    if cfg.cell == "rnn":
        ctor["nonlinearity"] = "tanh"
    return stack, head, ctor


def export_torch(loaded, out: str | Path) -> list[Path]:
    """Write OUT.safetensors, OUT.head.safetensors and OUT.json for a loaded char-LM run.

    ``loaded`` is what ``bptt.charlm.sampling.load(run)`` returns. Returns the paths written.
    """
    from bptt.charlm.rundir import refuse_run_file

    out = Path(out)
    if out.is_dir():
        raise InteropError(f"{out} is a directory; name the output file, e.g. {out}/model."
                           f"safetensors")
    if not out.name.endswith(".safetensors"):
        raise InteropError(f"{out}: name the output file *.safetensors")
    if not out.parent.is_dir():
        raise InteropError(f"{out.parent} is not a directory; create it first")
    for p in (out, sibling(out, ".head.safetensors"), sibling(out, ".json")):
        refuse_run_file(p, "OUT")
        if p.is_dir():
            raise InteropError(f"{p} is a directory; choose another OUT")
    model = loaded.model
    stack, head, ctor = lm_to_torch_arrays(model)
    cfg = model.config
    module = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}[cfg.cell]
    head_path, json_path = sibling(out, ".head.safetensors"), sibling(out, ".json")
    meta = {"format": SIDECAR_FORMAT, "version": 1,
            "rnn": {"module": module, "kwargs": ctor, "file": out.name},
            "decoder": {"module": "torch.nn.Linear",
                        "kwargs": {"in_features": cfg.hidden, "out_features": cfg.vocab_size},
                        "file": head_path.name, "prefix": "decoder."},
            "input": ({"kind": "embedding", "module": "torch.nn.Embedding",
                       "kwargs": {"num_embeddings": cfg.vocab_size, "embedding_dim": cfg.embed},
                       "file": head_path.name, "prefix": "encoder."}
                      if cfg.embed > 0 else {"kind": "one-hot", "size": cfg.vocab_size}),
            "bptt_config": cfg.to_dict(),
            "vocab": loaded.vocab.to_json(),
            "source": str(loaded.path)}
    write_safetensors(out, stack)
    write_safetensors(head_path, head)
    atomic_write_text(json_path, json.dumps(meta, indent=1) + "\n")
    return [out, head_path, json_path]


def write_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Serialise in memory, then write atomically (a full disk leaves no partial file)."""
    blob = _st().save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, blob)


@dataclass
class ImportedStack:
    """A recurrent stack read from a PyTorch state dict."""

    cell: str
    num_layers: int
    bidirectional: bool
    input_size: int
    hidden_size: int
    params: dict[str, np.ndarray]     # l{k}.Wx / l{k}.Wh / l{k}.b (GRU: l{k}.b_hn), *_rev too
                                      # when bidirectional

    def to_module(self, dtype=None):
        """A ``bptt.nn.RecurrentStack`` (or ``BidirectionalStack``) holding these weights."""
        from bptt.nn import RecurrentStack
        dt = dtype or self.params["l0.Wx"].dtype
        if self.bidirectional:
            from bptt.nn.bidirectional import BidirectionalStack
            m: BidirectionalStack | RecurrentStack = BidirectionalStack(
                self.input_size, self.hidden_size, self.cell, self.num_layers, dtype=dt)
        else:
            m = RecurrentStack(self.input_size, self.hidden_size, self.cell, self.num_layers,
                               dtype=dt)
        for k, v in self.params.items():
            m.params[k][...] = v
        return m


def _read(path: Path) -> dict[str, np.ndarray]:
    from bptt.charlm.rundir import RunDirError, check_regular_file

    try:
        check_regular_file(path, "safetensors file")
    except RunDirError as e:
        raise InteropError(str(e)) from None
    try:
        return _st().load(path.read_bytes())
    except InteropError:
        raise
    except Exception as e:     # safetensors raises its own error types
        raise InteropError(f"{path} is not a readable safetensors file ({e})") from None


def _infer_cell(sd: dict[str, np.ndarray], path: Path) -> str:
    w_ih = sd.get("weight_ih_l0")
    w_hh = sd.get("weight_hh_l0")
    if w_ih is None or w_hh is None or w_hh.ndim != 2:
        raise InteropError(f"{path} has no weight_ih_l0 / weight_hh_l0; is it a torch.nn.RNN, "
                           f"LSTM or GRU state dict?")
    G, H = w_hh.shape
    if G == 4 * H:
        return "lstm"
    if G == 3 * H:
        return "gru"
    if G == H:
        return "rnn"
    raise InteropError(f"{path}: weight_hh_l0 has shape {tuple(w_hh.shape)}, which is none of "
                       f"(H, H) (RNN), (4H, H) (LSTM), (3H, H) (GRU); other cells are not "
                       f"supported")


def import_torch_stack(path: str | Path, cell: str | None = None) -> ImportedStack:
    """Read a torch.nn.RNN / LSTM / GRU state dict saved with safetensors.

    ``cell`` ('rnn', 'lstm' or 'gru') is inferred from weight_hh_l0's shape when not given.
    """
    path = Path(path)
    sd = _read(path)
    cell = cell or _infer_cell(sd, path)
    try:
        layers = stack_from_torch_state_dict(sd, cell)
    except ValueError as e:
        raise InteropError(f"{path}: {e}") from None
    params: dict[str, np.ndarray] = {}
    bidirectional = isinstance(layers[0], tuple) and not hasattr(layers[0], "Wx")
    for k, entry in enumerate(layers):
        dirs = (entry,) if isinstance(entry, (LayerWeights, GRULayerWeights)) else entry
        for suffix, lw in zip(("", "_rev"), dirs):
            params[f"l{k}.Wx{suffix}"] = lw.Wx
            params[f"l{k}.Wh{suffix}"] = lw.Wh
            params[f"l{k}.b{suffix}"] = lw.b
            if isinstance(lw, GRULayerWeights):                     # cell == "gru"
                params[f"l{k}.b_hn{suffix}"] = lw.b_hn
    H = params["l0.Wh"].shape[0]
    return ImportedStack(cell, len(layers), bidirectional, params["l0.Wx"].shape[0], H, params)


def import_torch_lm(path: str | Path):
    """Rebuild a ``bptt.nn.LanguageModel`` and its ``Vocab`` from an export's three files.

    ``path`` is OUT.safetensors; OUT.json and OUT.head.safetensors must lie beside it.
    """
    from bptt.charlm.checkpoint import CheckpointError
    from bptt.charlm.sampling import model_config_of
    from bptt.charlm.text import Vocab
    from bptt.nn import LanguageModel

    path = Path(path)
    side = sibling(path, ".json")
    try:
        meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else None
        if meta is None:
            raise OSError("no such file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InteropError(f"{side} is missing or unreadable ({e}); a bare state dict imports "
                           f"as a recurrent stack only (bptt import ... --stack-only)") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise InteropError(f"{side} is not a bptt export sidecar")
    stack = import_torch_stack(path)
    decoder = meta.get("decoder")
    hname = decoder.get("file") if isinstance(decoder, dict) else None
    if not isinstance(hname, str) or Path(hname).name != hname:
        raise InteropError(f"{side} has no decoder.file naming the head file beside it; "
                           f"export the run again with bptt export")
    head = _read(path.parent / hname)
    try:
        cfg = model_config_of({"model": meta.get("bptt_config")}, f"{side}: bptt_config")
        vocab = Vocab.from_json(meta["vocab"])
    except (CheckpointError, KeyError, TypeError, ValueError, OverflowError) as e:
        msg = str(e) if isinstance(e, CheckpointError) else f"{side} has no usable vocabulary"
        raise InteropError(f"{msg}; export the run again with bptt export") from None
    if vocab.size != cfg.vocab_size:
        raise InteropError(f"{side}: vocabulary size {vocab.size} does not match vocab_size "
                           f"{cfg.vocab_size}; export the run again with bptt export")
    if stack.bidirectional or stack.cell != cfg.cell or stack.num_layers != cfg.layers:
        raise InteropError(f"{path} does not match its sidecar (cell {stack.cell}, "
                           f"{stack.num_layers} layers)")
    model = LanguageModel(cfg, np.random.default_rng(0))
    arrays: dict[str, np.ndarray | None] = {f"rnn.{k}": v for k, v in stack.params.items()}
    w = head.get("decoder.weight")
    arrays["out.w"] = w.T if w is not None and w.ndim == 2 else w
    arrays["out.b"] = head.get("decoder.bias")
    if cfg.embed > 0:
        arrays["embed.W"] = head.get("encoder.weight")
    for name, p in model.params.items():
        a = arrays.get(name)
        if a is None or a.shape != p.shape:
            got = "missing" if a is None else f"shape {tuple(a.shape)}"
            raise InteropError(f"{path}: parameter {name} is {got}, expected {p.shape}")
        if a.dtype != p.dtype:
            raise InteropError(f"{path}: parameter {name} is {a.dtype}, the model {p.dtype} "
                               f"(bptt_config.dtype); save the weights as {p.dtype} (e.g. "
                               f"model.float() in PyTorch) or set the sidecar's dtype")
        p[...] = a
    return model, vocab, meta
