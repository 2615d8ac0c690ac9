"""Adapter specs: how a model from another library is named on the command line and in world.json,
and fingerprinted.

    SCHEME:ARGS[#OPTIONS]     e.g. biggan:/models/biggan-128#truncation=0.4,z_clamp=2

A scheme is a row (`Scheme`) in the registry SCHEMES, whose names come from the entry-point group
`tron.schemes` (each adapter module declares its row; `tron list` prints them). A spec is parsed
here and loaded by tron.components. Options follow a '#'; `allow_pickle=true` lets a scheme read
pickled weights files the user trusts.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TronError
from .registry import Registry

PARTS = ("generator", "encoder", "captioner")
PLUGIN = "plugin"
PLUGIN_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")  # module.path:factory


@dataclass
class AdapterSpec:
    scheme: str  # a name in SCHEMES
    args: list[str]  # e.g. ["ViT-B-32", "laion2b_s34b_b79k"] or ["/models/biggan"]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scheme:
    """One row of the table: what a spec names, how it is written, loaded and fingerprinted."""

    name: str
    part: str | None  # "generator", "encoder", "captioner", or None for any
    usage: str
    summary: str
    args: tuple[int, ...]  # how many ':'-separated arguments the spec may have after the scheme
    options: tuple[str, ...] | None  # the options it takes (None: any, passed to the factory)
    load: Callable[..., Any]  # load(spec, allow_pickle, part, **context) -> model
    files: Callable[[AdapterSpec], dict[str, str]]  # content hashes of the files that define the model
    hash_names: bool = False  # whether the spec's names (an architecture, a tag) identify the model too

    def line(self) -> str:
        """For `tron list`."""
        part = {None: "any part", "generator": "G", "encoder": "f"}.get(self.part, self.part)
        return f"{self.usage:<48} {part:<9} {self.summary}"


SCHEMES: Registry[Scheme] = Registry("adapter scheme", "tron.schemes", summary=Scheme.line)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_adapter_spec(spec: str) -> AdapterSpec | None:
    """An AdapterSpec, or None for zoo:NAME and checkpoint directories."""
    body, _, opts = spec.partition("#")
    options = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise TronError(f"bad option {item!r} in {spec!r}: write key=value")
        options[key.strip().replace("-", "_")] = _value(value.strip())
    scheme, colon, rest = body.partition(":")
    if scheme in SCHEMES and scheme != PLUGIN:
        row = SCHEMES.get(scheme)
        # A local path after the scheme may hold ':' itself (Windows drives aside): split from the left.
        most = max(row.args)
        args = rest.split(":", most - 1) if colon and rest and most else []
        if len(args) not in row.args or not all(args):
            raise TronError(f"write {row.usage}, got {spec!r}")
        return AdapterSpec(scheme, args, options)
    if scheme == PLUGIN and colon:
        body = rest
    elif body.startswith("zoo:") or Path(body).exists():
        return None
    if PLUGIN_RE.match(body):
        return AdapterSpec(PLUGIN, [body], options)
    return None


def check_adapter(adapter: AdapterSpec, part: str, spec: str) -> Scheme:
    """The adapter's scheme, once the spec names this part and only options the scheme takes."""
    row = SCHEMES.get(adapter.scheme)
    if row.part is not None and row.part != part:
        raise TronError(f"{spec!r} names {_article(row.part)} {row.part}, not {_article(part)} {part}")
    if row.options is not None:
        unknown = sorted(set(adapter.options) - set(row.options) - {"allow_pickle"})
        if unknown:
            raise TronError(f"unknown {adapter.scheme} option(s) {', '.join(unknown)}; known: {', '.join(row.options) or 'none'}")
    return row


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def adapter_fingerprint(adapter: AdapterSpec) -> str:
    """The spec's scheme, options and (where they identify the model) names, with the SHA-256 of
    the files behind it. A local weights file is identified by its content, not its path."""
    row = SCHEMES.get(adapter.scheme)
    names = list(adapter.args) if row.hash_names else []
    if names and len(names) > 1 and Path(names[-1]).is_file():
        names = names[:-1]
    options = {k: v for k, v in adapter.options.items() if k != "allow_pickle"}
    payload = json.dumps({"adapter": adapter.scheme, "names": names, "options": options, "files": row.files(adapter)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
