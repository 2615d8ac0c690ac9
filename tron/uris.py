"""Where a translator lives: a local directory, or a URI that a plugin turns into one.

`models:/NAME@alias`, `models:/NAME/3` and `runs:/RUN_ID/translator` are MLflow URIs; tron does
not import MLflow itself: resolvers are functions URI -> local directory in the registry RESOLVERS,
named by scheme in the entry-point group `tron.uri_resolvers` (this project's `pipelines` package
provides `models` and `runs`).
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import TronError, one_line
from .registry import Registry

RESOLVERS: Registry = Registry("URI resolver", "tron.uri_resolvers",
                               hint="pip install 'tron[pipelines]', or pass a local directory")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/")


def uri_scheme(spec: str) -> str | None:
    match = _SCHEME.match(spec)
    return match.group(1).lower() if match else None


def local_dir(spec: str | Path) -> Path:
    """A local directory for `spec`, downloading through a registered resolver when needed."""
    spec = str(spec)
    scheme = uri_scheme(spec)
    if scheme is None:
        return Path(spec)
    if scheme == "file":
        return Path(spec[len("file://"):] if spec.startswith("file://") else spec[len("file:"):])
    resolver = RESOLVERS.get(scheme)
    try:
        return Path(resolver(spec))
    except TronError:
        raise
    except Exception as exc:  # a resolver's own failure: name the URI, keep the cause
        raise TronError(f"cannot fetch {spec}: {type(exc).__name__}: {one_line(exc)}") from exc
