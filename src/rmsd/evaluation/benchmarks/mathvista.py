"""MathVista testmini (benchmarks.md 2.4): importer and official scoring rule."""

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


MATHVISTA_META = ("split", "source", "category", "task", "context", "grade", "language", "skills")


def import_mathvista(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """MathVista testmini (benchmarks.md 2.4): pid, question, image, choices, unit, precision,
    answer, question_type (multi_choice / free_form), answer_type (text / integer / float / list),
    query, metadata. Multiple choice answers are option texts (mapped to letters); free-form
    integer/float answers become numeric items (``meta.precision`` kept), text/list answers open
    items scored by math-verify. The image is the item's ``video`` (a one-frame visual)."""
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            pid = rec.str_("pid") if rec.has("pid") else rec.str_("_key")
            qtype, atype = rec.str_("question_type"), rec.str_("answer_type")
            if not rec.has("answer"):
                raise rec.error("missing field 'answer'")
            ans = rec.data["answer"]
            options = None
            if qtype == "multi_choice":
                options = [o.strip() for o in rec.str_list("choices")]
                task, answer = "mcq", letter_of(rec, str(ans), options, prefer_text=True)
            elif qtype == "free_form":
                if atype == "integer":
                    x = parse_number(str(ans))
                    if x is None or not x.is_integer():
                        raise rec.error(f"integer answer expected, got {ans!r}")
                    task, answer = "numeric", int(x)
                elif atype == "float":
                    x = parse_number(str(ans))
                    if x is None:
                        raise rec.error(f"float answer expected, got {ans!r}")
                    task, answer = "numeric", x
                elif atype in ("text", "list"):
                    task, answer = "open", str(ans).strip()
                    if not answer:
                        raise rec.error("empty answer")
                else:
                    raise rec.error(f"answer_type {atype!r} not in ['text', 'integer', 'float', 'list']")
            else:
                raise rec.error(f"question_type {qtype!r} not in ['multi_choice', 'free_form']")
            md = rec.dict_("metadata")
            meta = {"question_type": qtype, "answer_type": atype,
                    "precision": rec.opt_num("precision", nonneg=True),
                    "unit": rec.opt_str("unit"), "prompt_key": qtype}
            for k in MATHVISTA_META:
                v = md.get(k, rec.get(k))
                if v is not None:
                    meta[k] = list(v) if isinstance(v, (list, tuple)) else str(v)
            image = image_field(rec, "image", s["media"], data_root, out_dir, pid)
            if image is None:
                raise rec.error("missing field 'image'")
            res.add(make_item(rec, id=pid, dataset=S.MATHVISTA, split=s["split"], video=image,
                          duration_s=None, task_type=task, question=rec.str_(s["prompt_field"]),
                          options=options, answer=answer, meta=meta), rec.loc)
    return res
