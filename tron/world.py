"""A world bundles what sampling needs: G, f, the translators for (G, f), and default settings.

A world directory is described by its world.json (tron.world_config, which draws the layout);
`load_world` loads one, checking that each translator was trained for exactly this G and f, and
`create_world` (`tron world create`) makes one from a user's own G and f:

    create_world(DIR, generator=SPEC, encoder=SPEC [, translator=DIR|models:/NAME@alias,
                 image_translator=..., langevin=PRESET_OR_JSON, judge={...}])

G and f are specs (tron.components): an adapter spec (`biggan:/models/biggan#truncation=0.4`,
`efficientnet:lite0`, ...), zoo:NAME or a tron checkpoint directory. An adapter spec is recorded as
it is, with its fingerprint (the world refuses to load once the files behind it change); a
checkpoint directory is copied in. A translator directory is copied in, a registry URI recorded
(the world follows the registry); either must have been trained for exactly this G and f.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .components import component_fingerprint, component_spec, is_checkpoint, load_encoder_spec, load_generator_spec
from .conditions import space_of
from .encoders import MAIN, Encoder
from .errors import CheckpointError, ConditionError, TronError
from .generators import Generator
from .langevin import LangevinConfig
from .presets import langevin_settings
from .sampler import Sampler
from .translator import Translator, load_translator
from .uris import local_dir, uri_scheme
from .world_config import DEFAULT, WorldConfig, locate_world

PARTS = ("generator", "encoder", "captioner")  # the parts a translator records the fingerprints of
VERIFIED = ("generator", "encoder")  # what a translator must record to be checked at all (a captioner only if used)
ACCEPT_UNVERIFIED = "--accept-unverified-translator"  # the flag (Serve: accept_unverified_translator) that takes one anyway
log = logging.getLogger(__name__)


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
        space = space_of(self.encoder, kind) if kind else MAIN
        # A translator of its own for the kind, else the default one where it shares its space.
        translator = self.translators.get(kind) if kind in self.translators else (self.translator if space == MAIN else None)
        if translator is None and space != MAIN:
            raise ConditionError(f"{self.name} has no translator for {kind} conditions (f's {space} space)")
        return Sampler(self.generator, self.encoder, translator, self.translator_std_scale, space)


def missing_fingerprints(translator: Translator) -> list[str]:
    """The parts of VERIFIED whose fingerprint the translator does not record ([]: it can be checked)."""
    meta = getattr(translator, "metadata", {}) or {}
    return [part for part in VERIFIED if not meta.get(f"{part}_fingerprint")]


def check_translator_fits(translator: Translator, fingerprints: dict[str, str], source: Any = "",
                          accept_unverified: bool = False) -> None:
    """Refuse a translator trained for a different G or f, naming which one changed; and one that
    records no G or f fingerprint, since it cannot be checked (unless `accept_unverified`: then it is
    used with a warning line, on every use)."""
    meta = getattr(translator, "metadata", {}) or {}
    missing = missing_fingerprints(translator)
    if missing:
        what = f"no {' and no '.join(missing)} fingerprint"
        if not accept_unverified:
            raise CheckpointError(f"translator {source} records {what}, so it cannot be checked against the G and f in "
                                  f"use; use one made by the pipeline or a recipe, or pass {ACCEPT_UNVERIFIED} to use it unchecked")
        log.warning(f"warning: translator {source} records {what}: used UNVERIFIED ({ACCEPT_UNVERIFIED})")
    for part in PARTS:
        want = meta.get(f"{part}_fingerprint")
        have = fingerprints.get(part)
        if want is not None and have is not None and want != have:
            raise CheckpointError(
                f"translator {source} was trained for a different {part}: its {part} fingerprint is {want}, "
                f"the {part} in use is {have}; retrain the translator for this {part}"
            )


def world_fingerprints(directory: Path, config: WorldConfig) -> dict[str, str]:
    """The parts' fingerprints now; refuses a spec whose files changed since the world was made."""
    parts = [part for part in PARTS if getattr(config, part)]
    fps = {part: component_fingerprint(config.part_spec(directory, part), part) for part in parts}
    for part in parts:
        recorded = config.fingerprints.get(part)
        if recorded is not None and recorded != fps[part]:
            raise CheckpointError(f"{directory}: the {part} {getattr(config, part)!r} has changed since the world was made "
                                  f"(fingerprint {recorded}, now {fps[part]}); retrain its translators and remake the world")
    return fps


