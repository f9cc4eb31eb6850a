"""External items files (a user's own training set in the item schema), validated on import."""

from __future__ import annotations

from pathlib import Path

from rmsd.errors import DataError
from rmsd.io import read_jsonl, write_jsonl

ITEM_FIELDS = ("id", "video", "task_type", "question", "answer")


def import_items(src: str, out_path: str) -> int:
    """Validate ``src`` (item-schema JSONL) and write it to ``out_path`` atomically.

    Checks every record for the required fields, a scorable ground truth
    (:func:`rmsd.scoring.validate_item`), unique ids and an existing video file.

    Raises:
        MissingArtifactError: ``src`` does not exist.
        DataError: naming the file, line and problem.
    """
    from rmsd.scoring import validate_item

    items = read_jsonl(src, required=ITEM_FIELDS)
    seen: dict[str, int] = {}
    for lineno, it in enumerate(items, 1):
        if not isinstance(it["id"], str):
            raise DataError(f"{src}:{lineno}: id must be a string, got {type(it['id']).__name__}")
        if it["id"] in seen:
            raise DataError(f"{src}:{lineno}: duplicate id {it['id']!r} (first on line {seen[it['id']]})")
        seen[it["id"]] = lineno
        try:
            validate_item(it)
        except DataError as e:
            raise DataError(f"{src}:{lineno}: {e}") from None
        if not Path(it["video"]).exists():
            raise DataError(f"{src}:{lineno}: video file {it['video']!r} does not exist")
    return write_jsonl(out_path, items)
