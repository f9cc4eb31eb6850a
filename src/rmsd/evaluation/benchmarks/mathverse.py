"""MathVerse testmini (benchmarks.md 2.5): importer and official scoring rule."""

from __future__ import annotations

import re

from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, free_form, image_field, make_item
from rmsd.evaluation.benchmarks.common import (
    expand_annotation_paths,
    letter_of,
    load_records,
    options_from_text,
)
from rmsd.tasks import OPTION_LETTERS


PLACEHOLDER = "(option shown in the figure)"
_MULTI_LETTER = re.compile(r"[A-Na-n](?:\s*(?:,|\n|and|\s)\s*[A-Na-n])+")


def _extend(options: list[str], letter: str, res: Imported) -> list[str]:
    """Placeholder options up to ``letter`` (counted when more than assumed are needed)."""
    n = OPTION_LETTERS.index(letter) + 1
    if n > len(options):
        res.notes["placeholder options extended to the answer letter"] += 1
        return options + [PLACEHOLDER] * (n - len(options))
    return options


TEXT_ONLY_VERSION = "Text Only"
"""``problem_version`` of the release's text-only problems (``testmini_text_only.json``)."""


def _text_only(rec, path) -> bool:
    """True for a record of the release's text-only problems: ``problem_version`` "Text Only" or
    a record of the text-only release file (``*text_only*.json``)."""
    version = rec.get("problem_version")
    return (isinstance(version, str) and version.strip().lower() == TEXT_ONLY_VERSION.lower()) \
        or "text_only" in path.name.lower()


def import_mathverse(data_root: str, s: dict, out_dir: str | None = None,
                     res: Imported | None = None) -> Imported:
    r"""MathVerse testmini (benchmarks.md 2.5): sample_index, problem_index, problem_version,
    question, image, answer, question_type (multi-choice / free-form), query_wo, query_cot,
    question_for_eval, metadata (subject, subfield).

    Multiple-choice options are read from the "Choices:" lines of the question; when they are only
    in the figure (vision-dominant/-only versions) the item gets ``settings.image_options``
    placeholder options (``meta.options_source = "image"``), which only sets the allowed letters.
    Records of the release's text-only problems (``problem_version`` "Text Only", the file
    ``testmini_text_only.json``), which have no image, are left out and counted under
    ``filtered``; any other record without an image (``image`` absent, null, ``""`` or ``{}``)
    is a bad record: skipped under the reason "missing image" (it counts against
    ``evaluation.min_import_share``).

    Answer forms of the release: a letter; several letters (``C\nD``, "Choose 2 answers": an item
    whose ``meta.answer_letters`` must all be chosen, nothing else); an option text (``False``,
    ``090^\circ T``: mapped to its letter when the options are in the text, else scored as a
    free-form answer); a letter beyond the assumed placeholder count (``F`` with five assumed: the
    placeholders are extended). Each repair is counted under ``notes``.
    """
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
                sid = rec.str_("sample_index")
                image = image_field(rec, "image", s["media"], data_root, out_dir, sid)
                if image is None:
                    if _text_only(rec, path):
                        res.filtered["no image (text-only problem)"] += 1
                        continue
                    raise rec.error("missing image (field 'image' is absent, null or empty)",
                                    reason="missing image")
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
                        options = [PLACEHOLDER] * int(s["image_options"])
                        meta["options_source"] = "image"
                    a = str(ans).strip()
                    multi = _MULTI_LETTER.fullmatch(a)
                    single = re.fullmatch(r"\(?([A-Na-n])\)?\.?", a)
                    if multi:
                        # "C\nD" (choose 2 answers): every letter must be given, nothing else
                        letters = re.findall(r"[A-N]", a.upper())
                        if meta["options_source"] == "image":
                            options = _extend(options, max(letters), res)
                        for x in letters:
                            letter_of(rec, x, options)
                        meta["answer_letters"], meta["multi_letter"] = letters, True
                        res.notes["multi-letter answer (all letters required)"] += 1
                        task, answer = "mcq", ", ".join(letters)
                    elif single and meta["options_source"] == "image":
                        # the figure may hold more options than assumed ("F" with 5 assumed)
                        options = _extend(options, single.group(1).upper(), res)
                        task, answer = "mcq", letter_of(rec, a, options)
                    elif meta["options_source"] == "image":
                        # an option text as the answer, the options only in the figure: the
                        # letter cannot be known, so the text is scored as a free-form answer
                        res.notes["option-text answer, options only in the figure (open)"] += 1
                        meta["options_source"] = "image (answer is option text)"
                        options = None
                        task, answer = "open", a
                    else:
                        task, answer = "mcq", letter_of(rec, a, options)
                elif qtype == "free-form":
                    task, answer = free_form(rec, ans)
                else:
                    raise rec.error(f"question_type {qtype!r} not in ['multi-choice', 'free-form']")
                res.add(make_item(rec, id=sid, dataset=S.MATHVERSE, split=s["split"], video=image,
                              duration_s=None, task_type=task,
                              question=rec.str_(s["prompt_field"]), options=options, answer=answer,
                              meta=meta), rec.loc)
    return res
