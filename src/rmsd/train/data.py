"""The streaming training data path: selection records -> per-batch encoded examples.

Nothing here holds frames, pixel tensors or response texts of the whole selection:

* :func:`line_offsets` indexes a JSONL file by the byte offset of each line (8 B a line);
* :func:`stage_split` assigns the items of ``items.jsonl`` to Stage 1 and Stage 2 (disjoint, seeded,
  the same for every variant and training seed);
* :func:`scan_selection` checks every selection record once, streaming (unknown item, missing
  frames, empty pool, unusable matching distribution), and keeps only offsets: a
  :class:`StageIndex` of int64 arrays;
* :class:`SFTDataset` / :class:`RLDataset` (``torch.utils.data.Dataset``) read records, items and
  frames (through :class:`rmsd.frames.FrameStore`, memory-mapped) on demand and encode one batch per
  ``__getitems__`` call, inside DataLoader workers when ``num_workers > 0``;
* :class:`EpochBatchSampler` feeds each rank its share of each global batch from a stream of
  seeded epoch permutations (DistributedSampler semantics: every rank computes the same
  permutation, rank r takes its slice), so an epoch sees every example exactly once, and the
  position in the stream is a function of the step (resume = start at the step).

Paper-size arithmetic (60K Stage-2 items, 8 ranks): offsets 3 arrays x 60K x 8 B = 1.4 MB and the
item-id -> offset map of the distill split (~110K ids x ~100 B = 11 MB) per rank, against
38.5 MB an item (4.2 TB per rank) when every item was encoded up front into float32 pixels.
Encoded pixels of one global batch of 128 at 16 frames x 448 px: 16 per rank x 38.5 MB = 0.6 GB,
times the prefetch depth (``num_workers x 2`` batches).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rmsd.errors import ConfigError, DataError, TrainingError
from rmsd.frames.store import FrameStore, open_frames
from rmsd.io import stable_hash


def line_offsets(path: str | Path) -> np.ndarray:
    """Byte offset of every non-blank line of a JSONL file, int64 (n_lines,), read streaming."""
    out = []
    with open(path, "rb") as f:
        pos = 0
        for line in f:
            if line.strip():
                out.append(pos)
            pos += len(line)
    return np.asarray(out, dtype=np.int64)


def read_line(f, offset: int, path) -> dict:
    """The JSON record starting at byte ``offset`` of the open binary file ``f``.

    Raises:
        DataError: the line is not a JSON object (names the file and offset).
    """
    f.seek(int(offset))
    line = f.readline()
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: byte {offset}: not valid JSON ({e})") from None
    if not isinstance(rec, dict):
        raise DataError(f"{path}: byte {offset}: expected a JSON object")
    return rec


def stage_split(items_path, n_stage1: int | None, n_stage2: int | None, seed: int = 0
                ) -> tuple[set[str] | None, set[str] | None]:
    """Disjoint item sets of Stage 1 and Stage 2 (paper section 4.1: 50K SFT + 60K RL, disjoint).

    Items are ranked by ``stable_hash(["stage_split", id, seed])``; Stage 1 takes the first
    ``n_stage1``, Stage 2 the next ``n_stage2``. ``None`` for one size means "every item the other
    stage does not take"; ``None`` for both means no split (both stages read every item, the
    behaviour before the split existed). The ranking depends on the ids and the seed only, so every
    variant and training seed gets the same split, and Stage 1 drops the same items in all rows.

    Returns:
        (stage-1 ids, stage-2 ids), each None for "all items".

    Raises:
        ConfigError: the two sizes exceed the number of items.
    """
    if n_stage1 is None and n_stage2 is None:
        return None, None
    ids = []
    with open(items_path, "rb") as f:
        for line in f:
            if line.strip():
                ids.append(json.loads(line)["id"])
    ranked = sorted(ids, key=lambda i: stable_hash(["stage_split", i, seed]))
    n1 = len(ranked) - n_stage2 if n_stage1 is None else n_stage1
    n2 = len(ranked) - n1 if n_stage2 is None else n_stage2
    if n1 < 0 or n2 < 0 or n1 + n2 > len(ranked):
        raise ConfigError(f"stage1.n_items ({n_stage1}) + stage2.n_items ({n_stage2}) exceed the "
                          f"{len(ranked)} items of {items_path}")
    return set(ranked[:n1]), set(ranked[n1:n1 + n2])


@dataclass
class StageIndex:
    """Where a stage's examples live: byte offsets only (no texts, no frames).

    ``sel_off[j]`` / ``item_off[j]``: offsets of record j in the selection and of its item in
    ``items.jsonl``. ``ex_rec[e]`` / ``ex_tgt[e]``: example e's record and SFT-target index (a
    record with ``sft_targets`` gives one SFT example per target: "SFT on all K").
    """

    selection: Path
    items: Path
    frames_dir: Path
    sel_off: np.ndarray
    item_off: np.ndarray
    ex_rec: np.ndarray
    ex_tgt: np.ndarray
    counts: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ex_rec)

    @property
    def n_records(self) -> int:
        """Selected items of this stage."""
        return len(self.sel_off)


def sft_texts(rec: dict) -> list[str]:
    """A selection record's Stage-1 targets: ``sft_targets`` (all K) or ``[sft_target]``."""
    if isinstance(rec.get("sft_targets"), list):
        return [str(t) for t in rec["sft_targets"]]
    return [rec["sft_target"]]


