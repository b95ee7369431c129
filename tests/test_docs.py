"""The documentation site: ``mkdocs build --strict`` with the notebooks executed, the generated
CLI reference, notebooks stored without outputs, README links, and two built pages opened in
headless Chromium with no console errors.

Building the site executes every notebook (mkdocs-jupyter, ``allow_errors: false``), so this is
also the test that the tutorials run. Skipped, saying why, without the ``docs`` extra."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
DOCS_MODULES = ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter", "nbclient")


def _missing_docs_tools() -> str | None:
    import importlib.util

    for name in DOCS_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


needs_docs = pytest.mark.skipif(
    _missing_docs_tools() is not None,
    reason=f"the docs extra is not installed ({_missing_docs_tools()} missing): "
           "pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module into a temporary directory (notebooks executed)."""
    work = tmp_path_factory.mktemp("docs")
    out = work / "site"
    env = dict(os.environ, BPTT_DOCS_EXECUTE="true", NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    # cwd = a fresh directory: mkdocs-jupyter keeps its cache of executed notebooks in ./.cache,
    # and the test must execute them.
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail("mkdocs build --strict failed:\n" + proc.stdout[-4000:] + proc.stderr[-8000:])
    return out


@needs_docs
def test_site_builds_strict_with_api_reference(site):
    for page in ("index.html", "getting-started/index.html", "math/index.html",
                 "engine/index.html", "faq/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "functional" / "index.html").read_text(encoding="utf-8")
    for name in ("lstm.lstm_forward", "lstm.lstm_backward", "rnn.rnn_step_backward",
                 "losses.temporal_softmax_loss", "recurrence.RecurrenceCache"):
        assert f'id="bptt.functional.{name}"' in api, name
    for mod in ("nn", "optim", "gradcheck", "interop"):
        assert (site / "api" / mod / "index.html").is_file(), mod


@needs_docs
def test_cli_reference_is_generated_from_the_parser(site):
    from bptt.cli import build_parser

    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "bptt-cli-help" not in page                       # the marker was replaced
    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert len(subs.choices) >= 9
    for name, sub in subs.choices.items():
        assert f'id="bptt-{name}"' in page, name
        for action in sub._actions:                          # every long option is documented
            for opt in action.option_strings:
                if opt.startswith("--"):
                    assert opt in page, (name, opt)


# A line each notebook prints once it has run to the end (its last checks passed).
PRINTS = {"bptt_by_hand": "engine dx", "char_lstm": "nats/char", "gradient_flow": "trained: share",
          "masked_classification": "test accuracy"}


@needs_docs
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_page_is_executed_without_errors(site, nb):
    html = (site / "notebooks" / nb.stem / "index.html").read_text(encoding="utf-8")
    assert "jp-OutputArea-output" in html, "the notebook was not executed"
    assert PRINTS[nb.stem] in html
    if nb.stem == "gradient_flow":
        assert "<img" in html                                # the plot
    # errors and warnings are rendered as stderr outputs: there must be none
    assert 'jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr"' not in html
    assert "Traceback" not in html


def test_notebooks_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 4
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                    f"{path.name}: strip the outputs before committing "
                    "(jupyter nbconvert --clear-output --inplace)")


def test_every_nav_page_exists():
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    for page in re.findall(r":\s*([\w/.-]+\.(?:md|ipynb))\s*$", nav, flags=re.M):
        assert (ROOT / "docs" / page).is_file(), page


def test_readme_links_land_on_site_pages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [u for u in links if not u.startswith(("http://", "https://", "mailto:"))]
    assert local, "the README links into the site"
    for url in local:
        assert (ROOT / url).exists(), f"README links to {url}, which does not exist"
        assert not url.startswith(".."), f"README links outside the repository: {url}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@needs_docs
def test_two_pages_open_in_headless_chromium_without_console_errors(site):
    from headless_chromium import Chromium, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    # Served over HTTP, as a reader would see it: the theme fetches its search index.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with Chromium() as browser:
            for path, expect in (("math/", "Z - 1_m"), ("notebooks/bptt_by_hand/", "rel. error")):
                page = browser.open(base + path)
                text = page.evaluate("document.body.innerText")
                assert expect in text, path
                assert page.evaluate("document.querySelectorAll('nav a').length") > 10
                assert page.console_errors == [], (path, page.console_errors)
                assert all(u.startswith((base, "data:", "blob:")) for u in page.requests), (
                    path, [u for u in page.requests if not u.startswith(base)])
    finally:
        server.shutdown()
        server.server_close()


def test_readme_python_example_runs(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README shows the library in Python"
    exec(compile(blocks[0], "README.md", "exec"), {})
