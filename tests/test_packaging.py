"""Packaging: ``python -m build`` makes an sdist and a wheel that pass ``twine check``; the wheel,
installed into a fresh virtual environment (no source tree on the path) with the LOWEST NumPy
that pyproject allows, runs ``bptt --version``, ``bptt gradcheck``, a 20-step ``bptt train`` and
``bptt report`` (so the package data - report assets, py.typed - is inside), and the engine's
tests pass there. The main environment runs every test with the newest NumPy.

The build and the environment are made once per session (about a minute; pip needs PyPI or its
cache). ``BPTT_WHEEL=path.whl`` tests a given wheel instead of building one. Skipped, saying
why, without the ``build`` and ``twine`` tools (the docs extra)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# The engine's own tests, rerun against the installed wheel with the lowest NumPy (no PyTorch).
ENGINE_TESTS = ["test_recurrent_common.py", "test_lstm.py", "test_reference.py",
                "test_gradcheck.py", "test_temporal.py",
                "test_losses.py", "test_pooling.py", "test_activations.py", "test_optim.py",
                "test_nn.py", "test_validation.py"]

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("build", "twine")),
    reason="needs the build and twine packages: pip install -e '.[docs]'")


def lowest_numpy() -> str:
    """The lower bound of numpy in pyproject's dependencies, e.g. '1.24'."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, flags=re.M | re.S).group(1)
    m = re.search(r'"numpy>=([0-9.]+)"', deps)
    assert m, f"pyproject's dependencies name no numpy lower bound: {deps}"
    return m.group(1)


def run(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def dists(tmp_path_factory) -> dict[str, Path]:
    """{'wheel': ..., 'sdist': ...}, built once per session from a copy of the tracked tree."""
    given = os.environ.get("BPTT_WHEEL")
    if given:
        return {"wheel": Path(given), "sdist": None}
    out = tmp_path_factory.mktemp("dist")
    args = [sys.executable, "-m", "build", "--outdir", out]
    try:
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 68:
            args.append("--no-isolation")          # no download: this environment can build
    except ImportError:
        pass
    run([*args, ROOT], cwd=out)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="session")
def venv(tmp_path_factory, dists) -> Path:
    """A fresh virtual environment with the wheel, its train extra and the lowest NumPy."""
    where = tmp_path_factory.mktemp("venv")
    env_dir = where / "env"
    run([sys.executable, "-m", "venv", env_dir], cwd=where)   # no --system-site-packages
    py = env_dir / "bin" / "python"
    low = lowest_numpy()
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"{dists['wheel']}[train]", f"numpy=={low}.*", "pytest", "hypothesis"],
        cwd=where, timeout=900)
    return env_dir


def clean_env(env_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def test_sdist_and_wheel_pass_twine_check(dists):
    files = [p for p in dists.values() if p is not None]
    run([sys.executable, "-m", "twine", "check", "--strict", *files], cwd=ROOT)


def test_wheel_holds_the_package_data_and_one_version(dists):
    from bptt import __version__

    wheel = dists["wheel"]
    assert f"bptt-{__version__}-" in wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("bptt/py.typed", "bptt/analysis/assets/report.js",
                 "bptt/analysis/assets/report.css"):
        assert data in names, data
    assert not any(n.startswith(("tests/", "src/")) for n in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert f"Version: {__version__}" in text
    assert f"Requires-Dist: numpy>={lowest_numpy()}" in text


def test_installed_wheel_runs_gradcheck_train_and_report(venv, tmp_path):
    from bptt import __version__

    env = clean_env(venv)
    bptt = venv / "bin" / "bptt"
    py = venv / "bin" / "python"
    where = run([py, "-c", "import bptt, numpy; print(bptt.__file__); print(numpy.__version__)"],
                cwd=tmp_path, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(venv), f"bptt imported from {where[0]}, not the wheel"
    assert where[1].startswith(lowest_numpy() + "."), f"numpy {where[1]} is not the lowest"
    assert run([bptt, "--version"], cwd=tmp_path, env=env).stdout.strip() == f"bptt {__version__}"

    out = run([bptt, "gradcheck"], cwd=tmp_path, env=env, timeout=900).stdout
    assert "lstm" in out.lower()

    text = tmp_path / "small.txt"
    text.write_text(("To be, or not to be, that is the question: whether 'tis nobler in the "
                     "mind to suffer the slings and arrows of outrageous fortune. ") * 40,
                    encoding="utf-8")
    run([bptt, "train", text, "--out", tmp_path / "run", "--max-steps", "20", "--hidden", "16",
         "--layers", "1", "--embed", "8", "--batch", "4", "--seq-len", "16", "--eval-every",
         "10", "--quiet"], cwd=tmp_path, env=env, timeout=600)
    assert (tmp_path / "run" / "best.json").is_file()
    run([bptt, "report", tmp_path / "run"], cwd=tmp_path, env=env, timeout=600)
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    css = (ROOT / "src" / "bptt" / "analysis" / "assets" / "report.css").read_text("utf-8")
    assert css.strip()[:40] in page                          # the packaged stylesheet, inlined


def test_engine_tests_pass_with_the_lowest_numpy(venv, tmp_path):
    """The engine's tests, copied out of the source tree, against the installed wheel."""
    for name in ["conftest.py", "helpers.py", *ENGINE_TESTS]:
        shutil.copy(TESTS / name, tmp_path / name)
    env = clean_env(venv)
    proc = subprocess.run([venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", tmp_path, *ENGINE_TESTS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
