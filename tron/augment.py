"""Differentiable augmented views of G(z), averaged over by the energy (DiffAugment's policy).

An energy E(f(G(z)), c) on one exact image can be lowered by a pattern f alone rewards; averaged
over random views it must carry the condition in a way that survives them. The authors of TR0N
run DiffAugment's `color,translation,resize,cutout` policy with 50 views drawn afresh at every
Langevin step. In [0, 1] pixel units that policy is:

    brightness   x + U(-0.25, 0.25)                         (DiffAugment: U(-0.5, 0.5) on [-1, 1])
    saturation   mean_c + (x - mean_c) * U(0, 2)            (mean over channels, per pixel)
    contrast     mean + (x - mean) * U(0.5, 1.5)            (mean over the image)
    translation  integer shift up to 1/8 of the side each way, zero fill
    resize       scale by U(0.8, 1.2) about the centre, zero fill or crop
    cutout       a zeroed square of half the side

Here every view draws its own parameters (DiffAugment shares one resize ratio across views). A
step's views are drawn from a generator seeded by (seed, step) and are the same for every row of
the batch, so a chain's energy depends on its own latent and the step, not on its batch mates.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import from_dict


@dataclass(frozen=True)
class AugmentConfig:
    num: int = 0  # views per energy evaluation; 0 = the image as it is
    translation: float = 0.0  # max shift as a fraction of the side (DiffAugment: 0.125)
    resize: float = 0.0  # scale by a factor in [1 - resize, 1 + resize] (DiffAugment: 0.2)
    cutout: float = 0.0  # side of a zeroed square as a fraction of the image side (DiffAugment: 0.5)
    brightness: float = 0.0  # add U(-brightness, brightness) (DiffAugment: 0.25 in [0, 1] units)
    saturation: float = 0.0  # scale the chroma by U(1 - s, 1 + s) (DiffAugment: 1.0)
    contrast: float = 0.0  # scale the deviation from the mean by U(1 - c, 1 + c) (DiffAugment: 0.5)
    fresh: bool = True  # new views at every step (seeded by (seed, step)); False: the same views always
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.num, bool) or not isinstance(self.num, int) or self.num < 0:
            raise ValueError(f"augment num must be an integer >= 0, got {self.num!r}")
        bounds = {"translation": 0.5, "resize": 1.0, "cutout": 1.0, "brightness": 1.0, "saturation": 1.0, "contrast": 1.0}
        for name, top in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
                raise ValueError(f"augment {name} must be a number in [0, {top}], got {value!r}")
        if self.resize >= 1:
            raise ValueError(f"augment resize must be < 1, got {self.resize!r}")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AugmentConfig:
        return from_dict(cls, doc, "augment setting(s)")

    @classmethod
    def diffaugment(cls, num: int = 50, seed: int = 0) -> AugmentConfig:
        """The reference policy: color, translation 1/8, resize 0.8-1.2, cutout 1/2, fresh views."""
        return cls(num=num, translation=0.125, resize=0.2, cutout=0.5, brightness=0.25, saturation=1.0,
                   contrast=0.5, fresh=True, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def views(self) -> int:
        return max(1, self.num)


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for the views of one step, independent of every other step."""
    return int(np.random.SeedSequence([int(seed), int(step), 0x7A11]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def augment(x: torch.Tensor, config: AugmentConfig, step: int = 0) -> torch.Tensor:
    """(B, C, H, W) -> (V, B, C, H, W): V = max(1, num) views, the same V transforms for every row."""
    if config.num == 0:
        return x.unsqueeze(0)
    v, (b, ch, h, w) = config.num, x.shape
    rng = torch.Generator().manual_seed(step_seed(config.seed, step if config.fresh else 0))
    u = torch.rand(v, 8, generator=rng)  # (V, 8): every parameter of every view, in a fixed order
    views = x.unsqueeze(0).expand(v, -1, -1, -1, -1)  # (V, B, C, H, W)
    if config.brightness:
        views = views + (config.brightness * (2 * u[:, 0] - 1)).to(x).view(v, 1, 1, 1, 1)
    if config.saturation:
        mean = views.mean(dim=2, keepdim=True)
        views = mean + (views - mean) * (1 + config.saturation * (2 * u[:, 1] - 1)).to(x).view(v, 1, 1, 1, 1)
    if config.contrast:
        mean = views.mean(dim=(2, 3, 4), keepdim=True)
        views = mean + (views - mean) * (1 + config.contrast * (2 * u[:, 2] - 1)).to(x).view(v, 1, 1, 1, 1)
    if config.translation or config.resize:
        # Integer shifts (DiffAugment translates by whole pixels) and a scale, as one affine map per view.
        max_x, max_y = round(config.translation * w), round(config.translation * h)
        sx = torch.floor(u[:, 3] * (2 * max_x + 1)).clamp(max=2 * max_x) - max_x  # (V,) px
        sy = torch.floor(u[:, 4] * (2 * max_y + 1)).clamp(max=2 * max_y) - max_y
        scale = 1 + config.resize * (2 * u[:, 5] - 1)  # (V,)
        theta = torch.zeros(v, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
        theta[:, 0, 2] = -2 * sx / w
        theta[:, 1, 2] = -2 * sy / h
        grid = F.affine_grid(theta, (v, b * ch, h, w), align_corners=False).to(x)  # (V, H, W, 2)
        # Nearest sampling makes an integer shift an exact copy of pixels; a rescale needs bilinear.
        mode = "bilinear" if config.resize else "nearest"
        views = F.grid_sample(views.reshape(v, b * ch, h, w), grid, mode=mode, padding_mode="zeros",
                              align_corners=False).view(v, b, ch, h, w)
    if config.cutout:
        side_y, side_x = max(1, round(config.cutout * h)), max(1, round(config.cutout * w))
        top = torch.floor(u[:, 6] * (h - side_y + 1)).long().clamp(max=h - side_y)
        left = torch.floor(u[:, 7] * (w - side_x + 1)).long().clamp(max=w - side_x)
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        inside = ((rows >= top.view(v, 1, 1)) & (rows < (top + side_y).view(v, 1, 1))
                  & (cols >= left.view(v, 1, 1)) & (cols < (left + side_x).view(v, 1, 1)))  # (V, H, W)
        views = views * (~inside).to(x).view(v, 1, 1, h, w)
    return views
