"""pipelines/build_dataset.py on a real local Ray cluster, local disk and S3 on loopback."""
import os
import signal
import threading
import time

import pytest

from infra import make_bucket, processes_named
from pipelines import build_dataset
from pipelines.common import run_main
from tron.dataset import checksum_name, open_dataset, shard_name

ARGS = ["--generator", "zoo:digits", "--num-pairs", "2600", "--rows-per-shard", "500", "--batch-size", "250"]


def build(out, *extra, tracking=None):
    argv = [*ARGS, "--out", str(out), *extra]
    argv += ["--tracking-uri", tracking] if tracking else ["--no-mlflow"]
    return run_main(build_dataset.main, argv, "build_dataset.py")


def shard_bytes(root, n=6):
    return [(root / shard_name(i)).read_bytes() for i in range(n)]


@pytest.fixture(scope="module")
def reference(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "digits"
    tracking = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    assert build(out, "--max-in-flight", "2", tracking=tracking) == 0
    return out, tracking


def test_build_writes_a_complete_tracked_dataset(reference, capsys):
    out, tracking = reference
    ds = open_dataset(str(out))
    assert ds.num_rows == 2600 and len(ds.manifest["shards"]) == 6
    assert ds.manifest["shards"][-1]["rows"] == 100
    assert ds.manifest["fingerprints"]["generator"] == ds.identity.generator_fingerprint
    arrays = ds.read_arrays()
    assert arrays["z"].shape == (2600, 16) and arrays["c"].shape == (2600, 10)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name("tron-datasets")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["num_pairs"] == "2600"
    assert run.data.metrics["shards"] == 6 and run.data.metrics["pairs_per_s"] > 0
    assert run.data.tags["tron.generator_fingerprint"] == ds.identity.generator_fingerprint
    manifest = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/manifest.json")
    assert manifest == ds.manifest


def test_rerun_of_a_complete_build_writes_nothing(reference, capsys):
    out, _ = reference
    before = shard_bytes(out)
    assert build(out) == 0
    assert "6 already complete, 0 to write" in capsys.readouterr().out
    assert shard_bytes(out) == before


def test_one_and_two_workers_give_identical_shards(reference, tmp_path):
    out, _ = reference
    assert build(tmp_path / "one", "--max-in-flight", "1") == 0
    assert shard_bytes(tmp_path / "one") == shard_bytes(out)


def test_resume_repairs_missing_and_corrupt_shards(reference, tmp_path, capsys):
    import shutil

    out, _ = reference
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "manifest.json").unlink()  # as if the build had been interrupted
    (broken / shard_name(1)).unlink()
    (broken / checksum_name(1)).unlink()
    data = bytearray((broken / shard_name(3)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / shard_name(3)).write_bytes(bytes(data))
    (broken / checksum_name(4)).unlink()  # written, never verified
    assert build(broken) == 0
    log = capsys.readouterr().out
    assert "3 already complete, 3 to write" in log and "shard 3 is corrupt" in log
    assert shard_bytes(broken) == shard_bytes(out)
    open_dataset(str(broken))


def test_refuses_to_mix_builds(reference, capsys):
    out, _ = reference
    assert build(out, "--seed", "1") == 2
    err = capsys.readouterr().err
    assert "different dataset" in err and "seed" in err
    (out / "manifest.json").rename(out / "manifest.bak")  # foreign shards are refused even without a manifest
    try:
        assert build(out, "--seed", "1") == 2
        assert "refusing to mix" in capsys.readouterr().err
    finally:
        (out / "manifest.bak").rename(out / "manifest.json")


def test_worker_killed_mid_build_still_completes(reference, tmp_path):
    out, _ = reference
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", build(tmp_path / "killed", "--max-in-flight", "2")))
    thread.start()
    killed = None
    deadline = time.time() + 60
    while killed is None and time.time() < deadline and thread.is_alive():
        pids = processes_named("ray::tron-write-shard")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.02)
    thread.join(180)
    assert killed is not None, "no shard task was seen running"
    assert result["rc"] == 0
    assert shard_bytes(tmp_path / "killed") == shard_bytes(out)
    open_dataset(str(tmp_path / "killed"))


def test_build_into_s3(reference, s3_endpoint):
    import boto3

    out, _ = reference
    make_bucket("tron-pairs")
    assert build("s3://tron-pairs/digits/v1", "--max-in-flight", "2") == 0
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="tron-pairs")["Contents"])
    assert "digits/v1/manifest.json" in keys and "digits/v1/shard-00005.parquet" in keys
    assert not [k for k in keys if k.endswith(".tmp")]
    ds = open_dataset("s3://tron-pairs/digits/v1")
    assert ds.num_rows == 2600
    body = boto3.client("s3").get_object(Bucket="tron-pairs", Key="digits/v1/shard-00002.parquet")["Body"].read()
    assert body == (out / shard_name(2)).read_bytes()


def test_missing_bucket_and_bad_arguments(ray_cluster, s3_endpoint, capsys):
    assert build("s3://no-such-bucket/x") == 2
    assert "no-such-bucket" in capsys.readouterr().err
    assert build("/tmp/unused", "--generator", "zoo:nope") == 2
    assert "unknown zoo world" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        build_dataset.main(["--out", "/tmp/x", "--num-pairs", "many"])
    assert exc.value.code == 2
