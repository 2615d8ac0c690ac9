"""Captioners: the third part of a captioned pair build, beside G and f.

TR0N closes CLIP's gap between image and text embeddings in two ways: Gaussian noise on the image
embeddings it trains on (`TrainConfig.cond_noise_std`), and *captions*: caption G(z), embed the
caption with f's text tower, and train the text translator on those text embeddings, so that a
prompt at sampling time lies where the translator was trained (the reference captions with BLIP).
A captioned build writes, per pair, the caption and its unit text embedding (column `c_caption`)
next to f's image embedding.

    caption(x, rng) -> list[str]      one caption per image (B, C, H, W) in [0, 1]

Each caption names what it names at a *granularity drawn per image* from `rng` (a full caption,
or a partial one naming one to three attributes), so that the translator learns q(z | "a green
triangle") as well as q(z | "a small green triangle in the top left"). The draws come from their own
generator, so a build's z and c columns are the same with or without a captioner.

Two captioners come with the package:

    caption-bank:FILE.json   f itself ranks a bank of captions (works for any CLIP, no extra model):
                             per image a group of the bank is drawn by its weight, and the group's
                             caption with the highest cosine to f's image embedding is the caption
    a checkpoint directory   a trained captioner of a registered kind (the shapes world's attribute
                             captioner, `shapes-captioner`), or a world that names one (zoo:shapes)

and any other plugs in through the entry-point group `tron.captioners` or a `module:factory` spec
(BLIP on a GPU cluster: a factory returning a `Captioner` whose `caption` calls it).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import CheckpointError
from .files import atomic_write, hash_file
from .parts import Part, load_part, save_part
from .registry import Registry
from .specs import AdapterSpec, Scheme

BANK_SCHEME = "caption-bank"
CAPTION_COLUMN = "c_caption"  # the dataset column of the captions' unit text embeddings
TEXT_COLUMN = "caption"  # the dataset column of the captions themselves


class Captioner(Part):
    """images -> captions, at a granularity drawn per image from the given generator."""

    def caption(self, x: torch.Tensor, rng: torch.Generator) -> list[str]:  # (B, C, H, W) -> B captions
        raise NotImplementedError


CAPTIONERS: Registry[Captioner] = Registry("captioner", "tron.captioners")


def save_captioner(model: Captioner, directory: str | os.PathLike, metadata: dict | None = None):
    return save_part(model, CAPTIONERS, directory, metadata)


def load_captioner(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Captioner:
    return load_part(CAPTIONERS, Captioner, directory, device)


# ----------------------------------------------------------------------------- f ranking a bank of captions

def read_bank(path: str | os.PathLike) -> list[tuple[float, list[str]]]:
    """A caption bank file: {"groups": [{"weight": w, "captions": [...]}, ...]} -> [(weight, captions)]."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"caption bank {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"caption bank {path} is not readable JSON: {exc}") from None
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        raise CheckpointError(f'caption bank {path} must hold {{"groups": [{{"weight": w, "captions": [...]}}, ...]}}')
    out = []
    for i, group in enumerate(groups):
        captions, weight = group.get("captions"), group.get("weight", 1.0)
        if not (isinstance(captions, list) and captions and all(isinstance(t, str) and t.strip() for t in captions)):
            raise CheckpointError(f"caption bank {path}: group {i} needs a non-empty list of captions")
        if not (isinstance(weight, (int, float)) and weight > 0):
            raise CheckpointError(f"caption bank {path}: group {i} needs a weight > 0")
        out.append((float(weight), list(captions)))
    return out


def write_bank(path: str | os.PathLike, groups: Sequence[tuple[float, Sequence[str]]]) -> Path:
    return atomic_write(path, json.dumps({"groups": [{"weight": w, "captions": list(c)} for w, c in groups]}, indent=1) + "\n")


class CaptionBank(Captioner):
    """f ranks a bank of captions: per image, a group is drawn by weight and its caption nearest to
    f's image embedding (cosine) is the caption. The groups set the granularity (for the shapes world:
    one group per set of named attributes)."""

    def __init__(self, encoder, groups: Sequence[tuple[float, Sequence[str]]], source: str = "") -> None:
        super().__init__(source=source)
        if not hasattr(encoder, "condition_from_text"):
            raise CheckpointError(f"{BANK_SCHEME}: f ranks the captions with its text tower; "
                                  f"{type(encoder).__name__} has none (a CLIP-like f is needed)")
        self.encoder = encoder
        self.groups = [list(captions) for _, captions in groups]
        weights = torch.tensor([w for w, _ in groups], dtype=torch.float64)
        self.weights = weights / weights.sum()
        with torch.no_grad():
            self.embeddings = [encoder.condition_from_text(captions).float() for captions in self.groups]  # unit (n_g, D)

    @torch.no_grad()
    def caption(self, x: torch.Tensor, rng: torch.Generator) -> list[str]:
        group = torch.multinomial(self.weights, len(x), replacement=True, generator=rng).tolist()
        image = F.normalize(self.encoder.encode(x).float(), dim=-1)  # (B, D)
        out = []
        for i, g in enumerate(group):
            bank = self.embeddings[g].to(image.device)
            out.append(self.groups[g][int((bank @ image[i]).argmax())])
        return out


def load_bank_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "captioner", encoder=None) -> CaptionBank:
    """`caption-bank:FILE.json`: f, the build's encoder, ranks the bank."""
    if encoder is None:
        raise CheckpointError(f"{BANK_SCHEME}:{spec.args[0]} ranks captions with f: load it with the build's encoder")
    return CaptionBank(encoder, read_bank(spec.args[0]), source=str(spec.args[0]))


BANK = Scheme(BANK_SCHEME, "captioner", "caption-bank:FILE.json",
              "f ranks a bank of captions (groups drawn by weight); any CLIP-like f", (1,), (),
              load_bank_spec, lambda s: hash_file(s.args[0], "bank"))
