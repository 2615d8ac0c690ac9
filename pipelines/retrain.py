"""Scheduled retraining: rebuild, retrain, evaluate and promote translators whose G or f changed.

    ray job submit --working-dir . -- python pipelines/retrain.py --config retrain.json
    python pipelines/retrain.py --generator zoo:digits --data-root data --state-dir state

For each configured (G, f) pair the fingerprints of the G and f configured *now* (and of the
captioner, for a pair that trains a caption translator) are compared with those recorded on the
registered model's `champion`. Equal: "up to date", nothing runs.
Different (an encoder was swapped), no champion yet, or --force: the steps

    build dataset -> train -> evaluate -> promote

run in order. Each step records its output in a state file, so a workflow killed at any point
resumes from the last finished step when run again; a lock per pair keeps two concurrent runs
from both training. Promotion to `champion` happens only if the candidate passes the gate.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tron.arguments import Parser, duration
from tron.components import component_fingerprint
from tron.dataset import open_dataset
from tron.errors import TronError
from tron.files import atomic_write

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines import build_dataset, train_translator  # noqa: E402
from pipelines.common import run_main  # noqa: E402
from pipelines.evaluation import evaluate_translator, fixed_conditions, world_for  # noqa: E402
from pipelines.logs import quiet_process  # noqa: E402

CHAMPION = "champion"
ACCURACY_TOLERANCE = 1e-6  # see Gate.verdict


@dataclass
class Gate:
    """The promotion gate: what a candidate's quick evaluation must show to become the champion."""

    min_judged_accuracy: float = 0.9  # zoo worlds with a judge (digits)
    energy_margin: float = 0.05  # candidate's mean final energy may exceed the champion's by at most this
    max_final_energy: float | None = None  # optional absolute bound on the mean final energy
    # optional floor on the judged recall relative to G's own samples (tron.diversity); reported either way
    min_recall_vs_g: float | None = None

    def verdict(self, candidate: dict, champion: dict | None) -> tuple[bool, list[str]]:
        """Every configured threshold must hold; returns (passed, one reason per check)."""
        ok, reasons = True, []
        if "judged_accuracy" in candidate:
            # A fraction of judged samples, averaged in float32 by the judges: exactly 90 % arrives as
            # 0.89999998, which must pass a 0.9 gate. Far below one sample in a million.
            passed = candidate["judged_accuracy"] >= self.min_judged_accuracy - ACCURACY_TOLERANCE
            ok &= passed
            reasons.append(f"judged accuracy {candidate['judged_accuracy']:.4g} {'>=' if passed else '<'} {self.min_judged_accuracy}")
        energy = candidate["energy_mean_final"]
        if champion is not None:
            limit = champion["energy_mean_final"] + self.energy_margin
            passed = energy <= limit
            ok &= passed
            reasons.append(f"mean final energy {energy:.4f} {'<=' if passed else '>'} champion's "
                           f"{champion['energy_mean_final']:.4f} + {self.energy_margin}")
        if self.max_final_energy is not None:
            passed = energy <= self.max_final_energy
            ok &= passed
            reasons.append(f"mean final energy {energy:.4f} {'<=' if passed else '>'} {self.max_final_energy}")
        if not reasons:
            reasons.append(f"mean final energy {energy:.4f} (no threshold configured)")
        recall = candidate.get("recall_vs_g", float("nan"))
        if self.min_recall_vs_g is not None:  # NaN (too few samples per condition to measure) fails it
            passed = recall >= self.min_recall_vs_g
            ok &= passed
            reasons.append(f"recall / G's own {recall:.3f} {'>=' if passed else '<'} {self.min_recall_vs_g}")
        return ok, reasons


@dataclass
class PairConfig:
    generator: str
    encoder: str | None = None
    num_pairs: int = 50_000
    rows_per_shard: int = 10_000
    seed: int = 0
    prior: str = "normal"
    train_args: list[str] = field(default_factory=list)  # extra flags for train_translator.py
    captioner: str | None = None  # build_dataset.py --captioner: the pairs carry c_caption (train with it by
    #                               "--condition-column c_caption" in train_args: a text translator)
    gate: Gate = field(default_factory=Gate)
    registered_model: str | None = None

    def __post_init__(self) -> None:
        self.encoder = self.encoder or self.generator
        if isinstance(self.gate, dict):
            self.gate = Gate(**self.gate)


