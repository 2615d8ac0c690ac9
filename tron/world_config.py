"""world.json: what a world directory holds, as data (tron.world loads the world it describes).

On disk a world is a directory:

    world.json        WorldConfig: name, description, where G, f and the translators are, the
                      Langevin defaults, the translator std scale, the judge, the training recipe
    generator/        config.json + model.safetensors   (or world.json names an adapter spec)
    encoder/          config.json + model.safetensors   (or an adapter spec)
    translator/       config.json + model.safetensors (metadata holds G's and f's fingerprints)
    translator-image/ optional: the translator for image conditions (trained without text noise)

`generator` and `encoder` in world.json are a subdirectory of the world or an adapter spec
(tron.specs: `biggan:/models/biggan`, `efficientnet:lite0`, ...); a world made from specs
records their fingerprints and refuses to load when the files behind a spec have changed.
`translators` maps a kind of condition ("default", "image") to a subdirectory or a registry URI.
The zoo ships worlds inside the package; `zoo:NAME` names one of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import CONFIG_NAME
from .errors import CheckpointError, RegistryError, from_dict, reject_unknown
from .files import atomic_write
from .langevin import LangevinConfig
from .training import TrainingRecipe

WORLD_FILE = "world.json"
ZOO_ROOT = Path(__file__).parent / "zoo" / "weights"
DEFAULT = "default"
TRANSLATOR_KINDS = (DEFAULT, "label", "text", "image")  # a world's translators, one per kind of condition


@dataclass
class WorldConfig:
    """world.json. Unknown keys are an error, so a typo is not silently ignored."""

    name: str
    description: str = ""
    generator: str = "generator"  # a subdirectory of the world, or an adapter spec
    encoder: str = "encoder"
    captioner: str | None = None  # the captioner of its captioned pairs (a subdirectory or a spec), if it has one
    translators: dict[str, str] = field(default_factory=lambda: {DEFAULT: "translator"})  # kind -> dir or URI
    langevin: LangevinConfig = field(default_factory=LangevinConfig)  # sampling defaults
    translator_std_scale: float = 1.0  # z0 drawn with the mixture's shared std times this (see Sampler)
    judge: dict[str, Any] | None = None  # {"kind": ..., options}: the measuring instrument (tron.judges)
    training: dict[str, Any] = field(default_factory=dict)  # kind -> TrainingRecipe of that translator (tron.training)
    fingerprints: dict[str, str] = field(default_factory=dict)  # recorded for spec-based parts
    metrics: dict[str, Any] = field(default_factory=dict)  # measured facts about the parts (held-out accuracy, ...)

    def __post_init__(self) -> None:
        if isinstance(self.langevin, dict):
            self.langevin = LangevinConfig.from_dict(self.langevin)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a world needs a name")
        if not isinstance(self.translators, dict) or not all(isinstance(v, str) for v in self.translators.values()):
            raise ValueError("translators must map a kind of condition to a directory or URI")
        reject_unknown(self.translators, TRANSLATOR_KINDS, "translator kind(s)")
        if not self.translator_std_scale > 0:
            raise ValueError(f"translator_std_scale must be > 0, got {self.translator_std_scale!r}")
        if self.judge is not None and not (isinstance(self.judge, dict) and isinstance(self.judge.get("kind"), str)):
            raise ValueError('judge must be an object with a "kind"')
        if set(self.training) & {"translator", "train", "num_pairs"}:  # the one-translator form of earlier worlds
            self.training = {DEFAULT: self.training}
        reject_unknown(self.training, TRANSLATOR_KINDS, "training kind(s)")
        for recipe in self.training.values():
            TrainingRecipe.from_dict(recipe)

    def training_recipe(self, kind: str = DEFAULT) -> TrainingRecipe | None:
        """How this world's translator for `kind` was trained (its "default" one for a kind without its own)."""
        doc = self.training.get(kind, self.training.get(DEFAULT))
        return TrainingRecipe.from_dict(doc) if doc is not None else None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> WorldConfig:
        return from_dict(cls, doc, "field(s)")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> WorldConfig:
        path = Path(directory) / WORLD_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["langevin"] = self.langevin.to_dict()
        return doc

    def save(self, directory: str | os.PathLike) -> Path:
        return atomic_write(Path(directory) / WORLD_FILE, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def part_spec(self, directory: Path, part: str) -> str:
        """The spec tron.components loads the world's G, f or captioner from: the world's
        subdirectory, or the adapter spec (a file it names relative to the world lives in it)."""
        value = getattr(self, part)
        if value is None:
            raise CheckpointError(f"the world {self.name!r} ({directory}) names no {part}")
        local = directory / value
        if (local / CONFIG_NAME).is_file():
            return str(local)
        scheme, colon, rest = value.partition(":")
        body, hash_, options = rest.partition("#")
        if colon and body and not Path(body).is_absolute() and (directory / body).exists():
            return f"{scheme}:{directory / body}{hash_}{options}"
        return value


def list_zoo() -> list[str]:
    if not ZOO_ROOT.is_dir():
        return []
    return sorted(p.name for p in ZOO_ROOT.iterdir() if (p / WORLD_FILE).is_file())


def locate_world(spec: str | os.PathLike) -> Path:
    """'zoo:digits' -> the packaged directory; anything else is a directory path."""
    spec = str(spec)
    if spec.startswith("zoo:"):
        name = spec[4:]
        path = ZOO_ROOT / name
        if not (path / WORLD_FILE).is_file():
            raise RegistryError(f"unknown zoo world {name!r}; available: {', '.join(list_zoo()) or 'none'}")
        return path
    path = Path(spec)
    if not (path / WORLD_FILE).is_file():
        raise CheckpointError(f"{spec} is not a world directory (no {WORLD_FILE}); use zoo:NAME or a directory")
    return path


def is_world(spec: str) -> bool:
    """Whether a spec names a world (zoo:NAME or a directory with a world.json) rather than one part."""
    return spec.startswith("zoo:") or (Path(spec) / WORLD_FILE).is_file()
