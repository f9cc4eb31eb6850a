"""Generation speed of the project's two engines on one GPU: transformers ``generate`` (backend
``hf``) against vLLM (backend ``vllm``), on a randomly initialised Qwen3-VL of Qwen3-VL-4B's shape.

Both run THROUGH THE PROJECT'S CODE on the same items and frames:

* teacher sampling, K samples per item: ``rmsd.teachers.hf.HFTeacher.generate`` and
  ``rmsd.teachers.vllm_engine.VLLMTeacher.generate`` (one request per item with ``n=K``), frames
  with their manifest records, so the videos go in with :func:`rmsd.frames.metadata.video_metadata`;
* greedy evaluation: ``rmsd.evaluation.run.HFGenerator`` and ``VLLMGenerator`` (``n=1``,
  temperature 0),

each at 16 and 64 frames of 448 px. Every setting uses its own items (distinct random frames), so
no engine reuses a cached prefix or vision encoding of another setting. tokens/s = generated tokens
/ wall time of the generate calls (prefill and vision encoding included; engine start and model
load excluded).

Memory-bandwidth bound per setting (HBM 4.8 TB/s, H200 datasheet): every decode step reads the text
model's weights once (bf16; the vision tower and the embedding table are not read in decode) and
every running sequence's KV cache, ``2 (K, V) x layers x kv_heads x head_dim x 2 bytes`` per token
of context. With B sequences decoding together and a mean context of ``prompt + new/2`` tokens:
``bound_tok_s = B / ((W_text + B x (prompt + new/2) x kv_bytes_per_token) / 4.8e12)``. B is all
sequences of the setting (items x n), i.e. the bound assumes the whole batch decodes at once
(prefill excluded), which is the best case for both engines.

Usage (GPU): python benchmarks/generation_h200.py --out results.json
       (CPU smoke, tiny shape, hf only): python benchmarks/generation_h200.py --smoke --out x.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

HBM_BYTES_PER_S = 4.8e12
"""H200 HBM3e bandwidth (datasheet)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_model_dir(shape_name: str, frames_max: int, px: int, out: Path) -> dict:
    """save_pretrained a random-init Qwen3-VL of ``shape_name`` (bf16) with the project's
    processor (Qwen3-VL video processor bounded for ``frames_max`` frames of ``px``) into ``out``."""
    from train_step_h200 import SHAPES, build_model

    from rmsd.models.factory import build_processor
    from train_step_h200 import WORDS
    from rmsd.models.tokenizer import build_tokenizer

    shape = SHAPES[shape_name]
    tok = build_tokenizer([" ".join(WORDS)] * 4 + ["system user assistant seconds answer think"], 600)
    proc = build_processor(tok, 16 * 16 * 4, frames_max * px * px, family="qwen3_vl")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = build_model(tok, shape, torch.bfloat16, dev)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    text = shape["text"]
    n_text = sum(p.numel() for n, p in model.named_parameters() if ".visual." not in f".{n}")
    n_embed = model.model.language_model.embed_tokens.weight.numel()
    info = {"n_params": sum(p.numel() for p in model.parameters()), "n_text_params": n_text,
            "tied": model.lm_head.weight is model.model.language_model.embed_tokens.weight,
            "n_embed": n_embed,
            "kv_bytes_per_token": 2 * text["num_hidden_layers"] * text["num_key_value_heads"] * text["head_dim"] * 2}
    # bytes read per decode step: text weights (the tied table once, as the LM head)
    info["decode_weight_bytes"] = 2 * n_text
    del model
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return info


def make_items(tag: str, n: int, frames: int, px: int, seed: int):
    """n items with distinct random frames and their manifest records (16 or 64 frames sampled
    uniformly from a 120 s, 30 fps video)."""
    from rmsd.frames.select import select_indices, timestamps_s

    rng = np.random.default_rng(seed)
    items, frs, recs = [], [], []
    total = 3600
    idx = select_indices(total, frames, "uniform")
    for i in range(n):
        iid = f"{tag}-{i:03d}"
        items.append({"id": iid, "task_type": "open", "question": "Describe what happens in the video, "
                      "and when each event starts and ends.", "answer": "x"})
        frs.append(rng.integers(0, 256, (frames, px, px, 3), dtype=np.uint8))
        recs.append({"item_id": iid, "indices": idx, "fps": 30.0, "num_video_frames": total,
                     "timestamps_s": timestamps_s(idx, 30.0), "vfr": False,
                     "stored_size_px": [px, px]})
    return items, frs, recs