def build_parser() -> Parser:
    p = Parser(prog="retrain.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help='JSON: {"pairs": [{"generator": ..., "encoder": ..., ...}], "data_root": ..., "state_dir": ...}')
    p.add_argument("--generator", help="a single pair's generator (instead of --config)")
    p.add_argument("--encoder", help="a single pair's encoder (default: --generator)")
    p.add_argument("--num-pairs", type=int, default=None)
    p.add_argument("--train-args", default="", help="extra train_translator.py flags, as one string")
    p.add_argument("--min-judged-accuracy", type=float, default=None)
    p.add_argument("--energy-margin", type=float, default=None)
    p.add_argument("--data-root", default=None, help="where datasets go (local or s3://); default data/")
    p.add_argument("--state-dir", default=None, help="where step records and locks go; default state/")
    p.add_argument("--force", action="store_true", help="retrain even when the champion is up to date")
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--every", type=duration, default=None,
                   help="keep watching: run again every DURATION (e.g. 90s, 30m, 6h, 1d)")
    p.add_argument("--times", type=int, default=None, help="with --every: stop after this many runs")
    return p


def load_pairs(args) -> tuple[list[PairConfig], str, Path]:
    doc: dict = {}
    if args.config:
        try:
            doc = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TronError(f"cannot read --config {args.config}: {exc}") from exc
    pairs = [PairConfig(**p) for p in doc.get("pairs", [])]
    if args.generator:
        gate = Gate(**{k: v for k, v in (("min_judged_accuracy", args.min_judged_accuracy),
                                          ("energy_margin", args.energy_margin)) if v is not None})
        extra = {"num_pairs": args.num_pairs} if args.num_pairs else {}
        pairs.append(PairConfig(args.generator, args.encoder, train_args=args.train_args.split(), gate=gate, **extra))
    if not pairs:
        raise TronError("nothing to do: give --config with pairs, or --generator")
    data_root = args.data_root or doc.get("data_root") or str(Path("data").resolve())
    state_dir = Path(args.state_dir or doc.get("state_dir") or "state").resolve()
    return pairs, data_root, state_dir


# ----------------------------------------------------------------------------- durable state

class StepLog:
    """One JSON file per (pair, fingerprints, config): each finished step's output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def done(self, step: str) -> dict | None:
        return self.data.get(step)

    def record(self, step: str, output: dict) -> None:
        self.data[step] = {**output, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


class LockHeld(TronError):
    pass


@contextmanager
def pair_lock(path: Path) -> Iterator[None]:
    """An exclusive lock file (O_EXCL); a lock left by a dead process on this host is taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if holder.get("host") == me["host"] and holder.get("pid") and not _alive(int(holder["pid"])):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise LockHeld(f"another retrain holds {path} (pid {holder.get('pid')} on {holder.get('host')}); "
                           "not starting a second one") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- the workflow

def champion_version(client, model_name: str):
    import mlflow

    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def retrain_pair(pair: PairConfig, data_root: str, state_dir: Path, args) -> dict:
    """Compare the champion's fingerprints with G's and f's now; when they differ (or --force), run
    the workflow under the pair's lock."""
    import mlflow

    fps = pair_fingerprints(pair)
    model_name = pair.registered_model or train_translator.registered_model_name(pair.generator, pair.encoder,
                                                                                 condition_column(pair))
    client = mlflow.MlflowClient()
    champion = champion_version(client, model_name)
    current = champion is not None and not changed_parts(champion, fps)
    if current and not args.force:
        print(f"[retrain] {model_name}: up to date (champion v{champion.version} matches G {fps['generator']} "
              f"and f {fps['encoder']})", flush=True)
        return {"model": model_name, "status": "up to date", "champion": champion.version}
    why = "forced" if current else ("no champion yet" if champion is None else changed_parts(champion, fps))
    key = hashlib.sha256(json.dumps({"pair": asdict(pair), "fingerprints": fps}, sort_keys=True).encode()).hexdigest()[:12]
    print(f"[retrain] {model_name}: retraining ({why}); workflow {key}", flush=True)
    with pair_lock(state_dir / f"{model_name}.lock"):
        log, attempt = step_log(state_dir, model_name, key, args.force)
        if log.done("promote"):
            done = log.done("promote")
            print(f"[retrain] {model_name}: workflow {key} already finished ({done['status']} version {done['version']}: "
                  f"{'; '.join(done['reasons'])}); --force to try again", flush=True)
            return {"model": model_name, **done}
        workflow = Workflow(pair, args, client, model_name, f"{model_name}-{key}-{attempt}", champion if current else None,
                            log, state_dir)
        workflow.build(f"{data_root.rstrip('/')}/{model_name}/{key}")
        workflow.train()
        workflow.evaluate()
        return {"model": model_name, **workflow.promote(champion)}


