"""Pair datasets: Parquet shards of (z, c) plus a manifest, on a local path or S3.

Layout of a dataset at URI:

    URI/shard-00000.parquet ...   one file per shard, written whole or not at all
    URI/shard-00000.sha256 ...    its SHA-256, written after it: a shard counts only once verified
    URI/manifest.json             written last; its presence means the dataset is complete

Each shard's Parquet footer carries the dataset *identity* (fingerprints of G and f, prior,
seed, rows per shard, ...) and its index, so a rerun can tell its own shards from foreign ones
even before a manifest exists. Shard i is generated from the seed derived from (seed, i) alone,
which makes shards byte-identical whatever the number of workers or the order they run in.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from . import __version__
from .captioners import CAPTION_COLUMN, TEXT_COLUMN
from .errors import DatasetError, NonFiniteError
from .pairs import generate_columns
from .priors import PriorConfig
from .storage import Location, exists, location, read_bytes, storage_error, write_bytes_atomic

FORMAT = "tron-pairs"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
IDENTITY_KEY = b"tron.identity"
SHARD_KEY = b"tron.shard"


@dataclass(frozen=True)
class DatasetIdentity:
    """Everything that must match for shards to belong to one dataset."""

    generator: str  # generator spec as given (e.g. zoo:digits)
    generator_fingerprint: str
    encoder: str
    encoder_fingerprint: str
    prior: dict  # PriorConfig as a dict
    seed: int
    rows_per_shard: int
    batch_size: int
    latent_dim: int
    cond_dim: int
    extra_columns: dict = field(default_factory=dict)  # name -> width of extra float32 list columns
    captioner: str = ""  # captioner spec of a captioned build ("" when none): adds the caption and c_caption
    captioner_fingerprint: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def differences(self, other: DatasetIdentity) -> list[str]:
        a, b = asdict(self), asdict(other)
        return [f"{k}: {b[k]!r} (existing) vs {a[k]!r} (now)" for k in a if a[k] != b[k]]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def checksum_name(index: int) -> str:
    return f"shard-{index:05d}.sha256"


def shard_seed(seed: int, index: int) -> int:
    """A 63-bit seed for shard `index`, independent of every other shard."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def plan_shards(num_pairs: int, rows_per_shard: int) -> list[int]:
    """Rows in each shard: full shards then a remainder."""
    if num_pairs < 1 or rows_per_shard < 1:
        raise DatasetError(f"need num_pairs >= 1 and rows_per_shard >= 1, got {num_pairs}, {rows_per_shard}")
    n = math.ceil(num_pairs / rows_per_shard)
    return [min(rows_per_shard, num_pairs - i * rows_per_shard) for i in range(n)]


def pairs_schema(latent_dim: int, cond_dim: int, extra_columns: dict[str, int] | None = None,
                 captions: bool = False) -> pa.Schema:
    cols = [
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),  # global row index in the dataset
        pa.field("z", pa.list_(pa.float32(), latent_dim), nullable=False),
        pa.field("c", pa.list_(pa.float32(), cond_dim), nullable=False),
    ]
    for name, width in sorted((extra_columns or {}).items()):
        cols.append(pa.field(name, pa.list_(pa.float32(), width), nullable=False))
    if captions:
        cols.append(pa.field(TEXT_COLUMN, pa.string(), nullable=False))
    return pa.schema(cols)


def identity_schema(identity: DatasetIdentity) -> pa.Schema:
    return pairs_schema(identity.latent_dim, identity.cond_dim, identity.extra_columns, bool(identity.captioner))


