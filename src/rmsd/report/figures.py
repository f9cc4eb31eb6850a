"""Figures (PNG and PDF) from cached results: main results, teacher variance, K/tau sensitivity,
pass@k curves and training curves (paper sections 1.3, 5.4-5.7, 5.9).

Every figure is written as ``<stem>.png`` (150 dpi) and ``<stem>.pdf``; axes carry units. A figure
whose data is not configured (pass@k off, no trained variant) still renders, with a panel that says
so, so the report and its rules never fail for a missing optional input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rmsd.io import atomic_path  # noqa: E402
from rmsd.report import paper_ref as P  # noqa: E402
from rmsd.report.tables import collect_metrics, collect_pass_at_k, seed_stats  # noqa: E402
from rmsd.utils import get_logger  # noqa: E402

log = get_logger(__name__)

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
                     "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
                     "axes.spines.right": False})
PAPER_STYLE = {"color": "0.35", "ls": "--", "marker": "s", "ms": 4, "lw": 1}


def save_figure(fig, png_path: str | Path) -> None:
    """Write ``png_path`` and the PDF beside it, atomically."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    for p in (png_path, png_path.with_suffix(".pdf")):
        with atomic_path(p, suffix=p.suffix) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=p.suffix[1:])
    plt.close(fig)
    log.info("wrote %s (+ .pdf)", png_path)


def _message(ax, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11,
            transform=ax.transAxes, bbox={"boxstyle": "round", "fc": "0.95", "ec": "0.6"})


# ==================================================================================================
# Main results
# ==================================================================================================

def main_figure(metrics: list[str], variants: list[str], benchmark: str, out_png: str) -> None:
    """Bars of Table 1 on ``benchmark``: overall (mean ± std over seeds) and per task type."""
    df = collect_metrics(metrics)
    d = df[df.benchmark == benchmark]
    variants = [v for v in variants if (d.variant == v).any()]
    tasks = [c for c in d.columns if c.startswith("task:") and d[c].notna().any()]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
    x = np.arange(len(variants))
    stats = [seed_stats(d[d.variant == v].overall) for v in variants]
    means = [m for m, _, _ in stats]
    stds = [0 if math.isnan(s) else s for _, s, _ in stats]
    colors = ["tab:gray" if v.startswith("teacher-") else ("tab:red" if v == "rmsd" else "tab:blue")
              for v in variants]
    axes[0].bar(x, means, yerr=stds, capsize=3, color=colors)
    for i, (m, _, n) in enumerate(stats):
        axes[0].annotate(f"n={n}", (i, 0), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7,
                         color="white" if m > 5 else "black")
    labels = [P.label(v) for v in variants]
    axes[0].set_xticks(x, labels, rotation=30, ha="right")
    axes[0].set_ylabel(f"score on {benchmark} (x100)")
    axes[0].set_title("Overall (macro mean over task types; mean ± std over seeds)")
    w = 0.8 / max(1, len(tasks))
    for i, t in enumerate(tasks):
        vals = [seed_stats(d[d.variant == v][t])[0] for v in variants]
        axes[1].bar(x + i * w - 0.4 + w / 2, vals, width=w, label=t[5:])
    axes[1].set_xticks(x, labels, rotation=30, ha="right")
    axes[1].set_ylabel("task score (x100, mean over seeds)")
    axes[1].set_title("Per task type")
    if tasks:
        axes[1].legend(title="task", ncols=min(3, len(tasks)))
    fig.suptitle("Table 1 as bars (teacher rows in grey are references)", y=1.02)
    save_figure(fig, out_png)


# ==================================================================================================
# Teacher variance (paper section 1.3 / figure 2)
# ==================================================================================================

