"""Right *and* varied: judged accuracy against variety for sampler settings, one world at a time.

    .venv/bin/python benchmarks/frontier.py --world zoo:shapes --kind partial     # the shapes grid
    .venv/bin/python benchmarks/frontier.py --world zoo:digits
    .venv/bin/python benchmarks/frontier.py --world zoo:shapes --quick            # smoke, < 2 min
    .venv/bin/python benchmarks/frontier.py --plot                                # PNGs from the saved runs

Every row is judged by the world's judge (never f) on the same conditions and seeds:

    accuracy            the judge's verdict (shapes: every attribute the prompt names; digits: the SVM's digit)
    spread / G's own    shapes: entropy of the attributes a prompt leaves open, relative to as many of G's
                        own samples that the judge puts in the prompt's set (tron.diversity); digits: mean
                        pairwise distance at the native 8x8 against G's own samples of the digit
    recall / G's own    Naeem et al.'s recall (and coverage) in the judge's feature space, against G's own
                        in-set samples, relative to as many held-out G samples of the set
    G+f evals / sample  ranked draws of z0 + 2 per view per Langevin step + 1 (tron.evaluation)

Settings: the world's shipped one, and variations of the translator's std scale, the ranked draws of z0
(`candidates`) and how they are chosen (`candidate_temperature`: 0 keeps f's favourite, > 0 resamples
with probability softmax(-E / temperature)), and Langevin's T. Marked beside them: *G's own in-set
samples* (G's samples the judge puts in the set, drawn from a fresh pool: right by construction, as
varied as G) and *best of N* (N prior samples ranked by f; N the evaluations of the world's setting
unless --best-of says; benchmarks/tron_vs_search.py has best of N's variety at every budget).

Results: benchmarks/results/frontier/<world>[-<kind>].json and .md; --plot draws docs/frontier_<world>.png.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tron.evaluation import Method, chain_evaluations, run_method  # noqa: E402
from tron.sampler import SampleResult  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "frontier"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def parse_setting(text: str) -> dict:
    """'std_scale=0.5,candidates=16,candidate_temperature=0.01,steps=25' -> dict of numbers."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value) if "." in value or "e" in value else int(value)
    return out


