"""Response-window losses (rmsd.train.losses) equal the full-logits ones, values and gradients.

A tiny Qwen2-VL and Qwen3-VL in float32 on the CPU, a left-padded batch whose responses differ in
length (so the window includes some prompt positions of the shorter rows), compared with
``model(**batch, labels=labels).loss`` and :func:`rmsd.models.inputs.response_logprobs`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmsd.models.factory import TinyVLMConfig, build_model, build_processor
from rmsd.models.inputs import VideoPromptEncoder, model_kwargs
from rmsd.models.inputs import response_logprobs as full_logprobs
from rmsd.models.tokenizer import build_tokenizer
from rmsd.train.losses import logits_window, response_logprobs, sft_loss

ARCH = TinyVLMConfig(hidden=32, layers=1, heads=1, kv_heads=1, intermediate=64, vision_dim=16,
                     vision_depth=1, vision_heads=1)
ITEMS = [{"id": f"i{k}", "task_type": "open", "question": q, "answer": "x"}
         for k, q in enumerate(["Describe the video.", "What moves in the video, and where?", "Colour?"])]
RESPONSES = ["A red square moves left.", "Blue.", "A small green circle moves up and then right."]


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen3_vl"])
def setup(request):
    family = request.param
    tok = build_tokenizer([it["question"] for it in ITEMS] + RESPONSES + ["system user assistant"], 300)
    proc = build_processor(tok, 784, 3136 if family == "qwen2_vl" else 4 * 4096, family=family)
    model = build_model(tok, ARCH, seed=0, family=family).float()
    enc = VideoPromptEncoder(proc, "answer_only")
    frames = [np.random.default_rng(k).integers(0, 256, (4, 56, 56, 3), dtype=np.uint8) for k in range(3)]
    prompts = enc.encode(ITEMS, frames)
    targets = enc.tokenize_responses(RESPONSES)
    batch = enc.collate(prompts, targets)
    return model, {**batch, "_enc": enc, "_prompts": prompts, "_targets": targets}


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        # bitwise equal except lm_head.weight, whose gradient sums over fewer (all-zero) rows
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6 * float(b[k].abs().max()), msg=k)


def test_window_covers_every_response_prediction(setup):
    _, batch = setup
    S = batch["labels"].shape[1]
    K = logits_window(batch["labels"])
    first = int(batch["response_mask"].any(0).nonzero()[0])
    assert K == S - first + 1 < S  # the longest response and the prompt token before it
    assert logits_window(batch["response_mask"]) == K
    assert logits_window(torch.full((2, 5), -100)) == 1
    assert logits_window(torch.tensor([[True, True]])) == 2  # clamped to S


def test_sft_loss_equals_full_logits_loss(setup):
    model, batch = setup
    torch.manual_seed(0)
    ref = model(**model_kwargs(batch), labels=batch["labels"]).loss
    g_ref = _grads(model, ref)
    new = sft_loss(model, batch)
    g_new = _grads(model, new)
    torch.testing.assert_close(new, ref, rtol=1e-6, atol=0)
    _same(g_new, g_ref)
    n = torch.tensor(int(batch["response_mask"].sum()) * 2)  # a larger accumulation total
    ref_n = model(**model_kwargs(batch), labels=batch["labels"], num_items_in_batch=n).loss
    new_n = sft_loss(model, batch, window=logits_window(batch["labels"]), num_items_in_batch=n)
    torch.testing.assert_close(new_n, ref_n, rtol=1e-6, atol=0)
    torch.testing.assert_close(new_n * 2, ref, rtol=1e-6, atol=0)


def test_response_logprobs_equal_full_logits(setup):
    model, batch = setup
    ref = full_logprobs(model, batch)
    g_ref = _grads(model, ref.sum())
    new = response_logprobs(model, batch)
    assert new.shape == ref.shape and new.dtype == torch.float32
    assert bool((new[~batch["response_mask"][:, 1:]] == 0).all())
    torch.testing.assert_close(new, ref, rtol=1e-6, atol=1e-6)
    _same(_grads(model, new.sum()), g_ref)


def test_host_label_mask_and_collate_to_match_collate(setup):
    """The trainer computes the logits window on the host from lengths, and collates through
    ``collate_to``: both agree with ``collate``'s own layout (on the CPU ``collate_to`` is it)."""
    from rmsd.train.loop import _label_mask, collate_to

    _, batch = setup
    enc, prompts, targets = batch["_enc"], batch["_prompts"], batch["_targets"]
    assert torch.equal(_label_mask(prompts, targets), batch["response_mask"])
    again = collate_to(enc, prompts, targets, torch.device("cpu"))
    assert all(torch.equal(again[k], batch[k]) for k in again)
