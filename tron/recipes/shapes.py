"""Recipe: re-create the shapes world (CLIP f, GAN G, attribute judge, translator) from fixed seeds.

    python -m tron.recipes.shapes                          # every stage, full budget, the packaged zoo
    python -m tron.recipes.shapes --stage gan              # one stage (clip, gan, judge, translator)
    python -m tron.recipes.shapes --budget tiny --out /tmp/shapes   # seconds, for tests

Stages write their part of the world directory and can be re-run alone; `translator` needs the
generator and encoder in place and writes world.json last. Every image is rendered on the fly
by `tron.zoo.shapes`, every random draw comes from a torch.Generator seeded from --seed.
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import AugmentConfig
from ..captioners import BANK_SCHEME, save_captioner, write_bank
from ..clip import OpenClipEncoder, create_open_clip, save_open_clip
from ..components import component_fingerprint, load_captioner_spec
from ..encoders import load_encoder
from ..generators import load_generator, save_generator
from ..langevin import LangevinConfig
from ..pairs import condition_scale, generate_columns
from ..training import TrainingRecipe
from ..world_config import ZOO_ROOT, WorldConfig
from ..zoo import shapes as S
from ..zoo.shapes.judge import AttributeCNN, load_attribute_cnn, save_attribute_cnn
from .finish import save_world_translator, train_world_translator

Log = Callable[[str], None]
STAGES = ("clip", "judge", "gan", "captioner", "translator")  # the order they run in


@dataclass
class Budget:
    clip_steps: int
    clip_batch: int
    gan_steps: int
    gan_batch: int
    judge_steps: int
    judge_batch: int
    pairs: int
    translator_epochs: int
    translator_hidden: int
    clip_model: str  # name of the open_clip architecture in CLIP_CONFIGS
    gan_width: int
    latent_gan_steps: int
    gan_codes: int  # real images whose codes the latent GAN learns
    judge_width: int
    captioner_width: int
    measure_samples: int  # unconditional GAN samples the judge measures
    retrieval_images: int  # fresh images for the CLIP caption retrieval check
    judge_reference_samples: int = 20_000  # G's own samples the judge reads once, the reference of its diversity measures


# The zoo CLIP's architecture, an open_clip model config. The token embedding (49,408 x text
# width) is most of its size, hence the narrow text tower; it is stored in float16.
CLIP_CONFIGS = {
    "tron-shapes-clip": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 128, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
    },
    "tron-shapes-clip-tiny": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1, "mlp_ratio": 2.0},
    },
}

BUDGETS = {
    "full": Budget(clip_steps=500, clip_batch=256, gan_steps=12_000, gan_batch=128, judge_steps=600, judge_batch=128,
                   pairs=100_000, translator_epochs=40, translator_hidden=256, clip_model="tron-shapes-clip",
                   gan_width=32, latent_gan_steps=300_000, gan_codes=50_000, judge_width=32, captioner_width=24, measure_samples=10_000,
                   retrieval_images=500),
    "tiny": Budget(clip_steps=2, clip_batch=8, gan_steps=2, gan_batch=8, judge_steps=2, judge_batch=8,
                   pairs=64, translator_epochs=1, translator_hidden=16, clip_model="tron-shapes-clip-tiny",
                   gan_width=4, latent_gan_steps=2, gan_codes=64, judge_width=4, captioner_width=4, measure_samples=16,
                   retrieval_images=16, judge_reference_samples=1_000),
}

# Sampling defaults shipped in world.json and the encoder's energy augmentations: chosen by the
# measurements in docs/shapes.md.
# 4 views of +-2 px shifts; each chain's gradient clipped to norm 1 (benchmarks/results/langevin_ablation:
# 95.0 % full captions against 92.9 % unclipped; fresh views, 8 views and momentum 0.9 changed < 1.3 points)
DEFAULT_AUGMENT = AugmentConfig(num=4, translation=2 / 32, fresh=False)
# z0 one of 16 translator draws, resampled with probability softmax(-E / 0.03) by f's plain energy
# (benchmarks/frontier.py, docs/results.md): f rejects the draws that miss what a prompt names, and the
# pick keeps the draws' spread over what it leaves open. Keeping f's favourite draw instead (temperature
# 0, at std scale 0.15: partial prompts 96.1 % right at T=0) kept 0.55 of G's spread over the open attributes.
# 5 Langevin steps, not 25: with f resampling the draws, more steps cost 4x and moved partial prompts from
# 97.7 % right (T=5) to 95.9 % (T=25) at the same spread; they stay for conditions the translator never
# saw (weighted prompts, interpolations).
DEFAULT_LANGEVIN = LangevinConfig(candidates=16, candidate_temperature=0.03, steps=5, step_size=0.05, noise_std=0.01,
                                  prior_weight=0.01, grad_clip=1.0, augment=DEFAULT_AUGMENT)
# The translator's shared std is close to 1 in every latent direction (p(z|c) of a GAN behind a
# mapping network is not axis-aligned), so z0 is drawn from the mixture with its std scaled by this:
# broad enough to vary what a prompt leaves open, narrow enough that f's resampling finds right draws.
TRANSLATOR_STD_SCALE = 0.75
# Gaussian noise on CLIP image embeddings while training the translator, in the raw embedding's units
# (TR0N's: 0.2, and 0.5 for its LAION ViT-B-32 run); a unit embedding gets COND_NOISE_STD / condition_scale.
COND_NOISE_STD = 1.0  # benchmarks/noise_scale.py: the best full-caption accuracy of 0, 0.2, 0.5, 1, 2, 4
# The translators' hyper-parameters (world.json "training" records them per kind with the epochs and seed).
TRANSLATOR_HYPERPARAMETERS = {"hidden_dim": 256, "num_blocks": 2, "num_components": 10, "head": "gmm",
                              "normalize_condition": True}
TRANSLATOR_TRAINING = {"batch_size": 256, "lr": 1e-3}
# Text prompts go through the translator trained on captions of G's samples; which captioner writes
# them was chosen by benchmarks/caption_route.py ("trained": the attribute captioner; "bank": f ranking
# the caption bank). The bank won every column (partial prompts T=25 76.9 % against 76.4 %, full
# captions 92.9 % against 92.0 %; docs/results.md) and needs no model but f.
CAPTIONER = "bank"
CAPTION_BANK = "caption_bank.json"


# ----------------------------------------------------------------------------------------------
# Training-only pieces: the degradation of renders, the autoencoder's encoder, the GAN's critic


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


class CodeCritic(nn.Module):
    """Training-time critic on packs of codes (PacGAN): seeing several samples at once makes a
    generator that covers only some of the 210 combinations easy to tell apart. Spectral
    normalisation keeps it smooth enough for a hinge loss."""

    def __init__(self, code_dim: int = 16, width: int = 256, pack: int = 4) -> None:
        super().__init__()
        self.pack = pack
        self.net = S.mlp([code_dim * pack, width, width, width, 1])
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, code: torch.Tensor) -> torch.Tensor:  # (B, k) -> (B / pack,)
        return self.net(code.reshape(len(code) // self.pack, -1)).squeeze(1)


# ----------------------------------------------------------------------------------------------
# The judge's attribute CNN


def fit_attribute_heads(model: nn.Module, steps: int, batch: int, gen: torch.Generator, log: Log, what: str) -> nn.Module:
    """The judge's CNN and the captioner learn the same task: the four attributes of freshly
    rendered, degraded images (one cross-entropy per head), with AdamW and a one-cycle schedule."""
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(1, steps))
    for step in range(steps):
        model.train()
        x, attrs = S.sample_images(batch, gen)
        loss = sum(F.cross_entropy(lg, attrs[:, i]) for i, lg in enumerate(model(degrade(x, gen))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"{what} step {step + 1}/{steps}: loss {float(loss.detach()):.4f}")
    return model.eval()


def train_judge(steps: int, batch: int, seed: int, log: Log, width: int = 32,
                held_out: int = 5000) -> tuple[AttributeCNN, dict]:
    """Train on freshly rendered, degraded images; held-out accuracy on unseen clean and
    degraded renders."""
    torch.manual_seed(seed)
    judge = fit_attribute_heads(AttributeCNN(width), steps, batch, torch.Generator().manual_seed(seed), log, "judge")
    test_gen = torch.Generator().manual_seed(seed + 10_000)  # unseen images
    x, attrs = S.sample_images(held_out, test_gen)
    metrics = {}
    for name, images in (("clean", x), ("degraded", degrade(x, test_gen))):
        pred, _ = judge.judge(images)
        correct = pred == attrs
        metrics[f"held_out_{name}_all"] = float(correct.all(1).float().mean())
        for i, attr in enumerate(S.ATTRIBUTE_NAMES):
            metrics[f"held_out_{name}_{attr}"] = float(correct[:, i].float().mean())
    log("judge held-out accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.endswith("_all")))
    return judge, metrics


# ----------------------------------------------------------------------------------------------
# GAN generator


def train_autoencoder(steps: int, batch: int, seed: int, log: Log, code_dim: int = 16, width: int = 32,
                      code_noise: float = 0.15) -> tuple[ShapesEncoder, S.ShapesDecoder]:
    """Stage 1 of the latent GAN: an autoencoder on fresh renders. Noise on the (standardised)
    codes makes the decoder draw clean shapes from codes near, not only at, those of real
    images, so that the mapping network need not hit them exactly."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc, dec = ShapesEncoder(code_dim, width), S.ShapesDecoder(code_dim, width)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(1, steps), pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        x, _ = S.sample_images(batch, gen)
        code = enc(x)
        noisy = code + code_noise * torch.randn(code.shape, generator=gen)
        rec = F.binary_cross_entropy_with_logits(dec(noisy), x, reduction="sum") / batch
        opt.zero_grad(set_to_none=True)
        rec.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"autoencoder step {step + 1}/{steps}: reconstruction {float(rec.detach()):.2f} ({time.time() - t0:.0f} s)")
    return enc.eval(), dec.eval()


