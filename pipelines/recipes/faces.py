"""The zoo:faces world, made by the real pipeline from models that PyPI packages carry:

    G  the DCGAN face generator of gan-face-generate (64x64, z in R^100)        spec gan-face-generate
    f  EfficientNet-Lite0, ImageNet-1k, at its own 224 px                      spec efficientnet:lite0
    judges  EfficientNet-Lite2 (and Lite1): other classifiers, never f

    python -m pipelines.recipes.faces                      # every stage, into tron/zoo/weights/faces
    python -m pipelines.recipes.faces --stage histogram    # one stage (build, histogram, train, reference, reference-features, world)

Stages: `build` runs pipelines/build_dataset.py on Ray (pairs with f's class distribution and its
pooled features, into Parquet); `histogram` counts f's top-1 classes over the pairs and picks the
condition set (common and rarer classes G expresses); `train` fits the label translator and the
image translator with pipelines/train_translator.py (Ray Train, MLflow run and registry); `reference`
classifies G's own unconditional samples with the judge (the reference of the diversity ratio);
`reference-features` keeps the judge's features of G's own samples of each judge class (the reference
of precision / recall, tron.diversity); `world` writes world.json and copies the translators into the zoo. G's and f's weights are not
copied: the world names them by spec, with their fingerprints.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from pipelines import build_dataset, train_translator
from tron.adapters.efficientnet import imagenet_class_names
from tron.arguments import Parser
from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec
from tron.dataset import open_dataset, table_column
from tron.judges import ClassifierJudge
from tron.training import TrainingRecipe
from tron.world import World
from tron.world_config import ZOO_ROOT, WorldConfig

GENERATOR, ENCODER = "gan-face-generate", "efficientnet:lite0"
JUDGE, SECOND_JUDGE = "efficientnet:lite2", "efficientnet:lite1"
STAGES = ("build", "histogram", "train", "reference", "reference-features", "world")

# Chosen by measurement (README, zoo:faces): f at its native 224 px (at 160 px Lite0's top-1 agrees
# with its own 224 px answer on 43 % of G's faces, with the Lite2 judge on 25 %; at 224 px on 52 %).
NUM_PAIRS = 200_000  # the learning curve's best (docs/results.md): 12k, 50k, 200k pairs
ROWS_PER_SHARD = 2_000
BATCH_SIZE = 64  # G and f's batch in a shard task: 16-128 are on one plateau at 224 px (real_model_speed)
# The translators' hyper-parameters (TranslatorConfig and TrainConfig fields), as world.json records them.
LABEL_TRAINING = {"epochs": 30, "sample_labels": True, "label_temperature": 0.5, "hidden_dim": 256, "num_blocks": 2,
                  "num_components": 10}
# The image translator trains on the first IMAGE_PAIRS pairs: f's 1,280 pooled features of 200k pairs
# stream from Parquet every epoch on a 2-core machine (hours for 30 epochs); image variation is not
# what the learning curve measured.
IMAGE_PAIRS = 12_000
IMAGE_TRAINING = {"epochs": 30, "normalize_condition": True, "hidden_dim": 256, "num_blocks": 2, "num_components": 10}
# The condition set, read off f's top-1 histogram over the pairs (histogram.json): classes a picture
# of a face can show (what is worn or carried), from the four most frequent to ones G produces in
# well under 1 % of its samples. Fish, dogs and apes that f also names are left out.
CONDITION_SET = [906, 678, 400, 841, 836, 617, 433, 903, 793, 691]
# Windsor tie, neck brace, academic gown, sweatshirt, sunglass, lab coat, bathing cap, wig, shower cap, oxygen mask
REFERENCE_SAMPLES = 3_000
# G's own samples of each judge class for precision / recall (tron.diversity): most classes are rare
# among G's faces (reference.json), so a larger pool, of which only the judge classes' rows are kept.
REFERENCE_FEATURE_SAMPLES = 20_000
# z0 drawn with half the mixture's learned std (benchmarks/faces_translators.py, docs/results.md):
# on 200k pairs, Lite2 top-5 at T=0/5/25 57.5/81.2/93.8 % at 0.5 against 46.3/68.8/88.7 % at 1.0.
TRANSLATOR_STD_SCALE = 0.5
# The world's Langevin (benchmarks/faces_quality.py, README): momentum and clipping as the reference
# runs them, step 0.2, and 2 fresh random-shift views per step (Lite2 top-5 90.0 % against 82.5 % without).
LANGEVIN = {"steps": 25, "step_size": 0.2, "noise_std": 0.01, "momentum": 0.9, "grad_clip": 1.0,
            "augment": {"num": 2, "translation": 0.125, "fresh": True}}


def build_parser():
    p = Parser(prog="python -m pipelines.recipes.faces", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=STAGES, action="append", help="stages to run (default: all, in order)")
    p.add_argument("--work", type=Path, default=Path("outputs/faces"), help="datasets, checkpoints, MLflow store")
    p.add_argument("--out", type=Path, default=ZOO_ROOT / "faces", help="the world directory to write")
    p.add_argument("--num-pairs", type=int, default=NUM_PAIRS)
    p.add_argument("--tracking-uri", default=None, help="default: sqlite:///WORK/mlflow.db")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs per build task (build_dataset.py --num-gpus)")
    p.add_argument("--use-gpu", action="store_true", help="train on a GPU (train_translator.py --use-gpu)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="G and f's batch in a build task")
    p.add_argument("--translator", choices=("label", "image"), action="append",
                   help="the train stage's translators (default: both)")
    return p


def histogram(dataset_uri: str, chosen: list[int] = CONDITION_SET) -> dict:
    """f's top-1 class over every pair; the rank and count of each class of the condition set."""
    ds = open_dataset(dataset_uri)
    top = np.concatenate([table_column(ds.read_shard(i), "c").argmax(1) for i in range(len(ds.shard_paths))])
    counts = np.bincount(top, minlength=1000)
    order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    names = imagenet_class_names()
    return {"samples": int(len(top)), "distinct_classes": len(order),
            "top": [{"class": k, "name": names[k], "count": int(counts[k]), "share": float(counts[k] / len(top))}
                    for k in order[:50]],
            "condition_set": [{"class": k, "name": names[k], "rank": order.index(k) + 1 if k in order else None,
                               "count": int(counts[k]), "share": float(counts[k] / len(top))} for k in chosen]}


