"""Recipe: re-create the digits world (G, f, translator) from fixed seeds.

    python -m tron.recipes.digits                 # full budget, writes the packaged zoo
    python -m tron.recipes.digits --budget tiny --out /tmp/digits   # seconds, for tests
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import read_config
from ..encoders import load_encoder, save_encoder
from ..generators import load_generator, save_generator
from ..langevin import LangevinConfig
from ..pairs import generate_pairs
from ..training import TrainingRecipe
from ..world_config import ZOO_ROOT, WorldConfig
from ..zoo.digits import DigitsClassifier, DigitsDecoder, load_digits_images, split_digits
from .finish import fit_world_translator


@dataclass
class Budget:
    vae_epochs: int
    classifier_epochs: int
    pairs: int
    translator_epochs: int


BUDGETS = {
    "full": Budget(vae_epochs=400, classifier_epochs=60, pairs=100_000, translator_epochs=20),
    "tiny": Budget(vae_epochs=2, classifier_epochs=2, pairs=512, translator_epochs=2),
}

# Default sampling settings shipped with the world (measured in the README's quality table).
# Chosen by the quality-against-compute sweep judged with the SVM (benchmarks/results/
# quality_vs_compute/sweep_digits.md): 25 steps of 0.03 match 50 of 0.01 in accuracy and
# diversity with half the evaluations; much larger steps collapse diversity towards prototypes.
DEFAULT_LANGEVIN = LangevinConfig(steps=25, step_size=0.03, noise_std=0.01, prior_weight=0.1)
# The translator learns p(z | y) from one-hot labels drawn from f(G(z))^(1/T) (see TrainConfig).
TRANSLATOR_RECIPE = TrainingRecipe(translator={"hidden_dim": 256, "num_blocks": 2, "num_components": 10, "head": "gmm"},
                                   train={"batch_size": 256, "lr": 1e-3, "sample_labels": True, "label_temperature": 0.5})


class DigitsVAE(nn.Module):
    """Training-time wrapper: a conv encoder q(z|x) plus the decoder G."""

    def __init__(self, latent_dim: int = 16, width: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width // 2, 3, 2, 1), nn.ReLU(),  # 8x8
            nn.Conv2d(width // 2, width, 3, 2, 1), nn.ReLU(),  # 4x4
            nn.Flatten(),
            nn.Linear(width * 16, 2 * latent_dim),
        )
        self.decoder = DigitsDecoder(latent_dim, width)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.decoder.logits(z), x, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return rec + beta * kl


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Augmentation: translate each image by up to max_shift pixels (zero fill)."""
    pad = F.pad(x, [max_shift] * 4)
    out = torch.empty_like(x)
    offs = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=gen)
    h, w = x.shape[-2:]
    for i, (dy, dx) in enumerate(offs.tolist()):
        out[i] = pad[i, :, dy:dy + h, dx:dx + w]
    return out


def train_vae(epochs: int, seed: int, log) -> DigitsVAE:
    torch.manual_seed(seed)
    x, _ = load_digits_images()
    vae = DigitsVAE(latent_dim=16, width=64)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), 128):
            loss = vae.loss(x[perm[start:start + 128]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(perm[start:start + 128])
        sched.step()
        if (epoch + 1) % max(1, epochs // 10) == 0 or epoch == epochs - 1:
            log(f"vae epoch {epoch + 1}/{epochs}: loss {total / len(x):.2f}")
    return vae.eval()


def train_classifier(epochs: int, seed: int, log) -> tuple[DigitsClassifier, float]:
    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = split_digits(seed)
    clf = DigitsClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        clf.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        for start in range(0, len(x_tr), 64):
            idx = perm[start:start + 64]
            xb = random_shift(x_tr[idx], gen)
            loss = F.cross_entropy(clf.logits(xb), y_tr[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    with torch.no_grad():
        acc = float((clf.logits(x_te).argmax(1) == y_te).float().mean())
    log(f"classifier: held-out accuracy {acc:.4f} on {len(x_te)} digits")
    return clf, acc


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tron.recipes.digits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ZOO_ROOT / "digits", help="world directory to write")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only-translator", action="store_true",
                        help="keep the G and f already in --out; retrain the translator only")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    log = lambda msg: print(f"[digits recipe] {msg}", flush=True)  # noqa: E731
    t0 = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    if args.only_translator:
        generator, classifier = load_generator(args.out / "generator"), load_encoder(args.out / "encoder")
        acc = float(read_config(args.out / "encoder")["metadata"]["held_out_accuracy"])
    else:
        vae = train_vae(budget.vae_epochs, args.seed, log)
        generator = vae.decoder
        save_generator(generator, args.out / "generator", metadata={"recipe": "tron.recipes.digits", "budget": args.budget})
        classifier, acc = train_classifier(budget.classifier_epochs, args.seed, log)
        save_encoder(classifier, args.out / "encoder", metadata={"held_out_accuracy": acc, "budget": args.budget})

    for p in list(generator.parameters()) + list(classifier.parameters()):
        p.requires_grad_(False)
    z, c = generate_pairs(generator, classifier, budget.pairs, seed=args.seed + 1, batch_size=1024)
    log(f"generated {len(z)} pairs")

    recipe = TRANSLATOR_RECIPE.updated(TrainingRecipe(train={"epochs": budget.translator_epochs, "seed": args.seed}))
    meta, training = fit_world_translator(args.out, z, c, recipe, log)
    WorldConfig(
        name="digits",
        description="scikit-learn 8x8 digits at 16x16: VAE decoder G, CNN classifier f, GMM translator",
        langevin=DEFAULT_LANGEVIN,
        judge={"kind": "digits-svm"},
        training={"default": training},
        metrics={"classifier_held_out_accuracy": acc},
    ).save(args.out)
    log(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return {"classifier_accuracy": acc, "final_val_loss": meta["final_val_loss"], "out": str(args.out)}


if __name__ == "__main__":
    main()
