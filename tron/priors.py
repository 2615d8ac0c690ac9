"""Priors p(z) over generator latents. Every draw takes an explicit torch.Generator (`rng`).

    normal             z ~ N(0, I)
    truncated-normal   z ~ N(0, I) restricted to |z_i| <= truncation (BigGAN's truncation trick)
    hubness            the hubness prior of Liang et al. (ICML 2022): draw M reference latents from
                       N(0, I), count for each how often it is among the k nearest neighbours of the
                       reference latents (its k-occurrence), and keep the hubs; repeat until enough
                       latents are kept. The paper uses M = 10,000, k = 5, t = 50 and keeps the hubs
                       as they are (no perturbation, no mixture).

Two counting rules. "authors" (the default) is the authors' notebook (Byronliang8/
HubnessGANSampling): each latent's k-nearest-neighbour list includes the latent itself (the query
set is the reference set, passed explicitly), and hubs have k-occurrence >= t. "strict" excludes
the latent itself and keeps k-occurrence > t; at k = 5, t = 50, d = 128 it keeps about 40 % more
latents than the authors' rule.

Hubs need dimensions: in 16-d no latent reaches t = 50 (the largest count is ~30), so
low-dimensional latents need a lower t (e.g. 20 for 16-d).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import TronError

PRIOR_KINDS = ("normal", "truncated-normal", "hubness")
HUBNESS_RULES = ("authors", "strict")
HUBNESS_CHUNK = 1000  # query rows per distance block: memory is CHUNK x M floats
HUBNESS_EMPTY_ROUNDS = 3  # rounds without a single hub before giving up


@dataclass(frozen=True)
class PriorConfig:
    kind: str = "normal"  # one of PRIOR_KINDS
    truncation: float = 2.0  # |z_i| bound for "truncated-normal" (BigGAN's truncation trick)
    k: int = 5  # hubness: neighbours counted per reference latent
    threshold: int = 50  # hubness: t, the k-occurrence a hub needs (see `rule`)
    num_reference: int = 10_000  # hubness: M, reference latents scored together
    rule: str = "authors"  # hubness: "authors" (self counted, >= t) or "strict" (self excluded, > t)

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise TronError(f"unknown prior {self.kind!r}; choose one of {', '.join(PRIOR_KINDS)}")
        if self.kind == "truncated-normal" and not self.truncation > 0:
            raise TronError(f"truncation must be > 0, got {self.truncation}")
        if self.kind == "hubness":
            if not 1 <= self.k < self.num_reference:
                raise TronError(f"hubness k must be in [1, M), got k={self.k} with M={self.num_reference}")
            if self.threshold < 0:
                raise TronError(f"hubness threshold t must be >= 0, got {self.threshold}")
            if self.rule not in HUBNESS_RULES:
                raise TronError(f"hubness rule must be one of {', '.join(HUBNESS_RULES)}, got {self.rule!r}")


def parse_prior(spec: str) -> PriorConfig:
    """'normal', 'truncated-normal', 'truncated-normal:1.5', 'hubness' or
    'hubness:k=5,t=50,m=10000[,rule=strict]'."""
    kind, _, rest = spec.partition(":")
    if kind == "hubness":
        names = {"k": "k", "t": "threshold", "m": "num_reference", "rule": "rule"}
        values: dict = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or key.strip() not in names:
                raise TronError(f"bad hubness setting {item!r} in {spec!r}; write hubness:k=5,t=50,m=10000")
            if key.strip() == "rule":
                values["rule"] = value.strip()
                continue
            try:
                values[names[key.strip()]] = int(value)
            except ValueError:
                raise TronError(f"hubness {key.strip()} must be an integer, got {value!r}") from None
        return PriorConfig("hubness", **values)
    if rest:
        try:
            return PriorConfig(kind, float(rest))
        except ValueError as exc:
            raise TronError(f"bad truncation in prior {spec!r}") from exc
    return PriorConfig(kind)


def k_occurrence(z: torch.Tensor, k: int, include_self: bool = True, chunk: int = HUBNESS_CHUNK) -> torch.Tensor:
    """How often each row of z (M, d) is among the k nearest neighbours (L2) of the rows: (M,)
    integers summing to M * k. With include_self (the authors' rule) a row's own list holds the row
    itself and its k - 1 nearest others; without, its k nearest others. Distances are computed
    `chunk` rows at a time."""
    m = len(z)
    counts = torch.zeros(m, dtype=torch.long, device=z.device)
    for start in range(0, m, chunk):
        d = torch.cdist(z[start:start + chunk], z)  # (chunk, M)
        rows = torch.arange(len(d), device=z.device)
        # Itself first (distance -1 wins ties with duplicates), or never.
        d[rows, rows + start] = -1.0 if include_self else float("inf")
        neighbours = d.topk(k, dim=1, largest=False).indices  # (chunk, k)
        counts += torch.bincount(neighbours.flatten(), minlength=m)
    return counts


def is_hub(counts: torch.Tensor, prior: PriorConfig) -> torch.Tensor:
    return counts >= prior.threshold if prior.rule == "authors" else counts > prior.threshold


def sample_hubs(prior: PriorConfig, n: int, dim: int, rng: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """n hub latents (n, dim): rounds of M standard-normal draws, keeping the hubs."""
    kept, total, rounds, best = [], 0, 0, 0
    while total < n:
        ref = torch.randn(prior.num_reference, dim, generator=rng, device=device)
        counts = k_occurrence(ref, prior.k, include_self=prior.rule == "authors")
        hubs = ref[is_hub(counts, prior)]
        kept.append(hubs)
        total, rounds, best = total + len(hubs), rounds + 1, max(best, int(counts.max()))
        if total == 0 and rounds >= HUBNESS_EMPTY_ROUNDS:
            raise TronError(
                f"hubness prior: no latent in {rounds} rounds of M={prior.num_reference} draws in {dim} dimensions "
                f"is a hub at t={prior.threshold} (k={prior.k}, rule {prior.rule}; the largest k-occurrence was {best}); "
                f"lower t, e.g. hubness:t={max(1, best * 2 // 3)}")
    return torch.cat(kept)[:n]


def sample_prior(
    prior: PriorConfig,
    n: int,
    dim: int,
    rng: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw n latents (n, dim) from the prior."""
    if prior.kind == "normal":
        return torch.randn(n, dim, generator=rng, device=device)
    if prior.kind == "hubness":
        return sample_hubs(prior, n, dim, rng, device) if n > 0 else torch.zeros(0, dim, device=device)
    # Inverse-CDF sampling: exact truncation, one uniform per coordinate, no rejection loop.
    t = prior.truncation
    lo = 0.5 * (1 + math.erf(-t / math.sqrt(2)))
    u = torch.rand(n, dim, generator=rng, device=device)
    u = lo + (1 - 2 * lo) * u
    return torch.special.ndtri(u).clamp_(-t, t)
