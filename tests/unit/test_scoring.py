"""Unit tests of rmsd.scoring: format checks, MCQ extraction, metrics, quality score, configs."""

from __future__ import annotations

import doctest
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmsd.errors import ConfigError, DataError
from rmsd.scoring import (
    ScoringConfig,
    SelectionConfig,
    anls,
    box_iou,
    check_outer,
    check_task,
    exact_match,
    extract_mcq_letter,
    levenshtein,
    metric,
    numeric_accuracy,
    parse_number,
    rouge_l,
    score_response,
    spatial_iou,
    temporal_iou,
    validate_item,
)
from rmsd.scoring import formats, mcq, metrics, quality, select
from rmsd.tasks import render_answer, render_response

CFG = ScoringConfig()
FAST = settings(max_examples=150, deadline=None)

ITEMS = {
    "mcq": {
        "id": "m1",
        "task_type": "mcq",
        "options": ["circle", "square", "star", "cross"],
        "answer": "B",
    },
    "numeric": {"id": "n1", "task_type": "numeric", "answer": 3},
    "ocr": {"id": "o1", "task_type": "ocr", "answer": "CAT"},
    "temporal": {"id": "t1", "task_type": "temporal", "duration_s": 5.0, "answer": [2.0, 4.0]},
    "spatial": {
        "id": "s1",
        "task_type": "spatial",
        "answer": [{"t": 0.0, "box": [0, 0, 100, 100]}, {"t": 1.0, "box": [50, 0, 150, 100]}],
    },
    "open": {"id": "d1", "task_type": "open", "answer": "a red cross moves down"},
}


def test_doctests():
    for mod in (formats, mcq, metrics, quality, select):
        assert doctest.testmod(mod).failed == 0, mod.__name__


# ------------------------------------------------------------------ outer format


@pytest.mark.parametrize(
    "text,valid,answer,reason",
    [
        ("<answer>B</answer>", True, "B", None),
        ("  \n<answer>  B \n</answer>\n", True, "B", None),
        ("<answer>line1\nline2</answer>", True, "line1\nline2", None),
        ("", False, None, "empty response"),
        ("   ", False, None, "empty response"),
        ("B", False, None, "missing <answer>"),
        ("<answer>B", False, None, "missing </answer> (truncated?)"),
        ("<answer></answer>", False, None, "empty answer"),
        ("<answer>  </answer>", False, None, "empty answer"),
        ("Sure! <answer>B</answer>", False, None, "text outside <answer>"),
        ("<answer>B</answer> done", False, None, "text outside <answer>"),
        ("<answer>A</answer><answer>B</answer>", False, None, "multiple or nested <answer> tags"),
        ("<answer><answer>B</answer></answer>", False, None, "multiple or nested <answer> tags"),
        ("<ANSWER>B</ANSWER>", False, None, "missing <answer>"),
        ("</answer>B<answer>", False, None, "text outside <answer>"),
        ("<think>x</think><answer>B</answer>", False, None, "text outside <answer>"),
    ],
)
def test_check_outer_answer_only(text, valid, answer, reason):
    assert tuple(check_outer(text, "answer_only")) == (valid, answer, reason)


@pytest.mark.parametrize(
    "text,valid,answer",
    [
        ("<think>round shape</think><answer>B</answer>", True, "B"),
        ("<think>a\nb</think>\n\n<answer>B</answer>", True, "B"),
        ("<think></think><answer>B</answer>", True, "B"),
        ("<answer>B</answer>", False, None),
        ("<think>x</think>", False, None),
        ("<think>x<think>y</think></think><answer>B</answer>", False, None),
        ("<think>x</think> hello <answer>B</answer>", False, None),
        ("<answer>B</answer><think>x</think>", False, None),
        ("<think>x</think><answer></answer>", False, None),
        ("<think>unfinished <answer>B</answer>", False, None),
    ],
)
def test_check_outer_think_answer(text, valid, answer):
    oc = check_outer(text, "think_answer")
    assert (oc.valid, oc.answer_text) == (valid, answer)
    assert (oc.reason is None) == valid


def test_check_outer_unknown_template():
    with pytest.raises(ConfigError, match="no_such"):
        check_outer("<answer>B</answer>", "no_such")


