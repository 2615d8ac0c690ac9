"""Priors p(z) compared on the digits worlds: the "Priors" table of docs/adapters.md.

    .venv/bin/python benchmarks/priors.py            # default size
    .venv/bin/python benchmarks/priors.py --quick    # smoke test, < 1 min

For every world and prior:
  unconditional  N draws z ~ p(z), x = G(z): f's mean max-probability ("f confidence"); how often
                 the SVM judge's class is f's argmax; class coverage = entropy of the judge's class
                 histogram / log 10 (1 = every digit equally often); diversity = mean pairwise L2
                 distance of the samples / the same over all real digits; ms per sample for drawing
                 z, G and f (after one warm-up batch).
  conditional    `per_label` samples per digit, judged by the SVM: z0 ~ p(z) + the world's Langevin;
                 a translator (the world's architecture and training settings, `epochs` epochs)
                 trained on pairs drawn from the prior, alone (T = 0) and with the world's Langevin.

The judge, the pairs, the training and every sampler take the one --seed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "priors"
WORLDS = {  # world -> (priors, translator pairs at default size)
    "digits": (("normal", "truncated-normal:1.0", "truncated-normal:1.5", "hubness:k=5,t=20"), 20_000),
    "digits-cm": (("normal", "truncated-normal:1.5", "hubness:k=5,t=50"), 10_000),
}
BATCH = 250  # samples per G/f batch


@dataclass
class Size:
    """How much a run measures."""

    unconditional: int = 2000  # prior draws per row for the unconditional columns
    per_label: int = 20  # judged samples per digit for the conditional columns
    pairs: int | None = None  # translator pairs; None = the world's count in WORLDS
    epochs: int = 10  # translator training epochs
    langevin_steps: int | None = None  # None = the world's world.json steps


DEFAULT = Size()
QUICK = Size(unconditional=200, per_label=2, pairs=500, epochs=1, langevin_steps=2)

COLUMNS = [
    ("world_label", "world", ""),
    ("prior", "prior", ""),
    ("f_confidence", "f confidence", ".3f"),
    ("judge_agrees", "judge agrees with f", ".1%"),
    ("coverage", "class coverage", ".3f"),
    ("diversity", "diversity / real", ".2f"),
    ("prior_langevin", "prior + Langevin", ".1%"),
    ("translator_only", "translator only", ".1%"),
    ("tron", "TR0N", ".1%"),
    ("ms_per_sample", "ms / sample", ".2f"),
]


@torch.no_grad()
def render(world, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x = G(z) and f's class probabilities, in batches."""
    x = torch.cat([world.generator.decode(zb) for zb in z.split(BATCH)])
    return x, torch.cat([world.encoder.encode(xb) for xb in x.split(BATCH)])


def unconditional(world, prior, n: int, seed: int, judge, real_diversity: float) -> dict:
    from tron.evaluation import mean_pairwise_distance

    render(world, world.generator.sample_latents(BATCH))  # warm-up, not timed
    t0 = time.perf_counter()
    z = world.generator.sample_latents(n, torch.Generator().manual_seed(seed), prior)  # (n, d)
    x, p = render(world, z)  # (n, 1, 16, 16), (n, 10)
    ms = 1000 * (time.perf_counter() - t0) / n
    judged = torch.as_tensor(judge.predict(x.flatten(1).numpy()))
    share = torch.bincount(judged, minlength=10).double() / n
    entropy = -(share[share > 0] * share[share > 0].log()).sum()
    return {"f_confidence": float(p.max(1).values.mean()), "judge_agrees": float((judged == p.argmax(1)).float().mean()),
            "coverage": float(entropy / math.log(10)), "diversity": mean_pairwise_distance(x) / real_diversity,
            "ms_per_sample": ms}


