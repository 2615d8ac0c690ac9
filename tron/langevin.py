"""Batched Langevin dynamics (SGLD) on latents: the one sampling loop of the project.

For each chain (row) i, step t = 0, 1, ..., steps_i - 1:

    g_t = grad_z [E_t(z_t) + prior_weight * 0.5 ||z_t||^2]       (E_t: the energy at step t)
    g_t = g_t * min(1, grad_clip / ||g_t||)                      (per-chain norm clipping)
    b_t = momentum * b_{t-1} + g_t,   b_{-1} = 0                 (heavy-ball momentum)
    z_{t+1} = project(clamp(z_t - step_size * b_t + noise_std * eps_t)),   eps_t ~ N(0, I)

With momentum 0 and no clipping this is plain SGLD, z - step_size * grad + noise_std * eps. The
authors' released code (layer6ai-labs/tr0n) runs momentum 0.99, clipping at norm 1, T = 100 and
noise 0.01, and adds the noise unscaled by the step size, as here. Each row is an independent
chain: its energy, its gradient norm, its momentum and its step count are its own.

The energy is a function `energy_fn(z, rows, t) -> (n,)` of the latents `z` (n, d) of the chains
`rows` (n,) (indices into the batch) at step t, so that stochastic energies (augmented views drawn
afresh at every step) stay reproducible, and chains that are done leave the computation.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from .augment import AugmentConfig
from .errors import from_dict, reject_unknown

EnergyFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (z (n, d), rows (n,), t) -> (n,)
NoiseFn = Callable[[torch.Tensor], torch.Tensor]  # rows (n,) -> standard-normal draws (n, d)


@dataclass(frozen=True)
class LangevinConfig:
    steps: int = 50  # T; 0 returns the initial latents unchanged
    step_size: float = 0.1  # gradient step
    noise_std: float = 0.01  # std of the Gaussian noise added per step (not scaled by the step size)
    momentum: float = 0.0  # heavy-ball momentum of the gradient; the reference runs 0.99
    grad_clip: float | None = None  # clip each chain's gradient to this L2 norm; the reference uses 1.0
    clamp: float | None = None  # clamp every latent coordinate to [-clamp, clamp] after each step
    prior_weight: float = 0.0  # adds prior_weight * 0.5 ||z||^2 to the energy
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # views of G(z) the energy averages over
    # z0: chosen among this many draws from the initial distribution (translator or prior) per chain
    # by their plain energy (f on G(z) against c, no views, no gradient); costs that many G+f forwards.
    candidates: int = 1
    # How the draws are chosen: 0 keeps the lowest energy (f's favourite: right, but every chain of a
    # condition lands on the same mode); > 0 picks draw i with probability softmax(-E_i / temperature)
    # (importance resampling: towards q(z | c) exp(-E / temperature) as candidates grow), so the picks
    # keep the translator's spread over what f is indifferent to.
    candidate_temperature: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):  # from JSON
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"candidates must be an integer >= 1, got {self.candidates!r}")
        for name in ("step_size", "noise_std", "prior_weight", "candidate_temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for name in ("clamp", "grad_clip"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value < float("inf")):
                raise ValueError(f"{name} must be a finite number > 0 (or null), got {value!r}")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LangevinConfig:
        """From JSON (world.json's "langevin", --langevin): unknown keys are an error, not dropped."""
        return from_dict(cls, doc, "Langevin setting(s)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> LangevinConfig:
        """A copy with the given fields replaced; None means 'keep this one' (an unset flag)."""
        reject_unknown(overrides, (f.name for f in fields(self)), "Langevin setting(s)")
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given) if given else self


def gaussian_noise(rng: torch.Generator | None, dim: int, device: torch.device, dtype: torch.dtype) -> NoiseFn:
    """Noise for the given rows from one generator, drawn in row order."""
    return lambda rows: torch.randn((len(rows), dim), generator=rng, device=device, dtype=dtype)


class GroupNoise:
    """Noise for groups of consecutive rows, each group drawing from its own generator, so that a
    group's chains do not depend on the groups batched with it. bounds: [0, n_0, n_0 + n_1, ...]."""

    def __init__(self, bounds: Sequence[int], rngs: Sequence[torch.Generator], dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.bounds, self.rngs, self.dim, self.device, self.dtype = list(bounds), list(rngs), dim, device, dtype

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.tolist()
        parts, i = [], 0
        for g, (lo, hi) in enumerate(zip(self.bounds, self.bounds[1:])):
            j = i
            while j < len(rows) and rows[j] < hi:
                j += 1
            if j > i:
                if rows[i] < lo:
                    raise ValueError("GroupNoise needs the rows in increasing order")
                parts.append(torch.randn((j - i, self.dim), generator=self.rngs[g], device=self.device, dtype=self.dtype))
            i = j
        return torch.cat(parts) if parts else torch.zeros(0, self.dim, device=self.device, dtype=self.dtype)


# Long on purpose: the one sampling loop (STYLE: grow the one loop), its per-row rules read top to bottom.
def langevin_dynamics(
    z0: torch.Tensor,
    energy_fn: EnergyFn,
    config: LangevinConfig,
    rng: torch.Generator | None = None,
    *,
    steps: Sequence[int] | torch.Tensor | None = None,
    noise: NoiseFn | None = None,
    active: Callable[[int], torch.Tensor | None] | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the chains from z0 (B, d); returns z_T (B, d), detached.

    steps     per-row step counts (B,); default config.steps for every row
    rng       the generator of the noise (when `noise` is not given)
    noise     draws the step's standard-normal noise for the stepping rows (see GroupNoise)
    active    active(t) -> (B,) bool mask of the chains still wanted (a deadline); the others stop
    project   applied to z after every step: the generator's projection onto its latent domain
    callback  callback(t, z, energy) after step t: z (B, d) the whole batch, energy (B,) E_t(z_t) of
              the rows that stepped (NaN for the others)
    """
    z = z0.detach().clone()
    b, d = z.shape
    counts = torch.full((b,), config.steps, dtype=torch.long) if steps is None \
        else torch.as_tensor(steps, dtype=torch.long).reshape(-1).cpu()
    if len(counts) != b:
        raise ValueError(f"steps has {len(counts)} entries for {b} chains")
    if config.clamp is not None:
        z = z.clamp(-config.clamp, config.clamp)
    noise = noise or gaussian_noise(rng, d, z.device, z.dtype)
    velocity = torch.zeros_like(z) if config.momentum else None
    for t in range(int(counts.max()) if b else 0):
        wanted = counts > t
        if active is not None:
            mask = active(t)
            if mask is not None:
                wanted &= torch.as_tensor(mask, dtype=torch.bool).cpu()
        rows = wanted.nonzero().squeeze(1)
        if len(rows) == 0:
            break
        rows_dev = rows.to(z.device)
        zr = z[rows_dev].requires_grad_(True)
        with torch.enable_grad():
            energy = energy_fn(zr, rows_dev, t)
            total = energy + config.prior_weight * 0.5 * zr.pow(2).sum(dim=-1) if config.prior_weight else energy
            (grad,) = torch.autograd.grad(total.sum(), zr)
        with torch.no_grad():
            if config.grad_clip is not None:
                norm = grad.norm(dim=1, keepdim=True)
                grad = grad * (config.grad_clip / norm.clamp_min(1e-12)).clamp(max=1.0)
            if velocity is not None:
                v = config.momentum * velocity[rows_dev] + grad
                velocity[rows_dev] = v
                grad = v
            zn = zr.detach() - config.step_size * grad
            if config.noise_std:
                zn = zn + config.noise_std * noise(rows_dev)
            if config.clamp is not None:
                zn = zn.clamp(-config.clamp, config.clamp)
            if project is not None:
                zn = project(zn)
            z[rows_dev] = zn
        if callback is not None:
            full = torch.full((b,), float("nan"), device=z.device, dtype=energy.dtype)
            full[rows_dev] = energy.detach()
            callback(t, z, full)
    return z.detach()
