"""One entry point under launchers: ``torchrun`` with 2 CPU processes (gloo DDP) and DeepSpeed ZeRO."""

from __future__ import annotations

import json
import socket
import sys

import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText, AutoProcessor

from trainworld import read_log, run_train, write_config
from rmsd.models.inputs import VideoPromptEncoder, model_kwargs
from rmsd.train.run import train_variant

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _check_trained(out, world, n_steps: int) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["stage1"]["world_size"] == 2
    losses = [r["loss"] for r in read_log(out) if r["stage"] == "stage1"]
    assert len(losses) == n_steps  # rank 0 alone writes the log
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3  # the loss falls
    model = AutoModelForImageTextToText.from_pretrained(out, local_files_only=True, use_safetensors=True)
    proc = AutoProcessor.from_pretrained(out, local_files_only=True)
    enc = VideoPromptEncoder(proc, "answer_only")
    item = {"id": "x", "task_type": "mcq", "question": "What colour?", "options": ["red", "blue"], "answer": "A"}
    batch = enc.collate(enc.encode([item], [torch.zeros(8, 56, 56, 3, dtype=torch.uint8).numpy()]))
    assert torch.isfinite(model(**model_kwargs(batch)).logits).all()


def test_torchrun_two_processes_gloo(world, tmp_path):
    cfg = write_config(world, tmp_path / "cfg.yaml", stage1={"sft": {"steps": 8, "batch_size": 8}},
                       stage2={"mode": "none"})
    out = tmp_path / "out"
    r = run_train(cfg, out, *TORCHRUN, "--master_port", _port())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    _check_trained(out, world, 8)
    # each rank draws its own batches: rank 0 draws what one process with the per-rank batch (4)
    # draws, so if rank 1 drew the same, every global token count would be exactly twice that
    one = write_config(world, tmp_path / "one.yaml", stage1={"sft": {"steps": 8, "batch_size": 4}},
                       stage2={"mode": "none"})
    train_variant(yaml.safe_load(one.read_text()), str(tmp_path / "one"))
    tok_ddp = [r["tokens"] for r in read_log(out)]
    tok_one = [r["tokens"] for r in read_log(tmp_path / "one")]
    assert any(a != 2 * b for a, b in zip(tok_ddp, tok_one))


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_deepspeed_two_processes(world, tmp_path, zero):
    """Both stages under DeepSpeed ZeRO with a client AdamW (first use JIT-builds DeepSpeed's
    ~1 s shm_comm op; the result is cached)."""
    cfg = write_config(world, tmp_path / "cfg.yaml",
                       stage1={"sft": {"steps": 8, "batch_size": 8, "deepspeed": zero, "checkpoint_every": 4}},
                       stage2={"rl": {"steps": 2, "deepspeed": zero}})
    out = tmp_path / "out"
    r = run_train(cfg, out, *TORCHRUN, "--master_port", _port(), timeout=580)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    _check_trained(out, world, 8)
    s2 = [r for r in read_log(out) if r["stage"] == "stage2"]
    assert [r["step"] for r in s2] == [0, 1, 2] and all("disc_loss" in r for r in s2)
