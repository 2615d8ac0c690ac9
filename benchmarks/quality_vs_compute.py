"""Quality against compute: TR0N against its baselines on the zoo worlds (issue 8).

    .venv/bin/python benchmarks/quality_vs_compute.py                # default size, 3 seeds
    .venv/bin/python benchmarks/quality_vs_compute.py --quick        # smoke test, < 1 min

For every method and compute budget T it samples, judges (project judges, not f) and records:
judged accuracy, final energy (CLIP cosine / classifier probability, measured without
augmentation for every method), diversity relative to real images, wall time per sample and
G+f evaluations per sample. Writes a Markdown table, PNG plots and a JSON of raw numbers.

Methods (T in --steps):
  tron         GMM translator z0 ~ q(z|c) + T Langevin steps (the world's Langevin settings)
  mse          deterministic MSE translator (same architecture and training, head="mse") + T steps
  langevin     z0 ~ p(z) + T Langevin steps, plain energy (one view)
  langevin-aug z0 ~ p(z) + T Langevin steps, augmented energy (the world's encoder as shipped)
  adam         z0 ~ p(z) + T Adam steps, plain energy
  fusedream    best of M prior draws under the augmented energy, then T Adam steps on it
  best-of-n    best of N = T + 1 prior draws ranked by f (augmented energy), no optimisation

Counting: one "G+f evaluation" is one E(z, c) = f(G(z)) evaluation (a G pass and an f pass over
the energy's V augmented views), with or without a gradient. Langevin/Adam at T: T + 1 (T
gradient evaluations plus the final one); fusedream: M + T; best-of-N: N. "f views" counts f's
image encodings (evaluations x V). Chains are run once to max(T) and read at every T (the state
after T steps is exactly what a T-step run with the same seed gives); the wall time at T is the
time of the first T steps plus the final evaluation.

Diversity: per condition, the mean pairwise L2 distance between the samples of that condition,
divided by the same statistic over real images of that condition (shapes: renders of the
prompt's attributes with unnamed attributes, size within class and jitter drawn at random;
digits: the dataset's images of the label), averaged over conditions. 1 = as varied as real
images; near 0 = one image per prompt.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "quality_vs_compute"
DEFAULT_STEPS = (0, 5, 10, 25, 50, 100)


@dataclass
class Size:
    """How much a run measures."""

    seeds: tuple[int, ...] = (0, 1, 2)  # one prompt subset and one set of draws per seed
    steps: tuple[int, ...] = DEFAULT_STEPS  # T (best-of-N uses N = T + 1)
    full_prompts: int = 24  # shapes: full captions per seed, drawn from the 210
    partial_prompts: int = 8  # shapes: partial prompts per seed, drawn from the 59
    per_prompt: int = 4  # shapes: samples per prompt
    per_label: int = 20  # digits: samples per label
    candidates: int = 10  # fusedream: M
    mse_pairs: int | None = None  # pairs for the MSE translator; None = as many as the zoo translator
    mse_epochs: int | None = None  # None = as many as the zoo translator


DEFAULT = Size()
QUICK = Size(seeds=(0,), steps=(0, 2, 5), full_prompts=4, partial_prompts=2, per_prompt=2, per_label=3, candidates=3,
             mse_pairs=2000, mse_epochs=2)


@dataclass
class Method:
    key: str
    label: str
    init: str  # "gmm", "mse", "prior", "best-of-m" or "best-of-n"
    optimizer: str | None  # "langevin", "adam" or None
    augment: bool  # the energy that drives the method uses the Langevin config's augmented views
    langevin: dict | None = None  # Langevin settings over the world's (an ablation row), e.g. {"momentum": 0.9}


METHODS = [
    Method("tron", "TR0N (GMM translator + Langevin)", "gmm", "langevin", True),
    Method("mse", "MSE translator + Langevin", "mse", "langevin", True),
    Method("langevin", "prior + Langevin", "prior", "langevin", False),
    Method("langevin-aug", "prior + Langevin, augmented", "prior", "langevin", True),
    Method("adam", "prior + Adam", "prior", "adam", False),
    Method("fusedream", "FuseDream (best-of-M + Adam, augmented)", "best-of-m", "adam", True),
    Method("best-of-n", "best of N prior samples, ranked by f", "best-of-n", None, True),
]


def methods_for(world) -> list[Method]:
    """A classifier f has no augmentations: its augmented variants would repeat the plain ones."""
    if world.langevin.augment.num:
        return METHODS
    return [replace(m, augment=False, label=m.label.replace(", augmented", "").replace(" augmented", ""))
            for m in METHODS if m.key != "langevin-aug"]


# ----------------------------------------------------------------------------------------------
# Conditions and measurements per world


class ShapesTask:
    """Text prompts judged attribute by attribute; the accuracy counts a sample correct when the
    judge sees every attribute its prompt names."""

    name = "shapes"

    def __init__(self, world, world_dir: Path, size: Size, seed: int) -> None:
        from tron.zoo import shapes
        from tron.zoo.shapes.judge import load_attribute_cnn

        self.S = shapes
        self.judge = load_attribute_cnn(world_dir / "judge")
        gen = torch.Generator().manual_seed(1000 + seed)
        full, partial = shapes.full_prompt_set(), shapes.partial_prompt_set()
        pick_full = torch.randperm(len(full), generator=gen)[:size.full_prompts].tolist()
        pick_partial = torch.randperm(len(partial), generator=gen)[:size.partial_prompts].tolist()
        self.prompts = [full[i] for i in pick_full] + [partial[i] for i in pick_partial]
        self.is_full = torch.tensor([len(p) == 4 for p in self.prompts])
        names = shapes.ATTRIBUTE_NAMES
        self.target = torch.tensor([[shapes.ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in names] for p in self.prompts])
        self.c = world.encoder.condition_from_text([shapes.describe(**p) for p in self.prompts])  # (P, D)
        self.per_condition = size.per_prompt
        self.real_diversity = torch.tensor([self._real_diversity(row, gen) for row in self.target])  # (P,)

    def _real_diversity(self, target: torch.Tensor, gen: torch.Generator, n: int = 32) -> float:
        from tron.evaluation import mean_pairwise_distance

        attrs = self.S.sample_attributes(n, gen)
        named = target >= 0
        attrs[:, named] = target[named]
        return mean_pairwise_distance(self.S.render(attrs, gen))

    def measure(self, images: torch.Tensor, index: torch.Tensor, plain_energy: torch.Tensor) -> dict:
        pred, _ = self.judge.judge(images)
        want = self.target[index]
        correct = ((pred == want) | (want < 0)).all(1).float()  # (N,)
        full = self.is_full[index]
        return {
            "accuracy": float(correct.mean()),
            "accuracy_full": float(correct[full].mean()),
            "accuracy_partial": float(correct[~full].mean()) if (~full).any() else float("nan"),
            "score": float((-plain_energy).mean()),  # CLIP cosine, no augmentation
            "diversity": diversity_ratio(images, index, self.real_diversity),
        }


class DigitsTask:
    """Labels 0-9 judged by the project's SVM on pixels."""

    name = "digits"
    _judge = None

    def __init__(self, world, world_dir: Path, size: Size, seed: int) -> None:
        from tron.evaluation import mean_pairwise_distance
        from tron.zoo.digits import load_digits_images
        from tron.zoo.digits.judge import fit_svm

        if DigitsTask._judge is None:
            DigitsTask._judge = fit_svm()[0]
        self.judge = DigitsTask._judge
        self.labels = torch.arange(10)
        self.c = world.encoder.condition_from_labels(self.labels.tolist())  # (10, 10)
        self.per_condition = size.per_label
        real_x, real_y = load_digits_images()
        self.real_diversity = torch.tensor([mean_pairwise_distance(real_x[real_y == k]) for k in range(10)])

    def measure(self, images: torch.Tensor, index: torch.Tensor, plain_energy: torch.Tensor) -> dict:
        pred = torch.as_tensor(self.judge.predict(images.flatten(1).numpy()))
        correct = (pred == self.labels[index]).float()
        return {
            "accuracy": float(correct.mean()),
            "score": float(torch.exp(-plain_energy).mean()),  # f's probability of the label
            "diversity": diversity_ratio(images, index, self.real_diversity),
        }


