"""Exact values for the Stage-1/Stage-2 math (paper section 3.8)."""

import math

import numpy as np
import pytest
import torch

from rmsd.train.loop import lr_at
from rmsd.train.rl import (
    RLConfig,
    bt_loss,
    composite_reward,
    grpo_advantages,
    low_var_kl,
    masked_mean,
    ppo_clip_loss,
)
from rmsd.errors import ConfigError


def test_bt_loss_weighted():
    d_t = torch.tensor([1.0, 0.0])
    d_s = torch.tensor([0.0, 0.0])
    w = torch.tensor([0.5, 1.0])
    want = (0.5 * math.log(1 + math.exp(-1.0)) + 1.0 * math.log(2)) / 2
    assert bt_loss(d_t, d_s, w).item() == pytest.approx(want, abs=1e-6)


def test_composite_reward_paper_weights():
    r = composite_reward(np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0]),
                         np.array([0.5, 0.0]), 0.4, 0.1, 0.1, 0.4)
    assert r.tolist() == pytest.approx([0.8, 0.1])


def test_grpo_advantages_group_normalised():
    a = grpo_advantages(np.array([[0.0, 1.0, 2.0, 3.0]]))
    std = np.std([0, 1, 2, 3])
    assert a[0].tolist() == pytest.approx([(x - 1.5) / (std + 1e-6) for x in range(4)])
    assert grpo_advantages(np.array([[0.7, 0.7]])).tolist() == [[0.0, 0.0]]


def test_low_var_kl_zero_when_equal_and_positive_otherwise():
    lp = torch.tensor([[-1.0, -2.0]])
    assert low_var_kl(lp, lp).abs().max().item() == 0.0
    ref = torch.tensor([[-1.5, -1.0]])
    d = ref - lp
    assert low_var_kl(lp, ref)[0].tolist() == pytest.approx((torch.exp(d) - d - 1)[0].tolist())
    assert low_var_kl(lp, ref)[0].tolist() == pytest.approx([math.exp(-0.5) + 0.5 - 1, math.e - 2])


def test_ppo_clip():
    lp = torch.log(torch.tensor([[1.5]]))
    old = torch.zeros(1, 1)
    assert ppo_clip_loss(lp, old, torch.tensor([[1.0]]), 0.2).item() == pytest.approx(-1.2)
    assert ppo_clip_loss(lp, old, torch.tensor([[-1.0]]), 0.2).item() == pytest.approx(1.5)


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    m = torch.tensor([[True, False, True]])
    assert masked_mean(x, m).item() == 2.0


def test_lr_schedule():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.1)


def test_rl_config_strict():
    with pytest.raises(ConfigError, match="rolouts"):
        RLConfig.from_dict({"rolouts": 8})
    with pytest.raises(ConfigError, match="d_score"):
        RLConfig.from_dict({"d_score": "tanh"})