def teacher_variance_figure(scored_parquet: str, out_png: str) -> None:
    """Four panels: histogram of per-item mean quality per task, within-item sigma_sampling per task
    and teacher, format-violation rate per task and teacher, and per-item mean vs sigma_sampling.

    Open-ended quality uses valid x ROUGE-L (analysis only; the method does not rank open answers).
    The paper's reference values (section 1.2) are drawn in grey.
    """
    df = pd.read_parquet(scored_parquet)
    df["q_an"] = np.where(df.task_type == "open", df.metric.fillna(0) * df.valid, df.q)
    per_item = (df.groupby(["item_id", "teacher", "task_type"]).q_an
                .agg(mean="mean", std=lambda s: s.std(ddof=0), n="size").reset_index())
    tasks = sorted(per_item.task_type.unique())
    teachers = sorted(per_item.teacher.unique())
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    bins = np.linspace(0, 1, 11)
    ax.hist([per_item[per_item.task_type == t]["mean"] for t in tasks], bins=bins, stacked=True, label=tasks)
    mu, sd = per_item["mean"].mean(), per_item["mean"].std(ddof=0)
    ax.axvline(mu, color="k", lw=1.2, label=f"ours: μ {mu:.2f}, σ {sd:.2f}")
    ax.axvline(0.75, color="0.4", ls="--", lw=1.2, label="paper: μ 0.75, σ 0.22")
    ax.set_xlabel("per-item mean quality q over the K samples (0-1)")
    ax.set_ylabel("(item, teacher) pairs (count)")
    ax.set_title("(a) Cross-item quality distribution")
    ax.legend()

    width = 0.8 / max(1, len(teachers))
    x = np.arange(len(tasks))
    ax = axes[0, 1]
    for i, t in enumerate(teachers):
        g = per_item[(per_item.teacher == t) & (per_item.n > 1)].groupby("task_type")["std"].mean()
        ax.bar(x + i * width - 0.4 + width / 2, [g.get(k, np.nan) for k in tasks], width=width, label=f"teacher {t}")
    ax.axhspan(0.07, 0.15, color="0.5", alpha=0.2, label="paper: 0.07 (MCQ) - 0.15 (visual QA)")
    ax.set_xticks(x, tasks)
    ax.set_xlabel("task type")
    ax.set_ylabel("within-item σ_sampling of q (0-1 scale)")
    ax.set_title("(b) Sampling variance per task")
    ax.legend()

    ax = axes[1, 0]
    for i, t in enumerate(teachers):
        g = df[df.teacher == t].groupby("task_type").valid.mean()
        ax.bar(x + i * width - 0.4 + width / 2, [100 * (1 - g.get(k, np.nan)) for k in tasks], width=width,
               label=f"teacher {t}")
    ax.axhline(10, color="0.3", ls="--", lw=1, label="paper: ≈10% (temporal QA)")
    ax.axhline(1, color="0.5", ls=":", lw=1, label="paper: ≈1% overall")
    ax.set_xticks(x, tasks)
    ax.set_xlabel("task type")
    ax.set_ylabel("format violations (% of responses)")
    ax.set_title("(c) Format violations per task")
    ax.legend()

    ax = axes[1, 1]
    for t in tasks:
        g = per_item[(per_item.task_type == t) & (per_item.n > 1)]
        ax.scatter(g["mean"], g["std"], s=10, alpha=0.5, label=t)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("per-item mean quality q (0-1)")
    ax.set_ylabel("within-item σ_sampling of q (0-1)")
    ax.set_title("(d) Reliability varies within and across items")
    if tasks:
        ax.legend(title="task")
    k = int(per_item.n.max()) if len(per_item) else 0
    fig.suptitle(f"Teacher unreliability: {per_item.item_id.nunique()} items, {len(teachers)} teacher(s), "
                 f"up to K={k} samples each", y=1.0)
    fig.tight_layout()
    save_figure(fig, out_png)


# ==================================================================================================
# K and tau sensitivity (paper sections 5.4, 5.5)
# ==================================================================================================

def _paper_twin(ax, xs, ys, label):
    """The paper's values on a right-hand axis (their scale differs from ours)."""
    tw = ax.twinx()
    tw.plot(xs, ys, **PAPER_STYLE, label=label)
    tw.set_ylabel("paper score (x100)", color="0.35")
    tw.tick_params(axis="y", colors="0.35")
    tw.spines["right"].set_visible(True)
    return tw


