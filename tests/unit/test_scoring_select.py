"""Unit tests of rmsd.scoring selection (select_item) and the file-level pipeline."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmsd.errors import ConfigError, DataError, MissingArtifactError
from rmsd.scoring import (
    ScoringConfig,
    SelectionConfig,
    assign_teachers,
    item_rng,
    score_pool,
    select_item,
    select_variant,
)

FAST = settings(max_examples=150, deadline=None)


def cfg(**kw) -> SelectionConfig:
    return SelectionConfig.from_dict({"teachers": ["a", "b"], "assignment": "union", **kw})


def sel(r, task, c, item="x", seed=0):
    return select_item(r, task, c, item_rng(item, seed))


def rows(qs, teacher="a", valid=None):
    valid = valid or [True] * len(qs)
    return [
        {"teacher": teacher, "k": k, "text": f"{teacher}{k}", "q": q, "valid": v}
        for k, (q, v) in enumerate(zip(qs, valid))
    ]


# ------------------------------------------------------------------ select_item


def test_tau_filter_and_quality_weights():
    res = select_item(rows([1.0, 0.5, 0.2, 0.0]), "mcq", cfg(tau=0.3), item_rng("x", 0))
    assert [r["q"] for r in res["pool"]] == [1.0, 0.5]
    assert [r["p"] for r in res["pool"]] == pytest.approx([2 / 3, 1 / 3])
    got = (res["sft_target"], res["sft_target_q"], res["sft_teacher"], res["sft_k"])
    assert got == ("a0", 1.0, "a", 0)
    assert (res["n_considered"], res["n_kept"], res["zero_mass"]) == (4, 2, False)


def test_tau_zero_keeps_zero_quality_with_zero_weight():
    res = select_item(rows([1.0, 0.5, 0.2, 0.0]), "temporal", cfg(tau=0.0), item_rng("x", 0))
    assert [r["p"] for r in res["pool"]] == pytest.approx([1 / 1.7, 0.5 / 1.7, 0.2 / 1.7, 0.0])


def test_uniform_closed_weighting():
    res = sel(rows([1.0, 0.5, 0.2]), "ocr", cfg(weighting={"closed": "uniform"}))
    assert [r["p"] for r in res["pool"]] == pytest.approx([0.5, 0.5])


def test_format_filter():
    r = rows([0.0, 0.9, 0.0], valid=[False, True, True])
    res = select_item(r, "numeric", cfg(tau=0.0), item_rng("x", 0))
    assert [x["k"] for x in res["pool"]] == [1, 2]
    res = select_item(r, "numeric", cfg(tau=0.0, format_filter=False), item_rng("x", 0))
    assert [x["k"] for x in res["pool"]] == [0, 1, 2]
    assert [x["p"] for x in res["pool"]] == pytest.approx([0.0, 1.0, 0.0])


def test_open_uniform_and_tau_not_applied():
    # open-ended q is validity only; tau does not apply, format filter does
    r = rows([1.0, 0.0, 1.0, 1.0], valid=[True, False, True, True])
    res = select_item(r, "open", cfg(tau=0.9), item_rng("x", 0))
    assert [x["k"] for x in res["pool"]] == [0, 2, 3]
    assert [x["p"] for x in res["pool"]] == pytest.approx([1 / 3] * 3)
    assert res["sft_target"] in {"a0", "a2", "a3"}
    # without the format filter: uniform over all four, quality weighting gives the invalid one 0
    res = select_item(r, "open", cfg(format_filter=False), item_rng("x", 0))
    assert [x["p"] for x in res["pool"]] == pytest.approx([0.25] * 4)
    res = sel(r, "open", cfg(format_filter=False, weighting={"open": "quality"}))
    assert [x["p"] for x in res["pool"]] == pytest.approx([1 / 3, 0.0, 1 / 3, 1 / 3])


def test_empty_pool_returns_none():
    assert select_item(rows([0.2, 0.1, 0.0]), "mcq", cfg(tau=0.3), item_rng("x", 0)) is None
    assert select_item([], "mcq", cfg(), item_rng("x", 0)) is None
    r = rows([1.0, 1.0], valid=[False, False])
    assert select_item(r, "open", cfg(), item_rng("x", 0)) is None


def test_zero_mass_falls_back_to_uniform_and_is_reported():
    res = select_item(rows([0.0, 0.0]), "mcq", cfg(tau=0.0), item_rng("x", 0))
    assert res["zero_mass"] is True
    assert [x["p"] for x in res["pool"]] == [0.5, 0.5]
    res = sel(rows([0.0, 0.0]), "mcq", cfg(tau=0.0, weighting={"closed": "uniform"}))
    assert res["zero_mass"] is False


def test_K_cutoff_and_teacher_restriction():
    r = rows([0.4, 0.5, 1.0, 1.0]) + rows([1.0], teacher="z")
    res = select_item(r, "mcq", cfg(K=2), item_rng("x", 0))
    assert [(x["teacher"], x["k"]) for x in res["pool"]] == [("a", 0), ("a", 1)]
    assert res["n_considered"] == 2
    assert res["sft_k"] == 1


def test_best_ties_seeded_and_reproducible():
    r = rows([1.0, 1.0, 0.5]) + rows([1.0], teacher="b")
    picks = [select_item(r, "mcq", cfg(), item_rng("item7", s))["sft_target"] for s in range(40)]
    assert set(picks) == {"a0", "a1", "b0"}  # every tied row can win, the 0.5 one never
    again = [select_item(r, "mcq", cfg(), item_rng("item7", s))["sft_target"] for s in range(40)]
    assert picks == again
    # row order does not matter: candidates are sorted by (teacher, k) before the draw
    shuffled = [r[3], r[1], r[2], r[0]]
    assert [sel(shuffled, "mcq", cfg(), "item7", s)["sft_target"] for s in range(40)] == picks


def test_random_and_first_targets():
    r = rows([0.4, 1.0, 0.6]) + rows([0.9], teacher="b")
    c_rand = cfg(sft_target={"closed": "random"})
    picks = [select_item(r, "mcq", c_rand, item_rng("i", s))["sft_target"] for s in range(60)]
    assert set(picks) == {"a0", "a1", "a2", "b0"}
    assert picks == [sel(r, "mcq", c_rand, "i", s)["sft_target"] for s in range(60)]
    c_first = cfg(sft_target={"closed": "first", "open": "first"}, tau=0.5)
    assert select_item(r, "mcq", c_first, item_rng("i", 0))["sft_target"] == "a1"  # a0 filtered
    assert select_item(r, "open", c_first, item_rng("i", 0))["sft_target"] == "a0"


def test_select_item_rejects_bad_q():
    with pytest.raises(ValueError, match="q must be in"):
        select_item(rows([1.5]), "mcq", cfg(), item_rng("x", 0))
    with pytest.raises(ValueError, match="q must be in"):
        select_item(rows([math.nan]), "mcq", cfg(), item_rng("x", 0))


def test_per_item_assignment_stable():
    got = [assign_teachers(f"item{i}", ["a", "b"], "per_item", 0)[0] for i in range(12)]
    assert got == ["b", "b", "a", "a", "a", "a", "b", "a", "b", "b", "b", "a"]  # pinned
    assert got == [assign_teachers(f"item{i}", ["b", "a"], "per_item", 0)[0] for i in range(12)]
    other = [assign_teachers(f"item{i}", ["a", "b"], "per_item", 1)[0] for i in range(12)]
    assert other != got
    counts = Counter(
        assign_teachers(f"it{i}", ["a", "b", "c"], "per_item", 3)[0] for i in range(300)
    )
    assert set(counts) == {"a", "b", "c"} and min(counts.values()) > 60
    assert assign_teachers("x", ["b", "a"], "union", 5) == ["a", "b"]


@FAST
@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=0, max_size=10),
    st.sampled_from(["mcq", "temporal", "open"]),
    st.floats(0, 1),
    st.sampled_from(["quality", "uniform"]),
    st.booleans(),
    st.integers(0, 5),
)
def test_p_is_a_distribution(qv, task, tau, weighting, format_filter, seed):
    r = [
        {"teacher": "a", "k": k, "text": str(k), "q": q, "valid": v}
        for k, (q, v) in enumerate(qv)
    ]
    c = SelectionConfig.from_dict({
        "teachers": ["a"], "K": 10, "tau": tau, "format_filter": format_filter,
        "weighting": {"closed": weighting, "open": weighting},
    })
    res = select_item(r, task, c, item_rng("h", seed))
    if res is None:
        return
    ps = [x["p"] for x in res["pool"]]
    assert math.fsum(ps) == pytest.approx(1.0)
    assert all(p >= 0 for p in ps)
    if task != "open":
        assert all(x["q"] >= tau for x in res["pool"])
    if format_filter:
        assert all(x["valid"] for x in res["pool"])
    assert res["sft_target"] in {x["text"] for x in res["pool"]}


# ------------------------------------------------------------------ pipeline round trip

ITEMS = [
    {"id": "i_mcq", "task_type": "mcq", "options": ["x", "y", "z", "w"], "answer": "B"},
    {"id": "i_tmp", "task_type": "temporal", "duration_s": 5.0, "answer": [2.0, 4.0]},
    {"id": "i_open", "task_type": "open", "answer": "a red cross moves down"},
    {"id": "i_bad", "task_type": "numeric", "answer": 2.5},
]
POOL_A = [
    ("i_mcq", 0, "<answer>B</answer>"),
    ("i_mcq", 1, "<answer>C</answer>"),
    ("i_tmp", 0, "<answer>[1, 3]</answer>"),
    ("i_tmp", 1, "<answer>[2, 4]</answer>"),
    ("i_open", 0, "<answer>a red cross moves down</answer>"),
    ("i_open", 1, "oops"),
    ("i_bad", 0, "<answer>9</answer>"),
    ("i_bad", 1, "<answer>nine</answer>"),
    ("i_mcq", 2, "<answer>B</answer>"),
]
POOL_B = [
    ("i_mcq", 0, "<answer>B</answer>"),
    ("i_mcq", 1, "<answer>(B)</answer>"),
    ("i_tmp", 0, "<answer>[2, 3]</answer>"),
    ("i_tmp", 1, "<answer>[6, 7]</answer>"),
    ("i_open", 0, "<answer>a blue star</answer>"),
    ("i_open", 1, "<answer>a red cross</answer>"),
]


def _jsonl(path: Path, recs, blank_after_first=False) -> Path:
    lines = [json.dumps(r) for r in recs]
    if blank_after_first:
        lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _pool(path: Path, teacher: str, samples) -> Path:
    return _jsonl(path, [
        {"item_id": i, "teacher": teacher, "k": k, "text": t, "finish_reason": "stop",
         "n_tokens": 5, "temperature": 0.7}
        for i, k, t in samples
    ])


@pytest.fixture()
def files(tmp_path):
    items = _jsonl(tmp_path / "items.jsonl", ITEMS, blank_after_first=True)
    pa_ = _pool(tmp_path / "pool_a.jsonl", "a", POOL_A)
    pb = _pool(tmp_path / "pool_b.jsonl", "b", POOL_B)
    return tmp_path, items, [pa_, pb]


def test_score_pool_round_trip(files):
    tmp, items, pools = files
    stats = score_pool(
        items, pools, tmp / "scored.parquet", tmp / "scored.stats.json", ScoringConfig()
    )
    df = pd.read_parquet(tmp / "scored.parquet")
    assert list(df.columns) == [
        "item_id", "task_type", "teacher", "k", "text", "finish_reason", "n_tokens",
        "valid_outer", "valid_task", "valid", "parsed", "metric", "q", "reason",
    ]
    assert len(df) == 15
    # rows follow the items file order
    assert list(df["item_id"].drop_duplicates()) == ["i_mcq", "i_tmp", "i_open", "i_bad"]
    q = {(r.item_id, r.teacher, r.k): r.q for r in df.itertuples()}
    assert q[("i_mcq", "a", 0)] == 1.0 and q[("i_mcq", "a", 1)] == 0.0
    assert q[("i_tmp", "a", 0)] == pytest.approx(1 / 3)
    assert q[("i_tmp", "b", 0)] == pytest.approx(0.5)
    assert q[("i_tmp", "b", 1)] == 0.0 and q[("i_open", "b", 0)] == 1.0
    row = df[(df.item_id == "i_tmp") & (df.teacher == "b") & (df.k == 1)].iloc[0]
    got = (bool(row.valid), row.reason, row.parsed)
    assert got == (False, "task: span outside [0, duration_s]", "null")
    row = df[(df.item_id == "i_tmp") & (df.teacher == "a") & (df.k == 0)].iloc[0]
    assert json.loads(row.parsed) == [1.0, 3.0]

    assert json.loads((tmp / "scored.stats.json").read_text()) == json.loads(json.dumps(stats))
    sa = stats["by_teacher"]["a"]
    assert (sa["n_items"], sa["n_responses"], sa["n_valid"]) == (4, 9, 7)
    assert sa["format_violation_rate"] == pytest.approx(2 / 9)
    mcq = stats["by_task"]["mcq"]
    assert mcq["cross_item"]["mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert mcq["sigma_sampling"] == pytest.approx(math.sqrt(2) / 6)
    assert mcq["best_of_k_mean_q"] == 1.0
    assert stats["overall"]["n_responses"] == 15
    assert sum(stats["overall"]["hist_item_mean_q"]["counts"]) == 7
    # open: q is validity only; q_analysis uses valid * ROUGE-L
    ob = stats["by_teacher_task"]["b"]["open"]
    assert ob["mean_q"] == 1.0
    assert ob["q_analysis"]["mean_q"] == pytest.approx((0.25 + 0.75) / 2)
    assert ob["q_analysis"]["sigma_sampling"] == pytest.approx(0.25)
    assert "q_analysis" not in stats["by_task"]["mcq"]
    assert stats["paper"]["overall"]["mean"] == 0.75
    assert stats["by_task"]["numeric"]["violation_reasons"] == {"task: not a number": 1}


def test_select_variant_round_trip(files):
    tmp, items, pools = files
    score_pool(items, pools, tmp / "scored.parquet", tmp / "s.json", ScoringConfig())
    c = SelectionConfig.from_dict(
        {"teachers": ["a", "b"], "assignment": "union", "K": 2, "tau": 0.3}
    )
    stats = select_variant(
        tmp / "scored.parquet", items, tmp / "sel.jsonl", tmp / "sel.json", c, seed=0
    )
    recs = [json.loads(x) for x in (tmp / "sel.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in recs] == ["i_mcq", "i_tmp", "i_open"]
    by = {r["item_id"]: r for r in recs}
    assert [(x["teacher"], x["k"]) for x in by["i_mcq"]["pool"]] == [("a", 0), ("b", 0), ("b", 1)]
    assert [x["p"] for x in by["i_tmp"]["pool"]] == pytest.approx([2 / 11, 6 / 11, 3 / 11])
    t = by["i_tmp"]
    assert (t["sft_teacher"], t["sft_k"], t["sft_target_q"]) == ("a", 1, 1.0)
    assert [x["p"] for x in by["i_open"]["pool"]] == pytest.approx([1 / 3] * 3)
    assert by["i_mcq"]["teachers"] == ["a", "b"]
    assert (stats["n_items"], stats["n_kept_items"], stats["n_dropped"]) == (4, 3, 1)
    assert (stats["n_pairs_considered"], stats["n_pairs_kept"]) == (14, 9)
    assert stats["retained_ratio"] == pytest.approx(9 / 14)
    assert stats["by_task"]["numeric"]["n_dropped"] == 1
    assert stats["by_task"]["numeric"]["n_items_fewer_than_K"] == 1
    assert stats["by_teacher"]["a"]["retained_ratio"] == pytest.approx(4 / 8)
    assert stats["by_teacher"]["b"]["retained_ratio"] == pytest.approx(5 / 6)
    assert stats["mean_sft_target_q_closed"] == 1.0
    assert stats["n_zero_mass"] == 0
    # deterministic: same inputs and seed -> identical bytes
    first = (tmp / "sel.jsonl").read_bytes()
    select_variant(tmp / "scored.parquet", items, tmp / "sel.jsonl", tmp / "sel.json", c, seed=0)
    assert (tmp / "sel.jsonl").read_bytes() == first


def test_select_variant_baselines(files):
    tmp, items, pools = files
    score_pool(items, pools, tmp / "scored.parquet", tmp / "s.json", ScoringConfig())
    # "original SFT+RL": the raw first sample of one teacher, no filtering
    c = SelectionConfig.from_dict({
        "teachers": ["a"], "K": 1, "tau": 0.0, "format_filter": False,
        "weighting": {"closed": "uniform", "open": "uniform"},
        "sft_target": {"closed": "first", "open": "first"},
    })
    stats = select_variant(
        tmp / "scored.parquet", items, tmp / "sel.jsonl", tmp / "sel.json", c, seed=3
    )
    recs = [json.loads(x) for x in (tmp / "sel.jsonl").read_text().splitlines()]
    assert [(r["item_id"], r["sft_teacher"], r["sft_k"]) for r in recs] == [
        ("i_mcq", "a", 0), ("i_tmp", "a", 0), ("i_open", "a", 0), ("i_bad", "a", 0)]
    assert stats["retained_ratio"] == 1.0
    # per_item: one teacher per item, its samples only; absent samples are counted, not hidden
    c = SelectionConfig.from_dict({"teachers": ["a", "b"], "K": 2})
    stats = select_variant(
        tmp / "scored.parquet", items, tmp / "sel.jsonl", tmp / "sel.json", c, seed=0
    )
    for r in (json.loads(x) for x in (tmp / "sel.jsonl").read_text().splitlines()):
        assert len(r["teachers"]) == 1
        assert {x["teacher"] for x in r["pool"]} == set(r["teachers"])
    expected_no_samples = int(assign_teachers("i_bad", ["a", "b"], "per_item", 0) == ["b"])
    assert stats["n_dropped_no_samples"] == expected_no_samples


def test_unknown_item_in_pool_names_file_and_line(files):
    tmp, items, pools = files
    bad = _pool(tmp / "pool_c.jsonl", "c", [("i_mcq", 0, "<answer>B</answer>"), ("ghost", 0, "x")])
    with pytest.raises(DataError, match=r"pool_c\.jsonl:2: unknown item_id 'ghost'"):
        score_pool(items, pools + [bad], tmp / "o.parquet", tmp / "o.json", ScoringConfig())
    assert not (tmp / "o.parquet").exists()


@pytest.mark.parametrize(
    "line,match",
    [
        ('{"item_id": "i_mcq", "teacher": "c", "k": 0, "text": null, "finish_reason": "stop", '
         '"n_tokens": 1}',
         "text must be a string"),
        ('{"item_id": "i_mcq", "teacher": "c", "k": -1, "text": "", "finish_reason": "stop", '
         '"n_tokens": 1}',
         "k must be"),
        ('{"item_id": "i_mcq", "teacher": "c", "k": 0, "text": ""}', "missing field"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_pool_records(files, line, match):
    tmp, items, pools = files
    p = tmp / "pool_c.jsonl"
    p.write_text("\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"pool_c\.jsonl:2: .*{match}"):
        score_pool(items, [p], tmp / "o.parquet", tmp / "o.json", ScoringConfig())


def test_invalid_utf8_teacher_text_is_repaired_and_counted(files):
    """Model output is data: invalid UTF-8 bytes and lone surrogate escapes become U+FFFD."""
    tmp, items, pools = files
    p = tmp / "pool_c.jsonl"
    p.write_bytes(
        b'{"item_id": "i_mcq", "teacher": "c", "k": 0, "text": "<answer>\xff\xfeB</answer>", '
        b'"finish_reason": "stop", "n_tokens": 3}\n'
        b'{"item_id": "i_mcq", "teacher": "c", "k": 1, "text": "\\ud800<answer>B</answer>", '
        b'"finish_reason": null, "n_tokens": null}\n'
    )
    stats = score_pool(items, [p], tmp / "o.parquet", tmp / "o.json", ScoringConfig())
    assert stats["n_text_repaired"] == 2 and stats["n_samples"] == 2
    df = pd.read_parquet(tmp / "o.parquet")
    assert list(df["text"]) == ["<answer>\ufffd\ufffdB</answer>", "\ufffd<answer>B</answer>"]
    assert list(df["valid"]) == [True, False]  # text outside <answer> in the second
    assert stats["n_format_invalid"] == 1


def test_duplicate_sample_and_bad_item(files, tmp_path):
    tmp, items, pools = files
    with pytest.raises(DataError, match="duplicate sample"):
        score_pool(items, pools + [pools[0]], tmp / "o.parquet", tmp / "o.json", ScoringConfig())
    no_duration = {"id": "t", "task_type": "temporal", "answer": [1, 2]}
    bad_items = _jsonl(tmp / "bad_items.jsonl", ITEMS[:1] + [no_duration])
    with pytest.raises(DataError, match=r"bad_items\.jsonl:2: item t"):
        score_pool(bad_items, [], tmp / "o.parquet", tmp / "o.json", ScoringConfig())
    with pytest.raises(MissingArtifactError):
        score_pool(tmp / "nope.jsonl", [], tmp / "o.parquet", tmp / "o.json", ScoringConfig())


def test_select_variant_errors(files):
    tmp, items, pools = files
    score_pool(items, pools[:1], tmp / "scored.parquet", tmp / "s.json", ScoringConfig())
    c = SelectionConfig.from_dict({"teachers": ["a", "b", "zeta"]})
    with pytest.raises(ConfigError, match=r"\['b', 'zeta'\]"):
        select_variant(tmp / "scored.parquet", items, tmp / "o.jsonl", tmp / "o.json", c, seed=0)
    other = _jsonl(tmp / "other_items.jsonl", ITEMS[1:])
    only_a = cfg(teachers=["a"])
    with pytest.raises(DataError, match="i_mcq"):
        select_variant(tmp / "scored.parquet", other, tmp / "o.jsonl", tmp / "o.json", only_a, 0)
    with pytest.raises(MissingArtifactError):
        select_variant(tmp / "missing.parquet", items, tmp / "o.jsonl", tmp / "o.json", only_a, 0)


def test_empty_pool_files(tmp_path):
    items = _jsonl(tmp_path / "items.jsonl", ITEMS)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    stats = score_pool(items, [empty], tmp_path / "o.parquet", tmp_path / "o.json", ScoringConfig())
    assert stats["overall"]["n_responses"] == 0
    assert len(pd.read_parquet(tmp_path / "o.parquet")) == 0


# ------------------------------------------------------------------ oracle target and open weighting

def test_ground_truth_target_replaces_the_teacher_sample():
    rows = [{"teacher": "a", "k": 0, "text": "<answer>A</answer>", "q": 0.0, "valid": True},
            {"teacher": "a", "k": 1, "text": "<answer>B</answer>", "q": 1.0, "valid": True}]
    c = SelectionConfig.from_dict({"teachers": ["a"], "tau": 0.0, "sft_target": {"closed": "ground_truth"}})
    res = select_item(rows, "mcq", c, item_rng("i", 0), ground_truth="<answer>C</answer>")
    assert (res["sft_target"], res["sft_target_q"], res["sft_teacher"], res["sft_k"]) == (
        "<answer>C</answer>", 1.0, "ground_truth", -1)
    assert [x["p"] for x in res["pool"]] == [0.0, 1.0]  # the matching pool is still the teachers'
    with pytest.raises(ValueError, match="ground truth"):
        select_item(rows, "mcq", c, item_rng("i", 0))


def test_open_quality_weighting_uses_rouge_against_the_reference():
    rows = [{"teacher": "a", "k": 0, "text": "x", "q": 1.0, "valid": True, "metric": 0.6},
            {"teacher": "a", "k": 1, "text": "y", "q": 1.0, "valid": True, "metric": 0.2},
            {"teacher": "a", "k": 2, "text": "z", "q": 0.0, "valid": False, "metric": 0.9}]
    c = SelectionConfig.from_dict({"teachers": ["a"], "weighting": {"open": "quality"}})
    res = select_item(rows, "open", c, item_rng("i", 0))
    assert [x["p"] for x in res["pool"]] == pytest.approx([0.75, 0.25])  # z fails the format filter
    assert [x["q"] for x in res["pool"]] == [1.0, 1.0]  # q (the discriminator weight) stays validity
    uni = select_item(rows, "open", SelectionConfig.from_dict({"teachers": ["a"]}), item_rng("i", 0))
    assert [x["p"] for x in uni["pool"]] == [0.5, 0.5]
    no_ref = [{**r, "metric": float("nan")} for r in rows]
    assert [x["p"] for x in select_item(no_ref, "open", c, item_rng("i", 0))["pool"]] == [0.5, 0.5]