def label(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "world's setting"


class Shapes:
    """The shapes world's partial (or full) prompts, judged by the attribute CNN."""

    def __init__(self, world, judge, kind: str, limit: int) -> None:
        from tron.conditions import from_text
        from tron.zoo.shapes.captions import describe
        from tron.zoo.shapes.render import ATTRIBUTE_NAMES, ATTRIBUTES

        self.world, self.judge = world, judge
        self.prompts = judge.prompt_sets()[kind][: limit or None]
        self.condition = from_text(world.encoder, [describe(**p) for p in self.prompts])
        self.target = torch.tensor([[ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in ATTRIBUTE_NAMES]
                                    for p in self.prompts])

    def score(self, res: SampleResult) -> dict:
        return self.judge.score(res, self.prompts)

    @torch.no_grad()
    def own(self, n: int, pool: int = 20000, seed: int = 777) -> SampleResult:
        """n of G's own samples per prompt that the judge puts in its set, from a fresh pool (not the
        judge's reference)."""
        g = self.world.generator
        rng = torch.Generator(device=g.device).manual_seed(seed)
        x = torch.cat([g.decode(g.sample_latents(1000, rng)).cpu() for _ in range(pool // 1000)])
        pred, _ = self.judge.cnn.judge(x)
        rows, index = [], []
        for j, t in enumerate(self.target):
            hit = ((pred == t) | (t < 0)).all(1).nonzero().squeeze(1)[:n]
            rows.append(hit)
            index.append(torch.full((len(hit),), j))
        rows, index = torch.cat(rows), torch.cat(index)
        return SampleResult(x[rows], torch.zeros(len(rows)), torch.zeros(len(rows), 1), index)


class Digits:
    """The ten digits, judged by the SVM at the data's native 8x8."""

    def __init__(self, world, judge, kind: str, limit: int) -> None:
        from tron.conditions import from_labels

        self.world, self.judge = world, judge
        self.labels = torch.arange(10)[: limit or None]
        self.condition = from_labels(world.encoder, self.labels.tolist())

    def score(self, res: SampleResult) -> dict:
        return self.judge.score(res, self.labels)

    @torch.no_grad()
    def own(self, n: int, pool: int = 5000, seed: int = 777) -> SampleResult:
        g = self.world.generator
        x = g.decode(g.sample_latents(pool, torch.Generator(device=g.device).manual_seed(seed))).cpu()
        pred = torch.as_tensor(self.judge.svm.predict(x.flatten(1).numpy()))
        rows = [(pred == k).nonzero().squeeze(1)[:n] for k in self.labels]
        index = torch.cat([torch.full((len(r),), j) for j, r in enumerate(rows)])
        rows = torch.cat(rows)
        return SampleResult(x[rows], torch.zeros(len(rows)), torch.zeros(len(rows), 1), index)


TASKS = {"shapes": Shapes, "digits": Digits, "digits-cm": Digits}
KEYS = ("accuracy", "spread_vs_g", "min_spread_vs_g", "diversity_vs_g", "min_diversity_vs_g", "recall_vs_g", "coverage_vs_g",
        "precision", "recall", "coverage")


def row(name: str, scores: dict, evaluations: float, seconds: float, setting: dict | None = None) -> dict:
    return {"method": name, "setting": setting, **{k: scores.get(k, float("nan")) for k in KEYS},
            "evaluations_per_sample": evaluations, "seconds_per_sample": seconds}


def run(world_name: str, kind: str, settings: list[dict], n: int, seed: int, limit: int, best_of_n: int | None,
        log=print) -> dict:
    from tron.judges import load_judge
    from tron.world import load_world

    world = load_world(world_name)
    judge = load_judge(world)
    task = TASKS[world.name](world, judge, kind, limit)
    shipped_scale, shipped = world.translator_std_scale, world.langevin
    views = max(1, shipped.augment.num if shipped.augment is not None else 0)
    rows = []
    t0 = time.perf_counter()
    own = task.own(n)
    rows.append(row("G's own in-set samples", task.score(own), float("nan"), float("nan")))
    log(f"G's own: {rows[-1]['accuracy']:.1%}, recall/G {rows[-1]['recall_vs_g']:.2f} ({time.perf_counter() - t0:.0f} s)")
    for setting in [{}] + settings:
        overrides = dict(setting)
        world.translator_std_scale = overrides.pop("std_scale", shipped_scale)
        langevin = shipped.with_overrides(**overrides)
        res, seconds = run_method(world, task.condition, n, Method("TR0N", "translator", langevin.steps), seed, langevin)
        evaluations = chain_evaluations(langevin.steps, langevin.candidates, 2 * views)
        rows.append(row(f"TR0N, {label(setting)}", task.score(res), evaluations, seconds / len(res.images), setting))
        r = rows[-1]
        log(f"{r['method']}: {r['accuracy']:.1%}, spread/G {r['spread_vs_g']:.2f} (worst {r['min_spread_vs_g']:.2f}), "
            f"recall/G {r['recall_vs_g']:.2f}, coverage/G {r['coverage_vs_g']:.2f}, {r['seconds_per_sample'] * 1000:.0f} ms/sample")
    world.translator_std_scale = shipped_scale
    if best_of_n is not None:
        evaluations = best_of_n or chain_evaluations(shipped.steps, shipped.candidates, 2 * views)
        method = Method(f"best of {evaluations}", "prior", 0, evaluations)
        res, seconds = run_method(world, task.condition, n, method, seed, shipped)
        rows.append(row(f"best of {evaluations} prior samples, ranked by f", task.score(res), evaluations, seconds / len(res.images)))
        r = rows[-1]
        log(f"{r['method']}: {r['accuracy']:.1%}, spread/G {r['spread_vs_g']:.2f}, recall/G {r['recall_vs_g']:.2f}")
    return {"world": world_name, "kind": kind, "conditions": len(task.condition), "samples_per_condition": n, "seed": seed,
            "world_langevin": shipped.to_dict(), "world_std_scale": shipped_scale, "views": views, "rows": rows,
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                       f"torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}


def fmt(v, spec: str) -> str:
    return "—" if v is None or v != v else format(v, spec)


def markdown(result: dict) -> str:
    lines = [f"### {result['world']} {result['kind'] or ''}".rstrip(), "",
             f"{result['conditions']} conditions x {result['samples_per_condition']} samples, seed {result['seed']}, "
             f"{result['date']}, {result['machine']}", "",
             "| method | accuracy | spread / G's own | worst prompt | distance spread / G's own | worst class "
             "| recall / G's own | coverage / G's own | precision | G+f evals / sample | ms / sample |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {fmt(r['accuracy'], '.1%')} | {fmt(r['spread_vs_g'], '.2f')} | "
                     f"{fmt(r['min_spread_vs_g'], '.2f')} | {fmt(r.get('diversity_vs_g'), '.2f')} | "
                     f"{fmt(r.get('min_diversity_vs_g'), '.2f')} | {fmt(r['recall_vs_g'], '.2f')} | {fmt(r['coverage_vs_g'], '.2f')} | "
                     f"{fmt(r['precision'], '.2f')} | {fmt(r['evaluations_per_sample'], '.0f')} | "
                     f"{fmt(r['seconds_per_sample'] * 1000, '.1f')} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = json.loads(path.read_text())
    axes_keys = [("recall_vs_g", "recall / G's own (judge's features)")]
    for key, name in (("spread_vs_g", "open-attribute spread / G's own"), ("diversity_vs_g", "pairwise-distance spread / G's own")):
        if any(r.get(key, float("nan")) == r.get(key, float("nan")) for r in result["rows"]):
            axes_keys.insert(0, (key, name))
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(5.6 * len(axes_keys), 4.4), squeeze=False)
    for ax, (key, xlabel) in zip(axes[0], axes_keys):
        for r in result["rows"]:
            x, y = r.get(key, float("nan")), 100 * r["accuracy"]
            if r["method"].startswith("G's own"):
                ax.plot(x, y, "k*", markersize=14, label="G's own in-set samples")
            elif r["method"].startswith("best of"):
                ax.plot(x, y, "r^", markersize=10, label=r["method"])
            else:
                shipped = r["setting"] == {}
                ax.plot(x, y, "o", color="tab:blue" if not shipped else "tab:orange", markersize=8 if shipped else 6)
                ax.annotate(label(r["setting"]).replace("candidate_temperature", "τ").replace("candidates", "m")
                            .replace("std_scale", "std"), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("judged accuracy, %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{result['world']} {result['kind'] or ''}: right and varied (orange: the world's setting; "
                 f"judge never f)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:shapes")
    p.add_argument("--kind", default="partial", choices=["partial", "full"], help="shapes prompt set")
    p.add_argument("--setting", action="append", default=[], type=parse_setting,
                   help="key=value,... over the world's setting (std_scale, candidates, candidate_temperature, steps, ...)")
    p.add_argument("--n", type=int, default=16, help="samples per condition")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="only the first this many conditions")
    p.add_argument("--best-of", type=int, default=0,
                   help="N of the best-of-N row (default: the world's setting's G+f evaluations; -1: no such row)")
    p.add_argument("--quick", action="store_true", help="smoke: 12 conditions, 8 samples, two settings at T=0")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--plot", action="store_true", help="only draw the PNGs from the saved JSONs")
    args = p.parse_args(argv)
    if args.plot:
        for path in sorted(args.out.glob("*.json")):
            plot(path, DOCS / f"frontier_{path.stem}.png")
        return
    if args.quick:
        args.limit, args.n = 12, 8
        args.setting = [{"steps": 0}, {"steps": 0, "candidates": 1}]
    name = args.world.split(":")[-1]
    stem = name + (f"-{args.kind}" if name == "shapes" else "") + ("-quick" if args.quick else "")
    result = run(args.world, args.kind if name == "shapes" else "", args.setting, args.n, args.seed, args.limit,
                 None if args.best_of < 0 else args.best_of)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
