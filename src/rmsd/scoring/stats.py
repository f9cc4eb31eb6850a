"""Teacher-unreliability statistics of a scored pool (paper section 1.2), pure functions.

The statistical unit ("item") is one (item_id, teacher) pair, i.e. the K samples one teacher drew
for one input. With a single teacher this is the paper's per-question unit; with several teachers it
keeps sigma_sampling a pure sampling variance instead of mixing teachers.

Per group of responses (overall, per teacher, per task type, per teacher x task type):

* ``cross_item``: mean / std / min / max over items of the per-item mean q (paper 1.2 row 1);
* ``sigma_sampling``: mean over items with >= 2 samples of the population std (ddof 0) of q across
  the item's samples (paper 1.2 row 2);
* ``format_violation_rate``: share of responses with valid = 0 (paper 1.2 row 3);
* ``mean_q`` over responses, ``best_of_k_mean_q`` (mean over items of the max q), counts and a
  10-bin histogram of the per-item mean q.

All std values are population std (ddof 0). Groups holding open-ended items also get a
``q_analysis`` block: the same statistics with q replaced by ``valid * ROUGE-L`` for open items (q
itself is only validity there); open items without a reference are left out of it and counted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np

HIST_EDGES: list[float] = [round(0.1 * i, 1) for i in range(11)]

PAPER_REFERENCE: dict[str, Any] = {
    "source": "paper section 1.2 (200 questions, Qwen3-VL-235B teacher, repeated sampling)",
    "overall": {"mean": 0.75, "std": 0.22, "min": 0.10, "max": 1.0, "format_violation_rate": 0.01},
    "mcq": {"mean": 0.96, "std": 0.10, "sigma_sampling": 0.07},
    "visual_qa_open": {"mean": 0.64, "std": 0.24, "sigma_sampling": 0.15},
    "temporal": {"format_violation_rate": 0.10},
    "ocr": {"per_item_q_range": [0.50, 0.85]},
    "sigma_sampling_range": [0.07, 0.15],
    "note": "format violations ~1% overall, up to ~10% on temporal QA; sigma_sampling from 0.07 "
    "(MCQ) to 0.15 (visual QA); the paper's open-ended analysis metric is unstated (ROUGE-L here)",
}


def _summary(x: list[float]) -> dict[str, float | None]:
    if not x:
        return {"mean": None, "std": None, "min": None, "max": None}
    a = np.asarray(x, dtype=float)
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def _hist(x: list[float]) -> dict[str, list]:
    counts, _ = np.histogram(np.asarray(x, dtype=float), bins=np.asarray(HIST_EDGES))
    return {"edges": HIST_EDGES, "counts": [int(c) for c in counts]}


def _score_block(units: dict[tuple, list[float]]) -> dict[str, Any]:
    """Statistics of one quality variable over units (each a list of per-sample values)."""
    units = {u: v for u, v in units.items() if v}
    means = [float(np.mean(v)) for v in units.values()]
    stds = [float(np.std(v)) for v in units.values() if len(v) >= 2]
    allv = [x for v in units.values() for x in v]
    return {
        "mean_q": float(np.mean(allv)) if allv else None,
        "cross_item": _summary(means),
        "sigma_sampling": float(np.mean(stds)) if stds else None,
        "n_items_sigma": len(stds),
        "best_of_k_mean_q": float(np.mean([max(v) for v in units.values()])) if units else None,
        "hist_item_mean_q": _hist(means),
    }


def group_stats(rows: list[dict]) -> dict[str, Any]:
    """Unreliability statistics of one group of scored responses.

    Args:
        rows: scored responses with ``item_id``, ``teacher``, ``task_type``, ``q``, ``valid``,
            ``metric``, ``reason`` and ``finish_reason``.

    Returns:
        A JSON-serialisable dict (see the module docstring).
    """
    q_units: dict[tuple, list[float]] = defaultdict(list)
    a_units: dict[tuple, list[float]] = defaultdict(list)
    n_no_ref = 0
    has_open = False
    for r in rows:
        unit = (r["item_id"], r["teacher"])
        q_units[unit].append(float(r["q"]))
        if r["task_type"] == "open":
            has_open = True
            m = float(r["metric"]) if r["metric"] is not None else math.nan
            if math.isnan(m):
                n_no_ref += 1
                continue
            a_units[unit].append(m if r["valid"] else 0.0)
        else:
            a_units[unit].append(float(r["q"]))
    n = len(rows)
    n_valid = sum(bool(r["valid"]) for r in rows)
    sizes = [len(v) for v in q_units.values()]
    out: dict[str, Any] = {
        "n_items": len(q_units),
        "n_responses": n,
        "n_valid": n_valid,
        "format_violation_rate": (n - n_valid) / n if n else None,
        "truncated_rate": sum(r.get("finish_reason") == "length" for r in rows) / n if n else None,
        "samples_per_item": {"min": min(sizes), "max": max(sizes)} if sizes else None,
        **_score_block(q_units),
        "violation_reasons": dict(
            sorted(Counter(r["reason"] for r in rows if not r["valid"]).items())
        ),
    }
    if has_open:
        out["q_analysis"] = {**_score_block(a_units), "n_open_without_reference": n_no_ref}
    return out


def unreliability_stats(rows: list[dict]) -> dict[str, Any]:
    """The teacher-unreliability study (paper section 1.2) over all scored responses.

    Returns:
        ``{"overall", "by_teacher", "by_task", "by_teacher_task", "paper"}``; each leaf is a
        :func:`group_stats` block; ``paper`` holds the paper's reference values.
    """
    by_t: dict[str, list] = defaultdict(list)
    by_task: dict[str, list] = defaultdict(list)
    by_tt: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_t[r["teacher"]].append(r)
        by_task[r["task_type"]].append(r)
        by_tt[r["teacher"]][r["task_type"]].append(r)
    return {
        "unit": "one (item_id, teacher) pair = the samples of one teacher on one input",
        "overall": group_stats(rows),
        "by_teacher": {t: group_stats(v) for t, v in sorted(by_t.items())},
        "by_task": {t: group_stats(v) for t, v in sorted(by_task.items())},
        "by_teacher_task": {
            t: {k: group_stats(v) for k, v in sorted(d.items())} for t, d in sorted(by_tt.items())
        },
        "paper": PAPER_REFERENCE,
    }
