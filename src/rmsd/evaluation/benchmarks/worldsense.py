"""WorldSense (benchmarks.md 2.8): importer and protocol."""

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


def import_worldsense(data_root: str, s: dict, out_dir: str | None = None,
        res: Imported | None = None) -> Imported:
    """WorldSense (benchmarks.md 2.8): index, video_path, duration, task_domain, task_type,
    audio_class (list), candidates ("A. ..."), answer (letter), question."""
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                options = strip_option_prefixes(rec.str_list("candidates"))
                answer = letter_of(rec, rec.str_("answer"), options)
                audio = rec.get("audio_class", [])
                if isinstance(audio, str):
                    audio = [audio] if audio.strip() else []
                if not isinstance(audio, list) or not all(isinstance(a, str) for a in audio):
                    raise rec.error(f"field 'audio_class' must be a list of strings, got {audio!r}")
                meta = {"task_domain": rec.str_("task_domain"), "task_type": rec.str_("task_type"),
                        "audio_class": audio, "prompt_key": "mcq"}
                duration = rec.opt_num("duration", positive=True)
                res.add(make_item(rec, id=rec.str_("index"), dataset=S.WORLDSENSE, split=s["split"],
                              video=media_path(data_root, s["media"], rec), duration_s=duration,
                              task_type="mcq", question=rec.str_("question"), options=options,
                              answer=answer, meta=meta), rec.loc)
    return res
