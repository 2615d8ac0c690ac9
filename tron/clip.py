"""CLIP as f, through open_clip's own classes, and the conditions a CLIP makes possible.

A CLIP checkpoint directory holds

    config.json          tron's record: kind "open-clip", the open_clip model name and config,
                         and the weights' SHA-256
    {model_name}.json    the same open_clip model config, registered with open_clip.add_model_config
    model.safetensors    the open_clip state dict

and loads with exactly the calls a user makes for a full-size model and a local weights file:
`open_clip.add_model_config(path)`, `open_clip.create_model_and_transforms(name, pretrained=file)`
and `open_clip.get_tokenizer(name)`.

A condition c is a row of embedding space (N, D). Text and image conditions are unit vectors; a
weighted composition is the weighted sum of unit vectors (tron.conditions), so that the energy

    E(x, c) = -<f(x) / |f(x)|, c>

is the negative cosine for one prompt and exactly sum_i w_i * (-cos(f(x), c_i)) for a
composition: a negative weight steers away from its prompt. The translator sees the direction of
c (its config normalises the condition). Augmented views are the sampler's business
(tron.augment): f here is the plain model.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import WEIGHTS_NAME, save_checkpoint
from .conditions import normalize_prompt
from .encoders import ENCODERS, MAIN, Encoder
from .errors import CheckpointError, ConditionError
from .files import atomic_write, file_sha256
from .images import image_batch


def write_model_config(directory: str | os.PathLike, model_name: str, model_config: dict[str, Any]) -> Path:
    """Write an open_clip model config file `{model_name}.json` into directory."""
    return atomic_write(Path(directory) / f"{model_name}.json", json.dumps(model_config, indent=2, sort_keys=True) + "\n")


def register_model_config(path: str | os.PathLike) -> str:
    """Register an open_clip model config file (its stem is the model name); returns the name.

    open_clip keeps a global registry: re-registering a name with a different config replaces it,
    so the config most recently loaded wins."""
    import open_clip

    path = Path(path)
    wanted = json.loads(path.read_text())
    if open_clip.get_model_config(path.stem) != wanted:
        open_clip.add_model_config(path)
    return path.stem


class OpenClipEncoder(Encoder):
    """An open_clip CLIP as f. `model_name` must be known to open_clip (built in, or registered
    with `register_model_config`); `pretrained` is a tag or a local weights file."""

    kind = "clip"
    condition_kinds = ("text", "image")

    def __init__(self, model_name: str, model_config: dict[str, Any] | None = None,
                 pretrained: str | None = None) -> None:
        import open_clip

        super().__init__(model_name=model_name, model_config=model_config)
        registered = open_clip.get_model_config(model_name)
        if registered is None:
            raise CheckpointError(f"open_clip does not know the model {model_name!r}; register its config file first")
        if model_config is not None and registered != model_config:
            raise CheckpointError(f"open_clip's registered config for {model_name!r} differs from this encoder's")
        self.model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.embed_dim = int(registered["embed_dim"])
        visual = self.model.visual
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.register_buffer("image_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, doc: dict[str, Any]) -> OpenClipEncoder:
        directory = Path(directory)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_NAME}")
        if file_sha256(weights) != doc["weights_sha256"]:
            raise CheckpointError(f"{weights} does not match the SHA-256 in config.json: the file is corrupt or was replaced")
        config = doc["config"]
        config_file = directory / f"{config['model_name']}.json"
        if not config_file.is_file():
            raise CheckpointError(f"checkpoint {directory} has no open_clip model config {config_file.name}")
        if json.loads(config_file.read_text()) != config.get("model_config"):
            raise CheckpointError(f"{config_file} differs from the model config recorded in {directory}/config.json")
        register_model_config(config_file)
        try:
            return cls(config["model_name"], config["model_config"], pretrained=str(weights))
        except RuntimeError as exc:  # open_clip's strict load: names or shapes do not fit
            raise CheckpointError(f"weights in {weights} do not fit {config['model_name']}: {exc}") from exc

    # -- f ---------------------------------------------------------------------------------------

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP's image preprocessing, differentiably: resize to the model's size and normalise.
        (B, 3, H, W) in [0, 1] -> (B, 3, S, S)"""
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.image_mean) / self.image_std

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Image embeddings as the model outputs them (their norm is the encoder's raw scale)."""
        return self.model.encode_image(self.preprocess(x))

    def encode(self, x: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        """Unit image embeddings, the c of training pairs. (B, 3, H, W) -> (B, D)"""
        self._check_space(space)
        return F.normalize(self.encode_raw(x), dim=-1)

    def energy(self, x: torch.Tensor, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        """-<f(x) / |f(x)|, c>. (B, 3, H, W), (B, D) -> (B,)"""
        return -(self.encode(x, space) * c).sum(-1)

    def check_condition(self, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        c = super().check_condition(c, space)
        if (c.norm(dim=-1) < 1e-6).any():
            raise ConditionError("a CLIP condition is the zero vector (do the composition weights cancel out?)")
        return c

    # -- conditions ------------------------------------------------------------------------------

    @torch.no_grad()
    def condition_from_text(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Unit text embeddings (N, D). Any text with printable content works (CLIP embeds it); each
        prompt is normalised here, where every route of text to f meets (tron.conditions.normalize_prompt)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [normalize_prompt(p) for p in prompts]
        if not prompts:
            raise ConditionError("no prompt given")
        device = self.image_mean.device
        tokens = self.tokenizer(prompts).to(device)
        return F.normalize(self.model.encode_text(tokens), dim=-1).float()

    @torch.no_grad()
    def condition_from_images(self, images: torch.Tensor | Sequence[str | os.PathLike]) -> torch.Tensor:
        """Semantic variation: unit image embeddings (N, D) of image tensors (N, 3, H, W) in [0, 1]
        or of image files."""
        return self.encode(image_batch(images, self.image_size, self.image_mean.device)).float()


def save_open_clip(encoder: OpenClipEncoder, directory: str | os.PathLike, metadata: dict | None = None,
                   dtype: torch.dtype | None = torch.float16) -> Path:
    """Write the encoder directory: the open_clip config file, then weights + config.json."""
    directory = Path(directory)
    write_model_config(directory, encoder.config["model_name"], encoder.config["model_config"])
    kind = ENCODERS.name_of(type(encoder))
    return save_checkpoint(encoder.model, directory, kind, encoder.config, metadata, dtype=dtype)


def create_open_clip(model_name: str, model_config: dict[str, Any], directory: str | os.PathLike) -> OpenClipEncoder:
    """A freshly initialised encoder for training: writes and registers the config file in directory."""
    register_model_config(write_model_config(directory, model_name, model_config))
    return OpenClipEncoder(model_name, model_config)
