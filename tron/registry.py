"""Name → class registries for generators and encoders (architectures are data)."""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


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
