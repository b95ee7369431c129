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
