"""The run: start the workers of every setting, time each case in alternating rounds, report."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import asdict

from bptt.bench import cases, tables
from bptt.bench.timing import Timing
from bptt.bench.workers import Setting, Worker, measure_memory, standard_settings


def parse_shape(s: str) -> tuple[int, int, int, int]:
    parts = s.lower().replace(",", "x").split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"case {s!r}: expected TxNxDxH, e.g. 100x64x256x256")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bptt.bench",
        description="Time bptt's RNN/LSTM training steps and inference passes against PyTorch "
                    "CPU, each library in its own worker process (ratio = torch_time / "
                    "bptt_time, > 1 means bptt is faster).")
    p.add_argument("--quick", action="store_true",
                   help="two small shapes, 3 rounds, memory for LSTM float32 only")
    p.add_argument("--cases", nargs="+", type=parse_shape, metavar="TxNxDxH",
                   help="shapes to run (default: the five standard ones and the issue's five)")
    p.add_argument("--cells", nargs="+", choices=cases.CELLS, default=list(cases.CELLS))
    p.add_argument("--dtypes", nargs="+", choices=cases.DTYPES, default=list(cases.DTYPES))
    p.add_argument("--modes", nargs="+", choices=cases.MODES, default=list(cases.MODES))
    p.add_argument("--settings", nargs="+", choices=("as-set", "unset"),
                   default=["as-set", "unset"],
                   help="BLAS settings of the workers: the environment as set (OPENBLAS_CORETYPE "
                        "pinned to --pin where it is not set), and/or OPENBLAS_CORETYPE and "
                        "OPENBLAS_L2_SIZE removed (default: both)")
    p.add_argument("--pin", default="Haswell",
                   help="OPENBLAS_CORETYPE of the as-set workers where it is not set here "
                        "(Haswell: what this project's environment sets); '' for none")
    p.add_argument("--fast-ab", action="store_true",
                   help="also run a bptt worker with the compiled fast path off (BPTT_FAST=0): "
                        "an engine A/B in separate processes")
    p.add_argument("--threads", type=int, default=2, help="threads for each library (2)")
    p.add_argument("--repeats", type=int, default=None,
                   help="alternating rounds per case (default 5, --quick 3)")
    p.add_argument("--pause", type=float, default=0.15,
                   help="seconds of pause after each round, so that the last worker's spinning "
                        "threads go to sleep (0.15)")
    p.add_argument("--min-round", type=float, default=0.04,
                   help="each round repeats the call for at least this many seconds")
    p.add_argument("--no-torch", action="store_true", help="time bptt only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--no-floor", action="store_true",
                   help="skip timing bptt's GEMMs alone (the 'gemm ms' and 'cap' columns)")
    p.add_argument("--no-charlm", action="store_true", help="skip the char-LM step")
    p.add_argument("--charlm-layers", type=int, default=1)
    p.add_argument("--charlm-hidden", type=int, default=256)
    p.add_argument("--charlm-embed", type=int, default=65)
    p.add_argument("--charlm-dtype", choices=cases.DTYPES, default="float32")
    p.add_argument("--json", metavar="PATH", help="write the records as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    p.add_argument("--render", metavar="JSON",
                   help="measure nothing: print the markdown of a run saved with --json")
    return p


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpu() -> tuple[str, bool]:
    model, avx512 = platform.processor() or platform.machine(), False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    avx512 = " avx512f " in line + " "
                    break
    except OSError:
        pass
    return model, avx512


class Side:
    """One timed callable in one worker: a (label, worker, key) triple with its samples."""

    def __init__(self, label: str, worker: Worker, spec: dict, min_round: float):
        self.label, self.worker = label, worker
        self.key = f"{label}:{json.dumps(spec, sort_keys=True)}"
        self.calls = worker.ask({"op": "prepare", "key": self.key, "spec": spec,
                                 "min_round": min_round})["calls"]
        self.samples: list[float] = []

    def run_round(self) -> None:
        self.samples.append(self.worker.ask({"op": "round", "key": self.key})["s"])

    def drop(self) -> Timing:
        self.worker.ask({"op": "drop", "key": self.key})
        return Timing.of(self.samples, self.calls)


def alternate(sides: list[Side], repeats: int, pause: float) -> dict:
    """Rounds over every side, the order reversing each round, a pause after each round."""
    for r in range(repeats):
        for s in (sides if r % 2 == 0 else sides[::-1]):
            s.run_round()
            time.sleep(pause)
    return {s.label: s.drop() for s in sides}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        try:
            with open(args.render) as f:
                text = tables.markdown(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as e:
            build_parser().error(f"--render {args.render}: not a benchmark JSON written by "
                                 f"--json ({type(e).__name__}: {e})")
        print(text, end="")
        return 0
    if args.threads < 1:
        build_parser().error("--threads must be >= 1")
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1:
        build_parser().error("--repeats must be >= 1")
    shapes = args.cases or (cases.QUICK_SHAPES if args.quick else
                            cases.SHAPES + cases.ISSUE_SHAPES)
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if not use_torch and not args.no_torch:
        print("PyTorch is not installed: timing bptt only (ratios and torch columns left empty)")
    settings = [s for s in standard_settings(args.pin) if s.name in args.settings]
    cpu, avx512 = _cpu()
    load0 = _load()
    workers: dict[str, dict[str, Worker]] = {}
    try:
        for s in settings:
            w = {"bptt": Worker("bptt", s, args.threads)}
            if args.fast_ab:
                w["bptt-nofast"] = Worker("bptt", Setting(s.name, s.set_vars, s.unset_vars,
                                                          {"BPTT_FAST": "0"}), args.threads)
            if use_torch:
                w["torch"] = Worker("torch", s, args.threads)
            workers[s.name] = w
        return _run(args, repeats, shapes, settings, workers, cpu, avx512, load0)
    finally:
        for w in workers.values():
            for x in w.values():
                x.close()


def _run(args, repeats, shapes, settings, workers, cpu, avx512, load0) -> int:
    sdocs = _setting_docs(args, settings, workers)
    torch_v = next((x.info.get("torch") for w in workers.values() for x in w.values()
                    if x.info.get("torch")), None)
    print(f"{cpu}, {os.cpu_count()} CPUs, AVX-512: {avx512}  |  {args.threads} threads per "
          f"library  |  {repeats} alternating rounds, pause {args.pause:g} s  |  load {load0}\n")
    print(tables.CONSOLE_HEAD)
    print("-" * len(tables.CONSOLE_HEAD))
    records: list[tables.Record] = []
    peaks = {d["name"]: d["peak_gflops"] for d in sdocs}
    for T, N, D, H in shapes:
        for cell in args.cells:
            for dtype in args.dtypes:
                for mode in args.modes:
                    spec = {"cell": cell, "dtype": dtype, "mode": mode, "shape": [T, N, D, H]}
                    load = _load()
                    sides = [side for s in settings
                             for side in _sides(args, s.name, workers[s.name], spec)]
                    tm = alternate(sides, repeats, args.pause)
                    for s in settings:
                        rec = _record(args, s.name, spec, tm, peaks[s.name][dtype], load)
                        records.append(rec)
                        fast = rec.extra.get("fast_speedup")
                        print(tables.console_line(rec)
                              + (f" | fast {fast:.2f}x" if fast is not None else ""), flush=True)

    if not args.no_memory and "train" in args.modes:
        _memory(args, records, settings[0], workers[settings[0].name])
    charlm = [] if args.no_charlm else _charlm(args, repeats, settings, workers)
    _repeak(args, settings, workers, sdocs, records)
    load1 = _load()
    out = []
    for rec in records:
        r = asdict(rec)
        r.update(r.pop("extra"))
        out.append(r)
    import numpy as np
    doc = {"machine": {"cpu": cpu, "cpus": os.cpu_count(), "avx512": avx512,
                       "numpy": np.__version__, "python": platform.python_version(),
                       "torch": torch_v, "threads": args.threads, "repeats": repeats,
                       "pause_s": args.pause, "min_round_s": args.min_round,
                       "load_start": load0, "load_end": load1},
           "settings": sdocs, "records": out, "charlm": charlm}
    print(f"\nload average at the end: {load1}")
    _write(args, doc)
    return 0


def _setting_docs(args, settings, workers) -> list[dict]:
    """One document per setting: its variables, its workers' info and its GEMM peaks."""
    sdocs = []
    for s in settings:
        w = workers[s.name]
        peak = {dt: w["bptt"].ask({"op": "peak", "dtype": dt})["gflops"] for dt in args.dtypes}
        sdocs.append({"name": s.name, "set": s.set_vars, "unset": list(s.unset_vars),
                      "workers": {k: x.info for k, x in w.items()}, "peak_gflops": peak})
        print(tables.setting_line(sdocs[-1]).replace("**", ""))
    return sdocs


