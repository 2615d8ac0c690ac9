"""Smoke test of benchmarks/priors.py at its --quick size (the real zoo worlds)."""
import json

from infra import load_benchmark

FRACTIONS = ("judge_agrees", "coverage", "prior_langevin", "translator_only", "tron")


def test_quick_run_writes_a_row_per_world_and_prior(tmp_path):
    import torch

    bench = load_benchmark("priors")
    threads = torch.get_num_threads()
    try:  # one thread: two would crawl on a 2-core machine that runs other jobs
        bench.main(["--quick", "--threads", "1", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    md = (tmp_path / "results.md").read_text()
    doc = json.loads((tmp_path / "results.json").read_text())
    want = [(world, prior) for world, (priors, _) in bench.WORLDS.items() for prior in priors]
    assert [(r["world"], r["prior"]) for r in doc["rows"]] == want
    for r in doc["rows"]:
        assert all(0.0 <= r[k] <= 1.0 for k in FRACTIONS), r
        assert 0.1 < r["f_confidence"] <= 1.0 and r["diversity"] > 0.1 and r["ms_per_sample"] > 0, r
        assert f"| {r['prior']} | {r['f_confidence']:.3f} |" in md
    assert "Command: `.venv/bin/python benchmarks/priors.py --quick" in md and "Seed: 0" in md
    # The header states the Langevin settings each world's conditional columns used.
    assert set(doc["info"]["langevin"]) == set(bench.WORLDS) and "Langevin (world.json): digits: {" in md
