"""The faces label translator: a learning curve over the number of pairs, and the ways of
conditioning a translator on a 1,000-class f (issue 21.2, 21.3), each judged by Lite2 (never f).

    # the learning curve: the recipe's settings on the first 12k, 50k and 200k pairs of one build
    .venv/bin/python benchmarks/faces_translators.py --dataset outputs/faces-curve/pairs --pairs 12000,50000,200000
    # alternatives, on 200k pairs: NAME=JSON of translator/training hyper-parameters over the recipe's
    .venv/bin/python benchmarks/faces_translators.py --dataset outputs/faces-curve/pairs --pairs 200000 \
        --variant 'T0.25={"label_temperature": 0.25}' --variant 'K30={"num_components": 30}'

Each translator is trained by the real pipeline (pipelines/train_translator.py on Ray Train, tracked in
MLflow; `--max-pairs` takes a prefix of the build, which is exactly the smaller build of the same seed
and shard size), then sampled for the world's condition set (10 classes x --n) at T = 0, 5 and 25 with
the world's Langevin, and judged: Lite2 top-5 of the class (benchmarks/tron_vs_search.py's counting).
Reruns reuse finished translators (their export directories). Results: benchmarks/results/faces_translators/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "faces_translators"


def train(dataset: str, work: Path, name: str, pairs: int, overrides: dict, epochs: int | None) -> Path:
    """The translator of `name` on the first `pairs` pairs (trained once; a rerun reuses it)."""
    from pipelines import train_translator
    from pipelines.recipes.faces import LABEL_TRAINING

    export = work / "translators" / name
    if (export / "config.json").is_file():
        return export
    config = work / "configs" / f"{name}.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({**LABEL_TRAINING, **overrides}))
    argv = ["--dataset", dataset, "--max-pairs", str(pairs), "--config", str(config), "--name", f"faces-{name}",
            "--export", str(export), "--storage-path", str(work / "ray_results"), "--eval-conditions", "4",
            "--eval-steps", "5", "--cpus-per-worker", "1", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]
    if epochs:
        argv += ["--epochs", str(epochs)]
    train_translator.run(argv)
    return export


def judge_translator(export: Path, n: int, steps: tuple[int, ...], seed: int, std_scale: float | None, log=print) -> dict:
    from tron_vs_search import faces_tasks, run_task

    from tron.judges import load_judge
    from tron.world import load_world

    world = load_world("zoo:faces", translator=export)
    if std_scale is not None:
        world.translator_std_scale = std_scale
    (task,) = faces_tasks(world, load_judge(world))
    result = run_task(world, task, n, steps, seed, 0, 16, methods=("tron",), log=log)
    meta = world.translator.metadata
    result.update(pairs=meta.get("pairs"), std_scale=world.translator_std_scale,
                  train_config=meta.get("train_config"), translator=world.translator.config.__dict__ | {"latent_mean": None,
                                                                                                       "latent_std": None})
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="a faces pair build (pipelines/recipes/faces.py --stage build)")
    p.add_argument("--pairs", default="12000,50000,200000", help="prefixes of the build to train on")
    p.add_argument("--variant", action="append", default=[], help="NAME=JSON hyper-parameters over the recipe's (repeat)")
    p.add_argument("--std-scale", default="", help="also sample each translator with these std scales (e.g. 0.5,0.25)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--n", type=int, default=8, help="samples per class")
    p.add_argument("--steps", default="0,5,25")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("outputs/faces-translators"))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--tag", default="", help="name of this run's result files")
    args = p.parse_args(argv)

    from tron.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(2)
    variants = {"recipe": {}} if not args.variant else {}
    for item in args.variant:
        name, _, doc = item.partition("=")
        variants[name] = json.loads(doc)
    steps = tuple(int(s) for s in args.steps.split(","))
    scales = [None] + [float(s) for s in args.std_scale.split(",") if s]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or ("curve" if not args.variant else "variants")
    rows = []
    for pairs in (int(s) for s in args.pairs.split(",")):
        for name, overrides in variants.items():
            t0 = time.perf_counter()
            export = train(str(Path(args.dataset).resolve()), args.work.resolve(), f"{name}-{pairs}", pairs, overrides, args.epochs)
            seconds = time.perf_counter() - t0
            for scale in scales:
                r = judge_translator(export, args.n, steps, args.seed, scale,
                                     log=lambda m, name=name, pairs=pairs: print(f"[{name} {pairs}] {m}", flush=True))
                rows.append({"variant": name, "overrides": overrides, "pairs": pairs, "train_seconds": seconds, **r})
                (args.out / f"{tag}.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    lines = [f"# faces label translators ({tag})", "", f"{time.strftime('%Y-%m-%d %H:%M')} · `benchmarks/faces_translators.py "
             f"{' '.join(argv or sys.argv[1:])}` · Lite2 top-5 over the world's 10 classes x {args.n}", "",
             "| variant | over the recipe | pairs | std scale | " + " | ".join(f"T={t}" for t in steps) + " |",
             "|---|---|---:|---:|" + "---:|" * len(steps)]
    for r in rows:
        lines.append(f"| {r['variant']} | `{json.dumps(r['overrides'])}` | {r['pairs']:,} | {r['std_scale']:g} | "
                     + " | ".join(f"{r['tron'][t]:.1%}" for t in steps) + " |")
    (args.out / f"{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
