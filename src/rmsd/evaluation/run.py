"""Evaluate a model on a dataset of items: greedy decoding, scoring, metrics.json.

Per item the response is parsed with the same format checks and metrics as the scoring stage
(rmsd.scoring), so every variant and benchmark is scored identically. Unparseable answers score 0
and are counted (``n_unparsed``); nothing is guessed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from rmsd.errors import ConfigError
from rmsd.evaluation.metrics import bootstrap_ci, pass_at_k
from rmsd.io import JsonlAppender, atomic_write_json, read_jsonl_resumable, write_jsonl
from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder, generate
from rmsd.scoring import ScoringConfig, score_response
from rmsd.train.data import load_items_with_frames
from rmsd.utils import get_logger, seed_everything, set_threads

log = get_logger(__name__)


@dataclass
class EvalConfig:
    """Evaluation settings, recorded with every result."""

    max_new_tokens: int = 32
    """Generation limit in tokens."""
    batch_size: int = 64
    """Items per generate call."""
    pass_k_samples: int = 0
    """n samples per item at ``pass_k_temperature`` for pass@k (0 disables)."""
    pass_k_temperature: float = 1.0
    """Sampling temperature for the pass@k samples."""
    pass_k_threshold: float = 0.5
    """A sample counts as correct for pass@k when its score >= this."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% CI."""

    @classmethod
    def from_dict(cls, d: dict) -> "EvalConfig":
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ConfigError(f"unknown evaluation key(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)


def item_score(s: dict) -> float:
    """The evaluation score of a scored response: the metric if format-valid, else 0.

    Closed-ended: the task metric (accuracy, tIoU, IoU, ANLS, epsilon-accuracy); open-ended: ROUGE-L F1
    against the reference.
    """
    return float(s["metric"]) * float(s["valid"])


def evaluate(model_dir: str, items_path: str, frames_dir: str, out_dir: str, cfg: dict,
             scoring: dict, template: str, seed: int = 0, threads: int = 1,
             frames_meta: dict | None = None) -> dict:
    """Evaluate ``model_dir`` on ``items_path``; write ``samples.jsonl`` and ``metrics.json``.

    Resumes per item: samples already in ``samples.jsonl.partial`` are not generated again.

    Returns:
        The metrics dict: ``overall`` (macro mean over task types), ``micro``, ``per_task``
        (mean, n, ci95), ``n_items``, ``n_unparsed``, ``ci95``, optional ``pass_at_k``.
    """
    ecfg = EvalConfig.from_dict(cfg)
    scfg = ScoringConfig.from_dict(scoring)
    set_threads(threads)
    seed_everything(seed)
    model, processor = load_model(model_dir)
    model.eval()
    enc = VideoPromptEncoder(processor, template)
    items, frames, n_missing = load_items_with_frames(items_path, frames_dir)
    out = Path(out_dir)
    partial = out / "samples.jsonl.partial"
    done = {r["item_id"]: r for r in read_jsonl_resumable(partial)}
    todo = [i for i, it in enumerate(items) if it["id"] not in done]
    t0 = time.time()
    with JsonlAppender(partial) as app:
        for s in range(0, len(todo), ecfg.batch_size):
            idx = todo[s:s + ecfg.batch_size]
            prompts = enc.encode([items[i] for i in idx], [frames[i] for i in idx])
            greedy = generate(model, enc, prompts, n=1, do_sample=False,
                              max_new_tokens=ecfg.max_new_tokens)
            samples = None
            if ecfg.pass_k_samples:
                torch.manual_seed(seed + s)
                samples = generate(model, enc, prompts, n=ecfg.pass_k_samples, do_sample=True,
                                   max_new_tokens=ecfg.max_new_tokens,
                                   temperature=ecfg.pass_k_temperature, top_p=1.0, top_k=0)
            for j, i in enumerate(idx):
                it = items[i]
                g = greedy[j][0]
                sc = score_response(g["text"], it, scfg)
                rec = {"item_id": it["id"], "task_type": it["task_type"], "video": it.get("video"),
                       "response": g["text"], "finish_reason": g["finish_reason"],
                       "parsed": sc["parsed"], "valid": sc["valid"], "reason": sc["reason"],
                       "score": item_score(sc)}
                if samples is not None:
                    rec["sample_scores"] = [item_score(score_response(x["text"], it, scfg))
                                            for x in samples[j]]
                app.write(rec)
                done[it["id"]] = rec
    recs = [done[it["id"]] for it in items]
    metrics = aggregate(recs, ecfg, seed)
    metrics.update(n_missing_frames=n_missing, seconds=round(time.time() - t0, 2),
                   model=str(model_dir), items=str(items_path), template=template,
                   eval_config=ecfg.__dict__, frames=frames_meta or {})
    write_jsonl(out / "samples.jsonl", recs)
    atomic_write_json(out / "metrics.json", metrics)
    partial.unlink(missing_ok=True)
    log.info("eval %s on %s: overall %.4f", model_dir, items_path, metrics["overall"])
    return metrics


def aggregate(recs: list[dict], cfg: EvalConfig, seed: int = 0) -> dict:
    """Per-task and overall scores with 95% bootstrap CIs clustered by video.

    ``overall`` is the macro mean over task types (each task weighs the same); ``micro`` the mean
    over items.
    """
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        by_task[r["task_type"]].append(r)
    per_task = {}
    for t, rs in sorted(by_task.items()):
        sc = [r["score"] for r in rs]
        per_task[t] = {"mean": float(np.mean(sc)), "n": len(rs),
                       "n_unparsed": sum(not r["valid"] for r in rs),
                       "ci95": bootstrap_ci(sc, [r.get("video") or r["item_id"] for r in rs],
                                            cfg.bootstrap, seed)}
    # macro-mean CI: resample items within each task, average the task means
    rng = np.random.default_rng(seed)
    boots = np.zeros(cfg.bootstrap)
    for rs in by_task.values():
        x = np.array([r["score"] for r in rs])
        boots += x[rng.integers(0, len(x), size=(cfg.bootstrap, len(x)))].mean(1)
    boots /= max(1, len(by_task))
    metrics = {
        "overall": float(np.mean([v["mean"] for v in per_task.values()])) if per_task else float("nan"),
        "micro": float(np.mean([r["score"] for r in recs])) if recs else float("nan"),
        "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))] if recs else None,
        "per_task": per_task,
        "n_items": len(recs),
        "n_unparsed": sum(not r["valid"] for r in recs),
    }
    if recs and "sample_scores" in recs[0]:
        n = len(recs[0]["sample_scores"])
        metrics["pass_at_k"] = {
            str(k): float(np.mean([pass_at_k(n, sum(s >= cfg.pass_k_threshold for s in r["sample_scores"]), k)
                                   for r in recs]))
            for k in range(1, n + 1)
        }
    return metrics
