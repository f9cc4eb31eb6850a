"""Tables: main results, component ablation, teacher unreliability. CSV, Markdown and LaTeX.

Scores are the embedded benchmark's macro mean over task types (x100), reported as mean +- std over
seeds; per-task columns are means over seeds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rmsd.io import atomic_path, atomic_write_text
from rmsd.report.paper_ref import PAPER_ROWS, ROW_LABELS

_EVAL_RE = re.compile(r"eval/(?P<variant>[^/]+)/seed(?P<seed>\d+)/(?P<benchmark>[^/]+)/metrics\.json$")


def collect_metrics(paths: list[str]) -> pd.DataFrame:
    """One row per (variant, seed, benchmark) with overall, micro, per-task scores (x100)."""
    rows = []
    for p in paths:
        m = _EVAL_RE.search(str(p))
        if m is None:
            raise ValueError(f"{p}: not an evaluation metrics path (eval/<variant>/seed<N>/<bench>/metrics.json)")
        d = json.loads(Path(p).read_text())
        row = {"variant": m["variant"], "seed": int(m["seed"]), "benchmark": m["benchmark"],
               "overall": 100 * d["overall"], "n_items": d["n_items"], "n_unparsed": d["n_unparsed"]}
        for task, v in d["per_task"].items():
            row[task] = 100 * v["mean"]
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(x: pd.Series) -> str:
    return f"{x.mean():.1f} ± {x.std(ddof=1):.1f}" if len(x) > 1 else f"{x.mean():.1f}"


def summarise(df: pd.DataFrame, variants: list[str], benchmark: str, base: str = "base") -> pd.DataFrame:
    """Mean +- std over seeds per variant, delta vs ``base``, and the paper's numbers beside.

    Returns:
        A frame indexed by row label with columns ``score`` (mean ± std), ``mean``, ``std``,
        ``n_seeds``, per-task means, ``delta_vs_base`` and the paper's ``paper_VideoMME``,
        ``paper_Video-MMMU``, ``paper_delta_VideoMME``.
    """
    d = df[df.benchmark == benchmark]
    tasks = [c for c in d.columns if c not in ("variant", "seed", "benchmark", "overall", "n_items",
                                                 "n_unparsed")]
    base_mean = d[d.variant == base].overall.mean() if (d.variant == base).any() else np.nan
    out = []
    for v in variants:
        g = d[d.variant == v]
        if g.empty:
            raise ValueError(f"no evaluation results for variant {v!r} on {benchmark!r}")
        ref = PAPER_ROWS.get(v, {})
        row = {"variant": v, "label": ROW_LABELS.get(v, v), "score": _pm(g.overall),
               "mean": round(g.overall.mean(), 2),
               "std": round(g.overall.std(ddof=1), 2) if len(g) > 1 else 0.0,
               "n_seeds": len(g), "n_unparsed": round(g.n_unparsed.mean(), 1)}
        row.update({t: round(g[t].mean(), 1) for t in tasks if t in g})
        row["delta_vs_base"] = round(g.overall.mean() - base_mean, 2)
        row["paper_VideoMME"] = ref.get("VideoMME")
        row["paper_Video-MMMU"] = ref.get("Video-MMMU")
        row["paper_delta_VideoMME"] = (round(ref["VideoMME"] - PAPER_ROWS[base]["VideoMME"], 1)
                                       if ref else None)
        out.append(row)
    return pd.DataFrame(out)


def write_table(df: pd.DataFrame, stem: str | Path, caption: str) -> None:
    """Write ``df`` as ``<stem>.csv``, ``<stem>.md`` (with the caption) and ``<stem>.tex`` (booktabs)."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    atomic_write_text(stem.with_suffix(".md"), f"{caption}\n\n{df.to_markdown(index=False)}\n")
    tex = df.to_latex(index=False, na_rep="--", caption=caption, label=f"tab:{stem.name}",
                      float_format="%.2f", escape=True)
    atomic_write_text(stem.with_suffix(".tex"), tex.replace("\\toprule", "\\toprule").replace("±", "$\\pm$"))


def selection_retention(paths: list[str]) -> pd.DataFrame:
    """Retained ratio and SFT-target quality per (variant, seed) from selection stats files."""
    rows = []
    for p in paths:
        m = re.search(r"select/(?P<variant>[^/]+)/seed(?P<seed>\d+)\.stats\.json$", str(p))
        d = json.loads(Path(p).read_text())
        rows.append({"variant": m["variant"], "seed": int(m["seed"]),
                     "retained_ratio": d.get("retained_ratio"), "n_items_kept": d.get("n_kept_items"),
                     "n_dropped": d.get("n_dropped"), "sft_target_mean_q": d.get("mean_sft_target_q")})
    return pd.DataFrame(rows)


def teacher_unreliability(stats: dict) -> pd.DataFrame:
    """The paper section 1.2 table: per teacher and task, ours beside the paper's values."""
    paper = stats["paper"]
    rows = []

    def add(teacher, task, g, ref):
        qa = g.get("q_analysis") if task == "open" else None
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
    df[num] = df[num].round(3)
    return df


def write_report_tables(metrics: list[str], selections: list[str], scored_stats: str,
                        main_variants: list[str], ablation_variants: list[str], benchmark: str,
                        teachers: list[str], out_dir: str) -> None:
    """Write main, ablation and teacher-unreliability tables under ``out_dir``."""
    df = collect_metrics(metrics)
    out = Path(out_dir)
    teacher_rows = [f"teacher-{t}" for t in teachers if (df.variant == f"teacher-{t}").any()]
    main = summarise(df, main_variants + teacher_rows, benchmark)
    write_table(main, out / "main", f"Table 1 (embedded benchmark {benchmark}): score x100, mean ± std over seeds; "
                "paper columns are the paper's 4B results on VideoMME / Video-MMMU.")
    if ablation_variants:
        abl = summarise(df, ablation_variants, benchmark)
        if selections:
            ret = selection_retention(selections).groupby("variant")[["retained_ratio", "sft_target_mean_q"]].mean()
            abl = abl.merge(ret.round(3), left_on="variant", right_index=True, how="left")
        write_table(abl, out / "ablation", f"Table 3 (component ablation, {benchmark}): A single-sample, "
                    "B multi-sample, C + filter, D full R-MSD.")
    stats = json.loads(Path(scored_stats).read_text())
    write_table(teacher_unreliability(stats), out / "teacher_unreliability",
                "Teacher unreliability (paper section 1.2): cross-item mean/std of per-item mean q, "
                "within-item sigma_sampling, format-violation rate; open-ended q = valid x ROUGE-L.")
