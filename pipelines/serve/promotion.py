"""Following promotions in the MLflow registry: which version an alias names, and that version as a
local directory.

A sampler started with translator models:/NAME@alias re-resolves the alias every
`reload_interval_s`; a new version is downloaded and checked against the live G and f in a thread
(ServedModel.fetch_promoted), then swapped in between batches (ServedModel.apply).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tron.uris import local_dir


def registry_reference(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/NAME@alias -> (NAME, None, alias); models:/NAME/3 -> (NAME, "3", None); else None."""
    if not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, None, alias
    name, _, version = rest.rpartition("/")
    return (name, version, None) if name and version.isdigit() else None


def alias_version(name: str, alias: str) -> str:
    """The version a registry alias names now (one call to MLFLOW_TRACKING_URI)."""
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)


def fetch_translator(spec: str, version: str | None = None) -> tuple[Path, dict[str, Any]]:
    """A local translator directory for `spec`, and where it came from.

    An alias is resolved to its version number first (unless the caller did: `version`) and that
    version is downloaded, so the version a replica reports is the one it loaded even if the
    alias moves meanwhile."""
    info: dict[str, Any] = {"source": spec}
    ref = registry_reference(spec)
    if ref is not None:
        name, fixed, alias = ref
        version = fixed or version or alias_version(name, alias)
        info.update(registered_model=name, registry_version=str(version), alias=alias)
        spec = f"models:/{name}/{version}"
    return local_dir(spec), info


@dataclass
class Reload:
    """What a check of the translator's alias found (ServedModel.fetch_promoted -> apply)."""

    version: str | None  # the version the alias names; None if the registry could not say
    translator: Any = None  # that version, loaded and checked against G and f: ready to swap in
    sampler: Any = None
    source: dict[str, Any] | None = None
    fingerprint: str | None = None
    error: str | None = None  # why it cannot be served
    final: bool = False  # the version itself is unusable (not a failed download): do not fetch it again
