"""Paired comparisons and the paper's findings, each checked as reproduced or not.

Two tables, built from cached results only:

* ``comparisons`` (target ``all``): the pairs of ``report.comparisons`` (R-MSD vs single-sample, vs
  the original SFT+RL, ...), paired per-seed differences with 95% t-intervals overall and per task
  family (:mod:`rmsd.report.paired`).
* ``findings`` (targets ``ablations`` and ``report``): every finding of paper section 5 that the
  configured variants can test, with the measured quantity, the rule that decides, and one of
  ``reproduced`` (the 95% interval lies on the paper's side of 0, inside ±2 points for "K=4 close
  to K=8", or the value lies in the paper's range), ``inconclusive`` (the interval holds 0, or
  one seed only), ``not reproduced`` (the interval lies on the other side of 0, or the value is out
  of range) or ``not run``
  (the variants it needs are not configured).

Which variant plays which part (base, original SFT+RL, rows A-D, the K/tau rows, the 2x2 cells, the
pass@k curves) comes from :meth:`rmsd.report.spec.ReportSpec.roles`, never from names.
"""

from __future__ import annotations

import math

import pandas as pd

from rmsd.report import paper_ref as P
from rmsd.report.paired import FAMILIES, PairedDiff, add_families, fmt_diff, paired_diff
from rmsd.report.tables import Table, collect_metrics, collect_pass_at_k

REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN = "reproduced", "inconclusive", "not reproduced", "not run"

# Paper ranges of the teacher statistics (paper.md 1.2 and 5.9): cross-item sigma about 0.22,
# within-item sigma_sampling 0.07-0.15, format violations about 1-10 %.
CROSS_ITEM_SIGMA_RANGE = (0.15, 0.30)
SIGMA_SAMPLING_RANGE = (0.07, 0.15)
VIOLATION_RANGE = (0.01, 0.10)
EQUIVALENCE_MARGIN = 2.0
"""Points (x100): "K=4 close to K=8" holds when the paired 95% CI of K8 - K4 lies inside ± this (the
paper's K4/K8 gap is 0.2-0.3 points)."""


def comparisons_table(metrics: list[str], pairs: list[list[str]], benchmark: str,
                      deterministic: list[str] = ()) -> Table:
    """Paired differences ``a - b`` for each ``[a, b]`` of ``pairs`` on ``benchmark`` (x100).

    ``deterministic``: the untrained rows among them (:func:`rmsd.report.paired.paired_diff`)."""
    df = add_families(collect_metrics(metrics))
    data, disp = [], []
    for a, b in pairs:
        row = {"a": a, "b": b}
        shown = {"comparison": f"{P.label(a)} − {P.label(b)}"}
        for fam in FAMILIES:
            p = paired_diff(df, a, b, benchmark, fam, deterministic)
            d = p.as_dict()
            row.update({f"{fam}_{k}": d[k] for k in ("mean", "sd", "ci95_low", "ci95_high", "verdict")})
            if fam == "overall":
                row.update({"n_pairs": p.n, "seeds": " ".join(map(str, p.seeds)),
                            "overall_diffs": " ".join(f"{x:+.1f}" for x in p.diffs)})
                shown["seeds"] = str(p.n)
                shown["per-seed Δ overall"] = row["overall_diffs"] or "—"
            shown[f"Δ {fam} [95% CI]"] = fmt_diff(p)
        shown["overall: CI excludes 0?"] = {"a > b": "yes, a > b", "a < b": "yes, a < b", "n.s.": "no"}.get(
            row["overall_verdict"], "n/a")
        data.append(row)
        disp.append(shown)
    caption = (f"Paired comparisons on {benchmark}: per-seed differences a − b of the score x100 (the same seed "
               "gives both variants the same data order and initialisation), mean and 95% Student-t interval "
               "over the paired seeds; an untrained row (base) is subtracted from every seed. closed = mean over "
               "the closed-ended task types, open = the open-ended type.")
    return Table("comparisons", caption, pd.DataFrame(data), [("", pd.DataFrame(disp))])


