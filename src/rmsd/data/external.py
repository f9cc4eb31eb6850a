"""External items files (a user's own training set in the item schema), validated on import."""

from __future__ import annotations

import os
from pathlib import Path

from rmsd.errors import DataError
from rmsd.io import read_jsonl_numbered, write_jsonl
from rmsd.tasks import TASK_TYPES

ITEM_FIELDS = ("id", "video", "task_type", "question", "answer")


def check_record(rec: dict, where: str) -> None:
    """Field types of one external item; ``where`` is ``"file:line"``.

    Raises:
        DataError: ``id``, ``video`` or ``question`` not a non-empty string, unknown ``task_type``,
            or a ground truth :func:`rmsd.scoring.validate_item` rejects (e.g. an MCQ answer that
            is not among the options); the message starts with ``where``.
    """
    from rmsd.scoring import validate_item

    for key in ("id", "video", "question"):
        v = rec[key]
        if not isinstance(v, str) or not v.strip():
            raise DataError(f"{where}: {key} must be a non-empty string, got {v!r}")
    if rec["task_type"] not in TASK_TYPES:
        raise DataError(
            f"{where}: unknown task_type {rec['task_type']!r}; valid: {list(TASK_TYPES)}"
        )
    try:
        validate_item(rec)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None


def import_items(src: str | os.PathLike, out_path: str | os.PathLike) -> int:
    """Validate ``src`` (item-schema JSONL) and write it to ``out_path`` atomically.

    Checks every record for the required fields and their types, a scorable ground truth
    (:func:`rmsd.scoring.validate_item`), unique ids and an existing video file. A relative
    ``video`` path is relative to the directory of ``src`` (the file that names it), and is
    written out as an absolute path. Nothing is written unless every record passes.

    Returns:
        The number of items written.

    Raises:
        MissingArtifactError: ``src`` does not exist.
        DataError: naming the file, line and problem (no items at all, bad JSON or UTF-8, a missing
            or wrongly typed field, a duplicate id, an answer not among the options, a missing video).
    """
    lines = read_jsonl_numbered(src, required=ITEM_FIELDS)
    if not lines:
        raise DataError(f"{src}: no items (the file is empty or holds only blank lines)")
    seen: dict[str, int] = {}
    for lineno, it, _ in lines:
        where = f"{src}:{lineno}"
        check_record(it, where)
        if it["id"] in seen:
            raise DataError(f"{where}: duplicate id {it['id']!r} (first on line {seen[it['id']]})")
        seen[it["id"]] = lineno
        video = resolve_video(src, it["video"])
        try:
            is_file = video.is_file()
        except (ValueError, OSError) as e:  # a NUL byte, a name too long
            raise DataError(f"{where}: video path {it['video']!r} is invalid ({e})") from None
        if not is_file:
            shown = it["video"] if Path(it["video"]).is_absolute() else f"{it['video']} (= {video})"
            raise DataError(f"{where}: video file {shown} does not exist (relative paths are "
                            "relative to the items file)")
    return write_jsonl(out_path, [{**line.record, "video": str(resolve_video(src, line.record["video"]))}
                                  for line in lines])


def resolve_video(items_file: str | os.PathLike, video: str) -> Path:
    """``video`` as an absolute path: relative paths are taken relative to the directory of the
    items file that names them (not the working directory)."""
    p = Path(video)
    return p if p.is_absolute() else (Path(items_file).resolve().parent / p)
