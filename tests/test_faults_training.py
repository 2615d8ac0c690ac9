"""Faults during a training, on real components (a local Ray, a real MLflow server process), injected
from the test's side: a Ray Train worker SIGKILLed mid-epoch, the MLflow server down when training
starts and when it ends. Nothing is lost; the recovery times are printed (pytest -s) for
docs/faults.md."""
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_helpers import When, pids_named

from infra import MlflowServer, digits_pairs, wait_for
from pipelines import train_translator
from pipelines.common import run_main
from tron.translator import load_translator

EPOCHS = 4
pytestmark = pytest.mark.slow  # rows of the fault matrix (docs/faults.md) that each train a translator


@pytest.fixture(scope="module")
def dataset(ray_cluster, tmp_path_factory):
    return digits_pairs(tmp_path_factory.mktemp("pairs"))


def train_argv(dataset, tmp: Path, name: str, tracking: str) -> list[str]:
    return ["--dataset", dataset, "--epochs", str(EPOCHS), "--batch-size", "64", "--hidden-dim", "64", "--num-blocks", "1",
            "--export", str(tmp / "export"), "--eval-samples", "2", "--eval-conditions", "2", "--eval-steps", "2",
            "--storage-path", str(tmp / "ray_results"), "--name", name, "--tracking-uri", tracking]


def first_checkpoint(tmp: Path, name: str):
    """True once Ray Train has recorded a checkpoint in its run state (what a restart resumes from)."""
    snapshot = tmp / "ray_results" / name / "checkpoint_manager_snapshot.json"
    return lambda: snapshot.exists() and "checkpoint_" in snapshot.read_text()


def checkpoint_epochs(tmp: Path, name: str) -> dict[str, int]:
    """The epoch each kept Ray Train checkpoint of the run holds, by checkpoint directory."""
    return {p.parent.name: torch.load(p)["epoch"] for p in (tmp / "ray_results" / name).glob("checkpoint_*/train_state.pt")}


def history(client, run_id: str, key: str) -> dict[int, float]:
    """The metric per step; a step logged twice (before and after a restart) keeps its last value."""
    return {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))}


