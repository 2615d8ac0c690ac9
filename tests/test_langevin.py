import pytest
import torch

from tron import energies
from tron.langevin import LangevinConfig, langevin_dynamics


def test_zero_noise_lowers_a_quadratic_energy():
    center = torch.tensor([1.0, -2.0, 0.5])
    z0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) * 3
    energy = lambda z: energies.quadratic(z, center)  # noqa: E731
    z = langevin_dynamics(z0, energy, LangevinConfig(steps=20, step_size=0.1, noise_std=0.0))
    assert (energy(z) < energy(z0)).all()
    # gradient descent on 0.5||z-c||^2 contracts by (1 - step)^T exactly
    expected = center + (z0 - center) * (0.9 ** 20)
    assert torch.allclose(z, expected, atol=1e-5)


def test_zero_steps_returns_the_initial_latents():
    z0 = torch.randn(4, 3)
    z = langevin_dynamics(z0, lambda z: z.sum(-1), LangevinConfig(steps=0))
    assert torch.equal(z, z0)


def test_noise_follows_the_explicit_generator():
    z0 = torch.zeros(4, 3)
    cfg = LangevinConfig(steps=3, step_size=0.1, noise_std=0.5)
    energy = lambda z: energies.quadratic(z, torch.zeros(3))  # noqa: E731
    a = langevin_dynamics(z0, energy, cfg, generator=torch.Generator().manual_seed(1))
    b = langevin_dynamics(z0, energy, cfg, generator=torch.Generator().manual_seed(1))
    c = langevin_dynamics(z0, energy, cfg, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_clamp_bounds_every_coordinate():
    z0 = torch.full((2, 3), 5.0)
    z = langevin_dynamics(z0, lambda z: -z.sum(-1), LangevinConfig(steps=5, step_size=1.0, noise_std=0.1, clamp=2.0))
    assert z.abs().max() <= 2.0 and torch.allclose(z, torch.full((2, 3), 2.0))


def test_prior_weight_pulls_towards_the_origin():
    z0 = torch.full((1, 2), 4.0)
    z = langevin_dynamics(z0, lambda z: torch.zeros(len(z)), LangevinConfig(steps=10, step_size=0.1, noise_std=0.0, prior_weight=1.0))
    assert z.norm() < z0.norm()


def test_each_chain_sees_only_its_own_energy():
    centers = torch.tensor([[1.0, 1.0], [-3.0, 0.0]])
    z = langevin_dynamics(torch.zeros(2, 2), lambda z: energies.quadratic(z, centers),
                          LangevinConfig(steps=200, step_size=0.1, noise_std=0.0))
    assert torch.allclose(z, centers, atol=1e-4)


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(step_size=-0.1), dict(clamp=0.0)])
def test_invalid_config(bad):
    with pytest.raises(ValueError):
        LangevinConfig(**bad)


def test_energies_are_per_row():
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    e = energies.cross_entropy(logits, target)
    assert e.shape == (2,) and e[0] < 1e-3 and e[1] > 9
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(energies.negative_cosine(v, torch.tensor([[2.0, 0.0], [2.0, 0.0]])), torch.tensor([-1.0, 0.0]))
