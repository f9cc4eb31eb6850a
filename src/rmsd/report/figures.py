"""Figures: main results bars and the teacher-variance analysis (paper section 5.9, figure 2)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rmsd.io import atomic_path  # noqa: E402


def _save(fig, path: str) -> None:
    for p in (path, str(path).rsplit(".", 1)[0] + ".pdf"):
        with atomic_path(p, suffix="." + p.rsplit(".", 1)[1]) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)


def main_figure(main_csv: str, out_png: str) -> None:
    """Bar chart of the main table: score (mean ± std over seeds) per variant and per task."""
    df = pd.read_csv(main_csv)
    tasks = [c for c in ("mcq", "numeric", "ocr", "temporal", "spatial", "open") if c in df.columns]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    x = np.arange(len(df))
    axes[0].bar(x, df["mean"], yerr=df["std"], capsize=3, color="tab:blue")
    axes[0].set_xticks(x, df["label"], rotation=30, ha="right", fontsize=8)
    axes[0].set_ylabel("score (macro mean over tasks, x100)")
    axes[0].set_title("Overall (mean ± std over seeds)")
    w = 0.8 / max(1, len(tasks))
    for i, t in enumerate(tasks):
        axes[1].bar(x + i * w, df[t], width=w, label=t)
    axes[1].set_xticks(x + 0.4 - w / 2, df["label"], rotation=30, ha="right", fontsize=8)
    axes[1].set_ylabel("score (x100)")
    axes[1].set_title("Per task type")
    axes[1].legend(fontsize=8)
    _save(fig, out_png)


def teacher_variance_figure(scored_parquet: str, out_png: str) -> None:
    """Quality histogram of per-(item, teacher) mean q, sigma_sampling and format violations per task.

    Open-ended quality uses valid x ROUGE-L (analysis only; the method does not rank open answers).
    The paper's reference values (section 1.2) are drawn as markers.
    """
    df = pd.read_parquet(scored_parquet)
    df["q_an"] = np.where(df.task_type == "open", df.metric.fillna(0) * df.valid, df.q)
    per_item = df.groupby(["item_id", "teacher", "task_type"]).q_an.agg(["mean", lambda s: s.std(ddof=0)])
    per_item.columns = ["mean", "std"]
    per_item = per_item.reset_index()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for teacher, g in per_item.groupby("teacher"):
        axes[0].hist(g["mean"], bins=np.linspace(0, 1, 11), alpha=0.5, label=teacher)
    axes[0].axvline(0.75, color="k", ls="--", lw=1, label="paper mean 0.75")
    axes[0].set_xlabel("per-item mean quality q")
    axes[0].set_ylabel("items")
    axes[0].set_title(f"Cross-item quality (σ = {per_item['mean'].std(ddof=0):.2f}; paper 0.22)")
    axes[0].legend(fontsize=8)
    sig = per_item.groupby("task_type")["std"].mean()
    axes[1].bar(sig.index, sig.values, color="tab:orange")
    axes[1].axhspan(0.07, 0.15, color="grey", alpha=0.2, label="paper 0.07-0.15")
    axes[1].set_ylabel("within-item σ_sampling of q")
    axes[1].set_title("Sampling variance per task")
    axes[1].legend(fontsize=8)
    viol = 100 * (1 - df.groupby("task_type").valid.mean())
    axes[2].bar(viol.index, viol.values, color="tab:red")
    axes[2].axhline(10, color="k", ls="--", lw=1, label="paper: ≤10% (temporal)")
    axes[2].axhline(1, color="grey", ls=":", lw=1, label="paper: ~1% overall")
    axes[2].set_ylabel("format violations (% of responses)")
    axes[2].set_title("Format violations per task")
    axes[2].legend(fontsize=8)
    _save(fig, out_png)
