"""Translator training, framework-free: the one routine that fits q(z | c), in-process
(`fit_translator`: recipes, benchmarks) and on every Ray Train worker (pipelines/train_translator.py).

Both paths share, so that the same pairs and seed give the same numbers in either:

- the split: a row is held out for validation by its global row index (`is_validation_row`), whatever
  the sharding, the reading order or the number of workers;
- the seeding rule: the translator's initial weights come from `seed` alone (`create_translator`),
  and epoch e's shuffling and condition noise on worker r from (seed, e, r) alone (`epoch_generators`),
  so a run resumed at epoch e continues exactly as an uninterrupted one;
- the epoch: `TranslatorFit.train_epoch` (shuffle, per-step condition, AdamW + cosine schedule,
  gradient clipping) and `TranslatorFit.evaluate` (per-row loss sums that add up across workers).

A Ray worker only adds what is Ray's: its context, DDP around the loss, checkpoint restore, its shard
of the pairs and the reports.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from .errors import from_dict, reject_unknown
from .translator import Translator, TranslatorConfig

LogFn = Callable[[dict], None]
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TrainConfig:
    epochs: int = 30  # passes over the training pairs
    batch_size: int = 256  # pairs per optimiser step (per worker)
    lr: float = 1e-3  # peak Adam learning rate (cosine decay to 0)
    weight_decay: float = 0.0  # AdamW weight decay
    cond_noise_std: float = 0.0  # Gaussian noise on c in training, in f's raw embedding units (TR0N's CLIP
    #                              modality-gap trick: 0.2; 0.5 for its LAION ViT-B-32 run)
    condition_scale: float = 1.0  # the raw norm of f's embeddings (the dataset manifest's); the pairs hold
    #                               unit c, so the noise they get is cond_noise_std / condition_scale
    sample_labels: bool = False  # classifier c: train on one-hot labels y ~ c, so q learns p(z | y)
    label_temperature: float = 1.0  # with sample_labels: y ~ c^(1/T); T < 1 favours latents f is sure of
    label_top_k: int = 0  # classifier c, without sample_labels: f's k likeliest classes, renormalised (1: argmax)
    balance_classes: bool = False  # classifier c: weight each pair by 1 / (how often its label has come so far)
    val_fraction: float = 0.1  # held-out share of the pairs for validation loss
    grad_clip: float = 5.0  # max gradient norm
    seed: int = 0  # initial weights, split, shuffling and noise


# The translator's own hyper-parameters (its config less what the data fixes: c's and z's widths and
# the latent statistics measured on the pairs).
MODEL_FIELDS = tuple(f.name for f in fields(TranslatorConfig)
                     if f.name not in ("cond_dim", "latent_dim", "latent_mean", "latent_std"))
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))


@dataclass
class TrainingRecipe:
    """How a world's translator is trained, as data: world.json's "training" object, read by the
    recipes (in-process) and by pipelines/train_translator.py alike. Unknown keys are an error."""

    translator: dict[str, Any] = field(default_factory=dict)  # MODEL_FIELDS
    train: dict[str, Any] = field(default_factory=dict)  # TRAIN_FIELDS
    num_pairs: int | None = None  # the pairs it was trained on (a record, not a setting)

    def __post_init__(self) -> None:
        for name, allowed in (("translator", MODEL_FIELDS), ("train", TRAIN_FIELDS)):
            reject_unknown(getattr(self, name), allowed, f"{name} hyper-parameter(s)")

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> TrainingRecipe:
        return from_dict(cls, dict(doc or {}), "training field(s)")

    @classmethod
    def flat(cls, values: dict[str, Any]) -> TrainingRecipe:
        """From one flat mapping of hyper-parameters (a --config file, command-line flags)."""
        reject_unknown(values, MODEL_FIELDS + TRAIN_FIELDS, "hyper-parameter(s)")
        return cls({k: v for k, v in values.items() if k in MODEL_FIELDS},
                   {k: v for k, v in values.items() if k in TRAIN_FIELDS})

    def updated(self, other: TrainingRecipe) -> TrainingRecipe:
        """This recipe with `other`'s settings on top."""
        return TrainingRecipe({**self.translator, **other.translator}, {**self.train, **other.train},
                              other.num_pairs if other.num_pairs is not None else self.num_pairs)

    def configs(self, cond_dim: int, latent_dim: int, **model_extra: Any) -> tuple[TranslatorConfig, TrainConfig]:
        """The translator's and the training's configs for pairs of these widths; ValueError if invalid."""
        try:
            model = TranslatorConfig(cond_dim=cond_dim, latent_dim=latent_dim, **self.translator, **model_extra)
            train = TrainConfig(**self.train)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        check_compatible(train, model)
        return model, train

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"translator": dict(self.translator), "train": dict(self.train)}
        if self.num_pairs is not None:
            doc["num_pairs"] = self.num_pairs
        return doc

    @classmethod
    def of(cls, model: TranslatorConfig, train: TrainConfig, num_pairs: int | None = None) -> TrainingRecipe:
        """The recipe that made a translator (every hyper-parameter written out)."""
        return cls({k: getattr(model, k) for k in MODEL_FIELDS},
                   {k: v for k, v in asdict(train).items() if k != "condition_scale"}, num_pairs)