def train_latent_gan(codes: torch.Tensor, mapping: torch.nn.Module, steps: int, batch: int, gen: torch.Generator,
                     log: Log, latent_dim: int, pack: int = 4, ema_decay: float = 0.999, decay_from: float = 0.5,
                     lr: float = 1e-3,
                     callback: Callable[[int, torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """Stage 2: hinge-loss GAN in code space between N(0, I) through `mapping` and the codes of
    real images, with a spectral-normalised critic on packs of codes. Returns an exponential
    moving average of the mapping network. Steps are cheap (MLPs on 16-d codes), so it can
    afford the tens of thousands that sharp boundaries between the 210 combinations need.
    After `decay_from` of the steps both learning rates fall linearly to zero."""
    critic = CodeCritic(codes.shape[1], 256, pack)
    ema = copy.deepcopy(mapping).eval()
    opt_g = torch.optim.Adam(mapping.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.0, 0.9))
    batch -= batch % pack
    decay_start = int(decay_from * steps)
    schedule = lambda step: 1.0 if step < decay_start else max(0.0, (steps - step) / max(1, steps - decay_start))  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in (opt_g, opt_c)]
    t0 = time.time()
    for step in range(steps):
        real = codes[torch.randint(0, len(codes), (batch,), generator=gen)]
        fake = mapping(torch.randn(batch, latent_dim, generator=gen))
        loss_c = F.relu(1 - critic(real)).mean() + F.relu(1 + critic(fake.detach())).mean()
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        opt_c.step()
        loss_g = -critic(fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for sched in scheds:
            sched.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), mapping.parameters()):
                pe.lerp_(p, 1 - decay)
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"latent gan step {step + 1}/{steps}: critic {float(loss_c.detach()):.3f} ({time.time() - t0:.0f} s)")
            if callback is not None:
                callback(step + 1, ema)
    return ema


