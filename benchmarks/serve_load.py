"""Load test of the Serve sampling API on loopback: throughput, latency and where a request's time
goes, against the same sampler in-process.

For each world (default: zoo:digits, zoo:shapes and zoo:faces) the replica's own code
(`ServedModel.serve`) first runs in a child process over the same requests, on as many torch
threads as a sampler replica has (its num_cpus) and at its niceness (15, Ray's for its workers):
batched 16 requests at a time (the ceiling serving can reach) and one at a time (their ratio is what
batching can give at most on this hardware). Then the app is deployed on a local Ray cluster, warmed
up and driven by 1 and 16 closed-loop clients (each sends its next request when the previous one is
answered; a fixed number of requests per client and a time cap per level), for each `--replicas`
count and each `--batch-sizes` value (or as a Serve config deploys it), while a probe
times GET /v1/model and /v1/health every 0.25 s. The in-process and served figures of a world are
measured back to back in one invocation, so compare them as ratios (the machine's load is printed with them).

Prints Markdown tables: the levels; the stage breakdown per request, from the responses' own timing
fields (queue, assembly, init: translator draws and their ranking, langevin, decode, encode: PNG,
transfer: the rest), beside the in-process batches; and per world the ratios: served samples/s at
16 clients over in-process (target >= 95 %), 16 clients over 1 beside the in-process batching
ceiling (target: within 10 %), /v1/model p95 under load (target <= 50 ms), and 2 replicas over 1.

    .venv/bin/python benchmarks/serve_load.py --requests-per-client 8
    .venv/bin/python benchmarks/serve_load.py --world zoo:shapes --replicas 1,2 --clients 16
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("queue_ms", "assembly_ms", "init_ms", "langevin_ms", "decode_ms", "encode_ms", "transfer_ms", "total_ms")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", action="append", help="zoo world(s) (default: zoo:digits, zoo:shapes and zoo:faces)")
    p.add_argument("--clients", default="1,16", help="comma-separated concurrency levels")
    p.add_argument("--batch-sizes", default="16", help="sampler max_batch_size values to compare")
    p.add_argument("--replicas", default="1", help="comma-separated sampler replica counts (each --sampler-cpus)")
    p.add_argument("--serve-config", type=Path, default=None,
                   help="deploy this Serve config (e.g. infra/serve_config.yaml: its autoscaling and deployment options) "
                        "with `world` set to each --world, instead of --replicas/--batch-sizes; each level reports the "
                        "sampler replicas running at its end")
    p.add_argument("--requests-per-client", type=int, default=8)
    p.add_argument("--in-process-batches", type=int, default=4, help="batches of 16 timed in-process (after one warm-up)")
    p.add_argument("--max-seconds", type=float, default=120, help="time cap per level")
    p.add_argument("--num-samples", type=int, default=1, help="images per request")
    p.add_argument("--steps", type=int, default=None, help="Langevin steps per request (default: the world's)")
    p.add_argument("--mixed", action="store_true",
                   help="CLIP worlds: rotate text, image and weighted-prompt requests (default: text only)")
    p.add_argument("--ray-cpus", type=float, default=2, help="logical CPUs of the Ray cluster (raised to fit the replicas)")
    p.add_argument("--sampler-cpus", type=float, default=1.0)
    p.add_argument("--device", default="cpu", help="the sampler's device (cuda: give --sampler-gpus)")
    p.add_argument("--sampler-gpus", type=float, default=0, help="GPUs per sampler replica (ray_actor_options num_gpus)")
    p.add_argument("--batch-wait-s", type=float, default=None, help="the sampler's batch_wait_timeout_s (default: ServeConfig's)")
    p.add_argument("--worker-nice", type=int, default=None,
                   help="niceness of Ray's workers, the replicas among them (RAY_worker_niceness; default: Ray's, 15); "
                        "on a machine shared with other jobs, give all three nice options their niceness")
    p.add_argument("--in-process-nice", type=int, default=15,
                   help="niceness of the in-process sampler (a child process): Ray runs its workers, the replicas among "
                        "them, at 15, so both compete alike with whatever else runs on the machine")
    p.add_argument("--client-nice", type=int, default=19,
                   help="niceness of the load generator (this process) once Ray is up: Ray runs its workers at 15, so "
                        "the clients take only what the service leaves, as clients on other machines would")
    p.add_argument("--pin", action="store_true",
                   help="diagnosis: pin the sampler replica to CPU 0 and every other Ray process and the clients to CPU 1 "
                        "(Linux), to see what sharing the cores costs the sampler")
    p.add_argument("--port", type=int, default=0, help="HTTP port (0: a free one)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
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


def machine_load() -> str:
    """The 1-minute load average and the busiest processes of the machine (another job may share it)."""
    top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True).stdout
    busy = ", ".join(" ".join(line.split()[::-1]) + "%" for line in top.splitlines()[:3])
    return f"load {os.getloadavg()[0]:.2f} (busiest: {busy})"


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


def sample_image(world: str) -> str:
    """A base64 PNG for image requests: a fixed picture of the world's size."""
    import base64

    import numpy as np

    from tron.images import png_bytes

    side = 64 if world == "zoo:faces" else 32
    rng = np.random.default_rng(0)
    return base64.b64encode(png_bytes((rng.random((side, side, 3)) * 255).astype(np.uint8))).decode()


