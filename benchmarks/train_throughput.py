"""Samples/s of translator training: Ray Train (TorchTrainer, 1 worker) vs a plain torch loop
over the same Parquet shards.

    .venv/bin/python benchmarks/train_throughput.py [--pairs 100000] [--epochs 3]

Both read the same dataset and run the same tron.training.TranslatorFit; the plain loop reads the
shards with tron.dataset.PairDataset.iter_batches. Steady-state figures are the best epoch after
the first; wall time includes start-up (Ray worker group, Ray Data pipeline).
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def plain_loop(uri: str, epochs: int, batch: int) -> tuple[float, float]:
    import torch

    from tron.dataset import open_dataset
    from tron.training import TrainConfig, TranslatorFit, create_translator
    from tron.translator import TranslatorConfig

    torch.set_num_threads(1)
    ds = open_dataset(uri)
    cfg = TrainConfig(epochs=epochs, batch_size=batch)
    model = create_translator(TranslatorConfig(cond_dim=ds.identity.cond_dim, latent_dim=ds.identity.latent_dim), cfg.seed)
    fit = TranslatorFit(model, cfg, math.ceil(ds.num_rows / batch))
    rates, t_start = [], time.perf_counter()
    for epoch in range(epochs):
        t0, n = time.perf_counter(), 0
        for b in ds.iter_batches(batch_size=batch, shuffle=True, seed=epoch):
            fit.step(torch.as_tensor(b["z"]), torch.as_tensor(b["c"]))
            n += len(b["z"])
        rates.append(n / (time.perf_counter() - t0))
    return max(rates[1:] or rates), time.perf_counter() - t_start


def ray_train(uri: str, epochs: int, batch: int, workers: int) -> tuple[float, float]:
    import mlflow

    from pipelines import train_translator

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    argv = ["--dataset", uri, "--epochs", str(epochs), "--batch-size", str(batch), "--num-workers", str(workers),
            "--cpus-per-worker", str(1 if workers == 1 else 0.5), "--storage-path", str(tmp / "ray"),
            "--export", str(tmp / "export"), "--tracking-uri", tracking, "--eval-samples", "1", "--val-fraction", "0.01"]
    t0 = time.perf_counter()
    train_translator.main(argv)
    wall = time.perf_counter() - t0
    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    rates = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "samples_per_s"), key=lambda m: m.step)]
    shutil.rmtree(tmp)
    return max(rates[1:] or rates), wall


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default="zoo:digits")
    p.add_argument("--pairs", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)

    import ray

    from pipelines import build_dataset

    out = Path(tempfile.mkdtemp(prefix="bench-pairs-")) / "ds"
    build_dataset.main(["--generator", args.world, "--num-pairs", str(args.pairs), "--rows-per-shard", "10000",
                        "--out", str(out), "--no-mlflow"])
    ray.shutdown()
    plain, plain_wall = plain_loop(str(out), args.epochs, args.batch_size)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    r1, r1_wall = ray_train(str(out), args.epochs, args.batch_size, 1)
    ray.shutdown()
    shutil.rmtree(out.parent)
    print(f"\n{args.world}: {args.pairs} pairs, {args.epochs} epochs, batch {args.batch_size}; samples/s (best epoch after the first)")
    print("| loop | samples/s | vs plain | wall time (s, incl. start-up) |")
    print("|---|---|---|---|")
    print(f"| plain torch loop, 1 thread | {plain:,.0f} | 1.00x | {plain_wall:.1f} |")
    print(f"| Ray Train, 1 worker (1 CPU) | {r1:,.0f} | {r1 / plain:.2f}x | {r1_wall:.1f} |")


if __name__ == "__main__":
    main()
