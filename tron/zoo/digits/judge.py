"""The digits world's judge (world.json: "judge": {"kind": "digits-svm"}, zoo:digits and
zoo:digits-cm): an RBF SVM on 16x16 pixels, trained on all 1,797 digits. Diversity is measured at
the data's native 8x8, against the real digits of the class and against G's own unconditional
samples that the SVM puts in the class (mean pairwise distance, and precision / recall / density /
coverage against 5,000 of G's own samples: tron.diversity)."""
from __future__ import annotations

from typing import Any

import torch

from ...conditions import from_labels
from ...diversity import conditional_prdc
from ...evaluation import Method, Progress, default_methods, mean_pairwise_distance, run_method
from ...langevin import LangevinConfig
from ...world import World
from .data import load_digits_images, split_digits

DIGITS_COLUMNS = [
    ("method", "method", ""),
    ("accuracy", "judged accuracy", ".1%"),
    ("min_label_accuracy", "worst digit", ".1%"),
    ("diversity_native", "diversity / real (8x8)", ".2f"),
    ("diversity_vs_g", "diversity / G's own", ".2f"),
    ("min_diversity_vs_g", "worst digit / G's own", ".2f"),
    ("recall_vs_g", "recall / G's own", ".2f"),
    ("coverage_vs_g", "coverage / G's own", ".2f"),
    ("precision", "precision", ".2f"),
    ("mean_energy", "mean CE energy", ".3f"),
    ("seconds_per_sample", "s / sample", ".4f"),
]


def fit_svm(seed: int = 0):
    """The SVM the judge uses, trained on all digits, and the held-out accuracy of the same recipe
    trained on 80 % (the mean of three splits)."""
    from sklearn.svm import SVC

    scores = []
    for split in range(seed, seed + 3):
        x_tr, y_tr, x_te, y_te = split_digits(split)
        probe = SVC(gamma="scale", C=10.0).fit(x_tr.flatten(1).numpy(), y_tr.numpy())
        scores.append(float((probe.predict(x_te.flatten(1).numpy()) == y_te.numpy()).mean()))
    held_out = sum(scores) / len(scores)
    x, y = load_digits_images()
    return SVC(gamma="scale", C=10.0).fit(x.flatten(1).numpy(), y.numpy()), held_out


def to_native(x: torch.Tensor) -> torch.Tensor:
    """16x16 digits back at the data's own 8x8 (2x2 means: the inverse of the 2x upsampling)."""
    return torch.nn.functional.avg_pool2d(x, 2)


class DigitsJudge:
    """The SVM as the measuring instrument of `tron eval` and the promotion gate (tron.judges)."""

    def __init__(self, world: World, reference_samples: int = 5000) -> None:
        self.world = world
        self.svm, self.held_out = fit_svm()
        real8, labels = load_digits_images(side=8)
        self.real_spread = torch.tensor([mean_pairwise_distance(real8[labels == k]) for k in range(10)])
        self.g_native, self.g_label = self._g_reference(reference_samples)
        first, label = self.g_native[:2000], self.g_label[:2000]  # the spread's reference: G's first 2,000, as before
        self.g_spread = torch.tensor([mean_pairwise_distance(first[label == k]) for k in range(10)])

    def _g_reference(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """G's own unconditional samples at the native 8x8 (n, 64) and the digit the judge reads in each (n,)."""
        g = self.world.generator
        with torch.no_grad():
            x = g.decode(g.sample_latents(n, torch.Generator(device=g.device).manual_seed(12345))).cpu()
        pred = torch.as_tensor(self.svm.predict(x.flatten(1).numpy()))
        return to_native(x).flatten(1), pred

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
        sets = [torch.nonzero(self.g_label == int(k)).squeeze(1) for k in labels]
        prdc = conditional_prdc(native.flatten(1), res.condition_index, self.g_native, sets)
        return {"accuracy": float(correct.mean()), "min_label_accuracy": min(per_label), "per_label_accuracy": per_label,
                "diversity_native": float((spread / self.real_spread[present]).mean()),
                "diversity_vs_g": float(vs_g.mean()), "min_diversity_vs_g": float(vs_g.min()),
                "mean_energy": float(res.energies.mean()), **prdc}

    def rows(self, n: int, seed: int, methods: list[Method], langevin: LangevinConfig, progress: Progress = None) -> list[dict]:
        labels = torch.arange(10)
        condition = from_labels(self.world.encoder, labels.tolist())
        rows = []
        for method in methods:
            res, seconds = run_method(self.world, condition, n, method, seed, langevin, batch_size=250, progress=progress)
            rows.append({"method": method.name, **self.score(res, labels), "seconds_per_sample": seconds / len(res.images),
                         "evaluations_per_sample": method.evaluations(langevin)})
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
                "diversity_vs_g": rows[1]["diversity_vs_g"], "recall_vs_g": rows[1]["recall_vs_g"]}
