#!/usr/bin/env python
"""Per-rank GPU memory of Stage 1 and Stage 2 at the paper's shape, for an 8-GPU node.

The paper's run (config/paper.yaml): Qwen3-VL-4B student, global batch 128 over 8 ranks (16
examples / prompts a rank), 16 frames at 448 px, responses up to 1,024 tokens, DeepSpeed ZeRO-3
(config/deepspeed/zero3.json), gradient checkpointing, Stage-1 micro-batch 4, Stage-2 micro-batch 8
sequences, N = 8 rollouts, 4 prompts per generate call (``rollout_batch_size``).

One GPU cannot run ZeRO-3 over 8 (and DeepSpeed is not installed on the device), so the per-rank
peak is assembled term by term:

* **measured** on the GPU, with bf16 weights resident and gradients dropped as soon as they are
  accumulated (ZeRO-3 reduce-scatters and frees each full gradient), the *working set* above the
  resident weights (``max_memory_allocated - allocated before``) of:

  - Stage 1: one micro-step of ``rmsd.train.losses.sft_loss`` (bf16 autocast, recomputation) on
    ``--sft-micro`` sequences of prompt + 1,024 response tokens;
  - Stage 2 generation: :func:`rmsd.models.inputs.generate` of ``--gen-prompts`` prompts x N
    rollouts x 1,024 new tokens (KV cache + logits);
  - Stage 2 policy: reference log-probs (no grad) then the PPO-clipped + low_var_kl loss and its
    backward on ``--rl-micro`` rollouts (:func:`rmsd.train.losses.response_logprobs`);
  - Stage 2 discriminator: :class:`rmsd.train.rl.Discriminator` scores and the Bradley-Terry loss
    on ``--rl-micro`` student/teacher pairs (2 x rl-micro sequences) and its backward;

* **computed** per rank under ZeRO-3 over ``--world`` ranks with P parameters: bf16 parameter
  shard 2P/W, bf16 gradient shard 2P/W, fp32 master 4P/W, AdamW m and v 8P/W, the fp32 gradient
  partition made in the optimizer step 4P/W (after backward, not with activations), gathered
  parameters bounded by DeepSpeed's ``stage3_max_live_parameters`` (default 1e9 -> 2 GB bf16) plus
  the prefetch and reduce buckets of the JSON; Stage 2 holds two such engines (policy,
  discriminator) and the frozen bf16 reference in full (2P, not sharded: rl.py keeps it as a plain
  module).

Peak = static + max(working sets) + gathered-parameter bound, or static + the optimizer-step fp32
gradient, whichever is larger. Usage (see benchmarks/README.md)::

    python benchmarks/paper_shape_h200.py --out benchmarks/measured/paper_shape_h200.json   # H200, ~3 min
    python benchmarks/paper_shape_h200.py --smoke --out /tmp/ps.json                         # tiny, CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import train_step_h200 as ts  # noqa: E402

GIB = 2 ** 30
GB80 = 80e9 / GIB
"""An 80 GB card in GiB (74.5): the budget both stages must fit."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def shape_of(args) -> dict:
    base = ts.SHAPES["smoke" if args.smoke else "4b"]
    return {**base, "frames": args.frames, "frame_px": args.frame_px}


def example(tok, proc, shape: dict, response_tokens: int):
    """(encoder, item, prompt, response ids): 16 frames through the project's encoder, a short
    question, a random ``response_tokens``-token response ending in end-of-turn."""
    from rmsd.models.inputs import VideoPromptEncoder

    enc = VideoPromptEncoder(proc, "think_answer")
    rng = np.random.default_rng(0)
    F, px = shape["frames"], shape["frame_px"]
    frames = rng.integers(0, 256, (F, px, px, 3), dtype=np.uint8)
    meta = {"fps": 2.0, "indices": list(range(F)), "num_video_frames": F}
    q = " ".join(ts.WORDS[:40])
    item = {"id": "bench", "task_type": "open", "question": q, "answer": "A red square moves."}
    prompt = enc.encode([item], [frames], metadata=[meta])[0]
    g = torch.Generator().manual_seed(1)
    resp = torch.cat([torch.randint(20, len(tok), (response_tokens - 1,), generator=g),
                      torch.tensor([enc.eos_id])])
    return enc, item, prompt, resp


class DropGrads:
    """Free every parameter's gradient as soon as it is accumulated (what ZeRO-3 does after its
    reduce-scatter), so the measured peak is activations + transient buffers, not full gradients."""

    def __init__(self, model):
        self.handles = [p.register_post_accumulate_grad_hook(self._drop) for p in model.parameters()
                        if p.requires_grad]

    @staticmethod
    def _drop(p):
        p.grad = None

    def remove(self):
        for h in self.handles:
            h.remove()


