"""Conditions for any encoder: a label or class name, text, an image, weighted prompts, or an
interpolation between two of them, turned into rows c of one of f's condition spaces.

    Condition(c (M, k), kind, space, description)

`kind` is what the rows were made from ("label", "text" or "image"; a mix of text and images
counts as "text") and picks the translator when a world has one per kind (TR0N trains its image
translator without the text noise); `space` is the encoder space the rows live in: a classifier's
labels are class distributions in its main space, its images pooled features in "features"; a
CLIP puts text and images in one embedding space. An encoder that cannot take a kind says so in
one line. The CLI, the server and the evaluation all build their conditions here.

Compositions and interpolations work on unit vectors: the energy of sum_i w_i c_i is exactly
sum_i w_i * (-cos(f(x), c_i)), and an interpolation follows the great circle between two conditions.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .encoders import ENCODERS, FEATURES, MAIN, Encoder
from .errors import ConditionError

KINDS = ("label", "text", "image")


@dataclass
class Condition:
    c: torch.Tensor  # (M, k) rows of `space`
    kind: str  # "label", "text" or "image"
    space: str = MAIN
    description: str = ""

    def __len__(self) -> int:
        return len(self.c)


def normalize_prompt(text: Any) -> str:
    """A prompt with control and format characters (zero-width spaces, ...) removed and whitespace
    collapsed; ConditionError when nothing printable is left."""
    if not isinstance(text, str):
        raise ConditionError(f"a prompt must be text, got {type(text).__name__}")
    kept = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    kept = " ".join(kept.split())
    if not kept:
        raise ConditionError("the prompt is empty (no printable characters)" if text.strip() else "the prompt is empty")
    return kept


def space_of(encoder: Encoder, kind: str) -> str:
    """The encoder space a kind of condition lives in."""
    if kind == "image" and encoder.kind == "classifier":
        return FEATURES
    return MAIN


def check_kind(encoder: Encoder, kind: str, who: str = "", hint: str = "") -> None:
    """The one refusal of a kind of condition an encoder cannot take; `who` names the encoder for
    the reader (default: its kind), `hint` the fix where the caller knows it."""
    if kind not in KINDS:
        raise ConditionError(f"unknown kind of condition {kind!r}; one of {', '.join(KINDS)}")
    takes = encoder.condition_kinds
    if kind not in takes:
        who = who or f"this encoder ({ENCODERS.name_of(type(encoder), type(encoder).__name__)})"
        raise ConditionError(f"{who} takes {' or '.join(takes) or 'no conditions'}, not {kind}" + (f"; {hint}" if hint else ""))


def from_labels(encoder: Encoder, labels: Sequence[int | str] | int | str) -> Condition:
    check_kind(encoder, "label")
    labels = [labels] if isinstance(labels, (int, str)) else list(labels)
    c = encoder.condition_from_labels(labels)
    return Condition(c, "label", MAIN, f"label{'s' if len(labels) > 1 else ''} {', '.join(map(str, labels))}")


def from_text(encoder: Encoder, prompts: Sequence[str] | str) -> Condition:
    """Prompts as f's text conditions; f normalises each prompt (`normalize_prompt`) as it embeds it."""
    check_kind(encoder, "text")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    return Condition(encoder.condition_from_text(prompts), "text", MAIN, " | ".join(f"text {p!r}" for p in prompts))


def from_images(encoder: Encoder, images: torch.Tensor | Sequence[Any], names: Sequence[str] | None = None) -> Condition:
    """Image tensors (N, 3, H, W) in [0, 1] or image files."""
    check_kind(encoder, "image")
    c = encoder.condition_from_images(images)
    names = names or ([str(p) for p in images] if not isinstance(images, torch.Tensor) else ["image"] * len(c))
    return Condition(c, "image", space_of(encoder, "image"), " | ".join(f"image {n!r}" for n in names))


