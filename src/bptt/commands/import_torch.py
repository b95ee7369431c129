"""``bptt import``: a PyTorch RNN/LSTM saved as safetensors becomes a bptt model."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="read PyTorch RNN/LSTM weights (safetensors) into bptt",
        description="Read a torch.nn.RNN / torch.nn.LSTM state dict saved with safetensors "
                    "(multi-layer, bidirectional; bias_ih + bias_hh are merged into one bias). "
                    "With the OUT.json sidecar and OUT.head.safetensors of a `bptt export` beside "
                    "it, the whole language model becomes a run directory that `bptt sample` and "
                    "`bptt score` read. Otherwise (--stack-only) the recurrent stack is written "
                    "as bptt arrays (l{k}.Wx, l{k}.Wh, l{k}.b[_rev]) plus a JSON description.")
    p.add_argument("file", metavar="FILE", help="the state dict, *.safetensors")
    p.add_argument("out", metavar="OUT", help="run directory to create (or, with --stack-only, "
                                              "the output *.safetensors file)")
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None,
                   help="cell type (default: inferred from weight_hh_l0's shape)")
    p.add_argument("--stack-only", action="store_true",
                   help="import only the recurrent stack (no sidecar needed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from bptt.charlm.checkpoint import save_checkpoint
    from bptt.charlm.rundir import RunDir, atomic_write_text, refuse_run_file
    from bptt.cli import UserError
    from bptt.interop.files import import_torch_lm, import_torch_stack, sibling, write_safetensors

    out = Path(args.out)
    if args.stack_only:
        stack = import_torch_stack(args.file, args.cell)
        if not out.name.endswith(".safetensors") or out.is_dir():
            raise UserError(f"{out}: name the output file *.safetensors")
        for p in (out, sibling(out, ".json")):
            refuse_run_file(p, "OUT")
        write_safetensors(out, stack.params)
        desc = {"cell": stack.cell, "num_layers": stack.num_layers,
                "bidirectional": stack.bidirectional, "input_size": stack.input_size,
                "hidden_size": stack.hidden_size, "source": str(args.file)}
        atomic_write_text(sibling(out, ".json"), json.dumps(desc, indent=1) + "\n")
        print(f"wrote {out} and {sibling(out, '.json')}: {stack.num_layers}-layer "
              f"{'bidirectional ' if stack.bidirectional else ''}{stack.cell}, "
              f"D={stack.input_size}, H={stack.hidden_size}")
        return 0
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty directory; choose a new run "
                        f"directory")
    model, vocab, _meta = import_torch_lm(args.file)
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    run = RunDir.create(out)
    try:
        save_checkpoint(out, arrays, {"step": 0, "model": model.config.to_dict(),
                                      "vocab": vocab.to_json(), "imported_from": str(args.file)})
    finally:
        run.close()
    print(f"wrote run directory {out} (bptt sample {out} / bptt score {out} FILE)")
    return 0