def measure(fn, device) -> dict:
    """Working set of ``fn()``: peak allocated minus allocated before, GiB; and seconds."""
    ts.free(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    t = time.perf_counter()
    out = fn()
    ts.sync(device)
    sec = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return {"working_gib": round((peak - before) / GIB, 3), "seconds": round(sec, 2), **(out or {})}


def zero3_terms(P: int, world: int, ds_cfg: dict, offload: bool) -> dict:
    """Per-rank bytes (GiB) of one ZeRO-3 engine with P parameters over ``world`` ranks."""
    z = ds_cfg.get("zero_optimization", {})
    live = float(z.get("stage3_max_live_parameters", 1e9))
    prefetch = float(z.get("stage3_prefetch_bucket_size", 5e7))
    reduce = float(z.get("reduce_bucket_size", 5e8))
    shard = P / world
    t = {"params_bf16_shard": 2 * shard, "grads_bf16_shard": 2 * shard,
         "master_fp32_shard": 0.0 if offload else 4 * shard, "adam_m_v_fp32_shard": 0.0 if offload else 8 * shard,
         "gathered_params_bound": 2 * min(live, P) + 2 * prefetch, "reduce_bucket": 2 * reduce,
         "step_fp32_grad_shard": 0.0 if offload else 4 * shard}
    return {k: round(v / GIB, 3) for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny shape on the CPU (checks the script)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--frame-px", type=int, default=448)
    ap.add_argument("--response-tokens", type=int, default=1024)
    ap.add_argument("--sft-micro", type=int, default=4, help="paper.yaml stage1.sft.micro_batch_size")
    ap.add_argument("--rl-micro", type=int, default=8, help="paper.yaml stage2.rl.micro_batch_size")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--gen-prompts", type=int, default=4, help="paper.yaml stage2.rl.rollout_batch_size")
    ap.add_argument("--world", type=int, default=8)
    ap.add_argument("--deepspeed", default=str(ROOT / "config/deepspeed/zero3.json"))
    ap.add_argument("--offload", action="store_true", help="optimizer states and master weights on the CPU")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.frame_px, args.response_tokens = 4, 64, 32
        args.sft_micro, args.rl_micro, args.rollouts, args.gen_prompts = 2, 2, 2, 1
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    from rmsd.models.inputs import generate
    from rmsd.train.losses import logits_window, response_logprobs, sft_loss
    from rmsd.train.rl import Discriminator, low_var_kl, ppo_clip_loss

    shape = shape_of(args)
    tok, proc = ts.build_tokenizer_and_processor(shape)
    enc, item, prompt, resp = example(tok, proc, shape, args.response_tokens)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, tied = ts.build_model(tok, shape, dtype, device)
    P = sum(p.numel() for p in model.parameters())
    P_disc = sum(p.numel() for p in model.model.parameters()) + model.config.text_config.hidden_size + 1
    seq = len(prompt.prompt_ids) + len(resp)
    log(f"P = {P:,} (disc {P_disc:,}), prompt {len(prompt.prompt_ids)} tokens "
        f"({int((prompt.prompt_ids == enc.video_token_id).sum())} vision), sequence {seq}")
    res: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 "torch": torch.__version__, "smoke": args.smoke,
                 "shape": {"params": P, "disc_params": P_disc, "frames": args.frames, "frame_px": args.frame_px,
                           "prompt_tokens": len(prompt.prompt_ids), "response_tokens": len(resp),
                           "sequence_tokens": seq, "vision_tokens": int((prompt.prompt_ids == enc.video_token_id).sum())},
                 "per_rank": {"world": args.world, "sft_micro_batch": args.sft_micro, "rl_micro_batch": args.rl_micro,
                              "rollouts": args.rollouts, "rollout_batch_prompts": args.gen_prompts,
                              "deepspeed": Path(args.deepspeed).name, "offload": args.offload}}
    weights_gib = torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else 0.0
    res["resident_bf16_weights_gib"] = round(weights_gib, 3)
    auto = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    measured = {}

    def to_dev(b):
        return {k: v.to(device) for k, v in b.items()}

    # -- Stage 1: one SFT micro-step ------------------------------------------------------------
    def sft():
        b = to_dev(enc.collate([prompt] * args.sft_micro, [resp] * args.sft_micro))
        model.train()
        drop = DropGrads(model)
        with auto:
            loss = sft_loss(model, b, logits_window(b["labels"].cpu()))
        loss.backward()
        drop.remove()
        return {"loss": round(float(loss), 4)}

    measured["stage1_sft_micro_step"] = measure(sft, device)
    log(f"stage 1 micro-step: {measured['stage1_sft_micro_step']}")

    # -- Stage 2: generation (KV cache) ---------------------------------------------------------
    def gen():
        model.eval()
        model.config.use_cache = True
        with torch.no_grad(), auto:
            g = generate(model, enc, [prompt] * args.gen_prompts, n=args.rollouts, do_sample=True,
                         max_new_tokens=args.response_tokens, temperature=1.0, device=device)
        model.config.use_cache = False
        n = [x["n_tokens"] for grp in g for x in grp]
        return {"sequences": len(n), "mean_new_tokens": float(np.mean(n))}

    measured["stage2_generation"] = measure(gen, device)
    log(f"stage 2 generation: {measured['stage2_generation']}")

    # -- Stage 2: policy micro-step (reference log-probs + PPO/KL backward) -----------------------
    def policy():
        b = to_dev(enc.collate([prompt] * args.rl_micro, [resp] * args.rl_micro))
        with torch.no_grad(), auto:  # the frozen reference: the same shape, so the same activations
            ref_lp = response_logprobs(model, b)
        model.train()
        drop = DropGrads(model)
        with auto:
            logp = response_logprobs(model, b)
        mask = b["response_mask"][:, 1:].to(logp.dtype)
        adv = torch.linspace(-1, 1, args.rl_micro, device=device)[:, None]
        loss = ((ppo_clip_loss(logp, logp.detach(), adv, 0.2) + 0.001 * low_var_kl(logp, ref_lp)) * mask).sum() \
            / mask.sum()
        loss.backward()
        drop.remove()
        return {}

    measured["stage2_policy_micro_step"] = measure(policy, device)
    log(f"stage 2 policy micro-step: {measured['stage2_policy_micro_step']}")

    # -- Stage 2: discriminator micro-step (pairs) ------------------------------------------------
    disc = Discriminator(model.model, model.config.text_config.hidden_size).to(device)

    def discriminator():
        pr = [prompt] * args.rl_micro
        b = to_dev(enc.collate(pr + pr, [resp] * (2 * args.rl_micro)))
        disc.train()
        drop = DropGrads(disc)
        with auto:
            s = disc(b)
        n = args.rl_micro
        loss = -torch.nn.functional.logsigmoid(s[n:] - s[:n]).mean()
        loss.backward()
        drop.remove()
        return {}

    measured["stage2_disc_micro_step"] = measure(discriminator, device)
    log(f"stage 2 discriminator micro-step: {measured['stage2_disc_micro_step']}")

    # -- per rank of an 8-GPU node ----------------------------------------------------------------
    ds_cfg = json.loads(Path(args.deepspeed).read_text())
    pol = zero3_terms(P, args.world, ds_cfg, args.offload)
    dsc = zero3_terms(P_disc, args.world, ds_cfg, args.offload)
    static_keys = ("params_bf16_shard", "grads_bf16_shard", "master_fp32_shard", "adam_m_v_fp32_shard")
    ref_full = round(2 * P / GIB, 3)

    def engine_static(t):
        return sum(t[k] for k in static_keys)

    s1_static = engine_static(pol)
    s1_work = measured["stage1_sft_micro_step"]["working_gib"]
    s1_peak = max(s1_static + pol["gathered_params_bound"] + pol["reduce_bucket"] + s1_work,
                  s1_static + pol["step_fp32_grad_shard"])
    s2_static = engine_static(pol) + engine_static(dsc) + ref_full
    s2_work = max(measured[k]["working_gib"] for k in ("stage2_generation", "stage2_policy_micro_step",
                                                        "stage2_disc_micro_step"))
    s2_peak = max(s2_static + pol["gathered_params_bound"] + dsc["gathered_params_bound"] + pol["reduce_bucket"]
                  + s2_work, s2_static + pol["step_fp32_grad_shard"])
    res["measured"] = measured
    res["terms_gib"] = {"policy_zero3": pol, "disc_zero3": dsc, "reference_bf16_full": ref_full,
                        "stage1_static": round(s1_static, 3), "stage1_working_set": s1_work,
                        "stage2_static": round(s2_static, 3), "stage2_working_set": s2_work}
    res["stage1_peak_gib"] = round(s1_peak, 2)
    res["stage2_peak_gib"] = round(s2_peak, 2)
    res["budget_gib_80gb"] = round(GB80, 2)
    res["fits_80gb"] = {"stage1": s1_peak < GB80, "stage2": s2_peak < GB80}
    res["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2) \
        if device.type == "cuda" else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"\n| stage | static (ZeRO-3 shards{', ref' if True else ''}) GiB | working set GiB | peak / rank GiB | fits 80 GB |")
    print("|---|---|---|---|---|")
    print(f"| 1 | {s1_static:.2f} | {s1_work:.2f} | {s1_peak:.2f} | {res['fits_80gb']['stage1']} |")
    print(f"| 2 | {s2_static:.2f} | {s2_work:.2f} | {s2_peak:.2f} | {res['fits_80gb']['stage2']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
