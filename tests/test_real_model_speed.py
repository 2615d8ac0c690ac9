"""EfficientNet-Lite's eval-mode path (`frozen_features`: batch norm folded, channels-last) gives
the package's answers, and benchmarks/real_model_speed.py's smoke run prints its tables. Real
weights from the real-models extra; no timings asserted."""
import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None
                                or importlib.util.find_spec("gan_face_generate") is None,
                                reason="needs the real-models extra")
ROOT = Path(__file__).resolve().parent.parent


def package_features(f, x):
    """f's pooled features through the package's own forward, as tron computed them before."""
    x = F.interpolate(x, size=(f.image_size, f.image_size), mode="bilinear", align_corners=False, antialias=True)
    return f.model.extract_features((255 * x - 127) / 128).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def parts():
    return load_generator_spec("gan-face-generate"), load_encoder_spec("efficientnet:lite0")


def test_frozen_path_gives_the_package_answers_and_gradients(parts):
    G, f = parts
    state = {k: v.clone() for k, v in f.state_dict().items()}
    z = torch.randn(6, G.latent_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x = G.decode(z)
        h0 = package_features(f, x)
        probs, unit = f.classify(x)
    assert torch.equal(probs.argmax(1), f.model._fc(h0).argmax(1))
    assert (probs - F.softmax(f.model._fc(h0), dim=-1)).abs().max() < 1e-5
    assert (unit * F.normalize(h0, dim=-1)).sum(1).min() > 1 - 1e-6
    # Langevin's gradient through G and f agrees to float rounding (the package's own fp32 gradient
    # is ~3e-3 from a float64 one: ReLU6's kinks).
    zz = z[:2].clone().requires_grad_(True)
    c = F.one_hot(torch.tensor([836, 906]), 1000).float()
    (g1,) = torch.autograd.grad(f.energy(G.decode(zz), c).sum(), zz)
    e0 = -(c * torch.log_softmax(f.model._fc(package_features(f, G.decode(zz))), -1)).sum(1)
    (g0,) = torch.autograd.grad(e0.sum(), zz)
    assert (g1 - g0).norm() / g0.norm() < 2e-2
    # The weights, their names and f's identity are the package's.
    assert all(torch.equal(v, state[k]) for k, v in f.state_dict().items())
    assert component_fingerprint("efficientnet:lite0", "encoder") == "780989a5209a5eb6"  # zoo/faces/world.json


def test_training_mode_runs_the_package_forward(parts):
    f = copy.deepcopy(parts[1]).train()  # training mode updates BN's running statistics: not the shared f
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(0)  # the package's drop-connect draws from the global generator
        train = f.features(x)
        torch.manual_seed(0)
        assert torch.allclose(train, package_features(f, x), atol=1e-5)  # batch statistics, drop-connect


def test_bf16_images_from_an_autocast_generator_are_accepted(parts):
    G, f = parts
    z = torch.randn(2, G.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        probs, unit = f.classify(G.decode(z))
    assert probs.shape == (2, 1000) and unit.shape == (2, 1280) and torch.isfinite(probs.float()).all()


def test_benchmark_quick_run_prints_its_tables():
    args = [sys.executable, "benchmarks/real_model_speed.py", "--quick", "--skip", "peak,allocator,langevin,outcome"]
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for heading in ("## FLOPs per pair", "## Pair generation", "## Answers kept"):
        assert heading in run.stdout
    assert "| baseline |" in run.stdout and "| frozen |" in run.stdout
