"""Energies E(x-features, c) as pure functions. Each returns one value per row: (B,).

Lower is better; Langevin dynamics descends them through f and G.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Classifier energy: -sum_k c_k log softmax(logits)_k; c is one-hot or a distribution. (B, K), (B, K) -> (B,)"""
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def negative_cosine(embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CLIP energy: -cos(f(x), c). (B, D), (B, D) -> (B,)"""
    return -F.cosine_similarity(embedding, target, dim=-1)


def quadratic(z: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """0.5 ||z - center||^2, a reference energy for tests and sanity checks. (B, d) -> (B,)"""
    return 0.5 * (z - center).pow(2).sum(dim=-1)