def request_body(world: str, index: int, seed: int, body: dict, mixed: bool = False) -> dict:
    """The i-th request of a client: a label for classifier worlds, a caption for CLIP worlds
    (with --mixed every third an image, every third a weighted pair of prompts)."""
    if world != "zoo:shapes":
        return {**body, "label": index % 10, "seed": seed}
    from tron.zoo import shapes

    caption = shapes.full_captions()[(7 * index) % 210]
    if mixed and index % 3 == 1:
        return {**body, "image": sample_image(world), "seed": seed}
    if mixed and index % 3 == 2:
        return {**body, "prompts": [{"text": caption, "weight": 1.0}, {"text": "a large shape", "weight": -0.3}], "seed": seed}
    return {**body, "text": caption, "seed": seed}


def job_of(body: dict):
    """The sampler's Job for a request body, as the ingress makes it."""
    from pipelines.serve.api import decode_base64_image
    from pipelines.serve.model import Job

    params = {"num_samples": body.get("num_samples", 1), "steps": body.get("steps"), "seed": body["seed"]}
    if "prompts" in body:
        return Job("prompts", [("text", p["text"], p["weight"]) for p in body["prompts"]], **params)
    kind = next(k for k in ("label", "text", "image") if k in body)
    value = decode_base64_image(body[kind], 512) if kind == "image" else body[kind]
    return Job(kind, value, **params)


def mean_stages(timings: list[dict]) -> dict:
    keys = [k for k in STAGES if timings and k in timings[0]]
    out = {k: statistics.fmean(t[k] for t in timings) for k in keys}
    out["batch"] = statistics.fmean(t["batch_requests"] for t in timings) if timings else float("nan")
    if timings and "batch_runs" in timings[0]:  # Langevin runs per batch: 1 unless spaces differ
        out["runs"] = statistics.fmean(t["batch_runs"] for t in timings)
    return out


