"""``bptt train --config FILE.toml``: options from a TOML file, command-line options on top,
the resolved options in the run's config.json; bad files are one-line errors."""

from __future__ import annotations

import json

import pytest

from bptt.charlm.tomlconfig import load_train_options
from bptt.cli import main


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_file_options_apply_and_command_line_options_override(tmp_path, corpus_file, capsys):
    cfg = _write(tmp_path / "run.toml", f"""
preset = "tiny"
corpus = [{json.dumps(str(corpus_file))}]
out = {json.dumps(str(tmp_path / "from-file"))}
hidden = 24
seq-len = 12
lr = 1                      # an integer where a float is expected
max_steps = 6
eval-every = 3
""")
    rc = main(["train", "--config", str(cfg), "--hidden", "20", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    resolved = json.loads((tmp_path / "from-file" / "config.json").read_text(encoding="utf-8"))
    resolved = resolved["train"]
    assert resolved["hidden"] == 20                          # the command line wins
    assert resolved["seq_len"] == 12 and resolved["max_steps"] == 6   # the file's
    assert resolved["lr"] == 1.0 and resolved["embed"] == 16          # the file's, the preset's
    assert resolved["corpus"] == [str(corpus_file)]


@pytest.mark.parametrize(("text", "message"), [
    ("hiden = 3\n", "unknown key 'hiden'"),
    ("hidden = 'big'\n", "hidden = 'big' has the wrong type"),
    ("hidden = 2.5\n", "has the wrong type; it must be an integer"),
    ("corpus = 'a.txt'\n", "it must be a list of strings"),
    ("dropout = true\n", "has the wrong type"),
    ("hidden = = 3\n", "not valid TOML"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, text, message, capsys):
    cfg = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_train_options(cfg)
    rc = main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message.split(";")[0] in err


def test_missing_and_non_utf8_config_files(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "latin.toml").write_bytes(b"out = '\xe9'\n")
    assert main(["train", "--config", str(tmp_path / "latin.toml")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
