"""``bptt train``, ``bptt sample``, ``bptt score`` from the command line: the tiny-corpus smoke
test train -> sample -> score, resume, and bad input as one clear line (never a traceback)."""

import json

import numpy as np
import pytest

from bptt.charlm.checkpoint import load_checkpoint
from bptt.cli import main
from corpus_text import make_text

TINY = ["--preset", "tiny", "--quiet", "--max-steps", "20", "--eval-every", "10",
        "--eval-chars", "300", "--sample-chars", "30"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    text = d / "verse.txt"
    text.write_text(make_text(5000), encoding="utf-8")
    assert main(["train", str(text), "--out", str(d / "run"), *TINY]) == 0
    return d, text, d / "run"


def test_train_sample_score_smoke(trained, capsys):
    _d, text, run = trained
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert all({"step", "train_loss", "val_loss"} <= set(r) for r in rows)
    capsys.readouterr()
    assert main(["sample", str(run), "--seed", "4", "--length", "60", "--prime", "The "]) == 0
    first = capsys.readouterr().out
    assert main(["sample", str(run), "--seed", "4", "--length", "60", "--prime", "The "]) == 0
    assert capsys.readouterr().out == first and first.startswith("The ")
    assert len(first) == len("The ") + 60 + 1
    assert main(["sample", str(run), "--greedy", "--length", "20", "--top-k", "3"]) == 0
    capsys.readouterr()
    assert main(["score", str(run), str(text), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"nats_per_char", "bits_per_char", "perplexity", "chars"}
    assert res["chars"] == len(text.read_text()) - 1
    assert main(["score", str(run), str(text)]) == 0
    assert "bits/char" in capsys.readouterr().out


def test_resume_from_the_command_line_continues_exactly(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(make_text(3000, seed=2), encoding="utf-8")
    args = ["--preset", "tiny", "--quiet", "--max-steps", "16", "--eval-every", "5",
            "--sample-chars", "0", "--dropout", "0.2", "--layers", "2"]
    assert main(["train", str(text), "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["train", str(text), "--out", str(tmp_path / "b"), *args, "--stop-at", "6"]) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--quiet"]) == 0
    _, a, _ = load_checkpoint(tmp_path / "a", "last")
    _, b, _ = load_checkpoint(tmp_path / "b", "last")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _one_line_error(capsys, argv, cmd, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"bptt {cmd}: error: "), err
    assert match in lines[0], err
    assert "Traceback" not in err


def test_loader_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Ça va très bien\n".encode("latin-1"))
    short = tmp_path / "short.txt"
    short.write_text("just a few words\n" * 3, encoding="utf-8")
    out = ["--out", str(tmp_path / "r"), "--quiet"]
    _one_line_error(capsys, ["train", str(empty), *out], "train", "is empty")
    _one_line_error(capsys, ["train", str(binary), *out], "train", "looks like a binary file")
    _one_line_error(capsys, ["train", str(latin), *out], "train",
                    "is not valid UTF-8: byte 0xc7 at byte offset 0")
    _one_line_error(capsys, ["train", str(tmp_path / "nope.txt"), *out], "train",
                    "no such file")
    _one_line_error(capsys, ["train", str(short), *out], "train", "too few")


def test_bad_options_and_runs_are_one_line(trained, tmp_path, capsys):
    _d, text, run = trained
    out = ["--out", str(tmp_path / "r"), "--quiet"]
    _one_line_error(capsys, ["train", str(text), *out, "--dropout", "1.5"], "train",
                    "--dropout is 1.5")
    _one_line_error(capsys, ["train", str(text), *out, "--batch", "0"], "train", "--batch is 0")
    _one_line_error(capsys, ["train", str(text), *out, "--layers", "1", "--dropout", "0.5"],
                    "train", "dropout acts between layers")
    _one_line_error(capsys, ["train", str(text), "--out", str(run)], "train",
                    "already holds a run")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "nowhere")], "train",
                    "no checkpoint to resume")
    _one_line_error(capsys, ["train", "--resume", str(run), "--hidden", "99"], "train",
                    "--hidden cannot change when resuming")
    _one_line_error(capsys, ["sample", str(tmp_path / "nowhere")], "sample",
                    "no such run directory")
    _one_line_error(capsys, ["sample", str(run), "--prime", "Ça"], "sample",
                    "'Ç' (U+00C7)")
    _one_line_error(capsys, ["sample", str(run), "--temperature", "0"], "sample", "temperature")
    _one_line_error(capsys, ["score", str(run), str(tmp_path / "missing.txt")], "score",
                    "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    _one_line_error(capsys, ["score", str(bad), str(text)], "score", "not a readable checkpoint")


def test_prime_characters_can_be_skipped_with_a_warning(trained, capsys):
    _, _, run = trained
    assert main(["sample", str(run), "--prime", "Ça", "--skip-unknown", "--length", "5",
                 "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped prime characters" in captured.err and "'Ç'" in captured.err


def test_train_help_lists_the_option_groups(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for group in ("run:", "data:", "model:", "optimizer:", "learning-rate schedule:",
                  "clipping and divergence:", "evaluation and output:"):
        assert group in out
    for opt in ("--out", "--seed", "--max-steps", "--max-minutes", "--cell", "--layers",
                "--hidden", "--batch", "--seq-len", "--quiet", "--resume", "--clip-norm",
                "--clip-value", "--dropout", "--embed", "--optimizer", "--schedule",
                "--encoding"):
        assert opt in out


def test_training_writes_its_report(trained):
    _, _, run = trained
    page = (run / "report.html").read_text(encoding="utf-8")      # written by bptt train itself
    assert "heatmap-data" in page and "<img" in page


def test_report_of_a_trained_run_has_the_activation_heatmap(trained, capsys):
    _, _, run = trained
    assert main(["report", str(run), "--chars", "200"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "heatmap-data" in page and "No samples were recorded" not in page


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    text = tmp_path / "t.txt"
    text.write_text(make_text(4000, seed=3), encoding="utf-8")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bptt", "train", str(text), "--out", str(run), "--preset",
         "tiny", "--max-steps", "1000000", "--eval-every", "5", "--sample-chars", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:                      # wait for the first evaluation
        if line.startswith("step 5"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved. Continue with: bptt train --resume" in out
    step = load_checkpoint(run, "last")[0]["step"]
    assert step >= 5
    assert main(["train", "--resume", str(run), "--quiet", "--max-steps", str(step + 3)]) == 0
    assert load_checkpoint(run, "last")[0]["step"] == step + 3
