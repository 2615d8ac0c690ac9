"""Measured quality: sample with several methods and judge the results with an instrument that is
not f. The judges (tron.judges) call these; so do `tron eval` and the benchmarks.

    translator only    z0 ~ q(z | c), no Langevin (T = 0)
    TR0N               z0 ~ q(z | c) + T Langevin steps
    prior + Langevin   z0 ~ p(z) + T Langevin steps
    best of N          N = T + 1 prior samples ranked by the energy (the same G+f evaluations)

A world's Langevin may start each chain from the best of several ranked draws (LangevinConfig.candidates);
the evaluations counted per sample include them.

Diversity is the mean pairwise L2 distance between the samples of a condition, divided by a
reference spread for that condition (real data at its native resolution, or G's own unconditional
samples of that class, grouped by the judge); the judges say which.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .conditions import Condition
from .langevin import LangevinConfig
from .sampler import SampleResult
from .world import World

Progress = Callable[[int], None] | None  # called with the number of samples just made

@dataclass
class Method:
    name: str
    init: str  # "translator" or "prior"
    steps: int  # Langevin steps
    candidates: int = 0  # > 0: best of this many prior samples ranked by the energy, no Langevin

    def evaluations(self, langevin: LangevinConfig | None = None) -> int:
        """G+f evaluations per sample under `langevin` (its ranked draws of z0): N candidates for best
        of N, else tron.evaluation.chain_evaluations of the method's T."""
        return self.candidates or chain_evaluations(self.steps, langevin.candidates if langevin else 1)


def chain_evaluations(steps: int, candidates: int = 1, per_step: int = 1) -> int:
    """G+f forward evaluations of one chain: `candidates` ranked draws of z0 (none for a single
    unranked draw), `per_step` per Langevin step, and the final image unless it is a ranked draw
    (T = 0)."""
    ranked = candidates if candidates > 1 else 0
    return ranked + per_step * steps + (1 if steps > 0 or not ranked else 0)


def default_methods(steps: int) -> list[Method]:
    return [
        Method("translator only (T=0)", "translator", 0),
        Method(f"TR0N (translator + {steps} Langevin steps)", "translator", steps),
        Method(f"random prior + {steps} Langevin steps", "prior", steps),
    ]


def best_of_n_method(steps: int, ranked_by: str = "f") -> Method:
    """Best-of-N prior samples at the same number of G+f evaluations as T Langevin steps."""
    return Method(f"best of {steps + 1} prior samples, ranked by {ranked_by}", "prior", 0, steps + 1)


def clip_methods(steps: int) -> list[Method]:
    return default_methods(steps) + [best_of_n_method(steps, "CLIP")]


def run_method(world: World, condition: Condition, n: int, method: Method, seed: int = 0,
               langevin: LangevinConfig | None = None, batch_size: int = 256,
               progress: Progress = None) -> tuple[SampleResult, float]:
    """(the samples, seconds) of one method for every row of the condition, n per row."""
    langevin = (langevin or world.langevin).with_overrides(steps=method.steps)
    sampler = world.sampler(condition.kind)
    t0 = time.perf_counter()
    if method.candidates:
        res = sampler.best_of_n(condition.c, n, method.candidates, seed=seed, views=langevin.augment,
                                batch_size=batch_size, progress=progress)
    else:
        res = sampler.sample(condition.c, n, langevin, seed=seed, init=method.init, batch_size=batch_size,
                             progress=progress)
    return res, time.perf_counter() - t0


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean L2 distance between distinct pairs of rows of x (N, ...): intra-set diversity."""
    flat = x.flatten(1).double()
    if len(flat) < 2:
        return 0.0
    d = torch.cdist(flat, flat)
    n = len(flat)
    return float(d.sum() / (n * (n - 1)))


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format); a column a row lacks shows as —."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    cell = lambda r, k, f: "—" if k not in r else format(r[k], f) if f else str(r[k])  # noqa: E731 - a row may lack a column
    body = ["| " + " | ".join(cell(r, k, f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def log_comb(a: torch.Tensor, b: float) -> torch.Tensor:
    """log C(a, b), elementwise; -inf where b > a."""
    a = a.double()
    out = torch.lgamma(a + 1) - math.lgamma(b + 1) - torch.lgamma((a - b).clamp(min=0) + 1)
    return torch.where(a >= b, out, torch.full_like(out, -math.inf))


def best_of_n_rate(score: torch.Tensor, hit: torch.Tensor, n: int) -> float:
    """E[hit of the best-scored of a random n-subset of a pool] (exact, without replacement): the
    sample of rank r (1 = best score) is the best of the subset with probability C(m - r, n - 1) / C(m, n).
    score, hit: (M,) for one condition's pool of M prior samples."""
    m = len(score)
    order = torch.argsort(score, descending=True, stable=True)
    ranks = torch.arange(1, m + 1, dtype=torch.float64)
    weights = torch.exp(log_comb(m - ranks, n - 1) - log_comb(torch.tensor(float(m)), n))
    return float((weights * hit[order].double()).sum())
