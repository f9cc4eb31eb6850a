"""Read-only access to an extraction's frames by item id, without loading them.

The frame stage writes ``frames_dir/manifest.jsonl`` (one record per item, its ``row``) and one
uint8 array ``frames.npy`` (N, F, S, S, 3). :class:`FrameStore` opens both once: the manifest
records are kept (one small dict per item), the array is memory-mapped, and :meth:`FrameStore.frames`
returns a read-only view of one item's rows, so memory does not grow with the number of items read
beyond the page cache the OS manages. Every later stage (teacher sampling, training, evaluation)
reads frames through this class.

Paper-size arithmetic: 110K items x 16 frames x 448 x 448 x 3 B = 1.06 TB of frames on disk; in
memory only an id -> position map and two int64 arrays (~120 B an item, ~13 MB), records are parsed
from the manifest on demand.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import numpy as np

from rmsd.errors import DataError, MissingArtifactError


class FrameStore:
    """Frames and manifest records of one extraction, keyed by item id.

    Opening reads the manifest once, streaming, and keeps per item only its byte offset in the
    manifest and its row (a dict entry and 16 B); :meth:`record` parses one line on demand.

    Args:
        frames_dir: directory with ``manifest.jsonl`` and ``frames.npy`` (the ``out_dir`` of
            :func:`rmsd.frames.extract_frames`).

    Raises:
        MissingArtifactError: a file is missing (names it).
        DataError: the array is not (N, F, S, S, 3) uint8, a manifest line is not a record with
            ``item_id`` and an integer ``row``, a row is outside the array or an id repeats, or the
            record count differs from the array's rows (names the file and the problem).
    """

    def __init__(self, frames_dir: str | os.PathLike):
        from rmsd.frames.extract import FRAMES_FILE, MANIFEST_FILE

        self.frames_dir = Path(frames_dir)
        self.manifest_path = self.frames_dir / MANIFEST_FILE
        frames_path = self.frames_dir / FRAMES_FILE
        for p in (frames_path, self.manifest_path):
            if not p.exists():
                raise MissingArtifactError(f"{p}: expected file does not exist (run frame extraction)")
        try:
            self._array = np.load(frames_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{frames_path}: not a readable .npy array ({e}); rerun extraction") from None
        a = self._array
        mm = getattr(a, "_mmap", None)
        if mm is not None and hasattr(mmap, "MADV_RANDOM"):
            # training reads rows in a random order: no read-ahead of neighbouring items' pages
            mm.madvise(mmap.MADV_RANDOM)
        if a.ndim != 5 or a.dtype != np.uint8 or a.shape[-1] != 3:
            raise DataError(f"{frames_path}: expected a (N, F, S, S, 3) uint8 array, got {a.shape} {a.dtype}")
        self._index: dict[str, int] = {}
        offs, rows = [], []
        with open(self.manifest_path, "rb") as f:
            pos = 0
            for lineno, line in enumerate(f, 1):
                start, pos = pos, pos + len(line)
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    iid, row = rec["item_id"], rec["row"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{self.manifest_path}:{lineno}: not a manifest record with item_id and row") \
                        from None
                if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(a):
                    raise DataError(f"{self.manifest_path}: item {iid!r} row {row} outside {frames_path} with "
                                    f"{len(a)} rows")
                if iid in self._index:
                    raise DataError(f"{self.manifest_path}: duplicate item_id {iid!r}")
                self._index[iid] = len(offs)
                offs.append(start)
                rows.append(row)
        if len(offs) != len(a):
            raise DataError(f"{self.manifest_path} has {len(offs)} records but {frames_path} has {len(a)} rows: "
                            "outputs of different or interrupted runs; rerun extraction")
        self._off = np.asarray(offs, dtype=np.int64)
        self._row = np.asarray(rows, dtype=np.int64)
        self._fh = None

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> list[str]:
        """Item ids in manifest order."""
        return list(self._index)

    def _pos(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except KeyError:
            raise DataError(f"{self.manifest_path}: no record for item {item_id!r}") from None

    def record(self, item_id: str) -> dict:
        """The manifest record of ``item_id`` (num_frames, indices, timestamps_s, fps, sizes, row, ...),
        parsed from its line.

        Raises:
            DataError: unknown id (names the manifest).
        """
        i = self._pos(item_id)
        if self._fh is None:
            self._fh = open(self.manifest_path, "rb")  # noqa: SIM115 (kept open for the store's life)
        self._fh.seek(int(self._off[i]))
        return json.loads(self._fh.readline())

    def frames(self, item_id: str) -> np.ndarray:
        """uint8 (F, H, W, 3) frames of ``item_id``: a read-only memory-mapped view (no copy).

        Raises:
            DataError: unknown id.
        """
        return self._array[int(self._row[self._pos(item_id)])]

    def __getstate__(self):  # a worker process reopens the manifest itself
        d = dict(self.__dict__)
        d["_fh"] = None
        return d


def open_frames(frames_dir: str | os.PathLike) -> FrameStore:
    """:class:`FrameStore` over ``frames_dir`` (see its errors)."""
    return FrameStore(frames_dir)
