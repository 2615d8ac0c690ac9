"""Shared plumbing for the pipeline entrypoints: errors in one line, Ray start-up, MLflow runs, S3 checks
(their argument parser is tron.arguments.Parser, the tron command's)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tron.errors import TronError

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_main(main_fn, argv: list[str] | None, prog: str) -> int:
    """Call main_fn(argv) turning library errors into one line on stderr and exit code 2."""
    try:
        return main_fn(argv)
    except TronError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


# The raylet settings of a local cluster that a command starts for itself (and that ends with it).
# Ray retires a task worker idle for 1 s once more workers live than the node has CPUs; a retired
# worker takes Ray's graceful exit, the path on which one aborted inside Ray's core worker in the middle
# of `make demo` (docs/faults.md, "The idle shard worker's SIGABRT", has the evidence). With retiring off
# no worker exits while the command runs; the workers go with the cluster at its end.
LOCAL_SYSTEM_CONFIG = {"kill_idle_workers_interval_ms": 0}


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to RAY_ADDRESS / --address when given (e.g. under `ray job submit`), or to the cluster
    that `ray start --head` runs on this machine (the way for several local pipelines to share one);
    else start a local Ray of this process's own."""
    from pipelines.logs import ray_init_options

    quiet = ray_init_options()  # before importing ray: some settings are read at import
    import ray

    if ray.is_initialized():
        return ray
    address = cluster_address(address)
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=True, **quiet)
        return ray
    # A local cluster binds to loopback only. With its dashboard (on 127.0.0.1), whose State API
    # Ray Train's placement-group cleaner needs: without it the cleaner cannot tell whether the
    # training controller lives, warns every second and dies with a traceback at shutdown. The cleaner
    # finds "the" local cluster by looking for GCS processes, and with a second local Ray on the
    # machine (serving while training, two builds) it cannot choose and dies with a traceback too:
    # so the dashboard gets a port of its own and every worker of this job is told where it is.
    # Idle workers are not retired while the command runs (LOCAL_SYSTEM_CONFIG says why).
    port = free_port()
    runtime_env = dict(quiet.pop("runtime_env", {}))
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
             ignore_reinit_error=True, _node_ip_address="127.0.0.1", runtime_env=runtime_env,
             _system_config=LOCAL_SYSTEM_CONFIG, **quiet)
    return ray


def cluster_address(address: str | None = None) -> str | None:
    """The running cluster init_ray connects to: `address`, else RAY_ADDRESS, else the one `ray start`
    runs on this machine (as ray.init() finds it); None: init_ray starts a local Ray of its own."""
    from ray._private.services import canonicalize_bootstrap_address

    return address or os.environ.get("RAY_ADDRESS") or canonicalize_bootstrap_address(None)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    from tron import __version__

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def check_s3_bucket(uri: str) -> None:
    """Fail early with a clear message when an s3:// destination's bucket is unreachable."""
    if not uri.startswith("s3://"):
        return
    import boto3
    import botocore.exceptions

    bucket = uri[len("s3://"):].split("/", 1)[0]
    client = boto3.client("s3")  # honours AWS_* variables, including AWS_ENDPOINT_URL
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise TronError(f"S3 bucket {bucket!r} is not usable ({code or exc}); create it or check AWS credentials") from exc
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise TronError(f"cannot reach S3 for bucket {bucket!r}: {exc}") from exc


@contextmanager
def mlflow_run(experiment: str, run_name: str | None = None, tracking_uri: str | None = None,
               tags: dict[str, str] | None = None, enabled: bool = True, run_id: str | None = None) -> Iterator[Any]:
    """An MLflow run that always ends: FINISHED on success, FAILED with the error logged otherwise.

    With no tracking URI given or in MLFLOW_TRACKING_URI, MLflow's local SQLite store is used.
    `run_id` reopens an existing run (a resumed job continues its run)."""
    if not enabled:
        yield None
        return
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=run_name, tags=tags)
    try:
        yield run
    except BaseException as exc:
        try:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.end_run(status="FAILED")
        except Exception:  # a tracking server that is down must not hide the error that ended the run
            pass
        raise
    else:
        mlflow.end_run(status="FINISHED")
