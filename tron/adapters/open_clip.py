"""Any open_clip architecture as f: `open_clip:ARCH:TAG` (a pretrained tag, from open_clip's
cache or its download) or `open_clip:ARCH:/path/to/weights` (a local file).

The model is built by open_clip's own factory, `create_model_and_transforms(ARCH, pretrained=...)`;
`tron.clip.OpenClipEncoder` applies the model's preprocessing (resize to its input size and
normalise with its mean and std) differentiably inside the energy, so Langevin gradients reach z.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..clip import OpenClipEncoder
from ..errors import CheckpointError, one_line
from ..files import hash_file
from ..specs import AdapterSpec, Scheme


def _looks_like_file(pretrained: str) -> bool:
    return "/" in pretrained or "\\" in pretrained or Path(pretrained).suffix in {".bin", ".pt", ".pth", ".safetensors"}


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "encoder") -> OpenClipEncoder:
    """`open_clip:ARCH:TAG_OR_FILE`."""
    return load_open_clip(*spec.args)


SCHEME = Scheme("open_clip", "encoder", "open_clip:ARCH:TAG | open_clip:ARCH:FILE", "any open_clip CLIP; embedding size from ARCH",
                (2,), (), load_spec, lambda s: hash_file(s.args[-1], "weights"), hash_names=True)


def load_open_clip(arch: str, pretrained: str) -> OpenClipEncoder:
    """An open_clip CLIP as f. Errors name the architecture, tag or file that is unavailable."""
    import open_clip

    config = open_clip.get_model_config(arch)
    if config is None:
        raise CheckpointError(f"open_clip has no architecture {arch!r} (see open_clip.list_models(), "
                              "or register a config file with open_clip.add_model_config)")
    if _looks_like_file(pretrained):
        if not Path(pretrained).is_file():
            raise CheckpointError(f"open_clip weights file not found: {pretrained}")
    else:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained not in tags:
            raise CheckpointError(f"open_clip has no pretrained tag {pretrained!r} for {arch}; "
                                  f"known tags: {', '.join(tags) or 'none'}; or give a local weights file")
    weights, tag_cfg = pretrained, {}
    if not _looks_like_file(pretrained):
        # Fetch (or find in open_clip's cache) before building the model, so that an offline
        # machine fails fast and with the tag's name rather than deep inside the factory.
        tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        try:
            weights = open_clip.pretrained.download_pretrained(tag_cfg)
        except Exception as exc:  # noqa: BLE001  (hub, network and file errors differ between versions)
            raise CheckpointError(_offline_message(arch, pretrained, exc)) from None
        if not weights:
            raise CheckpointError(f"open_clip has no download for {arch}:{pretrained}")
    try:
        encoder = OpenClipEncoder(arch, config, pretrained=weights)
    except RuntimeError as exc:  # open_clip's strict load: names or shapes do not fit
        raise CheckpointError(f"weights in {weights} do not fit open_clip {arch}: {one_line(exc)}") from None
    # A tag may carry its own preprocessing (mean, std); a local file uses the architecture's.
    for key, buffer in (("mean", encoder.image_mean), ("std", encoder.image_std)):
        if tag_cfg.get(key):
            buffer.copy_(torch.tensor(tag_cfg[key], dtype=torch.float32).view(1, 3, 1, 1))
    encoder.source = f"open_clip:{arch}:{pretrained}"
    return encoder


def _offline_message(arch: str, pretrained: str, exc: Exception) -> str:
    return (f"open_clip weights {arch}:{pretrained} are not available offline ({type(exc).__name__}: {one_line(exc, limit=160)}); "
            f"download them on a connected machine and pass open_clip:{arch}:/path/to/open_clip_model.safetensors")
