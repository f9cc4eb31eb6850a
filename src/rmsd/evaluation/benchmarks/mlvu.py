"""MLVU (benchmarks.md 2.3): importer, protocol and official scoring rule."""

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


MLVU_OPEN_TYPES = ("subPlot", "sub_scene", "summary")


def import_mlvu(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """MLVU MCQ (benchmarks.md 2.3), either layout:

    * original per-task JSON: ``video``, ``duration``, ``question``, ``candidates``, ``answer``
      (option text), ``question_type``;
    * lmms-eval: ``video_name``, ``question`` with the option lines inside, ``answer`` (letter),
      ``task_type``.

    Only the MCQ task types in ``settings.task_types`` are kept (open-ended ones are counted as
    skipped). Ids: ``question_id``/``id`` when present, else ``{task_type}-{n:05d}``.
    """
    res = Imported()
    ordinal: Counter = Counter()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            task = rec.get("task_type") or rec.get("question_type")
            if not isinstance(task, str) or not task.strip():
                raise rec.error("missing field 'task_type' (or 'question_type')")
            if task not in s["task_types"]:
                res.skipped[f"task type {task}"] += 1
                continue
            question = rec.str_("question")
            parsed = options_from_text(question)
            if rec.has("candidates"):
                options = strip_option_prefixes(rec.str_list("candidates"))
                if parsed:
                    question = parsed[0] or question
            elif parsed:
                question, options = parsed
            else:
                raise rec.error("no options: neither 'candidates' nor option lines in 'question'")
            if not rec.has("answer"):
                raise rec.error("missing field 'answer'")
            answer = letter_of(rec, rec.data["answer"], options)
            video = rec.get("video") or rec.get("video_name")
            if not isinstance(video, str) or not video.strip():
                raise rec.error("missing field 'video' (or 'video_name')")
            iid = rec.get("question_id", rec.get("id"))
            if iid is None:
                iid = f"{task}-{ordinal[task]:05d}"
            ordinal[task] += 1
            res.add(make_item(rec, id=str(iid), dataset=S.MLVU, split=s["split"],
                          video=media_path(data_root, s["media"], rec, video=video,
                                           _stem=path.stem),
                          duration_s=rec.opt_num("duration", positive=True), task_type="mcq",
                          question=question, options=options, answer=answer,
                          meta={"task_type": task, "prompt_key": "mcq"}), rec.loc)
    return res
