"""Benchmark importers (native formats -> items), settings and prompts. No model, no real data:
the fixtures under tests/fixtures/benchmarks are written in each benchmark's native format."""

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmsd.errors import ConfigError, DataError, MissingArtifactError
from rmsd.evaluation.benchmarks import (
    BENCHMARK_NAMES,
    build_prompt_text,
    check_evaluation_config,
    eval_params,
    import_benchmark,
    import_params,
    resolve_settings,
    write_benchmark_items,
)
from rmsd.evaluation.benchmarks.common import (
    letter_of,
    load_records,
    options_from_text,
    strip_option_prefixes,
)
from rmsd.evaluation.benchmarks.importers import import_worldsense, vstar_length_group
from rmsd.evaluation.benchmarks.settings import annotation_files

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
DR = str(ROOT)


def by_id(items):
    return {it["id"]: it for it in items}


# --------------------------------------------------------------------------------------------------
# One test per benchmark: exact items from the fixtures
# --------------------------------------------------------------------------------------------------


def test_videomme():
    res = import_benchmark("VideoMME", DR)
    assert [it["id"] for it in res.items] == ["001-1", "001-2", "002-1", "003-1"]
    assert res.items[0] == {
        "id": "001-1", "dataset": "VideoMME", "split": "test",
        "video": f"{DR}/Video-MME/data/fFjv93ACGo8.mp4", "duration_s": None, "task_type": "mcq",
        "question": "How many people appear in the video?",
        "options": ["One.", "Two.", "Three.", "Four."], "answer": "C",
        "meta": {"duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
                 "task_type": "Counting Problem", "video_id": "fFjv93ACGo8", "prompt_key": "mcq"},
    }
    assert [it["answer"] for it in res.items] == ["C", "A", "D", "B"]
    assert res.locs[2].endswith("test-00000-of-00001.parquet: row 2")


def test_longvideobench_padding_and_candidates():
    # constructed records in the Hugging Face layout (option0..4 padded with "N/A")
    items = by_id(import_benchmark("LongVideoBench", DR,
                                   {"annotations": "LongVideoBench/constructed_lvb_val.json"}).items)
    a = items["lvb-0001"]
    assert a["options"] == ["He sits.", "He runs.", "He laughs."]  # "N/A" padding dropped
    assert a["answer"] == "C" and a["duration_s"] == 12.5
    assert a["meta"] == {"duration_group": 15, "question_category": "S2E",
                         "topic_category": "NP-News-Programs", "prompt_key": "mcq"}
    assert items["lvb-0002"]["answer"] == "E" and len(items["lvb-0002"]["options"]) == 5
    c = items["lvb-0003"]
    assert c["options"][0] == "Under the mat" and c["answer"] == "A"
    assert "topic_category" not in c["meta"] and c["meta"]["duration_group"] == 3600
    assert c["video"] == f"{DR}/LongVideoBench/videos/v3.mp4"


def test_worldsense():
    items = import_benchmark("WorldSense", DR).items
    assert [it["id"] for it in items] == ["1", "2", "3"]
    assert items[0]["options"] == ["Piano.", "Guitar.", "Drums.", "Violin."]
    assert items[0]["meta"] == {"task_domain": "Music", "task_type": "Audio Recognition",
                                "audio_class": ["speech", "music"], "prompt_key": "mcq"}
    assert [it["answer"] for it in items] == ["B", "D", "A"]
    assert items[2]["meta"]["audio_class"] == []


