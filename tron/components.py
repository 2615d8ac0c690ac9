"""Generators and encoders named by a spec: `zoo:NAME` (that zoo world's G or f) or a checkpoint
directory. The pipelines use these names on the command line and record them in datasets."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import fingerprint
from .encoders import Encoder, load_encoder
from .errors import CheckpointError
from .generators import Generator, load_generator
from .world import _import_zoo_models, resolve_world_path

PARTS = ("generator", "encoder")


def component_dir(spec: str, part: str) -> Path:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    if spec.startswith("zoo:"):
        return resolve_world_path(spec) / part
    path = Path(spec)
    if (path / "config.json").is_file():
        return path
    if (path / part / "config.json").is_file():  # a world directory
        return path / part
    raise CheckpointError(f"{spec} is not a {part} checkpoint directory (no config.json) nor zoo:NAME")


def component_fingerprint(spec: str, part: str) -> str:
    return fingerprint(component_dir(spec, part))


def load_generator_spec(spec: str, device: str | torch.device = "cpu") -> Generator:
    _import_zoo_models()
    return load_generator(component_dir(spec, "generator"), device)


def load_encoder_spec(spec: str, device: str | torch.device = "cpu") -> Encoder:
    _import_zoo_models()
    return load_encoder(component_dir(spec, "encoder"), device)
