"""The shapes world's captioner: trained on the renderer's labels (as BLIP learned from captioned
images), it reads the four attributes and names those a granularity drawn per image keeps."""
from __future__ import annotations

import torch
from torch import nn

from ...captioners import Captioner
from .captions import caption, draw_granularity
from .render import NUM_VALUES, SIDE


class ShapesCaptioner(Captioner):
    """A captioner trained on the renderer's labels (as BLIP learned from captioned images): a CNN
    reads the four attributes, and a caption names the ones a granularity drawn per image keeps.
    Its own architecture and seed: the judge (the measuring instrument) is never the captioner."""

    def __init__(self, width: int = 24) -> None:
        super().__init__(width=width)
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=1, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.GELU(),  # 16x16
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.GELU(),  # 8x8
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 4 * w), nn.GELU(),  # 4x4
            nn.Flatten(),
            nn.Linear(4 * w * 16, 96), nn.GELU(),
        )
        self.heads = nn.ModuleList(nn.Linear(96, k) for k in NUM_VALUES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, 32, 32) -> 4 x (B, k)
        if x.shape[1:] != (3, SIDE, SIDE):
            raise ValueError(f"the shapes captioner expects (B, 3, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
        h = self.body(x * 2 - 1)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def attributes(self, x: torch.Tensor) -> torch.Tensor:
        """The attributes it reads. (B, 3, 32, 32) -> (B, 4) long"""
        return torch.stack([logits.argmax(-1) for logits in self(x.float())], 1)

    @torch.no_grad()
    def caption(self, x: torch.Tensor, rng: torch.Generator) -> list[str]:
        attrs = self.attributes(x).cpu()
        keep = draw_granularity(len(x), rng)
        return [caption(a, k) for a, k in zip(attrs, keep)]
