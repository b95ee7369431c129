"""``bptt train``: train a character language model (the main job)."""

from __future__ import annotations

import argparse
import dataclasses

HELP_EPILOG = """\
examples:
  bptt train                             the default job: a 2-layer LSTM on Shakespeare's plays,
                                         about 7 minutes on 2 cores
  bptt train input.txt --max-minutes 5   any UTF-8 text file
  bptt train input.txt --preset shakespeare --out runs/shakespeare
  bptt train --resume runs/shakespeare   continue a stopped run exactly where it stopped
  bptt sample RUN --prime "ROMEO:"       then sample from it, or score a text with bptt score

The run directory holds metrics.jsonl (one JSON object per evaluation: step, train_loss,
val_loss in nats/char, val_bits, lr, grad_norm, clip_rate, chars_per_s, elapsed_s), loss.png,
samples.txt, train.log, config.json, corpus.npy (the text as integer ids), last.json and
best.json (checkpoints; arrays in checkpoints/*.safetensors), and .bptt-run (the marker) and
.lock (held by the one process training in it). bptt writes a run only into a new or empty
directory or one of its own runs; see docs/reliability.md.
"""


def _default(name: str):
    from bptt.charlm.trainer import PRESETS, TrainConfig

    if name in PRESETS["default"]:
        return PRESETS["default"][name]
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)}.get(name)