def generator_from_autoencoder(enc: ShapesEncoder, dec: S.ShapesDecoder, steps: int, seed: int, log: Log,
                               latent_dim: int = 32, num_codes: int = 50_000,
                               callback: Callable[[int, torch.nn.Module], None] | None = None) -> S.ShapesGenerator:
    """Codes of fresh renders, then the adversarially trained mapping in front of the decoder."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        codes = torch.cat([enc(S.sample_images(min(1000, num_codes - i), gen)[0]) for i in range(0, num_codes, 1000)])
    code_dim = codes.shape[1]
    torch.manual_seed(seed)
    g = S.ShapesGenerator(latent_dim, code_dim, dec.width)
    g.decoder.load_state_dict(dec.state_dict())
    g.code_mean.copy_(codes.mean(0))
    g.code_std.copy_(codes.std(0))
    g.mapping = train_latent_gan((codes - g.code_mean) / g.code_std, g.mapping, steps, 256, gen, log, latent_dim,
                                 callback=callback)
    return g.eval()


def train_gan(steps: int, batch: int, seed: int, log: Log, latent_dim: int = 32, code_dim: int = 16,
              width: int = 32, latent_gan_steps: int | None = None, num_codes: int = 50_000) -> S.ShapesGenerator:
    """The latent GAN: autoencoder (`steps`), then the mapping network (`latent_gan_steps`)."""
    enc, dec = train_autoencoder(steps, batch, seed, log, code_dim, width)
    return generator_from_autoencoder(enc, dec, latent_gan_steps if latent_gan_steps is not None else steps,
                                      seed + 1, log, latent_dim, num_codes)


@torch.no_grad()
def measure_generator(g: S.ShapesGenerator, judge: AttributeCNN, n: int = 10_000, seed: int = 123,
                      threshold: float = 0.9) -> dict:
    """Unconditional quality by the judge: share of recognisable samples (every attribute head
    at least `threshold` confident) and how many of the 210 combinations they cover."""
    gen = torch.Generator().manual_seed(seed)
    preds, confs = [], []
    for start in range(0, n, 1000):
        x = g.decode(g.sample_latents(min(1000, n - start), gen))  # (b, 3, 32, 32)
        p, c = judge.judge(x)
        preds.append(p)
        confs.append(c)
    pred, conf = torch.cat(preds), torch.cat(confs)
    ok = (conf >= threshold).all(1)
    counts = torch.bincount(S.combination_index(pred[ok]), minlength=S.NUM_COMBINATIONS)
    return {
        "samples": n,
        "threshold": threshold,
        "recognisable": float(ok.float().mean()),
        "combinations_covered": int((counts > 0).sum()),
        "min_count_per_combination": int(counts.min()),
        "max_count_per_combination": int(counts.max()),
        "per_attribute_marginals": {
            name: torch.bincount(pred[ok][:, i], minlength=k).tolist()
            for i, (name, k) in enumerate(zip(S.ATTRIBUTE_NAMES, S.NUM_VALUES))
        },
    }


# ----------------------------------------------------------------------------------------------
# CLIP


def caption_matches(attrs: torch.Tensor, caption_attrs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: image i fits caption j when every attribute caption j names is image i's.
    attrs (B, 4) of the images; caption_attrs (B, 4) and keep (B, 4) of the captions."""
    same = attrs.unsqueeze(1) == caption_attrs.unsqueeze(0)  # (B, B, 4)
    return (same | ~keep.unsqueeze(0)).all(-1)


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                     matches: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE with several positives: a partial caption ("a red shape") fits
    every red image in the batch, so its targets spread over all of them instead of treating
    them as negatives."""
    logits = logit_scale * image_features @ text_features.T  # (B, B)
    m = matches.float()
    image_to_text = -(m / m.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(m / m.sum(0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


@torch.no_grad()
def caption_retrieval(encoder: OpenClipEncoder, n: int = 500, seed: int = 10_001) -> dict:
    """Zero-shot retrieval: for fresh images, is the nearest of all 210 full captions the right one?"""
    gen = torch.Generator().manual_seed(seed)
    x, attrs = S.sample_images(n, gen)
    text = encoder.condition_from_text(S.full_captions())  # (210, D)
    pred = (encoder.encode(x) @ text.T).argmax(1)
    correct = pred == S.combination_index(attrs)
    wrong = S.all_combinations()[pred] != attrs
    return {
        "images": n,
        "captions": S.NUM_COMBINATIONS,
        "accuracy": float(correct.float().mean()),
        **{f"attribute_error_{name}": float(wrong[:, i].float().mean()) for i, name in enumerate(S.ATTRIBUTE_NAMES)},
    }


def train_clip(steps: int, batch: int, seed: int, model_name: str, directory: Path, log: Log) -> OpenClipEncoder:
    """Contrastive training on rendered images and captions with attribute dropout."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = create_open_clip(model_name, CLIP_CONFIGS[model_name], directory)
    model = encoder.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=max(1, steps), pct_start=0.1)
    token_cache: dict[str, torch.Tensor] = {}

    def tokenize(texts: list[str]) -> torch.Tensor:
        missing = [t for t in set(texts) if t not in token_cache]
        if missing:
            token_cache.update(zip(missing, encoder.tokenizer(missing)))
        return torch.stack([token_cache[t] for t in texts])

    t0 = time.time()
    for step in range(steps):
        x, attrs = S.sample_images(batch, gen)
        # Mild blur and noise: G's samples are never quite as clean as the renderer's.
        x = degrade(x, gen, max_blur=0.7, max_noise=0.03)
        texts, keep = S.random_captions(attrs, gen)
        image_features = F.normalize(model.encode_image(encoder.preprocess(x)), dim=-1)
        text_features = F.normalize(model.encode_text(tokenize(texts)), dim=-1)
        loss = contrastive_loss(image_features, text_features, model.logit_scale.exp().clamp(max=100),
                                caption_matches(attrs, attrs, keep))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"clip step {step + 1}/{steps}: loss {float(loss.detach()):.4f} ({time.time() - t0:.0f} s)")
    return encoder.eval()


