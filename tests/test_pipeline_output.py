"""The pipelines' own output, as a user sees it: each command in a process of its own, starting its
own local Ray (this module starts none, so that the commands' Ray is the only one on the machine).
Quiet by default — the project's progress and errors, none of Ray's or MLflow's chatter, each line
once — and everything back with TRON_VERBOSE=1."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHATTER = ("PreemptionWatcher", "PlacementGroupCleaner", "Started a local Ray instance", "Creating initial MLflow database",
           "Downloading artifacts", "Traceback")


def command(script: str, args: list[str], cwd: Path, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TRON_VERBOSE")}
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / script), *args], capture_output=True, text=True,
                          timeout=400, cwd=cwd, env={**environ, **env})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def test_build_and_train_print_their_progress_once_and_no_chatter(tmp_path):
    data = str(tmp_path / "pairs")
    out = command("build_dataset.py", ["--generator", "zoo:digits", "--num-pairs", "3000", "--rows-per-shard", "1000",
                                       "--out", data, "--no-mlflow"], tmp_path)
    assert "[build] shards 3/3 done" in out and "[build] done:" in out
    assert not [c for c in CHATTER if c in out], out
    out = command("train_translator.py", ["--dataset", data, "--epochs", "2", "--batch-size", "128", "--hidden-dim", "32",
                                          "--num-blocks", "1", "--eval-samples", "1", "--eval-conditions", "2",
                                          "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path)
    assert [out.count(f"epoch {e}/2:") for e in (1, 2)] == [1, 1], out  # Ray Train's print patch doubled them
    assert "registered tron-translator.zoo-digits.zoo-digits version 1" in out
    assert not [c for c in CHATTER if c in out], out


def test_tron_verbose_brings_rays_own_lines_back(tmp_path):
    def args(out: str) -> list[str]:
        return ["--generator", "zoo:digits", "--num-pairs", "200", "--rows-per-shard", "100", "--out", str(tmp_path / out), "--no-mlflow"]

    assert "Started a local Ray instance" not in command("build_dataset.py", args("quiet"), tmp_path)
    assert "Started a local Ray instance" in command("build_dataset.py", args("verbose"), tmp_path, TRON_VERBOSE="1")
