"""Video-MMMU (benchmarks.md 2.7): importer and protocol."""

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




def import_videommmu(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """Video-MMMU (benchmarks.md 2.7): per track (Perception, Comprehension, Adaptation) id
    (``{split}_{Subject}_{n}``), question, options, answer, question_type (multiple-choice /
    perception / open), image (Adaptation). With ``question_only`` each Adaptation question is
    also imported as a ``question_only`` item on its 2-second question clip: the Delta-knowledge
    baseline (its ``meta.source_id`` links the pair).

    Item ids are ``{track}-{id}`` (lowercase track), since the tracks share video ids.
    """
    res = Imported()
    for track in s["tracks"]:
        for path in expand_annotation_paths(data_root, s["annotations"], track=track):
            res.files.append(path)
            for rec in load_records(path):
                res.n_records += 1
                sid = rec.str_("id")
                subject = "_".join(sid.split("_")[1:-1])
                discipline = SUBJECT_DISCIPLINE.get(subject)
                if discipline is None:
                    raise rec.error(f"id {sid!r}: unknown subject {subject!r} (ids look like "
                                    "'{split}_{Subject}_{n}')")
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
