"""Paired per-seed differences between two variants, with 95% t-intervals.

Two variants trained with the same seed see the same data order, the same initialisation and the
same Stage-2 sampling stream, so their per-seed difference removes most of the seed-to-seed noise
that ``mean ± std`` rows leave in. For variants ``a`` and ``b`` with per-seed scores ``s_a(i)`` and
``s_b(i)`` (x100) on the seeds both ran, ``d_i = s_a(i) - s_b(i)``; the interval is
``mean(d) ± t_{0.975, n-1} * sd(d) / sqrt(n)`` (Student t, ``n`` = number of paired seeds). A
deterministic row (the untrained base student, a teacher; named by the caller) has one score: it is
subtracted from every seed of the other variant. A trained variant is never spread that way: seeds
it did not run (or whose score is missing) are simply not paired.

Scores are read per task family too: ``closed`` is the mean over the closed-ended task types of a
benchmark (paper section 3.3), ``open`` the open-ended task type, so a finding stated for one kind of
task (quality weighting helps closed-ended tasks, paper 5.6) is checked on that kind's items.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from rmsd.tasks import CLOSED_TASKS

CONFIDENCE = 0.95
FAMILIES = ("overall", "closed", "open")


def add_families(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (:func:`rmsd.report.tables.collect_metrics`) with ``closed`` and ``open`` columns.

    ``closed``: unweighted mean of the ``task:<t>`` columns whose task type is closed-ended (NaN when
    the benchmark has none); ``open``: ``task:open`` (NaN when absent). Both x100 like ``overall``.
    """
    out = df.copy()
    closed = [c for c in df.columns if c.startswith("task:") and c[5:] in CLOSED_TASKS]
    out["closed"] = df[closed].mean(axis=1, skipna=True) if closed else float("nan")
    out["open"] = df["task:open"] if "task:open" in df.columns else float("nan")
    return out


@dataclass
class PairedDiff:
    """``a - b`` over paired seeds; NaN fields when there is nothing to pair."""

    a: str
    b: str
    column: str
    seeds: list[int] = field(default_factory=list)
    diffs: list[float] = field(default_factory=list)
    mean: float = float("nan")
    sd: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def verdict(self) -> str:
        """``"a > b"`` / ``"a < b"`` when the 95% interval excludes 0, ``"n.s."`` when it holds 0,
        ``"n/a"`` with fewer than 2 pairs."""
        if self.n < 2 or math.isnan(self.ci_low):
            return "n/a"
        if self.ci_low > 0:
            return "a > b"
        if self.ci_high < 0:
            return "a < b"
        return "n.s."

    def as_dict(self) -> dict:
        r = (lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 3))
        return {"a": self.a, "b": self.b, "column": self.column, "n_pairs": self.n, "seeds": self.seeds,
                "diffs": [r(d) for d in self.diffs], "mean": r(self.mean), "sd": r(self.sd),
                "ci95_low": r(self.ci_low), "ci95_high": r(self.ci_high), "verdict": self.verdict}


def t_interval(d: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, sd, low, high) of the Student-t interval of the mean of ``d`` (sd with ddof 1).

    One value gives (value, NaN, NaN, NaN); an empty array all NaN.
    """
    d = np.asarray(d, float)
    if len(d) == 0:
        return (float("nan"),) * 4
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    return mean, sd, mean - half, mean + half


def paired_diff(df: pd.DataFrame, a: str, b: str, benchmark: str, column: str = "overall",
                deterministic: Collection[str] = ()) -> PairedDiff:
    """Paired difference ``a - b`` of ``column`` (``overall``, ``closed``, ``open`` or ``task:<t>``).

    Args:
        df: per-(variant, seed, benchmark) scores x100, with :func:`add_families` columns for
            ``closed``/``open``.
        a, b: variant names.
        benchmark: the benchmark whose scores are compared.
        column: the score column.
        deterministic: variants that are untrained (one score, whatever the seed): their single
            score pairs with every seed of the other side.

    Returns:
        :class:`PairedDiff` (no pairs when either variant has no score).
    """
    out = PairedDiff(a, b, column)
    if column not in df.columns:
        return out
    d = df[df.benchmark == benchmark]
    sa = d[d.variant == a].set_index("seed")[column].dropna()
    sb = d[d.variant == b].set_index("seed")[column].dropna()
    if sa.empty or sb.empty:
        return out
    if b in deterministic and len(sb) == 1:
        sb = pd.Series(float(sb.iloc[0]), index=sa.index)
    elif a in deterministic and len(sa) == 1:
        sa = pd.Series(float(sa.iloc[0]), index=sb.index)
    seeds = sorted(set(sa.index) & set(sb.index))
    if not seeds:
        return out
    diffs = np.array([float(sa[s]) - float(sb[s]) for s in seeds])
    out.seeds, out.diffs = [int(s) for s in seeds], [float(x) for x in diffs]
    out.mean, out.sd, out.ci_low, out.ci_high = t_interval(diffs)
    return out


def fmt_diff(p: PairedDiff, digits: int = 1) -> str:
    """``"+4.2 [+1.0, +7.4]"`` (mean and 95% CI), ``"+4.2 (1 seed)"``, or a dash."""
    if p.n == 0 or math.isnan(p.mean):
        return "—"
    if p.n < 2:
        return f"{p.mean:+.{digits}f} (1 seed)"
    return f"{p.mean:+.{digits}f} [{p.ci_low:+.{digits}f}, {p.ci_high:+.{digits}f}]"
