#!/usr/bin/env python
"""Training-step benchmark on one GPU: our Stage-1 trainer against a plain transformers loop, and
Stage-2 rollouts per second, on a randomly initialised Qwen3-VL of Qwen3-VL-4B's shape.

Stage 1 (one SFT step, batch of one sequence, the same batch on every side):

* ``plain_gc``: the reference "plain loop": ``model.gradient_checkpointing_enable()``, sdpa attention,
  ``torch.optim.AdamW(fused=True)``, ``model(**inputs, labels=labels).loss``, backward,
  gradient-norm clip 1.0 (as the transformers Trainer does), step; the batch is moved to the GPU
  each step;
* ``ours``: :func:`rmsd.train.loop._sft_step` through :class:`rmsd.train.engine.Engine`, exactly as
  ``sft_train`` calls it (collate + transfer each step, bf16 autocast, response-window logits,
  fused AdamW, clip), with ``gradient_checkpointing: false``;
* ablations: ``ours_gc`` (ours with recomputation), ``plain_nogc`` (the plain loop without it),
  ``ours_fp32_master`` (ours on float32 weights under bf16 autocast, which is what the pipeline
  runs: it loads checkpoints in float32), ``ours_compile`` (ours with ``compile: true``: each
  decoder layer torch.compiled; compile time excluded, capped by ``--compile-limit-s``).

All sides use bf16 weights (except ``ours_fp32_master``). Tokens per second = sequence tokens /
step time (median of the timed steps, device synchronised around each step). MFU =
6 x parameters x tokens / step time / peak, parameters counted once (tied embeddings once, vision
tower included), peak = 989 TFLOP/s (H100/H200 SXM dense bf16 datasheet). A measured 8192^3 bf16
matmul rate is printed beside it.

Stage 2: :func:`rmsd.train.rl.rl_train` (adversarial mode: policy, frozen reference and a
discriminator of the same shape) with one prompt x N = 8 rollouts per step; rollouts/s = rollouts /
step time and the share of the step spent generating, from the per-step timing fields rl.py logs.

The batch goes through the project's own processor path (``build_processor(family="qwen3_vl")``
+ :class:`rmsd.models.inputs.VideoPromptEncoder`) with a BPE tokenizer built offline; the model's
vocabulary is Qwen3's 151936 regardless.

Usage (see benchmarks/README.md)::

    python benchmarks/train_step_h200.py --out bench.json            # on the GPU, ~3-4 min
    python benchmarks/train_step_h200.py --smoke --out /tmp/b.json    # tiny shape, CPU, ~1 min
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

T0 = time.perf_counter()
PEAK_TFLOPS = 989.0
"""Dense bf16 peak of an H100/H200 SXM (datasheet), the MFU denominator."""

SHAPES = {
    # Qwen3-VL-4B: text and vision tower shapes (config.json of Qwen/Qwen3-VL-4B-Instruct)
    "4b": {
        "text": dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                     head_dim=128, intermediate_size=9728, vocab_size=151936, max_position_embeddings=262144,
                     rms_norm_eps=1e-6, hidden_act="silu",
                     rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                      "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
        "vision": dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                       temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=2560,
                       deepstack_visual_indexes=[5, 11, 17], num_position_embeddings=2304,
                       hidden_act="gelu_pytorch_tanh"),
        # 16 frames of 672x672: 8 x 21 x 21 = 3528 merged vision tokens
        "frames": 16, "frame_px": 672, "seq_tokens": 4096, "response_tokens": 256,
    },
    "smoke": {
        "text": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                     head_dim=32, intermediate_size=128, vocab_size=151936, max_position_embeddings=4096,
                     rms_norm_eps=1e-6, hidden_act="silu",
                     rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                      "mrope_section": [6, 5, 5], "mrope_interleaved": True}),
        "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                       temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=64,
                       deepstack_visual_indexes=[0, 1], num_position_embeddings=64,
                       hidden_act="gelu_pytorch_tanh"),
        "frames": 16, "frame_px": 64, "seq_tokens": 320, "response_tokens": 48,
    },
}

WORDS = ("describe what happens in the video and when each event starts and ends while the camera "
         "follows a red square that moves across a blue background past a green circle").split()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- model and batch --------------------------------------------------------------------------------
def build_tokenizer_and_processor(shape: dict):
    from rmsd.models.factory import build_processor
    from rmsd.models.tokenizer import build_tokenizer

    tok = build_tokenizer([" ".join(WORDS)] * 4 + ["system user assistant seconds"], 600)
    clip_px = shape["frames"] * shape["frame_px"] ** 2  # Qwen3-VL bounds the whole clip
    proc = build_processor(tok, 16 * 16 * 4, clip_px, family="qwen3_vl")
    return tok, proc


def build_model(tok, shape: dict, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """A randomly initialised Qwen3-VL of ``shape`` (sdpa attention, tied embeddings) on ``device``."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    pad, eos = ids["<|endoftext|>"], ids["<|im_end|>"]
    text = {**shape["text"], "bos_token_id": pad, "eos_token_id": eos, "pad_token_id": pad,
            "tie_word_embeddings": True}
    cfg = Qwen3VLConfig(text_config=text, vision_config=dict(shape["vision"]),
                        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                        tie_word_embeddings=True)
    torch.manual_seed(seed)
    try:  # initialise on the device (seconds, not minutes, for 4B parameters)
        with torch.device(device):
            model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    except Exception as e:
        log(f"init on {device} failed ({type(e).__name__}: {e}); initialising on the CPU")
        model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.to(device)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = pad
    tied = model.lm_head.weight is model.model.language_model.embed_tokens.weight
    return model, tied