def step_log(state_dir: Path, model_name: str, key: str, force: bool) -> tuple[StepLog, int]:
    """The state file of the workflow's latest attempt (a finished one: a new attempt with --force)."""
    attempt = 1
    while (state_dir / f"{model_name}-{key}-{attempt + 1}.json").exists():
        attempt += 1
    log = StepLog(state_dir / f"{model_name}-{key}-{attempt}.json")
    if log.done("promote") and force:
        attempt += 1
        log = StepLog(state_dir / f"{model_name}-{key}-{attempt}.json")
    return log, attempt


@dataclass
class Workflow:
    """The steps of one attempt, build -> train -> evaluate -> promote; each skips itself when the
    state file records it done, and records its output when it finishes."""

    pair: PairConfig
    args: Any
    client: Any  # mlflow.MlflowClient
    model_name: str
    run_name: str  # the attempt's name: its training run and exported translator
    champion: Any  # the champion's model version when it fits G and f now (scored as the baseline), else None
    log: StepLog
    state_dir: Path

    def _address(self) -> list[str]:
        return ["--address", self.args.address] if self.args.address else []

    def build(self, dataset_uri: str) -> None:
        if self.log.done("build"):
            print(f"[retrain] build: done earlier ({self.log.done('build')['dataset_uri']})", flush=True)
            return
        p = self.pair
        manifest = build_dataset.run(["--generator", p.generator, "--encoder", p.encoder, "--prior", p.prior,
                                      "--num-pairs", str(p.num_pairs), "--rows-per-shard", str(p.rows_per_shard),
                                      "--seed", str(p.seed), "--out", dataset_uri,
                                      *(["--captioner", p.captioner] if p.captioner else []), *self._address()])
        self.log.record("build", {"dataset_uri": dataset_uri, "fingerprints": manifest["fingerprints"]})

    def train(self) -> None:
        if self.log.done("train"):
            print(f"[retrain] train: done earlier (version {self.log.done('train')['version']})", flush=True)
            return
        out = train_translator.run(["--dataset", self.log.done("build")["dataset_uri"], "--name", self.run_name,
                                    "--export", str(self.state_dir / "translators" / self.run_name),
                                    "--registered-model", self.model_name, "--num-workers", str(self.args.num_workers),
                                    "--cpus-per-worker", str(self.args.cpus_per_worker), *self.pair.train_args,
                                    *self._address()])
        self.log.record("train", {k: out[k] for k in ("run_id", "version", "export_dir")})

    def evaluate(self) -> None:
        """Score the candidate (and the champion, when it fits G and f now) on one fixed condition set."""
        import mlflow

        if self.log.done("evaluate"):
            print("[retrain] evaluate: done earlier", flush=True)
            return
        p, train = self.pair, self.log.done("train")
        dataset = open_dataset(self.log.done("build")["dataset_uri"], verify=False)
        conditions = fixed_conditions(world_for(p.generator, p.encoder, train["export_dir"]), dataset)
        candidate = evaluate_translator(p.generator, p.encoder, train["export_dir"], seed=0, conditions=conditions)
        baseline = None
        if self.champion is not None:  # a stale champion cannot be scored with the new f
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{self.model_name}/{self.champion.version}")
            baseline = evaluate_translator(p.generator, p.encoder, local, seed=0, conditions=conditions)
        passed, reasons = p.gate.verdict(candidate, baseline)
        self.log.record("evaluate", {"candidate": candidate, "champion": baseline, "passed": passed, "reasons": reasons})
        self.client.set_model_version_tag(self.model_name, train["version"], "gate", "passed" if passed else "failed")
        for k, v in candidate.items():
            self.client.set_model_version_tag(self.model_name, train["version"], f"eval.{k}", f"{v:.6g}")

    def promote(self, champion) -> dict:
        """Move the champion alias to the candidate if it passed the gate; `champion`: the version it names now."""
        version, evaluation = self.log.done("train")["version"], self.log.done("evaluate")
        reasons = "; ".join(evaluation["reasons"])
        if evaluation["passed"]:
            self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
            result = {"status": "promoted", "version": version, "reasons": evaluation["reasons"]}
            print(f"[retrain] {self.model_name}: promoted version {version} to '{CHAMPION}' ({reasons})", flush=True)
        else:
            kept = f"version {champion.version} stays champion" if champion is not None else "no champion"
            result = {"status": "rejected", "version": version, "reasons": evaluation["reasons"]}
            print(f"[retrain] {self.model_name}: candidate version {version} failed the gate ({reasons}); {kept}", flush=True)
        self.log.record("promote", result)
        return result


