"""Bad annotations (items files, external items, teacher pools): a DataError naming file and line.

Property-based tests (hypothesis): importers and readers raise nothing but DataError on arbitrary
JSON-ish records and arbitrary bytes.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmsd.data import import_items
from rmsd.errors import DataError, MissingArtifactError
from rmsd.frames.extract import read_items as read_frame_items
from rmsd.io import read_jsonl, read_jsonl_numbered
from rmsd.scoring.readers import read_items, read_pool

MCQ = {"id": "q1", "video": "VIDEO", "task_type": "mcq", "question": "Which colour?",
       "options": ["red", "green", "blue", "yellow"], "answer": "B"}
TEMPORAL = {"id": "q2", "video": "VIDEO", "task_type": "temporal", "question": "When?",
            "answer": [1.0, 2.0], "duration_s": 4.0}


@pytest.fixture
def video(tmp_path):
    p = tmp_path / "v.mp4"
    p.write_bytes(b"x")  # existence is all the importer checks
    return str(p)


def write_lines(path: Path, lines: list) -> Path:
    """Records (dicts are JSON-encoded) or raw str/bytes lines, one per line."""
    with open(path, "wb") as f:
        for x in lines:
            if isinstance(x, dict):
                x = json.dumps(x)
            f.write((x.encode() if isinstance(x, str) else x) + b"\n")
    return path


def item(base, video_path, **changes):
    out = {**base, "video": video_path, **changes}
    return {k: v for k, v in out.items() if v is not ...}


BAD_RECORDS = [  # (record or raw line, expected message part)
    (lambda v: item(MCQ, v, answer=...), r"missing field\(s\) \['answer'\]"),
    (lambda v: item(MCQ, v, question=...), r"missing field\(s\) \['question'\]"),
    (lambda v: item(MCQ, v, id=7), "id must be a non-empty string"),
    (lambda v: item(MCQ, v, id=""), "id must be a non-empty string"),
    (lambda v: item(MCQ, v, video=["a.mp4"]), "video must be a non-empty string"),
    (lambda v: item(MCQ, v, question={"text": "q"}), "question must be a non-empty string"),
    (lambda v: item(MCQ, v, task_type="essay"), "unknown task_type 'essay'"),
    (lambda v: item(MCQ, v, answer="E"), "answer 'E' is not among the 4 options"),
    (lambda v: item(MCQ, v, answer=2), "must be an option letter, got 2"),
    (lambda v: item(MCQ, v, options="red,green"), "options must be a list of strings"),
    (lambda v: item(MCQ, v, options=["red", 3]), "options must be a list of strings"),
    (lambda v: item(MCQ, v, options=[]), "mcq needs a list of 1..14 options"),
    (lambda v: item(TEMPORAL, v, answer=[3.0, 1.0]), r"ground-truth span must be .* got \[3.0, 1.0\]"),
    (lambda v: item(TEMPORAL, v, answer=[1.0, 9.0]), "not 0 <= start < end <= duration_s"),
    (lambda v: item(TEMPORAL, v, answer="1-2"), "bad temporal ground truth"),
    (lambda v: item(TEMPORAL, v, duration_s="4s"), "temporal needs a positive duration_s"),
    (lambda v: item(MCQ, v, task_type="numeric", answer="many"), "numeric ground truth"),
    (lambda v: '{"id": "q1", "task_type": "numeric", "video": "%s", "question": "n?", '
               '"answer": %s}' % (v, "9" * 400), "OverflowError"),
    (lambda v: item(MCQ, v, task_type="spatial", answer=[{"t": 0}]), "bad spatial ground truth"),
    (lambda v: item(MCQ, v, task_type="ocr", answer=""), "non-empty string"),
    (lambda v: item(MCQ, v, video=v + ".gone"), "video file .* does not exist"),
    (lambda v: "{not json", "not valid JSON"),
    (lambda v: "[1, 2]", "expected a JSON object, got list"),
    (lambda v: b'{"id": "q1", "question": "caf\xe9"}', r"not valid UTF-8 \(byte 0xe9"),
    (lambda v: '{"id": "\\ud800"}', "lone UTF-16 surrogate"),
    (lambda v: "[" * 100000 + "]" * 100000, "not valid JSON"),
    (lambda v: '{"a": ' + "1" * 5000 + "}", "not valid JSON"),
]


@pytest.mark.parametrize("make,match", BAD_RECORDS)
def test_import_items_names_file_and_line(tmp_path, video, make, match):
    good = item(TEMPORAL, video, id="q0")
    src = write_lines(tmp_path / "ext.jsonl", [good, "", make(video)])  # the bad record: line 3
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=rf"ext\.jsonl:3: .*{match}"):
        import_items(str(src), str(out))
    assert not out.exists()  # nothing written


def test_duplicate_ids_name_both_lines(tmp_path, video):
    src = write_lines(tmp_path / "ext.jsonl", [item(MCQ, video), item(TEMPORAL, video),
                                               item(TEMPORAL, video, id="q1")])
    with pytest.raises(DataError, match=r"ext\.jsonl:3: duplicate id 'q1' \(first on line 1\)"):
        import_items(str(src), str(tmp_path / "o.jsonl"))
    with pytest.raises(DataError, match=r"ext\.jsonl:3: duplicate item id 'q1' \(first on line 1\)"):
        read_items(src)
    with pytest.raises(DataError, match=r"ext\.jsonl:3: duplicate item id 'q1' \(first on line 1\)"):
        read_frame_items(src)


def test_valid_file_imports_with_bom_and_crlf(tmp_path, video):
    src = tmp_path / "ext.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(item(MCQ, video)).encode() + b"\r\n\r\n"
                    + json.dumps(item(TEMPORAL, video)).encode() + b"\r\n")
    assert import_items(str(src), str(tmp_path / "o.jsonl")) == 2
    assert [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")] == ["q1", "q2"]
    assert [ln.lineno for ln in read_jsonl_numbered(src)] == [1, 3]


@pytest.mark.parametrize("make,match", [b for b in BAD_RECORDS if "video" not in b[1]
                                        and "question" not in b[1]])
def test_scoring_items_reader_names_file_and_line(tmp_path, video, make, match):
    src = write_lines(tmp_path / "items.jsonl", [item(TEMPORAL, video, id="q0"), make(video)])
    with pytest.raises(DataError, match=rf"items\.jsonl:2: .*{match}"):
        read_items(src)


@pytest.mark.parametrize("rec,match", [
    ({"id": "a"}, r"missing field\(s\) \['video'\]"),
    ({"id": 3, "video": "x.mp4"}, "id must be a non-empty string"),
    ({"id": "a", "video": None}, "video must be a non-empty path string"),
    ({"id": "a", "video": "  "}, "video must be a non-empty path string"),
])
def test_frame_items_reader_names_file_and_line(tmp_path, rec, match):
    src = write_lines(tmp_path / "items.jsonl", [{"id": "ok", "video": "v.mp4"}, rec])
    with pytest.raises(DataError, match=rf"items\.jsonl:2: .*{match}"):
        read_frame_items(src)


def test_pool_reader_types(tmp_path):
    base = {"item_id": "q1", "teacher": "t", "k": 0, "text": "x", "finish_reason": "stop",
            "n_tokens": 1}
    for change, match in [({"k": "0"}, "k must be"), ({"k": True}, "k must be"),
                          ({"teacher": ""}, "teacher must be"), ({"text": 5}, "text must be"),
                          ({"n_tokens": -1}, "n_tokens must be"),
                          ({"finish_reason": 1}, "finish_reason must be")]:
        p = write_lines(tmp_path / "pool.jsonl", [base, {**base, "k": 1, **change}])
        with pytest.raises(DataError, match=rf"pool\.jsonl:2: {match}"):
            read_pool(p)


# ------------------------------------------------------------------ property-based

SCALAR = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
          | st.text(max_size=12))
JSONISH = st.recursive(
    SCALAR,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children,
                                                                      max_size=3),
    max_leaves=6,
)
FIELDS = ["id", "item_id", "video", "task_type", "question", "options", "answer", "duration_s",
          "teacher", "k", "text", "finish_reason", "n_tokens"]
FIELD_VALUES = {
    "id": st.sampled_from(["a", "b", ""]) | JSONISH,
    "task_type": st.sampled_from(["mcq", "numeric", "ocr", "temporal", "spatial", "open", "x"]),
    "answer": JSONISH | st.sampled_from(["A", "B", "K"])
    | st.lists(st.floats(-1, 2000) | st.integers(-1, 2000), max_size=5)
    | st.lists(st.fixed_dictionaries({"t": st.floats(0, 5),
                                      "box": st.lists(st.integers(-5, 1005), max_size=5)}),
               max_size=2),
    "options": st.lists(st.text(max_size=4), max_size=11) | JSONISH,
}
RECORD = st.fixed_dictionaries({}, optional={f: FIELD_VALUES.get(f, JSONISH) for f in FIELDS})
LINES = st.lists(RECORD, min_size=1, max_size=4)
PROPS = settings(max_examples=100, deadline=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))


def dump(records, path):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, allow_nan=True) + "\n")


@PROPS
@given(LINES)
def test_readers_and_importer_raise_only_dataerror_on_any_records(records):
    with tempfile.TemporaryDirectory() as d:
        p, out = Path(d) / "x.jsonl", Path(d) / "out.jsonl"
        dump(records, p)
        for reader in (read_items, read_frame_items, read_pool, read_jsonl):
            try:
                reader(p)
            except DataError as e:
                assert re.match(rf"{re.escape(str(p))}:\d+: ", str(e)), str(e)
        try:
            n = import_items(str(p), str(out))
        except DataError as e:
            assert re.match(rf"{re.escape(str(p))}:\d+: ", str(e)), str(e)
            assert not out.exists()
        else:
            assert n == len(records) and out.exists()


@PROPS
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=5))
def test_read_jsonl_raises_only_dataerror_on_any_bytes(lines):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jsonl"
        p.write_bytes(b"\n".join(lines))
        try:
            read_jsonl(p, required=("id",))
        except DataError as e:
            assert str(e).startswith(f"{p}:")
        try:
            for line in read_jsonl_numbered(p, invalid_utf8="replace"):
                json.dumps(line.record, ensure_ascii=False).encode("utf-8")  # always writable
        except DataError as e:
            assert str(e).startswith(f"{p}:")


def test_missing_files_are_missing_artifacts(tmp_path):
    for reader in (read_items, read_frame_items, read_pool, read_jsonl):
        with pytest.raises(MissingArtifactError, match="nope.jsonl"):
            reader(tmp_path / "nope.jsonl")
    with pytest.raises(MissingArtifactError):
        import_items(str(tmp_path / "nope.jsonl"), str(tmp_path / "o.jsonl"))
    with pytest.raises(DataError, match="not a regular file"):
        read_jsonl(tmp_path)
