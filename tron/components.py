"""Generators and encoders named by a spec. The pipelines use these names on the command line and
record them (with a content fingerprint) in datasets.

    zoo:NAME                         that zoo world's G or f
    DIR                              a tron checkpoint directory (config.json + model.safetensors), or a world
    open_clip:ARCH:TAG               f: an open_clip CLIP with a pretrained tag (open_clip's cache / download)
    open_clip:ARCH:/path/weights     f: ... with a local weights file
    torchvision:ARCH:/path/weights   f: a torchvision classifier            (option: image_size)
    biggan:DIR                       G: BigGAN, pytorch-pretrained-biggan   (options: truncation, z_clamp)
    consistency:DIR                  G: a one-step consistency model, a diffusers directory
    torchscript:FILE                 G: a TorchScript module                (options: latent_dim, output_range)
    plugin:module.path:factory       G or f: factory(**options); also written module.path:factory

Options follow a '#': `biggan:/models/biggan-128#truncation=0.4,z_clamp=2`. Weights files are
read as safetensors or with torch.load(weights_only=True); `allow_pickle=True` (the
`#allow_pickle=true` option) lifts that for files whose source the user trusts.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import file_sha256, fingerprint
from .encoders import Encoder, load_encoder
from .errors import CheckpointError, TronError
from .generators import Generator, load_generator
from .registry import freeze
from .world import _import_zoo_models, resolve_world_path

PARTS = ("generator", "encoder")
ADAPTERS = {"open_clip": "encoder", "torchvision": "encoder", "biggan": "generator",
            "consistency": "generator", "torchscript": "generator", "plugin": None}


@dataclass
class AdapterSpec:
    scheme: str  # a key of ADAPTERS
    args: list[str]  # e.g. ["ViT-B-32", "laion2b_s34b_b79k"] or ["/models/biggan"]
    options: dict[str, Any] = field(default_factory=dict)


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
    if colon and scheme in ADAPTERS:
        if scheme == "open_clip" or scheme == "torchvision":
            arch, _, weights = rest.partition(":")
            if not arch or not weights:
                raise TronError(f"write {scheme}:ARCH:{'TAG_OR_FILE' if scheme == 'open_clip' else 'FILE'}, got {spec!r}")
            return AdapterSpec(scheme, [arch, weights], options)
        if not rest:
            raise TronError(f"{scheme}: needs a path or name after the colon, got {spec!r}")
        return AdapterSpec(scheme, [rest], options)
    if body.startswith("zoo:") or Path(body).exists():
        return None
    if PLUGIN_RE.match(body):
        return AdapterSpec("plugin", [body], options)
    return None


def _pop_pickle(options: dict[str, Any], allow_pickle: bool) -> tuple[dict[str, Any], bool]:
    options = dict(options)
    return options, bool(options.pop("allow_pickle", False)) or allow_pickle


def _check_part(adapter: AdapterSpec, part: str, spec: str) -> None:
    want = ADAPTERS[adapter.scheme]
    if want is not None and want != part:
        raise TronError(f"{spec!r} names a {want}, not an {part}" if part == "encoder" else f"{spec!r} names an {want}, not a {part}")


def component_dir(spec: str, part: str) -> Path:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    if spec.startswith("zoo:"):
        return resolve_world_path(spec) / part
    path = Path(spec)
    if (path / "config.json").is_file():
        return path
    if (path / part / "config.json").is_file():  # a world directory
        return path / part
    raise CheckpointError(f"{spec} is not a {part} checkpoint directory (no config.json), zoo:NAME, "
                          "nor an adapter spec (open_clip:, torchvision:, biggan:, consistency:, torchscript:, plugin:)")


def _hash_file(path: Path, role: str) -> dict[str, str]:
    return {role: file_sha256(path)} if path.is_file() else {}


def _adapter_files(adapter: AdapterSpec) -> dict[str, str]:
    """Content hashes of the files that define an adapter's model."""
    if adapter.scheme in ("open_clip", "torchvision"):
        return _hash_file(Path(adapter.args[1]), "weights")  # a tag has no file: it is named, not hashed
    if adapter.scheme == "torchscript":
        return _hash_file(Path(adapter.args[0]), "module")
    if adapter.scheme in ("biggan", "consistency"):
        root = Path(adapter.args[0])
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"})
        return {str(p.relative_to(root)): file_sha256(p) for p in files}
    module = adapter.args[0].partition(":")[0]
    found = importlib.util.find_spec(module.split(".")[0]) and importlib.util.find_spec(module)
    return _hash_file(Path(found.origin), "module") if found is not None and found.origin else {}