def in_process(world: str, threads: int, batch: int, batches: int, body: dict, mixed: bool, device: str) -> dict:
    """Samples/s and mean stage timings of ServedModel.serve (the replica's code) over `batches`
    batches of `batch` requests, after one warm-up batch, on `threads` torch threads."""
    import torch

    from pipelines.serve.config import ServeConfig
    from pipelines.serve.model import ServedModel
    from tron.allocator import keep_freed_memory

    keep_freed_memory()  # as a replica does (TronSampler.__init__): else batches page-fault their activations in again
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    model = ServedModel(ServeConfig(world=world, device=device))
    jobs = [job_of(request_body(world, i, i, body, mixed)) for i in range(batch * (batches + 1))]
    model.serve(jobs[:batch], [time.perf_counter()] * batch)  # warm-up: first calls pay for lazy initialisation
    timings = []
    t0 = time.perf_counter()
    for start in range(batch, len(jobs), batch):
        part = jobs[start:start + batch]
        timings += [out["timing"] | {"batch_requests": out["batch_requests"]}
                    for out in model.serve(part, [time.perf_counter()] * len(part))]
    seconds = time.perf_counter() - t0
    torch.set_num_threads(old)
    return {"samples_per_s": sum(j.num_samples for j in jobs[batch:]) / seconds, "stages": mean_stages(timings)}


def in_child(nice: int, *args) -> dict:
    """in_process(*args) in a fresh child process at niceness `nice`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os.nice,
                             initargs=(nice,)) as pool:
        return pool.submit(in_process, *args).result()


def run_level(url: str, world: str, clients: int, per_client: int, max_seconds: float, body: dict, mixed: bool) -> dict:
    """`clients` threads, each sending up to `per_client` requests one after another, and a probe
    timing GET /v1/model meanwhile."""
    import requests

    latencies: list[float] = []
    timings: list[dict] = []
    probes: list[float] = []
    health: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds
    done = threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        for i in range(per_client):
            if time.perf_counter() > deadline:
                return
            request = request_body(world, index + i, index * 1000 + i, body, mixed)
            t0 = time.perf_counter()
            try:
                response = session.post(f"{url}/v1/generate", json=request, timeout=120)
                code = str(response.status_code)
            except requests.RequestException as exc:
                response, code = None, type(exc).__name__
            elapsed = time.perf_counter() - t0
            with lock:
                if code == "200":
                    latencies.append(elapsed)
                    timings.append(response.json()["timing"])
                else:
                    errors[code] = errors.get(code, 0) + 1

    def probe() -> None:  # /v1/model asks a sampler replica; /v1/health is the ingress alone (the HTTP path's share)
        session = requests.Session()
        while not done.wait(0.25):
            for route, into in (("model", probes), ("health", health)):
                t0 = time.perf_counter()
                ok = session.get(f"{url}/v1/{route}", timeout=60).status_code == 200
                into.append(time.perf_counter() - t0 if ok else math.inf)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    prober = threading.Thread(target=probe)
    load = machine_load()
    t0 = time.perf_counter()
    prober.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    prober.join()
    return {"ok": len(latencies), "errors": errors, "wall": wall, "throughput": len(latencies) / wall,
            "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95), "p99": percentile(latencies, 0.99),
            "model_p50": percentile(probes, 0.5), "model_p95": percentile(probes, 0.95), "model_probes": len(probes),
            "health_p50": percentile(health, 0.5), "health_p95": percentile(health, 0.95),
            "stages": mean_stages(timings), "load_before": load, "load_after": machine_load()}


def serve_config(path: Path, world: str) -> dict:
    """The Serve config at `path` with its application named "bench" at / and serving `world`."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    (app,) = doc["applications"]
    app.update(name="bench", route_prefix="/")
    app["args"] = {**app.get("args", {}), "world": world, "request_timeout_s": 140}
    doc.pop("http_options", None)  # the benchmark's own (serve.start)
    return doc


def deploy_config(doc: dict) -> None:
    """Deploy a Serve config on the running Serve instance, as `serve run CONFIG` does."""
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    serve_api.serve_start().deploy_apps(ServeDeploySchema.model_validate(doc), _blocking=True)


def running_replicas() -> int:
    from ray import serve

    states = serve.status().applications["bench"].deployments["TronSampler"].replica_states
    return int(states.get("RUNNING", 0))


def ms(x: float) -> str:
    return "-" if x != x else f"{1000 * x:.0f}"


