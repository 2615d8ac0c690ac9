"""Priors p(z) over generator latents. Every draw takes an explicit torch.Generator."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import TronError

PRIOR_KINDS = ("normal", "truncated-normal")


@dataclass(frozen=True)
class PriorConfig:
    kind: str = "normal"  # "normal" or "truncated-normal"
    truncation: float = 2.0  # |z_i| bound for "truncated-normal" (BigGAN's truncation trick)

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise TronError(f"unknown prior {self.kind!r}; choose one of {', '.join(PRIOR_KINDS)}")
        if self.kind == "truncated-normal" and not self.truncation > 0:
            raise TronError(f"truncation must be > 0, got {self.truncation}")


def parse_prior(spec: str) -> PriorConfig:
    """'normal' or 'truncated-normal' or 'truncated-normal:1.5'."""
    kind, _, bound = spec.partition(":")
    if bound:
        try:
            return PriorConfig(kind, float(bound))
        except ValueError as exc:
            raise TronError(f"bad truncation in prior {spec!r}") from exc
    return PriorConfig(kind)


def sample_prior(
    prior: PriorConfig,
    n: int,
    dim: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw n latents (n, dim) from the prior."""
    if prior.kind == "normal":
        return torch.randn(n, dim, generator=generator, device=device)
    # Inverse-CDF sampling: exact truncation, one uniform per coordinate, no rejection loop.
    t = prior.truncation
    lo = 0.5 * (1 + math.erf(-t / math.sqrt(2)))
    u = torch.rand(n, dim, generator=generator, device=device)
    u = lo + (1 - 2 * lo) * u
    return torch.special.ndtri(u).clamp_(-t, t)
