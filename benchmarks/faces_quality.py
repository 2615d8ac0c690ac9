"""zoo:faces judged by other classifiers: does TR0N's class carry over from f (EfficientNet-Lite0)
to EfficientNet-Lite2 and Lite1, or are its samples adversarial to f?

For each class of the world's condition set, n samples per method:

    translator only       z0 ~ q(z | y), T = 0
    TR0N, T = 5 / 25      z0 ~ q(z | y) + T Langevin steps (the world's settings, without views)
    TR0N + views          the same, the energy averaged over fresh random-shift views per step
                          (the world's default), at T = 5 and 25
    prior + Langevin 25   z0 ~ N(0, I) + 25 steps, without and with the views
    best of N             N prior samples ranked by f's probability of the class (no gradients)

Best of N is computed on one pool of M prior samples scored once by f and the judge: its judged
rate is the exact expectation over N-subsets of the pool (the sample of rank r by f's probability
is the best of a random N-subset with probability C(M-r, N-1) / C(M, N)), for any N up to M; its
diversity and f's probability are those of one draw (n disjoint N-subsets per class), so they are
given only where the pool holds n disjoint N-subsets. Below the table: the smallest N at which best
of N reaches each TR0N row's judged rate (its G+f evaluations against TR0N's). Diversity: the mean pairwise distance of the
judge's unit pooled features within a class, divided by the same for G's own samples that the judge
puts in that class (the world's reference.json); classes with fewer than two such samples are left
out of the mean and counted.

    .venv/bin/python benchmarks/faces_quality.py --world zoo:faces            # ~25 min on 2 cores
    .venv/bin/python benchmarks/faces_quality.py --world zoo:faces --n 2 --pool 64 --classes 2   # smoke
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tron.evaluation import best_of_n_rate  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "faces_quality"


def pool_scores(world, judge, classes: list[int], m: int, seed: int, batch: int = 50):
    """M prior samples: f's probability of each class (M, K), the judge's top-5 hit (M, K), its features."""
    g, f = world.generator, world.encoder
    rng = torch.Generator(device=g.device).manual_seed(seed)
    probs, hits, feats = [], [], []
    target = torch.tensor(classes)
    with torch.no_grad():
        for start in range(0, m, batch):
            x = g.decode(g.sample_latents(min(batch, m - start), rng))
            p_f, _ = f.classify(x)
            p_j, h = judge.judge(x)
            probs.append(p_f[:, target].cpu())
            hits.append((p_j.topk(5, dim=1).indices.unsqueeze(2) == target.view(1, 1, -1)).any(1).cpu())
            feats.append(h)
    return torch.cat(probs), torch.cat(hits).float(), torch.cat(feats)


def evaluations_to_match(score: torch.Tensor, hit: torch.Tensor, rate: float) -> int | None:
    """The smallest N whose best-of-N judged rate (mean over classes) reaches `rate`, or None.
    score, hit: (M, K). A scan, not a bisection: ranking by f, a larger N need not judge better."""
    for n in range(1, len(score) + 1):
        if sum(best_of_n_rate(score[:, k], hit[:, k], n) for k in range(score.shape[1])) / score.shape[1] >= rate - 1e-9:
            return n
    return None


# Long: the benchmark is one script: sample every method, judge, write the table and grids, in the order they run.
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:faces")
    p.add_argument("--n", type=int, default=8, help="samples per class and method")
    p.add_argument("--classes", type=int, default=0, help="only the first this many classes of the set (0: all)")
    p.add_argument("--pool", type=int, default=2000, help="prior samples for best of N")
    p.add_argument("--best-of", default="26,52,130,260,520")
    p.add_argument("--views", type=int, default=2, help="views for the 'TR0N + views' row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--grid", type=Path, default=None, help="also write a PNG grid of TR0N's samples (classes x n)")
    args = p.parse_args(argv)

    from tron.augment import AugmentConfig
    from tron.conditions import from_labels
    from tron.evaluation import Method, markdown_table, mean_pairwise_distance, run_method
    from tron.judges import CLASSIFIER_COLUMNS, load_judge
    from tron.world import load_world

    world = load_world(args.world)
    judge = load_judge(world)
    classes = judge.classes[: args.classes or None]
    # the world's Langevin without views; the views row adds them (the world itself ships with views)
    base = world.langevin.with_overrides(augment=AugmentConfig())
    steps = base.steps
    print(f"[faces] {world.name}: {len(classes)} classes x {args.n}; Langevin {base.to_dict()}; {judge.describe()}", flush=True)
    t_all = time.perf_counter()
    rows = []
    views = base.with_overrides(augment=AugmentConfig(num=args.views, translation=0.125)) if args.views else None
    plan = [(Method("translator only (T=0)", "translator", 0), base),
            (Method("TR0N, T=5", "translator", 5), base),
            (Method(f"TR0N, T={steps}", "translator", steps), base),
            (Method(f"prior + Langevin, T={steps}", "prior", steps), base)]
    if views is not None:
        with_views = f", {args.views} fresh shift views per step"
        plan[3:3] = [(Method(f"TR0N, T=5{with_views}", "translator", 5), views),
                     (Method(f"TR0N, T={steps}{with_views}", "translator", steps), views)]
        plan.append((Method(f"prior + Langevin, T={steps}{with_views}", "prior", steps), views))
    grid = None
    labels = torch.tensor(classes)
    condition = from_labels(world.encoder, classes)
    for method, langevin in plan:
        res, seconds = run_method(world, condition, args.n, method, args.seed, langevin, batch_size=64)
        row = {"method": method.name, **judge.score(res, labels), "evaluations_per_sample": method.evaluations(langevin),
               "seconds_per_sample": seconds / len(res.images)}
        rows.append(row)
        print(f"[faces] {method.name}: top-5 {row['top5']:.1%}, 2nd {row['second_top5']:.1%}, "
              f"f-prob {row['f_probability']:.3f}, diversity {row['diversity_vs_g']:.2f} ({seconds:.0f} s)", flush=True)
        if method.steps == steps and method.init == "translator" and langevin is base:
            grid = res.images

    t0 = time.perf_counter()
    score, hit, feats = pool_scores(world, judge, classes, args.pool, args.seed + 1000)
    print(f"[faces] pool of {args.pool} prior samples scored by f and the judge ({time.perf_counter() - t0:.0f} s)", flush=True)
    for n in [int(v) for v in args.best_of.split(",")]:
        if n > args.pool:
            print(f"[faces] best of {n}: larger than the pool of {args.pool}; skipped", flush=True)
            continue
        rate = sum(best_of_n_rate(score[:, k], hit[:, k], n) for k in range(len(classes))) / len(classes)
        divs, f_prob = [], float("nan")
        if n * args.n <= args.pool:  # one draw of args.n disjoint N-subsets: diversity and f's probability
            for k, cls in enumerate(classes):
                chosen = [int(start + score[start:start + n, k].argmax()) for start in range(0, n * args.n, n)]
                if judge.reference.get(cls):
                    divs.append(mean_pairwise_distance(feats[chosen]) / judge.reference[cls])
            f_prob = sum(float(score[:n * args.n, k].view(args.n, n).max(1).values.mean()) for k in range(len(classes))) / len(classes)
        rows.append({"method": f"best of {n} prior samples, ranked by f", "top1": float("nan"), "top5": rate,
                     "second_top5": float("nan"), "f_probability": f_prob,
                     "diversity_vs_g": sum(divs) / len(divs) if divs else float("nan"), "evaluations_per_sample": n,
                     "seconds_per_sample": float("nan")})
        print(f"[faces] best of {n}: top-5 {rate:.1%}", flush=True)
    matches = []
    for r in [r for r in rows if r["method"].startswith("TR0N")]:
        n = evaluations_to_match(score, hit, r["top5"])
        evals = r["evaluations_per_sample"] * (1 if "views" not in r["method"] else args.views)
        matches.append(f"- {r['method']} ({r['top5']:.1%} with {r['evaluations_per_sample']} G + "
                       f"{evals} f evaluations): best of N needs "
                       + (f"N = {n} ({n / r['evaluations_per_sample']:.1f}x the G evaluations)" if n else
                          f"more than the pool's {args.pool} (> {args.pool / r['evaluations_per_sample']:.0f}x)"))
        print(f"[faces] {matches[-1][2:]}", flush=True)

    covered = sum(1 for c in classes if judge.reference.get(c))
    table = re.sub(r"(?<=\| )nan%?(?= \|)", "—", markdown_table(rows, CLASSIFIER_COLUMNS))  # every cell, even adjacent ones
    per_class = {r["method"]: r.get("per_class", {}) for r in rows}
    names = None
    try:
        from tron.adapters.efficientnet import imagenet_class_names

        names = imagenet_class_names()
    except Exception:  # noqa: BLE001 - names are decoration
        pass
    tron_row = next(r for r in rows if r["method"] == f"TR0N, T={steps}")
    class_lines = ["| class | TR0N top-5 | TR0N 2nd judge top-5 | diversity / G's own | prior + Langevin top-5 |", "|---|---|---|---|---|"]
    prior_row = per_class[f"prior + Langevin, T={steps}"]
    for k in classes:
        v = tron_row["per_class"][k]
        class_lines.append(f"| {k} {names[k] if names else ''} | {v['top5']:.0%} | {v['second_top5']:.0%} | "
                           f"{v['diversity_vs_g']:.2f} | {prior_row[k]['top5']:.0%} |".replace("nan", "—"))
    seconds = time.perf_counter() - t_all
    md = ["# zoo:faces judged by other classifiers\n",
          f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/faces_quality.py', *(argv if argv is not None else sys.argv[1:])])}`  ",
          f"{len(classes)} classes x {args.n} samples, seed {args.seed}; Langevin {json.dumps(base.to_dict())}; {judge.describe()}; "
          f"best of N from a pool of {args.pool} prior samples; diversity reference for {covered} of {len(classes)} classes; "
          f"{seconds:.0f} s in all on this machine.\n", table, "",
          "Best of N at TR0N's judged rate (the exact expectation over the pool; f's gradient steps count as G+f evaluations):",
          "", *matches, "", "Per class (TR0N at the world's T):", "", *class_lines, ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(md))
    for r in rows:
        r["per_class"] = {str(k): v for k, v in r.get("per_class", {}).items()}
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "classes": classes, "seconds": seconds}, indent=1) + "\n")
    print("\n".join(md))
    if grid is not None and args.grid:
        from tron.images import save_grid

        save_grid(grid, args.grid, nrow=args.n, upscale=2)
        print(f"[faces] grid: {args.grid}")


if __name__ == "__main__":
    main()
