"""A world bundles what sampling needs: G, f, the translators for (G, f), and default settings.

On disk a world is a directory:

    world.json        WorldConfig: name, description, where G, f and the translators are, the
                      Langevin defaults, the translator std scale, the judge, the training recipe
    generator/        config.json + model.safetensors   (or world.json names an adapter spec)
    encoder/          config.json + model.safetensors   (or an adapter spec)
    translator/       config.json + model.safetensors (metadata holds G's and f's fingerprints)
    translator-image/ optional: the translator for image conditions (trained without text noise)

`generator` and `encoder` in world.json are a subdirectory of the world or an adapter spec
(`tron.components`: `biggan:/models/biggan`, `efficientnet:lite0`, ...); a world made from specs
records their fingerprints and refuses to load when the files behind a spec have changed.
`translators` maps a kind of condition ("default", "image") to a subdirectory or a registry URI.
The zoo ships worlds inside the package; `zoo:NAME` names one of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .encoders import MAIN, Encoder
from .errors import CheckpointError, ConditionError, RegistryError
from .generators import Generator
from .langevin import LangevinConfig
from .sampler import Sampler
from .training import TrainingRecipe
from .translator import Translator, load_translator
from .uris import resolve_local_dir, uri_scheme

WORLD_FILE = "world.json"
ZOO_ROOT = Path(__file__).parent / "zoo" / "weights"
DEFAULT = "default"
PARTS = ("generator", "encoder")


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
        unknown = sorted(set(self.translators) - {DEFAULT, "label", "text", "image"})
        if unknown:
            raise ValueError(f"unknown translator kind(s) {', '.join(unknown)}; use default, label, text or image")
        if not self.translator_std_scale > 0:
            raise ValueError(f"translator_std_scale must be > 0, got {self.translator_std_scale!r}")
        if self.judge is not None and not (isinstance(self.judge, dict) and isinstance(self.judge.get("kind"), str)):
            raise ValueError('judge must be an object with a "kind"')
        if set(self.training) & {"translator", "train", "num_pairs"}:  # the one-translator form of earlier worlds
            self.training = {DEFAULT: self.training}
        unknown = sorted(set(self.training) - {DEFAULT, "label", "text", "image"})
        if unknown:
            raise ValueError(f"unknown training kind(s) {', '.join(unknown)}; use default, label, text or image")
        for recipe in self.training.values():
            TrainingRecipe.from_dict(recipe)

    def training_recipe(self, kind: str = DEFAULT) -> TrainingRecipe | None:
        """How this world's translator for `kind` was trained (its "default" one for a kind without its own)."""
        doc = self.training.get(kind, self.training.get(DEFAULT))
        return TrainingRecipe.from_dict(doc) if doc is not None else None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> WorldConfig:
        if not isinstance(doc, dict):
            raise ValueError(f"{WORLD_FILE} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**doc)

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
        from .checkpoint import _atomic_write_bytes

        path = Path(directory) / WORLD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode())
        return path


@dataclass
class World:
    name: str
    generator: Generator
    encoder: Encoder
    translators: dict[str, Translator]  # kind -> translator ("default" is the main one)
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    description: str = ""
    fingerprints: dict[str, str] = field(default_factory=dict)  # {"generator": ..., "encoder": ...}
    translator_std_scale: float = 1.0  # see Sampler
    config: WorldConfig | None = None
    path: Path | None = None

    @property
    def translator(self) -> Translator | None:
        return self.translators.get(DEFAULT)

    def sampler(self, kind: str | None = None) -> Sampler:
        """The sampler for a kind of condition: its translator and the encoder space it lives in."""
        from .conditions import space_of

        space = space_of(self.encoder, kind) if kind else MAIN
        # A translator of its own for the kind, else the default one where it shares its space.
        translator = self.translators.get(kind) if kind in self.translators else (self.translator if space == MAIN else None)
        if translator is None and space != MAIN:
            raise ConditionError(f"{self.name} has no translator for {kind} conditions (f's {space} space)")
        return Sampler(self.generator, self.encoder, translator, self.translator_std_scale, space)


