"""Importers and official scoring rules on records excerpted from the benchmarks' official releases
(tests/fixtures/benchmarks/SOURCES.md names repository, path and commit of each file)."""

from pathlib import Path

from rmsd.evaluation.benchmarks import BenchmarkScorer, MathVerifier, import_benchmark
from rmsd.evaluation.benchmarks.importers import import_stats
from rmsd.evaluation.benchmarks.settings import resolve_settings

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
DR = str(ROOT)


def by_id(items):
    return {it["id"]: it for it in items}


def test_mlvu_release_names_duplicates_and_odd_records():
    res = import_benchmark("MLVU_MCQ", DR)
    st = import_stats(res)
    # 9 files: 3 records each + plotQA 335, 387; needle 34; anomaly 66; topic 26, 163
    assert st["n_records"] == 33 and st["n_items"] == 25
    assert st["n_skipped"] == {"answer not among the options": 1, "empty question": 1}
    assert st["n_filtered"] == {"task type subPlot not in task_types": 3,
                                "task type summary not in task_types": 3}
    assert st["notes"] == {"answer matches several candidates (official: last)": 4}
    types = {it["meta"]["task_type"] for it in res.items}
    assert types == {"plotQA", "findNeedle", "ego", "count", "order", "anomaly_reco",
                     "topic_reasoning"}
    items = by_id(res.items)
    three = items["plotQA-00003"]  # release record 335: "Three" in [Six, Three, Three, Eight]
    assert three["options"] == ["Six", "Three", "Three", "Eight"]
    assert three["answer"] == "C" and three["meta"]["answer_letters"] == ["B", "C"]
    # the lmms-eval name "needle" is read as the release's "findNeedle"
    old = import_benchmark("MLVU_MCQ", DR, {"task_types": ["needle"]}, min_import_share=0.0)
    assert {it["meta"]["task_type"] for it in old.items} == {"findNeedle"}


def test_mathvista_testmini_query_and_duplicate_choices():
    res = import_benchmark("MathVista", DR)
    st = import_stats(res)
    assert (st["n_records"], st["n_items"], st["n_skipped"]) == (15, 15, {})
    items = by_id(res.items)
    d = items["781"]
    assert d["options"] == ["9", "12", "18", "18"] and d["answer"] == "C"
    assert d["meta"]["answer_letters"] == ["C", "D"] and d["meta"]["duplicate_rule"] == "any"
    assert d["question"].startswith("Hint: Please answer the question and provide the correct "
                                    "option letter, e.g., A, B, C, D, at the end.\nQuestion: In")
    assert items["740"]["answer"] == "A" and "answer_letters" not in items["740"]["meta"]
    assert (items["1"]["task_type"], items["1"]["answer"]) == ("numeric", 1.2)
    assert (items["2"]["answer"], items["2"]["meta"]["unit"]) == (1000, "g")
    assert items["1"]["video"] == f"{DR}/MathVista/images/1.jpg"


def test_videommmu_github_layout_all_option_counts():
    res = import_benchmark("Video-MMMU", DR)
    st = import_stats(res)
    assert (st["n_records"], st["n_items"], st["n_skipped"]) == (17, 24, {})
    assert st["notes"] == {"question_type missing, read from the options": 11}
    items = by_id(res.items)
    big = items["perception-validation_Basic_Medical_Science_10"]
    assert len(big["options"]) == 14 and big["answer"] == "B"
    acc = items["adaptation-validation_Accounting_13"]
    assert acc["meta"]["question_type"] == "multiple-choice" and acc["answer"] == "C"
    assert sum(len(it["options"] or []) == 11 for it in res.items) == 1
    opens = [it for it in res.items if it["meta"]["question_type"] == "open"]
    assert len(opens) == 4 and all(it["options"] is None for it in opens)  # 2 + 2 question_only


def test_videomme_official_template_layout():
    res = import_benchmark("VideoMME", DR, {"annotations": "Video-MME/output_test_template.json",
                                            "media": "Video-MME/data/{video_id}.mp4"})
    assert [it["id"] for it in res.items] == ["001-1", "001-2", "001-3", "002-1", "002-2",
                                              "002-3", "003-1", "003-2", "003-3"]
    assert [it["answer"] for it in res.items][:3] == ["C", "A", "D"]
    assert res.items[0]["video"] == f"{DR}/Video-MME/data/001.mp4"
    assert res.locs[1].endswith("output_test_template.json: record 0 question 1")


def test_mathverse_real_records():
    res = import_benchmark("MathVerse", DR)
    assert [it["id"] for it in res.items] == ["3421", "3422", "3423", "3424", "3425"]
    assert {it["answer"] for it in res.items} == {14}
    assert [it["meta"]["problem_version"] for it in res.items] == [
        "Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only"]


def test_official_vs_ours_on_duplicate_answers():
    """MLVU's official scorer takes the last matching letter; MathVista's compares option texts
    (either letter right); ours accepts any letter whose option text is the answer."""
    ml = by_id(import_benchmark("MLVU_MCQ", DR).items)["plotQA-00003"]
    mv = by_id(import_benchmark("MathVista", DR).items)["781"]
    sc = BenchmarkScorer("MLVU_MCQ", resolve_settings("MLVU_MCQ"))
    b, c = sc.score_batch(["(B) Three", "(C) Three"], [ml, ml])
    assert (b["score"], b["extra"]["score_any_letter"]) == (0.0, 1.0)
    assert (c["score"], c["extra"]["score_any_letter"]) == (1.0, 1.0)
    sv = BenchmarkScorer("MathVista", resolve_settings("MathVista"), math=MathVerifier())
    c, d, a = sv.score_batch(["C", "D", "A"], [mv, mv, mv])
    assert (c["score"], d["score"], a["score"]) == (1.0, 1.0, 0.0)