def translator_location(directory: Path, value: str) -> Path:
    """Where a world's translator lives: a subdirectory, or a URI (fetched into a local directory)."""
    return local_dir(value) if uri_scheme(value) is not None else directory / value


def load_world(spec: str | os.PathLike, device: str | torch.device = "cpu",
               translator: str | os.PathLike | None = None, accept_unverified: bool = False,
               translator_kind: str = DEFAULT) -> World:
    """Load a world by `zoo:NAME` or directory; `translator` (a directory or a registry/run URI)
    overrides the bundled one for `translator_kind` conditions (default: the main one) and must have
    been trained for this world's G and f (see check_translator_fits for `accept_unverified`)."""
    path = locate_world(spec)
    config = WorldConfig.load(path)
    fps = world_fingerprints(path, config)
    locations = {kind: translator_location(path, value) for kind, value in config.translators.items()}
    if translator is not None:
        locations[translator_kind] = local_dir(translator)
    translators = {}
    for kind, where in locations.items():
        if where.exists() or (kind == translator_kind and translator is not None):
            translators[kind] = load_translator(where, device)
            check_translator_fits(translators[kind], fps, where, accept_unverified)
    return World(
        name=config.name,
        generator=load_generator_spec(config.part_spec(path, "generator"), device),
        encoder=load_encoder_spec(config.part_spec(path, "encoder"), device),
        translators=translators,
        langevin=config.langevin,
        description=config.description,
        fingerprints=fps,
        translator_std_scale=config.translator_std_scale,
        config=config,
        path=path,
    )


def create_world(directory: str | Path, generator: str, encoder: str, translator: str | None = None,
                 image_translator: str | None = None, langevin: str | dict | None = None, translator_std_scale: float = 1.0,
                 judge: dict | None = None, name: str | None = None, description: str = "",
                 allow_pickle: bool = False, accept_unverified: bool = False) -> WorldConfig:
    """Write a world directory that refers to G, f and translators (see the module's docstring);
    returns its WorldConfig. Nothing is written unless every part loads and every translator fits
    (or, with `accept_unverified`, records no fingerprints to check: see check_translator_fits)."""
    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TronError(f"{out} exists and is not empty: give a new directory")
    g = load_generator_spec(generator, allow_pickle=allow_pickle)  # fail here, in one line, on bad specs
    f = load_encoder_spec(encoder, allow_pickle=allow_pickle)
    fps = {"generator": component_fingerprint(generator, "generator"), "encoder": component_fingerprint(encoder, "encoder")}
    parts: dict[str, str] = {}
    staged: list[tuple[Path, str]] = []  # (source directory, name in the world)
    for part, spec in (("generator", generator), ("encoder", encoder)):
        inner = component_spec(spec, part)
        if is_checkpoint(inner, part):  # copied in
            staged.append((Path(inner), part))
            parts[part] = part
        else:
            parts[part] = inner
    translators: dict[str, str] = {}
    probe = World(name or out.name, g, f, {})
    for kind, spec in ((DEFAULT, translator), ("image", image_translator)):
        if spec is None:
            continue
        local = local_dir(spec)
        t = load_translator(local)
        check_translator_fits(t, fps, spec, accept_unverified)
        probe.translators = {kind: t}
        probe.sampler(None if kind == DEFAULT else kind)  # the dimensions fit G and f's space
        if uri_scheme(spec) is None:
            staged.append((local, "translator" if kind == DEFAULT else "translator-image"))
            translators[kind] = staged[-1][1]
        else:
            translators[kind] = spec
    try:
        config = WorldConfig(
            name=name or out.name, description=description, generator=parts["generator"], encoder=parts["encoder"],
            # With no translator yet, where train_translator.py's export can be put later.
            translators=translators or {DEFAULT: "translator"},
            langevin=langevin_settings(langevin, LangevinConfig(), g), translator_std_scale=translator_std_scale,
            judge=judge, fingerprints=fps)
    except ValueError as exc:
        raise TronError(f"the world's settings: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    for source, target in staged:
        shutil.copytree(source, out / target)
    config.save(out)
    return config
