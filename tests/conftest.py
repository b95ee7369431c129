"""pytest options: ``--error-report`` prints the largest measured error of each check category."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--error-report", action="store_true",
                     help="print the largest measured error per check category")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("--error-report"):
        return
    from helpers import MEASURED

    terminalreporter.section("largest measured errors")
    for category in sorted(MEASURED):
        terminalreporter.write_line(f"{category:55s} {MEASURED[category]:.2e}")


@pytest.fixture
def corpus_file(tmp_path):
    """A 6,000-character pseudo-verse text file for the language-model tests."""
    from corpus_text import make_text

    path = tmp_path / "verse.txt"
    path.write_text(make_text(6000), encoding="utf-8")
    return path
