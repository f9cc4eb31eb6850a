"""Video-MMMU (benchmarks.md 2.7): importer and protocol."""

from __future__ import annotations


from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, free_form, image_field, make_item
from rmsd.evaluation.benchmarks.common import (
    Record,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
    strip_option_prefixes,
)


SUBJECT_DISCIPLINE: dict[str, str] = {
    **dict.fromkeys(["Art", "Art_Theory", "Design", "Music"], "Art"),
    **dict.fromkeys(["Biology", "Chemistry", "Geography", "Math", "Physics"], "Science"),
    **dict.fromkeys(["History", "Literature", "Sociology", "Psychology"], "Humanities"),
    **dict.fromkeys(["Agriculture", "Architecture_and_Engineering", "Computer_Science",
                     "Electronics", "Energy_and_Power", "Materials", "Mechanical_Engineering"],
                    "Engineering"),
    **dict.fromkeys(["Basic_Medical_Science", "Clinical_Medicine",
                     "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"],
                    "Medicine"),
    **dict.fromkeys(["Accounting", "Economics", "Finance", "Manage", "Marketing"], "Business"),
}
"""Video-MMMU subject (from ids ``{split}_{Subject}_{n}``) -> discipline (video folder)."""


def _unnest(records: list[Record], path) -> list[Record]:
    """The GitHub layout ``{"<Track>": {"0": {...}, "1": {...}}}`` as one record per question
    (location ``file: <Track> record '<n>'``); flat layouts pass through."""
    out: list[Record] = []
    for rec in records:
        key = rec.data.get("_key")
        inner = {k: v for k, v in rec.data.items() if k != "_key"}
        if key in S.VMMMU_TRACKS and inner and all(isinstance(v, dict) for v in inner.values()):
            out.extend(Record(f"{path}: {key} record {k!r}", v, path) for k, v in inner.items())
        else:
            out.append(rec)
    return out


def import_videommmu(data_root: str, s: dict, out_dir: str | None = None,
                     res: Imported | None = None) -> Imported:
    """Video-MMMU (benchmarks.md 2.7): per track (Perception, Comprehension, Adaptation) id
    (``{split}_{Subject}_{n}``), question, options, answer, question_type (multiple-choice /
    perception / open), image (Adaptation). With ``question_only`` each Adaptation question is
    also imported as a ``question_only`` item on its 2-second question clip: the Delta-knowledge
    baseline (its ``meta.source_id`` links the pair).

    Item ids are ``{track}-{id}`` (lowercase track), since the tracks share video ids.

    Layouts: the Hugging Face ``lmms-lab/VideoMMMU`` parquet per track (``{track}/test-*.parquet``)
    and the GitHub release ``data/{track_lower}_video.json`` (one object ``{"Perception": {"0":
    {...}, ...}}`` per file, without ``question_type`` on Perception/Comprehension). A missing or
    null ``question_type`` (one Adaptation row, ``validation_Accounting_13``) is read from the
    options (options -> multiple-choice, none -> open) and counted under ``notes``. Questions have
    up to 14 options (letters A..N: ``validation_Basic_Medical_Science_10`` in Perception).
    """
    res = Imported() if res is None else res
    for track in s["tracks"]:
        for path in expand_annotation_paths(data_root, s["annotations"], track=track,
                                            track_lower=track.lower()):
            res.files.append(path)
            for rec in _unnest(load_records(path), path):
                with res.record(rec):
                    sid = rec.str_("id")
                    subject = "_".join(sid.split("_")[1:-1])
                    discipline = SUBJECT_DISCIPLINE.get(subject)
                    if discipline is None:
                        raise rec.error(f"id {sid!r}: unknown subject {subject!r} (ids look like "
                                        "'{split}_{Subject}_{n}')")
                    qtype = rec.get("question_type")
                    if qtype is None:
                        opts = rec.get("options")
                        qtype = "multiple-choice" if isinstance(opts, list) and opts else "open"
                        res.notes["question_type missing, read from the options"] += 1
                    else:
                        qtype = rec.str_("question_type")
                    mcq = qtype in ("multiple-choice", "perception")
                    if not mcq and qtype != "open":
                        raise rec.error(f"question_type {qtype!r} not in ['multiple-choice', "
                                        "'perception', 'open']")
                    if not rec.has("answer"):
                        raise rec.error("missing field 'answer'")
                    if mcq:
                        options = strip_option_prefixes(rec.str_list("options"))
                        task, answer = "mcq", letter_of(rec, rec.data["answer"], options)
                    else:
                        options = None
                        task, answer = free_form(rec, rec.data["answer"])
                    kind = "mcq" if mcq else "open"
                    meta = {"track": track.lower(), "subject": subject, "discipline": discipline,
                            "question_type": qtype, "source_id": sid,
                            "prompt_key": f"{track.lower()}_{kind}"}
                    if track == "Adaptation":
                        meta["image"] = image_field(rec, "image", s["image_media"], data_root, out_dir,
                                               f"{track}-{sid}")
                    common = dict(dataset=S.VIDEOMMMU, split=s["split"], duration_s=None,
                                  task_type=task, question=rec.str_("question"), options=options,
                                  answer=answer)
                    res.add(make_item(rec, id=f"{track.lower()}-{sid}",
                                  video=media_path(data_root, s["media"], rec, discipline=discipline),
                                  meta=meta, **common), rec.loc)
                    if track == "Adaptation" and s["question_only"]:
                        qmeta = {**meta, "track": "question_only", "image": None,
                                 "prompt_key": f"question_only_{kind}"}
                        res.add(make_item(rec, id=f"question_only-{sid}",
                                      video=media_path(data_root, s["question_only_media"], rec,
                                                       discipline=discipline),
                                      meta=qmeta, **common), rec.loc)
    return res
