"""The digits world's G: the decoder half of a small VAE (trained by tron.recipes.digits)."""
from __future__ import annotations

import torch
from torch import nn

from ...generators import Generator
from .data import SIDE


class DigitsDecoder(Generator):
    """z (B, d) -> 16x16 grayscale digit. The decoder half of the VAE that tron.recipes.digits trains."""

    image_shape = (1, SIDE, SIDE)

    def __init__(self, latent_dim: int = 16, width: int = 64) -> None:
        super().__init__(latent_dim=latent_dim, width=width)
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, 2 * width * 4 * 4)
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),  # 8x8
            nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),  # 16x16
            nn.ReLU(),
            nn.Conv2d(width // 2, 1, 3, padding=1),
        )
        self.width = width

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.width, 4, 4)
        return self.net(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