# ----------------------------------------------------------------------------------------------
# Translator and the world file


def train_captioner(steps: int, batch: int, seed: int, log: Log, width: int = 24,
                    held_out: int = 5000) -> tuple[S.ShapesCaptioner, dict]:
    """The attribute captioner, trained on the renderer's labels (degraded renders, as G's samples are
    never quite clean); held-out accuracy on unseen renders. Seeded apart from the judge's."""
    torch.manual_seed(seed)
    model = fit_attribute_heads(S.ShapesCaptioner(width), steps, batch, torch.Generator().manual_seed(seed), log, "captioner")
    test_gen = torch.Generator().manual_seed(seed + 10_000)
    x, attrs = S.sample_images(held_out, test_gen)
    correct = model.attributes(degrade(x, test_gen)) == attrs
    metrics = {"held_out_degraded_all": float(correct.all(1).float().mean()),
               **{f"held_out_degraded_{a}": float(correct[:, i].float().mean()) for i, a in enumerate(S.ATTRIBUTE_NAMES)}}
    log(f"captioner held-out accuracy (degraded renders): {metrics['held_out_degraded_all']:.4f}")
    return model, metrics


def write_caption_bank(out: Path) -> Path:
    return write_bank(out / CAPTION_BANK, S.caption_bank())


