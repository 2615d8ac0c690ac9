"""In-process pair generation: (G, f, n, seed) -> z (N, d), c (N, k) [, c_features (N, F)].

This is the unit of work that the distributed dataset builder runs once per shard. Non-finite
images or conditions are an error naming the part that produced them: a dataset never holds them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .encoders import FEATURES, MAIN, Encoder
from .errors import TronError
from .generators import Generator
from .priors import PriorConfig


class NonFiniteError(TronError):
    """G or f produced NaN or infinite values."""


def column_name(space: str) -> str:
    """The dataset column of a condition space: "c" for the main one, "c_features", ..."""
    return "c" if space == MAIN else f"c_{space}"


def _check_finite(values: torch.Tensor, part: str, what: str) -> None:
    bad = ~torch.isfinite(values.flatten(1)).all(dim=1)
    if bad.any():
        raise NonFiniteError(f"the {part} produced non-finite {what} for {int(bad.sum())} of {len(values)} rows")


@torch.no_grad()
def generate_columns(
    generator: Generator,
    encoder: Encoder,
    n: int,
    seed: int,
    batch_size: int = 256,
    prior: PriorConfig | None = None,
    progress: Callable[[int], None] | None = None,
    spaces: Sequence[str] = (MAIN,),
) -> dict[str, np.ndarray]:
    """{"z": (N, d), column_name(space): (N, k_space) for each space}; deterministic for
    (seed, n, batch_size, prior). Raises NonFiniteError naming G or f."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    both = tuple(spaces) == (MAIN, FEATURES) and hasattr(encoder, "classify")
    rng = torch.Generator(device=generator.device).manual_seed(int(seed))
    parts: dict[str, list[np.ndarray]] = {"z": [], **{column_name(s): [] for s in spaces}}
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = generator.sample_latents(b, rng, prior)  # (b, d)
        x = generator.decode(z)
        _check_finite(x, "generator", "images")
        if both:  # one pass through f for the class distribution and the features
            outs = dict(zip(spaces, encoder.classify(x)))
        else:
            outs = {s: encoder.encode(x, s) for s in spaces}
        for space, c in outs.items():
            _check_finite(c, "encoder", "conditions" if space == MAIN else f"{space}")
            parts[column_name(space)].append(c.float().cpu().numpy())
        parts["z"].append(z.float().cpu().numpy())
        if progress is not None:
            progress(b)
    widths = {"z": generator.latent_dim, **{column_name(s): encoder.space_dim(s) for s in spaces}}
    return {k: (np.concatenate(v) if v else np.zeros((0, widths[k]), np.float32)).astype(np.float32, copy=False)
            for k, v in parts.items()}


def generate_pairs(generator: Generator, encoder: Encoder, n: int, seed: int, batch_size: int = 256,
                   prior: PriorConfig | None = None, progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample z ~ p(z), render x = G(z), compute c = f(x). Deterministic for (seed, n, batch_size, prior)."""
    cols = generate_columns(generator, encoder, n, seed, batch_size, prior, progress)
    return cols["z"], cols["c"]


@torch.no_grad()
def condition_scale(generator: Generator, encoder: Encoder, n: int = 256, seed: int = 0) -> float:
    """The mean norm of f's raw embeddings of G's samples (1.0 for an encoder without raw embeddings):
    TR0N adds its condition noise on that scale."""
    if not hasattr(encoder, "encode_raw"):
        return 1.0
    rng = torch.Generator(device=generator.device).manual_seed(int(seed))
    norms = []
    for start in range(0, n, 64):
        x = generator.decode(generator.sample_latents(min(64, n - start), rng))
        norms.append(encoder.encode_raw(x).norm(dim=-1).float().cpu())
    return float(torch.cat(norms).mean())