def diversity_ratio(images: torch.Tensor, index: torch.Tensor, real: torch.Tensor) -> float:
    from tron.evaluation import mean_pairwise_distance

    ratios = [mean_pairwise_distance(images[index == k]) / float(real[k]) for k in range(len(real)) if (index == k).sum() > 1]
    return sum(ratios) / len(ratios)


# ----------------------------------------------------------------------------------------------
# The MSE translator: trained here, cached by the world's fingerprints


def mse_translator(world, cache: Path, size: Size, log=print):
    """The deterministic ablation: the zoo translator's architecture and training settings with
    head="mse", trained on fresh pairs; cached under `cache` keyed by G's and f's fingerprints."""
    from tron.pairs import generate_pairs
    from tron.training import TrainConfig, fit_translator
    from tron.translator import Translator, TranslatorConfig, load_translator, save_translator

    meta = world.translator.metadata
    train = TrainConfig(**meta["train_config"])
    pairs = size.mse_pairs or int(meta["pairs"])
    train = replace(train, epochs=size.mse_epochs or train.epochs)
    fp = world.fingerprints
    path = cache / f"mse-{world.name}-g{fp['generator']}-f{fp['encoder']}-{pairs}p-{train.epochs}e-s{train.seed}"
    if (path / "config.json").is_file():
        return load_translator(path)
    t0 = time.perf_counter()
    z, c = generate_pairs(world.generator, world.encoder, pairs, seed=train.seed, batch_size=1000)
    torch.manual_seed(train.seed)
    model = Translator(replace(TranslatorConfig(**asdict(world.translator.config)), head="mse"))
    history = fit_translator(model, z, c, train)
    save_translator(model, path, {"generator_fingerprint": fp["generator"], "encoder_fingerprint": fp["encoder"],
                                  "pairs": pairs, "train_config": asdict(train), "final_val_loss": history[-1].get("val_loss")})
    log(f"{world.name}: trained the MSE translator on {pairs} pairs in {time.perf_counter() - t0:.0f} s -> {path}")
    return load_translator(path)


