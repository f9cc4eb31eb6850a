"""Extract sampled, resized frames of every item into one array plus a manifest.

Outputs in ``out_dir``:
    ``frames.npy``: (N, F, S, S, 3) uint8 RGB, N extracted items, F = num_frames, S = size_px.
    ``manifest.jsonl``: one record per extracted item; ``row`` indexes ``frames.npy``.
    ``skipped.json``: list of ``{"item_id", "video", "reason"}`` (always written, maybe empty).
    ``stats.json``: counts and timing; written last, so it marks a complete extraction.
All four are written atomically. A run first removes the previous outputs (``stats.json`` first)
and any temporary files a killed run left behind, and removes its own partial outputs when it
fails, so the directory never holds a mix of two runs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rmsd.errors import ConfigError, DataError, MissingArtifactError, RmsdError, VideoDecodeError
from rmsd.frames.decode import DEFAULT_DECODERS, DecodedVideo, check_decoders, decode_video
from rmsd.frames.select import select_indices, timestamps_s
from rmsd.io import (
    atomic_path,
    atomic_write_json,
    read_jsonl,
    read_jsonl_numbered,
    remove_stale_temp_files,
    sha256_file,
    write_jsonl,
)

FRAMES_FILE = "frames.npy"
MANIFEST_FILE = "manifest.jsonl"
SKIPPED_FILE = "skipped.json"
STATS_FILE = "stats.json"
ON_ERROR = ("fail", "skip")
OUTPUT_FILES = (STATS_FILE, MANIFEST_FILE, SKIPPED_FILE, FRAMES_FILE)
"""Outputs in removal order: the completion marker ``stats.json`` goes first."""


def resize_frames(frames: np.ndarray, size_px: int) -> np.ndarray:
    """Resize every frame to ``size_px`` x ``size_px`` with PIL bilinear filtering.

    The aspect ratio is not preserved (frames are squashed to a square), matching the model's
    square input.

    Args:
        frames: (F, H, W, 3) uint8.
        size_px: output side S.

    Returns:
        (F, S, S, 3) uint8 (the input itself when it already has that size).
    """
    from PIL import Image

    if frames.shape[1] == size_px and frames.shape[2] == size_px:
        return frames
    out = np.empty((frames.shape[0], size_px, size_px, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((size_px, size_px), Image.BILINEAR))
    return out


def manifest_record(
    item_id: str,
    video: str,
    row: int,
    decoded: DecodedVideo,
    policy: str,
    size_px: int,
    video_sha256: str,
) -> dict:
    """The manifest record of one extracted item (pure).

    ``timestamps_s`` are ``index / fps`` (nominal frame times from the video start; a container
    start offset or variable frame rate is not reflected). ``None`` when the decoder reports no fps.
    ``pts_s`` are the frames' presentation times from the stream (relative to the first frame;
    ``None`` when the stream has no timestamps): with ``vfr`` true (variable frame rate) they are
    the real times and differ from ``timestamps_s``. ``decode_errors`` counts packets that did not
    decode and were dropped (corrupt data), with the first error in ``first_decode_error``.
    ``num_video_frames_declared`` is the header's frame count (None when the container declares
    none) and ``truncated`` is True when fewer frames decode (``num_video_frames``) than declared:
    a file cut after its header, or corrupt frames dropped. ``pts_discontinuous`` marks a stream
    whose timestamps go back or restart (at frame ``first_discontinuity``); frames are then
    indexed in decode order and ``pts_s`` is None.
    """
    return {
        "item_id": item_id,
        "video": video,
        "row": row,
        "num_frames": len(decoded.indices),
        "indices": list(decoded.indices),
        "timestamps_s": timestamps_s(decoded.indices, decoded.fps) if decoded.fps > 0 else None,
        "policy": policy,
        "decoder": decoded.decoder,
        "decoder_version": decoded.decoder_version,
        "fallback_reasons": dict(decoded.fallback_reasons),
        "source_size_px": list(decoded.source_size_px),
        "stored_size_px": [size_px, size_px],
        "fps": decoded.fps,
        "num_video_frames": decoded.num_video_frames,
        "video_sha256": video_sha256,
        "pts_s": None if decoded.pts_s is None else list(decoded.pts_s),
        "vfr": bool(decoded.vfr),
        "decode_errors": int(decoded.decode_errors),
        "first_decode_error": decoded.first_decode_error,
        "num_video_frames_declared": decoded.num_video_frames_declared,
        "truncated": bool(decoded.truncated),
        "pts_discontinuous": bool(decoded.pts_discontinuous),
        "first_discontinuity": decoded.first_discontinuity,
    }


def extract_frames(
    items_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    num_frames: int,
    size_px: int,
    policy: str = "uniform",
    decoders: Sequence[str] = DEFAULT_DECODERS,
    on_error: str = "fail",
) -> dict:
    """Decode, sample and resize the frames of every item; write frames.npy and manifest.jsonl.

    Each distinct video file is decoded once, however many items refer to it. Relative ``video``
    paths are resolved against the current working directory.

    Args:
        items_path: items JSONL; every record needs ``id`` and ``video``.
        out_dir: output directory (created).
        num_frames: frames per item F.
        size_px: stored frame side S in pixels.
        policy: frame selection policy, see :func:`rmsd.frames.select.select_indices`.
        decoders: decoders to try in order, see :func:`rmsd.frames.decode.decode_video`.
        on_error: ``"fail"`` raises on the first undecodable or missing video (and leaves no
            outputs); ``"skip"`` leaves the item out and lists it in ``skipped.json``
            (``item_id``, ``video``, ``error`` class, ``reason``).

    Returns:
        Stats dict (also written to ``stats.json``): ``n_items``, ``n_extracted``, ``n_skipped``,
        ``skipped_by_error`` (counts by error class), ``n_videos``, ``decoders`` (counts by decoder
        used), ``n_fallback`` (items whose first decoder failed), ``n_vfr`` (variable frame rate),
        ``n_with_decode_errors`` (items whose video had undecodable packets that were dropped),
        ``seconds``, ``ms_per_item``.

    Raises:
        ConfigError: bad num_frames, size_px, policy, decoders or on_error.
        MissingArtifactError: the items file is missing, or (``on_error="fail"``) a video is.
        DataError: the items file is malformed (bad JSON or UTF-8, missing field, non-string or
            empty ``id``/``video``, duplicate id); names the file and line.
        VideoDecodeError: (``on_error="fail"``) a video cannot be decoded; names the file.
    """
    t0 = time.perf_counter()
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}")
    if not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
        raise ConfigError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not isinstance(size_px, (int, np.integer)) or size_px <= 0:
        raise ConfigError(f"size_px must be a positive integer, got {size_px!r}")
    select_indices(1, num_frames, policy)  # validates the policy
    decoders = check_decoders(decoders)
    out_dir = Path(out_dir)

    items = read_items(items_path)

    refs = Counter(it["video"] for it in items)  # cache eviction after the last use
    cache: dict[str, tuple[np.ndarray, DecodedVideo, str] | RmsdError] = {}
    records: list[dict] = []
    skipped: list[dict] = []
    used: Counter[str] = Counter()
    shape = (len(items), num_frames, size_px, size_px, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_outputs(out_dir)  # never leave a mix of the previous run's and this run's outputs
    remove_stale_temp_files(out_dir, OUTPUT_FILES)

    try:
        with atomic_path(out_dir / FRAMES_FILE, suffix=".npy") as tmp:
            array = _open_rows(tmp, shape)
            for item in items:
                video = item["video"]
                if video not in cache:
                    cache[video] = _decode_one(video, num_frames, size_px, policy, decoders)
                entry = cache[video]
                refs[video] -= 1
                if refs[video] == 0:
                    del cache[video]
                if isinstance(entry, RmsdError):
                    if on_error == "fail":
                        raise entry
                    skipped.append(
                        {
                            "item_id": item["id"],
                            "video": video,
                            "error": type(entry).__name__,
                            "reason": str(entry),
                        }
                    )
                    continue
                frames, decoded, digest = entry
                row = len(records)
                array[row] = frames
                records.append(
                    manifest_record(item["id"], video, row, decoded, policy, size_px, digest)
                )
                used[decoded.decoder] += 1
            _close_rows(array, tmp, len(records))
            del array

        write_jsonl(out_dir / MANIFEST_FILE, records)
        atomic_write_json(out_dir / SKIPPED_FILE, skipped)
        seconds = time.perf_counter() - t0
        stats = {
            "n_items": len(items),
            "n_extracted": len(records),
            "n_skipped": len(skipped),
            "skipped_by_error": dict(Counter(s["error"] for s in skipped)),
            "n_videos": len(refs),
            "decoders": dict(used),
            "n_fallback": sum(1 for r in records if r["fallback_reasons"]),
            "n_vfr": sum(1 for r in records if r["vfr"]),
            "n_with_decode_errors": sum(1 for r in records if r["decode_errors"]),
            "num_frames": int(num_frames),
            "size_px": int(size_px),
            "policy": policy,
            "on_error": on_error,
            "seconds": round(seconds, 3),
            "ms_per_item": round(1000 * seconds / len(items), 2) if items else None,
        }
        atomic_write_json(out_dir / STATS_FILE, stats)  # last: marks the extraction complete
    except BaseException:
        _remove_outputs(out_dir)
        raise
    return stats


def read_items(items_path: str | os.PathLike) -> list[dict]:
    """The items to extract: ``id`` and ``video`` of every record, checked.

    Returns:
        One ``{"id", "video"}`` dict per record, in file order.

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: bad JSON, a missing field, an ``id`` or ``video`` that is not a non-empty
            string, or a duplicate id; names the file and line.
    """
    out: list[dict] = []
    first_line: dict[str, int] = {}
    for ln, rec, _ in read_jsonl_numbered(items_path, required=("id", "video")):
        iid, video = rec["id"], rec["video"]
        if not isinstance(iid, str) or not iid:
            raise DataError(f"{items_path}:{ln}: id must be a non-empty string, got {iid!r}")
        if not isinstance(video, str) or not video.strip():
            raise DataError(
                f"{items_path}:{ln}: item {iid!r}: video must be a non-empty path string, "
                f"got {video!r}"
            )
        if iid in first_line:
            raise DataError(
                f"{items_path}:{ln}: duplicate item id {iid!r} (first on line {first_line[iid]})"
            )
        first_line[iid] = ln
        out.append({"id": iid, "video": video})
    return out


def load_frames(frames_dir: str | os.PathLike) -> tuple[dict[str, dict], np.ndarray]:
    """Open a single-array extraction (:func:`extract_frames`): its manifest and frames array.

    Older interface kept for single-array outputs; stages read frames through
    :func:`rmsd.frames.store.open_frames`, which also reads the sharded layout.

    Returns:
        ``(manifest, frames)``: manifest records keyed by ``item_id``, and the (N, F, S, S, 3)
        uint8 array opened read-only with ``mmap_mode="r"`` (``frames[manifest[id]["row"]]``).

    Raises:
        MissingArtifactError: ``frames.npy`` or ``manifest.jsonl`` does not exist; names the path.
        DataError: as :class:`rmsd.frames.store.FrameStore`, or the extraction is sharded.
    """
    from rmsd.frames.store import FrameStore

    frames_path = Path(frames_dir) / FRAMES_FILE
    if not frames_path.exists():
        raise MissingArtifactError(
            f"{frames_path}: expected file does not exist (run frame extraction)"
        )
    store = FrameStore(frames_dir)
    array = store.single_array()
    return {iid: store.record(iid) for iid in store.ids()}, array


# --------------------------------------------------------------------------------------------------


def _decode_one(
    video: str, num_frames: int, size_px: int, policy: str, decoders: Sequence[str]
) -> tuple[np.ndarray, DecodedVideo, str] | RmsdError:
    """Decode, resize and hash one video; an rmsd error is returned (not raised) for the caller."""
    try:
        decoded = decode_video(video, num_frames, policy, decoders)
        frames = resize_frames(decoded.frames, size_px)
        decoded.frames = np.empty((0,), np.uint8)  # keep only the resized copy in the cache
        return frames, decoded, sha256_file(video)
    except RmsdError as e:
        return e
    except OSError as e:  # e.g. the file vanished or became unreadable between decode and hash
        return VideoDecodeError(f"{video}: cannot read ({type(e).__name__}: {e})")


def _remove_outputs(out_dir: Path) -> None:
    """Delete this stage's outputs in ``out_dir``, the completion marker first."""
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)


def _open_rows(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A writable (N, F, S, S, 3) uint8 array backed by ``path`` (in memory when N == 0)."""
    if shape[0] == 0:
        return np.zeros(shape, np.uint8)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _close_rows(array: np.ndarray, path: Path, n_rows: int) -> None:
    """Flush the array to ``path``, truncated to its first ``n_rows`` rows (skipped items)."""
    if n_rows == array.shape[0] and isinstance(array, np.memmap):
        array.flush()
        del array
        _fsync(path)
        return
    if n_rows == 0:
        np.save(path, np.zeros((0, *array.shape[1:]), np.uint8))
        _fsync(path)
        return
    with atomic_path(path, suffix=".npy") as compact:  # replaces the full-size temporary file
        out = np.lib.format.open_memmap(
            compact, mode="w+", dtype=np.uint8, shape=(n_rows, *array.shape[1:])
        )
        out[:] = array[:n_rows]
        out.flush()
        del out
        _fsync(compact)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
