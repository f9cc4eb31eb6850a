"""Benchmark answer extraction, scoring, judge hook and metrics: exact values and properties."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmsd.errors import ConfigError
from rmsd.evaluation.benchmarks import (
    BenchmarkScorer,
    MathVerifier,
    import_benchmark,
    parse_vstar_boxes,
    parse_vstar_span,
    resolve_settings,
    strip_reasoning,
    summarise_benchmark,
    vstar_spatial,
)
from rmsd.evaluation.benchmarks.aggregate import breakdown
from rmsd.evaluation.benchmarks.extract import final_answer_text, is_text_answer
from rmsd.evaluation.benchmarks.judge import (
    JudgeVerdict,
    exact_match_judge,
    load_judge,
    verdict_from_text,
)
from rmsd.evaluation.metrics import delta_knowledge, group_means_bootstrap, paired_comparison

DR = str(Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks")
GT = [{"t": 4, "box": [100, 100, 500, 500]}, {"t": 5, "box": [200, 200, 600, 600]},
      {"t": 6, "box": [300, 300, 700, 700]}]


# --------------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("<think>2 or 3</think><answer>[1, 4]</answer>", "[1, 4]"),
    ("<answer>1</answer> then <answer>2</answer>", "2"),
    ("<think>hmm</think> It is 5.", " It is 5."),
    ("reasoning </think> final 5", " final 5"),
    ("A <THINK>x</THINK> B", "A  B"),
    ("answer <think> still thinking 1 2", "answer "),
    ("plain", "plain"),
    (None, ""),
])
def test_strip_reasoning(text, expected):
    assert strip_reasoning(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("The event happens from 3.5 to 7 seconds.", [3.5, 7.0]),
    ("[12, 20.5]", [12.0, 20.5]),
    ("-3 to 5", [3.0, 5.0]),  # the official pattern has no sign
    ("<think>maybe 1 or 2 or 3</think><answer>4 - 9</answer>", [4.0, 9.0]),
    ("between 1 and 2 and 3", None),  # more than two numbers
    ("at 5s", None),  # "5s" has no word boundary after 5 (official pattern)
    ("It starts at 12.", None),
    ("", None),
    (12, None),
])
def test_parse_vstar_span(text, expected):
    assert parse_vstar_span(text) == expected


@pytest.mark.parametrize("text,expected", [
    ('Here:\n```json\n{"4": [1, 2, 3, 4]}\n```\nok', {"4": [1, 2, 3, 4]}),
    ("boxes: {'4': [1, 2, 3, 4]} done", {"4": [1, 2, 3, 4]}),
    ('[{"4": [1,2,3,4]}, {"5": [5,6,7,8]}]', {"4": [1, 2, 3, 4], "5": [5, 6, 7, 8]}),
    ("[[4, [1,2,3,4]], [5, [5,6,7,8]]]", {"4": [1, 2, 3, 4], "5": [5, 6, 7, 8]}),
    ("```json\n[[4, [1,2,3,4]], [5, [5,6,7,8]\n```", {"4": [1, 2, 3, 4], "5": [5, 6, 7, 8]}),
    ('{"4": [1, 2, 3, 4], "5": [5, 6, 7, 8]', None),  # official: "[1, 2, ...8]" matched, unreadable
    ('<think>{"1": [0,0,1,1]}</think><answer>{"4": [1,2,3,4]}</answer>', {"4": [1, 2, 3, 4]}),
    ("no json at all", None),
    ("[1, 2", None),
    ("[1, 2, 3, 4]", None),  # a bare box has no seconds
    ("{not: json}", None),
])
def test_parse_vstar_boxes(text, expected):
    assert parse_vstar_boxes(text) == expected


def test_vstar_spatial_exact():
    pred = {"4": [100, 100, 500, 500], "5.0": [[0, 0, 10, 10], [200, 200, 400, 600]],
            "x": [1, 2, 3, 4], "7": "junk"}
    r = vstar_spatial(pred, GT)
    assert r["frame_ious"] == [1.0, 0.5, 0.0]  # t=6 missing
    assert r["viou"] == pytest.approx(0.5)
    assert r["ap"] == pytest.approx({"0.1": 2 / 3, "0.3": 2 / 3, "0.5": 2 / 3, "0.7": 1 / 3,
                                     "0.9": 1 / 3})
    assert vstar_spatial(None, GT)["viou"] == 0.0
    assert vstar_spatial({"4": [500, 500, 100, 100]}, GT)["viou"] == 0.0  # reversed box: IoU 0
    assert vstar_spatial({"4": [4, [100, 100, 500, 500]]}, GT)["viou"] == pytest.approx(1 / 3)
    # coordinate conventions, all rescaled to the 0-1000 scale of the ground truth
    assert vstar_spatial({"4": [0.1, 0.1, 0.5, 0.5]}, GT, "unit")["viou"] == pytest.approx(1 / 3)
    assert vstar_spatial({"4": [128, 72, 640, 360]}, GT, "original_pixels",
                         (1280, 720))["viou"] == pytest.approx(1 / 3)
    assert vstar_spatial({"4": [5.6, 5.6, 28, 28]}, GT, "input_pixels",
                         (56, 56))["viou"] == pytest.approx(1 / 3)
    assert vstar_spatial({"4": [5.6, 5.6, 28, 28]}, GT, "input_pixels", None)["viou"] == 0.0


def test_final_answer_text_and_text_answers():
    assert final_answer_text(r"so \boxed{\frac{1}{2}} and \boxed{3") == r"\frac{1}{2}"
    assert final_answer_text("The final answer is 42.") == "42"
    assert final_answer_text("line one\nline two\n") == "line two"
    assert final_answer_text("") == ""
    assert is_text_answer("increasing") and not is_text_answer("30^\\circ")


def test_math_verify_checks():
    mv = MathVerifier()
    assert mv.available and mv.version == "0.9.0"
    cases = [
        (r"The answer is $\frac{1}{2}$", 0.5, None, True),
        ("so 14", 14, None, True),
        ("<think>3</think><answer>4</answer>", 4, None, True),
        ("<think>4</think><answer>3</answer>", 4, None, False),
        ("1.499", 1.5, None, False),
        ("1.499", 1.5, 1.0, True),  # MathVista precision: compared at 1 decimal
        ("the answer is yes.", "Yes", None, True),  # prose gold: normalised strings
        ("No", "Yes", None, False),
        (r"$y = 2x+1$", "y=2x+1", None, True),
        (r"\boxed{(3, 4)}", "(3,4)", None, True),
        (r"\boxed{\frac{\pi}{3}}", r"\frac{\pi}{3}", None, True),
    ]
    for resp, gold, prec, ok in cases:
        assert mv.check(resp, gold, prec).correct is ok, (resp, gold)
    r = mv.check("I cannot tell.", 14)
    assert (r.correct, r.parsed, r.method) == (False, None, "math_verify")
    assert mv.n_fallback == 0 and mv.n_checked == len(cases) + 1


def test_math_fallback_is_counted_and_opt_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # import fails
    with pytest.raises(ConfigError, match="math-verify"):
        MathVerifier()
    mv = MathVerifier(allow_fallback=True)
    assert not mv.available and mv.version is None
    assert mv.check("The answer is 14.", 14).correct
    assert mv.check(r"\boxed{1.49}", 1.5, 1.0).correct
    assert not mv.check(r"\boxed{1.4}", 1.5).correct
    assert mv.check("The answer is Yes.", "yes").correct
    r = mv.check("no idea", 3)
    assert (r.correct, r.parsed, r.method) == (False, None, "fallback")
    assert mv.n_fallback == 5


# --------------------------------------------------------------------------------------------------
# Scorer and judge hook
# --------------------------------------------------------------------------------------------------


def test_mcq_scoring_never_guesses():
    items = import_benchmark("VideoMME", DR).items  # answers C, A, D, B
    sc = BenchmarkScorer("VideoMME", resolve_settings("VideoMME"))
    out = sc.score_batch(["The answer is (C).", "A or B", "", "<answer>D</answer>"], items)
    assert [(o["parsed"], o["valid"], o["score"]) for o in out] == [
        ("C", True, 1.0), (None, False, 0.0), (None, False, 0.0), ("D", True, 0.0)]
    assert out[1]["reason"] == "no single option letter" and out[0]["method"] == "mcq"
    assert sc.categories(items[0]) == {"duration": "short", "domain": "Knowledge",
                                       "sub_category": "Humanity & History",
                                       "task_type": "Counting Problem"}


def test_vstar_scoring():
    items = {it["id"]: it for it in import_benchmark("V-STaR", DR).items}
    sc = BenchmarkScorer("V-STaR", resolve_settings("V-STaR"))
    w, s = items["vs001-0:when1"], items["vs001-0:where1"]  # GT [3.2, 6.8]; boxes as GT above
    out = sc.score_batch(["from 4 to 6", "7 to 5", "at 4", '{"4": [100,100,500,500]}', "none"],
                         [w, w, w, s, s])
    assert out[0]["score"] == pytest.approx(2 / 3.6) and out[0]["parsed"] == [4.0, 6.0]
    assert (out[1]["valid"], out[1]["score"]) == (True, 0.0)  # reversed span
    assert (out[2]["valid"], out[2]["score"], out[2]["reason"]) == (False, 0.0, "not exactly two numbers")
    assert out[3]["score"] == pytest.approx(1 / 3) and out[3]["extra"]["ap"]["0.5"] == pytest.approx(1 / 3)
    assert (out[4]["valid"], out[4]["score"]) == (False, 0.0)


class FakeJudge:
    name = "fake"

    def __init__(self, correct=True):
        self.requests = []
        self.correct = correct

    def __call__(self, requests):
        self.requests.extend(requests)
        return [JudgeVerdict(self.correct, 1.0 if self.correct else 0.0, "3" if self.correct else "0")
                for _ in requests]


def test_judge_hook_vstar_what_and_math_modes(tmp_path):
    what = import_benchmark("V-STaR", DR, {"steps": ["what"]}).items[0]
    judge = FakeJudge()
    sc = BenchmarkScorer("V-STaR", resolve_settings("V-STaR", {"steps": ["what"]}), judge=judge)
    (o,) = sc.score_batch(["<think>x</think>He kicks the ball."], [what])
    assert (o["score"], o["valid"], o["method"], o["judge"]["raw"]) == (1.0, True, "judge", "3")
    r = judge.requests[0]
    assert (r.kind, r.question, r.reference, r.candidate) == (
        "vstar_what", "What is the man in red doing?", "He is kicking the ball.", "He kicks the ball.")
    with pytest.raises(ConfigError, match="judge"):
        BenchmarkScorer("V-STaR", resolve_settings("V-STaR", {"steps": ["what"]})).score_batch(["x"], [what])

    mverse = {it["id"]: it for it in import_benchmark("MathVerse", DR).items}
    judge = FakeJudge(correct=True)
    sc = BenchmarkScorer("MathVerse", resolve_settings("MathVerse", {"judge_mode": "unparsed"}),
                         math=MathVerifier(), judge=judge)
    out = sc.score_batch(["I do not know", "The answer is 14"], [mverse["3421"], mverse["3421"]])
    assert len(judge.requests) == 1 and judge.requests[0].kind == "math"  # only the unparsed one
    assert (out[0]["method"], out[0]["score"], out[0]["extra"]["rule_score"]) == ("judge", 1.0, 0.0)
    assert (out[1]["method"], out[1]["score"]) == ("math_verify", 1.0)
    judge = FakeJudge(correct=False)
    sc = BenchmarkScorer("MathVerse", resolve_settings("MathVerse", {"judge_mode": "always"}),
                         math=MathVerifier(), judge=judge)
    out = sc.score_batch(["The answer is 14"], [mverse["3421"]])
    assert (out[0]["score"], out[0]["extra"]["rule_score"], sc.n_judged) == (0.0, 1.0, 1)
    with pytest.raises(ConfigError, match="judge_mode"):
        BenchmarkScorer("MathVerse", resolve_settings("MathVerse", {"judge_mode": "always"}),
                        math=MathVerifier())


def test_judge_loading_and_verdicts():
    j = load_judge({"factory": "rmsd.evaluation.benchmarks.judge:exact_match_judge"})
    assert j.name == "exact_match" and load_judge(None) is None
    with pytest.raises(ConfigError, match="module:function"):
        load_judge({"factory": "nocolon"})
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_judge({"factory": "rmsd.nope:f"})
    assert verdict_from_text("vstar_what", " 2 ") == JudgeVerdict(True, 2 / 3, " 2 ")
    assert verdict_from_text("vstar_what", "1") == JudgeVerdict(False, 1 / 3, "1")
    assert verdict_from_text("vstar_what", "Rating: 3").valid is False
    assert verdict_from_text("math", "Judgement: 1").correct
    assert verdict_from_text("math", "no digit").valid is False
    from rmsd.evaluation.benchmarks.judge import JudgeRequest
    (v,) = exact_match_judge()([JudgeRequest("i", "vstar_what", "q", "Salt.", "salt")])
    assert v.correct and v.raw == "3"


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def rec(i, score, video="v", valid=True, **cats):
    return {"item_id": str(i), "video": video, "task_type": "mcq", "score": float(score),
            "valid": valid, "categories": cats}


def test_accuracy_breakdowns_videomme():
    recs = [rec(1, 1, "v1", duration="short", domain="K", task_type="count", sub_category="a"),
            rec(2, 0, "v1", False, duration="short", domain="K", task_type="ocr", sub_category="a"),
            rec(3, 1, "v2", duration="long", domain="S", task_type="count", sub_category="b")]
    m = summarise_benchmark("VideoMME", recs, 200, 0)
    assert m["overall"] == pytest.approx(2 / 3)
    b = m["breakdowns"]
    assert b["duration"]["short"] == {"mean": 0.5, "n": 2, "n_unparsed": 1, "ci95": [0.5, 0.5]}
    assert b["duration"]["long"]["mean"] == 1.0
    assert set(b["duration x domain x task_type"]) == {"short | K | count", "short | K | ocr",
                                                       "long | S | count"}
    assert b["duration x domain"]["short | K"]["mean"] == 0.5
    # list-valued categories count under each value; records without the key are left out
    lst = [rec(1, 1, skills=["a", "b"]), rec(2, 0, skills=["b"]), rec(3, 1)]
    assert {k: v["mean"] for k, v in breakdown(lst, "skills").items()} == {"a": 1.0, "b": 0.5}


def test_mlvu_macro_and_micro():
    recs = [rec(i, s, f"v{i}", task_type="A") for i, s in enumerate([1, 1, 1, 0])]
    recs.append(rec(9, 0, "v9", task_type="B"))
    m = summarise_benchmark("MLVU_MCQ", recs, 200, 0)
    assert m["overall"] == m["m_avg"] == pytest.approx(0.375)
    assert m["micro_avg"] == pytest.approx(0.6)
    assert m["averages"] == {"M-Avg (macro over task types)": 0.375, "micro (over questions)": 0.6}
    assert m["primary"]["metric"] == "M-Avg"
    lo, hi = m["ci95"]
    assert 0.0 <= lo <= 0.375 <= hi <= 0.5  # type B is always 0, type A at most 1


def test_videommmu_tracks_and_delta_knowledge():
    def r(i, s, track, src):
        return rec(i, s, f"vid-{src}-{track}", track=track, source_id=src, discipline="Art")
    recs = [r(1, 1, "perception", "s1"), r(2, 0, "perception", "s2"),
            r(3, 1, "comprehension", "s1"), r(4, 1, "comprehension", "s2"),
            r(5, 1, "adaptation", "s1"), r(6, 0, "adaptation", "s2"),
            r(7, 0, "question_only", "s1"), r(8, 0, "question_only", "s2")]
    m = summarise_benchmark("Video-MMMU", recs, 200, 0)
    assert m["overall"] == pytest.approx(4 / 6)  # question-only items excluded
    assert {k: v["mean"] for k, v in m["tracks"].items()} == {
        "adaptation": 0.5, "comprehension": 1.0, "perception": 0.5, "question_only": 0.0}
    dk = m["delta_knowledge"]
    assert (dk["value"], dk["acc_after"], dk["acc_before"], dk["n_pairs"]) == (0.5, 0.5, 0.0, 2)
    assert m["n_baseline_items"] == 2 and "track" not in m["breakdowns"]
    assert delta_knowledge(0.75, 0.5) == 0.5 and math.isnan(delta_knowledge(0.9, 1.0))


def test_vstar_metrics_exact():
    def r(i, s, step, chain, vid, ap=None):
        x = rec(i, s, vid, step=step, chain=chain, domain="Sports" if vid == "a" else "Cooking",
                length="Short")
        x["task_type"] = {"when": "temporal", "where": "spatial", "what": "open"}[step]
        if ap is not None:
            x["extra"] = {"ap": ap}
        return x
    ap_hi = {"0.1": 1.0, "0.3": 1.0, "0.5": 0.5, "0.7": 0.0, "0.9": 0.0}
    ap_0 = dict.fromkeys(ap_hi, 0.0)
    recs = [r(1, 0.6, "when", 1, "a"), r(2, 0.2, "when", 1, "b"),
            r(3, 0.5, "where", 1, "a", ap_hi), r(4, 0.0, "where", 1, "b", ap_0),
            r(5, 0.8, "when", 2, "a"), r(6, 0.4, "when", 2, "b"),
            r(7, 0.1, "where", 2, "a", ap_0), r(8, 0.3, "where", 2, "b", ap_0),
            r(9, 1.0, "what", 0, "a"), r(10, 0.0, "what", 0, "b")]
    m = summarise_benchmark("V-STaR", recs, 200, 0)
    v = m["vstar"]
    c1, c2 = v["chain1"], v["chain2"]
    assert c1["when"]["m_tIoU"] == pytest.approx(0.4)
    assert (c1["when"]["R@0.3"], c1["when"]["R@0.5"], c1["when"]["R@0.7"]) == (0.5, 0.5, 0.0)
    assert (c2["when"]["R@0.3"], c2["when"]["R@0.5"], c2["when"]["R@0.7"]) == (1.0, 0.5, 0.5)
    assert c1["where"]["m_vIoU"] == pytest.approx(0.25) and c1["where"]["AP@0.5"] == 0.25
    assert c2["where"]["m_vIoU"] == pytest.approx(0.2)
    assert v["what"]["acc"] == 0.5
    assert c1["AM"] == pytest.approx((0.5 + 0.4 + 0.25) / 3)
    assert c1["LGM"] == pytest.approx(-np.mean(np.log([0.5, 0.6, 0.75])))
    assert v["mAM"] == pytest.approx((c1["AM"] + c2["AM"]) / 2)
    assert m["overall"] == pytest.approx((0.4 + 0.25 + 0.6 + 0.2) / 4)
    assert m["primary"]["reported"] == pytest.approx({"when1": 0.4, "where1": 0.25, "when2": 0.6,
                                                      "where2": 0.2})
    assert m["breakdowns"]["vstar by domain"]["Sports"]["chain1"]["when"]["m_tIoU"] == pytest.approx(0.6)


def test_group_means_bootstrap():
    # constant scores within groups: a stratified resample always gives the same macro mean;
    # an unstratified one can lose a group (then the macro mean is that of the other group)
    macro = lambda m: np.nanmean(m, 1)  # noqa: E731
    assert group_means_bootstrap([1, 1, 0, 0], None, [0, 0, 1, 1], 2, macro, 100,
                                 stratified=True) == (0.5, 0.5)
    assert group_means_bootstrap([1, 1, 0, 0], None, [0, 0, 1, 1], 2, macro, 100) == (0.0, 1.0)
    lo, hi = group_means_bootstrap([1, 0, 1, 0], ["a", "a", "b", "b"], [0, 1, 0, 1], 2,
                                   lambda m: m[:, 0] - m[:, 1], 100)
    assert lo == hi == 1.0  # within each cluster group 0 beats group 1
    assert all(math.isnan(x) for x in group_means_bootstrap([], None, [], 1, lambda m: m[:, 0]))


def test_paired_comparison(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(x) + "\n" for x in [
        {"item_id": "x", "video": "v1", "score": 1}, {"item_id": "y", "video": "v1", "score": 0},
        {"item_id": "z", "video": "v2", "score": 1}, {"item_id": "w", "video": "v3", "score": 1}]))
    b.write_text("".join(json.dumps(x) + "\n" for x in [
        {"item_id": "x", "score": 0}, {"item_id": "y", "score": 0}, {"item_id": "z", "score": 1},
        {"item_id": "q", "score": 1}]))
    r = paired_comparison(a, b, n_boot=2000, seed=0)
    assert (r["n_pairs"], r["n_only_a"], r["n_only_b"]) == (3, 1, 1)
    assert r["diff"] == pytest.approx(1 / 3) and r["mean_a"] == pytest.approx(2 / 3)
    assert r["mean_b"] == pytest.approx(1 / 3)
    assert (r["wins"], r["losses"], r["ties"]) == (1, 0, 2)
    assert r["ci95"] == [0.0, 0.5]  # clusters v1 (diff 1/2 over 2 items) and v2 (0)
    assert r["p_value"] == pytest.approx(0.5, abs=0.05)  # P(both draws v2) = 1/4, two-sided


# --------------------------------------------------------------------------------------------------
# Properties: parsers never raise on arbitrary text
# --------------------------------------------------------------------------------------------------

FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "[", "]", "{", "}", "'", '"', ",",
             ":", "```json\n", "\n```", "\\boxed{", "answer is", "3", "4.5", "-1", "1e999", "A",
             "(B)", " ", "\n", "null", "NaN", '"4"']
texty = st.one_of(st.text(max_size=200),
                  st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(texty)
def test_parsers_never_raise(text):
    assert isinstance(strip_reasoning(text), str)
    span = parse_vstar_span(text)
    assert span is None or (len(span) == 2 and all(math.isfinite(x) for x in span))
    boxes = parse_vstar_boxes(text)
    assert boxes is None or isinstance(boxes, dict)
    r = vstar_spatial(boxes, GT)
    assert 0.0 <= r["viou"] <= 1.0
    assert isinstance(final_answer_text(text), str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texty)
def test_scorer_never_raises_and_scores_in_range(text):
    items = _ITEMS
    out = _SCORERS["VideoMME"].score_batch([text], [items["mcq"]])
    out += _SCORERS["V-STaR"].score_batch([text, text], [items["when"], items["where"]])
    for o in out:
        assert 0.0 <= o["score"] <= 1.0 and isinstance(o["valid"], bool)
        assert o["valid"] or o["score"] == 0.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80) | st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
def test_math_check_never_raises(text):
    r = _MATH.check(text, 14)
    assert isinstance(r.correct, bool) and r.method == "math_verify"
    assert _MATH.check(text, "Yes").method == "string"


_MATH = MathVerifier()
_ITEMS = {
    "mcq": import_benchmark("VideoMME", DR).items[0],
    "when": import_benchmark("V-STaR", DR).items[0],
    "where": import_benchmark("V-STaR", DR).items[1],
}
_SCORERS = {n: BenchmarkScorer(n, resolve_settings(n)) for n in ("VideoMME", "V-STaR")}
