"""CLIP as f, through open_clip's own classes, and the conditions a CLIP makes possible.

A CLIP checkpoint directory holds

    config.json          tron's record: kind "open-clip", the open_clip model name and config,
                         the energy's augmentations, and the weights' SHA-256
    {model_name}.json    the same open_clip model config, registered with open_clip.add_model_config
    model.safetensors    the open_clip state dict

and loads with exactly the calls a user makes for a full-size model and a local weights file:
`open_clip.add_model_config(path)`, `open_clip.create_model_and_transforms(name, pretrained=file)`
and `open_clip.get_tokenizer(name)`.

A condition c is a row of embedding space (N, D). Text and image conditions are unit vectors; a
weighted composition is the weighted sum of unit vectors, so that the energy

    E(x, c) = -<f(x) / |f(x)|, c>

is the negative cosine for one prompt and exactly sum_i w_i * (-cos(f(x), c_i)) for a
composition: a negative weight steers away from its prompt. The translator sees the direction of
c (its config normalises the condition).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .checkpoint import WEIGHTS_NAME, file_sha256, save_checkpoint
from .encoders import ENCODERS, Encoder
from .errors import CheckpointError, ConditionError

KIND = "open-clip"


@dataclass
class AugmentConfig:
    """Differentiable views of G(z) that the energy averages over, so that Langevin dynamics
    cannot win by an adversarial pattern that only one exact view of the image would reward."""

    num: int = 0  # views per energy evaluation; 0 = the image as it is
    max_shift: int = 2  # translation, up to this many pixels each way (zero fill)
    cutout: float = 0.0  # side of a square set to black, as a fraction of the image side; 0 = off
    color: float = 0.0  # brightness scaling by a factor in [1 - color, 1 + color]; 0 = off
    seed: int = 0  # the views are drawn from this seed at every call: the energy is a pure function

    def __post_init__(self) -> None:
        if self.num < 0 or self.max_shift < 0:
            raise ValueError("augmentation num and max_shift must be >= 0")
        if not 0 <= self.cutout < 1 or not 0 <= self.color < 1:
            raise ValueError("augmentation cutout and color must be in [0, 1)")


def augment(x: torch.Tensor, config: AugmentConfig) -> torch.Tensor:
    """(B, C, H, W) -> (V, B, C, H, W): V = max(1, num) views, the same V transforms for every row
    (so that a row's energy does not depend on the batch it is in)."""
    if config.num == 0:
        return x.unsqueeze(0)
    v, (b, ch, h, w) = config.num, x.shape
    gen = torch.Generator().manual_seed(config.seed)
    shift = torch.randint(-config.max_shift, config.max_shift + 1, (v, 2), generator=gen).float()  # (V, 2) px
    brightness = 1 + config.color * (2 * torch.rand(v, generator=gen) - 1)  # (V,)
    side = round(config.cutout * min(h, w))
    corner = torch.stack([torch.randint(0, h - side + 1, (v,), generator=gen),
                          torch.randint(0, w - side + 1, (v,), generator=gen)], 1)  # (V, 2)
    # Integer translations through grid_sample are exact copies of pixels, and differentiable.
    theta = torch.zeros(v, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta, (v, ch, h, w), align_corners=False).to(x)  # (V, H, W, 2)
    views = F.grid_sample(x.unsqueeze(0).expand(v, -1, -1, -1, -1).reshape(v, b * ch, h, w), grid,
                          mode="nearest", padding_mode="zeros", align_corners=False).view(v, b, ch, h, w)
    views = views * brightness.to(x).view(v, 1, 1, 1, 1)
    if side > 0:
        mask = torch.ones(v, 1, 1, h, w, dtype=x.dtype, device=x.device)
        for i, (r, c) in enumerate(corner.tolist()):
            mask[i, ..., r:r + side, c:c + side] = 0
        views = views * mask
    return views.clamp(0, 1)


def write_model_config(directory: str | os.PathLike, model_name: str, model_config: dict[str, Any]) -> Path:
    """Write an open_clip model config file `{model_name}.json` into directory."""
    path = Path(directory) / f"{model_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model_config, indent=2, sort_keys=True) + "\n")
    return path


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


def load_image_file(path: str | os.PathLike, size: int) -> torch.Tensor:
    """An image file as (3, size, size) floats in [0, 1]; ConditionError if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ConditionError(f"cannot read image {str(path)!r}: {exc}") from None
    return data.view(size, size, 3).permute(2, 0, 1).float() / 255


@ENCODERS.register(KIND)
class OpenClipEncoder(Encoder):
    """An open_clip CLIP as f. `model_name` must be known to open_clip (built in, or registered
    with `register_model_config`); `pretrained` is a tag or a local weights file."""

    kind = "clip"

    def __init__(self, model_name: str, model_config: dict[str, Any] | None = None,
                 augment: dict[str, Any] | None = None, pretrained: str | None = None) -> None:
        import open_clip

        super().__init__(model_name=model_name, model_config=model_config, augment=dict(augment or {}))
        registered = open_clip.get_model_config(model_name)
        if registered is None:
            raise CheckpointError(f"open_clip does not know the model {model_name!r}; register its config file first")
        if model_config is not None and registered != model_config:
            raise CheckpointError(f"open_clip's registered config for {model_name!r} differs from this encoder's")
        self.model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.augment = AugmentConfig(**self.config["augment"])
        self.embed_dim = int(registered["embed_dim"])
        visual = self.model.visual
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.register_buffer("image_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, doc: dict[str, Any]) -> "OpenClipEncoder":
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
            return cls(config["model_name"], config["model_config"], config.get("augment"), pretrained=str(weights))
        except RuntimeError as exc:  # open_clip's strict load: names or shapes do not fit
            raise CheckpointError(f"weights in {weights} do not fit {config['model_name']}: {exc}") from exc

    # -- f ---------------------------------------------------------------------------------------

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP's image preprocessing, differentiably: resize to the model's size and normalise.
        (B, 3, H, W) in [0, 1] -> (B, 3, S, S)"""
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.image_mean) / self.image_std

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings, the c of training pairs. (B, 3, H, W) -> (B, D)"""
        return F.normalize(self.model.encode_image(self.preprocess(x)), dim=-1)

    def energy(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """-<f(view) / |f(view)|, c> averaged over the augmented views. (B, 3, H, W), (B, D) -> (B,)"""
        views = augment(x, self.augment)  # (V, B, 3, H, W)
        v, b = views.shape[:2]
        feats = self.encode(views.flatten(0, 1)).view(v, b, -1)  # (V, B, D)
        return -(feats * c.unsqueeze(0)).sum(-1).mean(0)

    def check_condition(self, c: torch.Tensor) -> torch.Tensor:
        c = super().check_condition(c)
        if (c.norm(dim=-1) < 1e-6).any():
            raise ConditionError("a CLIP condition is the zero vector (do the composition weights cancel out?)")
        return c

    # -- conditions ------------------------------------------------------------------------------

    @torch.no_grad()
    def condition_from_text(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Unit text embeddings (N, D). Any text works (CLIP embeds it); empty text does not."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ConditionError("no prompt given")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ConditionError(f"a prompt must be non-empty text, got {p!r}")
        device = self.image_mean.device
        tokens = self.tokenizer([" ".join(p.split()) for p in prompts]).to(device)
        return F.normalize(self.model.encode_text(tokens), dim=-1).float()

    @torch.no_grad()
    def condition_from_images(self, images: torch.Tensor | Sequence[str | os.PathLike]) -> torch.Tensor:
        """Semantic variation: unit image embeddings (N, D) of image tensors (N, 3, H, W) in [0, 1]
        or of image files."""
        if not isinstance(images, torch.Tensor):
            paths = list(images)
            if not paths:
                raise ConditionError("no image given")
            images = torch.stack([load_image_file(p, self.image_size) for p in paths])
        if images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
            raise ConditionError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        return self.encode(images.float().clamp(0, 1).to(self.image_mean.device)).float()


def interpolate(c_from: torch.Tensor, c_to: torch.Tensor, num: int) -> torch.Tensor:
    """num conditions along the great circle from one unit condition to another. (D,), (D,) -> (num, D)"""
    if num < 2:
        raise ConditionError(f"an interpolation needs at least 2 points, got {num}")
    a, b = F.normalize(c_from.reshape(-1).float(), dim=0), F.normalize(c_to.reshape(-1).float(), dim=0)
    if a.shape != b.shape:
        raise ConditionError(f"cannot interpolate conditions of sizes {a.numel()} and {b.numel()}")
    omega = torch.arccos((a * b).sum().clamp(-1 + 1e-6, 1 - 1e-6))
    t = torch.linspace(0, 1, num).unsqueeze(1)  # (num, 1)
    if omega < 1e-4:  # (nearly) the same direction: nothing to interpolate
        return a.expand(num, -1).clone()
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def compose(conditions: torch.Tensor, weights: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """One condition (1, D) whose energy is sum_i w_i * (-cos(f(x), c_i)). conditions (K, D)."""
    weights = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
    if conditions.dim() != 2 or len(conditions) != len(weights):
        raise ConditionError(f"{len(weights)} weights for {len(conditions)} conditions: give one weight per condition")
    if not torch.isfinite(weights).all():
        raise ConditionError("composition weights must be finite numbers")
    c = (weights.unsqueeze(1) * F.normalize(conditions.float(), dim=-1)).sum(0, keepdim=True)
    if c.norm() < 1e-6:
        raise ConditionError("the weighted conditions cancel out to zero")
    return c


def save_open_clip(encoder: OpenClipEncoder, directory: str | os.PathLike, metadata: dict | None = None,
                   dtype: torch.dtype | None = torch.float16) -> Path:
    """Write the encoder directory: the open_clip config file, then weights + config.json."""
    directory = Path(directory)
    write_model_config(directory, encoder.config["model_name"], encoder.config["model_config"])
    return save_checkpoint(encoder.model, directory, KIND, encoder.config, metadata, dtype=dtype)


def create_open_clip(model_name: str, model_config: dict[str, Any], directory: str | os.PathLike,
                     augment: AugmentConfig | None = None) -> OpenClipEncoder:
    """A freshly initialised encoder for training: writes and registers the config file in directory."""
    register_model_config(write_model_config(directory, model_name, model_config))
    return OpenClipEncoder(model_name, model_config, asdict(augment or AugmentConfig()))