def _status_from_ci(p: PairedDiff, sign: int = 1) -> str:
    """Status of "sign * (a - b) > 0": reproduced when the 95% interval lies above 0, not
    reproduced when it lies below 0, inconclusive when it holds 0 or there is one pair only (no
    interval); not run without pairs."""
    if p.n == 0 or math.isnan(p.mean):
        return NOT_RUN
    if p.n < 2 or math.isnan(p.ci_low):
        return INCONCLUSIVE
    lo, hi = (p.ci_low, p.ci_high) if sign > 0 else (-p.ci_high, -p.ci_low)
    if lo > 0:
        return REPRODUCED
    return NOT_REPRODUCED if hi < 0 else INCONCLUSIVE


def _equivalence(p: PairedDiff, margin: float | None = None) -> str:
    """Status of "a and b are close": reproduced when the 95% interval lies inside ±margin,
    not reproduced when it excludes 0, inconclusive otherwise (too few seeds to tell)."""
    margin = EQUIVALENCE_MARGIN if margin is None else margin
    if p.n < 2 or math.isnan(p.ci_low):
        return NOT_RUN if p.n == 0 else INCONCLUSIVE
    if -margin <= p.ci_low and p.ci_high <= margin:
        return REPRODUCED
    if p.ci_low > 0 or p.ci_high < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _combine(statuses: list[str]) -> str:
    for s in (NOT_RUN, NOT_REPRODUCED, INCONCLUSIVE):
        if s in statuses:
            return s
    return REPRODUCED


def _in_range(x, lo_hi) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NOT_RUN
    return REPRODUCED if lo_hi[0] <= x <= lo_hi[1] else NOT_REPRODUCED