def from_items(encoder: Encoder, items: Sequence[tuple[str, Any]]) -> Condition:
    """One row per (kind, value) item, kind "text" or "image" (a file or a (1, 3, H, W) tensor)."""
    if not items:
        raise ConditionError("no condition given")
    parts = []
    for kind, value in items:
        if kind == "text":
            parts.append(from_text(encoder, [value]))
        elif kind == "image":
            parts.append(from_images(encoder, value if isinstance(value, torch.Tensor) else [value]))
        else:
            raise ConditionError(f"an item is text or an image, got {kind!r}")
    spaces = {p.space for p in parts}
    if len(spaces) > 1:
        raise ConditionError("this encoder puts text and images in different spaces: they cannot be mixed")
    kinds = {p.kind for p in parts}
    return Condition(torch.cat([p.c.to(parts[0].c.device) for p in parts]), kinds.pop() if len(kinds) == 1 else "text",
                     spaces.pop(), " | ".join(p.description for p in parts))


def compose(conditions: torch.Tensor, weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """One condition (1, D) whose energy is sum_i w_i * (-cos(f(x), c_i)). conditions (K, D)."""
    weights = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
    if conditions.dim() != 2 or len(conditions) != len(weights):
        raise ConditionError(f"{len(weights)} weights for {len(conditions)} conditions: give one weight per condition")
    if not torch.isfinite(weights).all():
        raise ConditionError("composition weights must be finite numbers")
    c = (weights.to(conditions.device).unsqueeze(1) * F.normalize(conditions.float(), dim=-1)).sum(0, keepdim=True)
    if c.norm() < 1e-6:
        raise ConditionError("the weighted conditions cancel out to zero")
    return c


def interpolate(c_from: torch.Tensor, c_to: torch.Tensor, num: int) -> torch.Tensor:
    """num conditions along the great circle from one unit condition to another. (D,), (D,) -> (num, D)"""
    if num < 2:
        raise ConditionError(f"an interpolation needs at least 2 points, got {num}")
    a, b = F.normalize(c_from.reshape(-1).float(), dim=0), F.normalize(c_to.reshape(-1).float(), dim=0)
    if a.shape != b.shape:
        raise ConditionError(f"cannot interpolate conditions of sizes {a.numel()} and {b.numel()}")
    omega = torch.arccos((a * b).sum().clamp(-1 + 1e-6, 1 - 1e-6))
    t = torch.linspace(0, 1, num, device=a.device).unsqueeze(1)  # (num, 1)
    if omega < 1e-4:  # (nearly) the same direction: nothing to interpolate
        return a.expand(num, -1).clone()
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def build(encoder: Encoder, labels: Sequence[int | str] | None = None, items: Sequence[tuple[str, Any]] | None = None,
          weights: Sequence[float] | None = None, interpolate_steps: int | None = None) -> Condition:
    """The CLI's and the server's conditions: labels, or text/image items, optionally composed
    with weights into one row or interpolated (exactly two items) into `interpolate_steps` rows."""
    items = list(items or [])
    if labels and items:
        raise ConditionError("give either labels or text/images, not both")
    if weights is not None and interpolate_steps is not None:
        raise ConditionError("give either weights or an interpolation, not both")
    if labels:
        if weights is not None or interpolate_steps is not None:
            raise ConditionError("weights and interpolation work on text and image conditions, not labels")
        return from_labels(encoder, labels)
    if not items:
        example = "--label 7" if "label" in encoder.condition_kinds else '--text "a red circle"'
        raise ConditionError(f"give a condition, e.g. {example}")
    rows = from_items(encoder, items)
    if weights is not None:
        weights = list(weights)
        if len(weights) != len(rows):
            raise ConditionError(f"{len(weights)} weights for {len(rows)} conditions: give one weight per text/image")
        described = " + ".join(f"{w:g} x {part}" for w, part in zip(weights, rows.description.split(" | ")))
        return Condition(compose(rows.c, weights), rows.kind, rows.space, f"the composition {described}")
    if interpolate_steps is not None:
        if len(rows) != 2:
            raise ConditionError(f"an interpolation needs exactly two conditions, got {len(rows)}")
        return Condition(interpolate(rows.c[0], rows.c[1], interpolate_steps), rows.kind, rows.space,
                         f"{interpolate_steps} steps from {rows.description}")
    return rows
