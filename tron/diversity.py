"""Variety beside accuracy: how much of G's own spread the conditional samples keep.

A sampler can be right by collapsing onto f's favourite mode; these measures show the price. Each
compares a condition's samples with G's *own* unconditional samples that the judge puts in the
condition's set (the condition's share of what G can make), in the judge's terms, never f's:

    open-attribute spread   for prompts that leave attributes open (the shapes world): per open
                            attribute, the entropy of the judged values among the samples, divided
                            by the expected entropy of as many of G's own in-set samples (the same
                            n, so the plug-in estimator's bias cancels: G's own samples score ~1)
    precision / recall,     Naeem et al. 2020 ("Reliable fidelity and diversity metrics for
    density / coverage      generative models"), computed by their own package `prdc` in the
                            judge's feature space, against G's own in-set samples. Each is also
                            given relative to the same metric of as many held-out G samples of the
                            set ("/ G's own": 1 = as varied as G)

Identical samples have zero spread and zero recall; G's own samples have ratios near 1.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch

PRDC_KEYS = ("precision", "recall", "density", "coverage")


def prdc(reference: torch.Tensor, samples: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of `samples` (n, F) against `reference` (m, F), with
    k nearest neighbours (Naeem et al. 2020, their implementation)."""
    from prdc import compute_prdc

    if reference.ndim != 2 or samples.ndim != 2 or reference.shape[1] != samples.shape[1]:
        raise ValueError(f"prdc needs two (N, F) feature sets of one width, got {tuple(reference.shape)} and {tuple(samples.shape)}")
    if len(reference) <= k or len(samples) <= k:
        raise ValueError(f"prdc with k={k} needs more than {k} rows in each set, got {len(reference)} and {len(samples)}")
    with np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        out = compute_prdc(reference.double().numpy(), samples.double().numpy(), nearest_k=k)
    return {key: float(out[key]) for key in PRDC_KEYS}


def conditional_prdc(samples: torch.Tensor, condition_index: torch.Tensor, reference: torch.Tensor,
                     reference_sets: Sequence[torch.Tensor], k: int = 5, max_reference: int = 512) -> dict[str, float]:
    """PRDC of each condition's samples against G's own samples in that condition's set, and of as
    many held-out G samples of the set (the "G's own" row).

    samples (N, F) features of the conditional samples, condition_index (N,) the condition of each;
    reference (M, F) features of G's own unconditional samples (in random order), reference_sets[j]
    the rows of `reference` the judge puts in condition j's set. A condition is measured when its
    set holds more than n + k rows (n held out, the rest the reference, at most `max_reference`).
    Returns the means over measured conditions of each metric (`recall`, ...), of G's own
    (`recall_g`), their ratio (`recall_vs_g`: mean over conditions / mean of G's own), and
    `prdc_conditions`, how many conditions were measured."""
    ours: dict[str, list[float]] = {key: [] for key in PRDC_KEYS}
    own: dict[str, list[float]] = {key: [] for key in PRDC_KEYS}
    for j, rows in enumerate(reference_sets):
        x = samples[condition_index == j]
        n = len(x)
        if n <= k or len(rows) <= n + k:
            continue
        held_out, ref = reference[rows[:n]], reference[rows[n:n + max_reference]]
        for into, fake in ((ours, x), (own, held_out)):
            for key, value in prdc(ref, fake, k).items():
                into[key].append(value)
    out: dict[str, float] = {"prdc_conditions": float(len(ours["recall"]))}
    for key in PRDC_KEYS:
        mean = sum(ours[key]) / len(ours[key]) if ours[key] else float("nan")
        g = sum(own[key]) / len(own[key]) if own[key] else float("nan")
        out[key], out[f"{key}_g"] = mean, g
        out[f"{key}_vs_g"] = mean / g if g and g == g else float("nan")
    return out


def entropy(values: torch.Tensor, num_values: int) -> float:
    """Plug-in entropy (nats) of the empirical distribution of integer values (n,) in [0, num_values)."""
    if len(values) == 0:
        return float("nan")
    p = torch.bincount(values.long(), minlength=num_values).double() / len(values)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def expected_entropy(reference: torch.Tensor, n: int, num_values: int, draws: int = 256, seed: int = 0) -> float:
    """The expected plug-in entropy of n draws from the empirical distribution of `reference` (m,):
    what n of G's own samples would score (Monte Carlo, seeded)."""
    p = torch.bincount(reference.long(), minlength=num_values).double()
    if p.sum() == 0:
        return float("nan")
    rng = torch.Generator().manual_seed(seed)
    picks = torch.multinomial(p.expand(draws, -1), n, replacement=True, generator=rng)  # (draws, n)
    counts = torch.zeros(draws, num_values, dtype=torch.float64).scatter_add_(1, picks, torch.ones(draws, n, dtype=torch.float64)) / n
    terms = torch.where(counts > 0, -counts * counts.clamp(min=1e-300).log(), torch.zeros_like(counts))
    return float(terms.sum(1).mean())


def open_attribute_spread(samples: torch.Tensor, reference: torch.Tensor, open_attributes: Sequence[int],
                          num_values: Sequence[int]) -> dict[str, float]:
    """Spread of the attributes a prompt leaves open, relative to G's own samples in its set.

    samples (n, A) judged attribute values of one prompt's samples; reference (m, A) those of G's own
    samples that the judge puts in the prompt's set; open_attributes the columns the prompt does not
    name. Returns `spread_vs_g`, the mean over open attributes (those G varies within the set) of
    entropy(samples) / E[entropy of n of G's own], and per attribute `spread_vs_g/<column>`."""
    out: dict[str, float] = {}
    ratios = []
    for a in open_attributes:
        ref = expected_entropy(reference[:, a], len(samples), num_values[a])
        if not ref > 1e-9:  # G itself does not vary this attribute within the set
            continue
        ratio = entropy(samples[:, a], num_values[a]) / ref
        out[f"spread_vs_g/{a}"] = ratio
        ratios.append(ratio)
    out["spread_vs_g"] = sum(ratios) / len(ratios) if ratios else float("nan")
    return out


def nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def nanmin(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return min(kept) if kept else float("nan")

