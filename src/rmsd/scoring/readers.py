"""Readers of the scoring stage's inputs with file-and-line error messages.

Items and teacher samples are JSONL (design.md section 2) read through
:func:`rmsd.io.read_jsonl_numbered`, which keeps line numbers for the messages;
the scored pool is the parquet written by :func:`rmsd.scoring.pipeline.score_pool`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rmsd.errors import DataError, MissingArtifactError
from rmsd.io import JsonlLine, read_jsonl_numbered
from rmsd.scoring.quality import validate_item

ITEM_FIELDS: tuple[str, ...] = ("id", "task_type", "answer")
POOL_FIELDS: tuple[str, ...] = ("item_id", "teacher", "k", "text", "finish_reason", "n_tokens")
SCORED_FIELDS: tuple[str, ...] = ("item_id", "task_type", "teacher", "k", "text", "valid", "q")


def read_pool(path: str | os.PathLike) -> list[JsonlLine]:
    """Teacher samples of one pool file, with line numbers, every record type-checked.

    Model output is data: text with invalid UTF-8 bytes or lone surrogate escapes is decoded with
    U+FFFD replacement characters (the record is marked ``repaired``) instead of failing the file.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: bad JSON, a missing field or a wrongly typed field; names file and line.
    """
    path = Path(path)
    lines = read_jsonl_numbered(path, required=POOL_FIELDS, invalid_utf8="replace")
    for line in lines:
        check_sample(line.record, f"{path}:{line.lineno}")
    return lines


def read_items(path: str | os.PathLike) -> dict[str, dict]:
    """Items by id, in file order; every item is validated.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: bad JSON or UTF-8, missing field, non-string or duplicate id, or an invalid item
            (:func:`rmsd.scoring.quality.validate_item`); names file and line.
    """
    path = Path(path)
    items: dict[str, dict] = {}
    where_of: dict[str, int] = {}
    for ln, rec, _ in read_jsonl_numbered(path, required=ITEM_FIELDS):
        iid = rec["id"]
        if not isinstance(iid, str) or not iid:
            raise DataError(f"{path}:{ln}: item id must be a non-empty string, got {iid!r}")
        if iid in items:
            raise DataError(
                f"{path}:{ln}: duplicate item id {iid!r} (first on line {where_of[iid]})"
            )
        try:
            validate_item(rec)
        except DataError as e:
            raise DataError(f"{path}:{ln}: {e}") from None
        items[iid] = rec
        where_of[iid] = ln
    return items


def check_sample(rec: dict, where: str) -> None:
    """Type checks of one teacher sample record; ``where`` is ``"file:line"``.

    Raises:
        DataError: non-string ids/text, text not encodable as UTF-8, negative or non-integer ``k``
            or ``n_tokens``, non-string ``finish_reason``.
    """
    for key in ("item_id", "teacher"):
        if not isinstance(rec[key], str) or not rec[key]:
            raise DataError(f"{where}: {key} must be a non-empty string, got {rec[key]!r}")
    k = rec["k"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise DataError(f"{where}: k must be an integer >= 0, got {k!r}")
    if not isinstance(rec["text"], str):
        raise DataError(f"{where}: text must be a string, got {type(rec['text']).__name__}")
    try:
        rec["text"].encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a "\ud800" escape cannot be stored
        raise DataError(
            f"{where}: text is not encodable as UTF-8 ({e.reason} at {e.start})"
        ) from None
    if rec["finish_reason"] is not None and not isinstance(rec["finish_reason"], str):
        raise DataError(
            f"{where}: finish_reason must be a string or null, got {rec['finish_reason']!r}"
        )
    n = rec["n_tokens"]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise DataError(f"{where}: n_tokens must be an integer >= 0 or null, got {n!r}")


def read_scored(path: str | os.PathLike) -> list[dict]:
    """Rows (dicts with ``SCORED_FIELDS``, plus ``metric`` when the file has it) of a scored-pool parquet.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: unreadable parquet or missing columns (names the file).
    """
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path}: expected file does not exist")
    needed = list(SCORED_FIELDS)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    if "metric" in table.column_names:  # optional: open-ended quality weighting reads it
        needed.append("metric")
    return table.select(needed).to_pylist()