def bound_tok_s(info: dict, n_seqs: int, prompt_tokens: float, new_tokens: int) -> float:
    ctx = prompt_tokens + new_tokens / 2
    step_bytes = info["decode_weight_bytes"] + n_seqs * ctx * info["kv_bytes_per_token"]
    return n_seqs / (step_bytes / HBM_BYTES_PER_S)


def run_hf(model_dir: str, settings: list[dict], data: dict, args) -> dict:
    from rmsd.evaluation.run import HFGenerator
    from rmsd.teachers.base import SamplingParams
    from rmsd.teachers.hf import HFTeacher

    t0 = time.perf_counter()
    teacher = HFTeacher(model_dir, batch_size=args.hf_batch, dtype="bfloat16")
    log(f"hf: model loaded in {time.perf_counter() - t0:.1f} s")
    gen = HFGenerator(teacher.model, teacher.encoder,
                      torch.device("cuda") if torch.cuda.is_available() else None)
    out = {}
    for s in settings:
        if "hf" not in s.get("engines", ("hf", "vllm")):
            continue
        items, frs, recs = data[s["name"]]
        params = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=args.new_tokens)
        bs = args.hf_batch
        while True:  # the largest batch that fits beside the vLLM engine (halved on OOM)
            try:
                teacher.batch_size = bs
                sync()
                t = time.perf_counter()
                if s["kind"] == "sample":
                    res = teacher.generate(items, frs, s["n"], params, seed=0, metadata=recs)
                else:
                    res = []
                    for b in range(0, len(items), bs):
                        res += gen(items[b:b + bs], frs[b:b + bs], n=1, do_sample=False,
                                   max_new_tokens=args.new_tokens, metadata=recs[b:b + bs])
                sync()
                break
            except torch.OutOfMemoryError:
                gc.collect()
                torch.cuda.empty_cache()
                if bs == 1:
                    raise
                log(f"hf {s['name']}: out of memory at batch {bs}; halving")
                bs //= 2
        secs = time.perf_counter() - t
        n_tok = sum(g["n_tokens"] for r in res for g in r)
        out[s["name"]] = {"seconds": round(secs, 3), "generated_tokens": n_tok,
                          "tok_s": round(n_tok / secs, 1), "batch_items": bs}
        log(f"hf {s['name']}: {n_tok} tokens in {secs:.2f} s = {n_tok / secs:.0f} tok/s")
        prompt_tokens = [len(p.prompt_ids) for p in teacher.encoder.encode(items[:1], frs[:1], metadata=recs[:1])]
        out[s["name"]]["prompt_tokens"] = prompt_tokens[0]
    out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None
    del teacher, gen
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def run_vllm(model_dir: str, settings: list[dict], data: dict, args) -> dict:
    import vllm

    from rmsd.evaluation.run import VLLMGenerator
    from rmsd.teachers.base import SamplingParams
    from rmsd.teachers.vllm_engine import VLLMTeacher

    t0 = time.perf_counter()
    fmax = max(s["frames"] for s in settings)
    teacher = VLLMTeacher(model_dir, dtype="bfloat16", gpu_memory_utilization=args.gpu_mem,
                          max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
                          limit_mm_per_prompt={"image": 0, "video": {"count": 1, "num_frames": fmax,
                                                                     "width": args.px, "height": args.px}})
    start_s = time.perf_counter() - t0
    log(f"vllm {vllm.__version__}: engine up in {start_s:.1f} s")
    gen = VLLMGenerator(teacher.engine, teacher.encoder)
    out = {"engine_start_s": round(start_s, 1), "vllm_version": vllm.__version__}
    for s in settings:
        items, frs, recs = data[s["name"]]
        # warm-up of the same shape (items x n, sampling or greedy) on other frames: vLLM compiles
        # Triton kernels (top-k/top-p sampling, vision rotary) at the first batch of a new shape;
        # a 2-item warm-up left a 9.5 s compile inside the first timed call (2026-12-04 run)
        wi, wf, wr = data[f"warm{s['frames']}"]
        wi, wf, wr = (wi * len(items))[:len(items)], (wf * len(items))[:len(items)], (wr * len(items))[:len(items)]
        wi = [{**it, "id": f"{it['id']}-{j}"} for j, it in enumerate(wi)]
        t_w = time.perf_counter()
        if s["kind"] == "sample":
            teacher.generate(wi, wf, s["n"], SamplingParams(max_new_tokens=16), seed=1, metadata=wr)
        else:
            gen(wi, wf, n=1, do_sample=False, max_new_tokens=16, metadata=wr)
        log(f"vllm {s['name']}: warm-up {time.perf_counter() - t_w:.1f} s")
        mnt = s.get("new_tokens", args.new_tokens)
        params = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=mnt)
        before = (teacher.engine.n_prompt_tokens, teacher.engine.n_requests)
        t = time.perf_counter()
        if s["kind"] == "sample":
            res = teacher.generate(items, frs, s["n"], params, seed=0, metadata=recs)
        else:
            res = gen(items, frs, n=1, do_sample=False, max_new_tokens=mnt, metadata=recs)
        secs = time.perf_counter() - t
        n_tok = sum(g["n_tokens"] for r in res for g in r)
        n_prompt = (teacher.engine.n_prompt_tokens - before[0]) / max(1, teacher.engine.n_requests - before[1])
        out[s["name"]] = {"seconds": round(secs, 3), "generated_tokens": n_tok,
                          "tok_s": round(n_tok / secs, 1), "prompt_tokens": round(n_prompt, 1),
                          "finish_reasons": sorted({g["finish_reason"] for r in res for g in r})}
        log(f"vllm {s['name']}: {n_tok} tokens in {secs:.2f} s = {n_tok / secs:.0f} tok/s "
            f"(prompt {n_prompt:.0f} tokens)")
    out["engine_stats"] = teacher.engine.stats()
    # the engine's prompt (timestamps included) equals the project's processor path token for token
    items, frs, recs = data[settings[0]["name"]]
    reqs, sps = gen.requests(items[:1], frs[:1], 1, False, 1, metadata=recs[:1])
    got = list(teacher.engine.llm.generate(reqs, sps, use_tqdm=False)[0].prompt_token_ids)
    want = teacher.encoder.encode(items[:1], frs[:1], metadata=recs[:1])[0].prompt_ids.tolist()
    out["prompt_ids_equal_hf"] = got == want
    text = teacher.encoder.tokenizer.decode([t for t in got if t != teacher.encoder.video_token_id])
    out["prompt_text_sample"] = text[:400]
    log(f"vllm prompt ids equal the hf processor's: {got == want} ({len(got)} vs {len(want)}); {text[:300]!r}")
    return out


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def table(res: dict) -> str:
    rows = ["| setting | items x n | frames | prompt tokens | hf tok/s | vllm tok/s | vllm / hf | bound tok/s | vllm / bound |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["settings"].items():
        hf, vl, b = r.get("hf_tok_s"), r.get("vllm_tok_s"), r["bound_tok_s"]
        f = (lambda x: f"{x:,.0f}" if x else "-")
        rows.append(f"| {name} | {r['items']} x {r['n']} | {r['frames']} | {r['prompt_tokens']:,.0f} | {f(hf)} | "
                    f"{f(vl)} | {vl / hf:.2f}x | {b:,.0f} | {100 * vl / b:.1f}% |" if hf and vl else
                    f"| {name} | {r['items']} x {r['n']} | {r['frames']} | {r['prompt_tokens']:,.0f} | {f(hf)} | "
                    f"{f(vl)} | - | {b:,.0f} | - |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny shape on the CPU, hf only")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--px", type=int, default=448)
    ap.add_argument("--frames", default="16,64")
    ap.add_argument("--hf-batch", type=int, default=16)
    ap.add_argument("--gpu-mem", type=float, default=0.45)
    ap.add_argument("--max-model-len", type=int, default=16384)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--vllm-items", type=int, default=64, help="items of the extra vLLM-only sampling row (0: none)")
    ap.add_argument("--long-tokens", type=int, default=0, help="new tokens of an extra vLLM-only sampling row (0: none)")
    ap.add_argument("--skip", default="", help="comma list of engines to skip: hf, vllm")
    ap.add_argument("--model-dir", default="/tmp/rmsd-gen-bench-model")
    args = ap.parse_args(argv)
    if args.smoke:
        args.px, args.items, args.new_tokens, args.frames, args.skip = 64, 2, 4, "4", "vllm"
        args.vllm_items = 0
    frame_counts = [int(x) for x in args.frames.split(",")]
    settings = []
    for f in frame_counts:
        settings.append({"name": f"sample_k{args.k}_f{f}", "kind": "sample", "n": args.k, "frames": f})
        settings.append({"name": f"greedy_f{f}", "kind": "greedy", "n": 1, "frames": f})
    if args.vllm_items:  # vLLM only: a fuller batch for the engine (transformers would need ~4x the KV memory)
        f = frame_counts[0]
        settings.append({"name": f"sample_k{args.k}_f{f}_{args.vllm_items}items", "kind": "sample",
                         "n": args.k, "frames": f, "items": args.vllm_items, "engines": ("vllm",)})
    if args.long_tokens:  # vLLM only: the paper's generation limit, decode-dominated
        f = frame_counts[0]
        settings.append({"name": f"sample_k{args.k}_f{f}_{args.long_tokens}tok", "kind": "sample",
                         "n": args.k, "frames": f, "new_tokens": args.long_tokens, "engines": ("vllm",)})
    data = {}
    for j, s in enumerate(settings):
        data[s["name"]] = make_items(s["name"], s.get("items", args.items), s["frames"], args.px, seed=j)
    for f in frame_counts:
        data[f"warm{f}"] = make_items(f"warm{f}", 2, f, args.px, seed=100 + f)
    info = build_model_dir("smoke" if args.smoke else "4b", max(frame_counts), args.px, Path(args.model_dir))
    log(f"model: {info}")
    res = {"model": "Qwen3-VL-4B shape, random init, bf16" if not args.smoke else "smoke shape",
           "info": info, "args": vars(args), "hbm_bytes_per_s": HBM_BYTES_PER_S,
           "torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    import transformers
    res["transformers"] = transformers.__version__
    skip = set(filter(None, args.skip.split(",")))
    # vLLM first (it sizes its KV cache from the free memory at start: --gpu-mem of the card),
    # then transformers in the rest of the card; the two never run at the same time
    vl = run_vllm(args.model_dir, settings, data, args) if "vllm" not in skip else {}
    res["vllm"] = vl
    write(args.out, res)
    hf = run_hf(args.model_dir, settings, data, args) if "hf" not in skip else {}
    res["hf"] = hf
    res["settings"] = {}
    for s in settings:
        pt = (vl.get(s["name"]) or hf.get(s["name"]) or {}).get("prompt_tokens") or 0
        n_items = s.get("items", args.items)
        mnt = s.get("new_tokens", args.new_tokens)
        r = {"items": n_items, "n": s["n"], "frames": s["frames"], "new_tokens": mnt,
             "prompt_tokens": pt,
             "hf_tok_s": (hf.get(s["name"]) or {}).get("tok_s"),
             "vllm_tok_s": (vl.get(s["name"]) or {}).get("tok_s"),
             "bound_tok_s": round(bound_tok_s(info, n_items * s["n"], pt, mnt), 1)}
        res["settings"][s["name"]] = r
    write(args.out, res)
    print(table(res), flush=True)
    return 0


def write(path, res):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1, default=str)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
