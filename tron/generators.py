"""Generators G: frozen, differentiable maps from a latent z to an image x in [0, 1].

The protocol is small: `latent_dim`, `image_shape`, `sample_latents(n, rng, prior)`,
`decode(z) -> (B, C, H, W)` and `project(z)`, which maps a latent back onto the domain G was
trained on after each Langevin step (identity by default; BigGAN clamps its noise part).
Implementations subclass `Generator` and are named (kebab-case) in the entry-point group
`tron.generators`, so that a checkpoint's `kind` rebuilds the right class (tron.parts).
"""
from __future__ import annotations

import os

import torch

from .parts import Part, load_part, save_part
from .priors import PriorConfig, sample_prior
from .registry import Registry


class Generator(Part):
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    default_prior: PriorConfig = PriorConfig()

    def sample_latents(self, n: int, rng: torch.Generator | None = None, prior: PriorConfig | None = None) -> torch.Tensor:
        return sample_prior(prior or self.default_prior, n, self.latent_dim, rng, device=self.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, C, H, W) in [0, 1]
        raise NotImplementedError

    def project(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, d)
        """The latent domain G was trained on: applied after every Langevin step."""
        return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)


GENERATORS: Registry[Generator] = Registry("generator", "tron.generators")


def save_generator(model: Generator, directory: str | os.PathLike, metadata: dict | None = None, dtype=None):
    return save_part(model, GENERATORS, directory, metadata, dtype)


def load_generator(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a frozen generator (eval mode, no grad on weights) from a checkpoint directory."""
    return load_part(GENERATORS, Generator, directory, device)
