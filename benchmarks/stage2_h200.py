#!/usr/bin/env python
"""Stage-2 step speed with ``hf`` against ``vllm`` rollouts, through the project's own Stage-2 code.

A randomly initialised Qwen3-VL of Qwen3-VL-4B's shape (bf16; built as in train_step_h200.py), its
frozen reference and a discriminator of the same shape, on prompts of 16 random frames of 448 px
through the project's processor path. Each setting runs :func:`rmsd.train.rl.rl_train`
(adversarial mode, no discriminator warm-up: every step samples, trains the discriminator and
updates the policy) with ``rollout=HFRollout()`` (transformers ``generate`` on the policy) and with
``rollout=VLLMRollout`` (a vLLM engine colocated in this process: ``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
``enable_sleep_mode=True``, asleep during the update passes, the policy's bf16 weights pushed
through ``collective_rpc`` after each optimizer step). The numbers are the per-step fields rl.py
logs (``gen_seconds``, ``sync_seconds``, ``swap_seconds``, ``disc_seconds``, ``policy_seconds``,
``step_seconds``, ``gen_tokens_per_s``, ``rollouts_per_s``), the first step of each run left out as
warm-up when a run has more than one.

Settings: ``small`` = 1 prompt x 8 rollouts x 128 new tokens (both engines); ``paper`` = the
paper's per-rank shape, 16 prompts x 8 rollouts x 1,024 new tokens (``--paper-engines``; the
update passes at this shape take minutes, so by default only vllm runs it).

Weight-push check: after the vllm run's last policy update, the engine's greedy continuation
(temperature 0) of a fixed prompt is compared token by token with the policy's own transformers
greedy continuation (``rmsd.models.inputs.generate``, ``do_sample=False``), before and after the
push of the updated weights.

Usage (on the GPU, with vLLM importable; see benchmarks/README.md)::

    python benchmarks/stage2_h200.py --out benchmarks/measured/stage2_h200.json
    python benchmarks/stage2_h200.py --smoke --out /tmp/s2.json     # tiny shape, CPU, hf only
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

T0 = time.perf_counter()
KEYS = ("gen_seconds", "sync_seconds", "swap_seconds", "disc_seconds", "policy_seconds", "step_seconds",
        "gen_share", "gen_tokens", "gen_tokens_per_s", "rollouts_per_s", "response_len", "truncated",
        "rollout_prompt_mismatch", "kl", "disc_loss")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:.0f}s] {msg}", flush=True)


def write_json(path, res) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(res, indent=2, default=str))
    tmp.replace(path)


def build(shape_name: str, frames: int, px: int, device: torch.device):
    """Tokenizer + processor (Qwen3-VL, ``frames`` x ``px``) + encoder + the bf16 policy."""
    from train_step_h200 import SHAPES, WORDS, build_model

    from rmsd.models.factory import build_processor
    from rmsd.models.inputs import VideoPromptEncoder
    from rmsd.models.tokenizer import build_tokenizer

    shape = SHAPES[shape_name]
    tok = build_tokenizer([" ".join(WORDS)] * 4 + ["system user assistant seconds answer think"], 600)
    proc = build_processor(tok, 16 * 16 * 4, frames * px * px, family="qwen3_vl")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, tied = build_model(tok, shape, dtype, device)
    return tok, proc, VideoPromptEncoder(proc, "answer_only"), model


def make_examples(enc, n: int, frames: int, px: int, seed: int, tag: str):
    """``n`` Stage-2 examples with distinct random frames (sampled from a 120 s, 30 fps video),
    their manifest records and a one-response pool."""
    from train_step_h200 import WORDS

    from rmsd.train.rl import RLExample

    rng = np.random.default_rng(seed)
    idx = np.linspace(0, 3599, frames).round().astype(int).tolist()
    items, frs, recs = [], [], []
    for i in range(n):
        items.append({"id": f"{tag}{i:03d}", "task_type": "open",
                      "question": "Describe what happens in the video, and when each event starts and ends.",
                      "answer": "A red square moves."})
        frs.append(rng.integers(0, 256, (frames, px, px, 3), dtype=np.uint8))
        recs.append({"item_id": items[-1]["id"], "fps": 30.0, "indices": idx, "num_video_frames": 3600,
                     "stored_size_px": [px, px]})
    prompts = enc.encode(items, frs, metadata=recs)
    teacher = " ".join(WORDS[i % len(WORDS)] for i in range(48))
    return [RLExample(item=it, prompt=p, pool_texts=[teacher], pool_q=np.array([1.0]), pool_p=np.array([1.0]),
                      frames=f, record=r) for it, p, f, r in zip(items, prompts, frs, recs)]


def run_setting(name: str, engine_name: str, rollout, policy, ref, disc, enc, examples, args, new_tokens: int,
                steps: int, device) -> dict:
    """``steps`` Stage-2 steps through ``rl_train`` with ``rollout``; the logged per-step fields."""
    from rmsd.train.context import StepLogger, TrainContext
    from rmsd.train.dist import Runtime
    from rmsd.train.rl import RLConfig, rl_train

    rl = {"steps": steps, "prompts_per_step": len(examples), "rollouts": args.rollouts, "lr": args.lr,
          "disc_lr": 1e-6, "max_new_tokens": new_tokens, "disc_warmup_steps": 0, "checkpoint_every": 0,
          "gradient_checkpointing": True, "micro_batch_size": args.micro, "temperature": 1.0}
    cfg = RLConfig.from_dict(rl)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        lp = Path(tmp) / "log.jsonl"
        t = time.perf_counter()
        rl_train(policy, ref, disc, enc, examples, cfg, "adversarial", lambda text, it: (0.0, 0.0, 0.0),
                 seed=0, ctx=TrainContext(rt=Runtime(device=device), logger=StepLogger(lp)), rollout=rollout)
        wall = time.perf_counter() - t
        recs = [json.loads(x) for x in lp.read_text().splitlines()]
    timed = recs[1:] if len(recs) > 1 else recs
    mean = lambda k: float(np.mean([r[k] for r in timed if r.get(k) is not None]))  # noqa: E731
    out = {"engine": engine_name, "prompts": len(examples), "rollouts_per_prompt": args.rollouts,
           "max_new_tokens": new_tokens, "prompt_tokens": len(examples[0].prompt.prompt_ids),
           "steps_run": len(recs), "steps_timed": len(timed), "wall_s": round(wall, 2),
           "peak_torch_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 1) if device.type == "cuda" else None,
           "per_step": [{k: r.get(k) for k in KEYS} for r in recs]}
    for k in ("gen_seconds", "sync_seconds", "swap_seconds", "disc_seconds", "policy_seconds", "step_seconds",
              "gen_tokens", "gen_tokens_per_s", "response_len"):
        out[k] = round(mean(k), 4)
    out["rollouts_per_s"] = round(len(examples) * args.rollouts / out["step_seconds"], 4)
    out["gen_share"] = round(out["gen_seconds"] / out["step_seconds"], 4)
    log(f"{name}/{engine_name}: step {out['step_seconds']:.2f} s = gen {out['gen_seconds']:.2f} + sync "
        f"{out['sync_seconds']:.2f} + swap {out['swap_seconds']:.2f} + disc {out['disc_seconds']:.2f} + policy "
        f"{out['policy_seconds']:.2f}; {out['rollouts_per_s']:.3f} rollouts/s, {out['gen_tokens_per_s']:.0f} "
        f"gen tok/s, response {out['response_len']:.0f} tokens")
    return out


def _common(a, b) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def greedy_check(vr, policy, enc, example, device, n_tokens: int, label: str) -> dict:
    """The engine's greedy continuation vs the policy's (transformers), before and after pushing
    the policy's current weights into the engine, for the video prompt of ``example`` and for a
    text-only prompt (which leaves out the vision tower and the video positions); plus the top-5
    log-probs of the first generated token on both sides (diagnosis: close values = numerics,
    unrelated values = different weights or inputs)."""
    from rmsd.models.inputs import generate, model_kwargs
    from rmsd.train.dist import Runtime
    from rmsd.train.engine import Engine, ExecConfig

    policy.eval()
    text = enc.tokenizer.apply_chat_template([{"role": "user", "content": "Describe a red square."}],
                                             add_generation_prompt=True, tokenize=False) \
        if getattr(enc.tokenizer, "chat_template", None) else "<|im_start|>user\nDescribe a red square.<|im_end|>\n<|im_start|>assistant\n"
    text_ids = enc.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
    ac = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.no_grad(), ac:
        pol_ids = generate(policy, enc, [example.prompt], n=1, do_sample=False, max_new_tokens=n_tokens,
                           device=device)[0][0]["ids"]
        out = policy.generate(input_ids=text_ids, attention_mask=torch.ones_like(text_ids), do_sample=False,
                              max_new_tokens=n_tokens, pad_token_id=enc.pad_id, eos_token_id=enc.eos_id,
                              suppress_tokens=enc.suppress_ids)
        pol_text_ids = out[0, text_ids.shape[1]:].tolist()
        batch = {k: v.to(device) for k, v in enc.collate([example.prompt]).items()}
        logits = policy(**model_kwargs(batch), logits_to_keep=1, use_cache=False).logits[0, -1].float()
        top = torch.log_softmax(logits, -1).topk(5)
        pol_top5 = [[int(i), round(float(v), 4)] for v, i in zip(top.values, top.indices)]

    def engine(prompt):
        sp = vr.sampling_params(1, n_tokens, 0.0, 1.0, 0)
        sp.logprobs = 5
        vr._wake()
        r = vr.llm.generate([prompt], [sp], use_tqdm=False)[0]
        lp = r.outputs[0].logprobs[0] if r.outputs[0].logprobs else {}
        top5 = sorted([[int(t), round(float(getattr(v, "logprob", v)), 4)] for t, v in lp.items()],
                      key=lambda x: -x[1])[:5]
        return [int(t) for t in r.outputs[0].token_ids], list(getattr(r, "prompt_token_ids", []) or []), top5

    before, _, _ = engine(vr.request(example))
    holder = Engine.__new__(Engine)  # the push reads only .module and .full_parameters()
    holder.module, holder.ds, holder.rt, holder.ex = policy, None, Runtime(device=device), ExecConfig()
    push_s = vr.push_weights(holder)
    after, pids, eng_top5 = engine(vr.request(example))
    t_after, _, _ = engine({"prompt": text})
    vr._sleep()
    cut = lambda ids: ids[: ids.index(enc.eos_id) + 1] if enc.eos_id in ids else ids  # noqa: E731
    after, pol_ids, t_after, pol_text_ids = cut(after), cut(pol_ids), cut(t_after), cut(pol_text_ids)
    res = {"label": label, "n_tokens": n_tokens, "policy_greedy_ids": pol_ids, "engine_before_push_ids": before,
           "engine_after_push_ids": after, "equal_after_push": after == pol_ids,
           "equal_before_push": cut(before) == pol_ids, "common_prefix_after_push": _common(after, pol_ids),
           "common_prefix_before_push": _common(before, pol_ids), "push_seconds": round(push_s, 3),
           "prompt_ids_equal": pids == example.prompt.prompt_ids.tolist(),
           "text_only": {"policy_ids": pol_text_ids, "engine_ids": t_after, "equal": t_after == pol_text_ids,
                         "common_prefix": _common(t_after, pol_text_ids)},
           "first_token_top5_logprobs": {"policy": pol_top5, "engine": eng_top5}}
    log(f"greedy check ({label}): video prompt: engine == policy after push: {res['equal_after_push']} (common "
        f"prefix {res['common_prefix_after_push']}/{len(pol_ids)}), before push: {res['equal_before_push']}; "
        f"text-only: {res['text_only']['equal']} ({res['text_only']['common_prefix']}/{len(pol_text_ids)}); "
        f"prompt ids equal: {res['prompt_ids_equal']}; push {push_s:.3f} s; first-token top-5 policy {pol_top5} "
        f"engine {eng_top5}")
    return res


def table(res: dict) -> str:
    rows = ["| setting | engine | prompts x N x new tokens | step s | gen s | sync s | swap s | disc s | policy s | "
            "gen share | gen tok/s | rollouts/s |", "|---" * 12 + "|"]
    for name, per in res.get("settings", {}).items():
        for eng, r in per.items():
            if "error" in r:
                rows.append(f"| {name} | {eng} | failed: {r['error'][:80]} |" + " |" * 9)
                continue
            rows.append(f"| {name} | {eng} | {r['prompts']} x {r['rollouts_per_prompt']} x {r['max_new_tokens']} | "
                        f"{r['step_seconds']:.2f} | {r['gen_seconds']:.2f} | {r['sync_seconds']:.2f} | "
                        f"{r['swap_seconds']:.2f} | {r['disc_seconds']:.2f} | {r['policy_seconds']:.2f} | "
                        f"{r['gen_share']:.1%} | {r['gen_tokens_per_s']:,.0f} | {r['rollouts_per_s']:.3f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny shape on the CPU, hf only")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--px", type=int, default=448)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4, help="policy lr (large enough that an update changes "
                    "bf16 weights, so the weight-push check has something to see)")
    ap.add_argument("--micro", type=int, default=8, help="Stage-2 micro_batch_size")
    ap.add_argument("--small-steps", type=int, default=2)
    ap.add_argument("--small-tokens", type=int, default=128)
    ap.add_argument("--paper-prompts", type=int, default=16)
    ap.add_argument("--paper-tokens", type=int, default=1024)
    ap.add_argument("--paper-steps", type=int, default=1)
    ap.add_argument("--paper-engines", default="vllm", help="comma list of engines for the paper shape ('' = skip)")
    ap.add_argument("--gpu-mem", type=float, default=0.3)
    ap.add_argument("--sleep-level", type=int, default=1)
    ap.add_argument("--enforce-eager", type=int, default=0)
    ap.add_argument("--greedy-tokens", type=int, default=32)
    ap.add_argument("--engines", default="hf,vllm", help="engines of the small setting")
    ap.add_argument("--budget-s", type=float, default=0, help="skip the paper shape once this many seconds passed")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:
        args.frames, args.px, args.small_tokens, args.paper_tokens, args.paper_prompts = 4, 56, 8, 16, 2
        args.small_steps = 2
    import transformers

    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "torch": torch.__version__,
           "transformers": transformers.__version__, "args": vars(args), "settings": {}}
    engines = [e for e in args.engines.split(",") if e and not (args.smoke and e == "vllm")]
    tok, proc, enc, policy = build("smoke" if args.smoke else "4b", args.frames, args.px, device)
    from rmsd.train.rl import Discriminator
    from rmsd.train.rollout import HFRollout, VLLMRollout

    ref = copy.deepcopy(policy)
    disc = Discriminator(copy.deepcopy(ref.model), ref.config.text_config.hidden_size)
    res["n_params"] = sum(p.numel() for p in policy.parameters())
    log(f"model {res['n_params'] / 1e9:.2f} B ({policy.dtype}) on {res['device']}; policy, reference, discriminator built")
    vr = None
    if "vllm" in engines:
        import vllm

        res["vllm"] = vllm.__version__
        mdir = Path(tempfile.mkdtemp(prefix="rmsd-s2-model-"))
        policy.config.architectures = [type(policy).__name__]  # what vLLM resolves the runner from
        policy.config.save_pretrained(mdir)  # config + processor only: the engine's weights come from the policy
        proc.save_pretrained(mdir)
        t = time.perf_counter()
        settings = {"gpu_memory_utilization": args.gpu_mem, "max_model_len": 4096, "max_num_seqs": 256,
                    "enforce_eager": bool(args.enforce_eager), "sleep_level": args.sleep_level,
                    "engine_args": {"limit_mm_per_prompt": {"image": 0, "video": {
                        "count": 1, "num_frames": args.frames, "width": args.px, "height": args.px}},
                        "disable_log_stats": True}}
        vr = VLLMRollout.build(str(mdir), enc, settings, seed=0, device=device)
        res["engine_start_s"] = round(time.perf_counter() - t, 1)
        res["engine_settings"] = settings
        log(f"vllm {vllm.__version__} engine up and asleep in {res['engine_start_s']} s; "
            f"torch allocated {torch.cuda.memory_allocated() / 2 ** 30:.1f} GiB")
    small = make_examples(enc, 1, args.frames, args.px, 0, "s")
    if vr is not None:  # initial weights, before any update: engine vs transformers on equal weights
        try:
            res["greedy_check_initial"] = greedy_check(vr, policy, enc, small[0], device, args.greedy_tokens,
                                                       "initial weights")
        except Exception as e:
            res["greedy_check_initial"] = {"error": f"{type(e).__name__}: {e}"[:600]}
            log(f"greedy check FAILED {type(e).__name__}: {str(e)[:400]}")
            traceback.print_exc(limit=6)
    res["settings"]["small"] = {}
    for eng in engines:
        try:
            rollout = HFRollout() if eng == "hf" else vr
            res["settings"]["small"][eng] = run_setting("small", eng, rollout, policy, ref, disc, enc, small, args,
                                                        args.small_tokens, args.small_steps, device)
        except Exception as e:
            res["settings"]["small"][eng] = {"error": f"{type(e).__name__}: {e}"[:600]}
            log(f"small/{eng}: FAILED {type(e).__name__}: {str(e)[:400]}")
            traceback.print_exc(limit=6)
        write_json(args.out, res)
    if vr is not None:
        try:
            res["greedy_check"] = greedy_check(vr, policy, enc, small[0], device, args.greedy_tokens,
                                               "after the small run's policy updates")
        except Exception as e:
            res["greedy_check"] = {"error": f"{type(e).__name__}: {e}"[:600]}
            log(f"greedy check FAILED {type(e).__name__}: {str(e)[:400]}")
            traceback.print_exc(limit=6)
        write_json(args.out, res)
    paper_engines = [e for e in args.paper_engines.split(",") if e and e in engines]
    if args.smoke:
        paper_engines = ["hf"]
    if paper_engines and args.budget_s and time.perf_counter() - T0 > args.budget_s:
        log(f"paper shape skipped ({time.perf_counter() - T0:.0f} s elapsed > budget {args.budget_s} s)")
        res["paper_skipped"] = "time budget"
        paper_engines = []
    if paper_engines:
        paper = make_examples(enc, args.paper_prompts, args.frames, args.px, 1, "p")
        res["settings"]["paper"] = {}
        for eng in paper_engines:
            try:
                rollout = HFRollout() if eng == "hf" else vr
                res["settings"]["paper"][eng] = run_setting("paper", eng, rollout, policy, ref, disc, enc, paper,
                                                            args, args.paper_tokens, args.paper_steps, device)
            except Exception as e:
                res["settings"]["paper"][eng] = {"error": f"{type(e).__name__}: {e}"[:600]}
                log(f"paper/{eng}: FAILED {type(e).__name__}: {str(e)[:400]}")
                traceback.print_exc(limit=6)
            write_json(args.out, res)
    s = res["settings"].get("small", {})
    if "rollouts_per_s" in s.get("hf", {}) and "rollouts_per_s" in s.get("vllm", {}):
        res["small_speedup_rollouts_per_s"] = round(s["vllm"]["rollouts_per_s"] / s["hf"]["rollouts_per_s"], 2)
    res["total_s"] = round(time.perf_counter() - T0, 1)
    write_json(args.out, res)
    print("\n" + table(res), flush=True)
    if vr is not None and "mdir" in locals():
        shutil.rmtree(mdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
