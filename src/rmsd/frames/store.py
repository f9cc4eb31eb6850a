"""The one frame reader every stage uses: item id -> manifest record and memory-mapped frames.

Two on-disk layouts are read (both written by :mod:`rmsd.frames.extract`):

* sharded (the pipeline's): ``manifest.jsonl`` whose records carry ``shard`` and ``row``, the
  frames of shard ``i`` in ``shards/{i}.npy`` (an (R_i, F, S_h, S_w, 3) uint8 array, one row per
  item of the shard; rows of items the extraction skipped stay zero and are not in the manifest),
  and ``index.json`` listing every shard's file and shape;
* single array (older extractions, :func:`rmsd.frames.extract.extract_frames`): records without
  ``shard``, all rows in ``frames.npy``.

Frames are never loaded up front: each shard is opened with ``np.load(mmap_mode="r")`` (the header
only) and :meth:`FrameStore.frames` returns a read-only view of one row, so opening a 1 TB
extraction costs the manifest parse (about 1 KB of JSON per item) and nothing per frame.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rmsd.errors import DataError, MissingArtifactError
from rmsd.io import read_jsonl

MANIFEST_FILE = "manifest.jsonl"
INDEX_FILE = "index.json"
LEGACY_FRAMES_FILE = "frames.npy"
SHARDS_DIR = "shards"


def shard_file(frames_dir: str | os.PathLike, shard: int) -> Path:
    """Path of shard ``shard``'s frames array: ``frames_dir/shards/{shard}.npy``."""
    return Path(frames_dir) / SHARDS_DIR / f"{int(shard)}.npy"


def open_frame_array(path: Path) -> np.ndarray:
    """A (R, F, H, W, 3) uint8 .npy opened read-only and memory-mapped (never unpickled).

    Raises:
        MissingArtifactError: the file does not exist.
        DataError: not a readable .npy, or not a 5-d uint8 array with 3 channels; names the file.
    """
    if not path.exists():
        raise MissingArtifactError(f"{path}: expected file does not exist (run frame extraction)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e}); rerun extraction") from None
    if arr.ndim != 5 or arr.dtype != np.uint8 or arr.shape[-1] != 3:
        raise DataError(
            f"{path}: expected a (N, F, S, S, 3) uint8 array, got {arr.shape} {arr.dtype}"
        )
    return arr


class FrameStore:
    """Read-only access to one frame extraction (``frames_dir``), by item id.

    ``item_id in store``, ``len(store)``, ``store.ids()`` (manifest order), ``store.record(id)``
    (the manifest record: ``num_frames``, ``indices``, ``timestamps_s``, ``fps``, sizes, decoder,
    ...), ``store.frames(id)`` -> uint8 (F, H, W, 3) read-only memory-mapped view (no copy; wrap
    in ``np.asarray``/``np.array`` to materialise).

    Raises (at construction):
        MissingArtifactError: ``manifest.jsonl`` or a frames file it refers to does not exist.
        DataError: a malformed manifest (names the file and line), a duplicate ``item_id``, a
            ``shard``/``row`` outside its array, a frames file that is not a (N, F, S, S, 3) uint8
            array, an ``index.json`` that disagrees with a shard's shape, or (single-array layout)
            a record count different from the array's rows (outputs of different runs).
    """

    def __init__(self, frames_dir: str | os.PathLike):
        self.dir = Path(frames_dir)
        manifest_path = self.dir / MANIFEST_FILE
        if not manifest_path.exists():
            raise MissingArtifactError(
                f"{manifest_path}: expected file does not exist (run frame extraction)"
            )
        records = read_jsonl(manifest_path, required=("item_id", "row"))
        self._records: dict[str, dict] = {}
        self._arrays: dict[int | None, np.ndarray] = {}
        index = self._read_index()
        sharded = any("shard" in r for r in records) or index is not None
        if not sharded:
            legacy = self.dir / LEGACY_FRAMES_FILE
            self._arrays[None] = open_frame_array(legacy)
            if len(records) != len(self._arrays[None]):
                raise DataError(
                    f"{manifest_path} has {len(records)} records but {legacy} has "
                    f"{len(self._arrays[None])} rows: outputs of different or interrupted runs; "
                    "rerun extraction"
                )
        for ln, rec in enumerate(records, 1):
            iid, row = rec["item_id"], rec["row"]
            shard = rec.get("shard") if sharded else None
            if sharded and (isinstance(shard, bool) or not isinstance(shard, int) or shard < 0):
                raise DataError(f"{manifest_path}:{ln}: item {iid!r} has no valid shard ({shard!r})")
            arr = self._array(shard, index)
            if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(arr):
                where = shard_file(self.dir, shard) if sharded else self.dir / LEGACY_FRAMES_FILE
                raise DataError(
                    f"{manifest_path}:{ln}: item {iid!r} row {row!r} outside {where} with "
                    f"{len(arr)} rows"
                )
            if iid in self._records:
                raise DataError(f"{manifest_path}: duplicate item_id {iid!r}")
            self._records[iid] = rec

    def _read_index(self) -> dict | None:
        path = self.dir / INDEX_FILE
        if not path.exists():
            return None
        try:
            index = json.loads(path.read_text())
            shards = {int(s["shard"]): tuple(s["shape"]) for s in index["shards"]}
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: malformed frame index ({type(e).__name__}: {e})") from None
        return shards

    def _array(self, shard: int | None, index: dict | None) -> np.ndarray:
        if shard not in self._arrays:
            path = shard_file(self.dir, shard)
            arr = open_frame_array(path)
            if index is not None and tuple(arr.shape) != index.get(shard, tuple(arr.shape)):
                raise DataError(
                    f"{path}: shape {tuple(arr.shape)} differs from {self.dir / INDEX_FILE} "
                    f"({list(index[shard])}): outputs of different runs; rerun extraction"
                )
            self._arrays[shard] = arr
        return self._arrays[shard]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def ids(self) -> list[str]:
        """Item ids in manifest order."""
        return list(self._records)

    def record(self, item_id: str) -> dict:
        """The manifest record of ``item_id``.

        Raises:
            KeyError: the item is not in the manifest (skipped or not extracted); names it.
        """
        try:
            return self._records[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} has no frames in {self.dir / MANIFEST_FILE}") from None

    def frames(self, item_id: str) -> np.ndarray:
        """uint8 (F, H, W, 3) RGB frames of ``item_id``: a read-only memory-mapped view.

        Raises:
            KeyError: the item is not in the manifest; names it.
        """
        rec = self.record(item_id)
        return self._arrays[rec.get("shard") if None not in self._arrays else None][rec["row"]]

    def single_array(self) -> np.ndarray:
        """The whole (N, F, S, S, 3) array of a single-array extraction (``frames.npy``).

        Raises:
            DataError: the extraction is sharded (read it by item id with :meth:`frames`).
        """
        if None not in self._arrays:
            raise DataError(f"{self.dir}: a sharded frame extraction has no single array; "
                            "read frames by item id (rmsd.frames.open_frames)")
        return self._arrays[None]


def open_frames(frames_dir: str | os.PathLike) -> FrameStore:
    """Open the frame extraction in ``frames_dir`` (see :class:`FrameStore`, errors included)."""
    return FrameStore(frames_dir)
