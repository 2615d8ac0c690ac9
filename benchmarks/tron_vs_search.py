"""TR0N against search at equal G+f work: judged quality against G+f evaluations (issue 21.6).

    .venv/bin/python benchmarks/tron_vs_search.py --world zoo:shapes              # full and partial prompts
    .venv/bin/python benchmarks/tron_vs_search.py --world zoo:faces
    .venv/bin/python benchmarks/tron_vs_search.py --plot                          # the PNG from the saved runs
    .venv/bin/python benchmarks/tron_vs_search.py --world zoo:shapes --quick      # smoke, < 1 min

Three methods per condition, each judged by the world's judge (never f):

    TR0N               z0 ~ q(z | c) (the world's translator for the condition's kind), then T steps
                       of the world's Langevin; read at every T of --steps from one run of the chains
    prior + Langevin   z0 ~ p(z), the same T steps
    best of N          N prior samples ranked by f's plain energy (no gradients); computed exactly for
                       every N from one pool of M samples per condition (tron.evaluation.best_of_n_rate)

Counting G+f evaluations per sample: one evaluation is one image through G and f, forward. A
Langevin step is a forward and a backward pass over each of the step's V views (V = 1 without
views), 2 V evaluations; the final image and energy, 1. So TR0N and prior + Langevin at T cost
1 + 2 V T, the translator's own draw nothing (an MLP on c), and best of N costs N. A world whose
Langevin starts from the best of m ranked draws (LangevinConfig.candidates, for both inits) adds m
(and at T = 0 the final image is the best draw: m in all).
"Ahead at equal work": TR0N's rate at its cost against best of N's at the same N (exact for any N).

Beside each rate, the samples' variety in the judge's terms (tron.diversity): the spread of what a
shapes prompt leaves open and the recall against G's own in-set samples, both relative to G's own; for
best of N, of the picks a random N-subset of the pool gives (n per condition).

Results go to benchmarks/results/tron_vs_search/<world>.json and .md; --plot draws every saved world's
curves into docs/tron_vs_search.png.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tron.evaluation import best_of_n_rate, chain_evaluations  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "tron_vs_search"
PLOT = Path(__file__).resolve().parent.parent / "docs" / "tron_vs_search.png"
STEPS = (0, 1, 2, 5, 10, 25)


@dataclass
class Task:
    """One kind of condition of a world: its rows c, and a judge of samples against them."""

    name: str  # "shapes, full captions", ...
    condition: object  # tron.conditions.Condition (M rows)
    hits_all: Callable[[torch.Tensor], torch.Tensor]  # images (N, C, H, W) -> (N, M) bool: one judge pass, every condition
    # images (N, C, H, W), their conditions (N,) -> the judge's variety measures (tron.diversity): spread_vs_g, recall_vs_g
    variety: Callable[[torch.Tensor, torch.Tensor], dict] | None = None

    def hits(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(N,) bool: each image judged against its own condition (index (N,))."""
        return self.hits_all(images)[torch.arange(len(images)), index.cpu()]


def shapes_tasks(world, judge, kinds: list[str], limit: int = 0) -> list[Task]:
    import tron.zoo.shapes as S
    from tron.conditions import from_text
    sets = judge.prompt_sets()
    tasks = []
    for kind in kinds:
        prompts = sets[kind][: limit or None]
        target = torch.tensor([[S.ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in S.ATTRIBUTE_NAMES] for p in prompts])

        def hits_all(images, target=target):
            pred, _ = judge.cnn.judge(images.cpu())
            return ((pred[:, None] == target[None]) | (target[None] < 0)).all(2)

        def variety(images, index, target=target):
            pred, _, feats = judge.cnn.read(images.cpu())
            return judge.diversity(pred, feats, index.cpu(), target)

        label = {"full": "full captions", "partial": "partial prompts"}[kind]
        tasks.append(Task(f"shapes, {label} ({len(prompts)})", from_text(world.encoder, [S.describe(**p) for p in prompts]),
                          hits_all, variety))
    return tasks


