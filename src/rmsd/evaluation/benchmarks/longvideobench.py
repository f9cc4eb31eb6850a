"""LongVideoBench (benchmarks.md 2.2): importer and protocol."""

from __future__ import annotations


from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, make_item
from rmsd.evaluation.benchmarks.common import (
    Record,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
)


LVB_DURATION_GROUPS = (15, 60, 600, 3600)


def _lvb_options(rec: Record) -> list[str]:
    if rec.has("candidates"):
        opts = rec.str_list("candidates")
    else:
        opts = []
        while rec.has(f"option{len(opts)}"):
            opts.append(rec.str_(f"option{len(opts)}", allow_empty=True))
        if not opts:
            raise rec.error("missing field 'option0' (or 'candidates')")
    while opts and opts[-1].strip() == "N/A":  # padding to five options
        opts.pop()
    return [o.strip() for o in opts]


def import_longvideobench(data_root: str, s: dict, out_dir: str | None = None,
                          res: Imported | None = None) -> Imported:
    """LongVideoBench (benchmarks.md 2.2): id, video_path, duration, duration_group,
    question_category, question, option0..4 (padded with "N/A") or candidates, correct_choice."""
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                options = _lvb_options(rec)
                answer = letter_of(rec, rec.int_("correct_choice"), options)
                group = rec.int_("duration_group")
                if group not in LVB_DURATION_GROUPS:
                    raise rec.error(f"duration_group {group} not in {list(LVB_DURATION_GROUPS)}")
                meta = {"duration_group": group, "question_category": rec.str_("question_category"),
                        "prompt_key": "mcq"}
                if rec.has("topic_category"):
                    meta["topic_category"] = rec.str_("topic_category")
                res.add(make_item(rec, id=rec.str_("id"), dataset=S.LVB, split=s["split"],
                              video=media_path(data_root, s["media"], rec),
                              duration_s=rec.num("duration", positive=True), task_type="mcq",
                              question=rec.str_("question"), options=options, answer=answer,
                              meta=meta), rec.loc)
    return res
