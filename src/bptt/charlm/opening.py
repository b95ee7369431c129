"""Opening a run: a new one (``new_run``: encode the corpus, build the model, write
config.json), or an existing one to continue (``load_run``: the last checkpoint validated key by
key, the encoded corpus, the metrics and samples up to the checkpoint, the rollback snapshot).

Every problem is a one-line ``CheckpointError`` / ``CorpusError`` naming the file and the fix;
keys a newer bptt wrote that this one does not know are ignored with a warning.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from bptt import __version__
from bptt.charlm.checkpoint import (
    CheckpointError,
    check_arrays,
    dataclass_from_json,
    dumps,
    load_checkpoint,
)
from bptt.charlm.config import RESUME_OVERRIDABLE, TrainConfig
from bptt.charlm.console import Console
from bptt.charlm.data import split_and_batch
from bptt.charlm.memory import check_fits, n_parameters, training_bytes
from bptt.charlm.rundir import RunDir, RunDirError, atomic_write_text, check_regular_file
from bptt.charlm.sampling import model_from_arrays
from bptt.charlm.state import SNAPSHOT_PREFIX, Counters, TrainState
from bptt.charlm.text import CorpusError, EncodedCorpus, load_encoded, prepare_corpus
from bptt.nn import LanguageModel
from bptt.optim import make_optimizer


@dataclass
class OpenedRun:
    """What a Trainer is built from."""

    cfg: TrainConfig
    corpus: EncodedCorpus
    model: LanguageModel
    state: TrainState
    snapshot: TrainState | None
    records: list[dict]                    # metrics up to the checkpoint's step
    samples: list[dict]                    # samples up to the checkpoint's step


def new_run(cfg: TrainConfig, run: RunDir, console: Console, notes: list[str]) -> OpenedRun:
    """Encode the corpus into ``run``, build the model and the initial state, write
    config.json; the memory needed is checked before the model is allocated."""
    for name in ("metrics.jsonl", "samples.txt", "samples.jsonl", "train.log"):
        (run / name).unlink(missing_ok=True)
    console.log_path = run.log_path
    for line in notes:
        console.info(line)
    corpus = prepare_corpus(cfg.corpus, run / "corpus.npy", cfg.encoding)
    atomic_write_text(run / "corpus.json", dumps(corpus.meta()))
    split_and_batch(corpus, cfg)              # a text too short fails before the model is built
    mcfg = cfg.model_config(corpus.vocab.size)
    n = n_parameters(mcfg)
    check_fits(training_bytes(mcfg, cfg.batch, cfg.seq_len),
               f"the model ({n:,} parameters, vocabulary {corpus.vocab.size}) at batch "
               f"{cfg.batch} x {cfg.seq_len}",
               "use a smaller --hidden, --layers, --embed, --batch or --seq-len")
    seeds = np.random.SeedSequence(cfg.seed).spawn(2)
    model = LanguageModel(mcfg, np.random.default_rng(seeds[0]))
    opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())
    state = TrainState(model.params, opt.init(model.params), None, Counters(),
                       np.random.default_rng(seeds[1]))
    atomic_write_text(run / "config.json", dumps(
        {"train": asdict(cfg), "model": model.config.to_dict(), "parameters": n,
         "bptt_version": __version__}))
    return OpenedRun(cfg, corpus, model, state, None, [], [])


def apply_overrides(cfg: TrainConfig, overrides: dict | None) -> None:
    """Options given with --resume: budget and evaluation options may change, others must
    match the run's."""
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k not in RESUME_OVERRIDABLE:
            if getattr(cfg, k) != v:
                raise ValueError(f"--{k.replace('_', '-')} cannot change when resuming (the "
                                 f"run has {getattr(cfg, k)!r}); start a new run instead")
            continue
        setattr(cfg, k, v)


def _rng(state, where: str) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise CheckpointError(f"{where}: the RNG state is not a PCG64 state; the checkpoint is "
                              f"damaged") from None
    return rng


def _expected(model: LanguageModel, opt_state: dict, carried_shape: tuple | None,
              layers: int, lstm: bool, prefix: str) -> dict[str, np.ndarray]:
    want = {f"{prefix}param/{k}": v for k, v in model.params.items()}
    for name, slots in opt_state["slots"].items():
        for s, a in slots.items():
            want[f"{prefix}opt/{name}/{s}"] = a
    if carried_shape is not None:
        h = np.zeros(carried_shape, dtype=model.config.dtype)
        for k in range(layers):
            want[f"{prefix}state/{k}/h"] = h
            if lstm:
                want[f"{prefix}state/{k}/c"] = h
    return want


