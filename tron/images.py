"""Image files: PNG grids for people, float32 .npy arrays for programs."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ConditionError


def to_grid(images: torch.Tensor, nrow: int | None = None, upscale: int = 1, padding: int = 2) -> Image.Image:
    """(N, C, H, W) in [0, 1] -> one PIL image, nrow images per row."""
    from torchvision.utils import make_grid  # torchvision, for grids only

    images = images.detach().float().cpu().clamp(0, 1)
    if upscale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=upscale, mode="nearest")
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=0.5)  # (3, H', W')
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, upscale: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_grid(images, nrow, upscale).save(path)
    return path


def save_npy(images: torch.Tensor, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, images.detach().float().cpu().numpy().astype(np.float32))
    return path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8, the layout PNG encoders take."""
    array = images.detach().float().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return (array * 255).round().astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """One (H, W, C) uint8 image with C = 1 or 3 -> PNG file bytes."""
    image = np.ascontiguousarray(image)
    pil = Image.fromarray(image[..., 0], mode="L") if image.shape[-1] == 1 else Image.fromarray(image, mode="RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes, max_side: int = 1024, formats: tuple[str, ...] = ("PNG",)) -> np.ndarray:
    """Image file bytes -> (H, W, 3) uint8 RGB. ValueError names what is wrong.

    The size is checked before the pixels are decoded, so a small file that claims huge
    dimensions (a decompression bomb) is refused without allocating them."""
    try:
        with Image.open(io.BytesIO(data), formats=list(formats)) as im:
            width, height = im.size
            if width < 1 or height < 1 or max(width, height) > max_side:
                raise ValueError(f"image is {width}x{height}; each side must be 1..{max_side} px")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ValueError(f"not a readable {'/'.join(formats)} image") from None
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:  # truncated or corrupt data
        raise ValueError(f"not a readable {'/'.join(formats)} image ({exc})") from None


def load_image_file(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """An image file as (3, H, W) floats in [0, 1], resized to size x size when given;
    ConditionError if it cannot be read."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            width, height = im.size
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ConditionError(f"cannot read image {str(path)!r}: {exc}") from None
    return data.view(height, width, 3).permute(2, 0, 1).float() / 255


def image_batch(images, size: int | None, device) -> torch.Tensor:
    """Image tensors (N, 3, H, W) in [0, 1], or image files (loaded at size x size) -> (N, 3, H, W)
    on device; ConditionError for anything else."""
    if not isinstance(images, torch.Tensor):
        paths = list(images)
        if not paths:
            raise ConditionError("no image given")
        images = torch.stack([load_image_file(p, size) for p in paths])
    if images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ConditionError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ConditionError("images contain NaN or infinite values")
    return images.float().clamp(0, 1).to(device)
