"""Report layer: tables (mean ± std over seeds, paper numbers beside, four formats), figures, the
rule graph, and the report spec, on small hand-made result files (no model, no Snakemake run)."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rmsd.errors import ConfigError
from rmsd.report import figures, paper_ref, rulegraph, tables
from rmsd.report.passk import subset_items
from rmsd.report.spec import ReportSpec

ROOT = Path(__file__).resolve().parents[2]
BENCH = "synth-test"
# overall score per (variant, seed) as a fraction; per-task = overall +- offsets
SCORES = {
    ("base", 0): 0.20,
    ("sft_rl_single", 0): 0.30, ("sft_rl_single", 1): 0.34, ("sft_rl_single", 2): 0.32,
    ("single_sample", 0): 0.28, ("single_sample", 1): 0.30, ("single_sample", 2): 0.26,
    ("multi_sample", 0): 0.33, ("multi_sample", 1): 0.35, ("multi_sample", 2): 0.31,
    ("filtered", 0): 0.36, ("filtered", 1): 0.38, ("filtered", 2): 0.40,
    ("rmsd", 0): 0.40, ("rmsd", 1): 0.44, ("rmsd", 2): 0.42,
    ("k2", 0): 0.37, ("k2", 1): 0.39, ("k2", 2): 0.41,
    ("tau0", 0): 0.34, ("tau0", 1): 0.36, ("tau0", 2): 0.35,
    ("match_uu", 0): 0.30, ("match_uu", 1): 0.32, ("match_uu", 2): 0.31,
    ("teacher-strong", 0): 0.80,
}
RETAINED = {"rmsd": 0.72, "filtered": 0.72, "k2": 0.7, "tau0": 1.0, "single_sample": 1.0, "multi_sample": 1.0}


def write_metrics(root: Path, variant: str, seed: int, overall: float, bench: str = BENCH, **extra) -> str:
    p = root / "results" / "eval" / variant / f"seed{seed}" / bench / "metrics.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    per_task = {"mcq": {"mean": overall + 0.1, "n": 10}, "temporal": {"mean": overall - 0.1, "n": 10},
                "open": {"mean": overall, "n": 10}}
    p.write_text(json.dumps({"overall": overall, "per_task": per_task, "n_items": 30, "n_unparsed": 2, **extra}))
    return str(p)


def write_selection(root: Path, variant: str, seed: int, ratio: float) -> str:
    p = root / "results" / "select" / variant / f"seed{seed}.stats.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"retained_ratio": ratio + 0.01 * seed, "n_kept_items": 10, "n_dropped": 2,
                             "mean_sft_target_q": 0.8}))
    return str(p)


@pytest.fixture
def results(tmp_path):
    paths = {(v, s): write_metrics(tmp_path, v, s, x) for (v, s), x in SCORES.items()}
    sel = {(v, s): write_selection(tmp_path, v, s, r) for v, r in RETAINED.items() for s in range(3)}
    return tmp_path, paths, sel


def rows(*variants, **recipes):
    out = []
    for v in variants:
        r = {"variant": v, "train": v != "base", "K": 4, "tau": 0.3, "format_filter": True,
             "weighting": {"closed": "quality", "open": "uniform"}, "sft_target": {"closed": "best"},
             "stage2": "adversarial", "n_seeds": 1 if v == "base" else 3}
        r.update(recipes.get(v, {}))
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------------ stats

def test_seed_stats_and_formatting():
    m, s, n = tables.seed_stats([40.0, 44.0, 42.0])
    assert (m, round(s, 6), n) == (42.0, 2.0, 3)
    assert tables.fmt_pm(m, s) == "42.0 ± 2.0"
    m1, s1, n1 = tables.seed_stats([7.0])
    assert n1 == 1 and math.isnan(s1) and tables.fmt_pm(m1, s1) == "7.0"
    assert tables.fmt_pm(float("nan"), float("nan")) == tables.DASH
    assert tables.fmt_paper(65.3, 63.8) == "65.3 (+1.5)"
    assert tables.seed_stats([float("nan"), 2.0])[2] == 1


# ------------------------------------------------------------------------------------------------ tables

def test_main_table_mean_std_delta_and_paper(results):
    root, paths, _ = results
    variants = ["base", "sft_rl_single", "single_sample", "rmsd", "teacher-strong"]
    df = tables.collect_metrics([paths[k] for k in paths if k[0] in variants])
    t = tables.main_table(df, rows(*variants), [BENCH], BENCH)
    d = t.data.set_index("variant")
    assert d.loc["rmsd", "mean"] == pytest.approx(42.0)
    assert d.loc["rmsd", "std"] == pytest.approx(2.0)
    assert d.loc["rmsd", "score"] == "42.0 ± 2.0"
    assert d.loc["rmsd", "n_seeds"] == 3 and d.loc["base", "n_seeds"] == 1
    assert d.loc["rmsd", "delta_vs_base"] == pytest.approx(22.0)
    assert d.loc["rmsd", "mcq"] == pytest.approx(52.0)
    assert d.loc["rmsd", "paper_VideoMME"] == 65.3 and d.loc["rmsd", "paper_delta_Video-MMMU"] == pytest.approx(3.2)
    assert d.loc["sft_rl_single", "paper_MathVerse"] == 46.8
    assert pd.isna(d.loc["teacher-strong", "paper_VideoMME"])
    disp = t.blocks[0][1].set_index("Model")
    assert disp.loc["R-MSD (full)", "paper VideoMME"] == "65.3 (+1.5)"
    assert disp.loc["Base student", "paper VideoMME"] == "63.8"
    assert disp.loc["R-MSD (full)", f"Δ {BENCH}"] == "+22.0"


def test_main_table_missing_variant_is_an_error(results):
    _, paths, _ = results
    df = tables.collect_metrics([paths[("base", 0)]])
    with pytest.raises(ValueError, match="rmsd"):
        tables.main_table(df, rows("base", "rmsd"), [BENCH], BENCH)


def test_ablation_table_letters_flags_and_retention(results):
    _, paths, sel = results
    abl = ["single_sample", "multi_sample", "filtered", "rmsd"]
    df = tables.collect_metrics([p for k, p in paths.items() if k[0] in abl])
    ret = tables.selection_retention([p for k, p in sel.items() if k[0] in abl])
    no_q = {"weighting": {"closed": "uniform", "open": "uniform"}, "sft_target": {"closed": "all", "open": "all"},
            "disc_weight": "uniform"}
    recipes = {"single_sample": {"K": 1, "tau": 0.0, "format_filter": False, **no_q},
               "multi_sample": {"tau": 0.0, "format_filter": False, **no_q},
               "filtered": dict(no_q)}
    t = tables.ablation_table(df, rows(*abl, **recipes), [BENCH], ret)
    d = t.data
    assert list(d.row) == ["A", "B", "C", "D"] and list(d.variant) == abl
    assert list(d.K) == [1, 4, 4, 4]
    assert d.loc[3, f"{BENCH}_delta"] == pytest.approx(42.0 - 28.0)
    assert d.loc[3, "retained_pct_mean"] == pytest.approx(73.0)  # 72, 73, 74 %
    assert list(d.paper_VideoMME) == [63.8, 64.5, 65.0, 65.3]
    disp = t.blocks[0][1]
    assert list(disp["quality filtering"]) == ["✗", "✗", "✓", "✓"]
    assert list(disp["quality weighting"]) == ["✗", "✗", "✗", "✓"]
    # the caption is generated from what each step changes: one paper column per step
    assert ("A→B: K 1→4; B→C: τ 0.0→0.3, format filter off→on; C→D: closed-ended matching uniform→quality, "
            "closed-ended SFT target all→best, open-ended SFT target all→None, discriminator-loss weight 1→q"
            ) in t.caption, t.caption


def test_k_table_union_with_paper_and_not_run(results):
    _, paths, sel = results
    vs = ["single_sample", "k2", "rmsd"]
    df = tables.collect_metrics([p for k, p in paths.items() if k[0] in vs])
    ret = tables.selection_retention([p for k, p in sel.items() if k[0] in vs])
    r = rows(*vs, single_sample={"K": 1, "tau": 0.0}, k2={"K": 2})
    t = tables.k_table(df, r, [BENCH], ret, not_run=["k8"])
    d = t.data
    assert list(d.K) == [1, 2, 4, 8]
    assert list(d.variant[:3]) == vs and pd.isna(d.variant[3])
    assert d.loc[1, f"{BENCH}_mean"] == pytest.approx(39.0) and d.loc[1, f"{BENCH}_delta"] == pytest.approx(-3.0)
    assert d.loc[3, "paper_VideoMME"] == 65.5 and pd.isna(d.loc[3, f"{BENCH}_mean"])
    assert "k8" in t.caption and t.blocks[0][1].variant.iloc[3] == "not run"
    assert "Rows that differ from rmsd in more than K: single_sample: also τ 0.3→0.0." in t.caption
    assert ("our K=1 row single_sample has format filter on, τ 0.0, closed-ended matching quality, "
            "discriminator-loss weight q.") in t.caption
    assert "nan" not in tables.to_markdown(t) and "nan" not in tables.to_latex(t)


def test_tau_table_retained_ratio_beside_paper(results):
    _, paths, sel = results
    vs = ["tau0", "rmsd"]
    df = tables.collect_metrics([p for k, p in paths.items() if k[0] in vs])
    ret = tables.selection_retention([p for k, p in sel.items() if k[0] in vs])
    t = tables.tau_table(df, rows(*vs, tau0={"tau": 0.0}), [BENCH], ret, not_run=[])
    d = t.data.set_index("tau")
    assert list(d.index) == [0.0, 0.2, 0.3, 0.5]
    assert d.loc[0.0, "retained_pct_mean"] == pytest.approx(101.0)  # fixture: 100, 101, 102 %
    assert d.loc[0.3, "retained_pct_mean"] == pytest.approx(73.0)
    assert d.loc[0.3, "paper_retained_pct"] == 72.0 and d.loc[0.5, "paper_retained_pct"] == 45.0
    assert d.loc[0.0, f"{BENCH}_mean"] == pytest.approx(35.0)


def test_task_adaptive_views(results):
    _, paths, _ = results
    vs = ["rmsd", "match_uu"]
    df = tables.collect_metrics([p for k, p in paths.items() if k[0] in vs])
    r = rows(*vs, match_uu={"weighting": {"closed": "uniform", "open": "uniform"}})
    t = tables.task_adaptive_table(df, r, BENCH, {"closed": "quality", "open": "uniform"}, not_run=["match_qq"])
    d = t.data.set_index("variant")
    # closed tasks = mean(mcq, temporal) = overall; open = overall in the fixture
    assert d.loc["rmsd", "closed_tasks_mean"] == pytest.approx(42.0)
    assert d.loc["match_uu", "open_tasks_mean"] == pytest.approx(31.0)
    grid = t.blocks[0][1].set_index("closed-ended matching")
    assert grid.loc["closed: quality", "open: uniform"].startswith("42.0 ± 2.0")
    assert grid.loc["closed: quality", "open: quality"] == "not run"
    paper = t.blocks[1][1].set_index("task type (items scored)")
    assert paper.loc["closed-ended", "uniform (ours)"].startswith("31.0")
    assert paper.loc["open-ended", "quality (ours)"] == "not run"
    assert paper.loc["open-ended", "uniform (paper)"] == "59.1"
    assert "match_qq" in t.caption
    assert "open axis degenerate" not in t.notes  # open-ended quality matching uses ROUGE-L: not degenerate
    assert "Every row is rmsd's recipe with only the matching weights changed." in t.caption


def test_vstar_table_configured_and_not(tmp_path):
    t = tables.vstar_table(None, ["base", "rmsd"])
    assert "not configured" in t.caption and t.notes == ["not configured"]
    assert (t.blocks[0][1].filter(like="ours") == "not configured").all().all()
    assert t.data.set_index("variant").loc["rmsd", "paper_when1"] == 25.2
    vs = {"chain1": {"when": {"m_tIoU": 0.25}, "where": {"m_vIoU": 0.2}},
          "chain2": {"when": {"m_tIoU": 0.15}, "where": {"m_vIoU": 0.05}}}
    p = [write_metrics(tmp_path, "rmsd", s, 0.2, bench="V-STaR", vstar=vs) for s in (0, 1)]
    t = tables.vstar_table(tables.collect_vstar(p), ["rmsd"])
    d = t.data.iloc[0]
    assert d.when1_mean == pytest.approx(25.0) and d.where2_mean == pytest.approx(5.0) and d.n_seeds == 2


def test_teacher_table_from_scored_stats():
    g = {"n_items": 4, "mean_q": 0.5, "cross_item": {"std": 0.2, "min": 0.1, "max": 0.9}, "sigma_sampling": 0.1,
         "format_violation_rate": 0.05}
    stats = {"paper": {"overall": {"mean": 0.75, "std": 0.22, "format_violation_rate": 0.01},
                       "mcq": {"mean": 0.96}, "visual_qa_open": {"mean": 0.64}, "temporal": {}},
             "overall": g, "by_task": {"mcq": g, "open": {**g, "q_analysis": g}},
             "by_teacher": {"strong": g}, "by_teacher_task": {"strong": {"mcq": g}}}
    t = tables.teacher_table(stats)
    assert list(t.data.task) == ["all", "mcq", "open", "all", "mcq"]
    assert t.data.q_source.tolist()[2] == "valid x ROUGE-L"
    assert t.blocks[0][1]["format violations %"].iloc[0] == "5.0"


def test_write_table_all_formats(tmp_path, results):
    _, paths, _ = results
    df = tables.collect_metrics([paths[("base", 0)], paths[("rmsd", 0)], paths[("rmsd", 1)]])
    t = tables.main_table(df, rows("base", "rmsd"), [BENCH], BENCH)
    tables.write_table(t, tmp_path / "out" / "main")
    csv = pd.read_csv(tmp_path / "out" / "main.csv")
    assert list(csv.variant) == ["base", "rmsd"] and csv["mean"].iloc[1] == pytest.approx(42.0)
    md = (tmp_path / "out" / "main.md").read_text()
    assert md.startswith("Table 1") and "| R-MSD (full)" in md and "+22.0" in md
    tex = (tmp_path / "out" / "main.tex").read_text()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "$\\pm$", "\\label{tab:main}"):
        assert token in tex
    assert "±" not in tex and "Δ" not in tex and re.search(r"[^\\]_", tex.split("\\label")[0]) is None
    html = (tmp_path / "out" / "main.html").read_text()
    assert "<table" in html and 'id="table-main"' in html and "42.0 ± 2.8" in html


def test_build_table_dispatch_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown table kind"):
        tables.build_table("nope", metrics=[])


def test_collect_metrics_rejects_foreign_paths(tmp_path):
    p = tmp_path / "metrics.json"
    p.write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation metrics path"):
        tables.collect_metrics([str(p)])


# ------------------------------------------------------------------------------------------------ figures

def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_and_sensitivity_figures(tmp_path, results):
    _, paths, sel = results
    out = tmp_path / "fig" / "main.png"
    figures.main_figure(list(paths.values()), ["base", "sft_rl_single", "rmsd", "teacher-strong"], BENCH, str(out))
    assert _is_png(out) and out.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    vs = ["single_sample", "k2", "rmsd", "tau0"]
    df = tables.collect_metrics([p for k, p in paths.items() if k[0] in vs])
    ret = tables.selection_retention([p for k, p in sel.items() if k[0] in vs])
    tables.write_table(tables.k_table(df, rows("single_sample", "k2", "rmsd", single_sample={"K": 1},
                                                k2={"K": 2}), [BENCH], ret, ["k8"]), tmp_path / "k")
    tables.write_table(tables.tau_table(df, rows("tau0", "rmsd", tau0={"tau": 0.0}), [BENCH], ret, []),
                       tmp_path / "tau")
    sens = tmp_path / "fig" / "sensitivity.png"
    figures.sensitivity_figure(str(tmp_path / "k.csv"), str(tmp_path / "tau.csv"), BENCH, str(sens))
    assert _is_png(sens) and sens.stat().st_size > 20_000


def test_pass_at_k_figure_on_and_off(tmp_path):
    paths = []
    for v, base in (("sft_rl_single", 0.3), ("rmsd", 0.4)):
        for s in (0, 1):
            pak = {str(k): min(1.0, base + 0.1 * math.log2(k) + 0.01 * s) for k in (1, 2, 4, 8)}
            paths.append(write_metrics(tmp_path, v, s, base, pass_at_k=pak))
    df = tables.collect_pass_at_k(paths)
    assert len(df) == 16 and df.pass_at_k.max() <= 100
    on = tmp_path / "on.png"
    figures.pass_at_k_figure(paths, {"benchmark": BENCH, "samples": 8, "temperature": 1.0, "threshold": 0.5,
                                     "items_per_task": 5}, str(on))
    off = tmp_path / "off.png"
    figures.pass_at_k_figure([], {"source": "off"}, str(off))
    assert _is_png(on) and _is_png(off) and on.stat().st_size != off.stat().st_size


def test_training_curves_figure(tmp_path):
    dirs = []
    for v, adv in (("rmsd", True), ("sft_rl_single", False)):
        for s in (0, 1):
            d = tmp_path / "results" / "models" / v / f"seed{s}"
            d.mkdir(parents=True)
            recs = [{"stage": "stage1", "step": i, "loss": 5 - i} for i in range(3)]
            for i in range(4):
                r = {"stage": "stage2", "step": i, "reward": 0.1 * i, "r_outer": 0.5, "r_task": 0.4,
                     "r_content": 0.2, "kl": 0.01 * i, "response_len": 10 + i}
                if adv:
                    r.update(disc_acc=0.5 + 0.1 * i, disc_loss=0.7 - 0.1 * i, d_score=0.4)
                recs.append(r)
            (d / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
            dirs.append(str(d))
    df = figures.read_train_logs(dirs)
    assert set(df.variant) == {"rmsd", "sft_rl_single"} and set(df.seed) == {0, 1}
    out = tmp_path / "curves.png"
    figures.training_curves_figure(dirs, str(out))
    assert _is_png(out) and out.stat().st_size > 30_000


def test_teacher_variance_figure(tmp_path):
    rng = np.random.default_rng(0)
    rows_ = []
    for i in range(12):
        task = ["mcq", "temporal", "open"][i % 3]
        for t in ("strong", "weak"):
            for k in range(4):
                q = float(rng.uniform())
                rows_.append({"item_id": f"i{i}", "task_type": task, "teacher": t, "k": k, "q": q,
                              "metric": q, "valid": bool(q > 0.1)})
    p = tmp_path / "scored.parquet"
    pd.DataFrame(rows_).to_parquet(p)
    out = tmp_path / "tv.png"
    figures.teacher_variance_figure(str(p), str(out))
    assert _is_png(out) and out.with_suffix(".pdf").exists()


# ------------------------------------------------------------------------------------------------ rule graph

DOT = """Building DAG of jobs...
digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=2];
    edge[penwidth=2, color=grey];
