"""pipelines/train_translator.py: Ray Train on the Parquet shards, checkpoints, MLflow registry."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infra import S3_ENV, digits_pairs, make_bucket, mlflow_server
from pipelines import train_translator
from pipelines.common import run_main
from tron.errors import CheckpointError
from tron.translator import load_translator

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(ray_cluster, tmp_path_factory):
    return digits_pairs(tmp_path_factory.mktemp("pairs"))


def train(dataset, tmp, *extra):
    argv = ["--dataset", dataset, "--epochs", "3", "--batch-size", "128", "--hidden-dim", "64", "--num-blocks", "1",
            "--export", str(tmp / "export"), "--eval-samples", "2", "--eval-steps", "2", *extra]
    if "--storage-path" not in extra:
        argv += ["--storage-path", str(tmp / "ray_results")]
    return run_main(train_translator.main, argv, "train_translator.py")


@pytest.fixture(scope="module")
def server_run(dataset, s3_endpoint, tmp_path_factory):
    """One training tracked by a real MLflow server whose artifacts live in S3, with Ray Train
    checkpoints in S3 as well."""
    import mlflow

    tmp = tmp_path_factory.mktemp("server_run")
    make_bucket("tron-mlflow")
    make_bucket("tron-checkpoints")
    env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "AWS_ENDPOINT_URL": s3_endpoint}
    with mlflow_server(tmp, "s3://tron-mlflow/artifacts", env) as uri:
        mlflow.set_tracking_uri(uri)
        try:
            rc = train(dataset, tmp, "--tracking-uri", uri, "--storage-path", "s3://tron-checkpoints/runs",
                       "--name", "server-run")
            client = mlflow.MlflowClient(uri)
            yield rc, client, tmp, uri
        finally:
            mlflow.set_tracking_uri(None)


def test_training_lowers_validation_nll_and_registers_a_candidate(server_run, dataset):
    rc, client, tmp, _ = server_run
    assert rc == 0
    exp = client.get_experiment_by_name("tron-translators")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    history = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_nll"), key=lambda m: m.step)]
    assert len(history) == 3 and history[-1] < history[0]
    assert run.data.params["dataset_uri"] == dataset
    assert "judged_accuracy_T0" in run.data.metrics and "energy_mean_T0" in run.data.metrics

    manifest = json.loads((Path(dataset) / "manifest.json").read_text())
    name = "tron-translator.zoo-digits.zoo-digits"
    version = client.get_model_version_by_alias(name, "candidate")
    assert version.run_id == run.info.run_id
    assert version.tags["generator_fingerprint"] == manifest["fingerprints"]["generator"]
    assert version.tags["encoder_fingerprint"] == manifest["fingerprints"]["encoder"]
    assert version.tags["dataset_uri"] == dataset

    translator = load_translator(tmp / "export")  # the exported best checkpoint loads in the sampler's format
    assert translator.metadata["encoder_fingerprint"] == manifest["fingerprints"]["encoder"]
    assert translator.config.hidden_dim == 64


def test_a_translator_trained_by_the_pipeline_follows_its_condition(server_run):
    """The translator Ray Train fitted (3 epochs on 3,000 pairs) is judged by the world's judge
    (zoo:digits' CNN, not f) in the run's quick evaluation: its samples at T=0, with no Langevin
    step, are the digit they were asked for far more often than chance (10 %): 30 % measured over
    100 samples, where a translator that ignores c lands at 10 +- 3 %."""
    _, client, _, _ = server_run
    exp = client.get_experiment_by_name("tron-translators")
    (run,) = client.search_runs([exp.experiment_id])
    metrics = run.data.metrics
    print(f"judged accuracy T=0 {metrics['judged_accuracy_T0']:.1%}, T={int(metrics['eval_steps'])} "
          f"{metrics['judged_accuracy']:.1%}")
    assert metrics["judged_accuracy_T0"] >= 0.25


def test_the_same_pairs_and_seed_give_the_same_validation_nll_in_process_and_on_ray(server_run, dataset):
    """One training routine (tron.training): the Ray Train run of `server_run` (one worker) and
    fit_translator in this process, on the same pairs with the same recipe and seed, agree epoch by
    epoch: the same split by row index, the same initial weights, shuffles and label draws."""
    import numpy as np

    from tron.dataset import open_dataset, table_column
    from tron.training import create_translator, fit_translator

    _, client, _, _ = server_run
    exp = client.get_experiment_by_name("tron-translators")
    (run,) = client.search_runs([exp.experiment_id])
    on_ray = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_nll"), key=lambda m: m.step)]

    ds = open_dataset(dataset)
    args = train_translator.build_parser().parse_args(
        ["--dataset", dataset, "--epochs", "3", "--batch-size", "128", "--hidden-dim", "64", "--num-blocks", "1"])
    model_cfg, train_cfg = train_translator.hyperparameters(args, ds)
    assert train_cfg.sample_labels  # the zoo:digits world's recipe: label draws are part of what must agree
    tables = [ds.read_shard(i) for i in range(len(ds.shard_paths))]
    rows = np.concatenate([t.column("row").to_numpy() for t in tables])
    z = np.concatenate([table_column(t, "z") for t in tables])
    c = np.concatenate([table_column(t, "c") for t in tables])
    perm = np.random.default_rng(1).permutation(len(rows))  # the order pairs arrive in does not matter
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the 1-CPU Ray worker
    try:
        history = fit_translator(create_translator(model_cfg, train_cfg.seed), z[perm], c[perm], train_cfg, rows=rows[perm])
    finally:
        torch.set_num_threads(threads)
    in_process = [r["val_loss"] for r in history]
    assert in_process == pytest.approx(on_ray, rel=1e-5, abs=1e-6)


def test_artifacts_and_checkpoints_are_in_s3(server_run):
    import boto3

    s3 = boto3.client("s3")
    artifacts = [o["Key"] for o in s3.list_objects_v2(Bucket="tron-mlflow").get("Contents", [])]
    assert any(k.endswith("translator/model.safetensors") for k in artifacts)
    assert any(k.endswith(".png") for k in artifacts)
    checkpoints = [o["Key"] for o in s3.list_objects_v2(Bucket="tron-checkpoints").get("Contents", [])]
    assert any("server-run/checkpoint_" in k and k.endswith("translator/model.safetensors") for k in checkpoints)


@pytest.mark.slow  # the default run's test_multinode.py trains on two workers with --standardize-latent, checking the same
def test_two_workers_on_two_cores(dataset, tmp_path):
    """Two data-parallel workers; with --standardize-latent the statistics of z (from the pairs)
    reach every worker and the exported translator."""
    from tron.dataset import open_dataset

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert train(dataset, tmp_path, "--num-workers", "2", "--cpus-per-worker", "0.5", "--epochs", "1",
                 "--tracking-uri", tracking, "--standardize-latent") == 0
    model = load_translator(tmp_path / "export")
    mean, std = open_dataset(dataset).latent_statistics()
    assert model.config.latent_std == pytest.approx(std) and model.config.latent_mean == pytest.approx(mean)
    assert torch.equal(model.z_std, torch.tensor(std, dtype=torch.float32))
    import mlflow

    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    assert 100 < run.data.metrics["worker_peak_rss_mib"] < 20_000  # each worker's peak memory, in MiB (torch alone is > 100)


def test_workers_that_leave_no_cpu_for_reading_are_refused(dataset, tmp_path, capsys):
    """Two 1-CPU workers on the 2-CPU cluster would leave Ray Data's read tasks no CPU: training
    would wait forever. It is refused before anything starts."""
    rc = train(dataset, tmp_path, "--num-workers", "2", "--cpus-per-worker", "1", "--tracking-uri",
               f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no CPU left for Ray Data's read tasks" in err[-1] and "--data-cpus" in err[-1]


def test_resume_after_an_interrupted_run(ray_cluster, dataset, tmp_path):
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--dataset", dataset, "--epochs", "8", "--batch-size", "32", "--hidden-dim", "64", "--num-blocks", "1",
            "--export", str(tmp_path / "export"), "--eval-samples", "2", "--eval-steps", "2",
            "--storage-path", str(tmp_path / "ray_results"), "--name", "interrupted", "--tracking-uri", tracking]
    address = ray_cluster.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, str(REPO / "pipelines" / "train_translator.py"), *args, "--address", address],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    run_dir = tmp_path / "ray_results" / "interrupted"
    # Wait until Ray Train has recorded a checkpoint in its run state (what a rerun resumes from).
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    while time.time() < deadline and not (snapshot.exists() and "checkpoint_" in snapshot.read_text()):
        assert proc.poll() is None, "training finished or died before it could be interrupted"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-training, as a killed job would
    proc.wait()
    time.sleep(2)  # let Ray reap the dead driver's actors
    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    assert run.info.status == "RUNNING"  # killed: nobody could end it

    assert run_main(train_translator.main, args, "train_translator.py") == 0
    (after,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    assert after.info.run_id == run.info.run_id and after.info.status == "FINISHED"
    started = client.get_metric_history(run.info.run_id, "started_at_epoch")
    assert 1 <= max(m.value for m in started) < 8  # the rerun started from a checkpoint, not from scratch
    assert {m.step for m in client.get_metric_history(run.info.run_id, "val_nll")} == set(range(1, 9))


def test_failed_training_marks_the_run_failed(dataset, tmp_path, capsys):
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = train(dataset, tmp_path, "--lr", "1e30", "--grad-clip", "0", "--tracking-uri", tracking)
    assert rc == 2
    err = capsys.readouterr().err
    assert "training failed" in err and "diverged" in err
    client = mlflow.MlflowClient(tracking)
    (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
    assert run.info.status == "FAILED"
    assert "diverged" in run.data.tags["error"]


def test_stale_fingerprint_is_refused(server_run, tmp_path):
    import shutil

    import torch

    from tron.encoders import save_encoder
    from tron.world import load_world
    from tron.world_config import locate_world

    _, _, tmp, _ = server_run
    world_dir = tmp_path / "digits"
    shutil.copytree(locate_world("zoo:digits"), world_dir)
    load_world(world_dir, translator=tmp / "export")  # same G and f: accepted
    world = load_world(world_dir)
    with torch.no_grad():
        world.encoder.net[0].weight.mul_(1.01)  # the encoder is swapped for a slightly different one
    save_encoder(world.encoder, world_dir / "encoder")
    with pytest.raises(CheckpointError, match="different encoder"):
        load_world(world_dir, translator=tmp / "export")


def test_tron_sample_takes_registry_and_run_uris(server_run, tmp_path, monkeypatch):
    import mlflow
    import numpy as np

    from tron.cli import main

    _, client, _, uri = server_run
    # As a user reaches a server: through the environment. Other tests in this module track to
    # their own SQLite stores, so the process-wide URI is reset to follow the environment.
    # (set_tracking_uri(None) also unsets the variable, so it goes first.)
    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    version = client.get_model_version_by_alias("tron-translator.zoo-digits.zoo-digits", "candidate")
    for uri in ("models:/tron-translator.zoo-digits.zoo-digits@candidate", f"runs:/{version.run_id}/translator"):
        npy = tmp_path / "x.npy"
        assert main(["sample", "zoo:digits", "--label", "3", "-n", "2", "--steps", "2", "--translator", uri,
                     "--npy", str(npy)]) == 0
        assert np.load(npy).shape == (2, 1, 16, 16)
    assert main(["sample", "zoo:digits", "--label", "3", "--translator", "models:/no-such-model@champion"]) == 2


def test_image_translators_register_under_their_own_name():
    """The image-variation translator (f's pooled features) must not take the label/text
    translator's versions and aliases."""
    main = train_translator.registered_model_name("gan-face-generate", "efficientnet:lite0")
    image = train_translator.registered_model_name("gan-face-generate", "efficientnet:lite0", "c_features")
    assert main == "tron-translator.gan-face-generate.efficientnet-lite0" and image == main + ".features"
