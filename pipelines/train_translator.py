"""Fit a translator q(z | c) on a pair dataset with Ray Train; track and register it in MLflow.

    python pipelines/train_translator.py --dataset s3://bucket/digits-pairs --num-workers 2

The per-worker loop is thin: it calls tron.training's helpers. Rank 0 checkpoints every epoch
(Ray keeps the best N by validation NLL, and always the latest) and logs metrics to MLflow.
Rerunning the same command resumes from the latest checkpoint and continues the same MLflow run.
A worker that dies (a preempted node, a killed process) restarts the worker group from the latest
checkpoint by itself, up to --max-failures times. An MLflow server that does not answer costs no
training: it is refused before anything starts, an epoch's metrics are skipped while it is down,
and after training the export stays on disk and a rerun registers it without training again.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from tron.arguments import Parser
from tron.captioners import CAPTION_COLUMN
from tron.dataset import PairDataset, open_dataset, table_column
from tron.errors import TronError, one_line
from tron.storage import exists, location, read_bytes, storage_error, write_bytes_atomic
from tron.training import (
    MODEL_FIELDS,
    TRAIN_FIELDS,
    TrainConfig,
    TrainingRecipe,
    TranslatorFit,
    create_translator,
    is_validation_row,
    shuffled_batches,
)
from tron.translator import TranslatorConfig, load_translator, save_translator
from tron.world_config import WorldConfig, is_world, locate_world

if __package__ in (None, ""):  # run as a script: python pipelines/train_translator.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines.common import init_ray, mlflow_run, run_main  # noqa: E402
from pipelines.evaluation import EvalBudget, evaluate_translator  # noqa: E402
from pipelines.logs import train_logging_config  # noqa: E402

CANDIDATE = "candidate"
MLFLOW_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"  # MLflow's own variable: how often an HTTP request is tried again
DIVERGED = "diverged"  # what the workers' loop returns, instead of raising, when training diverges


def build_parser() -> Parser:
    p = Parser(prog="train_translator.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset URI (local directory or s3://...) with a manifest")
    p.add_argument("--config", help="JSON file of hyperparameters (translator and training fields); flags override it")
    for name, kind in hyperparameter_types().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, dest=name, action="store_true", default=None)
        else:
            p.add_argument(flag, dest=name, type=kind, default=None)
    p.add_argument("--standardize-latent", action="store_true",
                   help="model (z - mean) / std per dimension, statistics from the pairs (recorded in the translator): "
                        "for latents that mix scales, such as BigGAN's z and class embedding")
    p.add_argument("--num-workers", type=int, default=1, help="data-parallel Ray Train workers")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="give fractions (0.5) to fit 2 workers on 2 cores")
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--data-cpus", type=float, default=0.5,
                   help="CPUs per Ray Data read task (one shard each); they run beside the workers, so a node needs "
                        "this much left after its workers (a 1-CPU node with a 0.5-CPU worker has 0.5)")
    p.add_argument("--placement-strategy", default="PACK", choices=["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"],
                   help="how Ray places the workers on nodes (SPREAD: over as many nodes as it can)")
    p.add_argument("--stream", nargs="?", const="yes", default="auto", choices=["auto", "yes", "no"],
                   help="read the shards through Ray Data every epoch instead of caching each worker's share in memory; "
                        "auto (default): stream when a worker's share would take more than a quarter of its memory")
    p.add_argument("--name", help="run name: the key for resuming (default: derived from the dataset)")
    p.add_argument("--storage-path", default=None, help="Ray Train storage for checkpoints (local or s3://); default outputs/ray_results")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="best N checkpoints by validation NLL")
    p.add_argument("--max-failures", type=int, default=3,
                   help="restart the worker group from the latest checkpoint after this many worker failures "
                        "(a preempted node, a killed worker) before giving up; 0: fail at the first, -1: never give up")
    p.add_argument("--export", default=None, help="directory for the best translator (default outputs/translators/NAME)")
    p.add_argument("--registered-model", default=None, help="MLflow registered model name (default: from G and f)")
    p.add_argument("--experiment", default="tron-translators")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--condition-column", default="c",
                   help="the dataset column to condition on: c (f's main space), c_features (image conditions) "
                        "or c_caption (text embeddings of G's captions)")
    p.add_argument("--kind", choices=["default", "label", "text", "image"], default=None,
                   help="which of the world's translators this is (its training recipe in world.json); default: "
                        "from --condition-column (c: default, c_features: image, c_caption: text)")
    p.add_argument("--max-pairs", type=int, default=None,
                   help="train on the first N pairs of the dataset only (by row index: a prefix of a larger build of the "
                        "same seed and shard size is the smaller build); default: all")
    p.add_argument("--eval-samples", type=int, default=8, help="samples per condition in the quick evaluation")
    p.add_argument("--eval-conditions", type=int, default=16, help="at most this many conditions in the quick evaluation")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="Langevin steps of the quick evaluation (default: the world's, at most 50)")
    p.add_argument("--eval-seconds", type=float, default=300.0, help="time budget of the quick evaluation")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    return p


def slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", spec).strip("-").lower()


def registered_model_name(generator: str, encoder: str, condition_column: str = "c") -> str:
    """One registered model per (G, f) pair and condition: f's main output (labels, CLIP embeddings)
    keeps the plain name; a translator for another column (c_features: image variation) gets its own,
    so that its versions and aliases do not overtake the main translator's."""
    suffix = "" if condition_column == "c" else "." + slug(condition_column.removeprefix("c_"))
    return f"tron-translator.{slug(generator)}.{slug(encoder)}{suffix}"