def make_example(tok, proc, shape: dict):
    """One (prompt, response) pair of ``seq_tokens`` tokens: 16 frames through the project's encoder,
    a question sized so that a ``response_tokens``-token response completes the sequence."""
    from rmsd.models.inputs import VideoPromptEncoder

    enc = VideoPromptEncoder(proc, "answer_only")
    rng = np.random.default_rng(0)
    F, px = shape["frames"], shape["frame_px"]
    frames = rng.integers(0, 256, (F, px, px, 3), dtype=np.uint8)
    meta = {"fps": 2.0, "indices": list(range(F)), "num_video_frames": F}

    def encode(n_words: int):
        q = " ".join(WORDS[i % len(WORDS)] for i in range(n_words)) or "Describe."
        item = {"id": "bench", "task_type": "open", "question": q, "answer": "A red square moves."}
        return item, enc.encode([item], [frames], metadata=[meta])[0]

    target_prompt = shape["seq_tokens"] - shape["response_tokens"]
    _, p0 = encode(0)
    _, p1 = encode(64)
    per_word = (len(p1.prompt_ids) - len(p0.prompt_ids)) / 64
    n = max(0, int((target_prompt - len(p0.prompt_ids)) / per_word))
    item, prompt = encode(n)
    while len(prompt.prompt_ids) > target_prompt and n > 0:  # at most a few words too many
        n -= 1
        item, prompt = encode(n)
    n_resp = shape["seq_tokens"] - len(prompt.prompt_ids)
    g = torch.Generator().manual_seed(1)
    body = torch.randint(20, len(tok), (n_resp - 1,), generator=g)
    target = torch.cat([body, torch.tensor([enc.eos_id])])
    n_vision = int((prompt.prompt_ids == enc.video_token_id).sum())
    return enc, item, prompt, target, {"prompt_tokens": len(prompt.prompt_ids), "response_tokens": n_resp,
                                       "vision_tokens": n_vision, "video_patches": int(prompt.grid_thw.prod()),
                                       "grid_thw": prompt.grid_thw.tolist()}


