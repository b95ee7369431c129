"""The example scripts run (small sizes) and say what they should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_check_gradients_example_passes(cell):
    out = _run("check_gradients.py", "--cell", cell, "--seed", "3")
    assert out.count("(ok,") == 5 and "FAIL" not in out


def test_classify_sequences_example_learns():
    out = _run("classify_sequences.py", "--epochs", "3", "--train-size", "600")
    acc = float(out.split("test accuracy")[1].split()[0])
    assert acc > 0.45                                       # chance is 1/3
