"""Sampling text from a trained language model and scoring text under it.

Everything here needs only a checkpoint (the vocabulary is stored in it), never the training data.

Sampling one symbol from scores z (V,):

    greedy      argmax z
    otherwise   p = softmax(z / temperature); keep the top_k largest p (top_k > 0); keep the
                smallest set of largest p whose sum reaches top_p (top_p < 1, "nucleus");
                renormalise and draw with the given np.random.Generator.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.charlm.checkpoint import (
    FOR_MODEL,
    MODEL_KEYS,
    CheckpointError,
    check_arrays,
    check_keys,
    load_checkpoint,
)
from bptt.charlm.memory import check_fits, n_parameters
from bptt.charlm.text import CorpusError, Vocab, load_encoded, read_ids
from bptt.functional import log_softmax
from bptt.nn import LanguageModel, LMConfig
from bptt.nn.layers import CELLS


@dataclass
class Loaded:
    model: LanguageModel
    vocab: Vocab
    meta: dict
    path: str      # the checkpoint JSON


def model_config_of(meta: dict, where: str = "checkpoint") -> LMConfig:
    """The LMConfig of a checkpoint (keys type-checked by ``checkpoint.check_meta``; unknown
    keys of a newer bptt ignored), its ranges checked and its memory estimated before any
    allocation."""
    d = meta.get("model")
    if not isinstance(d, dict):
        raise CheckpointError(f"{where} has no model config; the checkpoint is damaged")
    check_keys(d, MODEL_KEYS, f"{where}: model", "the checkpoint is damaged")
    config = LMConfig(**{k: d[k] for k in MODEL_KEYS})
    bad = None
    if config.cell not in CELLS:
        bad = f"cell {config.cell!r}"
    elif config.dtype not in ("float32", "float64"):
        bad = f"dtype {config.dtype!r}"
    elif min(config.vocab_size, config.hidden, config.layers) < 1 or config.embed < 0:
        bad = (f"sizes vocab_size {config.vocab_size}, hidden {config.hidden}, layers "
               f"{config.layers}, embed {config.embed}")
    elif not 0 <= config.dropout < 1:
        bad = f"dropout {config.dropout}"
    if bad:
        raise CheckpointError(f"{where}: the model has {bad}, which bptt cannot build; the "
                              f"checkpoint is damaged")
    n = n_parameters(config)
    try:
        check_fits(2 * n * np.dtype(config.dtype).itemsize,
                   f"the model of {where} ({n:,} parameters)",
                   "the checkpoint is damaged, or was made on a machine with more memory")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    return config


def model_from_arrays(meta: dict, arrays: dict[str, np.ndarray], where: str = "checkpoint"
                      ) -> LanguageModel:
    """Rebuild the model of a checkpoint and copy its parameters in (shapes and dtypes
    checked: nothing is cast)."""
    model = LanguageModel(model_config_of(meta, where), np.random.default_rng(0))
    check_arrays(arrays, {f"param/{k}": v for k, v in model.params.items()}, where)
    for name, p in model.params.items():
        p[...] = arrays[f"param/{name}"]
    return model


def load(run: str | os.PathLike, which: str = "auto") -> Loaded:
    """Load the model and vocabulary of a run directory (best, else last) or checkpoint JSON."""
    meta, arrays, jpath = load_checkpoint(run, which)
    check_keys(meta, FOR_MODEL, str(jpath), "this checkpoint holds no language model; give a "
                                            "run directory made by bptt train or bptt import")
    try:
        vocab = Vocab.from_json(meta["vocab"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{jpath} has no usable vocabulary ({str(e)[:80]}); the "
                              f"checkpoint is damaged") from None
    if vocab.size != meta["model"]["vocab_size"]:
        raise CheckpointError(f"{jpath}: vocabulary size {vocab.size} does not match the model's "
                              f"{meta['model']['vocab_size']}; the checkpoint is damaged")
    model = model_from_arrays(meta, arrays, str(jpath))
    return Loaded(model, vocab, meta, str(jpath))


def load_for_report(run_dir: str | os.PathLike, chars: int = 20_000
                    ) -> tuple[LanguageModel, list[str], str] | None:
    """(model, vocabulary as characters, the first ``chars`` of validation text) of a run made
    by ``bptt train``, for ``bptt report``; None when the run has no checkpoint or no encoded
    corpus. In byte mode each byte stands for the character of the same value (Latin-1)."""
    run_dir = Path(run_dir)
    if not any((run_dir / f"{w}.json").is_file() for w in ("best", "last")):
        return None
    try:
        cmeta = json.loads((run_dir / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cmeta, dict):
        return None
    loaded = load(run_dir)
    corpus = load_encoded(run_dir / "corpus.npy", cmeta)
    train = loaded.meta.get("train")
    frac = train.get("val_fraction") if isinstance(train, dict) else None
    if not (isinstance(frac, float) and 0 < frac < 1):
        frac = 0.1
    if corpus.vocab != loaded.vocab:
        raise CheckpointError(f"{run_dir}: the encoded corpus does not match the checkpoint's "
                              f"vocabulary; the run directory is damaged")
    _, val = corpus.split(frac)
    ids = np.asarray(val[:chars], dtype=np.int64)
    vocab = loaded.vocab
    chars_of = [chr(s) for s in vocab.symbols]
    text = "".join(chars_of[i] for i in ids)
    return loaded.model, chars_of, text


# ---------------------------------------------------------------- sampling

def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature is {temperature}; it must be positive (use --greedy for "
                         f"the most likely character)")
    if top_k < 0:
        raise ValueError(f"top-k is {top_k}; it must be 0 (off) or positive")
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p is {top_p}; it must be in (0, 1]")


def next_symbol(scores: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, greedy: bool = False) -> int:
    """Pick the next id from scores (V,) (see the module docstring)."""
    z = np.asarray(scores, dtype=np.float64)
    if greedy:
        return int(np.argmax(z))
    z = z / temperature
    if 0 < top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]              # mass of the larger ones
        keep = order[before < top_p]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    c = np.cumsum(p)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), p.size - 1))


def start_id(vocab: Vocab) -> int:
    """The input that starts a sample without a prime: a newline if the vocabulary has one."""
    nl = ord("\n")
    return vocab.symbols.index(nl) if nl in vocab.symbols else 0


def prepare_prompt(model: LanguageModel, vocab: Vocab, prime: str, stop: str | None,
                   skip_unknown: bool, state: list | None
                   ) -> tuple[int, list | None, list[int], list[int]]:
    """What sampling and beam search start from: (the first input id, the state after the
    prime's symbols but the last, the prime symbols skipped as unknown, the stop string's ids).
    The first input is the prime's last symbol, or a newline (``start_id``) without a prime."""
    ids, skipped = vocab.encode(prime, skip_unknown, what="the prime text") if prime \
        else (np.zeros(0, dtype=np.int64), [])
    stop_ids: list[int] = []
    if stop:
        enc, missing = vocab.encode(stop, skip_unknown=True)
        if missing:
            raise CorpusError(f"the stop string has characters the model never produces: "
                              f"{', '.join(map(repr, map(chr, missing)))}")
        stop_ids = enc.tolist()
    state = check_state(model, state)
    if ids.size > 1:
        _, state = model.logits(ids[None, :-1], state)
    return (int(ids[-1]) if ids.size else start_id(vocab)), state, skipped, stop_ids


