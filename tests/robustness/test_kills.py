"""Kills and faults half-way through a write leave no corrupt output, and a rerun succeeds.

Exceptions are injected inside the writers; real SIGKILLs hit a subprocess running
extract_frames (and generate_split) at chosen points, or at a random moment from outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rmsd.errors import MissingArtifactError
from rmsd.frames import extract_frames, load_frames
from rmsd.io import atomic_path, atomic_write_json, read_jsonl, write_jsonl

GOOD = ["h264.mp4", "mjpeg.avi", "mpeg4.avi", "vp9.webm", "ffv1.mkv", "cinepak.avi"]
OUTPUTS = {"frames.npy", "manifest.jsonl", "skipped.json", "stats.json"}


def umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_atomic_writers_keep_the_old_file_on_any_exception(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(target, records())
    assert read_jsonl(target) == [{"a": 1}]
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "s.json", {"x": object()})
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert read_jsonl(target) == [{"a": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temporary files
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask()  # not mkstemp's private 0600


@pytest.fixture
def items(corpus, tmp_path):
    recs = [{"id": f"v{i}", "video": str(corpus[n])} for i, n in enumerate(GOOD)]
    recs.insert(2, {"id": "bad", "video": str(corpus["random_bytes"])})
    write_jsonl(tmp_path / "items.jsonl", recs)
    return tmp_path / "items.jsonl"


@pytest.fixture
def clean_run(items, tmp_path):
    """Outputs of an uninterrupted run, to compare reruns against."""
    out = tmp_path / "clean"
    extract_frames(items, out, 4, 16, on_error="skip")
    return load_outputs(out)


def load_outputs(out: Path):
    manifest, frames = load_frames(out)
    stats = json.loads((out / "stats.json").read_text())
    for k in ("seconds", "ms_per_item"):
        stats.pop(k)
    return manifest, np.asarray(frames), json.loads((out / "skipped.json").read_text()), stats


def assert_same(a, b):
    assert a[0] == b[0] and a[2] == b[2] and a[3] == b[3]
    np.testing.assert_array_equal(a[1], b[1])


def assert_no_complete_looking_mix(out: Path):
    """After a kill: no completion marker, and whatever final file exists is whole."""
    names = {p.name for p in out.iterdir()}
    assert "stats.json" not in names
    if "manifest.jsonl" in names:
        read_jsonl(out / "manifest.jsonl")
    if "frames.npy" in names:
        np.load(out / "frames.npy", mmap_mode="r")


def test_exception_after_frames_written_removes_partial_outputs(items, tmp_path, clean_run,
                                                                monkeypatch):
    out = tmp_path / "f"
    extract_frames(items, out, 4, 16, on_error="skip")  # a previous complete run

    def failing_write(path, records):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rmsd.frames.extract.write_jsonl", failing_write)
    with pytest.raises(OSError, match="No space left"):
        extract_frames(items, out, 4, 16, on_error="skip")
    assert list(out.iterdir()) == []  # neither this run's frames.npy nor the old manifest
    monkeypatch.undo()
    extract_frames(items, out, 4, 16, on_error="skip")
    assert_same(load_outputs(out), clean_run)


def test_exception_mid_decode_leaves_nothing(items, tmp_path, monkeypatch):
    out = tmp_path / "f"
    extract_frames(items, out, 4, 16, on_error="skip")
    from rmsd.frames import extract as ex

    real, calls = ex._decode_one, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("injected")
        return real(*a, **k)

    monkeypatch.setattr(ex, "_decode_one", flaky)
    with pytest.raises(MemoryError):
        extract_frames(items, out, 4, 16, on_error="skip")
    assert list(out.iterdir()) == []


CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from rmsd.frames import extract as ex
    from rmsd.io import atomic_path

    mode, items, out = sys.argv[1:4]
    real, calls = ex._decode_one, [0]

    def hook(*a, **k):
        calls[0] += 1
        if mode == "decode" and calls[0] == 4:  # frames.npy's temporary memmap is half filled
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "slow":
            time.sleep(0.15)
        return real(*a, **k)

    def torn_manifest(path, records):  # killed while the manifest is being written
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"item_id": "v0", "ro')
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    ex._decode_one = hook
    if mode == "manifest":
        ex.write_jsonl = torn_manifest
    ex.extract_frames(items, out, 4, 16, on_error="skip")
    """)


def run_child(mode, items, out, wait=True):
    cmd = [sys.executable, "-c", CHILD, mode, str(items), str(out)]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("mode", ["decode", "manifest"])
