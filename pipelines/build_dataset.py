"""Build a (z, f(G(z))) pair dataset as Parquet shards with Ray tasks, one task per shard.

    ray job submit --working-dir . -- python pipelines/build_dataset.py \
        --generator zoo:digits --encoder zoo:digits --num-pairs 100000 --out s3://bucket/digits-pairs

Rerunning the same command resumes: complete, valid shards are kept, missing or corrupt ones
are regenerated, and shards of a different build (other G, f, prior or seed) are refused.
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import asdict

import torch

from tron.allocator import keep_freed_memory
from tron.arguments import Parser
from tron.captioners import CAPTION_COLUMN
from tron.components import component_fingerprint, load_captioner_spec, load_encoder_spec, load_generator_spec
from tron.dataset import (
    DatasetIdentity,
    ShardCheck,
    check_shard,
    generate_shard,
    make_manifest,
    plan_shards,
    read_manifest,
    write_manifest,
    write_shard_files,
)
from tron.encoders import FEATURES
from tron.errors import DatasetError, TronError, one_line
from tron.pairs import CaptionEmbeddings, column_name, condition_scale
from tron.priors import parse_prior
from tron.storage import location

if __package__ in (None, ""):  # run as a script: python pipelines/build_dataset.py
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from pipelines.common import check_s3_bucket, code_version, init_ray, mlflow_run, run_main  # noqa: E402


def build_parser() -> Parser:
    p = Parser(prog="build_dataset.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="zoo:digits", help="generator spec: zoo:NAME or a checkpoint directory")
    p.add_argument("--encoder", default=None, help="encoder spec (default: same as --generator)")
    p.add_argument("--prior", default="normal", help="normal | truncated-normal[:BOUND] | hubness:k=5,t=50,m=10000")
    p.add_argument("--num-pairs", type=int, default=100_000)
    p.add_argument("--rows-per-shard", type=int, default=10_000)
    p.add_argument("--out", required=True, help="dataset URI: a local directory or s3://bucket/prefix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1024, help="G/f batch inside a task (part of the identity)")
    p.add_argument("--features", action="store_true",
                   help="also store f's pooled features (column c_features) for image conditions, where f has them")
    p.add_argument("--captioner", default=None,
                   help="caption each G(z) with this captioner (a checkpoint directory, zoo:NAME, caption-bank:FILE.json "
                        "or module:factory) and store the caption and its text embedding under f (column c_caption), "
                        "for the text translator")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs per shard task")
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs per shard task (used when > 0 and present)")
    p.add_argument("--max-in-flight", type=int, default=0, help="at most this many shard tasks at once (0: no limit)")
    p.add_argument("--executor", choices=["tasks", "actors"], default="tasks",
                   help="tasks: one Ray task per shard (G and f cached per worker process); actors: Ray Data "
                        "map_batches over an actor pool that loads G and f once per actor (--actors of them)")
    p.add_argument("--actors", type=int, default=2, help="actor pool size for --executor actors")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--experiment", default="tron-datasets", help="MLflow experiment")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not track this build in MLflow")
    return p


@functools.lru_cache(maxsize=4)
def _load_components(generator: str, encoder: str, captioner: str, device: str):
    """Once per worker process: Ray reuses workers across tasks."""
    g, f = load_generator_spec(generator, device), load_encoder_spec(encoder, device)
    return g, f, load_captioner_spec(captioner, f, device) if captioner else None


def write_shard(uri: str, identity_dict: dict, index: int, rows: int, num_cpus: float, use_gpu: bool) -> ShardCheck:
    """The Ray task: generate one shard and make it visible atomically."""
    torch.set_num_threads(max(1, int(num_cpus)))  # fixed thread count: reproducible float reductions
    keep_freed_memory()  # the worker reuses its batches' memory: 2x pairs/s through a 224 px f
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    identity = DatasetIdentity(**identity_dict)
    generator, encoder, captioner = _load_components(identity.generator, identity.encoder, identity.captioner, device)
    data, check = generate_shard(generator, encoder, identity, index, rows, captioner)
    write_shard_files(location(uri), index, data, check.sha256)
    return check


def make_identity(args) -> tuple[DatasetIdentity, float]:
    """The dataset's identity, and the raw scale of f's embeddings (for TR0N's condition noise)."""
    g, f = load_generator_spec(args.generator), load_encoder_spec(args.encoder)
    extra = {}
    if args.features:
        if FEATURES not in f.spaces:
            raise DatasetError(f"--features: the encoder {args.encoder} has no pooled features")
        extra[column_name(FEATURES)] = f.space_dim(FEATURES)
    captioner = {}
    if args.captioner:
        CaptionEmbeddings(f)  # f embeds the captions: it must take text
        load_captioner_spec(args.captioner, f)  # a one-line error here, not in every shard task
        extra[CAPTION_COLUMN] = f.embed_dim
        captioner = {"captioner": args.captioner, "captioner_fingerprint": component_fingerprint(args.captioner, "captioner")}
    identity = DatasetIdentity(
        generator=args.generator, generator_fingerprint=component_fingerprint(args.generator, "generator"),
        encoder=args.encoder, encoder_fingerprint=component_fingerprint(args.encoder, "encoder"),
        prior=asdict(parse_prior(args.prior)), seed=args.seed, rows_per_shard=args.rows_per_shard,
        batch_size=args.batch_size, latent_dim=g.latent_dim, cond_dim=f.embed_dim, extra_columns=extra, **captioner,
    )
    return identity, condition_scale(g, f, seed=args.seed)


def existing_shards(loc, identity: DatasetIdentity, plan: list[int]) -> dict[int, ShardCheck]:
    """Check what a previous run left. Raises DatasetError on foreign shards or manifest."""
    manifest = read_manifest(loc)
    recorded: dict[int, str] = {}
    if manifest is not None:
        old = DatasetIdentity(**manifest["identity"])
        if old != identity:
            raise DatasetError(f"{loc.uri} already holds a different dataset ({'; '.join(old.differences(identity))}); "
                               "refusing to mix: choose a new --out")
        recorded = {s["index"]: s["sha256"] for s in manifest["shards"] if s["rows"] == plan[s["index"]]} \
            if len(manifest["shards"]) <= len(plan) else {}
    return {i: check_shard(loc, identity, i, rows, recorded.get(i)) for i, rows in enumerate(plan)}


def rate_text(rate: float) -> str:
    """Pairs per second with meaningful precision: '12,345 pairs/s', '1.26 pairs/s', '0.0420 pairs/s'."""
    if rate >= 100:
        return f"{rate:,.0f} pairs/s"
    return f"{rate:.3g} pairs/s"


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


def run(argv: list[str] | None = None) -> dict:
    """Build (or resume, or confirm) a dataset; returns its manifest."""
    args = build_parser().parse_args(argv)
    args.encoder = args.encoder or args.generator
    for name in ("num_pairs", "rows_per_shard", "batch_size"):
        if getattr(args, name) < 1:
            raise DatasetError(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_cpus <= 0 or args.num_gpus < 0:
        raise DatasetError("--num-cpus must be > 0 and --num-gpus >= 0")
    check_s3_bucket(args.out)
    loc = location(args.out)
    identity, scale = make_identity(args)
    plan = plan_shards(args.num_pairs, args.rows_per_shard)
    checks = existing_shards(loc, identity, plan)
    todo = [i for i, c in checks.items() if c.status != "ok"]
    for i in todo:
        if checks[i].status in ("corrupt", "unverified"):
            print(f"[build] shard {i} is {checks[i].status} ({checks[i].reason}); regenerating", flush=True)
    print(f"[build] {loc.uri}: {len(plan)} shards, {len(plan) - len(todo)} already complete, {len(todo)} to write", flush=True)

    params = {"generator": args.generator, "encoder": args.encoder, "captioner": args.captioner or "", "prior": args.prior,
              "num_pairs": args.num_pairs,
              "rows_per_shard": args.rows_per_shard, "seed": args.seed, "batch_size": args.batch_size,
              "num_cpus": args.num_cpus, "num_gpus": args.num_gpus, "out": loc.uri}
    tags = {"tron.stage": "build_dataset", "tron.dataset_uri": loc.uri,
            "tron.generator_fingerprint": identity.generator_fingerprint,
            "tron.encoder_fingerprint": identity.encoder_fingerprint}
    with mlflow_run(args.experiment, run_name=f"build {loc.uri}", tracking_uri=args.tracking_uri, tags=tags,
                    enabled=not args.no_mlflow) as run:
        t0 = time.perf_counter()
        written = run_shards(args, loc.uri, identity, plan, todo, checks)
        seconds = time.perf_counter() - t0
        manifest = make_manifest(identity, args.num_pairs, [checks[i] for i in range(len(plan))], code_version(), scale)
        write_manifest(loc, manifest)
        rate = written / seconds if seconds > 0 else 0.0
        print(f"[build] done: {loc.uri}/manifest.json, {args.num_pairs} pairs in {len(plan)} shards; "
              f"wrote {written} pairs in {seconds:.1f} s ({rate_text(rate)})", flush=True)
        if run is not None:
            import mlflow

            mlflow.log_params(params)
            mlflow.log_metrics({"pairs_per_s": rate, "shards": len(plan), "shards_written": len(todo),
                                "pairs_written": written, "seconds": seconds})
            mlflow.log_dict(manifest, "manifest.json")
            print(f"[build] MLflow run {run.info.run_id} in experiment {args.experiment!r}", flush=True)
    return manifest


class ShardWriter:
    """Ray Data's callable class for --executor actors: loads G and f once, writes the shards it is given."""

    def __init__(self, uri: str, identity_dict: dict, plan: list[int], num_cpus: float, use_gpu: bool) -> None:
        self.args = (uri, identity_dict, plan, num_cpus, use_gpu)

    def __call__(self, batch: dict) -> dict:
        uri, identity_dict, plan, num_cpus, use_gpu = self.args
        checks = [write_shard(uri, identity_dict, int(i), plan[int(i)], num_cpus, use_gpu) for i in batch["id"]]
        return {"index": [c.index for c in checks], "rows": [c.rows for c in checks], "sha256": [c.sha256 for c in checks]}


def run_shards_with_actors(args, uri: str, identity: DatasetIdentity, plan: list[int], todo: list[int],
                           checks: dict[int, ShardCheck]) -> int:
    """The shards to write as a Ray Data dataset of indices, mapped by an actor pool."""
    init_ray(args.address)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"id": i} for i in todo]).map_batches(
        ShardWriter, fn_constructor_args=(uri, asdict(identity), plan, args.num_cpus, args.num_gpus > 0),
        batch_size=1, compute=ray.data.ActorPoolStrategy(size=max(1, min(args.actors, len(todo)))),
        num_cpus=args.num_cpus, num_gpus=args.num_gpus or None)
    written, t0 = 0, time.perf_counter()
    try:
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
            for index, rows, digest in zip(batch["index"], batch["rows"], batch["sha256"]):
                checks[int(index)] = ShardCheck(int(index), "ok", rows=int(rows), sha256=str(digest))
                written += int(rows)
            finished = sum(c.status == "ok" for c in checks.values())
            print(f"[build] shards {finished}/{len(plan)} done, {rate_text(written / (time.perf_counter() - t0))}", flush=True)
    except ray.exceptions.RayTaskError as exc:  # the cause is the last line of the remote traceback
        raise DatasetError(one_line(exc.cause or exc, last=True)) from None
    return written


