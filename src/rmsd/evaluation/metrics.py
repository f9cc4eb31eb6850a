"""Aggregate statistics for evaluation: unbiased pass@k, clustered bootstrap intervals, paired
comparisons and Video-MMMU's Delta-knowledge."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import comb
from os import PathLike

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


def group_means_bootstrap(scores: Sequence[float], clusters: Sequence[str] | None,
                          groups: Sequence[int], n_groups: int,
                          stat: Callable[[np.ndarray], np.ndarray], n_boot: int = 1000,
                          seed: int = 0, level: float = 0.95,
                          stratified: bool = False) -> tuple[float, float]:
    """Percentile bootstrap CI of a statistic of per-group means, resampling clusters.

    Clusters (e.g. videos) are drawn with replacement; in each resample every group's mean is
    recomputed from the items of the drawn clusters, and ``stat`` maps the (n_boot, n_groups)
    array of group means to n_boot values (NaN where a group is empty). Examples: a macro mean over
    task types (``stat=lambda m: np.nanmean(m, 1)``), Delta-knowledge over two paired groups.

    Args:
        scores: per-item scores.
        clusters: per-item cluster ids (None = each item its own cluster).
        groups: per-item group index in ``[0, n_groups)``.
        stat: vectorised statistic of group means.
        stratified: resample clusters within each group (each group keeps its number of clusters,
            so no group can vanish from a resample; use it when groups have their own clusters,
            e.g. MLVU's task types).

    Returns:
        (low, high); (nan, nan) without items or when every resample is NaN.
    """
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    g = np.asarray(groups, dtype=int)
    base = [str(c) for c in clusters] if clusters is not None else [str(i) for i in range(x.size)]
    keys = np.asarray([f"{gi}\x00{c}" for gi, c in zip(g, base)] if stratified else base)
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(uniq), n_groups))
    counts = np.zeros((len(uniq), n_groups))
    np.add.at(sums, (inv, g), x)
    np.add.at(counts, (inv, g), 1.0)
    rng = np.random.default_rng(seed)
    w = np.zeros((n_boot, len(uniq)))
    rows = np.arange(n_boot)
    if stratified:
        key_group = np.zeros(len(uniq), dtype=int)
        key_group[inv] = g
        for gi in range(n_groups):
            idx = np.flatnonzero(key_group == gi)
            if idx.size:
                draws = idx[rng.integers(0, idx.size, size=(n_boot, idx.size))]
                np.add.at(w, (np.repeat(rows, idx.size), draws.ravel()), 1.0)
    else:
        draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
        np.add.at(w, (np.repeat(rows, len(uniq)), draws.ravel()), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (w @ sums) / (w @ counts)
        vals = np.asarray(stat(means), dtype=float)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    return (float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a)))


def delta_knowledge(acc_after: float, acc_before: float) -> float:
    """Video-MMMU knowledge gain (benchmarks.md 2.7), as a fraction:
    ``(acc_after - acc_before) / (1 - acc_before)``; NaN when ``acc_before == 1``.

    The VideoMMMU README writes it in percent, ``(A - B) / (100 - B) x 100``: the same number x100.

    >>> delta_knowledge(0.6, 0.5), delta_knowledge(0.4, 0.5)
    (0.19999999999999996, -0.19999999999999996)
    """
    if not acc_before < 1:
        return float("nan")
    return (acc_after - acc_before) / (1 - acc_before)


def paired_comparison(samples_a: str | PathLike, samples_b: str | PathLike, n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> dict:
    """Per-item paired difference of two evaluations of the same benchmark (model A vs B, e.g.
    R-MSD vs the base student), with a bootstrap CI clustered by video.

    Items are matched by ``item_id``; items present in only one file are counted and left out.
    The difference is ``score_A - score_B`` per item; its mean equals ``mean_A - mean_B`` over the
    paired items (the micro mean; benchmark-specific aggregates such as MLVU's macro M-Avg are not
    re-weighted here).

    Args:
        samples_a, samples_b: ``samples.jsonl`` files written by :func:`rmsd.evaluation.evaluate`.

    Returns:
        ``n_pairs``, ``n_only_a``, ``n_only_b``, ``mean_a``, ``mean_b``, ``diff`` (A - B),
        ``ci95`` (of diff), ``p_value`` (two-sided bootstrap: twice the smaller tail mass at 0,
        at most 1), ``wins``/``losses``/``ties`` (items where A scores higher/lower/equal).

    Raises:
        MissingArtifactError: a file is missing. DataError: a malformed or duplicated record.
    """
    from rmsd.errors import DataError
    from rmsd.io import read_jsonl

    def load(p) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in read_jsonl(p, required=("item_id", "score")):
            if r["item_id"] in out:
                raise DataError(f"{p}: duplicate item_id {r['item_id']!r}")
            out[r["item_id"]] = r
        return out

    a, b = load(samples_a), load(samples_b)
    common = [k for k in a if k in b]
    d = np.array([float(a[k]["score"]) - float(b[k]["score"]) for k in common])
    clusters = [str(a[k].get("video") or k) for k in common]
    res = {
        "n_pairs": len(common),
        "n_only_a": len(a) - len(common),
        "n_only_b": len(b) - len(common),
        "mean_a": float(np.mean([float(a[k]["score"]) for k in common])) if common else float("nan"),
        "mean_b": float(np.mean([float(b[k]["score"]) for k in common])) if common else float("nan"),
        "diff": float(d.mean()) if common else float("nan"),
        "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "ties": int((d == 0).sum()),
    }
    if not common:
        res.update(ci95=[float("nan"), float("nan")], p_value=float("nan"))
        return res
    uniq, inv = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(inv, weights=d, minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    lo_q = (1 - level) / 2
    res["ci95"] = [float(np.quantile(means, lo_q)), float(np.quantile(means, 1 - lo_q))]
    res["p_value"] = float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))
    return res
