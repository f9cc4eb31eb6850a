"""Resumable, cached K-sample pool generation: one teacher, one dataset, one shard.

Every sample is stored in a persistent cache as soon as it is generated, under a key made of

    teacher name, model revision, prompt hash, frame-manifest hash, sampling parameters
    (temperature, top_p, top_k, max_new_tokens), seed and the sample index k

(:func:`sample_key`). A run first looks up every (item, k < K) of its shard in the cache and asks
the backend only for the missing ones, so a killed job resumes where it stopped, raising K from 4 to
8 generates only k = 4..7, re-sharding regenerates nothing, and a new teacher generates only its
own samples. The K samples an item still needs come from one backend call (shared prefill).

The cache is a directory of JSONL files, one per writer (``shard{i}-of-{n}.jsonl``), so shards of
one dataset run in parallel without locks; a torn last line left by a kill is dropped on restart.
Shard and gathered pool files are written atomically (:mod:`rmsd.io`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rmsd.errors import DataError, TeacherError
from rmsd.frames import FrameStore, open_frames
from rmsd.io import JsonlAppender, read_jsonl, read_jsonl_resumable, stable_hash, write_jsonl
from rmsd.tasks import build_prompt
from rmsd.teachers.base import TeacherSpec, derive_seed
from rmsd.utils import get_logger

log = get_logger(__name__)

KEY_CHARS = 24
"""Hex characters of a sample key."""
POOL_FIELDS = ("item_id", "teacher", "k", "text", "finish_reason", "n_tokens")
VALID_FINISH = frozenset({"stop", "length"})
"""Finish reasons of a sample worth caching (end of turn, or the token limit)."""
ON_IDENTICAL = ("fail", "warn")
SAMPLING_HELP = (
    "the endpoint returned the same text for every sample of an item although temperature > 0: "
    "it probably decodes greedily. transformers serve: its do_sample comes from the model's "
    "generation config, so send extra_body: {generation_config: '{\"do_sample\": true}'} (or "
    "save do_sample: true in the checkpoint's generation_config.json) and send_n: false (it "
    "returns one choice per request); vllm serve: it samples when temperature > 0 unless "
    "--generation-config overrides it; use `--generation-config vllm` and check that no "
    "server-side default sets temperature 0. After fixing the server, set the teacher's `revision` "
    "(or delete its cache directory) so the cached greedy samples are not reused. To accept "
    "identical samples, set sampling.on_identical: warn or raise sampling.identical_max_share.")
_KEY_PREFIX = '{"key": "'


# ------------------------------------------------------------------------------------- cache keys


def prompt_hash(item: dict, template: str) -> str:
    """Hash of the user text the teacher sees for ``item`` (:func:`rmsd.tasks.build_prompt`)."""
    return stable_hash({"template": template, "prompt": build_prompt(item, template)})


def frames_hash(manifest_record: dict, frames: np.ndarray | None = None) -> str:
    """Hash of an item's frames as the manifest describes them: source video hash, frame indices
    and stored size. Without a ``video_sha256`` in the record, the frame bytes are hashed."""
    if manifest_record.get("video_sha256"):
        return stable_hash({"video_sha256": manifest_record["video_sha256"],
                            "indices": manifest_record.get("indices"),
                            "stored_size_px": manifest_record.get("stored_size_px")})
    if frames is None:
        raise DataError(f"manifest record of {manifest_record.get('item_id')!r} has no video_sha256")
    digest = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    return stable_hash({"frames_sha256": digest})


def sample_key(teacher: str, revision: str, prompt: str, frames: str, sampling: dict, k: int) -> str:
    """The cache key of sample ``k`` (``sampling`` holds the :class:`SamplingParams` fields).

    ``revision`` covers the model and, for served teachers, everything else that shapes the
    request (endpoint, model name, frame encoding and video mode, ``extra_body``:
    :meth:`rmsd.teachers.openai_api.OpenAITeacher.revision_of`); ``prompt`` covers the template and
    the text (:func:`prompt_hash`), ``frames`` the pixels (:func:`frames_hash`).
    """
    return stable_hash({"teacher": teacher, "revision": revision, "prompt": prompt, "frames": frames,
                        "sampling": {n: sampling[n] for n in ("temperature", "top_p", "top_k",
                                                              "max_new_tokens")},
                        "seed": sampling["seed"], "k": int(k)}, KEY_CHARS)


class SampleCache:
    """A directory of append-only JSONL files of ``{"key": ..., <sample record>}`` lines.

    Args:
        root: the directory (e.g. ``results/cache/pool/<teacher>/<dataset>``).
        writer: this process's file stem; concurrent writers must use different ones.
    """

    def __init__(self, root: str | os.PathLike, writer: str):
        self.root = Path(root)
        self.path = self.root / f"{writer}.jsonl"
        self._app: JsonlAppender | None = None

    def load(self, wanted: Iterable[str]) -> dict[str, dict]:
        """Cached records whose key is in ``wanted`` (records keep their ``key``).

        The writer's own file is repaired (a torn last line dropped); the other writers' files are
        only read, skipping unreadable lines (another job may be appending to them).
        """
        wanted = set(wanted)
        found: dict[str, dict] = {}
        if not self.root.is_dir():
            return found
        for f in sorted(self.root.glob("*.jsonl")):
            if f == self.path:
                recs: Iterable[dict] = read_jsonl_resumable(f)
            else:
                recs = _read_tolerant(f, wanted)
            for rec in recs:
                key = rec.get("key")
                if key in wanted and key not in found:
                    found[key] = rec
        return found

    def put(self, key: str, rec: dict) -> None:
        """Append one sample (flushed at once)."""
        if self._app is None:
            self._app = JsonlAppender(self.path)
        self._app.write({"key": key, **rec})

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


def _read_tolerant(path: Path, wanted: set[str]) -> Iterable[dict]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            end = len(_KEY_PREFIX) + KEY_CHARS
            if line.startswith(_KEY_PREFIX) and len(line) > end and line[end] == '"':
                if line[len(_KEY_PREFIX):end] not in wanted:
                    continue  # fast path: most lines of other shards are not ours
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield rec


# ------------------------------------------------------------------------------------- sampling


def shard_bounds(n_items: int, shard: int, n_shards: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``shard`` of ``n_shards`` contiguous, balanced shards."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return n_items * shard // n_shards, n_items * (shard + 1) // n_shards


def load_shard(items_path: str | os.PathLike, frames_dir: str | os.PathLike, shard: int = 0,
               n_shards: int = 1, on_missing: str = "fail"
               ) -> tuple[list[dict], list[dict], FrameStore, int]:
    """The items of one shard with their manifest records and the frame store (memory-mapped).

    Shards are cut from the items that have frames. ``on_missing``: "fail" raises for an item
    without frames (e.g. skipped by the frame stage), "skip" leaves it out and counts it.

    Returns:
        (items, manifest records, frame store, number of items without frames in the dataset)

    Raises:
        DataError: an item has no frames in the manifest and ``on_missing`` is "fail".
    """
    if on_missing not in ("fail", "skip"):
        raise ValueError(f"on_missing must be 'fail' or 'skip', got {on_missing!r}")
    items = read_jsonl(items_path, required=("id", "task_type", "question"))
    store = open_frames(frames_dir)
    kept = [it for it in items if it["id"] in store]
    if on_missing == "fail" and len(kept) < len(items):
        first = next(it["id"] for it in items if it["id"] not in store)
        raise DataError(f"{items_path}: item {first!r} has no frames in {frames_dir}/manifest.jsonl "
                        f"({len(items) - len(kept)} item(s) without frames)")
    n_missing = len(items) - len(kept)
    lo, hi = shard_bounds(len(kept), shard, n_shards)
    kept = kept[lo:hi]
    return kept, [store.record(it["id"]) for it in kept], store, n_missing


def sample_pool(items_path: str | os.PathLike, frames_dir: str | os.PathLike,
                out_path: str | os.PathLike, spec: TeacherSpec, K: int, *, shard: int = 0,
                n_shards: int = 1, cache_dir: str | os.PathLike | None = None, chunk_items: int = 64,
                log_every_s: float = 30.0, on_missing: str = "fail",
                identical_max_share: float = 0.9, on_identical: str = "fail") -> dict:
    """Write K samples per item of one shard from ``spec``'s teacher to ``out_path`` (JSONL).

    Args:
        items_path, frames_dir: the dataset and its frame extraction (manifest.jsonl + frames.npy).
        out_path: the shard's pool file; one record per (item, k) in item order then k:
            ``item_id, teacher, k, text, finish_reason, n_tokens``, the sampling parameters
            (``temperature, top_p, top_k, max_new_tokens, seed``), ``backend``, ``revision`` and
            ``cache_key``.
        spec: the teacher (:meth:`TeacherSpec.from_config`).
        K: samples per item.
        shard, n_shards: which contiguous part of the items this call samples.
        cache_dir: the persistent sample cache (default: ``<out_path>.cache/``).
        chunk_items: items per backend call (an item's K samples are always in one call).
        log_every_s: seconds between progress log lines (tqdm is silent in non-TTY logs).
        on_missing: items without frames: "fail" (DataError) or "skip" (counted in the stats).
        identical_max_share: with temperature > 0 and K > 1, the largest share of items whose K
            texts are all identical before ``on_identical`` applies (a server decoding greedily).
        on_identical: "fail" (TeacherError, the shard file is not written) or "warn".

    Returns:
        Stats: ``n_items``, ``n_missing_frames``, ``n_samples``, ``n_generated`` (this run),
        ``n_items_all_identical`` and ``share_all_identical`` (items whose K texts are equal),
        ``n_cached``, ``n_calls``, ``seconds`` (all of it), ``samples_per_s`` and ``tokens_per_s``
        (generation only, model loading excluded), plus the backend's request counters if any.

    Raises:
        TeacherError: the backend failed or returned a malformed result, some samples were empty
            or ended by an error (never cached; the valid ones are), or too many items got K
            identical samples at temperature > 0 with ``on_identical: fail`` (samples generated
            before are kept in the cache).
    """
    if on_identical not in ON_IDENTICAL:
        raise ValueError(f"on_identical must be one of {ON_IDENTICAL}, got {on_identical!r}")
    t_start = time.perf_counter()
    params = spec.params
    sampling = params.as_dict()
    items, mrecs, store, n_missing = load_shard(items_path, frames_dir, shard, n_shards, on_missing)
    revision = spec.model_revision()
    keys = []
    for it, mrec in zip(items, mrecs):
        ph = prompt_hash(it, spec.template)
        fh = frames_hash(mrec, None if mrec.get("video_sha256") else store.frames(mrec["item_id"]))
        keys.append([sample_key(spec.name, revision, ph, fh, sampling, k) for k in range(K)])
    cache = SampleCache(cache_dir or f"{out_path}.cache", f"shard{shard}-of-{n_shards}")
    done = cache.load(k for ks in keys for k in ks)
    n_cached = len(done)

    # items grouped by the k's they still need; each group is sampled in chunks of items
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, ks in enumerate(keys):
        need = tuple(k for k in range(K) if ks[k] not in done)
        if need:
            groups.setdefault(need, []).append(i)
    calls = [(need, idx[s:s + chunk_items]) for need, idx in groups.items()
             for s in range(0, len(idx), chunk_items)]
    n_todo = sum(len(need) * len(idx) for need, idx in calls)
    log.info("teacher %s (%s, revision %s), %s shard %d/%d: %d items, %d samples cached, %d to "
             "generate in %d call(s)", spec.name, spec.backend, revision, items_path, shard,
             n_shards, len(items), n_cached, n_todo, len(calls))

    tail = {**sampling, "backend": spec.backend, "revision": revision}
    n_new, n_tok, t0 = 0, 0, time.perf_counter()
    invalid: list[tuple[str, int, str | None, str]] = []
    backend = None
    if calls:
        backend = spec.build()
        # backends that prompt a video model get each item's manifest record (video metadata)
        takes_meta = "metadata" in inspect.signature(backend.generate).parameters
        t0 = last_log = time.perf_counter()  # rates exclude model loading
        try:
            with tqdm(total=n_todo, desc=f"sample {spec.name} {shard}/{n_shards}", unit="sample",
                      mininterval=2, disable=None) as bar:
                for need, idx in calls:
                    its = [items[i] for i in idx]
                    seed = derive_seed(params.seed, its[0]["id"], need[0])
                    meta = {"metadata": [mrecs[i] for i in idx]} if takes_meta else {}
                    out = backend.generate(its, [np.array(store.frames(mrecs[i]["item_id"])) for i in idx],
                                           len(need), params, seed, **meta)
                    _check_output(spec.name, its, out, len(need))
                    for i, it, group in zip(idx, its, out):
                        for k, g in zip(need, group):
                            if not is_valid_sample(g):
                                invalid.append((it["id"], k, g.get("finish_reason"), g["text"][:80]))
                                continue
                            rec = {"item_id": it["id"], "teacher": spec.name, "k": k,
                                   "text": g["text"], "finish_reason": g.get("finish_reason"),
                                   "n_tokens": g.get("n_tokens"), **tail}
                            cache.put(keys[i][k], rec)
                            done[keys[i][k]] = {"key": keys[i][k], **rec}
                            n_new += 1
                            n_tok += g.get("n_tokens") or 0
                    secs = time.perf_counter() - t0
                    bar.update(len(need) * len(idx))
                    bar.set_postfix(samples_per_s=f"{n_new / secs:.1f}",
                                    tok_per_s=f"{n_tok / secs:.0f}")
                    if time.perf_counter() - last_log >= log_every_s or n_new == n_todo:
                        last_log = time.perf_counter()
                        eta = (n_todo - n_new) * secs / max(1, n_new)
                        log.info("sample %s %d/%d: %d/%d samples, %.2f samples/s, %.0f tokens/s, "
                                 "eta %.0fs", spec.name, shard, n_shards, n_new, n_todo,
                                 n_new / secs, n_tok / secs, eta)
        finally:
            cache.close()
    gen_secs = time.perf_counter() - t0
    if invalid:
        first = ", ".join(f"item {i!r} k {k} (finish_reason {f!r}, text {t!r})"
                          for i, k, f, t in invalid[:3])
        raise TeacherError(f"teacher {spec.name!r}: {len(invalid)} of {n_todo} sample(s) were empty "
                           f"(no token generated) or ended by an error and were not cached; first: {first}. A rerun asks "
                           "for them again (the valid ones are cached).")

    recs = []
    for it, ks in zip(items, keys):
        for k in range(K):
            rec = dict(done[ks[k]])
            rec["cache_key"] = rec.pop("key")
            recs.append(rec)
    distinct = distinct_counts(recs, K)
    for s0, nd in zip(range(0, len(recs), K), distinct):
        for rec in recs[s0:s0 + K]:
            rec["n_distinct"] = nd
    n_same = sum(1 for nd in distinct if nd == 1) if K > 1 else 0
    share = n_same / len(distinct) if distinct else 0.0
    if K > 1 and params.temperature > 0 and share > identical_max_share:
        msg = (f"teacher {spec.name!r} ({spec.backend}), shard {shard}/{n_shards}: {n_same} of "
               f"{len(distinct)} items have K={K} identical samples at temperature "
               f"{params.temperature} (share {share:.2f} > sampling.identical_max_share "
               f"{identical_max_share}); {SAMPLING_HELP}")
        if on_identical == "fail":
            raise TeacherError(msg)
        log.warning("%s", msg)
    write_jsonl(out_path, recs)
    stats = {"teacher": spec.name, "backend": spec.backend, "revision": revision, "shard": shard,
             "n_shards": n_shards, "n_items": len(items), "n_missing_frames": n_missing,
             "n_samples": len(recs), "n_items_all_identical": n_same,
             "share_all_identical": round(share, 4),
             "n_generated": n_new, "n_cached": n_cached, "n_calls": len(calls),
             "seconds": round(time.perf_counter() - t_start, 3),
             "samples_per_s": round(n_new / gen_secs, 2) if n_new else None,
             "tokens_per_s": round(n_tok / gen_secs, 1) if n_new else None}
    for attr in ("n_requests", "n_retries"):
        if hasattr(backend, attr):
            stats[attr] = getattr(backend, attr)
    if hasattr(backend, "engine_stats"):  # token counts and throughput of an inference engine
        stats["engine"] = backend.engine_stats()
    log.info("pool shard %s: %s", out_path, stats)
    return stats


def is_valid_sample(g: dict) -> bool:
    """Whether a backend's sample may be cached: it ended normally (``finish_reason`` in
    :data:`VALID_FINISH`) and is either non-empty text or an answer the model really generated
    (``n_tokens`` >= 1: e.g. the end-of-turn token first, which scoring counts as a format
    violation). Answers cut by an error, a content filter or an abort, and empty answers with no
    generated token (what a failing server returns) are never cached as samples."""
    if not isinstance(g.get("text"), str) or g.get("finish_reason") not in VALID_FINISH:
        return False
    return g["text"].strip() != "" or (g.get("n_tokens") or 0) >= 1


def distinct_counts(recs: list[dict], K: int) -> list[int]:
    """Per item (records in item order then k, K per item), the number of distinct texts."""
    return [len({r["text"] for r in recs[s:s + K]}) for s in range(0, len(recs), K)]


def _check_output(teacher: str, items: list[dict], out, n: int) -> None:
    if not isinstance(out, list) or len(out) != len(items):
        got = len(out) if isinstance(out, list) else type(out).__name__
        raise TeacherError(f"teacher {teacher!r}: backend returned {got} groups for {len(items)} "
                           f"items (first {items[0]['id']!r})")
    for it, group in zip(items, out):
        if len(group) != n or any(not isinstance(g.get("text"), str) for g in group):
            raise TeacherError(f"teacher {teacher!r}, item {it['id']!r}: backend returned "
                               f"{len(group)} samples, expected {n} with a text each")


def gather_pool(shard_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike,
                K: int | None = None) -> dict:
    """Concatenate shard pool files into ``out_path``, sorted by (item_id, k), atomically.

    Raises:
        DataError: a duplicate (item_id, k), or (with ``K``) an item without exactly K samples.
    """
    recs, seen = [], set()
    for p in shard_paths:
        for r in read_jsonl(p, required=POOL_FIELDS):
            ik = (r["item_id"], r["k"])
            if ik in seen:
                raise DataError(f"{p}: duplicate sample (item {ik[0]!r}, k {ik[1]})")
            seen.add(ik)
            recs.append(r)
    if K is not None:
        per_item: dict[str, int] = {}
        for r in recs:
            per_item[r["item_id"]] = per_item.get(r["item_id"], 0) + 1
        if bad := sorted(i for i, c in per_item.items() if c != K):
            raise DataError(f"{out_path}: item(s) {bad[:5]} lack K={K} samples in the shards")
    recs.sort(key=lambda r: (r["item_id"], r["k"]))
    write_jsonl(out_path, recs)
    return {"n_shards": len(shard_paths), "n_items": len({r["item_id"] for r in recs}),
            "n_samples": len(recs)}
