"""In-process pair generation: (G, f, n, seed) -> z (N, d), c (N, k) [, c_features (N, F)].

This is the unit of work that the distributed dataset builder runs once per shard. Non-finite
images or conditions are an error naming the part that produced them: a dataset never holds them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .captioners import CAPTION_COLUMN, TEXT_COLUMN, Captioner
from .encoders import ENCODERS, FEATURES, MAIN, Encoder
from .errors import NonFiniteError, TronError
from .generators import Generator
from .priors import PriorConfig


def column_name(space: str) -> str:
    """The dataset column of a condition space: "c" for the main one, "c_features", ..."""
    return "c" if space == MAIN else f"c_{space}"


def _check_finite(values: torch.Tensor, part: str, what: str) -> None:
    bad = ~torch.isfinite(values.flatten(1)).all(dim=1)
    if bad.any():
        raise NonFiniteError(f"the {part} produced non-finite {what} for {int(bad.sum())} of {len(values)} rows")


@torch.no_grad()
def generate_columns(
    generator: Generator,
    encoder: Encoder,
    n: int,
    seed: int,
    batch_size: int = 256,
    prior: PriorConfig | None = None,
    progress: Callable[[int], None] | None = None,
    spaces: Sequence[str] = (MAIN,),
    captioner: Captioner | None = None,
) -> dict[str, np.ndarray]:
    """{"z": (N, d), column_name(space): (N, k_space) for each space}; with a captioner also
    "caption" (N,) and "c_caption" (N, k): the caption of each G(z) and its unit text embedding
    under f. Deterministic for (seed, n, batch_size, prior); the captioner's draws come from a
    stream of their own, so z and c do not depend on it. Raises NonFiniteError naming the part."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    both = tuple(spaces) == (MAIN, FEATURES) and hasattr(encoder, "classify")
    rng = torch.Generator(device=generator.device).manual_seed(int(seed))
    parts: dict[str, list[np.ndarray]] = {"z": [], **{column_name(s): [] for s in spaces}}
    if captioner is not None:
        caption_rng = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))
        texts = CaptionEmbeddings(encoder)
        parts.update({TEXT_COLUMN: [], CAPTION_COLUMN: []})
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = generator.sample_latents(b, rng, prior)  # (b, d)
        x = generator.decode(z)
        _check_finite(x, "generator", "images")
        if both:  # one pass through f for the class distribution and the features
            outs = dict(zip(spaces, encoder.classify(x)))
        else:
            outs = {s: encoder.encode(x, s) for s in spaces}
        for space, c in outs.items():
            _check_finite(c, "encoder", "conditions" if space == MAIN else f"{space}")
            parts[column_name(space)].append(c.float().cpu().numpy())
        parts["z"].append(z.float().cpu().numpy())
        if captioner is not None:
            captions = captioner.caption(x, caption_rng)
            c = texts(captions)
            _check_finite(c, "encoder", "caption embeddings")
            parts[TEXT_COLUMN].append(np.array(captions, dtype=object))
            parts[CAPTION_COLUMN].append(c.float().cpu().numpy())
        if progress is not None:
            progress(b)
    widths = {"z": generator.latent_dim, CAPTION_COLUMN: encoder.embed_dim,
              **{column_name(s): encoder.space_dim(s) for s in spaces}}
    out = {k: (np.concatenate(v) if v else np.zeros((0, widths[k]), np.float32)).astype(np.float32, copy=False)
           for k, v in parts.items() if k != TEXT_COLUMN}
    if captioner is not None:
        out[TEXT_COLUMN] = np.concatenate(parts[TEXT_COLUMN]) if parts[TEXT_COLUMN] else np.zeros(0, dtype=object)
    return out


class CaptionEmbeddings:
    """Unit text embeddings of captions under f, each distinct caption embedded once (a bank's
    captions repeat across a build; a free-form captioner's rarely do, so the memo is bounded)."""

    def __init__(self, encoder: Encoder, limit: int = 100_000) -> None:
        if "text" not in encoder.condition_kinds:
            raise TronError(f"a captioned build embeds the captions with f's text tower; this f "
                            f"({ENCODERS.name_of(type(encoder), type(encoder).__name__)}) takes no text")
        self.encoder, self.limit, self.memo = encoder, limit, {}

    @torch.no_grad()
    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        missing = sorted({t for t in captions if t not in self.memo})
        if missing:
            if len(self.memo) + len(missing) > self.limit:
                self.memo.clear()
            self.memo.update(zip(missing, self.encoder.condition_from_text(missing).float().cpu()))
        return torch.stack([self.memo[t] for t in captions])


def generate_pairs(generator: Generator, encoder: Encoder, n: int, seed: int, batch_size: int = 256,
                   prior: PriorConfig | None = None, progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample z ~ p(z), render x = G(z), compute c = f(x). Deterministic for (seed, n, batch_size, prior)."""
    cols = generate_columns(generator, encoder, n, seed, batch_size, prior, progress)
    return cols["z"], cols["c"]


@torch.no_grad()
def condition_scale(generator: Generator, encoder: Encoder, n: int = 256, seed: int = 0) -> float:
    """The mean norm of f's raw embeddings of G's samples (1.0 for an encoder without raw embeddings):
    TR0N adds its condition noise on that scale."""
    if not hasattr(encoder, "encode_raw"):
        return 1.0
    rng = torch.Generator(device=generator.device).manual_seed(int(seed))
    norms = []
    for start in range(0, n, 64):
        x = generator.decode(generator.sample_latents(min(64, n - start), rng))
        norms.append(encoder.encode_raw(x).norm(dim=-1).float().cpu())
    return float(torch.cat(norms).mean())
