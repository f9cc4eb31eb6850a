"""The paper's tables from cached results: CSV, Markdown, LaTeX (booktabs) and an HTML fragment.

Every table is built from files the pipeline already wrote (``results/eval/*/metrics.json``,
``results/select/*/seed*.stats.json``, ``results/scored/*.stats.json``): nothing here runs a model.
Scores are x100; ours are ``mean ± std`` over seeds (sample std, ddof 1; one seed shows the mean
only and ``n_seeds`` says 1). The paper's numbers (:mod:`rmsd.report.paper_ref`) stand beside ours:
they are 4B-scale results on real benchmarks, so compare directions and gaps, not absolute values.

Pure builders (``*_table``) take collected frames and return :class:`Table`; :func:`write_table`
writes one table in every format; :func:`write_report_table` is the entry point of the rules.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rmsd.io import atomic_path, atomic_write_text
from rmsd.report import paper_ref as P
from rmsd.report.paired import add_families, fmt_diff, paired_diff
from rmsd.utils import get_logger

log = get_logger(__name__)

_EVAL_RE = re.compile(r"(?P<variant>[^/]+)/seed(?P<seed>\d+)/(?P<benchmark>[^/]+)/metrics\.json$")
_SELECT_RE = re.compile(r"select/(?P<variant>[^/]+)/seed(?P<seed>\d+)\.stats\.json$")
DASH = "—"
CHECK, CROSS = "✓", "✗"
BASE_COLS = ("variant", "seed", "benchmark", "overall", "n_items", "n_unparsed")


# ==================================================================================================
# Collecting cached results
# ==================================================================================================

def _parse_eval_path(p: str) -> re.Match:
    m = _EVAL_RE.search(str(p))
    if m is None:
        raise ValueError(f"{p}: not an evaluation metrics path (<variant>/seed<N>/<benchmark>/metrics.json)")
    return m


def collect_metrics(paths: list[str]) -> pd.DataFrame:
    """One row per (variant, seed, benchmark): ``overall``, per-task means (x100), counts."""
    rows = []
    for p in paths:
        m = _parse_eval_path(p)
        d = json.loads(Path(p).read_text())
        row = {"variant": m["variant"], "seed": int(m["seed"]), "benchmark": m["benchmark"],
               "overall": 100 * _num(d.get("overall")), "n_items": d.get("n_items"),
               "n_unparsed": d.get("n_unparsed")}
        for task, v in (d.get("per_task") or {}).items():
            row[f"task:{task}"] = 100 * _num(v.get("mean"))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(BASE_COLS) if not rows else None)


def collect_vstar(paths: list[str]) -> pd.DataFrame:
    """One row per (variant, seed) of V-STaR metrics.json: the paper's four numbers (x100)."""
    rows = []
    for p in paths:
        m = _parse_eval_path(p)
        vs = json.loads(Path(p).read_text()).get("vstar") or {}
        row = {"variant": m["variant"], "seed": int(m["seed"])}
        for step, chain, metric in P.VSTAR_COLUMNS:
            cell = (vs.get(f"chain{chain}") or {}).get(step) or {}
            row[f"{step}{chain}"] = 100 * _num(cell.get(metric))
        for key in ("mAM", "mLGM"):
            row[key] = 100 * _num(vs.get(key))
        rows.append(row)
    return pd.DataFrame(rows)


def collect_pass_at_k(paths: list[str]) -> pd.DataFrame:
    """Long frame (variant, seed, k, pass_at_k in %) from metrics.json files that carry ``pass_at_k``."""
    rows = []
    for p in paths:
        m = _parse_eval_path(p)
        d = json.loads(Path(p).read_text())
        for k, v in (d.get("pass_at_k") or {}).items():
            rows.append({"variant": m["variant"], "seed": int(m["seed"]), "k": int(k), "pass_at_k": 100 * float(v)})
    return pd.DataFrame(rows, columns=["variant", "seed", "k", "pass_at_k"])


def selection_retention(paths: list[str]) -> pd.DataFrame:
    """Retained ratio (kept pairs / considered pairs) and SFT-target quality per (variant, seed)."""
    rows = []
    for p in paths:
        m = _SELECT_RE.search(str(p))
        if m is None:
            raise ValueError(f"{p}: not a selection stats path (select/<variant>/seed<N>.stats.json)")
        d = json.loads(Path(p).read_text())
        rows.append({"variant": m["variant"], "seed": int(m["seed"]),
                     "retained_ratio": _num(d.get("retained_ratio")),
                     "n_items_kept": d.get("n_kept_items"), "n_dropped": d.get("n_dropped"),
                     "sft_target_mean_q": _num(d.get("mean_sft_target_q"))})
    return pd.DataFrame(rows, columns=["variant", "seed", "retained_ratio", "n_items_kept", "n_dropped",
                                       "sft_target_mean_q"])


