"""Own items files: relative video paths are relative to the items file that names them."""

from __future__ import annotations

import os

import pytest

from rmsd.data import import_items
from rmsd.data.external import resolve_video
from rmsd.errors import DataError
from rmsd.io import read_jsonl, write_jsonl


def items(video: str) -> list[dict]:
    return [{"id": "q1", "video": video, "task_type": "mcq", "question": "Which colour?",
             "options": ["red", "green"], "answer": "B"}]


def test_relative_video_resolves_against_the_items_file(tmp_path, monkeypatch):
    data = tmp_path / "mydata"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / "clip.mp4").write_bytes(b"\x00")
    write_jsonl(data / "distill.jsonl", items("videos/clip.mp4"))
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory has no videos/ folder
    out = elsewhere / "items.jsonl"
    assert import_items(os.path.relpath(data / "distill.jsonl"), out) == 1
    assert read_jsonl(out)[0]["video"] == str(data / "videos" / "clip.mp4")
    assert resolve_video("/x/y/items.jsonl", "/abs/v.mp4").as_posix() == "/abs/v.mp4"


def test_missing_relative_video_names_where_it_looked(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", items("videos/gone.mp4"))
    with pytest.raises(DataError, match=r"d.jsonl:1: video file videos/gone.mp4 \(= .*/videos/gone.mp4\) "
                                         r"does not exist \(relative paths are relative to the items file\)"):
        import_items(tmp_path / "d.jsonl", tmp_path / "o.jsonl")


def test_empty_items_file_is_an_error(tmp_path):
    from rmsd.data.external import import_items
    from rmsd.errors import DataError

    src = tmp_path / "mine.jsonl"
    src.write_text("\n\n")
    with pytest.raises(DataError, match=r"mine.jsonl: no items"):
        import_items(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
