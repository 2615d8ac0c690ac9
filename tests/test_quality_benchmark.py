"""Smoke test of benchmarks/quality_vs_compute.py at its --quick size (the real zoo worlds)."""
import json

import pytest

from infra import load_benchmark


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    import torch

    bench = load_benchmark("quality_vs_compute")
    out = tmp_path_factory.mktemp("quality")
    threads = torch.get_num_threads()
    try:
        bench.main(["--quick", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return bench, out


def test_quick_run_writes_table_plots_and_json_with_every_method(quick_run):
    bench, out = quick_run
    md = (out / "results.md").read_text()
    doc = json.loads((out / "results.json").read_text())
    steps = list(bench.QUICK.steps)
    for world in ("shapes", "digits"):
        png = out / f"{world}_accuracy.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"## {world}" in md and f"({world}_accuracy.png)" in md
        rows = [r for r in doc["rows"] if r["world"] == world]
        keys = {m.key for m in bench.METHODS} - ({"langevin-aug"} if world == "digits" else set())
        assert {r["method"] for r in rows} == keys
        for key in keys:
            got = sorted(r["T"] for r in rows if r["method"] == key)
            assert got == steps, (world, key, got)
        for r in rows:
            assert 0.0 <= r["accuracy"] <= 1.0 and r["diversity"] >= 0.0 and r["seconds_per_sample"] > 0
            assert r["label"] in md
    assert "Command: `.venv/bin/python benchmarks/quality_vs_compute.py --quick" in md
    assert "Machine: " in md and "Seeds: 0" in md and "## Targets (shapes)" in md
    # Every aggregate row says how many seeds it averages and carries its spread.
    assert all(a["seeds"] == 1 and "accuracy_std" in a for a in doc["aggregate"])


def test_quick_run_counts_evaluations_per_method(quick_run):
    bench, out = quick_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    m = bench.QUICK.candidates
    for r in rows:
        want = {"best-of-n": r["T"] + 1, "fusedream": m + r["T"]}.get(r["method"], r["T"] + 1)
        assert r["evaluations"] == want, r
    views = {r["method"]: r["f_views"] // r["evaluations"] for r in rows if r["world"] == "shapes"}
    assert views["langevin"] == views["adam"] == 1 and views["tron"] == views["langevin-aug"] == views["fusedream"] > 1


def test_diversity_exposes_a_deterministic_translator(quick_run):
    # An MSE translator maps a label to one latent: with no Langevin steps every sample of a label
    # is the same image, diversity 0, however accurate it is; the GMM translator's are not.
    _, out = quick_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    at0 = {(r["world"], r["method"]): r for r in rows if r["T"] == 0}
    for world in ("shapes", "digits"):
        assert at0[(world, "mse")]["diversity"] == 0.0
        assert at0[(world, "tron")]["diversity"] > 0.1


@pytest.mark.slow  # ~40 s idle; tests/test_diversity.py covers the measures in the default run
def test_the_frontier_shows_variety_beside_accuracy(tmp_path):
    """benchmarks/frontier.py --quick on zoo:digits: G's own in-set samples are the reference point
    (right by construction, recall ~1 of G's own); every row has both axes; the PNG draws them."""
    bench = load_benchmark("frontier")
    bench.main(["--world", "zoo:digits", "--quick", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "digits-quick.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    own = rows["G's own in-set samples"]
    assert own["accuracy"] == 1.0 and 0.8 < own["recall_vs_g"] < 1.2
    assert sum(m.startswith("TR0N") for m in rows) == 3 and any(m.startswith("best of") for m in rows)
    for r in doc["rows"]:
        assert 0 <= r["accuracy"] <= 1 and r["recall_vs_g"] == r["recall_vs_g"] and r["diversity_vs_g"] > 0
    assert "recall / G's own" in (tmp_path / "digits-quick.md").read_text()
    png = tmp_path / "frontier.png"
    bench.plot(tmp_path / "digits-quick.json", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
