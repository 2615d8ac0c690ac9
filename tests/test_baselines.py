import pytest
import torch

from tron import energies
from tron.baselines import AdamConfig, adam_dynamics, best_of_m


def quadratic_to(center):
    return lambda z, rows, t: energies.quadratic(z, center[rows] if center.dim() == 2 else center)


def test_adam_reaches_the_minimum_of_a_quadratic():
    center = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    z = adam_dynamics(torch.zeros(2, 3), quadratic_to(center), AdamConfig(steps=400, lr=0.05))
    assert torch.allclose(z, center, atol=1e-2)


def test_adam_prior_weight_shrinks_the_optimum():
    # 0.5 |z - c|^2 + w 0.5 |z|^2 is minimised at c / (1 + w)
    center = torch.tensor([[2.0, -4.0]])
    z = adam_dynamics(torch.zeros(1, 2), quadratic_to(center), AdamConfig(steps=1000, lr=0.05, prior_weight=1.0))
    assert torch.allclose(z, center / 2, atol=1e-2)


def test_adam_rows_are_independent_of_the_batch():
    torch.manual_seed(0)
    w = torch.randn(3, 3)
    energy = lambda z, rows, t: torch.tanh(z @ w).pow(2).sum(-1) + 0.1 * z.pow(4).sum(-1)
    z0 = torch.randn(5, 3)
    cfg = AdamConfig(steps=20, lr=0.1)
    together = adam_dynamics(z0, energy, cfg)
    alone = torch.cat([adam_dynamics(z0[i:i + 1], energy, cfg) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_adam_zero_steps_returns_z0_and_callback_sees_every_step():
    z0 = torch.randn(4, 2)
    assert torch.equal(adam_dynamics(z0, quadratic_to(torch.zeros(4, 2)), AdamConfig(steps=0)), z0)
    seen = []
    z = adam_dynamics(z0, quadratic_to(torch.zeros(4, 2)), AdamConfig(steps=5, lr=0.1),
                      callback=lambda t, z, e: seen.append((t, z, e)))
    assert [t for t, _, _ in seen] == list(range(5))
    assert torch.equal(seen[-1][1], z)
    assert torch.allclose(seen[0][2], 0.5 * z0.pow(2).sum(-1))  # E(z_0) comes with step 0
    assert not z0.requires_grad and not z.requires_grad


def test_adam_clamp_and_config_errors():
    z = adam_dynamics(torch.zeros(2, 2), quadratic_to(torch.full((2, 2), 5.0)), AdamConfig(steps=200, lr=0.5, clamp=1.0))
    assert z.abs().max() <= 1.0 and torch.allclose(z, torch.ones(2, 2))
    for bad in ({"steps": -1}, {"lr": 0.0}, {"prior_weight": -1.0}, {"clamp": 0.0}):
        with pytest.raises(ValueError):
            AdamConfig(**bad)


def test_best_of_m_keeps_the_lowest_energy_candidate_per_row():
    gen = torch.Generator().manual_seed(0)
    candidates = torch.randn(7, 4, 3, generator=gen)  # (M, B, d)
    center = torch.randn(4, 3, generator=gen)
    draws = iter(candidates)
    history = []
    z, e = best_of_m(quadratic_to(center), lambda: next(draws), 7, callback=lambda i, z, e: history.append((i, e.clone())))
    all_e = 0.5 * (candidates - center).pow(2).sum(-1)  # (M, B)
    best = all_e.argmin(0)
    assert torch.equal(z, candidates[best, torch.arange(4)])
    assert torch.allclose(e, all_e.min(0).values)
    # best-of-i for every i: the running minimum, never increasing
    assert [i for i, _ in history] == list(range(1, 8))
    for i, ei in history:
        assert torch.allclose(ei, all_e[:i].min(0).values)


def test_best_of_m_is_seeded_and_rejects_zero_candidates():
    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return best_of_m(quadratic_to(torch.zeros(3, 2)), lambda: torch.randn(3, 2, generator=gen), 5)[0]

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    with pytest.raises(ValueError):
        best_of_m(quadratic_to(torch.zeros(1, 2)), lambda: torch.zeros(1, 2), 0)


def test_best_of_m_with_a_temperature_picks_by_softmax_of_the_energy():
    # 4 candidates per row with energies 0, 0.1, 0.2, 0.3 (the first coordinate), 8000 rows
    levels = iter(torch.tensor([0.0, 0.1, 0.2, 0.3]))
    energy = lambda z, rows, i: z[:, 0]  # noqa: E731
    propose = lambda: next(levels).expand(8000, 1).clone()  # noqa: E731
    z, e = best_of_m(energy, propose, 4, temperature=0.1, rng=torch.Generator().manual_seed(0))
    picked = torch.round(z[:, 0] * 10).long()
    freq = torch.bincount(picked, minlength=4).double() / len(picked)
    assert torch.allclose(freq, torch.softmax(-torch.arange(4.0).double(), 0), atol=0.02)  # exp(-E / 0.1), normalised
    assert torch.equal(e, z[:, 0])
    levels = iter(torch.tensor([0.3, 0.0, 0.2, 0.1]))
    z, _ = best_of_m(energy, propose, 4, temperature=1e-4, rng=torch.Generator().manual_seed(0))
    assert (z[:, 0] == 0).all()  # a temperature far below the gaps keeps the lowest, as temperature 0 does
