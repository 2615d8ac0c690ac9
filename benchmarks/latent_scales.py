"""Latents that mix scales: does the translator need per-dimension standardisation, or a separate
deterministic head for the small-scale part? (BigGAN's latent is w = (z, e): z ~ N(0, I) clamped
to +-2, e = E y a class embedding whose coordinates are ~100x smaller.)

A synthetic BigGAN-like latent, so that the answer is checkable: z in R^16 ~ N(0, I); e = E[y] in
R^16 with E ~ N(0, 0.02^2) over 100 classes; the condition is f's one-hot class y. A translator
q(w | y) must get e exactly (it is a function of y) and z as the prior. For each variant, on
held-out conditions: how often the sampled e is nearest to the right class embedding, e's error
relative to the typical distance between class embeddings, and the z part's spread (1 = the prior's).

    plain          the GMM translator on w as it is
    standardised   the GMM translator on (w - mean) / std per dimension, statistics from the pairs
    split head     the GMM over z and a deterministic (MSE) head for e, the authors' BigGAN translator

    .venv/bin/python benchmarks/latent_scales.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402


def data(n: int, classes: int, dz: int, de: int, scale: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    embed = scale * torch.randn(classes, de, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    z = torch.randn(n, dz, generator=g).clamp(-2, 2)
    return torch.cat([z, embed[y]], 1), torch.nn.functional.one_hot(y, classes).float(), embed


def main(argv=None) -> None:
    from tron.evaluation import markdown_table
    from tron.training import TrainConfig, fit_translator
    from tron.translator import Translator, TranslatorConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--scale", type=float, default=0.02, help="std of the class embedding's coordinates")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.epochs = 2000, 1
    classes, dz, de = 100, 16, 16
    w, c, embed = data(args.pairs, classes, dz, de, args.scale, 0)
    w_test, c_test, _ = data(2000, classes, dz, de, args.scale, 1)
    spacing = torch.cdist(embed, embed)[~torch.eye(classes, dtype=torch.bool)].mean()
    train = TrainConfig(epochs=args.epochs, batch_size=256, lr=1e-3, seed=0)
    rows = []
    for variant in ("plain", "standardised", "split head"):
        torch.manual_seed(0)
        target, cond = w, c
        mean, std = torch.zeros(dz + de), torch.ones(dz + de)
        if variant == "standardised":
            mean, std = w.mean(0), w.std(0)
            target = (w - mean) / std
        gmm = Translator(TranslatorConfig(cond_dim=classes, latent_dim=dz if variant == "split head" else dz + de,
                                          hidden_dim=256, num_blocks=2, num_components=10))
        fit_translator(gmm, target[:, :dz] if variant == "split head" else target, cond, train)
        head = None
        if variant == "split head":
            head = Translator(TranslatorConfig(cond_dim=classes, latent_dim=de, hidden_dim=256, num_blocks=2, head="mse"))
            fit_translator(head, w[:, dz:], cond, train)
        rng = torch.Generator().manual_seed(2)
        with torch.no_grad():
            s = gmm.sample(c_test, rng=rng)
            if head is not None:
                s = torch.cat([s, head.sample(c_test)], 1)
            s = s * std + mean
        e, y = s[:, dz:], c_test.argmax(1)
        right = (torch.cdist(e, embed).argmin(1) == y).float().mean()
        err = (e - embed[y]).norm(dim=1).mean() / spacing
        rows.append({"variant": variant, "class_from_e": float(right), "e_error": float(err),
                     "z_spread": float(s[:, :dz].std(0).mean() / w_test[:, :dz].std(0).mean())})
        print(rows[-1], flush=True)
    print(f"\n{args.pairs} pairs, {args.epochs} epochs, class-embedding std {args.scale} (z: N(0, 1) clamped at 2)\n")
    print(markdown_table(rows, [("variant", "translator", ""), ("class_from_e", "sampled e nearest to its class", ".1%"),
                                ("e_error", "e error / class spacing", ".3f"), ("z_spread", "z spread / prior", ".2f")]))


if __name__ == "__main__":
    main()
