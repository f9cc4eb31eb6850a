"""MathVerse testmini (benchmarks.md 2.5): importer and official scoring rule."""

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


def import_mathverse(data_root: str, s: dict, out_dir: str | None = None,
        res: Imported | None = None) -> Imported:
    """MathVerse testmini (benchmarks.md 2.5): sample_index, problem_index, problem_version,
    question, image, answer, question_type (multi-choice / free-form), query_wo, query_cot,
    question_for_eval, metadata (subject, subfield).

    Multiple-choice options are read from the "Choices:" lines of the question; when they are only
    in the figure (vision-dominant/-only versions) the item gets ``settings.image_options``
    placeholder options (``meta.options_source = "image"``), which only sets the allowed letters.
    Records without an image (text-only problems) are skipped and counted.
    """
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                sid = rec.str_("sample_index")
                image = image_field(rec, "image", s["media"], data_root, out_dir, sid)
                if image is None:
                    res.skipped["no image (text-only)"] += 1
                    continue
                qtype = rec.str_("question_type")
                if not rec.has("answer"):
                    raise rec.error("missing field 'answer'")
                ans = rec.data["answer"]
                md = rec.dict_("metadata")
                meta = {"problem_version": rec.str_("problem_version"), "question_type": qtype,
                        "problem_index": rec.opt_str("problem_index"),
                        "subject": md.get("subject"), "subfield": md.get("subfield"),
                        "prompt_key": qtype}
                options = None
                if qtype == "multi-choice":
                    parsed = None
                    for key in ("question", "question_for_eval", s["prompt_field"]):
                        if rec.has(key):
                            parsed = options_from_text(rec.str_(key, allow_empty=True))
                            if parsed:
                                break
                    if parsed:
                        options, meta["options_source"] = parsed[1], "text"
                    else:
                        options = ["(option shown in the figure)"] * int(s["image_options"])
                        meta["options_source"] = "image"
                    task, answer = "mcq", letter_of(rec, str(ans), options)
                elif qtype == "free-form":
                    task, answer = free_form(rec, ans)
                else:
                    raise rec.error(f"question_type {qtype!r} not in ['multi-choice', 'free-form']")
                res.add(make_item(rec, id=sid, dataset=S.MATHVERSE, split=s["split"], video=image,
                              duration_s=None, task_type=task,
                              question=rec.str_(s["prompt_field"]), options=options, answer=answer,
                              meta=meta), rec.loc)
    return res
