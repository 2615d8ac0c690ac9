"""Batched Langevin dynamics (SGLD) on latents.

    z_{t+1} = z_t - step_size * grad_z E(z_t) + noise_std * eps_t,   eps_t ~ N(0, I)

with an optional clamp of every coordinate to [-clamp, clamp] (truncated priors). Each row of
the batch is an independent chain; the energy function returns one value per row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # (B, d) -> (B,)


@dataclass
class LangevinConfig:
    steps: int = 50  # T; 0 returns the initial latents unchanged
    step_size: float = 0.1  # gradient step
    noise_std: float = 0.01  # std of the Gaussian noise added per step
    clamp: float | None = None  # clamp latents to [-clamp, clamp] after every step
    prior_weight: float = 0.0  # adds prior_weight * 0.5 ||z||^2 to the energy

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.step_size < 0 or self.noise_std < 0:
            raise ValueError("step_size and noise_std must be >= 0")
        if self.clamp is not None and self.clamp <= 0:
            raise ValueError("clamp must be > 0")


def langevin_step(z: torch.Tensor, energy_fn: EnergyFn, config: LangevinConfig,
                  noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGLD step from z (B, d); `noise` holds the step's standard-normal draws (B, d), or None
    when config.noise_std is 0. Returns (z_next, E(z)) both detached."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        energy = energy_fn(z)
        if config.prior_weight:
            energy = energy + config.prior_weight * 0.5 * z.pow(2).sum(dim=-1)
        (grad,) = torch.autograd.grad(energy.sum(), z)
    with torch.no_grad():
        z = z - config.step_size * grad
        if config.noise_std and noise is not None:
            z = z + config.noise_std * noise
        if config.clamp is not None:
            z = z.clamp(-config.clamp, config.clamp)
    return z.detach(), energy.detach()


def langevin_dynamics(
    z0: torch.Tensor,
    energy_fn: EnergyFn,
    config: LangevinConfig,
    generator: torch.Generator | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run `config.steps` SGLD steps from z0 (B, d); returns z_T (B, d), detached."""
    z = z0.detach().clone()
    if config.clamp is not None:
        z = z.clamp(-config.clamp, config.clamp)
    for t in range(config.steps):
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype) if config.noise_std else None
        z, energy = langevin_step(z, energy_fn, config, noise)
        if callback is not None:
            callback(t, energy)
    return z
