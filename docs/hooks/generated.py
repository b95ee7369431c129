"""MkDocs hook: replace ``<!-- bptt-cli-help -->`` in a page with the ``--help`` of ``bptt`` and
of every subcommand, generated from ``bptt.cli.build_parser()`` at build time (never copied by
hand, so the page cannot drift from the code), and ``<!-- bptt-changelog -->`` with the
repository's CHANGELOG.md (one file, shown in the site)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MARKER = "<!-- bptt-cli-help -->"
CHANGELOG = "<!-- bptt-changelog -->"
ROOT = Path(__file__).resolve().parents[2]
WIDTH = "100"                       # argparse wraps to $COLUMNS: fixed, so builds are identical


def _parser() -> argparse.ArgumentParser:
    try:
        from bptt.cli import build_parser
    except ImportError:             # building from a source checkout without installing
        sys.path.insert(0, str(ROOT / "src"))
        from bptt.cli import build_parser
    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_markdown() -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = _parser()
        parts = ["## bptt", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subparsers(parser).items():
            parts += [f"## bptt {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CHANGELOG in markdown:
        markdown = markdown.replace(CHANGELOG, (ROOT / "CHANGELOG.md").read_text("utf-8"))
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_markdown())
    return markdown
