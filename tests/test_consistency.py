"""The digits-cm world: a one-step consistency model trained by consistency training, as G."""
import json

import torch

import tron.adapters  # noqa: F401  (registers the diffusers-consistency generator kind)
from tron.checkpoint import fingerprint
from tron.cli import main
from tron.langevin import LangevinConfig
from tron.recipes import digits_cm
from tron.world import load_world


def test_curriculum_and_noise_levels():
    sig = digits_cm.karras_sigmas(11, 0.002, 80.0)
    assert torch.isclose(sig[0], torch.tensor(0.002)) and torch.isclose(sig[-1], torch.tensor(80.0))
    assert (sig[1:] > sig[:-1]).all()
    # N doubles from s0 = 10 to s1 in equal stages: 10, 20, 40, 80 (+1 boundaries) over 1,500 steps
    assert [digits_cm.discretisation(k, 1500, 80) for k in (0, 374, 375, 750, 1125, 1499)] == [11, 11, 21, 41, 81, 81]


def test_tiny_recipe_writes_a_loadable_world(tmp_path):
    out = tmp_path / "cm"
    digits_cm.main(["--budget", "tiny", "--out", str(out)])
    doc = json.loads((out / "world.json").read_text())
    assert doc["name"] == "digits-cm" and doc["judge"] == {"kind": "digits-svm"}
    world = load_world(out)
    assert world.generator.latent_dim == 256 and world.generator.image_shape == (1, 16, 16)
    meta = json.loads((out / "translator" / "config.json").read_text())["metadata"]
    assert meta["generator_fingerprint"] == fingerprint(out / "generator")
    assert meta["encoder_fingerprint"] == fingerprint(out / "encoder")  # the digits classifier, copied
    res = world.sampler().sample(world.encoder.condition_from_labels([3]), 2, LangevinConfig(steps=2), seed=0)
    assert res.images.shape == (2, 1, 16, 16) and 0 <= res.images.min() and res.images.max() <= 1


def test_zoo_consistency_model_conditions_on_labels(capsys):
    world = load_world("zoo:digits-cm")
    g, f = world.generator, world.encoder
    z = g.sample_latents(64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = g.decode(z)
    assert x.shape == (64, 1, 16, 16) and x.std() > 0.1  # not a constant image
    # f recognises most unconditional samples with some confidence: the model makes digits
    assert f.encode(x).max(1).values.mean() > 0.4
    c = f.condition_from_labels([0, 7])
    tron = world.sampler().sample(c, 8, LangevinConfig(steps=10, step_size=0.01, noise_std=0.01, prior_weight=0.1), seed=0)
    hits = (f.encode(tron.images).argmax(1) == torch.tensor([0, 7]).repeat_interleave(8)).float().mean()
    assert hits >= 0.75
    assert main(["list"]) == 0
    assert "zoo:digits-cm   G diffusers-consistency (d=256" in capsys.readouterr().out
