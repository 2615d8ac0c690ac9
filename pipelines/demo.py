"""The main job on the embedded defaults: the whole pipeline on a local Ray, end to end.

    make demo            # = .venv/bin/python -m pipelines.demo

local Ray -> build a pair dataset (Parquet) -> Ray Train -> MLflow run and registry -> evaluate
-> promote to `champion`, for the digits world (labels) and the shapes world (text prompts through
CLIP) -> sample each champion into a PNG grid -> sample the shipped faces world (a pretrained face
GAN and ImageNet classifier from PyPI; its pipeline run takes ~30 minutes here, so the demo uses the
translator that run made) -> print where to look. Rerunning reuses finished work: the champions are
up to date, so only the sampling runs again.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines import retrain  # noqa: E402
from pipelines.common import init_ray, run_main  # noqa: E402
from pipelines.logs import quiet_process  # noqa: E402
from pipelines.train_translator import KIND_OF_COLUMN, registered_model_name  # noqa: E402
from tron import conditions  # noqa: E402
from tron.arguments import Parser  # noqa: E402
from tron.errors import TronError  # noqa: E402
from tron.images import save_grid  # noqa: E402
from tron.uris import local_dir  # noqa: E402
from tron.world import load_world  # noqa: E402

# The prompts the shapes champion draws into outputs/shapes_champion.png (one row each).
PROMPTS = [
    "a small red circle in the top left",
    "a large blue square in the center",
    "a small yellow triangle in the bottom right",
    "a large white circle in the bottom left",
    "a green triangle",
    "a large magenta shape in the top right",
]
# The ImageNet classes the faces grid asks for (one row each): common and rare among G's faces.
FACE_CLASSES = ["Windsor tie", "academic gown", "sunglass", "bathing cap"]


def build_parser() -> Parser:
    p = Parser(prog="demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs", help="folder for data, checkpoints, state and grids")
    p.add_argument("--num-pairs", type=int, default=50_000, help="pairs per world")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--worlds", default="digits,shapes", help="zoo worlds to run, comma-separated")
    p.add_argument("--faces-per-class", type=int, default=2,
                   help="samples per class of the shipped faces world (0: skip it; ~5 s each on 2 cores)")
    p.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    p.add_argument("--force", action="store_true", help="retrain even if the champion is up to date")
    p.add_argument("--verbose", action="store_true", help="show Ray's and MLflow's own log lines too (TRON_VERBOSE=1)")
    return p


# The promotion gate per world; the translator's settings come from the world's own training
# recipe (world.json "training"), which train_translator.py reads for zoo worlds.
GATES = {"digits": {"min_judged_accuracy": 0.9}, "shapes": {"min_judged_accuracy": 0.8}}
# The condition column each world's champion is trained on: the translator its grid's conditions use.
# Shapes' text prompts go to its caption translator (CLIP text embeddings of captions of G's samples).
COLUMNS = {"digits": "c", "shapes": "c_caption"}


def pair_configs(worlds: list[str], num_pairs: int, epochs: int, out: Path) -> list[dict]:
    """One retrain pair per zoo world: the world's training recipe, with the demo's epochs."""
    unknown = [w for w in worlds if w not in GATES]
    if unknown:
        raise TronError(f"--worlds: unknown {unknown}; choose from {sorted(GATES)}")
    return [{"generator": f"zoo:{w}", "num_pairs": num_pairs, "gate": GATES[w],
             "train_args": ["--epochs", str(epochs), "--storage-path", str(out / "ray_results"),
                            "--condition-column", COLUMNS[w]],
             "registered_model": registered_model_name(f"zoo:{w}", f"zoo:{w}", COLUMNS[w]),
             **({"captioner": f"zoo:{w}"} if COLUMNS[w] == "c_caption" else {})}
            for w in worlds]


def champion_grid(world_name: str, out: Path) -> tuple[str, Path | None]:
    """Sample the registered champion into a PNG grid: every digit, or the shapes prompts (through
    the champion as the world's text translator)."""
    spec = f"zoo:{world_name}"
    uri = f"models:/{registered_model_name(spec, spec, COLUMNS[world_name])}@champion"
    try:
        translator_dir = local_dir(uri)
    except Exception as exc:  # no champion: the gate rejected every candidate so far
        print(f"[demo] {world_name}: no champion to sample from ({exc}); see the gate's reasons above", file=sys.stderr)
        return uri, None
    w = load_world(spec, translator=translator_dir, translator_kind=KIND_OF_COLUMN[COLUMNS[world_name]])
    if world_name == "digits":
        cond, rows = conditions.from_labels(w.encoder, list(range(10))), 10
    else:
        cond, rows = conditions.from_text(w.encoder, PROMPTS), len(PROMPTS)
    res = w.sampler(cond.kind).sample(cond.c, 8, w.langevin, seed=0)
    images = res.images.view(rows, 8, *res.images.shape[1:])
    if world_name == "digits":  # digits side by side, 8 rows of samples
        images = images.transpose(0, 1)
    grid = save_grid(images.reshape(-1, *res.images.shape[1:]), out / f"{world_name}_champion.png",
                     nrow=rows if world_name == "digits" else 8, upscale=4 if world_name == "digits" else 3)
    if world_name == "shapes":
        (out / "shapes_champion.txt").write_text("rows of shapes_champion.png, top to bottom:\n" + "\n".join(PROMPTS) + "\n")
    return uri, grid


def faces_grid(out: Path, per_class: int) -> Path:
    """The shipped zoo:faces world (its translator made by the real pipeline, G and f from their
    packages), sampled at its default settings: FACE_CLASSES as rows."""
    w = load_world("zoo:faces")
    cond = conditions.from_labels(w.encoder, FACE_CLASSES)
    res = w.sampler(cond.kind).sample(cond.c, per_class, w.langevin, seed=0)
    grid = save_grid(res.images, out / "faces_zoo.png", nrow=per_class, upscale=2)
    (out / "faces_zoo.txt").write_text("rows of faces_zoo.png, top to bottom (ImageNet classes):\n" + "\n".join(FACE_CLASSES) + "\n")
    return grid


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["TRON_VERBOSE"] = "1"
    quiet_process()  # before MLflow is imported: it reads its logging level then
    import mlflow

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    config = out / "retrain.json"
    config.write_text(json.dumps({"pairs": pair_configs(worlds, args.num_pairs, args.epochs, out),
                                  "data_root": str(out / "data"), "state_dir": str(out / "state")}, indent=2) + "\n")
    init_ray(num_cpus=None)
    rc = retrain.main(["--config", str(config), *(["--force"] if args.force else [])])
    grids = [(w, *champion_grid(w, out)) for w in worlds]
    faces = None
    if args.faces_per_class > 0:
        t_faces = time.perf_counter()
        faces = faces_grid(out, args.faces_per_class)
        print(f"[demo] faces: {len(FACE_CLASSES)} classes x {args.faces_per_class} in {time.perf_counter() - t_faces:.0f} s", flush=True)
    tracking = mlflow.get_tracking_uri()
    print(f"\n[demo] done in {time.perf_counter() - t0:.0f} s")
    for world_name, uri, grid in grids:
        if grid is not None:
            print(f"  {world_name:7s} samples from {uri}:  {grid}")
    print(f"  prompts of the shapes grid: {out / 'shapes_champion.txt'}" if "shapes" in worlds else "", end="")
    if faces is not None:
        print(f"\n  faces   samples from zoo:faces (shipped translator): {faces}  (classes: {out / 'faces_zoo.txt'})", end="")
    print(f"\n  datasets:             {out / 'data'}")
    print(f"  Ray Train checkpoints {out / 'ray_results'}")
    print(f"  workflow state:       {out / 'state'}  (retrain config: {config})")
    print(f"  MLflow runs/registry: {tracking}")
    print(f"  browse them with:     {mlflow_command()} ui --backend-store-uri {tracking} --port 5001")
    return rc if all(grid is not None for _, _, grid in grids) else (rc or 3)


def mlflow_command() -> str:
    """The mlflow CLI of this interpreter's environment, relative to the working directory when under it."""
    cli = Path(sys.executable).parent / "mlflow"
    if not cli.exists():
        return "mlflow"
    try:
        return str(cli.relative_to(Path.cwd()))
    except ValueError:
        return str(cli)


if __name__ == "__main__":
    from pipelines import demo

    sys.exit(run_main(demo.main, None, "demo.py"))
