"""Benchmark evaluation: greedy answers, deterministic parsing, per-task scores, bootstrap CIs.

:func:`evaluate` runs one model on one dataset: the embedded benchmark, or one of the paper's eight
benchmarks (:mod:`rmsd.evaluation.benchmarks`: importers, prompts, answer extraction, metrics).
"""

from rmsd.evaluation.metrics import (
    bootstrap_ci,
    delta_knowledge,
    group_means_bootstrap,
    paired_comparison,
    pass_at_k,
)
from rmsd.evaluation.run import EvalConfig, evaluate, run_evaluation

__all__ = [
    "EvalConfig",
    "bootstrap_ci",
    "delta_knowledge",
    "evaluate",
    "group_means_bootstrap",
    "paired_comparison",
    "pass_at_k",
    "run_evaluation",
]
