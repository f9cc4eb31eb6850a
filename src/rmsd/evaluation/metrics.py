"""Aggregate statistics for evaluation: unbiased pass@k and clustered bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, HumanEval).

    ``1 - C(n - c, k) / C(n, k)``; requires 1 <= k <= n.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), round(pass_at_k(4, 2, 2), 4)
    (0.25, 1.0, 0.8333)

    Raises:
        ValueError: k outside [1, n] or c outside [0, n].
    """
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def bootstrap_ci(scores: Sequence[float], clusters: Sequence[str] | None = None,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling clusters (e.g. videos) with replacement.

    Args:
        scores: per-item scores.
        clusters: per-item cluster ids (items of one video move together); None = per item.
        n_boot: bootstrap resamples.
        level: coverage (0.95 gives the 2.5 and 97.5 percentiles).

    Returns:
        (low, high). (nan, nan) for no scores.
    """
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    keys = np.asarray(clusters if clusters is not None else np.arange(x.size))
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.bincount(inv, weights=x, minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    a = (1 - level) / 2
    return (float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))