def hyperparameter_types() -> dict[str, type]:
    """Each translator and training hyper-parameter with the type of its flag, from the dataclasses."""
    types = {}
    for cls, names in ((TranslatorConfig, MODEL_FIELDS), (TrainConfig, TRAIN_FIELDS)):
        hints = {f.name: f for f in fields(cls)}
        for name in names:
            default = hints[name].default
            types[name] = type(default) if isinstance(default, (bool, int, float, str)) else str
    return types


# The kind of condition a translator trained on each condition column serves (world.json "translators").
KIND_OF_COLUMN = {"c": "default", "c_features": "image", "c_caption": "text"}


def translator_kind(args) -> str:
    """The world's kind of translator this run makes: --kind, else the one its condition column serves."""
    return args.kind or KIND_OF_COLUMN.get(args.condition_column, "default")


def world_recipe(dataset: PairDataset, kind: str) -> TrainingRecipe:
    """The training recipe of the world that G and f come from (world.json's "training" for this
    kind of translator), or an empty one."""
    spec = dataset.identity.generator
    if spec != dataset.identity.encoder or not is_world(spec):
        return TrainingRecipe()
    return WorldConfig.load(locate_world(spec)).training_recipe(kind) or TrainingRecipe()


def hyperparameters(args, dataset: PairDataset) -> tuple[TranslatorConfig, TrainConfig]:
    """The world's training recipe, then --config, then flags; the noise scale from the manifest."""
    try:
        recipe = world_recipe(dataset, translator_kind(args))
        if args.config:
            try:
                recipe = recipe.updated(TrainingRecipe.flat(json.loads(Path(args.config).read_text())))
            except (OSError, json.JSONDecodeError) as exc:
                raise TronError(f"cannot read --config {args.config}: {exc}") from exc
        recipe = recipe.updated(TrainingRecipe.flat({k: v for k, v in vars(args).items()
                                                     if k in MODEL_FIELDS + TRAIN_FIELDS and v is not None}))
        recipe.train.setdefault("condition_scale", dataset.condition_scale)
        stats = {}
        if args.standardize_latent:
            mean, std = dataset.latent_statistics()
            stats = {"latent_mean": mean, "latent_std": std}
            print(f"[train] standardising z: per-dimension std from {min(std):.3g} to {max(std):.3g}", flush=True)
        return recipe.configs(dataset.condition_width(args.condition_column), dataset.identity.latent_dim, **stats)
    except ValueError as exc:
        raise TronError(f"invalid hyperparameters: {exc}") from exc