# ----------------------------------------------------------------------------------------------
# Running one method: one chain to max(T), read at every T


def energy_fns(world, c_rows: torch.Tensor, langevin):
    """(augmented E, plain E) for conditions c_rows (N, k), as tron.langevin.EnergyFn: the augmented
    one averages over the Langevin config's views (drawn per step), the plain one sees the image."""
    sampler = world.sampler()
    return sampler.energy_fn(c_rows, langevin.augment), sampler.energy_fn(c_rows, None)


def views(langevin, augmented: bool) -> int:
    return langevin.augment.views if augmented else 1


# Long: one branch per method of the comparison, each a few lines, so that they are read side by side.
def run_method(method: Method, world, task, mse, size: Size, seed: int, adam_lr: float, std_scale: float,
               langevin=None) -> list[dict]:
    from tron.baselines import AdamConfig, adam_dynamics, best_of_m
    from tron.langevin import langevin_dynamics
    from tron.presets import langevin_settings

    g = world.generator
    langevin = langevin_settings(method.langevin, langevin or world.langevin, g)
    index = torch.arange(len(task.c)).repeat_interleave(task.per_condition)  # (N,)
    c_rows = task.c[index]
    aug_e, plain_e = energy_fns(world, c_rows, langevin)
    drive = aug_e if method.augment else plain_e
    rng = torch.Generator().manual_seed(seed)
    n = len(index)
    steps = sorted(set(size.steps))
    snapshots: dict[int, tuple[torch.Tensor, float, int]] = {}  # T -> (z_T, seconds, evaluations)
    extra = 0  # evaluations before the chain starts (best-of-M)

    t0 = time.perf_counter()
    if method.init == "best-of-n":
        want = {t + 1: t for t in steps}

        def keep(i, z, e):
            if i in want:
                snapshots[want[i]] = (z.clone(), time.perf_counter() - t0, i)

        best_of_m(drive, lambda: g.sample_latents(n, rng), max(want), callback=keep)
    elif method.init == "gmm":
        z0 = world.translator.sample(c_rows, rng=rng, std_scale=std_scale)
    elif method.init == "mse":
        z0 = mse.sample(c_rows, rng=rng)
    elif method.init == "prior":
        z0 = g.sample_latents(n, rng)
    elif method.init == "best-of-m":
        z0, _ = best_of_m(drive, lambda: g.sample_latents(n, rng), size.candidates)
        extra = size.candidates
    if method.init != "best-of-n":
        chain_time = [time.perf_counter() - t0]  # seconds before step t
        trajectory = {0: z0}

        def record(t, z, e):
            chain_time.append(time.perf_counter() - t0)
            if t + 1 in steps:
                trajectory[t + 1] = z.detach().clone()

        if method.optimizer == "langevin":
            langevin_dynamics(z0, drive, langevin.with_overrides(steps=max(steps)), rng, project=g.project, callback=record)
        else:
            cfg = AdamConfig(steps=max(steps), lr=adam_lr, prior_weight=langevin.prior_weight, clamp=langevin.clamp)
            adam_dynamics(z0, drive, cfg, callback=record)
        for t in steps:
            # The final evaluation of z_T (its image and the energy the method drives), timed on its own.
            t1 = time.perf_counter()
            with torch.no_grad():
                drive(trajectory[t], torch.arange(n), t)
            final = time.perf_counter() - t1
            evals = extra + t if method.init == "best-of-m" else t + 1
            snapshots[t] = (trajectory[t], chain_time[t] + final, evals)

    rows = []
    for t in steps:
        z, seconds, evals = snapshots[t]
        with torch.no_grad():
            x = g.decode(z)
            e = plain_e(z, torch.arange(n), 0)
        row = {"world": task.name, "method": method.key, "label": method.label, "seed": seed, "T": t,
               "evaluations": evals, "f_views": evals * views(langevin, method.augment),
               "seconds_per_sample": seconds / n, "samples": n}
        row.update(task.measure(x, index, e))
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Aggregation, table, plots


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds for each (world, method, T)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["world"], r["method"], r["T"]), []).append(r)
    out = []
    for (world, method, t), rs in groups.items():
        agg = {"world": world, "method": method, "label": rs[0]["label"], "T": t, "seeds": len(rs),
               "evaluations": rs[0]["evaluations"], "f_views": rs[0]["f_views"]}
        for key in ("accuracy", "accuracy_full", "accuracy_partial", "score", "diversity", "seconds_per_sample"):
            vals = [r[key] for r in rs if key in r and not math.isnan(r[key])]
            if vals:
                mean = sum(vals) / len(vals)
                agg[key] = mean
                agg[key + "_std"] = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
        out.append(agg)
    return out