def faces_tasks(world, judge, limit: int = 0) -> list[Task]:
    from tron.conditions import from_labels

    classes = judge.classes[: limit or None]
    labels = torch.tensor(classes)

    def hits_all(images):
        probs, _ = judge.judge(images)
        return (probs.topk(5, dim=1).indices[:, :, None] == labels[None, None]).any(1)

    def variety(images, index):
        from tron.sampler import SampleResult

        return judge.score(SampleResult(images.cpu(), torch.zeros(len(images)), torch.zeros(len(images), 1), index.cpu()), labels)

    return [Task(f"faces, {len(classes)} classes (Lite2 top-5)", from_labels(world.encoder, classes), hits_all, variety)]


def views_of(langevin) -> int:
    return max(1, langevin.augment.num if langevin.augment is not None else 0)


def chain_hits(world, task: Task, init: str, n: int, steps: tuple[int, ...], seed: int, langevin,
               batch: int) -> tuple[dict[int, torch.Tensor], dict[int, dict]]:
    """Per T: the judged hit of each of the n samples per condition, and the samples' variety (the
    task's measures), from one run of the chains to max(T)."""
    from tron.langevin import langevin_dynamics

    sampler = world.sampler(task.condition.kind)
    g = world.generator
    c_all = task.condition.c.to(g.device)
    index = torch.arange(len(c_all)).repeat_interleave(n)
    rng = torch.Generator(device=g.device).manual_seed(seed)
    out: dict[int, list[torch.Tensor]] = {t: [] for t in steps}
    images: dict[int, list[torch.Tensor]] = {t: [] for t in steps}
    for start in range(0, len(index), batch):
        rows = index[start:start + batch]
        c = c_all[rows.to(g.device)]
        z0 = sampler.best_initial_latents(c, init, rng, None, langevin.candidates, temperature=langevin.candidate_temperature)
        snaps = {0: z0.detach().clone()}

        def keep(t, z, e, snaps=snaps):
            if t + 1 in out:
                snaps[t + 1] = z.detach().clone()

        if max(steps) > 0:
            langevin_dynamics(z0, sampler.energy_fn(c, langevin.augment), langevin.with_overrides(steps=max(steps)), rng,
                              project=g.project, callback=keep)
        with torch.no_grad():
            for t in steps:
                x = g.decode(snaps[t])
                out[t].append(task.hits(x, rows).cpu())
                images[t].append(x.cpu())
    variety = {t: task.variety(torch.cat(images[t]), index) for t in steps} if task.variety else {}
    return {t: torch.cat(v) for t, v in out.items()}, variety


