"""Train one variant: Stage 1 (SFT on selected targets) then Stage 2 (adversarial or rule RL).

Data: the distill items are split into disjoint Stage-1 and Stage-2 sets (``stage1.n_items`` /
``stage2.n_items``, :func:`rmsd.train.data.stage_split`); each stage's selection records are checked
once and indexed by byte offset, then read, joined with their frames (``rmsd.frames.FrameStore``)
and encoded per batch (:mod:`rmsd.train.data`), so memory does not grow with the selection.

Reads the resolved variant config written by the ``train_config`` rule. Everything is written into
``<out>.tmp/`` and renamed over ``<out>`` only at the end: the final policy (``save_pretrained``,
safetensors), ``train_log.jsonl``, ``tb/`` (TensorBoard), ``summary.json`` and
``config.resolved.yaml``.

Resume: ``<out>.tmp/checkpoints/`` holds the newest ``step_N/`` checkpoint and, once Stage 1 is done
and Stage 2 follows, ``stage1_final/`` (the Stage-1 weights: Stage 2's reference and discriminator
initialisation). A rerun with the same ``--out`` and the same config continues from there; with a
different config it starts afresh. The same code runs in every process of a
torchrun/accelerate/deepspeed launch; rank 0 writes the shared files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import yaml

from rmsd.errors import ConfigError, TrainingError
from rmsd.frames import open_frames
from rmsd.io import atomic_write_json
from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder
from rmsd.scoring import ScoringConfig, score_response
from rmsd.tasks import is_closed
from rmsd.train.checkpoint import CHECKPOINT_DIR, STAGE1_FINAL, Checkpoint, Checkpointer, _fsync_dir
from rmsd.train import preempt
from rmsd.train.context import StepLogger, TrainContext
from rmsd.train.data import RLDataset, SFTDataset, scan_selection, stage_split, steps_for
from rmsd.train.dist import Runtime, init_runtime
from rmsd.train.engine import use_bf16
from rmsd.train.loop import SFTConfig, sft_train
from rmsd.train.rl import Discriminator, RLConfig, load_discriminator, rl_train
from rmsd.train.rollout import ROLLOUT_ENGINES, build_rollout_engine, check_vllm_settings
from rmsd.utils import get_logger, seed_everything, set_threads

log = get_logger(__name__)

REQUIRED_KEYS = ("student_init", "selection", "items", "frames", "template", "scoring", "stage1",
                 "stage2", "seed")
RUNTIME_KEYS = ("threads",)
"""Config keys that may change between a run and its resumption."""
STAGE1_KEYS = ("enabled", "sft", "on_missing_frames", "n_items", "split_seed")


def load_weights(path: str | Path, bf16: bool = False):
    """A model (no processor) from a ``save_pretrained`` directory: safetensors only, fp32 (bf16 when
    ``bf16``: frozen or DeepSpeed-managed copies, half the host and device memory)."""
    import torch
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32,
                                                       local_files_only=True, use_safetensors=True)


def make_reward_fn(scoring: ScoringConfig):
    """Rule rewards ``(R_outer, R_task, R_content)`` of a rollout (paper section 3.8 step 5).

    R_content is the ground-truth metric for closed-ended items and 0 for open-ended ones.
    """

    def reward(text: str, item: dict) -> tuple[float, float, float]:
        s = score_response(text, item, scoring)
        content = float(s["metric"]) * float(s["valid"]) if is_closed(item["task_type"]) else 0.0
        return float(s["valid_outer"]), float(s["valid_task"]), content

    return reward


def _same_run(cfg: dict, path: Path) -> bool:
    """True when ``path`` (a config.resolved.yaml) describes the same run as ``cfg``."""
    if not path.exists():
        return False
    try:
        old = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False

    def strip(d):
        return {k: v for k, v in (d or {}).items() if k not in RUNTIME_KEYS}

    return strip(old) == strip(json.loads(json.dumps(cfg)))


def input_fingerprint(cfg: dict) -> dict:
    """Size and modification time of every input file, so a resumed run can tell stale state."""
    paths = [Path(cfg["selection"]), Path(cfg["items"]), Path(cfg["frames"]) / "manifest.jsonl"]
    init = Path(cfg["student_init"])
    paths += sorted(init.glob("*.json")) + sorted(init.glob("*.safetensors"))
    out = {}
    for p in paths:
        st = p.stat() if p.exists() else None
        out[str(p)] = [st.st_size, st.st_mtime_ns] if st else None
    return out


FINGERPRINT_FILE = "inputs.fingerprint.json"


def _prepare_tmp(cfg: dict, tmp: Path, rt: Runtime) -> bool:
    """Create or reuse ``tmp`` (rank 0); returns True on every rank when resuming is possible.

    Resuming needs checkpoints, the same config (``threads`` aside) and unchanged inputs.
    """
    resume = False
    if rt.is_main:
        fp = input_fingerprint(cfg)
        fp_path = tmp / FINGERPRINT_FILE
        resume = ((tmp / CHECKPOINT_DIR).is_dir() and _same_run(cfg, tmp / "config.resolved.yaml")
                  and fp_path.exists() and json.loads(fp_path.read_text()) == json.loads(json.dumps(fp)))
        if not resume:
            if tmp.exists():
                log.info("%s: no resumable state for this config and inputs; starting afresh", tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            (tmp / "config.resolved.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            atomic_write_json(fp_path, fp)
    return bool(rt.broadcast(resume))


def _stage_indexes(cfg: dict, mode: str, rl_cfg) -> tuple:
    """Stage-1 and Stage-2 :class:`~rmsd.train.data.StageIndex` (None for a stage that does not
    run) over the disjoint item split of ``stage1.n_items`` / ``stage2.n_items``, and the counts of
    what was left out.

    Raises:
        DataError: a record names an unknown item, lacks frames, or has an empty pool / no SFT
            target / (adversarial Stage 2) an unusable matching distribution, under the "fail"
            policies.
        TrainingError: nothing is left for a stage that runs.
        ConfigError: the split sizes exceed the items.
    """
    s1, s2 = cfg["stage1"], cfg["stage2"]
    on_missing = s1.get("on_missing_frames", cfg.get("on_missing_frames", "fail"))
    on_empty = s2.get("rl", {}).get("on_empty_pool", "fail")
    ids1, ids2 = stage_split(cfg["items"], s1.get("n_items"), s2.get("n_items"), int(s1.get("split_seed", 0)))
    store = open_frames(cfg["frames"])
    common = dict(on_missing=on_missing, on_empty=on_empty, store=store)
    idx1 = idx2 = None
    if s1.get("enabled", True):
        idx1 = scan_selection(cfg["selection"], cfg["items"], cfg["frames"], ids1, need_pool=False, sft=True,
                              **common)
    if mode != "none":
        idx2 = scan_selection(cfg["selection"], cfg["items"], cfg["frames"], ids2,
                              need_pool=mode == "adversarial", sft=False, **common)
    both = [ix for ix in (idx1, idx2) if ix is not None]
    agg = sum if ids1 is not None else max  # disjoint stages add up; shared items are counted once
    counts = {k: agg(ix.counts.get(k, 0) for ix in both) for k in ("n_missing_frames", "n_empty_pool")}
    counts["n_items"] = agg(ix.n_records for ix in both)
    counts["stage1_items"] = idx1.n_records if idx1 is not None else 0
    counts["stage1_examples"] = len(idx1) if idx1 is not None else 0
    counts["stage2_items"] = idx2.n_records if idx2 is not None else 0
    counts["split"] = {"stage1_n_items": s1.get("n_items"), "stage2_n_items": s2.get("n_items"),
                       "disjoint": ids1 is not None}
    return idx1, idx2, counts


def _write_stage1_final(ckpt_root: Path, eng, rt: Runtime, state: dict) -> Path:
    """Save the Stage-1 weights atomically as ``checkpoints/stage1_final`` (collective)."""
    final = ckpt_root / STAGE1_FINAL
    partial = ckpt_root / f".partial_{STAGE1_FINAL}"
    if rt.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    rt.barrier()
    with eng.full_parameters():
        if rt.is_main:
            eng.module.save_pretrained(partial)
    if rt.is_main:
        atomic_write_json(partial / "state.json", state)
        _fsync_dir(partial)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
        for p in ckpt_root.glob("step_*"):  # Stage-1 step checkpoints are obsolete now
            shutil.rmtree(p, ignore_errors=True)
    rt.barrier()
    return final


def train_variant(cfg: dict, out_dir: str, rt: Runtime | None = None) -> dict:
    """Run Stage 1 and Stage 2 as ``cfg`` says and save the student to ``out_dir``.

    Args:
        cfg: resolved variant config (see :func:`rmsd.train.config.write_train_config`).
        out_dir: final model directory (written as ``<out_dir>.tmp`` and renamed at the end).
        rt: process layout (default: from the launcher's environment).

    Raises:
        ConfigError: a required key is missing or a value is invalid.
        DataError / TrainingError: the selection is empty, names unknown items, lacks frames or pools
            (under the "fail" policies), or training hit non-finite values under ``on_nan: fail``.
    """
    if missing := [k for k in REQUIRED_KEYS if k not in cfg]:
        raise ConfigError(f"train config lacks key(s) {missing}")
    if unknown := sorted(set(cfg["stage1"]) - set(STAGE1_KEYS)):
        raise ConfigError(f"unknown stage1 key(s) {unknown}; valid: {list(STAGE1_KEYS)}")
    rt = rt or init_runtime()
    seed = int(cfg["seed"])
    set_threads(cfg.get("threads", 1))
    seed_everything(seed)
    s1_on = bool(cfg["stage1"].get("enabled", True))
    sft_cfg = SFTConfig.from_dict(cfg["stage1"].get("sft", {}))
    mode = cfg["stage2"].get("mode", "none")
    rl_cfg = RLConfig.from_dict(cfg["stage2"].get("rl", {})) if mode != "none" else None
    rollout_name = cfg["stage2"].get("rollout_engine", "hf")
    if rollout_name not in ROLLOUT_ENGINES:
        raise ConfigError(f"stage2.rollout_engine must be one of {ROLLOUT_ENGINES}, got {rollout_name!r}")
    vllm_settings = check_vllm_settings(cfg["stage2"].get("vllm"))
    out = Path(out_dir)
    tmp = Path(str(out) + ".tmp")
    resumable = _prepare_tmp(cfg, tmp, rt)
    rt.barrier()
    ckpt_root = tmp / CHECKPOINT_DIR
    checkpointer = Checkpointer(ckpt_root, rt, copy_files=(tmp / "config.resolved.yaml",))
    s1_final = ckpt_root / STAGE1_FINAL
    s1_done = resumable and (s1_final / "state.json").exists()
    latest = checkpointer.latest() if resumable else None
    if latest is not None and s1_done and latest.stage != "stage2":
        latest = None
    resume_point: Checkpoint | None = latest
    if resume_point is None and s1_done:
        resume_point = Checkpoint(s1_final, json.loads((s1_final / "state.json").read_text()))
    if resume_point is not None and resume_point.state.get("world_size", 1) != rt.world_size:
        raise TrainingError(f"{resume_point.path}: written by {resume_point.state.get('world_size')} "
                            f"process(es); resume with the same number (now {rt.world_size}) or delete {tmp}")

    policy, processor = load_model(cfg["student_init"])
    encoder = VideoPromptEncoder(processor, cfg["template"])
    idx1, idx2, counts = _stage_indexes(cfg, mode, rl_cfg)
    if rt.is_main and (counts["n_missing_frames"] or counts["n_empty_pool"]):
        log.warning("selection: left out n_missing_frames=%d n_empty_pool=%d", counts["n_missing_frames"],
                    counts["n_empty_pool"])
    summary: dict = {"n_examples": counts.pop("n_items"), **counts, "seed": seed, "world_size": rt.world_size,
                     "stage1_deepspeed": sft_cfg.deepspeed, "resumed_from": None}
    if resume_point is not None:
        summary["resumed_from"] = {"path": resume_point.path.name, "stage": resume_point.state["stage"],
                                   "stage_step": resume_point.state.get("stage_step")}
    if resume_point is None and rt.is_main:  # a killed run without checkpoints: logs start over
        shutil.rmtree(tmp / "tb", ignore_errors=True)
    logger = StepLogger(tmp / "train_log.jsonl", tmp / "tb", rt,
                        truncate_to=resume_point.state.get("log_offset") if resume_point else 0,
                        purge_step=resume_point.state.get("global_step") if resume_point else None)
    ctx = TrainContext(rt=rt, logger=logger, checkpointer=checkpointer)
    examples = RLDataset(idx2, encoder, raw_video=rollout_name == "vllm") if idx2 is not None else None
    stage1_data = SFTDataset(idx1, encoder) if idx1 is not None else None
    n1 = (steps_for(sft_cfg.epochs, len(stage1_data), sft_cfg.batch_size) if sft_cfg.epochs is not None
          else sft_cfg.steps) if s1_on else 0
    final_eng = None
    try:
        if s1_on and not s1_done:
            ctx.resume = latest if latest is not None and latest.stage == "stage1" else None
            if ctx.resume is not None:
                policy = load_weights(ctx.resume.path / "policy")
            summary["stage1"] = sft_train(policy, encoder, stage1_data, sft_cfg, seed, desc="stage1", ctx=ctx)
            final_eng = ctx.engines.pop("policy")
            if mode != "none":
                _write_stage1_final(ckpt_root, final_eng, rt,
                                    {"stage": "stage1_final", "stage_step": n1, "global_step": n1,
                                     "world_size": rt.world_size, "log_offset": logger.offset(),
                                     "summary": summary["stage1"]})
                if sig := preempt.poll(rt):  # a signal during Stage 1's last step: stop before Stage 2
                    preempt.stop("stage1", n1, sig, s1_final)
        elif s1_done:
            summary["stage1"] = json.loads((s1_final / "state.json").read_text())["summary"]
        if mode != "none":
            final_eng = None
            init_dir = s1_final if s1_on else Path(cfg["student_init"])
            # the frozen reference only runs forward: bf16 on CUDA (it was cast there anyway), loaded
            # so directly: 2 instead of 4 bytes a parameter on the host of every rank
            ref_bf16 = use_bf16(rl_cfg.exec_config(), rt)
            ref = load_weights(init_dir, bf16=ref_bf16)
            ctx.resume = latest if latest is not None and latest.stage == "stage2" else None
            policy = load_weights(ctx.resume.path / "policy" if ctx.resume is not None else init_dir)
            disc = None
            if mode == "adversarial":  # fresh scalar head on a copy of the Stage-1 model
                # trained, so fp32 weights unless DeepSpeed keeps the fp32 master copy itself
                src = ref if not ref_bf16 or rl_cfg.deepspeed else load_weights(init_dir)
                disc = Discriminator(copy.deepcopy(src.model) if src is ref else src.model,
                                     ref.config.text_config.hidden_size,
                                     init=rl_cfg.disc_head_init, std=rl_cfg.disc_head_std, seed=seed)
                if ctx.resume is not None:
                    load_discriminator(disc, ctx.resume.path / "disc.safetensors")
            ctx.global_offset = n1
            ctx.base_state = {"stage1_summary": summary.get("stage1")}
            rollout = build_rollout_engine(rollout_name, model_path=cfg["student_init"], encoder=encoder,
                                           settings=vllm_settings, seed=seed, device=rt.device)
            try:
                summary["stage2"] = rl_train(policy, ref, disc, encoder, examples, rl_cfg, mode,
                                             make_reward_fn(ScoringConfig.from_dict(cfg["scoring"])),
                                             seed, ctx=ctx, rollout=rollout)
            finally:
                rollout.close()
            summary["stage2"]["rollout_engine"] = rollout_name
            summary["stage2_deepspeed"] = rl_cfg.deepspeed
            final_eng = ctx.engines["policy"]
        summary["n_skipped_nan"] = sum(int(summary.get(s, {}).get(k, 0)) for s in ("stage1", "stage2")
                                       for k in ("n_skipped_nan", "n_skipped_nan_disc"))
        if final_eng is not None:
            with final_eng.full_parameters():
                if rt.is_main:
                    final_eng.module.save_pretrained(tmp)
        elif rt.is_main:
            policy.save_pretrained(tmp)
    finally:
        logger.close()
    if rt.is_main:
        processor.save_pretrained(tmp)
        atomic_write_json(tmp / "summary.json", summary)
        shutil.rmtree(ckpt_root, ignore_errors=True)
        (tmp / FINGERPRINT_FILE).unlink(missing_ok=True)
        (tmp / preempt.MARKER).unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    rt.barrier()
    return summary