def captioner_spec(out: Path, which: str) -> str:
    """The spec of the world's captioner: the trained one (a subdirectory) or f ranking the bank."""
    return str(out / "captioner") if which == "trained" else f"{BANK_SCHEME}:{out / CAPTION_BANK}"


def make_pairs(out: Path, pairs: int, seed: int, captioner: str | None, log: Log) -> dict:
    """(z, f's image embedding c[, caption and its text embedding]) of `pairs` samples of G."""
    generator, encoder = load_generator(out / "generator"), load_encoder(out / "encoder")
    cap = load_captioner_spec(captioner, encoder) if captioner else None
    t0 = time.time()
    cols = generate_columns(generator, encoder, pairs, seed=seed, batch_size=1000, captioner=cap)
    log(f"generated {pairs} pairs{' with captions' if cap else ''} in {time.time() - t0:.0f} s")
    cols["condition_scale"] = condition_scale(generator, encoder, 512)
    return cols


def translator_recipe(kind: str, epochs: int, hidden: int, seed: int, condition_scale: float = 1.0) -> TrainingRecipe:
    """The world's three translators: text prompts from captions' text embeddings (no noise, as the
    reference trains on captions), the noise route on image embeddings (the world's default, any
    CLIP embedding), and the image translator (no noise: semantic variations)."""
    noise = {"default": COND_NOISE_STD, "text": 0.0, "image": 0.0}[kind]
    return TrainingRecipe(translator={**TRANSLATOR_HYPERPARAMETERS, "hidden_dim": hidden},
                          train={**TRANSLATOR_TRAINING, "epochs": epochs, "seed": seed, "cond_noise_std": noise,
                                 "condition_scale": condition_scale})


