"""The whole task suite with fixed seeds: results beside the published numbers, plus plots.

    results = run_suite(out_dir, jobs=2)

Writes to ``out_dir``:

    results.json             every run's result (``bptt task --json``'s object) and the timing
    results.md               the table: ours | published | baseline | target, one row per run
    gradient_flow.png        ||dL/dh_t|| against t, tanh RNN vs LSTM on the adding problem
                             (T = 100), at initialisation and after training
    training_curves.png      training loss against step for every run

Runs are independent processes (``jobs`` at a time, one BLAS thread each), so two cores run two
tasks at once. Under ``mpiexec -n K`` the runs are spread over the K MPI processes (round-robin;
process 0 gathers the results and writes the files), so a sweep uses a whole allocation.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from bptt.tasks.results import format_value


@dataclass(frozen=True)
class Run:
    task: str
    cell: str = "lstm"
    T: int | None = None
    seed: int = 0
    diagnose: bool = False

    @property
    def label(self) -> str:
        return f"{self.task} {self.cell}" + (f" T={self.T}" if self.T else "") + \
            f" seed={self.seed}"


# The suite. Reber runs five trials per cell (the paper reports the fraction of successful
# trials); everything else one fixed seed.
SUITE: tuple[Run, ...] = (
    Run("adding", "lstm", 100, diagnose=True),
    Run("adding", "rnn", 100, diagnose=True),
    Run("adding", "lstm", 200),
    Run("adding", "rnn", 200),
    Run("adding", "lstm", 400),
    Run("adding", "lstm", 750),
    Run("adding1997", "lstm", 100),
    *(Run("reber", cell, seed=s) for cell in ("lstm", "rnn") for s in range(5)),
    Run("temporal-order", "lstm"),
    Run("temporal-order", "rnn"),
    Run("copy", "lstm", 100),
    Run("digits-rows", "lstm"),
    Run("digits-rows", "rnn"),
    Run("digits-pixels", "lstm"),
    Run("digits-permuted", "lstm"),
    Run("mnist1d", "lstm"),
    Run("mnist1d", "rnn"),
    Run("addition", "lstm"),
    Run("addition5", "lstm"),
    Run("spelling", "lstm"),
)


def _run_one(run: Run, quick: bool, threads: int) -> dict:
    from bptt.tasks.runner import run_task
    from bptt.tasks.threads import blas_threads

    with blas_threads(threads):
        try:
            return run_task(run.task, run.cell, run.T, run.seed, quick=quick,
                            diagnose=run.diagnose)
        except ImportError as e:                     # optional data package missing
            return {"task": run.task, "cell": run.cell, "T": run.T, "seed": run.seed,
                    "skipped": str(e)}


def run_suite(out_dir: str, jobs: int = 2, quick: bool = False, only: list[str] | None = None,
              threads: int = 1, log: Callable[[str], None] | None = None) -> dict | None:
    """Run the suite (or the runs of the tasks in ``only``); write and return the report.

    Under ``mpiexec -n K`` the runs are spread over the K processes round-robin (run i on
    process i mod K, ``jobs`` at a time within each); process 0 gathers the results, writes
    every file and returns the report, the others return None."""
    from bptt.distributed import world

    runs = [r for r in SUITE if not only or r.task in only]
    if not runs:
        raise ValueError(f"no suite run matches {only}")
    w = world()
    if w.is_root:
        os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    mine = [i for i in range(len(runs)) if i % w.size == w.rank]
    tag = f"[process {w.rank}/{w.size}] " if w.size > 1 else ""
    done: dict[int, dict] = {}
    if jobs <= 1:
        for i in mine:
            done[i] = _run_one(runs[i], quick, threads)
            if log:
                log(tag + _progress(runs[i], done[i], start))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_one, runs[i], quick, threads): i for i in mine}
            from concurrent.futures import as_completed
            for f in as_completed(futures):
                i = futures[f]
                done[i] = f.result()
                if log:
                    log(tag + _progress(runs[i], done[i], start))
    w.idle_barrier()                   # a process done early sleeps until the last run ends
    gathered = w.gather_json(sorted(done.items()))
    if not w.is_root:
        return None
    assert gathered is not None                      # the root has every process's part
    results: list[dict] = [{}] * len(runs)
    for part in gathered:
        for i, r in part:
            results[i] = r
    total = time.perf_counter() - start
    report = {"total_seconds": round(total, 1), "jobs": jobs, "processes": w.size,
              "quick": quick,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "results": results}
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write(markdown_table(report))
    plot_gradient_flow(results, os.path.join(out_dir, "gradient_flow.png"))
    plot_curves(results, os.path.join(out_dir, "training_curves.png"))
    write_suite_page(results, os.path.join(out_dir, "report.html"))
    return report


def write_suite_page(results: list[dict], path: str) -> None:
    """report.html of the suite: the gradient-norm-through-time plot, RNN vs LSTM."""
    from bptt.analysis.report import write_report

    curves = {}
    for r in results:
        for when, flow in r.get("gradient_flow", {}).items():
            curves[f"{r['cell']} {'at init' if when == 'init' else 'trained'}"] = flow["norms"]
    if curves:
        write_report(path, metrics=[], samples=[], title="bptt suite: gradient flow",
                     grad_norms=curves)


def _progress(run: Run, r: dict, start: float) -> str:
    if "skipped" in r:
        return f"[{time.perf_counter() - start:6.0f}s] {run.label}: skipped ({r['skipped']})"
    return (f"[{time.perf_counter() - start:6.0f}s] {run.label}: {r['metric']} "
            f"{format_value(r['value'])} in {r['seconds']:.0f}s")


def _group(results: list[dict]) -> list[list[dict]]:
    """Runs of the same (task, cell, T), in suite order."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["cell"], r["T"]), []).append(r)
    return list(groups.values())


