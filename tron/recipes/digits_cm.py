"""Recipe: the digits-cm world, a one-step consistency model as G on the digits data.

G is a diffusers `UNet2DModel` trained by consistency *training* (Song et al. 2023, no diffusion
teacher) with the improvements of Song & Dhariwal 2023 (iCT): the target network is the student
itself without gradient, a pseudo-Huber distance, a lognormal choice of noise levels, and a
discretisation curriculum N(k) that doubles from s0 to s1. G(z) is one step from sigma_max * z
(`tron.adapters.consistency`). f is a copy of the digits world's CNN classifier, so that the
judged table compares like with like; the translator is trained on this G's pairs.

    python -m tron.recipes.digits_cm                       # full budget, writes the packaged zoo
    python -m tron.recipes.digits_cm --budget tiny --out /tmp/cm   # seconds, for tests
"""
from __future__ import annotations

import argparse
import copy
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..adapters.consistency import ConsistencyGenerator
from ..encoders import load_encoder
from ..generators import load_generator, save_generator
from ..langevin import LangevinConfig
from ..pairs import generate_pairs
from ..training import TrainingRecipe
from ..world_config import ZOO_ROOT, WorldConfig
from ..zoo.digits import load_digits_images
from .digits import TRANSLATOR_RECIPE, random_shift
from .finish import fit_world_translator


@dataclass
class Budget:
    steps: int  # consistency-training steps
    batch_size: int
    block_out_channels: tuple[int, ...]  # UNet widths, one per resolution
    s1: int  # final number of discretisation steps N of the curriculum
    pairs: int
    translator_epochs: int


BUDGETS = {
    "full": Budget(steps=1500, batch_size=64, block_out_channels=(32, 64, 64), s1=80, pairs=20_000, translator_epochs=20),
    "tiny": Budget(steps=4, batch_size=16, block_out_channels=(8, 16), s1=20, pairs=256, translator_epochs=1),
}

S0 = 10  # initial discretisation steps (iCT)
P_MEAN, P_STD = -1.1, 2.0  # lognormal over noise levels (iCT)
EMA_DECAY = 0.995  # the shipped weights are an exponential moving average of the student's
LR = 3e-4

# Sampling defaults shipped with the world. The 256-d noise latent needs larger steps than the
# VAE's 16-d one: judged TR0N accuracy (30 per digit) was 61 % at step 0.01, 85 % at 0.05, 94 % at 0.1.
DEFAULT_LANGEVIN = LangevinConfig(steps=50, step_size=0.1, noise_std=0.01, prior_weight=0.1)


def unet_config(block_out_channels: tuple[int, ...], side: int = 16) -> dict:
    n = len(block_out_channels)
    return dict(sample_size=side, in_channels=1, out_channels=1, block_out_channels=list(block_out_channels),
                layers_per_block=1, down_block_types=["DownBlock2D"] * n, up_block_types=["UpBlock2D"] * n,
                norm_num_groups=min(8, block_out_channels[0]))


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """The n noise levels sigma_1 < ... < sigma_n of the discretisation (Karras et al. 2022)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    return ((sigma_min ** (1 / rho) + ramp * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho).float()


def discretisation(step: int, total: int, s1: int) -> int:
    """N(k) = min(s0 * 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1)) (iCT)."""
    stage = max(1, math.floor(total / (math.log2(s1 / S0) + 1)))
    return min(S0 * 2 ** (step // stage), s1) + 1


def train_consistency(budget: Budget, seed: int, log) -> ConsistencyGenerator:
    torch.manual_seed(seed)
    x_all, _ = load_digits_images()
    x_all = x_all * 2 - 1  # (N, 1, 16, 16) in [-1, 1]
    model = ConsistencyGenerator(unet_config(budget.block_out_channels))
    model.train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    cfg = model.scheduler.config
    huber_c = 0.00054 * math.sqrt(model.latent_dim)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    t0, running = time.time(), 0.0
    for step in range(budget.steps):
        n = discretisation(step, budget.steps, budget.s1)
        sigmas = karras_sigmas(n, cfg.sigma_min, cfg.sigma_max, cfg.rho)  # (n,)
        log_s = sigmas.log()
        weights = torch.erf((log_s[1:] - P_MEAN) / (math.sqrt(2) * P_STD)) - torch.erf((log_s[:-1] - P_MEAN) / (math.sqrt(2) * P_STD))
        idx = torch.multinomial(weights, budget.batch_size, replacement=True, generator=gen)  # (B,) in [0, n-2]
        x = random_shift(x_all[torch.randint(0, len(x_all), (budget.batch_size,), generator=gen)], gen)
        noise = torch.randn(x.shape, generator=gen)
        s_lo, s_hi = sigmas[idx], sigmas[idx + 1]  # (B,)
        student = model.denoise(x + s_hi.view(-1, 1, 1, 1) * noise, s_hi)
        with torch.no_grad():
            target = model.denoise(x + s_lo.view(-1, 1, 1, 1) * noise, s_lo)
        dist = ((student - target).flatten(1).pow(2).sum(1) + huber_c**2).sqrt() - huber_c  # pseudo-Huber
        loss = (dist / (s_hi - s_lo)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - EMA_DECAY)
        running += float(loss.detach())
        every = max(1, budget.steps // 20)
        if (step + 1) % every == 0 or step == budget.steps - 1:
            log(f"step {step + 1}/{budget.steps}: N={n} loss {running / every:.4f} ({time.time() - t0:.0f} s)")
            running = 0.0
    if budget.steps < 200:  # too few steps for the average to have left its initialisation
        ema.load_state_dict(model.state_dict())
    return ema


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tron.recipes.digits_cm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ZOO_ROOT / "digits-cm", help="world directory to write")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", type=Path, default=ZOO_ROOT / "digits" / "encoder",
                        help="the digits classifier to copy as f (default: the zoo's)")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    log = lambda msg: print(f"[digits-cm recipe] {msg}", flush=True)  # noqa: E731
    t0 = time.time()

    generator = train_consistency(budget, args.seed, log)
    save_generator(generator, args.out / "generator", dtype=torch.float16,
                     metadata={"recipe": "tron.recipes.digits_cm", "budget": args.budget, "steps": budget.steps})
    if (args.out / "encoder").resolve() != args.encoder.resolve():
        shutil.rmtree(args.out / "encoder", ignore_errors=True)
        shutil.copytree(args.encoder, args.out / "encoder")
    generator = load_generator(args.out / "generator")  # exactly what the world will load (fp16-rounded)
    classifier = load_encoder(args.out / "encoder")
    z, c = generate_pairs(generator, classifier, budget.pairs, seed=args.seed + 1, batch_size=500)
    log(f"generated {len(z)} pairs")
    recipe = TRANSLATOR_RECIPE.updated(TrainingRecipe(train={"epochs": budget.translator_epochs, "seed": args.seed}))
    meta, training = fit_world_translator(args.out, z, c, recipe, log)
    WorldConfig(
        name="digits-cm",
        description="scikit-learn 8x8 digits at 16x16: one-step consistency model G (diffusers UNet2DModel, "
                    "consistency training), the digits CNN classifier f, GMM translator",
        langevin=DEFAULT_LANGEVIN,
        judge={"kind": "digits-svm"},
        training={"default": training},
    ).save(args.out)
    log(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return {"final_val_loss": meta["final_val_loss"], "out": str(args.out)}


if __name__ == "__main__":
    main()