def test_check_outer_markup_and_long_text():
    assert check_outer("<answer><b>B</b></answer>", "answer_only") == (True, "<b>B</b>", None)
    long = "<answer>" + "x" * 200_000 + "</answer>"
    assert check_outer(long, "answer_only").valid
    assert not check_outer("<answer>" + "x" * 200_000, "answer_only").valid


# ------------------------------------------------------------------ MCQ extractor

MCQ_TABLE = [
    ("B", "B"),
    ("b", "B"),
    ("B.", "B"),
    ("(B)", "B"),
    ("[B]", "B"),
    ("B)", "B"),
    ("B) circle", "B"),
    ("B. circle", "B"),
    ("(B) circle", "B"),
    ("Answer: B", "B"),
    ("answer: b", "B"),
    ("The answer is B", "B"),
    ("The correct answer is (B).", "B"),
    ("**B**", "B"),
    ("**Answer:** C", "C"),
    ("Option D", "D"),
    ("<answer>B</answer>", "B"),
    ("<answer> (C) star </answer>", "C"),
    ("<think>maybe A</think><answer>C</answer>", "C"),
    ("<think>maybe A</think>The answer is D", "D"),
    ("The answer is B because A is wrong.", "B"),
    ("I think the answer is C", "C"),
    ("I am sure it is C", "C"),
    ("Final answer: D. Earlier I said the answer is C.", "D"),
    ("It is clearly B\n\nExplanation: the shape has no corners", "B"),
    ("<b>B</b>", "B"),
    # adversarial: ambiguous or out of range -> None, never a guess
    ("A or B", None),
    ("I think C... no, D", None),
    ("The answer is A or B", None),
    ("The answer is B, A is wrong", None),
    ("Answer: B\nAnswer: C", None),
    ("A circle, so B", None),
    ("<answer>A</answer><answer>B</answer>", None),
    ("<think>the answer is A", None),
    ("B</think>C", "C"),
    ("C<think>D", "C"),
    ("<THINK>a</THINK><Answer>D</Answer>", "D"),
    ("the answer is a circle", None),
    ("E", None),
    ("Answer: E", None),
    ("I", None),
    ("", None),
    ("   ", None),
    ("No idea.", None),
    ("B's shape", None),
    ("A/C", None),
]


@pytest.mark.parametrize("text,expected", MCQ_TABLE)
def test_extract_mcq_letter_table(text, expected):
    assert extract_mcq_letter(text, 4) == expected


@pytest.mark.parametrize(
    "text", ["<think>" * 50_000, "<answer>" * 50_000, "I I " * 50_000, "answer is a " * 30_000,
             "answer: - = " * 30_000, "(" * 100_000, "<a " * 50_000],
)
def test_extract_mcq_letter_linear_time_on_adversarial_text(text):
    import time

    t0 = time.perf_counter()
    extract_mcq_letter(text, 4)
    assert time.perf_counter() - t0 < 2.0


def test_extract_mcq_letter_allowed_set_and_long_text():
    assert extract_mcq_letter("E", 5) == "E"
    assert extract_mcq_letter("E", 4) is None
    assert extract_mcq_letter("x " * 50_000 + "B", 4) == "B"
    with pytest.raises(ValueError, match="n_options"):
        extract_mcq_letter("B", 0)
    with pytest.raises(ValueError, match="n_options"):
        extract_mcq_letter("B", 15)
    # Video-MMMU has questions with 11 and 14 options (letters up to N); full-width letters read.
    assert extract_mcq_letter("The answer is (K)", 11) == "K"
    assert extract_mcq_letter("Answer: N", 14) == "N" and extract_mcq_letter("Answer: N", 10) is None
    assert extract_mcq_letter("（Ｂ）", 4) == "B"


@FAST
@given(st.text(max_size=300), st.integers(1, 14))
def test_extract_mcq_never_raises(text, n):
    out = extract_mcq_letter(text, n)
    assert out is None or out in "ABCDEFGHIJKLMN"[:n]


# ------------------------------------------------------------------ task format


