"""VideoMME (benchmarks.md 2.1): importer and protocol."""

from __future__ import annotations


from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, make_item
from rmsd.evaluation.benchmarks.common import (
    Record,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
    strip_option_prefixes,
)


VIDEOMME_DURATIONS = ("short", "medium", "long")


def _unnest(records: list[Record], path) -> list[Record]:
    """The template layout (video objects with a ``questions`` list) as one record per question,
    the video's fields merged in (location ``file: record i question j``); rows pass through."""
    out: list[Record] = []
    for rec in records:
        qs = rec.data.get("questions")
        if not isinstance(qs, list):
            out.append(rec)
            continue
        video = {k: v for k, v in rec.data.items() if k != "questions"}
        for j, q in enumerate(qs):
            data = {**video, **q} if isinstance(q, dict) else {"question": q}
            out.append(Record(f"{rec.loc} question {j}", data, path))
    return out


def import_videomme(data_root: str, s: dict, out_dir: str | None = None,
                    res: Imported | None = None) -> Imported:
    """VideoMME (benchmarks.md 2.1): videoID, question_id, duration, domain, sub_category,
    task_type, question, options ("A. ..."), answer (letter).

    Layouts: the Hugging Face ``lmms-lab/Video-MME`` parquet (one row per question) and the
    official evaluation template ``output_test_template.json`` of the Video-MME repository (one
    object per video -- ``video_id``, ``duration``, ``domain``, ``sub_category`` -- with its
    ``questions`` list; the template has no YouTube ``videoID``, so its items carry ``video_id``
    and the media template should use ``{video_id}``)."""
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in _unnest(load_records(path), path):
            with res.record(rec):
                duration = rec.str_("duration")
                if duration not in VIDEOMME_DURATIONS:
                    raise rec.error(f"duration {duration!r} not in {list(VIDEOMME_DURATIONS)}")
                options = strip_option_prefixes(rec.str_list("options"))
                answer = letter_of(rec, rec.str_("answer"), options)
                meta = {"duration": duration, "domain": rec.str_("domain"),
                        "sub_category": rec.str_("sub_category"), "task_type": rec.str_("task_type"),
                        "video_id": rec.str_("videoID" if rec.has("videoID") else "video_id"),
                        "prompt_key": "mcq"}
                res.add(make_item(rec, id=rec.str_("question_id"), dataset=S.VIDEOMME, split=s["split"],
                              video=media_path(data_root, s["media"], rec), duration_s=None,
                              task_type="mcq", question=rec.str_("question"), options=options,
                              answer=answer, meta=meta), rec.loc)
    return res
