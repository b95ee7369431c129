"""``bptt score``: how well a trained model predicts a text (nats/char, bits/char, perplexity)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score a text file under a trained model",
        description="Cross-entropy of FILE under the model of RUN: every character after the "
                    "first is predicted from all those before it (one sequence, state carried). "
                    "Prints nats/char, bits/char and perplexity.")
    p.add_argument("run", metavar="RUN", help="run directory (or a checkpoint .json file)")
    p.add_argument("file", metavar="FILE", help="UTF-8 text file to score")
    p.add_argument("--checkpoint", choices=["auto", "best", "last"], default="auto",
                   help="which checkpoint of RUN (default auto: best, else last)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: nats_per_char, bits_per_char, perplexity, chars")
    p.add_argument("--skip-unknown", action="store_true",
                   help="drop characters that are not in the vocabulary (with a warning) "
                        "instead of stopping with an error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from bptt.charlm.sampling import load, score_file
    from bptt.charlm.text import describe_symbols

    loaded = load(args.run, args.checkpoint)
    result, skipped = score_file(loaded, args.file, args.skip_unknown)
    if skipped:
        print(f"bptt score: warning: skipped characters not in the vocabulary: "
              f"{describe_symbols(skipped, loaded.vocab.encoding)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.file}: {result['nats_per_char']:.4f} nats/char, "
              f"{result['bits_per_char']:.4f} bits/char, perplexity "
              f"{result['perplexity']:.3f} over {result['chars']:,} characters "
              f"(checkpoint {loaded.path}, step {loaded.meta.get('step')})")
    return 0