def _sides(args, name: str, w: dict[str, Worker], spec: dict) -> list[Side]:
    """The timed sides of one setting ``name`` for one case: bptt, and those asked for."""
    sides = [Side(f"{name}/bptt", w["bptt"], {**spec, "what": "bptt"}, args.min_round)]
    if "bptt-nofast" in w:
        sides.append(Side(f"{name}/nofast", w["bptt-nofast"], {**spec, "what": "bptt"},
                          args.min_round))
    if "torch" in w:
        sides.append(Side(f"{name}/torch", w["torch"], {**spec, "what": "torch"},
                          args.min_round))
    if not args.no_floor:
        sides.append(Side(f"{name}/gemm", w["bptt"], {**spec, "what": "gemm"}, args.min_round))
    return sides


def _record(args, name: str, spec: dict, tm: dict, pk: float, load) -> tables.Record:
    """The record of setting ``name`` for one case from its sides' timings ``tm``."""
    cell, dtype, mode, (T, N, D, H) = spec["cell"], spec["dtype"], spec["mode"], spec["shape"]
    fl = cases.gemm_flops(cell, T, N, D, H, mode)
    b, t = tm[f"{name}/bptt"], tm.get(f"{name}/torch")
    g, nf = tm.get(f"{name}/gemm"), tm.get(f"{name}/nofast")
    rec = tables.Record(
        name, cell, dtype, mode, T, N, D, H,
        bptt_s=b.median, bptt_min_s=b.min, bptt_max_s=b.max,
        torch_s=t.median if t else None, torch_min_s=t.min if t else None,
        torch_max_s=t.max if t else None,
        ratio=t.median / b.median if t else None,
        ratio_min=t.min / b.min if t else None, gflop=fl / 1e9,
        bptt_gflops=fl / b.median / 1e9,
        torch_gflops=fl / t.median / 1e9 if t else None, peak_gflops=pk,
        bptt_pct_peak=100 * fl / b.median / 1e9 / pk,
        torch_pct_peak=100 * fl / t.median / 1e9 / pk if t else None,
        gemm_s=g.median if g else None, load=load, threads=args.threads)
    if nf:
        rec.extra["nofast_s"] = nf.median
        rec.extra["fast_speedup"] = nf.median / b.median
    return rec


