"""VideoMME (benchmarks.md 2.1): importer and protocol."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, free_form, image_field, make_item
from rmsd.evaluation.benchmarks.common import (
    Record,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
    options_from_text,
    strip_option_prefixes,
)
from rmsd.scoring.formats import parse_number


VIDEOMME_DURATIONS = ("short", "medium", "long")


def import_videomme(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """VideoMME (benchmarks.md 2.1): videoID, question_id, duration, domain, sub_category,
    task_type, question, options ("A. ..."), answer (letter)."""
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            duration = rec.str_("duration")
            if duration not in VIDEOMME_DURATIONS:
                raise rec.error(f"duration {duration!r} not in {list(VIDEOMME_DURATIONS)}")
            options = strip_option_prefixes(rec.str_list("options"))
            answer = letter_of(rec, rec.str_("answer"), options)
            meta = {"duration": duration, "domain": rec.str_("domain"),
                    "sub_category": rec.str_("sub_category"), "task_type": rec.str_("task_type"),
                    "video_id": rec.str_("videoID"), "prompt_key": "mcq"}
            res.add(make_item(rec, id=rec.str_("question_id"), dataset=S.VIDEOMME, split=s["split"],
                          video=media_path(data_root, s["media"], rec), duration_s=None,
                          task_type="mcq", question=rec.str_("question"), options=options,
                          answer=answer, meta=meta), rec.loc)
    return res
