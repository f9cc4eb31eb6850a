"""Importers: each benchmark's native annotation format -> the item schema (rmsd.tasks).

One function per benchmark, ``import_<name>(data_root, settings, out_dir=None) -> Imported``; the
fields each reads are those of benchmarks.md section 2. Items carry the benchmark's categories in
``meta`` (used for the per-category breakdowns) and ``meta.prompt_key`` (which prompt template of
the benchmark settings applies). :func:`import_benchmark` dispatches by name and
:func:`write_benchmark_items` writes ``items.jsonl`` plus ``import.json`` (counts, files, hashes).

Failures: a missing annotation file raises MissingArtifactError naming it; a malformed record
(missing field, wrong type, duplicate id, answer not among the options) raises DataError naming the
file and record. Media files are not opened here (frame extraction checks them).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmsd.errors import ConfigError, DataError
from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.common import (
    Record,
    check_unique_ids,
    expand_annotation_paths,
    letter_of,
    load_records,
    media_path,
    options_from_text,
    strip_option_prefixes,
)
from rmsd.io import atomic_write_json, sha256_file, write_jsonl
from rmsd.scoring.formats import parse_number

__all__ = ["Imported", "import_benchmark", "write_benchmark_items", "IMPORTERS"]

VIDEOMME_DURATIONS = ("short", "medium", "long")
LVB_DURATION_GROUPS = (15, 60, 600, 3600)
MLVU_OPEN_TYPES = ("subPlot", "sub_scene", "summary")
VSTAR_LENGTHS = ((60.0, "Short"), (180.0, "Medium"), (math.inf, "Long"))
BOX_TOLERANCE_PX = 1.0
"""Slack (pixels) for V-STaR boxes outside the frame; beyond it the annotation is bad."""

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


@dataclass
class Imported:
    """Items of one benchmark with the location of the record each came from."""

    items: list[dict] = field(default_factory=list)
    locs: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    n_records: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, item: dict, loc: str) -> None:
        self.items.append(item)
        self.locs.append(loc)


def _item(rec: Record, *, id: str, dataset: str, split: str, video: str | None,
          duration_s: float | None, task_type: str, question: str, options: list[str] | None,
          answer: Any, meta: dict) -> dict:
    if not question.strip():
        raise rec.error("empty question")
    return {"id": id, "dataset": dataset, "split": split, "video": video,
            "duration_s": duration_s, "task_type": task_type, "question": question,
            "options": options, "answer": answer, "meta": meta}


def _free_form(rec: Record, answer: Any) -> tuple[str, Any]:
    """(task_type, answer) of a free-form answer: numeric when it is a plain number."""
    if isinstance(answer, bool) or answer is None:
        raise rec.error(f"bad answer {answer!r}")
    if isinstance(answer, (int, float)):
        if not math.isfinite(answer):
            raise rec.error(f"answer {answer!r} is not finite")
        return "numeric", answer
    if not isinstance(answer, str) or not answer.strip():
        raise rec.error(f"answer must be a non-empty string or number, got {answer!r}")
    x = parse_number(answer)
    if x is not None:
        return "numeric", int(x) if x.is_integer() and "." not in answer and "e" not in answer.lower() else x
    return "open", answer.strip()


def _image(rec: Record, key: str, template: str, data_root: str, out_dir: str | None,
           item_id: str) -> str | None:
    """Path of an image field: a relative path (filled into ``template``), a dict with ``path``,
    or a dict with ``bytes`` (Parquet image feature: written under ``out_dir/media``)."""
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, str):
        return media_path(data_root, template, rec, **{key: v}) if v.strip() else None
    if isinstance(v, dict):
        data, name = v.get("bytes"), v.get("path")
        if data:
            if out_dir is None:
                raise rec.error(f"field {key!r} holds image bytes; an output directory is needed")
            ext = Path(str(name or "")).suffix or ".png"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id)
            dest = Path(out_dir) / "media" / f"{safe}{ext}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(bytes(data))
            return str(dest)
        if name:
            return media_path(data_root, template, rec, **{key: name})
        return None
    raise rec.error(f"field {key!r} must be an image path or an image object, got {type(v).__name__}")


# --------------------------------------------------------------------------------------------------
# Video MCQ benchmarks
# --------------------------------------------------------------------------------------------------


def import_videomme(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """VideoMME (benchmarks.md 2.1): videoID, question_id, duration, domain, sub_category,
    task_type, question, options ("A. ..."), answer (letter)."""
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            duration = rec.str_("duration")
            if duration not in VIDEOMME_DURATIONS:
                raise rec.error(f"duration {duration!r} not in {list(VIDEOMME_DURATIONS)}")
            options = strip_option_prefixes(rec.str_list("options"))
            answer = letter_of(rec, rec.str_("answer"), options)
            meta = {"duration": duration, "domain": rec.str_("domain"),
                    "sub_category": rec.str_("sub_category"), "task_type": rec.str_("task_type"),
                    "video_id": rec.str_("videoID"), "prompt_key": "mcq"}
            res.add(_item(rec, id=rec.str_("question_id"), dataset=S.VIDEOMME, split=s["split"],
                          video=media_path(data_root, s["media"], rec), duration_s=None,
                          task_type="mcq", question=rec.str_("question"), options=options,
                          answer=answer, meta=meta), rec.loc)
    return res


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


def import_longvideobench(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """LongVideoBench (benchmarks.md 2.2): id, video_path, duration, duration_group,
    question_category, question, option0..4 (padded with "N/A") or candidates, correct_choice."""
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            options = _lvb_options(rec)
            answer = letter_of(rec, rec.int_("correct_choice"), options)
            group = rec.int_("duration_group")
            if group not in LVB_DURATION_GROUPS:
                raise rec.error(f"duration_group {group} not in {list(LVB_DURATION_GROUPS)}")
            meta = {"duration_group": group, "question_category": rec.str_("question_category"),
                    "prompt_key": "mcq"}
            if rec.has("topic_category"):
                meta["topic_category"] = rec.str_("topic_category")
            res.add(_item(rec, id=rec.str_("id"), dataset=S.LVB, split=s["split"],
                          video=media_path(data_root, s["media"], rec),
                          duration_s=rec.num("duration", positive=True), task_type="mcq",
                          question=rec.str_("question"), options=options, answer=answer,
                          meta=meta), rec.loc)
    return res


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
            res.add(_item(rec, id=str(iid), dataset=S.MLVU, split=s["split"],
                          video=media_path(data_root, s["media"], rec, video=video,
                                           _stem=path.stem),
                          duration_s=rec.opt_num("duration", positive=True), task_type="mcq",
                          question=question, options=options, answer=answer,
                          meta={"task_type": task, "prompt_key": "mcq"}), rec.loc)
    return res


def import_worldsense(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """WorldSense (benchmarks.md 2.8): index, video_path, duration, task_domain, task_type,
    audio_class (list), candidates ("A. ..."), answer (letter), question."""
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            options = strip_option_prefixes(rec.str_list("candidates"))
            answer = letter_of(rec, rec.str_("answer"), options)
            audio = rec.get("audio_class", [])
            if isinstance(audio, str):
                audio = [audio] if audio.strip() else []
            if not isinstance(audio, list) or not all(isinstance(a, str) for a in audio):
                raise rec.error(f"field 'audio_class' must be a list of strings, got {audio!r}")
            meta = {"task_domain": rec.str_("task_domain"), "task_type": rec.str_("task_type"),
                    "audio_class": audio, "prompt_key": "mcq"}
            duration = rec.opt_num("duration", positive=True)
            res.add(_item(rec, id=rec.str_("index"), dataset=S.WORLDSENSE, split=s["split"],
                          video=media_path(data_root, s["media"], rec), duration_s=duration,
                          task_type="mcq", question=rec.str_("question"), options=options,
                          answer=answer, meta=meta), rec.loc)
    return res


# --------------------------------------------------------------------------------------------------
# Video-MMMU
# --------------------------------------------------------------------------------------------------


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
                    task, answer = _free_form(rec, rec.data["answer"])
                kind = "mcq" if mcq else "open"
                meta = {"track": track.lower(), "subject": subject, "discipline": discipline,
                        "question_type": qtype, "source_id": sid,
                        "prompt_key": f"{track.lower()}_{kind}"}
                if track == "Adaptation":
                    meta["image"] = _image(rec, "image", s["image_media"], data_root, out_dir,
                                           f"{track}-{sid}")
                common = dict(dataset=S.VIDEOMMMU, split=s["split"], duration_s=None,
                              task_type=task, question=rec.str_("question"), options=options,
                              answer=answer)
                res.add(_item(rec, id=f"{track.lower()}-{sid}",
                              video=media_path(data_root, s["media"], rec, discipline=discipline),
                              meta=meta, **common), rec.loc)
                if track == "Adaptation" and s["question_only"]:
                    qmeta = {**meta, "track": "question_only", "image": None,
                             "prompt_key": f"question_only_{kind}"}
                    res.add(_item(rec, id=f"question_only-{sid}",
                                  video=media_path(data_root, s["question_only_media"], rec,
                                                   discipline=discipline),
                                  meta=qmeta, **common), rec.loc)
    return res


# --------------------------------------------------------------------------------------------------
# V-STaR
# --------------------------------------------------------------------------------------------------


def vstar_length_group(video_length_s: float) -> str:
    """V-STaR length group: Short < 60 s, Medium 60-180 s, Long >= 180 s."""
    for bound, name in VSTAR_LENGTHS:
        if video_length_s < bound:
            return name
    return "Long"


def _vstar_boxes(rec: Record, w: float, h: float) -> tuple[list[dict], list[list[float]]]:
    """GT boxes as ``[{"t", "box"}]`` on the 0-1000 scale, and the pixel boxes (for prompts)."""
    raw = rec.get("bboxes")
    if not isinstance(raw, list) or not raw:
        raise rec.error("field 'bboxes' must be a non-empty list of {timestamp, xmin, ymin, xmax, ymax}")
    frames, pixels = [], []
    for j, b in enumerate(raw):
        if not isinstance(b, dict):
            raise rec.error(f"bboxes[{j}] must be an object")
        sub = Record(f"{rec.loc}: bboxes[{j}]", b, rec.path)
        t = sub.num("timestamp", nonneg=True)
        x1, y1, x2, y2 = (sub.num(k) for k in ("xmin", "ymin", "xmax", "ymax"))
        if not (x1 <= x2 and y1 <= y2):
            raise sub.error(f"box [{x1}, {y1}, {x2}, {y2}] has xmin > xmax or ymin > ymax")
        tol = BOX_TOLERANCE_PX
        if min(x1, y1) < -tol or x2 > w + tol or y2 > h + tol:
            raise sub.error(f"box [{x1}, {y1}, {x2}, {y2}] outside the {w:g}x{h:g} frame")
        norm = [min(max(v, 0.0), 1000.0) for v in
                (1000 * x1 / w, 1000 * y1 / h, 1000 * x2 / w, 1000 * y2 / h)]
        frames.append({"t": int(t) if float(t).is_integer() else t,
                       "box": [round(v, 3) for v in norm]})
        pixels.append([int(v) if float(v).is_integer() else v for v in (x1, y1, x2, y2)])
    return frames, pixels


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def import_vstar(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """V-STaR (benchmarks.md 2.6): vid, domain, fps, frame_count, width, height, question, answer,
    temporal_question, timestamps [start, end] (s), spatial_question, spatial_question_2, bboxes
    [{timestamp, xmin, ymin, xmax, ymax}] (pixels).

    Each record becomes up to five single-turn items with the official prompts (V-STaR
    ``inference_demo.py``), per ``settings.steps`` and ``settings.chains``: ``what`` (open, judged),
    chain 1 ``when`` (temporal) and ``where`` (spatial, told the whole seconds of the GT span),
    chain 2 ``where`` (told only how many boxes) and ``when`` (given the GT boxes without their
    times). Ids ``{vid}-{k}:{step}{chain}`` with k the record's ordinal among those of its video.
    Temporal ground truth stays in seconds; boxes go to the 0-1000 scale of the item schema.
    """
    res = Imported()
    ordinal: Counter = Counter()
    steps, chains = set(s["steps"]), set(s["chains"])
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            vid = rec.str_("vid")
            fps = rec.num("fps", positive=True)
            frame_count = rec.num("frame_count", positive=True)
            w, h = rec.num("width", positive=True), rec.num("height", positive=True)
            length = round(frame_count / fps, 2)
            ts = rec.get("timestamps")
            if (not isinstance(ts, list) or len(ts) != 2 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in ts)):
                raise rec.error(f"field 'timestamps' must be [start_s, end_s], got {ts!r}")
            t0, t1 = float(ts[0]), float(ts[1])
            if not 0 <= t0 <= t1:
                raise rec.error(f"timestamps {ts!r} are not 0 <= start <= end")
            frames, pixels = _vstar_boxes(rec, w, h)
            base = f"{vid}-{ordinal[vid]}"
            ordinal[vid] += 1
            meta = {"vid": vid, "domain": rec.str_("domain"), "length": vstar_length_group(length),
                    "video_length_s": length, "width": w, "height": h, "fps": fps,
                    "source_id": base, "prompt_key": "default"}
            video = media_path(data_root, s["media"], rec)

            def add(step: str, chain: int, task: str, question: str, answer: Any,
                    **extra: Any) -> None:
                suffix = step if step == "what" else f"{step}{chain}"
                res.add(_item(rec, id=f"{base}:{suffix}", dataset=S.VSTAR, split=s["split"],
                              video=video, duration_s=length, task_type=task, question=question,
                              options=None, answer=answer,
                              meta={**meta, "step": step, "chain": chain, **extra}), rec.loc)

            if "what" in steps:
                q = rec.str_("question")
                add("what", 0, "open",
                    f"Answer the question about the video: {q} \n (If the answer is a person, "
                    "you don't need to identify the person.)", rec.str_("answer"), question_raw=q)
            tq = rec.str_("temporal_question") if "when" in steps else ""
            if 1 in chains:
                if "when" in steps:
                    add("when", 1, "temporal",
                        f"This video is {_num_text(length)} seconds long. Answer the question "
                        f"about the video: {tq} \n Output the start and end moment timestamps.",
                        [t0, t1])
                if "where" in steps:
                    sq = rec.str_("spatial_question")
                    rng = list(range(math.ceil(t0), math.floor(t1) + 1))
                    if not rng:  # span inside one second: ask for the annotated seconds
                        rng = sorted({int(f["t"]) for f in frames})
                    add("where", 1, "spatial",
                        f"Please answer the question about the video: {sq} with a series of "
                        "bounding boxes in [x1, y1, x2, y2] format. \n\nFor each whole second "
                        f"within the time range {rng} provided (inclusive of the boundaries), "
                        "output a series of bounding boxes of the object in JSON format. The keys "
                        "should be the whole seconds (as strings), and the values should be the "
                        "box in [x1, y1, x2, y2] format.\nExample output: "
                        f'{{"{rng[0]}": [x1, y1, x2, y2],...}}', frames)
            if 2 in chains:
                n = len(frames)
                if "where" in steps:
                    sq2 = rec.str_("spatial_question_2")
                    add("where", 2, "spatial",
                        f"Please answer the question about the video: {sq2} with a series of "
                        "bounding boxes in [x1, y1, x2, y2] format. \n\nFor each whole second that "
                        "may related to the question, output a series of bounding boxes of the "
                        f"object in JSON format. You only need to output {n} bbox(es). You need to "
                        "determine which frame is related to the question, and you don't need to "
                        "output the bbox for the frames not related to the question.\nThe keys "
                        "should be the whole seconds (as strings), and the values should be the "
                        "bounding box in [x0,y0,x1,y1] format. \n\n Example output:\n"
                        f'{{"0": [x0,y0,x1,y1], "1":..., ..., "{n}":...}} (if the frames at '
                        f"0~{n} second are related to the questions)", frames)
                if "when" in steps:
                    add("when", 2, "temporal",
                        f"This video is {_num_text(length)} seconds long with a resolution of "
                        f"{_num_text(w)}x{_num_text(h)} (width x height). Answer the question "
                        f"about the video: {tq} \n There are {n} bounding boxes of the key object "
                        "related to the question in the video without knowing the time, which "
                        f"are:{pixels}. Output the start and end moment timestamps.", [t0, t1])
    return res


# --------------------------------------------------------------------------------------------------
# Image math benchmarks
# --------------------------------------------------------------------------------------------------

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
            image = _image(rec, "image", s["media"], data_root, out_dir, pid)
            if image is None:
                raise rec.error("missing field 'image'")
            res.add(_item(rec, id=pid, dataset=S.MATHVISTA, split=s["split"], video=image,
                          duration_s=None, task_type=task, question=rec.str_(s["prompt_field"]),
                          options=options, answer=answer, meta=meta), rec.loc)
    return res


def import_mathverse(data_root: str, s: dict, out_dir: str | None = None) -> Imported:
    """MathVerse testmini (benchmarks.md 2.5): sample_index, problem_index, problem_version,
    question, image, answer, question_type (multi-choice / free-form), query_wo, query_cot,
    question_for_eval, metadata (subject, subfield).

    Multiple-choice options are read from the "Choices:" lines of the question; when they are only
    in the figure (vision-dominant/-only versions) the item gets ``settings.image_options``
    placeholder options (``meta.options_source = "image"``), which only sets the allowed letters.
    Records without an image (text-only problems) are skipped and counted.
    """
    res = Imported()
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            res.n_records += 1
            sid = rec.str_("sample_index")
            image = _image(rec, "image", s["media"], data_root, out_dir, sid)
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
                task, answer = _free_form(rec, ans)
            else:
                raise rec.error(f"question_type {qtype!r} not in ['multi-choice', 'free-form']")
            res.add(_item(rec, id=sid, dataset=S.MATHVERSE, split=s["split"], video=image,
                          duration_s=None, task_type=task,
                          question=rec.str_(s["prompt_field"]), options=options, answer=answer,
                          meta=meta), rec.loc)
    return res


IMPORTERS: dict[str, Callable[..., Imported]] = {
    S.VIDEOMME: import_videomme,
    S.LVB: import_longvideobench,
    S.MLVU: import_mlvu,
    S.WORLDSENSE: import_worldsense,
    S.VIDEOMMMU: import_videommmu,
    S.VSTAR: import_vstar,
    S.MATHVISTA: import_mathvista,
    S.MATHVERSE: import_mathverse,
}


def import_benchmark(name: str, data_root: str | os.PathLike, settings: dict | None = None,
                     out_dir: str | os.PathLike | None = None) -> Imported:
    """Import benchmark ``name`` from ``data_root`` into items (ids checked unique).

    Args:
        name: one of :data:`rmsd.evaluation.benchmarks.settings.BENCHMARK_NAMES`.
        data_root: the benchmarks' data directory (``evaluation.data_root``).
        settings: overrides of the benchmark's default settings (or already resolved ones).
        out_dir: where embedded image bytes are written (``out_dir/media``), if any.

    Raises:
        ConfigError: unknown benchmark or bad settings.
        MissingArtifactError: an annotation file is missing (names it).
        DataError: a malformed record (names file and record), or no items at all.
    """
    if name not in IMPORTERS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {list(IMPORTERS)}")
    s = S.resolve_settings(name, settings)
    res = IMPORTERS[name](str(data_root), s, None if out_dir is None else str(out_dir))
    check_unique_ids(res.items, res.locs)
    if s["limit"] is not None:
        res.items, res.locs = res.items[: s["limit"]], res.locs[: s["limit"]]
    if not res.items:
        raise DataError(f"{name}: no items imported from {[str(p) for p in res.files]}")
    return res


def write_benchmark_items(name: str, data_root: str | os.PathLike, settings: dict | None,
                          out_path: str | os.PathLike) -> dict:
    """Import ``name`` and write ``out_path`` (items.jsonl) and ``import.json`` beside it.

    Returns:
        The import stats: benchmark, data_root, files (path + sha256), n_records, n_items,
        skipped (reason -> count), task_types (counts), settings.
    """
    out_path = Path(out_path)
    res = import_benchmark(name, data_root, settings, out_dir=out_path.parent)
    write_jsonl(out_path, res.items)
    stats = {
        "benchmark": name,
        "data_root": str(data_root),
        "files": [{"path": str(p), "sha256": sha256_file(p)} for p in res.files],
        "n_records": res.n_records,
        "n_items": len(res.items),
        "skipped": dict(res.skipped),
        "task_types": dict(Counter(it["task_type"] for it in res.items)),
        "settings": S.resolve_settings(name, settings),
    }
    atomic_write_json(out_path.parent / "import.json", stats)
    return stats
