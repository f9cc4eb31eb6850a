"""The paper's reported numbers (paper.md section 5), shown beside ours as reference targets.

These are the paper's results at 4B scale on real benchmarks; ours are measured on the embedded
benchmark. Only the deltas are comparable in spirit, not the absolute values.
"""

# variant -> (VideoMME, Video-MMMU), paper sections 5.1 and 5.3 (D1 values)
PAPER_ROWS: dict[str, dict[str, float]] = {
    "base": {"VideoMME": 63.8, "Video-MMMU": 55.4},
    "sft_rl_single": {"VideoMME": 64.0, "Video-MMMU": 55.9},
    "single_sample": {"VideoMME": 63.8, "Video-MMMU": 54.4},
    "multi_sample": {"VideoMME": 64.5, "Video-MMMU": 55.9},
    "filtered": {"VideoMME": 65.0, "Video-MMMU": 57.2},
    "rmsd": {"VideoMME": 65.3, "Video-MMMU": 58.6},
}

ROW_LABELS: dict[str, str] = {
    "base": "Base student",
    "sft_rl_single": "Original SFT+RL",
    "single_sample": "A: single-sample (K=1)",
    "multi_sample": "B: multi-sample (K=4)",
    "filtered": "C: + quality filter (tau)",
    "rmsd": "D: R-MSD (full)",
}