def test_vstar_chains_prompts_and_boxes():
    res = import_benchmark("V-STaR", DR)
    assert [it["id"] for it in res.items] == [
        "vs001-0:when1", "vs001-0:where1", "vs001-0:where2", "vs001-0:when2",
        "vs002-0:when1", "vs002-0:where1", "vs002-0:where2", "vs002-0:when2"]
    items = by_id(res.items)
    w1 = items["vs001-0:when1"]
    assert w1["task_type"] == "temporal" and w1["answer"] == [3.2, 6.8] and w1["duration_s"] == 30.0
    assert w1["question"] == ("This video is 30 seconds long. Answer the question about the video: "
                              "When does the man in red kick the ball? \n Output the start and end "
                              "moment timestamps.")
    assert w1["meta"]["length"] == "Short" and w1["meta"]["chain"] == 1
    s1 = items["vs001-0:where1"]
    assert s1["answer"] == [{"t": 4, "box": [100.0, 100.0, 500.0, 500.0]},
                            {"t": 5, "box": [200.0, 200.0, 600.0, 600.0]},
                            {"t": 6, "box": [300.0, 300.0, 700.0, 700.0]}]
    assert "within the time range [4, 5, 6] provided" in s1["question"]
    assert 'Example output: {"4": [x1, y1, x2, y2],...}' in s1["question"]
    assert "You only need to output 3 bbox(es)" in items["vs001-0:where2"]["question"]
    w2 = items["vs001-0:when2"]["question"]
    assert "with a resolution of 1280x720 (width x height)" in w2
    assert "which are:[[128, 72, 640, 360], [256, 144, 768, 432], [384, 216, 896, 504]]." in w2
    v2 = items["vs002-0:where1"]
    assert "time range [100, 101, 102]" in v2["question"]
    assert v2["meta"]["length"] == "Long" and v2["duration_s"] == 200.0  # 5000 frames / 25 fps
    assert v2["answer"][1]["box"] == [500.0, 500.0, 1000.0, 1000.0]
    what = import_benchmark("V-STaR", DR, {"steps": ["what"], "chains": [1]}).items
    assert [it["id"] for it in what] == ["vs001-0:what", "vs002-0:what"]
    assert what[0]["task_type"] == "open" and what[0]["answer"] == "He is kicking the ball."
    assert what[0]["meta"]["question_raw"] == "What is the man in red doing?"
    assert [vstar_length_group(x) for x in (59.9, 60, 179.9, 180)] == ["Short", "Medium", "Medium", "Long"]


def test_every_benchmark_imports_and_writes(tmp_path):
    for name in BENCHMARK_NAMES:
        out = tmp_path / name / "items.jsonl"
        stats = write_benchmark_items(name, DR, None, out)
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(lines) == stats["n_items"] > 0
        assert all(it["dataset"] == name for it in lines)
        imp = json.loads((out.parent / "import.json").read_text())
        assert imp["benchmark"] == name and len(imp["files"][0]["sha256"]) == 64
        assert sorted(imp["task_types"]) == sorted({it["task_type"] for it in lines})


def test_limit_keeps_first_items():
    assert [it["id"] for it in import_benchmark("VideoMME", DR, {"limit": 2}).items] == ["001-1", "001-2"]


# --------------------------------------------------------------------------------------------------
# Missing data and bad annotations
# --------------------------------------------------------------------------------------------------


def test_missing_data_names_expected_file(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"Video-MME/videomme/test-00000-of-00001\.parquet"):
        import_benchmark("VideoMME", tmp_path)
    with pytest.raises(MissingArtifactError, match=r"MLVU/json/\*\.json: no benchmark annotation"):
        import_benchmark("MLVU_MCQ", tmp_path)
    with pytest.raises(MissingArtifactError, match=r"VideoMMMU/data/perception_video\.json"):
        import_benchmark("Video-MMMU", tmp_path)
    # the rule's input function returns the expected path (Snakemake names it as missing input)
    files = annotation_files({"data_root": str(tmp_path)}, "Video-MMMU")
    assert [Path(f).name for f in files] == ["perception_video.json", "comprehension_video.json",
                                             "adaptation_video.json"]


def _copy(tmp_path, rel):
    dst = tmp_path / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / rel, dst)
    return dst


def _edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


