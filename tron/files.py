"""Local files written whole or not at all, and their content hashes.

A reader never sees a half-written file: it is written to a temporary sibling and renamed over the
target (a rename within a directory is atomic), and the temporary file goes when writing fails."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_replace(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Make `path` by `write(temporary_path)`, then rename it into place; creates the parent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes (or text, as UTF-8) to `path` atomically."""
    payload = data.encode() if isinstance(data, str) else data
    return atomic_replace(path, lambda tmp: Path(tmp).write_bytes(payload))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_file(path: str | os.PathLike, role: str) -> dict[str, str]:
    """{role: SHA-256} of a file, or {} when there is no such file (a name, not a path)."""
    return {role: file_sha256(path)} if Path(path).is_file() else {}


def hash_tree(root: str | os.PathLike, suffixes: tuple[str, ...] = (".json", ".safetensors", ".bin")) -> dict[str, str]:
    """{relative path: SHA-256} of the weights and config files under a directory."""
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix in suffixes)
    return {str(p.relative_to(root)): file_sha256(p) for p in files}
