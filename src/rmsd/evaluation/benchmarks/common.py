"""Reading native benchmark annotation files and checking their fields.

Annotation files are JSON (a list of records, or an object of records keyed by id), JSON Lines or
Parquet (Hugging Face dataset shards). Every record carries its location (file and line, record
index or key, or row), so a bad annotation raises :class:`rmsd.errors.DataError` naming file and
record; a missing file raises :class:`rmsd.errors.MissingArtifactError` naming the expected path.
"""

from __future__ import annotations

import glob
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rmsd.errors import DataError, MissingArtifactError
from rmsd.io import read_jsonl_numbered
from rmsd.tasks import OPTION_LETTERS

__all__ = [
    "Record",
    "check_unique_ids",
    "expand_annotation_paths",
    "letter_of",
    "load_records",
    "media_path",
    "options_from_text",
    "strip_option_prefixes",
]

MIN_OPTIONS = 2


class Record:
    """One annotation record with its location, and typed accessors that raise DataError.

    Args:
        loc: human-readable location, e.g. ``"data/x.jsonl:3"`` or ``"data/x.json: record 2"``.
        data: the record.
        path: the annotation file.
    """

    def __init__(self, loc: str, data: dict, path: Path):
        self.loc = loc
        self.data = data
        self.path = path

    def error(self, msg: str, reason: str | None = None) -> DataError:
        """A DataError that names this record; ``reason`` (a short, value-free category such as
        ``"answer not among the options"``) is what a skipped record is counted under."""
        e = DataError(f"{self.loc}: {msg}")
        e.reason = reason  # type: ignore[attr-defined]
        return e

    def has(self, key: str) -> bool:
        """True when ``key`` is present and not null (NaN from Parquet counts as null)."""
        v = self.data.get(key)
        return v is not None and not (isinstance(v, float) and math.isnan(v))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when absent or null."""
        return self.data[key] if self.has(key) else default

    def str_(self, key: str, allow_empty: bool = False) -> str:
        """A required string field (ids given as integers are accepted and converted)."""
        if not self.has(key):
            raise self.error(f"missing field {key!r}")
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise self.error(f"field {key!r} must be a string, got {type(v).__name__} {v!r}")
        v = str(v)
        if not allow_empty and not v.strip():
            raise self.error(f"field {key!r} is empty")
        return v

    def opt_str(self, key: str) -> str | None:
        """An optional string field (None when absent or null)."""
        return self.str_(key, allow_empty=True) if self.has(key) else None

    def int_(self, key: str) -> int:
        """A required integer field (``3.0`` and ``"3"`` are accepted as 3)."""
        if not self.has(key):
            raise self.error(f"missing field {key!r}")
        v = self.data[key]
        if isinstance(v, bool):
            raise self.error(f"field {key!r} must be an integer, got {v!r}")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v):
            return int(v)
        raise self.error(f"field {key!r} must be an integer, got {type(v).__name__} {v!r}")

    def num(self, key: str, positive: bool = False, nonneg: bool = False) -> float:
        """A required finite number field (numeric strings accepted)."""
        if not self.has(key):
            raise self.error(f"missing field {key!r}")
        return self._as_num(key, self.data[key], positive, nonneg)

    def opt_num(self, key: str, positive: bool = False, nonneg: bool = False) -> float | None:
        """An optional finite number field (None when absent or null)."""
        return self._as_num(key, self.data[key], positive, nonneg) if self.has(key) else None

    def _as_num(self, key: str, v: Any, positive: bool, nonneg: bool) -> float:
        x: float | None = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            x = float(v)
        elif isinstance(v, str):
            try:
                x = float(v.strip())
            except ValueError:
                x = None
        if x is None or not math.isfinite(x):
            raise self.error(f"field {key!r} must be a finite number, got {v!r}")
        if positive and x <= 0:
            raise self.error(f"field {key!r} must be > 0, got {v!r}")
        if nonneg and x < 0:
            raise self.error(f"field {key!r} must be >= 0, got {v!r}")
        return x

    def str_list(self, key: str, allow_empty: bool = False) -> list[str]:
        """A required list of strings (a JSON-encoded list in a string is accepted)."""
        if not self.has(key):
            raise self.error(f"missing field {key!r}")
        v = self.data[key]
        if isinstance(v, str) and v.strip().startswith("["):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                raise self.error(f"field {key!r} is not a JSON list: {v[:80]!r}") from None
        if not isinstance(v, (list, tuple)) or not all(
            isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v
        ):
            raise self.error(f"field {key!r} must be a list of strings, got {v!r}")
        if not v and not allow_empty:
            raise self.error(f"field {key!r} is an empty list")
        return [str(x) for x in v]

    def dict_(self, key: str) -> dict:
        """An optional mapping field; {} when absent."""
        v = self.get(key, {})
        if not isinstance(v, dict):
            raise self.error(f"field {key!r} must be an object, got {type(v).__name__}")
        return v


def _plain(v: Any) -> Any:
    """NumPy/pandas values from Parquet as plain Python (arrays to lists, scalars to numbers)."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return _plain(v.tolist())
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def load_records(path: str | Path) -> list[Record]:
    """Read the records of one annotation file.

    Formats by suffix: ``.jsonl`` (one object per line; location ``file:line``), ``.json`` (a list
    of objects, location ``file: record i`` with 0-based i; or an object whose values are objects,
    location ``file: record 'key'``, the key stored as ``_key``), ``.parquet`` (location
    ``file: row i``).

    Raises:
        MissingArtifactError: the file does not exist (names the path).
        DataError: unreadable file, unsupported suffix or a record that is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: expected benchmark annotation file does not exist")
    suffix = path.suffix.lower()
    out: list[Record] = []
    if suffix == ".jsonl":
        return [Record(f"{path}:{ln.lineno}", ln.record, path) for ln in read_jsonl_numbered(path)]
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        if isinstance(data, list):
            for i, rec in enumerate(data):
                if not isinstance(rec, dict):
                    raise DataError(f"{path}: record {i}: expected a JSON object")
                out.append(Record(f"{path}: record {i}", rec, path))
            return out
        if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
            for key, rec in data.items():
                out.append(Record(f"{path}: record {key!r}", {**rec, "_key": key}, path))
            return out
        raise DataError(f"{path}: expected a list of records or an object of records")
    if suffix == ".parquet":
        import pandas as pd

        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001  (pyarrow raises many types on bad files)
            raise DataError(f"{path}: unreadable Parquet ({type(e).__name__}: {e})") from None
        for i, rec in enumerate(df.to_dict(orient="records")):
            out.append(Record(f"{path}: row {i}", {k: _plain(v) for k, v in rec.items()}, path))
        return out
    raise DataError(f"{path}: unsupported annotation format {suffix!r} (use .json, .jsonl, .parquet)")


def expand_annotation_paths(data_root: str | Path, pattern: str, **fields: str) -> list[Path]:
    """The annotation files of a benchmark: ``data_root / pattern`` with ``{field}``s filled and
    glob characters expanded (sorted).

    Raises:
        MissingArtifactError: a plain path does not exist, or a glob matches nothing (names the
            expected path or pattern).
    """
    rel = pattern.format(**fields) if fields else pattern
    full = Path(data_root) / rel
    if any(c in rel for c in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(full)))
        if not matches:
            raise MissingArtifactError(f"{full}: no benchmark annotation file matches this pattern")
        return matches
    if not full.is_file():
        raise MissingArtifactError(f"{full}: expected benchmark annotation file does not exist")
    return [full]


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def media_path(data_root: str | Path, template: str, rec: Record, **extra: Any) -> str:
    """The media file of a record: ``data_root / template`` formatted with the record's fields.

    ``{field}`` placeholders take the record's values (and ``extra``). The file need not exist
    (frame extraction checks that).

    Raises:
        DataError: the template names a field the record lacks (names the record).
    """
    fields = _Fields({**{k: v for k, v in rec.data.items() if v is not None}, **extra})
    try:
        rel = template.format_map(fields)
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise rec.error(f"media template {template!r} cannot be filled ({type(e).__name__}: {e})")
    return str(Path(data_root) / rel)


_PREFIX_RES = (
    r"^\s*{L}\s*[.:)]\s*",  # "A. x", "A: x", "A) x"
    r"^\s*\(\s*{L}\s*\)\s*",  # "(A) x"
)


def strip_option_prefixes(options: Sequence[str]) -> list[str]:
    """Remove letter prefixes ("A. ", "(A) ", "A: ") when *every* option carries its own letter.

    >>> strip_option_prefixes(["A. red", "B. blue"]), strip_option_prefixes(["A. red", "blue"])
    (['red', 'blue'], ['A. red', 'blue'])
    """
    stripped = []
    for letter, opt in zip(OPTION_LETTERS, options):
        for pat in _PREFIX_RES:
            m = re.match(pat.format(L=letter), opt)
            if m:
                stripped.append(opt[m.end():].strip())
                break
        else:
            return [str(o).strip() for o in options]
    if len(stripped) != len(options):
        return [str(o).strip() for o in options]
    return stripped


_OPTION_LINE_RE = re.compile(r"^\s*\(?([A-J])\s*[).:]\s*(.*\S)\s*$")


def options_from_text(text: str) -> tuple[str, list[str]] | None:
    """Split "stem + lettered option lines" text into (stem, options).

    Option lines look like ``(A) x``, ``A. x``, ``A: x`` or ``A) x`` and must run A, B, C, ...
    without gaps; a line "Options:" or "Choices:" just before them is dropped from the stem. None
    when fewer than two option lines are found.

    >>> options_from_text("Which?\\n(A) red\\n(B) blue")
    ('Which?', ['red', 'blue'])
    """
    lines = text.splitlines()
    start = None
    opts: list[str] = []
    for i, line in enumerate(lines):
        m = _OPTION_LINE_RE.match(line)
        expected = OPTION_LETTERS[len(opts)] if len(opts) < len(OPTION_LETTERS) else None
        if m and m.group(1) == expected:
            if not opts:
                start = i
            opts.append(m.group(2).strip())
        elif opts:
            break
    if len(opts) < MIN_OPTIONS or start is None:
        return None
    stem_lines = lines[:start]
    while stem_lines and not stem_lines[-1].strip():
        stem_lines.pop()
    if stem_lines and re.fullmatch(r"\s*(options|choices)\s*:?\s*", stem_lines[-1], re.I):
        stem_lines.pop()
    return "\n".join(stem_lines).strip(), opts


def letter_of(rec: Record, answer: Any, options: Sequence[str], prefer_text: bool = False,
              duplicates: str = "error") -> str:
    """The answer as an option letter, checked against the options.

    Accepts a letter (``"B"``, ``"(B)"``, ``"B."``), a 0-based index (int) or the option text.
    With ``prefer_text`` (answers that are option texts, e.g. MathVista) an exact option text
    match is tried before the letter forms. An option text that several options share resolves
    by ``duplicates``: ``"error"`` raises, ``"last"`` takes the last match (MLVU's official
    ``qa_template`` loop), ``"first"`` the first (:func:`matching_letters` gives them all).

    Raises:
        DataError: the answer is not among the options (names the record; reason
            ``answer not among the options`` or ``answer matches several options``).
    """
    n = len(options)
    if not MIN_OPTIONS <= n <= len(OPTION_LETTERS):
        raise rec.error(f"needs {MIN_OPTIONS}..{len(OPTION_LETTERS)} options, got {n}",
                        reason=f"not {MIN_OPTIONS}..{len(OPTION_LETTERS)} options")
    missing = "answer not among the options"
    if isinstance(answer, bool):
        raise rec.error(f"answer {answer!r} is not among the {n} options", reason=missing)
    if isinstance(answer, int):
        if 0 <= answer < n:
            return OPTION_LETTERS[answer]
        raise rec.error(f"answer index {answer} is not among the {n} options", reason=missing)
    if isinstance(answer, str):
        a = answer.strip()
        matches = matching_letters(a, options)
        if prefer_text and len(matches) == 1:
            return matches[0]
        top = OPTION_LETTERS[max(n, 10) - 1]
        m = re.fullmatch(rf"\(?([A-{top}a-{top.lower()}])\)?\.?", a)
        if m:
            letter = m.group(1).upper()
            if letter in OPTION_LETTERS[:n]:
                return letter
            raise rec.error(f"answer {answer!r} is not among the {n} options", reason=missing)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            if duplicates == "last":
                return matches[-1]
            if duplicates == "first":
                return matches[0]
            raise rec.error(f"answer {answer!r} matches several options",
                            reason="answer matches several options")
    raise rec.error(f"answer {answer!r} is not among the {n} options {list(options)!r}",
                    reason=missing)


def matching_letters(answer: str, options: Sequence[str]) -> list[str]:
    """The letters of every option whose text equals ``answer`` (stripped), in order.

    >>> matching_letters("Three", ["Six", "Three", "Three", "Eight"])
    ['B', 'C']
    """
    a = answer.strip()
    return [OPTION_LETTERS[i] for i, o in enumerate(options) if o.strip() == a]


def check_unique_ids(items: Iterable[dict], locs: Iterable[str]) -> None:
    """Raise DataError on the first duplicate item id, naming both records."""
    first: dict[str, str] = {}
    for it, loc in zip(items, locs):
        if it["id"] in first:
            raise DataError(f"{loc}: duplicate id {it['id']!r} (first at {first[it['id']]})")
        first[it["id"]] = loc