def train_kind(out: Path, cols: dict, kind: str, epochs: int, hidden: int, seed: int, log: Log,
               recipe: dict | None = None, captioner: str | None = None) -> tuple:
    """The world's translator for one kind of condition, trained on its column of the pairs:
    (translator, metadata) (tron.recipes.finish)."""
    metadata = {**(recipe or {}), "kind": kind}
    if kind == "text":
        metadata.update(captioner=captioner_record(out, captioner),
                        captioner_fingerprint=component_fingerprint(captioner, "captioner"))
    column = "c_caption" if kind == "text" else "c"
    return train_world_translator(out, cols["z"], cols[column], translator_recipe(kind, epochs, hidden, seed, cols["condition_scale"]),
                                  log, metadata)


def captioner_record(out: Path, spec: str) -> str:
    """The captioner's spec as world.json records it (relative to the world directory)."""
    return spec.replace(str(out) + "/", "")


def write_world_file(out: Path, training: dict | None = None, captioner: str | None = None,
                     judge_reference_samples: int = 20_000) -> None:
    translators = {"default": "translator", "image": "translator-image"}
    if captioner:
        translators["text"] = "translator-text"
    WorldConfig(
        name="shapes",
        description="procedural 32x32 shapes: latent GAN G, open_clip CLIP f (text and image conditions), GMM translators "
                    "(text prompts: trained on captions of G's samples)",
        langevin=DEFAULT_LANGEVIN,
        translator_std_scale=TRANSLATOR_STD_SCALE,
        captioner=captioner,
        translators=translators,
        judge={"kind": "shapes-attributes", "path": "judge", "reference_samples": judge_reference_samples},
        training=training or {},
    ).save(out)


