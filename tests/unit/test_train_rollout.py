"""Stage-2 rollouts: log-probs at the rollout temperature, and the vLLM rollout engine's requests,
weight pushes, sleep/wake order and output format, against a fake ``LLM`` (no vLLM here; the real
engine ran only on the GPU, in benchmarks/stage2_h200.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rmsd.errors import ConfigError
from rmsd.train.losses import response_logprobs
from rmsd.train.rollout import (HFRollout, VLLMRollout, build_rollout_engine, check_vllm_settings,
                                policy_weights, request_seed, video_metadata_dict)


# -- log-probs at the rollout temperature --------------------------------------------------------
class TableLM(torch.nn.Module):
    """Logits depend only on the current token: row ``input_ids[b, s]`` of ``TABLE``."""

    TABLE = torch.tensor([[0.0, math.log(2.0), math.log(4.0)],
                          [math.log(3.0), 0.0, 0.0],
                          [0.0, 0.0, math.log(5.0)]])

    def forward(self, input_ids, logits_to_keep=0, use_cache=False, **_):
        logits = self.TABLE[input_ids]
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


def _batch():
    ids = torch.tensor([[0, 1, 2, 0]])  # prompt 0, 1; response 2, 0
    mask = torch.tensor([[False, False, True, True]])
    z = torch.zeros_like(ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": z,
            "pixel_values_videos": torch.zeros(0, 4), "video_grid_thw": torch.zeros(1, 3, dtype=torch.long),
            "response_mask": mask}


def test_logprobs_at_temperature_exact():
    lp = response_logprobs(TableLM(), _batch(), temperature=2.0)
    # token 2 after token 1: logits/2 = [ln3/2, 0, 0] -> p = 1 / (sqrt(3) + 2)
    # token 0 after token 2: logits/2 = [0, 0, ln5/2] -> p = 1 / (2 + sqrt(5))
    want = [0.0, 0.0, math.log(1 / (math.sqrt(3) + 2)), math.log(1 / (2 + math.sqrt(5)))]
    assert lp.shape == (1, 3)
    assert lp[0].tolist() == pytest.approx(want[1:], abs=1e-6)
    t1 = response_logprobs(TableLM(), _batch(), temperature=1.0)
    assert t1[0].tolist() == pytest.approx([0.0, math.log(1 / 5), math.log(1 / 7)], abs=1e-6)
    assert torch.equal(t1, response_logprobs(TableLM(), _batch()))  # T = 1: bit-identical default
    with pytest.raises(ValueError, match="temperature"):
        response_logprobs(TableLM(), _batch(), temperature=0.0)


# -- the vLLM engine against a fake LLM ------------------------------------------------------------
class FakeParams:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeModel:
    def __init__(self):
        self.loaded = []

    def load_weights(self, weights):
        self.loaded.append([(n, t.dtype, t.clone()) for n, t in weights])


class FakeLLM:
    """Records the call order; ``generate`` returns canned token ids per request."""

    def __init__(self, outputs, prompt_ids=None):
        self.calls, self.outputs, self.prompt_ids = [], outputs, prompt_ids
        self.worker = SimpleNamespace(model_runner=SimpleNamespace(model=FakeModel()))
        self.requests = None

    def sleep(self, level):
        self.calls.append(f"sleep{level}")

    def wake_up(self):
        self.calls.append("wake")

    def reset_prefix_cache(self):
        self.calls.append("reset")

    def collective_rpc(self, fn):
        self.calls.append("rpc")
        return [fn(self.worker)]

    def generate(self, reqs, sps, use_tqdm=False):
        self.calls.append("generate")
        self.requests = (reqs, sps)
        return [SimpleNamespace(prompt_token_ids=(self.prompt_ids[i] if self.prompt_ids else None),
                                outputs=[SimpleNamespace(token_ids=ids, finish_reason=fr) for ids, fr in outs])
                for i, outs in enumerate(self.outputs)]


class Tok:
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(f"t{i}" for i in ids if not (skip_special_tokens and i == 9))


class Enc:
    """The encoder surface the engine uses (chat text, metadata, ids, tokenizer)."""

    eos_id, pad_id, suppress_ids, tokenizer = 9, 0, [7, 8], Tok()

    def prompt_text(self, item):
        return f"<video>{item['question']}"

    def video_metadata(self, frames, meta):
        from rmsd.models.inputs import VideoPromptEncoder

        return VideoPromptEncoder.video_metadata(self, frames, meta)


class Pol:
    """The policy Engine surface: rt, module, full_parameters."""

    def __init__(self):
        self.rt = SimpleNamespace(rank=0, device=torch.device("cpu"))
        self.module = torch.nn.Linear(2, 1)
        torch.nn.init.constant_(self.module.weight, 0.25)
        torch.nn.init.constant_(self.module.bias, -1.0)
        self.module.register_buffer("scale", torch.tensor([2.0]))
        self.module.register_buffer("cache", torch.tensor([3.0]), persistent=False)

    def full_parameters(self):
        import contextlib

        return contextlib.nullcontext()


def _examples(n=2):
    rec = {"fps": 4.0, "indices": [1, 3, 5, 7], "num_video_frames": 16}
    return [SimpleNamespace(item={"id": f"x{j}", "question": f"q{j}"},
                            prompt=SimpleNamespace(prompt_ids=torch.tensor([1, 2, 3 + j])),
                            frames=np.full((4, 8, 6, 3), j, np.uint8), record=rec) for j in range(n)]


def test_requests_sampling_and_metadata():
    llm = FakeLLM([])
    eng = VLLMRollout(llm, Enc(), sampling_params_cls=FakeParams)
    exs = _examples()
    reqs, sps = eng.build_requests(exs, n=8, max_new_tokens=128, temperature=0.7, top_p=0.9, step=3, seed=5)
    assert [r["prompt"] for r in reqs] == ["<video>q0", "<video>q1"]
    fr, md = reqs[1]["multi_modal_data"]["video"]
    assert fr.dtype == np.uint8 and fr.shape == (4, 8, 6, 3) and int(fr[0, 0, 0, 0]) == 1
    assert md == {"fps": 4.0, "frames_indices": [1, 3, 5, 7], "total_num_frames": 16, "duration": 4.0,
                  "width": 6, "height": 8, "do_sample_frames": False}
    sp = sps[0].__dict__
    assert sp == {"n": 8, "temperature": 0.7, "top_p": 0.9, "max_tokens": 128, "seed": request_seed(5, 0, 3, 0),
                  "stop_token_ids": [9], "logit_bias": {7: -100.0, 8: -100.0}, "skip_special_tokens": True}
    assert sps[1].seed == request_seed(5, 0, 3, 1) != sps[0].seed
    bare = SimpleNamespace(item={"id": "nofr", "question": "q"}, frames=None)
    with pytest.raises(ConfigError, match="nofr"):
        eng.request(bare)


def test_generate_order_weights_and_outputs():
    outs = [[([4, 5, 9], "stop"), ([4, 9, 6], "stop")], [([6, 6], "length"), ([5], "stop")]]
    llm = FakeLLM(outs, prompt_ids=[[1, 2, 3], [1, 2, 99]])
    eng = VLLMRollout(llm, Enc(), sleep_level=1, sampling_params_cls=FakeParams, asleep=True)
    pol = Pol()
    groups = eng.generate(pol, None, _examples(), n=2, max_new_tokens=4, temperature=1.0, top_p=1.0, step=0, seed=0)
    assert llm.calls == ["wake", "rpc", "reset", "generate", "sleep1"]
    pushed = llm.worker.model_runner.model.loaded[0]
    assert [(n, d) for n, d, _ in pushed] == [("weight", torch.bfloat16), ("bias", torch.bfloat16),
                                              ("scale", torch.bfloat16)]  # non-persistent buffer left out
    assert pushed[0][2].float().tolist() == [[0.25, 0.25]] and pushed[1][2].float().tolist() == [-1.0]
    assert groups == [[{"text": "t4 t5", "ids": [4, 5, 9], "finish_reason": "stop", "n_tokens": 3},
                       {"text": "t4", "ids": [4, 9], "finish_reason": "stop", "n_tokens": 2}],
                      [{"text": "t6 t6", "ids": [6, 6], "finish_reason": "length", "n_tokens": 2},
                       {"text": "t5", "ids": [5, 9], "finish_reason": "stop", "n_tokens": 2}]]
    assert eng.last["gen_tokens"] == 9.0 and eng.last["prompt_mismatch"] == 1.0
    # no optimizer step in between: no second push; after one: pushed again
    eng.generate(pol, None, _examples(), n=2, max_new_tokens=4, temperature=1.0, top_p=1.0, step=1, seed=0)
    assert llm.calls[5:] == ["wake", "generate", "sleep1"] and eng.last["sync_seconds"] == 0.0
    eng.policy_updated()
    eng.generate(pol, None, _examples(), n=2, max_new_tokens=4, temperature=1.0, top_p=1.0, step=2, seed=0)
    assert llm.calls[8:] == ["wake", "rpc", "reset", "generate", "sleep1"] and eng.n_pushes == 2


def test_sleep_level_zero_never_sleeps():
    llm = FakeLLM([[([9], "stop")]])
    eng = VLLMRollout(llm, Enc(), sleep_level=0, sampling_params_cls=FakeParams)
    eng.generate(Pol(), None, _examples(1), n=1, max_new_tokens=2, temperature=1.0, top_p=1.0, step=0, seed=0)
    assert llm.calls == ["rpc", "reset", "generate"]


def test_settings_and_factory():
    assert check_vllm_settings(None)["sleep_level"] == 1
    with pytest.raises(ConfigError, match="unknown"):
        check_vllm_settings({"gpu_mem": 0.5})
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        check_vllm_settings({"gpu_memory_utilization": 1.0})
    with pytest.raises(ConfigError, match="rollout_engine"):
        build_rollout_engine("sglang")
    assert isinstance(build_rollout_engine("hf"), HFRollout)
    with pytest.raises(ConfigError, match="model directory"):
        build_rollout_engine("vllm")


def test_policy_weights_names_match_state_dict():
    from rmsd.models.factory import TinyVLMConfig, build_model
    from rmsd.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["a red square moves", "system user assistant"], 300)
    arch = TinyVLMConfig(hidden=32, layers=1, heads=1, kv_heads=1, intermediate=64, vision_dim=16,
                         vision_depth=1, vision_heads=1)
    model = build_model(tok, arch, seed=0, family="qwen3_vl").float()
    pairs = list(policy_weights(model))
    names = [n for n, _ in pairs]
    assert names == list(model.state_dict())  # every checkpoint name, tied ones included, in order
    assert set(dict(model.named_parameters())) <= set(names)
    assert all(t.dtype == torch.bfloat16 for _, t in pairs)


def test_video_metadata_of_real_encoder():
    from rmsd.models.factory import build_processor
    from rmsd.models.inputs import VideoPromptEncoder
    from rmsd.models.tokenizer import build_tokenizer

    tok = build_tokenizer(["a red square moves", "system user assistant"], 300)
    enc = VideoPromptEncoder(build_processor(tok, 784, 4 * 4096, family="qwen3_vl"), "answer_only")
    md = video_metadata_dict(enc, np.zeros((4, 56, 48, 3), np.uint8),
                             {"fps": 2.0, "indices": [0, 4, 8, 12], "num_video_frames": 20})
    assert md["fps"] == 2.0 and md["frames_indices"] == [0, 4, 8, 12] and md["total_num_frames"] == 20
    assert md["do_sample_frames"] is False and md["width"] == 48 and md["height"] == 56