@pytest.mark.parametrize(
    "s,expected",
    [("3", 3.0), ("3.0", 3.0), ("-2.5", -2.5), ("1e3", 1000.0), (" +.5 ", 0.5), ("7.", 7.0),
     ("1,000", None), ("1_000", None), ("inf", None), ("nan", None), ("1e999", None),
     ("0x10", None), ("３", None), ("", None), ("3 apples", None), ("--3", None)],
)
def test_parse_number(s, expected):
    assert parse_number(s) == expected


@pytest.mark.parametrize(
    "task,text,valid,parsed",
    [
        ("mcq", "B", True, "B"),
        ("mcq", "The answer is C", True, "C"),
        ("mcq", "A or B", False, None),
        ("mcq", "E", False, None),
        ("numeric", "3", True, 3.0),
        ("numeric", "1e3", True, 1000.0),
        ("numeric", "1,000", False, None),
        ("numeric", "three", False, None),
        ("ocr", "  CAT ", True, "CAT"),
        ("temporal", "[1.0, 3.0]", True, [1.0, 3.0]),
        ("temporal", "[0,5]", True, [0.0, 5.0]),
        ("temporal", "[0, 5.0000005]", True, [0.0, 5.0000005]),
        ("temporal", "[0, 5.1]", False, None),
        ("temporal", "[3, 1]", False, None),
        ("temporal", "[2, 2]", False, None),
        ("temporal", "[-1, 2]", False, None),
        ("temporal", "1.0, 3.0", True, [1.0, 3.0]),  # a bare list is a usual written form
        ("temporal", "[1.0, 3.0, 4.0]", False, None),
        ("spatial", "[100, 200, 300, 400]", True, [100.0, 200.0, 300.0, 400.0]),
        ("spatial", "[0, 0, 1000, 1000]", True, [0.0, 0.0, 1000.0, 1000.0]),
        ("spatial", "[300, 200, 100, 400]", False, None),
        ("spatial", "[100, 400, 300, 400]", False, None),
        ("spatial", "[100, 200, 300, 1001]", False, None),
        ("spatial", "[100, 200, 300]", False, None),
        ("open", "a red cross moves down", True, "a red cross moves down"),
        ("open", "w " * 64, True, ("w " * 64).strip()),
        ("open", "w " * 65, False, None),
    ],
)
def test_check_task(task, text, valid, parsed):
    tc = check_task(text, ITEMS[task])
    assert (tc.valid, tc.parsed) == (valid, parsed)
    assert (tc.reason is None) == valid


def test_check_task_bad_items():
    with pytest.raises(DataError, match="m9"):
        check_task("B", {"id": "m9", "task_type": "mcq", "options": None})
    with pytest.raises(DataError, match="t9.*duration_s"):
        check_task("[1, 2]", {"id": "t9", "task_type": "temporal"})
    with pytest.raises(DataError, match="x9.*unknown task_type"):
        check_task("B", {"id": "x9", "task_type": "caption"})


@FAST
@given(st.text(max_size=200), st.sampled_from(sorted(ITEMS)))
def test_check_task_never_raises_on_text(text, task):
    tc = check_task(text, ITEMS[task])
    assert tc.valid == (tc.parsed is not None)


# ------------------------------------------------------------------ metrics


def test_exact_match():
    assert exact_match("B", "B") == 1.0
    assert exact_match("B", " b ") == 1.0
    assert exact_match("A", "B") == 0.0
    with pytest.raises(ValueError):
        exact_match("A", "circle")


@pytest.mark.parametrize(
    "pred,gt,eps,expected",
    [
        (3.0, 3, 0.05, 1.0),  # integer GT: exact
        (3.1, 3, 0.05, 0.0),
        (2.0, 3, 0.5, 0.0),  # exact regardless of eps
        (2.6, 2.5, 0.05, 1.0),  # 4% relative error
        (2.625, 2.5, 0.05, 1.0),  # exactly 5%
        (2.63, 2.5, 0.05, 0.0),
        (-2.4, -2.5, 0.05, 1.0),
        (2.5, -2.5, 0.05, 0.0),
        (0.04, 0.0, 0.05, 1.0),  # g = 0.0 (float): absolute error
        (-0.05, 0.0, 0.05, 1.0),
        (0.06, 0.0, 0.05, 0.0),
        (0.0, 0, 0.05, 1.0),  # g = 0 (integer): exact
        (0.01, 0, 0.05, 0.0),
        (3.0, "3", 0.05, 1.0),
        (3.1, "3.0", 0.05, 1.0),
    ],
)
def test_numeric_accuracy(pred, gt, eps, expected):
    assert numeric_accuracy(pred, gt, eps) == expected