def generate(model: LanguageModel, vocab: Vocab, length: int, rng: np.random.Generator,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, greedy: bool = False,
             prime: str = "", stop: str | None = None, skip_unknown: bool = False,
             state: list | None = None) -> tuple[str, list[int]]:
    """Sample up to ``length`` symbols after ``prime``; returns (generated text without the
    prime, unknown prime symbols that were skipped). With ``stop``, generation ends where the
    stop string first appears (the stop string is not included).

    ``state`` is the hidden state to start from (default: the model's initial state): one
    ``(h, c)`` pair per layer, h and c (1, H) (c None without a cell state; for one layer
    without one, h alone, (1, H) or (H,), will do), e.g. the state carried by
    training, as min-char-rnn samples from ``hprev``. The prime's symbols but the last are run
    from it; the last (or a newline without a prime) is the first input."""
    if not greedy:                        # greedy ignores temperature, top_k and top_p
        check_sampling(temperature, top_k, top_p)
    if length < 0:
        raise ValueError(f"length is {length}; it must be 0 or more")
    cur, state, skipped, stop_ids = prepare_prompt(model, vocab, prime, stop, skip_unknown,
                                                   state)
    out: list[int] = []
    x = np.zeros((1, 1), dtype=np.int64)
    for _ in range(length):
        x[0, 0] = cur
        scores, state = model.logits(x, state)
        cur = next_symbol(scores[0, -1], rng, temperature, top_k, top_p, greedy)
        out.append(cur)
        if stop_ids and out[-len(stop_ids):] == stop_ids:
            del out[-len(stop_ids):]
            break
    return vocab.decode(out), skipped


