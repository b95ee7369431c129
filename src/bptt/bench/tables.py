"""Results: one record per (setting, cell, dtype, mode, shape), printed and written as markdown.

ratio = torch_time / bptt_time (> 1: bptt is faster). GFLOP/s count GEMM work only
(``cases.gemm_flops``); % peak compares them with the GEMM peak measured in the same setting's
bptt worker. "gemm ms" is bptt's matrix products alone, "cap" = torch_time / gemm_time the
highest ratio the engine could reach on that BLAS if everything else were free. "load" is the
1-minute load average when the case started.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Record:
    setting: str
    cell: str
    dtype: str
    mode: str
    T: int
    N: int
    D: int
    H: int
    bptt_s: float
    bptt_min_s: float
    bptt_max_s: float
    torch_s: float | None
    torch_min_s: float | None
    torch_max_s: float | None
    ratio: float | None
    ratio_min: float | None             # torch_min / bptt_min: less sensitive to a busy machine
    gflop: float
    bptt_gflops: float
    torch_gflops: float | None
    peak_gflops: float
    bptt_pct_peak: float
    torch_pct_peak: float | None
    gemm_s: float | None = None
    bptt_mem_mb: float | None = None
    torch_mem_mb: float | None = None
    load: float | None = None
    threads: int = 2
    extra: dict = field(default_factory=dict)


def _ms(t: float | None, width: int = 9) -> str:
    return f"{'-':>{width}}" if t is None else f"{t * 1e3:{width}.3f}"


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


CONSOLE_HEAD = (f"{'setting':7} {'cell':4} {'dtype':7} {'mode':5} {'T':>4} {'N':>3} {'D':>3} "
                f"{'H':>3} | {'bptt ms':>9} {'torch ms':>9} {'ratio':>6} {'r(min)':>6} | "
                f"{'%pk':>4} {'torch%pk':>8} | {'gemm ms':>9} {'cap':>5} | {'load':>4}")


def console_line(r: Record) -> str:
    cap = r.torch_s / r.gemm_s if r.torch_s and r.gemm_s else None
    return (f"{r.setting:7} {r.cell:4} {r.dtype:7} {r.mode:5} {r.T:4} {r.N:3} {r.D:3} {r.H:3} | "
            f"{_ms(r.bptt_s)} {_ms(r.torch_s)} {_f(r.ratio, '6.2f'):>6} "
            f"{_f(r.ratio_min, '6.2f'):>6} | "
            f"{r.bptt_pct_peak:4.0f} {_f(r.torch_pct_peak, '8.0f'):>8} | {_ms(r.gemm_s)} "
            f"{_f(cap, '5.2f'):>5} | {_f(r.load, '4.1f'):>4}")


def _kernels(info: dict | None) -> str:
    if not info or not info.get("blas"):
        return "?"
    return ", ".join(f"{b.get('internal_api')} {b.get('architecture') or ''}".strip()
                     for b in info["blas"])


def setting_line(s: dict) -> str:
    """One line per setting: the BLAS variables each worker saw, kernels, GEMM peak."""
    w = s["workers"]
    env = ", ".join(f"{k}={v if v is not None else '(unset)'}"
                    for k, v in w["bptt"]["env"].items())
    peak = ", ".join(f"{dt} {g:.1f}" for dt, g in s["peak_gflops"].items())
    tor = w.get("torch")
    torch_part = (f"; torch worker: {', '.join(f'{k}={v}' for k, v in tor['env'].items())}, "
                  f"libraries: {_kernels(tor)}") if tor else ""
    return (f"**{s['name']}**: bptt worker {env}, BLAS: {_kernels(w['bptt'])}, GEMM peak "
            f"(2048^3, GFLOP/s) {peak}{torch_part}")


def markdown(doc: dict) -> str:
    """The run as markdown: machine, per setting its workers and table, a ratio summary, the
    char-LM steps. ``doc`` is what ``--json`` writes."""
    m = doc["machine"]
    lines = [f"{m['cpu']}, {m['cpus']} CPUs, numpy {m['numpy']}, torch "
             f"{m.get('torch') or 'absent'}, {m['threads']} thread(s) per library, "
             f"{m['repeats']} alternating rounds (median), load average "
             f"{_f(m.get('load_start'), '.1f')} at the start, "
             f"{_f(m.get('load_end'), '.1f')} at the end", ""]
    for s in doc["settings"]:
        lines += [setting_line(s), "",
                  "| cell | dtype | mode | T, N, D, H | bptt ms (min-max) | torch ms (min-max) "
                  "| ratio | ratio of min | bptt % peak | torch % peak | gemm ms | cap | bptt MB "
                  "| torch MB | load |", "|" + "---|" * 15]
        for r in doc["records"]:
            if r["setting"] != s["name"]:
                continue
            cap = r["torch_s"] / r["gemm_s"] if r.get("torch_s") and r.get("gemm_s") else None
            tms = (f"{r['torch_s'] * 1e3:.3f} ({r['torch_min_s'] * 1e3:.3f}-"
                   f"{r['torch_max_s'] * 1e3:.3f})" if r.get("torch_s") else "-")
            lines.append(
                f"| {r['cell']} | {r['dtype']} | {r['mode']} | {r['T']}, {r['N']}, {r['D']}, "
                f"{r['H']} | {r['bptt_s'] * 1e3:.3f} ({r['bptt_min_s'] * 1e3:.3f}-"
                f"{r['bptt_max_s'] * 1e3:.3f}) | {tms} | **{_f(r['ratio'], '.2f')}** "
                f"| {_f(r.get('ratio_min'), '.2f')} "
                f"| {r['bptt_pct_peak']:.0f} | {_f(r['torch_pct_peak'], '.0f')} "
                f"| {_f(r['gemm_s'] and r['gemm_s'] * 1e3, '.3f')} | {_f(cap, '.2f')} "
                f"| {_f(r.get('bptt_mem_mb'), '.1f')} | {_f(r.get('torch_mem_mb'), '.1f')} "
                f"| {_f(r.get('load'), '.1f')} |")
        lines.append("")
    names = [s["name"] for s in doc["settings"]]
    if len(names) > 1:
        lines += ["torch / bptt by setting: ratio of medians (ratio of minima)", "",
                  "| cell | dtype | mode | T, N, D, H | " + " | ".join(names) + " |",
                  "|" + "---|" * (4 + len(names))]
        by: dict[tuple, dict[str, dict]] = {}
        for r in doc["records"]:
            by.setdefault((r["cell"], r["dtype"], r["mode"], r["T"], r["N"], r["D"], r["H"]),
                          {})[r["setting"]] = r
        for (cell, dt, mode, T, N, D, H), rs in by.items():
            cells = [f"{_f(rs[n]['ratio'], '.2f')} ({_f(rs[n].get('ratio_min'), '.2f')})"
                     if n in rs else "-" for n in names]
            lines.append(f"| {cell} | {dt} | {mode} | {T}, {N}, {D}, {H} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    for c in doc.get("charlm") or []:
        lines.append(
            f"char-LM step, {c['setting']} (embedding {c['V']} -> {c['E']}, LSTM {c['layers']} x "
            f"{c['H']}, temporal affine, softmax loss; {c['N']} x {c['T']} characters, "
            f"{c['dtype']}): bptt {c['bptt_s'] * 1e3:.2f} ms = {c['bptt_chars_per_s']:,.0f} "
            f"chars/s" + (f", PyTorch {c['torch_s'] * 1e3:.2f} ms = "
                          f"{c['torch_chars_per_s']:,.0f} chars/s, ratio **{c['ratio']:.2f}**"
                          if c.get("torch_s") else ""))
    return "\n".join(lines).rstrip() + "\n"