def test_numeric_accuracy_bad_gt():
    for gt in (None, True, "three", float("nan"), [3]):
        with pytest.raises(ValueError):
            numeric_accuracy(1.0, gt)


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "abc") == 0
    assert levenshtein("flaw", "lawn") == 2


@pytest.mark.parametrize(
    "pred,gt,thr,expected",
    [
        ("CAT", "CAT", 0.5, 1.0),
        ("cat", "CAT", 0.5, 1.0),  # casefold
        ("  hello   world ", "Hello World", 0.5, 1.0),  # whitespace normalised
        ("CAR", "CAT", 0.5, 2 / 3),
        ("CAR", "CAT", 0.7, 0.0),  # below threshold -> 0
        ("AB", "ABCD", 0.5, 0.5),  # exactly at threshold is kept
        ("A", "ABCD", 0.5, 0.0),
        ("DOG", "CAT", 0.5, 0.0),
        ("x" * 5000, "CAT", 0.5, 0.0),
        ("", "", 0.5, 1.0),
    ],
)
def test_anls(pred, gt, thr, expected):
    assert anls(pred, gt, thr) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ([1, 3], [2, 4], 1 / 3),
        ([2, 4], [1, 3], 1 / 3),
        ([0, 10], [0, 10], 1.0),
        ([0, 1], [2, 3], 0.0),
        ([0, 1], [1, 2], 0.0),
        ([0, 10], [2, 4], 0.2),
        ([1, 1], [0, 2], 0.0),
        ([1, 1], [1, 1], 1.0),
    ],
)
def test_temporal_iou(a, b, expected):
    assert temporal_iou(a, b) == pytest.approx(expected, abs=1e-12)


def test_temporal_iou_bad():
    with pytest.raises(ValueError):
        temporal_iou([1, 3], [4, 2])
    with pytest.raises(ValueError):
        temporal_iou([1, 3], [1])


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected, abs=1e-12)


def test_spatial_iou():
    gt = ITEMS["spatial"]["answer"]
    assert spatial_iou([0, 0, 100, 100], gt) == pytest.approx((1 + 1 / 3) / 2)
    assert spatial_iou([[0, 0, 100, 100], [50, 0, 150, 100]], gt) == 1.0
    assert spatial_iou([[50, 0, 150, 100], [0, 0, 100, 100]], gt) == pytest.approx(1 / 3)
    assert spatial_iou([0, 0, 100, 100], [0, 0, 100, 100]) == 1.0  # plain-box GT
    with pytest.raises(ValueError, match="3 predicted boxes for 2"):
        spatial_iou([[0, 0, 1, 1]] * 3, gt)
    with pytest.raises(ValueError):
        spatial_iou([0, 0, 1, 1], [{"t": 0}])


@pytest.mark.parametrize(
    "pred,ref,expected",
    [
        ("a red cross moves down", "a red cross moves down", 1.0),
        ("a red cross moves down", "A red circle moves down", 0.8),
        ("down moves cross red a", "a red cross moves down", 0.2),
        ("the cat", "a red cross moves down", 0.0),
        ("a b c d", "a c", 2 * 2 / 6),  # LCS 2, P 1/2, R 1 -> F1 2/3
        ("", "a", 0.0),
        ("", "", 1.0),
    ],
)
def test_rouge_l(pred, ref, expected):
    assert rouge_l(pred, ref) == pytest.approx(expected, abs=1e-12)


