"""The stage every recipe ends with: a translator fitted on the world's own pairs, saved into the
world with G's and f's fingerprints, and the record of how it was trained for world.json."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import fingerprint
from ..training import TrainConfig, TrainingRecipe, train_translator
from ..translator import Translator, save_translator


def train_world_translator(out: Path, z: np.ndarray, c: np.ndarray, recipe: TrainingRecipe, log: Callable[[str], None],
                           metadata: dict[str, Any] | None = None) -> tuple[Translator, dict]:
    """A translator for the world in `out`, trained on its pairs (z, c) in row order; its metadata
    holds the world's G's and f's fingerprints and `metadata`."""
    fps = {"generator_fingerprint": fingerprint(out / "generator"), "encoder_fingerprint": fingerprint(out / "encoder")}
    return train_translator(z, c, recipe, {**(metadata or {}), **fps}, log)


def save_world_translator(out: Path, directory: str, translator: Translator, meta: dict) -> dict:
    """Save into out/directory; returns the translator's world.json "training" record."""
    save_translator(translator, out / directory, metadata=meta)
    return TrainingRecipe.of(translator.config, TrainConfig(**meta["train_config"]), meta["pairs"]).to_dict()


def fit_world_translator(out: Path, z: np.ndarray, c: np.ndarray, recipe: TrainingRecipe, log: Callable[[str], None],
                         directory: str = "translator", metadata: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Both: returns (the translator's metadata, its world.json "training" record)."""
    translator, meta = train_world_translator(out, z, c, recipe, log, metadata)
    return meta, save_world_translator(out, directory, translator, meta)
