"""The shapes world's G: a latent GAN (Achlioptas et al., 2018). A DCGAN-style decoder, trained
first as the decoder of an autoencoder, and a mapping network trained adversarially to turn
N(0, I) into the decoder's codes of real images. A GAN in a 16-d code space trains in minutes on a
CPU, where an image-space DCGAN on these sparse, saturated images did not converge in our budget
(see docs/shapes.md). The training (autoencoder, critic) is tron.recipes.shapes."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...generators import Generator
from .render import SIDE


class ShapesDecoder(nn.Module):
    """code (B, k) -> image logits (B, 3, 32, 32)."""

    def __init__(self, code_dim: int = 16, width: int = 32) -> None:
        super().__init__()
        w = width
        self.width = w
        self.fc = nn.Linear(code_dim, 4 * w * 4 * 4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),  # 8x8
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),  # 16x16
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1),  # 32x32
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 3, 3, padding=1),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(code).view(-1, 4 * self.width, 4, 4))



def mlp(sizes: Sequence[int], slope: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


class ShapesGenerator(Generator):
    """z (B, d) ~ N(0, I) -> mapping network -> code (B, k) -> decoder -> (B, 3, 32, 32) in [0, 1]."""

    image_shape = (3, SIDE, SIDE)

    def __init__(self, latent_dim: int = 32, code_dim: int = 16, width: int = 32, mapping_width: int = 256,
                 mapping_layers: int = 3) -> None:
        super().__init__(latent_dim=latent_dim, code_dim=code_dim, width=width, mapping_width=mapping_width,
                         mapping_layers=mapping_layers)
        self.latent_dim = latent_dim
        self.mapping = mlp([latent_dim] + [mapping_width] * mapping_layers + [code_dim])
        # The mapping works in standardised code space, where the GAN's gradient penalty has a
        # sensible scale; these hold the real codes' mean and std.
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_std", torch.ones(code_dim))
        self.decoder = ShapesDecoder(code_dim, width)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.mapping(z) * self.code_std + self.code_mean))
