"""Importers and official scoring rules on records excerpted from the benchmarks' official releases
(tests/fixtures/benchmarks/SOURCES.md names repository, path and commit of each file)."""

import re
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


def test_longvideobench_official_val_records():
    res = import_benchmark("LongVideoBench", DR)
    items = by_id(res.items)
    assert list(items) == ["86CxyhFV9MI_0", "9PD3ciudpIE_0", "5qMcDQd17Y4_0", "QJ6sjg7SXOQ_0",
                           "mH9LdC7IFH8_0", "LB1qPExHQY8_0"]
    assert [it["answer"] for it in res.items] == ["B", "A", "D", "E", "B", "A"]
    assert [len(it["options"]) for it in res.items] == [4, 4, 4, 5, 5, 5]
    a = items["86CxyhFV9MI_0"]
    assert a["duration_s"] == 190.16 and a["video"] == f"{DR}/LongVideoBench/videos/86CxyhFV9MI.mp4"
    assert a["meta"] == {"duration_group": 600, "question_category": "TOS",
                         "topic_category": "NP-News-Programs", "prompt_key": "mcq"}


def test_worldsense_nested_release_layout():
    """Constructed records in the release layout (worldsense_qa.json is not reachable here)."""
    s = {"annotations": "WorldSense/release/worldsense_qa.json"}
    res = import_benchmark("WorldSense", DR, s)
    assert [it["id"] for it in res.items] == ["ws001-task0", "ws001-task1", "ws002-task0"]
    first = res.items[0]
    assert first["duration_s"] == 45.0 and first["video"] == f"{DR}/WorldSense/videos/ws001.mp4"
    assert first["meta"]["domain"] == "Performance" and first["meta"]["duration_bucket"] == "<1min"
    assert res.locs[0].endswith("worldsense_qa.json: record 'ws001' task0")


def test_vstar_first_release_layout_equals_current():
    cur = import_benchmark("V-STaR", DR).items
    first = import_benchmark("V-STaR", DR, {"annotations": "V-STaR/V_STaR_test_release.jsonl"}).items
    assert first == cur and len(cur) == 8


def test_vstar_when_official_and_robust():
    from rmsd.evaluation.benchmarks.scoring import _score_vstar_when as score
    gold = [3.0, 7.0]
    a = score("2.0s to 5.5s", gold)  # the official regex reads [2, 5]
    assert a["parsed"] == [2.0, 5.0] and a["score"] == 0.4
    assert a["extra"]["robust_span"] == [2.0, 5.5] and a["extra"]["score_robust"] == 0.5
    b = score("From 6 to 2 seconds.", gold)  # swapped: official 0, ours flagged and ordered
    assert (b["score"], b["extra"]["swapped"], b["extra"]["score_robust"]) == (0.0, True, 0.6)
    c = score("00:03 - 00:07", gold)  # mm:ss: 4 numbers for the official regex
    assert (c["score"], c["valid"], c["extra"]["score_robust"]) == (0.0, False, 1.0)
    d = score("It happens between 4 and 9 seconds.", gold)
    assert d["score"] == d["extra"]["score_robust"] == 0.5


def test_mathverse_answer_forms(tmp_path):
    """The release's text-only records carry the odd answer forms (multi-letter ``C\\nD``, option
    texts ``False`` / ``090^\\circ T``); an image path is added so that they import as items."""
    import json

    recs = json.loads((ROOT / "MathVerse/testmini_text_only.json").read_text(encoding="utf-8"))
    import pytest

    from rmsd.errors import DataError

    with pytest.raises(DataError, match="MathVerse: no items imported"):  # all text-only
        import_benchmark("MathVerse", DR, {"annotations": "MathVerse/testmini_text_only.json"})
    for r in recs:
        r["image"] = f"images/{r['sample_index']}.png"
    # a vision-only variant of 440 and one whose answer is an option text / a sixth letter
    vis = dict(recs[4], sample_index="440v", question="", query_wo="Choose 2 answers.")
    txt = dict(recs[3], sample_index="429v", question="", query_wo="True or false?")
    six = dict(recs[0], sample_index="1v", question="", query_wo="Which?", answer="F")
    (tmp_path / "MathVerse").mkdir()
    (tmp_path / "MathVerse/testmini.json").write_text(json.dumps(recs + [vis, txt, six]))
    res = import_benchmark("MathVerse", tmp_path)
    items = by_id(res.items)
    assert [items[k]["answer"] for k in ("1", "2", "339", "429", "440")] == ["D", "C", "A", "B",
                                                                             "C, D"]
    assert items["440"]["meta"]["answer_letters"] == ["C", "D"]
    assert items["440v"]["meta"]["answer_letters"] == ["C", "D"] and len(items["440v"]["options"]) == 5
    assert (items["429v"]["task_type"], items["429v"]["answer"]) == ("open", "False")
    assert (items["1v"]["answer"], len(items["1v"]["options"])) == ("F", 6)
    assert import_stats(res)["notes"] == {
        "multi-letter answer (all letters required)": 2,
        "option-text answer, options only in the figure (open)": 1,
        "placeholder options extended to the answer letter": 1}
    sc = BenchmarkScorer("MathVerse", resolve_settings("MathVerse"), math=MathVerifier())
    outs = sc.score_batch(["The answer is C and D.", "C", "Answer: Ｃ, Ｄ", "C, D, A"],
                          [items["440"]] * 4)
    assert [o["score"] for o in outs] == [1.0, 0.0, 1.0, 0.0]
    assert {o["method"] for o in outs} == {"multi_letter"}


