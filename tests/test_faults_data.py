"""Faults while pairs are built and read, on real components: S3 (moto's server) behind a proxy on
loopback that answers 500s or resets connections (tests/faulty_proxy.py), a disk that fills up, an f
that emits NaN. Retried with backoff, byte-identical to a clean build; past the retry budget one
line and a rerun that resumes. The recovery times are printed (pytest -s) for docs/faults.md."""
import errno
import os
import pathlib
import time
from pathlib import Path

import pytest
from faulty_proxy import FaultyProxy

from infra import make_bucket, moto_s3
from pipelines import build_dataset, train_translator
from pipelines.common import run_main
from tron.dataset import shard_name, write_shard_files
from tron.errors import StorageError
from tron.storage import location

TESTS = Path(__file__).resolve().parent
BUCKET = "tron-faults"
ARGS = ["--generator", "zoo:digits", "--num-pairs", "1200", "--rows-per-shard", "400", "--batch-size", "200", "--no-mlflow"]
NAMES = [name for i in range(3) for name in (shard_name(i), shard_name(i).replace(".parquet", ".sha256"))] + ["manifest.json"]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 with the fault proxy in front; AWS_ENDPOINT_URL names the proxy, so the driver and
    the Ray workers (started after) go through it. Yields (proxy, a boto3 client straight to moto)."""
    import boto3

    with moto_s3() as endpoint:
        proxy = FaultyProxy(endpoint).start()
        os.environ["AWS_ENDPOINT_URL"] = proxy.url  # moto_s3 puts the old value back
        make_bucket(BUCKET)
        try:
            yield proxy, boto3.client("s3", endpoint_url=endpoint)
        finally:
            proxy.stop()


@pytest.fixture(scope="module")
def cluster(s3):
    """A local Ray whose workers reach S3 through the proxy and import test plugins (tests/)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    yield ray
    ray.shutdown()


def build(out: str, *extra: str) -> int:
    return run_main(build_dataset.main, [*ARGS, "--out", out, *extra], "build_dataset.py")


def objects(client, prefix: str) -> dict[str, bytes]:
    """The dataset's files as S3 holds them (read past the proxy)."""
    return {name: client.get_object(Bucket=BUCKET, Key=f"{prefix}/{name}")["Body"].read() for name in NAMES}


@pytest.fixture(scope="module")
def clean(cluster, s3):
    """A build to S3 with no fault: the reference bytes, and how long it took."""
    proxy, client = s3
    t0 = time.monotonic()
    assert build(f"s3://{BUCKET}/clean") == 0
    return objects(client, "clean"), time.monotonic() - t0


@pytest.mark.slow  # the S3 rows of the fault matrix (docs/faults.md): minutes of retries
def test_a_build_through_500s_and_reset_connections_is_byte_identical_to_a_clean_one(clean, s3, capsys):
    proxy, client = s3
    reference, clean_s = clean
    times = {}
    for kind in ("500", "reset"):
        before = proxy.injected
        proxy.arm(kind, every=3, count=6)
        t0 = time.monotonic()
        rc = build(f"s3://{BUCKET}/flaky-{kind}")
        times[kind] = time.monotonic() - t0
        proxy.heal()
        assert rc == 0, capsys.readouterr().err
        assert proxy.injected - before == 6  # the faults happened, and were retried
        manifest_line = capsys.readouterr().out
        assert "done:" in manifest_line
        flaky = objects(client, f"flaky-{kind}")
        manifest = __import__("json").loads(flaky.pop("manifest.json"))
        expected = dict(reference)
        ref_manifest = __import__("json").loads(expected.pop("manifest.json"))
        assert flaky == expected  # every shard and checksum byte for byte
        assert manifest["shards"] == ref_manifest["shards"] and manifest["identity"] == ref_manifest["identity"]
    print(f"\n[faults] S3 build: clean {clean_s:.1f} s; with 6 x 500 {times['500']:.1f} s; with 6 resets {times['reset']:.1f} s")


