"""Named Langevin settings (data, not code), next to each world's tuned defaults in world.json.

    world       the world's own defaults (world.json), tuned on that world
    reference   the authors' settings for full-size models (layer6ai-labs/tr0n eval scripts):
                T = 100, momentum 0.99, gradient-norm clipping at 1, noise 0.01 (not scaled by the
                step), 50 DiffAugment views drawn afresh at every step, and the step size of the
                generator's family (5.0 for BigGAN, 0.1 for StyleGAN2 / NVAE and others)

`--langevin` takes a preset name or a JSON object of LangevinConfig fields (applied on top of
the world's defaults): `--langevin reference`, `--langevin '{"steps": 50, "momentum": 0.9}'`.
"""
from __future__ import annotations

import json
from typing import Any

from .augment import AugmentConfig
from .errors import TronError
from .langevin import LangevinConfig

PRESETS = ("world", "reference")


def reference(generator: Any = None) -> LangevinConfig:
    step = float(getattr(generator, "reference_step_size", 0.1))
    return LangevinConfig(steps=100, step_size=step, noise_std=0.01, momentum=0.99, grad_clip=1.0, clamp=None,
                          prior_weight=0.0, augment=AugmentConfig.diffaugment(50))


def langevin_settings(spec: str | dict | None, base: LangevinConfig, generator: Any = None) -> LangevinConfig:
    """A preset name, a JSON object (text or dict) of fields over `base`, or None for `base`."""
    if spec is None or spec == "world":
        return base
    if spec == "reference":
        return reference(generator)
    doc = spec
    if isinstance(spec, str):
        try:
            doc = json.loads(spec)
        except json.JSONDecodeError:
            raise TronError(f"--langevin takes a preset ({', '.join(PRESETS)}) or a JSON object, got {spec!r}") from None
    if not isinstance(doc, dict):
        raise TronError(f"--langevin JSON must be an object of Langevin settings, got {type(doc).__name__}")
    try:
        merged = {**base.to_dict(), **doc}
        if isinstance(doc.get("augment"), dict):
            merged["augment"] = {**base.augment.to_dict(), **doc["augment"]}
        return LangevinConfig.from_dict(merged)
    except (TypeError, ValueError) as exc:
        raise TronError(f"--langevin: {exc}") from None