@torch.no_grad()
def pool(world, task: Task, m: int, seed: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M prior samples scored for every condition: (-plain energy (M, P), judged hit (M, P), the images)."""
    sampler = world.sampler(task.condition.kind)
    g = world.generator
    c = task.condition.c.to(g.device)
    rng = torch.Generator(device=g.device).manual_seed(seed + 99)
    scores, hits, images = [], [], []
    for start in range(0, m, batch):
        x = g.decode(g.sample_latents(min(batch, m - start), rng))
        b = len(x)
        e = torch.stack([sampler.image_energy(x, c[p].expand(b, -1)) for p in range(len(c))], 1)  # (b, P)
        scores.append(-e.cpu())
        hits.append(task.hits_all(x))
        images.append(x.cpu())
    return torch.cat(scores), torch.cat(hits), torch.cat(images)


def best_of_n_curve(score: torch.Tensor, hit: torch.Tensor, ns: list[int]) -> dict[int, float]:
    return {n: sum(best_of_n_rate(score[:, p], hit[:, p], n) for p in range(score.shape[1])) / score.shape[1] for n in ns}


def best_of_n_variety(task: Task, score: torch.Tensor, images: torch.Tensor, n: int, big_n: int, seed: int) -> dict:
    """The variety of best of N's picks: for each condition, n random N-subsets of the pool, each's
    best-scored image kept (the picks best_of_n_rate averages over), judged like TR0N's samples."""
    rng = torch.Generator().manual_seed(seed + 7)
    m, conditions = score.shape
    picks = [int(subset[score[subset, p].argmax()]) for p in range(conditions)
             for subset in (torch.randperm(m, generator=rng)[:big_n] for _ in range(n))]
    return task.variety(images[picks], torch.arange(conditions).repeat_interleave(n))


def run_task(world, task: Task, n: int, steps: tuple[int, ...], seed: int, pool_size: int, batch: int,
             methods: tuple[str, ...] = ("tron", "prior"), log=print) -> dict:
    """Every method's curve on one task: {"tron": {T: rate}, "prior": ..., "best_of_n": {N: rate}, costs}."""
    langevin = world.langevin
    v = views_of(langevin)
    result = {"task": task.name, "conditions": len(task.condition), "samples_per_condition": n, "views": v,
              "langevin": langevin.to_dict(), "cost": {t: chain_evaluations(t, langevin.candidates, 2 * v) for t in steps}}
    for method, init in (("tron", "translator"), ("prior", "prior")):
        if method not in methods:
            continue
        t0 = time.perf_counter()
        hits, variety = chain_hits(world, task, init, n, steps, seed, langevin, batch)
        result[method] = {t: float(h.float().mean()) for t, h in hits.items()}
        if variety:
            result[f"{method}_variety"] = variety
        result[f"{method}_seconds"] = time.perf_counter() - t0
        log(f"[{task.name}] {method}: " + ", ".join(f"T={t} {r:.1%}" for t, r in result[method].items())
            + f" ({result[f'{method}_seconds']:.0f} s)")
    if pool_size:
        t0 = time.perf_counter()
        score, hit, images = pool(world, task, pool_size, seed, batch)
        ns = sorted({2 ** k for k in range(20) if 2 ** k <= pool_size} | {c for c in result["cost"].values() if c <= pool_size})
        result["best_of_n"] = best_of_n_curve(score, hit, ns)
        if task.variety:
            result["best_of_n_variety"] = {c: best_of_n_variety(task, score, images, n, c, seed)
                                           for c in sorted(set(result["cost"].values())) if c <= pool_size}
        result["pool"] = pool_size
        shown = set(result["cost"].values()) | {1, 64, 512}
        log(f"[{task.name}] best of N: " + ", ".join(f"N={k} {r:.1%}" for k, r in result["best_of_n"].items() if k in shown)
            + f" ({time.perf_counter() - t0:.0f} s)")
    return result


def markdown(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines += [f"### {r['task']}", "", f"{r['conditions']} conditions x {r['samples_per_condition']} samples; "
                  f"{r['views']} view(s) per Langevin step; z0 (TR0N and prior + Langevin) the best of "
                  f"{r['langevin'].get('candidates', 1)} draw(s) ranked by f; best of N from a pool of "
                  f"{r.get('pool', 0)} per condition", "",
                  "| T | G+f evaluations | TR0N | prior + Langevin | best of N at equal evaluations | TR0N ahead by "
                  "| TR0N spread / G's own | best of N spread / G's own | TR0N recall / G's own | best of N recall / G's own |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t, cost in r["cost"].items():
            tron, prior = r.get("tron", {}).get(t), r.get("prior", {}).get(t)
            bon = r.get("best_of_n", {}).get(cost)
            fmt = lambda v: f"{v:.1%}" if v is not None else "—"  # noqa: E731
            ratio = lambda v: f"{v:.2f}" if v is not None and v == v else "—"  # noqa: E731
            ahead = f"{100 * (tron - bon):+.1f} points" if tron is not None and bon is not None else "—"
            tv, bv = r.get("tron_variety", {}).get(t, {}), r.get("best_of_n_variety", {}).get(cost, {})
            lines.append(f"| {t} | {cost} | {fmt(tron)} | {fmt(prior)} | {fmt(bon)} | {ahead} | {ratio(tv.get('spread_vs_g'))} "
                         f"| {ratio(bv.get('spread_vs_g'))} | {ratio(tv.get('recall_vs_g'))} | {ratio(bv.get('recall_vs_g'))} |")
        lines.append("")
    return "\n".join(lines)


def plot(paths: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for p in paths for r in json.loads(p.read_text())["results"]]
    tasks = list(dict.fromkeys(r["task"] for r in runs))  # one panel per task; runs of it overlaid
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = sorted((r for r in runs if r["task"] == task), key=lambda r: r["langevin"].get("candidates", 1))
        top = mine[-1]["langevin"].get("candidates", 1)
        for r in mine:
            m = r["langevin"].get("candidates", 1)
            draws = f", z0 best of {m} draws" if m > 1 else ""
            cost = {int(t): c for t, c in r["cost"].items()}
            for key, label, style in (("tron", "TR0N", "o-"), ("prior", "prior + Langevin", "s--")):
                if key in r:
                    ts = sorted(int(t) for t in r[key])
                    ax.plot([cost[t] for t in ts], [100 * r[key][str(t)] for t in ts], style, label=label + draws,
                            alpha=1.0 if m == top else 0.5)  # the world's setting (the most draws) stands out
        r = mine[0]
        if "best_of_n" in r:
            ns = sorted(int(k) for k in r["best_of_n"])
            ax.plot(ns, [100 * r["best_of_n"][str(k)] for k in ns], "^:", label="best of N (ranked by f)")
        ax.set_title(task, fontsize=10)
        ax.set_xscale("log")
        ax.set_xlabel("G+f evaluations per sample")
        ax.set_ylabel("judged accuracy, %")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.text(0.5, 0.005, "a Langevin step counts as a forward and a backward pass per view; every rate is judged by "
             "the world's judge, never f", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:shapes")
    p.add_argument("--kind", action="append", choices=["full", "partial"], help="shapes prompt sets (default both)")
    p.add_argument("--n", type=int, default=8, help="samples per condition")
    p.add_argument("--steps", default=",".join(map(str, STEPS)))
    p.add_argument("--pool", type=int, default=0, help="prior samples per condition for best of N (default: shapes 512, faces 1024)")
    p.add_argument("--limit", type=int, default=0, help="only the first this many conditions of each set")
    p.add_argument("--batch", type=int, default=0, help="chains per batch (default: shapes 256, faces 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke: 4 conditions, 2 samples, T in 0,1, pool 8")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--plot", action="store_true", help="only draw the PNG from the saved JSONs")
    p.add_argument("--plot-path", type=Path, default=PLOT)
    p.add_argument("--candidates", type=int, default=None, help="override the world's ranked draws of z0 (1: one draw)")
    p.add_argument("--tag", default="", help="suffix of the result files (e.g. candidates-1)")
    args = p.parse_args(argv)
    if args.plot:
        plot(sorted(args.out.glob("*.json")), args.plot_path)
        return

    from tron.allocator import keep_freed_memory
    from tron.judges import load_judge
    from tron.world import load_world

    keep_freed_memory()
    world = load_world(args.world)
    world.langevin = world.langevin.with_overrides(candidates=args.candidates)
    judge = load_judge(world)
    steps = tuple(int(s) for s in args.steps.split(","))
    faces = world.config.judge["kind"] == "imagenet-classifier"
    pool_size, batch = args.pool or (1024 if faces else 512), args.batch or (16 if faces else 256)
    n, limit = args.n, args.limit
    if args.quick:
        steps, pool_size, n, limit = (0, 1), 8, 2, 4
    tasks = faces_tasks(world, judge, limit) if faces else shapes_tasks(world, judge, args.kind or ["full", "partial"], limit)
    t0 = time.perf_counter()
    results = [run_task(world, task, n, steps, args.seed, pool_size, batch) for task in tasks]
    command = " ".join(["benchmarks/tron_vs_search.py", *(argv or sys.argv[1:])])
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "command": command, "world": args.world,
            "seconds": time.perf_counter() - t0}
    args.out.mkdir(parents=True, exist_ok=True)
    name = world.name + (f"-{args.tag}" if args.tag else "") + ("-quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps({"info": info, "results": results}, indent=1) + "\n")
    table = markdown(results)
    (args.out / f"{name}.md").write_text(f"# TR0N against search: {world.name}\n\n{info['date']} · {info['machine']} · "
                                         f"`{info['command']}` · {info['seconds']:.0f} s\n\n{judge.describe()}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