def main(argv: list[str] | None = None) -> int:
    import mlflow

    args = build_parser().parse_args(argv)
    stages = args.stage or list(STAGES)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}")
    dataset = str(work / "pairs")
    if "build" in stages:
        build_dataset.run(["--generator", GENERATOR, "--encoder", ENCODER, "--features", "--num-pairs", str(args.num_pairs),
                           "--rows-per-shard", str(ROWS_PER_SHARD), "--batch-size", str(args.batch_size), "--out", dataset,
                           "--num-gpus", str(args.num_gpus)])
    if "histogram" in stages:
        hist = histogram(dataset)
        (work / "histogram.json").write_text(json.dumps(hist, indent=1) + "\n")
        print(f"[faces] f's top-1 over {hist['samples']} of G's samples: {hist['distinct_classes']} classes; "
              f"condition set {[c['name'] for c in hist['condition_set']]}", flush=True)
    common = ["--num-workers", str(args.num_workers), "--cpus-per-worker", str(args.cpus_per_worker),
              "--storage-path", str(work / "ray_results"), "--eval-conditions", "4", "--eval-steps", "5",
              *(["--use-gpu"] if args.use_gpu else [])]
    if "train" in stages:
        for kind, hyper, column, limit in (("label", LABEL_TRAINING, "c", None), ("image", IMAGE_TRAINING, "c_features", IMAGE_PAIRS)):
            if args.translator and kind not in args.translator:
                continue
            config = work / f"translator-{kind}.json"
            config.write_text(json.dumps(hyper, indent=1) + "\n")
            out = train_translator.run(["--dataset", dataset, "--name", f"faces-{kind}", "--export", str(work / f"translator-{kind}"),
                                        "--config", str(config), "--condition-column", column, *common,
                                        *(["--max-pairs", str(limit)] if limit else [])])
            print(f"[faces] {kind} translator: {out['model_name']} version {out['version']}", flush=True)
    if {"reference", "reference-features", "world"} & set(stages):
        args.out.mkdir(parents=True, exist_ok=True)
    if "reference" in stages:
        world = World("faces", load_generator_spec(GENERATOR), load_encoder_spec(ENCODER), {}, path=args.out)
        ref = ClassifierJudge(world, JUDGE).reference_spread(REFERENCE_SAMPLES)
        (args.out / "reference.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
        print(f"[faces] reference: {REFERENCE_SAMPLES} of G's samples through {JUDGE}: {len(ref['classes'])} classes", flush=True)
    if "reference-features" in stages:
        from safetensors.torch import save_file

        world = World("faces", load_generator_spec(GENERATOR), load_encoder_spec(ENCODER), {}, path=args.out)
        feats = ClassifierJudge(world, JUDGE).reference_features(REFERENCE_FEATURE_SAMPLES, CONDITION_SET)
        save_file(feats, args.out / "reference_features.safetensors")
        print(f"[faces] reference features: {REFERENCE_FEATURE_SAMPLES} of G's samples through {JUDGE}: "
              + ", ".join(f"{k.split('_')[1]}: {len(v)}" for k, v in feats.items()), flush=True)
    if "world" in stages:
        write_world(work, args.out)
    return 0


def write_world(work: Path, out: Path) -> None:
    hist = json.loads((work / "histogram.json").read_text())
    for kind, name in (("label", "translator"), ("image", "translator-image")):
        if (out / name).exists():
            shutil.rmtree(out / name)
        shutil.copytree(work / f"translator-{kind}", out / name)
    (out / "histogram.json").write_text(json.dumps(hist, indent=1) + "\n")
    langevin = json.loads((work / "langevin.json").read_text()) if (work / "langevin.json").is_file() else LANGEVIN
    WorldConfig(
        name="faces",
        description="faces: the DCGAN of gan-face-generate (DigiFace-1M) as G, EfficientNet-Lite0 (ImageNet) as f; "
                    "labels by index or name, image variations through f's pooled features",
        generator=GENERATOR, encoder=ENCODER,
        translators={"default": "translator", "image": "translator-image"},
        langevin=langevin, translator_std_scale=TRANSLATOR_STD_SCALE,
        judge={"kind": "imagenet-classifier", "encoder": JUDGE, "second": SECOND_JUDGE,
               "classes": [c["class"] for c in hist["condition_set"]], "reference": "reference.json",
               "reference_features": "reference_features.safetensors"},
        training={"default": {**TrainingRecipe.flat(LABEL_TRAINING).to_dict(), "num_pairs": hist["samples"]},
                  "image": {**TrainingRecipe.flat(IMAGE_TRAINING).to_dict(), "num_pairs": min(IMAGE_PAIRS, hist["samples"])}},
        fingerprints={"generator": component_fingerprint(GENERATOR, "generator"),
                      "encoder": component_fingerprint(ENCODER, "encoder")},
    ).save(out)
    print(f"[faces] wrote {out}", flush=True)


if __name__ == "__main__":
    from pipelines.common import run_main

    sys.exit(run_main(main, None, "faces recipe"))
