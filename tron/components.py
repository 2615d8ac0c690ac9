"""Generators, encoders and captioners named by a spec: the one way the command line, the pipelines
and world.json name a part, and the one way it is loaded and fingerprinted.

    zoo:NAME              that zoo world's G, f or captioner
    DIR                   a tron checkpoint directory (config.json + model.safetensors), or a world
    SCHEME:ARGS[#OPTIONS] an adapter spec (tron.specs; `tron list` prints the schemes)

Weights files are read as safetensors or with torch.load(weights_only=True); the `#allow_pickle=true`
option (or `allow_pickle=True`) lifts that for files whose source the user trusts. A spec's
fingerprint is recorded in datasets, translators and worlds, which refuse parts that changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .captioners import Captioner, load_captioner
from .checkpoint import CONFIG_NAME, fingerprint
from .encoders import Encoder, load_encoder
from .errors import CheckpointError
from .generators import Generator, load_generator
from .parts import freeze
from .specs import PARTS, SCHEMES, AdapterSpec, adapter_fingerprint, check_adapter, parse_adapter_spec
from .world_config import WorldConfig, is_world, locate_world

LOADERS = {"generator": load_generator, "encoder": load_encoder, "captioner": load_captioner}
BASES = {"generator": Generator, "encoder": Encoder, "captioner": Captioner}


def component_spec(spec: str, part: str) -> str:
    """The spec of the part itself: zoo:NAME and world directories stand for their world's part (a
    checkpoint directory, or the adapter spec in its world.json). Anything else is returned as it is."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    if is_world(spec):
        root = locate_world(spec)
        return WorldConfig.load(root).part_spec(root, part)
    return spec


def component_dir(spec: str, part: str) -> Path:
    """The checkpoint directory a spec names (for G or f that are tron checkpoints)."""
    path = Path(component_spec(spec, part))
    if (path / CONFIG_NAME).is_file():
        return path
    raise CheckpointError(f"{spec} is not a {part} checkpoint directory (no {CONFIG_NAME}), zoo:NAME, "
                          f"nor an adapter spec ({', '.join(s + ':' for s in SCHEMES)})")


def _resolved(spec: str, part: str) -> tuple[str, AdapterSpec | None]:
    """(the spec of the part itself, its adapter, or None for a checkpoint directory)."""
    spec = component_spec(spec, part)
    adapter = parse_adapter_spec(spec)
    return (spec, adapter) if adapter is not None else (str(component_dir(spec, part)), None)


def is_checkpoint(spec: str, part: str) -> bool:
    """Whether the spec names a tron checkpoint directory (which a world copies in), not an adapter."""
    return _resolved(spec, part)[1] is None


def component_fingerprint(spec: str, part: str) -> str:
    """Content hash of a part: a checkpoint's kind, config and weights; for an adapter spec, its
    scheme, options and names with the SHA-256 of its files (tron.specs.adapter_fingerprint)."""
    spec, adapter = _resolved(spec, part)
    if adapter is None:
        return fingerprint(spec)
    check_adapter(adapter, part, spec)
    return adapter_fingerprint(adapter)


def _load(spec: str, part: str, device: str | torch.device, allow_pickle: bool, **context: Any):
    spec, adapter = _resolved(spec, part)
    if adapter is None:
        return LOADERS[part](spec, device)
    row = check_adapter(adapter, part, spec)
    options = dict(adapter.options)
    pickle_ok = bool(options.pop("allow_pickle", False)) or allow_pickle
    model = row.load(AdapterSpec(adapter.scheme, adapter.args, options), pickle_ok, part, **context)
    if not isinstance(model, BASES[part]):
        raise CheckpointError(f"{spec!r} made a {type(model).__name__}, which is not a tron {part}")
    return freeze(model).to(device)


def load_generator_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Generator:
    return _load(spec, "generator", device, allow_pickle)


def load_encoder_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Encoder:
    return _load(spec, "encoder", device, allow_pickle)


def load_captioner_spec(spec: str, encoder: Encoder, device: str | torch.device = "cpu",
                        allow_pickle: bool = False) -> Captioner:
    """A captioner by spec; `encoder` is the build's f (a caption bank ranks its captions with it)."""
    return _load(spec, "captioner", device, allow_pickle, encoder=encoder)
