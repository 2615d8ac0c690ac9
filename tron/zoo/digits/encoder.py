"""The digits world's f: a small CNN classifier over 16x16 digits."""
from __future__ import annotations

import torch
from torch import nn

from ...encoders import ClassifierEncoder
from .data import NUM_CLASSES, SIDE


class DigitsClassifier(ClassifierEncoder):
    """A small CNN over 16x16 digits: f for the digits world."""

    num_classes = NUM_CLASSES
    class_names = [str(i) for i in range(NUM_CLASSES)]

    def __init__(self, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__(width=width, dropout=dropout)
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(128, NUM_CLASSES),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (1, SIDE, SIDE):
            raise ValueError(f"digits classifier expects (B, 1, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
        return self.net(x)