def _check_record(rec: dict, where: str) -> None:
    """Raise DataError (prefixed by ``where``, the file:line and item) when a selection record's
    ``pool`` is not a list of objects with a string ``text``, or its ``sft_targets`` (when
    present) is not a list of strings. An empty pool or an empty ``sft_targets`` list is left to
    the stage's ``on_empty_pool`` policy."""
    pool = rec["pool"]
    if not isinstance(pool, list):
        raise DataError(f"{where}: pool must be a list of objects, got {type(pool).__name__}")
    for k, x in enumerate(pool):
        if not isinstance(x, dict) or not isinstance(x.get("text"), str):
            raise DataError(f"{where}: pool[{k}] must be an object with a string 'text', got "
                            f"{x!r:.80}")
    if "sft_targets" in rec:
        t = rec["sft_targets"]
        if not isinstance(t, list) or not all(isinstance(x, str) for x in t):
            raise DataError(f"{where}: sft_targets must be a list of strings, got {t!r:.80}")


def pool_problem(rec: dict) -> str | None:
    """Why a record's pool cannot be sampled from in Stage 2 (None when it can)."""
    pool = rec.get("pool") or []
    if not pool:
        return "empty pool"
    p = np.array([x.get("p", float("nan")) for x in pool], dtype=float)
    q = [x.get("q") for x in pool]
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in q):
        return "pool q values are not numbers"
    if not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        return f"matching distribution p = {p.tolist()} is not a distribution"
    return None


