"""Items joined with their extracted frames: the manifest reader every later stage uses."""

from __future__ import annotations

import numpy as np

from rmsd.errors import DataError
from rmsd.frames.store import open_frames
from rmsd.io import read_jsonl


def load_items_with_frames(items_path, frames_dir, on_missing: str = "fail", only=None,
                           with_meta: bool = False,
                           hint: str = "set stage1.on_missing_frames: skip to leave such items out"):
    """Items that have frames in the manifest, with their frames.

    Args:
        items_path: ``items.jsonl``.
        frames_dir: directory with ``manifest.jsonl`` and ``frames.npy``.
        on_missing: "fail" raises when an item has no frames (e.g. skipped by the frame stage);
            "skip" leaves it out and counts it.
        only: optional collection of item ids; other items are ignored (neither loaded nor checked).
        with_meta: also return each kept item's manifest record (source fps, frame indices), which
            timestamped processors (Qwen3-VL) need.
        hint: what the caller's user can do about an item without frames (ends the error message).

    Returns:
        (items, frames per item as uint8 (F, H, W, 3), n_missing), plus the manifest records when
        ``with_meta``. Frames are copied into memory: for datasets that must stream (training),
        read them per item through :class:`rmsd.frames.FrameStore` instead.

    Raises:
        DataError: an item has no frames and ``on_missing == "fail"``.
    """
    if on_missing not in ("fail", "skip"):
        raise DataError(f"on_missing_frames must be 'fail' or 'skip', got {on_missing!r}")
    items = read_jsonl(items_path, required=("id", "task_type", "question", "answer"))
    if only is not None:
        only = set(only)
        items = [it for it in items if it["id"] in only]
    store = open_frames(frames_dir)
    kept, frames, metas, n_missing = [], [], [], 0
    for it in items:
        if it["id"] not in store:
            if on_missing == "fail":
                raise DataError(f"{items_path}: item {it['id']!r} has no frames in {frames_dir}/manifest.jsonl"
                                f" (frame extraction skipped it or the manifest is stale); {hint}")
            n_missing += 1
            continue
        kept.append(it)
        frames.append(np.asarray(store.frames(it["id"])))
        metas.append(store.record(it["id"]))
    if with_meta:
        return kept, frames, n_missing, metas
    return kept, frames, n_missing
