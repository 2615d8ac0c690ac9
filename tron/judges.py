"""Judges: the measuring instruments named in world.json ("judge": {"kind": ...}). Never f.

A judge samples a world with several methods and scores the samples by itself:

    tables(world, ...)  the quality tables `tron eval` prints: [(title, rows, columns)]
    quick(world, ...)   a few numbers for the promotion gate: judged_accuracy_T0, judged_accuracy, ...

    digits-svm           an RBF SVM on pixels (zoo:digits, zoo:digits-cm)
    shapes-attributes    a CNN with one head per attribute, trained on degraded renders (zoo:shapes)
    imagenet-classifier  another pretrained ImageNet classifier (zoo:faces: Lite2, never the Lite0 f)

Kinds are entry points (group `tron.judges`), so a world of one's own can name one of these or
bring its own.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import torch

from .conditions import Condition, from_labels, from_text
from .errors import RegistryError
from .evaluation import Method, best_of_n_method, clip_methods, default_methods, mean_pairwise_distance, run_method
from .langevin import LangevinConfig
from .world import World

GROUP = "tron.judges"
Progress = Callable[[int], None] | None


def load_judge(world: World):
    """The judge world.json names, or None."""
    spec = world.config.judge if world.config is not None else None
    if not spec:
        return None
    options = {k: v for k, v in spec.items() if k != "kind"}
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if spec["kind"] not in found:
        raise RegistryError(f"unknown judge {spec['kind']!r} in {world.path}/world.json; known: {', '.join(sorted(found))}")
    return found[spec["kind"]].load()(world, **options)


# -- digits ----------------------------------------------------------------------------------------

DIGITS_COLUMNS = [
    ("method", "method", ""),
    ("accuracy", "judged accuracy", ".1%"),
    ("min_label_accuracy", "worst digit", ".1%"),
    ("diversity_native", "diversity / real (8x8)", ".2f"),
    ("diversity_vs_g", "diversity / G's own", ".2f"),
    ("min_diversity_vs_g", "worst digit / G's own", ".2f"),
    ("mean_energy", "mean CE energy", ".3f"),
    ("seconds_per_sample", "s / sample", ".4f"),
]


def to_native(x: torch.Tensor) -> torch.Tensor:
    """16x16 digits back at the data's own 8x8 (2x2 means: the inverse of the 2x upsampling)."""
    return torch.nn.functional.avg_pool2d(x, 2)


class DigitsJudge:
    """An RBF SVM on 16x16 pixels, trained on all 1,797 digits (scikit-learn's). Diversity is
    measured at the data's native 8x8, against the real digits of the class and against G's own
    unconditional samples that the SVM puts in the class."""

    name = "digits-svm"

    def __init__(self, world: World, reference_samples: int = 2000) -> None:
        from .zoo.digits import fit_judge, load_digits_images

        self.world = world
        self.svm, self.held_out = fit_judge()
        real8, labels = load_digits_images(side=8)
        self.real_spread = torch.tensor([mean_pairwise_distance(real8[labels == k]) for k in range(10)])
        self.g_spread = self._g_spread(reference_samples)

    def _g_spread(self, n: int) -> torch.Tensor:
        """Per class: the spread of G's own unconditional samples that the judge puts in it."""
        g = self.world.generator
        with torch.no_grad():
            x = g.decode(g.sample_latents(n, torch.Generator(device=g.device).manual_seed(12345))).cpu()
        pred = torch.as_tensor(self.svm.predict(x.flatten(1).numpy()))
        native = to_native(x)
        return torch.tensor([mean_pairwise_distance(native[pred == k]) for k in range(10)])

    def describe(self) -> str:
        return f"judge: RBF SVM on pixels (held-out accuracy {self.held_out:.1%})"

    def score(self, res, labels: torch.Tensor) -> dict[str, Any]:
        pred = torch.as_tensor(self.svm.predict(res.images.flatten(1).numpy()))
        target = labels[res.condition_index]
        correct = (pred == target).float()
        present = sorted(set(labels.tolist()))
        per_label = [float(correct[target == k].mean()) for k in present]
        native = to_native(res.images)
        spread = torch.tensor([mean_pairwise_distance(native[target == k]) for k in present])
        vs_g = spread / self.g_spread[present]
        return {"accuracy": float(correct.mean()), "min_label_accuracy": min(per_label), "per_label_accuracy": per_label,
                "diversity_native": float((spread / self.real_spread[present]).mean()),
                "diversity_vs_g": float(vs_g.mean()), "min_diversity_vs_g": float(vs_g.min()),
                "mean_energy": float(res.energies.mean())}

    def rows(self, n: int, seed: int, methods: list[Method], langevin: LangevinConfig, progress: Progress = None) -> list[dict]:
        labels = torch.arange(10)
        condition = from_labels(self.world.encoder, labels.tolist())
        rows = []
        for method in methods:
            res, seconds = run_method(self.world, condition, n, method, seed, langevin, batch_size=250, progress=progress)
            rows.append({"method": method.name, **self.score(res, labels), "seconds_per_sample": seconds / len(res.images),
                         "evaluations_per_sample": method.evaluations})
        return rows

    def tables(self, n: int | None = None, seed: int = 0, langevin: LangevinConfig | None = None,
               progress: Progress = None, **_: Any) -> list[tuple[str, list[dict], list]]:
        langevin = langevin or self.world.langevin
        n = n or 100
        rows = self.rows(n, seed, default_methods(langevin.steps), langevin, progress)
        return [(f"{n} samples per digit", rows, DIGITS_COLUMNS)]

    def quick(self, n: int = 8, seed: int = 0, langevin: LangevinConfig | None = None) -> dict[str, float]:
        langevin = langevin or self.world.langevin
        rows = self.rows(max(n, 10), seed, default_methods(langevin.steps)[:2], langevin)
        return {"judged_accuracy_T0": rows[0]["accuracy"], "judged_accuracy": rows[1]["accuracy"],
                "diversity_vs_g": rows[1]["diversity_vs_g"]}