def findings_table(metrics: list[str], pass_at_k: list[str], teacher_stats: dict | None, roles: dict,
                   benchmark: str) -> Table:
    """The paper's findings (paper.md section 5 and 1.2), each with our measurement and a status.

    Args:
        metrics: eval metrics.json of every variant the roles name.
        pass_at_k: pass@k metrics.json of the pass@k variants (may be empty).
        teacher_stats: the scored distill pool's stats (teacher unreliability), or None.
        roles: :meth:`rmsd.report.spec.ReportSpec.roles`.
        benchmark: the benchmark the findings are read on.
    """
    df = add_families(collect_metrics(metrics)) if metrics else pd.DataFrame()
    rows: list[dict] = []
    constant = [v for v in [roles.get("base"), *roles.get("teachers", [])] if v]

    def pd_(a, b, fam="overall"):
        if not a or not b or df.empty:
            return PairedDiff(a or "?", b or "?", fam)
        return paired_diff(df, a, b, benchmark, fam, constant)

    def add(finding, paper, rule, measured, status):
        rows.append({"finding": finding, "paper": paper, "rule": rule, "ours": measured, "status": status})

    r = roles
    # 1. main ordering
    p1 = pd_(r.get("full"), r.get("sft_rl"))
    p2 = pd_(r.get("sft_rl"), r.get("base"))
    add("R-MSD > original SFT+RL", "+1.5 / +3.2 vs +0.2 / +0.5 over base (VideoMME / Video-MMMU)",
        "paired Δ R-MSD − SFT+RL, 95% CI > 0", fmt_diff(p1), _status_from_ci(p1))
    add("original SFT+RL > base", "+0.2 to +0.5 (marginal)", "paired Δ SFT+RL − base, 95% CI > 0",
        fmt_diff(p2), _status_from_ci(p2))
    # 2. single-sample gains little
    ps = pd_(r.get("single"), r.get("base"))
    pf = pd_(r.get("full"), r.get("single"))
    add("single-sample distillation gains little (less than R-MSD)", "row A = base (63.8 VideoMME)",
        "paired Δ R-MSD − single-sample, 95% CI > 0 (Δ single − base shown)",
        f"{fmt_diff(pf)}; single − base {fmt_diff(ps)}", _status_from_ci(pf))
    # 3. ablation steps
    steps = [("multi-sample helps (A → B)", "+0.7 VideoMME", "multi", "single"),
             ("quality filtering helps (B → C)", "+0.5 VideoMME, +1.3 Video-MMMU", "filtered", "multi")]
    for name, paper, a, b in steps:
        p = pd_(r.get(a), r.get(b))
        add(name, paper, f"paired Δ {a} − {b}, 95% CI > 0", fmt_diff(p), _status_from_ci(p))
    pc = pd_(r.get("full"), r.get("filtered"), "closed")
    add("quality weighting helps closed-ended tasks (C → D)", "+0.3 VideoMME, +1.4 Video-MMMU",
        "paired Δ D − C on closed-ended items, 95% CI > 0", fmt_diff(pc), _status_from_ci(pc))
    # 4. K
    k = r.get("k", {})
    if "4" in k and "8" in k:
        p48 = pd_(k["8"], k["4"])
        add("K = 4 close to K = 8 (diminishing returns)", "65.3 vs 65.5 VideoMME",
            f"paired Δ K8 − K4: 95% CI inside ±{EQUIVALENCE_MARGIN:g} points (equivalence)", fmt_diff(p48),
            _equivalence(p48))
    else:
        add("K = 4 close to K = 8 (diminishing returns)", "65.3 vs 65.5 VideoMME", "needs K=4 and K=8 rows",
            "—", NOT_RUN)
    # 5. tau
    tau = r.get("tau", {})
    if "0.3" in tau and "0" in tau and "0.5" in tau:
        a0, a5 = pd_(tau["0.3"], tau["0"]), pd_(tau["0.3"], tau["0.5"])
        add("τ = 0.3 beats τ = 0 and τ = 0.5", "65.3 vs 64.5 / 64.8 VideoMME",
            "paired Δ τ0.3 − τ0 and τ0.3 − τ0.5, both 95% CI > 0",
            f"vs 0: {fmt_diff(a0)}; vs 0.5: {fmt_diff(a5)}", _combine([_status_from_ci(a0), _status_from_ci(a5)]))
    else:
        add("τ = 0.3 beats τ = 0 and τ = 0.5", "65.3 vs 64.5 / 64.8 VideoMME", "needs τ 0, 0.3, 0.5 rows", "—",
            NOT_RUN)
    # 6. task-adaptive matching
    m = r.get("match", {})
    qc, uc = m.get("quality/uniform"), m.get("uniform/uniform")
    pcl = pd_(qc, uc, "closed")
    add("GT-quality matching better for closed-ended tasks", "57.8 vs 56.2 Video-MMMU",
        "paired Δ (closed: quality) − (closed: uniform), open uniform, on closed items, 95% CI > 0",
        fmt_diff(pcl), _status_from_ci(pcl) if qc and uc else NOT_RUN)
    uo, qo = m.get("quality/uniform"), m.get("quality/quality")
    pop = pd_(uo, qo, "open")
    add("uniform matching better for open-ended tasks", "59.1 vs 58.4 Video-MMMU",
        "paired Δ (open: uniform) − (open: quality), closed quality, on open items, 95% CI > 0",
        fmt_diff(pop), _status_from_ci(pop) if uo and qo else NOT_RUN)
    # 7. pass@k
    add(*_pass_at_k_finding(pass_at_k, r.get("pass_at_k", [])))
    # 8. GT upper bound and teachers (setup checks of the miniature)
    pg = pd_(r.get("gt"), r.get("full"))
    add("(setup) ground-truth SFT upper bound ≥ R-MSD", "not in the paper", "paired Δ GT-SFT − R-MSD",
        fmt_diff(pg), NOT_RUN if pg.n == 0 else (REPRODUCED if pg.mean >= 0 else NOT_REPRODUCED))
    for t in r.get("teachers", []):
        pt = pd_(t, r.get("base"))
        add(f"(setup) {P.label(t)} clearly better than the base student", "235B teacher vs 4B student",
            "Δ teacher − base > 5 points", fmt_diff(pt),
            NOT_RUN if pt.n == 0 else (REPRODUCED if pt.mean > 5 else NOT_REPRODUCED))
    # 9. teacher statistics
    for row in _teacher_findings(teacher_stats):
        add(*row)
    caption = (f"The paper's findings (paper section 5, teacher statistics from 1.2) checked on {benchmark}. "
               "Differences are x100, paired over seeds, mean [95% Student-t CI]. reproduced: the interval "
               "lies on the paper's side of 0 (or the value in the paper's range); inconclusive: the interval "
               "holds 0 (or one seed only); not reproduced: the interval lies on the other side of 0 (or "
               "the value is out of range); not run: a needed variant is not configured or has no "
               "paired seed.")
    data = pd.DataFrame(rows)
    return Table("findings", caption, data, [("", data.rename(columns=str.capitalize))])