def _num(x) -> float:
    try:
        return float(x) if x is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


# ==================================================================================================
# Formatting helpers
# ==================================================================================================

def seed_stats(x) -> tuple[float, float, int]:
    """(mean, sample std, n) over seeds, ignoring NaN; std is NaN for a single seed."""
    a = np.asarray([v for v in x if v is not None and not (isinstance(v, float) and math.isnan(v))], float)
    if len(a) == 0:
        return float("nan"), float("nan"), 0
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else float("nan"), len(a)


def fmt_pm(mean: float, std: float, digits: int = 1) -> str:
    """``"12.3 ± 0.4"``; the mean alone when std is NaN (one seed); a dash when there is no value."""
    if mean is None or math.isnan(mean):
        return DASH
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_num(x, digits: int = 1, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_paper(value, base=None) -> str:
    """A paper cell: ``"65.3"`` or, with the base row's value, ``"65.3 (+1.5)"``."""
    if value is None:
        return DASH
    if base is None:
        return f"{value:.1f}"
    return f"{value:.1f} ({value - base:+.1f})"


def _r(x, digits: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


# ==================================================================================================
# Tables
# ==================================================================================================

@dataclass
class Table:
    """One table: a machine-readable frame (CSV) and one or more display blocks (MD, TeX, HTML)."""

    name: str
    caption: str
    data: pd.DataFrame
    blocks: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _bench_block(df: pd.DataFrame, variant: str, benchmarks: list[str], base_means: dict) -> tuple[dict, dict]:
    """CSV and display cells of one variant over the benchmarks (mean ± std over seeds, delta)."""
    data, disp = {}, {}
    for b in benchmarks:
        g = df[(df.variant == variant) & (df.benchmark == b)]
        mean, std, n = seed_stats(g.overall)
        delta = mean - base_means.get(b, float("nan"))
        data.update({f"{b}_mean": _r(mean, 2), f"{b}_std": _r(std, 2), f"{b}_n_seeds": n,
                     f"{b}_delta": _r(delta, 2)})
        disp[f"{b} (ours)"] = fmt_pm(mean, std)
        disp[f"Δ {b}"] = fmt_num(delta, signed=True)
    return data, disp


def _tasks(df: pd.DataFrame, benchmark: str) -> list[str]:
    d = df[df.benchmark == benchmark]
    return [c[5:] for c in d.columns if c.startswith("task:") and d[c].notna().any()]


def main_table(df: pd.DataFrame, rows: list[dict], benchmarks: list[str], primary: str,
               base: str = P.PAPER_BASE) -> Table:
    """Table 1: every main row on every benchmark, delta vs the base row, the paper's numbers beside.

    CSV columns: ``variant``, ``label``, ``n_seeds``, ``mean``/``std``/``score``/``delta_vs_base``
    (primary benchmark), per-task means of the primary benchmark, ``<bench>_mean|_std|_delta`` per
    benchmark, ``paper_<B>`` and ``paper_delta_<B>`` for the paper's seven benchmarks.
    """
    variants = [r["variant"] for r in rows]
    base_v = base if base in variants else variants[0]
    base_means = {b: seed_stats(df[(df.variant == base_v) & (df.benchmark == b)].overall)[0] for b in benchmarks}
    tasks = _tasks(df, primary)
    data_rows, disp_rows = [], []
    paper_base = P.MAIN[P.PAPER_BASE]
    for r in rows:
        v = r["variant"]
        g = df[(df.variant == v) & (df.benchmark == primary)]
        if g.empty:
            raise ValueError(f"no evaluation results for variant {v!r} on {primary!r}")
        mean, std, n = seed_stats(g.overall)
        data = {"variant": v, "label": P.label(v), "n_seeds": n, "mean": _r(mean, 2), "std": _r(std, 2) if n > 1 else 0.0,
                "score": fmt_pm(mean, std), "delta_vs_base": _r(mean - base_means[primary], 2),
                "n_unparsed": _r(g.n_unparsed.astype(float).mean(), 1)}
        disp = {"Model": P.label(v)}
        bdata, bdisp = _bench_block(df, v, benchmarks, base_means)
        for t in tasks:
            tm, ts, _ = seed_stats(g[f"task:{t}"])
            data[t] = _r(tm, 1)
            data[f"{t}_std"] = _r(ts, 1)
        data.update(bdata)
        disp.update(bdisp)
        for t in tasks:
            disp[f"{primary}: {t}"] = fmt_num(data[t])
        disp["seeds"] = str(n)
        ref = P.MAIN.get(v, {}) if not v.startswith("teacher-") else {}
        for b in P.PAPER_BENCHMARKS:
            val = ref.get(b)
            data[f"paper_{b}"] = val
            data[f"paper_delta_{b}"] = _r(val - paper_base[b], 1) if val is not None and b in paper_base else None
            disp[f"paper {b}"] = fmt_paper(val, None if v == P.PAPER_BASE else paper_base.get(b))
        data_rows.append(data)
        disp_rows.append(disp)
    caption = (f"Table 1. Main results: score x100 on {', '.join(benchmarks)} (ours: mean ± std over seeds; "
               f"Δ vs {P.label(base_v)}), per-task means on {primary}, and the paper's 4B results "
               "(paper section 5.1, Δ vs base in brackets). Teacher rows are references.")
    return Table("main", caption, pd.DataFrame(data_rows), [("", pd.DataFrame(disp_rows))])


def vstar_table(vs: pd.DataFrame | None, variants: list[str]) -> Table:
    """Table 2: V-STaR When (m_tIoU) and Where (m_vIoU) per chain; 'not configured' without data."""
    cols = [f"{s}{c}" for s, c, _ in P.VSTAR_COLUMNS]
    names = {f"{s}{c}": f"{s.capitalize()} Chain{c} ({m})" for s, c, m in P.VSTAR_COLUMNS}
    data_rows, disp_rows = [], []
    configured = vs is not None and not vs.empty
    shown = variants if configured else [v for v in P.VSTAR]
    for v in shown:
        data, disp = {"variant": v, "label": P.label(v)}, {"Model": P.label(v)}
        g = vs[vs.variant == v] if configured else None
        data["n_seeds"] = int(len(g)) if configured else 0
        for c in cols:
            ref = P.VSTAR.get(v, {}).get(c)
            if configured:
                mean, std, _ = seed_stats(g[c])
                data.update({f"{c}_mean": _r(mean, 2), f"{c}_std": _r(std, 2)})
                disp[f"{names[c]} ours"] = fmt_pm(mean, std)
            else:
                data.update({f"{c}_mean": None, f"{c}_std": None})
                disp[f"{names[c]} ours"] = "not configured"
            data[f"paper_{c}"] = ref
            disp[f"{names[c]} paper"] = fmt_paper(ref)
        data_rows.append(data)
        disp_rows.append(disp)
    caption = "Table 2. V-STaR spatio-temporal grounding x100 (paper section 5.2)."
    notes = []
    if not configured:
        caption += (" V-STaR is not configured: add it to evaluation.benchmarks (data under "
                    "evaluation.data_root, see docs/howto.md); only the paper's numbers are shown.")
        notes.append("not configured")
    else:
        caption += " Ours: mean ± std over seeds."
    return Table("vstar", caption, pd.DataFrame(data_rows), [("", pd.DataFrame(disp_rows))], notes)


def _retention(ret: pd.DataFrame, variant: str) -> tuple[float, float, int]:
    return seed_stats(100 * ret[ret.variant == variant].retained_ratio) if ret is not None and not ret.empty \
        else (float("nan"), float("nan"), 0)


def _recipe_cells(r: dict) -> dict:
    return {"K": r.get("K"), "tau": r.get("tau"), "format_filter": r.get("format_filter"),
            "weighting_closed": (r.get("weighting") or {}).get("closed"),
            "weighting_open": (r.get("weighting") or {}).get("open"),
            "sft_target_closed": (r.get("sft_target") or {}).get("closed"), "stage2": r.get("stage2")}


SETTINGS: tuple[tuple[str, str], ...] = (
    ("K", "K"), ("tau", "τ"), ("format_filter", "format filter"),
    ("weighting.closed", "closed-ended matching"), ("weighting.open", "open-ended matching"),
    ("sft_target.closed", "closed-ended SFT target"), ("sft_target.open", "open-ended SFT target"),
    ("disc_weight", "discriminator-loss weight"), ("stage2", "Stage 2"),
)
"""Recipe settings a table row shows, with their names in captions (key paths into a report row)."""


def _setting(r: dict, key: str):
    head, _, sub = key.partition(".")
    v = r.get(head)
    if sub:
        v = (v or {}).get(sub)
    if isinstance(v, bool):
        return "on" if v else "off"
    if key == "disc_weight":  # absent: the Stage-2 default (quality)
        return {"quality": "q", "uniform": "1"}[v or "quality"]
    return v


def recipe_changes(a: dict, b: dict) -> list[str]:
    """What changes from row ``a`` to row ``b``: ``["K 1→4", "format filter off→on", ...]`` over
    :data:`SETTINGS` (untrained rows show nothing).

    >>> recipe_changes({"K": 1, "format_filter": False}, {"K": 4, "format_filter": True})
    ['K 1→4', 'format filter off→on']
    """
    out = []
    for key, name in SETTINGS:
        x, y = _setting(a, key), _setting(b, key)
        if x != y:
            out.append(f"{name} {x}→{y}")
    return out


def _steps_caption(rows: list[dict], letters: bool = True) -> str:
    parts = []
    for i in range(1, len(rows)):
        a, b = rows[i - 1], rows[i]
        ch = recipe_changes(a, b)
        name = (f"{chr(ord('A') + i - 1)}→{chr(ord('A') + i)}" if letters
                else f"{a['variant']}→{b['variant']}")
        parts.append(f"{name}: {', '.join(ch) if ch else 'no setting changes'}")
    return "; ".join(parts)


def _versus_caption(rows: list[dict], ref: str, keys: tuple[str, ...]) -> str:
    """Each row's settings that differ from row ``ref`` other than ``keys`` (empty when none do)."""
    r0 = next((r for r in rows if r["variant"] == ref), None)
    if r0 is None:
        return ""
    extra = []
    for r in rows:
        names = tuple(dict(SETTINGS)[k] + " " for k in keys)
        ch = [c for c in recipe_changes(r0, r) if not c.startswith(names)]
        if ch and r["variant"] != ref:
            extra.append(f"{r['variant']}: also {', '.join(ch)}")
    return "; ".join(extra)


def ablation_table(df: pd.DataFrame, rows: list[dict], benchmarks: list[str], ret: pd.DataFrame | None) -> Table:
    """Table 3: component ablation, rows A, B, C, D in ``report.ablation_variants`` order."""
    data_rows, disp_rows = [], []
    first = rows[0]["variant"] if rows else None
    base_means = {b: seed_stats(df[(df.variant == first) & (df.benchmark == b)].overall)[0] for b in benchmarks}
    fam = add_families(df)  # closed/open columns of the step differences
    untrained = [r["variant"] for r in rows if not r.get("train", True)]
    for i, r in enumerate(rows):
        letter = chr(ord("A") + i)
        v = r["variant"]
        ref = P.ABLATION.get(letter, {})
        data = {"row": letter, "setting": P.ABLATION_SETTINGS.get(letter, v), "variant": v, **_recipe_cells(r)}
        filt = bool(r.get("tau", 0) > 0) or bool(r.get("format_filter"))
        weight = (r.get("weighting") or {}).get("closed") == "quality"
        rm, rs, _ = _retention(ret, v)
        bdata, bdisp = _bench_block(df, v, benchmarks, base_means)
        data.update(bdata)
        data.update({"retained_pct_mean": _r(rm, 1), "retained_pct_std": _r(rs, 1),
                     "paper_VideoMME": ref.get("VideoMME"), "paper_Video-MMMU": ref.get("Video-MMMU"),
                     "paper_Video-MMMU_D2": ref.get("Video-MMMU_D2")})
        disp = {"Setting": f"{letter}: {P.ABLATION_SETTINGS.get(letter, v)}", "variant": v, "K": str(r.get("K")),
                "quality filtering": CHECK if filt else CROSS, "quality weighting": CHECK if weight else CROSS}
        disp.update({k.replace("Δ ", f"Δ vs A "): val for k, val in bdisp.items()})
        disp["retained %"] = fmt_pm(rm, rs)
        for col in ("overall", "closed"):
            disp[f"step Δ {col} [95% CI]"] = DASH  # row A: no previous row
        if i > 0:  # the step from the previous row, paired over seeds (rmsd.report.paired)
            for col in ("overall", "closed"):
                step = paired_diff(fam, v, rows[i - 1]["variant"], benchmarks[0], col, untrained)
                data.update({f"step_{col}_mean": _r(step.mean, 2), f"step_{col}_ci95_low": _r(step.ci_low, 2),
                             f"step_{col}_ci95_high": _r(step.ci_high, 2), f"step_{col}_n_pairs": step.n})
                disp[f"step Δ {col} [95% CI]"] = fmt_diff(step)
        disp["paper VideoMME"] = fmt_paper(ref.get("VideoMME"))
        disp["paper Video-MMMU (D1 / D2)"] = (f"{ref['Video-MMMU']:.1f} / {ref['Video-MMMU_D2']:.1f}"
                                              if ref else DASH)
        data_rows.append(data)
        disp_rows.append(disp)
    caption = ("Table 3. Component ablation (paper section 5.3): A single-sample (K=1), B multi-sample, "
               "C + quality filtering, D + quality weighting (full R-MSD). What each step changes in our "
               f"recipes: {_steps_caption(rows) or 'one row only'}. Ours: score x100, mean ± std "
               "over seeds, Δ vs row A; step Δ = paired per-seed difference to the previous row on "
               f"{benchmarks[0] if benchmarks else ''} (overall and closed-ended items), mean [95% Student-t CI]; "
               "retained % = kept (response) pairs / considered pairs of the selection.")
    return Table("ablation", caption, pd.DataFrame(data_rows), [("", pd.DataFrame(disp_rows))])


def _sensitivity(df, rows, benchmarks, ret, key: str, paper: dict, ref_base: str) -> tuple[list, list]:
    """Rows keyed by a recipe value (K or tau): ours where a variant has it, the paper's where it has it."""
    ours = {}
    for r in rows:
        ours.setdefault(float(r[key]), []).append(r)
    values = sorted(set(ours) | {float(k) for k in paper})
    base_means = {}
    if ref_base in [r["variant"] for r in rows]:
        base_means = {b: seed_stats(df[(df.variant == ref_base) & (df.benchmark == b)].overall)[0] for b in benchmarks}
    data_rows, disp_rows = [], []
    for val in values:
        ref = paper.get(int(val) if key == "K" else val) or paper.get(val) or {}
        for r in ours.get(val, [None]):
            v = r["variant"] if r else None
            shown = int(val) if key == "K" else val
            data = {key: shown, "variant": v, "n_seeds": r.get("n_seeds") if r else 0}
            disp = {key if key == "K" else "τ": str(shown), "variant": v or "not run"}
            if r:
                bdata, bdisp = _bench_block(df, v, benchmarks, base_means)
                rm, rs, _ = _retention(ret, v)
            else:
                bdata = {f"{b}_{s}": None for b in benchmarks for s in ("mean", "std", "delta")}
                bdisp = {k: DASH for b in benchmarks for k in (f"{b} (ours)", f"Δ {b}")}
                rm = rs = float("nan")
            data.update(bdata)
            data.update({"retained_pct_mean": _r(rm, 1), "retained_pct_std": _r(rs, 1)})
            disp.update({k: x for k, x in bdisp.items() if not k.startswith("Δ") or base_means})
            disp["retained % (ours)"] = fmt_pm(rm, rs)
            if "retained_pct" in ref or key == "tau":
                data["paper_retained_pct"] = ref.get("retained_pct")
                disp["retained % (paper)"] = fmt_num(ref.get("retained_pct"), 0)
            for b in P.ABLATION_BENCHMARKS:
                data[f"paper_{b}"] = ref.get(b)
                disp[f"paper {b}"] = fmt_paper(ref.get(b))
            if key == "K":
                data["note"] = P.K_NOTES.get(int(val), "")
                disp["note"] = data["note"]
            data_rows.append(data)
            disp_rows.append(disp)
    return data_rows, [{k: d.get(k, DASH) for k in dict.fromkeys(k for r in disp_rows for k in r)} for d in disp_rows]


def k_table(df: pd.DataFrame, rows: list[dict], benchmarks: list[str], ret: pd.DataFrame | None,
            not_run: list[str], ref_variant: str = "rmsd") -> Table:
    """Table 4: number of teacher samples K (K read from each variant's recipe)."""
    data_rows, disp_rows = _sensitivity(df, rows, benchmarks, ret, "K", P.K_SENSITIVITY, ref_variant)
    caption = ("Table 4. Sensitivity to the number of teacher samples K (paper section 5.4); every other "
               "setting as in the full recipe. Ours: score x100, mean ± std over seeds"
               + (f", Δ vs {ref_variant}" if any(r["variant"] == ref_variant for r in rows) else "") + ".")
    if extra := _versus_caption(rows, ref_variant, ("K",)):
        caption += f" Rows that differ from {ref_variant} in more than K: {extra}."
    if k1 := next((r for r in rows if r.get("K") == 1), None):
        caption += (f" The paper's K=1 value is its ablation row A (K=1, no filtering, no weighting); our K=1 "
                    f"row {k1['variant']} has format filter {_setting(k1, 'format_filter')}, τ {k1.get('tau')}, "
                    f"closed-ended matching {_setting(k1, 'weighting.closed')}, discriminator-loss weight "
                    f"{_setting(k1, 'disc_weight')}.")
    notes = [f"not run: {', '.join(not_run)} (not defined in variants)"] if not_run else []
    if notes:
        caption += f" Listed in report.k_variants but {notes[0]}; K=8 needs sampling.K >= 8."
    return Table("k_sensitivity", caption, pd.DataFrame(data_rows), [("", pd.DataFrame(disp_rows))], notes)


def tau_table(df: pd.DataFrame, rows: list[dict], benchmarks: list[str], ret: pd.DataFrame | None,
              not_run: list[str], ref_variant: str = "rmsd") -> Table:
    """Table 5: quality threshold tau with the retained ratio (tau read from each variant's recipe)."""
    data_rows, disp_rows = _sensitivity(df, rows, benchmarks, ret, "tau", P.TAU_SENSITIVITY, ref_variant)
    caption = ("Table 5. Sensitivity to the quality threshold τ (paper section 5.5) with the retained ratio: "
               "kept / considered (response) pairs after the τ and format filters (ours: mean ± std over "
               "seeds, in %; the paper's 'valid sample ratio'). Scores x100.")
    notes = [f"not run: {', '.join(not_run)} (not defined in variants)"] if not_run else []
    if notes:
        caption += f" Listed in report.tau_variants but {notes[0]}."
    return Table("tau_sensitivity", caption, pd.DataFrame(data_rows), [("", pd.DataFrame(disp_rows))], notes)


def task_adaptive_table(df: pd.DataFrame, rows: list[dict], benchmark: str, default_weighting: dict,
                        not_run: list[str]) -> Table:
    """Table 6: matching weights {closed: quality|uniform} x {open: quality|uniform}.

    Two views: the full 2x2 grid of overall scores, and the paper's layout (a task kind's matching
    swapped while the other keeps the recipe's default), scored on that task kind's items.
    """
    d = df[df.benchmark == benchmark]
    tasks = _tasks(df, benchmark)
    closed_t = [t for t in tasks if t != "open"]
    data_rows, cells = [], {}
    for r in rows:
        v = r["variant"]
        g = d[d.variant == v]
        w = r.get("weighting") or {}
        mean, std, n = seed_stats(g.overall)
        closed = [float(np.mean([row[f"task:{t}"] for t in closed_t])) for _, row in g.iterrows()] if closed_t else []
        opened = list(g["task:open"]) if "open" in tasks else []
        cm, cs, _ = seed_stats(closed)
        om, os_, _ = seed_stats(opened)
        data_rows.append({"variant": v, "closed_weighting": w.get("closed"), "open_weighting": w.get("open"),
                          "n_seeds": n, "overall_mean": _r(mean, 2), "overall_std": _r(std, 2),
                          "closed_tasks_mean": _r(cm, 2), "closed_tasks_std": _r(cs, 2),
                          "open_tasks_mean": _r(om, 2), "open_tasks_std": _r(os_, 2)})
        cells[(w.get("closed"), w.get("open"))] = {"v": v, "overall": fmt_pm(mean, std),
                                                   "closed": fmt_pm(cm, cs), "open": fmt_pm(om, os_)}
    strategies = ("quality", "uniform")
    grid = pd.DataFrame([{"closed-ended matching": f"closed: {c}",
                          **{f"open: {o}": (f"{cells[(c, o)]['overall']} ({cells[(c, o)]['v']})"
                                            if (c, o) in cells else "not run") for o in strategies}}
                         for c in strategies])
    dflt = {"closed": default_weighting.get("closed", "quality"), "open": default_weighting.get("open", "uniform")}
    paper_rows = []
    for kind in ("closed", "open"):
        row = {"task type (items scored)": f"{kind}-ended"}
        for s in strategies:
            key = (s, dflt["open"]) if kind == "closed" else (dflt["closed"], s)
            cell = cells.get(key)
            row[f"{s} (ours)"] = f"{cell[kind]} ({cell['v']})" if cell else "not run"
        for s in strategies:
            ref = P.TASK_ADAPTIVE.get((kind, s))
            alt = P.TASK_ADAPTIVE_D2.get((kind, s))
            row[f"{s} (paper)"] = fmt_paper(ref) + (f" / {alt:.1f} (D2)" if alt else "")
        paper_rows.append(row)
    data = pd.DataFrame(data_rows)
    for (kind, s), ref in P.TASK_ADAPTIVE.items():
        data[f"paper_{kind}_{s}"] = ref
    caption = ("Table 6. Task-adaptive matching (paper section 5.6): quality-weighted (p ~ q) or uniform "
               f"matching for closed- and open-ended items, score x100 on {benchmark} (mean ± std over seeds). "
               "Top: all four combinations, overall score. Bottom: the paper's layout, one task kind's "
               f"matching swapped while the other keeps the recipe default ({dflt['closed']} / {dflt['open']}), "
               "scored on that kind's items; the paper reports Video-MMMU overall.")
    notes = [f"not run: {', '.join(not_run)}"] if not_run else []
    if notes:
        caption += f" Listed in report.task_adaptive_variants but {notes[0]} (not defined in variants)."
    ref = next((r["variant"] for r in rows if (r.get("weighting") or {}) == dflt), None)
    if ref is not None and (extra := _versus_caption(rows, ref, ("weighting.closed", "weighting.open"))):
        caption += f" Rows that differ from {ref} in more than the matching: {extra}."
    elif ref is not None:
        caption += f" Every row is {ref}'s recipe with only the matching weights changed."
    return Table("task_adaptive", caption, data,
                 [("2x2 grid: overall score", grid), ("Paper layout", pd.DataFrame(paper_rows))], notes)


def teacher_unreliability(stats: dict) -> pd.DataFrame:
    """The paper section 1.2 table: per teacher and task, ours beside the paper's values."""
    paper = stats["paper"]
    rows = []

    def add(teacher, task, g, ref):
        qa = g.get("q_analysis") if task in ("open", "all") else None  # as in the figure
        src = qa or g
        rows.append({
            "teacher": teacher, "task": task, "n_items": g["n_items"],
            "mean_q": src["mean_q"], "cross_item_std": src["cross_item"]["std"],
            "min_item_q": src["cross_item"]["min"], "max_item_q": src["cross_item"]["max"],
            "sigma_sampling": src["sigma_sampling"], "format_violation_rate": g["format_violation_rate"],
            "q_source": "valid x ROUGE-L" if qa else "q",
            "paper_mean": ref.get("mean"), "paper_std": ref.get("std"),
            "paper_sigma_sampling": ref.get("sigma_sampling"),
            "paper_violation_rate": ref.get("format_violation_rate"),
        })

    refs = {"mcq": paper["mcq"], "open": paper["visual_qa_open"], "temporal": paper["temporal"]}
    add("all", "all", stats["overall"], paper["overall"])
    for task, g in stats["by_task"].items():
        add("all", task, g, refs.get(task, {}))
    for teacher, by in stats["by_teacher_task"].items():
        add(teacher, "all", stats["by_teacher"][teacher], {})
        for task, g in by.items():
            add(teacher, task, g, refs.get(task, {}))
    df = pd.DataFrame(rows)
    num = df.select_dtypes("number").columns.drop("n_items")
    df[num] = df[num].astype(float).round(3)
    return df


def teacher_table(stats: dict) -> Table:
    df = teacher_unreliability(stats)
    disp = pd.DataFrame({
        "teacher": df.teacher, "task": df.task, "items": df.n_items.astype(str),
        "mean q": [fmt_num(x, 2) for x in df.mean_q],
        "cross-item σ": [fmt_num(x, 2) for x in df.cross_item_std],
        "item q range": [f"{fmt_num(a, 2)}–{fmt_num(b, 2)}" for a, b in zip(df.min_item_q, df.max_item_q)],
        "σ_sampling": [fmt_num(x, 3) for x in df.sigma_sampling],
        "format violations %": [fmt_num(100 * x if x is not None else None, 1) for x in df.format_violation_rate],
        "paper mean / σ": [f"{fmt_num(m, 2)} / {fmt_num(s, 2)}" if not _isnan(m) else DASH
                           for m, s in zip(df.paper_mean, df.paper_std)],
        "paper σ_sampling": [fmt_num(x, 2) for x in df.paper_sigma_sampling],
        "paper violations %": [fmt_num(100 * x, 0) if not _isnan(x) else DASH for x in df.paper_violation_rate],
    })
    caption = ("Teacher unreliability (paper section 1.2): cross-item mean, std and range of the per-item mean "
               "quality q; within-item σ_sampling of q over the K samples; format-violation rate. Open-ended "
               "q = valid x ROUGE-L (analysis only). Paper: 200 questions, Qwen3-VL-235B teacher.")
    return Table("teacher_unreliability", caption, df, [("", disp)])


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


# ==================================================================================================
# Writers
# ==================================================================================================

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "±": r"$\pm$", "Δ": r"$\Delta$", "τ": r"$\tau$", "σ": r"$\sigma$", "✓": r"\checkmark",
                "✗": r"$\times$", "—": "--", "–": "--", "−": "$-$", "≥": r"$\geq$", "≈": r"$\approx$",
                "→": r"$\rightarrow$"}


def tex_escape(s) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in str(s))


