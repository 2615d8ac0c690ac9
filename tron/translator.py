"""The translator q(z | c): an MLP with residual blocks and a Gaussian-mixture head.

Mixture head: K means, K mixture logits, one shared learned diagonal std (as in TR0N), trained
by negative log-likelihood. The "mse" head predicts a single z and is trained by squared error;
it is the deterministic ablation. Saved as config.json + model.safetensors.

Latents that mix scales (BigGAN's z and its ~100x smaller class embedding) are modelled after
per-dimension standardisation: `latent_mean` / `latent_std`, measured on the pairs and recorded in
config.json, map z to (z - mean) / std for the loss and back for samples
(benchmarks/latent_scales.py: without it the mixture cannot place the small coordinates).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError, ConditionError, from_dict

HEADS = ("gmm", "mse")
KIND = "translator"


@dataclass
class TranslatorConfig:
    cond_dim: int  # size of c (number of classes, or CLIP embedding width)
    latent_dim: int  # size of z
    hidden_dim: int = 256  # width of the MLP
    num_blocks: int = 2  # residual blocks after the input layer
    num_components: int = 10  # K, mixture components (ignored by the "mse" head)
    head: str = "gmm"  # "gmm" (TR0N) or "mse" (deterministic ablation)
    normalize_condition: bool = False  # L2-normalise c first (CLIP embeddings)
    init_log_std: float = 0.0  # initial shared log std of the mixture
    latent_mean: list[float] | None = None  # per-dimension statistics of z (standardisation), or None
    latent_std: list[float] | None = None

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        for name in ("cond_dim", "latent_dim", "hidden_dim", "num_components"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if (self.latent_mean is None) != (self.latent_std is None):
            raise ValueError("latent_mean and latent_std go together")
        if self.latent_mean is not None:
            mean, std = [float(v) for v in self.latent_mean], [float(v) for v in self.latent_std]
            if len(mean) != self.latent_dim or len(std) != self.latent_dim:
                raise ValueError(f"latent_mean and latent_std must have latent_dim={self.latent_dim} values")
            if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
                raise ValueError("latent_mean must be finite and latent_std finite and > 0")
            self.latent_mean, self.latent_std = mean, std


def latent_statistics(z: torch.Tensor, floor: float = 1e-6) -> tuple[list[float], list[float]]:
    """Per-dimension mean and std of latents (N, d), the std floored so that a constant
    coordinate stays finite."""
    z = torch.as_tensor(z, dtype=torch.float64)
    return z.mean(0).tolist(), z.std(0).clamp_min(floor).tolist()


class ResidualBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.gelu(self.fc1(self.norm(h))))


class Translator(nn.Module):
    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__()
        self.config = config
        d, k, hdim = config.latent_dim, config.num_components, config.hidden_dim
        self.inp = nn.Linear(config.cond_dim, hdim)
        self.blocks = nn.ModuleList(ResidualBlock(hdim) for _ in range(config.num_blocks))
        self.out_norm = nn.LayerNorm(hdim)
        if config.head == "gmm":
            self.means = nn.Linear(hdim, k * d)
            self.mix_logits = nn.Linear(hdim, k)
            self.log_std = nn.Parameter(torch.full((d,), float(config.init_log_std)))
        else:
            self.mean = nn.Linear(hdim, d)
        # not in the state dict: the statistics live in config.json
        mean = torch.tensor(config.latent_mean) if config.latent_mean is not None else torch.zeros(d)
        std = torch.tensor(config.latent_std) if config.latent_std is not None else torch.ones(d)
        self.register_buffer("z_mean", mean.float(), persistent=False)
        self.register_buffer("z_std", std.float(), persistent=False)

    @property
    def standardised(self) -> bool:
        return self.config.latent_mean is not None

    def _features(self, c: torch.Tensor) -> torch.Tensor:
        if self.config.normalize_condition:
            c = F.normalize(c, dim=-1)
        h = F.gelu(self.inp(c))
        for block in self.blocks:
            h = block(h)
        return self.out_norm(h)

    def forward(self, c: torch.Tensor) -> dict[str, torch.Tensor]:
        """c (B, k) -> {"means": (B, K, d), "logits": (B, K), "log_std": (d,)} or {"mean": (B, d)}."""
        h = self._features(c)
        if self.config.head == "mse":
            return {"mean": self.mean(h)}
        b = c.shape[0]
        means = self.means(h).view(b, self.config.num_components, self.config.latent_dim)
        return {"means": means, "logits": self.mix_logits(h), "log_std": self.log_std}

    def loss(self, z: torch.Tensor, c: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss, averaged over rows (weighted by `weight` (B,) when given): NLL per latent
        dimension (gmm) or squared error (mse)."""
        out = self(c)
        if self.config.head == "mse":
            per_row = (out["mean"] - (z - self.z_mean) / self.z_std).pow(2).mean(-1)
        else:
            per_row = -self.log_prob(z, out) / self.config.latent_dim
        return per_row.mean() if weight is None else (weight * per_row).sum() / weight.sum()

    def log_prob(self, z: torch.Tensor, out: dict[str, torch.Tensor] | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        """log q(z | c) under the mixture (in z's own units: standardisation's Jacobian included). z (B, d) -> (B,)"""
        if out is None:
            out = self(c)
        u = (z - self.z_mean) / self.z_std
        log_std = out["log_std"]  # (d,)
        diff = (u.unsqueeze(1) - out["means"]) / log_std.exp()  # (B, K, d)
        comp = -0.5 * diff.pow(2).sum(-1) - log_std.sum() - 0.5 * z.shape[-1] * math.log(2 * math.pi)  # (B, K)
        jacobian = self.z_std.log().sum() if self.standardised else 0.0
        return torch.logsumexp(F.log_softmax(out["logits"], dim=-1) + comp, dim=-1) - jacobian

    @torch.no_grad()
    def sample(self, c: torch.Tensor, rng: torch.Generator | None = None, std_scale: float = 1.0,
               component: torch.Tensor | None = None) -> torch.Tensor:
        """One z per row of c: pick a component (by the mixture weights, or the given `component`
        (B,) indices), then add the shared std's noise. (B, k) -> (B, d)"""
        out = self(c)
        if self.config.head == "mse":
            return out["mean"] * self.z_std + self.z_mean
        probs = F.softmax(out["logits"], dim=-1)
        idx = torch.multinomial(probs, 1, generator=rng).squeeze(1)  # (B,): drawn even when given,
        if component is not None:  # so that the stream of random draws stays the same
            idx = torch.as_tensor(component, device=c.device).long().expand(c.shape[0])
        mean = out["means"][torch.arange(c.shape[0], device=c.device), idx]  # (B, d)
        eps = torch.randn(mean.shape, generator=rng, device=mean.device)
        return (mean + std_scale * out["log_std"].exp() * eps) * self.z_std + self.z_mean

    def check_condition(self, c: torch.Tensor) -> torch.Tensor:
        if c.dim() != 2 or c.shape[1] != self.config.cond_dim:
            raise ConditionError(f"condition has shape {tuple(c.shape)}; the translator expects (N, {self.config.cond_dim})")
        if not torch.isfinite(c).all():
            raise ConditionError("condition contains NaN or infinite values")
        return c


def save_translator(model: Translator, directory: str | os.PathLike, metadata: dict[str, Any] | None = None):
    return save_checkpoint(model, directory, KIND, asdict(model.config), metadata)


def load_translator(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Translator:
    """Load and verify a translator; returns it in eval mode with `.metadata` attached."""
    def build(config: dict[str, Any]) -> Translator:
        try:
            return Translator(from_dict(TranslatorConfig, config, "translator fields"))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory}/config.json: invalid translator config: {exc}") from exc

    return load_checkpoint(directory, KIND, build).eval().to(device)