# -- timing -------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn, device: torch.device, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def matmul_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 10 * 2 * 8192 ** 3 / (time.perf_counter() - t) / 1e12


# -- Stage 1 ------------------------------------------------------------------------------------------
def plain_variant(model, batch_cpu: dict, device: torch.device, gc_on: bool):
    """The plain transformers loop's step (closure) on ``batch_cpu``."""
    from rmsd.models.inputs import model_kwargs

    if gc_on:
        model.gradient_checkpointing_enable()
    else:
        model.gradient_checkpointing_disable()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, fused=device.type == "cuda")
    losses = []

    def step():
        b = {k: v.to(device, non_blocking=True) for k, v in batch_cpu.items()}
        loss = model(**model_kwargs(b), labels=b["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    return step, opt, losses


def ours_variant(model, enc, prompt, target, device: torch.device, gc_on: bool, compile_on: bool = False):
    """Our Stage-1 step: ``_sft_step`` through an :class:`Engine`, as ``sft_train`` runs it."""
    from rmsd.train.dist import Runtime
    from rmsd.train.engine import Engine, ExecConfig
    from rmsd.train.loop import _sft_step

    model.gradient_checkpointing_disable()
    rt = Runtime(device=device)
    ex = ExecConfig(precision="auto", gradient_checkpointing=gc_on, compile=compile_on)
    eng = Engine(model, 1e-5, 0.0, 1.0, rt, ex, name="policy")
    eng.train()
    losses = []

    def step():
        loss, _, norm = _sft_step(eng, enc, [prompt], [target], [0], 1)
        if loss is None or norm is None:
            raise RuntimeError("non-finite loss or gradient")
        losses.append(loss)

    return step, eng, losses


VARIANTS = [("plain_gc", "plain", True), ("ours", "ours", False), ("ours_gc", "ours", True),
            ("plain_nogc", "plain", False), ("ours_fp32_master", "ours", False), ("ours_compile", "ours", False)]
OPTIONAL = ("ours_fp32_master", "ours_compile")


def run_stage1(args, model, n_params: int, enc, prompt, target, device, results: dict,
               names: list[str]) -> None:
    batch_cpu = enc.collate([prompt], [target])
    batch_cpu = {k: batch_cpu[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids",
                                           "pixel_values_videos", "video_grid_thw", "labels")}
    if device.type == "cuda":
        batch_cpu = {k: v.pin_memory() for k, v in batch_cpu.items()}
    tokens = int(batch_cpu["input_ids"].numel())
    rows = results.setdefault("stage1", {})
    for name, kind, gc_on in VARIANTS:
        if name not in names or (args.only and name not in args.only.split(",")):
            continue
        step = holder = None
        free(device)
        try:
            if name == "ours_fp32_master":
                model.float()
            if kind == "plain":
                step, holder, losses = plain_variant(model, batch_cpu, device, gc_on)
            else:
                step, holder, losses = ours_variant(model, enc, prompt, target, device, gc_on,
                                                    compile_on=name == "ours_compile")
            if name == "ours_compile":  # compile happens in the warm-up; cap it
                signal.signal(signal.SIGALRM, _alarm)
                signal.alarm(int(args.compile_limit_s))
            try:
                times = time_steps(step, device, args.warmup, args.steps)
            finally:
                signal.alarm(0)
            med = statistics.median(times)
            rows[name] = {
                "kind": kind, "gradient_checkpointing": gc_on,
                "weights": "fp32 + bf16 autocast" if name == "ours_fp32_master" else str(model.dtype).replace("torch.", ""),
                "compile": name == "ours_compile",
                "tokens": tokens, "step_s_median": med, "step_s_all": times,
                "tokens_per_s": tokens / med, "mfu": 6 * n_params * tokens / med / (PEAK_TFLOPS * 1e12),
                "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30) if device.type == "cuda" else None,
                "losses": losses,
            }
            log(f"{name}: {med:.4f} s/step (all {[round(t, 4) for t in times]}), "
                f"{tokens / med:,.0f} tok/s, MFU {rows[name]['mfu']:.1%}, "
                f"peak {rows[name]['peak_mem_gib'] or 0:.1f} GiB, losses {[round(x, 4) for x in losses]}")
        except Exception as e:  # an OOM in one variant must not lose the others
            rows[name] = {"kind": kind, "gradient_checkpointing": gc_on, "error": f"{type(e).__name__}: {e}"[:500]}
            log(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}")
            traceback.print_exc(limit=3)
        finally:
            step = holder = None
            model.zero_grad(set_to_none=True)
            if name == "ours_fp32_master":
                model.to(torch.bfloat16 if device.type == "cuda" else torch.float32)
            free(device)
        write_json(args.out, results)
    base = rows.get("plain_gc", {}).get("tokens_per_s")
    for r in rows.values():
        if base and "tokens_per_s" in r:
            r["ratio_vs_plain"] = r["tokens_per_s"] / base


def _alarm(signum, frame):
    raise TimeoutError("compile variant over its time limit")


def host_batch_seconds(enc, prompt, target, device, n: int = 5) -> dict:
    """Host-side cost of the input path alone (median of ``n``): ``collate_to`` (pinned, what the
    trainer uses now) and ``to_device(collate(...))`` (the previous path)."""
    from rmsd.train.loop import collate_to, to_device

    out = {}
    for name, fn in (("collate_to", lambda: collate_to(enc, [prompt], [target], device)),
                     ("collate_then_to_device", lambda: to_device(enc.collate([prompt], [target]), device))):
        ts = []
        for _ in range(n):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - t)
        out[name] = statistics.median(ts)
    return out


# -- Stage 2 ------------------------------------------------------------------------------------------
def run_stage2(args, model, enc, item, prompt, device, results: dict) -> None:
    from rmsd.train.rl import Discriminator, RLConfig, RLExample, rl_train

    try:
        from rmsd.scoring import ScoringConfig
        from rmsd.train.run import make_reward_fn

        reward_fn = make_reward_fn(ScoringConfig.from_dict({}))
        reward_name = "rule rewards (rmsd.scoring)"
    except Exception as e:  # the scoring stack is not needed to time the step
        log(f"scoring unavailable ({type(e).__name__}: {e}); rule rewards set to 0")
        reward_fn, reward_name = (lambda text, it: (0.0, 0.0, 0.0)), "zeros (scoring unavailable)"
    free(device)
    model.gradient_checkpointing_disable()
    model.zero_grad(set_to_none=True)
    policy = model
    ref = copy.deepcopy(policy)
    disc = Discriminator(copy.deepcopy(ref.model), ref.config.text_config.hidden_size)
    teacher = " ".join(WORDS[i % len(WORDS)] for i in range(args.rl_new_tokens // 2))
    ex = RLExample(item=item, prompt=prompt, pool_texts=[teacher], pool_q=np.array([1.0]), pool_p=np.array([1.0]))
    n_steps = args.rl_warmup + args.rl_steps
    if args.budget_s and time.perf_counter() - T0 > args.budget_s * 0.6:
        n_steps = args.rl_warmup + 1
        log(f"stage2: {time.perf_counter() - T0:.0f} s elapsed; one timed step only")
    rl = {"steps": n_steps, "prompts_per_step": 1, "rollouts": args.rollouts, "lr": 1e-6, "disc_lr": 1e-6,
          "max_new_tokens": args.rl_new_tokens, "disc_warmup_steps": 0, "checkpoint_every": 0,
          "gradient_checkpointing": args.rl_gc, "micro_batch_size": args.rl_micro}
    cfg = RLConfig.from_dict(rl)
    from rmsd.train.dist import Runtime

    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "rl_log.jsonl"
        t = time.perf_counter()
        rl_train(policy, ref, disc, enc, [ex], cfg, "adversarial", reward_fn, seed=0, log_path=log_path,
                 ctx=_ctx(Runtime(device=device), log_path))
        wall = time.perf_counter() - t
        recs = [json.loads(x) for x in log_path.read_text().splitlines()]
    timed = recs[args.rl_warmup:]
    mean = lambda k: float(np.mean([r[k] for r in timed]))  # noqa: E731
    step_s = mean("step_seconds")
    out = {"config": rl, "reward_fn": reward_name, "prompt_tokens": len(prompt.prompt_ids),
           "rollouts_per_step": args.rollouts, "step_s_mean": step_s, "gen_s_mean": mean("gen_seconds"),
           "disc_s_mean": mean("disc_seconds"), "policy_s_mean": mean("policy_seconds"),
           "gen_share": mean("gen_seconds") / step_s, "rollouts_per_s": args.rollouts / step_s,
           "response_len_mean": mean("response_len"), "wall_s_incl_warmup": wall,
           "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2 ** 30) if device.type == "cuda" else None,
           "per_step": [{k: r.get(k) for k in ("step", "gen_seconds", "disc_seconds", "policy_seconds",
                                               "step_seconds", "gen_share", "response_len", "kl", "disc_loss")}
                        for r in recs]}
    results["stage2"] = out
    log(f"stage2: {step_s:.2f} s/step, {out['rollouts_per_s']:.2f} rollouts/s, gen share {out['gen_share']:.1%} "
        f"(gen {out['gen_s_mean']:.2f} s, disc {out['disc_s_mean']:.2f} s, policy {out['policy_s_mean']:.2f} s)")


def _ctx(rt, log_path):
    from rmsd.train.context import StepLogger, TrainContext

    return TrainContext(rt=rt, logger=StepLogger(log_path))


# -- report -------------------------------------------------------------------------------------------
def write_json(path: str | None, results: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2, default=str))


def table(results: dict) -> str:
    lines = ["| config | tokens/step | step s | tokens/s | MFU | ratio vs plain | peak GiB |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.get("stage1", {}).items():
        if "error" in r:
            lines.append(f"| {name} | - | - | - | - | failed: {r['error'][:60]} | - |")
            continue
        mem = f"{r['peak_mem_gib']:.1f}" if r.get("peak_mem_gib") is not None else "-"
        lines.append(f"| {name} | {r['tokens']} | {r['step_s_median']:.3f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['mfu']:.1%} | {r.get('ratio_vs_plain', float('nan')):.2f}x | {mem} |")
    s2 = results.get("stage2")
    if s2 and "error" not in s2:
        lines.append("")
        lines.append(f"Stage 2 (1 prompt x {s2['rollouts_per_step']} rollouts, {s2['config']['max_new_tokens']} new "
                     f"tokens max, prompt {s2['prompt_tokens']} tokens, gradient_checkpointing "
                     f"{s2['config']['gradient_checkpointing']}, micro_batch_size {s2['config']['micro_batch_size']}): "
                     f"{s2['rollouts_per_s']:.2f} rollouts/s, step {s2['step_s_mean']:.2f} s, generation "
                     f"{s2['gen_share']:.1%} of the step (gen {s2['gen_s_mean']:.2f} s, discriminator "
                     f"{s2['disc_s_mean']:.2f} s, policy {s2['policy_s_mean']:.2f} s)")
    elif s2:
        lines.append(f"\nStage 2: failed: {s2['error'][:200]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--smoke", action="store_true", help="tiny shape (runs on the CPU in about a minute)")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed Stage-1 steps per variant")
    ap.add_argument("--only", default=None, help="comma-separated Stage-1 variants to run")
    ap.add_argument("--skip-fp32", action="store_true", help="leave out the fp32-master-weights variant")
    ap.add_argument("--budget-s", type=float, default=0, help="skip optional parts (fp32 and compile variants, "
                    "Stage-2 steps beyond the first timed one) once this many seconds have passed (0: no limit)")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    ap.add_argument("--compile-limit-s", type=float, default=150, help="cap on the compile variant's warm-up + steps")
    ap.add_argument("--no-stage2", action="store_true")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--rl-new-tokens", type=int, default=128)
    ap.add_argument("--rl-warmup", type=int, default=1)
    ap.add_argument("--rl-steps", type=int, default=2)
    ap.add_argument("--rl-micro", type=int, default=4, help="Stage-2 micro_batch_size")
    ap.add_argument("--rl-gc", type=int, default=1, help="Stage-2 gradient_checkpointing (1/0)")
    args = ap.parse_args(argv)
    args.rl_gc = bool(args.rl_gc)
    shape_name = "smoke" if args.smoke else "4b"
    shape = SHAPES[shape_name]
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.smoke:
        args.rl_new_tokens = min(args.rl_new_tokens, 8)
    import transformers

    results = {"shape": shape_name, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "torch": torch.__version__,
               "transformers": transformers.__version__, "peak_tflops": PEAK_TFLOPS,
               "warmup": args.warmup, "steps": args.steps}
    log(f"{shape_name} on {results['device']}: torch {torch.__version__}, transformers {transformers.__version__}")
    results["matmul_bf16_tflops"] = matmul_tflops(device)
    if results["matmul_bf16_tflops"]:
        log(f"8192^3 bf16 matmul: {results['matmul_bf16_tflops']:.0f} TFLOP/s")
    t = time.perf_counter()
    tok, proc = build_tokenizer_and_processor(shape)
    enc, item, prompt, target, seq = make_example(tok, proc, shape)
    results["sequence"] = seq
    log(f"batch: {seq} ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    model, tied = build_model(tok, shape, dtype, device)
    from rmsd.models.factory import count_parameters

    n_params = count_parameters(model)
    n_vision = sum(p.numel() for p in model.model.visual.parameters())
    results.update(n_params=n_params, n_params_vision=n_vision, tied_embeddings=tied)
    log(f"model: {n_params / 1e9:.3f} B parameters ({n_vision / 1e9:.3f} B vision), tied={tied}, "
        f"{model.dtype}, built in {time.perf_counter() - t:.1f} s")
    write_json(args.out, results)
    core = [v[0] for v in VARIANTS if v[0] not in OPTIONAL]
    run_stage1(args, model, n_params, enc, prompt, target, device, results, core)
    results["host_batch_s"] = host_batch_seconds(enc, prompt, target, device)
    log("input path alone (collate + copy to " + device.type + "): " +
        ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in results["host_batch_s"].items()))
    write_json(args.out, results)
    if not args.no_stage2:
        try:
            run_stage2(args, model, enc, item, prompt, device, results)
        except Exception as e:
            results["stage2"] = {"error": f"{type(e).__name__}: {e}"[:500]}
            log(f"stage2: FAILED {type(e).__name__}: {str(e)[:300]}")
            traceback.print_exc(limit=4)
        write_json(args.out, results)
    for name, skip in (("ours_fp32_master", args.skip_fp32), ("ours_compile", args.no_compile or device.type != "cuda")):
        elapsed = time.perf_counter() - T0
        if skip or (args.budget_s and elapsed > args.budget_s):
            log(f"{name} skipped ({elapsed:.0f} s elapsed)")
            continue
        run_stage1(args, model, n_params, enc, prompt, target, device, results, [name])
    results["total_s"] = time.perf_counter() - T0
    write_json(args.out, results)
    print("\n" + table(results), flush=True)
    print(f"\nMFU = 6 x {n_params:,} parameters x tokens / step time / {PEAK_TFLOPS:.0f} TFLOP/s; "
          f"step time = median of {args.steps} steps after {args.warmup} warm-up; {results['device']}, "
          f"{results['date']}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
