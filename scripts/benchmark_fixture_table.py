"""Import every benchmark layout from the real-record fixtures and score one fixed set of answers
under the official rule and ours; print a markdown table (benchmark, layout, records, items,
skipped/filtered by reason, official vs ours where they differ).

    .venv/bin/python scripts/benchmark_fixture_table.py

The fixed answers: for an option item, "Answer: X" with X the *first* letter whose option text is
the gold option's text (so a duplicated candidate shows the official rules apart); for a
several-letter item, the letters joined by " and "; for a V-STaR "When" item, the gold span written
"{start:.1f}s to {end:.1f}s" (the official regex cannot read the glued "s"); for a "Where" item,
the gold boxes as JSON; for a free-form item, "The answer is {gold}".
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from rmsd.evaluation.benchmarks import BenchmarkScorer, MathVerifier, import_benchmark
from rmsd.evaluation.benchmarks.importers import import_stats
from rmsd.evaluation.benchmarks.settings import resolve_settings
from rmsd.tasks import OPTION_LETTERS

ROOT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "benchmarks"

LAYOUTS = [
    ("VideoMME", "HF parquet (constructed)", {}),
    ("VideoMME", "official template (real)", {"annotations": "Video-MME/output_test_template.json",
                                              "media": "Video-MME/data/{video_id}.mp4"}),
    ("LongVideoBench", "lvb_val.json (real)", {}),
    ("LongVideoBench", "HF option0..4 (constructed)",
     {"annotations": "LongVideoBench/constructed_lvb_val.json"}),
    ("MLVU_MCQ", "json/*.json (real)", {}),
    ("WorldSense", "flat (constructed)", {}),
    ("WorldSense", "nested release (constructed)",
     {"annotations": "WorldSense/release/worldsense_qa.json"}),
    ("Video-MMMU", "data/*_video.json (real)", {}),
    ("V-STaR", "V_STaR_test.json (constructed)", {}),
    ("V-STaR", "first release .jsonl (constructed)",
     {"annotations": "V-STaR/V_STaR_test_release.jsonl"}),
    ("MathVista", "testmini.json + query.json (real)", {}),
    ("MathVerse", "output template (real)", {}),
]


def fixed_answer(it: dict) -> str:
    meta = it.get("meta") or {}
    if meta.get("multi_letter"):
        return " and ".join(meta["answer_letters"])
    if it["task_type"] == "mcq":
        gold = it["options"][OPTION_LETTERS.index(it["answer"])]
        return f"Answer: {OPTION_LETTERS[it['options'].index(gold)]}"
    if it["task_type"] == "temporal":
        a, b = it["answer"]
        return f"{a:.1f}s to {b:.1f}s"
    if it["task_type"] == "spatial":
        return json.dumps({str(int(f["t"])): f["box"] for f in it["answer"]})
    return f"The answer is {it['answer']}"


def main() -> int:
    rows = ["| benchmark | layout | records | items | skipped (bad records) | filtered / notes "
            "| score: official rule | score: ours |", "|" + "---|" * 8]
    for name, layout, s in LAYOUTS:
        steps = {"steps": ["when", "where"]} if name == "V-STaR" else {}
        res = import_benchmark(name, ROOT, {**s, **steps}, min_import_share=0.0)
        st = import_stats(res)
        items = res.items
        scorer = BenchmarkScorer(name, resolve_settings(name, {**s, **steps}),
                                 math=MathVerifier() if name in ("MathVista", "MathVerse",
                                                                 "Video-MMMU") else None)
        outs = scorer.score_batch([fixed_answer(it) for it in items], items)
        official = sum(o["score"] for o in outs) / len(outs)
        ours_v = [(o.get("extra") or {}).get("score_any_letter",
                  (o.get("extra") or {}).get("score_robust", o["score"])) for o in outs]
        ours = sum(ours_v) / len(ours_v)
        n_swapped = sum(bool((o.get("extra") or {}).get("swapped")) for o in outs)
        fn = {**st["n_filtered"], **st["notes"]}
        rows.append(
            f"| {name} | {layout} | {st['n_records']} | {st['n_items']} | "
            f"{dict(st['n_skipped']) or '-'} | {fn or '-'} | {official:.4f} | "
            f"{ours:.4f}{' (same)' if abs(ours - official) < 1e-12 else ''}"
            f"{f', swapped {n_swapped}' if n_swapped else ''} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
