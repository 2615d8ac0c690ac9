"""Where a translator lives: a local directory, or a URI that a plugin turns into one.

`models:/NAME@alias`, `models:/NAME/3` and `runs:/RUN_ID/translator` are MLflow URIs; tron does
not import MLflow itself: resolvers are plugins registered under the entry-point group
`tron.uri_resolvers`, keyed by scheme (this project's `pipelines` package provides `models`
and `runs`). A resolver takes the URI and returns a local directory.
"""
from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

from .errors import TronError

ENTRY_POINT_GROUP = "tron.uri_resolvers"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")


def uri_scheme(spec: str) -> str | None:
    match = _SCHEME.match(spec)
    return match.group(1).lower() if match else None


def resolve_local_dir(spec: str | Path) -> Path:
    """A local directory for `spec`, downloading through a registered resolver when needed."""
    spec = str(spec)
    scheme = uri_scheme(spec)
    if scheme is None:
        return Path(spec)
    if scheme == "file":
        return Path(spec[len("file://"):] if spec.startswith("file://") else spec[len("file:"):])
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not found:
        raise TronError(f"no resolver for {scheme}:/ URIs (entry-point group {ENTRY_POINT_GROUP!r}); "
                        "pip install 'tron[pipelines]', or pass a local directory")
    try:
        return Path(found[0].load()(spec))
    except TronError:
        raise
    except Exception as exc:  # a resolver's own failure: name the URI, keep the cause
        raise TronError(f"cannot fetch {spec}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
