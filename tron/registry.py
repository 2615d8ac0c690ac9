"""Name → class registries for generators and encoders (architectures are data)."""
from __future__ import annotations

import os
from typing import Any, Callable, Generic, TypeVar

from .checkpoint import read_config, save_checkpoint
from .errors import CheckpointError, RegistryError

T = TypeVar("T")


def freeze(model):
    """Eval mode and no gradients on weights: G and f stay frozen; gradients flow to z only."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Registry(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise RegistryError(f"{self.what} {name!r} is already registered")
            self._entries[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(f"unknown {self.what} {name!r}; registered: {known}") from None

    def create(self, name: str, **config: Any) -> T:
        return self.get(name)(**config)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def save(self, model, directory: str | os.PathLike, metadata: dict | None = None, dtype=None):
        """Checkpoint a registered model under its registry name and constructor config."""
        return save_checkpoint(model, directory, model.registry_name, model.config, metadata, dtype=dtype)

    def load(self, directory: str | os.PathLike, base: type, device="cpu"):
        """Rebuild a frozen model (eval mode, no grad on weights) from a verified checkpoint."""
        doc = read_config(directory)
        cls = self.get(doc["kind"])
        if not issubclass(cls, base):
            raise CheckpointError(f"{directory} holds a {doc['kind']!r}, which is not a {self.what}")
        return freeze(cls.from_checkpoint(directory, doc)).to(device)
