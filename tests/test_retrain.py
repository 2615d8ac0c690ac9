"""pipelines/retrain.py: encoder swap -> rebuild, retrain, evaluate, promote; durable steps; locks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from infra import champion, retrain_argv, retrain_workspace
from pipelines import retrain
from pipelines.common import run_main
from tron.encoders import load_encoder, save_encoder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup(ray_cluster, tmp_path_factory):
    yield from retrain_workspace(tmp_path_factory, "digits")


def argv(setup, *extra, gate="0.0"):
    return retrain_argv(setup, 3000, "--epochs 2 --batch-size 128 --hidden-dim 64 --num-blocks 1 --sample-labels "
                                     "--eval-samples 2 --eval-steps 2", *extra, gate=gate)


def model_name(setup):
    from pipelines.train_translator import registered_model_name

    return registered_model_name(str(setup[1]), str(setup[1]))


def swap_encoder(world: Path, scale: float) -> None:
    f = load_encoder(world / "encoder")
    with torch.no_grad():
        f.net[0].weight.mul_(scale)
    save_encoder(f, world / "encoder")


def test_first_run_promotes_and_second_is_a_no_op(setup, capsys):
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    out = capsys.readouterr().out
    assert "no champion yet" in out and "promoted version 1" in out
    assert str(champion(setup).version) == "1"
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    assert "up to date" in capsys.readouterr().out
    assert str(champion(setup).version) == "1"


def test_tron_watch_checks_on_a_schedule(setup, capsys):
    from tron.cli import main

    assert main(["watch", "--every", "1s", "--times", "2", *argv(setup)]) == 0
    out = capsys.readouterr().out
    assert out.count(": up to date (champion") == 2 and "next check in" in out


def test_encoder_swap_triggers_a_full_retrain_and_promotion(setup, capsys):
    swap_encoder(setup[1], 1.02)
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    out = capsys.readouterr().out
    assert "encoder changed" in out and "0 already complete" in out  # a new dataset for the new f
    new = champion(setup)
    assert str(new.version) == "2"
    from tron.components import component_fingerprint

    assert new.tags["encoder_fingerprint"] == component_fingerprint(str(setup[1]), "encoder")


# The workflow in a subprocess whose StepLog dies like a killed job right after it records `step`.
KILLED_AFTER = """
import os, sys
from pipelines import retrain
record = retrain.StepLog.record
def record_then_die(self, step, output):
    record(self, step, output)
    if step == sys.argv[1]:
        os._exit(137)
retrain.StepLog.record = record_then_die
sys.exit(retrain.main(sys.argv[2:]))
"""


def kill_after(setup, step: str, gate: str = "0.0") -> None:
    """A new f (a new workflow), run until `step` is recorded, then killed like a job."""
    swap_encoder(setup[1], 0.99)
    env = {**os.environ, "RAY_ADDRESS": setup_ray_address()}
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER, step, *argv(setup, gate=gate)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 137, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_killed_after_training_resumes_and_a_failed_gate_keeps_the_old_champion(setup, capsys):
    """The rerun of a job killed after its training step trains nothing again and judges the
    candidate as a fresh run would: at a judged-accuracy gate no translator can pass (1.01) it exits 3
    and the champion stays. (The gate is part of the workflow's identity: both runs name the same.)"""
    kill_after(setup, "train", gate="1.01")
    before = champion(setup).version
    assert run_main(retrain.main, argv(setup, gate="1.01"), "retrain") == 3
    out = capsys.readouterr().out
    assert "build: done earlier" in out and "train: done earlier" in out and "evaluate: done earlier" not in out
    assert "failed the gate" in out and "judged accuracy" in out and f"version {before} stays champion" in out
    assert champion(setup).version == before


@pytest.mark.slow
@pytest.mark.parametrize("step", ["build", "evaluate"])
def test_killed_after_each_step_resumes_from_the_next(setup, step, capsys):
    kill_after(setup, step)
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    out = capsys.readouterr().out
    finished = STEP_ORDER[:STEP_ORDER.index(step) + 1]
    for done in finished:
        assert f"{done}: done earlier" in out
    assert "promoted version" in out


STEP_ORDER = ["build", "train", "evaluate"]


def setup_ray_address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address


def test_concurrent_run_does_not_train(setup, capsys):
    import socket

    swap_encoder(setup[1], 1.01)  # retraining is due
    lock = setup[0] / "state" / f"{model_name(setup)}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # a live run holds it
    try:
        before = champion(setup).version
        assert run_main(retrain.main, argv(setup), "retrain") == 0
        assert "skipped: another retrain holds" in capsys.readouterr().out
        assert champion(setup).version == before
    finally:
        lock.unlink()


def test_a_caption_translator_is_stale_once_its_captioner_changes():
    """A pair that trains on captions records the captioner's fingerprint, and a champion trained
    with another captioner is out of date even though G and f are the same."""
    from types import SimpleNamespace

    from tron.errors import TronError

    caption = retrain.PairConfig("zoo:shapes", captioner="zoo:shapes", train_args=["--condition-column", "c_caption"])
    fps = retrain.pair_fingerprints(caption)
    assert set(fps) == {"generator", "encoder", "captioner"}
    tags = {f"{part}_fingerprint": fp for part, fp in fps.items()}
    assert retrain.changed_parts(SimpleNamespace(tags=tags), fps) == ""
    other = SimpleNamespace(tags={**tags, "captioner_fingerprint": "0123456789abcdef"})
    assert retrain.changed_parts(other, fps) == f"captioner changed (0123456789abcdef -> {fps['captioner']})"
    # A pair whose translator trains on f's main output does not depend on a captioner.
    plain = retrain.PairConfig("zoo:shapes", captioner="zoo:shapes", train_args=["--epochs", "2"])
    assert set(retrain.pair_fingerprints(plain)) == {"generator", "encoder"}
    assert retrain.condition_column(retrain.PairConfig("zoo:shapes", train_args=["--condition-column=c_caption"])) == "c_caption"
    with pytest.raises(TronError, match="names no captioner"):
        retrain.pair_fingerprints(retrain.PairConfig("zoo:shapes", train_args=["--condition-column", "c_caption"]))


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket

    lock = tmp_path / "pair.lock"
    lock.write_text(json.dumps({"pid": 999_999_999, "host": socket.gethostname()}))  # its process is gone
    with retrain.pair_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(retrain.LockHeld):
            with retrain.pair_lock(lock):
                pass
    assert not lock.exists()
