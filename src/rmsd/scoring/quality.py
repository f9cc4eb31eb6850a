"""Quality score of one teacher response: ``q = 1[valid] * Metric`` (paper section 3.4).

Closed-ended tasks: ``q = valid * metric``. Open-ended tasks are not ranked, so ``q = float(valid)``
(paper 3.4, section 6 row 5); their ``metric`` is ROUGE-L F1 against the reference, kept for the
teacher-unreliability analysis of paper section 1.2 only.
"""

from __future__ import annotations

import math
from typing import Any

from rmsd.errors import DataError
from rmsd.scoring.config import ScoringConfig
from rmsd.scoring.formats import (
    BOX_SCALE,
    TaskCheck,
    check_outer,
    check_task,
    duration_of,
    n_options_of,
)
from rmsd.scoring.metrics import exact_match, metric, numeric_accuracy, spatial_iou, temporal_iou
from rmsd.tasks import CLOSED_TASKS, OPTION_LETTERS, TASK_TYPES

__all__ = ["ScoringConfig", "score_response", "validate_item"]


def _iid(item: dict) -> str:
    return str(item.get("id", item.get("item_id", "<no id>")))


def validate_item(item: dict) -> None:
    """Check that an item can be scored: known task type and a well-formed ground truth.

    Common fields: ``question``, when present, is a string; ``options``, when present and not
    null, a list of strings.

    Rules: mcq answer is a letter among the item's options; numeric a finite number; ocr a
    non-empty string; temporal ``[s, e]`` with ``0 <= s < e <= duration_s``; spatial a box or a
    non-empty list of ``{"t", "box"}`` frames whose boxes satisfy ``0 <= x1 < x2 <= 1000`` and
    ``0 <= y1 < y2 <= 1000``; open a string or null (no reference:
    the analysis metric is then NaN).

    Raises:
        DataError: the message names the item id and what is wrong.
    """
    task = item.get("task_type")
    if task not in TASK_TYPES:
        raise DataError(f"item {_iid(item)}: unknown task_type {task!r}; valid: {list(TASK_TYPES)}")
    if "answer" not in item:
        raise DataError(f"item {_iid(item)}: missing field 'answer'")
    if "question" in item and not isinstance(item["question"], str):
        raise DataError(
            f"item {_iid(item)}: question must be a string, got {type(item['question']).__name__}"
        )
    opts = item.get("options")
    if opts is not None and (
        not isinstance(opts, list) or not all(isinstance(o, str) for o in opts)
    ):
        raise DataError(
            f"item {_iid(item)}: options must be a list of strings or null, got {opts!r}"
        )
    ans = item["answer"]
    try:
        if task == "mcq":
            exact_match(ans, ans)
            n = n_options_of(item)
            if str(ans).strip().upper() not in OPTION_LETTERS[:n]:
                raise ValueError(f"answer {ans!r} is not among the {n} options")
        elif task == "numeric":
            numeric_accuracy(0.0, ans)
        elif task == "ocr":
            if not isinstance(ans, str) or not ans.strip():
                raise ValueError(f"ocr ground truth must be a non-empty string, got {ans!r}")
        elif task == "temporal":
            temporal_iou([0.0, 0.0], ans)  # validates the ground-truth span
            s, e = (float(v) for v in ans)
            if not 0 <= s < e <= duration_of(item):
                raise ValueError(f"span {ans!r} is not 0 <= start < end <= duration_s")
        elif task == "spatial":
            boxes = [f["box"] for f in ans] if isinstance(ans[0], dict) else [ans]
            spatial_iou([0.0, 0.0, 0.0, 0.0], ans)  # validates the ground-truth boxes
            for b in boxes:
                x1, y1, x2, y2 = (float(v) for v in b)
                if not (0 <= x1 < x2 <= BOX_SCALE and 0 <= y1 < y2 <= BOX_SCALE):
                    raise ValueError(f"box {b!r} is not 0 <= x1 < x2 <= 1000, 0 <= y1 < y2 <= 1000")
        elif ans is not None and not isinstance(ans, str):
            raise ValueError(f"open-ended reference must be a string or null, got {ans!r}")
    except (TypeError, ValueError, KeyError, IndexError, ArithmeticError) as e:
        # ArithmeticError: e.g. OverflowError of float() on a 400-digit JSON integer
        if isinstance(e, DataError):
            raise
        why = str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"
        raise DataError(f"item {_iid(item)}: bad {task} ground truth: {why}") from None


def score_response(text: str, item: dict, cfg: ScoringConfig) -> dict[str, Any]:
    """Check and score one response against its item (paper sections 3.4 and 3.7).

    Args:
        text: the raw response (any text; never raises on it).
        item: the item (``id``, ``task_type``, ``answer``, plus ``options``/``duration_s``).
        cfg: scoring configuration.

    Returns:
        ``valid_outer`` (R_outer), ``valid_task`` (R_task; False when the outer check failed and the
        task check was not run), ``valid`` (both), ``parsed`` (JSON-serialisable or None),
        ``metric`` (float in [0, 1]; 0.0 when invalid; NaN for an open item without reference),
        ``q`` (float in [0, 1]) and ``reason`` (None when valid, else ``"outer: ..."`` or
        ``"task: ..."``).

    >>> item = {"id": "i1", "task_type": "temporal", "duration_s": 5.0, "answer": [2.0, 4.0]}
    >>> r = score_response("<answer>[1, 3]</answer>", item, ScoringConfig())
    >>> r["valid"], round(r["q"], 4)
    (True, 0.3333)

    Raises:
        DataError: the item is malformed (names the item id).
    """
    validate_item(item)
    task = item["task_type"]
    oc = check_outer(text, cfg.template)
    if oc.valid:
        tc = check_task(oc.answer_text, item, cfg.open_max_words)
    else:
        tc = TaskCheck(False, None, None)
    valid = oc.valid and tc.valid
    if not valid:
        m = 0.0
    elif task == "open" and item["answer"] is None:
        m = math.nan
    else:
        try:
            m = float(metric(task, tc.parsed, item["answer"], cfg))
        except ValueError as e:
            raise DataError(f"item {_iid(item)}: cannot score against ground truth: {e}") from None
    q = (m if valid else 0.0) if task in CLOSED_TASKS else float(valid)
    if valid:
        reason = None
    elif not oc.valid:
        reason = f"outer: {oc.reason}"
    else:
        reason = f"task: {tc.reason}"
    return {
        "valid_outer": bool(oc.valid),
        "valid_task": bool(tc.valid),
        "valid": bool(valid),
        "parsed": tc.parsed,
        "metric": m,
        "q": float(q),
        "reason": reason,
    }
