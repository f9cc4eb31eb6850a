"""Checkpoint files, RNG capture and the step logger (no model training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmsd.errors import TrainingError
from rmsd.train.checkpoint import Checkpointer, capture_rng, load_tensors, restore_rng
from rmsd.train.context import StepLogger
from rmsd.train.dist import Runtime
from rmsd.train.engine import Engine, ExecConfig


def _engine() -> Engine:
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 2)
    eng = Engine(m, 1e-2, 0.0, 1.0, Runtime(), ExecConfig())
    eng.model(torch.ones(4, 3)).sum().backward()
    assert eng.step() is not None
    return eng


def test_save_latest_rotation_and_weights_only_load(tmp_path):
    eng = _engine()
    ck = Checkpointer(tmp_path / "checkpoints", Runtime())
    for step in (5, 10):
        ck.save(step, {"stage": "stage1", "stage_step": step, "log_offset": 7}, {"policy": eng},
                {"policy": lambda d: torch.save({"w": eng.module.weight.detach()}, d / "w.pt")},
                capture_rng(Runtime()))
    (tmp_path / "checkpoints" / ".partial_step_15").mkdir()  # a torn write is ignored
    assert [s for s, _ in ck.steps()] == [10]  # older ones rotated away
    latest = ck.latest()
    assert latest.path.name == "step_10" and latest.state["global_step"] == 10
    assert latest.state["world_size"] == 1 and latest.state["log_offset"] == 7
    opt = latest.load_optimizer("policy", Runtime(), sharded=False)
    saved = eng.optimizer.state_dict()["state"][0]
    assert torch.equal(opt["adamw"]["state"][0]["exp_avg"], saved["exp_avg"])
    # tensors-only pickles: a non-tensor object is refused by weights_only loading
    torch.save({"x": object()}, latest.path / "bad.pt")
    with pytest.raises(Exception):
        load_tensors(latest.path / "bad.pt")
    with pytest.raises(TrainingError, match="missing"):
        load_tensors(latest.path / "absent.pt")


def test_optimizer_state_roundtrip():
    a, b = _engine(), _engine()
    b.optimizer.state.clear()
    b.load_optimizer_state(a.optimizer_state())
    for k, st in a.optimizer.state_dict()["state"].items():
        assert torch.equal(st["exp_avg_sq"], b.optimizer.state_dict()["state"][k]["exp_avg_sq"])


def test_rng_roundtrip():
    rt = Runtime()
    gen = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(4)
    tensors, js = capture_rng(rt, sampler=gen, np_rng=rng)
    js = json.loads(json.dumps(js))  # written as JSON
    want = (torch.rand(2).tolist(), torch.randint(10, (3,), generator=gen).tolist(), rng.random())
    restore_rng(tensors, js, rt, sampler=gen, np_rng=rng)
    assert (torch.rand(2).tolist(), torch.randint(10, (3,), generator=gen).tolist(), rng.random()) == want


def test_step_logger_truncates_on_resume(tmp_path):
    path = tmp_path / "log.jsonl"
    lg = StepLogger(path, tmp_path / "tb")
    lg.write({"stage": "s", "step": 0, "loss": 1.0}, global_step=0)
    off = lg.offset()
    lg.write({"stage": "s", "step": 1, "loss": float("nan"), "x": np.float32(2.0)}, global_step=1)
    lg.close()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[1]["loss"] is None and rows[1]["x"] == 2.0
    StepLogger(path, truncate_to=off).close()
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0]
    assert list((tmp_path / "tb").iterdir())


def test_other_ranks_write_nothing(tmp_path):
    lg = StepLogger(tmp_path / "log.jsonl", tmp_path / "tb", Runtime(rank=1, world_size=2))
    lg.write({"stage": "s", "step": 0}, global_step=0)
    lg.close()
    assert not (tmp_path / "log.jsonl").exists() and not (tmp_path / "tb").exists()