def list_zoo() -> list[str]:
    if not ZOO_ROOT.is_dir():
        return []
    return sorted(p.name for p in ZOO_ROOT.iterdir() if (p / WORLD_FILE).is_file())


def resolve_world_path(spec: str | os.PathLike) -> Path:
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


def part_spec(world_dir: Path, config: WorldConfig, part: str) -> str:
    """The spec `tron.components` loads G or f from: the world's subdirectory, or the adapter spec."""
    value = getattr(config, part)
    if value is None:
        raise CheckpointError(f"the world {config.name!r} ({world_dir}) names no {part}")
    local = world_dir / value
    if (local / "config.json").is_file():
        return str(local)
    # A file an adapter spec names relative to the world (caption-bank:caption_bank.json) lives in it.
    scheme, colon, rest = value.partition(":")
    body, hash_, options = rest.partition("#")
    if colon and body and not Path(body).is_absolute() and (world_dir / body).exists():
        return f"{scheme}:{world_dir / body}{hash_}{options}"
    return value


def check_translator_fits(translator: Translator, fingerprints: dict[str, str], source: Any = "") -> None:
    """Refuse a translator trained for a different G or f, naming which one changed."""
    meta = getattr(translator, "metadata", {}) or {}
    for part in (*PARTS, "captioner"):
        want = meta.get(f"{part}_fingerprint")
        have = fingerprints.get(part)
        if want is not None and have is not None and want != have:
            raise CheckpointError(
                f"translator {source} was trained for a different {part}: its {part} fingerprint is {want}, "
                f"the {part} in use is {have}; retrain the translator for this {part}"
            )


def world_fingerprints(world_dir: Path, config: WorldConfig) -> dict[str, str]:
    """G's and f's fingerprints now; refuses a spec whose files changed since the world was made."""
    from .components import component_fingerprint

    parts = PARTS + (("captioner",) if config.captioner else ())
    fps = {part: component_fingerprint(part_spec(world_dir, config, part), part) for part in parts}
    for part in parts:
        recorded = config.fingerprints.get(part)
        if recorded is not None and recorded != fps[part]:
            raise CheckpointError(f"{world_dir}: the {part} {getattr(config, part)!r} has changed since the world was made "
                                  f"(fingerprint {recorded}, now {fps[part]}); retrain its translators and remake the world")
    return fps


def translator_location(world_dir: Path, value: str) -> Path:
    return resolve_local_dir(value) if uri_scheme(value) is not None else world_dir / value


def load_world(spec: str | os.PathLike, device: str | torch.device = "cpu",
               translator: str | os.PathLike | None = None) -> World:
    """Load a world by `zoo:NAME` or directory; `translator` (a directory or a registry/run URI)
    overrides the bundled default one and must have been trained for this world's G and f."""
    from .components import load_encoder_spec, load_generator_spec

    path = resolve_world_path(spec)
    config = WorldConfig.load(path)
    fps = world_fingerprints(path, config)
    locations = {kind: translator_location(path, value) for kind, value in config.translators.items()}
    if translator is not None:
        locations[DEFAULT] = resolve_local_dir(translator)
    translators = {}
    for kind, where in locations.items():
        if where.exists() or (kind == DEFAULT and translator is not None):
            translators[kind] = load_translator(where, device)
            check_translator_fits(translators[kind], fps, where)
    return World(
        name=config.name,
        generator=load_generator_spec(part_spec(path, config, "generator"), device),
        encoder=load_encoder_spec(part_spec(path, config, "encoder"), device),
        translators=translators,
        langevin=config.langevin,
        description=config.description,
        fingerprints=fps,
        translator_std_scale=config.translator_std_scale,
        config=config,
        path=path,
    )
