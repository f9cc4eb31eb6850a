"""Benchmark evaluation: greedy answers, deterministic parsing, per-task scores, bootstrap CIs."""

from rmsd.evaluation.metrics import bootstrap_ci, pass_at_k
from rmsd.evaluation.run import evaluate

__all__ = ["bootstrap_ci", "evaluate", "pass_at_k"]
