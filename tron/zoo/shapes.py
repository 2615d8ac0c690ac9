"""The shapes world: 32x32 RGB images of one filled shape on black, and captions for them.

See the spec in the shared notes (shapes-world.md). Four attributes, drawn uniformly:

    shape     circle, square, triangle (upright)
    color     red, green, blue, yellow, magenta, cyan, white (pure RGB)
    size      small (bounding box side 7-9 px), large (14-18 px)
    position  top left (8, 8), top right (24, 8), bottom left (8, 24), bottom right (24, 24),
              center (16, 16); +-1.5 px jitter

Attributes travel as a LongTensor (N, 4) of indices in the order of `ATTRIBUTES`. Rendering is
vectorised over the batch: every pixel's coverage comes from a signed distance to the shape's
edge, which also gives anti-aliased edges for free.

This module also holds the world's GAN generator and its attribute judge (the measuring
instrument used by `tron eval`, kept apart from the CLIP encoder f).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..captioners import CAPTIONERS, Captioner
from ..generators import GENERATORS, Generator

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


# ----------------------------------------------------------------------------------------------
# Attributes and rendering


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


# ----------------------------------------------------------------------------------------------
# Captions


def describe(shape: str | None = None, color: str | None = None, size: str | None = None,
             position: str | None = None) -> str:
    """The caption naming exactly the given attributes: describe(color="blue") == "a blue shape"."""
    words = ["a"] + [w for w in (size, color) if w] + [shape or "shape"]
    text = " ".join(words)
    return f"{text} in the {position}" if position else text


def caption(attrs: Sequence[int] | torch.Tensor, keep: Sequence[bool] | torch.Tensor | None = None) -> str:
    """Caption for one attribute row; `keep` (4 bools) drops the attributes marked False."""
    values = [ATTRIBUTES[name][int(i)] for name, i in zip(ATTRIBUTE_NAMES, attrs)]
    if keep is not None:
        values = [v if bool(k) else None for v, k in zip(values, keep)]
    return describe(**dict(zip(ATTRIBUTE_NAMES, values)))


def full_captions() -> list[str]:
    """The 210 full captions, in `all_combinations` order."""
    return [caption(row) for row in all_combinations()]


def caption_dropout(n: int, rng: torch.Generator | None = None, full_fraction: float = 0.5,
                    keep_prob: float = 0.5) -> torch.Tensor:
    """Which attributes each training caption names. -> (n, 4) bool

    A `full_fraction` of captions name everything; the rest keep each attribute with
    `keep_prob`, so that partial prompts ("a red circle", "a blue shape") are in distribution.
    """
    full = torch.rand(n, 1, generator=rng) < full_fraction
    keep = torch.rand(n, len(ATTRIBUTE_NAMES), generator=rng) < keep_prob
    return keep | full


def random_captions(attrs: torch.Tensor, rng: torch.Generator | None = None,
                    full_fraction: float = 0.5, keep_prob: float = 0.5) -> tuple[list[str], torch.Tensor]:
    """Training captions with attribute dropout: (captions, keep mask (N, 4))."""
    keep = caption_dropout(len(attrs), rng, full_fraction, keep_prob)
    return [caption(a, k) for a, k in zip(attrs, keep)], keep


def parse_prompt(text: str) -> dict[str, str]:
    """The attributes a caption-style prompt names, e.g. {"color": "red", "shape": "circle"}.

    Words outside the vocabulary are ignored; used to judge partial prompts."""
    text = " ".join(text.lower().split())
    named: dict[str, str] = {}
    for name, values in ATTRIBUTES.items():
        # longest first, so that "top left" wins over a shorter overlapping value
        for value in sorted(values, key=len, reverse=True):
            if f" {value} " in f" {text} ":
                named[name] = value
                break
    return named


# ----------------------------------------------------------------------------------------------
# The GAN generator G
#
# A latent GAN (Achlioptas et al., 2018): a DCGAN-style decoder, trained first as the decoder of
# an autoencoder, and a mapping network trained adversarially to turn N(0, I) into the
# decoder's codes of real images. A GAN in a 16-d code space trains in minutes on a CPU, where
# an image-space DCGAN on these sparse, saturated images did not converge in our budget (see
# docs/shapes.md).


class ShapesDecoder(nn.Module):
    """code (B, k) -> image logits (B, 3, 32, 32)."""

    def __init__(self, code_dim: int = 16, width: int = 32) -> None:
        super().__init__()
        w = width
        self.width = w
        self.fc = nn.Linear(code_dim, 4 * w * 4 * 4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),  # 8x8
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),  # 16x16
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1),  # 32x32
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 3, 3, padding=1),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(code).view(-1, 4 * self.width, 4, 4))


class ShapesEncoder(nn.Module):
    """Training-time only: image (B, 3, 32, 32) -> code (B, k), standardised per dimension so
    that the noise added to codes in training has a fixed scale."""

    def __init__(self, code_dim: int = 16, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2),  # 16x16
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),  # 8x8
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),  # 4x4
            nn.Flatten(),
            nn.Linear(4 * w * 16, code_dim),
            nn.BatchNorm1d(code_dim, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def mlp(sizes: Sequence[int], slope: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


@GENERATORS.register("shapes-gan")
class ShapesGenerator(Generator):
    """z (B, d) ~ N(0, I) -> mapping network -> code (B, k) -> decoder -> (B, 3, 32, 32) in [0, 1]."""

    image_shape = (3, SIDE, SIDE)

    def __init__(self, latent_dim: int = 32, code_dim: int = 16, width: int = 32, mapping_width: int = 256,
                 mapping_layers: int = 3) -> None:
        super().__init__(latent_dim=latent_dim, code_dim=code_dim, width=width, mapping_width=mapping_width,
                         mapping_layers=mapping_layers)
        self.latent_dim = latent_dim
        self.mapping = mlp([latent_dim] + [mapping_width] * mapping_layers + [code_dim])
        # The mapping works in standardised code space, where the GAN's gradient penalty has a
        # sensible scale; these hold the real codes' mean and std.
        self.register_buffer("code_mean", torch.zeros(code_dim))
        self.register_buffer("code_std", torch.ones(code_dim))
        self.decoder = ShapesDecoder(code_dim, width)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.mapping(z) * self.code_std + self.code_mean))


class CodeCritic(nn.Module):
    """Training-time critic on packs of codes (PacGAN): seeing several samples at once makes a
    generator that covers only some of the 210 combinations easy to tell apart. Spectral
    normalisation keeps it smooth enough for a hinge loss."""

    def __init__(self, code_dim: int = 16, width: int = 256, pack: int = 4) -> None:
        super().__init__()
        self.pack = pack
        self.net = mlp([code_dim * pack, width, width, width, 1])
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, code: torch.Tensor) -> torch.Tensor:  # (B, k) -> (B / pack,)
        return self.net(code.reshape(len(code) // self.pack, -1)).squeeze(1)


# ----------------------------------------------------------------------------------------------
# The attribute judge (measuring instrument, not f)

JUDGE_KIND = "shapes-judge"


class ShapesJudge(nn.Module):
    """Small CNN with one classification head per attribute (shape, color, size, position)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.config = {"width": width}
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * w * 16, 128), nn.ReLU(),
        )
        self.heads = nn.ModuleList(nn.Linear(128, k) for k in NUM_VALUES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, 32, 32) -> 4 x (B, k)
        if x.shape[1:] != (3, SIDE, SIDE):
            raise ValueError(f"the shapes judge expects (B, 3, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
        h = self.body(x)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def judge(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted attributes (N, 4) long and their softmax confidences (N, 4)."""
        preds, confs = [], []
        for start in range(0, len(x), batch_size):
            probs = [F.softmax(logits, dim=-1) for logits in self(x[start:start + batch_size].float())]
            conf, pred = zip(*(p.max(dim=-1) for p in probs))
            preds.append(torch.stack(pred, 1))
            confs.append(torch.stack(conf, 1))
        return torch.cat(preds), torch.cat(confs)


def save_judge(judge: ShapesJudge, directory: str | os.PathLike, metadata: dict | None = None):
    from ..checkpoint import save_checkpoint

    return save_checkpoint(judge, directory, JUDGE_KIND, judge.config, metadata)


def load_judge(directory: str | os.PathLike) -> ShapesJudge:
    """The judge in eval mode with `.metadata` (held-out accuracy) attached."""
    from ..checkpoint import load_into, load_state, read_config
    from ..errors import CheckpointError
    from ..generators import freeze

    doc = read_config(directory)
    if doc["kind"] != JUDGE_KIND:
        raise CheckpointError(f"{directory} holds a {doc['kind']!r}, not a {JUDGE_KIND}")
    judge = load_into(ShapesJudge(**doc["config"]), load_state(directory, doc), directory)
    judge.metadata = dict(doc.get("metadata", {}))
    return freeze(judge)


def degrade(x: torch.Tensor, rng: torch.Generator | None = None, max_blur: float = 1.0,
            max_noise: float = 0.08) -> torch.Tensor:
    """Judge training augmentation: random Gaussian blur and pixel noise, so that it reads
    imperfect generated images the way a person would. (N, 3, H, W) -> same"""
    n = len(x)
    sigma = max_blur * torch.rand(n, generator=rng)  # (N,)
    r = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-r.view(1, -1) ** 2 / (2 * sigma.clamp_min(1e-3).view(-1, 1) ** 2))  # (N, 5)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    # Separable blur with a different kernel per image: grouped convolution over N*3 channels.
    k = kernel.repeat_interleave(3, dim=0)  # (3N, 5)
    h = x.reshape(1, n * 3, *x.shape[2:])
    h = F.conv2d(F.pad(h, (2, 2, 0, 0), mode="replicate"), k.view(-1, 1, 1, 5), groups=n * 3)
    h = F.conv2d(F.pad(h, (0, 0, 2, 2), mode="replicate"), k.view(-1, 1, 5, 1), groups=n * 3)
    h = h.view_as(x)
    noise = max_noise * torch.rand(n, 1, 1, 1, generator=rng)
    return (h + noise * torch.randn(x.shape, generator=rng)).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# Prompt sets for measuring quality


def full_prompt_set() -> list[dict[str, str]]:
    """All 210 full captions, as the attributes each names."""
    return [{name: ATTRIBUTES[name][int(i)] for name, i in zip(ATTRIBUTE_NAMES, row)} for row in all_combinations()]


def partial_prompt_set() -> list[dict[str, str]]:
    """111 partial prompts naming one, two or three attributes. Two: every "a {color} {shape}",
    "a {size} shape in the {position}", "a {shape} in the {position}", "a {size} {shape}"; three:
    every "a {size} {color} {shape}"; one: every "a {color} shape", "a {shape}", "a {size} shape",
    "a shape in the {position}"."""
    prompts: list[dict[str, str]] = []
    prompts += [{"color": c, "shape": s} for c in COLORS for s in SHAPES]
    prompts += [{"size": z, "position": p} for z in SIZES for p in POSITIONS]
    prompts += [{"shape": s, "position": p} for s in SHAPES for p in POSITIONS]
    prompts += [{"size": z, "shape": s} for z in SIZES for s in SHAPES]
    prompts += [{"color": c} for c in COLORS]
    prompts += [{"size": z, "color": c, "shape": s} for z in SIZES for c in COLORS for s in SHAPES]
    prompts += [{"shape": s} for s in SHAPES]
    prompts += [{"size": z} for z in SIZES]
    prompts += [{"position": p} for p in POSITIONS]
    return prompts


# ----------------------------------------------------------------------------------------------
# Captions at a granularity drawn per image, and the world's captioners (for captioned pairs)


def granularity_groups() -> list[tuple[float, tuple[str, ...]]]:
    """(probability, attributes named) of a training caption: the number of attributes named is
    uniform over 1..4, then which ones uniform among the sets of that size (15 sets in all)."""
    from itertools import combinations

    groups = []
    for k in range(1, len(ATTRIBUTE_NAMES) + 1):
        sets = list(combinations(ATTRIBUTE_NAMES, k))
        groups += [(1 / len(ATTRIBUTE_NAMES) / len(sets), named) for named in sets]
    return groups


def draw_granularity(n: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """Which attributes each of n captions names, drawn as `granularity_groups` says. -> (n, 4) bool"""
    groups = granularity_groups()
    index = torch.multinomial(torch.tensor([p for p, _ in groups], dtype=torch.float64), n, replacement=True, generator=rng)
    masks = torch.tensor([[a in named for a in ATTRIBUTE_NAMES] for _, named in groups])
    return masks[index]


def caption_bank() -> list[tuple[float, list[str]]]:
    """The caption bank of the world (`caption-bank:`): one group per set of named attributes, each
    holding every caption that names exactly that set (575 captions)."""
    from itertools import product

    bank = []
    for p, named in granularity_groups():
        values = product(*(ATTRIBUTES[a] for a in named))
        bank.append((p, [describe(**dict(zip(named, v))) for v in values]))
    return bank


CAPTIONER_KIND = "shapes-captioner"


@CAPTIONERS.register(CAPTIONER_KIND)
class ShapesCaptioner(Captioner):
    """A captioner trained on the renderer's labels (as BLIP learned from captioned images): a CNN
    reads the four attributes, and a caption names the ones a granularity drawn per image keeps.
    Its own architecture and seed: the judge (the measuring instrument) is never the captioner."""

    def __init__(self, width: int = 24) -> None:
        super().__init__(width=width)
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=1, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.GELU(),  # 16x16
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.GELU(),  # 8x8
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.GroupNorm(4, 4 * w), nn.GELU(),  # 4x4
            nn.Flatten(),
            nn.Linear(4 * w * 16, 96), nn.GELU(),
        )
        self.heads = nn.ModuleList(nn.Linear(96, k) for k in NUM_VALUES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, 32, 32) -> 4 x (B, k)
        if x.shape[1:] != (3, SIDE, SIDE):
            raise ValueError(f"the shapes captioner expects (B, 3, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
        h = self.body(x * 2 - 1)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def attributes(self, x: torch.Tensor) -> torch.Tensor:
        """The attributes it reads. (B, 3, 32, 32) -> (B, 4) long"""
        return torch.stack([logits.argmax(-1) for logits in self(x.float())], 1)

    @torch.no_grad()
    def caption(self, x: torch.Tensor, rng: torch.Generator) -> list[str]:
        attrs = self.attributes(x).cpu()
        keep = draw_granularity(len(x), rng)
        return [caption(a, k) for a, k in zip(attrs, keep)]
