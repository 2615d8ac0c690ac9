"""The digits world: scikit-learn's bundled 8x8 digits (1,797 images), upsampled to 16x16.

G is the decoder of a small VAE, f a small CNN classifier, and the judge used for measuring
quality an RBF SVM on pixels: a different model family from f, so that Langevin dynamics cannot
"win" by fooling the same network it descends.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import ENCODERS, ClassifierEncoder
from ..generators import GENERATORS, Generator

SIDE = 16
NUM_CLASSES = 10


def load_digits_images(side: int = SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, side, side) floats in [0, 1] and labels (N,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    if side != 8:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    return x, torch.tensor(data.target, dtype=torch.long)


def split_digits(seed: int = 0, test_fraction: float = 0.2):
    """Deterministic stratified-enough split: (x_train, y_train, x_test, y_test)."""
    x, y = load_digits_images()
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


@GENERATORS.register("digits-vae-decoder")
class DigitsDecoder(Generator):
    """z (B, d) -> 16x16 grayscale digit. The decoder half of the VAE in `DigitsVAE`."""

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


class DigitsVAE(nn.Module):
    """Training-time wrapper: a conv encoder q(z|x) plus the decoder G."""

    def __init__(self, latent_dim: int = 16, width: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width // 2, 3, 2, 1), nn.ReLU(),  # 8x8
            nn.Conv2d(width // 2, width, 3, 2, 1), nn.ReLU(),  # 4x4
            nn.Flatten(),
            nn.Linear(width * 16, 2 * latent_dim),
        )
        self.decoder = DigitsDecoder(latent_dim, width)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.decoder.logits(z), x, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return rec + beta * kl


@ENCODERS.register("digits-cnn")
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


def fit_judge(seed: int = 0):
    """The measuring instrument: an RBF SVM on 16x16 pixels, trained on all digits.

    Returns (judge, held-out accuracy of the same recipe trained on 80 %, mean of three splits)."""
    from sklearn.svm import SVC

    scores = []
    for split in range(seed, seed + 3):
        x_tr, y_tr, x_te, y_te = split_digits(split)
        probe = SVC(gamma="scale", C=10.0).fit(x_tr.flatten(1).numpy(), y_tr.numpy())
        scores.append(float((probe.predict(x_te.flatten(1).numpy()) == y_te.numpy()).mean()))
    held_out = sum(scores) / len(scores)
    x, y = load_digits_images()
    return SVC(gamma="scale", C=10.0).fit(x.flatten(1).numpy(), y.numpy()), held_out
