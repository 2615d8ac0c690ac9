"""Baselines that start from the prior instead of a translator, for measuring what TR0N's
initialisation buys.

    Adam on E(z, c):       FuseDream's optimiser over the latent, from z0 ~ p(z)
    best of M prior draws:  z0 = argmin_m E(z_m, c), z_m ~ p(z) (FuseDream's initial selection);
                            with no optimisation after it, the best-of-N baseline

Both take the energy as `tron.langevin.EnergyFn`, energy_fn(z, rows, t) -> (n,) (t is the step or
the candidate's number, for views drawn afresh), so augmentations, priors and the choice of f live
in the caller. Each row of a batch is an independent problem.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

EnergyFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (z (n, d), rows (n,), t) -> (n,)


@dataclass
class AdamConfig:
    steps: int = 50  # T; 0 returns the initial latents unchanged
    lr: float = 0.05  # Adam step size, in latent units
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decays
    prior_weight: float = 0.0  # adds prior_weight * 0.5 ||z||^2 to the energy, as in LangevinConfig
    clamp: float | None = None  # clamp latents to [-clamp, clamp] after every step

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.prior_weight < 0:
            raise ValueError("prior_weight must be >= 0")
        if self.clamp is not None and self.clamp <= 0:
            raise ValueError("clamp must be > 0")


def adam_dynamics(
    z0: torch.Tensor,
    energy_fn: EnergyFn,
    config: AdamConfig,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Minimise E(z) with Adam for `config.steps` steps from z0 (B, d); returns z_T (B, d), detached.

    `callback(t, z_{t+1}, E(z_t))` runs after every step. Adam's moments are per coordinate, so
    a row's trajectory does not depend on the other rows in the batch."""
    z = z0.detach().clone()
    if config.clamp is not None:
        z = z.clamp(-config.clamp, config.clamp)
    z.requires_grad_(True)
    rows = torch.arange(len(z), device=z.device)
    opt = torch.optim.Adam([z], lr=config.lr, betas=config.betas)
    for t in range(config.steps):
        with torch.enable_grad():
            energy = energy_fn(z, rows, t)
            if config.prior_weight:
                energy = energy + config.prior_weight * 0.5 * z.pow(2).sum(dim=-1)
            (grad,) = torch.autograd.grad(energy.sum(), z)
        z.grad = grad
        opt.step()
        if config.clamp is not None:
            with torch.no_grad():
                z.clamp_(-config.clamp, config.clamp)
        if callback is not None:
            callback(t, z.detach().clone(), energy.detach())
    return z.detach()


@torch.no_grad()
def best_of_m(
    energy_fn: EnergyFn,
    propose: Callable[[], torch.Tensor],
    m: int,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    temperature: float = 0.0,
    rng: torch.Generator | Sequence[torch.Generator] | None = None,
    sizes: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw m candidate batches with `propose()` (each (B, d)) and keep, per row, the candidate
    of lowest energy (candidate i is scored as energy_fn(z, rows, i - 1)). Returns (z (B, d),
    E(z) (B,)); `callback(i, best_z, best_e)` runs after the i-th candidate (1-based), so one call
    also gives best-of-i for every i <= m.

    temperature > 0: instead of the lowest, each row keeps candidate i with probability
    softmax(-E_i / temperature) over its m candidates, drawn from `rng` after the proposals
    (importance resampling of the proposal towards proposal * exp(-E / temperature)); with one
    generator per slice of rows (`rng` a sequence, `sizes` the slices' lengths), each slice's picks
    come from its own."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if temperature > 0:
        zs = [propose() for _ in range(m)]
        rows = torch.arange(len(zs[0]), device=zs[0].device)
        es = torch.stack([energy_fn(z, rows, i) for i, z in enumerate(zs)], 1)  # (B, m)
        probs = torch.softmax(-es.double() / temperature, dim=1)
        if isinstance(rng, torch.Generator) or rng is None:
            pick = torch.multinomial(probs, 1, generator=rng).squeeze(1)  # (B,)
        else:
            pick = torch.cat([torch.multinomial(p, 1, generator=r).squeeze(1) for p, r in zip(probs.split(list(sizes)), rng)])
        z = torch.stack(zs, 1)[rows, pick]  # (B, d)
        return z, es[rows, pick]
    best_z = best_e = rows = None
    for i in range(1, m + 1):
        z = propose()
        if rows is None:
            rows = torch.arange(len(z), device=z.device)
        e = energy_fn(z, rows, i - 1)
        if best_z is None:
            best_z, best_e = z.clone(), e.clone()
        else:
            better = e < best_e
            best_e = torch.where(better, e, best_e)
            best_z = torch.where(better.unsqueeze(1), z, best_z)
        if callback is not None:
            callback(i, best_z, best_e)
    return best_z, best_e