\t0[label = "all", color = "0.17 0.6 0.85", style="rounded"];
\t1[label = "report_table_main", color = "0.5 0.6 0.85", style="rounded"];
\t2[label = "eval_run", color = "0.3 0.6 0.85", style="rounded"];
\t3[label = "train_student", color = "0.1 0.6 0.85", style="rounded"];
\t1 -> 0
\t2 -> 1
\t3 -> 2
}
"""


def test_rulegraph_parse_and_style():
    dot = rulegraph.extract_dot(DOT)
    nodes, edges = rulegraph.parse_dot(dot)
    assert nodes == {"0": "all", "1": "report_table_main", "2": "eval_run", "3": "train_student"}
    assert edges == [("1", "0"), ("2", "1"), ("3", "2")]
    styled = rulegraph.styled_dot(dot)
    assert 'fillcolor="#d0e0e3"' in styled and "rankdir=LR" in styled
    assert rulegraph.parse_dot(styled) == (nodes, edges)
    with pytest.raises(ValueError):
        rulegraph.extract_dot("no graph here")


def test_rulegraph_networkx_fallback(tmp_path):
    out = tmp_path / "pipeline.png"
    rulegraph.render_with_networkx(rulegraph.styled_dot(rulegraph.extract_dot(DOT)), out)
    assert _is_png(out) and out.with_suffix(".pdf").exists()


def test_rulegraph_dot_engine(tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("graphviz `dot` is not installed (apt-get install graphviz); the networkx fallback is tested")
    out = tmp_path / "pipeline.png"
    assert rulegraph.render_with_dot(rulegraph.styled_dot(rulegraph.extract_dot(DOT)), out)
    assert _is_png(out) and out.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"


# ------------------------------------------------------------------------------------------------ spec

def _config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_spec_of_the_default_config():
    cfg = _config()
    spec = ReportSpec.from_config(cfg)
    assert spec.main == ["base", "sft_rl_single", "single_sample", "rmsd", "gt_sft", "teacher-strong",
                         "teacher-weak"]
    assert spec.not_run["k_variants"] == [] and cfg["sampling"]["K"] == 8
    assert [spec.row(v)["K"] for v in spec.k] == [1, 2, 4, 8]
    assert spec.seeds("k8") == [0, 1, 2] and len(spec.seeds("multi_sample")) == len(cfg["seeds"]) >= 5
    assert [spec.row(v)["tau"] for v in spec.tau] == [0.0, 0.2, 0.3, 0.5]
    assert {tuple(spec.row(v)["weighting"].values()) for v in spec.task_adaptive} == {
        ("quality", "uniform"), ("quality", "quality"), ("uniform", "uniform"), ("uniform", "quality")}
    assert len(cfg["seeds"]) >= 3 and spec.seeds("rmsd") == cfg["seeds"] and spec.seeds("base") == cfg["seeds"][:1]
    assert spec.metrics(["base"]) == ["results/eval/base/seed0/synth-test/metrics.json"]
    assert spec.pass_at_k_source == "report" and len(spec.pass_at_k_metrics()) == 2 * len(cfg["seeds"])
    # the main target (Table 1, curves, pass@k) trains no sensitivity-only variant
    main_target = set(spec.main) | set(spec.curves) | set(spec.pass_at_k["variants"])
    assert not main_target & (set(spec.k) | set(spec.tau) | set(spec.task_adaptive)) - {"rmsd"}


def test_spec_rejects_unknown_names():
    cfg = _config()
    cfg["report"]["curve_variants"] = ["nope"]
    with pytest.raises(ConfigError, match="curve_variants"):
        ReportSpec.from_config(cfg)
    cfg = _config()
    cfg["report"]["curve_variants"] = ["base"]
    with pytest.raises(ConfigError, match="not trained"):
        ReportSpec.from_config(cfg)
    cfg = _config()
    cfg["report"]["benchmark"] = "VideoMME"
    with pytest.raises(ConfigError, match="evaluation.benchmarks"):
        ReportSpec.from_config(cfg)


def test_spec_pass_at_k_sources():
    cfg = _config()
    cfg["evaluation"]["pass_k_samples"] = 4
    spec = ReportSpec.from_config(cfg)
    assert spec.pass_at_k_source == "eval"
    assert spec.pass_at_k_metrics()[0].startswith("results/eval/")
    cfg["evaluation"]["pass_k_samples"] = 0
    cfg["report"]["pass_at_k"]["samples"] = 0
    assert ReportSpec.from_config(cfg).pass_at_k_metrics() == []


def test_spec_vstar_only_when_configured():
    cfg = _config()
    assert ReportSpec.from_config(cfg).vstar_metrics() == []
    cfg["evaluation"]["benchmarks"] = ["synth-test", "V-STaR"]
    m = ReportSpec.from_config(cfg).vstar_metrics()
    assert m and all("/V-STaR/" in p for p in m)


def test_pass_at_k_subset():
    items = [{"id": i, "task_type": t} for i, t in enumerate("aabbbcab")]
    assert [it["id"] for it in subset_items(items, 2)] == [0, 1, 2, 3, 5]
    assert len(subset_items(items, None)) == len(items)


def test_paper_reference_consistency():
    """Deltas the paper states (abstract, section 5.1) follow from the stored absolute values."""
    base, rmsd = paper_ref.MAIN["base"], paper_ref.MAIN["rmsd"]
    assert round(rmsd["VideoMME"] - base["VideoMME"], 1) == 1.5
    assert round(rmsd["Video-MMMU"] - base["Video-MMMU"], 1) == 3.2
    assert round(rmsd["MathVerse"] - base["MathVerse"], 1) == 3.6
    assert paper_ref.ABLATION["D"]["VideoMME"] == paper_ref.K_SENSITIVITY[4]["VideoMME"] == 65.3
    assert paper_ref.ABLATION["B"]["Video-MMMU"] == paper_ref.TAU_SENSITIVITY[0.0]["Video-MMMU"]