def check_state(model: LanguageModel, state: list | None) -> list | None:
    """A copy of a one-row state for ``model`` (None stays None); a clear error if it does not
    fit."""
    if state is None:
        return None
    c = model.config
    if isinstance(state, np.ndarray) and c.layers == 1 and c.cell != "lstm":
        state = [(state.reshape(1, -1) if state.ndim == 1 else state, None)]   # h alone
    if not isinstance(state, (list, tuple)) or len(state) != c.layers:
        raise ValueError(f"the initial state must be a list of {c.layers} (h, c) pair(s), one "
                         f"per layer")
    out = []
    for k, pair in enumerate(state):
        h, cc = pair
        for name, a in (("h", h), ("c", cc)):
            if a is None and (name == "h" or c.cell == "lstm"):
                raise ValueError(f"the initial state of layer {k} has no {name}")
            if a is not None and (not isinstance(a, np.ndarray) or a.shape != (1, c.hidden)):
                raise ValueError(f"the initial {name} of layer {k} must be an array of shape "
                                 f"(1, {c.hidden}); got {getattr(a, 'shape', type(a).__name__)}")
        out.append((h.astype(c.dtype, copy=True),
                    None if cc is None or c.cell != "lstm" else cc.astype(c.dtype, copy=True)))
    return out


# ---------------------------------------------------------------- scoring

def nll_sum(scores: np.ndarray, y: np.ndarray) -> float:
    """Sum of -log p(y) over all positions; scores (N, T, V), y (N, T) ints."""
    N, T, V = scores.shape
    logp = log_softmax(scores.reshape(N * T, V).astype(np.float64, copy=False), axis=1)
    return float(-logp[np.arange(N * T), y.reshape(N * T)].sum())


def score_ids(model: LanguageModel, ids: np.ndarray, chunk: int = 1024) -> tuple[float, int]:
    """(total nats, predictions) for predicting ids[1:] from what precedes, as one sequence."""
    ids = np.asarray(ids)
    total, state = 0.0, None
    for s in range(0, len(ids) - 1, chunk):
        x = np.asarray(ids[s:s + chunk + 1], dtype=np.int64)
        scores, state = model.logits(x[None, :-1], state)
        total += nll_sum(scores, x[None, 1:])
    return total, max(len(ids) - 1, 0)


def score_file(loaded: Loaded, path: str | os.PathLike,
               skip_unknown: bool = False) -> tuple[dict, list[int]]:
    """Score a text file: ({nats_per_char, bits_per_char, perplexity, chars}, skipped symbols).

    ``chars`` counts the predicted characters: every one after the first.
    """
    ids, skipped = read_ids(path, loaded.vocab, skip_unknown)
    if len(ids) < 2:
        raise CorpusError(f"{path} has {len(ids)} usable character(s); scoring needs at least 2 "
                          f"(each character is predicted from the ones before it)")
    total, n = score_ids(loaded.model, ids)
    nats = total / n
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
            "perplexity": math.exp(nats), "chars": n}, skipped