def test_free_form_numbers_with_units():
    m = MathVerifier()
    assert m.check(r"Area $=113.1 \mathrm{~cm}^{2}$", 113.1, 1.0).correct
    assert m.check(r"\boxed{113.1 \text{ cm}^2}", 113.1, 1.0).correct
    assert not m.check(r"Area $=113.2 \mathrm{~cm}^{2}$", 113.1, 1.0).correct


def test_pass_k_per_benchmark():
    from rmsd.evaluation.benchmarks import eval_params

    ev = {"pass_k_samples": 16, "benchmark_settings": {"VideoMME": {"pass_k_samples": 0}}}
    assert eval_params(ev, "VideoMME")["pass_k_samples"] == 0
    assert eval_params(ev, "MathVista")["pass_k_samples"] == 16
    ev = {"pass_k_samples": 0, "benchmark_settings": {"V-STaR": {"pass_k_samples": 8}}}
    assert eval_params(ev, "V-STaR")["pass_k_samples"] == 8


def test_same_parsers_on_evaluation_and_pool_scoring_paths():
    """Pool scoring (rmsd.scoring.formats.check_task) and benchmark evaluation read answers with
    the same functions: full-width letters, 'between 4 and 9', mm:ss spans."""
    from rmsd.scoring.formats import check_task

    mcq = {"id": "x", "task_type": "mcq", "options": ["a", "b", "c", "d"], "answer": "B"}
    assert check_task("（Ｂ）", mcq).parsed == "B"
    sc = BenchmarkScorer("VideoMME", resolve_settings("VideoMME"))
    assert sc.score_batch(["（Ｂ）"], [{**mcq, "meta": {}}])[0]["parsed"] == "B"
    tmp = {"id": "t", "task_type": "temporal", "answer": [4.0, 9.0], "duration_s": 60.0}
    from rmsd.evaluation.benchmarks.scoring import _score_vstar_when as when
    for text, span in (("between 4 and 9", [4.0, 9.0]), ("00:04 - 00:09", [4.0, 9.0])):
        assert check_task(text, tmp).parsed == span
        assert when(text, [4.0, 9.0])["extra"]["robust_span"] == span


def _samples(name, items, texts, **kw):
    sc = BenchmarkScorer(name, resolve_settings(name), **kw)
    outs = sc.score_batch(texts, items)
    return [{"item_id": it["id"], "video": it["video"], "score": o["score"], "valid": o["valid"],
             "extra": o.get("extra"),
             "categories": sc.categories(it)} for it, o in zip(items, outs)]


def test_mlvu_m_avg_official_and_ours_on_real_records():
    """Fixed answers: the first letter whose candidate is the answer text. On the 4 duplicated
    answers the official rule (last match) says wrong, ours (any match) right."""
    from rmsd.evaluation.benchmarks import summarise_benchmark
    from rmsd.tasks import OPTION_LETTERS

    items = import_benchmark("MLVU_MCQ", DR).items
    texts = []
    for it in items:
        gold = it["options"][OPTION_LETTERS.index(it["answer"])]
        texts.append(f"({OPTION_LETTERS[it['options'].index(gold)]})")
    m = summarise_benchmark("MLVU_MCQ", _samples("MLVU_MCQ", items, texts), n_boot=10)
    assert m["n_task_types"] == 7
    # per type (items, duplicated answers): plotQA (5, 2), findNeedle (3, 0), ego (3, 0),
    # count (3, 0), order (3, 0), anomaly_reco (4, 1), topic_reasoning (4, 1)
    assert m["micro_avg"] == 21 / 25
    assert abs(m["m_avg"] - (3 / 5 + 1 + 1 + 1 + 1 + 3 / 4 + 3 / 4) / 7) < 1e-12
    assert m["averages"]["M-Avg, any matching letter (ours)"] == 1.0
    assert m["averages"]["micro, any matching letter (ours)"] == 1.0


def test_videomme_denominators_stated():
    from rmsd.evaluation.benchmarks import summarise_benchmark

    items = import_benchmark("VideoMME", DR, {"annotations": "Video-MME/output_test_template.json",
                                              "media": "Video-MME/data/{video_id}.mp4"}).items
    texts = ["C", "A", "I am not sure", "B"] + ["no idea"] * 5
    m = summarise_benchmark("VideoMME", _samples("VideoMME", items, texts), n_boot=10)
    assert m["denominators"] == {"all questions": {"n": 9, "accuracy": 2 / 9},
                                 "answered": {"n": 3, "accuracy": 2 / 3}}


