"""Load test of the Serve sampling API on loopback: throughput and latency, batched vs not, and
what serving costs against the same sampler in-process.

For each world (default: both zoo worlds) and each sampler `max_batch_size` (default: 16, then 1)
the app is deployed on a local Ray cluster, warmed up, and then driven by 1, 4 and 16 closed-loop
clients (each sends its next request when the previous one is answered). Every level sends a fixed
number of requests and also stops at a time cap, so the run ends by itself. Before Ray starts, the
same requests go through `Sampler.run` in this process, batched 16 at a time on as many torch
threads as a sampler replica has (its num_cpus): the in-process ceiling; and one at a time, which
over the batched figure is what batching can give at most on this hardware. Prints a Markdown
table and the ratios per world: served samples/s at 16 clients over in-process (the target is
>= 95 %), and 16 clients over 1 client (batching's gain) beside the in-process batching ceiling.

    .venv/bin/python benchmarks/serve_load.py --requests-per-client 8
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", action="append", help="zoo world(s) (default: zoo:digits and zoo:shapes)")
    p.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    p.add_argument("--batch-sizes", default="16,1", help="sampler max_batch_size values to compare")
    p.add_argument("--requests-per-client", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=120, help="time cap per level")
    p.add_argument("--num-samples", type=int, default=1, help="images per request")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps per request (default: the world's)")
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--sampler-cpus", type=float, default=1.0)
    p.add_argument("--batch-wait-s", type=float, default=None, help="the sampler's batch_wait_timeout_s (default: ServeConfig's)")
    p.add_argument("--client-nice", type=int, default=19,
                   help="niceness of the load generator (this process) once Ray is up: Ray runs its workers at 15, so "
                        "the clients take only what the service leaves, as clients on other machines would")
    p.add_argument("--pin", action="store_true",
                   help="diagnosis: pin the sampler replica to CPU 0 and every other Ray process and the clients to CPU 1 "
                        "(Linux), to see what sharing the cores costs the sampler")
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


def pin_sampler() -> None:
    """The sampler replica on CPU 0, everything else of the cluster (and this process) on CPU 1."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ray" in cmd or int(entry.name) == os.getpid():
            for task in (entry / "task").iterdir():  # every thread, or torch's would stay where they were
                try:
                    os.sched_setaffinity(int(task.name), {0} if "TronSampler" in cmd else {1})
                except OSError:
                    pass


def run_level(url: str, world: str, clients: int, per_client: int, max_seconds: float, body: dict) -> dict:
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
            request = request_body(world, index + i, index * 1000 + i, body)
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


def request_body(world: str, index: int, seed: int, body: dict) -> dict:
    """The i-th request of a client: a label for classifier worlds, a caption for CLIP worlds."""
    if world == "zoo:shapes":
        from tron.zoo import shapes

        return {**body, "text": shapes.full_captions()[(7 * index) % 210], "seed": seed}
    return {**body, "label": index % 10, "seed": seed}


def in_process(world: str, threads: int, batch: int, requests: int, body: dict) -> float:
    """Samples/s of Sampler.run over the same requests, `batch` of them per chain batch, on `threads`."""
    import torch

    from pipelines.serve.config import ServeConfig
    from pipelines.serve.model import Job, ServedModel

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    model = ServedModel(ServeConfig(world=world))
    jobs = []
    for i in range(requests):
        req = request_body(world, i, i, body)
        kind = "text" if "text" in req else "label"
        jobs.append(Job(kind, req[kind], num_samples=req["num_samples"], steps=req.get("steps"), seed=req["seed"]))
    model.sample([model.condition(j) for j in jobs[:batch]], jobs[:batch])  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(jobs), batch):  # conditions are made per request, as the replica does
        part = jobs[start:start + batch]
        model.sample([model.condition(j) for j in part], part)
    seconds = time.perf_counter() - t0
    torch.set_num_threads(old)
    return sum(j.num_samples for j in jobs) / seconds


# Long: the benchmark is one script: start the server, run each load, write the table, in the order they run.
def main(argv=None) -> int:
    args = parse_args(argv)
    worlds = args.world or ["zoo:digits", "zoo:shapes"]
    body0 = {"num_samples": args.num_samples, **({"steps": args.steps} if args.steps is not None else {})}
    threads = max(1, int(args.sampler_cpus))
    ceiling = {w: in_process(w, threads, 16, 16 * args.requests_per_client, body0) for w in worlds}
    single = {w: in_process(w, threads, 1, 2 * args.requests_per_client, body0) for w in worlds}
    for w in worlds:
        print(f"[bench] {w}: in-process Sampler.run on {threads} thread(s): batches of 16 {ceiling[w]:.2f} samples/s, "
              f"one at a time {single[w]:.2f} samples/s", file=sys.stderr, flush=True)
    import ray
    import requests
    from ray import serve

    from pipelines.serve.config import ServeConfig
    from pipelines.serve.deployments import build_app

    levels = [int(c) for c in args.clients.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    body = body0
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    os.nice(max(0, args.client_nice - os.nice(0)))  # after Ray started: its processes keep their own niceness
    rows = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 120})
        for world, batch in [(w, b) for w in worlds for b in batch_sizes]:
            wait = {} if args.batch_wait_s is None else {"batch_wait_timeout_s": args.batch_wait_s}
            config = ServeConfig(world=world, max_batch_size=batch, max_ongoing_requests=max(32, 2 * batch),
                                 max_queued_requests=64, sampler_num_cpus=args.sampler_cpus, request_timeout_s=110, **wait)
            serve.run(build_app(config), name="bench", route_prefix="/")
            if args.pin:
                pin_sampler()
            for i in range(3):  # warm-up: first calls pay for lazy initialisation
                requests.post(f"{url}/v1/generate", json=request_body(world, i, i, body), timeout=120).raise_for_status()
            for clients in levels:
                result = run_level(url, world, clients, args.requests_per_client, args.max_seconds, body)
                rows.append((world, batch, clients, result))
                print(f"[bench] {world} max_batch_size={batch} clients={clients}: {result['throughput']:.2f} req/s, "
                      f"p50 {1000 * result['p50']:.0f} ms, p99 {1000 * result['p99']:.0f} ms, errors {result['errors']}",
                      file=sys.stderr, flush=True)
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()

    base = {(world, clients): r["throughput"] for world, batch, clients, r in rows if batch == 1}
    print("| world | max_batch_size | clients | requests ok | errors | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch "
          "| sampling ms per request | throughput vs max_batch_size=1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for world, batch, clients, r in rows:
        b = base.get((world, clients))
        speedup = f"{r['throughput'] / b:.1f}x" if b else "-"
        errors = sum(r["errors"].values())
        print(f"| {world} | {batch} | {clients} | {r['ok']} | {errors} | {r['throughput']:.2f} | {1000 * r['p50']:.0f} | "
              f"{1000 * r['p99']:.0f} | {r['mean_batch']:.1f} | {r['sample_share_ms']:.0f} | {speedup} |")
    print("\n| world | in-process samples/s, batches of 16 | served at 16 clients | served / in-process | in-process, one at a time "
          "| batching ceiling (16 / 1 in-process) | 16 clients / 1 client served |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for world in worlds:
        served = {c: r["throughput"] * args.num_samples for w, b, c, r in rows if w == world and b == max(batch_sizes)}
        top, one = served.get(max(levels)), served.get(min(levels))
        print(f"| {world} | {ceiling[world]:.2f} | {top:.2f} | {top / ceiling[world]:.1%} | {single[world]:.2f} | "
              f"{ceiling[world] / single[world]:.2f}x | {top / one:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
