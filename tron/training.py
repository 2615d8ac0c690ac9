"""Framework-free translator training: the helpers a Ray Train worker loop calls, and a
single-process `fit_translator` that strings them together."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .translator import Translator

LogFn = Callable[[dict], None]


@dataclass
class TrainConfig:
    epochs: int = 30  # passes over the training pairs
    batch_size: int = 256  # pairs per optimiser step
    lr: float = 1e-3  # peak Adam learning rate (cosine decay to 0)
    weight_decay: float = 0.0  # AdamW weight decay
    cond_noise_std: float = 0.0  # Gaussian noise on c in training, in f's raw embedding units (TR0N's CLIP
    #                              modality-gap trick: 0.2; 0.5 for its LAION ViT-B-32 run)
    condition_scale: float = 1.0  # the raw norm of f's embeddings (the dataset manifest's); the pairs hold
    #                               unit c, so the noise they get is cond_noise_std / condition_scale
    sample_labels: bool = False  # classifier c: train on one-hot labels y ~ c, so q learns p(z | y)
    label_temperature: float = 1.0  # with sample_labels: y ~ c^(1/T); T < 1 favours latents f is sure of
    val_fraction: float = 0.1  # held-out share of the pairs for validation loss
    grad_clip: float = 5.0  # max gradient norm
    seed: int = 0  # shuffling, split and noise


def check_compatible(train: TrainConfig, translator) -> None:
    """Refuse settings whose train-time conditions would differ from the test-time ones."""
    if train.cond_noise_std > 0 and not translator.normalize_condition:
        raise ValueError("cond_noise_std needs normalize_condition: noisy training conditions have a larger norm "
                         "than the unit conditions of sampling (set --normalize-condition)")
    if not train.condition_scale > 0:
        raise ValueError(f"condition_scale must be > 0, got {train.condition_scale}")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of n rows."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    return perm[n_val:], perm[:n_val]


def add_condition_noise(c: torch.Tensor, std: float, rng: torch.Generator | None = None) -> torch.Tensor:
    if std <= 0:
        return c
    return c + std * torch.randn(c.shape, generator=rng, device=c.device, dtype=c.dtype)


def sample_one_hot(c: torch.Tensor, rng: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
    """Draw y ~ Categorical(c) per row and return one-hot(y). (B, K) -> (B, K)

    A translator fitted on (z, one-hot y) pairs learns the Bayes posterior
    p(z | y) ∝ f(y | G(z)) p(z): the whole class, not only the latents that f finds most typical,
    which is what a one-hot condition at sampling time asks for."""
    p = c.clamp_min(0)
    if temperature != 1.0:
        p = p.pow(1.0 / temperature)
    y = torch.multinomial(p, 1, generator=rng).squeeze(1)
    return torch.nn.functional.one_hot(y, c.shape[1]).to(c.dtype)


def training_condition(c: torch.Tensor, config: TrainConfig, rng: torch.Generator | None = None) -> torch.Tensor:
    """The condition the translator sees in a training step (label sampling, then noise)."""
    if config.sample_labels:
        c = sample_one_hot(c, rng, config.label_temperature)
    return add_condition_noise(c, config.cond_noise_std / config.condition_scale, rng)


class TranslatorLoss(torch.nn.Module):
    """forward(z, c) -> training loss. Data-parallel wrappers (DDP) need the loss behind forward()."""

    def __init__(self, translator: Translator) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.translator.loss(z, c)


def make_optimizer(model: torch.nn.Module, config: TrainConfig, total_steps: int):
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = max(1, total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    return opt, sched


def train_step(loss_module: torch.nn.Module, opt, sched, z: torch.Tensor, c: torch.Tensor, config: TrainConfig,
               rng: torch.Generator | None = None) -> float:
    """One optimiser step; `loss_module(z, c)` is a TranslatorLoss, possibly DDP-wrapped."""
    loss_module.train()
    loss = loss_module(z, training_condition(c, config, rng))
    if not torch.isfinite(loss):
        bad = "" if torch.isfinite(z).all() and torch.isfinite(c).all() else " (the batch holds non-finite pairs: rebuild the dataset)"
        raise FloatingPointError(f"training diverged: the loss is {float(loss)}{bad or '; lower the learning rate'}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(loss_module.parameters(), config.grad_clip)
    opt.step()
    sched.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate_loss_sums(model: Translator, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, int]:
    """(sum of per-row loss, row count) over (z, c) batches: sums add up across workers."""
    model.eval()
    total, count = 0.0, 0
    for z, c in batches:
        total += float(model.loss(z, c)) * len(z)
        count += len(z)
    return total, count


def evaluate(model: Translator, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean loss over (z, c) batches, weighted by batch size."""
    total, count = evaluate_loss_sums(model, batches)
    return total / max(count, 1)


def iterate_batches(z: torch.Tensor, c: torch.Tensor, batch_size: int, rng: torch.Generator | None = None):
    """Shuffled mini-batches when a random generator is given, in order otherwise."""
    n = len(z)
    order = torch.randperm(n, generator=rng) if rng is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield z[idx], c[idx]


def epoch_line(record: dict) -> str:
    """One log line for a fit_translator epoch record."""
    return f"translator epoch {record['epoch']}: train {record['train_loss']:.4f} val {record.get('val_loss', float('nan')):.4f}"


def fit_translator(model: Translator, z: np.ndarray | torch.Tensor, c: np.ndarray | torch.Tensor,
                   config: TrainConfig, log: LogFn | None = None) -> list[dict]:
    """Train in-process; `log` receives one dict per epoch. Returns the epoch history."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
    c = torch.as_tensor(np.asarray(c), dtype=torch.float32)
    if z.dim() != 2 or c.dim() != 2 or len(z) != len(c):
        raise ValueError(f"pairs must be z (N, d) and c (N, k) with equal N, got {tuple(z.shape)} and {tuple(c.shape)}")
    if z.shape[1] != model.config.latent_dim or c.shape[1] != model.config.cond_dim:
        raise ValueError(f"pairs have d={z.shape[1]}, k={c.shape[1]}; the translator expects "
                         f"d={model.config.latent_dim}, k={model.config.cond_dim}")
    check_compatible(config, model.config)
    bad = int((~torch.isfinite(z).all(1) | ~torch.isfinite(c).all(1)).sum())
    if bad:
        raise ValueError(f"{bad} of {len(z)} pairs hold NaN or infinite values: G or f produced them; rebuild the pairs")
    train_idx, val_idx = split_indices(len(z), config.val_fraction, config.seed)
    device = next(model.parameters()).device
    z_tr, c_tr = z[train_idx], c[train_idx]
    z_va, c_va = z[val_idx].to(device), c[val_idx].to(device)
    gen = torch.Generator().manual_seed(config.seed)  # shuffling (CPU)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)  # condition noise
    steps_per_epoch = math.ceil(len(z_tr) / config.batch_size)
    opt, sched = make_optimizer(model, config, steps_per_epoch * config.epochs)
    loss_module = TranslatorLoss(model)
    history = []
    for epoch in range(config.epochs):
        losses = [train_step(loss_module, opt, sched, zb.to(device), cb.to(device), config, noise_gen)
                  for zb, cb in iterate_batches(z_tr, c_tr, config.batch_size, gen)]
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses))}
        if len(z_va):
            record["val_loss"] = evaluate(model, iterate_batches(z_va, c_va, 4096))
        history.append(record)
        if log is not None:
            log(record)
    model.eval()
    return history
