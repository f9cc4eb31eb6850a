"""WorldSense (benchmarks.md 2.8): importer and protocol."""

from __future__ import annotations

import re

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


_TASK_KEY = re.compile(r"task\d+")
_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?)?\s*")


def _unnest(records: list[Record], path) -> list[Record]:
    """The official ``worldsense_qa.json`` layout -- one object per video id with its questions
    under ``task0`` ... ``task4`` -- as one record per question (the video's fields merged in,
    ``index`` = ``{video id}-{taskN}`` unless the question has one, ``video_path`` =
    ``{video id}.mp4`` unless given); flat records (the harnesses' layout) pass through."""
    out: list[Record] = []
    for rec in records:
        tasks = {k: v for k, v in rec.data.items() if _TASK_KEY.fullmatch(str(k))}
        if not tasks:
            out.append(rec)
            continue
        vid = str(rec.data.get("_key", rec.data.get("video_id", "")))
        video = {k: v for k, v in rec.data.items() if k not in tasks and k != "_key"}
        for k, q in tasks.items():
            data = {"video_id": vid, "video_path": f"{vid}.mp4", "index": f"{vid}-{k}", **video,
                    **(q if isinstance(q, dict) else {"question": q})}
            out.append(Record(f"{rec.loc} {k}", data, path))
    return out


def _duration(rec: Record) -> tuple[float | None, str | None]:
    """(seconds, bucket): ``duration`` is seconds in the flat layout and a bucket string such as
    ``'>8min'`` in the release, whose length in seconds is ``video_duration`` (e.g. ``"60s"``)."""
    d = rec.get("duration")
    bucket = d if isinstance(d, str) and not _SECONDS.fullmatch(d) else None
    for key in ("video_duration", "duration"):
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return rec.opt_num(key, positive=True), bucket
        if isinstance(v, str) and (m := _SECONDS.fullmatch(v)):
            return float(m.group(1)), bucket
    return None, bucket


def import_worldsense(data_root: str, s: dict, out_dir: str | None = None,
                      res: Imported | None = None) -> Imported:
    """WorldSense (benchmarks.md 2.8): index, video_path, duration, domain, task_domain,
    task_type, audio_class (list), candidates ("A. ..."), answer (letter), question.

    Layouts: the flat records of the harnesses (lmms-eval ``lmms-lab/worldsense``) and the official
    ``worldsense_qa.json`` nested per video (``task0`` ... ``task4``; ``duration`` a bucket such as
    ``'>8min'``, kept as ``meta.duration_bucket``, the length in ``video_duration``). The video
    ``domain`` (8 values) goes to ``meta.domain``.
    """
    res = Imported() if res is None else res
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in _unnest(load_records(path), path):
            with res.record(rec):
                options = strip_option_prefixes(rec.str_list("candidates"))
                answer = letter_of(rec, rec.str_("answer"), options)
                audio = rec.get("audio_class", [])
                if isinstance(audio, str):
                    audio = [audio] if audio.strip() else []
                if not isinstance(audio, list) or not all(isinstance(a, str) for a in audio):
                    raise rec.error(f"field 'audio_class' must be a list of strings, got {audio!r}")
                meta = {"task_domain": rec.str_("task_domain"), "task_type": rec.str_("task_type"),
                        "audio_class": audio, "prompt_key": "mcq"}
                if rec.has("domain"):
                    meta["domain"] = rec.str_("domain")
                duration, bucket = _duration(rec)
                if bucket is not None:
                    meta["duration_bucket"] = bucket
                res.add(make_item(rec, id=str(rec.get("index")) if rec.has("index") else
                                  rec.str_("index"), dataset=S.WORLDSENSE, split=s["split"],
                              video=media_path(data_root, s["media"], rec), duration_s=duration,
                              task_type="mcq", question=rec.str_("question"), options=options,
                              answer=answer, meta=meta), rec.loc)
    return res
