"""The command line: gradcheck passes and exits 0; bad usage exits non-zero with one line."""

import json

import pytest

from bptt.cli import main


def test_gradcheck_passes_and_reports_every_gradient(capsys):
    assert main(["gradcheck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    layers = {r["layer"] for r in report["results"]}
    for name in ("rnn", "lstm+mask", "lstm_with_state", "temporal_affine", "embedding",
                 "temporal_softmax_loss+mask", "softmax_loss"):
        assert name in layers
    assert max(r["error"] for r in report["results"]) < 1e-7


def test_gradcheck_table(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out


def test_unknown_option_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["gradcheck", "--no-such-option"])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import bptt.commands.gradcheck as gc

    def boom(args):
        raise TypeError("a bug")

    monkeypatch.delenv("BPTT_DEBUG", raising=False)

    def patched_register(sub, real=gc.register):
        real(sub)
        sub.choices["gradcheck"].set_defaults(func=boom)

    monkeypatch.setattr(gc, "register", patched_register)
    assert main(["gradcheck"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (TypeError: a bug)" in err[0] and "--debug" in err[0]
    with pytest.raises(TypeError, match="a bug"):
        main(["gradcheck", "--debug"])
    monkeypatch.setenv("BPTT_DEBUG", "1")
    with pytest.raises(TypeError, match="a bug"):
        main(["gradcheck"])


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--lr"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bptt train: error: ") and "--help" in err[0]
