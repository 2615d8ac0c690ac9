"""The CLIP-noise scale of the translator, swept on zoo:shapes (issue: TR0N as its authors run it).

TR0N adds Gaussian noise of std sigma to the *raw* CLIP image embedding while training the
translator, so that text embeddings work at test time. The pairs hold unit embeddings; the noise a
unit embedding gets is sigma / condition_scale, with condition_scale the mean raw norm of f's image
embeddings (recorded in the dataset manifest; ~10 for the zoo CLIP). For each sigma this trains the
world's translator architecture on the same pairs and measures, with the attribute judge (not f):
translator-only and TR0N all-attribute accuracy on full captions and partial prompts, the cosine of
a noisy training condition with its clean one, and the learned std. sigma = 0 is the image
translator (no noise). The world's own std scale and Langevin settings are used for sampling.

    .venv/bin/python benchmarks/noise_scale.py                      # sigma 0, 0.2, 0.5, 1, 2, 4
    .venv/bin/python benchmarks/noise_scale.py --quick              # smoke test
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "noise_scale"
COLUMNS = [("sigma", "sigma (raw units)", ".2f"), ("unit_noise", "noise on unit c", ".4f"),
           ("clean_cosine", "cos(noisy, clean)", ".3f"), ("std", "learned std (mean)", ".3f"),
           ("val_nll", "val NLL", ".3f"), ("translator_full", "translator only, full", ".1%"),
           ("tron_full", "TR0N, full", ".1%"), ("translator_partial", "translator only, partial", ".1%"),
           ("tron_partial", "TR0N, partial", ".1%"), ("image_variation", "image variation keeps", ".1%")]


# Long: the benchmark is one script: pairs, one translator per noise scale, judge, write the table.
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:shapes")
    p.add_argument("--sigmas", default="0,0.2,0.5,1,2,4")
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=None, help="default: the world's training recipe")
    p.add_argument("--full", type=int, default=70, help="full captions (every 3rd of the 210)")
    p.add_argument("--partial", type=int, default=59, help="partial prompts")
    p.add_argument("--per-prompt", type=int, default=4)
    p.add_argument("--std-scale", type=float, default=None, help="default: the world's")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.sigmas, args.pairs, args.epochs, args.full, args.partial, args.per_prompt = "0,0.5", 2000, 1, 4, 3, 1

    from tron import conditions
    from tron.evaluation import Method, markdown_table
    from tron.judges import load_judge
    from tron.pairs import condition_scale, generate_pairs
    from tron.training import TrainConfig, fit_translator
    from tron.translator import Translator, TranslatorConfig
    from tron.world import load_world
    from tron.zoo import shapes

    world = load_world(args.world)
    judge = load_judge(world)
    scale = condition_scale(world.generator, world.encoder, 512)
    recipe = world.config.training
    model_cfg = TranslatorConfig(cond_dim=world.encoder.embed_dim, latent_dim=world.generator.latent_dim,
                                 **{**recipe.get("translator", {}), "normalize_condition": True})
    train_base = TrainConfig(**{k: v for k, v in recipe.get("train", {}).items() if k != "cond_noise_std"})
    if args.epochs:
        train_base = replace(train_base, epochs=args.epochs)
    t0 = time.perf_counter()
    z, c = generate_pairs(world.generator, world.encoder, args.pairs, seed=1234, batch_size=1000)
    print(f"{args.pairs} pairs in {time.perf_counter() - t0:.0f} s; condition scale (raw norm) {scale:.2f}", flush=True)
    full = shapes.full_prompt_set()[::max(1, 210 // args.full)][:args.full]
    partial = shapes.partial_prompt_set()[:args.partial]
    langevin = world.langevin
    methods = [Method("translator only", "translator", 0), Method("TR0N", "translator", langevin.steps)]
    variation_targets = shapes.all_combinations()[::7][:30]  # 30 rendered images, every attribute value
    images = shapes.render(variation_targets, torch.Generator().manual_seed(7))
    rows = []
    for sigma in (float(s) for s in args.sigmas.split(",")):
        t1 = time.perf_counter()
        train = replace(train_base, cond_noise_std=sigma, condition_scale=scale)
        torch.manual_seed(train.seed)
        model = Translator(model_cfg)
        history = fit_translator(model, z, c, train)
        world.translators = {"default": model.eval()}
        if args.std_scale is not None:
            world.translator_std_scale = args.std_scale
        unit = sigma / scale
        row = {"sigma": sigma, "unit_noise": unit, "clean_cosine": 1 / math.sqrt(1 + c.shape[1] * unit ** 2),
               "std": float(model.log_std.exp().mean()), "val_nll": history[-1].get("val_loss", float("nan"))}
        for name, prompts in (("full", full), ("partial", partial)):
            r = judge.rows(prompts, args.per_prompt, 0, methods, langevin)
            row[f"translator_{name}"], row[f"tron_{name}"] = r[0]["accuracy"], r[1]["accuracy"]
        # Image variation: condition on rendered images; a sample keeps the attributes the judge sees in it.
        cond = conditions.from_images(world.encoder, images)
        res = world.sampler("image").sample(cond.c, args.per_prompt, langevin, seed=0)
        pred, _ = judge.cnn.judge(res.images)
        row["image_variation"] = float((pred == variation_targets[res.condition_index]).float().mean())
        rows.append(row)
        print(f"sigma {sigma:g}: {time.perf_counter() - t1:.0f} s  " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    table = markdown_table(rows, COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"command": " ".join([".venv/bin/python benchmarks/noise_scale.py", *(sys.argv[1:] if argv is None else argv)]),
            "condition_scale": scale, "pairs": args.pairs, "train": asdict(train_base), "langevin": langevin.to_dict(),
            "translator_std_scale": world.translator_std_scale, "prompts": {"full": len(full), "partial": len(partial)},
            "per_prompt": args.per_prompt, "seconds": time.perf_counter() - t0}
    (args.out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    md = ["# CLIP-noise scale\n", f"Command: `{info['command']}`  ", f"Condition scale (mean raw norm of f's image "
          f"embeddings of G's samples): {scale:.2f}; {args.pairs} pairs; {len(full)} full captions and {len(partial)} partial "
          f"prompts x {args.per_prompt}; image variation: 30 renders x {args.per_prompt}; {info['seconds']:.0f} s\n", table]
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
