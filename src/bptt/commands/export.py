"""``bptt export``: a trained run as PyTorch-loadable safetensors files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a trained model for PyTorch (safetensors, no pickle)",
        description="Write the recurrent stack of RUN with PyTorch's own key names and layouts to "
                    "OUT (loadable with torch.nn.LSTM(**kwargs).load_state_dict("
                    "safetensors.torch.load_file(OUT))), the output layer (and embedding) to "
                    "OUT.head.safetensors, and a JSON sidecar OUT.json with the constructor "
                    "arguments and the vocabulary.")
    p.add_argument("run", metavar="RUN", help="run directory (or a checkpoint .json file)")
    p.add_argument("out", metavar="OUT", help="output file, *.safetensors")
    p.add_argument("--format", choices=["torch"], default="torch",
                   help="target framework (only torch)")
    p.add_argument("--checkpoint", choices=["auto", "best", "last"], default="auto",
                   help="which checkpoint of RUN (default auto: best, else last)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bptt.charlm.sampling import load
    from bptt.interop.files import export_torch

    loaded = load(args.run, args.checkpoint)
    for path in export_torch(loaded, args.out):
        print(f"wrote {path}")
    return 0
