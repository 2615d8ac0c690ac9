"""The shapes world's renderer: 32x32 RGB images of one filled shape on black.

See the spec in the shared notes (shapes-world.md). Four attributes, drawn uniformly:

    shape     circle, square, triangle (upright)
    color     red, green, blue, yellow, magenta, cyan, white (pure RGB)
    size      small (bounding box side 7-9 px), large (14-18 px)
    position  top left (8, 8), top right (24, 8), bottom left (8, 24), bottom right (24, 24),
              center (16, 16); +-1.5 px jitter

Attributes travel as a LongTensor (N, 4) of indices in the order of `ATTRIBUTES`. Rendering is
vectorised over the batch: every pixel's coverage comes from a signed distance to the shape's
edge, which also gives anti-aliased edges for free.
"""
from __future__ import annotations

import math

import torch

SIDE = 32
SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}
SIZES = ("small", "large")
SIZE_RANGES = {"small": (7.0, 9.0), "large": (14.0, 18.0)}  # bounding box side, px
POSITIONS = {
    "top left": (8.0, 8.0),
    "top right": (24.0, 8.0),
    "bottom left": (8.0, 24.0),
    "bottom right": (24.0, 24.0),
    "center": (16.0, 16.0),
}
JITTER = 1.5  # px, uniform, each axis

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "size": SIZES,
    "position": tuple(POSITIONS),
}
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)  # column order of attribute tensors
NUM_VALUES = tuple(len(v) for v in ATTRIBUTES.values())  # (3, 7, 2, 5)
NUM_COMBINATIONS = math.prod(NUM_VALUES)  # 210


def sample_attributes(n: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """n uniform attribute combinations. -> (n, 4) long"""
    return torch.stack([torch.randint(0, k, (n,), generator=rng) for k in NUM_VALUES], dim=1)


def all_combinations() -> torch.Tensor:
    """Every combination once, in `combination_index` order. -> (210, 4) long"""
    grids = torch.meshgrid(*[torch.arange(k) for k in NUM_VALUES], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def combination_index(attrs: torch.Tensor) -> torch.Tensor:
    """(N, 4) attribute indices -> (N,) index in 0..209."""
    index = torch.zeros(len(attrs), dtype=torch.long)
    for col, k in enumerate(NUM_VALUES):
        index = index * k + attrs[:, col]
    return index


def draw(shape: torch.Tensor, rgb: torch.Tensor, side: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """Draw one filled shape per row with exact geometry.

    shape (N,) long index into SHAPES; rgb (N, 3); side, cx, cy (N,) floats in pixel units where
    pixel (i, j) spans x in [j, j+1], y in [i, i+1]. -> (N, 3, 32, 32) in [0, 1]
    """
    coords = torch.arange(SIDE, dtype=torch.float32) + 0.5
    x = coords.view(1, 1, SIDE) - cx.float().view(-1, 1, 1)  # (N, 1, W), relative to the centre
    y = coords.view(1, SIDE, 1) - cy.float().view(-1, 1, 1)  # (N, H, 1)
    half = side.float().view(-1, 1, 1) / 2
    # Signed distance to the edge in pixels (negative inside); exact along edges, which is all
    # that anti-aliasing a 1-px transition needs.
    circle = torch.sqrt(x * x + y * y) - half
    square = torch.maximum(x.abs(), y.abs()) - half
    # Upright isosceles triangle filling the box: apex (0, -half), base y = +half. Its slanted
    # edges satisfy 2|x| = y + half; outward normal (+-2, -1) / sqrt(5).
    slant = (2 * x.abs() - (y + half)) / math.sqrt(5.0)
    triangle = torch.maximum(slant, y - half)
    sd = torch.stack([circle.expand(-1, SIDE, SIDE), square.expand(-1, SIDE, SIDE), triangle], dim=1)  # (N, 3, H, W)
    sd = sd.gather(1, shape.view(-1, 1, 1, 1).expand(-1, 1, SIDE, SIDE)).squeeze(1)  # (N, H, W)
    coverage = (0.5 - sd).clamp(0.0, 1.0)
    return coverage.unsqueeze(1) * rgb.float().view(-1, 3, 1, 1)


def render(attrs: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
    """Render attribute rows with random size within the class and random jitter. (N, 4) -> (N, 3, 32, 32)"""
    n = len(attrs)
    shape, color, size, position = attrs.unbind(1)
    lo = torch.tensor([SIZE_RANGES[s][0] for s in SIZES])
    hi = torch.tensor([SIZE_RANGES[s][1] for s in SIZES])
    side = lo[size] + (hi[size] - lo[size]) * torch.rand(n, generator=rng)
    centres = torch.tensor(list(POSITIONS.values()))  # (5, 2)
    jitter = (2 * torch.rand(n, 2, generator=rng) - 1) * JITTER
    centre = centres[position] + jitter
    rgb = torch.tensor(list(COLORS.values()))[color]
    return draw(shape, rgb, side, centre[:, 0], centre[:, 1])


def sample_images(n: int, rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh images with their attributes: ((n, 3, 32, 32), (n, 4))."""
    attrs = sample_attributes(n, rng)
    return render(attrs, rng), attrs
