"""Resumable K-sample pool generation for one teacher over one dataset.

Samples are appended durably to ``<out>.partial`` as they are generated; a restarted job reads it,
keeps the complete (item, k) records and generates only the missing ones. The final pool file is
written atomically, sorted by (item_id, k).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from rmsd.io import JsonlAppender, read_jsonl_resumable, stable_hash, write_jsonl
from rmsd.teachers.base import SamplingParams, get_backend
from rmsd.train.data import load_items_with_frames
from rmsd.utils import get_logger

log = get_logger(__name__)


def sample_pool(items_path: str, frames_dir: str, out_path: str, teacher: str, backend: str,
                backend_args: dict, K: int, sampling: dict, chunk_items: int = 64) -> dict:
    """Generate K samples per item from ``teacher`` into ``out_path`` (JSONL, resumable).

    Args:
        items_path, frames_dir: the dataset and its frame manifest.
        out_path: pool file; records ``item_id, teacher, k, text, finish_reason, n_tokens`` plus the
            sampling parameters, ``seed`` and ``cache_key``.
        teacher: teacher name recorded in every sample.
        backend: registry name ("hf", ...); ``backend_args`` go to its constructor.
        K: samples per item.
        sampling: :class:`SamplingParams` fields.
        chunk_items: items per backend call (and per durable append).

    Returns:
        Stats: n_items, n_samples, n_generated (this run), n_resumed, samples_per_s.
    """
    params = SamplingParams.from_dict(sampling)
    items, frames, _ = load_items_with_frames(items_path, frames_dir)
    key = stable_hash({"teacher": teacher, "backend": backend, "args": backend_args,
                       "sampling": params.as_dict()})
    partial = Path(str(out_path) + ".partial")
    done = {}
    for r in read_jsonl_resumable(partial):
        if r.get("cache_key") == key and r["k"] < K:
            done[(r["item_id"], r["k"])] = r
    todo = [i for i, it in enumerate(items) if any((it["id"], k) not in done for k in range(K))]
    n_resumed = len(done)
    t0, n_new = time.time(), 0
    if todo:
        model = get_backend(backend, **backend_args)
        with JsonlAppender(partial) as app, tqdm(total=len(todo) * K, desc=f"sample {teacher}",
                                                 unit="sample", mininterval=5, disable=None) as bar:
            for s in range(0, len(todo), chunk_items):
                idx = todo[s:s + chunk_items]
                seed = int(stable_hash([params.seed, items[idx[0]]["id"]], 8), 16)
                groups = model.generate([items[i] for i in idx], [frames[i] for i in idx], K, params, seed)
                for i, group in zip(idx, groups):
                    for k, g in enumerate(group):
                        if (items[i]["id"], k) in done:
                            continue
                        rec = {"item_id": items[i]["id"], "teacher": teacher, "k": k, "text": g["text"],
                               "finish_reason": g["finish_reason"], "n_tokens": g["n_tokens"],
                               **params.as_dict(), "cache_key": key}
                        app.write(rec)
                        done[(items[i]["id"], k)] = rec
                        n_new += 1
                bar.update(len(idx) * K)
                bar.set_postfix(samples_per_s=f"{n_new / max(1e-9, time.time() - t0):.1f}")
    recs = sorted((done[(it["id"], k)] for it in items for k in range(K)),
                  key=lambda r: (r["item_id"], r["k"]))
    write_jsonl(out_path, recs)
    partial.unlink(missing_ok=True)
    secs = time.time() - t0
    stats = {"teacher": teacher, "n_items": len(items), "n_samples": len(recs), "n_generated": n_new,
             "n_resumed": n_resumed, "seconds": round(secs, 2),
             "samples_per_s": round(n_new / secs, 2) if secs > 0 and n_new else None}
    log.info("pool %s: %s", out_path, stats)
    return stats
