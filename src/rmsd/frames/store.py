"""Read-only access to an extraction's frames by item id, without loading them.

The frame stage writes ``frames_dir/manifest.jsonl`` (one record per item, its ``row``) and one
uint8 array ``frames.npy`` (N, F, S, S, 3). :class:`FrameStore` opens both once: the manifest
records are kept (one small dict per item), the array is memory-mapped, and :meth:`FrameStore.frames`
returns a read-only view of one item's rows, so memory does not grow with the number of items read
beyond the page cache the OS manages. Every later stage (teacher sampling, training, evaluation)
reads frames through this class.

Paper-size arithmetic: 110K items x 16 frames x 448 x 448 x 3 B = 1.06 TB of frames on disk; the
manifest is ~0.5 KB an item (~55 MB), the only part held in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rmsd.errors import DataError


class FrameStore:
    """Frames and manifest records of one extraction, keyed by item id.

    Args:
        frames_dir: directory with ``manifest.jsonl`` and ``frames.npy`` (the ``out_dir`` of
            :func:`rmsd.frames.extract_frames`).

    Raises:
        MissingArtifactError: a file is missing (names it).
        DataError: the array is not (N, F, S, S, 3) uint8, or the manifest disagrees with it
            (names the file and the problem).
    """

    def __init__(self, frames_dir: str | os.PathLike):
        from rmsd.frames.extract import load_frames

        self.frames_dir = Path(frames_dir)
        self._records, self._array = load_frames(self.frames_dir)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def ids(self) -> list[str]:
        """Item ids in manifest order."""
        return list(self._records)

    def record(self, item_id: str) -> dict:
        """The manifest record of ``item_id`` (num_frames, indices, timestamps_s, fps, sizes, row, ...).

        Raises:
            DataError: unknown id (names the manifest).
        """
        try:
            return self._records[item_id]
        except KeyError:
            raise DataError(f"{self.frames_dir / 'manifest.jsonl'}: no record for item {item_id!r}") from None

    def frames(self, item_id: str) -> np.ndarray:
        """uint8 (F, H, W, 3) frames of ``item_id``: a read-only memory-mapped view (no copy).

        Raises:
            DataError: unknown id.
        """
        return self._array[self.record(item_id)["row"]]


def open_frames(frames_dir: str | os.PathLike) -> FrameStore:
    """:class:`FrameStore` over ``frames_dir`` (see its errors)."""
    return FrameStore(frames_dir)