def component_fingerprint(spec: str, part: str) -> str:
    """Content hash of G or f: a checkpoint's kind, config and weights; for an adapter spec, the
    spec's scheme, names and options with the SHA-256 of its weights and config files."""
    adapter = parse_adapter_spec(spec)
    if adapter is None:
        return fingerprint(component_dir(spec, part))
    _check_part(adapter, part, spec)
    options = {k: v for k, v in adapter.options.items() if k != "allow_pickle"}
    names = adapter.args if adapter.scheme in ("open_clip", "torchvision", "plugin") else []
    if adapter.scheme in ("open_clip", "torchvision") and Path(adapter.args[1]).is_file():
        names = adapter.args[:1]  # the file is identified by its content, not its path
    payload = json.dumps({"adapter": adapter.scheme, "names": names, "options": options,
                          "files": _adapter_files(adapter)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_generator_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Generator:
    _import_zoo_models()
    from . import adapters  # noqa: F401  (registers the adapter classes for checkpoints that use them)

    adapter = parse_adapter_spec(spec)
    if adapter is None:
        return load_generator(component_dir(spec, "generator"), device)
    _check_part(adapter, "generator", spec)
    options, pickle_ok = _pop_pickle(adapter.options, allow_pickle)
    if adapter.scheme == "biggan":
        from .adapters.biggan import load_biggan

        unknown = set(options) - {"truncation", "z_clamp"}
        if unknown:
            raise TronError(f"unknown biggan option(s) {', '.join(sorted(unknown))}; known: truncation, z_clamp")
        model = load_biggan(adapter.args[0], allow_pickle=pickle_ok, **options)
    elif adapter.scheme == "consistency":
        from .adapters.consistency import load_consistency_pretrained

        if options:
            raise TronError(f"consistency: takes no options, got {', '.join(sorted(options))}")
        model = load_consistency_pretrained(adapter.args[0], allow_pickle=pickle_ok)
    elif adapter.scheme == "torchscript":
        from .adapters.plugin import load_torchscript

        model = load_torchscript(adapter.args[0], options)
    else:
        from .adapters.plugin import load_plugin_generator

        model = load_plugin_generator(adapter.args[0], options)
    return freeze(model).to(device)


def load_encoder_spec(spec: str, device: str | torch.device = "cpu", allow_pickle: bool = False) -> Encoder:
    _import_zoo_models()
    from . import adapters  # noqa: F401

    adapter = parse_adapter_spec(spec)
    if adapter is None:
        return load_encoder(component_dir(spec, "encoder"), device)
    _check_part(adapter, "encoder", spec)
    options, pickle_ok = _pop_pickle(adapter.options, allow_pickle)
    if adapter.scheme == "open_clip":
        from .adapters.open_clip import load_open_clip
        from .clip import AugmentConfig

        try:
            augment = AugmentConfig(**{k[len("augment_"):]: v for k, v in options.items() if k.startswith("augment_")})
        except (TypeError, ValueError) as exc:
            raise TronError(f"bad augment option in {spec!r}: {exc}") from None
        unknown = {k for k in options if not k.startswith("augment_")}
        if unknown:
            raise TronError(f"unknown open_clip option(s) {', '.join(sorted(unknown))}; known: augment_num, augment_max_shift, ...")
        model = load_open_clip(*adapter.args, augment=augment)
    elif adapter.scheme == "torchvision":
        from .adapters.torchvision import load_torchvision

        unknown = set(options) - {"image_size"}
        if unknown:
            raise TronError(f"unknown torchvision option(s) {', '.join(sorted(unknown))}; known: image_size")
        model = load_torchvision(*adapter.args, allow_pickle=pickle_ok, **options)
    else:
        from .adapters.plugin import load_plugin_encoder

        model = load_plugin_encoder(adapter.args[0], options)
    return freeze(model).to(device)