def check_compatible(train: TrainConfig, translator: TranslatorConfig) -> None:
    """Refuse settings whose train-time conditions would differ from the test-time ones."""
    if train.cond_noise_std > 0 and not translator.normalize_condition:
        raise ValueError("cond_noise_std needs normalize_condition: noisy training conditions have a larger norm "
                         "than the unit conditions of sampling (set --normalize-condition)")
    if not train.condition_scale > 0:
        raise ValueError(f"condition_scale must be > 0, got {train.condition_scale}")
    if not 0 <= train.val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {train.val_fraction}")
    if train.label_top_k < 0 or (train.label_top_k and train.sample_labels):
        raise ValueError("label_top_k is >= 0, and an alternative to sample_labels (set one of them)")


# ----------------------------------------------------------------------------- the split and the seeds

def is_validation_row(rows: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Deterministic train/validation split by global row index: the same rows are held out
    whatever the sharding, ordering or number of readers. (N,) int -> (N,) bool"""
    # splitmix64 finaliser: well-mixed bits from consecutive integers (arithmetic mod 2^64)
    with np.errstate(over="ignore"):
        x = np.asarray(rows, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(1_000_000)).astype(np.int64) < int(round(fraction * 1_000_000))


def create_translator(config: TranslatorConfig, seed: int) -> Translator:
    """A fresh translator whose initial weights depend on `seed` only (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Translator(config)


def epoch_generators(seed: int, epoch: int, rank: int = 0,
                     device: str | torch.device = "cpu") -> tuple[torch.Generator, torch.Generator]:
    """(shuffling on the CPU, condition noise on `device`) for worker `rank`'s epoch `epoch`."""
    order = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 0]).generate_state(1)[0]))
    noise = torch.Generator(device=device).manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 1]).generate_state(1)[0]))
    return order, noise


# ----------------------------------------------------------------------------- conditions at training time

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


def top_k_labels(c: torch.Tensor, k: int) -> torch.Tensor:
    """f's k likeliest classes per row, renormalised; the rest 0. (B, K) -> (B, K)"""
    top = c.topk(k, dim=1)
    return torch.zeros_like(c).scatter_(1, top.indices, top.values / top.values.sum(1, keepdim=True).clamp_min(1e-12))


def training_condition(c: torch.Tensor, config: TrainConfig, rng: torch.Generator | None = None) -> torch.Tensor:
    """The condition the translator sees in a training step (label sampling or top-k, then noise)."""
    if config.sample_labels:
        c = sample_one_hot(c, rng, config.label_temperature)
    elif config.label_top_k:
        c = top_k_labels(c, config.label_top_k)
    return add_condition_noise(c, config.cond_noise_std / config.condition_scale, rng)


