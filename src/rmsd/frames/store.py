"""The one frame reader every stage uses: item id -> manifest record and memory-mapped frames.

Two on-disk layouts are read (both written by :mod:`rmsd.frames`):

* sharded (the pipeline's, :mod:`rmsd.frames.shards`): ``manifest.jsonl`` whose records carry
  ``shard`` and ``row``, the frames of shard ``i`` in ``shards/{i}.npy`` (an (R_i, F, S_h, S_w, 3)
  uint8 array, one row per item of the shard; rows of items the extraction skipped stay zero and are
  not in the manifest), and ``index.json`` listing every shard's file and shape;
* single array (:func:`rmsd.frames.extract.extract_frames`): records without ``shard``, all rows
  in ``frames.npy``.

Nothing scales with the frames: each shard is opened with ``np.load(mmap_mode="r")`` (the header
only, ``MADV_RANDOM`` so training's random row order reads no neighbouring items) and
:meth:`FrameStore.frames` returns a read-only view of one row. Nothing scales much with the items
either: opening keeps per item an id -> position entry and three int64s (byte offset of its manifest
line, shard, row), about 120 B, and :meth:`FrameStore.record` parses one line on demand.
Paper size: 110K items x 16 frames x 448 x 448 x 3 B = 1.06 TB of frames on disk, ~13 MB of index
in memory.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rmsd.errors import DataError, MissingArtifactError

MANIFEST_FILE = "manifest.jsonl"
INDEX_FILE = "index.json"
LEGACY_FRAMES_FILE = "frames.npy"
SHARDS_DIR = "shards"
_SINGLE = -1  # shard code of the single-array layout


class NoFramesError(DataError, KeyError):
    """An item id that the extraction has no frames for (skipped, or not in this dataset)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


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
    mm = getattr(arr, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return arr


class FrameStore:
    """Read-only access to one frame extraction (``frames_dir``), by item id.

    ``item_id in store``, ``len(store)``, ``iter(store)`` / ``store.ids()`` (manifest order),
    ``store.record(id)`` (the manifest record: ``num_frames``, ``indices``, ``timestamps_s``,
    ``fps``, sizes, decoder, ...), ``store.frames(id)`` -> uint8 (F, H, W, 3) read-only
    memory-mapped view (no copy; wrap in ``np.array`` to materialise). A store pickles without its
    open files (DataLoader workers reopen them on first use).

    Raises (at construction):
        MissingArtifactError: ``manifest.jsonl`` or a frames file it refers to does not exist.
        DataError: a malformed manifest line (names the file and line), an ``item_id`` that is
            not a non-empty string, a duplicate ``item_id``, two items on the same
            ``shard``/``row`` (names both lines), a ``shard``/``row`` outside its array, a frames file that is not a (N, F, S, S, 3) uint8
            array, an ``index.json`` that disagrees with a shard's shape, or (single-array layout)
            a record count different from the array's rows (outputs of different runs).
    """

    def __init__(self, frames_dir: str | os.PathLike):
        self.dir = Path(frames_dir)
        self.manifest_path = self.dir / MANIFEST_FILE
        if not self.manifest_path.exists():
            raise MissingArtifactError(
                f"{self.manifest_path}: expected file does not exist (run frame extraction)"
            )
        index = self._read_index()
        self._arrays: dict[int, np.ndarray] = {}
        self._fh = None
        self._pos: dict[str, int] = {}
        offs, shards, rows = [], [], []
        sharded = index is not None
        slot_line: dict[tuple[int, int], int] = {}  # (shard, row) -> manifest line; dropped after
        with open(self.manifest_path, "rb") as f:
            pos = 0
            for ln, line in enumerate(f, 1):
                start, pos = pos, pos + len(line)
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    iid, row = rec["item_id"], rec["row"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{self.manifest_path}:{ln}: not a manifest record with "
                                    "item_id and row") from None
                if not isinstance(iid, str) or not iid:
                    raise DataError(f"{self.manifest_path}:{ln}: item_id must be a non-empty "
                                    f"string, got {type(iid).__name__} {iid!r}")
                if not offs:
                    sharded = sharded or "shard" in rec
                shard = rec.get("shard") if sharded else _SINGLE
                if sharded and (isinstance(shard, bool) or not isinstance(shard, int) or shard < 0):
                    raise DataError(f"{self.manifest_path}:{ln}: item {iid!r} has no valid shard "
                                    f"({shard!r})")
                arr = self._array(shard, index)
                if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(arr):
                    raise DataError(f"{self.manifest_path}:{ln}: item {iid!r} row {row!r} outside "
                                    f"{self._path(shard)} with {len(arr)} rows")
                if iid in self._pos:
                    raise DataError(f"{self.manifest_path}:{ln}: duplicate item_id {iid!r}")
                if (shard, row) in slot_line:
                    raise DataError(
                        f"{self.manifest_path}:{ln}: item {iid!r} points at row {row} of "
                        f"{self._path(shard)}, which line {slot_line[shard, row]} already holds "
                        "(outputs of different runs mixed); rerun extraction")
                slot_line[shard, row] = ln
                self._pos[iid] = len(offs)
                offs.append(start)
                shards.append(shard)
                rows.append(row)
        if not sharded and offs and len(offs) != len(self._arrays[_SINGLE]):
            raise DataError(
                f"{self.manifest_path} has {len(offs)} records but {self._path(_SINGLE)} has "
                f"{len(self._arrays[_SINGLE])} rows: outputs of different or interrupted runs; "
                "rerun extraction"
            )
        self._index = index
        self._off = np.asarray(offs, dtype=np.int64)
        self._shard = np.asarray(shards, dtype=np.int64)
        self._row = np.asarray(rows, dtype=np.int64)

    def _path(self, shard: int) -> Path:
        return self.dir / LEGACY_FRAMES_FILE if shard == _SINGLE else shard_file(self.dir, shard)

    def _read_index(self) -> dict | None:
        path = self.dir / INDEX_FILE
        if not path.exists():
            return None
        try:
            index = json.loads(path.read_text())
            return {int(s["shard"]): tuple(s["shape"]) for s in index["shards"]}
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: malformed frame index ({type(e).__name__}: {e})") from None

    def _array(self, shard: int, index: dict | None) -> np.ndarray:
        arr = self._arrays.get(shard)
        if arr is None:
            path = self._path(shard)
            arr = open_frame_array(path)
            if index is not None and tuple(arr.shape) != index.get(shard, tuple(arr.shape)):
                raise DataError(
                    f"{path}: shape {tuple(arr.shape)} differs from {self.dir / INDEX_FILE} "
                    f"({list(index[shard])}): outputs of different runs; rerun extraction"
                )
            self._arrays[shard] = arr
        return arr

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._pos

    def __len__(self) -> int:
        return len(self._pos)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pos)

    def ids(self) -> list[str]:
        """Item ids in manifest order."""
        return list(self._pos)

    def _i(self, item_id: str) -> int:
        try:
            return self._pos[item_id]
        except KeyError:
            raise NoFramesError(f"{self.manifest_path}: no record for item {item_id!r} (item "
                                f"{item_id!r} has no frames: skipped or not extracted)") from None

    def record(self, item_id: str) -> dict:
        """The manifest record of ``item_id``, parsed from its line.

        Raises:
            NoFramesError (a DataError and a KeyError): the item is not in the manifest; names it.
        """
        i = self._i(item_id)
        if self._fh is None:
            self._fh = open(self.manifest_path, "rb")  # noqa: SIM115 (kept for the store's life)
        self._fh.seek(int(self._off[i]))
        return json.loads(self._fh.readline())

    def frames(self, item_id: str) -> np.ndarray:
        """uint8 (F, H, W, 3) RGB frames of ``item_id``: a read-only memory-mapped view.

        Raises:
            NoFramesError (a DataError and a KeyError): the item is not in the manifest; names it.
        """
        i = self._i(item_id)
        return self._array(int(self._shard[i]), self._index)[int(self._row[i])]

    def single_array(self) -> np.ndarray:
        """The whole (N, F, S, S, 3) array of a single-array extraction (``frames.npy``).

        Raises:
            DataError: the extraction is sharded (read it by item id with :meth:`frames`).
        """
        if len(self._shard) and int(self._shard[0]) != _SINGLE or self._index is not None:
            raise DataError(f"{self.dir}: a sharded frame extraction has no single array; "
                            "read frames by item id (rmsd.frames.open_frames)")
        return self._array(_SINGLE, None)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_fh"] = None
        d["_arrays"] = {}  # memory maps are reopened in the receiving process, never pickled whole
        return d


def open_frames(frames_dir: str | os.PathLike) -> FrameStore:
    """Open the frame extraction in ``frames_dir`` (see :class:`FrameStore`, errors included)."""
    return FrameStore(frames_dir)
