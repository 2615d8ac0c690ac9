"""A world bundles what sampling needs: G, f, the translator for (G, f), and default settings.

On disk a world is a directory:

    world.json        {"name", "description", "langevin": {...}, "translator_std_scale", "batch_size"}
    generator/        config.json + model.safetensors
    encoder/          config.json + model.safetensors
    translator/       config.json + model.safetensors (metadata holds G's and f's fingerprints)

The zoo ships worlds inside the package; `zoo:NAME` names one of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .checkpoint import fingerprint
from .encoders import Encoder, load_encoder
from .errors import CheckpointError, RegistryError
from .generators import Generator, load_generator
from .langevin import LangevinConfig
from .sampler import Sampler
from .translator import Translator, load_translator
from .uris import resolve_local_dir

WORLD_FILE = "world.json"
ZOO_ROOT = Path(__file__).parent / "zoo" / "weights"


@dataclass
class World:
    name: str
    generator: Generator
    encoder: Encoder
    translator: Translator | None
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    description: str = ""
    fingerprints: dict[str, str] = field(default_factory=dict)  # {"generator": ..., "encoder": ...}
    translator_std_scale: float = 1.0  # see Sampler

    def sampler(self) -> Sampler:
        return Sampler(self.generator, self.encoder, self.translator, self.translator_std_scale)


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


def _import_zoo_models() -> None:
    # Registers the zoo's generator and encoder classes by name.
    from . import adapters, clip  # noqa: F401  (adapters: zoo worlds such as digits-cm use their kinds)
    from .zoo import digits, shapes  # noqa: F401


def check_translator_fits(translator: Translator, fingerprints: dict[str, str], source: Any = "") -> None:
    """Refuse a translator trained for a different G or f, naming which one changed."""
    meta = getattr(translator, "metadata", {}) or {}
    for part in ("generator", "encoder"):
        want = meta.get(f"{part}_fingerprint")
        have = fingerprints.get(part)
        if want is not None and have is not None and want != have:
            raise CheckpointError(
                f"translator {source} was trained for a different {part}: its {part} fingerprint is {want}, "
                f"the {part} in use is {have}; retrain the translator for this {part}"
            )


def load_world(spec: str | os.PathLike, device: str | torch.device = "cpu",
               translator: str | os.PathLike | None = None) -> World:
    """Load a world by `zoo:NAME` or directory; `translator` (a directory or a registry/run URI)
    overrides the bundled one and must have been trained for this world's G and f."""
    _import_zoo_models()
    path = resolve_world_path(spec)
    try:
        doc = json.loads((path / WORLD_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / WORLD_FILE} is not valid JSON: {exc}") from exc
    known = {f.name for f in fields(LangevinConfig)}
    langevin = LangevinConfig(**{k: v for k, v in doc.get("langevin", {}).items() if k in known})
    fps = {"generator": fingerprint(path / "generator"), "encoder": fingerprint(path / "encoder")}
    # A directory, or a URI (models:/NAME@champion, runs:/ID/translator) that a plugin downloads.
    translator_dir = resolve_local_dir(translator) if translator is not None else path / "translator"
    trans = load_translator(translator_dir, device) if translator_dir.exists() or translator is not None else None
    if trans is not None:
        check_translator_fits(trans, fps, translator_dir)
    return World(
        name=doc.get("name", path.name),
        generator=load_generator(path / "generator", device),
        encoder=load_encoder(path / "encoder", device),
        translator=trans,
        langevin=langevin,
        description=doc.get("description", ""),
        fingerprints=fps,
        translator_std_scale=float(doc.get("translator_std_scale", 1.0)),
    )