# One add_argument statement per option of `bptt train`, in --help order: splitting the list
# would only scatter it.
def register(sub: argparse._SubParsersAction) -> None:  # noqa: PLR0915
    p = sub.add_parser(
        "train", help="train a character language model (the main job)",
        description="Train a character-level RNN/LSTM language model with truncated BPTT and "
                    "leave a run directory with metrics, a loss plot, samples and checkpoints. "
                    "Options not given come from --preset (the default job's values are shown); "
                    "on --resume they come from the run.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)

    def opt(group, name, type_=None, help_="", metavar=None, **kw):
        dest = name.lstrip("-").replace("-", "_")
        d = _default(dest)
        shown = f" (default {d:g})" if isinstance(d, float) else \
            f" (default {d})" if d is not None and not isinstance(d, list) else ""
        group.add_argument(name, type=type_, default=None, help=help_ + shown, metavar=metavar,
                           **kw)

    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="UTF-8 text file(s) to train on, concatenated (default: Shakespeare's "
                        "plays from the 'shakespeare' package, else the Python standard "
                        "library's source)")

    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR", default=None,
                   help="run directory (default runs/<corpus>-<date>-<time>)")
    g.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run in RUN from its last checkpoint, exactly (same "
                        "parameters step for step as a run that never stopped)")
    g.add_argument("--overwrite", action="store_true",
                   help="start over in an --out directory that already holds a run")
    g.add_argument("--preset", choices=["default", "shakespeare", "tiny", "min-char-rnn"],
                   default=None,
                   help="option set: default (the main job), shakespeare (the 30-minute "
                        "tiny-shakespeare benchmark), tiny (a seconds-long smoke run), "
                        "min-char-rnn (Karpathy's min-char-rnn.py exactly: one-hot input, "
                        "1 x 100 tanh RNN, batch 1 x 25, summed loss, clip 5, its Adagrad, "
                        "0.01 init)")
    g.add_argument("--config", metavar="FILE.toml", default=None,
                   help="read options from a TOML file (keys: these options without the "
                        "dashes, plus corpus = [files], preset, out); options given here "
                        "override it")
    opt(g, "--seed", int, "random seed (weights, dropout, samples)", "N")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar, reports or samples on the console (files are still "
                        "written; warnings still go to stderr)")

    g = p.add_argument_group("budget (the schedule ends at --max-steps, or, without it, at "
                             "--max-minutes of wall-clock time; giving only one of the two "
                             "turns the preset's other off)")
    opt(g, "--max-steps", int, "training steps; 0 = no step limit", "N")
    opt(g, "--max-minutes", float, "wall-clock limit in minutes, evaluations included; 0 = none",
        "M")
    g.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop at this step and save a checkpoint without ending the schedule "
                        "(continue later with --resume)")

    g = p.add_argument_group("data")
    opt(g, "--encoding", str, "utf-8, or bytes to model raw bytes (for non-UTF-8 files)",
        choices=["utf-8", "bytes"])
    opt(g, "--val-fraction", float, "the last fraction of the text held out for validation", "F")
    opt(g, "--batch", int, "N contiguous streams per batch", "N")
    opt(g, "--seq-len", int, "T steps per batch (truncated BPTT; the state is carried between "
                             "batches and reset when the data wraps)", "T")

    g = p.add_argument_group("model")
    opt(g, "--cell", str, "recurrent cell", choices=["rnn", "lstm", "gru"])
    opt(g, "--layers", int, "recurrent layers", "K")
    opt(g, "--hidden", int, "hidden units per layer", "H")
    opt(g, "--embed", int, "embedding size; 0 = one-hot input", "E")
    opt(g, "--dropout", float, "dropout between layers", "P")
    g.add_argument("--learn-h0", action="store_const", const=True, default=None,
                   help="learn the initial hidden state")
    opt(g, "--dtype", str, "parameter and activation type", choices=["float32", "float64"])
    opt(g, "--init-std", float, "draw every weight matrix from N(0, S^2) (min-char-rnn: 0.01); "
                                "0 = the default initialisers", "S")

    g = p.add_argument_group("optimizer")
    opt(g, "--optimizer", str, "update rule",
        choices=["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
    opt(g, "--lr", float, "peak learning rate", "LR")
    opt(g, "--beta1", float, "Adam/AdamW first-moment decay", "B")
    opt(g, "--beta2", float, "Adam/AdamW second-moment decay", "B")
    opt(g, "--momentum", float, "momentum coefficient (--optimizer momentum)", "MU")
    opt(g, "--rho", float, "RMSprop decay", "RHO")
    opt(g, "--eps", float, "denominator epsilon (Adagrad, RMSprop, Adam): g / (sqrt(v) + EPS)",
        "EPS")
    g.add_argument("--eps-inside-sqrt", action="store_const", const=True, default=None,
                   help="Adagrad: p -= lr * g / sqrt(G + EPS), min-char-rnn's rule, instead of "
                        "PyTorch's p -= lr * g / (sqrt(G) + EPS)")
    opt(g, "--weight-decay", float, "decoupled weight decay (AdamW default 0.01)", "WD")

    g = p.add_argument_group("learning-rate schedule")
    opt(g, "--schedule", str, "constant, step decay or cosine", choices=["constant", "step",
                                                                         "cosine"])
    opt(g, "--warmup", int, "linear warmup steps", "N")
    opt(g, "--min-lr-ratio", float, "cosine: final lr = lr * ratio", "R")
    opt(g, "--decay-every", int, "step schedule: decay every N steps", "N")
    opt(g, "--decay-gamma", float, "step schedule: multiply lr by G", "G")

    g = p.add_argument_group("loss, clipping and divergence")
    opt(g, "--reduction", str, "the loss that is differentiated, clipped and minimised: mean "
                               "(nats per character, the mean over the N x T predictions) or "
                               "sum (summed over the T steps, mean over the N streams: "
                               "min-char-rnn's for N = 1); the logged loss is per character",
        choices=["mean", "sum"])
    opt(g, "--clip-norm", float, "scale the gradients of that loss so their global norm is at "
                                 "most C; 0 = off", "C")
    opt(g, "--clip-value", float, "clip every entry of the gradients of that loss to [-C, C]: "
                                  "with --reduction mean a limit C acts like C x T on summed "
                                  "gradients (min-char-rnn: --reduction sum --clip-value 5); "
                                  "0 = off", "C")
    opt(g, "--max-rollbacks", int, "on a non-finite loss or gradient, roll back to the last good "
                                   "state and lower the lr; give up after this many in a row",
        "N")
    opt(g, "--rollback-lr-factor", float, "lr multiplier applied at each rollback", "F")
    opt(g, "--snapshot-every", int, "steps between the in-memory snapshots rollbacks return to",
        "N")

    g = p.add_argument_group("evaluation and output")
    opt(g, "--eval-every", int, "evaluate, plot, sample and checkpoint every N steps", "N")
    opt(g, "--eval-minutes", float, "... and also after M minutes without one (0 = only by "
                                    "steps)", "M")
    opt(g, "--eval-chars", int, "validation characters per evaluation; 0 = all", "N")
    opt(g, "--sample-chars", int, "characters sampled at each evaluation; 0 = none", "N")
    opt(g, "--sample-temperature", float, "temperature of those samples", "T")
    g.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also log metrics.jsonl's scalars and the samples as TensorBoard events "
                        "in DIR (needs tensorboardX)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from bptt.charlm.console import Console
    from bptt.charlm.tensorboard import mirroring, open_writer, run_path
    from bptt.charlm.tomlconfig import merge_config_file
    from bptt.charlm.trainer import TrainConfig, Trainer, config_from_preset
    from bptt.cli import UserError
    from bptt.distributed import world

    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {k: getattr(args, k) for k in fields if getattr(args, k, None) is not None}
    given = merge_config_file(args, fields, given)              # --config FILE.toml, if any
    # --tensorboard DIR (refused before the run starts when tensorboardX is missing); process 0
    tensorboard = open_writer(args.tensorboard) if world().rank == 0 else None
    if args.stop_at is not None and args.stop_at < 1:
        raise UserError(f"--stop-at is {args.stop_at}; it must be at least 1")
    cfg = None
    if args.resume is not None:
        if args.paths or args.out is not None or args.preset or args.overwrite:
            raise UserError("--resume RUN continues a run with its own corpus, directory and "
                            "options; leave out PATH, --out, --preset and --overwrite")
        if not args.resume.strip():
            raise UserError("--resume is empty; give the run directory to continue")
    else:
        cfg = config_from_preset(args.preset or "default", corpus=list(args.paths), **given)

    def build(console: Console) -> Trainer:
        if cfg is not None:
            return Trainer.start(cfg, args.out, console, overwrite=args.overwrite)
        trainer = Trainer.resume(args.resume, console, given)
        if args.stop_at is not None and args.stop_at <= trainer.counters.step:
            trainer.rundir.close()
            raise UserError(f"--stop-at {args.stop_at} is not after the run's step "
                            f"{trainer.counters.step}; give a later step")
        return trainer

    if world().size > 1:           # under mpiexec / srun: one data-parallel job
        from bptt.distributed.trainer import start_parallel

        trainer = start_parallel(args, cfg, build, world())
    else:
        trainer = build(Console(quiet=args.quiet))
    with mirroring(tensorboard, run_path(trainer)):
        result = trainer.run(stop_at=args.stop_at)
    if result.status == 1 and trainer.writes:
        print(f"bptt train: error: {result.message}", file=sys.stderr)
    return result.status
