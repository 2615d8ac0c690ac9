"""Verified checkpoints: a directory with `config.json` + `model.safetensors`.

config.json carries everything needed to rebuild the module (its registry `kind` and
constructor `config`), free-form `metadata`, and the SHA-256 of the weights file, so that
loading needs nothing else and a truncated or altered file is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .files import atomic_replace, atomic_write, file_sha256

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def save_checkpoint(
    module: torch.nn.Module,
    directory: str | os.PathLike,
    kind: str,
    config: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write weights then config (the config, holding the weights' hash, makes it complete)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    weights = atomic_replace(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp))
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "metadata": metadata or {},
        "weights_sha256": file_sha256(weights),
    }
    atomic_write(directory / CONFIG_NAME, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {CONFIG_NAME}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    for key in ("format_version", "kind", "config", "weights_sha256"):
        if not isinstance(doc, dict) or key not in doc:
            raise CheckpointError(f"{path} is missing the field {key!r}")
    if doc["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {doc['format_version']}, expected {FORMAT_VERSION}")
    return doc


def load_state(directory: str | os.PathLike, doc: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Load the weights, verifying the file hash recorded in config.json."""
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {exc}") from exc
    if file_sha256(weights) != doc["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the SHA-256 in {CONFIG_NAME}: the file is corrupt or was replaced")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> torch.nn.Module:
    """Copy weights into a freshly built module, checking names and shapes first."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {source} do not fit the configured model: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"weights in {source}: {name} has shape {tuple(state[name].shape)}, "
                f"the config implies {tuple(tensor.shape)}"
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return module


def load_checkpoint(directory: str | os.PathLike, kind: str, build: Callable[[dict[str, Any]], torch.nn.Module]):
    """A checkpoint of one fixed kind (a translator, an instrument; not a registry's part): the
    module `build(config)` makes, with the verified weights and `.metadata` attached."""
    doc = read_config(directory)
    if doc["kind"] != kind:
        raise CheckpointError(f"{directory} holds a {doc['kind']!r}, not a {kind}")
    module = load_into(build(doc["config"]), load_state(directory, doc), directory)
    module.metadata = dict(doc.get("metadata", {}))
    return module


def fingerprint(directory: str | os.PathLike) -> str:
    """Content hash of a checkpoint: its kind, config and weights (not its free-form metadata)."""
    doc = read_config(directory)
    payload = json.dumps({"kind": doc["kind"], "config": doc["config"], "weights": doc["weights_sha256"]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
