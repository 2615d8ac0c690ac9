"""Faults injected from the test's side, never from production code: an MLflow server process that
can be killed and brought back on the same port, and a watcher that acts once a condition holds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from infra import free_port


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """predicate()'s first true value within `timeout` seconds; fails naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class MlflowServer:
    """A real `mlflow server` (SQLite backend, local artifacts) on a fixed loopback port: `kill()`
    takes it down at once (its whole process group, as a crashed host would), `start()` brings it
    back on the same port with the same store."""

    def __init__(self, root: Path) -> None:
        self.root, self.port, self.proc = Path(root), free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MlflowServer:
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--artifacts-destination", str(self.root / "artifacts")]
        log = open(self.root / "mlflow-server.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self.answers, timeout, f"the MLflow server on port {self.port}", interval=0.3)
        return self

    def answers(self) -> bool:
        assert self.proc is None or self.proc.poll() is None, (self.root / "mlflow-server.log").read_text()[-2000:]
        try:
            urllib.request.urlopen(f"{self.uri}/health", timeout=2).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def parent_of(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def pids_named(fragment: str, ancestor: int | None = None) -> list[int]:
    """Live processes whose command line contains `fragment` (Ray titles an actor's process
    ray::CLASS) and that descend from `ancestor` (default: this process, whose ray.init started the
    raylet that forks the workers; another Ray on the same machine is not ours to kill)."""
    ancestor = os.getpid() if ancestor is None else ancestor
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if fragment not in cmdline or state == "Z" or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            while pid > 1 and pid != ancestor:
                pid = parent_of(pid)
            if pid == ancestor:
                pids.append(int(entry.name))
    return pids


class When(threading.Thread):
    """In the background: once `condition()` holds, run `action()` once and note the time."""

    def __init__(self, condition: Callable[[], bool], action: Callable[[], object], timeout: float = 300) -> None:
        super().__init__(daemon=True)
        self.condition, self.action, self.timeout = condition, action, timeout
        self.result, self.at, self.error = None, None, None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                if self.condition():
                    self.at = time.monotonic()
                    self.result = self.action()
                    return
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc


def nan_encoder():
    """A plugin f (`faults_helpers:nan_encoder`): the digits classifier, broken so that every 7th
    row of its conditions is NaN."""
    from tron.components import load_encoder_spec

    f = load_encoder_spec("zoo:digits")
    encode = f.encode

    def broken(x, space="main"):
        c = encode(x, space).clone()
        c[::7] = float("nan")
        return c

    f.encode = broken
    return f