def to_latex(table: Table) -> str:
    """booktabs LaTeX: one ``table`` float with a tabular per block (needs booktabs, amssymb)."""
    lines = ["% generated by rmsd.report.tables; needs \\usepackage{booktabs,amssymb,graphicx}",
             "\\begin{table}[t]", "\\centering", f"\\caption{{{tex_escape(table.caption)}}}",
             f"\\label{{tab:{table.name}}}"]
    for title, disp in table.blocks:
        if title:
            lines.append(f"\\par\\smallskip\\textit{{{tex_escape(title)}}}\\par\\smallskip")
        cols = list(disp.columns)
        lines += ["\\resizebox{\\linewidth}{!}{%", f"\\begin{{tabular}}{{l{'c' * (len(cols) - 1)}}}", "\\toprule",
                  " & ".join(tex_escape(c) for c in cols) + r" \\", "\\midrule"]
        for _, row in disp.iterrows():
            lines.append(" & ".join(tex_escape(row[c]) for c in cols) + r" \\")
        lines += ["\\bottomrule", "\\end{tabular}}"]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def to_markdown(table: Table) -> str:
    parts = [table.caption, ""]
    for title, disp in table.blocks:
        if title:
            parts += [f"**{title}**", ""]
        parts += [disp.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


def to_html(table: Table) -> str:
    """A self-contained HTML fragment (style + caption + tables), embeddable in the Snakemake report."""
    style = ("<style>.rmsd-table{font-family:sans-serif;font-size:13px}.rmsd-table table{border-collapse:"
             "collapse;margin:6px 0 14px}.rmsd-table th,.rmsd-table td{border-bottom:1px solid #bbb;padding:"
             "3px 8px;text-align:center}.rmsd-table th{border-bottom:2px solid #333}.rmsd-table td:first-child"
             "{text-align:left}</style>")
    parts = [style, f'<div class="rmsd-table" id="table-{table.name}">',
             f'<p class="rmsd-caption">{html.escape(table.caption)}</p>']
    for title, disp in table.blocks:
        if title:
            parts.append(f"<h4>{html.escape(title)}</h4>")
        parts.append(disp.to_html(index=False, border=0, na_rep=DASH, escape=True,
                                  classes=f"rmsd-{table.name}"))
    parts.append("</div>")
    return "\n".join(parts) + "\n"


def write_table(table: Table, stem: str | Path) -> None:
    """``<stem>.csv`` (data), ``.md``, ``.tex`` (booktabs) and ``.html`` (display)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        table.data.to_csv(tmp, index=False)
    atomic_write_text(stem.with_suffix(".md"), to_markdown(table))
    atomic_write_text(stem.with_suffix(".tex"), to_latex(table))
    atomic_write_text(stem.with_suffix(".html"), to_html(table))
    log.info("wrote %s.{csv,md,tex,html} (%d rows)", stem, len(table.data))


# ==================================================================================================
# Entry point of the report_table_* rules
# ==================================================================================================

TABLE_KINDS = ("main", "vstar", "ablation", "k_sensitivity", "tau_sensitivity", "task_adaptive",
               "teacher_unreliability")


def build_table(kind: str, metrics: list[str] = (), selections: list[str] = (), scored_stats: str | None = None,
                variants: list[str] = (), rows: list[dict] = (), benchmarks: list[str] = (), benchmark: str = "",
                not_run: list[str] = (), default_weighting: dict | None = None) -> Table:
    """Build one of :data:`TABLE_KINDS` from cached result files (no file is written).

    ``variants``: row names of the tables that show no recipe setting (main, vstar); ``rows``: the
    recipe rows of the others (:meth:`rmsd.report.spec.ReportSpec.row`).
    """
    rows = list(rows) or [{"variant": v} for v in variants]
    benchmarks = list(benchmarks)
    if kind == "teacher_unreliability":
        return teacher_table(json.loads(Path(scored_stats).read_text()))
    if kind == "vstar":
        return vstar_table(collect_vstar(list(metrics)) if metrics else None, [r["variant"] for r in rows])
    df = collect_metrics(list(metrics))
    ret = selection_retention(list(selections)) if selections else None
    if kind == "main":
        return main_table(df, rows, benchmarks, benchmark or benchmarks[0])
    if kind == "ablation":
        return ablation_table(df, rows, benchmarks, ret)
    if kind == "k_sensitivity":
        return k_table(df, rows, benchmarks, ret, list(not_run))
    if kind == "tau_sensitivity":
        return tau_table(df, rows, benchmarks, ret, list(not_run))
    if kind == "task_adaptive":
        return task_adaptive_table(df, rows, benchmark or benchmarks[0], default_weighting or {}, list(not_run))
    raise ValueError(f"unknown table kind {kind!r}; valid: {TABLE_KINDS}")


def write_report_table(kind: str, out_stem: str, **kwargs) -> Table:
    """Build table ``kind`` (:func:`build_table` keyword arguments) and write it under ``out_stem``."""
    table = build_table(kind, **kwargs)
    write_table(table, out_stem)
    return table