BAD_JSON_CASES = [
    # (benchmark, file, edit, error pattern)
    ("LongVideoBench", "LongVideoBench/lvb_val.json", lambda d: d[1].pop("question"),
     r"lvb_val\.json: record 1: missing field 'question'"),
    ("LongVideoBench", "LongVideoBench/lvb_val.json", lambda d: d[0].update(correct_choice="two"),
     r"record 0: field 'correct_choice' must be an integer"),
    ("LongVideoBench", "LongVideoBench/lvb_val.json", lambda d: d[0].update(correct_choice=7),
     r"record 0: answer index 7 is not among the 4 options"),
    ("WorldSense", "WorldSense/worldsense_qa.json", lambda d: d[2].update(index=1),
     r"worldsense_qa\.json: record 2: duplicate id '1' \(first at .*record 0\)"),
    ("WorldSense", "WorldSense/worldsense_qa.json", lambda d: d[0].update(answer="E"),
     r"record 0: answer 'E' is not among the 4 options"),
    ("WorldSense", "WorldSense/worldsense_qa.json", lambda d: d[1].update(candidates="A. x"),
     r"record 1: field 'candidates' must be a list of strings"),
    ("MLVU_MCQ", "MLVU/json/1_plotQA.json", lambda d: d[1].update(answer="A spoon"),
     r"1_plotQA\.json: record 1: answer 'A spoon' is not among the 4 options"),
    ("V-STaR", "V-STaR/V_STaR_test.json", lambda d: d[0].update(timestamps=[5, 3]),
     r"record 0: timestamps \[5, 3\] are not 0 <= start <= end"),
    ("V-STaR", "V-STaR/V_STaR_test.json", lambda d: d[1]["bboxes"][0].update(xmax=-5),
     r"record 1: bboxes\[0\]: box .* has xmin > xmax"),
    ("V-STaR", "V-STaR/V_STaR_test.json", lambda d: d[0].update(fps=0),
     r"record 0: field 'fps' must be > 0"),
    ("MathVista", "MathVista/testmini.json", lambda d: d["3"].update(answer="7"),
     r"testmini\.json: record '3': answer '7' is not among the 4 options"),
    ("MathVista", "MathVista/testmini.json", lambda d: d["2"].update(answer="fourteen"),
     r"record '2': integer answer expected"),
    ("MathVerse", "MathVerse/testmini.json", lambda d: d[0].update(question_type="essay"),
     r"record 0: question_type 'essay'"),
]


@pytest.mark.parametrize("name,rel,edit,pattern", BAD_JSON_CASES)
def test_bad_annotations_name_file_and_record(tmp_path, name, rel, edit, pattern):
    path = _copy(tmp_path, rel)
    _edit_json(path, edit)
    if name == "MathVista":
        _copy(tmp_path, "MathVista/query.json")
    with pytest.raises(DataError, match=pattern):
        import_benchmark(name, tmp_path, on_record_error="fail")
    # the default skips the record and counts it; one bad record of a few breaks the 90% floor
    # only on the small fixtures, so the floor is lowered here
    res = import_benchmark(name, tmp_path, min_import_share=0.0) if "duplicate" not in pattern \
        else None
    if res is not None:
        assert sum(res.skipped.values()) == 1


def test_bad_parquet_records(tmp_path):
    rel = "Video-MME/videomme/test-00000-of-00001.parquet"
    df = pd.read_parquet(ROOT / rel)
    df.loc[1, "answer"] = "E"
    (tmp_path / rel).parent.mkdir(parents=True)
    df.to_parquet(tmp_path / rel, index=False)
    with pytest.raises(DataError, match=r"test-00000-of-00001\.parquet: row 1: answer 'E' is not among"):
        import_benchmark("VideoMME", tmp_path, on_record_error="fail")
    df = pd.read_parquet(ROOT / rel)
    df.loc[3, "duration"] = "huge"
    df.to_parquet(tmp_path / rel, index=False)
    with pytest.raises(DataError, match=r"row 3: duration 'huge' not in"):
        import_benchmark("VideoMME", tmp_path, on_record_error="fail")
    # skipped by default: 3 of 4 rows import (75% < the 90% floor -> fails with the counts)
    with pytest.raises(DataError, match=r"only 3 of 4 records imported .*'duration … not in …': 1"):
        import_benchmark("VideoMME", tmp_path)
    res = import_benchmark("VideoMME", tmp_path, min_import_share=0.75)
    assert (res.n_records, len(res.items), dict(res.skipped)) == (4, 3, {"duration … not in …": 1})
    df = pd.read_parquet(ROOT / rel)
    df.loc[2, "question_id"] = "001-1"
    df.to_parquet(tmp_path / rel, index=False)
    with pytest.raises(DataError, match=r"row 2: duplicate id '001-1' \(first at .*row 0\)"):
        import_benchmark("VideoMME", tmp_path)
    vm = "VideoMMMU/data/perception_video.json"
    for track in ("perception", "comprehension", "adaptation"):
        _copy(tmp_path, f"VideoMMMU/data/{track}_video.json")
    _edit_json(tmp_path / vm, lambda d: d["Perception"]["0"].update(id="validation_Cooking_1"))
    with pytest.raises(DataError, match=r"perception_video\.json: Perception record '0': .*unknown subject 'Cooking'"):
        import_benchmark("Video-MMMU", tmp_path, on_record_error="fail")


