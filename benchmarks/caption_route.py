"""The shapes world's text translator: CLIP image embeddings with noise against captions (issue 21.1).

    .venv/bin/python benchmarks/caption_route.py                  # 100,000 pairs, 40 epochs, 8 samples per prompt
    .venv/bin/python benchmarks/caption_route.py --quick          # smoke, < 1 min

Three text translators, trained in-process on the same pairs (z and f's image embedding c are the
same for all: the captioner's draws have a stream of their own) with the recipe's hyper-parameters:

    noise     on c, Gaussian noise of std 1.0 in the raw embedding's units (TR0N's modality-gap trick)
    trained   on c_caption: the text embedding of a caption written by the attribute captioner the
              recipe trains on the renderer's labels (the world's `captioner/`)
    bank      on c_caption: the caption f itself ranks first in the world's caption bank (caption_bank.json)

Captions name a granularity drawn per pair (1 to 4 attributes). Each translator then drives the
world's sampler for the 210 full captions and the 111 partial prompts at T = 0, 5 and 25, judged by
the attribute CNN (never f). The captions' agreement with the judge's reading of the same G(z) is
reported too (how often a caption names what the judge sees). Results: benchmarks/results/caption_route/.
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

OUT = Path(__file__).resolve().parent / "results" / "caption_route"
ROUTES = ("noise", "trained", "bank")


@torch.no_grad()
def caption_agreement(world, judge, z, captions, limit: int = 10_000) -> float:
    """Share of captions whose every named attribute is what the judge reads in G(z)."""
    import tron.zoo.shapes as S
    ok = []
    for start in range(0, min(limit, len(z)), 1000):
        x = world.generator.decode(torch.as_tensor(z[start:start + 1000]))
        pred, _ = judge.cnn.judge(x)
        for row, text in zip(pred, captions[start:start + 1000]):
            named = S.parse_prompt(text)
            ok.append(all(S.ATTRIBUTES[a][int(row[i])] == named[a] for i, a in enumerate(S.ATTRIBUTE_NAMES) if a in named))
    return sum(ok) / len(ok)


# Long: the benchmark is one script: build, train each route, judge, write the table, in the order they run.
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:shapes")
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--n", type=int, default=8, help="samples per prompt")
    p.add_argument("--steps", default="0,5,25")
    p.add_argument("--routes", default=",".join(ROUTES))
    p.add_argument("--seed", type=int, default=3, help="pairs and training (the recipe's translator stage uses seed + 3 = 3)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--save", type=Path, default=None, help="also save the translators here (ROUTE/)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    from tron_vs_search import run_task, shapes_tasks

    from tron.allocator import keep_freed_memory
    from tron.judges import load_judge
    from tron.recipes import shapes as recipe
    from tron.translator import save_translator
    from tron.world import load_world

    keep_freed_memory()
    world = load_world(args.world)
    judge = load_judge(world)
    out_dir = world.path
    steps = tuple(int(s) for s in args.steps.split(","))
    pairs, epochs, n, limit = args.pairs, args.epochs, args.n, 0
    if args.quick:
        pairs, epochs, n, limit, steps = 2000, 1, 1, 6, (0, 1)
    log = lambda m: print(f"[caption route] {m}", flush=True)  # noqa: E731
    routes = args.routes.split(",")
    specs = {"trained": recipe.captioner_spec(out_dir, "trained"), "bank": recipe.captioner_spec(out_dir, "bank")}
    results, t_all = [], time.perf_counter()
    cols = {}
    for route in sorted(routes, key=lambda r: r == "noise"):  # the noise route reuses a captioned build's z and c
        captioned = next((cols[r] for r in cols), None)
        cols[route] = captioned if route == "noise" and captioned else recipe.make_pairs(out_dir, pairs, args.seed, specs.get(route), log)
    for route in routes:
        c = cols[route]
        row = {"route": route, "pairs": pairs, "epochs": epochs}
        if route != "noise":
            row["captions_named_as_the_judge_reads"] = caption_agreement(world, judge, c["z"], c["caption"])
            row["distinct_captions"] = len(set(c["caption"]))
            row["example_captions"] = list(c["caption"][:5])
            log(f"{route}: {row['captions_named_as_the_judge_reads']:.2%} of captions name what the judge reads")
        t0 = time.perf_counter()
        kind = "default" if route == "noise" else "text"
        translator, meta = recipe.train_kind(out_dir, c, kind, epochs, 256, args.seed, log, captioner=specs.get(route))
        row.update(train_seconds=time.perf_counter() - t0, final_val_loss=meta["final_val_loss"],
                   learned_std=float(translator.log_std.exp().mean()))
        if args.save:
            save_translator(translator, args.save / route, metadata=meta)
        world.translators["text"] = translator.eval()
        for task in shapes_tasks(world, judge, ["full", "partial"], limit):
            r = run_task(world, task, n, steps, 0, 0, 256, methods=("tron",), log=log)
            row[task.name] = r["tron"]
            row["cost"] = r["cost"]
        results.append(row)
        args.out.mkdir(parents=True, exist_ok=True)
        name = "results-quick" if args.quick else "results"
        (args.out / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    tasks = [k for k in results[0] if k.startswith("shapes,")]
    lines = ["# The shapes text translator: noise against captions", "",
             f"{time.strftime('%Y-%m-%d %H:%M')} · `benchmarks/caption_route.py {' '.join(argv or sys.argv[1:])}` · "
             f"{time.perf_counter() - t_all:.0f} s · judged by the attribute CNN (never f), {n} samples per prompt", "",
             "| route | captions as the judge reads them | val NLL | "
             + " | ".join(f"{t.split(',')[1].strip()} T={s}" for t in tasks for s in steps) + " |",
             "|---|---:|---:|" + "---:|" * (len(tasks) * len(steps))]
    for r in results:
        agree = f"{r['captions_named_as_the_judge_reads']:.1%}" if "captions_named_as_the_judge_reads" in r else "—"
        lines.append(f"| {r['route']} | {agree} | {r['final_val_loss']:.3f} | "
                     + " | ".join(f"{r[t][s]:.1%}" for t in tasks for s in steps) + " |")
    (args.out / ("results-quick.md" if args.quick else "results.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
