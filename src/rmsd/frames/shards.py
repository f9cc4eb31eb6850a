"""Sharded, threaded, resumable frame extraction (the pipeline's frame stage) and its gather.

Scatter: :func:`extract_shard` extracts the items of shard ``i`` of ``n`` (a contiguous, balanced
slice of the items file) into ``frames_dir/shards/{i}.npy`` (R_i, F, S, S, 3) uint8, one row per
item of the shard in file order, plus ``shards/{i}.jsonl`` (manifest records with ``shard`` and
``row``) and ``shards/{i}.json`` (skipped items and stats; written last, the shard's completion
marker). Distinct videos of the shard are decoded by a thread pool (decord and PyAV decode in C
with the GIL released); the main thread alone writes rows and records.

Resume: work in progress lives in ``shards/{i}.partial/`` (not a Snakemake output, so a failed
or killed job's partial work is not deleted): ``rows.npy``, a preallocated memory-mapped array,
and ``done.jsonl``, an append-only log of finished items (record or skip reason) written after
their rows are flushed, every ``commit_every`` videos. A rerun with the same items and settings
(``spec.json``) decodes only the items not yet in ``done.jsonl``; a different spec starts over.
A torn or malformed log line (not JSON, or no ``pos``) ends the log: it and the rest are redone.
A ``rows.npy`` shorter than its header says (a full disk) starts the shard over, with a warning,
counted as ``restarted_partial`` in the shard's stats.
A killed job loses at most the last ``commit_every`` videos' work.

Gather: :func:`gather_shards` checks the shards agree and writes ``manifest.jsonl``,
``skipped.json``, ``index.json`` and ``stats.json`` (last; each atomically). The shard arrays stay
where they are: the manifest's ``shard``/``row`` point into them (read with
:func:`rmsd.frames.store.open_frames`).

Disk and memory (paper scale, written in slurm/README.md): an item costs F x S x S x 3 bytes
(16 x 448 x 448 x 3 = 9.6 MB); a shard's array is items_per_shard x that. Memory per job is
bounded by the threads: each in-flight video holds its F decoded source frames (64 frames of
1280 x 720 RGB = 177 MB) plus the resized copy; the array itself is a memory map (page cache).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from rmsd.errors import ConfigError, DataError, MissingArtifactError, RmsdError
from rmsd.frames.decode import DEFAULT_DECODERS, check_decoders
from rmsd.frames.extract import ON_ERROR, _decode_one, manifest_record, read_items
from rmsd.frames.select import select_indices
from rmsd.frames.store import INDEX_FILE, MANIFEST_FILE, SHARDS_DIR, open_frame_array, shard_file
from rmsd.io import atomic_path, atomic_write_json, read_jsonl, write_jsonl

log = logging.getLogger(__name__)

SKIPPED_FILE = "skipped.json"
STATS_FILE = "stats.json"
SETTINGS_KEYS = ("num_frames", "size_px", "policy", "decoders", "on_error")


def frame_settings(frames_cfg: dict, dataset: str) -> dict:
    """The frame settings of ``dataset``: ``frames`` defaults overridden by ``frames.datasets.NAME``.

    ``frames_cfg`` is the config's ``frames`` block: ``num_frames``, ``size_px``, ``policy``,
    ``decoders``, ``on_error`` (the defaults), optional ``datasets: {NAME: {key: value}}`` (per
    dataset overrides of those keys and of ``shards``, e.g. 64 frames for an evaluation
    benchmark), ``threads`` and ``shards``/``items_per_shard`` (job layout, not returned).

    >>> frame_settings({"num_frames": 16, "size_px": 448, "policy": "uniform",
    ...     "decoders": ["decord"], "on_error": "skip",
    ...     "datasets": {"VideoMME": {"num_frames": 64}}}, "VideoMME")["num_frames"]
    64

    Raises:
        ConfigError: an override names a key that is not a frame setting.
    """
    out = {k: frames_cfg[k] for k in SETTINGS_KEYS if k in frames_cfg}
    over = (frames_cfg.get("datasets") or {}).get(dataset) or {}
    bad = sorted(set(over) - set(SETTINGS_KEYS) - {"shards", "items", "seconds_per_item"})
    if bad:
        raise ConfigError(f"frames.datasets.{dataset}: unknown frame setting(s) {bad}; "
                          f"valid: {list(SETTINGS_KEYS)}")
    out.update({k: v for k, v in over.items() if k in SETTINGS_KEYS})
    out["decoders"] = list(out.get("decoders", DEFAULT_DECODERS))
    return out


def shard_bounds(n_items: int, shard: int, n_shards: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``shard`` of ``n_shards`` contiguous, balanced shards.

    >>> [shard_bounds(10, i, 3) for i in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    if not 0 <= shard < n_shards:
        raise ConfigError(f"shard {shard} outside 0..{n_shards - 1}")
    return n_items * shard // n_shards, n_items * (shard + 1) // n_shards


def extract_shard(
    items_path: str | os.PathLike,
    frames_dir: str | os.PathLike,
    shard: int,
    n_shards: int,
    num_frames: int,
    size_px: int,
    policy: str = "uniform",
    decoders: Sequence[str] = DEFAULT_DECODERS,
    on_error: str = "fail",
    threads: int = 1,
    commit_every: int = 8,
) -> dict:
    """Extract the frames of shard ``shard`` of ``n_shards`` of an items file (resumable).

    Args:
        items_path: items JSONL (``id``, ``video``), read and checked whole (duplicate ids).
        frames_dir: the dataset's frame directory; writes ``shards/{shard}.npy``, ``.jsonl``,
            ``.json`` there.
        shard, n_shards: which contiguous slice (:func:`shard_bounds`).
        num_frames, size_px, policy, decoders, on_error: as
            :func:`rmsd.frames.extract.extract_frames`; recorded in every manifest record.
        threads: decoding threads (one video per thread at a time).
        commit_every: videos between durable commits of the resume log.

    Returns:
        The shard's stats (also in ``shards/{shard}.json``): ``n_items``, ``n_extracted``,
        ``n_skipped``, ``n_resumed`` (items kept from an earlier, interrupted run),
        ``restarted_partial`` (1 when an earlier run's ``rows.npy`` was shorter than its header
        says, e.g. a full disk, and the shard started over; else 0), ``n_videos``,
        ``decoders``, ``n_fallback``, ``n_vfr``, ``n_truncated``, ``n_discontinuous``,
        ``n_with_decode_errors``, ``seconds``, ``settings``.

    Raises:
        ConfigError: bad settings, shard index or threads.
        MissingArtifactError, DataError: as :func:`rmsd.frames.extract.read_items`.
        VideoDecodeError, MissingArtifactError: (``on_error="fail"``) an item's video cannot be
            decoded; finished items stay in the resume log.
    """
    t0 = time.perf_counter()
    settings = _check_settings(num_frames, size_px, policy, decoders, on_error)
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    frames_dir = Path(frames_dir)
    items = read_items(items_path)
    lo, hi = shard_bounds(len(items), shard, n_shards)
    items = items[lo:hi]
    out_npy = shard_file(frames_dir, shard)
    out_jsonl, out_json = out_npy.with_suffix(".jsonl"), out_npy.with_suffix(".json")
    for p in (out_json, out_jsonl, out_npy):  # completion marker first
        p.unlink(missing_ok=True)
    work = out_npy.with_suffix(".partial")
    spec = {"settings": settings, "shard": shard, "n_shards": n_shards,
            "items_sha256": _items_hash(items), "n_items": len(items)}
    shape = (len(items), settings["num_frames"], settings["size_px"], settings["size_px"], 3)
    rows, done, restarted = _open_work(work, spec, shape)
    n_resumed = len(done)
    if n_resumed:
        log.info("shard %d/%d: resuming, %d of %d items already extracted", shard, n_shards,
                 n_resumed, len(items))

    by_video: dict[str, list[int]] = {}
    for pos, it in enumerate(items):
        if pos not in done:
            by_video.setdefault(it["video"], []).append(pos)
    todo = list(by_video.items())
    pending: list[dict] = []
    done_log = open(work / "done.jsonl", "a", encoding="utf-8")

    def commit() -> None:
        if not pending:
            return
        if isinstance(rows, np.memmap):
            rows.flush()
        done_log.write("".join(json.dumps(e) + "\n" for e in pending))
        done_log.flush()
        os.fsync(done_log.fileno())
        pending.clear()

    def finish(video: str, positions: list[int], entry) -> None:
        if isinstance(entry, RmsdError):
            if on_error == "fail":
                commit()
                raise entry
            for pos in positions:
                e = {"pos": pos, "skipped": {"item_id": items[pos]["id"], "video": video,
                                             "error": type(entry).__name__, "reason": str(entry)}}
                done[pos] = e
                pending.append(e)
            return
        frames, decoded, digest = entry
        for pos in positions:
            rows[pos] = frames
            rec = manifest_record(items[pos]["id"], video, pos, decoded, settings["policy"],
                                  settings["size_px"], digest)
            rec["shard"] = shard
            e = {"pos": pos, "record": rec}
            done[pos] = e
            pending.append(e)

    n_since = 0
    futures: dict = {}
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            it = iter(todo)
            while True:
                while len(futures) < 2 * threads:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    video, positions = nxt
                    fut = pool.submit(_decode_one, video, settings["num_frames"],
                                      settings["size_px"], settings["policy"], settings["decoders"])
                    futures[fut] = (video, positions)
                if not futures:
                    break
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    video, positions = futures.pop(fut)
                    finish(video, positions, fut.result())
                    n_since += 1
                    if n_since >= commit_every:
                        commit()
                        n_since = 0
        commit()
    except BaseException:
        for fut in futures:
            fut.cancel()
        try:
            commit()
        finally:
            done_log.close()
        raise
    done_log.close()

    records = [done[p]["record"] for p in sorted(done) if "record" in done[p]]
    skipped = [done[p]["skipped"] for p in sorted(done) if "skipped" in done[p]]
    write_jsonl(out_jsonl, records)
    if isinstance(rows, np.memmap):
        rows.flush()
        del rows
        os.replace(work / "rows.npy", out_npy)
    else:
        with atomic_path(out_npy, suffix=".npy") as tmp:
            np.save(tmp, np.zeros(shape, np.uint8))
    stats = {**_count(records, skipped), "n_items": len(items), "n_resumed": n_resumed,
             "restarted_partial": int(restarted),
             "n_videos": len({it["video"] for it in items}), "shard": shard,
             "n_shards": n_shards, "threads": threads, "settings": settings,
             "seconds": round(time.perf_counter() - t0, 3)}
    atomic_write_json(out_json, {"stats": stats, "skipped": skipped})  # last: shard complete
    shutil.rmtree(work, ignore_errors=True)
    return stats


def gather_shards(frames_dir: str | os.PathLike, n_shards: int) -> dict:
    """Join the ``n_shards`` finished shards of ``frames_dir`` into the dataset's outputs.

    Writes ``manifest.jsonl`` (every shard's records, shard order), ``skipped.json``,
    ``index.json`` (``{"shards": [{"shard", "path", "shape", "n_records"}], "settings"}``) and
    ``stats.json`` (summed counts, last), each atomically.

    Returns:
        The stats dict.

    Raises:
        MissingArtifactError: a shard's ``.json``, ``.jsonl`` or ``.npy`` is missing (unfinished).
        DataError: a damaged shard marker (``shards/{i}.json`` not JSON or without its stats,
            names the file: rerun extraction), shards extracted with different settings or shard counts, a duplicate item id,
            or a record whose row is outside its shard's array; names the file.
    """
    frames_dir = Path(frames_dir)
    records, skipped, shards, settings, per = [], [], [], None, []
    seen: dict[str, int] = {}
    for i in range(n_shards):
        npy = shard_file(frames_dir, i)
        meta_path = npy.with_suffix(".json")
        if not meta_path.exists():
            raise MissingArtifactError(f"{meta_path}: shard {i} of {n_shards} is not finished")
        meta = _read_marker(meta_path)
        st = meta["stats"]
        mine = st["settings"]
        if settings is None:
            settings = mine
        elif mine != settings or st["n_shards"] != n_shards:
            raise DataError(f"{meta_path}: shard settings {mine} (of {st['n_shards']} shards) "
                            f"differ from shard 0's {settings} (of {n_shards}); rerun extraction")
        arr = open_frame_array(npy)
        recs = read_jsonl(npy.with_suffix(".jsonl"), required=("item_id", "row", "shard"))
        for rec in recs:
            if rec["item_id"] in seen:
                raise DataError(f"{npy.with_suffix('.jsonl')}: item {rec['item_id']!r} also in "
                                f"shard {seen[rec['item_id']]}")
            if rec["shard"] != i or not 0 <= rec["row"] < len(arr):
                raise DataError(f"{npy.with_suffix('.jsonl')}: item {rec['item_id']!r} points at "
                                f"shard {rec['shard']} row {rec['row']}, outside {npy}")
            seen[rec["item_id"]] = i
        records += recs
        skipped += meta["skipped"]
        per.append(st)
        shards.append({"shard": i, "path": f"{SHARDS_DIR}/{i}.npy", "shape": list(arr.shape),
                       "n_records": len(recs), "bytes": int(arr.nbytes)})
    write_jsonl(frames_dir / MANIFEST_FILE, records)
    atomic_write_json(frames_dir / SKIPPED_FILE, skipped)
    atomic_write_json(frames_dir / INDEX_FILE, {"shards": shards, "settings": settings})
    stats = {**_count(records, skipped), "n_items": sum(s["n_items"] for s in per),
             "n_videos": sum(s["n_videos"] for s in per), "n_shards": n_shards,
             "n_resumed": sum(s["n_resumed"] for s in per),
             "restarted_partial": sum(s.get("restarted_partial", 0) for s in per),
             "settings": settings,
             "shard_seconds": [s["seconds"] for s in per],
             "bytes": sum(s["bytes"] for s in shards)}
    atomic_write_json(frames_dir / STATS_FILE, stats)
    return stats


# --------------------------------------------------------------------------------------------------


def _check_settings(num_frames, size_px, policy, decoders, on_error) -> dict:
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}")
    for name, v in (("num_frames", num_frames), ("size_px", size_px)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    select_indices(1, num_frames, policy)  # validates the policy
    return {"num_frames": int(num_frames), "size_px": int(size_px), "policy": policy,
            "decoders": list(check_decoders(decoders)), "on_error": on_error}


def _items_hash(items: list[dict]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it['id']}\0{it['video']}\n".encode())
    return h.hexdigest()


MARKER_STATS_KEYS = ("settings", "n_shards", "n_items", "n_videos", "n_resumed", "seconds")


def _read_marker(path: Path) -> dict:
    """A shard's completion marker ``shards/{i}.json`` (``stats`` and ``skipped``), checked.

    Raises:
        DataError: not JSON, or without ``stats`` (with :data:`MARKER_STATS_KEYS`) and a
            ``skipped`` list (names the file).
    """
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: damaged shard marker, not JSON ({e}); rerun extraction of this "
                        "shard") from None
    st = meta.get("stats") if isinstance(meta, dict) else None
    missing = ["stats"] if not isinstance(st, dict) else [k for k in MARKER_STATS_KEYS if k not in st]
    if not missing and not isinstance(meta.get("skipped"), list):
        missing = ["skipped"]
    if missing:
        raise DataError(f"{path}: damaged shard marker, missing {missing}; rerun extraction of "
                        "this shard")
    return meta


def _rows_complete(rows_path: Path, shape: tuple[int, ...]) -> bool:
    """True when ``rows_path`` is a uint8 .npy of ``shape`` whose file holds every byte its header
    announces (``open_memmap(mode="r+")`` would silently zero-extend a short file)."""
    try:
        with open(rows_path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)  # 3.0 has 2.0's layout
            hdr_shape, _, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError, EOFError):
        return False
    if tuple(hdr_shape) != tuple(shape) or np.dtype(dtype) != np.uint8:
        return False
    return rows_path.stat().st_size >= offset + int(np.prod(shape, dtype=np.int64))


def _valid_entry(e, n_items: int) -> bool:
    """A done.jsonl entry: an object with an integer ``pos`` in range and a ``record`` or
    ``skipped`` object."""
    if not isinstance(e, dict):
        return False
    pos = e.get("pos")
    if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < n_items:
        return False
    return isinstance(e.get("record"), dict) or isinstance(e.get("skipped"), dict)


def _open_work(work: Path, spec: dict, shape: tuple[int, ...], restarted: bool = False):
    """(rows, done, restarted): the shard's preallocated rows, the finished entries of an earlier
    run with ``spec``, and whether an earlier run's short ``rows.npy`` made the shard start over.

    A ``done.jsonl`` line that is torn, not JSON or not a finished-item entry (no integer
    ``pos`` in range, no ``record``/``skipped``) ends the log: it and the lines after it are
    truncated and their items redone."""
    spec_path, rows_path, log_path = work / "spec.json", work / "rows.npy", work / "done.jsonl"
    same = False
    if spec_path.exists() and rows_path.exists():
        try:
            same = json.loads(spec_path.read_text()) == spec
        except ValueError:
            same = False
    if not same:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        if shape[0] == 0:
            rows = np.zeros(shape, np.uint8)
        else:
            rows = np.lib.format.open_memmap(rows_path, mode="w+", dtype=np.uint8, shape=shape)
            rows.flush()
        atomic_write_json(spec_path, spec)  # after the array exists: spec marks a usable work dir
        return rows, {}, restarted
    if not _rows_complete(rows_path, shape):
        log.warning("%s: shorter than its header says (or unreadable), e.g. a full disk or a "
                    "killed copy; the shard starts over", rows_path)
        shutil.rmtree(work)
        return _open_work(work, spec, shape, restarted=True)
    rows = np.lib.format.open_memmap(rows_path, mode="r+")
    done: dict[int, dict] = {}
    data = log_path.read_bytes() if log_path.exists() else b""
    good = 0
    lines = data.split(b"\n")
    for line in lines[:-1]:  # the last piece is empty, or a torn line of a killed write
        try:
            e = json.loads(line)
        except ValueError:
            break  # a damaged line: it and the rest are redone
        if not _valid_entry(e, shape[0]):
            break  # JSON but not an entry (e.g. no "pos"): treated as damaged
        done[e["pos"]] = e
        good += len(line) + 1
    if good != len(data):
        with open(log_path, "r+b") as f:
            f.truncate(good)
    return rows, done, restarted


def _count(records: list[dict], skipped: list[dict]) -> dict:
    return {
        "n_extracted": len(records),
        "n_skipped": len(skipped),
        "skipped_by_error": dict(Counter(s["error"] for s in skipped)),
        "decoders": dict(Counter(r["decoder"] for r in records)),
        "n_fallback": sum(1 for r in records if r["fallback_reasons"]),
        "n_vfr": sum(1 for r in records if r["vfr"]),
        "n_truncated": sum(1 for r in records if r.get("truncated")),
        "n_discontinuous": sum(1 for r in records if r.get("pts_discontinuous")),
        "n_with_decode_errors": sum(1 for r in records if r["decode_errors"]),
    }
