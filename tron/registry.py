"""One way to discover parts: a registry is a name -> object table read from one entry-point group.

    group                 names                                   objects
    tron.generators       checkpoint kinds of G (config.json)      Generator classes
    tron.encoders         checkpoint kinds of f                     Encoder classes
    tron.captioners       checkpoint kinds of captioners            Captioner classes
    tron.schemes          adapter specs (SCHEME:ARGS)               tron.specs.Scheme rows
    tron.judges           world.json's "judge": {"kind": ...}       judge classes
    tron.uri_resolvers    URI schemes of translators (models:/)     functions URI -> local directory
    tron.commands         `tron` commands of other packages         functions argv -> exit code

This package declares its own entry points in pyproject.toml and a third-party package adds names
the same way; nothing is imported until a name is asked for. `add` puts an object in by hand (tests,
notebooks). `tron list` prints every registry (tron.cli.REGISTRIES), as open_clip's list_models().
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, group: str, hint: str = "", summary: Callable[[T], str] | None = None) -> None:
        self.what = what  # what a name names, for messages: "generator", "judge", ...
        self.group = group
        self.hint = hint  # appended to a failed lookup: how to get the missing names
        self.summary = summary  # one line about an object for `describe` (default: where it lives)
        self._objects: dict[str, T] = {}  # loaded or added
        self._points: dict[str, EntryPoint] | None = None

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._points is None:
            self._points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._points

    def _fail(self, message: str) -> RegistryError:
        return RegistryError(message + (f"; {self.hint}" if self.hint else ""))

    def add(self, name: str, obj: T) -> T:
        """Register an object by hand under `name`."""
        if self._objects.get(name, obj) is not obj:
            raise RegistryError(f"{self.what} {name!r} is already registered")
        self._objects[name] = obj
        if isinstance(obj, type):
            obj.registry_name = name  # type: ignore[attr-defined]
        return obj

    def get(self, name: str) -> T:
        if name in self._objects:
            return self._objects[name]
        found = self._entry_points().get(name)
        if found is None:
            raise self._fail(f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or 'none'} "
                             f"(from the entry-point group {self.group!r})")
        try:
            obj = found.load()
        except ImportError as exc:
            raise self._fail(f"{self.what} {name!r} needs {found.value}, which cannot be imported: {exc}") from None
        return self.add(name, obj)

    def create(self, name: str, **config: Any):
        """get(name)(**config): a part built by its kind."""
        return self.get(name)(**config)  # type: ignore[operator]

    def names(self) -> list[str]:
        return sorted(set(self._objects) | set(self._entry_points()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._objects or name in self._entry_points()

    def name_of(self, obj: Any, default: str | None = None) -> str:
        """The name `obj` is registered under (an entry point naming its module and attribute, or
        `add`); `default` when it has none, or with no default a RegistryError."""
        for name, known in self._objects.items():
            if known is obj:
                return name
        for name, ep in self._entry_points().items():
            if (ep.module, ep.attr) == (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)):
                return name
        if default is not None:
            return default
        raise RegistryError(f"{getattr(obj, '__qualname__', obj)!s} is not a registered {self.what}: name it in the "
                            f"entry-point group {self.group!r} (or add it by hand)")

    def describe(self) -> dict[str, str]:
        """name -> a line about it: `summary(object)` where one is given and it loads, else "module:attribute"."""
        out = {name: ep.value for name, ep in self._entry_points().items()}
        out.update({name: f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', obj)}"
                    for name, obj in self._objects.items()})
        if self.summary is not None:
            for name in out:
                try:
                    out[name] = self.summary(self.get(name))
                except RegistryError as exc:
                    out[name] = f"not loadable here: {exc}"
        return dict(sorted(out.items()))