def condition_column(pair: PairConfig) -> str:
    """The column the pair's translator trains on (its train_args' --condition-column; default c)."""
    args = pair.train_args
    for i, arg in enumerate(args):
        if arg == "--condition-column" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--condition-column="):
            return arg.split("=", 1)[1]
    return "c"


def pair_fingerprints(pair: PairConfig) -> dict[str, str]:
    """The fingerprints a champion must match to be up to date: G's and f's, and the captioner's
    when the translator trains on captions (its conditions are the captioner's text, embedded by f)."""
    fps = {"generator": component_fingerprint(pair.generator, "generator"),
           "encoder": component_fingerprint(pair.encoder, "encoder")}
    if condition_column(pair) == train_translator.CAPTION_COLUMN:
        if not pair.captioner:
            raise TronError(f"pair {pair.generator}: train_args train on {train_translator.CAPTION_COLUMN} but the pair "
                            "names no captioner")
        fps["captioner"] = component_fingerprint(pair.captioner, "captioner")
    return fps


def changed_parts(champion, fps: dict) -> str:
    """What differs between the champion's recorded fingerprints and those now ("" when none)."""
    parts = [f"{p} changed ({champion.tags.get(p + '_fingerprint')} -> {fps[p]})" for p in fps
             if champion.tags.get(p + "_fingerprint") != fps[p]]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_process()  # before MLflow is imported: the champion is looked up before Ray starts
    if args.every is None:
        return run_once(args)
    count = 0
    while True:  # a single-machine scheduler; in production a CronJob submits single runs
        started = time.monotonic()
        rc = run_once(args)
        count += 1
        if args.times is not None and count >= args.times:
            return rc
        wait = max(0.0, args.every - (time.monotonic() - started))
        print(f"[retrain] next check in {wait:.0f} s", flush=True)
        time.sleep(wait)


def watch(argv: list[str] | None = None) -> int:
    """`tron watch --every DURATION [retrain options]`: the retrain workflow on a schedule."""
    argv = list(argv or [])
    if not any(a == "--every" or a.startswith("--every=") for a in argv) and not {"-h", "--help"} & set(argv):
        print("tron watch: error: give --every DURATION, e.g. --every 6h (see tron watch --help)", file=sys.stderr)
        return 2
    return main(argv)


def run_once(args) -> int:
    pairs, data_root, state_dir = load_pairs(args)
    if args.tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(args.tracking_uri)
    results = []
    for pair in pairs:
        try:
            results.append(retrain_pair(pair, data_root, state_dir, args))
        except LockHeld as exc:
            print(f"[retrain] skipped: {exc}", flush=True)
            results.append({"status": "locked"})
    print(json.dumps({"results": results}), flush=True)
    return 0 if all(r["status"] in ("up to date", "promoted", "locked") for r in results) else 3


if __name__ == "__main__":
    from pipelines import retrain

    sys.exit(run_main(retrain.main, None, "retrain.py"))