def in_process_val_nll(dataset: str) -> list[float]:
    """The validation NLL per epoch of the same recipe and seed fitted in this process, uninterrupted
    (tron.training is the one routine both run)."""
    from tron.dataset import open_dataset, table_column
    from tron.training import create_translator, fit_translator

    ds = open_dataset(dataset)
    args = train_translator.build_parser().parse_args(train_argv(dataset, Path("."), "x", "sqlite://"))
    model_cfg, train_cfg = train_translator.hyperparameters(args, ds)
    tables = [ds.read_shard(i) for i in range(len(ds.shard_paths))]
    rows = np.concatenate([t.column("row").to_numpy() for t in tables])
    z, c = (np.concatenate([table_column(t, col) for t in tables]) for col in ("z", "c"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the 1-CPU Ray worker
    try:
        return [r["val_loss"] for r in fit_translator(create_translator(model_cfg, train_cfg.seed), z, c, train_cfg, rows=rows)]
    finally:
        torch.set_num_threads(threads)


def test_a_worker_killed_mid_epoch_restarts_from_the_checkpoint_and_finishes_the_same_training(dataset, tmp_path, capsys):
    """A Ray Train worker SIGKILLed (as a preempted node's would be) after its first checkpoint: the
    run restarts the worker group from that checkpoint by itself (--max-failures, default 3) and
    ends with the training it would have made: every epoch, the uninterrupted validation NLL."""
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not pids_named("ray::RayTrainWorker"), "a Ray Train worker of another test is still alive"

    def kill_the_worker():
        (pid,) = wait_for(lambda: pids_named("ray::RayTrainWorker"), 10, "the Ray Train worker's process")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: [p for p in pids_named("ray::RayTrainWorker") if p != pid], 120, "a new worker")
        return pid, killed, time.monotonic() - killed

    killer = When(first_checkpoint(tmp_path, "killed"), kill_the_worker)
    killer.start()
    rc = run_main(train_translator.main, train_argv(dataset, tmp_path, "killed", tracking), "train_translator.py")
    finished = time.monotonic()
    killer.stop.set()
    killer.join()
    out = capsys.readouterr()
    assert killer.error is None and killer.result is not None, "the worker was never killed"
    assert rc == 0, out.err
    _, killed_at, new_worker_s = killer.result

    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    assert run.info.status == "FINISHED"
    started = client.get_metric_history(run.info.run_id, "started_at_epoch")
    restarts = [m for m in started if m.value >= 1]
    assert restarts, "the new worker group started from scratch, not from the checkpoint"
    val_nll = history(client, run.info.run_id, "val_nll")
    assert sorted(val_nll) == list(range(1, EPOCHS + 1))  # the same epochs
    # The same training as an uninterrupted one: the resumed epochs continue exactly.
    assert [val_nll[e] for e in range(1, EPOCHS + 1)] == pytest.approx(in_process_val_nll(dataset), rel=1e-4, abs=1e-5)
    exported = load_translator(tmp_path / "export")
    assert exported.metadata["train_config"]["epochs"] == EPOCHS
    version = mlflow.MlflowClient(tracking).get_model_version_by_alias("tron-translator.zoo-digits.zoo-digits", "candidate")
    assert version.run_id == run.info.run_id
    first_after = min(m.timestamp for m in restarts) / 1000  # wall clock of the restarted group's first epoch
    print(f"\n[faults] worker SIGKILL: a new worker after {new_worker_s:.1f} s; its first epoch reported "
          f"{first_after - (time.time() - (time.monotonic() - killed_at)):.1f} s after the kill; "
          f"training finished {finished - killed_at:.1f} s after the kill")


def test_no_failures_allowed_ends_the_run_with_one_line(dataset, tmp_path, capsys):
    """--max-failures 0: the same kill ends the run, in one line, and a rerun resumes."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def kill_the_worker():
        (pid,) = wait_for(lambda: pids_named("ray::RayTrainWorker"), 10, "the Ray Train worker's process")
        os.kill(pid, signal.SIGKILL)

    killer = When(first_checkpoint(tmp_path, "fragile"), kill_the_worker)
    killer.start()
    argv = train_argv(dataset, tmp_path, "fragile", tracking)
    rc = run_main(train_translator.main, [*argv, "--max-failures", "0"], "train_translator.py")
    killer.join()
    err = capsys.readouterr().err.strip()
    assert killer.error is None and killer.at is not None
    assert rc == 2 and "training failed" in err, err
    assert len([line for line in err.splitlines() if line.startswith("train_translator.py: error:")]) == 1
    assert "Traceback" not in err
    assert run_main(train_translator.main, argv, "train_translator.py") == 0


def test_mlflow_down_at_the_start_and_at_the_end_loses_no_training(dataset, tmp_path, capsys):
    """The tracking server down when training starts: refused at once in one line, nothing started.
    Down when it ends (killed during training): every epoch still trains, the best checkpoint is
    exported and the checkpoints kept; one line says to rerun the same command, which registers the
    export once the server answers, without training again."""
    import mlflow

    server = MlflowServer(tmp_path)
    argv = train_argv(dataset, tmp_path, "tracked", server.uri)

    t0 = time.monotonic()
    rc = run_main(train_translator.main, argv, "train_translator.py")
    refused_s = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"the MLflow tracking server {server.uri} does not answer" in err and "rerun the same command" in err
    assert not (tmp_path / "ray_results").exists()  # nothing was started

    server.start()
    try:
        killer = When(first_checkpoint(tmp_path, "tracked"), server.kill)
        killer.start()
        rc = run_main(train_translator.main, argv, "train_translator.py")
        killer.join()
        out = capsys.readouterr()
        err = out.err.strip()
        assert killer.at is not None and killer.error is None
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "does not answer" in err and "nothing was registered: rerun the same command" in err
        checkpoints = checkpoint_epochs(tmp_path, "tracked")
        assert max(checkpoints.values()) == EPOCHS  # the training went on to its end
        exported = load_translator(tmp_path / "export")  # the export is on disk
        assert exported.metadata["train_config"]["epochs"] == EPOCHS

        server.start()
        t0 = time.monotonic()
        rc = run_main(train_translator.main, argv, "train_translator.py")
        register_s = time.monotonic() - t0
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert checkpoint_epochs(tmp_path, "tracked") == checkpoints  # registered without training again
        client = mlflow.MlflowClient(server.uri)
        version = client.get_model_version_by_alias("tron-translator.zoo-digits.zoo-digits", "candidate")
        (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
        assert version.run_id == run.info.run_id and run.info.status == "FINISHED"
        logged = sorted(history(client, run.info.run_id, "val_nll"))
        assert logged[0] == 1 and logged[-1] < EPOCHS  # logged until the server went down, skipped after
    finally:
        server.kill()
        mlflow.set_tracking_uri(None)
    print(f"\n[faults] MLflow down at start: refused in {refused_s:.1f} s; down at the end: registered by a rerun "
          f"in {register_s:.1f} s (no training)")