def test_sigkill_inside_extract_frames_then_rerun(items, tmp_path, clean_run, mode):
    out = tmp_path / "f"
    extract_frames(items, out, 4, 16, on_error="skip")  # a previous run's outputs are present
    p = run_child(mode, items, out)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    names = {x.name for x in out.iterdir()}
    temps = {n for n in names if n.startswith(".")}
    assert temps, names  # the kill left its temporary file behind ...
    assert names - temps <= ({"frames.npy"} if mode == "manifest" else set())  # ... nothing else
    assert_no_complete_looking_mix(out)
    if mode == "manifest":
        with pytest.raises(MissingArtifactError, match="manifest.jsonl"):
            load_frames(out)  # frames.npy alone is not mistaken for a finished extraction
    extract_frames(items, out, 4, 16, on_error="skip")  # rerun
    assert {x.name for x in out.iterdir()} == OUTPUTS  # temporary files cleaned up
    assert_same(load_outputs(out), clean_run)
    assert {x.stat().st_mode & 0o777 for x in out.iterdir()} == {0o666 & ~umask()}


def test_sigkill_from_outside_at_a_random_moment(items, tmp_path, clean_run):
    out = tmp_path / "f"
    proc = run_child("slow", items, out, wait=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill as soon as the frames array is being filled
        if out.exists() and any(p.name.startswith(".frames.npy.") for p in out.iterdir()):
            break
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert_no_complete_looking_mix(out)
    extract_frames(items, out, 4, 16, on_error="skip")
    assert {x.name for x in out.iterdir()} == OUTPUTS
    assert_same(load_outputs(out), clean_run)


def test_sigkill_during_generate_split_then_rerun(tmp_path):
    child = textwrap.dedent("""
        import os, signal, sys
        from rmsd.data import synth
        real, n = synth.encode_mp4, [0]
        def enc(frames, path, fps, **k):
            n[0] += 1
            if n[0] == 3:  # inside the atomic write of the third video
                from rmsd.io import atomic_path
                with atomic_path(path, suffix=".mp4") as tmp:
                    tmp.write_bytes(b"half a video")
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(frames, path, fps, **k)
        synth.encode_mp4 = enc
        synth.generate_split(sys.argv[1], "test", ["mcq", "temporal"], 2, seed=0, size_px=16)
        """)
    p = subprocess.run([sys.executable, "-c", child, str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    videos = tmp_path / "d" / "videos"
    assert not (tmp_path / "d" / "items.jsonl").exists()  # no items file: the split is incomplete
    assert any(x.name.startswith(".") for x in videos.iterdir())
    from rmsd.data import generate_split

    items = generate_split(tmp_path / "d", "test", ["mcq", "temporal"], 2, seed=0, size_px=16)
    assert not any(x.name.startswith(".") for x in videos.iterdir())
    recs = read_jsonl(items)
    assert len(recs) == 4 and all(Path(r["video"]).stat().st_size > 100 for r in recs)
    assert extract_frames(items, tmp_path / "f", 4, 16)["n_extracted"] == 4


def test_scoring_writers_keep_old_outputs_on_failure(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from rmsd.scoring import ScoringConfig, SelectionConfig, score_pool, select_variant

    items = [{"id": "i1", "task_type": "mcq", "question": "Q?", "options": ["a", "b"], "answer": "A"}]
    pool = [{"item_id": "i1", "teacher": "t", "k": k, "text": "<answer>A</answer>",
             "finish_reason": "stop", "n_tokens": 3} for k in range(2)]
    write_jsonl(tmp_path / "items.jsonl", items)
    write_jsonl(tmp_path / "pool.jsonl", pool)
    args = (tmp_path / "items.jsonl", [tmp_path / "pool.jsonl"], tmp_path / "s.parquet",
            tmp_path / "s.json", ScoringConfig())
    score_pool(*args)
    before = (tmp_path / "s.parquet").read_bytes()
    real = pq.write_table

    def torn(table, where, **k):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(5, "I/O error")

    monkeypatch.setattr(pq, "write_table", torn)
    with pytest.raises(OSError, match="I/O error"):
        score_pool(*args)
    assert (tmp_path / "s.parquet").read_bytes() == before
    monkeypatch.setattr(pq, "write_table", real)
    score_pool(*args)  # rerun

    sel = (tmp_path / "s.parquet", tmp_path / "items.jsonl", tmp_path / "sel.jsonl",
           tmp_path / "sel.json", SelectionConfig.from_dict({"teachers": ["t"], "K": 2}), 0)
    select_variant(*sel)
    good = (tmp_path / "sel.jsonl").read_text()
    monkeypatch.setattr("rmsd.scoring.pipeline.atomic_write_json",
                        lambda *a: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        select_variant(*sel)
    assert (tmp_path / "sel.jsonl").read_text() == good
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