def pm(row: dict, key: str, fmt: str, scale: float = 1.0) -> str:
    if key not in row:
        return "–"
    return f"{format(row[key] * scale, fmt)} ± {format(row[key + '_std'] * scale, fmt)}"


def markdown_table(agg: list[dict], world: str) -> str:
    rows = [r for r in agg if r["world"] == world]
    shapes = world == "shapes"
    head = ["method", "T", "G+f evals / sample", "f views / sample"]
    head += ["all-attributes acc., full captions (%)", "acc., partial prompts (%)", "CLIP cosine"] if shapes else \
        ["judged accuracy (%)", "p_f(label)"]
    head += ["diversity / real", "ms / sample"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], str(r["T"]) if r["method"] != "best-of-n" else f"N={r['T'] + 1}", str(r["evaluations"]), str(r["f_views"])]
        if shapes:
            cells += [pm(r, "accuracy_full", ".1f", 100), pm(r, "accuracy_partial", ".1f", 100), pm(r, "score", ".3f")]
        else:
            cells += [pm(r, "accuracy", ".1f", 100), pm(r, "score", ".3f")]
        cells += [pm(r, "diversity", ".2f"), pm(r, "seconds_per_sample", ".1f", 1000)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(agg: list[dict], world: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "accuracy_full" if world == "shapes" else "accuracy"
    rows = [r for r in agg if r["world"] == world and key in r]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["evaluations"])
        evals = [r["evaluations"] for r in rs]
        color = f"C{[m.key for m in METHODS].index(method)}"  # one colour per method in every plot
        kw = {"marker": "o", "ms": 4, "capsize": 3, "label": rs[0]["label"], "color": color}
        axes[0].errorbar(evals, [100 * r[key] for r in rs], yerr=[100 * r[key + "_std"] for r in rs], **kw)
        axes[1].errorbar([1000 * r["seconds_per_sample"] for r in rs], [100 * r[key] for r in rs],
                         yerr=[100 * r[key + "_std"] for r in rs], **kw)
        axes[2].errorbar(evals, [r["diversity"] for r in rs], yerr=[r["diversity_std"] for r in rs], **kw)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("G+f evaluations per sample")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("wall time per sample (ms)")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("G+f evaluations per sample")
    axes[2].set_ylabel("diversity / real (1 = as varied as real images)")
    axes[2].axhline(1.0, color="grey", lw=0.8, ls="--")
    ylabel = "judged all-attributes accuracy, full captions (%)" if world == "shapes" else "judged accuracy (%)"
    axes[0].set_ylabel(ylabel)
    axes[1].set_ylabel(ylabel)
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{world}: quality against compute (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import os

    return {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}


def targets(agg: list[dict]) -> list[str]:
    """The issue's targets on shapes, read off the measurements."""
    rows = {(r["method"], r["T"]): r for r in agg if r["world"] == "shapes" and "accuracy_full" in r}
    if not rows:
        return []
    tron = {t: r for (m, t), r in rows.items() if m == "tron"}
    out = []
    if 0 in tron:
        acc = tron[0]["accuracy_full"]
        out.append(f"- translator alone (T=0) ≥ 80 %: {100 * acc:.1f} % → {'met' if acc >= 0.8 else 'NOT met'}")
    upto25 = [r for t, r in tron.items() if t <= 25]
    if upto25:
        best = max(upto25, key=lambda r: r["accuracy_full"])
        ok = best["accuracy_full"] >= 0.95
        out.append(f"- TR0N ≥ 95 % at ≤ 25 steps: best {100 * best['accuracy_full']:.1f} % at T={best['T']} → {'met' if ok else 'NOT met'}")
        refs = [t for t in (0, 25) if t in tron]
        out += ["", "G+f evaluations a random-init method needs to match TR0N's mean accuracy at T "
                "(×: ratio to TR0N's evaluations; '>' when not matched within the sweep):", "",
                "| method | " + " | ".join(f"vs TR0N T={t} ({100 * tron[t]['accuracy_full']:.1f} %, {tron[t]['evaluations']} evals)"
                                          for t in refs) + " | ≥ 10× at T=25 |",
                "|---|" + "---|" * (len(refs) + 1)]
        for m in ("langevin", "langevin-aug", "adam", "fusedream", "best-of-n"):
            rs = sorted((r for (mm, _), r in rows.items() if mm == m), key=lambda r: r["evaluations"])
            if not rs:
                continue
            cells, verdict = [], "–"
            for t in refs:
                hit = next((r for r in rs if r["accuracy_full"] >= tron[t]["accuracy_full"]), None)
                evals = hit["evaluations"] if hit else rs[-1]["evaluations"]
                ratio = evals / tron[t]["evaluations"]
                cells.append(f"{evals} ({ratio:.1f}×)" if hit else f"> {evals} (> {ratio:.1f}×)")
                if t == 25:
                    verdict = "met" if ratio >= 10 else ("not shown (sweep ends first)" if not hit else "NOT met")
            out.append(f"| {rs[0]['label']} | " + " | ".join(cells) + f" | {verdict} |")
    return out


def write_outputs(out: Path, rows: list[dict], agg: list[dict], info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    worlds = list(dict.fromkeys(r["world"] for r in agg))
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows, "aggregate": agg}, indent=1) + "\n")
    md = ["# Quality against compute\n", f"Command: `{info['command']}`  ",
          f"Machine: {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), torch {info['machine']['torch']} "
          f"with {info['machine']['torch_threads']} threads, Python {info['machine']['python']}  ",
          f"Seeds: {', '.join(map(str, info['size']['seeds']))}; run took {info['seconds']:.0f} s; started {info['started']}  ",
          f"Size: {json.dumps(info['size'])}  ",
          f"Settings: {json.dumps(info['settings'])}\n",
          "Mean ± std over seeds (each seed draws its own prompt subset and its own samples). "
          "Definitions (G+f evaluations, diversity, energies) are in the docstring of "
          "`benchmarks/quality_vs_compute.py`.\n"]
    notes = [f"[{n}]({n})" for n in ("findings.md", "sweep.md", "sweep_baseline.md", "sweep_digits.md") if (out / n).is_file()]
    if notes:
        md.append(f"What the numbers mean and how the settings were chosen: {', '.join(notes)}.\n")
    tg = targets(agg)
    if tg:
        md += ["## Targets (shapes)\n", *tg, ""]
    for w in worlds:
        md += [f"## {w}\n", f"![{w}]({w}_accuracy.png)\n", markdown_table(agg, w), ""]
        plot(agg, w, out / f"{w}_accuracy.png")
    (out / "results.md").write_text("\n".join(md) + "\n")