# Long: the benchmark is one script: measure in-process, start the server, run each load, write the tables, in that order.
def main(argv=None) -> int:
    args = parse_args(argv)
    worlds = args.world or ["zoo:digits", "zoo:shapes", "zoo:faces"]
    body = {"num_samples": args.num_samples, **({"steps": args.steps} if args.steps is not None else {})}
    threads = max(1, int(args.sampler_cpus))
    levels = [int(c) for c in args.clients.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    log = lambda line: print(f"[bench] {line}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"start: {machine_load()}")
    ceiling, single = {}, {}
    for w in worlds:
        ceiling[w] = in_child(args.in_process_nice, w, threads, 16, args.in_process_batches, body, args.mixed, args.device)
        single[w] = in_child(args.in_process_nice, w, threads, 1, 4 * args.in_process_batches, body, args.mixed, args.device)
        log(f"{w}: in-process ServedModel.serve on {threads} thread(s): batches of 16 {ceiling[w]['samples_per_s']:.2f} "
            f"samples/s, one at a time {single[w]['samples_per_s']:.2f} samples/s; {machine_load()}")
    import ray
    import requests
    from ray import serve

    from pipelines.serve.config import ServeConfig
    from pipelines.serve.deployments import build_app

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    ray_cpus = max(args.ray_cpus, math.ceil(max(replica_counts) * args.sampler_cpus + 0.1))  # a Serve config: give --ray-cpus
    if args.worker_nice is not None:
        os.environ["RAY_worker_niceness"] = str(args.worker_nice)  # read by the raylet that ray.init starts
    ray.init(num_cpus=ray_cpus, num_gpus=1 if args.sampler_gpus else None, include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    os.nice(max(0, args.client_nice - os.nice(0)))  # after Ray started: its processes keep their own niceness
    log(f"niceness: Ray's workers {args.worker_nice if args.worker_nice is not None else 'Ray default (15)'}, "
        f"in-process {args.in_process_nice}, clients {os.nice(0)}")
    rows = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 150})
        plan = [(w, r, b) for w in worlds for r in replica_counts for b in batch_sizes]
        if args.serve_config:
            plan = [(w, "auto", ServeConfig.from_dict(serve_config(args.serve_config, w)["applications"][0]["args"]).max_batch_size)
                    for w in worlds]
        for world, replicas, batch in plan:
            if args.serve_config:
                deploy_config(serve_config(args.serve_config, world))
            else:
                wait = {} if args.batch_wait_s is None else {"batch_wait_timeout_s": args.batch_wait_s}
                config = ServeConfig(world=world, max_batch_size=batch, max_ongoing_requests=max(32, 2 * batch),
                                     max_queued_requests=64, sampler_num_cpus=args.sampler_cpus, sampler_replicas=replicas,
                                     sampler_num_gpus=args.sampler_gpus,
                                     request_timeout_s=140, device=args.device, **wait)
                serve.run(build_app(config), name="bench", route_prefix="/")
            if args.pin:
                pin_sampler()
            for i in range(6 if replicas == "auto" else 3 * replicas):  # warm-up: first calls pay for lazy initialisation
                requests.post(f"{url}/v1/generate", json=request_body(world, i, i, body, args.mixed), timeout=150).raise_for_status()
            for clients in levels:
                result = run_level(url, world, clients, args.requests_per_client, args.max_seconds, body, args.mixed)
                if replicas == "auto":
                    result["replicas_at_end"] = running_replicas()
                rows.append({"world": world, "replicas": replicas, "batch": batch, "clients": clients, **result})
                log(f"{world} replicas={result.get('replicas_at_end', replicas)} max_batch_size={batch} clients={clients}: "
                    f"{result['throughput']:.2f} req/s, "
                    f"p50 {ms(result['p50'])} ms, p95 {ms(result['p95'])} ms, /v1/model p95 {ms(result['model_p95'])} ms, "
                    f"errors {result['errors']}; {result['load_after']}")
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()
    print_tables(args, worlds, levels, rows, ceiling, single)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "in_process_16": ceiling, "in_process_1": single}, indent=1))
    return 0