# ----------------------------------------------------------------------------- the worker loop

def train_loop_per_worker(config: dict) -> dict | None:
    """Runs on every Ray Train worker: what is Ray's (context, DDP, checkpoint restore, this worker's
    shard of the pairs, reports); the training itself is tron.training's one routine."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tcfg, mcfg = TrainConfig(**config["train"]), TranslatorConfig(**config["model"])
    translator = create_translator(mcfg, tcfg.seed)
    start_epoch, state = restore(translator, ray.train.get_checkpoint(), rank)
    device = ray.train.torch.get_device()
    steps_per_epoch = max(1, math.ceil(config["train_rows"] / (tcfg.batch_size * world)))
    fit = TranslatorFit(translator.to(device), tcfg, steps_per_epoch, wrap=ray.train.torch.prepare_model)  # DDP across workers
    if state is not None:
        fit.load_state_dict(state)

    def all_reduce(*values: float, op=dist.ReduceOp.SUM) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(t, op=op)
        return t.tolist()

    client = None
    if rank == 0 and config.get("mlflow_run_id"):
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=config["tracking_uri"])
    pairs = WorkerPairs(device, tcfg, config["cache_in_memory"])
    for epoch in range(start_epoch, tcfg.epochs):
        try:
            total, count, train_seconds, val_total, val_count = pairs.epoch(fit, epoch, rank)
        except FloatingPointError as exc:
            # Divergence is deterministic: a restart from the last checkpoint (--max-failures) would
            # diverge again. Every worker stops at the same step (TranslatorFit.step); the run ends
            # without a worker failure and the driver reports it (rank 0's return value).
            return {DIVERGED: str(exc)}
        total, count, val_total, val_count = all_reduce(total, count, val_total, val_count)
        (peak_rss,) = all_reduce(peak_rss_mib(), op=dist.ReduceOp.MAX)
        metrics = {"epoch": epoch + 1, "train_nll": total / max(count, 1), "val_nll": val_total / max(val_count, 1),
                   "samples_per_s": count / max(train_seconds, 1e-9), "worker_peak_rss_mib": peak_rss}
        if client is not None:
            log_epoch(client, config, metrics, epoch, start_epoch)
        if rank == 0:
            print(f"[train] epoch {epoch + 1}/{tcfg.epochs}: train_nll {metrics['train_nll']:.4f} "
                  f"val_nll {metrics['val_nll']:.4f}", flush=True)
        report(metrics, translator, fit, epoch, rank, config["metadata"])


def log_epoch(client, config: dict, metrics: dict, epoch: int, start_epoch: int) -> None:
    """Rank 0's epoch metrics to MLflow, best effort: while the tracking server does not answer, the
    epoch's metrics are skipped with one line (the training goes on; its checkpoints hold the model)."""
    from mlflow.exceptions import MlflowException

    values = {k: metrics[k] for k in ("train_nll", "val_nll", "samples_per_s", "worker_peak_rss_mib")}
    if epoch == start_epoch:
        values["started_at_epoch"] = start_epoch
    why = tracking_unreachable(config["tracking_uri"], timeout=2.0)
    try:
        if why is None:
            for key, value in values.items():
                client.log_metric(config["mlflow_run_id"], key, value, step=epoch + 1)
    except MlflowException as exc:
        why = one_line(exc)
    if why is not None:
        print(f"[train] epoch {epoch + 1}: metrics not logged, the MLflow server does not answer ({why})", flush=True)


