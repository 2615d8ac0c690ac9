"""The main job on the embedded defaults: the whole pipeline on a local Ray, end to end.

    make demo            # = .venv/bin/python -m pipelines.demo

local Ray -> build a pair dataset (Parquet) -> Ray Train -> MLflow run and registry -> evaluate
-> promote to `champion` -> sample every digit with the champion into a PNG grid -> print where to
look. Rerunning reuses finished work: the champion is up to date, so only the sampling runs again.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines.common import ArgumentParser, init_ray, run_main  # noqa: E402


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs", help="folder for data, checkpoints, state and grids")
    p.add_argument("--num-pairs", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here")
    p.add_argument("--force", action="store_true", help="retrain even if the champion is up to date")
    return p


def main(argv: list[str] | None = None) -> int:
    import mlflow

    from pipelines import retrain
    from pipelines.train_translator import registered_model_name
    from tron.images import save_grid
    from tron.uris import resolve_local_dir
    from tron.world import load_world

    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    init_ray(num_cpus=None)
    world = "zoo:digits"
    rc = retrain.main(["--generator", world, "--num-pairs", str(args.num_pairs),
                       "--train-args", f"--epochs {args.epochs} --sample-labels --label-temperature 0.5 "
                                       f"--storage-path {out / 'ray_results'}",
                       "--min-judged-accuracy", "0.9", "--data-root", str(out / "data"), "--state-dir", str(out / "state"),
                       *(["--force"] if args.force else [])])
    model = registered_model_name(world, world)
    uri = f"models:/{model}@champion"
    try:
        translator_dir = resolve_local_dir(uri)
    except Exception as exc:  # no champion: the gate rejected every candidate so far
        print(f"[demo] no champion to sample from ({exc}); see the gate's reasons above", file=sys.stderr)
        return rc or 3
    w = load_world(world, translator=translator_dir)
    c = w.encoder.condition_from_labels(list(range(10)))
    res = w.sampler().sample(c, 8, w.langevin, seed=0)
    images = res.images.view(10, 8, *res.images.shape[1:]).transpose(0, 1).reshape(-1, *res.images.shape[1:])
    grid = save_grid(images, out / "digits_champion.png", nrow=10, upscale=4)
    tracking = mlflow.get_tracking_uri()
    print(f"\n[demo] done in {time.perf_counter() - t0:.0f} s")
    print(f"  samples from {uri}:  {grid}")
    print(f"  datasets:             {out / 'data'}")
    print(f"  Ray Train checkpoints {out / 'ray_results'}")
    print(f"  workflow state:       {out / 'state'}")
    print(f"  MLflow runs/registry: {tracking}")
    print(f"  browse them with:     .venv/bin/mlflow ui --backend-store-uri {tracking} --port 5001")
    return rc


if __name__ == "__main__":
    from pipelines import demo

    sys.exit(run_main(demo.main, None, "demo.py"))