class ClassBalance:
    """Weights that give every label the same total weight: 1 / (K * the share of the mass it has had
    in the conditions seen so far), clipped at `limit`. Counts start at one pair's worth per class."""

    def __init__(self, num_classes: int, limit: float = 50.0) -> None:
        self.counts = torch.ones(num_classes, dtype=torch.float64)
        self.limit = limit

    def __call__(self, c: torch.Tensor) -> torch.Tensor:  # (B, K) label distributions -> (B,) weights
        self.counts += c.detach().double().sum(0).cpu()
        share = (self.counts / self.counts.sum()).to(c.device, c.dtype)
        per_class = (1.0 / (len(share) * share)).clamp(max=self.limit)  # (K,)
        return c.detach() @ per_class


# ----------------------------------------------------------------------------- the routine

class TranslatorLoss(torch.nn.Module):
    """forward(z, c) -> training loss. Data-parallel wrappers (DDP) need the loss behind forward()."""

    def __init__(self, translator: Translator) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, z: torch.Tensor, c: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.translator.loss(z, c, weight)


def make_optimizer(model: torch.nn.Module, config: TrainConfig, total_steps: int):
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = max(1, total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    return opt, sched


def shuffled_batches(z: torch.Tensor, c: torch.Tensor, batch_size: int, rng: torch.Generator | None = None) -> Batches:
    """Mini-batches of (z, c) in a random order drawn from `rng`, in row order without one."""
    n = len(z)
    order = torch.randperm(n, generator=rng).to(z.device) if rng is not None else None
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
        yield z[idx], c[idx]


class TranslatorFit:
    """The one training routine. `wrap` puts the loss behind a data-parallel wrapper (Ray Train's
    prepare_model); `steps_per_epoch` sets the length of the cosine schedule."""

    def __init__(self, model: Translator, config: TrainConfig, steps_per_epoch: int,
                 wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
        check_compatible(config, model.config)
        self.model, self.config = model, config
        self.loss_module = TranslatorLoss(model) if wrap is None else wrap(TranslatorLoss(model))
        self.opt, self.sched = make_optimizer(self.loss_module, config, steps_per_epoch * config.epochs)
        self.balance = ClassBalance(model.config.cond_dim) if config.balance_classes else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def step(self, z: torch.Tensor, c: torch.Tensor, rng: torch.Generator | None = None) -> float:
        """One optimiser step on a batch; returns its mean loss."""
        self.loss_module.train()
        c = training_condition(c, self.config, rng)
        loss = self.loss_module(z, c, self.balance(c) if self.balance is not None else None)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # under a data-parallel wrapper the gradients are averaged across workers here
        # Checked after the backward pass: a non-finite loss on any worker makes the shared gradients
        # non-finite on every worker, so all of them stop at the same step (none waits for the others).
        norm = torch.nn.utils.clip_grad_norm_(self.loss_module.parameters(), self.config.grad_clip or float("inf"))
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            bad = "" if torch.isfinite(z).all() and torch.isfinite(c).all() else " (the batch holds non-finite pairs: rebuild the dataset)"
            raise FloatingPointError(f"training diverged: the loss is {float(loss.detach())}, the gradient norm {float(norm)}"
                                     f"{bad or '; lower the learning rate'}")
        self.opt.step()
        self.sched.step()
        return float(loss.detach())

    def train_epoch(self, epoch: int, pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                    batches: Batches | None = None, rank: int = 0) -> tuple[float, int, float]:
        """One pass: over `pairs` (z, c) held in memory, in rows' order shuffled by the seeding rule,
        or over the given `batches` (streamed). Returns (sum of per-row loss, rows, seconds)."""
        order, noise = epoch_generators(self.config.seed, epoch, rank, self.device)
        if batches is None:
            batches = shuffled_batches(*pairs, self.config.batch_size, order)
        total, count, t0 = 0.0, 0, time.perf_counter()
        for z, c in batches:
            total += self.step(z, c, noise) * len(z)
            count += len(z)
        return total, count, time.perf_counter() - t0

    @torch.no_grad()
    def evaluate(self, batches: Batches) -> tuple[float, int]:
        """(sum of per-row loss, rows) over (z, c) batches: sums add up across workers."""
        self.model.eval()
        total, count = 0.0, 0
        for z, c in batches:
            total += float(self.model.loss(z, c)) * len(z)
            count += len(z)
        return total, count

    def state_dict(self) -> dict:
        state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}
        if self.balance is not None:
            state["class_counts"] = self.balance.counts.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.balance is not None and "class_counts" in state:
            self.balance.counts = state["class_counts"].double()


def split_pairs(z: torch.Tensor, c: torch.Tensor, rows: np.ndarray, config: TrainConfig):
    """((z, c) train, (z, c) validation), each in ascending row order."""
    order = np.argsort(rows, kind="stable")
    val = is_validation_row(rows[order], config.val_fraction, config.seed)
    tr, va = torch.from_numpy(order[~val]), torch.from_numpy(order[val])
    return (z[tr], c[tr]), (z[va], c[va])


def epoch_line(record: dict) -> str:
    """One log line for a fit_translator epoch record."""
    return f"translator epoch {record['epoch']}: train {record['train_loss']:.4f} val {record.get('val_loss', float('nan')):.4f}"


def fit_translator(model: Translator, z: np.ndarray | torch.Tensor, c: np.ndarray | torch.Tensor,
                   config: TrainConfig, log: LogFn | None = None, rows: np.ndarray | None = None) -> list[dict]:
    """Train in-process; `rows` are the pairs' global row indices (default 0..N-1, a dataset's
    order), which decide the validation split. `log` receives one dict per epoch. Returns the history."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
    c = torch.as_tensor(np.asarray(c), dtype=torch.float32)
    if z.dim() != 2 or c.dim() != 2 or len(z) != len(c):
        raise ValueError(f"pairs must be z (N, d) and c (N, k) with equal N, got {tuple(z.shape)} and {tuple(c.shape)}")
    if z.shape[1] != model.config.latent_dim or c.shape[1] != model.config.cond_dim:
        raise ValueError(f"pairs have d={z.shape[1]}, k={c.shape[1]}; the translator expects "
                        f"d={model.config.latent_dim}, k={model.config.cond_dim}")
    bad = int((~torch.isfinite(z).all(1) | ~torch.isfinite(c).all(1)).sum())
    if bad:
        raise ValueError(f"{bad} of {len(z)} pairs hold NaN or infinite values: G or f produced them; rebuild the pairs")
    rows = np.arange(len(z)) if rows is None else np.asarray(rows)
    if len(rows) != len(z):
        raise ValueError(f"{len(rows)} row indices for {len(z)} pairs")
    device = next(model.parameters()).device
    (z_tr, c_tr), (z_va, c_va) = split_pairs(z, c, rows, config)
    z_tr, c_tr, z_va, c_va = (t.to(device) for t in (z_tr, c_tr, z_va, c_va))
    fit = TranslatorFit(model, config, steps_per_epoch=math.ceil(len(z_tr) / config.batch_size))
    history = []
    for epoch in range(config.epochs):
        total, count, _ = fit.train_epoch(epoch, (z_tr, c_tr))
        record = {"epoch": epoch + 1, "train_loss": total / max(count, 1)}
        if len(z_va):
            val_total, val_count = fit.evaluate(shuffled_batches(z_va, c_va, 4096))
            record["val_loss"] = val_total / val_count
        history.append(record)
        if log is not None:
            log(record)
    model.eval()
    return history


def train_translator(z: np.ndarray, c: np.ndarray, recipe: TrainingRecipe, metadata: dict | None = None,
                     log: Callable[[str], None] | None = None, **model_extra: Any) -> tuple[Translator, dict]:
    """The recipes' last stage: a translator with the recipe's hyper-parameters, fitted in-process on
    pairs (z, c) given in row order. Returns it with the metadata to save it with: `metadata` (G's
    and f's fingerprints, ...) plus the pairs, the final validation loss and the training config."""
    model_config, train_config = recipe.configs(np.shape(c)[1], np.shape(z)[1], **model_extra)
    translator = create_translator(model_config, train_config.seed)
    history = fit_translator(translator, z, c, train_config, log=(lambda r: log(epoch_line(r))) if log else None)
    meta = {**(metadata or {}), "pairs": len(z), "final_val_loss": history[-1].get("val_loss"),
            "train_config": asdict(train_config)}
    return translator, meta
