"""Encoder swap for a CLIP world: the zoo CLIP's weights are replaced by a perturbed copy, so the
shapes translator is stale; retrain rebuilds, retrains, judges and promotes, and a failed gate
keeps the champion. The same workflow as the digits tests in test_retrain.py, with open_clip's f.

The whole module is slow (about 3.5 minutes on 2 cores): the default run covers each of its parts
faster — the retrain workflow's encoder swap, gate and promotion on digits (test_retrain.py), a
CLIP world's build and text-translator training through the pipelines (test_captions.py)."""
from pathlib import Path

import pytest
import torch

from infra import champion, retrain_argv, retrain_workspace
from pipelines import retrain
from pipelines.common import run_main
from tron.clip import save_open_clip
from tron.components import component_fingerprint
from tron.encoders import load_encoder

pytestmark = pytest.mark.slow

TRAIN_ARGS = ("--epochs 2 --batch-size 256 --hidden-dim 64 --num-blocks 1 --num-components 10 "
              "--normalize-condition --cond-noise-std 0.2 --eval-samples 4")


@pytest.fixture(scope="module")
def setup(ray_cluster, tmp_path_factory):
    yield from retrain_workspace(tmp_path_factory, "shapes")


def argv(setup, *extra, gate="0.0"):
    return retrain_argv(setup, 2000, TRAIN_ARGS, *extra, gate=gate)


def perturb_clip(world: Path, seed: int) -> None:
    """Replace the CLIP's weights with a perturbed copy (noise on its image tower's projection)."""
    f = load_encoder(world / "encoder")
    proj = f.model.visual.proj
    with torch.no_grad():
        proj.add_(0.02 * proj.std() * torch.randn(proj.shape, generator=torch.Generator().manual_seed(seed)))
    save_open_clip(f, world / "encoder", metadata={"perturbed_seed": seed})


def test_clip_swap_retrains_and_promotes(setup, capsys):
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


def test_clip_swap_that_fails_the_gate_keeps_the_champion(setup, capsys):
    assert run_main(retrain.main, argv(setup), "retrain") == 0  # a champion for this encoder (or up to date)
    kept = champion(setup).version
    capsys.readouterr()

    perturb_clip(setup[1], 2)
    assert run_main(retrain.main, argv(setup, gate="1.01"), "retrain") == 3
    out = capsys.readouterr().out
    assert "failed the gate" in out and f"version {kept} stays champion" in out
    assert str(champion(setup).version) == str(kept)
