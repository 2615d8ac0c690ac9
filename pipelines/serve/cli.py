"""`tron serve`: deploy the app on a local (or given) Ray cluster and serve until interrupted."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from pipelines.common import cluster_address, init_ray
from tron.arguments import Parser
from tron.errors import CheckpointError, TronError
from tron.uris import uri_scheme
from tron.world import ACCEPT_UNVERIFIED
from tron.world_config import locate_world

from .config import ServeConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = ServeConfig()
    p = Parser(prog="tron serve", description="Serve TR0N sampling over HTTP on a local (or given) Ray cluster.")
    p.add_argument("--world", default=d.world, help="zoo:NAME or a world directory")
    p.add_argument("--translator", default=None, help="translator directory or models:/NAME@alias (default: the world's)")
    p.add_argument(ACCEPT_UNVERIFIED, action="store_true",
                   help="serve a translator that records no G or f fingerprint (unchecked; a warning says so)")
    p.add_argument("--reload-interval", type=float, default=d.reload_interval_s,
                   help="seconds between checks of a models:/NAME@alias translator for a promotion (0: never)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (0.0.0.0 to listen on every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default=d.device)
    p.add_argument("--replicas", type=int, default=d.sampler_replicas, help="sampler replicas")
    p.add_argument("--num-cpus", type=float, default=d.sampler_num_cpus, help="CPUs per sampler replica")
    p.add_argument("--num-gpus", type=float, default=d.sampler_num_gpus, help="GPUs per sampler replica (with --device cuda)")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size, help="requests per batch (1 = no batching)")
    p.add_argument("--max-samples", type=int, default=d.max_samples, help="cap on num_samples per request")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="cap on steps per request")
    p.add_argument("--max-queued", type=int, default=d.max_queued_requests,
                   help="requests waiting for the sampler beyond which callers get 503")
    p.add_argument("--timeout", type=float, default=d.request_timeout_s, help="request timeout in seconds (504 past it)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a new local one)")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a new local Ray cluster")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(world=args.world, translator=args.translator, reload_interval_s=args.reload_interval,
                       accept_unverified_translator=args.accept_unverified_translator,
                       device=args.device, sampler_replicas=args.replicas, sampler_num_cpus=args.num_cpus,
                       sampler_num_gpus=args.num_gpus,
                       max_batch_size=args.max_batch_size,
                       max_ongoing_requests=max(2 * args.max_batch_size, ServeConfig.max_ongoing_requests),
                       max_samples=args.max_samples, max_steps=args.max_steps, max_queued_requests=args.max_queued,
                       request_timeout_s=args.timeout)


def main(argv: list[str] | None = None) -> int:
    """Deploy the app and serve until interrupted (Ctrl-C or SIGTERM), then take it down again."""
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise TronError(str(exc)) from None
    # Fail here, in one line, rather than inside a replica that Serve would keep restarting.
    locate_world(config.world)
    if config.translator and uri_scheme(config.translator) is None and not Path(config.translator).is_dir():
        raise CheckpointError(f"translator {config.translator} is not a directory; give a directory or models:/NAME@alias")
    external = cluster_address(args.address) is not None  # someone else's cluster: leave it running
    ray = init_ray(args.address, args.ray_cpus)
    from ray import serve

    from .deployments import APP_NAME, build_app

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        # The HTTP timeout is a backstop behind the ingress's own (which answers a clearer 504).
        serve.start(http_options={"host": args.host, "port": args.port, "request_timeout_s": config.request_timeout_s + 10})
        serve.run(build_app(config), name=APP_NAME, route_prefix="/")
        print(f"[serve] {config.world} at http://{args.host}:{args.port}/  (API: /v1/generate, docs: /docs); Ctrl-C stops",
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("[serve] stopping", flush=True)
    finally:
        if external:  # someone else's cluster: remove only this application
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    from pipelines.common import run_main

    sys.exit(run_main(main, None, "tron serve"))