# ----------------------------------------------------------------------------------------------
# Tuning a method's settings, one at a time


SWEEPABLE = ("std_scale", "step_size", "noise_std", "prior_weight")


def sweep(args, size: Size) -> None:
    from tron.world import load_world
    from tron.world_config import locate_world

    method = next(m for m in METHODS if m.key == args.sweep_method)
    rows, t_start = [], time.perf_counter()
    for name in args.world or ["shapes"]:
        spec = f"zoo:{name}"
        world, world_dir = load_world(spec), locate_world(spec)
        base = world.langevin
        if args.step_size is not None:
            base = replace(base, step_size=args.step_size)
        if args.noise_std is not None:
            base = replace(base, noise_std=args.noise_std)
        base_scale = args.std_scale if args.std_scale is not None else world.translator_std_scale
        tasks = {seed: (ShapesTask if name == "shapes" else DigitsTask)(world, world_dir, size, seed) for seed in size.seeds}
        for item in args.sweep:
            param, _, values = item.partition("=")
            if param not in SWEEPABLE and param != "langevin":
                raise SystemExit(f"--sweep: {param!r} is not one of {', '.join(SWEEPABLE)}, langevin")
            # langevin='[{"momentum": 0.9}, {"augment": {"num": 8}}]': Langevin settings over the world's, one row each
            settings = json.loads(values) if param == "langevin" else [float(v) for v in values.split(",")]
            for value in settings:
                if param == "langevin":
                    from tron.presets import langevin_settings

                    langevin, scale = langevin_settings(value, base, world.generator), base_scale
                    value = json.dumps(value, separators=(",", ":"))
                else:
                    langevin = replace(base, **{param: value}) if param != "std_scale" else base
                    scale = value if param == "std_scale" else base_scale
                for seed, task in tasks.items():
                    for r in run_method(method, world, task, None, size, seed, args.adam_lr, scale, langevin):
                        label = f"{param}={value:g}" if param != "langevin" else value
                        r.update(method=label, label=label, sweep_param=param, sweep_value=value)
                        rows.append(r)
                line = [r for r in rows if r["method"] == label and r["world"] == name]
                print(f"{name} {label}: " + "  ".join(
                    f"T={t}:{100 * sum(r.get('accuracy_full', r['accuracy']) for r in line if r['T'] == t) / len(size.seeds):.0f}%"
                    for t in sorted(size.steps)), flush=True)
    agg = aggregate(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    argv_used = " ".join(sys.argv[1:])
    info = {"command": f".venv/bin/python benchmarks/quality_vs_compute.py {argv_used}", "machine": machine(),
            "size": asdict(size), "seconds": time.perf_counter() - t_start}
    (args.out / "sweep.json").write_text(json.dumps({"info": info, "rows": rows, "aggregate": agg}, indent=1) + "\n")
    md = [f"# Settings sweep: {method.label}\n", f"Command: `{info['command']}`  ", f"Seeds: {', '.join(map(str, size.seeds))}; "
          f"{info['seconds']:.0f} s on {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), torch {info['machine']['torch']}\n"]
    for w in dict.fromkeys(r["world"] for r in agg):
        md += [f"## {w}\n", markdown_table(agg, w), ""]
    (args.out / "sweep.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


# ----------------------------------------------------------------------------------------------


# Long: the sweep is one script: worlds x methods x steps, then the tables and plots, in the order they run.
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke-test size (< 1 min)")
    p.add_argument("--world", action="append", choices=["shapes", "digits"], help="default: both")
    p.add_argument("--method", action="append", help="method keys to run (default: all)")
    p.add_argument("--seeds", type=str, help="comma-separated seeds (default 0,1,2; quick: 0)")
    p.add_argument("--steps", type=str, help="comma-separated T (default 0,5,10,25,50,100)")
    p.add_argument("--full-prompts", type=int, help="shapes: full captions per seed (default 24 of 210)")
    p.add_argument("--partial-prompts", type=int, help="shapes: partial prompts per seed (default 8 of 59)")
    p.add_argument("--per-prompt", type=int, help="shapes: samples per prompt (default 4)")
    p.add_argument("--per-label", type=int, help="digits: samples per label (default 20)")
    p.add_argument("--candidates", type=int, help="fusedream: M prior draws (default 10)")
    p.add_argument("--adam-lr", type=float, default=0.1, help="Adam step size for adam/fusedream")
    p.add_argument("--std-scale", type=float, help="TR0N: translator std scale (default: the world's)")
    p.add_argument("--step-size", type=float, help="Langevin step size (default: the world's)")
    p.add_argument("--noise-std", type=float, help="Langevin noise std (default: the world's)")
    p.add_argument("--sweep", action="append", metavar="PARAM=V1,V2,...",
                   help="instead of the comparison, sweep one setting (std_scale, step_size, noise_std, prior_weight) of "
                        "--sweep-method with the others at their defaults; writes sweep.md and sweep.json; repeatable")
    p.add_argument("--sweep-method", default="tron", choices=["tron", "langevin", "langevin-aug"],
                   help="the method --sweep tunes (default tron)")
    p.add_argument("--replot", action="store_true", help="rewrite the table and plots from OUT/results.json, no sampling")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cache", type=Path, help="MSE translator cache (default: OUT/cache)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    from tron.world import load_world
    from tron.world_config import locate_world

    size = QUICK if args.quick else DEFAULT
    overrides = {"seeds": args.seeds and tuple(int(s) for s in args.seeds.split(",")),
                 "steps": args.steps and tuple(int(s) for s in args.steps.split(",")),
                 "full_prompts": args.full_prompts, "partial_prompts": args.partial_prompts,
                 "per_prompt": args.per_prompt, "per_label": args.per_label, "candidates": args.candidates}
    size = replace(size, **{k: v for k, v in overrides.items() if v is not None})
    cache = args.cache or args.out / "cache"
    if args.replot:
        doc = json.loads((args.out / "results.json").read_text())
        return write_outputs(args.out, doc["rows"], aggregate(doc["rows"]), doc["info"])
    if args.sweep:
        return sweep(args, size)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_start = time.perf_counter()
    rows, settings = [], {}
    for name in args.world or ["shapes", "digits"]:
        spec = f"zoo:{name}"
        world, world_dir = load_world(spec), locate_world(spec)
        langevin = world.langevin
        if args.step_size is not None:
            langevin = replace(langevin, step_size=args.step_size)
        if args.noise_std is not None:
            langevin = replace(langevin, noise_std=args.noise_std)
        std_scale = args.std_scale if args.std_scale is not None else world.translator_std_scale
        methods = [m for m in methods_for(world) if not args.method or m.key in args.method]
        mse = mse_translator(world, cache, size) if any(m.init == "mse" for m in methods) else None
        settings[name] = {"langevin": asdict(langevin), "translator_std_scale": std_scale, "adam_lr": args.adam_lr,
                          "augment": langevin.augment.to_dict(),
                          "fingerprints": world.fingerprints}
        for seed in size.seeds:
            task = (ShapesTask if name == "shapes" else DigitsTask)(world, world_dir, size, seed)
            for method in methods:
                t0 = time.perf_counter()
                rs = run_method(method, world, task, mse, size, seed, args.adam_lr, std_scale, langevin)
                rows += rs
                print(f"{name} seed {seed} {method.key:13s} {time.perf_counter() - t0:6.1f} s  "
                      + "  ".join(f"T={r['T']}:{100 * r.get('accuracy_full', r['accuracy']):.0f}%" for r in rs), flush=True)
    agg = aggregate(rows)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    info = {"command": " ".join([".venv/bin/python benchmarks/quality_vs_compute.py", *argv_used]), "machine": machine(),
            "size": asdict(size), "settings": settings, "started": started, "seconds": time.perf_counter() - t_start}
    write_outputs(args.out, rows, agg, info)
    for w in dict.fromkeys(r["world"] for r in agg):
        print(f"\n## {w}\n\n{markdown_table(agg, w)}")
    for line in targets(agg):
        print(line)
    print(f"\nwrote {args.out}/results.md, results.json and the plots")


if __name__ == "__main__":
    main()
