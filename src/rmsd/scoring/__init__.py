"""Scoring and selection of teacher pools (paper sections 1.2, 3.4-3.8).

Pure parts: format checks and the shared MCQ extractor (:mod:`.formats`), per-task metrics
(:mod:`.metrics`), response quality (:mod:`.quality`), unreliability statistics (:mod:`.stats`) and
per-item selection (:mod:`.select`). File-level entry points: :func:`score_pool` and
:func:`select_variant` (:mod:`.pipeline`).
"""

from rmsd.scoring.config import ScoringConfig, SelectionConfig
from rmsd.scoring.formats import (
    OuterCheck,
    TaskCheck,
    check_outer,
    check_task,
    extract_mcq_letter,
    parse_number,
)
from rmsd.scoring.metrics import (
    anls,
    box_iou,
    exact_match,
    levenshtein,
    metric,
    numeric_accuracy,
    rouge_l,
    spatial_iou,
    temporal_iou,
)
from rmsd.scoring.pipeline import score_pool, select_variant
from rmsd.scoring.quality import score_response, validate_item
from rmsd.scoring.select import assign_teachers, candidate_rows, item_rng, select_item
from rmsd.scoring.stats import group_stats, unreliability_stats

__all__ = [
    "OuterCheck",
    "ScoringConfig",
    "SelectionConfig",
    "TaskCheck",
    "anls",
    "assign_teachers",
    "box_iou",
    "candidate_rows",
    "check_outer",
    "check_task",
    "exact_match",
    "extract_mcq_letter",
    "group_stats",
    "item_rng",
    "levenshtein",
    "metric",
    "numeric_accuracy",
    "parse_number",
    "rouge_l",
    "score_pool",
    "score_response",
    "select_item",
    "select_variant",
    "spatial_iou",
    "temporal_iou",
    "unreliability_stats",
    "validate_item",
]