@pytest.mark.slow  # the S3 rows of the fault matrix (docs/faults.md): minutes of retries
def test_past_the_retry_budget_one_line_and_a_rerun_resumes(clean, s3, capsys, monkeypatch):
    """Every upload of the manifest fails (the driver's, with 2 attempts): one line naming the file,
    the shards stay; once S3 is healthy the same command writes nothing again but the manifest."""
    proxy, client = s3
    reference, _ = clean
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # the driver's budget only: the workers keep the default
    proxy.arm("500", match="manifest.json", methods=("PUT", "POST"))
    t0 = time.monotonic()
    rc = build(f"s3://{BUCKET}/budget")
    failed_s = time.monotonic() - t0
    proxy.heal()
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"cannot write s3://{BUCKET}/budget/manifest.json" in err and "rerunning the same command resumes" in err
    t0 = time.monotonic()
    assert build(f"s3://{BUCKET}/budget") == 0
    resume_s = time.monotonic() - t0
    assert "3 already complete, 0 to write" in capsys.readouterr().out
    rebuilt = objects(client, "budget")
    assert {k: v for k, v in rebuilt.items() if k != "manifest.json"} == {k: v for k, v in reference.items() if k != "manifest.json"}
    print(f"\n[faults] S3 past the retry budget: failed after {failed_s:.1f} s; the rerun resumed in {resume_s:.1f} s")


@pytest.mark.slow  # the S3 rows of the fault matrix (docs/faults.md): minutes of retries
def test_training_reads_through_500s(clean, s3, tmp_path, monkeypatch, capsys):
    """The training's reads (Ray Data's read tasks, on the workers) answered 500 every other time:
    retried, and the training finishes. The faults start after the driver's own checks, so that
    they reach the workers."""
    proxy, _ = s3
    read_split = train_translator.read_split

    def armed_read_split(*args, **kwargs):
        proxy.arm("500", every=2, count=20, match=".parquet")
        return read_split(*args, **kwargs)

    monkeypatch.setattr(train_translator, "read_split", armed_read_split)
    before = proxy.injected
    try:
        rc = run_main(train_translator.main, ["--dataset", f"s3://{BUCKET}/clean", "--epochs", "1", "--batch-size", "128",
                                              "--hidden-dim", "32", "--num-blocks", "1", "--export", str(tmp_path / "export"),
                                              "--eval-samples", "1", "--eval-conditions", "1", "--eval-steps", "1",
                                              "--storage-path", str(tmp_path / "ray_results"),
                                              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                      "train_translator.py")
    finally:
        proxy.heal()
    assert rc == 0, capsys.readouterr().err
    assert proxy.injected > before  # the workers' reads met the faults
    assert (tmp_path / "export" / "model.safetensors").is_file()


def full_disk_after(monkeypatch, limit: int, only: str = ""):
    """Path.write_bytes (what tron.files writes a temporary file with) writes `limit` bytes of a file
    whose name contains `only`, then fails as a full disk does."""
    write_bytes = pathlib.Path.write_bytes

    def write(self, data):
        if only not in self.name:
            return write_bytes(self, data)
        with open(self, "wb") as f:
            f.write(bytes(data)[:limit])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", write)


def test_no_space_left_while_writing_a_shard_leaves_nothing_visible(tmp_path, monkeypatch):
    full_disk_after(monkeypatch, 100)
    loc = location(str(tmp_path / "pairs"))
    with pytest.raises(StorageError) as info:
        write_shard_files(loc, 0, b"x" * 1000, "0" * 64)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message and shard_name(0) in message
    assert "rerunning the same command resumes" in message
    assert list((tmp_path / "pairs").iterdir()) == []  # neither the shard nor its temporary file


def test_no_space_left_for_the_manifest_then_a_rerun_resumes(cluster, tmp_path, monkeypatch, capsys):
    """The driver's last write (the manifest) meets a full disk: one line, no manifest, the shards
    kept; with space again the same command writes only the manifest."""
    out = tmp_path / "pairs"
    with monkeypatch.context() as m:
        full_disk_after(m, 10, only="manifest.json")
        rc = build(str(out))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "No space left on device" in err and "manifest.json" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(n for n in NAMES if n != "manifest.json")
    assert build(str(out)) == 0
    assert "3 already complete, 0 to write" in capsys.readouterr().out


def test_an_f_that_emits_nan_is_refused_in_one_line_naming_the_encoder(cluster, tmp_path, capsys):
    """As for a G that emits NaN (tests/test_own_models.py): the shard task stops, one line names the
    part (the encoder, f) and the shard, nothing is written."""
    out = tmp_path / "pairs"
    rc = run_main(build_dataset.main, ["--generator", "zoo:digits", "--encoder", "faults_helpers:nan_encoder",
                                       "--num-pairs", "400", "--rows-per-shard", "200", "--out", str(out), "--no-mlflow"],
                  "build_dataset.py")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "the encoder produced non-finite conditions for" in err and "shard" in err and "nothing was written" in err
    assert not list(out.glob("shard-*.parquet")) and not (out / "manifest.json").exists()
