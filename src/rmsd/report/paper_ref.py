"""The paper's reported numbers (paper.md section 5), shown beside ours as reference targets.

These are the paper's results at 4B scale on real benchmarks (Qwen3-VL-235B teacher, Qwen3-VL-4B
student, 64-frame evaluation). Ours are measured on whatever ``evaluation.benchmarks`` holds (the
embedded default: a procedural benchmark with tiny models), so only the direction and size of the
differences are comparable, not the absolute values. Where sources disagree the primary source (D1)
is used and the alternative kept under a ``_D2`` key (paper.md marks those [L]).
"""

from __future__ import annotations

PAPER_BENCHMARKS: tuple[str, ...] = ("VideoMME", "Video-MMMU", "WorldSense", "LongVideoBench",
                                     "MLVU_MCQ", "MathVista", "MathVerse")
"""Columns of the paper's Table 1, in its order."""

ABLATION_BENCHMARKS: tuple[str, ...] = ("VideoMME", "Video-MMMU")
"""Benchmarks of the paper's ablation and sensitivity tables (3-6)."""

# Table 1 (paper section 5.1); the single-sample row comes from ablation row A (section 5.3).
MAIN: dict[str, dict[str, float]] = {
    "base": {"VideoMME": 63.8, "Video-MMMU": 55.4, "WorldSense": 46.7, "LongVideoBench": 59.3,
             "MLVU_MCQ": 72.4, "MathVista": 69.5, "MathVerse": 45.7},
    "sft_rl_single": {"VideoMME": 64.0, "Video-MMMU": 55.9, "WorldSense": 46.3, "LongVideoBench": 57.2,
                      "MLVU_MCQ": 73.1, "MathVista": 71.2, "MathVerse": 46.8},
    "single_sample": {"VideoMME": 63.8, "Video-MMMU": 54.4},
    "multi_sample": {"VideoMME": 64.5, "Video-MMMU": 55.9},
    "filtered": {"VideoMME": 65.0, "Video-MMMU": 57.2},
    "rmsd": {"VideoMME": 65.3, "Video-MMMU": 58.6, "WorldSense": 49.2, "LongVideoBench": 58.8,
             "MLVU_MCQ": 73.2, "MathVista": 72.1, "MathVerse": 49.3},
}
"""Paper Table 1 per variant name of the default config (rows the paper does not have are absent)."""

PAPER_BASE = "base"
"""The row the paper's deltas are taken against."""

ROW_LABELS: dict[str, str] = {
    "base": "Base student",
    "sft_rl_single": "Original SFT+RL (same budget)",
    "single_sample": "Single-sample distillation",
    "multi_sample": "Multi-sample (K=4)",
    "filtered": "+ quality filter (tau)",
    "rmsd": "R-MSD (full)",
    "gt_sft": "Ground-truth SFT (upper bound)",
}
"""Display labels of the default variant names (other names are shown as they are)."""

# Table 2 (paper section 5.2): V-STaR, x100. sft_rl_single Chain2-When from D2 only [L].
VSTAR_COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("when", 1, "m_tIoU"), ("when", 2, "m_tIoU"), ("where", 1, "m_vIoU"), ("where", 2, "m_vIoU"))
"""(step, chain, metric) of the paper's four V-STaR columns."""
VSTAR: dict[str, dict[str, float]] = {
    "base": {"when1": 21.3, "when2": 18.5, "where1": 22.3, "where2": 5.0},
    "sft_rl_single": {"when2": 19.0},
    "rmsd": {"when1": 25.2, "when2": 23.4, "where1": 24.8, "where2": 7.0},
}

# Table 3 (paper section 5.3), rows A-D. Video-MMMU: D1 (primary) and D2 (alternative).
ABLATION: dict[str, dict[str, float]] = {
    "A": {"VideoMME": 63.8, "Video-MMMU": 54.4, "Video-MMMU_D2": 55.4},
    "B": {"VideoMME": 64.5, "Video-MMMU": 55.9, "Video-MMMU_D2": 56.8},
    "C": {"VideoMME": 65.0, "Video-MMMU": 57.2, "Video-MMMU_D2": 57.6},
    "D": {"VideoMME": 65.3, "Video-MMMU": 58.6, "Video-MMMU_D2": 58.6},
}
ABLATION_SETTINGS: dict[str, str] = {
    "A": "single-sample (K=1)", "B": "multi-sample (K=4)", "C": "+ quality filtering",
    "D": "+ quality weighting (full R-MSD)",
}

# Table 4 (paper section 5.4). K=1 is not in the paper's K table: it is ablation row A (paper.md s.7).
K_SENSITIVITY: dict[int, dict[str, float]] = {
    1: {"VideoMME": 63.8, "Video-MMMU": 54.4},
    2: {"VideoMME": 64.8, "Video-MMMU": 57.1},
    4: {"VideoMME": 65.3, "Video-MMMU": 58.6},
    8: {"VideoMME": 65.5, "Video-MMMU": 58.9},
}
K_NOTES: dict[int, str] = {1: "paper: ablation row A (tau 0, no weighting)"}

# Table 5 (paper section 5.5): retained ("valid sample") ratio in % and scores.
TAU_SENSITIVITY: dict[float, dict[str, float]] = {
    0.0: {"retained_pct": 100.0, "VideoMME": 64.5, "Video-MMMU": 55.9},
    0.2: {"retained_pct": 87.0, "VideoMME": 65.0, "Video-MMMU": 58.1},
    0.3: {"retained_pct": 72.0, "VideoMME": 65.3, "Video-MMMU": 58.6},
    0.5: {"retained_pct": 45.0, "VideoMME": 64.8, "Video-MMMU": 57.2},
}

# Table 6 (paper section 5.6): Video-MMMU with one task kind's matching swapped.
# (task kind, strategy) -> score; closed x quality is 57.8 in D1 and 58.6 in D2.
TASK_ADAPTIVE: dict[tuple[str, str], float] = {
    ("closed", "quality"): 57.8, ("closed", "uniform"): 56.2,
    ("open", "quality"): 58.4, ("open", "uniform"): 59.1,
}
TASK_ADAPTIVE_D2: dict[tuple[str, str], float] = {("closed", "quality"): 58.6}

# Pass@k (paper section 5.7): only qualitative findings were recovered.
PASS_AT_K_NOTE = ("paper (section 5.7): R-MSD's Pass@1 is 3.2 points above the baseline's and the "
                  "two curves converge as k grows (k = 1..16; benchmark unstated)")
PASS_AT_1_GAIN = 3.2


def label(variant: str) -> str:
    """Display label of a variant: the paper's row name for the default names, else the name."""
    if variant.startswith("teacher-"):
        return f"Teacher {variant[len('teacher-'):]} (reference)"
    return ROW_LABELS.get(variant, variant)
