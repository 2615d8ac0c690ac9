"""Measured quality: sample with several methods and judge the results with an instrument
that is not f. Used by `tron eval` and the benchmarks."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .langevin import LangevinConfig
from .sampler import SampleResult
from .world import World


@dataclass
class Method:
    name: str
    init: str  # "translator" or "prior"
    steps: int  # Langevin steps
    candidates: int = 0  # > 0: best of this many prior samples ranked by the energy, no Langevin


def default_methods(steps: int) -> list[Method]:
    return [
        Method("translator only (T=0)", "translator", 0),
        Method(f"TR0N (translator + {steps} Langevin steps)", "translator", steps),
        Method(f"random prior + {steps} Langevin steps", "prior", steps),
    ]


def clip_methods(steps: int) -> list[Method]:
    """The default methods plus best-of-N prior samples at the same number of G+f evaluations
    (T gradient steps + 1 final decode for Langevin; N = T + 1 forward passes)."""
    return default_methods(steps) + [Method(f"best of {steps + 1} prior samples, ranked by CLIP", "prior", 0, steps + 1)]


@torch.no_grad()
def best_of_n(world: World, c: torch.Tensor, num_per_condition: int, candidates: int, seed: int = 0,
              batch_size: int = 256, progress: Callable[[int], None] | None = None) -> SampleResult:
    """Baseline: draw `candidates` prior samples per requested sample, keep the lowest energy."""
    g, f = world.generator, world.encoder
    c = f.check_condition(c).to(world.sampler().device)
    index = torch.arange(len(c), device=c.device).repeat_interleave(num_per_condition)
    rng = torch.Generator(device=c.device).manual_seed(int(seed))
    out: dict[str, list[torch.Tensor]] = {"images": [], "energies": [], "latents": []}
    for start in range(0, len(index), batch_size):
        cb = c[index[start:start + batch_size]]
        best_e = torch.full((len(cb),), float("inf"), device=c.device)
        best_z = torch.zeros(len(cb), g.latent_dim, device=c.device)
        for _ in range(candidates):
            z = g.sample_latents(len(cb), rng)
            e = f.energy(g.decode(z), cb)
            better = e < best_e
            best_e, best_z = torch.where(better, e, best_e), torch.where(better.unsqueeze(1), z, best_z)
        out["images"].append(g.decode(best_z).cpu())
        out["energies"].append(best_e.cpu())
        out["latents"].append(best_z.cpu())
        if progress is not None:
            progress(len(cb))
    return SampleResult(torch.cat(out["images"]), torch.cat(out["energies"]), torch.cat(out["latents"]), index.cpu())


def evaluate_prompts(world: World, judge, prompts: list[dict[str, str]], n_per_prompt: int = 8, seed: int = 0,
                     methods: list[Method] | None = None, langevin: LangevinConfig | None = None,
                     batch_size: int = 256, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Text-conditioned quality judged attribute by attribute (the shapes world).

    prompts: the attributes each prompt names, e.g. {"color": "red", "shape": "circle"}; a sample
    is correct when the judge sees every named attribute. Per method: all-named-attributes
    accuracy, per-attribute accuracy over the prompts that name it, mean energy, time."""
    from .zoo import shapes

    langevin = langevin or world.langevin
    methods = methods or clip_methods(langevin.steps)
    c = world.encoder.condition_from_text([shapes.describe(**p) for p in prompts])
    names = shapes.ATTRIBUTE_NAMES
    target = torch.tensor([[shapes.ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in names] for p in prompts])  # (P, 4)
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        if method.candidates:
            res = best_of_n(world, c, n_per_prompt, method.candidates, seed=seed, batch_size=batch_size, progress=progress)
        else:
            cfg = replace(langevin, steps=method.steps)
            res = world.sampler().sample(c, n_per_prompt, cfg, seed=seed, init=method.init, batch_size=batch_size, progress=progress)
        seconds = time.perf_counter() - t0
        pred, _ = judge.judge(res.images)
        want = target[res.condition_index]  # (N, 4)
        named = want >= 0
        correct = (pred == want) | ~named
        row = {"method": method.name, "accuracy": float(correct.all(1).float().mean())}
        for i, a in enumerate(names):
            row[f"{a}_accuracy"] = float(correct[named[:, i], i].float().mean()) if named[:, i].any() else float("nan")
        row.update({
            "mean_energy": float(res.energies.mean()),
            "seconds_per_sample": seconds / len(res.images),
            "evaluations_per_sample": method.candidates or method.steps + 1,
            "samples": len(res.images),
        })
        rows.append(row)
    return rows


def evaluate_digits(world: World, n_per_label: int = 100, seed: int = 0, methods: list[Method] | None = None,
                    langevin: LangevinConfig | None = None, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Per method: judged accuracy over labels 0-9, diversity relative to real digits, mean energy, time."""
    from .zoo.digits import fit_judge, load_digits_images, mean_pairwise_distance

    judge, judge_acc = fit_judge()
    real_x, real_y = load_digits_images()
    real_div = torch.tensor([mean_pairwise_distance(real_x[real_y == k]) for k in range(10)])
    langevin = langevin or world.langevin
    methods = methods or default_methods(langevin.steps)
    labels = list(range(10))
    c = world.encoder.condition_from_labels(labels)
    rows = []
    for method in methods:
        cfg = replace(langevin, steps=method.steps)
        t0 = time.perf_counter()
        res = world.sampler().sample(c, n_per_label, cfg, seed=seed, init=method.init, batch_size=250, progress=progress)
        seconds = time.perf_counter() - t0
        pred = torch.as_tensor(judge.predict(res.images.flatten(1).numpy()))
        target = torch.tensor(labels)[res.condition_index]
        correct = (pred == target).float()
        per_label = [float(correct[res.condition_index == k].mean()) for k in labels]
        div = torch.tensor([mean_pairwise_distance(res.images[res.condition_index == k]) for k in labels])
        rows.append({
            "method": method.name,
            "accuracy": float(correct.mean()),
            "min_label_accuracy": min(per_label),
            "per_label_accuracy": per_label,
            "diversity_ratio": float((div / real_div).mean()),
            "min_diversity_ratio": float((div / real_div).min()),
            "mean_energy": float(res.energies.mean()),
            "seconds_per_sample": seconds / len(res.images),
            "judge_held_out_accuracy": judge_acc,
        })
    return rows


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format(r[k], f) if f else str(r[k]) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


DIGITS_COLUMNS = [
    ("method", "method", ""),
    ("accuracy", "judged accuracy", ".1%"),
    ("min_label_accuracy", "worst digit", ".1%"),
    ("diversity_ratio", "diversity / real", ".2f"),
    ("min_diversity_ratio", "worst digit diversity", ".2f"),
    ("mean_energy", "mean CE energy", ".3f"),
    ("seconds_per_sample", "s / sample", ".4f"),
]

SHAPES_COLUMNS = [
    ("method", "method", ""),
    ("accuracy", "all named attributes", ".1%"),
    ("shape_accuracy", "shape", ".1%"),
    ("color_accuracy", "color", ".1%"),
    ("size_accuracy", "size", ".1%"),
    ("position_accuracy", "position", ".1%"),
    ("mean_energy", "mean energy (-cos)", ".3f"),
    ("evaluations_per_sample", "G+f evals / sample", ""),
    ("seconds_per_sample", "s / sample", ".4f"),
]
