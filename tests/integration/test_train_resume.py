"""Checkpoint and resume: a run interrupted mid-Stage-1 or mid-Stage-2 continues where its last
checkpoint left off (step count, optimizer state, RNG) and ends with the same weights as an
uninterrupted run."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from trainworld import ROOT, read_log, write_config
from rmsd.train import context
from rmsd.train.engine import Engine
from rmsd.train.run import train_variant


class Interrupt(Exception):
    pass


def _interrupt_at(stage: str, step: int):
    def hook(s, k):
        if s == stage and k == step:
            raise Interrupt(f"{s} step {k}")
    return hook


def _steps(log: list[dict], stage: str) -> list[int]:
    return [r["step"] for r in log if r["stage"] == stage]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


@pytest.fixture
def capture_loaded(monkeypatch):
    """Records the optimizer state of every engine right after it was restored from a checkpoint."""
    seen = []
    orig = Engine.load_optimizer_state

    def spy(self, state):
        orig(self, state)
        seen.append((self.name, copy.deepcopy(self.optimizer_state()["adamw"])))  # tensors change in place later

    monkeypatch.setattr(Engine, "load_optimizer_state", spy)
    return seen


def _assert_same_adam(ckpt_file: Path, loaded: dict) -> None:
    saved = torch.load(ckpt_file, weights_only=True)["adamw"]
    assert saved["state"].keys() == loaded["state"].keys()
    for k, st in saved["state"].items():
        assert torch.equal(st["exp_avg"], loaded["state"][k]["exp_avg"])
        assert torch.equal(st["exp_avg_sq"], loaded["state"][k]["exp_avg_sq"])
        assert float(st["step"]) == float(loaded["state"][k]["step"])


def test_resume_mid_stage1(world, tmp_path, monkeypatch, capture_loaded):
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage2={"mode": "none"}).read_text())
    ref_out = tmp_path / "ref"
    train_variant(cfg, str(ref_out))

    out = tmp_path / "out"
    monkeypatch.setattr(context, "STEP_HOOKS", [_interrupt_at("stage1", 4)])
    with pytest.raises(Interrupt):
        train_variant(cfg, str(out))
    ckpt = Path(str(out) + ".tmp") / "checkpoints" / "step_4"
    assert ckpt.is_dir() and not (Path(str(out) + ".tmp") / "checkpoints" / "step_2").exists()
    assert (ckpt / "policy" / "model.safetensors").exists() and not out.exists()
    assert yaml.safe_load((ckpt / "config.resolved.yaml").read_text()) == cfg
    saved_opt = tmp_path / "optim_at_4.pt"
    saved_opt.write_bytes((ckpt / "optim_policy.pt").read_bytes())
    assert _steps([json.loads(x) for x in (Path(str(out) + ".tmp") / "train_log.jsonl").read_text().splitlines()],
                  "stage1") == [0, 1, 2, 3, 4]

    monkeypatch.setattr(context, "STEP_HOOKS", [])
    summary = train_variant(cfg, str(out))
    assert summary["resumed_from"]["stage"] == "stage1" and summary["resumed_from"]["stage_step"] == 4
    assert summary["stage1"]["resumed_at"] == 4
    log = read_log(out)
    assert _steps(log, "stage1") == list(range(6))  # unique and contiguous
    assert [r["global_step"] for r in log] == list(range(6))
    (name, loaded), = capture_loaded
    assert name == "policy"
    _assert_same_adam(saved_opt, loaded)
    # the resumed run ends exactly where the uninterrupted one does
    ref_w, w = _weights(ref_out), _weights(out)
    assert all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    assert [r["loss"] for r in read_log(ref_out)] == [r["loss"] for r in log]
    assert not (out / "checkpoints").exists() and not Path(str(out) + ".tmp").exists()


def test_resume_mid_stage2(world, tmp_path, monkeypatch, capture_loaded):
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage2={"rl": {"steps": 4}}).read_text())
    ref_out = tmp_path / "ref"
    train_variant(cfg, str(ref_out))

    out = tmp_path / "out"
    tmp = Path(str(out) + ".tmp")
    monkeypatch.setattr(context, "STEP_HOOKS", [_interrupt_at("stage2", 2)])
    with pytest.raises(Interrupt):
        train_variant(cfg, str(out))
    ckpts = sorted(p.name for p in (tmp / "checkpoints").iterdir())
    assert ckpts == ["stage1_final", "step_8"]  # 6 Stage-1 steps + 2 Stage-2 steps
    state = json.loads((tmp / "checkpoints" / "step_8" / "state.json").read_text())
    assert state["stage"] == "stage2" and state["stage_step"] == 2 and state["global_step"] == 8
    for name in ("policy", "disc"):
        (tmp_path / f"{name}.pt").write_bytes((tmp / "checkpoints" / "step_8" / f"optim_{name}.pt").read_bytes())

    monkeypatch.setattr(context, "STEP_HOOKS", [])
    summary = train_variant(cfg, str(out))
    assert summary["stage2"]["resumed_at"] == 2 and "resumed_at" not in summary["stage1"]
    log = read_log(out)
    assert _steps(log, "stage1") == list(range(6))
    assert _steps(log, "stage2") == list(range(5))  # 1 warm-up + 4 policy steps
    assert [r["global_step"] for r in log] == list(range(11))
    loaded = dict(capture_loaded)
    for name in ("policy", "disc"):
        _assert_same_adam(tmp_path / f"{name}.pt", loaded[name])
    ref_w, w = _weights(ref_out), _weights(out)
    assert all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    ref_log = read_log(ref_out)
    assert [r.get("reward") for r in ref_log] == [r.get("reward") for r in log]


def test_changed_config_starts_afresh(world, tmp_path, monkeypatch):
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage2={"mode": "none"}).read_text())
    out = tmp_path / "out"
    monkeypatch.setattr(context, "STEP_HOOKS", [_interrupt_at("stage1", 3)])
    with pytest.raises(Interrupt):
        train_variant(cfg, str(out))
    monkeypatch.setattr(context, "STEP_HOOKS", [])
    cfg["stage1"]["sft"]["lr"] = 1e-3
    summary = train_variant(cfg, str(out))
    assert summary["resumed_from"] is None and "resumed_at" not in summary["stage1"]
    assert _steps(read_log(out), "stage1") == list(range(6))


@pytest.mark.slow
def test_sigkill_and_rerun(world, tmp_path):
    """A real ``python -m rmsd.train`` killed with SIGKILL after a checkpoint resumes when rerun."""
    cfg = write_config(world, tmp_path / "cfg.yaml",
                       stage1={"sft": {"steps": 60, "checkpoint_every": 5}}, stage2={"mode": "none"})
    out = tmp_path / "out"
    ckdir = Path(str(out) + ".tmp") / "checkpoints"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rmsd.train", "--config", str(cfg), "--out", str(out),
                             "--threads", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(p.name.startswith("step_") for p in ckdir.glob("step_*")):
            time.sleep(0.2)
        assert any(ckdir.glob("step_*")), "no checkpoint appeared"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    step = max(int(p.name.split("_")[1]) for p in ckdir.glob("step_*"))
    r = subprocess.run([sys.executable, "-m", "rmsd.train", "--config", str(cfg), "--out", str(out),
                        "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"]["stage_step"] >= step and summary["stage1"]["resumed_at"] >= 5
    assert _steps(read_log(out), "stage1") == list(range(60))


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_resume_under_deepspeed(world, tmp_path, monkeypatch, capture_loaded, zero):
    """One-process ZeRO with gradient accumulation: the sharded optimizer state (AdamW moments over
    the flat fp32 partition, and the partition itself) is restored and the run ends where an
    uninterrupted one does."""
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        monkeypatch.setenv(k, v)
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage1={"sft": {
        "deepspeed": zero, "micro_batch_size": 2}}, stage2={"mode": "none"}).read_text())
    train_variant(cfg, str(tmp_path / "ref"))
    out = tmp_path / "out"
    monkeypatch.setattr(context, "STEP_HOOKS", [_interrupt_at("stage1", 4)])
    with pytest.raises(Interrupt):
        train_variant(cfg, str(out))
    shard = Path(str(out) + ".tmp") / "checkpoints" / "step_4" / "optim_policy_rank0.pt"
    saved = torch.load(shard, weights_only=True)
    monkeypatch.setattr(context, "STEP_HOOKS", [])
    train_variant(cfg, str(out))
    assert _steps(read_log(out), "stage1") == list(range(6))
    (name, loaded), = capture_loaded
    for k, st in saved["adamw"]["state"].items():
        assert torch.equal(st["exp_avg"], loaded["state"][k]["exp_avg"])
        assert float(st["step"]) == float(loaded["state"][k]["step"]) == 4
    ref_w, w = _weights(tmp_path / "ref"), _weights(out)
    assert all(torch.allclose(ref_w[k], w[k], atol=1e-6) for k in ref_w)