def markdown_table(report: dict) -> str:
    lines = ["| task | cell | T | metric | ours | published | baseline | target | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    skipped = []
    for g in _group(report["results"]):
        r = g[0]
        if "skipped" in r:
            skipped.append(f"{r['task']} ({r['skipped']})")
            continue
        if len(g) == 1:
            ours = format_value(r["value"])
        elif r["metric"].startswith("success"):
            ours = f"success in {sum(int(x['value']) for x in g)} / {len(g)} trials"
        else:
            vals = [x["value"] for x in g]
            ours = f"{format_value(sum(vals) / len(vals))} (mean of {len(g)})"
        if r["task"] == "reber":
            ours += " (strings wrong, train/test: " + ", ".join(
                f"{x['wrong_train']}/{x['wrong_test']}" for x in g) + ")"
        extras = {"mse": "MSE", "recall_accuracy": "recall accuracy",
                  "exact_match": "exact match", "epochs": "epochs"}
        for key, name in extras.items():
            if key in r and len(g) == 1:
                ours += f"; {name} {format_value(r[key])}"
        target = "-"
        if r["target"] and len(g) == 1:
            target = f"{r['target']}: {'met' if r['target_met'] else 'missed'}"
        elif r["target"]:
            met = sum(bool(x["target_met"]) for x in g)
            target = f"{r['target']}: met in {met} / {len(g)}"
        baseline = f"{format_value(r['baseline'])} ({r['baseline_note']})"
        seconds = sum(x["seconds"] for x in g)
        lines.append(f"| {r['task']} | {r['cell']} | {r['T'] or '-'} | {r['metric']} | {ours} | "
                     f"{r['published']} | {baseline} | {target} | {seconds:.0f} |")
    lines += gradient_flow_table(report["results"])
    m = report["machine"]
    procs = report.get("processes", 1)
    where = f"{procs} MPI processes x {report['jobs']} job(s) each" if procs > 1 else \
        f"{report['jobs']} parallel jobs"
    lines += ["", f"Whole suite: {report['total_seconds']:.0f} s wall-clock with {where} "
                  f"on {m['cpus']} CPUs ({m['platform']}, Python {m['python']})."
                  + (" Quick (smoke) mode: a few steps per task, not results." if report["quick"]
                     else "")]
    if skipped:
        lines.append("Skipped: " + "; ".join(skipped))
    return "\n".join(lines) + "\n"


def gradient_flow_table(results: list[dict]) -> list[str]:
    """Markdown lines: how much of ||dL/dh_T|| reaches t = 0, and the gate saturation."""
    rows = [r for r in results if "gradient_flow" in r]
    if not rows:
        return []
    lines = ["", f"Gradient flow on {rows[0]['task']} (T={rows[0]['T']}): ||dL/dh_0|| / "
                 "||dL/dh_T|| (how much of the gradient at the loss reaches the first step) "
                 "and gate saturation over all steps and units (sigmoid gates: mean, fraction "
                 "< 0.1 and > 0.9; tanh values: mean absolute value and fraction above 0.9 in "
                 "absolute value).", "",
             "| cell | when | dh_0 / dh_T | gate statistics |", "|---|---|---|---|"]
    for r in rows:
        for when, flow in r["gradient_flow"].items():
            norms = flow["norms"]
            stats = "; ".join(f"{gate}: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items())
                              for gate, st in flow["saturation"].items())
            lines.append(f"| {r['cell']} | {when} | {norms[0] / norms[-1]:.1e} | {stats} |")
    return lines


def _write_png(png: bytes | None, path: str) -> bool:
    if png is None:
        return False
    with open(path, "wb") as f:
        f.write(png)
    return True


def plot_gradient_flow(results: list[dict], path: str) -> bool:
    """RNN vs LSTM ||dL/dh_t|| from the runs that recorded it; False if none did."""
    from bptt.analysis.plots import grad_norm_through_time

    curves = {}
    for r in results:
        for when, flow in r.get("gradient_flow", {}).items():
            label = f"{r['cell'].upper()} {'at init' if when == 'init' else 'trained'}"
            curves[label] = flow["norms"]
    if not curves:
        return False
    task = next(r for r in results if "gradient_flow" in r)
    title = f"gradient norm through time: {task['task']} problem, T={task['T']}"
    return _write_png(grad_norm_through_time(curves, title, relative=True), path)


def plot_curves(results: list[dict], path: str) -> None:
    """One panel of training-loss curves per (task, cell, T) group."""
    from bptt.analysis.plots import loss_panels

    panels = []
    for g in _group([r for r in results if r.get("curve")]):
        r = g[0]
        title = f"{r['task']} {r['cell']}" + (f" T={r['T']}" if r["T"] else "")
        panels.append((title, [r["curve"] for r in g]))
    _write_png(loss_panels(panels), path)
