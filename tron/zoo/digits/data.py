"""The digits world's data: scikit-learn's 1,797 digits at 16x16, and a fixed train/test split."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

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

