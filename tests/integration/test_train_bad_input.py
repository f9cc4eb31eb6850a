"""Bad input gives a clear error or a counted skip, as configured; never a silently wrong run."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from trainworld import make_world, read_log, write_config
from rmsd.errors import ConfigError, DataError, TrainingError
from rmsd.train import engine, rl
from rmsd.train.run import train_variant


def _cfg(world, tmp_path, stage1=None, stage2=None) -> dict:
    return yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage1=stage1, stage2=stage2).read_text())


@pytest.fixture(scope="module")
def broken_world(tmp_path_factory):
    """it001 has no frames, it004 has an empty pool."""
    return make_world(tmp_path_factory.mktemp("broken"), drop_frames_for=("it001",), empty_pool_for=("it004",))


def test_missing_frames_fail_names_item(broken_world, tmp_path):
    with pytest.raises(DataError, match="it001.*no frames"):
        train_variant(_cfg(broken_world, tmp_path, stage2={"rl": {"on_empty_pool": "skip"}}), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_empty_pool_fail_names_item(broken_world, tmp_path):
    with pytest.raises(DataError, match="it004.*empty pool"):
        train_variant(_cfg(broken_world, tmp_path, stage1={"on_missing_frames": "skip"}), str(tmp_path / "o"))


def test_skips_are_counted(broken_world, tmp_path):
    cfg = _cfg(broken_world, tmp_path, stage1={"on_missing_frames": "skip", "sft": {"steps": 2}},
               stage2={"rl": {"on_empty_pool": "skip", "steps": 1}})
    train_variant(cfg, str(tmp_path / "o"))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_missing_frames"] == 1 and summary["n_empty_pool"] == 1 and summary["n_examples"] == 10


def test_invalid_matching_distribution_is_an_error(world, tmp_path):
    from rmsd.io import read_jsonl, write_jsonl

    w = dict(world, selection=tmp_path / "sel.jsonl")
    sel = read_jsonl(world["selection"])
    for x in sel[0]["pool"]:
        x["p"] = 0.0
    write_jsonl(w["selection"], sel)
    with pytest.raises(DataError, match="it000.*not a distribution"):
        train_variant(_cfg(w, tmp_path, stage1={"sft": {"steps": 1}}), str(tmp_path / "o"))


def _poison_sft_loss(monkeypatch, calls: set[int]):
    """Make the policy's training loss NaN on the given forward calls (1-based)."""
    orig = engine.prepare_module

    def prep(module, ex, rt):
        m = orig(module, ex, rt)
        if isinstance(m, rl.Discriminator):
            return m
        fwd, n = m.forward, [0]

        def forward(*a, **k):
            out = fwd(*a, **k)
            if k.get("labels") is not None:
                n[0] += 1
                if n[0] in calls:
                    out.loss = out.loss * float("nan")
            return out

        m.forward = forward
        return m

    monkeypatch.setattr(engine, "prepare_module", prep)


def test_nan_loss_fails_by_default(world, tmp_path, monkeypatch):
    _poison_sft_loss(monkeypatch, {3})
    with pytest.raises(TrainingError, match="stage1: non-finite loss at step 2"):
        train_variant(_cfg(world, tmp_path, stage2={"mode": "none"}), str(tmp_path / "o"))


def test_nan_loss_skipped_and_counted(world, tmp_path, monkeypatch):
    _poison_sft_loss(monkeypatch, {2, 4})
    cfg = _cfg(world, tmp_path, stage1={"sft": {"on_nan": "skip"}}, stage2={"mode": "none"})
    train_variant(cfg, str(tmp_path / "o"))
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["stage1"]["n_skipped_nan"] == 2 and summary["n_skipped_nan"] == 2
    assert [r["step"] for r in read_log(tmp_path / "o")] == [0, 2, 4, 5]  # skipped steps are not logged


def test_every_step_nan_is_an_error(world, tmp_path, monkeypatch):
    _poison_sft_loss(monkeypatch, set(range(1, 100)))
    cfg = _cfg(world, tmp_path, stage1={"sft": {"on_nan": "skip"}}, stage2={"mode": "none"})
    with pytest.raises(TrainingError, match="all 6 steps were skipped"):
        train_variant(cfg, str(tmp_path / "o"))


def _poison_disc(monkeypatch, calls: set[int]):
    orig, n = rl.Discriminator.forward, [0]

    def forward(self, batch):
        n[0] += 1
        s = orig(self, batch)
        return s * float("nan") if n[0] in calls else s

    monkeypatch.setattr(rl.Discriminator, "forward", forward)


def _poison_policy_logprobs(monkeypatch, calls: set[int]):
    orig, n = rl.response_logprobs, [0]

    def lp(model, batch, **kw):
        out = orig(model, batch, **kw)
        if torch.is_grad_enabled():  # the policy's own forward (reference/old ones run without grad)
            n[0] += 1
            if n[0] in calls:
                return out * float("nan")
        return out

    monkeypatch.setattr(rl, "response_logprobs", lp)


def test_stage2_nan_fail_and_skip(world, tmp_path, monkeypatch):
    s1 = {"sft": {"steps": 1}}
    _poison_disc(monkeypatch, {2})
    with pytest.raises(TrainingError, match="Stage 2: non-finite discriminator score/loss at step 1"):
        train_variant(_cfg(world, tmp_path, stage1=s1), str(tmp_path / "a"))
    _poison_disc(monkeypatch, {3})  # counter restarts with the new patch: third step (a policy step)
    _poison_policy_logprobs(monkeypatch, {2})
    cfg = _cfg(world, tmp_path, stage1=s1, stage2={"rl": {"on_nan": "skip", "steps": 4}})
    train_variant(cfg, str(tmp_path / "b"))
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    s2 = summary["stage2"]
    # step 2: D is NaN -> D update and that step's policy update skipped; a later policy loss NaN
    assert s2["n_skipped_nan_disc"] == 1 and s2["n_skipped_nan"] == 2
    assert summary["n_skipped_nan"] == 3
    assert len([r for r in read_log(tmp_path / "b") if r["stage"] == "stage2"]) == 5


def test_bad_config_values(world, tmp_path):
    with pytest.raises(ConfigError, match="on_nan"):
        train_variant(_cfg(world, tmp_path, stage1={"sft": {"on_nan": "ignore"}}), str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="does not divide"):
        from rmsd.train.dist import Runtime
        from rmsd.train.loop import per_rank

        per_rank(5, Runtime(world_size=2), "sft.batch_size")
    with pytest.raises(ConfigError, match="unknown stage1 key"):
        train_variant(_cfg(world, tmp_path, stage1={"on_missing": "skip"}), str(tmp_path / "o"))