def _write(args, doc: dict) -> None:
    """The JSON and Markdown files asked for (--json, --markdown)."""
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(tables.markdown(doc))
        print(f"wrote {args.markdown}")


def _repeak(args, settings, workers, sdocs, records) -> None:
    """Measure each GEMM peak again at the end and keep the better one (a shared machine)."""
    for s, sd in zip(settings, sdocs):
        for dt, old in list(sd["peak_gflops"].items()):
            again = workers[s.name]["bptt"].ask({"op": "peak", "dtype": dt})["gflops"]
            if again <= old:
                continue
            sd["peak_gflops"][dt] = again
            for rec in records:
                if rec.setting == s.name and rec.dtype == dt:
                    rec.peak_gflops = again
                    rec.bptt_pct_peak *= old / again
                    if rec.torch_pct_peak is not None:
                        rec.torch_pct_peak *= old / again
    print("GEMM peak used for % peak (the better of start and end): " + "; ".join(
        f"{sd['name']} " + ", ".join(f"{dt} {g:.1f}" for dt, g in sd["peak_gflops"].items())
        for sd in sdocs))


def _memory(args, records, setting, workers) -> None:
    """Peak training memory, each side in a fresh process of the first setting (memory does not
    depend on the BLAS kernels); the numbers go into every setting's record of the case."""
    print(f"\nPeak memory of one training step (MB above the resident set before the step, a "
          f"fresh process each, setting {setting.name}):")
    done: dict = {}
    for rec in records:
        if rec.mode != "train" or (args.quick and (rec.cell, rec.dtype) != ("lstm", "float32")):
            continue
        key = (rec.cell, rec.dtype, rec.T, rec.N, rec.D, rec.H)
        if key not in done:
            spec = {"cell": rec.cell, "dtype": rec.dtype, "shape": [rec.T, rec.N, rec.D, rec.H]}
            mb = measure_memory("bptt", {**spec, "what": "bptt"}, setting, args.threads)
            mt = measure_memory("torch", {**spec, "what": "torch"}, setting, args.threads) \
                if "torch" in workers else None
            done[key] = (mb["bytes"] / 2 ** 20 if mb else None,
                         mt["bytes"] / 2 ** 20 if mt else None)
            print(f"  {rec.cell:4} {rec.dtype:7} {rec.T:4} {rec.N:3} {rec.D:3} {rec.H:3} | "
                  f"bptt {tables._f(done[key][0], '8.1f')}  torch "
                  f"{tables._f(done[key][1], '8.1f')}", flush=True)
        rec.bptt_mem_mb, rec.torch_mem_mb = done[key]


def _charlm(args, repeats, settings, workers) -> list[dict]:
    c = cases.CHARLM
    spec = {"dtype": args.charlm_dtype, "E": args.charlm_embed, "H": args.charlm_hidden,
            "layers": args.charlm_layers}
    sides = []
    for s in settings:
        w = workers[s.name]
        sides.append(Side(f"{s.name}/bptt", w["bptt"], {**spec, "what": "charlm-bptt"},
                          args.min_round))
        if "torch" in w:
            sides.append(Side(f"{s.name}/torch", w["torch"], {**spec, "what": "charlm-torch"},
                              args.min_round))
    tm = alternate(sides, repeats, args.pause)
    out = []
    chars = c["N"] * c["T"]
    for s in settings:
        b, t = tm[f"{s.name}/bptt"], tm.get(f"{s.name}/torch")
        out.append({"setting": s.name, "V": c["V"], "N": c["N"], "T": c["T"], **spec,
                    "bptt_s": b.median, "bptt_chars_per_s": chars / b.median,
                    "torch_s": t.median if t else None,
                    "torch_chars_per_s": chars / t.median if t else None,
                    "ratio": t.median / b.median if t else None})
        print(f"char-LM step, {s.name}: bptt {b.median * 1e3:.2f} ms"
              + (f", torch {t.median * 1e3:.2f} ms, ratio {t.median / b.median:.2f}" if t
                 else ""))
    return out


if __name__ == "__main__":
    sys.exit(main())