def print_tables(args, worlds, levels, rows, ceiling, single) -> None:
    n = args.num_samples
    print("| world | replicas | max_batch_size | clients | requests ok | errors | samples/s | p50 (ms) | p95 (ms) | mean batch "
          "| /v1/model p50 (ms) | /v1/model p95 (ms) | /v1/health p95 (ms) | load before -> after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        loads = f"{r['load_before'].split()[1]} -> {r['load_after'].split()[1]}"
        replicas = f"auto: {r['replicas_at_end']} at the end" if r["replicas"] == "auto" else r["replicas"]
        print(f"| {r['world']} | {replicas} | {r['batch']} | {r['clients']} | {r['ok']} | {sum(r['errors'].values())} | "
              f"{r['throughput'] * n:.2f} | {ms(r['p50'])} | {ms(r['p95'])} | {r['stages']['batch']:.1f} | "
              f"{ms(r['model_p50'])} | {ms(r['model_p95'])} | {ms(r['health_p95'])} | {loads} |")
    print("\nStage breakdown, mean ms per request (queue: at the replica before its batch starts; assembly, init "
          "(translator draws and their ranking), langevin and decode are the batch's, shared by its requests; encode: PNG; "
          "transfer: the rest of total):\n")
    print("| world | run | mean batch | " + " | ".join(k[:-3] for k in STAGES) + " |")
    print("|---|---|---:|" + "---:|" * len(STAGES))
    for world in worlds:
        lines = [("in-process, batches of 16", ceiling[world]["stages"]), ("in-process, one at a time", single[world]["stages"])]
        lines += [(f"served, {r['replicas']} replica(s), {r['clients']} client(s)", r["stages"]) for r in rows if r["world"] == world]
        for name, s in lines:
            cells = " | ".join(f"{s[k]:.0f}" if k in s else "-" for k in STAGES)
            print(f"| {world} | {name} | {s['batch']:.1f} | {cells} |")
    print("\n| world | in-process samples/s, batches of 16 | served, 16 clients | served / in-process | in-process, one at a time "
          "| batching ceiling (16 / 1 in-process) | served 16 / 1 client | /v1/model p95 at 16 clients (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for world in worlds:  # the served figures of 1 replica (a Serve config's autoscaled ones are in the levels)
        served = {r["clients"]: r for r in rows if r["world"] == world and r["replicas"] == 1 and r["batch"] == max(
            r2["batch"] for r2 in rows)}
        top, one = served.get(max(levels)), served.get(min(levels))
        c16, c1 = ceiling[world]["samples_per_s"], single[world]["samples_per_s"]
        if top is None:  # e.g. only --serve-config levels
            continue
        gain = f"{top['throughput'] / one['throughput']:.2f}x" if one is not None and one is not top else "-"
        print(f"| {world} | {c16:.2f} | {top['throughput'] * n:.2f} | {top['throughput'] * n / c16:.1%} | {c1:.2f} | "
              f"{c16 / c1:.2f}x | {gain} | {ms(top['model_p95'])} |")
    counts = sorted({r["replicas"] for r in rows})
    if len(counts) > 1:
        print("\n| world | clients | " + " | ".join(f"{c} replica(s), samples/s" for c in counts) + " | gain |")
        print("|---|---:|" + "---:|" * (len(counts) + 1))
        for world in worlds:
            for clients in levels:
                by = {r["replicas"]: r["throughput"] * n for r in rows if r["world"] == world and r["clients"] == clients}
                if len(by) == len(counts):
                    print(f"| {world} | {clients} | " + " | ".join(f"{by[c]:.2f}" for c in counts) +
                          f" | {by[counts[-1]] / by[counts[0]]:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
