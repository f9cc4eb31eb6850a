"""Joining items, frames and selections into training examples."""

from __future__ import annotations

import numpy as np

from rmsd.errors import DataError
from rmsd.frames import load_frames
from rmsd.io import read_jsonl
from rmsd.tasks import render_answer, render_response


def load_items_with_frames(items_path, frames_dir, on_missing: str = "fail"
                           ) -> tuple[list[dict], list[np.ndarray], int]:
    """Items that have frames in the manifest, with their frames.

    Args:
        items_path: ``items.jsonl``.
        frames_dir: directory with ``manifest.jsonl`` and ``frames.npy``.
        on_missing: "fail" raises when an item has no frames (e.g. skipped by the frame stage);
            "skip" leaves it out and counts it.

    Returns:
        (items, frames per item as uint8 (F, H, W, 3), n_missing)

    Raises:
        DataError: an item has no frames and ``on_missing == "fail"``.
    """
    items = read_jsonl(items_path, required=("id", "task_type", "question", "answer"))
    manifest, array = load_frames(frames_dir)
    kept, frames, n_missing = [], [], 0
    for it in items:
        rec = manifest.get(it["id"])
        if rec is None:
            if on_missing == "fail":
                raise DataError(f"{items_path}: item {it['id']!r} has no frames in {frames_dir}/manifest.jsonl")
            n_missing += 1
            continue
        kept.append(it)
        frames.append(np.asarray(array[rec["row"]]))
    return kept, frames, n_missing


def ground_truth_response(item: dict, template: str) -> str:
    """The ground-truth answer of ``item`` written as a response in ``template``."""
    return render_response(render_answer(item["task_type"], item["answer"]), template)
