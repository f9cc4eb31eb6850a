"""The model-building stage of the embedded default: tokenizer/processor, teachers, base student.

Teachers and the base student are trained from random initialisation on the ground truth of the
train split (a rule of the default config only; the paper config points at pretrained checkpoints).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rmsd.io import atomic_write_json, read_jsonl
from rmsd.models.factory import TinyVLMConfig, build_model, build_processor, count_parameters
from rmsd.models.inputs import VideoPromptEncoder
from rmsd.models.tokenizer import SYSTEM_PROMPT, build_tokenizer
from rmsd.tasks import TASK_INSTRUCTIONS, TASK_TYPES, build_prompt, render_answer, render_response
from rmsd.utils import get_logger, seed_everything

log = get_logger(__name__)


def tokenizer_corpus(items: list[dict], template: str) -> list[str]:
    """Strings the BPE is trained on: prompts and ground-truth responses of ``items``.

    Both templates' tags are included so either template tokenises compactly.
    """
    corpus = [v for v in TASK_INSTRUCTIONS.values()]
    scaffold = f"system\n{SYSTEM_PROMPT}\nuser\nassistant\n"  # the chat template's fixed text
    for it in items:
        corpus.append(scaffold)
        ans = render_answer(it["task_type"], it["answer"])
        corpus += [build_prompt(it, template), render_response(ans, "answer_only"),
                   render_response(ans, "think_answer")]
    return corpus


def build_processor_dir(items_paths: list[str], out_dir: str, vocab_size: int, min_pixels: int,
                        max_pixels: int, template: str) -> None:
    """Train the tokenizer on the items' text and save tokenizer + processor to ``out_dir``."""
    items = [it for p in items_paths for it in read_jsonl(p, required=("task_type", "answer"))]
    tok = build_tokenizer(tokenizer_corpus(items, template), vocab_size)
    proc = build_processor(tok, min_pixels, max_pixels)
    tmp = Path(str(out_dir) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    proc.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log.info("tokenizer: %d tokens from %d items -> %s", len(tok), len(items), out_dir)


def train_from_scratch(processor_dir: str, items_path: str, frames_dir: str, out_dir: str,
                       arch: dict, sft: dict, seed: int, template: str, threads: int = 1,
                       on_missing: str = "fail") -> dict:
    """Initialise a tiny Qwen2-VL and train it on the ground truth of ``items_path``.

    ``sft.steps == 0`` gives the untrained (random) model. Items without frames (skipped by the frame
    stage) fail or are skipped and counted (``n_missing_frames``) as ``on_missing`` says. Writes ``save_pretrained`` files,
    ``train_log.jsonl`` and ``summary.json`` into ``out_dir`` (atomically, via a temp directory).
    """
    from transformers import AutoProcessor

    from rmsd.train.context import StepLogger, TrainContext
    from rmsd.frames import load_items_with_frames
    from rmsd.tasks import ground_truth_response
    from rmsd.train.dist import init_runtime
    from rmsd.train.loop import SFTConfig, sft_train
    from rmsd.utils import set_threads

    set_threads(threads)
    seed_everything(seed)
    processor = AutoProcessor.from_pretrained(processor_dir, local_files_only=True)
    model = build_model(processor.tokenizer, TinyVLMConfig.from_dict(arch), seed)
    cfg = SFTConfig.from_dict(sft)
    tmp = Path(str(out_dir) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary = {"params": count_parameters(model), "arch": arch, "sft": sft, "seed": seed}
    if cfg.steps > 0:
        items, frames, n_missing, records = load_items_with_frames(items_path, frames_dir,
                                                                   on_missing=on_missing, with_meta=True)
        summary["n_missing_frames"] = n_missing
        enc = VideoPromptEncoder(processor, template)
        prompts = enc.encode(items, frames, metadata=records)  # real frame times (Qwen3-VL)
        targets = enc.tokenize_responses([ground_truth_response(it, template) for it in items])
        # one process; on the GPU when one is visible (bf16 autocast, fp32 weights), else the CPU
        ctx = TrainContext(rt=init_runtime(), logger=StepLogger(tmp / "train_log.jsonl"))
        try:
            summary["train"] = sft_train(model, enc, list(zip(prompts, targets)), cfg, seed,
                                         desc=Path(out_dir).name, ctx=ctx)
        finally:
            ctx.logger.close()
        summary["n_train_items"] = len(items)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    atomic_write_json(tmp / "summary.json", summary)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log.info("model %s: %s", out_dir, json.dumps(summary.get("train", {})))
    return summary
