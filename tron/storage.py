"""URIs to pyarrow filesystems: a local path, file://..., or s3://bucket/prefix.

S3 is configured the standard AWS way, from the environment: credentials (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, profiles), AWS_REGION / AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for S3-compatible stores such as MinIO, and AWS_MAX_ATTEMPTS
for how often a request that S3 answers with a 5xx, a throttle or a reset connection is tried, with
the AWS SDK's exponential backoff between tries (botocore reads the same variable).

A read or write that fails past its retries (or on a full disk) is a StorageError naming the file
in one line: every file here is written whole or not at all, so a rerun resumes.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from .errors import StorageError, TronError, one_line
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


S3_MAX_ATTEMPTS = 10  # pyarrow's default is 3: about a second of trouble; 10 ride out a blip of tens of seconds


def s3_max_attempts() -> int:
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    try:
        return max(1, int(value)) if value else S3_MAX_ATTEMPTS
    except ValueError:
        raise TronError(f"AWS_MAX_ATTEMPTS={value!r}: expected a whole number of attempts") from None


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem from the environment. A pickled S3FileSystem forgets its retry strategy:
    a Ray task makes its own with `location(uri)` rather than receiving the driver's."""
    kwargs = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
              "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=s3_max_attempts())}
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


def storage_error(loc: Location, path: str, doing: str, exc: OSError) -> StorageError:
    """A failed read or write as one line: where, what, the cause, and that a rerun resumes."""
    where = "s3://" + path if loc.is_s3 else path
    return StorageError(f"cannot {doing} {where}: {one_line(exc)}; nothing partial is left, so rerunning the same "
                        "command resumes")


def exists(loc: Location, path: str) -> bool:
    try:
        return loc.fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as exc:
        raise storage_error(loc, path, "look up", exc) from exc


def read_bytes(loc: Location, path: str) -> bytes:
    try:
        with loc.fs.open_input_stream(path) as f:
            return f.read()
    except OSError as exc:
        raise storage_error(loc, path, "read", exc) from exc


def write_bytes_atomic(loc: Location, path: str, data: bytes) -> None:
    """Make `path` visible only once complete: locally a temporary sibling renamed into place
    (tron.files); on S3 the final key is written directly, as an object becomes visible only when
    its upload completes (S3 has no rename)."""
    try:
        if loc.is_s3:
            with loc.fs.open_output_stream(path) as f:
                f.write(data)
            return
        atomic_write(path, data)
    except OSError as exc:
        raise storage_error(loc, path, "write", exc) from exc
