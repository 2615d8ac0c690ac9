"""Encoders f: frozen auxiliary models that turn an image into a condition-space vector c.

`encode(x)` gives the c stored in training pairs; `energy(x, c)` is the quantity Langevin
dynamics lowers; `check_condition(c)` turns user input into a clear error before it reaches torch.
A classifier's c is a distribution over classes: soft labels f(G(z)) for training, one-hot at
sampling time.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import energies
from .checkpoint import load_into, load_state
from .errors import ConditionError
from .registry import Registry


class Encoder(nn.Module):
    embed_dim: int
    kind: str  # "classifier" or "clip"

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, doc: dict[str, Any]) -> "Encoder":
        """Build from a verified checkpoint; classes that wrap other libraries override this."""
        return load_into(cls(**doc["config"]), load_state(directory, doc), directory)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, k)
        raise NotImplementedError

    def energy(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # -> (B,)
        raise NotImplementedError

    def check_condition(self, c: torch.Tensor) -> torch.Tensor:
        if not isinstance(c, torch.Tensor):
            raise ConditionError(f"condition must be a tensor, got {type(c).__name__}")
        if c.dim() == 1:
            c = c.unsqueeze(0)
        if c.dim() != 2 or c.shape[1] != self.embed_dim:
            raise ConditionError(
                f"condition has shape {tuple(c.shape)}; this encoder expects (N, {self.embed_dim})"
            )
        if c.shape[0] == 0:
            raise ConditionError("condition batch is empty")
        if not torch.isfinite(c).all():
            raise ConditionError("condition contains NaN or infinite values")
        return c.float()


class ClassifierEncoder(Encoder):
    """A classifier as f. Subclasses implement `logits`."""

    kind = "classifier"
    num_classes: int
    class_names: Sequence[str] | None = None

    @property
    def embed_dim(self) -> int:  # type: ignore[override]
        return self.num_classes

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.logits(x), dim=-1)

    def energy(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return energies.cross_entropy(self.logits(x), c)

    def condition_from_labels(self, labels: Sequence[int] | int) -> torch.Tensor:
        """Labels -> one-hot targets (N, K)."""
        if isinstance(labels, int):
            labels = [labels]
        labels = list(labels)
        if not labels:
            raise ConditionError("no label given")
        for label in labels:
            if isinstance(label, bool) or not isinstance(label, int):
                raise ConditionError(f"label must be an integer, got {label!r}")
            if not 0 <= label < self.num_classes:
                raise ConditionError(f"label {label} is out of range: this classifier has classes 0..{self.num_classes - 1}")
        return F.one_hot(torch.tensor(labels), self.num_classes).float()

    def check_condition(self, c: torch.Tensor) -> torch.Tensor:
        c = super().check_condition(c)
        if (c < 0).any() or not torch.allclose(c.sum(dim=1), torch.ones(c.shape[0]), atol=1e-3):
            raise ConditionError("a classifier condition must be a probability vector (non-negative, rows sum to 1)")
        return c


ENCODERS: Registry[Encoder] = Registry("encoder")


def save_encoder(model: Encoder, directory: str | os.PathLike, metadata: dict | None = None, dtype=None):
    return ENCODERS.save(model, directory, metadata, dtype)


def load_encoder(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
    """Rebuild a frozen encoder (eval mode, no grad on weights) from a checkpoint directory."""
    return ENCODERS.load(directory, Encoder, device)
