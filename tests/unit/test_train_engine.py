"""Engine and config plumbing: GPU knobs are inert on CPU; configs and schema agree."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rmsd.errors import ConfigError
from rmsd.train.dist import Runtime
from rmsd.train.engine import Engine, ExecConfig, autocast, deepspeed_config_path, use_bf16
from rmsd.train.loop import SFTConfig, per_rank
from rmsd.train.rl import RLConfig, RLExample, check_pool, d_reward


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.gc = False

    def gradient_checkpointing_enable(self, **kw):
        self.gc = True

    def forward(self, x):
        return self.lin(x)


def test_gpu_knobs_do_nothing_on_cpu():
    ex = ExecConfig(precision="bf16", gradient_checkpointing=True, compile=True)
    rt = Runtime()
    assert not use_bf16(ex, rt)
    assert isinstance(autocast(ex, rt), type(autocast(ExecConfig(), rt)))
    m = Tiny()
    eng = Engine(m, 1e-3, 0.0, 1.0, rt, ex)
    assert eng.model is m and not m.gc and m.lin.weight.dtype == torch.float32
    assert m._compiled_call_impl is None  # not compiled


def test_skip_on_nonfinite_gradient():
    eng = Engine(Tiny(), 1e-3, 0.0, 1.0, Runtime(), ExecConfig())
    before = eng.module.lin.weight.detach().clone()
    (eng.model(torch.ones(1, 4)).sum() * float("nan")).backward()
    assert eng.step() is None  # nothing applied
    assert torch.equal(before, eng.module.lin.weight) and eng.module.lin.weight.grad is None


def test_configs_match_schema():
    schema = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "schema.yaml").read_text())["$defs"]
    sft = {f.name for f in dataclasses.fields(SFTConfig)}
    rl = {f.name for f in dataclasses.fields(RLConfig)} - {"extra"}
    assert sft == set(schema["sft"]["properties"])
    assert rl == set(schema["rl"]["properties"])
    for block in ("sft", "rl", "stage1", "stage2"):
        assert all("description" in v or "$ref" in v for v in schema[block]["properties"].values())


def test_config_validation():
    with pytest.raises(ConfigError, match="precision"):
        SFTConfig.from_dict({"precision": "fp16"})
    with pytest.raises(ConfigError, match="on_empty_pool"):
        RLConfig.from_dict({"on_empty_pool": "ignore"})
    with pytest.raises(ConfigError, match="not found"):
        deepspeed_config_path("zero9.json")
    assert deepspeed_config_path("zero2").name == "zero2.json"
    assert deepspeed_config_path("zero3").name == "zero3.json"
    assert per_rank(32, Runtime(world_size=4), "b") == 8


def test_d_reward_and_pool_checks():
    assert d_reward(np.array([1.0]), np.array([1.0]), "sigmoid_diff").tolist() == [0.5]
    assert d_reward(np.array([3.0]), np.array([-9.0]), "raw").tolist() == [3.0]
    ok = RLExample({}, None, ["a", "b"], np.array([1.0, 0.5]), np.array([2 / 3, 1 / 3]))
    assert check_pool(ok) is None
    assert check_pool(RLExample({}, None, [], np.array([]), np.array([]))) == "empty pool"
    assert "not a distribution" in check_pool(RLExample({}, None, ["a"], np.array([0.0]), np.array([0.0])))
