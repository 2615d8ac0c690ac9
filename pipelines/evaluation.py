"""Evaluation shared by training (quick evaluation) and the retrain workflow (promotion gate)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def fixed_conditions(encoder, dataset=None, count: int = 16):
    """A fixed condition set for any world: every class for a classifier; otherwise the world's
    evaluation prompts, or f's outputs on the first rows of the dataset."""
    import torch

    if hasattr(encoder, "condition_from_labels"):
        return encoder.condition_from_labels(list(range(encoder.embed_dim)))
    prompts = getattr(encoder, "evaluation_prompts", None)
    if prompts and hasattr(encoder, "condition_from_text"):
        return encoder.condition_from_text(list(prompts)[:count])
    if dataset is None:
        raise ValueError("no fixed condition set: give a dataset")
    return torch.from_numpy(dataset.read_shard(0).column("c").combine_chunks().flatten().to_numpy()
                            .reshape(-1, encoder.embed_dim)[:count].copy())


def world_doc(generator_spec: str, encoder_spec: str) -> dict:
    """world.json when G and f come from one world (zoo:NAME or a world directory), else {}."""
    from tron.world import WORLD_FILE, resolve_world_path

    if generator_spec != encoder_spec:
        return {}
    try:
        path = resolve_world_path(generator_spec) / WORLD_FILE
    except Exception:  # a bare checkpoint directory: no world around it
        return {}
    return json.loads(path.read_text())


def world_langevin(generator_spec: str, encoder_spec: str):
    from dataclasses import fields

    from tron.langevin import LangevinConfig

    known = {f.name for f in fields(LangevinConfig)}
    doc = world_doc(generator_spec, encoder_spec).get("langevin", {})
    return LangevinConfig(**{k: v for k, v in doc.items() if k in known})


def evaluate_translator(generator_spec: str, encoder_spec: str, translator_dir: str | Path, n: int = 8, seed: int = 0,
                        grid_path: str | Path | None = None, dataset=None, conditions=None) -> dict:
    """Energies at T=0 and after the world's Langevin steps on a fixed condition set, plus
    judged accuracy where the world has a judge (digits); optionally writes a PNG grid."""
    from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec
    from tron.images import save_grid
    from tron.langevin import LangevinConfig
    from tron.sampler import Sampler
    from tron.translator import load_translator
    from tron.world import World, check_translator_fits

    g, f = load_generator_spec(generator_spec), load_encoder_spec(encoder_spec)
    translator = load_translator(translator_dir)
    check_translator_fits(translator, {"generator": component_fingerprint(generator_spec, "generator"),
                                       "encoder": component_fingerprint(encoder_spec, "encoder")}, translator_dir)
    langevin = world_langevin(generator_spec, encoder_spec)
    doc = world_doc(generator_spec, encoder_spec)
    std_scale = float(doc.get("translator_std_scale", 1.0))
    c = conditions if conditions is not None else fixed_conditions(f, dataset)
    sampler = Sampler(g, f, translator, std_scale)
    summary: dict = {}
    for steps in (0, langevin.steps):
        res = sampler.sample(c, n, LangevinConfig(**{**asdict(langevin), "steps": steps}), seed=seed)
        summary[f"energy_mean_T{steps}"] = float(res.energies.mean())
        summary[f"energy_std_T{steps}"] = float(res.energies.std())
        if steps == langevin.steps:
            summary["energy_mean_final"] = float(res.energies.mean())
            if grid_path is not None:
                save_grid(res.images, grid_path, nrow=n, upscale=2)
    world = World(doc.get("name", ""), g, f, translator, langevin, translator_std_scale=std_scale)
    if doc.get("name") == "digits":  # worlds with a judge
        from tron.evaluation import default_methods, evaluate_digits

        rows = evaluate_digits(world, n_per_label=max(n, 10), seed=seed, methods=default_methods(langevin.steps)[:2],
                               langevin=langevin)
        summary["judged_accuracy_T0"] = rows[0]["accuracy"]
        summary["judged_accuracy"] = rows[1]["accuracy"]
        summary["diversity_ratio"] = rows[1]["diversity_ratio"]
    elif doc.get("name") == "shapes" and doc.get("judge"):
        from tron.evaluation import default_methods, evaluate_prompts
        from tron.world import resolve_world_path
        from tron.zoo import shapes

        judge = shapes.load_judge(resolve_world_path(generator_spec) / doc["judge"])
        prompts = shapes.full_prompt_set()[::7]  # 30 of the 210 full captions, every shape, colour, size, position
        rows = evaluate_prompts(world, judge, prompts, n_per_prompt=max(2, n // 2), seed=seed,
                                methods=default_methods(langevin.steps)[:2], langevin=langevin)
        summary["judged_accuracy_T0"] = rows[0]["accuracy"]
        summary["judged_accuracy"] = rows[1]["accuracy"]
    return summary