def tracking_unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why an MLflow tracking server does not answer its health check, or None when it does (or when
    the store is not a server: a SQLite file). Asked before MLflow's own calls, which retry for minutes."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        return None if exc.code < 500 else f"HTTP {exc.code}"  # a 4xx (say, auth) is a server that answers
    except OSError as exc:
        return one_line(getattr(exc, "reason", None) or exc)
    return None


def restore(translator, checkpoint, rank: int) -> tuple[int, dict | None]:
    """(the epoch to start at, the optimiser's state) from Ray Train's latest checkpoint, if any."""
    if checkpoint is None:
        return 0, None
    with checkpoint.as_directory() as d:
        translator.load_state_dict(load_translator(Path(d) / "translator").state_dict())
        state = torch.load(Path(d) / "train_state.pt", weights_only=True)
    if rank == 0:
        print(f"[train] resumed from the checkpoint of epoch {int(state['epoch'])}", flush=True)
    return int(state["epoch"]), state


def report(metrics: dict, translator, fit: TranslatorFit, epoch: int, rank: int, metadata: dict) -> None:
    """Ray Train's report of the epoch; rank 0 attaches the checkpoint (translator and optimiser)."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if rank == 0:
            save_translator(translator, Path(tmp) / "translator", metadata=metadata)
            torch.save({"epoch": epoch + 1, **fit.state_dict()}, Path(tmp) / "train_state.pt")
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=ckpt)


class WorkerPairs:
    """This worker's shard of the train and validation pairs: cached in memory in row order, or
    streamed through Ray Data every epoch (--stream)."""

    def __init__(self, device, config: TrainConfig, cached: bool) -> None:
        import ray.train

        self.shards = {"train": ray.train.get_dataset_shard("train"), "val": ray.train.get_dataset_shard("val")}
        self.device, self.config, self.cached, self.cache = device, config, cached, {}

    def epoch(self, fit: TranslatorFit, epoch: int, rank: int) -> tuple[float, int, float, float, int]:
        """(train loss sum, train rows, seconds, validation loss sum, validation rows) of one epoch."""
        if self.cached:
            total, count, seconds = fit.train_epoch(epoch, self.share("train"), rank=rank)
            val_total, val_count = fit.evaluate(shuffled_batches(*self.share("val"), 4096))
        else:
            total, count, seconds = fit.train_epoch(epoch, batches=self.streamed("train", self.config.batch_size, epoch),
                                                    rank=rank)
            val_total, val_count = fit.evaluate(self.streamed("val", 4096, None))
        return total, count, seconds, val_total, val_count

    def share(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's share of a split, read once through Ray Data and put in ascending row order
        (the order Ray Data delivers blocks in varies; the seeding rule shuffles from row order)."""
        if split not in self.cache:
            parts = list(self.shards[split].iter_torch_batches(batch_size=8192, device=self.device))
            rows = torch.cat([p["row"] for p in parts]).cpu()
            order = torch.argsort(rows, stable=True).to(self.device)
            self.cache[split] = (torch.cat([p["z"] for p in parts])[order], torch.cat([p["c"] for p in parts])[order])
        return self.cache[split]

    def streamed(self, split: str, batch_size: int, epoch: int | None):
        """A split read through Ray Data, shuffled by its local buffer when training."""
        kw = {"local_shuffle_buffer_size": 4 * batch_size, "local_shuffle_seed": self.config.seed + epoch} \
            if epoch is not None else {}
        for b in self.shards[split].iter_torch_batches(batch_size=batch_size, device=self.device, **kw):
            yield b["z"], b["c"]


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (what a worker's training cost in memory)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ----------------------------------------------------------------------------- the driver

def read_split(dataset: PairDataset, val_fraction: float, seed: int, column: str = "c", num_cpus: float = 1.0,
               max_pairs: int | None = None):
    """Ray Data datasets of the train and validation rows, split deterministically by global row
    index (tron.training.is_validation_row), of the first `max_pairs` rows (default: all); the
    condition column (c, c_features or c_caption) is read as "c". One read task per shard, asking
    for `num_cpus`: it reads the shard with pyarrow and keeps its split's rows. The shards are those
    of the verified manifest, so nothing lists files (read_parquet's listing task takes a whole CPU,
    which a node whose workers hold part of its only CPU never has: training would wait forever).
    Each task opens the dataset's location itself: a pickled S3 filesystem would lose its retries."""
    import pyarrow.parquet as pq
    import ray.data

    uri = dataset.uri

    def read(batch: dict, want_val: bool) -> dict:
        rows, zs, cs = [], [], []
        loc = location(uri)
        for path in batch["path"]:
            try:
                table = pq.read_table(str(path), filesystem=loc.fs, columns=["row", "z", column])
            except OSError as exc:
                raise storage_error(loc, str(path), "read", exc) from exc
            row = table.column("row").to_numpy()
            keep = (is_validation_row(row, val_fraction, seed) == want_val) & (row < limit)
            rows.append(row[keep])
            zs.append(table_column(table, "z")[keep])
            cs.append(table_column(table, column)[keep])
        return {"row": np.concatenate(rows), "z": np.concatenate(zs), "c": np.concatenate(cs)}

    limit = min(max_pairs or dataset.num_rows, dataset.num_rows)
    shards = [p for p, s in zip(dataset.shard_paths, dataset.manifest["shards"])
              if s["index"] * dataset.identity.rows_per_shard < limit]
    paths = ray.data.from_items([{"path": p} for p in shards], override_num_blocks=len(shards))
    train, val = (paths.map_batches(read, fn_kwargs={"want_val": want}, batch_size=1, batch_format="numpy", num_cpus=num_cpus)
                  for want in (False, True))
    n_val = int(is_validation_row(np.arange(limit), val_fraction, seed).sum())
    return train, val, limit - n_val, n_val


def captioner_metadata(dataset: PairDataset, column: str) -> dict:
    """A caption translator records the captioner its conditions came from."""
    ident = dataset.identity
    return {"captioner": ident.captioner, "captioner_fingerprint": ident.captioner_fingerprint} if column == CAPTION_COLUMN else {}


def storage(args, name: str):
    path = args.storage_path or str(Path("outputs/ray_results").resolve())
    loc = location(path)
    return loc, (loc.path if loc.is_s3 else path), (loc.fs if loc.is_s3 else None)


def run_id_file(loc, name: str) -> str:
    return loc.join(name, "tron_mlflow_run_id.txt")


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


def run(argv: list[str] | None = None) -> dict:
    """Train (or resume), export, evaluate and register; returns what was made."""
    args = build_parser().parse_args(argv)
    if args.num_workers < 1 or args.cpus_per_worker <= 0 or args.keep_checkpoints < 1 or args.data_cpus <= 0:
        raise TronError("--num-workers and --keep-checkpoints must be >= 1, --cpus-per-worker and --data-cpus > 0")
    if args.max_failures < -1:
        raise TronError("--max-failures must be >= 0, or -1 for no limit")
    import mlflow

    tracking_uri = args.tracking_uri or mlflow.get_tracking_uri()
    why = tracking_unreachable(tracking_uri)
    if why is not None:
        raise TronError(f"the MLflow tracking server {tracking_uri} does not answer ({why}); nothing was started: "
                        "rerun the same command once it answers")
    dataset = open_dataset(args.dataset)
    if args.condition_column not in dataset.condition_columns:
        raise TronError(f"--condition-column {args.condition_column}: {dataset.uri} has {', '.join(dataset.condition_columns)}")
    dataset.check_finite(("z", args.condition_column))
    print(f"[train] {dataset.uri}: {dataset.num_rows} pairs, checksums verified, no NaN or infinite values", flush=True)
    ident = dataset.identity
    model_cfg, train_cfg = hyperparameters(args, dataset)
    if args.max_pairs is not None and args.max_pairs < 2:
        raise TronError("--max-pairs must be >= 2")
    name = args.name or (f"translator-{slug(ident.generator)}-{slug(ident.encoder)}-{dataset.manifest['shards'][0]['sha256'][:8]}"
                         + (f"-{args.condition_column}" if args.condition_column != "c" else "")
                         + (f"-{args.max_pairs}" if args.max_pairs else ""))
    export_dir = Path(args.export or f"outputs/translators/{name}").resolve()
    model_name = args.registered_model or registered_model_name(ident.generator, ident.encoder, args.condition_column)
    loc, storage_path, storage_fs = storage(args, name)
    init_ray(args.address)
    check_room_for_data(args)

    previous_run = read_bytes(loc, run_id_file(loc, name)).decode().strip() \
        if exists(loc, run_id_file(loc, name)) else None
    tags = {"tron.stage": "train_translator", "tron.dataset_uri": dataset.uri,
            "tron.generator": ident.generator, "tron.encoder": ident.encoder,
            "tron.generator_fingerprint": ident.generator_fingerprint,
            "tron.encoder_fingerprint": ident.encoder_fingerprint}
    lost = None  # why the tracking server stopped answering during training
    retries = os.environ.get(MLFLOW_RETRIES)
    try:
        with mlflow_run(args.experiment, run_name=name, tracking_uri=args.tracking_uri, tags=tags,
                        run_id=previous_run) as run:
            run_id = run.info.run_id
            write_bytes_atomic(loc, run_id_file(loc, name), run_id.encode())
            if previous_run is None:
                mlflow.log_params(run_params(args, dataset, model_cfg, train_cfg))
                mlflow.log_dict(dataset.manifest, "dataset_manifest.json")
            else:
                print(f"[train] resuming {name} (MLflow run {run_id})", flush=True)
            t0 = time.perf_counter()
            best_dir = fit(args, dataset, model_cfg, train_cfg, name, storage_path, storage_fs, run_id, export_dir)
            seconds = time.perf_counter() - t0
            lost = tracking_unreachable(tracking_uri)
            if lost is not None:
                # Ending the run cannot reach the server either: one try, not MLflow's minutes of retries.
                os.environ[MLFLOW_RETRIES] = "0"
            else:
                summary, version = publish(args, dataset, export_dir, name, model_name, run_id, seconds)
                print(f"[train] best checkpoint {best_dir}; exported {export_dir}", flush=True)
                print(f"[train] registered {model_name} version {version} with alias '{CANDIDATE}'; "
                      f"quick evaluation: {json.dumps(summary)}", flush=True)
    except mlflow.exceptions.MlflowException:
        if lost is None:
            raise
    finally:
        if retries is None:
            os.environ.pop(MLFLOW_RETRIES, None)
        else:
            os.environ[MLFLOW_RETRIES] = retries
    if lost is not None:
        raise TronError(f"trained {name}: the best checkpoint is exported to {export_dir} and the checkpoints are in "
                        f"{loc.uri}/{name}, but the MLflow tracking server {tracking_uri} does not answer ({lost}), so "
                        "nothing was registered: rerun the same command once it answers; it registers without training again")
    return {"run_id": run_id, "model_name": model_name, "version": version, "export_dir": str(export_dir),
            "summary": summary, "tracking_uri": mlflow.get_tracking_uri()}


def publish(args, dataset: PairDataset, export_dir: Path, name: str, model_name: str, run_id: str,
            seconds: float) -> tuple[dict, str]:
    """The finished training to MLflow: the export as artifacts, the quick evaluation, a registered
    version with the alias candidate. Returns (the evaluation's summary, the version)."""
    import mlflow

    mlflow.log_metric("train_seconds", seconds)
    mlflow.log_artifacts(str(export_dir), "translator")
    summary = quick_evaluation(args, dataset, export_dir, export_dir.parent / f"{name}-samples.png")
    mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    mlflow.log_artifact(str(export_dir.parent / f"{name}-samples.png"), "samples")
    return summary, register(model_name, run_id, dataset.identity, dataset.uri, summary,
                             captioner_metadata(dataset, args.condition_column))


def run_params(args, dataset: PairDataset, model_cfg: TranslatorConfig, train_cfg: TrainConfig) -> dict:
    """The MLflow parameters of a training run (logged once: a resumed run has them)."""
    return {"dataset_uri": dataset.uri, "num_pairs": min(args.max_pairs or dataset.num_rows, dataset.num_rows),
            "num_workers": args.num_workers, "kind": translator_kind(args), "use_gpu": args.use_gpu,
            **{f"model.{k}": v for k, v in asdict(model_cfg).items() if k not in ("latent_mean", "latent_std")},
            "model.standardized_latent": model_cfg.latent_mean is not None,
            **{f"train.{k}": v for k, v in asdict(train_cfg).items()}}


def quick_evaluation(args, dataset: PairDataset, export_dir: Path, grid_path: Path) -> dict:
    """The exported translator's bounded evaluation (pipelines.evaluation), which writes a grid."""
    budget = EvalBudget(conditions=args.eval_conditions, steps=args.eval_steps, seconds=args.eval_seconds)
    summary = evaluate_translator(dataset.identity.generator, dataset.identity.encoder, export_dir, args.eval_samples,
                                  grid_path=grid_path, dataset=dataset, budget=budget,
                                  kind="image" if args.condition_column != "c" else None)
    print(f"[train] quick evaluation: {summary['eval_conditions']} of {summary['eval_conditions_planned']} conditions, "
          f"T={summary['eval_steps']}, {summary['eval_seconds']:.0f} s"
          + (" (stopped by its time budget)" if summary["eval_truncated"] else ""), flush=True)
    return summary


def fit(args, dataset, model_cfg, train_cfg, name, storage_path, storage_fs, run_id, export_dir: Path) -> str:
    """Ray Train TorchTrainer.fit(); copies the best checkpoint's translator to export_dir."""
    import mlflow
    import ray.train
    from ray.train.torch import TorchTrainer

    init_ray(args.address)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False  # one line per epoch, not bars
    train_ds, val_ds, n_train, n_val = read_split(dataset, train_cfg.val_fraction, train_cfg.seed, args.condition_column,
                                                  args.data_cpus, args.max_pairs)
    if n_train == 0 or n_val == 0:
        raise TronError(f"dataset {dataset.uri} has {dataset.num_rows} rows: too few for a train/validation split")
    loop_config = {
        "train": asdict(train_cfg), "model": asdict(model_cfg), "train_rows": n_train,
        "cache_in_memory": not streaming(args, dataset, n_train),
        "mlflow_run_id": run_id, "tracking_uri": mlflow.get_tracking_uri(),
        "metadata": {"generator": dataset.identity.generator, "encoder": dataset.identity.encoder,
                     "generator_fingerprint": dataset.identity.generator_fingerprint,
                     "encoder_fingerprint": dataset.identity.encoder_fingerprint,
                     "condition_space": "main" if args.condition_column == "c" else args.condition_column[len("c_"):],
                     "kind": translator_kind(args), **captioner_metadata(dataset, args.condition_column),
                     "train_config": asdict(train_cfg), "pairs": n_train + n_val,
                     "dataset_uri": dataset.uri, "mlflow_run_id": run_id},
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu,
                                               resources_per_worker={"CPU": args.cpus_per_worker},
                                               placement_strategy=args.placement_strategy),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=storage_fs, logging_config=train_logging_config(),
            failure_config=ray.train.FailureConfig(max_failures=args.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=args.keep_checkpoints,
                                                         checkpoint_score_attribute="val_nll",
                                                         checkpoint_score_order="min")),
        datasets={"train": train_ds, "val": val_ds},
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise TrainingFailed(describe_failure(exc)) from exc
    if result.error is not None:
        raise TrainingFailed(describe_failure(result.error))
    diverged = (getattr(result, "return_value", None) or {}).get(DIVERGED)
    if diverged:
        raise TrainingFailed(f"training failed: {diverged}")
    best = result.get_best_checkpoint(metric="val_nll", mode="min") or result.checkpoint
    if best is None:
        raise TronError(f"training {name} produced no checkpoint")
    with best.as_directory() as d:
        if export_dir.exists():
            shutil.rmtree(export_dir)
        shutil.copytree(Path(d) / "translator", export_dir)
    return best.path