def gan_stage(out: Path, budget: Budget, seed: int, recipe: dict, log: Log) -> dict:
    """Train G (at one thread: the stage is bit-for-bit reproducible only at a fixed thread count),
    judged by the attribute CNN when the judge stage has run."""
    t = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    generator = train_gan(budget.gan_steps, budget.gan_batch, seed, log, width=budget.gan_width,
                          latent_gan_steps=budget.latent_gan_steps, num_codes=budget.gan_codes)
    meta, results = dict(recipe), {}
    if (out / "judge" / "config.json").is_file():
        quality = measure_generator(generator, load_attribute_cnn(out / "judge"), n=budget.measure_samples)
        log(f"GAN: {quality['recognisable']:.1%} recognisable, {quality['combinations_covered']}/{S.NUM_COMBINATIONS} "
            f"combinations in {quality['samples']} samples")
        meta["judged_quality"] = results["gan_quality"] = quality
    save_generator(generator, out / "generator", metadata=meta)
    torch.set_num_threads(threads)
    return {**results, "gan_seconds": time.time() - t}


def translator_stage(out: Path, budget: Budget, seed: int, recipe: dict, log: Log) -> dict:
    """Pairs of G and f (captioned by the world's captioner), a translator per kind of condition, world.json."""
    t = time.time()
    spec = captioner_spec(out, CAPTIONER)
    cols = make_pairs(out, budget.pairs, seed, spec, log)
    training, results = {}, {}
    for kind, directory in (("default", "translator"), ("text", "translator-text"), ("image", "translator-image")):
        translator, meta = train_kind(out, cols, kind, budget.translator_epochs, budget.translator_hidden, seed, log,
                                      recipe, spec)
        training[kind] = save_world_translator(out, directory, translator, meta)
        results[f"translator_{kind}"] = {"final_val_loss": meta["final_val_loss"]}
    write_world_file(out, training, captioner_record(out, spec), budget.judge_reference_samples)
    return {**results, "translator_seconds": time.time() - t}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tron.recipes.shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ZOO_ROOT / "shapes", help="world directory to write")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    parser.add_argument("--stage", choices=STAGES, action="append",
                        help="stage to run (repeat for several; default: all, in order clip, judge, gan, captioner, translator)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    stages = args.stage or list(STAGES)
    out: Path = args.out
    log = lambda msg: print(f"[shapes recipe] {msg}", flush=True)  # noqa: E731
    recipe = {"recipe": "tron.recipes.shapes", "budget": args.budget, "seed": args.seed}
    results: dict = {"out": str(out)}
    t0 = time.time()

    if "clip" in stages:
        t = time.time()
        encoder = train_clip(budget.clip_steps, budget.clip_batch, args.seed, budget.clip_model, out / "encoder", log)
        retrieval = caption_retrieval(encoder, n=budget.retrieval_images)
        log(f"CLIP caption retrieval over all {S.NUM_COMBINATIONS} full captions: {retrieval['accuracy']:.1%} "
            f"on {retrieval['images']} fresh images ({time.time() - t:.0f} s)")
        save_open_clip(encoder, out / "encoder", metadata={**recipe, "caption_retrieval": retrieval})
        results["clip"] = {"caption_retrieval": retrieval, "seconds": time.time() - t}

    if "judge" in stages:
        t = time.time()
        judge, metrics = train_judge(budget.judge_steps, budget.judge_batch, args.seed, log, budget.judge_width,
                                     held_out=5000 if args.budget == "full" else 16)
        save_attribute_cnn(judge, out / "judge", metadata={**recipe, **metrics})
        results["judge"] = {**metrics, "seconds": time.time() - t}

    if "gan" in stages:
        results.update(gan_stage(out, budget, args.seed + 2, recipe, log))

    if "captioner" in stages:
        t = time.time()
        captioner, metrics = train_captioner(budget.judge_steps, budget.judge_batch, args.seed + 4, log, budget.captioner_width,
                                             held_out=5000 if args.budget == "full" else 16)
        save_captioner(captioner, out / "captioner", metadata={**recipe, **metrics})
        write_caption_bank(out)
        results["captioner"] = {**metrics, "seconds": time.time() - t}

    if "translator" in stages:
        results.update(translator_stage(out, budget, args.seed + 3, recipe, log))

    log(f"wrote {out} ({', '.join(stages)}) in {time.time() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
