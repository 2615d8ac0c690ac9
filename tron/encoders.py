"""Encoders f: frozen auxiliary models that turn an image into a condition-space vector c.

`encode(x)` gives the c stored in training pairs; `energy(x, c)` is the quantity Langevin
dynamics lowers; `check_condition(c)` turns user input into a clear error before it reaches torch.
A classifier's c is a distribution over classes: soft labels f(G(z)) for training, one-hot at
sampling time.

An encoder may have a second condition *space* besides its main one: a classifier's pooled
features ("features"), where image conditions live and the energy is a negative cosine, as for
CLIP image embeddings. `condition_kinds` says which conditions `tron.conditions` can build for it.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import energies
from .errors import ConditionError
from .images import image_batch
from .parts import Part, load_part, save_part
from .registry import Registry

MAIN, FEATURES = "main", "features"


class Encoder(Part):
    embed_dim: int  # size of c in the main space
    kind: str  # "classifier" or "clip"
    condition_kinds: tuple[str, ...] = ()  # of "label", "text", "image"
    spaces: tuple[str, ...] = (MAIN,)

    def space_dim(self, space: str = MAIN) -> int:
        self._check_space(space)
        return self.embed_dim

    def _check_space(self, space: str) -> None:
        if space not in self.spaces:
            raise ConditionError(f"{type(self).__name__} has no condition space {space!r}; it has {', '.join(self.spaces)}")

    def encode(self, x: torch.Tensor, space: str = MAIN) -> torch.Tensor:  # (B, C, H, W) -> (B, k)
        raise NotImplementedError

    def energy(self, x: torch.Tensor, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:  # -> (B,)
        raise NotImplementedError

    def check_condition(self, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        if not isinstance(c, torch.Tensor):
            raise ConditionError(f"condition must be a tensor, got {type(c).__name__}")
        if c.dim() == 1:
            c = c.unsqueeze(0)
        dim = self.space_dim(space)
        if c.dim() != 2 or c.shape[1] != dim:
            raise ConditionError(f"condition has shape {tuple(c.shape)}; this encoder expects (N, {dim})")
        if c.shape[0] == 0:
            raise ConditionError("condition batch is empty")
        if not torch.isfinite(c).all():
            raise ConditionError("condition contains NaN or infinite values")
        return c.float()


class ClassifierEncoder(Encoder):
    """A classifier as f. Subclasses implement `logits`, and `features` for image conditions."""

    kind = "classifier"
    num_classes: int
    class_names: Sequence[str] | None = None
    feature_dim: int | None = None  # pooled features of `features(x)`, when the class has them

    @property
    def embed_dim(self) -> int:  # type: ignore[override]
        return self.num_classes

    @property
    def spaces(self) -> tuple[str, ...]:  # type: ignore[override]
        return (MAIN, FEATURES) if self.feature_dim else (MAIN,)

    @property
    def condition_kinds(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("label", "image") if self.feature_dim else ("label",)

    def space_dim(self, space: str = MAIN) -> int:
        self._check_space(space)
        return self.num_classes if space == MAIN else int(self.feature_dim)

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, feature_dim)
        raise NotImplementedError(f"{type(self).__name__} has no pooled features")

    def encode(self, x: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        if space == FEATURES:
            self._check_space(space)
            return F.normalize(self.features(x), dim=-1)
        return F.softmax(self.logits(x), dim=-1)

    def energy(self, x: torch.Tensor, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        if space == FEATURES:
            self._check_space(space)
            return energies.negative_cosine(self.features(x), c)
        return energies.cross_entropy(self.logits(x), c)

    def label_index(self, label: int | str) -> int:
        """A class index from an index or a class name; ConditionError lists close names."""
        if isinstance(label, bool):
            raise ConditionError(f"label must be an integer or a class name, got {label!r}")
        if isinstance(label, int):
            if not 0 <= label < self.num_classes:
                raise ConditionError(f"label {label} is out of range: this classifier has classes 0..{self.num_classes - 1}")
            return label
        if not isinstance(label, str):
            raise ConditionError(f"label must be an integer or a class name, got {label!r}")
        text = label.strip()
        if text.lstrip("-").isdigit():
            return self.label_index(int(text))
        names = list(self.class_names or [])
        if not names:
            raise ConditionError(f"label must be an integer 0..{self.num_classes - 1} (this classifier has no class names), got {label!r}")
        key = " ".join(text.lower().replace("_", " ").split())
        folded = [" ".join(n.lower().replace("_", " ").split()) for n in names]
        for candidate in (key, key.rstrip("s"), key + "s", key[:-2] if key.endswith("es") else None):
            if candidate and candidate in folded:
                return folded.index(candidate)
        close = difflib.get_close_matches(key, folded, n=5, cutoff=0.6)
        close += [n for n in folded if key in n and n not in close][:5 - len(close)]
        hint = f"; close: {', '.join(repr(names[folded.index(n)]) + f' ({folded.index(n)})' for n in close)}" if close else ""
        raise ConditionError(f"{label!r} is not a class name of this classifier{hint}")

    def condition_from_labels(self, labels: Sequence[int | str] | int | str) -> torch.Tensor:
        """Labels (indices or class names) -> one-hot targets (N, K)."""
        if isinstance(labels, (int, str)):
            labels = [labels]
        labels = list(labels)
        if not labels:
            raise ConditionError("no label given")
        index = [self.label_index(label) for label in labels]
        return F.one_hot(torch.tensor(index), self.num_classes).float()

    @torch.no_grad()
    def condition_from_images(self, images) -> torch.Tensor:
        """Semantic variation: unit pooled features (N, feature_dim) of images (N, 3, H, W) in [0, 1]
        or of image files."""
        self._check_space(FEATURES)
        return self.encode(image_batch(images, getattr(self, "image_size", None), self.device), FEATURES).float()

    def check_condition(self, c: torch.Tensor, space: str = MAIN) -> torch.Tensor:
        c = super().check_condition(c, space)
        if space == MAIN and ((c < 0).any() or not torch.allclose(c.sum(dim=1), torch.ones(c.shape[0], device=c.device), atol=1e-3)):
            raise ConditionError("a classifier condition must be a probability vector (non-negative, rows sum to 1)")
        if space == FEATURES and (c.norm(dim=-1) < 1e-6).any():
            raise ConditionError("a feature condition is the zero vector")
        return c


ENCODERS: Registry[Encoder] = Registry("encoder", "tron.encoders")


def save_encoder(model: Encoder, directory: str | os.PathLike, metadata: dict | None = None, dtype=None):
    return save_part(model, ENCODERS, directory, metadata, dtype)


def load_encoder(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
    """Rebuild a frozen encoder (eval mode, no grad on weights) from a checkpoint directory."""
    return load_part(ENCODERS, Encoder, directory, device)
