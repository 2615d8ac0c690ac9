"""The shapes world's judge (world.json: "judge": {"kind": "shapes-attributes"}): an attribute CNN,
trained on degraded renders by tron.recipes.shapes, reads each sample's four attributes; a sample is
right when the CNN sees every attribute its prompt names. The CNN is never f, nor the captioner."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoint import load_checkpoint, save_checkpoint
from ...conditions import Condition, from_images, from_text
from ...diversity import conditional_prdc, nanmean, nanmin, open_attribute_spread
from ...evaluation import Method, Progress, clip_methods, default_methods, run_method
from ...langevin import LangevinConfig
from ...parts import freeze
from ...world import World
from .captions import describe, full_prompt_set, partial_prompt_set
from .render import ATTRIBUTE_NAMES, ATTRIBUTES, NUM_VALUES, SIDE, all_combinations, render

CNN_KIND = "shapes-judge"  # the checkpoint kind of the attribute CNN (its config.json says so)


class AttributeCNN(nn.Module):
    """Small CNN with one classification head per attribute (shape, color, size, position)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.config = {"width": width}
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * w * 16, 128), nn.ReLU(),
        )
        self.heads = nn.ModuleList(nn.Linear(128, k) for k in NUM_VALUES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, 32, 32) -> 4 x (B, k)
        if x.shape[1:] != (3, SIDE, SIDE):
            raise ValueError(f"the shapes judge expects (B, 3, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
        h = self.body(x)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predicted attributes (N, 4) long, their softmax confidences (N, 4) and the features the
        heads read (N, 128): the judge's feature space for precision / recall."""
        preds, confs, feats = [], [], []
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].float()
            if xb.shape[1:] != (3, SIDE, SIDE):
                raise ValueError(f"the shapes judge expects (B, 3, {SIDE}, {SIDE}) images, got {tuple(x.shape)}")
            h = self.body(xb)
            conf, pred = zip(*(F.softmax(head(h), dim=-1).max(dim=-1) for head in self.heads))
            preds.append(torch.stack(pred, 1))
            confs.append(torch.stack(conf, 1))
            feats.append(h)
        return torch.cat(preds), torch.cat(confs), torch.cat(feats)

    def judge(self, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted attributes (N, 4) long and their softmax confidences (N, 4)."""
        pred, conf, _ = self.read(x, batch_size)
        return pred, conf


def save_attribute_cnn(cnn: AttributeCNN, directory: str | os.PathLike, metadata: dict | None = None):
    return save_checkpoint(cnn, directory, CNN_KIND, cnn.config, metadata)


def load_attribute_cnn(directory: str | os.PathLike) -> AttributeCNN:
    """The CNN in eval mode with `.metadata` (held-out accuracy) attached."""
    return freeze(load_checkpoint(directory, CNN_KIND, lambda config: AttributeCNN(**config)))


# ----------------------------------------------------------------------------------------------
# The instrument

SHAPES_COLUMNS = [
    ("method", "method", ""),
    ("accuracy", "all named attributes", ".1%"),
    ("spread_vs_g", "open-attribute spread / G's own", ".2f"),
    ("min_spread_vs_g", "worst prompt", ".2f"),
    ("recall_vs_g", "recall / G's own", ".2f"),
    ("coverage_vs_g", "coverage / G's own", ".2f"),
    ("precision", "precision", ".2f"),
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
    """The attribute CNN of the shapes world as the measuring instrument of `tron eval` and the
    promotion gate (tron.judges)."""

    def __init__(self, world: World, path: str = "judge", reference_samples: int = 20000) -> None:
        self.world = world
        self.cnn = load_attribute_cnn(world.path / path)
        self.reference_samples = reference_samples
        self._reference: tuple[torch.Tensor, torch.Tensor] | None = None

    def reference(self) -> tuple[torch.Tensor, torch.Tensor]:
        """G's own unconditional samples as the judge reads them: attributes (M, 4) and features
        (M, 128), seeded, made once (the reference of every diversity measure)."""
        if self._reference is None:
            g = self.world.generator
            rng = torch.Generator(device=g.device).manual_seed(12345)
            preds, feats = [], []
            with torch.no_grad():
                for start in range(0, self.reference_samples, 1000):
                    x = g.decode(g.sample_latents(min(1000, self.reference_samples - start), rng)).cpu()
                    pred, _, h = self.cnn.read(x)
                    preds.append(pred)
                    feats.append(h)
            self._reference = torch.cat(preds), torch.cat(feats)
        return self._reference

    def diversity(self, pred: torch.Tensor, feats: torch.Tensor, condition_index: torch.Tensor,
                  target: torch.Tensor) -> dict[str, float]:
        """Open-attribute spread and PRDC (tron.diversity) of samples judged `pred` (N, 4) with
        features (N, 128), against G's own samples that the judge puts in each prompt's set
        (target (P, 4): the named value of each attribute, -1 where open)."""
        ref_pred, ref_feats = self.reference()
        in_set = [((ref_pred == t) | (t < 0)).all(1).nonzero().squeeze(1) for t in target]
        spreads = [open_attribute_spread(pred[condition_index == j], ref_pred[rows], (t < 0).nonzero().squeeze(1).tolist(),
                                         NUM_VALUES)["spread_vs_g"]
                   for j, (t, rows) in enumerate(zip(target, in_set)) if (t < 0).any() and (condition_index == j).any()]
        return {"spread_vs_g": nanmean(spreads), "min_spread_vs_g": nanmin(spreads),
                **conditional_prdc(feats, condition_index, ref_feats, in_set)}

    def describe(self) -> str:
        held_out = self.cnn.metadata.get("held_out_degraded_all", float("nan"))
        return f"judge: attribute CNN (held-out accuracy {held_out:.1%} on degraded renders)"

    def prompt_sets(self) -> dict[str, list[dict[str, str]]]:
        return {"full": full_prompt_set(), "partial": partial_prompt_set()}

    def score(self, res, prompts: list[dict[str, str]]) -> dict[str, Any]:
        target = torch.tensor([[ATTRIBUTES[a].index(p[a]) if a in p else -1 for a in ATTRIBUTE_NAMES] for p in prompts])  # (P, 4)
        pred, _, feats = self.cnn.read(res.images)
        want = target[res.condition_index]  # (N, 4)
        named = want >= 0
        correct = (pred == want) | ~named
        row = {"accuracy": float(correct.all(1).float().mean())}
        for i, a in enumerate(ATTRIBUTE_NAMES):
            row[f"{a}_accuracy"] = float(correct[named[:, i], i].float().mean()) if named[:, i].any() else float("nan")
        row["mean_energy"] = float(res.energies.mean())
        row.update(self.diversity(pred, feats, res.condition_index, target))
        return row

    def rows(self, prompts: list[dict[str, str]], n: int, seed: int, methods: list[Method], langevin: LangevinConfig,
             condition: Condition | None = None, progress: Progress = None) -> list[dict]:
        condition = condition or from_text(self.world.encoder, [describe(**p) for p in prompts])
        rows = []
        for method in methods:
            res, seconds = run_method(self.world, condition, n, method, seed, langevin, progress=progress)
            rows.append({"method": method.name, **self.score(res, prompts), "evaluations_per_sample": method.evaluations(langevin),
                         "seconds_per_sample": seconds / len(res.images), "samples": len(res.images)})
        return rows

    def image_rows(self, n: int, seed: int, langevin: LangevinConfig, progress: Progress = None) -> list[dict]:
        """Image semantic variation: one fresh render of each of the 210 combinations as the
        condition (f's image embedding, the world's image translator); a sample keeps an attribute
        when the judge sees the render's value of it in the sample."""
        combos = all_combinations()
        renders = render(combos, torch.Generator().manual_seed(7))
        prompts = [{a: ATTRIBUTES[a][int(v)] for a, v in zip(ATTRIBUTE_NAMES, row)} for row in combos]
        rows = self.rows(prompts, n, seed, default_methods(langevin.steps)[:2], langevin,
                         condition=from_images(self.world.encoder, renders), progress=progress)
        for row in rows:
            row["attributes_kept"] = sum(row[f"{a}_accuracy"] for a in ATTRIBUTE_NAMES) / len(ATTRIBUTE_NAMES)
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
        prompts = full_prompt_set()[::7]  # 30 of the 210 full captions: every shape, colour, size, position
        rows = self.rows(prompts, max(2, n // 2), seed, default_methods(langevin.steps)[:2], langevin)
        return {"judged_accuracy_T0": rows[0]["accuracy"], "judged_accuracy": rows[1]["accuracy"],
                "recall_vs_g": rows[1]["recall_vs_g"]}
