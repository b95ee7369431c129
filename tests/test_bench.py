"""The benchmark's own tests: it runs in worker processes, writes JSON and markdown, renders a
saved run, and its GEMM floor makes the engine's products (no PyTorch needed)."""

import json

import numpy as np
import pytest

from bptt import bench
from bptt.functional import engine


def test_bench_runs_in_workers_and_writes_json(tmp_path):
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    rc = bench.main(["--cases", "3x2x4x5", "--repeats", "1", "--pause", "0", "--min-round",
                     "0", "--no-torch", "--no-memory", "--no-charlm", "--json", str(out),
                     "--markdown", str(md)])
    assert rc == 0
    doc = json.loads(out.read_text())
    names = [s["name"] for s in doc["settings"]]
    assert names == ["as-set", "unset"]
    unset = doc["settings"][1]["workers"]["bptt"]
    assert unset["env"] == {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    as_set = doc["settings"][0]["workers"]["bptt"]
    assert as_set["env"]["OPENBLAS_CORETYPE"]                       # set or pinned
    assert unset["pid"] != as_set["pid"]                            # separate processes
    assert all(g > 0 for s in doc["settings"] for g in s["peak_gflops"].values())
    recs = doc["records"]
    assert len(recs) == 24                         # 2 settings x 3 cells x 2 dtypes x 2 modes
    for r in recs:
        for key in ("setting", "cell", "dtype", "mode", "T", "N", "D", "H", "bptt_s",
                    "bptt_min_s", "bptt_max_s", "torch_s", "ratio", "bptt_gflops",
                    "peak_gflops", "bptt_pct_peak", "load"):
            assert key in r, key
        assert r["bptt_min_s"] <= r["bptt_s"] <= r["bptt_max_s"]
        assert r["mode"] in ("train", "infer") and r["bptt_s"] > 0 and r["torch_s"] is None
        assert r["gemm_s"] > 0
    rows = [ln for ln in md.read_text().splitlines() if ln.startswith(("| rnn", "| lstm", "| gru"))]
    assert len(rows) == 24 + 12                    # two tables and the summary by setting


def test_bench_render_turns_saved_json_into_markdown(tmp_path, capsys):
    out = tmp_path / "b.json"
    bench.main(["--cases", "2x1x3x4", "--cells", "lstm", "--dtypes", "float32", "--repeats", "1",
                "--pause", "0", "--min-round", "0", "--no-torch", "--no-memory", "--no-charlm",
                "--settings", "unset", "--json", str(out)])
    capsys.readouterr()
    assert bench.main(["--render", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| lstm | float32 | train | 2, 1, 3, 4 |" in text
    assert "| lstm | float32 | infer | 2, 1, 3, 4 |" in text
    assert "OPENBLAS_CORETYPE=(unset)" in text
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit) as e:
        bench.main(["--render", str(bad)])
    assert e.value.code == 2
    assert "not a benchmark JSON" in capsys.readouterr().err


def test_bench_rejects_unknown_options():
    with pytest.raises(SystemExit) as e:
        bench.main(["--no-such-option"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        bench.main(["--cases", "3x2x4"])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("N", [1, 3])
def test_gemm_floor_makes_the_engines_products(cell, N):
    """The GEMM-only callable yields the shapes of the engine's dx, dWx, dWh and forward XW."""
    T, D, H = 4, 5, 6
    G = 4 * H if cell == "lstm" else H
    d = bench.make_data(cell, "float64", T, N, D, H)
    dx, dWx, dWh = bench.gemm_only_callable(cell, "train", d)()
    assert dx.shape == (N, T, D) and dWx.shape == (D, G) and dWh.shape == (H, G)
    assert bench.gemm_only_callable(cell, "infer", d)().shape == (G, T * N)
    with pytest.raises(ValueError, match="unknown cell"):
        engine.gemm_floor("gru2", "train", d["x"], d["h0"], d["Wx"], d["Wh"])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_engine_infer_equals_the_layer_forward(cell):
    from bptt import functional as F
    d = bench.make_data(cell, "float64", 5, 3, 4, 6, seed=3)
    d["h0"] = np.random.default_rng(4).standard_normal(d["h0"].shape)
    mask = np.ones((3, 5), dtype=bool)
    mask[1, 3:] = False
    fwd = F.lstm_forward if cell == "lstm" else F.rnn_forward
    h_ref, _ = fwd(d["x"], d["h0"], d["Wx"], d["Wh"], d["b"], mask)
    h, _ = engine.infer(cell, d["x"], d["h0"], d["Wx"], d["Wh"], d["b"], mask)
    np.testing.assert_array_equal(h, h_ref)
    with pytest.raises(ValueError, match="Wx"):
        engine.infer(cell, d["x"], d["h0"], d["Wx"][:-1], d["Wh"], d["b"])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_sides_compute_the_same_step(cell, mode):
    """bptt's and PyTorch's callables get the same weights: equal h (infer) and dx (train)."""
    torch = pytest.importorskip("torch")
    from bptt.bench import cases
    d = cases.make_data(cell, "float64", 6, 3, 5, 4, seed=2)
    ours = cases.bptt_callable(cell, mode, d)()
    theirs = cases.torch_callable(torch, cell, mode, d)()
    ours = ours if mode == "infer" else ours[0]
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
