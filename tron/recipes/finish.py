"""The stage every recipe ends with: a translator fitted on the world's own pairs, saved into the
world with G's and f's fingerprints, and the record of how it was trained for world.json."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import fingerprint
from ..training import TrainConfig, TrainingRecipe, train_translator
from ..translator import save_translator


def fit_world_translator(out: Path, z: np.ndarray, c: np.ndarray, recipe: TrainingRecipe, log: Callable[[str], None],
                         directory: str = "translator", metadata: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Train on pairs (z, c) in row order; save into out/directory. Returns (the translator's
    metadata, its world.json "training" record). `metadata` goes into the translator's too."""
    fps = {"generator_fingerprint": fingerprint(out / "generator"), "encoder_fingerprint": fingerprint(out / "encoder")}
    translator, meta = train_translator(z, c, recipe, {**(metadata or {}), **fps}, log)
    save_translator(translator, out / directory, metadata=meta)
    record = TrainingRecipe.of(translator.config, TrainConfig(**meta["train_config"]), meta["pairs"]).to_dict()
    return meta, record
