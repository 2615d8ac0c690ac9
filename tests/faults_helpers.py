"""Faults injected from the test's side, never from production code: the processes of this test's
own Ray, a watcher that acts once a condition holds, an f that emits NaN. (The MLflow server that can
be killed and brought back is tests/infra.MlflowServer.)"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from infra import processes_named


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
    for pid in processes_named(fragment):
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z" or pid == os.getpid():
            continue
        parent = pid
        while parent > 1 and parent != ancestor:
            parent = parent_of(parent)
        if parent == ancestor:
            pids.append(pid)
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
