"""Evaluation shared by training (quick evaluation) and the retrain workflow (promotion gate).

The quick evaluation is bounded (EvalBudget: conditions, Langevin steps, seconds), so that a
full-size G and f (an ImageNet classifier has 1,000 classes) cannot hold a finished training
hostage; its summary says what it covered.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tron import conditions
from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec
from tron.dataset import table_column
from tron.images import save_grid
from tron.judges import load_judge
from tron.pairs import column_name
from tron.translator import load_translator
from tron.world import World, check_translator_fits
from tron.world_config import DEFAULT, WorldConfig, is_world, locate_world


@dataclass
class EvalBudget:
    conditions: int = 16  # at most this many fixed conditions (spread over a classifier's classes)
    steps: int | None = None  # Langevin steps; None: the world's default, capped at max_steps
    max_steps: int = 50
    seconds: float = 300.0  # wall-clock budget of the whole evaluation; what is not done by then is skipped

    def __post_init__(self) -> None:
        if self.conditions < 1 or self.max_steps < 0 or not self.seconds > 0:
            raise ValueError("the evaluation budget needs conditions >= 1, max_steps >= 0 and seconds > 0")


def fixed_conditions(world, dataset=None, count: int = 16, kind: str | None = None):
    """A fixed condition set for any world (tron.conditions.Condition): `count` classes spread
    evenly over a classifier's; otherwise the encoder's evaluation prompts, or f's outputs on the
    first rows of the dataset (for `kind` "image": its image-condition column)."""
    encoder = world.encoder
    if kind == "image":
        space = conditions.space_of(encoder, "image")
        column = column_name(space)
        if dataset is None:
            raise ValueError("no fixed image conditions: give a dataset")
        c = torch.from_numpy(table_column(dataset.read_shard(0), column)[:count].copy())
        return conditions.Condition(torch.nn.functional.normalize(c, dim=-1), "image", space, "dataset image conditions")
    if "label" in encoder.condition_kinds:
        k = encoder.embed_dim
        labels = sorted({round(i * k / min(count, k)) for i in range(min(count, k))})
        return conditions.from_labels(encoder, labels)
    prompts = getattr(encoder, "evaluation_prompts", None)
    if prompts and "text" in encoder.condition_kinds:
        return conditions.from_text(encoder, list(prompts)[:count])
    if dataset is None:
        raise ValueError("no fixed condition set: give a dataset")
    c = torch.from_numpy(dataset.read_shard(0).column("c").combine_chunks().flatten().to_numpy()
                         .reshape(-1, encoder.embed_dim)[:count].copy())
    return conditions.Condition(torch.nn.functional.normalize(c, dim=-1), "image", "main", "dataset conditions")


def world_for(generator_spec: str, encoder_spec: str, translator_dir: str | Path, kind: str | None = None):
    """A World of G, f and the translator (for conditions of `kind`, default the main one); with the
    world's settings and judge when G and f come from one world (zoo:NAME or a world directory)."""
    config, path = None, None
    if generator_spec == encoder_spec and is_world(generator_spec):
        path = locate_world(generator_spec)
        config = WorldConfig.load(path)
    g, f = load_generator_spec(generator_spec), load_encoder_spec(encoder_spec)
    translator = load_translator(translator_dir)
    fps = {"generator": component_fingerprint(generator_spec, "generator"), "encoder": component_fingerprint(encoder_spec, "encoder")}
    check_translator_fits(translator, fps, translator_dir)
    langevin = config.langevin if config is not None else None
    return World(config.name if config else "", g, f, {kind or DEFAULT: translator}, **({"langevin": langevin} if langevin else {}),
                 fingerprints=fps, translator_std_scale=config.translator_std_scale if config else 1.0, config=config, path=path)


def evaluate_translator(generator_spec: str, encoder_spec: str, translator_dir: str | Path, n: int = 8, seed: int = 0,
                        grid_path: str | Path | None = None, dataset=None, conditions=None,
                        budget: EvalBudget | None = None, kind: str | None = None) -> dict:
    """Energies at T=0 and after Langevin on a fixed condition set, plus judged accuracy where the
    world has a judge; optionally writes a PNG grid. Bounded by `budget`. `kind` "image": the
    translator is the image-condition one."""
    budget = budget or EvalBudget()
    deadline = time.perf_counter() + budget.seconds
    world = world_for(generator_spec, encoder_spec, translator_dir, kind)
    cond = conditions if conditions is not None else fixed_conditions(world, dataset, budget.conditions, kind)
    steps = budget.steps if budget.steps is not None else min(world.langevin.steps, budget.max_steps)
    sampler = world.sampler(cond.kind)
    summary: dict = {"eval_steps": steps, "eval_conditions_planned": len(cond)}
    covered = len(cond)
    for t in (0, steps):
        langevin = world.langevin.with_overrides(steps=t)
        energies, images = [], []
        for start in range(0, covered, 4):  # a few conditions at a time, so the budget can stop it
            if start > 0 and time.perf_counter() > deadline:  # the first few always run: the gate needs them
                covered = start
                break
            res = sampler.sample(cond.c[start:start + 4], n, langevin, seed=seed)
            energies.append(res.energies)
            images.append(res.images)
        if not energies:
            break
        e = torch.cat(energies)
        summary[f"energy_mean_T{t}"] = float(e.mean())
        summary[f"energy_std_T{t}"] = float(e.std()) if len(e) > 1 else 0.0
        if t == steps:
            summary["energy_mean_final"] = float(e.mean())
            if grid_path is not None:
                save_grid(torch.cat(images), grid_path, nrow=n, upscale=2)
    summary["eval_conditions"] = covered
    judge = load_judge(world) if world.config is not None and kind is None else None
    if judge is not None and time.perf_counter() < deadline:
        summary.update(judge.quick(n=n, seed=seed, langevin=world.langevin.with_overrides(steps=steps)))
    summary["eval_seconds"] = budget.seconds - max(0.0, deadline - time.perf_counter())
    summary["eval_truncated"] = float(covered < len(cond) or "energy_mean_final" not in summary
                                      or (judge is not None and "judged_accuracy" not in summary))
    return summary
