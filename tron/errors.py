"""Errors that tron raises on bad input, each naming the problem in one line, and the two rules
every such line follows: unknown keys are an error (`reject_unknown`, `from_dict`), and another
library's error is quoted by one line of it (`one_line`)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


class TronError(Exception):
    """Base class: a problem with the user's input, files or configuration."""


class ConditionError(TronError, ValueError):
    """A condition (label, embedding, prompt) is malformed or out of range."""


class CheckpointError(TronError):
    """A checkpoint directory is missing, corrupt, or does not match what was asked for."""


class RegistryError(TronError, KeyError):
    """An unknown generator, encoder, judge or zoo name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(TronError):
    """An optional package that an adapter needs is not installed."""


class DatasetError(TronError):
    """A dataset is missing, incomplete, corrupt, or mixes shards of different builds."""


class NonFiniteError(TronError):
    """G or f produced NaN or infinite values."""


class StorageError(TronError):
    """Reading or writing a dataset's or a run's files failed (S3 past its retries, a full disk)."""


def one_line(exc: BaseException, last: bool = False, limit: int = 200) -> str:
    """Another library's error as one line of at most `limit` characters: its first non-empty line
    (the message), or with `last` its last (the cause at the bottom of a remote traceback); its type
    when it says nothing."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if last else lines[0])[:limit] if lines else type(exc).__name__


def reject_unknown(given: Iterable[str], known: Iterable[str], what: str, error: type[Exception] = ValueError) -> None:
    """Unknown keys are an error, not dropped, so that a typo is not silently ignored: the error
    names them and the keys there are. `what` names them in the plural, e.g. "Langevin setting(s)"."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise error(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")


def from_dict(cls: type[T], doc: Any, what: str, error: type[Exception] = ValueError) -> T:
    """A dataclass from a JSON object whose keys must all be its fields (`reject_unknown`)."""
    if not isinstance(doc, dict):
        raise error(f"expected a JSON object of {what}, got {type(doc).__name__}")
    reject_unknown(doc, (f.name for f in fields(cls)), what, error)
    return cls(**doc)
