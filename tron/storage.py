"""URIs to pyarrow filesystems: a local path, file://..., or s3://bucket/prefix.

S3 is configured the standard AWS way, from the environment: credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles), AWS_REGION / AWS_DEFAULT_REGION, and
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for S3-compatible stores such as MinIO.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from .errors import TronError
from .files import atomic_write


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    path: str  # filesystem path: "/abs/dir" locally, "bucket/prefix" on S3
    uri: str  # as the user wrote it, normalised

    def join(self, *parts: str) -> str:
        return posixpath.join(self.path, *parts)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_filesystem() -> pafs.S3FileSystem:
    kwargs = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    endpoint = s3_endpoint()
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


def location(uri: str | os.PathLike) -> Location:
    """The filesystem and path of a dataset URI."""
    uri = str(uri)
    if not uri:
        raise TronError("empty dataset URI")
    if uri.startswith("s3://"):
        rest = uri[len("s3://"):].strip("/")
        if not rest:
            raise TronError(f"{uri}: an S3 URI needs a bucket, e.g. s3://bucket/prefix")
        return Location(s3_filesystem(), rest, f"s3://{rest}")
    if "://" in uri and not uri.startswith("file://"):
        raise TronError(f"unsupported URI scheme in {uri!r}: use a local path, file://, or s3://")
    path = os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)
    return Location(pafs.LocalFileSystem(), path, path)


def exists(loc: Location, path: str) -> bool:
    return loc.fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(loc: Location, path: str) -> bytes:
    with loc.fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(loc: Location, path: str, data: bytes) -> None:
    """Make `path` visible only once complete: locally a temporary sibling renamed into place
    (tron.files); on S3 the final key is written directly, as an object becomes visible only when
    its upload completes (S3 has no rename)."""
    if loc.is_s3:
        with loc.fs.open_output_stream(path) as f:
            f.write(data)
        return
    atomic_write(path, data)
