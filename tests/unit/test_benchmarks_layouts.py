"""Every layout in docs/howto.md's benchmark table imports: the test builds the documented folder
layout from the fixtures and imports it with the documented settings."""

import json
import re
import shutil
from pathlib import Path

import pytest

from rmsd.evaluation.benchmarks import import_benchmark

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures" / "benchmarks"

# documented annotation path -> fixture file (same path unless listed), and the expected items
FIXTURE_OF = {
    "WorldSense/worldsense_qa.json": "WorldSense/release/worldsense_qa.json",
}
EXPECTED_ITEMS = {
    ("VideoMME", "Video-MME/videomme/test-00000-of-00001.parquet"): 4,
    ("VideoMME", "Video-MME/output_test_template.json"): 9,
    ("LongVideoBench", "LongVideoBench/lvb_val.json"): 6,
    ("MLVU_MCQ", "MLVU/json/{1_plotQA,2_needle,3_ego,4_count,5_order,6_anomaly_reco,"
                 "7_topic_reasoning,8_sub_scene,9_summary}.json"): 25,
    ("WorldSense", "WorldSense/worldsense_qa.json"): 3,
    ("Video-MMMU", "VideoMMMU/data/{perception,comprehension,adaptation}_video.json"): 24,
    ("V-STaR", "V-STaR/V_STaR_test.json"): 8,
    ("V-STaR", "V-STaR/V_STaR_test_release.jsonl"): 8,
    ("MathVista", "MathVista/{testmini,query}.json"): 15,
    ("MathVerse", "MathVerse/testmini.json"): 5,
}
HF_VMMMU = ("Video-MMMU", "VideoMMMU/{Perception,Comprehension,Adaptation}/test-00000-of-00001.parquet")
EXPECTED_ITEMS[HF_VMMMU] = 24


def _vmmmu_parquet(rel: str, dst: Path) -> None:
    """The Hugging Face layout (one parquet per track; ``question_type`` filled; the Adaptation
    image as a parquet image struct) built from the real GitHub records of the same track."""
    import io

    import pandas as pd
    from PIL import Image

    track = Path(rel).parts[-2]
    (_, recs), = json.loads((FIX / f"VideoMMMU/data/{track.lower()}_video.json").read_text()).items()
    rows = []
    for r in recs.values():
        row = {k: r[k] for k in ("id", "question", "options", "answer")}
        row["question_type"] = r.get("question_type") or ("multiple-choice" if r["options"] else "open")
        if track == "Adaptation":
            buf = io.BytesIO()
            Image.new("RGB", (4, 4), (0, 0, 0)).save(buf, format="PNG")
            row["image"] = {"bytes": buf.getvalue(), "path": f"{r['id']}.png"}
        rows.append(row)
    pd.DataFrame(rows).to_parquet(dst, index=False)


def _rows() -> list[tuple[str, str, str, dict]]:
    text = (REPO / "docs" / "howto.md").read_text(encoding="utf-8")
    block = text.split("<!-- layouts -->")[1].split("<!-- /layouts -->")[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name, annotations, media, settings = cells[0], cells[2], cells[3], cells[4]
        rows.append((name, annotations.strip("`"), media.split("`")[1], json.loads(settings.strip("`"))))
    return rows


def _expand(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [x for alt in m.group(1).split(",")
            for x in _expand(pattern[:m.start()] + alt + pattern[m.end():])]


def test_table_lists_every_benchmark():
    names = {r[0] for r in _rows()}
    assert names == {"VideoMME", "LongVideoBench", "MLVU_MCQ", "WorldSense", "Video-MMMU",
                     "V-STaR", "MathVista", "MathVerse"}
    assert {(r[0], r[1]) for r in _rows()} == set(EXPECTED_ITEMS)


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r[0]}:{r[1]}")
def test_documented_layout_imports(tmp_path, row):
    name, annotations, media, settings = row
    for rel in _expand(annotations):
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (name, annotations) == HF_VMMMU:
            _vmmmu_parquet(rel, dst)
        else:
            shutil.copy(FIX / FIXTURE_OF.get(rel, rel), dst)
    res = import_benchmark(name, tmp_path, {**settings, "media": media}, out_dir=tmp_path / "out")
    assert len(res.items) == EXPECTED_ITEMS[(name, annotations)]
    assert all(it["video"].startswith(str(tmp_path)) for it in res.items)
    if (name, annotations) == HF_VMMMU:  # the Adaptation image bytes are written out
        adapt = [it for it in res.items if it["meta"]["track"] == "adaptation"]
        assert len(adapt) == 7 and all(Path(it["meta"]["image"]).is_file() for it in adapt)
