"""The pipeline across Ray nodes: a cluster of a head and two worker nodes on this machine (Ray's
own multi-node test utility), each node with a temporary directory of its own, and S3 (moto) plus
an MLflow server (its artifacts in S3) as the only things they share. The build's shard tasks and a
2-worker training run on both worker nodes; shards, checkpoints, MLflow artifacts and the
exported translator all go through S3 or HTTP, never a local path another node would need.
Each worker node has one CPU and holds a 0.5-CPU training worker, so Ray Data's read tasks must fit
in the other half (they once needed a whole CPU, and this training waited forever)."""
from __future__ import annotations

import os

import pytest
import torch

from infra import S3_ENV, make_bucket, mlflow_server
from pipelines import build_dataset, train_translator
from pipelines.common import run_main
from tron.dataset import open_dataset
from tron.translator import load_translator

# A stall must fail the test, not hang it: the thread method ends the process even when the main
# thread waits inside Ray's C++ code, where the signal method cannot interrupt it.
pytestmark = pytest.mark.timeout(900, method="thread")


@pytest.fixture(scope="module")
def cluster(s3_endpoint, tmp_path_factory):
    import ray
    from ray._raylet import Config
    from ray.cluster_utils import Cluster

    # One authentication mode, token, for every process of the cluster and for this driver. Ray's
    # test Cluster does not choose one itself: a node in token mode beside a head that is not refuses
    # the head's calls ("missing authorization header") and never starts a worker, and a driver that
    # finds ~/.ray/auth_token presents it to a head that expects none. The mode is read from the
    # environment into Ray's cached config (Config), which Ray's own token set-up refreshes the same way.
    old_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}
    # The nodes take this machine's own address (Ray's ray.init(address=...) turns 127.0.0.1 into
    # it, so a loopback-only cluster cannot be joined); traffic to it stays inside the machine.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": True})
    nodes = []
    for i in range(2):
        tmp = tmp_path_factory.mktemp(f"node{i}")  # each node's own TMPDIR: no shared scratch space
        nodes.append(cluster.add_node(num_cpus=1, env_vars={**env, "TMPDIR": str(tmp)}))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, {n.node_id for n in nodes}
    ray.shutdown()
    cluster.shutdown()
    if old_mode is None:
        os.environ.pop("RAY_AUTH_MODE")
    else:
        os.environ["RAY_AUTH_MODE"] = old_mode
    Config.initialize("")


def test_build_and_two_worker_training_across_nodes_share_only_s3(cluster, s3_endpoint, tmp_path, capsys):
    import mlflow
    from ray.util.state import list_actors, list_tasks

    _, worker_nodes = cluster
    make_bucket("tron-multinode")
    data = "s3://tron-multinode/pairs"
    rc = run_main(build_dataset.main, ["--generator", "zoo:digits", "--num-pairs", "2400", "--rows-per-shard", "300",
                                       "--out", data, "--no-mlflow"], "build_dataset.py")
    assert rc == 0, capsys.readouterr().err
    shard_nodes = {t.node_id for t in list_tasks(filters=[("name", "=", "tron-write-shard")], limit=1000) if t.node_id}
    assert shard_nodes == worker_nodes  # the shard tasks ran on both worker nodes (the head has no CPU)

    env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "AWS_ENDPOINT_URL": s3_endpoint}
    with mlflow_server(tmp_path, "s3://tron-multinode/mlflow", env) as uri:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
        try:
            rc = run_main(train_translator.main, [
                "--dataset", data, "--epochs", "2", "--batch-size", "128", "--hidden-dim", "32", "--num-blocks", "1",
                "--num-workers", "2", "--cpus-per-worker", "0.5", "--placement-strategy", "SPREAD",
                "--storage-path", "s3://tron-multinode/ray_results", "--tracking-uri", uri, "--eval-samples", "2", "--eval-steps", "2",
                "--eval-conditions", "2", "--export", str(tmp_path / "export"), "--standardize-latent"],
                "train_translator.py")
            assert rc == 0, capsys.readouterr().err
            # the statistics of z (from the pairs) reached both workers and the exported translator
            model = load_translator(tmp_path / "export")
            mean, std = open_dataset(data).latent_statistics()
            assert model.config.latent_std == pytest.approx(std) and model.config.latent_mean == pytest.approx(mean)
            assert torch.equal(model.z_std, torch.tensor(std, dtype=torch.float32))
            workers = [a for a in list_actors(filters=[("class_name", "=", "RayTrainWorker")], limit=100)]
            assert {a.node_id for a in workers} == worker_nodes  # one training worker on each worker node
            client = mlflow.MlflowClient(uri)
            (run,) = client.search_runs([client.get_experiment_by_name("tron-translators").experiment_id])
            assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
            assert 100 < run.data.metrics["worker_peak_rss_mib"] < 20_000  # the workers' peak memory, MiB (torch alone > 100)
            names = {f.path for f in client.list_artifacts(run.info.run_id, "translator")}
            assert {"translator/config.json", "translator/model.safetensors"} <= names
        finally:
            os.environ.pop("MLFLOW_S3_ENDPOINT_URL", None)
            mlflow.set_tracking_uri(None)
    import boto3

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="tron-multinode")["Contents"]]
    assert any(k.startswith("pairs/shard-") for k in keys) and "pairs/manifest.json" in keys
    assert any(k.startswith("ray_results/") and "checkpoint" in k for k in keys)  # checkpoints in S3
    assert any(k.startswith("mlflow/") for k in keys)  # MLflow's artifacts too
