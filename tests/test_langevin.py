import math

import pytest
import torch

from tron import energies
from tron.augment import AugmentConfig, augment
from tron.langevin import GroupNoise, LangevinConfig, langevin_dynamics


def quadratic(center):
    return lambda z, rows, t: energies.quadratic(z, center)


def test_zero_noise_lowers_a_quadratic_energy():
    center = torch.tensor([1.0, -2.0, 0.5])
    z0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) * 3
    energy = quadratic(center)
    z = langevin_dynamics(z0, energy, LangevinConfig(steps=20, step_size=0.1, noise_std=0.0))
    assert (energy(z, None, 0) < energy(z0, None, 0)).all()
    # gradient descent on 0.5||z-c||^2 contracts by (1 - step)^T exactly
    expected = center + (z0 - center) * (0.9 ** 20)
    assert torch.allclose(z, expected, atol=1e-5)


def test_zero_steps_returns_the_initial_latents():
    z0 = torch.randn(4, 3)
    z = langevin_dynamics(z0, lambda z, rows, t: z.sum(-1), LangevinConfig(steps=0))
    assert torch.equal(z, z0)


def test_noise_follows_the_explicit_rng():
    z0 = torch.zeros(4, 3)
    cfg = LangevinConfig(steps=3, step_size=0.1, noise_std=0.5)
    energy = quadratic(torch.zeros(3))
    a = langevin_dynamics(z0, energy, cfg, torch.Generator().manual_seed(1))
    b = langevin_dynamics(z0, energy, cfg, torch.Generator().manual_seed(1))
    c = langevin_dynamics(z0, energy, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_clamp_bounds_every_coordinate():
    z0 = torch.full((2, 3), 5.0)
    z = langevin_dynamics(z0, lambda z, rows, t: -z.sum(-1), LangevinConfig(steps=5, step_size=1.0, noise_std=0.1, clamp=2.0))
    assert z.abs().max() <= 2.0 and torch.allclose(z, torch.full((2, 3), 2.0))


def test_prior_weight_pulls_towards_the_origin():
    z0 = torch.full((1, 2), 4.0)
    z = langevin_dynamics(z0, lambda z, rows, t: torch.zeros(len(z)),
                          LangevinConfig(steps=10, step_size=0.1, noise_std=0.0, prior_weight=1.0))
    assert z.norm() < z0.norm()


def test_each_chain_sees_only_its_own_energy():
    centers = torch.tensor([[1.0, 1.0], [-3.0, 0.0]])
    z = langevin_dynamics(torch.zeros(2, 2), lambda z, rows, t: energies.quadratic(z, centers[rows]),
                          LangevinConfig(steps=200, step_size=0.1, noise_std=0.0))
    assert torch.allclose(z, centers, atol=1e-4)


def test_gradient_clipping_bounds_each_chains_step():
    """With noise off and no momentum, |z_{t+1} - z_t| = step * min(|g|, clip), chain by chain."""
    center = torch.zeros(3)
    z0 = torch.tensor([[30.0, 40.0, 0.0], [0.3, 0.4, 0.0]])  # gradient norms 50 and 0.5
    cfg = LangevinConfig(steps=1, step_size=0.1, noise_std=0.0, grad_clip=1.0)
    moved = (langevin_dynamics(z0, quadratic(center), cfg) - z0).norm(dim=1)
    assert torch.allclose(moved, torch.tensor([0.1, 0.05]), atol=1e-6)  # the second is under the bound: unclipped


def test_momentum_is_heavy_ball_per_chain():
    """Constant gradient g: the velocity after t steps is g * (1 + m + ... + m^t)."""
    m, step = 0.9, 0.01
    z0 = torch.zeros(2, 1)
    slope = torch.tensor([1.0, -2.0])
    energy = lambda z, rows, t: (slope[rows] * z[:, 0])  # gradient slope[row]
    z = langevin_dynamics(z0, energy, LangevinConfig(steps=3, step_size=step, noise_std=0.0, momentum=m))
    total = sum(sum(m ** j for j in range(t + 1)) for t in range(3))  # 1 + 1.9 + 2.71
    assert torch.allclose(z[:, 0], -step * total * slope, atol=1e-6)


def test_per_row_steps_and_callback():
    calls = []
    z0 = torch.zeros(3, 1)
    energy = lambda z, rows, t: -z[:, 0]  # gradient -1: each step moves +step
    z = langevin_dynamics(z0, energy, LangevinConfig(steps=99, step_size=1.0, noise_std=0.0), steps=[0, 2, 5],
                          callback=lambda t, z, e: calls.append((t, torch.isnan(e).tolist())))
    assert z[:, 0].tolist() == [0.0, 2.0, 5.0]
    assert [t for t, _ in calls] == [0, 1, 2, 3, 4]
    assert calls[0][1] == [True, False, False] and calls[3][1] == [True, True, False]


def test_projection_runs_after_every_step():
    seen = []

    def project(z):
        seen.append(z.clone())
        return z.clamp(max=1.5)

    z = langevin_dynamics(torch.zeros(1, 2), lambda z, rows, t: -z.sum(-1),
                          LangevinConfig(steps=4, step_size=1.0, noise_std=0.0), project=project)
    assert len(seen) == 4 and torch.equal(z, torch.full((1, 2), 1.5))


def test_group_noise_makes_a_group_independent_of_its_batch_mates():
    energy = quadratic(torch.zeros(2))
    cfg = LangevinConfig(steps=4, step_size=0.1, noise_std=0.3)

    def run(groups):
        bounds = [0]
        for n, _ in groups:
            bounds.append(bounds[-1] + n)
        rngs = [torch.Generator().manual_seed(s) for _, s in groups]
        noise = GroupNoise(bounds, rngs, 2, torch.device("cpu"), torch.float32)
        return langevin_dynamics(torch.ones(bounds[-1], 2), energy, cfg, noise=noise)

    alone = run([(3, 7)])
    batched = run([(2, 1), (3, 7), (1, 5)])
    assert torch.equal(batched[2:5], alone)
    assert torch.equal(alone, langevin_dynamics(torch.ones(3, 2), energy, cfg, torch.Generator().manual_seed(7)))


def test_active_mask_stops_chains():
    z = langevin_dynamics(torch.zeros(2, 1), lambda z, rows, t: -z[:, 0], LangevinConfig(steps=5, step_size=1.0, noise_std=0.0),
                          active=lambda t: torch.tensor([t < 2, True]))
    assert z[:, 0].tolist() == [2.0, 5.0]


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(step_size=-0.1), dict(clamp=0.0), dict(momentum=1.0),
                                 dict(grad_clip=0.0), dict(step_size=math.nan), dict(noise_std=math.inf),
                                 dict(steps=2.5), dict(momentum=-0.1)])
