"""Measured quality: sample with several methods and judge the results with an instrument
that is not f. Used by `tron eval` and the benchmarks."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .langevin import LangevinConfig
from .world import World


@dataclass
class Method:
    name: str
    init: str  # "translator" or "prior"
    steps: int  # Langevin steps


def default_methods(steps: int) -> list[Method]:
    return [
        Method("translator only (T=0)", "translator", 0),
        Method(f"TR0N (translator + {steps} Langevin steps)", "translator", steps),
        Method(f"random prior + {steps} Langevin steps", "prior", steps),
    ]


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
