"""Shared pieces of the benchmark importers: the import result and the item constructor.

Each benchmark's module (``videomme.py``, ``mlvu.py``, ...) holds its layouts, importer, protocol
settings and official scoring rule; :mod:`.importers` keeps the registry.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmsd.errors import DataError
from rmsd.evaluation.benchmarks.common import Record, media_path
from rmsd.scoring.formats import parse_number


@dataclass
class Imported:
    """Items of one benchmark with the location of the record each came from, and the counts.

    ``n_records`` counts every annotation record read (after un-nesting, e.g. one WorldSense
    question); ``skipped`` counts records dropped for a bad value, by reason (each reason with up
    to three example locations in ``skipped_examples``); ``filtered`` counts records left out by a
    setting (e.g. MLVU's open-ended task types), by reason. ``notes`` counts records imported with
    a documented repair (e.g. a null Video-MMMU ``question_type`` read from the options).
    """

    items: list[dict] = field(default_factory=list)
    locs: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    n_records: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    filtered: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    on_error: str = "skip"

    def add(self, item: dict, loc: str) -> None:
        self.items.append(item)
        self.locs.append(loc)

    @contextlib.contextmanager
    def record(self, rec: Record):
        """Count ``rec`` and guard its import: a DataError raised inside skips the record and
        counts its reason (``on_error == "skip"``) or propagates (``"fail"``)."""
        self.n_records += 1
        try:
            yield rec
        except DataError as e:
            if self.on_error == "fail":
                raise
            reason = getattr(e, "reason", None) or _reason_of(str(e), rec.loc)
            self.skipped[reason] += 1
            ex = self.skipped_examples.setdefault(reason, [])
            if len(ex) < 3:
                ex.append(rec.loc)


_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|-?\d+(?:\.\d+)?")


def _reason_of(message: str, loc: str) -> str:
    """A skip reason from a DataError message: the location prefix dropped, and quoted values and
    numbers replaced by ``…`` (so that ``answer 'Three' matches several options`` and ``answer
    'Red' matches several options`` count together), field names kept."""
    msg = message.split(f"{loc}: ", 1)[-1]
    keep = re.match(r"(missing field|field) ('[^']*')", msg)
    out = _QUOTED_RE.sub("…", msg)
    if keep:
        out = out.replace("…", keep.group(2), 1)
    return out[:100]


def make_item(rec: Record, *, id: str, dataset: str, split: str, video: str | None,
          duration_s: float | None, task_type: str, question: str, options: list[str] | None,
          answer: Any, meta: dict) -> dict:
    if not question.strip():
        raise rec.error("empty question", reason="empty question")
    return {"id": id, "dataset": dataset, "split": split, "video": video,
            "duration_s": duration_s, "task_type": task_type, "question": question,
            "options": options, "answer": answer, "meta": meta}


def free_form(rec: Record, answer: Any) -> tuple[str, Any]:
    """(task_type, answer) of a free-form answer: numeric when it is a plain number."""
    if isinstance(answer, bool) or answer is None:
        raise rec.error(f"bad answer {answer!r}")
    if isinstance(answer, (int, float)):
        if not math.isfinite(answer):
            raise rec.error(f"answer {answer!r} is not finite")
        return "numeric", answer
    if not isinstance(answer, str) or not answer.strip():
        raise rec.error(f"answer must be a non-empty string or number, got {answer!r}")
    x = parse_number(answer)
    if x is not None:
        return "numeric", int(x) if x.is_integer() and "." not in answer and "e" not in answer.lower() else x
    return "open", answer.strip()


def image_field(rec: Record, key: str, template: str, data_root: str, out_dir: str | None,
           item_id: str) -> str | None:
    """Path of an image field: a relative path (filled into ``template``), a dict with ``path``,
    or a dict with ``bytes`` (Parquet image feature: written under ``out_dir/media``)."""
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, str):
        return media_path(data_root, template, rec, **{key: v}) if v.strip() else None
    if isinstance(v, dict):
        data, name = v.get("bytes"), v.get("path")
        if data:
            if out_dir is None:
                raise rec.error(f"field {key!r} holds image bytes; an output directory is needed")
            ext = Path(str(name or "")).suffix or ".png"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id)
            dest = Path(out_dir) / "media" / f"{safe}{ext}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(bytes(data))
            return str(dest)
        if name:
            return media_path(data_root, template, rec, **{key: name})
        return None
    raise rec.error(f"field {key!r} must be an image path or an image object, got {type(v).__name__}")