def _pass_at_k_finding(paths: list[str], variants: list[str]) -> tuple:
    name, paper = "Pass@1 gap larger than the Pass@k gap at large k", "+3.2 at k=1, curves converge by k=16"
    rule = "mean gap R-MSD − baseline at k=1 > gap at the largest k"
    if not paths or len(variants) < 2:
        return name, paper, rule, "—", NOT_RUN
    df = collect_pass_at_k(paths)
    if df.empty:
        return name, paper, rule, "—", NOT_RUN
    base, full = variants[0], variants[-1]
    g = df.groupby(["variant", "k"]).pass_at_k.mean()
    kmax = int(df.k.max())
    try:
        gap1 = float(g[(full, 1)] - g[(base, 1)])
        gapk = float(g[(full, kmax)] - g[(base, kmax)])
    except KeyError:
        return name, paper, rule, "—", NOT_RUN
    status = REPRODUCED if gap1 > gapk and gap1 > 0 else NOT_REPRODUCED
    return name, paper, rule, f"gap@1 {gap1:+.1f}, gap@{kmax} {gapk:+.1f} ({P.label(full)} − {P.label(base)})", status


def _teacher_findings(stats: dict | None) -> list[tuple]:
    if not stats:
        return [("teacher statistics in the paper's range", "σ 0.22, σ_sampling 0.07-0.15, violations 1-10 %",
                 "—", "—", NOT_RUN)]
    ov = stats["overall"]
    qa = ov.get("q_analysis") or ov
    cross = qa["cross_item"]["std"]
    by_task = stats.get("by_task", {})
    sig = {t: (g.get("q_analysis") or g)["sigma_sampling"] if t == "open" else g["sigma_sampling"]
           for t, g in by_task.items()}
    viol = ov["format_violation_rate"]
    sig_text = ", ".join(f"{t} {v:.2f}" for t, v in sig.items() if v is not None)
    sig_status = _combine([_in_range(v, SIGMA_SAMPLING_RANGE) for v in sig.values() if v is not None]) \
        if sig else NOT_RUN
    return [
        ("teacher cross-item σ of quality about 0.22", "σ = 0.22 over 200 questions",
         f"in [{CROSS_ITEM_SIGMA_RANGE[0]}, {CROSS_ITEM_SIGMA_RANGE[1]}]", f"{cross:.2f}",
         _in_range(cross, CROSS_ITEM_SIGMA_RANGE)),
        ("teacher within-item σ_sampling 0.07-0.15", "0.07 (MCQ) to 0.15 (visual QA)",
         f"every task in [{SIGMA_SAMPLING_RANGE[0]}, {SIGMA_SAMPLING_RANGE[1]}]", sig_text or "—", sig_status),
        ("teacher format violations 1-10 %", "≈1 % overall, ≈10 % temporal",
         f"overall in [{VIOLATION_RANGE[0]:.0%}, {VIOLATION_RANGE[1]:.0%}]", f"{100 * viol:.1f} %",
         _in_range(viol, VIOLATION_RANGE)),
    ]