def run_shards(args, uri: str, identity: DatasetIdentity, plan: list[int], todo: list[int],
               checks: dict[int, ShardCheck]) -> int:
    """Launch one task per shard to write; report progress as they finish. Returns pairs written."""
    if not todo:
        return 0
    if args.executor == "actors":
        return run_shards_with_actors(args, uri, identity, plan, todo, checks)
    ray = init_ray(args.address)
    task = ray.remote(write_shard).options(num_cpus=args.num_cpus, num_gpus=args.num_gpus, max_retries=3,
                                           name="tron-write-shard")
    identity_dict = asdict(identity)
    limit = args.max_in_flight or len(todo)
    queue, pending, written, t0 = list(todo), {}, 0, time.perf_counter()
    while queue or pending:
        while queue and len(pending) < limit:
            i = queue.pop(0)
            pending[task.remote(uri, identity_dict, i, plan[i], args.num_cpus, args.num_gpus > 0)] = i
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            index = pending.pop(ref)
            try:
                check = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the task's own error, in one line
                for other in pending:
                    ray.cancel(other)
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                if isinstance(cause, TronError):
                    raise type(cause)(str(cause)) from None
                raise DatasetError(f"shard {index} failed: {one_line(cause, last=True)}") from None
            checks[check.index] = check
            written += check.rows
            elapsed = time.perf_counter() - t0
            finished = sum(c.status == "ok" for c in checks.values())
            print(f"[build] shards {finished}/{len(plan)} done, {rate_text(written / elapsed)}", flush=True)
    return written


if __name__ == "__main__":
    # Re-import under the package name so Ray workers can import the task functions by reference.
    from pipelines import build_dataset

    sys.exit(run_main(build_dataset.main, None, "build_dataset.py"))
