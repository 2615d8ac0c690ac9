"""The shapes world's captions: the caption of an attribute row, training captions that name some
attributes (a granularity drawn per caption), the prompt sets that measure quality, and the caption
bank that f ranks (`caption-bank:`)."""
from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, product

import torch

from .render import ATTRIBUTE_NAMES, ATTRIBUTES, COLORS, POSITIONS, SHAPES, SIZES, all_combinations


def describe(shape: str | None = None, color: str | None = None, size: str | None = None,
             position: str | None = None) -> str:
    """The caption naming exactly the given attributes: describe(color="blue") == "a blue shape"."""
    words = ["a"] + [w for w in (size, color) if w] + [shape or "shape"]
    text = " ".join(words)
    return f"{text} in the {position}" if position else text


def caption(attrs: Sequence[int] | torch.Tensor, keep: Sequence[bool] | torch.Tensor | None = None) -> str:
    """Caption for one attribute row; `keep` (4 bools) drops the attributes marked False."""
    values = [ATTRIBUTES[name][int(i)] for name, i in zip(ATTRIBUTE_NAMES, attrs)]
    if keep is not None:
        values = [v if bool(k) else None for v, k in zip(values, keep)]
    return describe(**dict(zip(ATTRIBUTE_NAMES, values)))


def full_captions() -> list[str]:
    """The 210 full captions, in `all_combinations` order."""
    return [caption(row) for row in all_combinations()]


def caption_dropout(n: int, rng: torch.Generator | None = None, full_fraction: float = 0.5,
                    keep_prob: float = 0.5) -> torch.Tensor:
    """Which attributes each training caption names. -> (n, 4) bool

    A `full_fraction` of captions name everything; the rest keep each attribute with
    `keep_prob`, so that partial prompts ("a red circle", "a blue shape") are in distribution.
    """
    full = torch.rand(n, 1, generator=rng) < full_fraction
    keep = torch.rand(n, len(ATTRIBUTE_NAMES), generator=rng) < keep_prob
    return keep | full


def random_captions(attrs: torch.Tensor, rng: torch.Generator | None = None,
                    full_fraction: float = 0.5, keep_prob: float = 0.5) -> tuple[list[str], torch.Tensor]:
    """Training captions with attribute dropout: (captions, keep mask (N, 4))."""
    keep = caption_dropout(len(attrs), rng, full_fraction, keep_prob)
    return [caption(a, k) for a, k in zip(attrs, keep)], keep


def parse_prompt(text: str) -> dict[str, str]:
    """The attributes a caption-style prompt names, e.g. {"color": "red", "shape": "circle"}.

    Words outside the vocabulary are ignored; used to judge partial prompts."""
    text = " ".join(text.lower().split())
    named: dict[str, str] = {}
    for name, values in ATTRIBUTES.items():
        # longest first, so that "top left" wins over a shorter overlapping value
        for value in sorted(values, key=len, reverse=True):
            if f" {value} " in f" {text} ":
                named[name] = value
                break
    return named



def full_prompt_set() -> list[dict[str, str]]:
    """All 210 full captions, as the attributes each names."""
    return [{name: ATTRIBUTES[name][int(i)] for name, i in zip(ATTRIBUTE_NAMES, row)} for row in all_combinations()]


def partial_prompt_set() -> list[dict[str, str]]:
    """111 partial prompts naming one, two or three attributes. Two: every "a {color} {shape}",
    "a {size} shape in the {position}", "a {shape} in the {position}", "a {size} {shape}"; three:
    every "a {size} {color} {shape}"; one: every "a {color} shape", "a {shape}", "a {size} shape",
    "a shape in the {position}"."""
    prompts: list[dict[str, str]] = []
    prompts += [{"color": c, "shape": s} for c in COLORS for s in SHAPES]
    prompts += [{"size": z, "position": p} for z in SIZES for p in POSITIONS]
    prompts += [{"shape": s, "position": p} for s in SHAPES for p in POSITIONS]
    prompts += [{"size": z, "shape": s} for z in SIZES for s in SHAPES]
    prompts += [{"color": c} for c in COLORS]
    prompts += [{"size": z, "color": c, "shape": s} for z in SIZES for c in COLORS for s in SHAPES]
    prompts += [{"shape": s} for s in SHAPES]
    prompts += [{"size": z} for z in SIZES]
    prompts += [{"position": p} for p in POSITIONS]
    return prompts


# ----------------------------------------------------------------------------------------------
# Captions at a granularity drawn per image (captioned pairs)


def granularity_groups() -> list[tuple[float, tuple[str, ...]]]:
    """(probability, attributes named) of a training caption: the number of attributes named is
    uniform over 1..4, then which ones uniform among the sets of that size (15 sets in all)."""
    groups = []
    for k in range(1, len(ATTRIBUTE_NAMES) + 1):
        sets = list(combinations(ATTRIBUTE_NAMES, k))
        groups += [(1 / len(ATTRIBUTE_NAMES) / len(sets), named) for named in sets]
    return groups


def draw_granularity(n: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """Which attributes each of n captions names, drawn as `granularity_groups` says. -> (n, 4) bool"""
    groups = granularity_groups()
    index = torch.multinomial(torch.tensor([p for p, _ in groups], dtype=torch.float64), n, replacement=True, generator=rng)
    masks = torch.tensor([[a in named for a in ATTRIBUTE_NAMES] for _, named in groups])
    return masks[index]


def caption_bank() -> list[tuple[float, list[str]]]:
    """The caption bank of the world (`caption-bank:`): one group per set of named attributes, each
    holding every caption that names exactly that set (575 captions)."""
    bank = []
    for p, named in granularity_groups():
        values = product(*(ATTRIBUTES[a] for a in named))
        bank.append((p, [describe(**dict(zip(named, v))) for v in values]))
    return bank

