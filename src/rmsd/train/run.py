"""Train one variant: Stage 1 (SFT on selected targets) then Stage 2 (adversarial or rule RL).

Reads the resolved variant config written by the ``train_config`` rule; writes the final policy with
``save_pretrained`` (safetensors), ``train_log.jsonl``, ``summary.json`` and ``config.resolved.yaml``
into a temporary directory renamed over ``out_dir`` at the end.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import yaml

from rmsd.errors import ConfigError, DataError, TrainingError
from rmsd.io import atomic_write_json, read_jsonl
from rmsd.models.factory import load_model
from rmsd.models.inputs import VideoPromptEncoder
from rmsd.scoring import ScoringConfig, score_response
from rmsd.tasks import is_closed
from rmsd.train.data import load_items_with_frames
from rmsd.train.loop import SFTConfig, sft_train
from rmsd.train.rl import Discriminator, RLConfig, RLExample, rl_train
from rmsd.utils import get_logger, seed_everything, set_threads

log = get_logger(__name__)

REQUIRED_KEYS = ("student_init", "selection", "items", "frames", "template", "scoring", "stage1",
                 "stage2", "seed")


def make_reward_fn(scoring: ScoringConfig):
    """Rule rewards ``(R_outer, R_task, R_content)`` of a rollout (paper section 3.8 step 5).

    R_content is the ground-truth metric for closed-ended items and 0 for open-ended ones.
    """

    def reward(text: str, item: dict) -> tuple[float, float, float]:
        s = score_response(text, item, scoring)
        content = float(s["metric"]) * float(s["valid"]) if is_closed(item["task_type"]) else 0.0
        return float(s["valid_outer"]), float(s["valid_task"]), content

    return reward


def train_variant(cfg: dict, out_dir: str) -> dict:
    """Run Stage 1 and Stage 2 as ``cfg`` says and save the student to ``out_dir``.

    Raises:
        ConfigError: a required key is missing.
        DataError / TrainingError: the selection is empty or names unknown items.
    """
    if missing := [k for k in REQUIRED_KEYS if k not in cfg]:
        raise ConfigError(f"train config lacks key(s) {missing}")
    seed = int(cfg["seed"])
    set_threads(cfg.get("threads", 1))
    seed_everything(seed)
    out = Path(out_dir)
    tmp = Path(str(out) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.resolved.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    policy, processor = load_model(cfg["student_init"])
    encoder = VideoPromptEncoder(processor, cfg["template"])
    items, frames, n_missing = load_items_with_frames(cfg["items"], cfg["frames"],
                                                      on_missing=cfg.get("on_missing_frames", "fail"))
    by_id = {it["id"]: (it, fr) for it, fr in zip(items, frames)}
    selection = read_jsonl(cfg["selection"], required=("item_id", "sft_target", "pool"))
    for lineno, rec in enumerate(selection, 1):
        if rec["item_id"] not in by_id:
            raise DataError(f"{cfg['selection']}:{lineno}: item {rec['item_id']!r} not in {cfg['items']}")
    if not selection:
        raise TrainingError(f"{cfg['selection']}: no item survived selection; nothing to train on")
    sel_items = [by_id[r["item_id"]][0] for r in selection]
    prompts = encoder.encode(sel_items, [by_id[r["item_id"]][1] for r in selection])
    summary: dict = {"n_examples": len(selection), "n_missing_frames": n_missing, "seed": seed}
    log_path = tmp / "train_log.jsonl"

    if cfg["stage1"].get("enabled", True):
        targets = encoder.tokenize_responses([r["sft_target"] for r in selection])
        summary["stage1"] = sft_train(policy, encoder, prompts, targets,
                                      SFTConfig.from_dict(cfg["stage1"]["sft"]), seed,
                                      log_path=log_path, desc="stage1")
    mode = cfg["stage2"].get("mode", "none")
    if mode != "none":
        rl_cfg = RLConfig.from_dict(cfg["stage2"]["rl"])
        ref = copy.deepcopy(policy).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        disc = None
        if mode == "adversarial":
            disc = Discriminator(copy.deepcopy(policy.model), policy.config.text_config.hidden_size)
        examples = [RLExample(item=it, prompt=p, pool_texts=[x["text"] for x in r["pool"]],
                              pool_q=np.array([x["q"] for x in r["pool"]], dtype=float),
                              pool_p=np.array([x["p"] for x in r["pool"]], dtype=float))
                    for it, p, r in zip(sel_items, prompts, selection)]
        for e in examples:
            e.pool_p = e.pool_p / e.pool_p.sum()
        summary["stage2"] = rl_train(policy, ref, disc, encoder, examples, rl_cfg, mode,
                                     make_reward_fn(ScoringConfig.from_dict(cfg["scoring"])),
                                     seed, log_path=log_path)
    policy.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    atomic_write_json(tmp / "summary.json", summary)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return summary