def sensitivity_figure(k_csv: str, tau_csv: str, benchmark: str, out_png: str) -> None:
    """Score vs K and score vs tau (ours: mean ± std over seeds; the paper's VideoMME and Video-MMMU
    on a second axis), and the retained ratio vs tau (ours and the paper's)."""
    k = pd.read_csv(k_csv)
    tau = pd.read_csv(tau_csv)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    col_m, col_s = f"{benchmark}_mean", f"{benchmark}_std"
    for ax, df, key, xlabel, title in ((axes[0], k, "K", "teacher samples per item K", "(a) Number of samples K"),
                                       (axes[1], tau, "tau", "quality threshold τ", "(b) Quality threshold τ")):
        ours = df[df[col_m].notna()] if col_m in df else df.iloc[0:0]
        if len(ours):
            ours = ours.sort_values(key)
            ax.errorbar(ours[key], ours[col_m], yerr=ours[col_s].fillna(0), marker="o", capsize=3,
                        color="tab:red", label=f"ours ({benchmark})")
        else:
            ax.text(0.5, 0.5, "no variant of this table was run", ha="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"our score on {benchmark} (x100)")
        ax.set_title(title)
        if key == "K":
            ax.set_xscale("log", base=2)
            ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        lines = ax.get_legend_handles_labels()
        tw = None
        for b, mk in zip(P.ABLATION_BENCHMARKS, ("s", "^")):
            p = df.drop_duplicates(key)
            p = p[p[f"paper_{b}"].notna()] if f"paper_{b}" in p else p.iloc[0:0]
            if len(p):
                if tw is None:
                    tw = _paper_twin(ax, [], [], "")
                tw.plot(p[key], p[f"paper_{b}"], color="0.35", ls="--", marker=mk, ms=4, lw=1, label=f"paper {b}")
        if tw is not None:
            h2 = tw.get_legend_handles_labels()
            ax.legend(lines[0] + h2[0], lines[1] + h2[1], loc="lower right")
        elif lines[0]:
            ax.legend(loc="lower right")
    ax = axes[2]
    t = tau.sort_values("tau")
    ours = t[t.retained_pct_mean.notna()]
    if len(ours):
        ax.errorbar(ours.tau, ours.retained_pct_mean, yerr=ours.retained_pct_std.fillna(0), marker="o",
                    capsize=3, color="tab:red", label="ours")
    if "paper_retained_pct" in t:
        p = t.drop_duplicates("tau")
        p = p[p.paper_retained_pct.notna()]
        ax.plot(p.tau, p.paper_retained_pct, **PAPER_STYLE, label="paper")
    ax.set_ylim(0, 105)
    ax.set_xlabel("quality threshold τ")
    ax.set_ylabel("retained (response) pairs (%)")
    ax.set_title("(c) Retained ratio after filtering")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_png)


# ==================================================================================================
# Pass@k (paper section 5.7)
# ==================================================================================================

def pass_at_k_figure(metrics: list[str], settings: dict, out_png: str) -> None:
    """Pass@k (%) against k (log scale) per variant, mean ± std over seeds (shaded).

    ``settings``: source (eval | report | off), samples, temperature, threshold, items_per_task,
    benchmark. With no pass@k data the figure says that pass@k is disabled and how to enable it.
    """
    df = collect_pass_at_k(metrics) if metrics else pd.DataFrame(columns=["variant", "seed", "k", "pass_at_k"])
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    if df.empty:
        _message(ax, "Pass@k is disabled in this configuration.\nEnable it with report.pass_at_k.samples > 0 "
                     "(extra sampled\nevaluation of the pass@k variants) or evaluation.pass_k_samples > 0.")
        save_figure(fig, out_png)
        return
    p1 = {}
    for v, g in df.groupby("variant", sort=False):
        s = g.groupby("k").pass_at_k.agg(["mean", "std", "count"]).reset_index()
        ax.plot(s.k, s["mean"], marker="o", ms=3, label=f"{P.label(v)} (n={int(s['count'].max())} seeds)")
        if (s["count"] > 1).any():
            ax.fill_between(s.k, s["mean"] - s["std"].fillna(0), s["mean"] + s["std"].fillna(0), alpha=0.2)
        p1[v] = float(s[s.k == 1]["mean"].iloc[0]) if (s.k == 1).any() else float("nan")
    ax.set_xscale("log", base=2)
    ks = [k for k in sorted(df.k.unique()) if k & (k - 1) == 0 or k == df.k.max()]  # powers of 2 and n
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("k (samples per item, log scale)")
    ax.set_ylabel("pass@k (% of items)")
    ax.set_ylim(0, 100)
    sub = (f"{settings.get('benchmark')}, n={settings.get('samples')} samples/item at T="
           f"{settings.get('temperature')}, correct if score >= {settings.get('threshold')}")
    if settings.get("items_per_task"):
        sub += f", first {settings['items_per_task']} items per task"
    gap = ""
    if "rmsd" in p1 and len(p1) > 1:
        other = [v for v in p1 if v != "rmsd"][0]
        gap = f"; ours: pass@1 R-MSD - {other} = {p1['rmsd'] - p1[other]:+.1f}"
    ax.set_title(f"Pass@k ({sub})", fontsize=9)
    ax.legend(loc="lower right")
    fig.text(0.01, -0.04, P.PASS_AT_K_NOTE + gap, fontsize=7, wrap=True)
    save_figure(fig, out_png)


