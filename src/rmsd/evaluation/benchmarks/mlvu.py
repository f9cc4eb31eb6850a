"""MLVU (benchmarks.md 2.3): importer, protocol and official scoring rule."""

from __future__ import annotations

from collections import Counter

from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, make_item
from rmsd.evaluation.benchmarks.common import (
    expand_annotation_paths,
    letter_of,
    load_records,
    matching_letters,
    media_path,
    options_from_text,
    strip_option_prefixes,
)


MLVU_OPEN_TYPES = ("subPlot", "sub_scene", "summary")
RELEASE_TYPES = S.MLVU_MCQ_TYPES + MLVU_OPEN_TYPES
"""Every task type name of the release; a record of another type not in ``task_types`` is a bad
record (a misspelt or renamed type), not one left out by the setting."""
TASK_ALIASES = {"needle": "findNeedle"}
"""Other names of the same task types (lmms-eval's ``MLVU_dev`` says ``needle``)."""


def import_mlvu(data_root: str, s: dict, out_dir: str | None = None,
                res: Imported | None = None) -> Imported:
    """MLVU MCQ (benchmarks.md 2.3), either layout:

    * original per-task JSON: ``video``, ``duration``, ``question``, ``candidates``, ``answer``
      (option text), ``question_type``;
    * lmms-eval: ``video_name``, ``question`` with the option lines inside, ``answer`` (letter),
      ``task_type``.

    Only the MCQ task types in ``settings.task_types`` (default :data:`settings.MLVU_MCQ_TYPES`)
    are kept (the release's other types, the open-ended ``subPlot`` and ``summary``, are counted
    under ``filtered``; a type that is neither configured nor one of the release's names,
    :data:`RELEASE_TYPES`, is skipped as "unknown task type" and counts against
    ``evaluation.min_import_share``); ``needle`` is read as the release's ``findNeedle``.
    An answer that several candidates share (``1_plotQA.json`` record 335: ``Three`` in
    ``[Six, Three, Three, Eight]``) takes the **last** matching letter, as the official
    ``choice_bench.py`` ``qa_template`` loop does; all matching letters are kept in
    ``meta.answer_letters`` (our rule accepts any of them) and the record is counted under
    ``notes``. A record with an empty question (``7_topic_reasoning.json`` record 26) or an answer
    outside its candidates (``2_needle.json`` records 34 and 338; the official scorer keeps them
    as unwinnable) is skipped and counted. Ids: ``question_id``/``id`` when present, else
    ``{task_type}-{n:05d}`` with n the record's position among its task type's records.
    """
    res = Imported() if res is None else res
    ordinal: Counter = Counter()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                task = rec.get("task_type") or rec.get("question_type")
                if not isinstance(task, str) or not task.strip():
                    raise rec.error("missing field 'task_type' (or 'question_type')")
                task = TASK_ALIASES.get(task, task)
                n = ordinal[task]
                ordinal[task] += 1
                if task not in {TASK_ALIASES.get(t, t) for t in s["task_types"]}:
                    if task not in RELEASE_TYPES:
                        raise rec.error(f"unknown task type {task!r} (the release's: "
                                        f"{list(RELEASE_TYPES)})", reason="unknown task type")
                    res.filtered[f"task type {task} not in task_types"] += 1
                    continue
                question = rec.get("question")
                if isinstance(question, str) and not question.strip():
                    raise rec.error("empty question", reason="empty question")
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
                answer = letter_of(rec, rec.data["answer"], options, duplicates="last")
                meta = {"task_type": task, "prompt_key": "mcq"}
                if isinstance(rec.data["answer"], str):
                    letters = matching_letters(rec.data["answer"], options)
                    if len(letters) > 1:
                        meta["answer_letters"] = letters
                        res.notes["answer matches several candidates (official: last)"] += 1
                video = rec.get("video") or rec.get("video_name")
                if not isinstance(video, str) or not video.strip():
                    raise rec.error("missing field 'video' (or 'video_name')")
                iid = rec.get("question_id", rec.get("id"))
                if iid is None:
                    iid = f"{task}-{n:05d}"
                res.add(make_item(rec, id=str(iid), dataset=S.MLVU, split=s["split"],
                              video=media_path(data_root, s["media"], rec, video=video,
                                               _stem=path.stem),
                              duration_s=rec.opt_num("duration", positive=True), task_type="mcq",
                              question=question, options=options, answer=answer,
                              meta=meta), rec.loc)
    return res
