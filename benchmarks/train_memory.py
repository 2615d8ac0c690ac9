"""Training memory against dataset size: the demo's digits pairs (50,000) and 10x and 100x as many,
each trained for one epoch by `pipelines/train_translator.py` (Ray Train, 2 workers), streaming the
shards through Ray Data every epoch (`--stream yes`) and caching each worker's share (`--stream no`).

Prints, per size and mode: each training worker's peak resident memory (the largest over the
workers; the train loop reports it as `worker_peak_rss_mib`), split by sampling the workers'
/proc/PID/status every 0.25 s into its private part (RssAnon: the worker's own heap, tensors, the
cache) and the shared memory it has touched (RssShmem: pages of Ray's object store that the blocks
it read lived in, which the kernel counts in RSS while they stay mapped), the rise of the machine's
memory in use while training ran (/proc/meminfo: MemTotal - MemAvailable, peak minus the value
before; it includes Ray's object store and the driver), samples/s of the epoch, and what
`--stream auto` would choose. The datasets are built once under --root (reruns resume).

    .venv/bin/python benchmarks/train_memory.py                     # 50k, 500k, 5M pairs
    .venv/bin/python benchmarks/train_memory.py --factors 1,10 --modes yes
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEMO_PAIRS = 50_000  # pipelines/demo.py's --num-pairs


def memory_in_use_mib() -> float:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def train_worker_memory() -> list[dict[str, float]]:
    """RssAnon and RssShmem (MiB) of every Ray Train worker process on this machine."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                continue
            fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            out.append({k: int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssShmem")})
        except (OSError, KeyError, ValueError):
            continue
    return out


class PeakMemory:
    """Samples the machine's memory in use and the training workers' private and shared memory in a
    thread; `rise` is the machine's peak minus the value at start."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.start, self.peak = interval, memory_in_use_mib(), 0.0
        self.worker_anon = self.worker_shmem = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory_in_use_mib())
            for w in train_worker_memory():
                self.worker_anon = max(self.worker_anon, w["RssAnon"])
                self.worker_shmem = max(self.worker_shmem, w["RssShmem"])
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def rise(self) -> float:
        return self.peak - self.start


def build(root: Path, pairs: int, rows_per_shard: int) -> str:
    from pipelines import build_dataset

    out = root / f"digits-{pairs}"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the pipeline's progress to the log, the table alone to stdout
        build_dataset.main(["--generator", "zoo:digits", "--num-pairs", str(pairs), "--rows-per-shard", str(rows_per_shard),
                            "--out", str(out), "--no-mlflow"])
    print(f"[bench] {pairs:,} pairs ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return str(out)


def train(root: Path, data: str, pairs: int, mode: str, args) -> dict:
    import mlflow

    from pipelines import train_translator

    name = f"mem-{pairs}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"  # a new run: the same name would resume the old one
    argv = ["--dataset", data, "--epochs", str(args.epochs), "--num-workers", str(args.workers),
            "--cpus-per-worker", str(args.cpus_per_worker), "--stream", mode, "--name", name,
            "--storage-path", str(root / "ray_results"), "--export", str(root / "translators" / name),
            "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}", "--experiment", "tron-train-memory",
            "--eval-conditions", "1", "--eval-samples", "1", "--eval-steps", "0"]
    t0 = time.perf_counter()
    with PeakMemory() as memory, contextlib.redirect_stdout(sys.stderr):
        made = train_translator.run(argv)
    seconds = time.perf_counter() - t0
    history = mlflow.MlflowClient(made["tracking_uri"])
    run = history.get_run(made["run_id"])
    return {"pairs": pairs, "mode": mode, "worker_rss": run.data.metrics["worker_peak_rss_mib"],
            "worker_anon": memory.worker_anon, "worker_shmem": memory.worker_shmem, "machine_rise": memory.rise,
            "samples_per_s": run.data.metrics["samples_per_s"], "seconds": seconds}


def auto_choice(data: str, args) -> str:
    from pipelines import train_translator
    from tron.dataset import open_dataset

    dataset = open_dataset(data, verify=False)
    ns = train_translator.build_parser().parse_args(["--dataset", data, "--num-workers", str(args.workers),
                                                     "--cpus-per-worker", str(args.cpus_per_worker)])  # --stream auto
    return "stream" if train_translator.streaming(ns, dataset, dataset.num_rows) else "cache"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("outputs/bench_train_memory"))
    p.add_argument("--factors", default="1,10,100", help="dataset sizes as multiples of the demo's 50,000 pairs")
    p.add_argument("--modes", default="yes,no", help="--stream values to measure")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--rows-per-shard", type=int, default=50_000)
    args = p.parse_args(argv)
    from pipelines.common import init_ray

    args.root = args.root.resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    init_ray(None)
    rows = []
    for factor in [int(f) for f in args.factors.split(",")]:
        pairs = DEMO_PAIRS * factor
        data = build(args.root, pairs, args.rows_per_shard)
        auto = auto_choice(data, args)
        for mode in args.modes.split(","):
            r = train(args.root, data, pairs, mode, args)
            r["auto"] = auto
            rows.append(r)
            print(f"[bench] {pairs:,} pairs, --stream {mode}: worker peak {r['worker_rss']:.0f} MiB (private {r['worker_anon']:.0f}, "
                  f"shared {r['worker_shmem']:.0f}), machine +{r['machine_rise']:.0f} MiB, "
                  f"{r['samples_per_s']:,.0f} samples/s", file=sys.stderr, flush=True)
    print("| pairs | × demo | --stream | worker peak RSS (MiB) | of it private, peak | shared (object store), peak "
          "| machine memory rise (MiB) | samples/s | run s | auto chooses |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['pairs']:,} | {r['pairs'] // DEMO_PAIRS} | {r['mode']} | {r['worker_rss']:.0f} | {r['worker_anon']:.0f} | "
              f"{r['worker_shmem']:.0f} | {r['machine_rise']:.0f} | "
              f"{r['samples_per_s']:,.0f} | {r['seconds']:.0f} | {r['auto']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
