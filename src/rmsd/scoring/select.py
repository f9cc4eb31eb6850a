"""Filtering, matching distribution and Stage-1 target of one item's teacher pool, pure functions.

Paper sections 3.5 (format filter and quality threshold tau), 3.6 (task-adaptive matching
distribution p), 3.8 Stage 1 (SFT target) and section 6 rows 4-7 (per-response filter, items with an
empty pool are dropped, tau only for closed-ended tasks, p sampled with replacement downstream).

Determinism: teacher assignment and every random choice derive from ``rmsd.io.stable_hash`` of the
item id and the seed, so an item's result does not depend on the order or number of other items.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from rmsd.io import stable_hash
from rmsd.scoring.config import SelectionConfig
from rmsd.tasks import is_closed

__all__ = ["GROUND_TRUTH", "SelectionConfig", "assign_teachers", "candidate_rows", "item_rng", "select_item"]


def assign_teachers(item_id: str, teachers: Sequence[str], assignment: str, seed: int) -> list[str]:
    """Teachers whose samples may form the item's pool.

    ``union``: all of them (sorted). ``per_item``: exactly one, ``sorted(teachers)[h % n]`` with
    ``h`` the integer value of ``stable_hash([item_id, seed])``; sorting makes the result
    independent of the order in which the config lists the teachers.

    >>> assign_teachers("x", ["b", "a"], "union", 0)
    ['a', 'b']

    Raises:
        ValueError: empty ``teachers`` or unknown ``assignment``.
    """
    names = sorted(teachers)
    if not names:
        raise ValueError("no teachers to assign")
    if assignment == "union":
        return names
    if assignment == "per_item":
        return [names[int(stable_hash([item_id, seed]), 16) % len(names)]]
    raise ValueError(f"unknown assignment {assignment!r}; valid: ['per_item', 'union']")


def item_rng(item_id: str, seed: int) -> random.Random:
    """The item's private RNG for tie-breaking and random targets (stable across runs)."""
    return random.Random(int(stable_hash(["select", item_id, seed]), 16))


def candidate_rows(rows: Sequence[dict], teachers: Sequence[str], K: int) -> list[dict]:
    """Rows of the given teachers with sample index ``k < K``, sorted by (teacher, k)."""
    allowed = set(teachers)
    return sorted(
        (r for r in rows if r["teacher"] in allowed and r["k"] < K),
        key=lambda r: (r["teacher"], r["k"]),
    )


GROUND_TRUTH = "ground_truth"
"""``sft_teacher`` of an SFT target that is the ground truth (``sft_target: ground_truth``)."""


def _open_weight(r: dict) -> float:
    """Open-ended matching weight under ``quality``: ``q x ROUGE-L`` (q = valid), or q when the item
    has no reference (metric NaN or absent)."""
    m = r.get("metric")
    if isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m):
        return float(r["q"]) * min(1.0, max(0.0, float(m)))
    return float(r["q"])