def test_import_counts_for_metrics_json(tmp_path):
    from rmsd.evaluation.benchmarks import write_benchmark_items
    from rmsd.evaluation.benchmarks.importers import import_counts

    out = tmp_path / "MLVU_MCQ" / "items.jsonl"
    stats = write_benchmark_items("MLVU_MCQ", DR, None, out)
    assert stats["n_items"] == 25
    assert import_counts(out) == {
        "n_records": 33,
        "n_skipped": {"answer not among the options": 1, "empty question": 1},
        "n_filtered": {"task type subPlot not in task_types": 3,
                       "task type summary not in task_types": 3}}
    assert import_counts(tmp_path / "nowhere" / "items.jsonl") == {}


def test_mathvista_annot_file_is_refused_with_counts():
    import pytest

    from rmsd.errors import DataError

    with pytest.raises(DataError, match=r"MathVista: only 0 of 3 records imported \(0\.0% < "
                                        r"evaluation\.min_import_share 90%\); skipped by reason: "
                                        r"\{\"missing field 'question_type'\": 3\}"):
        import_benchmark("MathVista", DR, {"annotations": "MathVista/annot_testmini.json"})


def test_mlvu_lmms_eval_layout(tmp_path):
    """lmms-eval's MLVU_dev rows (options inside the question, letter answers, ``needle``): built
    here from the real plotQA/needle records of the release fixture."""
    import json

    rows = []
    for f, task in (("1_plotQA.json", "plotQA"), ("2_needle.json", "needle")):
        rec = json.loads((ROOT / "MLVU/json" / f).read_text(encoding="utf-8"))[0]
        opts = "\n".join(f"({L}) {c}" for L, c in zip("ABCD", rec["candidates"]))
        rows.append({"video_name": rec["video"], "duration": rec["duration"], "task_type": task,
                     "question": f"{rec['question']}\n{opts}",
                     "answer": "ABCD"[rec["candidates"].index(rec["answer"])]})
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = import_benchmark("MLVU_MCQ", tmp_path, {"annotations": "dev.jsonl",
                                                  "media": "video/{video_name}"})
    a, b = res.items
    assert a["question"] == "What color is the main male character in the video?"
    assert a["options"] == ["Yellow", "Red", "Green", "Blue"] and a["answer"] == "A"
    assert b["meta"]["task_type"] == "findNeedle" and b["id"] == "findNeedle-00000"


def test_mathverse_missing_image_is_skipped_not_filtered(tmp_path):
    """Only the release's text-only problems are filtered; any other record without an image
    (null, "", {}, key missing) is a bad record that counts against min_import_share."""
    import json
    import shutil

    import pytest

    from rmsd.errors import DataError

    shutil.copytree(ROOT / "MathVerse", tmp_path / "MathVerse")
    p = tmp_path / "MathVerse/testmini.json"
    recs = json.loads(p.read_text(encoding="utf-8"))
    recs[0]["image"], recs[1]["image"], recs[2]["image"] = None, "", {}
    del recs[3]["image"]
    p.write_text(json.dumps(recs))
    st = import_stats(import_benchmark("MathVerse", tmp_path, min_import_share=0.0))
    assert (st["n_records"], st["n_items"]) == (5, 1)
    assert st["n_skipped"] == {"missing image": 4} and st["n_filtered"] == {}
    with pytest.raises(DataError, match=r"only 1 of 5 records imported"):
        import_benchmark("MathVerse", tmp_path, min_import_share=0.9)
    # the text-only release file stays filtered, and "no items" names the counts
    with pytest.raises(DataError, match=re.escape(
            "(5 records; skipped by reason: {}; filtered by reason: "
            "{'no image (text-only problem)': 5}; limit None)")):
        import_benchmark("MathVerse", tmp_path,
                         {"annotations": "MathVerse/testmini_text_only.json"})


def test_mlvu_unknown_task_type_is_skipped_not_filtered(tmp_path):
    """A task type that is not one of the release's names (misspelt, renamed) is a skipped bad
    record; the release's open-ended types stay filtered by the setting."""
    import json
    import shutil

    import pytest

    from rmsd.errors import DataError

    shutil.copytree(ROOT / "MLVU", tmp_path / "MLVU")
    p = tmp_path / "MLVU/json/1_plotQA.json"
    recs = json.loads(p.read_text(encoding="utf-8"))
    for r in recs:
        r["question_type"] = "plotqa"
    p.write_text(json.dumps(recs))
    st = import_stats(import_benchmark("MLVU_MCQ", tmp_path, min_import_share=0.0))
    assert (st["n_records"], st["n_items"], len(recs)) == (33, 20, 5)
    assert st["n_skipped"] == {"unknown task type": 5, "answer not among the options": 1,
                               "empty question": 1}
    assert st["n_filtered"] == {"task type subPlot not in task_types": 3,
                                "task type summary not in task_types": 3}
    with pytest.raises(DataError, match=r"MLVU_MCQ: only 20 of 27 records imported"):
        import_benchmark("MLVU_MCQ", tmp_path, min_import_share=0.9)
