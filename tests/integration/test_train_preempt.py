"""Checkpoint-and-exit on a signal (rmsd.train.preempt): a real ``python -m rmsd.train`` sent a
signal mid-run writes a checkpoint after the current step, exits with status 75 and the log line
that says so; rerun, it ends with the same weights and train_log as an uninterrupted run."""

from __future__ import annotations

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

from trainworld import ROOT, read_log, run_train, write_config
from rmsd.train import context, preempt
from rmsd.train.run import train_variant

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONUNBUFFERED": "1"}


def _log_lines(tmp: Path) -> int:
    p = tmp / "train_log.jsonl"
    return len(p.read_text().splitlines()) if p.exists() else 0


def _signal_mid_run(cfg: Path, out: Path, sig: signal.Signals, after_lines: int, *flags: str,
                    env: dict | None = None) -> tuple[int, str]:
    """Start training, send ``sig`` once ``after_lines`` steps are logged; (exit status, stderr)."""
    tmp = Path(str(out) + ".tmp")
    err = out.parent / f"{out.name}.stderr"
    with open(err, "w") as ferr:
        proc = subprocess.Popen([sys.executable, "-m", "rmsd.train", "--config", str(cfg), "--out", str(out),
                                 "--threads", "1", *flags], cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=ferr)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and proc.poll() is None and _log_lines(tmp) < after_lines:
                time.sleep(0.02)
            assert proc.poll() is None, "training ended before the signal: " + err.read_text()[-2000:]
            proc.send_signal(sig)
            rc = proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc, err.read_text()


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _same_run(ref: Path, out: Path, stage: str, key: str) -> None:
    ref_w, w = _weights(ref), _weights(out)
    assert ref_w.keys() == w.keys() and all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    ref_log, log = read_log(ref), read_log(out)
    assert [(r["stage"], r["step"], r["global_step"]) for r in log] == \
        [(r["stage"], r["step"], r["global_step"]) for r in ref_log]
    assert [r.get(key) for r in log if r["stage"] == stage] == [r.get(key) for r in ref_log if r["stage"] == stage]


@pytest.mark.slow
def test_sigusr1_mid_stage1_checkpoints_exits_and_resumes(world, tmp_path):
    # checkpoint_every 100 > steps: the only checkpoint is the one the signal asks for
    cfg = write_config(world, tmp_path / "cfg.yaml", stage1={"sft": {"steps": 40, "checkpoint_every": 100}},
                       stage2={"mode": "none"})
    ref = tmp_path / "ref"
    train_variant(yaml.safe_load(cfg.read_text()), str(ref))
    out = tmp_path / "out"
    tmp = Path(str(out) + ".tmp")
    # a stand-in for Slurm's scontrol: job 4242, restarted FAKE_RESTARTS times
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "JobId=$4 JobName=x Restarts=${FAKE_RESTARTS:-0} BatchFlag=1"\n')
    fake.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    rc, err = _signal_mid_run(cfg, out, signal.SIGUSR1, after_lines=3, env=slurm)
    assert rc == preempt.EXIT_PREEMPTED == 75, err[-3000:]
    (ck,) = [p for p in (tmp / "checkpoints").iterdir()]
    k = int(ck.name.split("_")[1])
    assert 3 <= k < 40
    assert f"stage1: stopped at step {k} on SIGUSR1: checkpoint written, resubmit to resume ({ck})" in err
    state = json.loads((ck / "state.json").read_text())
    assert state["stage"] == "stage1" and state["stage_step"] == k == state["global_step"]
    assert (ck / "policy" / "model.safetensors").exists() and (ck / "optim_policy.pt").exists()
    assert [r["step"] for r in map(json.loads, (tmp / "train_log.jsonl").read_text().splitlines())] == list(range(k))
    assert not out.exists()
    assert json.loads((tmp / "stopped_on_signal.json").read_text()) == {
        "slurm_run": "4242.0", "stage": "stage1", "step": k, "signal": "SIGUSR1"}
    # Snakemake's retry inside the same Slurm allocation: exits at once, the resubmitted job resumes
    r = run_train(cfg, out, env=slurm)
    assert r.returncode == 75 and "Slurm job 4242 already stopped on SIGUSR1 (stage1 step" in r.stderr, r.stderr
    assert (tmp / "checkpoints" / ck.name).is_dir()
    # the same job id requeued (restart count 1) is a new run: it resumes
    r = run_train(cfg, out, env={**slurm, "FAKE_RESTARTS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == {"path": f"step_{k}", "stage": "stage1", "stage_step": k}
    assert summary["stage1"]["resumed_at"] == k
    _same_run(ref, out, "stage1", "loss")
    assert not (out / "stopped_on_signal.json").exists()


@pytest.mark.slow
def test_signal_mid_stage2_checkpoints_exits_and_resumes(world, tmp_path):
    """SIGURG, the signal the Slurm profile sends (--stop-signals as the train_student rule passes it)."""
    cfg = write_config(world, tmp_path / "cfg.yaml", stage1={"sft": {"steps": 4, "checkpoint_every": 100}},
                       stage2={"rl": {"steps": 30, "checkpoint_every": 100}})
    ref = tmp_path / "ref"
    train_variant(yaml.safe_load(cfg.read_text()), str(ref))
    out = tmp_path / "out"
    tmp = Path(str(out) + ".tmp")
    rc, err = _signal_mid_run(cfg, out, signal.SIGURG, 4 + 2, "--stop-signals", "URG,USR1,TERM")
    assert rc == 75, err[-3000:]
    steps = sorted(p.name for p in (tmp / "checkpoints").iterdir())
    assert len(steps) == 2 and steps[0] == "stage1_final"
    g = int(steps[1].split("_")[1])
    k = g - 4
    assert 2 <= k < 31
    assert f"stage2: stopped at step {k} on SIGURG: checkpoint written, resubmit to resume" in err
    ck = tmp / "checkpoints" / steps[1]
    state = json.loads((ck / "state.json").read_text())
    assert state["stage"] == "stage2" and state["stage_step"] == k
    assert (ck / "disc.safetensors").exists() and (ck / "optim_disc.pt").exists()

    r = run_train(cfg, out)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage2"]["resumed_at"] == k and summary["resumed_from"]["stage"] == "stage2"
    _same_run(ref, out, "stage2", "reward")


def test_signal_in_last_stage1_step_stops_before_stage2(world, tmp_path, monkeypatch):
    """A signal during Stage 1's last step: stage1_final is the checkpoint, Stage 2 does not start."""
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml").read_text())
    monkeypatch.setattr(preempt, "_installed", True)
    monkeypatch.setattr(preempt, "_received", 0)

    def hook(stage, step):
        if stage == "stage1" and step == 5:  # the last of 6 steps
            preempt._handler(signal.SIGUSR1, None)

    monkeypatch.setattr(context, "STEP_HOOKS", [hook])
    out = tmp_path / "out"
    with pytest.raises(preempt.Preempted) as e:
        train_variant(cfg, str(out))
    final = Path(str(out) + ".tmp") / "checkpoints" / "stage1_final"
    assert (e.value.stage, e.value.step, e.value.signal_name, e.value.checkpoint) == ("stage1", 6, "SIGUSR1", final)
    assert str(e.value) == f"stage1: stopped at step 6 on SIGUSR1: checkpoint written, resubmit to resume ({final})"
    assert [r["stage"] for r in map(json.loads, (Path(str(out) + ".tmp") / "train_log.jsonl")
                                    .read_text().splitlines())] == ["stage1"] * 6
