"""Stage 2 as in paper section 3.8: logged components, the online discriminator, warm-up, variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from trainworld import read_log, write_config
from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder
from rmsd.train.rl import Discriminator
from rmsd.train.run import train_variant

POLICY_KEYS = {"r_outer", "r_task", "r_content", "d_score", "d_student", "d_teacher", "disc_loss", "disc_acc",
               "reward", "kl", "policy_loss", "response_len", "lr", "disc_lr", "grad_norm", "clip_frac"}


def _train(world, tmp_path, stage1=None, stage2=None) -> tuple[dict, list[dict], object]:
    cfg = yaml.safe_load(write_config(world, tmp_path / "cfg.yaml", stage1=stage1, stage2=stage2).read_text())
    out = tmp_path / "out"
    summary = train_variant(cfg, str(out))
    return summary, read_log(out), out


def test_adversarial_logs_every_component(world, tmp_path):
    summary, log, out = _train(world, tmp_path, stage1={"sft": {"steps": 2}},
                               stage2={"rl": {"steps": 2, "disc_warmup_steps": 2}})
    s2 = [r for r in log if r["stage"] == "stage2"]
    assert [r["phase"] for r in s2] == ["disc_warmup"] * 2 + ["policy"] * 2
    for r in s2[2:]:
        assert POLICY_KEYS <= set(r), POLICY_KEYS - set(r)
        assert 0.0 <= r["disc_acc"] <= 1.0 and 0.0 <= r["d_score"] <= 1.0 and r["kl"] >= 0.0
    assert "policy_loss" not in s2[0] and "disc_loss" in s2[0]  # warm-up trains only D
    for r in s2:  # where each step's time went
        parts = r["gen_seconds"] + r["sync_seconds"] + r["swap_seconds"] + r["disc_seconds"] + r["policy_seconds"]
        assert r["gen_seconds"] > 0 and abs(parts - r["step_seconds"]) < 1e-3 and 0 < r["gen_share"] < 1
        assert r["rollout_engine"] == "hf" and r["sync_seconds"] == 0.0 and r["swap_seconds"] == 0.0
        assert r["gen_tokens"] == round(r["response_len"] * 2 * 2)  # 2 prompts x 2 rollouts
        # step_seconds is logged rounded to 0.1 ms, rollouts_per_s from the unrounded time
        s_lo, s_hi = r["step_seconds"] - 5e-5, r["step_seconds"] + 5e-5
        assert 4 / s_hi - 1e-4 <= r["rollouts_per_s"] <= 4 / max(s_lo, 1e-9) + 1e-4, r
    assert summary["stage2"]["d_score"] == "sigmoid_diff" and summary["stage2"]["alpha"] == 0.4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out / "tb"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"stage1/loss", "stage2/disc_acc", "stage2/kl", "stage2/reward", "stage2/r_content"} <= tags
    assert [e.step for e in ea.Scalars("stage2/disc_loss")] == [2, 3, 4, 5]  # global steps


def test_discriminator_learns_during_warmup(world, tmp_path):
    _, log, _ = _train(world, tmp_path, stage1={"sft": {"steps": 1}},
                       stage2={"rl": {"steps": 0, "disc_warmup_steps": 8, "disc_lr": 3e-3,
                                      "prompts_per_step": 4}})
    s2 = [r for r in log if r["stage"] == "stage2"]
    assert len(s2) == 8 and all(r["phase"] == "disc_warmup" for r in s2)
    assert np.mean([r["disc_loss"] for r in s2[-3:]]) < s2[0]["disc_loss"] - 0.05
    assert np.mean([r["disc_acc"] for r in s2[-3:]]) > 0.8


def test_warmup_leaves_policy_untouched(world, tmp_path):
    _, _, out = _train(world, tmp_path, stage1={"enabled": False},
                       stage2={"rl": {"steps": 0, "disc_warmup_steps": 2}})
    init, final = load_file(str(world["student"] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(init[k], final[k]) for k in init)


@pytest.mark.parametrize("stage2", [{"mode": "rule"}, {"rl": {"d_score": "raw"}}])
def test_variants(world, tmp_path, stage2):
    summary, log, _ = _train(world, tmp_path, stage1={"sft": {"steps": 2}}, stage2={**stage2, "rl": {
        "steps": 2, **stage2.get("rl", {})}})
    s2 = [r for r in log if r["stage"] == "stage2"]
    if stage2.get("mode") == "rule":  # "original SFT+RL": GRPO on rule rewards, no discriminator
        assert summary["stage2"]["alpha"] == 0.0 and summary["stage2"]["disc_warmup_steps"] == 0
        assert len(s2) == 2 and not any("disc_loss" in r for r in s2)
        for r in s2:
            assert r["reward"] == pytest.approx(0.1 * r["r_outer"] + 0.1 * r["r_task"] + 0.4 * r["r_content"])
    else:
        assert summary["stage2"]["d_score"] == "raw"
        for r in s2:
            assert r["d_score"] == pytest.approx(r["d_student"])


def test_single_sample_pool(tmp_path):
    """K = 1 (ablation A): every pool holds one response; the full pipeline still runs."""
    from trainworld import make_world
    from rmsd.io import read_jsonl, write_jsonl

    w = make_world(tmp_path / "w", n_items=6)
    sel = read_jsonl(w["selection"])
    for r in sel:
        r["pool"] = [dict(r["pool"][0], p=1.0)]
    sel[0]["sft_target"] = sel[0]["pool"][0]["text"] = ""  # a raw, empty teacher sample is still a sample
    sel[0]["pool"][0]["q"] = 0.0
    write_jsonl(w["selection"], sel)
    summary, log, _ = _train(w, tmp_path, stage1={"sft": {"steps": 2}}, stage2={"rl": {"steps": 1}})
    assert summary["stage2"]["mode"] == "adversarial" and len([r for r in log if r["stage"] == "stage2"]) == 2


def test_discriminator_scores_last_token_regardless_of_padding(world):
    model, proc = load_model(world["student"])
    enc = VideoPromptEncoder(proc, "answer_only")
    disc = Discriminator(model.model, model.config.text_config.hidden_size)
    torch.nn.init.normal_(disc.head.weight)
    item = {"id": "x", "task_type": "mcq", "question": "What colour?", "options": ["red", "blue"], "answer": "A"}
    p = enc.encode([item], [np.zeros((8, 56, 56, 3), np.uint8)])[0]
    short, long = enc.tokenize_responses(["<answer>A</answer>", "<answer>B is the colour here</answer>"])
    alone = disc(enc.collate([p], [short]))
    padded = disc(enc.collate([p, p], [short, long]))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
    assert not torch.allclose(padded[0], padded[1])


class _FakeLLM:
    """Stands in for ``vllm.LLM``: records calls and pushed weights, samples random token ids."""

    def __init__(self, vocab: int, eos: int):
        self.calls, self.pushed, self.requests = [], [], []
        self.rng = np.random.default_rng(0)
        self.vocab, self.eos = vocab, eos
        from types import SimpleNamespace

        owner = self

        class Model:
            def load_weights(self, weights):
                owner.pushed.append({n: t.float().clone() for n, t in weights})

        self.worker = SimpleNamespace(model_runner=SimpleNamespace(model=Model()))

    def sleep(self, level):
        self.calls.append("sleep")

    def wake_up(self):
        self.calls.append("wake")

    def reset_prefix_cache(self):
        self.calls.append("reset")

    def collective_rpc(self, fn):
        self.calls.append("rpc")
        return [fn(self.worker)]

    def generate(self, reqs, sps, use_tqdm=False):
        from types import SimpleNamespace

        self.calls.append("generate")
        self.requests.append((reqs, sps))
        outs = []
        for sp in sps:
            seqs = []
            for _ in range(sp.n):
                ids = self.rng.integers(20, self.vocab, sp.max_tokens).tolist()
                seqs.append(SimpleNamespace(token_ids=ids[: sp.max_tokens // 2] + [self.eos], finish_reason="stop"))
            outs.append(SimpleNamespace(prompt_token_ids=None, outputs=seqs))
        return outs


def test_vllm_rollout_engine_wiring(world, tmp_path, monkeypatch):
    """rollout_engine: vllm through train_variant, with a fake engine (the real one ran on the GPU
    only, benchmarks/stage2_h200.py): the raw frames and manifest metadata reach the requests, the
    policy's weights are pushed before the first generation and again after each policy update,
    the engine sleeps between generations, and the steps log the engine's timings."""
    from types import SimpleNamespace

    from rmsd.train import rollout as ro

    made = {}

    def fake_build(cls, model_path, encoder, settings, seed, device=None):
        llm = _FakeLLM(len(encoder.tokenizer), encoder.eos_id)
        made["llm"], made["settings"] = llm, settings
        return cls(llm, encoder, sleep_level=settings["sleep_level"],
                   sampling_params_cls=lambda **kw: SimpleNamespace(**kw), asleep=True)

    monkeypatch.setattr(ro.VLLMRollout, "build", classmethod(fake_build))
    summary, log, out = _train(world, tmp_path, stage1={"enabled": False},
                               stage2={"rollout_engine": "vllm", "vllm": {"gpu_memory_utilization": 0.25},
                                       "rl": {"steps": 2, "disc_warmup_steps": 1, "temperature": 0.7}})
    llm = made["llm"]
    assert made["settings"]["gpu_memory_utilization"] == 0.25 and summary["stage2"]["rollout_engine"] == "vllm"
    # step 0 (warm-up): push; step 1: no update since -> no push; step 2: pushed after step 1's update
    assert llm.calls == ["wake", "rpc", "reset", "generate", "sleep", "wake", "generate", "sleep",
                         "wake", "rpc", "reset", "generate", "sleep"]
    init = load_model(world["student"])[0].state_dict()  # the policy's names (vLLM maps them)
    first, second = llm.pushed
    assert set(first) == set(init) == set(second)
    assert all(torch.equal(first[k], init[k].to(torch.bfloat16).float()) for k in first)
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the update reached the engine
    reqs, sps = llm.requests[0]
    frames, md = reqs[0]["multi_modal_data"]["video"]
    assert frames.shape == (8, 56, 56, 3) and frames.dtype == np.uint8
    assert md["fps"] == 4.0 and md["frames_indices"] == list(range(1, 16, 2)) and md["total_num_frames"] == 16
    assert md["do_sample_frames"] is False
    assert {sp.temperature for sp in sps} == {0.7} and {sp.n for sp in sps} == {2}
    s2 = [r for r in log if r["stage"] == "stage2"]
    assert [r["rollout_engine"] for r in s2] == ["vllm"] * 3
    assert s2[0]["sync_seconds"] > 0 and s2[1]["sync_seconds"] == 0.0 and s2[2]["sync_seconds"] > 0
    for r in s2:
        assert r["gen_tokens"] == 2 * 2 * 4 and r["response_len"] == 4  # 3 sampled ids + end of turn
        assert r["rollout_prompt_mismatch"] == 0