# -- shapes ----------------------------------------------------------------------------------------

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

IMAGE_VARIATION_COLUMNS = SHAPES_COLUMNS[:2] + [("attributes_kept", "attributes kept", ".1%")] + SHAPES_COLUMNS[2:]


class ShapesJudge:
    """The attribute CNN of the shapes world: a sample is right when the judge sees every
    attribute its prompt names."""

    name = "shapes-attributes"

    def __init__(self, world: World, path: str = "judge") -> None:
        from .zoo import shapes

        self.world, self.shapes = world, shapes
        self.cnn = shapes.load_judge(world.path / path)

    def describe(self) -> str:
        held_out = self.cnn.metadata.get("held_out_degraded_all", float("nan"))
        return f"judge: attribute CNN (held-out accuracy {held_out:.1%} on degraded renders)"

    def prompt_sets(self) -> dict[str, list[dict[str, str]]]:
        return {"full": self.shapes.full_prompt_set(), "partial": self.shapes.partial_prompt_set()}

    def score(self, res, prompts: list[dict[str, str]]) -> dict[str, Any]:
        S = self.shapes
        names = S.ATTRIBUTE_NAMES
        target = torch.tensor([[S.ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in names] for p in prompts])  # (P, 4)
        pred, _ = self.cnn.judge(res.images)
        want = target[res.condition_index]  # (N, 4)
        named = want >= 0
        correct = (pred == want) | ~named
        row = {"accuracy": float(correct.all(1).float().mean())}
        for i, a in enumerate(names):
            row[f"{a}_accuracy"] = float(correct[named[:, i], i].float().mean()) if named[:, i].any() else float("nan")
        row["mean_energy"] = float(res.energies.mean())
        return row

    def rows(self, prompts: list[dict[str, str]], n: int, seed: int, methods: list[Method], langevin: LangevinConfig,
             condition: Condition | None = None, progress: Progress = None) -> list[dict]:
        condition = condition or from_text(self.world.encoder, [self.shapes.describe(**p) for p in prompts])
        rows = []
        for method in methods:
            res, seconds = run_method(self.world, condition, n, method, seed, langevin, progress=progress)
            rows.append({"method": method.name, **self.score(res, prompts), "evaluations_per_sample": method.evaluations,
                         "seconds_per_sample": seconds / len(res.images), "samples": len(res.images)})
        return rows

    def image_rows(self, n: int, seed: int, langevin: LangevinConfig, progress: Progress = None) -> list[dict]:
        """Image semantic variation: one fresh render of each of the 210 combinations as the
        condition (f's image embedding, the world's image translator); a sample keeps an attribute
        when the judge sees the render's value of it in the sample."""
        from .conditions import from_images

        combos = self.shapes.all_combinations()
        renders = self.shapes.render(combos, torch.Generator().manual_seed(7))
        names = self.shapes.ATTRIBUTE_NAMES
        prompts = [{a: self.shapes.ATTRIBUTES[a][int(v)] for a, v in zip(names, row)} for row in combos]
        rows = self.rows(prompts, n, seed, default_methods(langevin.steps)[:2], langevin,
                         condition=from_images(self.world.encoder, renders), progress=progress)
        for row in rows:
            row["attributes_kept"] = sum(row[f"{a}_accuracy"] for a in names) / len(names)
        return rows

    def tables(self, n: int | None = None, seed: int = 0, langevin: LangevinConfig | None = None,
               progress: Progress = None, prompts: str = "all", **_: Any) -> list[tuple[str, list[dict], list]]:
        langevin = langevin or self.world.langevin
        n = n or 8
        sets = self.prompt_sets()
        chosen = {"all": [*sets, "image"], "both": list(sets)}.get(prompts, [prompts])
        tables = [(f"{name} prompts ({len(sets[name])} prompts x {n} samples)",
                   self.rows(sets[name], n, seed, clip_methods(langevin.steps), langevin, progress=progress), SHAPES_COLUMNS)
                  for name in chosen if name in sets]
        if "image" in chosen:
            tables.append((f"image variation (210 renders x {n} samples; all attributes of the render kept)",
                           self.image_rows(n, seed, langevin, progress), IMAGE_VARIATION_COLUMNS))
        return tables

    def quick(self, n: int = 8, seed: int = 0, langevin: LangevinConfig | None = None) -> dict[str, float]:
        langevin = langevin or self.world.langevin
        prompts = self.shapes.full_prompt_set()[::7]  # 30 of the 210 full captions: every shape, colour, size, position
        rows = self.rows(prompts, max(2, n // 2), seed, default_methods(langevin.steps)[:2], langevin)
        return {"judged_accuracy_T0": rows[0]["accuracy"], "judged_accuracy": rows[1]["accuracy"]}


# -- another ImageNet classifier ---------------------------------------------------------------------

CLASSIFIER_COLUMNS = [
    ("method", "method", ""),
    ("top1", "judge top-1", ".1%"),
    ("top5", "judge top-5", ".1%"),
    ("second_top5", "2nd judge top-5", ".1%"),
    ("f_probability", "f's probability", ".3f"),
    ("diversity_vs_g", "diversity / G's own", ".2f"),
    ("evaluations_per_sample", "G+f evals / sample", ""),
    ("seconds_per_sample", "s / sample", ".2f"),
]


class ClassifierJudge:
    """Other pretrained classifiers (encoder specs, e.g. efficientnet:lite2, and a second one) over
    f's classes: the target's place in the judge's top-1 / top-5, f's own probability of it, and
    diversity: the mean pairwise distance of the judge's unit pooled features within a class,
    relative to the same spread of G's own unconditional samples that the judge puts in that class
    (`reference`: a JSON file in the world, written by `reference_spread`)."""

    name = "imagenet-classifier"

    def __init__(self, world: World, encoder: str, second: str | None = None, classes: list[int] | None = None,
                 reference: str | None = None) -> None:
        from .components import load_encoder_spec

        own = getattr(world.config, "encoder", None)
        if own is not None and own.split("#")[0] in (encoder.split("#")[0], (second or "").split("#")[0]):
            raise RegistryError("a judge must not be the world's own f")
        self.world, self.spec, self.second_spec = world, encoder, second
        device = world.generator.device
        self.model = load_encoder_spec(encoder, device=device)
        self.second = load_encoder_spec(second, device=device) if second else None
        self.classes = list(classes or [])
        self.reference: dict[int, float] = {}
        if reference and (world.path / reference).is_file():
            import json

            doc = json.loads((world.path / reference).read_text())
            self.reference = {int(k): float(v["spread"]) for k, v in doc["classes"].items() if v.get("spread")}

    def describe(self) -> str:
        return (f"judges: {self.spec}" + (f" and {self.second_spec}" if self.second_spec else "")
                + " (other ImageNet classifiers, never f)")

    @torch.no_grad()
    def judge(self, x: torch.Tensor, model=None, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities (N, 1000), unit pooled features (N, F)) of a judge."""
        model = model or self.model
        probs, feats = [], []
        for start in range(0, len(x), batch_size):
            p, h = model.classify(x[start:start + batch_size].to(self.world.generator.device))
            probs.append(p.cpu())
            feats.append(h.cpu())
        return torch.cat(probs), torch.cat(feats)

    @torch.no_grad()
    def reference_spread(self, n: int, seed: int = 12345, batch_size: int = 64,
                         progress: Progress = None) -> dict[str, Any]:
        """G's own unconditional samples, classified by the judge: per class, how many and the spread
        of the judge's features among them (the reference of the diversity ratio)."""
        g = self.world.generator
        rng = torch.Generator(device=g.device).manual_seed(seed)
        labels, feats = [], []
        for start in range(0, n, batch_size):
            x = g.decode(g.sample_latents(min(batch_size, n - start), rng))
            p, h = self.judge(x)
            labels.append(p.argmax(1))
            feats.append(h)
            if progress is not None:
                progress(len(x))
        labels, feats = torch.cat(labels), torch.cat(feats)
        counts = torch.bincount(labels, minlength=1000)
        classes = {}
        for k in counts.nonzero().squeeze(1).tolist():
            rows = labels == k
            classes[str(k)] = {"count": int(counts[k]), "spread": mean_pairwise_distance(feats[rows]) if rows.sum() > 1 else None}
        return {"samples": n, "seed": seed, "judge": self.spec, "classes": classes}

    def score(self, res, labels: torch.Tensor) -> dict[str, Any]:
        probs, feats = self.judge(res.images)
        target = labels[res.condition_index]
        top5 = probs.topk(5, dim=1).indices
        hit1 = (top5[:, 0] == target).float()
        hit5 = (top5 == target.unsqueeze(1)).any(1).float()
        second5 = None
        if self.second is not None:
            p2, _ = self.judge(res.images, self.second)
            second5 = (p2.topk(5, dim=1).indices == target.unsqueeze(1)).any(1).float()
        f_prob = torch.exp(-res.energies)  # the final energy is f's cross-entropy of the one-hot target
        per_class = {}
        for k in sorted(set(labels.tolist())):
            rows = target == k
            spread = mean_pairwise_distance(feats[rows])
            per_class[k] = {"top1": float(hit1[rows].mean()), "top5": float(hit5[rows].mean()),
                            "second_top5": float(second5[rows].mean()) if second5 is not None else float("nan"),
                            "f_probability": float(f_prob[rows].mean()), "spread": spread,
                            "diversity_vs_g": spread / self.reference[k] if self.reference.get(k) else float("nan")}
        div = [v["diversity_vs_g"] for v in per_class.values() if v["diversity_vs_g"] == v["diversity_vs_g"]]
        return {"top1": float(hit1.mean()), "top5": float(hit5.mean()),
                "second_top5": float(second5.mean()) if second5 is not None else float("nan"),
                "f_probability": float(f_prob.mean()), "diversity_vs_g": sum(div) / len(div) if div else float("nan"),
                "per_class": per_class}

    def rows(self, classes: list[int], n: int, seed: int, methods: list[Method], langevin: LangevinConfig,
             progress: Progress = None) -> list[dict]:
        labels = torch.tensor(classes)
        condition = from_labels(self.world.encoder, classes)
        rows = []
        for method in methods:
            res, seconds = run_method(self.world, condition, n, method, seed, langevin, batch_size=64, progress=progress)
            rows.append({"method": method.name, **self.score(res, labels), "evaluations_per_sample": method.evaluations,
                         "seconds_per_sample": seconds / len(res.images)})
        return rows

    def tables(self, n: int | None = None, seed: int = 0, langevin: LangevinConfig | None = None,
               progress: Progress = None, classes: list[int] | None = None, **_: Any) -> list[tuple[str, list[dict], list]]:
        langevin = langevin or self.world.langevin
        n = n or 8
        classes = classes or self.classes
        methods = default_methods(langevin.steps) + [best_of_n_method(langevin.steps)]
        return [(f"{len(classes)} classes x {n} samples", self.rows(classes, n, seed, methods, langevin, progress),
                 CLASSIFIER_COLUMNS)]

    def quick(self, n: int = 8, seed: int = 0, langevin: LangevinConfig | None = None) -> dict[str, float]:
        langevin = langevin or self.world.langevin
        rows = self.rows(self.classes[:4], max(2, n // 4), seed, default_methods(langevin.steps)[:2], langevin)
        return {"judged_accuracy_T0": rows[0]["top5"], "judged_accuracy": rows[1]["top5"]}
