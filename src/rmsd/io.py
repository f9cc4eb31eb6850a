"""File formats and atomic writes: the only place records are serialised.

Every output is written to a temporary file in the destination directory, flushed, fsynced and
renamed over the target, so a killed job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rmsd.errors import DataError, MissingArtifactError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only if the block succeeds.

    Args:
        path: final destination. Its parent directory is created.
        suffix: suffix for the temporary file (some writers pick the format from it, e.g. ``.npy``).

    Raises:
        Whatever the block raises; the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN is written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSON Lines to ``path`` atomically. Returns the number of records."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(_nan_to_none(rec), ensure_ascii=False) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
    return n


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict]:
    """Read a JSON Lines file.

    Args:
        path: the file.
        required: keys every record must carry.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: a line is not a JSON object or lacks a required key; names file and line number.
    """
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path}: expected file does not exist")
    required = tuple(required)
    out = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {missing}")
            out.append(rec)
    return out


class JsonlAppender:
    """Append records to a JSONL file durably, one flushed line at a time (for resumable jobs).

    A torn last line left by a kill is dropped by :func:`read_jsonl_resumable` on restart.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self._f.write(json.dumps(_nan_to_none(rec), ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl_resumable(path: str | os.PathLike) -> list[dict]:
    """Read a partial JSONL written by :class:`JsonlAppender`; a torn final line is discarded.

    The file is rewritten without the torn line so later appends start on a clean line.
    Returns an empty list when the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        return []
    recs, good = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            recs.append(rec)
            good.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(good), encoding="utf-8")
    return recs


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def stable_hash(obj: Any, n_chars: int = 16) -> str:
    """Short hex SHA-256 of the canonical JSON of ``obj`` (sorted keys): a cache key."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n_chars]


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
