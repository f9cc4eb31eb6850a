"""V-STaR (benchmarks.md 2.6): importer, prompts and official scoring rule."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from rmsd.evaluation.benchmarks import settings as S
from rmsd.evaluation.benchmarks.base import Imported, make_item
from rmsd.evaluation.benchmarks.common import (
    Record,
    expand_annotation_paths,
    load_records,
    media_path,
)


VSTAR_LENGTHS = ((60.0, "Short"), (180.0, "Medium"), (math.inf, "Long"))
BOX_TOLERANCE_PX = 1.0
"""Slack (pixels) for V-STaR boxes outside the frame; beyond it the annotation is bad."""


def vstar_length_group(video_length_s: float) -> str:
    """V-STaR length group: Short < 60 s, Medium 60-180 s, Long >= 180 s."""
    for bound, name in VSTAR_LENGTHS:
        if video_length_s < bound:
            return name
    return "Long"


_FIRST_RELEASE_KEY = re.compile(r"(\d+(?:\.\d+)?)_(\d+)")


def _vstar_boxes(rec: Record, w: float, h: float) -> tuple[list[dict], list[list[float]]]:
    """GT boxes as ``[{"t", "box"}]`` on the 0-1000 scale, and the pixel boxes (for prompts)."""
    raw = rec.get("bboxes")
    if not isinstance(raw, list) or not raw:
        raise rec.error("field 'bboxes' must be a non-empty list of {timestamp, xmin, ymin, xmax, ymax}")
    frames, pixels = [], []
    for j, b in enumerate(raw):
        if not isinstance(b, dict):
            raise rec.error(f"bboxes[{j}] must be an object")
        if len(b) == 1 and isinstance(next(iter(b.values())), dict):
            # first-release layout (V_STaR_test_release.jsonl): {"{timestamp}_{frame_index}": box}
            (key, box), = b.items()
            m = _FIRST_RELEASE_KEY.fullmatch(str(key))
            if m is None:
                raise rec.error(f"bboxes[{j}]: key {key!r} is not '{{timestamp}}_{{frame_index}}'",
                                reason="bad first-release box key")
            b = {**box, "timestamp": float(m.group(1)), "frame_index": int(m.group(2))}
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


def import_vstar(data_root: str, s: dict, out_dir: str | None = None,
                 res: Imported | None = None) -> Imported:
    """V-STaR (benchmarks.md 2.6): vid, domain, fps, frame_count, width, height, question, answer,
    temporal_question, timestamps [start, end] (s), spatial_question, spatial_question_2, bboxes
    [{timestamp, xmin, ymin, xmax, ymax}] (pixels).

    Each record becomes up to five single-turn items with the official prompts (V-STaR
    ``inference_demo.py``), per ``settings.steps`` and ``settings.chains``: ``what`` (open, judged),
    chain 1 ``when`` (temporal) and ``where`` (spatial, told the whole seconds of the GT span),
    chain 2 ``where`` (told only how many boxes) and ``when`` (given the GT boxes without their
    times). Ids ``{vid}-{k}:{step}{chain}`` with k the record's ordinal among those of its video.
    Temporal ground truth stays in seconds; boxes go to the 0-1000 scale of the item schema.

    Layouts: the current release ``data/V_STaR_test.json`` (boxes ``{timestamp, frame_index, xmin,
    ymin, xmax, ymax}``) and the first release ``data/V_STaR_test_release.jsonl`` (boxes keyed
    ``{"{timestamp}_{frame_index}": {xmin, ymin, xmax, ymax}}``, as its ``data/README.md`` says).
    """
    res = Imported() if res is None else res
    ordinal: Counter = Counter()
    steps, chains = set(s["steps"]), set(s["chains"])
    for path in expand_annotation_paths(data_root, s["annotations"]):
        res.files.append(path)
        for rec in load_records(path):
            with res.record(rec):
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
                    res.add(make_item(rec, id=f"{base}:{suffix}", dataset=S.VSTAR, split=s["split"],
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