def _fixed_list(array: np.ndarray) -> pa.FixedSizeListArray:
    array = np.ascontiguousarray(array, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def encode_shard(identity: DatasetIdentity, index: int, row_offset: int, z: np.ndarray, c: np.ndarray,
                 extra: dict[str, np.ndarray] | None = None, captions: np.ndarray | None = None) -> bytes:
    """One shard as Parquet bytes (deterministic for the same inputs), with page checksums."""
    n = len(z)
    schema = identity_schema(identity).with_metadata(
        {IDENTITY_KEY: identity.to_json().encode(), SHARD_KEY: str(index).encode()})
    columns = [pa.array(np.full(n, index, np.int32)), pa.array(np.arange(row_offset, row_offset + n, dtype=np.int64)),
               _fixed_list(z), _fixed_list(c)]
    for name in sorted(identity.extra_columns):
        columns.append(_fixed_list((extra or {})[name]))
    if identity.captioner:
        columns.append(pa.array([str(t) for t in captions], type=pa.string()))
    table = pa.Table.from_arrays(columns, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True, write_statistics=False)
    return sink.getvalue().to_pybytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_shard(data: bytes) -> tuple[pa.Table, DatasetIdentity, int]:
    """Parse and fully verify a shard's bytes (page checksums); raises DatasetError if corrupt."""
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        meta = table.schema.metadata or {}
        identity = DatasetIdentity(**json.loads(meta[IDENTITY_KEY]))
        index = int(meta[SHARD_KEY])
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
        raise DatasetError(f"unreadable shard: {exc}") from exc
    return table, identity, index


@dataclass
class ShardCheck:
    index: int
    status: str  # "ok", "missing", "unverified" (no checksum recorded), "corrupt"
    rows: int = 0
    sha256: str = ""
    reason: str = ""


def check_shard(loc: Location, identity: DatasetIdentity, index: int, expected_rows: int,
                expected_sha256: str | None = None) -> ShardCheck:
    """Is shard `index` present, intact and ours? Foreign shards raise: never mix builds.

    The checksum comes from the manifest when given, else from the shard's .sha256 file; a shard
    with neither is "unverified" (Parquet's own page checksums do not cover its headers)."""
    path = loc.join(shard_name(index))
    if not exists(loc, path):
        return ShardCheck(index, "missing")
    data = read_bytes(loc, path)
    digest = sha256(data)
    if expected_sha256 is None and exists(loc, loc.join(checksum_name(index))):
        expected_sha256 = read_bytes(loc, loc.join(checksum_name(index))).decode(errors="replace").strip()
    try:
        table, found, found_index = decode_shard(data)
    except DatasetError as exc:
        return ShardCheck(index, "corrupt", reason=str(exc))
    if found != identity:
        raise DatasetError(
            f"{path} belongs to a different dataset ({'; '.join(found.differences(identity))}); "
            f"refusing to mix shards: write to a new URI or delete the old dataset")
    if expected_sha256 is None:
        return ShardCheck(index, "unverified", reason="no checksum recorded")
    if digest != expected_sha256:
        return ShardCheck(index, "corrupt", reason="checksum mismatch")
    if found_index != index:
        return ShardCheck(index, "corrupt", reason=f"footer says shard {found_index}")
    if table.num_rows != expected_rows:
        return ShardCheck(index, "corrupt", reason=f"{table.num_rows} rows, expected {expected_rows}")
    return ShardCheck(index, "ok", rows=table.num_rows, sha256=digest)


def write_shard_files(loc: Location, index: int, data: bytes, digest: str) -> None:
    """The shard, then its checksum: each visible only when complete."""
    write_bytes_atomic(loc, loc.join(shard_name(index)), data)
    write_bytes_atomic(loc, loc.join(checksum_name(index)), (digest + "\n").encode())


def make_manifest(identity: DatasetIdentity, num_pairs: int, shards: list[ShardCheck], code_version: str | None = None,
                  condition_scale: float = 1.0) -> dict:
    schema = identity_schema(identity)
    return {
        "condition_scale": condition_scale,  # mean raw norm of f's embeddings (TR0N's noise scale)
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "identity": asdict(identity),
        "fingerprints": {"generator": identity.generator_fingerprint, "encoder": identity.encoder_fingerprint,
                         **({"captioner": identity.captioner_fingerprint} if identity.captioner else {})},
        "seed": identity.seed,
        "num_pairs": num_pairs,
        "schema": [f"{f.name}: {f.type}" for f in schema],
        "shards": [{"path": shard_name(s.index), "index": s.index, "rows": s.rows, "sha256": s.sha256} for s in shards],
        "code_version": code_version or __version__,
    }


def write_manifest(loc: Location, manifest: dict) -> None:
    write_bytes_atomic(loc, loc.join(MANIFEST_NAME), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def read_manifest(loc: Location) -> dict | None:
    path = loc.join(MANIFEST_NAME)
    if not exists(loc, path):
        return None
    try:
        manifest = json.loads(read_bytes(loc, path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{loc.uri}/{MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{loc.uri}/{MANIFEST_NAME} is not a {FORMAT} v{FORMAT_VERSION} manifest")
    return manifest


class PairDataset:
    """A complete dataset opened by URI. Checks the manifest; `verify=True` also checks every shard."""

    def __init__(self, uri: str, verify: bool = True) -> None:
        self.location = location(uri)
        manifest = read_manifest(self.location)
        if manifest is None:
            raise DatasetError(f"{self.location.uri} has no {MANIFEST_NAME}: the build is missing or incomplete")
        self.manifest = manifest
        self.identity = DatasetIdentity(**manifest["identity"])
        if verify:
            for shard in manifest["shards"]:
                check = check_shard(self.location, self.identity, shard["index"], shard["rows"], shard["sha256"])
                if check.status != "ok":
                    raise DatasetError(f"{self.location.uri}/{shard['path']} is {check.status}"
                                       f"{': ' + check.reason if check.reason else ''}; rerun the build to repair it")

    @property
    def uri(self) -> str:
        return self.location.uri

    @property
    def num_rows(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"])

    @property
    def shard_paths(self) -> list[str]:
        """Filesystem paths (use with `self.location.fs`)."""
        return [self.location.join(s["path"]) for s in self.manifest["shards"]]

    def read_shard(self, i: int) -> pa.Table:
        try:
            return pq.read_table(self.shard_paths[i], filesystem=self.location.fs)
        except OSError as exc:
            raise storage_error(self.location, self.shard_paths[i], "read", exc) from exc

    @property
    def condition_columns(self) -> list[str]:
        """"c" and any extra condition columns ("c_features", ...)."""
        return ["c", *[k for k in sorted(self.identity.extra_columns) if k.startswith("c_")]]

    def condition_width(self, column: str = "c") -> int:
        if column == "c":
            return self.identity.cond_dim
        if column not in self.identity.extra_columns:
            raise DatasetError(f"{self.uri} has no condition column {column!r}; it has {', '.join(self.condition_columns)}")
        return int(self.identity.extra_columns[column])

    @property
    def condition_scale(self) -> float:
        """The mean raw norm of f's embeddings that the build measured (1.0 when not recorded)."""
        return float(self.manifest.get("condition_scale", 1.0))

    def check_finite(self, columns: tuple[str, ...] | None = None) -> None:
        """Raise DatasetError naming the first shard with NaN or infinite values (datasets written by
        an older build may hold them)."""
        columns = columns or ("z", *self.condition_columns)
        for i, shard in enumerate(self.manifest["shards"]):
            table = self.read_shard(i)
            for col in columns:
                values = table_column(table, col)
                bad = ~np.isfinite(values).all(axis=1)
                if bad.any():
                    raise DatasetError(f"{self.uri}/{shard['path']} holds non-finite {col} in {int(bad.sum())} of "
                                       f"{len(values)} rows: G or f produced NaN/inf when it was built; rebuild it")

    def latent_statistics(self, floor: float = 1e-6) -> tuple[list[float], list[float]]:
        """Per-dimension mean and std of z over every row, one shard at a time (float64 sums)."""
        total, sq, n = None, None, 0
        for i in range(len(self.shard_paths)):
            z = table_column(self.read_shard(i), "z").astype(np.float64)
            total = z.sum(0) if total is None else total + z.sum(0)
            sq = (z * z).sum(0) if sq is None else sq + (z * z).sum(0)
            n += len(z)
        if n < 2:
            raise DatasetError(f"{self.uri} has {n} rows: too few for latent statistics")
        mean = total / n
        std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0) * n / (n - 1))
        return mean.tolist(), np.maximum(std, floor).tolist()

    def read_arrays(self, columns: tuple[str, ...] = ("z", "c")) -> dict[str, np.ndarray]:
        tables = [self.read_shard(i) for i in range(len(self.shard_paths))]
        return {col: table_column(pa.concat_tables(tables), col) for col in columns}

    def iter_batches(self, batch_size: int = 1024, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Torch batches {"z": (B, d), "c": (B, k)}; shuffles shard order and rows within shards."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.shard_paths)) if shuffle else range(len(self.shard_paths))
        for i in order:
            arrays = {col: table_column(self.read_shard(int(i)), col) for col in ("z", "c")}
            rows = rng.permutation(len(arrays["z"])) if shuffle else np.arange(len(arrays["z"]))
            for start in range(0, len(rows), batch_size):
                idx = rows[start:start + batch_size]
                yield {k: torch.from_numpy(v[idx]) for k, v in arrays.items()}


def table_column(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size-list float32 column as a (N, width) array."""
    col = table.column(name).combine_chunks()
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def open_dataset(uri: str, verify: bool = True) -> PairDataset:
    return PairDataset(uri, verify=verify)


def extra_spaces(identity: DatasetIdentity) -> list[str]:
    """The encoder spaces of the extra condition columns ("c_features" -> "features"); c_caption is
    written by the captioner, not by f's image tower."""
    return [name[len("c_"):] for name in sorted(identity.extra_columns) if name.startswith("c_") and name != CAPTION_COLUMN]


def generate_shard(generator, encoder, identity: DatasetIdentity, index: int, rows: int,
                   captioner=None) -> tuple[bytes, ShardCheck]:
    """Generate shard `index` in-process: its pairs come from the seed of (seed, index) alone.
    Non-finite output of G or f is an error naming the shard: no shard holds it."""
    if bool(identity.captioner) != (captioner is not None):
        raise DatasetError("a captioned build needs its captioner, and only a captioned build takes one")
    try:
        cols = generate_columns(generator, encoder, rows, seed=shard_seed(identity.seed, index),
                                batch_size=identity.batch_size, prior=PriorConfig(**identity.prior),
                                spaces=["main", *extra_spaces(identity)], captioner=captioner)
    except NonFiniteError as exc:
        raise NonFiniteError(f"shard {index}: {exc}; nothing was written") from None
    extra = {k: v for k, v in cols.items() if k not in ("z", "c", TEXT_COLUMN)}
    data = encode_shard(identity, index, index * identity.rows_per_shard, cols["z"], cols["c"], extra, cols.get(TEXT_COLUMN))
    return data, ShardCheck(index, "ok", rows=rows, sha256=sha256(data))
