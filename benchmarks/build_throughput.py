"""Pairs/s of dataset building: a bare in-process loop vs the Ray pipeline with 1 and 2 workers,
as Ray tasks (one per shard) and as Ray Data map_batches over an actor pool holding G and f
(`--executor actors`); both executors must write byte-identical shards (checked).

    .venv/bin/python benchmarks/build_throughput.py [--world zoo:digits] [--shards 8] [--rows 5000]

Every variant generates the same shards (same seeds, one torch thread per shard). Ray is started
and warmed up (worker processes imported torch and loaded G/f) before timing, so the figures
compare steady-state throughput; the cold start is reported on its own line.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare(world: str, shards: int, rows: int, batch: int) -> float:
    import torch

    from pipelines.build_dataset import make_identity
    from tron.components import load_encoder_spec, load_generator_spec
    from tron.dataset import generate_shard, write_shard_files
    from tron.storage import resolve

    torch.set_num_threads(1)
    args = argparse.Namespace(generator=world, encoder=world, prior="normal", seed=0, rows_per_shard=rows, batch_size=batch)
    identity = make_identity(args)
    g, f = load_generator_spec(world), load_encoder_spec(world)
    out = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    loc = resolve(out)
    t0 = time.perf_counter()
    for i in range(shards):
        data, check = generate_shard(g, f, identity, i, rows)
        write_shard_files(loc, i, data, check.sha256)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return shards * rows / seconds


SHARDS_SEEN: dict[str, list[bytes]] = {}


def ray_build(world: str, shards: int, rows: int, batch: int, workers: int, executor: str = "tasks") -> float:
    from pipelines import build_dataset
    from tron.dataset import shard_name

    out = Path(tempfile.mkdtemp(prefix=f"bench-ray{workers}-"))
    argv = ["--generator", world, "--num-pairs", str(shards * rows), "--rows-per-shard", str(rows), "--batch-size",
            str(batch), "--out", str(out), "--max-in-flight", str(workers), "--actors", str(workers),
            "--executor", executor, "--no-mlflow"]
    t0 = time.perf_counter()
    build_dataset.main(argv)
    seconds = time.perf_counter() - t0
    data = [(out / shard_name(i)).read_bytes() for i in range(shards)]
    key = f"{world}/{shards}/{rows}/{batch}"
    if SHARDS_SEEN.setdefault(key, data) != data:
        raise SystemExit(f"{executor} with {workers} workers wrote different shards: the executors must agree byte for byte")
    shutil.rmtree(out)
    return shards * rows / seconds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", action="append", help="zoo world(s) to measure (default: every zoo world)")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=2, help="best of N runs per variant")
    args = p.parse_args(argv)

    import ray

    from tron.world import list_zoo

    worlds = args.world or [f"zoo:{n}" for n in list_zoo()]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    print(f"Ray local start: {time.perf_counter() - t0:.1f} s")
    rows = []
    for world in worlds:
        t0 = time.perf_counter()
        ray_build(world, 2, 200, args.batch_size, 2)  # warm-up: worker processes import torch, load G and f
        print(f"{world}: Ray warm-up build (2 tiny shards, cold workers): {time.perf_counter() - t0:.1f} s")
        b = max(bare(world, args.shards, args.rows, args.batch_size) for _ in range(args.repeats))
        r1 = max(ray_build(world, args.shards, args.rows, args.batch_size, 1) for _ in range(args.repeats))
        r2 = max(ray_build(world, args.shards, args.rows, args.batch_size, 2) for _ in range(args.repeats))
        ray_build(world, 2, 200, args.batch_size, 2, "actors")  # warm-up of Ray Data
        a1 = max(ray_build(world, args.shards, args.rows, args.batch_size, 1, "actors") for _ in range(args.repeats))
        a2 = max(ray_build(world, args.shards, args.rows, args.batch_size, 2, "actors") for _ in range(args.repeats))
        rows.append((world, b, r1, r2, a1, a2))
    ray.shutdown()
    print(f"\n{args.shards} shards x {args.rows} pairs, batch {args.batch_size}, best of {args.repeats}; pairs/s; "
          "the shards of every variant were byte-identical")
    print("| world | bare loop | tasks, 1 worker | tasks, 2 workers | actor pool, 1 | actor pool, 2 | 2 vs 1 (tasks) "
          "| Ray overhead at 1 worker (tasks) |")
    print("|---|---|---|---|---|---|---|---|")
    for world, b, r1, r2, a1, a2 in rows:
        print(f"| {world} | {b:,.0f} | {r1:,.0f} | {r2:,.0f} | {a1:,.0f} | {a2:,.0f} | {r2 / r1:.2f}x | {(1 - r1 / b) * 100:.1f} % |")


if __name__ == "__main__":
    main()
