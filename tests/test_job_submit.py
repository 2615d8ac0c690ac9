"""The user's entrypoint for real: `ray start --head`, then `ray job submit -- python pipelines/build_dataset.py`.

Ray 2.60 enables token authentication for local clusters. The test makes its own token and
gives the cluster and the `ray job submit` client the same RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH,
as a user sharing a cluster's token would.
"""
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from infra import free_port, processes_named
from tron.dataset import open_dataset

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


AUTH_ENV: dict[str, str] = {}
# As with an activated venv: the job's `python` is this environment's.
VENV_PATH = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def ray_cli(*args, timeout=300, check=True, **kw):
    env = {**os.environ, **VENV_PATH, **AUTH_ENV}
    proc = subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"ray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def head_node():
    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths have a length limit
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    AUTH_ENV.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    dash = free_port()
    # Every port explicit and free: nothing collides with another Ray on this machine.
    ports = {flag: str(free_port()) for flag in ("--port", "--ray-client-server-port", "--dashboard-agent-listen-port",
                                                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                                                 "--metrics-export-port", "--node-manager-port", "--object-manager-port")}
    start = subprocess.run([RAY, "start", "--head", *[x for kv in ports.items() for x in kv], "--node-ip-address", "127.0.0.1",
                            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
                            "--num-cpus", "2", "--disable-usage-stats", "--temp-dir", temp_dir],
                           capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, **VENV_PATH, **AUTH_ENV},
                           start_new_session=True)  # its daemons share this new process group
    assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
    address = f"http://127.0.0.1:{dash}"
    try:
        yield address
    finally:
        # Stop only this cluster (`ray stop` would stop every Ray on the machine): its process
        # group, plus anything that names its temp dir.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(start_pgid(temp_dir), sig)
            except (ProcessLookupError, TypeError):
                pass
            for pid in processes_named(temp_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(temp_dir, ignore_errors=True)
        AUTH_ENV.clear()


def start_pgid(temp_dir: str) -> int | None:
    """The process group of the cluster's daemons (found through the GCS server, which names the temp dir)."""
    for pid in processes_named(temp_dir):
        try:
            return os.getpgid(pid)
        except ProcessLookupError:
            continue
    return None


def submit(address, out, *extra, wait=True, num_pairs=3000):
    cmd = ["job", "submit", "--address", address, "--working-dir", str(REPO)]
    if not wait:
        cmd.append("--no-wait")
    cmd += ["--", "python", "pipelines/build_dataset.py", "--generator", "zoo:digits", "--num-pairs", str(num_pairs),
            "--rows-per-shard", "500", "--batch-size", "250", "--max-in-flight", "1", "--out", str(out), "--no-mlflow", *extra]
    deadline = time.time() + 120
    while True:  # right after `ray start` the job agent may not be up yet
        proc = ray_cli(*cmd, check=False)
        if proc.returncode == 0 or "No available agent" not in proc.stderr + proc.stdout or time.time() > deadline:
            break
        time.sleep(2)
    if proc.returncode != 0:
        raise AssertionError(f"ray job submit failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_ray_job_submit_builds_a_dataset(head_node, tmp_path):
    proc = submit(head_node, tmp_path / "ds")
    assert "succeeded" in proc.stdout.lower()
    assert "[build] done" in proc.stdout
    ds = open_dataset(str(tmp_path / "ds"))
    assert ds.num_rows == 3000


@pytest.mark.slow  # ~35 s; the default run covers resuming builds in process (test_build_dataset.py)
def test_stopped_job_resumes_on_resubmission(head_node, tmp_path):
    out = tmp_path / "ds"
    proc = submit(head_node, out, wait=False, num_pairs=20_000)  # 40 shards, one at a time
    job_id = next(line.split("'")[1] for line in proc.stdout.splitlines() if "raysubmit_" in line and "'" in line)
    deadline = time.time() + 180
    while time.time() < deadline and not (out / "shard-00000.sha256").exists():
        time.sleep(0.2)
    ray_cli("job", "stop", "--address", head_node, job_id)
    assert not (out / "manifest.json").exists()
    done_before = sorted(p.name for p in out.glob("*.sha256"))
    assert 1 <= len(done_before) < 40
    proc = submit(head_node, out, num_pairs=20_000)
    kept = int(re.search(r"(\d+) already complete", proc.stdout).group(1))
    assert len(done_before) <= kept < 40  # finished shards were kept, the rest written
    ds = open_dataset(str(out))
    assert ds.num_rows == 20_000 and len(ds.manifest["shards"]) == 40