def test_invalid_config(bad):
    with pytest.raises(ValueError):
        LangevinConfig(**bad)


def test_config_from_json_is_strict_and_overrides_keep_unset_values():
    cfg = LangevinConfig.from_dict({"steps": 10, "augment": {"num": 2, "translation": 0.125}})
    assert cfg.augment == AugmentConfig(num=2, translation=0.125)
    with pytest.raises(ValueError, match="unknown Langevin setting"):
        LangevinConfig.from_dict({"stepz": 10})
    with pytest.raises(ValueError, match="unknown augment setting"):
        LangevinConfig.from_dict({"augment": {"nun": 2}})
    assert cfg.with_overrides(steps=None, step_size=0.5) == LangevinConfig(steps=10, step_size=0.5, augment=cfg.augment)
    assert LangevinConfig.from_dict(cfg.to_dict()) == cfg


def test_energies_are_per_row():
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    e = energies.cross_entropy(logits, target)
    assert e.shape == (2,) and e[0] < 1e-3 and e[1] > 9
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(energies.negative_cosine(v, torch.tensor([[2.0, 0.0], [2.0, 0.0]])), torch.tensor([-1.0, 0.0]))


# -- augmented views -------------------------------------------------------------------------------

def test_views_are_fresh_per_step_reproducible_and_the_same_for_every_row():
    x = torch.rand(3, 3, 16, 16)
    cfg = AugmentConfig.diffaugment(num=4)
    a0, a0_again, a1 = augment(x, cfg, step=0), augment(x, cfg, step=0), augment(x, cfg, step=1)
    assert a0.shape == (4, 3, 3, 16, 16)
    assert torch.equal(a0, a0_again) and not torch.equal(a0, a1)
    # the same transform for every row: a row's views do not depend on its batch mates
    assert torch.equal(augment(x[1:2], cfg, step=0)[:, 0], a0[:, 1])
    fixed = AugmentConfig(num=4, translation=0.125, fresh=False)
    assert torch.equal(augment(x, fixed, step=0), augment(x, fixed, step=7))
    assert torch.equal(augment(x, AugmentConfig(), step=3), x.unsqueeze(0))


def test_translation_is_an_exact_integer_shift_and_cutout_zeroes_half_the_side():
    img = torch.zeros(1, 1, 16, 16)
    img[..., 8, 8] = 1
    views = augment(img, AugmentConfig(num=6, translation=0.125), step=0)
    for v in views[:, 0, 0]:
        assert v.sum() == 1 and v.max() == 1  # the pixel moved as a whole, at most 2 px each way
        r, c = (v == 1).nonzero()[0].tolist()
        assert abs(r - 8) <= 2 and abs(c - 8) <= 2
    ones = augment(torch.ones(1, 1, 16, 16), AugmentConfig(num=3, cutout=0.5), step=0)
    assert torch.equal((ones == 0).flatten(1).sum(1), torch.full((3,), 64))  # an 8x8 square


def test_views_are_differentiable():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    augment(x, AugmentConfig.diffaugment(num=3), step=2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