def scan_selection(selection, items, frames_dir, only: set[str] | None, *, on_missing: str,
                   on_empty: str, need_pool: bool, sft: bool, store: FrameStore | None = None
                   ) -> StageIndex:
    """Check every selection record of one stage, streaming, and index what survives.

    Args:
        selection, items, frames_dir: the selection JSONL, ``items.jsonl``, the frame directory.
        only: item ids of this stage (:func:`stage_split`); None = all.
        on_missing: "fail" | "skip" an item without frames.
        on_empty: "fail" | "skip" a record with an empty pool / no SFT target (or, when
            ``need_pool``, an unusable matching distribution).
        need_pool: Stage 2 adversarial: the pool must be a distribution.
        sft: index one example per SFT target (Stage 1) instead of one per record.

    Returns:
        The :class:`StageIndex`; ``counts`` holds ``n_missing_frames``, ``n_empty_pool``.

    Raises:
        DataError: a record names an unknown item, a non-string ``item_id``, an item selected
            twice, a pool that is not a list of objects with a string ``text``, ``sft_targets``
            that is not a list of strings, or a problem under a "fail" policy (names the file,
            line and item). An empty ``sft_targets`` list (Stage 1) counts as an empty pool.
        TrainingError: nothing is left.
    """
    selection, items = Path(selection), Path(items)
    store = store or open_frames(frames_dir)
    item_at: dict[str, int] = {}
    with open(items, "rb") as f:
        pos = 0
        for line in f:
            if line.strip():
                try:
                    iid = json.loads(line)["id"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{items}: byte {pos}: not a JSON item with an 'id'") from None
                if only is None or iid in only:
                    item_at[iid] = pos
            pos += len(line)
    sel_off, item_off, ex_rec, ex_tgt = [], [], [], []
    counts = {"n_missing_frames": 0, "n_empty_pool": 0, "n_other_stage": 0}
    seen: dict[str, int] = {}  # item id -> line (one entry per selected item, like item_at)
    with open(selection, "rb") as f:
        pos, lineno = 0, 0
        for line in f:
            lineno += 1
            start, pos = pos, pos + len(line)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                iid = rec["item_id"]
                rec["pool"], rec["sft_target"]  # noqa: B018 (required keys)
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{selection}:{lineno}: not a selection record (item_id, sft_target, "
                                "pool)") from None
            if not isinstance(iid, str) or not iid:
                raise DataError(f"{selection}:{lineno}: item_id must be a non-empty string, got "
                                f"{type(iid).__name__} {iid!r}")
            where = f"{selection}:{lineno}: item {iid!r}"
            if iid in seen:
                raise DataError(f"{where} is selected twice (first at line {seen[iid]})")
            seen[iid] = lineno
            _check_record(rec, where)
            if iid not in item_at:
                if only is not None and iid not in only:
                    counts["n_other_stage"] += 1
                    continue
                raise DataError(f"{where} not in {items}")
            if iid not in store:
                if on_missing == "fail":
                    raise DataError(f"{where} has no frames in {frames_dir}/manifest.jsonl (set "
                                    "stage1.on_missing_frames: skip to leave it out)")
                counts["n_missing_frames"] += 1
                continue
            why = None
            if not rec["pool"] or not isinstance(rec["sft_target"], str):  # "" is a raw, empty response
                why = "has an empty pool or no SFT target"
            elif sft and not sft_texts(rec):
                why = "has an empty sft_targets list"
            elif need_pool and (p := pool_problem(rec)) is not None:
                why = f"has an unusable pool: {p}"
            if why is not None:
                if on_empty == "fail":
                    raise DataError(f"{where} {why} (set stage2.rl.on_empty_pool: skip to leave it out)")
                counts["n_empty_pool"] += 1
                continue
            r = len(sel_off)
            sel_off.append(start)
            item_off.append(item_at[iid])
            n_t = len(sft_texts(rec)) if sft else 1
            ex_rec.extend([r] * n_t)
            ex_tgt.extend(range(n_t))
    if not sel_off:
        raise TrainingError(f"{selection}: every selected item of this stage was dropped ({counts}); "
                            "nothing to train on")
    return StageIndex(selection, items, Path(frames_dir), np.asarray(sel_off, np.int64),
                      np.asarray(item_off, np.int64), np.asarray(ex_rec, np.int64),
                      np.asarray(ex_tgt, np.int32), counts)


class _Reader:
    """Per-process file handles and frame store (opened lazily, so DataLoader workers open their own)."""

    def __init__(self, index: StageIndex):
        self.index = index
        self._sel = self._items = self._store = None

    def records(self, rows: list[int]) -> tuple[list[dict], list[dict], list[np.ndarray], list[dict]]:
        """(selection records, items, frames (F, H, W, 3) uint8, manifest records) of ``rows``."""
        ix = self.index
        if self._sel is None:
            self._sel = open(ix.selection, "rb")
            self._items = open(ix.items, "rb")
            self._store = open_frames(ix.frames_dir)
        recs = [read_line(self._sel, ix.sel_off[r], ix.selection) for r in rows]
        items = [read_line(self._items, ix.item_off[r], ix.items) for r in rows]
        frames = [np.array(self._store.frames(it["id"])) for it in items]  # one item's copy (writable)
        metas = [self._store.record(it["id"]) for it in items]
        return recs, items, frames, metas

    def __getstate__(self):  # file handles do not travel to spawned workers
        return {"index": self.index, "_sel": None, "_items": None, "_store": None}


class _StageDataset(torch.utils.data.Dataset):
    """A stage's examples, read and encoded per batch on demand (``__getitems__``, which the
    DataLoader calls with a whole batch of indices, so the processor runs once per batch)."""

    def __init__(self, index: StageIndex, encoder):
        self.index, self.encoder, self.reader = index, encoder, _Reader(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]

    def _encoded(self, idx: list[int]):
        """(selection records, items, frames, manifest records, encoded prompts) of examples ``idx``."""
        rows = [int(self.index.ex_rec[i]) for i in idx]
        recs, items, frames, metas = self.reader.records(rows)
        return recs, items, frames, metas, self.encoder.encode(items, frames, metadata=metas)


class SFTDataset(_StageDataset):
    """Stage-1 examples ``(EncodedPrompt, target ids (S_r,))``, encoded per batch on demand.

    Args:
        index: the stage's :class:`StageIndex` (one example per SFT target).
        encoder: :class:`rmsd.models.inputs.VideoPromptEncoder`.
    """

    def __getitems__(self, idx: list[int]):
        recs, _, _, _, prompts = self._encoded(idx)
        texts = [sft_texts(r)[int(self.index.ex_tgt[i])] for r, i in zip(recs, idx)]
        return list(zip(prompts, self.encoder.tokenize_responses(texts)))


class RLDataset(_StageDataset):
    """Stage-2 examples (:class:`rmsd.train.rl.RLExample`), encoded per batch on demand; ``p`` is
    renormalised to sum to 1. ``raw_video``: also attach each item's frames and manifest record
    (the ``vllm`` rollout engine takes the raw video)."""

    def __init__(self, index: StageIndex, encoder, raw_video: bool = False):
        super().__init__(index, encoder)
        self.raw_video = raw_video

    def __getitems__(self, idx: list[int]):
        from rmsd.train.rl import RLExample

        recs, items, frames, metas, prompts = self._encoded(idx)
        out = []
        for it, p, r, fr, md in zip(items, prompts, recs, frames, metas):
            pp = np.array([x["p"] for x in r["pool"]], dtype=float)
            out.append(RLExample(item=it, prompt=p, pool_texts=[x["text"] for x in r["pool"]],
                                 pool_q=np.array([x["q"] for x in r["pool"]], dtype=float),
                                 pool_p=pp / pp.sum() if pp.sum() > 0 else pp,
                                 **({"frames": fr, "record": md} if self.raw_video else {})))
        return out


def steps_for(epochs: float, n_examples: int, global_batch: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``n_examples`` at ``global_batch`` a step:
    ``ceil(epochs x n / batch)`` (paper: 1 epoch of 50K at 128 = 391 Stage-1 steps).

    >>> steps_for(1, 50_000, 128), steps_for(1, 60_000, 128), steps_for(0.5, 10, 4)
    (391, 469, 2)
    """
    if epochs <= 0:
        raise ConfigError(f"epochs must be > 0, got {epochs}")
    return max(1, math.ceil(epochs * n_examples / global_batch - 1e-9))


class EpochBatchSampler(torch.utils.data.Sampler):
    """Per-rank index batches from a stream of seeded epoch permutations.

    The stream is ``perm(0) ++ perm(1) ++ ...`` with ``perm(e)`` a permutation of ``range(n)``
    drawn from ``numpy.random.default_rng([seed, e])`` (the same on every rank). Global step s
    covers stream positions ``[s*B, (s+1)*B)`` and rank r takes the slice ``[s*B + r*b, s*B +
    (r+1)*b)`` with ``b = B / world``: every example is seen exactly once in each epoch's n
    positions, and the batch of a step depends on (seed, step) only, so resuming at a step restores
    the position in the epoch. When n does not divide by B, an epoch's last batch continues into
    the next permutation.

    Args:
        n: examples in the dataset.
        global_batch: B over all ranks (divisible by ``world``).
        rank, world: this process and the number of processes.
        seed: permutation seed.
        start, stop: the steps to yield, ``[start, stop)``.
    """

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int, start: int, stop: int):
        if n < 1:
            raise TrainingError("no examples to sample from")
        if global_batch % world:
            raise ConfigError(f"batch {global_batch} does not divide by the {world} processes")
        self.n, self.B, self.rank, self.world, self.seed = n, global_batch, rank, world, seed
        self.b = global_batch // world
        self.start, self.stop = start, stop
        self._perm_epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> np.ndarray:
        """The example order of ``epoch`` (int64 (n,))."""
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def batch(self, step: int) -> list[int]:
        """This rank's example indices at ``step``."""
        lo = step * self.B + self.rank * self.b
        out = []
        for pos in range(lo, lo + self.b):
            out.append(int(self.permutation(pos // self.n)[pos % self.n]))
        return out

    def epoch_at(self, step: int) -> float:
        """Epochs completed before ``step`` (fractional)."""
        return step * self.B / self.n

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _as_list(batch):
    return batch


def make_loader(dataset, sampler: EpochBatchSampler, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` with ``sampler`` batches; each batch arrives as the list the
    dataset's ``__getitems__`` returns (encoding runs in ``num_workers`` worker processes, or in
    this one when 0)."""
    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    kw = {"prefetch_factor": 2, "persistent_workers": False} if num_workers > 0 else {}
    # its own generator: a DataLoader iterator otherwise draws its worker base seed from the global
    # torch RNG, which would shift the rollout sampling of a resumed run against an uninterrupted one
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=_as_list,
                                       num_workers=num_workers, generator=torch.Generator().manual_seed(0), **kw)
