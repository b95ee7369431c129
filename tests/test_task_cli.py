"""``bptt task`` and ``bptt suite``: a smoke run of every task, the JSON contract, bad usage."""

import json

import pytest

from bptt.cli import main
from bptt.tasks import TASKS, mnist1d

try:
    import sklearn  # noqa: F401
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False


def _skip_reason(name):
    task = TASKS[name]
    if task.needs == "sklearn" and not HAVE_SKLEARN:
        return "scikit-learn is not installed (pip install 'bptt[tasks]')"
    if task.needs == "mnist1d" and not mnist1d.available():
        return "mnist1d is not installed (pip install mnist1d)"
    return None


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_smoke_run_prints_the_json_contract(name, capsys):
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    cell = "rnn" if name in ("reber", "digits-rows") else "lstm"
    assert main(["task", name, "--cell", cell, "--quick", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("task", "cell", "metric", "value", "published", "baseline"):
        assert key in r
    assert r["task"] == name and r["cell"] == cell and r["steps"] <= 3
    assert isinstance(r["value"], (int, float))


def test_task_text_output_and_T(capsys):
    assert main(["task", "adding", "--T", "20", "--quick", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "adding (lstm, T=20)" in out and "baseline" in out and "published" in out


@pytest.mark.parametrize(("argv", "msg"), [
    (["task", "no-such-task", "--quick"], "unknown task"),
    (["task", "reber", "--T", "50", "--quick"], "has no length"),
    (["task", "copy", "--pooling", "max", "--quick"], "neither --pooling"),
    (["task", "reber", "--bidirectional", "--quick"], "neither --pooling"),
    (["suite", "--only", "nope", "--quick"], "unknown task"),
])
def test_bad_usage_is_one_line_and_exit_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_suite_quick_writes_table_json_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the suite's plots need matplotlib")
    out = tmp_path / "suite"
    assert main(["suite", "--quick", "--jobs", "1", "--only", "adding", "reber",
                 "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    tasks = {(r["task"], r["cell"]) for r in report["results"]}
    assert ("adding", "rnn") in tasks and ("reber", "lstm") in tasks
    assert all("gradient_flow" in r for r in report["results"]
               if r["task"] == "adding" and r["T"] == 100)
    md = (out / "results.md").read_text()
    assert "| adding | lstm | 100 |" in md and "published" in md
    assert (out / "gradient_flow.png").stat().st_size > 1000
    assert (out / "training_curves.png").stat().st_size > 1000
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Gradient norm through time" in page and page.count("<img") >= 1
