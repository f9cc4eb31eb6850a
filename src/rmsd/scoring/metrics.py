"""Per-task answer metrics, all in [0, 1] (paper section 3.4; defaults from paper section 6 row 3).

Pure functions. ``parsed`` values come from :func:`rmsd.scoring.formats.check_task`; ground truths
follow the item conventions of :mod:`rmsd.tasks`. A malformed *ground truth* raises ``ValueError``
(the caller names the item); model predictions never raise once they passed ``check_task``.

Units: temporal spans in seconds; boxes on the 0-1000 normalised scale; everything else unitless.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rmsd.scoring.formats import parse_number
from rmsd.tasks import OPTION_LETTERS

_INT_TEXT_RE = re.compile(r"[+-]?[0-9]+")


def exact_match(pred: str, gt: str) -> float:
    """MCQ exact match of option letters (case-insensitive, stripped), in {0, 1}.

    >>> exact_match("B", "b"), exact_match("B", "C")
    (1.0, 0.0)

    Raises:
        ValueError: ``gt`` is not an option letter.
    """
    g = str(gt).strip().upper()
    if len(g) != 1 or g not in OPTION_LETTERS:
        raise ValueError(f"mcq ground truth must be an option letter, got {gt!r}")
    return float(str(pred).strip().upper() == g)


def _gt_number(gt: Any) -> tuple[float, bool]:
    """(value, is_integer_gt). Integer-ness is read from the JSON type: ``3`` is an integer count,
    ``3.0`` is a measurement; a string GT is integer when written without point or exponent."""
    if isinstance(gt, bool):
        raise ValueError(f"numeric ground truth must be a number, got {gt!r}")
    if isinstance(gt, int):
        return float(gt), True
    if isinstance(gt, float):
        if not math.isfinite(gt):
            raise ValueError(f"numeric ground truth must be finite, got {gt!r}")
        return gt, False
    if isinstance(gt, str):
        v = parse_number(gt)
        if v is None:
            raise ValueError(f"numeric ground truth is not a number: {gt!r}")
        return v, bool(_INT_TEXT_RE.fullmatch(gt.strip()))
    if hasattr(gt, "item"):  # numpy scalar
        return _gt_number(gt.item())
    raise ValueError(f"numeric ground truth must be a number, got {type(gt).__name__}")


def numeric_accuracy(pred: float, gt: Any, eps: float = 0.05) -> float:
    """Epsilon-accuracy (paper section 3.4; eps default from section 6 row 3), in {0, 1}.

    * integer ground truth (JSON integer, e.g. a count): exact, ``pred == gt`` (``3.0`` matches
      ``3``);
    * other ground truth ``g != 0``: relative error ``|p - g| / |g| <= eps``;
    * ground truth ``0.0`` (a float): absolute error ``|p| <= eps``.

    >>> numeric_accuracy(3.0, 3), numeric_accuracy(3.1, 3), numeric_accuracy(2.6, 2.5)
    (1.0, 0.0, 1.0)

    Raises:
        ValueError: the ground truth is not a finite number, or ``eps < 0``.
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    g, is_int = _gt_number(gt)
    p = float(pred)
    if not math.isfinite(p):
        return 0.0
    if is_int:
        return float(p == g)
    if g == 0.0:
        return float(abs(p) <= eps)
    return float(abs(p - g) / abs(g) <= eps)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit-cost insertions, deletions, substitutions) between two strings.

    >>> levenshtein("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _norm_text(s: str) -> str:
    return " ".join(str(s).casefold().split())


def anls(pred: str, gt: str, threshold: float = 0.5) -> float:
    """ANLS-style OCR similarity (paper section 6 row 3), in [0, 1].

    Both strings are casefolded and their whitespace collapsed; then
    ``s = 1 - levenshtein(p, g) / max(len(p), len(g))`` and the score is ``s`` if ``s >= threshold``
    else 0. Two empty strings score 1.

    >>> anls("CAT", "cat"), anls("CAT", "CAR"), anls("CAT", "DOG")
    (1.0, 0.6666666666666667, 0.0)
    """
    p, g = _norm_text(pred), _norm_text(gt)
    longest = max(len(p), len(g))
    if longest == 0:
        return 1.0
    # The distance is at least the length difference: skip the O(len p * len g) DP when that
    # alone puts the similarity below the threshold (exactly the same result).
    if 1.0 - abs(len(p) - len(g)) / longest < threshold:
        return 0.0
    s = 1.0 - levenshtein(p, g) / longest
    return s if s >= threshold else 0.0


def _span(x: Any, what: str) -> tuple[float, float]:
    try:
        s, e = (float(v) for v in x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be [start_s, end_s], got {x!r}") from None
    if not (math.isfinite(s) and math.isfinite(e)) or e < s:
        raise ValueError(f"{what} must be a finite [start_s, end_s] with start <= end, got {x!r}")
    return s, e


def temporal_iou(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Temporal IoU of two ``[start_s, end_s]`` spans (paper section 3.4; V-STaR "When"), in [0, 1].

    ``inter = max(0, min(e1, e2) - max(s1, s2))``, ``union = (e1 - s1) + (e2 - s2) - inter``.
    Two identical zero-length spans score 1.

    >>> temporal_iou([1, 3], [2, 4])
    0.3333333333333333

    Raises:
        ValueError: a span is not two finite numbers with start <= end.
    """
    s1, e1 = _span(pred, "predicted span")
    s2, e2 = _span(gt, "ground-truth span")
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = (e1 - s1) + (e2 - s2) - inter
    if union <= 0:
        return float(s1 == s2 and e1 == e2)
    return inter / union


def _box(x: Any, what: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be [x1, y1, x2, y2], got {x!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
        raise ValueError(f"{what} must be finite with x1 <= x2 and y1 <= y2, got {x!r}")
    return x1, y1, x2, y2


def box_iou(pred: Sequence[float], gt: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes (continuous areas, no +1), in [0, 1].

    >>> box_iou([0, 0, 10, 10], [5, 0, 15, 10])
    0.3333333333333333

    Raises:
        ValueError: a box is not four finite numbers with x1 <= x2, y1 <= y2.
    """
    a, b = _box(pred, "predicted box"), _box(gt, "ground-truth box")
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:
        return float(a == b)
    return inter / union


def _gt_boxes(gt: Any) -> list[Any]:
    if isinstance(gt, (list, tuple)) and gt and all(isinstance(f, dict) for f in gt):
        if not all("box" in f for f in gt):
            raise ValueError(f"spatial ground truth frames need a 'box', got {gt!r}")
        return [f["box"] for f in gt]
    flat = isinstance(gt, (list, tuple)) and not any(isinstance(v, (list, dict)) for v in gt)
    if flat and len(gt) == 4:
        return [gt]
    raise ValueError(f"spatial ground truth must be [{{'t', 'box'}}, ...] or one box, got {gt!r}")


def spatial_iou(pred: Sequence, gt: Any) -> float:
    """Box IoU averaged over the annotated frames (paper section 3.4; V-STaR m_vIoU per sample).

    Args:
        pred: one box ``[x1, y1, x2, y2]`` applied to every annotated frame, or a list of boxes of
            the same length as ``gt``, aligned by order.
        gt: ``[{"t": seconds, "box": [x1, y1, x2, y2]}, ...]`` or a single box.

    >>> gt = [{"t": 0, "box": [0, 0, 10, 10]}, {"t": 1, "box": [5, 0, 15, 10]}]
    >>> spatial_iou([0, 0, 10, 10], gt)
    0.6666666666666666

    Raises:
        ValueError: malformed ground truth, or a list of boxes whose length differs from ``gt``.
    """
    boxes = _gt_boxes(gt)
    if len(pred) > 0 and all(isinstance(b, (list, tuple)) for b in pred):
        if len(pred) != len(boxes):
            raise ValueError(f"{len(pred)} predicted boxes for {len(boxes)} annotated frames")
        preds = list(pred)
    else:
        preds = [pred] * len(boxes)
    return sum(box_iou(p, g) for p, g in zip(preds, boxes)) / len(boxes)


def _lcs_len(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F1 on lowercase whitespace tokens (LCS based), in [0, 1]; analysis only (paper 1.2).

    ``P = LCS / len(pred)``, ``R = LCS / len(ref)``, ``F1 = 2PR / (P + R)``; two empty texts
    score 1, one empty text scores 0.

    >>> rouge_l("a red cross moves down", "A red circle moves down")
    0.8
    """
    p, r = str(pred).lower().split(), str(ref).lower().split()
    if not p and not r:
        return 1.0
    if not p or not r:
        return 0.0
    # 2PR / (P + R) simplifies to 2 LCS / (len p + len r), which avoids rounding error.
    return 2.0 * _lcs_len(p, r) / (len(p) + len(r))


def metric(task_type: str, parsed: Any, answer: Any, cfg: Any) -> float:
    """Metric(T, y*) of paper section 3.4 for a parsed, format-valid answer, in [0, 1].

    Args:
        task_type: one of ``rmsd.tasks.TASK_TYPES``.
        parsed: ``TaskCheck.parsed`` of the response.
        answer: the item's ground truth ``answer``.
        cfg: a :class:`rmsd.scoring.config.ScoringConfig` (``numeric_eps``, ``ocr_threshold``).

    Returns:
        mcq exact match; numeric epsilon-accuracy; ocr ANLS; temporal tIoU; spatial mean box IoU;
        open ROUGE-L F1 (analysis only: open answers are not ranked).

    Raises:
        ValueError: unknown task type or malformed ground truth.
    """
    if task_type == "mcq":
        return exact_match(parsed, answer)
    if task_type == "numeric":
        return numeric_accuracy(parsed, answer, cfg.numeric_eps)
    if task_type == "ocr":
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"ocr ground truth must be a non-empty string, got {answer!r}")
        return anls(parsed, answer, cfg.ocr_threshold)
    if task_type == "temporal":
        return temporal_iou(parsed, answer)
    if task_type == "spatial":
        return spatial_iou(parsed, answer)
    if task_type == "open":
        if not isinstance(answer, str):
            raise ValueError(f"open-ended reference must be a string, got {answer!r}")
        return rouge_l(parsed, answer)
    raise ValueError(f"unknown task_type {task_type!r}")