def test_bad_jsonl_line_and_format(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{not json}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: not valid JSON"):
        load_records(p)
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object"):
        load_records(p)
    q = tmp_path / "x.csv"
    q.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported annotation format"):
        load_records(q)
    r = tmp_path / "x.json"
    r.write_text("[1]")
    with pytest.raises(DataError, match=r"x\.json: record 0: expected a JSON object"):
        load_records(r)


def test_media_template_missing_field(tmp_path):
    with pytest.raises(DataError, match=r"record 0: media template '\{nope\}.mp4' cannot be filled"):
        import_benchmark("WorldSense", DR, {"media": "{nope}.mp4"}, on_record_error="fail")
    with pytest.raises(DataError, match=r"only 0 of 3 records imported .*media template … cannot "
                                        r"be filled \(KeyError: …\)': 3.*record 0"):
        import_benchmark("WorldSense", DR, {"media": "{nope}.mp4"})


# --------------------------------------------------------------------------------------------------
# Helpers, settings, prompts
# --------------------------------------------------------------------------------------------------


def test_option_helpers():
    assert strip_option_prefixes(["(A) x", "(B) y"]) == ["x", "y"]
    assert strip_option_prefixes(["A: x", "B: y"]) == ["x", "y"]
    assert strip_option_prefixes(["A. x", "C. y"]) == ["A. x", "C. y"]  # letters out of order
    assert strip_option_prefixes(["Apple", "Banana"]) == ["Apple", "Banana"]
    assert options_from_text("Q?\nOptions:\nA. x\nB. y\nC. z") == ("Q?", ["x", "y", "z"])
    assert options_from_text("Q?\nA. x\nC. y") is None
    assert options_from_text("no options here") is None
    from rmsd.evaluation.benchmarks.common import Record
    rec = Record("f: record 0", {}, Path("f"))
    assert [letter_of(rec, a, ["x", "y", "z"]) for a in ("B", "(c)", "b.", 0, "z")] == ["B", "C", "B", "A", "C"]
    assert letter_of(rec, "A", ["B", "A"], prefer_text=True) == "B"
    with pytest.raises(DataError, match="matches several options"):
        letter_of(rec, "x", ["x", "x"])


def test_resolve_settings_and_params():
    s = resolve_settings("Video-MMMU", {"prompt": {"adaptation_mcq": "X {question}"}, "limit": 5})
    assert s["prompt"]["adaptation_mcq"] == "X {question}"
    assert s["prompt"]["perception_mcq"].endswith("Please ignore the Quiz question in last frame of the video.")
    assert s["limit"] == 5 and s["max_new_tokens"] == 1024
    with pytest.raises(ConfigError, match=r"benchmark_settings\.VideoMME: unknown key\(s\) \['steps'\]"):
        resolve_settings("VideoMME", {"steps": ["when"]})
    with pytest.raises(ConfigError, match="box_coords"):
        resolve_settings("V-STaR", {"box_coords": "cm"})
    with pytest.raises(ConfigError, match="unknown benchmark"):
        resolve_settings("MMMU", {})
    with pytest.raises(ConfigError, match="MCQ answers are never judged"):
        resolve_settings("VideoMME", {"judge_mode": "unparsed"})
    ev = {"benchmarks": ["synth-test", "VideoMME"], "max_new_tokens": 12, "batch_size": 32,
          "bootstrap": 100, "math_fallback": False, "judge": None,
          "benchmark_settings": {"VideoMME": {"max_new_tokens": 8}}, "data_root": "/d"}
    assert eval_params(ev, "synth-test") == {"max_new_tokens": 12, "batch_size": 32, "bootstrap": 100}
    p = eval_params(ev, "VideoMME")
    assert p["benchmark"] == "VideoMME" and p["settings"]["max_new_tokens"] == 8
    assert p["math_fallback"] is False and "data_root" not in p
    assert import_params(ev, "VideoMME")["data_root"] == "/d"


def test_check_evaluation_config():
    check_evaluation_config({"benchmarks": ["synth-test", "V-STaR"]})
    with pytest.raises(ConfigError, match="needs evaluation.judge"):
        check_evaluation_config({"benchmarks": ["V-STaR"],
                                 "benchmark_settings": {"V-STaR": {"steps": ["what", "when"]}}})
    with pytest.raises(ConfigError, match="needs evaluation.judge"):
        check_evaluation_config({"benchmarks": ["MathVerse"],
                                 "benchmark_settings": {"MathVerse": {"judge_mode": "always"}}})
    check_evaluation_config({"benchmarks": ["MathVerse"], "judge": {"factory": "a.b:c"},
                             "benchmark_settings": {"MathVerse": {"judge_mode": "always"}}})
    with pytest.raises(ConfigError, match="unknown benchmark 'VSTAR'"):
        check_evaluation_config({"benchmarks": [], "benchmark_settings": {"VSTAR": {}}})


def test_prompts_exact(tmp_path):
    vm = import_benchmark("VideoMME", DR).items[0]
    s = resolve_settings("VideoMME")
    assert build_prompt_text(vm, s, "answer_only") == (
        "These are the frames of a video. Select the best answer to the following multiple-choice "
        "question based on the video. Respond with only the letter (A, B, C, or D) of the correct "
        "option.\nQuestion: How many people appear in the video?\nA. One.\nB. Two.\nC. Three.\n"
        "D. Four.\nAnswer: ")
    tagged = build_prompt_text(vm, {**s, "answer_tags": True}, "think_answer")
    assert tagged.endswith("Answer:\nThink in <think></think>, then put it in <answer></answer>.")
    ml = import_benchmark("MLVU_MCQ", DR).items[0]
    assert build_prompt_text(ml, resolve_settings("MLVU_MCQ"), "answer_only") == (
        "Question: What color is the main male character in the video?\nOptions:\n(A) Yellow\n"
        "(B) Red\n(C) Green\n(D) Blue\nOnly give the best option.")
    lvb = by_id(import_benchmark("LongVideoBench", DR, {
        "annotations": "LongVideoBench/constructed_lvb_val.json"}).items)["lvb-0001"]
    assert build_prompt_text(lvb, resolve_settings("LongVideoBench"), "answer_only") == (
        "What happens after the man waves?\nA. He sits.\nB. He runs.\nC. He laughs.\n"
        "Answer with the option's letter from the given choices directly.\n")
    vmm = by_id(import_benchmark("Video-MMMU", DR, {"tracks": ["Adaptation"]}, tmp_path).items)
    text = build_prompt_text(vmm["adaptation-dev_Biology_3"], resolve_settings("Video-MMMU"),
                             "answer_only")
    assert text.startswith("You should watch and learn the video content. Then apply what you "
                           "learned to answer the following multi-choice question. The image for "
                           "this question is at the end of the video.\n<image 1> What kind of "
                           "sugar is this, aldose or ketose?\nA. aldose\nB. ketose\n")
    assert text.endswith("\nJ. sucrose")
    with pytest.raises(ConfigError, match="cannot be filled"):
        build_prompt_text(vm, {**s, "prompt": "{nope}"}, "answer_only")


# --------------------------------------------------------------------------------------------------
# Property: importers never fail with anything but DataError on arbitrary records
# --------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["A", "B", "A. x", "N/A", "Music"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
WS_KEYS = ["index", "video_path", "duration", "task_domain", "task_type", "audio_class",
           "question", "candidates", "answer"]
ws_record = st.fixed_dictionaries({}, optional={k: json_values for k in WS_KEYS})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ws_record, min_size=1, max_size=3))
def test_importer_never_crashes_on_arbitrary_records(records):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "WorldSense" / "worldsense_qa.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(records))
        s = resolve_settings("WorldSense")
        try:
            res = import_worldsense(d, s)
        except DataError:
            return
        for it in res.items:
            assert it["answer"] in "ABCDEFGHIJ"[: len(it["options"])]


option_text = st.lists(st.sampled_from(["A. x", "(B) y", "C: z", "D) w", "Options:", "", "Q?",
                                        "(A) 1", "B. 2", "E.", " A.  "]) | st.text(max_size=12),
                       max_size=8).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(option_text, st.lists(st.text(max_size=10), max_size=6))
def test_option_helpers_never_raise(text, options):
    parsed = options_from_text(text)
    assert parsed is None or (isinstance(parsed[0], str) and len(parsed[1]) >= 2)
    assert len(strip_option_prefixes(options)) == len(options)
    from rmsd.evaluation.benchmarks.common import Record
    rec = Record("f: record 0", {}, Path("f"))
    for answer in [text, 0, 3, None, True]:
        try:
            letter = letter_of(rec, answer, options or ["a", "b"])
        except DataError:
            continue
        assert letter in "ABCDEFGHIJ"
