"""``bptt sample``: generate text from a trained run."""

from __future__ import annotations

import argparse

MAX_LENGTH = 10_000_000        # about half an hour of sampling; a longer text in pieces
MAX_LENGTH_NOTE = " (sample a longer text in pieces, priming each with the last)"


def register(sub: argparse._SubParsersAction) -> None:
    from bptt.cli import SEED, finite_float, int_at_least

    p = sub.add_parser(
        "sample", help="generate text from a trained model",
        description="Generate text from the checkpoint of a run (best on validation if there is "
                    "one, else last). Needs only the run directory, not the training data. The "
                    "prime is printed first, then the generated text.")
    p.add_argument("run", metavar="RUN", help="run directory (or a checkpoint .json file)")
    p.add_argument("--checkpoint", choices=["auto", "best", "last"], default="auto",
                   help="which checkpoint of RUN (default auto: best, else last)")
    p.add_argument("--length", type=int_at_least(0, MAX_LENGTH_NOTE, MAX_LENGTH), default=500,
                   metavar="N",
                   help="characters to generate (default 500)")
    p.add_argument("--temperature", type=finite_float(0), default=1.0, metavar="T",
                   help="divide the scores by T before the softmax: < 1 safer, > 1 wilder "
                        "(default 1.0)")
    p.add_argument("--top-k", type=int_at_least(0), default=0, metavar="K",
                   help="sample only among the K most likely characters (default 0 = all)")
    p.add_argument("--top-p", type=finite_float(0, 1, low_open=True), default=1.0, metavar="P",
                   help="sample only among the most likely characters whose probabilities sum "
                        "to P (nucleus; default 1.0 = all)")
    p.add_argument("--greedy", action="store_true",
                   help="always take the most likely character (ignores T, K and P)")
    p.add_argument("--prime", default="", metavar="TEXT",
                   help="text to start from (default: a newline)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="drop prime characters that are not in the vocabulary (with a warning) "
                        "instead of stopping with an error")
    p.add_argument("--stop", default=None, metavar="STRING",
                   help="stop when STRING is generated (it is not printed), e.g. --stop $'\\n\\n'")
    p.add_argument("--beam", type=int_at_least(0), default=0, metavar="K",
                   help="beam search: the most likely continuation found keeping the K best at "
                        "every step, instead of sampling (ignores T, K, P and the seed; a "
                        "one-character --stop ends a continuation; default 0 = sample)")
    p.add_argument("--length-penalty", type=finite_float(0.0), default=0.0, metavar="A",
                   help="with --beam and a one-character --stop: rank finished continuations "
                        "by log-probability / length^A (default 0 = total log-probability)")
    p.add_argument("--seed", type=SEED, default=None, metavar="N",
                   help="random seed: the same seed gives the same text (default: fresh)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from bptt.charlm.sampling import generate, load
    from bptt.cli import UserError

    if args.beam < 0:
        raise UserError(f"--beam is {args.beam}; it must be 0 (sample) or a beam width >= 1")
    loaded = load(args.run, args.checkpoint)
    if args.beam:
        from bptt.charlm.beam import beam_generate

        text, skipped, _ = beam_generate(loaded.model, loaded.vocab, args.length, args.beam,
                                         prime=args.prime, stop=args.stop,
                                         length_penalty=args.length_penalty,
                                         skip_unknown=args.skip_unknown)
        return _print(args, text, skipped, loaded)
    rng = np.random.default_rng(args.seed)
    text, skipped = generate(loaded.model, loaded.vocab, args.length, rng,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             greedy=args.greedy, prime=args.prime, stop=args.stop,
                             skip_unknown=args.skip_unknown)
    return _print(args, text, skipped, loaded)


def _print(args: argparse.Namespace, text: str, skipped: list, loaded) -> int:
    import sys

    from bptt.charlm.text import describe_symbols

    if skipped:
        print(f"bptt sample: warning: skipped prime characters not in the vocabulary: "
              f"{describe_symbols(skipped, loaded.vocab.encoding)}", file=sys.stderr)
    sys.stdout.write(args.prime + text + ("" if (args.prime + text).endswith("\n") else "\n"))
    return 0
