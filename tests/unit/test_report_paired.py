"""Paired per-seed differences, the comparisons table and the findings checks (exact values)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from rmsd.report.findings import (INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, comparisons_table,
                                  findings_table)
from rmsd.report.paired import add_families, fmt_diff, paired_diff, t_interval


def _frame(scores: dict[str, list[float]], closed=None, open_=None) -> pd.DataFrame:
    rows = []
    for v, xs in scores.items():
        for s, x in enumerate(xs):
            rows.append({"variant": v, "seed": s, "benchmark": "b", "overall": x,
                         "task:mcq": (closed or {}).get(v, xs)[s], "task:temporal": (closed or {}).get(v, xs)[s],
                         "task:open": (open_ or {}).get(v, xs)[s]})
    return pd.DataFrame(rows)


def test_t_interval_matches_the_textbook_formula():
    # d = 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302652729749464 (tables: 4.303)
    mean, sd, lo, hi = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)
    assert (mean, sd) == (2.0, 1.0)
    assert lo == pytest.approx(2 - half, abs=1e-12) and hi == pytest.approx(2 + half, abs=1e-12)
    assert math.isnan(t_interval([5.0])[2]) and t_interval([5.0])[0] == 5.0
    assert all(math.isnan(x) for x in t_interval([]))


def test_paired_difference_pairs_seeds_and_broadcasts_a_deterministic_row():
    df = _frame({"a": [10, 12, 14, 20], "b": [9, 10, 11], "base": [5]})
    p = paired_diff(df, "a", "b", "b")
    assert p.seeds == [0, 1, 2] and p.diffs == [1.0, 2.0, 3.0]  # seed 3 of a has no partner
    assert p.verdict == "n.s."  # 2 ± 4.30 / sqrt(3)
    q = paired_diff(df, "a", "base", "b", deterministic=["base"])
    assert q.diffs == [5.0, 7.0, 9.0, 15.0] and q.verdict == "a > b"
    assert paired_diff(df, "base", "a", "b", deterministic=["base"]).verdict == "a < b"
    # a trained variant with one seed is never spread over the other side's seeds
    assert paired_diff(df, "a", "base", "b").diffs == [5.0]
    assert paired_diff(df, "a", "nope", "b").n == 0 and fmt_diff(paired_diff(df, "a", "nope", "b")) == "—"
    flat = _frame({"a": [1, 3], "b": [2, 2]})
    assert paired_diff(flat, "a", "b", "b").verdict == "n.s."
    assert paired_diff(_frame({"a": [1], "b": [0]}), "a", "b", "b").verdict == "n/a"
    assert fmt_diff(p) == "+2.0 [-0.5, +4.5]"


def test_families_average_closed_task_types_and_keep_open():
    df = add_families(_frame({"a": [10]}, closed={"a": [40]}, open_={"a": [70]}))
    assert df.closed.tolist() == [40.0] and df.open.tolist() == [70.0]


def _metrics(tmp_path, scores: dict[str, list[float]], open_=None):
    paths = []
    for v, xs in scores.items():
        for s, x in enumerate(xs):
            p = tmp_path / "eval" / v / f"seed{s}" / "synth-test" / "metrics.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            o = (open_ or {}).get(v, xs)[s]
            p.write_text(json.dumps({"overall": x / 100, "n_items": 10, "n_unparsed": 0,
                                     "per_task": {"mcq": {"mean": x / 100}, "open": {"mean": o / 100}}}))
            paths.append(str(p))
    return paths


def test_comparisons_table(tmp_path):
    paths = _metrics(tmp_path, {"rmsd": [50, 52, 54], "single_sample": [40, 41, 42], "base": [30]})
    t = comparisons_table(paths, [["rmsd", "single_sample"], ["rmsd", "base"]], "synth-test", ["base"])
    row = t.data.iloc[0]
    assert (row.n_pairs, row.overall_mean, row.overall_diffs) == (3, 11.0, "+10.0 +11.0 +12.0")
    assert row.overall_verdict == "a > b"
    assert t.data.iloc[1].overall_mean == 22.0
    assert "R-MSD (full) − Single-sample distillation" in t.blocks[0][1].comparison.tolist()


def test_findings_statuses(tmp_path):
    scores = {"base": [30], "sft_rl_single": [31, 30, 32], "rmsd": [50, 52, 54], "single_sample": [40, 41, 42],
              "multi_sample": [45, 44, 47], "filtered": [49, 49, 51], "gt_sft": [60, 61, 62],
              "k4": [50, 52, 54], "k8": [50.5, 51.5, 54.2], "tau0": [45, 44, 47], "tau0.5": [51, 53, 54.5],
              "teacher-strong": [70]}
    paths = _metrics(tmp_path, scores)
    roles = {"base": "base", "sft_rl": "sft_rl_single", "gt": "gt_sft", "single": "single_sample",
             "multi": "multi_sample", "filtered": "filtered", "full": "rmsd", "teachers": ["teacher-strong"],
             "k": {"4": "k4", "8": "k8"}, "tau": {"0": "tau0", "0.3": "rmsd", "0.5": "tau0.5"}, "match": {},
             "pass_at_k": []}
    stats = {"overall": {"cross_item": {"std": 0.22}, "sigma_sampling": 0.1, "format_violation_rate": 0.05},
             "by_task": {"mcq": {"sigma_sampling": 0.08}, "temporal": {"sigma_sampling": 0.2}}}
    t = findings_table(paths, [], stats, roles, "synth-test")
    status = dict(zip(t.data.finding, t.data.status))
    assert status["R-MSD > original SFT+RL"] == REPRODUCED
    assert status["original SFT+RL > base"] == INCONCLUSIVE  # +1, +0, +2: CI holds 0
    assert status["multi-sample helps (A → B)"] == REPRODUCED
    assert status["quality filtering helps (B → C)"] == REPRODUCED
    assert status["quality weighting helps closed-ended tasks (C → D)"] == INCONCLUSIVE  # +1, +3, +3
    assert status["uniform matching better for open-ended tasks"] == NOT_RUN
    assert status["K = 4 close to K = 8 (diminishing returns)"] == REPRODUCED  # +0.5 -0.5 +0.2: inside ±2
    assert status["τ = 0.3 beats τ = 0 and τ = 0.5"] == NOT_REPRODUCED  # 0.3 - 0.5: -1, -1, -0.5: CI < 0
    assert status["GT-quality matching better for closed-ended tasks"] == NOT_RUN
    assert status["Pass@1 gap larger than the Pass@k gap at large k"] == NOT_RUN
    assert status["(setup) ground-truth SFT upper bound ≥ R-MSD"] == REPRODUCED
    wide = findings_table(_metrics(tmp_path / "w", {**scores, "k8": [40, 60, 50]}), [], stats, roles, "synth-test")
    assert dict(zip(wide.data.finding, wide.data.status))["K = 4 close to K = 8 (diminishing returns)"] == \
        INCONCLUSIVE  # -10 +8 -4: holds 0 but far wider than ±2
    assert status["teacher cross-item σ of quality about 0.22"] == REPRODUCED
    assert status["teacher within-item σ_sampling 0.07-0.15"] == NOT_REPRODUCED  # temporal 0.2
    assert status["teacher format violations 1-10 %"] == REPRODUCED
