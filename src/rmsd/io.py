"""File formats and atomic writes: the only place records are serialised.

Every output is written to a temporary file in the destination directory, flushed, fsynced and
renamed over the target, so a killed job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from rmsd.errors import DataError, MissingArtifactError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()
"""Mode of files written through :func:`atomic_path`: what ``open()`` would give (mkstemp's own
0600 would make results unreadable to the rest of a group on a shared cluster)."""


def temp_prefix(path: str | os.PathLike) -> str:
    """Name prefix of the temporary files :func:`atomic_path` creates for ``path``."""
    return f".{Path(path).name}."


def remove_stale_temp_files(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete temporary files a killed writer left in ``directory`` for the outputs ``names``.

    A SIGKILL skips :func:`atomic_path`'s clean-up, so its temporary file (``.<name>.<random>``,
    and a derived ``..<name>.<random>...`` one) stays next to the untouched destination. Call this
    at the start of the stage that owns those outputs (only one job writes them at a time).

    Returns:
        The removed paths.
    """
    directory, names = Path(directory), [n for n in names if n]
    if not names or not directory.is_dir():
        return []
    pattern = re.compile(r"^\.+(?:" + "|".join(re.escape(n) for n in names) + r")\.")
    removed = []
    for p in directory.iterdir():
        if pattern.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _fsync_dir(directory: Path) -> None:
    """Best-effort fsync of a directory so a rename survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=suffix or ".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
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
    """Write records as JSON Lines to ``path`` atomically. Returns the number of records.

    Strings holding a lone UTF-16 surrogate (not encodable as UTF-8) are written with U+FFFD.
    """
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(_json_line(rec))
                n += 1
            f.flush()
            os.fsync(f.fileno())
    return n


class JsonlLine(NamedTuple):
    """One record of a JSONL file with where it came from."""

    lineno: int
    """1-based line number in the file."""
    record: dict
    repaired: bool
    """True when the line held invalid UTF-8 or lone surrogate escapes that were replaced by
    U+FFFD (only with ``invalid_utf8="replace"``)."""


_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
INVALID_UTF8 = ("error", "replace")


def _has_surrogate(obj: Any) -> bool:
    if isinstance(obj, str):
        return _SURROGATE_RE.search(obj) is not None
    if isinstance(obj, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_surrogate(v) for v in obj)
    return False


def _replace_surrogates(obj: Any) -> Any:
    if isinstance(obj, str):
        return _SURROGATE_RE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_surrogates(v) for v in obj]
    return obj


def read_jsonl_numbered(
    path: str | os.PathLike, required: Iterable[str] = (), *, invalid_utf8: str = "error"
) -> list[JsonlLine]:
    """Read a JSON Lines file, keeping each record's line number.

    Blank lines are skipped; a UTF-8 byte-order mark on the first line is ignored. A JSON string
    escape of a lone UTF-16 surrogate (``"\\ud800"``) is treated like invalid UTF-8: such text
    cannot be written back as UTF-8.

    Args:
        path: the file.
        required: keys every record must carry.
        invalid_utf8: ``"error"`` (a DataError naming the line) or ``"replace"`` (decode with
            U+FFFD replacement characters and mark the record ``repaired``; for files of model
            output, which is data).

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: a line is not valid UTF-8 (with ``"error"``), not valid JSON (also: nested too
            deeply, an integer with too many digits), not a JSON object, or lacks a required
            key; names file and line number.
    """
    if invalid_utf8 not in INVALID_UTF8:
        raise ValueError(f"invalid_utf8 must be one of {list(INVALID_UTF8)}, got {invalid_utf8!r}")
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path}: expected file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    required = tuple(required)
    out: list[JsonlLine] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            repaired = False
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if invalid_utf8 == "error":
                    raise DataError(
                        f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                        f"{e.start + 1})"
                    ) from None
                line, repaired = raw.decode("utf-8", errors="replace"), True
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except (ValueError, RecursionError) as e:  # e.g. a 5000-digit integer, deep nesting
                raise DataError(
                    f"{path}:{lineno}: not valid JSON ({type(e).__name__}: {e})"
                ) from None
            if not isinstance(rec, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}"
                )
            if _SURROGATE_ESCAPE_RE.search(line) and _has_surrogate(rec):
                if invalid_utf8 == "error":
                    raise DataError(
                        f"{path}:{lineno}: a string holds a lone UTF-16 surrogate escape "
                        "(\\ud800-\\udfff), which is not valid Unicode text"
                    )
                rec, repaired = _replace_surrogates(rec), True
            missing = [k for k in required if k not in rec]
            if missing:
                raise DataError(f"{path}:{lineno}: missing field(s) {missing}")
            out.append(JsonlLine(lineno, rec, repaired))
    return out


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict]:
    """Read a JSON Lines file (strict UTF-8); see :func:`read_jsonl_numbered`.

    Args:
        path: the file.
        required: keys every record must carry.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: a line is not valid UTF-8 or JSON, not a JSON object, or lacks a required key;
            names file and line number.
    """
    return [line.record for line in read_jsonl_numbered(path, required)]


class JsonlAppender:
    """Append records to a JSONL file durably, one flushed line at a time (for resumable jobs).

    A torn last line left by a kill is dropped by :func:`read_jsonl_resumable` on restart.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self._f.write(_json_line(rec))
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


def _json_line(rec: Any) -> str:
    """One JSONL line (UTF-8 text, NaN as null). A lone UTF-16 surrogate, which UTF-8 cannot
    encode (model output can carry one through a ``"\\ud800"`` JSON escape), is written as
    U+FFFD instead of failing the whole file."""
    line = json.dumps(_nan_to_none(rec), ensure_ascii=False)
    if _SURROGATE_RE.search(line):
        line = _SURROGATE_RE.sub("\ufffd", line)
    return line + "\n"


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
