"""Pairs/s of dataset building: a bare in-process loop vs the Ray pipeline with 1 and 2 workers,
as Ray tasks (one per shard; G and f cached per worker process) and as Ray Data map_batches over an
actor pool that holds G and f (`--executor actors`). Every variant must write byte-identical shards
(checked).

    .venv/bin/python benchmarks/build_throughput.py --world zoo:digits --shards 8 --rows 5000
    .venv/bin/python benchmarks/build_throughput.py --full-size --shards 4 --rows 8 --batch-size 8

Each Ray variant runs twice on a freshly started local Ray: "cold" is the first build, whose worker
processes start, import torch and load G and f (what one `build_dataset.py` job pays, since a job's
workers are its own), "warm" a second build of new shards on the same workers. Timed: the shard
phase of the build (`build_dataset.run_shards`, where the executors differ); the driver's set-up
(fingerprints, the condition scale: a minute for full-size models) is left out. `--full-size` builds
with BigGAN-deep-128 and open_clip ViT-B-32 at random init (benchmarks/full_size_cost.py's files),
where loading the models is the part that differs.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare(generator: str, encoder: str, shards: int, rows: int, batch: int) -> float:
    """One process, one torch thread: G and f loaded (not timed), then the shards generated and written."""
    import torch

    from pipelines.build_dataset import make_identity
    from tron.components import load_encoder_spec, load_generator_spec
    from tron.dataset import generate_shard, write_shard_files
    from tron.storage import location

    torch.set_num_threads(1)
    args = argparse.Namespace(generator=generator, encoder=encoder, prior="normal", seed=0, rows_per_shard=rows,
                              batch_size=batch, features=False)
    identity, _ = make_identity(args)
    g, f = load_generator_spec(generator), load_encoder_spec(encoder)
    out = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    t0 = time.perf_counter()
    for i in range(shards):
        data, check = generate_shard(g, f, identity, i, rows)
        write_shard_files(location(out), i, data, check.sha256)
    seconds = time.perf_counter() - t0
    SHARDS_SEEN.setdefault(key(generator, encoder, shards, rows, batch, 0), read_shards(out, shards))
    shutil.rmtree(out)
    return shards * rows / seconds


SHARDS_SEEN: dict[str, list[bytes]] = {}


def fmt(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def key(*parts) -> str:
    return "/".join(map(str, parts))


def read_shards(out: Path, shards: int) -> list[bytes]:
    from tron.dataset import shard_name

    return [(out / shard_name(i)).read_bytes() for i in range(shards)]


IDENTITIES: dict[str, tuple] = {}


def ray_build(generator: str, encoder: str, shards: int, rows: int, batch: int, workers: int, executor: str,
              seed: int = 0) -> float:
    """build_dataset.py's shard phase (its run_shards, the part the executor decides) against the
    running Ray: the driver's set-up (loading G and f for the fingerprints and the condition scale,
    which for full-size models takes a minute) is done once per G and f, outside the timing."""
    from pipelines import build_dataset
    from tron.dataset import ShardCheck, plan_shards

    out = Path(tempfile.mkdtemp(prefix=f"bench-{executor}{workers}-"))
    args = build_dataset.build_parser().parse_args([
        "--generator", generator, "--encoder", encoder, "--num-pairs", str(shards * rows), "--rows-per-shard", str(rows),
        "--batch-size", str(batch), "--out", str(out), "--max-in-flight", str(workers), "--actors", str(workers),
        "--executor", executor, "--seed", str(seed), "--no-mlflow"])
    k = key(generator, encoder, shards, rows, batch, seed)
    if k not in IDENTITIES:
        IDENTITIES[k] = build_dataset.make_identity(args)
    identity, _ = IDENTITIES[k]
    plan = plan_shards(args.num_pairs, args.rows_per_shard)
    checks = {i: ShardCheck(i, "missing") for i in range(len(plan))}
    t0 = time.perf_counter()
    written = build_dataset.run_shards(args, str(out), identity, plan, list(range(len(plan))), checks)
    seconds = time.perf_counter() - t0
    if SHARDS_SEEN.setdefault(k, read_shards(out, shards)) != read_shards(out, shards):
        raise SystemExit(f"{executor} with {workers} workers wrote different shards: every variant must agree byte for byte")
    shutil.rmtree(out)
    return written / seconds


def cold_and_warm(generator: str, encoder: str, args, workers: int, executor: str) -> tuple[float, float]:
    """A fresh local Ray; the first build (cold workers), then a second one with another seed (warm)."""
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    cold = ray_build(generator, encoder, args.shards, args.rows, args.batch_size, workers, executor)
    warm = ray_build(generator, encoder, args.shards, args.rows, args.batch_size, workers, executor, seed=1)
    print(f"[bench] {generator} {executor} x{workers}: cold {fmt(cold)} pairs/s, warm {fmt(warm)} pairs/s", file=sys.stderr, flush=True)
    return cold, warm


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", action="append", help="zoo world(s) to measure (G and f of the world)")
    p.add_argument("--full-size", action="store_true", help="BigGAN-deep-128 + ViT-B-32 at random init")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=500)
    args = p.parse_args(argv)

    import ray

    from pipelines.logs import ray_init_options

    ray_init_options()  # quiet Ray's own log lines
    pairs = [(w, w) for w in (args.world or ([] if args.full_size else ["zoo:digits"]))]
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    if args.full_size:
        from benchmarks.full_size_cost import write_models

        pairs.append(write_models(tmp))
    rows = []
    for generator, encoder in pairs:
        b = bare(generator, encoder, args.shards, args.rows, args.batch_size)
        print(f"[bench] {generator}: bare loop {fmt(b)} pairs/s", file=sys.stderr, flush=True)
        measured = {(executor, workers): cold_and_warm(generator, encoder, args, workers, executor)
                    for executor in ("tasks", "actors") for workers in (1, 2)}
        rows.append((generator, b, measured))
    ray.shutdown()
    shutil.rmtree(tmp)
    print(f"\n{args.shards} shards x {args.rows} pairs, batch {args.batch_size}; pairs/s of the build's shard phase "
          "(cold: fresh workers load G and f; warm: a second build on the same workers); every variant's shards were "
          "byte-identical")
    print("| G | bare loop | tasks 1 cold / warm | tasks 2 cold / warm | actor pool 1 cold / warm | actor pool 2 cold / warm "
          "| 2 vs 1 (tasks, warm) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for generator, b, m in rows:
        cells = " | ".join(f"{fmt(m[v][0])} / {fmt(m[v][1])}" for v in (("tasks", 1), ("tasks", 2), ("actors", 1), ("actors", 2)))
        name = "BigGAN-deep-128 + ViT-B-32" if generator.startswith("biggan:") else generator
        print(f"| {name} | {fmt(b)} | {cells} | {m[('tasks', 2)][1] / m[('tasks', 1)][1]:.2f}x |")


if __name__ == "__main__":
    main()
