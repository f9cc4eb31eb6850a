"""Sharded frame extraction: scatter/gather outputs read through FrameStore, resume after a kill,
per-dataset frame settings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_frames import frame_levels, items_file, level, make_video

from rmsd.errors import ConfigError, DataError, MissingArtifactError
from rmsd.frames import extract_frames, load_frames, open_frames
from rmsd.frames.shards import extract_shard, frame_settings, gather_shards, shard_bounds

SETTINGS = dict(num_frames=4, size_px=16, policy="uniform", decoders=["decord", "pyav"],
                on_error="skip")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six real H.264 clips of 8..13 frames (frame i has grey level level(i)) and a corrupt file."""
    d = tmp_path_factory.mktemp("clips")
    paths = [make_video(d / f"c{n}.mp4", n=n) for n in range(8, 14)]
    bad = d / "bad.mp4"
    bad.write_bytes(np.random.default_rng(1).bytes(3000))
    return paths, bad


def items_of(tmp_path, clips):
    paths, bad = clips
    pairs = [(f"i{k}", p) for k, p in enumerate(paths)]
    pairs.insert(3, ("broken", bad))
    return items_file(tmp_path, pairs), paths


def test_shard_bounds_cover_every_item_once():
    assert [shard_bounds(7, i, 3) for i in range(3)] == [(0, 2), (2, 4), (4, 7)]
    with pytest.raises(ConfigError, match="shard 3 outside 0..2"):
        shard_bounds(7, 3, 3)


