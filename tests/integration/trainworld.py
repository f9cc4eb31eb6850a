"""Helpers of the training integration tests: a miniature world built offline in about a second
(items, random frames, a selection with pools, a tiny randomly initialised Qwen2-VL or Qwen3-VL
student), resolved train configs for it, and running ``python -m rmsd.train`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rmsd.io import write_jsonl
from rmsd.models.build import tokenizer_corpus
from rmsd.models.factory import TinyVLMConfig, build_model, build_processor
from rmsd.models.tokenizer import build_tokenizer
from rmsd.tasks import render_answer, render_response
from rmsd.train.config import write_train_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "answer_only"
ARCH = TinyVLMConfig(hidden=64, layers=1, heads=1, kv_heads=1, intermediate=128, vision_dim=32,
                     vision_depth=1, vision_heads=1)
COLOURS = ["red", "green", "blue", "yellow"]


def make_items(n: int) -> list[dict]:
    items = []
    for i in range(n):
        if i % 3 == 2:
            items.append({"id": f"it{i:03d}", "task_type": "open", "question": "Describe the video.",
                          "answer": f"A {COLOURS[i % 4]} shape moves.", "duration_s": 4.0})
        else:
            items.append({"id": f"it{i:03d}", "task_type": "mcq", "question": "What colour is the shape?",
                          "options": list(COLOURS), "answer": "ABCD"[i % 4], "duration_s": 4.0})
    return items


def make_world(root: Path, family: str = "qwen2_vl", n_items: int = 12, seed: int = 0,
               empty_pool_for: tuple[str, ...] = (), drop_frames_for: tuple[str, ...] = ()) -> dict:
    """Write items, frames, selection and a student under ``root``; returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    items = make_items(n_items)
    write_jsonl(root / "items.jsonl", items)
    rng = np.random.default_rng(seed)
    frames_dir = root / "frames"
    frames_dir.mkdir(exist_ok=True)
    kept = [it for it in items if it["id"] not in drop_frames_for]
    np.save(frames_dir / "frames.npy", rng.integers(0, 256, (len(kept), 8, 56, 56, 3), dtype=np.uint8))
    write_jsonl(frames_dir / "manifest.jsonl", [
        {"item_id": it["id"], "row": r, "num_frames": 8, "indices": list(range(1, 16, 2)),
         "timestamps_s": [0.25 + 0.5 * k for k in range(8)], "fps": 4.0, "num_video_frames": 16}
        for r, it in enumerate(kept)])
    (frames_dir / "skipped.json").write_text("[]")
    sel = []
    for it in items:
        good = render_response(render_answer(it["task_type"], it["answer"]), TEMPLATE)
        bad = render_response("B" if it["task_type"] == "mcq" and it["answer"] != "B" else "C", TEMPLATE) \
            if it["task_type"] == "mcq" else render_response("Something moves.", TEMPLATE)
        q = [1.0, 0.5] if it["task_type"] == "mcq" else [1.0, 1.0]
        pool = [] if it["id"] in empty_pool_for else [
            {"teacher": "t", "k": 0, "text": good, "q": q[0], "valid": True, "p": q[0] / sum(q)},
            {"teacher": "t", "k": 1, "text": bad, "q": q[1], "valid": True, "p": q[1] / sum(q)}]
        sel.append({"item_id": it["id"], "task_type": it["task_type"], "sft_target": good, "pool": pool})
    write_jsonl(root / "selection.jsonl", sel)
    tok = build_tokenizer(tokenizer_corpus(items, TEMPLATE), 400)
    max_px = 3136 if family == "qwen2_vl" else 8 * 4096  # Qwen3-VL bounds the whole clip
    proc = build_processor(tok, 784, max_px, family=family)
    model = build_model(tok, ARCH, seed, family=family)
    student = root / f"student_{family}"
    model.save_pretrained(student)
    proc.save_pretrained(student)
    return {"root": root, "items": root / "items.jsonl", "frames": frames_dir,
            "selection": root / "selection.jsonl", "student": student}


def write_config(world: dict, path: Path, stage1: dict | None = None, stage2: dict | None = None,
                 seed: int = 0) -> Path:
    """A resolved train config for ``world`` (small Stage 1 and Stage 2 by default)."""
    s1 = {"enabled": True, "sft": {"steps": 6, "batch_size": 4, "lr": 3e-3, "warmup_steps": 1,
                                   "grad_clip": 1.0, "checkpoint_every": 2}}
    s2 = {"mode": "adversarial", "rl": {"steps": 3, "prompts_per_step": 2, "rollouts": 2, "lr": 1e-4,
                                        "disc_lr": 1e-3, "max_new_tokens": 6, "disc_warmup_steps": 1,
                                        "checkpoint_every": 2}}
    for base, over in ((s1, stage1), (s2, stage2)):
        for k, v in (over or {}).items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k] = {**base[k], **v}
            else:
                base[k] = v
    write_train_config(str(path), str(world["student"]), str(world["selection"]), str(world["items"]),
                       str(world["frames"]), TEMPLATE, {"template": TEMPLATE}, s1, s2, seed)
    return path


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def run_train(cfg: Path, out: Path, *launcher: str, timeout: float = 300, env: dict | None = None
              ) -> subprocess.CompletedProcess:
    """``python -m rmsd.train`` (optionally under a launcher such as torchrun) in a subprocess."""
    cmd = (list(launcher) or [sys.executable]) + ["-m", "rmsd.train", "--config", str(cfg), "--out", str(out),
                                                  "--threads", "1"]
    e = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
         "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)
