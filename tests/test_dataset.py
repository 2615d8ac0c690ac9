"""The pair-dataset format: shards, identity, manifest, verification and reading (no Ray)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from tron.dataset import (
    DatasetIdentity,
    check_shard,
    checksum_name,
    decode_shard,
    generate_shard,
    make_manifest,
    open_dataset,
    plan_shards,
    shard_name,
    shard_seed,
    table_column,
    write_manifest,
    write_shard_files,
)
from tron.errors import DatasetError
from tron.storage import location, write_bytes_atomic


def identity(**kw):
    base = dict(generator="g", generator_fingerprint="gf", encoder="f", encoder_fingerprint="ff",
                prior={"kind": "normal", "truncation": 2.0}, seed=0, rows_per_shard=4, batch_size=2,
                latent_dim=4, cond_dim=10)
    base.update(kw)
    return DatasetIdentity(**base)


def write_dataset(tmp_path, g, f, rows=(4, 4, 2)):
    ident = identity()
    loc = location(tmp_path / "ds")
    checks = []
    for i, n in enumerate(rows):
        data, check = generate_shard(g, f, ident, i, n)
        write_shard_files(loc, i, data, check.sha256)
        checks.append(check)
    write_manifest(loc, make_manifest(ident, sum(rows), checks))
    return loc, ident


def test_plan_and_seeds():
    assert plan_shards(10, 4) == [4, 4, 2]
    assert plan_shards(8, 4) == [4, 4]
    with pytest.raises(DatasetError):
        plan_shards(0, 4)
    seeds = {shard_seed(0, i) for i in range(100)} | {shard_seed(1, i) for i in range(100)}
    assert len(seeds) == 200 and shard_seed(3, 7) == shard_seed(3, 7)


def test_shard_bytes_round_trip_and_are_deterministic(tiny_generator, tiny_classifier):
    ident = replace(identity(), batch_size=3)
    a, check = generate_shard(tiny_generator, tiny_classifier, ident, 2, 5)
    b, _ = generate_shard(tiny_generator, tiny_classifier, ident, 2, 5)
    assert a == b and check.rows == 5
    table, found, index = decode_shard(a)
    assert found == ident and index == 2
    assert table.column("shard").to_pylist() == [2] * 5
    assert table.column("row").to_pylist() == list(range(8, 13))  # global rows: 2 * rows_per_shard onwards
    z, c = table_column(table, "z"), table_column(table, "c")
    assert z.shape == (5, 4) and c.shape == (5, 10) and z.dtype == np.float32
    with torch.no_grad():
        expected = tiny_classifier.encode(tiny_generator.decode(torch.tensor(z)))
    assert np.allclose(c, expected.numpy(), atol=1e-6)


def test_check_shard_statuses(tmp_path, tiny_generator, tiny_classifier):
    loc, ident = write_dataset(tmp_path, tiny_generator, tiny_classifier)
    assert check_shard(loc, ident, 0, 4).status == "ok"
    assert check_shard(loc, ident, 5, 4).status == "missing"
    assert check_shard(loc, ident, 2, 4).status == "corrupt"  # has 2 rows
    path = tmp_path / "ds" / shard_name(1)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert check_shard(loc, ident, 1, 4).status == "corrupt"
    path.write_bytes(bytes(data[:50]))
    assert check_shard(loc, ident, 1, 4).status == "corrupt"
    (tmp_path / "ds" / checksum_name(0)).unlink()  # written, but its checksum never was
    assert check_shard(loc, ident, 0, 4).status == "unverified"
    with pytest.raises(DatasetError, match="different dataset.*seed"):
        check_shard(loc, replace(ident, seed=1), 0, 4)


def test_open_dataset_verifies_and_reads(tmp_path, tiny_generator, tiny_classifier):
    loc, ident = write_dataset(tmp_path, tiny_generator, tiny_classifier)
    ds = open_dataset(str(tmp_path / "ds"))
    assert ds.num_rows == 10 and ds.identity == ident
    arrays = ds.read_arrays()
    assert arrays["z"].shape == (10, 4)
    batches = list(ds.iter_batches(batch_size=3))
    assert [len(b["z"]) for b in batches] == [3, 1, 3, 1, 2]
    assert torch.equal(torch.cat([b["z"] for b in batches]), torch.from_numpy(arrays["z"]))
    shuffled = torch.cat([b["z"] for b in ds.iter_batches(batch_size=4, shuffle=True, seed=1)])
    assert sorted(shuffled[:, 0].tolist()) == sorted(arrays["z"][:, 0].tolist())
    # corrupt a shard after the manifest was written: opening refuses it
    path = tmp_path / "ds" / shard_name(0)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard-00000.parquet is corrupt"):
        open_dataset(str(tmp_path / "ds"))


def test_incomplete_dataset_is_refused(tmp_path, tiny_generator, tiny_classifier):
    write_dataset(tmp_path, tiny_generator, tiny_classifier)
    (tmp_path / "ds" / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        open_dataset(str(tmp_path / "ds"))


def test_atomic_write_leaves_no_partial_file(tmp_path):
    loc = location(tmp_path)

    with pytest.raises(TypeError):
        write_bytes_atomic(loc, loc.join("x.bin"), object())  # fails mid-write
    assert list(tmp_path.iterdir()) == []


def test_bad_uris():
    from tron.errors import TronError

    with pytest.raises(TronError, match="unsupported URI scheme"):
        location("gs://bucket/x")
    with pytest.raises(TronError, match="needs a bucket"):
        location("s3://")


def test_latent_statistics_stream_over_shards(tmp_path, tiny_generator, tiny_classifier):
    """Per-dimension mean and std of z, one shard at a time, equal the in-memory figures."""
    write_dataset(tmp_path, tiny_generator, tiny_classifier, rows=(7, 5, 3))
    ds = open_dataset(str(tmp_path / "ds"))
    z = ds.read_arrays(("z",))["z"].astype(np.float64)
    mean, std = ds.latent_statistics()
    assert np.allclose(mean, z.mean(0), atol=1e-9) and np.allclose(std, z.std(0, ddof=1), atol=1e-9)