def test_metric_dispatch():
    assert metric("mcq", "B", "B", CFG) == 1.0
    assert metric("numeric", 2.6, 2.5, CFG) == 1.0
    assert metric("numeric", 2.6, 2.5, ScoringConfig(numeric_eps=0.01)) == 0.0
    assert metric("ocr", "CAR", "CAT", CFG) == pytest.approx(2 / 3)
    assert metric("ocr", "CAR", "CAT", ScoringConfig(ocr_threshold=0.7)) == 0.0
    assert metric("temporal", [1, 3], [2, 4], CFG) == pytest.approx(1 / 3)
    assert metric("open", "a red cross", "a red cross", CFG) == 1.0
    with pytest.raises(ValueError):
        metric("caption", "x", "x", CFG)


# ------------------------------------------------------------------ quality score


@pytest.mark.parametrize("task", sorted(ITEMS))
def test_ground_truth_scores_one(task):
    """The canonical rendering of every GT answer is valid and scores q = 1 (tasks.py contract)."""
    item = ITEMS[task]
    if task == "spatial":  # one annotated frame: a single rendered box cannot match a moving box
        item = {**item, "answer": item["answer"][:1]}
    for template in ("answer_only", "think_answer"):
        text = render_response(render_answer(task, item["answer"]), template, "because")
        r = score_response(text, item, ScoringConfig(template=template))
        assert r["valid"] and r["q"] == 1.0, (task, template, r)


def test_multi_frame_spatial_gt_rendering_scores_below_one():
    """render_answer writes the first frame's box; averaged over moving-box frames it is < 1."""
    item = ITEMS["spatial"]
    text = render_response(render_answer("spatial", item["answer"]), "answer_only")
    assert score_response(text, item, CFG)["q"] == pytest.approx((1 + 1 / 3) / 2)


def test_score_response_closed():
    item = ITEMS["temporal"]
    r = score_response("<answer>[1, 3]</answer>", item, CFG)
    assert r == {"valid_outer": True, "valid_task": True, "valid": True, "parsed": [1.0, 3.0],
                 "metric": pytest.approx(1 / 3), "q": pytest.approx(1 / 3), "reason": None}
    r = score_response("<answer>[3, 1]</answer>", item, CFG)
    assert (r["valid_outer"], r["valid_task"], r["valid"], r["q"]) == (True, False, False, 0.0)
    assert r["reason"] == "task: start >= end"
    r = score_response("[1, 3]", item, CFG)
    assert (r["valid_outer"], r["valid_task"], r["q"], r["reason"]) == (
        False, False, 0.0, "outer: missing <answer>")
    r = score_response("<answer>A</answer>", ITEMS["mcq"], CFG)
    assert (r["valid"], r["metric"], r["q"]) == (True, 0.0, 0.0)


def test_score_response_open_is_validity_only():
    item = ITEMS["open"]
    r = score_response("<answer>a blue star stays still</answer>", item, CFG)
    assert r["valid"] and r["q"] == 1.0
    assert r["metric"] == pytest.approx(rouge_l("a blue star stays still", item["answer"]))
    r = score_response("<answer>" + "w " * 65 + "</answer>", item, CFG)
    assert (r["valid"], r["q"], r["reason"]) == (False, 0.0, "task: too many words")
    r = score_response("<answer>fine</answer>", {**item, "answer": None}, CFG)
    assert r["q"] == 1.0 and math.isnan(r["metric"])


def test_score_response_think_template():
    cfg = ScoringConfig(template="think_answer")
    r = score_response("<think>round</think><answer>B</answer>", ITEMS["mcq"], cfg)
    assert r["valid"] and r["q"] == 1.0
    assert not score_response("<answer>B</answer>", ITEMS["mcq"], cfg)["valid"]


@pytest.mark.parametrize(
    "item,match",
    [
        ({"id": "b1", "task_type": "mcq", "options": ["x", "y"], "answer": "C"}, "b1.*not among"),
        ({"id": "b2", "task_type": "numeric", "answer": "many"}, "b2"),
        ({"id": "b3", "task_type": "ocr", "answer": ""}, "b3"),
        ({"id": "b4", "task_type": "temporal", "duration_s": 3, "answer": [1, 4]}, "b4"),
        ({"id": "b5", "task_type": "temporal", "duration_s": 5, "answer": [2, 2]}, "b5"),
        ({"id": "b6", "task_type": "spatial", "answer": [{"t": 0, "box": [10, 10, 5, 20]}]}, "b6"),
        ({"id": "b7", "task_type": "spatial", "answer": [0, 0, 1920, 1080]}, "b7"),
        ({"id": "b8", "task_type": "spatial", "answer": []}, "b8"),
        ({"id": "b9", "task_type": "open", "answer": 3}, "b9"),
        ({"id": "b10", "task_type": "video_caption", "answer": "x"}, "b10.*unknown task_type"),
        ({"id": "b11", "task_type": "ocr"}, "b11.*answer"),
    ],
)
def test_bad_items_raise(item, match):
    with pytest.raises(DataError, match=match):
        validate_item(item)
    with pytest.raises(DataError, match=match):
        score_response("<answer>x</answer>", item, CFG)