def train_translator(world, prior, pairs: int, epochs: int, seed: int):
    """The world's translator architecture and training settings, on pairs drawn from `prior`."""
    from tron.pairs import generate_pairs
    from tron.training import TrainConfig, fit_translator
    from tron.translator import Translator, TranslatorConfig

    z, c = generate_pairs(world.generator, world.encoder, pairs, seed=seed, batch_size=1000, prior=prior)
    train = replace(TrainConfig(**world.translator.metadata["train_config"]), epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    model = Translator(TranslatorConfig(**asdict(world.translator.config)))
    fit_translator(model, z, c, train)
    return model


def judged_accuracy(sampler, judge, per_label: int, langevin, seed: int, init: str, prior=None) -> float:
    c = sampler.encoder.condition_from_labels(list(range(10)))
    res = sampler.sample(c, per_label, langevin, seed=seed, init=init, prior=prior, batch_size=BATCH)
    pred = torch.as_tensor(judge.predict(res.images.flatten(1).numpy()))
    return float((pred == res.condition_index).float().mean())


def conditional(world, prior, translator, langevin, per_label: int, seed: int, judge) -> dict:
    from tron.sampler import Sampler

    g, f = world.generator, world.encoder
    tron = Sampler(g, f, translator, world.translator_std_scale)
    return {"prior_langevin": judged_accuracy(Sampler(g, f), judge, per_label, langevin, seed, "prior", prior),
            "translator_only": judged_accuracy(tron, judge, per_label, langevin.with_overrides(steps=0), seed, "translator"),
            "tron": judged_accuracy(tron, judge, per_label, langevin, seed, "translator")}


def machine() -> str:
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.is_file() else []
    cpu = names[0] if names else platform.processor()
    return (f"{os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


def write_outputs(out: Path, rows: list[dict], info: dict) -> str:
    from tron.evaluation import markdown_table

    table = markdown_table(rows, COLUMNS)
    langevin = "; ".join(f"{w}: {json.dumps(s)}" for w, s in info["langevin"].items())
    md = ["# Priors\n", f"Command: `{info['command']}`  ", f"Machine: {info['machine']}  ",
          f"Seed: {info['seed']}; run took {info['seconds']:.0f} s; started {info['started']}  ",
          f"Size: {json.dumps(info['size'])}; translator pairs: {json.dumps(info['pairs'])}  ",
          f"Langevin (world.json): {langevin}  ",
          f"Judge: RBF SVM on pixels, held-out accuracy {info['judge_held_out_accuracy']:.1%}\n",
          "Definitions: the docstring of `benchmarks/priors.py`.\n", table]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(md) + "\n")
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    return "\n".join(md)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke-test size (< 1 min)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    from tron.evaluation import mean_pairwise_distance
    from tron.priors import parse_prior
    from tron.world import load_world
    from tron.zoo.digits import load_digits_images
    from tron.zoo.digits.judge import fit_svm

    size = QUICK if args.quick else DEFAULT
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_start = time.perf_counter()
    judge, judge_acc = fit_svm(args.seed)
    real_diversity = mean_pairwise_distance(load_digits_images()[0])
    rows, langevins, pairs_used = [], {}, {}
    for name, (priors, pairs) in WORLDS.items():
        world = load_world(f"zoo:{name}")
        langevin = world.langevin.with_overrides(steps=size.langevin_steps or None)
        langevins[name], pairs_used[name] = langevin.to_dict(), size.pairs or pairs
        for i, spec in enumerate(priors):
            t0 = time.perf_counter()
            prior = parse_prior(spec)
            translator = train_translator(world, prior, pairs_used[name], size.epochs, args.seed)
            row = {"world": name, "world_label": f"{name} (d={world.generator.latent_dim})" if i == 0 else name, "prior": spec}
            row.update(unconditional(world, prior, size.unconditional, args.seed, judge, real_diversity))
            row.update(conditional(world, prior, translator, langevin, size.per_label, args.seed, judge))
            rows.append(row)
            print(f"{name} {spec}: {time.perf_counter() - t0:.0f} s", flush=True)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    info = {"command": " ".join([".venv/bin/python benchmarks/priors.py", *argv_used]), "machine": machine(),
            "seed": args.seed, "size": asdict(size), "pairs": pairs_used, "langevin": langevins,
            "judge_held_out_accuracy": judge_acc, "started": started, "seconds": time.perf_counter() - t_start}
    print("\n" + write_outputs(args.out, rows, info))


if __name__ == "__main__":
    main()
