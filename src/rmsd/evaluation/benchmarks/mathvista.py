"""MathVista testmini (benchmarks.md 2.4): importer and official scoring rule."""

from __future__ import annotations

import json
from pathlib import Path
import math

from rmsd.errors import DataError
from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, free_form, image_field, make_item
from rmsd.evaluation.benchmarks.common import (
    expand_annotation_paths,
    letter_of,
    load_records,
    matching_letters,
)
from rmsd.scoring.formats import parse_number


MATHVISTA_META = ("split", "source", "category", "task", "context", "grade", "language", "skills")


def import_mathvista(data_root: str, s: dict, out_dir: str | None = None,
                     res: Imported | None = None) -> Imported:
    """MathVista testmini (benchmarks.md 2.4): pid, question, image, choices, unit, precision,
    answer, question_type (multi_choice / free_form), answer_type (text / integer / float / list),
    query, metadata. Multiple choice answers are option texts (mapped to letters); free-form
    integer/float answers become numeric items (``meta.precision`` kept), text/list answers open
    items scored by math-verify. The image is the item's ``video`` (a one-frame visual).

    Layouts: the GitHub release ``data/testmini.json`` (an object keyed by pid, without ``query``;
    the prompts are in ``data/query.json``, pid -> query, read from ``settings.query_file`` when
    the prompt field is ``query``), and the Hugging Face ``AI4Math/MathVista`` parquet (``query``
    inline, image bytes under ``decoded_image``). ``annot_testmini.json`` is the release's
    source-annotation file, not the problems: its records are skipped as malformed.

    Duplicate choices (pid 781: ``[9, 12, 18, 18]``, answer ``18``): the official scorer compares
    option *texts*, so either letter is right; the item keeps the first letter and lists both in
    ``meta.answer_letters`` with ``meta.duplicate_rule = "any"``.
    """
    res = Imported() if res is None else res
    queries: dict | None = None
    if s["prompt_field"] == "query" and s.get("query_file"):
        qpath = Path(data_root) / s["query_file"]
        if qpath.exists():
            try:
                queries = json.loads(qpath.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                raise DataError(f"{qpath}: not a readable JSON object pid -> query ({e})") from None
            if not isinstance(queries, dict):
                raise DataError(f"{qpath}: expected a JSON object pid -> query")
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                pid = rec.str_("pid") if rec.has("pid") else rec.str_("_key")
                qtype, atype = rec.str_("question_type"), rec.str_("answer_type")
                if not rec.has("answer"):
                    raise rec.error("missing field 'answer'")
                ans = rec.data["answer"]
                options = None
                if qtype == "multi_choice":
                    options = [o.strip() for o in rec.str_list("choices")]
                    task, answer = "mcq", letter_of(rec, str(ans), options, prefer_text=True,
                                                    duplicates="first")
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
                if options is not None:
                    letters = matching_letters(str(ans), options)
                    if len(letters) > 1:
                        meta["answer_letters"], meta["duplicate_rule"] = letters, "any"
                        res.notes["answer matches several choices (official: any)"] += 1
                field_ = s["prompt_field"]
                if not rec.has(field_) and field_ == "query" and queries is not None:
                    if not isinstance(queries.get(pid), str):
                        raise rec.error(f"pid {pid!r} has no query in {s['query_file']}",
                                        reason="no query in the query file")
                    question = queries[pid]
                else:
                    question = rec.str_(field_)
                res.add(make_item(rec, id=pid, dataset=S.MATHVISTA, split=s["split"], video=image,
                              duration_s=None, task_type=task, question=question,
                              options=options, answer=answer, meta=meta), rec.loc)
    return res