def check_room_for_data(args) -> None:
    """Ray Data's read tasks need CPUs beside the workers': without them training waits forever.
    Checked only when the nodes there are now can hold the workers: a cluster that must grow first
    (an autoscaler adding worker nodes to a 0-CPU head) is left to grow."""
    import ray

    nodes = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    workers = args.num_workers * args.cpus_per_worker
    if sum(nodes) >= workers and (sum(nodes) - workers < args.data_cpus or max(nodes, default=0.0) < args.data_cpus):
        raise TronError(f"no CPU left for Ray Data's read tasks: the cluster's nodes have {nodes} CPUs, the workers take "
                        f"{workers:g} and each read task {args.data_cpus:g}; lower --cpus-per-worker or --data-cpus")


STREAM_MEMORY_SHARE = 0.25  # --stream auto: cache a worker's share only if it fits in this share of its memory


def streaming(args, dataset, train_rows: int) -> bool:
    """Whether the workers stream the shards (each epoch through Ray Data) or cache their share."""
    if args.stream != "auto":
        return args.stream == "yes"
    import ray

    width = dataset.identity.latent_dim + dataset.condition_width(args.condition_column)
    share = 4 * width * train_rows / args.num_workers * 2  # float32 rows, twice (the cache and a batch of copies)
    memory = ray.cluster_resources().get("memory", 0) / max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_worker = memory * max(args.cpus_per_worker, 1e-3) if memory else float("inf")
    stream = share > STREAM_MEMORY_SHARE * per_worker
    print(f"[train] each worker's share is {share / 2**20:,.1f} MiB; {'streaming' if stream else 'caching it in memory'} "
          f"(--stream auto: stream above {STREAM_MEMORY_SHARE:.0%} of {per_worker / 2**20:,.0f} MiB per worker)", flush=True)
    return stream


