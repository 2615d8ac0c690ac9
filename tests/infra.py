"""Real components for tests, on loopback only: S3 (moto's server mode), Ray, MLflow."""
from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud metadata endpoint for credentials
}


@contextmanager
def moto_s3():
    """An S3 endpoint on 127.0.0.1; sets the standard AWS_* variables while it runs."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    old = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def make_bucket(name: str) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)


def processes_named(fragment: str) -> list[int]:
    """PIDs whose command line contains `fragment` (Ray renames task workers to ray::TASK)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """predicate()'s first true value within `timeout` seconds; fails naming `what` otherwise."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class MlflowServer:
    """A real `mlflow server` process (SQLite backend) on a fixed 127.0.0.1 port, proxying artifacts
    to `artifacts_destination` (a local folder by default, or s3://...). `kill()` takes it down at
    once (its whole process group, as a crashed host would); `start()` brings it back on the same
    port with the same store."""

    def __init__(self, root: Path, artifacts_destination: str | None = None, env: dict | None = None) -> None:
        self.root, self.port, self.proc = Path(root), free_port(), None
        self.artifacts, self.env = artifacts_destination or str(self.root / "artifacts"), env or {}
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MlflowServer:
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", "--artifacts-destination", self.artifacts]
        with open(self.root / "mlflow-server.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **self.env})
        wait_for(self.answers, timeout, f"the MLflow server on port {self.port}", interval=0.3)
        return self

    def answers(self) -> bool:
        import urllib.request

        assert self.proc is None or self.proc.poll() is None, (self.root / "mlflow-server.log").read_text()[-2000:]
        try:
            urllib.request.urlopen(f"{self.uri}/health", timeout=2).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@contextmanager
def mlflow_server(tmp_dir: Path, artifacts_destination: str | None = None, env: dict | None = None):
    """An MlflowServer for the block; yields its URI."""
    server = MlflowServer(tmp_dir, artifacts_destination, env).start()
    try:
        yield server.uri
    finally:
        server.kill()


def retrain_workspace(tmp_path_factory, zoo: str):
    """For a module fixture (`yield from`): a copy of zoo:NAME and a SQLite MLflow store in a
    fresh folder, as (root, world, tracking URI); the process-wide tracking URI is reset after."""
    import shutil

    import mlflow

    from tron.world_config import locate_world

    root = tmp_path_factory.mktemp(f"retrain_{zoo}")
    world = root / zoo
    shutil.copytree(locate_world(f"zoo:{zoo}"), world)
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    yield root, world, tracking
    mlflow.set_tracking_uri(None)


def retrain_argv(setup, num_pairs: int, train_args: str, *extra, gate: str = "0.0") -> list[str]:
    """pipelines/retrain.py arguments for the single pair of a retrain_workspace."""
    root, world, tracking = setup
    return ["--generator", str(world), "--num-pairs", str(num_pairs), "--train-args", train_args,
            "--min-judged-accuracy", gate, "--energy-margin", "10", "--data-root", str(root / "data"),
            "--state-dir", str(root / "state"), "--tracking-uri", tracking, *extra]


def champion(setup):
    """The registered `champion` version of a retrain_workspace's pair."""
    import mlflow

    from pipelines.train_translator import registered_model_name

    name = registered_model_name(str(setup[1]), str(setup[1]))
    return mlflow.MlflowClient(setup[2]).get_model_version_by_alias(name, "champion")


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def digits_pairs(root: Path, num_pairs: int = 3000, rows_per_shard: int = 1000) -> str:
    """A digits pair build under `root` (no MLflow run), for tests that train on it."""
    from pipelines import build_dataset
    from pipelines.common import run_main

    out = Path(root) / "digits"
    argv = ["--generator", "zoo:digits", "--num-pairs", str(num_pairs), "--rows-per-shard", str(rows_per_shard),
            "--out", str(out), "--no-mlflow"]
    assert run_main(build_dataset.main, argv, "build") == 0
    return str(out)
