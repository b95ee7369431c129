"""Weight mapping between bptt's recurrent layers and ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

One layer, one direction (G = H for a tanh RNN, 4H for an LSTM, 3H for a GRU):

    bptt                                torch
    z = x @ Wx + h @ Wh + b             z = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    Wx (D, G)                           weight_ih (G, D) = Wx.T
    Wh (H, G)                           weight_hh (G, H) = Wh.T
    b  (G,)                             bias_ih (G,) and bias_hh (G,): only their sum matters

Both libraries order the LSTM gates i, f, g, o and the GRU gates r, z, n along G, so no gate
block moves. A vanilla RNN maps to ``torch.nn.RNN(nonlinearity='tanh')``.

Biases: PyTorch keeps two bias vectors that only ever appear summed. Reading from PyTorch,
``b = bias_ih + bias_hh``. Writing to PyTorch, the whole bias goes into ``bias_ih`` and
``bias_hh`` is zero, so bptt -> torch -> bptt is exact. For gradients,
dL/d bias_ih = dL/d bias_hh = dL/db.

The GRU is the exception: its reset gate multiplies the candidate's recurrent bias,
n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), so bias_hh's n block is bptt's separate b_hn (H,)
and only the r and z blocks are summed: b = bias_ih + [bias_hh_r, bias_hh_z, 0]. Writing to
PyTorch, bias_ih = b and bias_hh = [0, 0, b_hn]. A GRU layer is a ``GRULayerWeights``
(Wx, Wh, b, b_hn).

State-dict keys of a module with ``num_layers`` L (any ``batch_first``):

    weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}        k = 0 .. L-1
    the same keys with the suffix ``_reverse`` for the reverse direction (bidirectional=True)

Layer k > 0 reads the previous layer's output, so its D is H (unidirectional) or 2H
(bidirectional: forward and reverse outputs concatenated in that order). ``bias=False`` modules
(no bias keys) read as b = 0. ``proj_size`` (``weight_hr_l{k}``) is not supported.

A stack is a list with one entry per layer: a ``LayerWeights`` (Wx, Wh, b) (``GRULayerWeights``
for a GRU) for a unidirectional stack, or a pair ``(forward, reverse)`` of them for a
bidirectional one.

PyTorch is imported only inside the functions that return tensors; NumPy arrays need no PyTorch.
Arrays come back as fresh C-contiguous copies, never views of the inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

import numpy as np

from bptt.functional.cells import GATES

__all__ = [
    "GRULayerWeights",
    "LayerWeights",
    "Stack",
    "layer_from_torch",
    "layer_to_torch",
    "stack_from_torch_state_dict",
    "stack_to_torch_state_dict",
]

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class LayerWeights(NamedTuple):
    """bptt parameters of one recurrent layer (one direction); unpacks as ``Wx, Wh, b``."""

    Wx: np.ndarray   # (D, G)
    Wh: np.ndarray   # (H, G)
    b: np.ndarray    # (G,)


class GRULayerWeights(NamedTuple):
    """bptt parameters of one GRU layer (one direction); unpacks as ``Wx, Wh, b, b_hn``."""

    Wx: np.ndarray   # (D, 3H)
    Wh: np.ndarray   # (H, 3H)
    b: np.ndarray    # (3H,) input-side biases, with torch's recurrent r and z biases added
    b_hn: np.ndarray  # (H,) torch's bias_hh n block, inside the reset gate's product


Layer = LayerWeights | GRULayerWeights
Stack = list[Layer] | list[tuple[Layer, Layer]]


def _fail(fn: str, msg: str) -> NoReturn:
    raise ValueError(f"{fn}: {msg}")


def _gates(fn: str, cell: str) -> int:
    if cell not in GATES:
        _fail(fn, f"cell {cell!r} is unknown; use 'rnn' (torch.nn.RNN, tanh), 'lstm' or 'gru'")
    return GATES[cell]


def _cell_of(G: int, H: int, cell: str | None) -> str:
    """The cell name, given or read off G = gates * H (already checked by ``_gates_of``)."""
    return cell if cell is not None else {g: c for c, g in GATES.items()}[G // H]


def _as_numpy(fn: str, name: str, a: object) -> np.ndarray:
    """A float32/float64 NumPy array from an ndarray or a torch tensor (may share memory)."""
    if isinstance(a, np.ndarray):
        arr = a
    elif hasattr(a, "detach") and hasattr(a, "numpy"):         # a torch.Tensor (torch not imported)
        t = a.detach().cpu()
        if str(t.dtype) not in ("torch.float32", "torch.float64"):
            _fail(fn, f"{name} has dtype {t.dtype}; use float32 or float64 (e.g. t.double())")
        arr = t.numpy()
    else:
        _fail(fn, f"{name} is a {type(a).__name__}; pass a NumPy array or a torch tensor")
    if arr.dtype not in _FLOATS:
        _fail(fn, f"{name} has dtype {arr.dtype}; use float32 or float64")
    return arr


def _check_ndim(fn: str, name: str, a: np.ndarray, ndim: int, pattern: str) -> None:
    if a.ndim != ndim:
        _fail(fn, f"{name} has shape {a.shape}; it must be {ndim}-D with shape {pattern}")


def _gates_of(fn: str, name: str, G: int, H: int, cell: str | None) -> int:
    """Check that G = gates * H for the given cell (or for either cell when cell is None)."""
    allowed = [_gates(fn, cell)] if cell is not None else sorted(GATES.values())
    if H < 1 or G not in [k * H for k in allowed]:
        what = f"{cell} needs" if cell is not None else "bptt supports"
        sizes = " or ".join(f"{k}H = {k * H}" if k > 1 else f"H = {H}" for k in allowed)
        _fail(fn, f"{name} has {G} gate rows for H = {H}; {what} G = {sizes}")
    return G // H


def _to_tensors(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch  # lazily: bptt never requires PyTorch

    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def layer_to_torch(Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, cell: str | None = None,
                   as_tensors: bool = False, b_hn: np.ndarray | None = None) -> dict[str, Any]:
    """bptt (Wx (D, G), Wh (H, G), b (G,)) -> torch parameters of one layer and direction.

    Returns ``{"weight_ih": Wx.T (G, D), "weight_hh": Wh.T (G, H), "bias_ih": b (G,),
    "bias_hh": zeros (G,)}``: PyTorch only ever uses ``bias_ih + bias_hh``, so the whole bias goes
    into ``bias_ih`` and ``bias_hh`` is zero (``layer_from_torch`` then gives back b exactly). A
    GRU (G = 3H) also needs ``b_hn`` (H,), which becomes bias_hh's n block (module docstring).
    ``cell`` ('rnn', 'lstm' or 'gru'), if given, is checked against G. NumPy arrays (fresh
    copies) unless ``as_tensors``, which returns torch tensors (imports torch).
    """
    fn = "layer_to_torch"
    Wx, Wh, b = (_as_numpy(fn, n, a) for n, a in (("Wx", Wx), ("Wh", Wh), ("b", b)))
    _check_ndim(fn, "Wx", Wx, 2, "(D, G)")
    _check_ndim(fn, "Wh", Wh, 2, "(H, G)")
    _check_ndim(fn, "b", b, 1, "(G,)")
    H, G = Wh.shape
    _gates_of(fn, "Wh", G, H, cell)
    gru = _cell_of(G, H, cell) == "gru"
    if Wx.shape[1] != G or Wx.shape[0] < 1:
        _fail(fn, f"Wx has shape {Wx.shape}; it must be (D, G) with G = {G} to match Wh {Wh.shape}")
    if b.shape != (G,):
        _fail(fn, f"b has shape {b.shape}; it must be (G,) = ({G},) to match Wh {Wh.shape}")
    if not Wx.dtype == Wh.dtype == b.dtype:
        _fail(fn, f"Wx, Wh, b have dtypes {Wx.dtype}, {Wh.dtype}, {b.dtype}; use one dtype")
    bias_hh = np.zeros_like(b)                  # (G,)
    if gru:
        if b_hn is None:
            _fail(fn, "a GRU layer needs b_hn (H,), the recurrent bias of its candidate n")
        b_hn = _as_numpy(fn, "b_hn", b_hn)
        if b_hn.shape != (H,) or b_hn.dtype != b.dtype:
            _fail(fn, f"b_hn has shape {b_hn.shape} and dtype {b_hn.dtype}; it must be (H,) = "
                      f"({H},) of {b.dtype}")
        bias_hh[2 * H:] = b_hn
    elif b_hn is not None:
        _fail(fn, "b_hn is a GRU's bias; this layer is not a GRU (G = 3H)")
    out = {
        "weight_ih": Wx.T.copy(),               # (G, D)
        "weight_hh": Wh.T.copy(),               # (G, H)
        "bias_ih": b.copy(),                    # (G,)
        "bias_hh": bias_hh,                     # (G,)
    }
    return _to_tensors(out) if as_tensors else out


def layer_from_torch(weight_ih: Any, weight_hh: Any, bias_ih: Any = None, bias_hh: Any = None,
                     cell: str | None = None) -> Layer:
    """torch parameters of one layer and direction -> bptt ``LayerWeights(Wx, Wh, b)``.

    weight_ih (G, D), weight_hh (G, H), bias_ih (G,) or None, bias_hh (G,) or None, as NumPy
    arrays or torch tensors (any device; detached). Returns Wx = weight_ih.T (D, G),
    Wh = weight_hh.T (H, G) and b = bias_ih + bias_hh (G,) (a missing bias counts as zero), all
    fresh NumPy arrays of the inputs' dtype. For a GRU (G = 3H) a ``GRULayerWeights`` whose
    b_hn is bias_hh's n block, left out of b. ``cell`` ('rnn', 'lstm' or 'gru'), if given, is
    checked against G; else it is read off G.
    """
    fn = "layer_from_torch"
    w_ih = _as_numpy(fn, "weight_ih", weight_ih)
    w_hh = _as_numpy(fn, "weight_hh", weight_hh)
    _check_ndim(fn, "weight_ih", w_ih, 2, "(G, D)")
    _check_ndim(fn, "weight_hh", w_hh, 2, "(G, H)")
    G, H = w_hh.shape
    _gates_of(fn, "weight_hh", G, H, cell)
    if w_ih.shape[0] != G or w_ih.shape[1] < 1:
        _fail(fn, f"weight_ih has shape {w_ih.shape}; it must be (G, D) with G = {G} to match "
                  f"weight_hh {w_hh.shape}")
    gru = _cell_of(G, H, cell) == "gru"
    b = np.zeros(G, dtype=w_hh.dtype)
    b_hn = np.zeros(H, dtype=w_hh.dtype)
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if bias is None:
            continue
        arr = _as_numpy(fn, name, bias)
        if arr.shape != (G,):
            _fail(fn, f"{name} has shape {arr.shape}; it must be (G,) = ({G},)")
        if arr.dtype != b.dtype:
            _fail(fn, f"{name} has dtype {arr.dtype} but weight_hh has {b.dtype}; use one dtype")
        if gru and name == "bias_hh":
            b[:2 * H] += arr[:2 * H]                 # r, z: only the sum matters
            b_hn += arr[2 * H:]                      # n: multiplied by r, kept apart
        else:
            b += arr
    if w_ih.dtype != w_hh.dtype:
        _fail(fn, f"weight_ih has dtype {w_ih.dtype} but weight_hh has {w_hh.dtype}; use one dtype")
    if gru:
        return GRULayerWeights(w_ih.T.copy(), w_hh.T.copy(), b, b_hn)
    return LayerWeights(w_ih.T.copy(), w_hh.T.copy(), b)


def _key(kind: str, k: int, reverse: bool) -> str:
    return f"{kind}_l{k}" + ("_reverse" if reverse else "")


def _parse_keys(fn: str, state_dict: Mapping[str, Any],
                prefix: str) -> dict[tuple[str, int, bool], np.ndarray]:
    """The state dict as {(kind, layer, reverse): array}, ``prefix`` stripped; an unknown key
    or an empty dict is refused."""
    found: dict[tuple[str, int, bool], np.ndarray] = {}
    for full_key, value in state_dict.items():
        key: object = full_key
        if prefix:
            key = full_key[len(prefix):] if str(full_key).startswith(prefix) else None
        m = _KEY.match(key) if isinstance(key, str) else None
        if m is None:
            hint = " (proj_size is not supported)" if "weight_hr" in str(full_key) else ""
            _fail(fn, f"state_dict has the unknown key {full_key!r}{hint}; expected "
                      f"{prefix}weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k> "
                      f"(optionally with _reverse)")
        found[(m[1], int(m[2]), m[3] is not None)] = _as_numpy(fn, f"state_dict[{full_key!r}]",
                                                               value)
    if not found:
        _fail(fn, f"state_dict is empty; it needs {prefix}weight_ih_l0, {prefix}weight_hh_l0, ...")
    return found


def stack_from_torch_state_dict(state_dict: Mapping[str, Any], cell: str,
                                prefix: str = "") -> Stack:
    """A ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` state dict -> a bptt stack (see the module doc).

    ``state_dict`` maps ``weight_ih_l{k}[_reverse]`` etc. to NumPy arrays or torch tensors;
    ``prefix`` (e.g. ``"encoder.rnn."``) is stripped from every key first. Returns a list of
    ``LayerWeights`` per layer, or of ``(forward, reverse)`` pairs when the dict holds
    ``_reverse`` keys (``GRULayerWeights`` for a GRU). Raises ValueError naming the key for an
    unknown or missing key, a wrong
    shape or dtype; every layer must have the same H and layer k > 0 must take D = H * directions.
    """
    fn = "stack_from_torch_state_dict"
    gates = _gates(fn, cell)
    found = _parse_keys(fn, state_dict, prefix)
    num_layers = max(k for _, k, _ in found) + 1
    bidirectional = any(rev for _, _, rev in found)
    has_bias = any(kind.startswith("bias") for kind, _, _ in found)
    kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_bias else [])
    directions = [False, True] if bidirectional else [False]
    for k in range(num_layers):
        for rev in directions:
            for kind in kinds:
                if (kind, k, rev) not in found:
                    _fail(fn, f"state_dict is missing the key {prefix + _key(kind, k, rev)!r} "
                              f"(it has {num_layers} layer(s)"
                              f"{', bidirectional' if bidirectional else ''}"
                              f"{', with biases' if has_bias else ''})")
    for kind in ("weight_ih", "weight_hh"):
        if found[(kind, 0, False)].ndim != 2:
            _fail(fn, f"{prefix + _key(kind, 0, False)!r} has shape "
                      f"{tuple(found[(kind, 0, False)].shape)}; it must be 2-D")

    H = found[("weight_hh", 0, False)].shape[1]
    G = gates * H
    dtype = found[("weight_hh", 0, False)].dtype
    D0 = found[("weight_ih", 0, False)].shape[1]
    layers: list = []
    for k in range(num_layers):
        D = D0 if k == 0 else H * len(directions)
        pair = []
        for rev in directions:
            want = {"weight_ih": (G, D), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}
            for kind in kinds:
                arr = found[(kind, k, rev)]
                name = prefix + _key(kind, k, rev)
                if arr.shape != want[kind] or min(want[kind]) < 1:
                    _fail(fn, f"{name!r} has shape {tuple(arr.shape)}; {cell} layers with "
                              f"H = {H} need {want[kind]}")
                if arr.dtype != dtype:
                    _fail(fn, f"{name!r} has dtype {arr.dtype} but weight_hh_l0 has {dtype}; "
                              f"use one dtype")
            pair.append(layer_from_torch(found[("weight_ih", k, rev)], found[("weight_hh", k, rev)],
                                         found.get(("bias_ih", k, rev)),
                                         found.get(("bias_hh", k, rev)), cell=cell))
        layers.append(tuple(pair) if bidirectional else pair[0])
    return layers


def _layer_entry(fn: str, k: int, entry: Any) -> tuple[Sequence[Any], ...]:
    """Split one stack entry into its directions: ((Wx, Wh, b),) or ((Wx, Wh, b), (Wx, Wh, b))
    (four arrays, with b_hn, for a GRU)."""
    def is_layer(e: Any) -> bool:
        return isinstance(e, (tuple, list)) and len(e) in (3, 4) and \
            all(hasattr(a, "shape") for a in e)

    if is_layer(entry):
        return (entry,)
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and all(map(is_layer, entry)):
        return tuple(entry)
    _fail(fn, f"layers[{k}] is a {type(entry).__name__}; pass LayerWeights (Wx, Wh, b) (GRU: "
              f"Wx, Wh, b, b_hn) or a (forward, reverse) pair of them")
    raise AssertionError  # unreachable


def stack_to_torch_state_dict(layers: Stack, cell: str, as_tensors: bool = False) -> dict[str, Any]:
    """A bptt stack -> a state dict for ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

    ``layers`` holds one entry per layer: ``(Wx, Wh, b)`` (GRU: ``(Wx, Wh, b, b_hn)``)
    (unidirectional) or a pair of them ``(forward, reverse)`` (bidirectional; every layer
    alike). Keys are
    ``weight_ih_l{k}[_reverse]`` etc.; each bias goes whole into ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` is zero (see ``layer_to_torch``). Shapes are checked exactly as
    ``stack_from_torch_state_dict`` checks them. NumPy arrays unless ``as_tensors`` (imports
    torch); load the tensors with ``module.load_state_dict(sd)``.
    """
    fn = "stack_to_torch_state_dict"
    _gates(fn, cell)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
        _fail(fn, f"layers is a {type(layers).__name__}; pass a non-empty list of layers")
    entries = [_layer_entry(fn, k, e) for k, e in enumerate(layers)]
    if len({len(e) for e in entries}) != 1:
        _fail(fn, "layers mixes unidirectional and (forward, reverse) entries; use one kind")
    out: dict[str, np.ndarray] = {}
    for k, entry in enumerate(entries):
        for d, (rev, arrays) in enumerate(zip((False, True), entry, strict=False)):
            if (len(arrays) == 4) != (cell == "gru"):
                where = f"layers[{k}]" + (f"[{d}]" if len(entry) == 2 else "")
                _fail(fn, f"{where} has {len(arrays)} arrays; a {cell} layer has "
                          f"{'4 (Wx, Wh, b, b_hn)' if cell == 'gru' else '3 (Wx, Wh, b)'}")
            Wx, Wh, b, *b_hn = arrays
            try:
                params = layer_to_torch(Wx, Wh, b, cell=cell, b_hn=b_hn[0] if b_hn else None)
            except ValueError as e:
                where = f"layers[{k}]" + (f"[{d}]" if len(entry) == 2 else "")
                raise ValueError(f"{fn}: {where}: {str(e).split(': ', 1)[1]}") from None
            for kind, arr in params.items():
                out[_key(kind, k, rev)] = arr
    try:
        stack_from_torch_state_dict(out, cell)  # the same stack checks as reading
    except ValueError as e:
        raise ValueError(f"{fn}: layers as torch keys: {str(e).split(': ', 1)[1]}") from None
    return _to_tensors(out) if as_tensors else out
