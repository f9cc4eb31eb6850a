"""The paper's model family: Stage-1 and Stage-2 steps with a tiny Qwen3-VL built from a config,
with per-frame timestamps from the frame manifest (fps, sampled indices)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen3VLForConditionalGeneration

from trainworld import make_world, read_log, write_config
from rmsd.models.inputs import VideoPromptEncoder, model_kwargs
from rmsd.train.run import train_variant


@pytest.fixture(scope="module")
def qwen3_world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("q3"), family="qwen3_vl", n_items=9)


def test_prompt_has_manifest_timestamps(qwen3_world):
    proc = AutoProcessor.from_pretrained(qwen3_world["student"], local_files_only=True)
    enc = VideoPromptEncoder(proc, "answer_only")
    assert enc.uses_timestamps
    item = {"id": "x", "task_type": "mcq", "question": "What colour?", "options": ["red", "blue"], "answer": "A"}
    meta = {"fps": 4.0, "indices": list(range(1, 16, 2)), "num_video_frames": 16}
    p = enc.encode([item], [np.zeros((8, 56, 56, 3), np.uint8)], metadata=[meta])[0]
    text = proc.tokenizer.decode(p.prompt_ids)
    # frames 1,3 | 5,7 | ... at 4 fps: temporal patches centred on 0.5 s, 1.5 s, 2.5 s, 3.5 s
    assert [f"<{t} seconds>" in text for t in ("0.5", "1.5", "2.5", "3.5")] == [True] * 4
    assert int(p.grid_thw[0]) == 4


def test_qwen3_stage1_and_stage2(qwen3_world, tmp_path):
    cfg = yaml.safe_load(write_config(qwen3_world, tmp_path / "cfg.yaml", stage1={"sft": {"steps": 6}},
                                      stage2={"rl": {"steps": 2}}).read_text())
    out = tmp_path / "out"
    summary = train_variant(cfg, str(out))
    log = read_log(out)
    s1 = [r["loss"] for r in log if r["stage"] == "stage1"]
    assert len(s1) == 6 and s1[-1] < s1[0]
    s2 = [r for r in log if r["stage"] == "stage2"]
    assert len(s2) == 3 and all(np.isfinite(r["reward"]) for r in s2) and "kl" in s2[-1]
    assert summary["n_skipped_nan"] == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen3_vl"
    model = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True, use_safetensors=True)
    assert isinstance(model, Qwen3VLForConditionalGeneration)
    enc = VideoPromptEncoder(AutoProcessor.from_pretrained(out, local_files_only=True), "answer_only")
    item = {"id": "x", "task_type": "open", "question": "Describe.", "answer": "x"}
    batch = enc.collate(enc.encode([item], [np.zeros((8, 56, 56, 3), np.uint8)]))
    assert torch.isfinite(model(**model_kwargs(batch)).logits).all()