def select_item(
    rows: Sequence[dict], task_type: str, cfg: SelectionConfig, rng: random.Random,
    ground_truth: str | None = None,
) -> dict[str, Any] | None:
    """Filter one item's pool, compute its matching distribution and pick its SFT target.

    Steps (paper 3.5, 3.6, 3.8):

    1. Candidates: rows with ``teacher in cfg.teachers`` and ``k < cfg.K``, ordered by (teacher, k).
       The caller restricts ``rows`` to the item's assigned teachers (:func:`assign_teachers`).
    2. Keep a row unless ``cfg.format_filter`` and ``valid`` is false, or the task is closed-ended
       and ``q < cfg.tau``.
    3. ``p``: ``quality`` gives ``p_k = w_k / sum_j w_j`` over the kept rows with ``w = q`` for
       closed-ended items and ``w = q x metric`` (valid x ROUGE-L F1 against the reference, paper
       5.6's open-ended "GT-quality weighting") for open-ended ones (``w = q`` when the item has no
       reference); ``uniform`` gives ``1 / K'``. Quality weighting with zero total mass falls back
       to uniform and reports ``zero_mass = True`` (counted by the caller).
    4. SFT target: ``best`` = argmax q, ties broken by ``rng`` among the tied rows in (teacher, k)
       order; ``random`` = ``rng`` uniform over kept rows; ``first`` = the kept row with the lowest
       (teacher, k); ``all`` = every kept row ("SFT on all K", the paper's naive multi-sample
       baseline, ablation row B): ``sft_targets`` lists their texts in (teacher, k) order, and
       ``sft_target`` / ``sft_teacher`` / ``sft_k`` describe the first of them, ``sft_target_q``
       their mean q; ``ground_truth`` = the ``ground_truth`` argument (q 1, teacher
       :data:`GROUND_TRUTH`, k -1), the oracle upper bound.

    Args:
        rows: the item's scored samples (``teacher``, ``k``, ``text``, ``q``, ``valid``).
        task_type: the item's task type (selects the closed/open branch of the config).
        cfg: selection configuration.
        rng: the item's RNG (see :func:`item_rng`); used only for ties and ``random`` targets.
        ground_truth: the rendered ground-truth response; required by ``sft_target: ground_truth``.

    Returns:
        None when no row survives, else ``{"pool": [{teacher, k, text, q, valid, p}],
        "sft_target", "sft_target_q", "sft_teacher", "sft_k", "n_considered", "n_kept",
        "zero_mass"}`` (+ ``"sft_targets"`` under ``all``).

    Raises:
        ValueError: a row's q is not a finite number in [0, 1]; ``ground_truth`` target without
            ``ground_truth``.
    """
    family = "closed" if is_closed(task_type) else "open"
    cands = candidate_rows(rows, cfg.teachers, cfg.K)
    for r in cands:
        q = r["q"]
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not (0.0 <= q <= 1.0):
            raise ValueError(f"teacher {r['teacher']} k={r['k']}: q must be in [0, 1], got {q!r}")
    kept = [
        r
        for r in cands
        if (bool(r["valid"]) or not cfg.format_filter)
        and (family == "open" or float(r["q"]) >= cfg.tau)
    ]
    if not kept:
        return None
    qs = [float(r["q"]) for r in kept]
    ws = qs if family == "closed" else [_open_weight(r) for r in kept]
    zero_mass = False
    if cfg.weighting[family] == "quality" and math.fsum(ws) > 0:
        total = math.fsum(ws)
        ps = [w / total for w in ws]
    else:
        zero_mass = cfg.weighting[family] == "quality"
        ps = [1.0 / len(kept)] * len(kept)
    mode = cfg.sft_target[family]
    if mode == GROUND_TRUTH:
        if ground_truth is None:
            raise ValueError("sft_target ground_truth needs the item's rendered ground truth")
        target = {"text": ground_truth, "q": 1.0, "teacher": GROUND_TRUTH, "k": -1}
    elif mode == "best":
        best = max(qs)
        tied = [r for r, q in zip(kept, qs) if q == best]
        target = tied[0] if len(tied) == 1 else rng.choice(tied)
    elif mode == "random":
        target = rng.choice(kept)
    elif mode == "all":
        target = {**kept[0], "q": math.fsum(qs) / len(qs)}
    else:  # "first"
        target = kept[0]
    return {
        "pool": [
            {
                "teacher": r["teacher"],
                "k": int(r["k"]),
                "text": r["text"],
                "q": float(r["q"]),
                "valid": bool(r["valid"]),
                "p": p,
            }
            for r, p in zip(kept, ps)
        ],
        "sft_target": target["text"],
        "sft_target_q": float(target["q"]),
        "sft_teacher": target["teacher"],
        "sft_k": int(target["k"]),
        "n_considered": len(cands),
        "n_kept": len(kept),
        "zero_mass": zero_mass,
        **({"sft_targets": [r["text"] for r in kept]} if mode == "all" else {}),
    }