def test_sharded_extraction_matches_single_array(clips, tmp_path):
    items, paths = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    s0 = extract_shard(items, out, 0, 2, **SETTINGS, threads=2)
    s1 = extract_shard(items, out, 1, 2, **SETTINGS, threads=2)
    assert (s0["n_items"], s0["n_extracted"], s0["n_skipped"]) == (3, 3, 0)
    assert (s1["n_items"], s1["n_extracted"], s1["n_skipped"]) == (4, 3, 1)
    assert not (out / "shards" / "0.partial").exists()  # work dir removed when the shard is done
    stats = gather_shards(out, 2)
    assert stats["n_items"] == 7 and stats["n_extracted"] == 6 and stats["n_skipped"] == 1
    assert stats["bytes"] == 7 * 4 * 16 * 16 * 3  # the skipped item's row stays (zero) in shard 1
    assert json.loads((out / "skipped.json").read_text())[0]["item_id"] == "broken"
    index = json.loads((out / "index.json").read_text())
    assert [s["shape"] for s in index["shards"]] == [[3, 4, 16, 16, 3], [4, 4, 16, 16, 3]]
    assert index["settings"] == SETTINGS

    store = open_frames(out)
    assert len(store) == 6 and store.ids() == [f"i{k}" for k in range(6)] and "broken" not in store
    assert [(store.record(f"i{k}")["shard"], store.record(f"i{k}")["row"]) for k in range(6)] == [
        (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    for k, n in enumerate(range(8, 14)):
        rec = store.record(f"i{k}")
        assert rec["num_frames"] == 4 and rec["stored_size_px"] == [16, 16]
        assert rec["policy"] == "uniform" and rec["num_video_frames"] == n
        f = store.frames(f"i{k}")
        assert f.shape == (4, 16, 16, 3) and not f.flags.writeable and isinstance(f, np.memmap)
        assert all(abs(g - level(i)) <= 3 for g, i in zip(frame_levels(f), rec["indices"]))

    single = tmp_path / "single"  # the one-job path gives the same frames
    extract_frames(items, single, on_error="skip", num_frames=4, size_px=16)
    manifest, array = load_frames(single)
    for k in range(6):
        np.testing.assert_array_equal(array[manifest[f"i{k}"]["row"]], store.frames(f"i{k}"))
    with pytest.raises(KeyError, match="'broken' has no frames"):
        store.frames("broken")
    with pytest.raises(DataError, match="sharded frame extraction has no single array"):
        store.single_array()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import rmsd.frames.shards as sh
    calls = [0]
    real = sh._decode_one
    def dying(*a, **k):
        calls[0] += 1
        if calls[0] == 5:  # four videos done: once the main thread committed them, kill -9
            log = Path(sys.argv[2]) / "shards" / "0.partial" / "done.jsonl"
            t = time.time()
            while log.read_text().count("\\n") < 4 and time.time() - t < 30:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    sh._decode_one = dying
    sh.extract_shard(sys.argv[1], sys.argv[2], 0, 1, num_frames=4, size_px=16, policy="uniform",
                     decoders=["decord", "pyav"], on_error="skip", threads=1, commit_every=1)
""")


def test_shard_resumes_after_kill(clips, tmp_path, monkeypatch):
    items, paths = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(items), str(out)],
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    work = out / "shards" / "0.partial"
    log = [json.loads(x) for x in (work / "done.jsonl").read_text().splitlines()]
    kept = sorted(e["pos"] for e in log)  # completion order: a failing file finishes first
    assert kept == [0, 1, 2, 3], kept  # i0 i1 i2 and broken (its skip is recorded too)
    assert not (out / "shards" / "0.npy").exists()
    order = [str(p) for p in paths[:3]] + [str(clips[1])] + [str(p) for p in paths[3:]]

    import rmsd.frames.shards as sh

    decoded = []
    real = sh._decode_one
    monkeypatch.setattr(sh, "_decode_one", lambda v, *a: decoded.append(v) or real(v, *a))
    stats = extract_shard(items, out, 0, 1, **SETTINGS, threads=1)
    assert decoded == order[len(kept):]  # only the unfinished videos
    assert stats["n_resumed"] == len(kept) and stats["n_extracted"] == 6 and stats["n_skipped"] == 1
    gather_shards(out, 1)
    clean = tmp_path / "clean"
    extract_shard(items, clean, 0, 1, **SETTINGS)
    gather_shards(clean, 1)
    a, b = open_frames(out), open_frames(clean)
    assert a.ids() == b.ids()
    for iid in a.ids():
        np.testing.assert_array_equal(a.frames(iid), b.frames(iid))
        assert a.record(iid) == b.record(iid)


def test_resume_drops_torn_line_and_restarts_on_new_settings(clips, tmp_path, monkeypatch):
    items, paths = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(items), str(out)],
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    log_path = out / "shards" / "0.partial" / "done.jsonl"
    lines = log_path.read_bytes().split(b"\n")
    log_path.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:25])  # torn third entry
    import rmsd.frames.shards as sh

    decoded = []
    real = sh._decode_one
    monkeypatch.setattr(sh, "_decode_one", lambda v, *a: decoded.append(v) or real(v, *a))
    stats = extract_shard(items, out, 0, 1, **SETTINGS)
    assert stats["n_resumed"] == 2 and len(decoded) == 5  # i2, broken, i3, i4, i5 redone
    decoded.clear()
    stats = extract_shard(items, out, 0, 1, **{**SETTINGS, "num_frames": 6})
    assert stats["n_resumed"] == 0 and len(decoded) == 7  # other settings: nothing reused
    gather_shards(out, 1)
    assert open_frames(out).record("i0")["num_frames"] == 6


def test_gather_refuses_unfinished_or_mixed_shards(clips, tmp_path):
    items, _ = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    extract_shard(items, out, 0, 2, **SETTINGS)
    with pytest.raises(MissingArtifactError, match=r"1\.json: shard 1 of 2 is not finished"):
        gather_shards(out, 2)
    extract_shard(items, out, 1, 2, **{**SETTINGS, "size_px": 8})
    with pytest.raises(DataError, match=r"1\.json: shard settings .* differ from shard 0"):
        gather_shards(out, 2)


def test_frame_settings_per_dataset():
    cfg = {**SETTINGS, "num_frames": 16, "size_px": 448,
           "datasets": {"VideoMME": {"num_frames": 64}, "MathVista": {"size_px": 224}}}
    assert frame_settings(cfg, "distill") == {**SETTINGS, "num_frames": 16, "size_px": 448}
    assert frame_settings(cfg, "VideoMME") == {**SETTINGS, "num_frames": 64, "size_px": 448}
    assert frame_settings(cfg, "MathVista") == {**SETTINGS, "num_frames": 16, "size_px": 224}
    with pytest.raises(ConfigError, match=r"frames.datasets.x: unknown frame setting\(s\) \['fps'\]"):
        frame_settings({**cfg, "datasets": {"x": {"fps": 2}}}, "x")


def _killed_run(clips, tmp_path):
    items, _ = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    p = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(items), str(out)],
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    return items, out, out / "shards" / "0.partial"


def test_resume_treats_an_entry_without_pos_as_torn(clips, tmp_path, monkeypatch):
    """A done.jsonl line that is JSON but not an entry (no "pos") ends the log like a torn line."""
    items, out, work = _killed_run(clips, tmp_path)
    lines = (work / "done.jsonl").read_bytes().split(b"\n")
    bad = json.loads(lines[2])
    del bad["pos"]
    (work / "done.jsonl").write_bytes(b"\n".join(lines[:2] + [json.dumps(bad).encode()] + lines[3:]))
    import rmsd.frames.shards as sh

    decoded = []
    real = sh._decode_one
    monkeypatch.setattr(sh, "_decode_one", lambda v, *a: decoded.append(v) or real(v, *a))
    stats = extract_shard(items, out, 0, 1, **SETTINGS)
    assert (stats["n_resumed"], len(decoded), stats["restarted_partial"]) == (2, 5, 0)
    assert (stats["n_extracted"], stats["n_skipped"]) == (6, 1)


def test_resume_starts_over_when_rows_npy_is_short(clips, tmp_path, monkeypatch, caplog):
    """A cut-short rows.npy (full disk) is not zero-extended and resumed: the shard starts over,
    with a warning and restarted_partial = 1 in the shard's and the gathered stats."""
    items, out, work = _killed_run(clips, tmp_path)
    full = (work / "rows.npy").stat().st_size
    with open(work / "rows.npy", "r+b") as f:
        f.truncate(full - 100)
    import rmsd.frames.shards as sh

    decoded = []
    real = sh._decode_one
    monkeypatch.setattr(sh, "_decode_one", lambda v, *a: decoded.append(v) or real(v, *a))
    with caplog.at_level("WARNING", logger="rmsd.frames.shards"):
        stats = extract_shard(items, out, 0, 1, **SETTINGS)
    assert "rows.npy: shorter than its header says" in caplog.text
    assert (stats["n_resumed"], len(decoded), stats["restarted_partial"]) == (0, 7, 1)
    assert gather_shards(out, 1)["restarted_partial"] == 1
    clean = tmp_path / "clean"
    extract_shard(items, clean, 0, 1, **SETTINGS)
    gather_shards(clean, 1)
    a, b = open_frames(out), open_frames(clean)
    for iid in a.ids():
        np.testing.assert_array_equal(a.frames(iid), b.frames(iid))


def test_gather_names_a_damaged_shard_marker(clips, tmp_path):
    items, _ = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    extract_shard(items, out, 0, 2, **SETTINGS)
    extract_shard(items, out, 1, 2, **SETTINGS)
    marker = out / "shards" / "1.json"
    marker.write_text("{not json")
    with pytest.raises(DataError, match=r"shards/1\.json: damaged shard marker, not JSON .*"
                                        r"rerun extraction of this shard"):
        gather_shards(out, 2)
    marker.write_text("{}")
    with pytest.raises(DataError, match=r"shards/1\.json: damaged shard marker, missing "
                                        r"\['stats'\]; rerun extraction of this shard"):
        gather_shards(out, 2)


def test_frame_store_rejects_two_items_on_one_shard_row(clips, tmp_path):
    items, _ = items_of(tmp_path, clips)
    out = tmp_path / "frames"
    extract_shard(items, out, 0, 1, **SETTINGS)
    gather_shards(out, 1)
    man = out / "manifest.jsonl"
    recs = [json.loads(x) for x in man.read_text().splitlines()]
    recs[4]["row"] = recs[1]["row"]
    man.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError, match=rf"manifest.jsonl:5: item {recs[4]['item_id']!r} points "
                                        rf"at row {recs[1]['row']} of .*shards/0\.npy, which line "
                                        r"2 already holds"):
        open_frames(out)
