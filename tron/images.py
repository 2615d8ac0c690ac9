"""Image files: PNG grids for people, float32 .npy arrays for programs."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid


def to_grid(images: torch.Tensor, nrow: int | None = None, upscale: int = 1, padding: int = 2) -> Image.Image:
    """(N, C, H, W) in [0, 1] -> one PIL image, nrow images per row."""
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
