"""Encoder swap for a CLIP world: the zoo CLIP's weights are replaced by a perturbed copy, so the
shapes translator is stale; retrain rebuilds, retrains, judges and promotes, and a failed gate
keeps the champion. The same workflow as the digits tests in test_retrain.py, with open_clip's f."""
import shutil
from pathlib import Path

import pytest
import torch

from pipelines import retrain
from pipelines.common import run_main
from tron.clip import save_open_clip
from tron.components import component_fingerprint
from tron.encoders import load_encoder
from tron.world import _import_zoo_models, resolve_world_path

TRAIN_ARGS = ("--epochs 2 --batch-size 256 --hidden-dim 64 --num-blocks 1 --num-components 10 "
              "--normalize-condition --cond-noise-std 0.2 --eval-samples 4")


@pytest.fixture(scope="module")
def setup(ray_cluster, tmp_path_factory):
    import mlflow

    root = tmp_path_factory.mktemp("retrain_clip")
    world = root / "shapes"
    shutil.copytree(resolve_world_path("zoo:shapes"), world)
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    yield root, world, tracking
    mlflow.set_tracking_uri(None)


def argv(setup, *extra, gate="0.0"):
    root, world, tracking = setup
    return ["--generator", str(world), "--num-pairs", "2000", "--train-args", TRAIN_ARGS,
            "--min-judged-accuracy", gate, "--energy-margin", "10", "--data-root", str(root / "data"),
            "--state-dir", str(root / "state"), "--tracking-uri", tracking, *extra]


def champion(setup):
    import mlflow

    from pipelines.train_translator import registered_model_name

    name = registered_model_name(str(setup[1]), str(setup[1]))
    return mlflow.MlflowClient(setup[2]).get_model_version_by_alias(name, "champion")


def perturb_clip(world: Path, seed: int) -> None:
    """Replace the CLIP's weights with a perturbed copy (noise on its image tower's projection)."""
    _import_zoo_models()
    f = load_encoder(world / "encoder")
    proj = f.model.visual.proj
    with torch.no_grad():
        proj.add_(0.02 * proj.std() * torch.randn(proj.shape, generator=torch.Generator().manual_seed(seed)))
    save_open_clip(f, world / "encoder", metadata={"perturbed_seed": seed})


def test_clip_swap_retrains_and_promotes_then_a_failed_gate_keeps_the_champion(setup, capsys):
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    assert "promoted version 1" in capsys.readouterr().out
    before = component_fingerprint(str(setup[1]), "encoder")

    perturb_clip(setup[1], 1)
    after = component_fingerprint(str(setup[1]), "encoder")
    assert after != before
    assert run_main(retrain.main, argv(setup), "retrain") == 0
    out = capsys.readouterr().out
    assert "encoder changed" in out and "0 already complete" in out and "promoted version 2" in out
    new = champion(setup)
    assert str(new.version) == "2" and new.tags["encoder_fingerprint"] == after
    judged = [line for line in out.splitlines() if "judged accuracy" in line]
    assert judged, out  # the shapes world's judge gated the promotion

    perturb_clip(setup[1], 2)
    assert run_main(retrain.main, argv(setup, gate="1.01"), "retrain") == 3
    out = capsys.readouterr().out
    assert "failed the gate" in out and "version 2 stays champion" in out
    assert str(champion(setup).version) == "2"
