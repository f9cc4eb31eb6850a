"""Stage 1 (SFT) and the plain supervised loop used to build teachers and the base student.

Loss: autoregressive cross-entropy on response tokens only; prompt and vision tokens are masked
(paper section 3.8, Stage 1). The vocabulary projection runs only over the trailing window of
positions that predict response tokens (:func:`rmsd.train.losses.sft_loss`; the same loss as
``model(**batch, labels=labels).loss``). Dimension names: B batch, S sequence.

The same loop runs in one process, under DDP (torchrun/accelerate, gloo or NCCL) and under
DeepSpeed ZeRO (see :mod:`rmsd.train.engine`); ``batch_size`` is the global batch, split evenly over
ranks. Batches come from a DataLoader over the examples (a streaming
:class:`~rmsd.train.data.SFTDataset` or an in-memory list of pairs) with an
:class:`~rmsd.train.data.EpochBatchSampler`: each epoch is a seeded permutation, each rank takes its
slice of every global batch, and ``epochs`` sets the number of steps. With a
:class:`~rmsd.train.context.TrainContext` it checkpoints every ``checkpoint_every`` steps and resumes
from a checkpoint of this stage at the same position in the epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from rmsd.errors import ConfigError, TrainingError
from rmsd.errors import check_known_keys
from rmsd.models.inputs import EncodedPrompt, VideoPromptEncoder
from rmsd.train.checkpoint import capture_rng, restore_rng
from rmsd.train import preempt
from rmsd.train.context import StepLogger, TrainContext, run_step_hooks
from rmsd.train.data import EpochBatchSampler, make_loader, steps_for
from rmsd.train.dist import Runtime
from rmsd.train.engine import Engine, ExecConfig
from rmsd.train.losses import logits_window, sft_loss
from rmsd.utils import get_logger

log = get_logger(__name__)

ON_NAN = ("fail", "skip")
RANK_SEED_STRIDE = 7919
"""Rank r seeds its own random draws (Stage-2 rollouts and pool matching) with seed + r * RANK_SEED_STRIDE."""


@dataclass
class SFTConfig:
    """Supervised fine-tuning hyper-parameters."""

    steps: int = 150
    """Optimizer steps when ``epochs`` is null (batches continue through seeded epoch permutations)."""
    epochs: float | None = None
    """Passes over the examples; sets steps = ceil(epochs x examples / batch_size) (paper: 1)."""
    num_workers: int = 0
    """DataLoader worker processes reading and encoding batches (0: in the training process)."""
    batch_size: int = 32
    """Examples per step over all ranks (global batch; each rank takes batch_size / world_size)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    warmup_steps: int = 10
    """Linear warm-up steps; cosine decay to 10% of ``lr`` after."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (paper default for SFT: 1.0)."""
    on_nan: str = "fail"
    """What a non-finite loss or gradient does: "fail" raises, "skip" skips the step and counts it."""
    checkpoint_every: int = 50
    """Write a resumable checkpoint every this many steps (0: never)."""
    deepspeed: str | None = None
    """None: plain / DDP; "zero2", "zero3" (config/deepspeed/<name>.json) or a DeepSpeed JSON path."""
    precision: str = "auto"
    """"auto" = bf16 on CUDA, fp32 on CPU; "fp32"; "bf16" (CUDA only)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward (CUDA only)."""
    compile: bool = False
    """torch.compile the language model (CUDA only)."""
    micro_batch_size: int = 0
    """Examples per forward/backward on a rank (gradient accumulation); 0 = all at once."""

    @classmethod
    def from_dict(cls, d: dict) -> "SFTConfig":
        """Strict constructor: unknown keys raise :class:`ConfigError`."""
        check_known_keys(cls, d, "SFT")
        cfg = cls(**d)
        if cfg.on_nan not in ON_NAN:
            raise ConfigError(f"sft.on_nan must be 'fail' or 'skip', got {cfg.on_nan!r}")
        if cfg.checkpoint_every < 0:
            raise ConfigError(f"sft.checkpoint_every must be >= 0, got {cfg.checkpoint_every}")
        if cfg.epochs is not None and not cfg.epochs > 0:
            raise ConfigError(f"sft.epochs must be > 0 or null, got {cfg.epochs}")
        if cfg.num_workers < 0:
            raise ConfigError(f"sft.num_workers must be >= 0, got {cfg.num_workers}")
        cfg.exec_config().validate("sft")
        return cfg

    def exec_config(self) -> ExecConfig:
        """The execution knobs of this stage."""
        return ExecConfig(deepspeed=self.deepspeed, precision=self.precision,
                          gradient_checkpointing=self.gradient_checkpointing, compile=self.compile,
                          micro_batch_size=self.micro_batch_size)


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float = 0.1) -> float:
    """Linear warm-up then cosine decay to ``floor * peak``.

    >>> lr_at(0, 100, 10, 1.0), lr_at(10, 100, 10, 1.0), round(lr_at(100, 100, 10, 1.0), 3)
    (0.1, 1.0, 0.1)
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def per_rank(total: int, rt: Runtime, key: str) -> int:
    """``total`` split evenly over ranks.

    Raises:
        ConfigError: ``total`` does not divide by the world size.
    """
    if total % rt.world_size:
        raise ConfigError(f"{key} = {total} does not divide by the {rt.world_size} processes")
    return total // rt.world_size


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a collated batch to ``device`` (returned as is on CPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def collate_to(encoder: VideoPromptEncoder, prompts: list[EncodedPrompt], responses, device: torch.device
               ) -> dict[str, torch.Tensor]:
    """``encoder.collate(prompts, responses)`` on ``device``.

    On CUDA the video patches, the bulk of a batch (16 frames at 672 x 672 px are 86 MB of float32),
    are gathered once, straight into page-locked host memory (PyTorch caches those blocks, so there
    are no fresh page faults each step) and copied asynchronously: 6 ms a step on an H200 machine,
    against 24-45 ms for a fresh pageable copy plus a synchronous transfer (5-9% of a 4B step).
    The values are the same; on the CPU this is ``collate`` itself.
    """
    if device.type != "cuda":
        return encoder.collate(prompts, responses)
    light = [dataclasses.replace(p, pixel_values=p.pixel_values[:0]) for p in prompts]
    batch = encoder.collate(light, responses)
    pix = [p.pixel_values for p in prompts]
    buf = torch.empty((sum(len(x) for x in pix), *pix[0].shape[1:]), dtype=pix[0].dtype, pin_memory=True)
    torch.cat(pix, out=buf)
    batch["pixel_values_videos"] = buf
    return to_device(batch, device)


def nonfinite(loss: torch.Tensor, rt: Runtime) -> bool:
    """True when ``loss`` is NaN/inf on any rank (every rank gets the same answer)."""
    bad = not bool(torch.isfinite(loss.detach()).all())
    return rt.any(bad) if rt.distributed else bad


def _label_mask(prompts: list[EncodedPrompt], targets: list[torch.Tensor]) -> torch.Tensor:
    """(B, S) response mask of the left-padded batch ``collate`` builds (computed on the host)."""
    lens = [len(p.prompt_ids) + len(t) for p, t in zip(prompts, targets)]
    width = max(lens)
    mask = torch.zeros((len(lens), width), dtype=torch.bool)
    for i, t in enumerate(targets):
        if len(t):
            mask[i, width - len(t):] = True
    return mask


def _sft_step(eng: Engine, encoder: VideoPromptEncoder, prompts, targets, idx: list[int],
              micro: int) -> tuple[float | None, int, float | None]:
    """One optimizer step on examples ``idx``; returns (loss, response tokens, grad norm).

    loss None: non-finite loss (nothing applied); grad norm None: non-finite gradients (nothing
    applied).
    """
    rt = eng.rt
    if micro >= len(idx):  # one forward/backward: the path every CPU run takes
        ps, ts = [prompts[i] for i in idx], [targets[i] for i in idx]
        window = logits_window(_label_mask(ps, ts))  # logits only where a response token is predicted
        batch = collate_to(encoder, ps, ts, rt.device)
        with eng.autocast():
            loss = sft_loss(eng.model, batch, window)
        if nonfinite(loss, rt):
            eng.zero_grad()
            return None, 0, None
        eng.backward(loss)
        return loss.item(), int(batch["response_mask"].sum()), eng.step()
    chunks = [idx[i:i + micro] for i in range(0, len(idx), micro)]
    n_tok = sum(len(targets[i]) for i in idx)
    total = 0.0
    for k, chunk in enumerate(chunks):
        ps, ts = [prompts[i] for i in chunk], [targets[i] for i in chunk]
        window = logits_window(_label_mask(ps, ts))
        batch = collate_to(encoder, ps, ts, rt.device)
        with eng.no_sync(last=k == len(chunks) - 1):
            with eng.autocast():
                loss = sft_loss(eng.model, batch, window,
                                num_items_in_batch=torch.tensor(n_tok, device=rt.device))
            if nonfinite(loss, rt):
                if eng.ds is not None and k > 0:
                    raise TrainingError("non-finite loss in a later micro-batch under DeepSpeed: the "
                                        "accumulated step cannot be skipped; use micro_batch_size 0")
                eng.zero_grad()
                return None, 0, None
            eng.backward(loss)
        total += loss.item()
    return total, n_tok, eng.step()


def sft_train(model, encoder: VideoPromptEncoder, data, cfg: SFTConfig, seed: int, log_path=None,
              desc: str = "sft", *, ctx: TrainContext | None = None) -> dict:
    """Train ``model`` on (prompt, target) pairs with response-only cross-entropy.

    Args:
        model: a Qwen-VL ``...ForConditionalGeneration`` (trained in place; under ZeRO-3 read the
            weights through ``ctx.engines["policy"]``).
        data: the examples, ``data[i] = (EncodedPrompt, target ids (S_r,) with end-of-turn)``: a
            :class:`~rmsd.train.data.SFTDataset` (read and encoded per batch) or a list.
        cfg: hyper-parameters (``epochs`` set: steps = ceil(epochs x len(data) / batch_size)).
        seed: seeds the epoch permutations (the same on every rank).
        log_path: JSONL file receiving one record per step (used when ``ctx`` is None).
        desc: stage name in logs and checkpoints.
        ctx: process layout, logger, checkpointer and the checkpoint to resume (None: one
            process, no checkpoints, log to ``log_path``).

    Returns:
        Summary: steps, epochs (passes over the examples), n_examples, final_loss (mean of the
        last 10 applied steps), n_skipped_nan, seconds, and resumed_at (the step resumed from).

    Raises:
        TrainingError: no examples; a non-finite loss or gradient under ``on_nan="fail"``; every
            step skipped.
    """
    if not len(data):
        raise TrainingError(f"{desc}: SFT got no training examples (empty selection?)")
    own_ctx = ctx is None
    if ctx is None:
        ctx = TrainContext(rt=Runtime(), logger=StepLogger(log_path))
    rt = ctx.rt
    ex = cfg.exec_config()
    n_rank = per_rank(cfg.batch_size, rt, f"{desc}.batch_size")
    micro = min(ex.micro_batch_size or n_rank, n_rank)
    n_steps = steps_for(cfg.epochs, len(data), cfg.batch_size) if cfg.epochs is not None else cfg.steps
    eng = Engine(model, cfg.lr, cfg.weight_decay, cfg.grad_clip, rt, ex,
                 micro_steps=math.ceil(n_rank / micro), batch_per_rank=n_rank, name="policy")
    ctx.engines["policy"] = eng
    start, n_nan, losses, elapsed = 0, 0, [], 0.0
    if (res := ctx.resume_for(desc)) is not None:
        eng.load_optimizer_state(res.load_optimizer("policy", rt, eng.sharded_optimizer))
        restore_rng(*res.load_rng(rt), rt)
        start, n_nan = int(res.state["stage_step"]), int(res.state["n_skipped_nan"])
        losses, elapsed = list(res.state.get("loss_tail", [])), float(res.state.get("seconds", 0.0))
        log.info("%s: resuming at step %d/%d from %s", desc, start, n_steps, res.path)
    sampler = EpochBatchSampler(len(data), cfg.batch_size, rt.rank, rt.world_size, seed, start, n_steps)
    loader = make_loader(data, sampler, cfg.num_workers)
    eng.train()
    t0 = time.time() - elapsed
    try:
        for step, pairs in zip(tqdm(range(start, n_steps), desc=desc, initial=start, total=n_steps,
                                    mininterval=5, disable=None if rt.is_main else True), loader):
            prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
            lr = lr_at(step, n_steps, cfg.warmup_steps, cfg.lr)
            eng.set_lr(lr)
            loss, n_tok, norm = _sft_step(eng, encoder, prompts, targets, list(range(len(pairs))), micro)
            if loss is None or norm is None:
                what = "loss" if loss is None else "gradient norm"
                if cfg.on_nan == "fail":
                    raise TrainingError(f"{desc}: non-finite {what} at step {step} (on_nan: fail)")
                n_nan += 1
                log.warning("%s: non-finite %s at step %d: step skipped (%d so far)", desc, what, step, n_nan)
            else:
                if rt.distributed:
                    loss, n_tok = rt.all_sum([loss / rt.world_size, float(n_tok)])
                losses.append(loss)
                ctx.logger.write({"stage": desc, "step": step, "global_step": ctx.global_offset + step,
                                  "epoch": round(sampler.epoch_at(step), 4), "loss": loss, "lr": lr, "tokens": int(n_tok), "grad_norm": norm,
                                  "seconds": round(time.time() - t0, 3)},
                                 global_step=ctx.global_offset + step)
                if step % max(1, n_steps // 10) == 0 or step == n_steps - 1:
                    log.info("%s step %d/%d loss %.4f lr %.2e (%.1f s)", desc, step, n_steps, loss, lr,
                             time.time() - t0)
            done, ckpt = step + 1, None
            stop = preempt.poll(rt) if done < n_steps else None  # a signal: checkpoint now and exit
            if ctx.checkpointer is not None and done < n_steps and (
                    stop or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)):
                state = {**ctx.base_state, "stage": desc, "stage_step": done, "n_skipped_nan": n_nan,
                         "loss_tail": losses[-10:], "seconds": round(time.time() - t0, 3),
                         "log_offset": ctx.logger.offset()}
                ckpt = ctx.checkpointer.save(ctx.global_offset + done, state, {"policy": eng},
                                             {"policy": lambda d: eng.module.save_pretrained(d / "policy")},
                                             capture_rng(rt))
            run_step_hooks(desc, step)
            if stop:
                preempt.stop(desc, done, stop, ckpt)
    finally:
        if own_ctx:
            ctx.logger.close()
    if n_steps > start and n_nan >= n_steps:
        raise TrainingError(f"{desc}: all {n_steps} steps were skipped for non-finite values; nothing trained")
    eng.eval()
    tail = losses[-10:]
    out = {"steps": n_steps, "epochs": round(sampler.epoch_at(n_steps), 4), "n_examples": len(data),
           "final_loss": sum(tail) / max(1, len(tail)), "n_skipped_nan": n_nan,
           "seconds": round(time.time() - t0, 2), "world_size": rt.world_size}
    if start:
        out["resumed_at"] = start
    return out
