"""Written forms of spans and boxes, full-width text, and properties of IoU and the tau filter."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmsd.scoring import SelectionConfig, select_item
from rmsd.scoring.formats import check_task, parse_box, parse_span, parse_time_s
from rmsd.scoring.metrics import box_iou, temporal_iou

TEMPORAL = {"id": "t", "task_type": "temporal", "duration_s": 120.0}


@pytest.mark.parametrize("text, want", [
    ("[1.0, 3.0]", [1.0, 3.0]),
    ("(1, 3)", [1.0, 3.0]),
    ("1.0-3.0", [1.0, 3.0]),
    ("1.0 – 3.0", [1.0, 3.0]),
    ("1.0 to 3.0", [1.0, 3.0]),
    ("from 1s to 3s", [1.0, 3.0]),
    ("from 1.5 seconds to 3 seconds", [1.5, 3.0]),
    ("00:01-00:03", [1.0, 3.0]),
    ("[0:01:05, 0:01:10]", [65.0, 70.0]),
    ('{"start": 1, "end": 2.5}', [1.0, 2.5]),
    ("start: 1, end: 3", [1.0, 3.0]),
    ("about 1 to 3", None),
    ("[1, 2, 3]", None),
    ("1:75 - 2:00", None),
    ('{"start": "a", "end": 2}', None),
    ("", None),
])
def test_parse_span_forms(text, want):
    assert parse_span(text) == want


def test_parse_time_s():
    assert parse_time_s("1:23.5") == 83.5
    assert parse_time_s("1:00:00") == 3600.0
    assert parse_time_s("60:00") == 3600.0
    assert parse_time_s("x") is None


def test_full_width_answers():
    assert check_task("［１．０， ３．０］", TEMPORAL).parsed == [1.0, 3.0]
    mcq = {"id": "m", "task_type": "mcq", "options": ["a", "b", "c", "d"], "answer": "B"}
    assert check_task("Ｂ", mcq).parsed == "B"
    assert check_task("(ｃ)", mcq).parsed == "C"


def test_parse_box_forms():
    assert parse_box("[10, 20, 30, 40]") == [10.0, 20.0, 30.0, 40.0]
    assert parse_box("(10, 20, 30, 40)") == [10.0, 20.0, 30.0, 40.0]
    assert parse_box("10, 20, 30, 40") == [10.0, 20.0, 30.0, 40.0]
    assert parse_box("[[10, 20, 30, 40]]") == [10.0, 20.0, 30.0, 40.0]
    assert parse_box("[10, 20, 30]") is None


spans = st.tuples(st.floats(0, 100), st.floats(0, 100)).map(sorted).filter(lambda s: s[0] < s[1])
boxes = st.tuples(spans, spans).map(lambda xy: [xy[0][0], xy[1][0], xy[0][1], xy[1][1]])


@given(spans, spans)
def test_tiou_symmetric_bounded(a, b):
    v = temporal_iou(a, b)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(temporal_iou(b, a))


@given(spans)
def test_tiou_equal_is_one(a):
    assert temporal_iou(a, a) == 1.0


@given(boxes, boxes)
def test_box_iou_symmetric_bounded(a, b):
    v = box_iou(a, b)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(box_iou(b, a))


@given(st.text(max_size=200))
def test_span_parser_never_raises(text):
    parse_span(text)
    parse_box(text)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8), st.floats(0, 1), st.floats(0, 1))
def test_filter_monotone_in_tau(qs, t1, t2):
    lo, hi = sorted((t1, t2))
    rows = [{"item_id": "i", "teacher": "a", "k": k, "text": f"<answer>[{k}, {k + 1}]</answer>",
             "q": q, "valid": True, "metric": q} for k, q in enumerate(qs)]

    def kept(tau):
        cfg = SelectionConfig.from_dict({"teachers": ["a"], "K": len(qs), "tau": tau})
        res = select_item(rows, "temporal", cfg, random.Random(0))
        return 0 if res is None else len(res["pool"])

    assert kept(hi) <= kept(lo)
