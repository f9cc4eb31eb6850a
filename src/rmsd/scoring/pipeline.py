"""File-level entry points of the scoring stage: score the teacher pool, select a variant's pool.

Inputs follow the data contracts of design.md section 2 (items JSONL, teacher sample JSONL); every
output is written atomically through :mod:`rmsd.io`. Malformed input raises
:class:`rmsd.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rmsd.errors import ConfigError, DataError
from rmsd.io import atomic_path, atomic_write_json, write_jsonl
from rmsd.scoring.config import ScoringConfig, SelectionConfig
from rmsd.scoring.quality import score_response
from rmsd.scoring.readers import read_items, read_pool, read_scored
from rmsd.scoring.select import GROUND_TRUTH, assign_teachers, candidate_rows, item_rng, select_item
from rmsd.scoring.stats import unreliability_stats
from rmsd.tasks import is_closed, render_answer, render_response

SCORED_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("task_type", pa.string()),
        ("teacher", pa.string()),
        ("k", pa.int64()),
        ("text", pa.large_string()),
        ("finish_reason", pa.string()),
        ("n_tokens", pa.int64()),
        ("valid_outer", pa.bool_()),
        ("valid_task", pa.bool_()),
        ("valid", pa.bool_()),
        ("parsed", pa.string()),
        ("metric", pa.float64()),
        ("q", pa.float64()),
        ("reason", pa.string()),
    ]
)
PAPER_RETAINED: dict[str, Any] = {
    "source": "paper section 5.5 'valid sample ratio' (share of (input, response) pairs kept)",
    "retained_ratio_by_tau": {"0.0": 1.0, "0.2": 0.87, "0.3": 0.72, "0.5": 0.45},
}


def score_pool(
    items_path: str | os.PathLike,
    pool_paths: list[str | os.PathLike],
    out_parquet: str | os.PathLike,
    out_stats: str | os.PathLike,
    cfg: ScoringConfig,
) -> dict[str, Any]:
    """Score every teacher sample and write the teacher-unreliability study (paper 1.2, 3.4, 3.7).

    Args:
        items_path: items JSONL (``id``, ``task_type``, ``answer``, ...).
        pool_paths: teacher sample JSONL files (``item_id``, ``teacher``, ``k``, ``text``,
            ``finish_reason``, ``n_tokens``, ...).
        out_parquet: scored pool, one row per sample (columns of ``SCORED_SCHEMA``; ``parsed`` is a
            JSON string), sorted by (item order in ``items_path``, teacher, k).
        out_stats: JSON with the config, inputs, ``n_samples``, ``n_format_invalid`` (samples
            failing R_outer or R_task), ``n_text_repaired`` (samples whose text held invalid UTF-8
            and was decoded with U+FFFD replacement characters) and
            :func:`rmsd.scoring.stats.unreliability_stats` (per-group violation rates and reasons).
        cfg: scoring configuration.

    Returns:
        The stats dict that was written.

    Teacher text is data: it is only matched with regular expressions, never evaluated, and any
    text (empty, truncated, markup, megabytes long, invalid UTF-8) gives a scored row.

    Raises:
        MissingArtifactError: an input file does not exist.
        DataError: malformed item or sample, unknown ``item_id``, or a duplicated
            (item_id, teacher, k); the message names file and line.
        ConfigError: invalid ``cfg``.
    """
    cfg.validate()
    if isinstance(pool_paths, (str, os.PathLike)):
        raise TypeError(f"pool_paths must be a list of paths, got a single path {pool_paths!r}")
    items = read_items(items_path)
    order = {iid: i for i, iid in enumerate(items)}
    rows: list[dict] = []
    seen: dict[tuple, str] = {}
    n_repaired = 0
    for pool_path in pool_paths:
        pool_path = Path(pool_path)
        for ln, rec, repaired in read_pool(pool_path):
            where = f"{pool_path}:{ln}"
            n_repaired += repaired
            item = items.get(rec["item_id"])
            if item is None:
                raise DataError(
                    f"{where}: unknown item_id {rec['item_id']!r} (not in {items_path})"
                )
            key = (rec["item_id"], rec["teacher"], rec["k"])
            if key in seen:
                raise DataError(f"{where}: duplicate sample {key} (first at {seen[key]})")
            seen[key] = where
            s = score_response(rec["text"], item, cfg)
            rows.append(
                {
                    "item_id": rec["item_id"],
                    "task_type": item["task_type"],
                    "teacher": rec["teacher"],
                    "k": rec["k"],
                    "text": rec["text"],
                    "finish_reason": rec["finish_reason"],
                    "n_tokens": rec["n_tokens"],
                    **s,
                }
            )
    rows.sort(key=lambda r: (order[r["item_id"]], r["teacher"], r["k"]))
    columns = {f.name: [r[f.name] for r in rows] for f in SCORED_SCHEMA}
    columns["parsed"] = [json.dumps(r["parsed"], ensure_ascii=False, allow_nan=False) for r in rows]
    table = pa.table(columns, schema=SCORED_SCHEMA)
    with atomic_path(out_parquet, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    stats = {
        "config": cfg.to_dict(),
        "inputs": {"items": str(items_path), "pools": [str(p) for p in pool_paths]},
        "n_items_in_file": len(items),
        "n_items_sampled": len({r["item_id"] for r in rows}),
        "n_samples": len(rows),
        "n_format_invalid": sum(1 for r in rows if not r["valid"]),
        "n_text_repaired": n_repaired,
        **unreliability_stats(rows),
    }
    atomic_write_json(out_stats, stats)
    return stats


def _ratio(kept: int, considered: int) -> float | None:
    return kept / considered if considered else None


def _mean(x: list[float]) -> float | None:
    return math.fsum(x) / len(x) if x else None


def select_variant(
    scored_parquet: str | os.PathLike,
    items_path: str | os.PathLike,
    out_jsonl: str | os.PathLike,
    out_stats: str | os.PathLike,
    cfg: SelectionConfig,
    seed: int,
    template: str = "answer_only",
) -> dict[str, Any]:
    """Build one variant's training pool: filter, weight and pick SFT targets (paper 3.5-3.8).

    For each item (in ``items_path`` order): assign teachers (:func:`assign_teachers`), take the
    candidate samples ``k < K``, then :func:`select_item`. Items with an empty pool are dropped.

    Output JSONL, one record per kept item: ``item_id``, ``task_type``, ``teachers`` (assigned),
    ``sft_target``, ``sft_target_q``, ``sft_teacher``, ``sft_k``, ``zero_mass`` and ``pool``
    (``[{teacher, k, text, q, valid, p}]``).

    Stats: item counts (kept, dropped, dropped for lack of samples, fewer than K samples per
    teacher), retained ratio = kept (item, response) pairs / considered pairs (paper 5.5 "valid
    sample ratio") overall, per task type and per teacher, mean q of the SFT targets,
    ``n_zero_mass`` (quality weighting with all-zero q that fell back to uniform), and the paper's
    reference ratios.

    Args:
        scored_parquet: output of :func:`score_pool`.
        items_path: the items JSONL the parquet was scored from.
        out_jsonl: the variant's pool.
        out_stats: selection statistics JSON.
        cfg: selection configuration.
        seed: seed of teacher assignment and random choices.
        template: response template of ``sft_target: ground_truth`` targets
            (:func:`rmsd.tasks.render_response`).

    Returns:
        The stats dict that was written.

    Raises:
        ConfigError: invalid ``cfg``, or teachers named in ``cfg`` that are absent from the parquet.
        DataError: unreadable parquet, missing columns, an ``item_id`` absent from the items file,
            or a task type that disagrees with the items file.
    """
    cfg.validate()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    items = read_items(items_path)
    rows = read_scored(scored_parquet)
    by_item: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        item = items.get(r["item_id"])
        if item is None:
            raise DataError(f"{scored_parquet}: item_id {r['item_id']!r} is not in {items_path}")
        if item["task_type"] != r["task_type"]:
            raise DataError(
                f"{scored_parquet}: item {r['item_id']!r} has task_type {r['task_type']!r}, "
                f"but {items_path} says {item['task_type']!r}"
            )
        by_item[r["item_id"]].append(r)
    if cfg.weighting["open"] == "quality" and rows and "metric" not in rows[0]:
        raise DataError(f"{scored_parquet}: selection.weighting.open is quality, which weights open-ended "
                        "answers by their metric (ROUGE-L), but the file has no 'metric' column")
    present = {r["teacher"] for r in rows}
    absent = [t for t in cfg.teachers if t not in present]
    if absent:
        raise ConfigError(
            f"selection.teachers: {absent} have no samples in {scored_parquet} "
            f"(present: {sorted(present)})"
        )

    def counter() -> dict[str, int]:
        return defaultdict(int)

    by_task: dict[str, dict[str, int]] = defaultdict(counter)
    by_teacher: dict[str, dict[str, int]] = defaultdict(counter)
    target_q: dict[str, list[float]] = defaultdict(list)
    records = []
    for iid, item in items.items():
        task = item["task_type"]
        teachers = assign_teachers(iid, cfg.teachers, cfg.assignment, seed)
        cands = candidate_rows(by_item.get(iid, []), teachers, cfg.K)
        t = by_task[task]
        t["n_items"] += 1
        t["n_pairs_considered"] += len(cands)
        if not cands:
            t["n_dropped_no_samples"] += 1
        if len(cands) < cfg.K * len(teachers):
            t["n_items_fewer_than_K"] += 1
        for tea in teachers:
            by_teacher[tea]["n_items_assigned"] += 1
        for r in cands:
            by_teacher[r["teacher"]]["n_pairs_considered"] += 1
        gt = None
        if cfg.sft_target["closed" if is_closed(task) else "open"] == GROUND_TRUTH:
            if item.get("answer") is None:
                raise DataError(f"{items_path}: item {iid!r} has no ground-truth answer, but "
                                "selection.sft_target is ground_truth")
            gt = render_response(render_answer(task, item["answer"]), template)
        res = select_item(cands, task, cfg, item_rng(iid, seed), ground_truth=gt)
        if res is None:
            t["n_dropped"] += 1
            continue
        t["n_kept_items"] += 1
        t["n_pairs_kept"] += res["n_kept"]
        t["n_zero_mass"] += int(res["zero_mass"])
        for r in res["pool"]:
            by_teacher[r["teacher"]]["n_pairs_kept"] += 1
        by_teacher[res["sft_teacher"]]["n_sft_targets"] += 1
        target_q[task].append(res["sft_target_q"])
        records.append(
            {
                "item_id": iid,
                "task_type": task,
                "teachers": teachers,
                "sft_target": res["sft_target"],
                "sft_target_q": res["sft_target_q"],
                "sft_teacher": res["sft_teacher"],
                "sft_k": res["sft_k"],
                "zero_mass": res["zero_mass"],
                "pool": res["pool"],
                **({"sft_targets": res["sft_targets"]} if "sft_targets" in res else {}),
            }
        )
    write_jsonl(out_jsonl, records)

    keys = ("n_items", "n_kept_items", "n_dropped", "n_dropped_no_samples", "n_items_fewer_than_K",
            "n_pairs_considered", "n_pairs_kept", "n_zero_mass")
    task_stats = {}
    for task, c in sorted(by_task.items()):
        task_stats[task] = {k: c[k] for k in keys}
        task_stats[task]["retained_ratio"] = _ratio(c["n_pairs_kept"], c["n_pairs_considered"])
        task_stats[task]["mean_sft_target_q"] = _mean(target_q[task])
    total = {k: sum(c[k] for c in by_task.values()) for k in keys}
    closed_q = [q for task, v in target_q.items() if is_closed(task) for q in v]
    teacher_keys = ("n_items_assigned", "n_pairs_considered", "n_pairs_kept", "n_sft_targets")
    stats = {
        "config": cfg.to_dict(),
        "seed": seed,
        "inputs": {"scored": str(scored_parquet), "items": str(items_path)},
        **total,
        "retained_ratio": _ratio(total["n_pairs_kept"], total["n_pairs_considered"]),
        "mean_sft_target_q": _mean([q for v in target_q.values() for q in v]),
        "mean_sft_target_q_closed": _mean(closed_q),
        "by_task": task_stats,
        "by_teacher": {
            tea: {
                **{k: c[k] for k in teacher_keys},
                "retained_ratio": _ratio(c["n_pairs_kept"], c["n_pairs_considered"]),
            }
            for tea, c in sorted(by_teacher.items())
        },
        "paper": PAPER_RETAINED,
    }
    atomic_write_json(out_stats, stats)
    return stats
