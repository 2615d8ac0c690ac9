"""What G, f and a captioner share as the parts of a world: a constructor config that rebuilds them,
the device they live on, and the checkpoint round trip through their registry (tron.registry).

A checkpoint's config.json names the part's kind, the registry finds the class, and the class
rebuilds itself with `from_checkpoint` (classes that wrap other libraries override it). Loaded parts
are frozen: eval mode, no gradients on weights; gradients flow to z only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .checkpoint import load_into, load_state, read_config, save_checkpoint
from .errors import CheckpointError
from .registry import Registry

P = TypeVar("P", bound="Part")


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients on weights: G and f stay frozen; gradients flow to z only."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Part(nn.Module):
    """Base of Generator, Encoder and Captioner."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)  # the constructor's arguments: config.json's "config"

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @classmethod
    def from_checkpoint(cls: type[P], directory: str | os.PathLike, doc: dict[str, Any]) -> P:
        """Build from a verified checkpoint; classes that wrap other libraries override this."""
        return load_into(cls(**doc["config"]), load_state(directory, doc), directory)


def save_part(model: Part, registry: Registry, directory: str | os.PathLike, metadata: dict | None = None,
              dtype: torch.dtype | None = None) -> Path:
    """Checkpoint a part under the kind its class is registered as, with its constructor config."""
    return save_checkpoint(model, directory, registry.name_of(type(model)), model.config, metadata, dtype=dtype)


def load_part(registry: Registry, base: type[P], directory: str | os.PathLike, device: str | torch.device = "cpu") -> P:
    """Rebuild a frozen part from a verified checkpoint of one of the registry's kinds, a `base`."""
    doc = read_config(directory)
    cls = registry.get(doc["kind"])
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise CheckpointError(f"{directory} holds a {doc['kind']!r}, which is not a {registry.what}")
    return freeze(cls.from_checkpoint(directory, doc)).to(device)
