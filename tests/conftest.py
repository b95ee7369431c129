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


# ---------------------------------------------------------------- the hostile tests' run

@pytest.fixture(scope="session")
def hostile_corpus(tmp_path_factory):
    """A 3,000-character text (never modified)."""
    from corpus_text import make_text

    p = tmp_path_factory.mktemp("hostile-corpus") / "verse.txt"
    p.write_text(make_text(3000, seed=3), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def hostile_trained(tmp_path_factory, hostile_corpus):
    """A finished tiny run (never modified: tests take a copy)."""
    from hostile import TINY, cli

    run = tmp_path_factory.mktemp("hostile-trained") / "run"
    rc, _, err = cli(["train", hostile_corpus, "--out", run, *TINY])
    assert rc == 0, err
    return run


@pytest.fixture
def hostile_run(tmp_path, hostile_trained):
    """A private copy of the finished tiny run."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(hostile_trained, dst)
    (dst / ".lock").unlink(missing_ok=True)
    return dst


# The hostile test modules' short names for the three fixtures above (a module that defines its
# own ``corpus``, ``trained`` or ``run`` fixture overrides these).
@pytest.fixture
def corpus(hostile_corpus):
    return hostile_corpus


@pytest.fixture
def trained(hostile_trained):
    return hostile_trained


@pytest.fixture
def run(hostile_run):
    return hostile_run