# ==================================================================================================
# Training curves (paper section 7.11: RL logs)
# ==================================================================================================

CURVE_PANELS = (("reward", "composite reward"), ("d_score", "discriminator term D (0-1)"),
                ("r_task", "R_task (0-1)"), ("r_content", "R_content (0-1)"), ("r_outer", "R_outer (0-1)"),
                ("disc_acc", "discriminator accuracy P(D(T) > D(S))"), ("disc_loss", "discriminator loss (BT)"),
                ("kl", "KL to reference (nats/token)"), ("response_len", "response length (tokens)"),
                ("loss", "Stage 1 SFT loss (nats/token)"))


def read_train_logs(model_dirs: list[str]) -> pd.DataFrame:
    """train_log.jsonl of every ``results/models/<variant>/seed<s>`` as one long frame."""
    frames = []
    for d in model_dirs:
        p = Path(d) / "train_log.jsonl"
        if not p.exists():
            log.warning("%s: no train_log.jsonl", d)
            continue
        recs = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        if not recs:
            continue
        f = pd.DataFrame(recs)
        parts = Path(d).parts
        f["variant"], f["seed"] = parts[-2], int(parts[-1].removeprefix("seed"))
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def training_curves_figure(model_dirs: list[str], out_png: str, smooth: int = 1) -> None:
    """Stage 2 reward components, discriminator accuracy and loss, KL and response length over RL
    steps, and the Stage 1 loss, per variant (mean over seeds, shaded ± std)."""
    df = read_train_logs(model_dirs)
    fig, axes = plt.subplots(2, 5, figsize=(19, 7))
    if df.empty:
        for ax in axes.flat:
            ax.axis("off")
        _message(axes[0, 0], "no train_log.jsonl found")
        save_figure(fig, out_png)
        return
    variants = list(dict.fromkeys(df.variant))
    colors = {v: f"C{i}" for i, v in enumerate(variants)}
    for ax, (key, ylabel) in zip(axes.flat, CURVE_PANELS):
        stage = "stage1" if key == "loss" else "stage2"
        d = df[df.stage == stage] if "stage" in df else df.iloc[0:0]
        if key not in d or d[key].notna().sum() == 0:
            _message(ax, f"{key}: not logged\n(no {'adversarial ' if key.startswith(('d', 'disc')) else ''}"
                         f"{stage} steps)")
            continue
        for v in variants:
            g = d[(d.variant == v) & d[key].notna()]
            if g.empty:
                continue
            s = g.groupby("step")[key].agg(["mean", "std"]).reset_index()
            y = s["mean"].rolling(smooth, min_periods=1).mean()
            ax.plot(s.step, y, color=colors[v], lw=1.3, label=P.label(v))
            if s["std"].notna().any():
                ax.fill_between(s.step, y - s["std"].fillna(0), y + s["std"].fillna(0), color=colors[v], alpha=0.15)
        if key in ("disc_acc",):
            ax.axhline(0.5, color="0.5", ls=":", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{'Stage 1 SFT' if stage == 'stage1' else 'Stage 2 RL'} step")
        ax.set_ylabel(ylabel)
        ax.set_title(key)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="upper center", ncols=len(handles), bbox_to_anchor=(0.5, 1.03))
    n_seeds = df.groupby("variant").seed.nunique().to_dict()
    fig.suptitle("Training curves (mean over seeds, shaded ± std; seeds: "
                 + ", ".join(f"{P.label(v)} {n}" for v, n in n_seeds.items()) + ")", y=1.07)
    fig.tight_layout()
    save_figure(fig, out_png)
