"""examples/: each script runs end to end on tiny settings, through the public API only."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_char_lstm.py"


def _run(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_char_lstm_example_learns_the_made_up_text():
    r = _run("--steps", "300", "--hidden", "32", "--seq-len", "16", "--batch", "8", "--lr", "2e-2")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("validation loss"))
    before, after = (float(w) for w in line.split()[2:5:2])       # "validation loss A -> B"
    assert before > 2.5 and after < 0.5, line       # from ~ln(23) to near the text's 0.115
    assert "sample: '" in r.stdout


def test_char_lstm_example_reads_a_text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("to be or not to be, that is the question. " * 40, encoding="utf-8")
    r = _run(str(path), "--steps", "5", "--hidden", "8", "--seq-len", "8", "--batch", "4")
    assert r.returncode == 0, r.stderr
    assert "1,680 characters, vocabulary 15" in r.stdout


def test_char_lstm_example_rejects_bad_files_in_one_line(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for path, message in ((bad, "is not UTF-8 text"), (empty, "holds 0 characters"),
                          (tmp_path / "missing.txt", "cannot read")):
        r = _run(str(path))
        assert r.returncode != 0
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _run("--steps", "0")
    assert r.returncode == 2 and "--steps is 0" in r.stderr


def test_examples_import_only_the_public_api():
    """No private module (bptt.x._y) or private name (from bptt... import _z) in the examples."""
    for script in (ROOT / "examples").glob("*.py"):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bptt"):
                assert not any(part.startswith("_") for part in node.module.split(".")), script
                assert not any(a.name.startswith("_") for a in node.names), script
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert not (node.value.id in ("F", "optim", "nn") and
                            node.attr.startswith("_")), (script, node.attr)
