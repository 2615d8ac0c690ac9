"""Load test of the Serve sampling API on loopback: throughput and latency, batched vs not.

For each sampler `max_batch_size` (default: 16, then 1) the app is deployed on a local Ray cluster,
warmed up, and then driven by 1, 4 and 16 closed-loop clients (each sends its next request when the
previous one is answered). Every level sends a fixed number of requests and also stops at a time
cap, so the run ends by itself. Prints a Markdown table.

    .venv/bin/python benchmarks/serve_load.py --requests-per-client 8
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="zoo:digits")
    p.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    p.add_argument("--batch-sizes", default="16,1", help="sampler max_batch_size values to compare")
    p.add_argument("--requests-per-client", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=120, help="time cap per level")
    p.add_argument("--num-samples", type=int, default=1, help="images per request")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps per request (default: the world's)")
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--sampler-cpus", type=float, default=1.0)
    p.add_argument("--port", type=int, default=0, help="HTTP port (0: a free one)")
    return p.parse_args(argv)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_level(url: str, clients: int, per_client: int, max_seconds: float, body: dict) -> dict:
    """`clients` threads, each sending up to `per_client` requests one after another."""
    import requests

    latencies: list[float] = []
    batch_sizes: list[int] = []
    sample_shares: list[float] = []  # each request's share of its batch's sampling time
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds

    def client(index: int) -> None:
        session = requests.Session()
        for i in range(per_client):
            if time.perf_counter() > deadline:
                return
            request = {**body, "label": (index + i) % 10, "seed": index * 1000 + i}
            t0 = time.perf_counter()
            try:
                response = session.post(f"{url}/v1/generate", json=request, timeout=60)
                code = str(response.status_code)
            except requests.RequestException as exc:
                response, code = None, type(exc).__name__
            elapsed = time.perf_counter() - t0
            with lock:
                if code == "200":
                    latencies.append(elapsed)
                    timing = response.json()["timing"]
                    batch_sizes.append(timing["batch_requests"])
                    sample_shares.append(timing["sample_ms"] / timing["batch_requests"])
                else:
                    errors[code] = errors.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"ok": len(latencies), "errors": errors, "wall": wall, "throughput": len(latencies) / wall,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "mean_batch": statistics.fmean(batch_sizes) if batch_sizes else float("nan"),
            "sample_share_ms": statistics.fmean(sample_shares) if sample_shares else float("nan")}


def main(argv=None) -> int:
    args = parse_args(argv)
    import ray
    import requests
    from ray import serve

    from pipelines.serve.config import ServeConfig
    from pipelines.serve.deployments import build_app

    levels = [int(c) for c in args.clients.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    body = {"num_samples": args.num_samples, **({"steps": args.steps} if args.steps is not None else {})}
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    rows = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 120})
        for batch in batch_sizes:
            config = ServeConfig(world=args.world, max_batch_size=batch, max_ongoing_requests=max(32, 2 * batch),
                                 max_queued_requests=64, sampler_num_cpus=args.sampler_cpus, request_timeout_s=110)
            serve.run(build_app(config), name="bench", route_prefix="/")
            for i in range(3):  # warm-up: first calls pay for lazy initialisation
                requests.post(f"{url}/v1/generate", json={**body, "label": i}, timeout=120).raise_for_status()
            for clients in levels:
                result = run_level(url, clients, args.requests_per_client, args.max_seconds, body)
                rows.append((batch, clients, result))
                print(f"[bench] max_batch_size={batch} clients={clients}: {result['throughput']:.2f} req/s, "
                      f"p50 {1000 * result['p50']:.0f} ms, p99 {1000 * result['p99']:.0f} ms, errors {result['errors']}",
                      file=sys.stderr, flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()

    base = {clients: r["throughput"] for batch, clients, r in rows if batch == 1}
    print("| max_batch_size | clients | requests ok | errors | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch "
          "| sampling ms per request | throughput vs max_batch_size=1 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, clients, r in rows:
        speedup = f"{r['throughput'] / base[clients]:.1f}x" if clients in base and base[clients] > 0 else "-"
        errors = sum(r["errors"].values())
        print(f"| {batch} | {clients} | {r['ok']} | {errors} | {r['throughput']:.2f} | {1000 * r['p50']:.0f} | "
              f"{1000 * r['p99']:.0f} | {r['mean_batch']:.1f} | {r['sample_share_ms']:.0f} | {speedup} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