class TrainingFailed(TronError):
    """Training raised on a worker or in the controller; the message names the root cause."""


def describe_failure(exc: BaseException) -> str:
    """The root cause in one line: the last line of the first failed worker's (or the controller's) traceback."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        rank, err = sorted(failures.items())[0]
        return f"training failed on worker {rank}: {one_line(getattr(err, 'cause', None) or err, last=True)}"
    return f"training failed: {one_line(getattr(exc, 'controller_failure', None) or exc, last=True)}"


def register(model_name: str, run_id: str, ident, dataset_uri: str, summary: dict, extra_tags: dict | None = None) -> str:
    """A new version of the (G, f) pair's registered model, tagged (G's and f's fingerprints, and the
    captioner's for a caption translator: what retrain.py compares), with the alias 'candidate'."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(model_name, description="TR0N translators for one (generator, encoder) pair")
    run = client.get_run(run_id)
    version = client.create_model_version(model_name, source=f"{run.info.artifact_uri}/translator", run_id=run_id,
                                          tags={"generator_fingerprint": ident.generator_fingerprint,
                                                "encoder_fingerprint": ident.encoder_fingerprint,
                                                "generator": ident.generator, "encoder": ident.encoder,
                                                "dataset_uri": dataset_uri, **(extra_tags or {})})
    client.set_registered_model_alias(model_name, CANDIDATE, version.version)
    return version.version


if __name__ == "__main__":
    from pipelines import train_translator

    sys.exit(run_main(train_translator.main, None, "train_translator.py"))
