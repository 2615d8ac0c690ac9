"""Judges: the measuring instruments named in world.json ("judge": {"kind": ...}). Never f.

A judge samples a world with several methods (tron.evaluation) and scores the samples by itself:

    tables(n, seed, langevin, ...)  the quality tables `tron eval` prints: [(title, rows, columns)]
    quick(n, seed, langevin)        a few numbers for the promotion gate: judged_accuracy_T0, judged_accuracy, ...

    digits-svm           an RBF SVM on pixels (zoo:digits, zoo:digits-cm; tron.zoo.digits.judge)
    shapes-attributes    a CNN with one head per attribute, trained on degraded renders (zoo:shapes;
                         tron.zoo.shapes.judge)
    imagenet-classifier  another pretrained ImageNet classifier (zoo:faces: Lite2, never the Lite0 f); here

Kinds are names in the registry JUDGES (entry-point group `tron.judges`), so a world of one's own
can name one of these or bring its own; a world's own judge lives with the world.
"""
from __future__ import annotations

import json
from typing import Any

import torch

from .components import load_encoder_spec
from .conditions import from_labels
from .diversity import conditional_prdc
from .errors import RegistryError
from .evaluation import Method, Progress, best_of_n_method, default_methods, mean_pairwise_distance, run_method
from .langevin import LangevinConfig
from .registry import Registry
from .world import World

JUDGES: Registry = Registry("judge", "tron.judges")


def load_judge(world: World):
    """The judge world.json names, or None."""
    spec = world.config.judge if world.config is not None else None
    if not spec:
        return None
    options = {k: v for k, v in spec.items() if k != "kind"}
    return JUDGES.get(spec["kind"])(world, **options)


# -- another ImageNet classifier ---------------------------------------------------------------------

CLASSIFIER_COLUMNS = [
    ("method", "method", ""),
    ("top1", "judge top-1", ".1%"),
    ("top5", "judge top-5", ".1%"),
    ("second_top5", "2nd judge top-5", ".1%"),
    ("f_probability", "f's probability", ".3f"),
    ("diversity_vs_g", "diversity / G's own", ".2f"),
    ("recall_vs_g", "recall / G's own", ".2f"),
    ("coverage_vs_g", "coverage / G's own", ".2f"),
    ("evaluations_per_sample", "G+f evals / sample", ""),
    ("seconds_per_sample", "s / sample", ".2f"),
]


class ClassifierJudge:
    """Other pretrained classifiers (encoder specs, e.g. efficientnet:lite2, and a second one) over
    f's classes: the target's place in the judge's top-1 / top-5, f's own probability of it, and
    diversity: the mean pairwise distance of the judge's unit pooled features within a class,
    relative to the same spread of G's own unconditional samples that the judge puts in that class
    (`reference`: a JSON file in the world, written by `reference_spread`); and precision / recall /
    density / coverage (tron.diversity) in the same features against G's own samples of the class
    (`reference_features`: a safetensors file in the world, written by `reference_features`; classes
    with too few of G's samples are left out and counted)."""

    def __init__(self, world: World, encoder: str, second: str | None = None, classes: list[int] | None = None,
                 reference: str | None = None, reference_features: str | None = None) -> None:
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
            doc = json.loads((world.path / reference).read_text())
            self.reference = {int(k): float(v["spread"]) for k, v in doc["classes"].items() if v.get("spread")}
        self.features: dict[int, torch.Tensor] = {}  # class -> (rows, F) of G's own samples the judge puts in it
        if reference_features and (world.path / reference_features).is_file():
            from safetensors.torch import load_file

            self.features = {int(k.split("_")[1]): v.float() for k, v in load_file(world.path / reference_features).items()}

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

    @torch.no_grad()
    def reference_features(self, n: int, classes: list[int], seed: int = 54321, cap: int = 512, batch_size: int = 64,
                           progress: Progress = None) -> dict[str, torch.Tensor]:
        """The judge's unit pooled features of G's own unconditional samples that it puts (top-1) in
        each of `classes`, at most `cap` per class, from n samples: {"class_<k>": (rows, F) float16}."""
        g = self.world.generator
        rng = torch.Generator(device=g.device).manual_seed(seed)
        kept: dict[int, list[torch.Tensor]] = {k: [] for k in classes}
        for start in range(0, n, batch_size):
            p, h = self.judge(g.decode(g.sample_latents(min(batch_size, n - start), rng)))
            top = p.argmax(1)
            for k in classes:
                kept[k].append(h[top == k])
            if progress is not None:
                progress(min(batch_size, n - start))
        return {f"class_{k}": torch.cat(v)[:cap].half().contiguous() for k, v in kept.items()}

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
        prdc = {}
        if self.features:
            present = labels.tolist()
            stacked = [self.features.get(int(k), feats[:0]) for k in present]
            offsets = torch.tensor([0] + [len(f) for f in stacked]).cumsum(0)
            sets = [torch.arange(int(a), int(b)) for a, b in zip(offsets, offsets[1:])]
            prdc = conditional_prdc(feats, res.condition_index, torch.cat(stacked), sets)
        return {"top1": float(hit1.mean()), "top5": float(hit5.mean()), **prdc,
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
            rows.append({"method": method.name, **self.score(res, labels), "evaluations_per_sample": method.evaluations(langevin),
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
