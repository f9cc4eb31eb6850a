"""Stage 1 (SFT) and the plain supervised loop used to build teachers and the base student.

Loss: autoregressive cross-entropy on response tokens only; prompt and vision tokens are masked
(paper section 3.8, Stage 1). Dimension names: B batch, S sequence.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from tqdm import tqdm

from rmsd.errors import ConfigError, TrainingError
from rmsd.models.inputs import EncodedPrompt, VideoPromptEncoder, model_kwargs
from rmsd.utils import get_logger

log = get_logger(__name__)


@dataclass
class SFTConfig:
    """Supervised fine-tuning hyper-parameters."""

    steps: int = 150
    """Optimizer steps (each on ``batch_size`` examples drawn with replacement, seeded)."""
    batch_size: int = 32
    """Examples per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    warmup_steps: int = 10
    """Linear warm-up steps; cosine decay to 10% of ``lr`` after."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (paper default for SFT: 1.0)."""
    on_nan: str = "fail"
    """What a non-finite loss does: "fail" raises, "skip" skips the step and counts it."""

    @classmethod
    def from_dict(cls, d: dict) -> "SFTConfig":
        """Strict constructor: unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ConfigError(f"unknown SFT key(s) {unknown}; valid: {sorted(known)}")
        cfg = cls(**d)
        if cfg.on_nan not in ("fail", "skip"):
            raise ConfigError(f"sft.on_nan must be 'fail' or 'skip', got {cfg.on_nan!r}")
        return cfg


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float = 0.1) -> float:
    """Linear warm-up then cosine decay to ``floor * peak``.

    >>> lr_at(0, 100, 10, 1.0), lr_at(10, 100, 10, 1.0), round(lr_at(100, 100, 10, 1.0), 3)
    (0.1, 1.0, 0.1)
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def sft_train(model, encoder: VideoPromptEncoder, prompts: list[EncodedPrompt],
              targets: list[torch.Tensor], cfg: SFTConfig, seed: int, log_path: Path | None = None,
              desc: str = "sft") -> dict:
    """Train ``model`` on (prompt, target) pairs with response-only cross-entropy.

    Args:
        model: a Qwen-VL ``...ForConditionalGeneration`` (trained in place).
        prompts: encoded prompts, one per example.
        targets: token ids (S_r,) per example, end-of-turn included.
        cfg: hyper-parameters.
        seed: seeds the batch sampler.
        log_path: JSONL file receiving one record per step (loss, lr, tokens, seconds).

    Returns:
        Summary: steps, final_loss (mean of the last 10 steps), n_skipped_nan, seconds.

    Raises:
        TrainingError: no examples, or a non-finite loss under ``on_nan="fail"``.
    """
    if not prompts:
        raise TrainingError("SFT got no training examples (empty selection?)")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses, n_nan, t0 = [], 0, time.time()
    log_f = open(log_path, "a", encoding="utf-8") if log_path else None
    try:
        for step in tqdm(range(cfg.steps), desc=desc, mininterval=5, disable=None):
            idx = torch.randint(len(prompts), (cfg.batch_size,), generator=gen).tolist()
            batch = encoder.collate([prompts[i] for i in idx], [targets[i] for i in idx])
            lr = lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = model(**model_kwargs(batch), labels=batch["labels"]).loss
            if not torch.isfinite(loss):
                if cfg.on_nan == "fail":
                    raise TrainingError(f"{desc}: non-finite loss {loss.item()} at step {step}")
                n_nan += 1
                opt.zero_grad(set_to_none=True)
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            losses.append(loss.item())
            if log_f:
                log_f.write(json.dumps({"stage": desc, "step": step, "loss": losses[-1], "lr": lr,
                                        "tokens": int(batch["response_mask"].sum()),
                                        "seconds": round(time.time() - t0, 3)}) + "\n")
                log_f.flush()
            if step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1:
                log.info("%s step %d/%d loss %.4f lr %.2e (%.1f s)", desc, step, cfg.steps, losses[-1], lr,
                         time.time() - t0)
    finally:
        if log_f:
            log_f.close()
    model.eval()
    tail = losses[-10:]
    return {"steps": cfg.steps, "final_loss": sum(tail) / max(1, len(tail)), "n_skipped_nan": n_nan,
            "seconds": round(time.time() - t0, 2)}