def _state_from(meta: dict, arrays: dict, model: LanguageModel, cfg: TrainConfig,
                counters_doc, rng_doc, opt_step, prefix: str, where: str,
                steps_per_epoch: int) -> TrainState:
    """A TrainState from checkpoint arrays under ``prefix`` (shapes, dtypes and counters
    checked); its params are copies unless ``prefix`` is empty (then the model's own)."""
    if not isinstance(counters_doc, dict):
        raise CheckpointError(f"{where}: counters is not an object; the checkpoint is damaged")
    counters, _unknown = dataclass_from_json(Counters, counters_doc, f"{where}: counters")
    if counters.step < 0 or counters.epoch < 0 or not 0 <= counters.cursor < steps_per_epoch:
        raise CheckpointError(f"{where}: counters out of range (step {counters.step}, epoch "
                              f"{counters.epoch}, cursor {counters.cursor} of "
                              f"{steps_per_epoch} batches); the checkpoint is damaged")
    if not isinstance(opt_step, int) or isinstance(opt_step, bool) or opt_step < 0:
        raise CheckpointError(f"{where}: the optimizer step is {opt_step!r}; the checkpoint is "
                              f"damaged")
    opt = make_optimizer(cfg.optimizer, cfg.lr, **cfg.optimizer_kwargs())
    params = model.params if not prefix else {k: v.copy() for k, v in model.params.items()}
    opt_state = opt.init(params)
    opt_state["step"] = opt_step
    carried = f"{prefix}state/0/h" in arrays
    shape = arrays[f"{prefix}state/0/h"].shape if carried else None
    if shape is not None and shape != (cfg.batch, cfg.hidden):
        raise CheckpointError(f"{where}: the carried state has shape {shape}, expected "
                              f"{(cfg.batch, cfg.hidden)}; the checkpoint is damaged")
    check_arrays(arrays, _expected(model, opt_state, shape, cfg.layers, cfg.cell == "lstm",
                                   prefix), where)
    state = TrainState(params, opt_state, None, counters, _rng(rng_doc, where))
    state.load_arrays(arrays, cfg.layers, prefix)
    return state


def _check_same_model(cfg: TrainConfig, model: LanguageModel, vocab_size: int,
                      where: str) -> None:
    """The checkpoint's training options describe the model its arrays hold (no resume option
    can change the model's structure, so a difference is damage, not a choice)."""
    want, have = cfg.model_config(vocab_size).to_dict(), model.config.to_dict()
    for key in ("vocab_size", "cell", "hidden", "layers", "embed", "dtype"):
        if want[key] != have[key]:
            raise CheckpointError(f"{where}: its options say {key} {want[key]!r} but its model "
                                  f"has {have[key]!r}; the checkpoint is damaged (resume from "
                                  f"an intact copy, or start a new run)")


def load_run(run: RunDir, console: Console, overrides: dict | None = None) -> OpenedRun:
    """Everything needed to continue the run in ``run`` exactly where its last.json stopped."""
    meta, arrays, jpath = load_checkpoint(run.path, "last", for_resume=True)
    where = str(jpath)
    cfg, unknown = dataclass_from_json(TrainConfig, meta["train"], f"{where}: train")
    if unknown:
        console.warn(f"{where} has options this bptt does not know ({', '.join(unknown)}); "
                     f"they are ignored")
    apply_overrides(cfg, overrides)
    try:
        cfg.validate()
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    console.log_path = run.log_path
    try:
        cmeta = json.loads(check_regular_file(run / "corpus.json", "corpus.json").read_text())
        if not isinstance(cmeta, dict):
            raise ValueError
    except (OSError, ValueError, RunDirError):
        raise CorpusError(f"{run.path}/corpus.json is missing or damaged; the run cannot be "
                          f"resumed (start a new one with bptt train --out DIR)") from None
    corpus = load_encoded(run / "corpus.npy", cmeta)
    if corpus.vocab.to_json() != meta["vocab"]:
        raise CheckpointError(f"{run.path}: the encoded corpus does not match the checkpoint's "
                              f"vocabulary; the run directory is damaged")
    steps = split_and_batch(corpus, cfg)[2].steps_per_epoch
    model = model_from_arrays(meta, arrays, where)
    _check_same_model(cfg, model, corpus.vocab.size, where)
    state = _state_from(meta, arrays, model, cfg, meta["counters"], meta["rng"],
                        meta["optimizer"]["step"], "", where, steps)
    snapshot = None
    snap = meta.get("rollback_snapshot")
    if isinstance(snap, dict):
        try:
            prefix = "" if snap.get("same_arrays") else SNAPSHOT_PREFIX
            snapshot = _state_from(meta, arrays, model, cfg, snap.get("counters"),
                                   snap.get("rng"), snap.get("opt_step"), prefix,
                                   f"{where}: rollback_snapshot", steps)
            if not prefix:                 # the same arrays: copies, so the state moves on
                snapshot = snapshot.snapshot()
        except CheckpointError as e:
            console.warn(f"{e}; resuming without it (a rollback returns to the resumed step)")
            snapshot = None
    elif snap is not None:
        console.warn(f"{where}: rollback_snapshot is not an object; resuming without it")
    step = state.counters.step
    records = [r for r in run.read_records("metrics.jsonl", console.warn)
               if isinstance(r.get("step"), int) and r["step"] <= step]
    samples = [r for r in run.read_records("samples.jsonl", console.warn)
               if isinstance(r.get("step"), int) and r["step"] <= step]
    return OpenedRun(cfg, corpus, model, state, snapshot, records, samples)