@FAST
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(lambda s: f"<answer>{s}</answer>", st.text(max_size=100)),
        st.builds(
            lambda a, b: f"<answer>[{a}, {b}]</answer>", st.floats(-10, 10), st.floats(-10, 10)
        ),
    ),
    st.sampled_from(sorted(ITEMS)),
    st.sampled_from(["answer_only", "think_answer"]),
)
def test_q_always_in_unit_interval(text, task, template):
    r = score_response(text, ITEMS[task], ScoringConfig(template=template))
    assert 0.0 <= r["q"] <= 1.0
    assert 0.0 <= r["metric"] <= 1.0
    assert r["valid"] == (r["valid_outer"] and r["valid_task"])
    assert (r["reason"] is None) == r["valid"]
    if not r["valid"]:
        assert r["q"] == 0.0


# ------------------------------------------------------------------ configs


def test_scoring_config_from_dict():
    assert ScoringConfig.from_dict({}) == ScoringConfig()
    assert ScoringConfig.from_dict(None).template == "answer_only"
    c = ScoringConfig.from_dict({"template": "think_answer", "numeric_eps": 0.1})
    got = (c.template, c.numeric_eps, c.ocr_threshold, c.open_max_words)
    assert got == ("think_answer", 0.1, 0.5, 64)
    with pytest.raises(ConfigError, match="numeric_epsilon"):
        ScoringConfig.from_dict({"numeric_epsilon": 0.1})
    with pytest.raises(ConfigError, match="template"):
        ScoringConfig.from_dict({"template": "xml"})
    with pytest.raises(ConfigError, match="ocr_threshold"):
        ScoringConfig.from_dict({"ocr_threshold": 1.5})
    with pytest.raises(ConfigError, match="open_max_words"):
        ScoringConfig.from_dict({"open_max_words": 2.5})


def test_selection_config_from_dict():
    c = SelectionConfig.from_dict({"teachers": ["a"]})
    got = (c.teachers, c.assignment, c.K, c.tau, c.format_filter)
    assert got == (("a",), "per_item", 4, 0.3, True)
    assert c.weighting == {"closed": "quality", "open": "uniform"}
    assert c.sft_target == {"closed": "best", "open": "random"}
    c = SelectionConfig.from_dict({"teachers": ["a"], "weighting": {"closed": "uniform"}})
    assert c.weighting == {"closed": "uniform", "open": "uniform"}
    assert c.to_dict()["teachers"] == ["a"]
    bad = [
        ({}, "teachers"),
        ({"teachers": []}, "teachers"),
        ({"teachers": "a"}, "teachers"),
        ({"teachers": ["a", "a"]}, "duplicate"),
        ({"teachers": ["a"], "Kk": 4}, "Kk"),
        ({"teachers": ["a"], "K": 0}, "K"),
        ({"teachers": ["a"], "K": True}, "K"),
        ({"teachers": ["a"], "tau": -0.1}, "tau"),
        ({"teachers": ["a"], "assignment": "random"}, "assignment"),
        ({"teachers": ["a"], "format_filter": 1}, "format_filter"),
        ({"teachers": ["a"], "weighting": {"closed": "softmax"}}, "weighting.closed"),
        ({"teachers": ["a"], "weighting": {"mixed": "uniform"}}, "mixed"),
        ({"teachers": ["a"], "sft_target": {"open": "best"}}, "sft_target.open"),
    ]
    for d, match in bad:
        with pytest.raises(ConfigError, match=match):
            SelectionConfig.from_dict(d)
