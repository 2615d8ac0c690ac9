"""The TR0N sampler: translator -> Langevin dynamics -> decode, batched over many conditions.

    z0 ~ q(z | c)            (or z0 ~ p(z) for the random-init baseline)
    z_T = SGLD on E(z, c) = energy(f(G(z)), c)
    x = G(z_T)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .encoders import Encoder
from .errors import ConditionError
from .generators import Generator
from .langevin import LangevinConfig, langevin_dynamics
from .priors import PriorConfig
from .translator import Translator

INITS = ("translator", "prior")


@dataclass
class SampleResult:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    energies: torch.Tensor  # (N,) final energy of each sample
    latents: torch.Tensor  # (N, d) final latents z_T
    condition_index: torch.Tensor  # (N,) row of c that each sample answers


class Sampler:
    def __init__(self, generator: Generator, encoder: Encoder, translator: Translator | None = None,
                 translator_std_scale: float = 1.0) -> None:
        if translator is not None:
            if translator.config.latent_dim != generator.latent_dim:
                raise ConditionError(f"translator latent_dim {translator.config.latent_dim} != generator latent_dim {generator.latent_dim}")
            if translator.config.cond_dim != encoder.embed_dim:
                raise ConditionError(f"translator cond_dim {translator.config.cond_dim} != encoder embed_dim {encoder.embed_dim}")
        self.generator, self.encoder, self.translator = generator, encoder, translator
        # Scales the mixture's shared std when drawing z0: below 1 starts chains nearer the
        # component means, for translators whose learned std is broad (a world.json setting).
        self.translator_std_scale = translator_std_scale

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def energy_fn(self, c: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda z: self.encoder.energy(self.generator.decode(z), c)

    def initial_latents(self, c: torch.Tensor, init: str, rng: torch.Generator, prior: PriorConfig | None) -> torch.Tensor:
        if init == "translator":
            if self.translator is None:
                raise ConditionError("init='translator' needs a translator")
            return self.translator.sample(c, generator=rng, std_scale=self.translator_std_scale)
        if init == "prior":
            return self.generator.sample_latents(len(c), rng, prior)
        raise ValueError(f"init must be one of {INITS}, got {init!r}")

    def sample(
        self,
        c: torch.Tensor,
        num_per_condition: int = 1,
        langevin: LangevinConfig | None = None,
        seed: int = 0,
        init: str = "translator",
        prior: PriorConfig | None = None,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> SampleResult:
        """Draw `num_per_condition` samples for each row of c (M, k); rows of the result are grouped by condition."""
        if num_per_condition < 1:
            raise ConditionError(f"number of samples must be >= 1, got {num_per_condition}")
        langevin = langevin or LangevinConfig()
        c = self.encoder.check_condition(c).to(self.device)
        index = torch.arange(len(c), device=self.device).repeat_interleave(num_per_condition)
        rng = torch.Generator(device=self.device).manual_seed(int(seed))
        out: dict[str, list[torch.Tensor]] = {"images": [], "energies": [], "latents": []}
        for start in range(0, len(index), batch_size):
            cb = c[index[start:start + batch_size]]
            z = self.initial_latents(cb, init, rng, prior)
            z = langevin_dynamics(z, self.energy_fn(cb), langevin, generator=rng)
            with torch.no_grad():
                x = self.generator.decode(z)
                e = self.encoder.energy(x, cb)
            out["images"].append(x.cpu())
            out["energies"].append(e.cpu())
            out["latents"].append(z.cpu())
            if progress is not None:
                progress(len(cb))
        return SampleResult(
            images=torch.cat(out["images"]),
            energies=torch.cat(out["energies"]),
            latents=torch.cat(out["latents"]),
            condition_index=index.cpu(),
        )
