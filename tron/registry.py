"""Name → class registries for generators and encoders (architectures are data).

A checkpoint's `kind` names its class. Classes are found through entry points (group
`tron.generators` or `tron.encoders`, `kind = "module.path:Class"`): this package declares its own
in pyproject.toml, and a third-party package adds kinds the same way. Nothing is imported until a
kind is asked for; `register` adds a class by hand (tests, notebooks).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

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
    def __init__(self, what: str, group: str) -> None:
        self.what = what
        self.group = group  # the entry-point group listing this registry's kinds
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise RegistryError(f"{self.what} {name!r} is already registered")
            self._entries[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def get(self, name: str) -> type[T]:
        if name in self._entries:
            return self._entries[name]
        found = self._entry_points().get(name)
        if found is None:
            raise RegistryError(f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or 'none'} "
                                f"(kinds come from the entry-point group {self.group!r})")
        try:
            cls = found.load()
        except ImportError as exc:
            raise RegistryError(f"{self.what} {name!r} needs {found.value}, which cannot be imported: {exc}") from None
        self._entries.setdefault(name, cls)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._entry_points()))

    def describe(self) -> dict[str, str]:
        """kind -> "module:Class" (without importing anything)."""
        out = {ep.name: ep.value for ep in self._entry_points().values()}
        out.update({k: f"{c.__module__}:{c.__qualname__}" for k, c in self._entries.items()})
        return dict(sorted(out.items()))

    def create(self, name: str, **config: Any) -> T:
        return self.get(name)(**config)

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
