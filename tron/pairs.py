"""In-process pair generation: (G, f, n, seed) -> z (N, d), c (N, k).

This is the unit of work that the distributed dataset builder runs once per shard.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .encoders import Encoder
from .generators import Generator
from .priors import PriorConfig


@torch.no_grad()
def generate_pairs(
    generator: Generator,
    encoder: Encoder,
    n: int,
    seed: int,
    batch_size: int = 256,
    prior: PriorConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample z ~ p(z), render x = G(z), compute c = f(x). Deterministic for (seed, n, batch_size, prior)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(generator.parameters()).device
    rng = torch.Generator(device=device).manual_seed(int(seed))
    zs, cs = [], []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = generator.sample_latents(b, rng, prior)  # (b, d)
        c = encoder.encode(generator.decode(z))  # (b, k)
        zs.append(z.float().cpu().numpy())
        cs.append(c.float().cpu().numpy())
        if progress is not None:
            progress(b)
    d, k = generator.latent_dim, encoder.embed_dim
    z_all = np.concatenate(zs) if zs else np.zeros((0, d), np.float32)
    c_all = np.concatenate(cs) if cs else np.zeros((0, k), np.float32)
    return z_all.astype(np.float32, copy=False), c_all.astype(np.float32, copy=False)
