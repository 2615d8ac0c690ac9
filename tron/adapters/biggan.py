"""BigGAN as G, through the `pytorch-pretrained-biggan` package: `biggan:DIR`.

As in the TR0N paper, the latent is the whole conditioning vector of BigGAN's generator,
w = (z, e) with z the noise (z_dim) and e = E y a class embedding (class_embed_dim): Langevin
dynamics and the translator move both, so a class is reached through its embedding rather than
fixed in advance. Prior draws take z from BigGAN's truncated normal (|z| <= 2, times
`truncation`) and e as the embedding of a uniformly drawn class. `z_clamp` is the generator's
projection: after every Langevin step z (not the class embedding) is clamped to [-z_clamp,
z_clamp], as the authors' code does, so a coordinate past the bound still gets its gradient (a
clamp inside decode would zero it and leave the coordinate to drift with the noise). `truncation`
also picks BigGAN's precomputed batch-norm statistics, as its own forward does.

DIR holds the package's `config.json` and weights (`model.safetensors`, or `pytorch_model.bin`
read with weights_only=True).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..files import hash_tree
from ..generators import Generator
from ..priors import PriorConfig, sample_prior
from ..specs import AdapterSpec, Scheme
from .util import load_strict, load_weights_file, need_package


class BigGANGenerator(Generator):
    """w (B, z_dim + class_embed_dim) -> (B, 3, S, S) in [0, 1]."""

    reference_step_size = 5.0  # the authors' Langevin step for BigGAN (tron.presets.reference)

    default_prior = PriorConfig("truncated-normal", 2.0)  # BigGAN's truncated_noise_sample

    def __init__(self, biggan_config: dict[str, Any], truncation: float = 1.0, z_clamp: float | None = 2.0) -> None:
        need_package("pytorch_pretrained_biggan", "a BigGAN generator", "pytorch-pretrained-biggan")
        from pytorch_pretrained_biggan import BigGAN, BigGANConfig

        if not 0 < truncation <= 1:
            raise CheckpointError(f"BigGAN truncation must be in (0, 1], got {truncation}")
        if z_clamp is not None and not z_clamp > 0:
            raise CheckpointError(f"z_clamp must be > 0, got {z_clamp}")
        super().__init__(biggan_config=dict(biggan_config), truncation=float(truncation), z_clamp=z_clamp)
        self.biggan = BigGAN(BigGANConfig.from_dict(self.config["biggan_config"]))
        cfg = self.biggan.config
        self.z_dim, self.embed_dim = int(cfg.z_dim), int(cfg.z_dim)  # BigGAN's embedding maps to z_dim
        self.num_classes = int(cfg.num_classes)
        self.latent_dim = self.z_dim + self.embed_dim
        self.image_shape = (3, int(cfg.output_dim), int(cfg.output_dim))
        self.truncation, self.z_clamp = float(truncation), z_clamp

    def class_embedding(self, labels: torch.Tensor) -> torch.Tensor:
        """e = E y for integer labels (B,) -> (B, embed_dim)."""
        return self.biggan.embeddings.weight.t()[labels]

    def sample_latents(self, n: int, rng: torch.Generator | None = None,
                       prior: PriorConfig | None = None) -> torch.Tensor:
        device = self.biggan.embeddings.weight.device
        z = sample_prior(prior or self.default_prior, n, self.z_dim, rng, device=device) * self.truncation
        labels = torch.randint(0, self.num_classes, (n,), generator=rng, device=device)
        return torch.cat([z, self.class_embedding(labels)], dim=1)  # (n, z_dim + embed_dim)

    def decode(self, w: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, 3, S, S) in [0, 1]
        x = self.biggan.generator(w, self.truncation)  # tanh, [-1, 1]
        return (x + 1) / 2

    def project(self, w: torch.Tensor) -> torch.Tensor:
        """Clamp the noise part z to [-z_clamp, z_clamp]; the class embedding is left as it is."""
        if self.z_clamp is None:
            return w
        return torch.cat([w[:, :self.z_dim].clamp(-self.z_clamp, self.z_clamp), w[:, self.z_dim:]], dim=1)


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "generator") -> BigGANGenerator:
    """`biggan:DIR[#truncation=T,z_clamp=C]`."""
    return load_biggan(spec.args[0], allow_pickle=allow_pickle, **spec.options)


def load_biggan(directory: str, truncation: float = 1.0, z_clamp: float | None = 2.0,
                allow_pickle: bool = False) -> BigGANGenerator:
    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{directory} is not a BigGAN directory (no config.json)")
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            weights = directory / name
            break
    else:
        raise CheckpointError(f"{directory} has no BigGAN weights (model.safetensors or pytorch_model.bin)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_file} is not valid JSON: {exc}") from None
    model = BigGANGenerator(config, truncation, z_clamp)
    load_strict(model.biggan, load_weights_file(weights, allow_pickle), weights)
    model.source = str(directory)
    return model


SCHEME = Scheme("biggan", "generator", "biggan:DIR[#truncation=T,z_clamp=C]",
                "pytorch-pretrained-biggan; latent = z + class embedding", (1,), ("truncation", "z_clamp"),
                load_spec, lambda s: hash_tree(s.args[0]))
